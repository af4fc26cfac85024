//! Docker's `ServiceSpec` (what `docker service create|update` sends) as the
//! control API's spec. What swarmkeep runs is taken; what it cannot honour
//! yet (ports, networks, mounts, resource limits, health checks, …) is
//! refused with the field's name rather than silently dropped. Everything
//! `GET /services/{id}` shows is accepted back unchanged, so an update that
//! sends the spec it read round-trips.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;
use swarmkeep_api::control;

use crate::error::{ApiError, ApiResult};

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct ServiceSpec {
    name: String,
    labels: Option<HashMap<String, String>>,
    task_template: TaskTemplate,
    mode: Mode,
    update_config: Option<UpdateConfig>,
    rollback_config: Option<UpdateConfig>,
    networks: Option<Value>,
    endpoint_spec: Option<EndpointSpec>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct TaskTemplate {
    container_spec: Option<ContainerSpec>,
    plugin_spec: Option<Value>,
    network_attachment_spec: Option<Value>,
    resources: Option<Resources>,
    restart_policy: Option<RestartPolicy>,
    placement: Option<PlacementJson>,
    networks: Option<Vec<NetworkAttachment>>,
    log_driver: Option<Value>,
    force_update: u64,
    runtime: String,
}

/// Docker's `NetworkAttachmentConfig`; the network is named or given by ID
/// (the manager resolves it).
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct NetworkAttachment {
    target: String,
    aliases: Option<Vec<String>>,
    driver_opts: Option<Value>,
}

/// Docker's `Placement`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct PlacementJson {
    constraints: Option<Vec<String>>,
    preferences: Option<Vec<Preference>>,
    max_replicas: u64,
    platforms: Option<Vec<PlatformJson>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct Preference {
    spread: Option<Spread>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct Spread {
    spread_descriptor: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PlatformJson {
    #[serde(rename = "OS")]
    os: String,
    #[serde(rename = "Architecture")]
    architecture: String,
}

/// Docker's `ResourceRequirements`: limits for the task's cgroups,
/// reservations for the scheduler (`GenericResources` refused).
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct Resources {
    limits: Option<Limits>,
    reservations: Option<Reservations>,
}

#[derive(Deserialize, Default, PartialEq)]
#[serde(default)]
struct Reservations {
    #[serde(rename = "NanoCPUs")]
    nano_cpus: i64,
    #[serde(rename = "MemoryBytes")]
    memory_bytes: i64,
    #[serde(rename = "GenericResources")]
    generic_resources: Option<Value>,
}

#[derive(Deserialize, Default, PartialEq)]
#[serde(default)]
struct Limits {
    #[serde(rename = "NanoCPUs")]
    nano_cpus: i64,
    #[serde(rename = "MemoryBytes")]
    memory_bytes: i64,
    #[serde(rename = "Pids")]
    pids: i64,
}

/// Docker's `Mount`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct MountSpec {
    #[serde(rename = "Type")]
    r#type: String,
    source: String,
    target: String,
    read_only: bool,
    consistency: String,
    bind_options: Option<Value>,
    volume_options: Option<VolumeOptions>,
    tmpfs_options: Option<TmpfsOptions>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct VolumeOptions {
    no_copy: bool,
    labels: Option<HashMap<String, String>>,
    driver_config: Option<DriverConfig>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct DriverConfig {
    name: String,
    options: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct TmpfsOptions {
    size_bytes: i64,
    mode: u32,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ContainerSpec {
    image: String,
    labels: Option<HashMap<String, String>>,
    command: Option<Vec<String>>,
    args: Option<Vec<String>>,
    hostname: String,
    env: Option<Vec<String>>,
    dir: String,
    user: String,
    groups: Option<Vec<String>>,
    privileges: Option<Privileges>,
    init: Option<bool>,
    read_only: bool,
    #[serde(rename = "TTY")]
    tty: bool,
    open_stdin: bool,
    mounts: Option<Vec<MountSpec>>,
    stop_signal: String,
    stop_grace_period: Option<i64>,
    healthcheck: Option<HealthConfig>,
    hosts: Option<Vec<String>>,
    #[serde(rename = "DNSConfig")]
    dns_config: Option<DnsConfig>,
    secrets: Option<Vec<FileRef>>,
    configs: Option<Vec<FileRef>>,
    isolation: String,
    sysctls: Option<HashMap<String, String>>,
    capability_add: Option<Vec<String>>,
    capability_drop: Option<Vec<String>>,
    ulimits: Option<Vec<Ulimit>>,
}

/// Docker's `Privileges`: `NoNewPrivileges` is always on in swarmkeep's
/// sandbox (so `true` is honoured); the rest is refused by name.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct Privileges {
    credential_spec: Option<Value>,
    #[serde(rename = "SELinuxContext")]
    selinux_context: Option<Value>,
    seccomp: Option<Value>,
    app_armor: Option<Value>,
    no_new_privileges: bool,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct DnsConfig {
    nameservers: Option<Vec<String>>,
    search: Option<Vec<String>>,
    options: Option<Vec<String>>,
}

/// Docker's HealthConfig (durations in nanoseconds).
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct HealthConfig {
    test: Option<Vec<String>>,
    interval: i64,
    timeout: i64,
    start_period: i64,
    retries: i32,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct Ulimit {
    name: String,
    soft: i64,
    hard: i64,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct FileRef {
    #[serde(rename = "File")]
    file: Option<File>,
    #[serde(rename = "Runtime")]
    runtime: Option<Value>,
    #[serde(rename = "SecretID", alias = "ConfigID")]
    id: String,
    #[serde(rename = "SecretName", alias = "ConfigName")]
    name: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct File {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "UID")]
    uid: String,
    #[serde(rename = "GID")]
    gid: String,
    #[serde(rename = "Mode")]
    mode: u32,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RestartPolicy {
    condition: String,
    delay: Option<i64>,
    max_attempts: Option<u64>,
    window: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct Mode {
    replicated: Option<Replicated>,
    global: Option<Value>,
    replicated_job: Option<ReplicatedJob>,
    global_job: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ReplicatedJob {
    max_concurrent: Option<u64>,
    total_completions: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct Replicated {
    replicas: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct UpdateConfig {
    parallelism: u64,
    delay: i64,
    failure_action: String,
    monitor: i64,
    max_failure_ratio: f32,
    order: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct EndpointSpec {
    mode: String,
    ports: Option<Vec<PortConfig>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct PortConfig {
    name: String,
    protocol: String,
    target_port: u32,
    published_port: u32,
    publish_mode: String,
}

impl EndpointSpec {
    fn into_control(self) -> control::EndpointSpec {
        control::EndpointSpec {
            mode: self.mode,
            ports: self
                .ports
                .unwrap_or_default()
                .into_iter()
                .map(|p| control::PortConfig {
                    name: p.name,
                    protocol: p.protocol,
                    target_port: p.target_port,
                    published_port: p.published_port,
                    publish_mode: p.publish_mode,
                })
                .collect(),
        }
    }
}

/// Whether a JSON value asks for anything: `null`, `false`, `0`, `""` and
/// containers of only such values (Docker's `{"Limits":{}}`) do not.
fn is_set(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => m.values().any(is_set),
    }
}

pub(crate) fn unsupported(field: &str) -> ApiError {
    ApiError::bad_request(format!("swarmkeep does not support {field} yet"))
}

fn nanos(field: &str, v: i64) -> ApiResult<u64> {
    u64::try_from(v).map_err(|_| ApiError::bad_request(format!("{field} must not be negative")))
}

fn file_refs(refs: Option<Vec<FileRef>>, kind: &str) -> ApiResult<Vec<control::FileReference>> {
    refs.unwrap_or_default()
        .into_iter()
        .map(|r| {
            // `Runtime: {}` (an empty object) is a runtime reference too.
            if r.runtime.as_ref().is_some_and(|v| !v.is_null()) {
                return Err(unsupported(&format!(
                    "{kind} references' Runtime (a reference without a file target)"
                )));
            }
            Ok(control::FileReference {
                id: r.id,
                name: r.name,
                file: r.file.map(|f| control::FileTarget {
                    name: f.name,
                    uid: f.uid,
                    gid: f.gid,
                    mode: f.mode,
                }),
            })
        })
        .collect()
}

fn update_config(c: Option<UpdateConfig>, kind: &str) -> ApiResult<Option<control::UpdateConfig>> {
    c.map(|c| {
        Ok(control::UpdateConfig {
            parallelism: c.parallelism,
            delay_ns: nanos(&format!("{kind}.Delay"), c.delay)?,
            failure_action: c.failure_action,
            monitor_ns: nanos(&format!("{kind}.Monitor"), c.monitor)?,
            max_failure_ratio: c.max_failure_ratio,
            order: c.order,
        })
    })
    .transpose()
}

impl ServiceSpec {
    pub fn into_control(self) -> ApiResult<control::ServiceSpec> {
        let t = self.task_template;
        let c = t.container_spec.unwrap_or_default();
        let privileges = c.privileges.unwrap_or_default();
        let refused: [(&str, bool); 15] = [
            ("Networks", self.networks.as_ref().is_some_and(is_set)),
            ("TaskTemplate.PluginSpec", t.plugin_spec.as_ref().is_some_and(is_set)),
            (
                "TaskTemplate.NetworkAttachmentSpec",
                t.network_attachment_spec.as_ref().is_some_and(is_set),
            ),
            (
                "TaskTemplate.Resources.Reservations.GenericResources",
                t.resources
                    .as_ref()
                    .and_then(|r| r.reservations.as_ref())
                    .and_then(|r| r.generic_resources.as_ref())
                    .is_some_and(is_set),
            ),
            (
                "placement preferences other than spread",
                t.placement
                    .as_ref()
                    .and_then(|p| p.preferences.as_ref())
                    .is_some_and(|p| p.iter().any(|p| p.spread.is_none())),
            ),
            (
                "TaskTemplate.Networks' DriverOpts",
                t.networks
                    .iter()
                    .flatten()
                    .any(|n| n.driver_opts.as_ref().is_some_and(is_set)),
            ),
            ("TaskTemplate.LogDriver", t.log_driver.as_ref().is_some_and(is_set)),
            (
                "ContainerSpec.Privileges.CredentialSpec",
                privileges.credential_spec.as_ref().is_some_and(is_set),
            ),
            (
                "ContainerSpec.Privileges.SELinuxContext",
                privileges.selinux_context.as_ref().is_some_and(is_set),
            ),
            (
                "ContainerSpec.Privileges.Seccomp and AppArmor",
                [&privileges.seccomp, &privileges.app_armor]
                    .iter()
                    .any(|v| v.as_ref().is_some_and(is_set)),
            ),
            ("ContainerSpec.OpenStdin", c.open_stdin),
            (
                "ContainerSpec.Mounts of a type other than bind, volume and tmpfs",
                c.mounts
                    .iter()
                    .flatten()
                    .any(|m| !["bind", "volume", "tmpfs"].contains(&m.r#type.as_str())),
            ),
            (
                "ContainerSpec.Mounts' BindOptions and Consistency",
                c.mounts.iter().flatten().any(|m| {
                    m.bind_options.as_ref().is_some_and(is_set)
                        || !m.consistency.is_empty() && m.consistency != "default"
                }),
            ),
            (
                "ContainerSpec.Mounts' VolumeOptions.DriverConfig.Options",
                c.mounts.iter().flatten().any(|m| {
                    m.volume_options
                        .as_ref()
                        .and_then(|v| v.driver_config.as_ref())
                        .and_then(|d| d.options.as_ref())
                        .is_some_and(is_set)
                }),
            ),
            (
                "ContainerSpec.Isolation other than default",
                !c.isolation.is_empty() && c.isolation != "default",
            ),
        ];
        if let Some((field, _)) = refused.iter().find(|(_, set)| *set) {
            return Err(unsupported(field));
        }
        if !t.runtime.is_empty() && t.runtime != "container" {
            return Err(unsupported(&format!("TaskTemplate.Runtime {:?}", t.runtime)));
        }
        let modes = [
            self.mode.replicated.is_some(),
            self.mode.global.is_some(),
            self.mode.replicated_job.is_some(),
            self.mode.global_job.is_some(),
        ];
        if modes.iter().filter(|m| **m).count() > 1 {
            return Err(ApiError::bad_request(
                "a service is only one of replicated, global, replicated job or global job",
            ));
        }
        let (mode, replicas, max_concurrent) = match (self.mode.replicated, self.mode.replicated_job) {
            _ if self.mode.global.is_some() => ("global", 0, 0),
            _ if self.mode.global_job.is_some() => ("global-job", 0, 0),
            // swarmkit's defaults: one at a time, as many completions.
            (_, Some(j)) => (
                "replicated-job",
                j.total_completions.unwrap_or(0),
                j.max_concurrent.unwrap_or(0),
            ),
            // Docker's CLI leaves Replicas out without --replicas: one task.
            (Some(r), None) => ("replicated", r.replicas.unwrap_or(1), 0),
            (None, None) => ("replicated", 1, 0),
        };
        // What the request left out: shown again only with insertDefaults.
        let omitted = control::SpecOmitted {
            update_config: self.update_config.is_none(),
            rollback_config: self.rollback_config.is_none(),
            restart_policy: t.restart_policy.is_none(),
            resources: t.resources.is_none(),
            placement: t.placement.is_none(),
            stop_grace_period: c.stop_grace_period.is_none(),
            dns_config: c.dns_config.is_none(),
            restart_window_given: t.restart_policy.as_ref().is_some_and(|r| r.window.is_some()),
        };
        let restart = t
            .restart_policy
            .map(|r| {
                Ok::<_, ApiError>(control::RestartPolicy {
                    condition: r.condition,
                    delay_ns: r
                        .delay
                        .map(|d| nanos("RestartPolicy.Delay", d))
                        .transpose()?
                        .unwrap_or(5_000_000_000),
                    max_attempts: r.max_attempts.unwrap_or(0),
                    window_ns: r
                        .window
                        .map(|d| nanos("RestartPolicy.Window", d))
                        .transpose()?
                        .unwrap_or(0),
                })
            })
            .transpose()?;
        Ok(control::ServiceSpec {
            endpoint: self.endpoint_spec.map(EndpointSpec::into_control),
            max_concurrent,
            annotations: Some(control::Annotations {
                name: self.name,
                labels: self.labels.unwrap_or_default(),
            }),
            task: Some(control::TaskSpec {
                image: c.image,
                command: c.command.unwrap_or_default(),
                args: c.args.unwrap_or_default(),
                env: c.env.unwrap_or_default(),
                workdir: c.dir,
                user: c.user,
                secrets: file_refs(c.secrets, "secret")?,
                configs: file_refs(c.configs, "config")?,
                restart,
                stop_grace_period_ns: c
                    .stop_grace_period
                    .map(|d| nanos("StopGracePeriod", d))
                    .transpose()?
                    .unwrap_or(0),
                force_update: t.force_update,
                mounts: c
                    .mounts
                    .unwrap_or_default()
                    .into_iter()
                    .map(|m| control::Mount {
                        r#type: m.r#type,
                        source: m.source,
                        target: m.target,
                        read_only: m.read_only,
                        volume_options: m.volume_options.map(|v| control::VolumeOptions {
                            no_copy: v.no_copy,
                            labels: v.labels.unwrap_or_default(),
                            driver: v.driver_config.map(|d| d.name).unwrap_or_default(),
                        }),
                        tmpfs_options: m.tmpfs_options.map(|t| control::TmpfsOptions {
                            size_bytes: t.size_bytes,
                            mode: t.mode,
                        }),
                    })
                    .collect(),
                hostname: c.hostname,
                read_only: c.read_only,
                tty: c.tty,
                placement: t.placement.map(|p| control::Placement {
                    constraints: p.constraints.unwrap_or_default(),
                    spread: p
                        .preferences
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(|p| p.spread.map(|s| s.spread_descriptor))
                        .collect(),
                    max_replicas: p.max_replicas,
                    platforms: p
                        .platforms
                        .unwrap_or_default()
                        .into_iter()
                        .map(|p| control::Platform {
                            os: p.os,
                            architecture: p.architecture,
                        })
                        .collect(),
                }),
                reservations: t
                    .resources
                    .as_ref()
                    .and_then(|r| r.reservations.as_ref())
                    .filter(|r| r.nano_cpus != 0 || r.memory_bytes != 0)
                    .map(|r| control::ResourceLimits {
                        nano_cpus: r.nano_cpus,
                        memory_bytes: r.memory_bytes,
                        pids: 0,
                    }),
                limits: t
                    .resources
                    .and_then(|r| r.limits)
                    .filter(|l| *l != Limits::default())
                    .map(|l| control::ResourceLimits {
                        nano_cpus: l.nano_cpus,
                        memory_bytes: l.memory_bytes,
                        pids: l.pids,
                    }),
                container_labels: c.labels.unwrap_or_default(),
                groups: c.groups.unwrap_or_default(),
                stop_signal: c.stop_signal,
                capability_add: c.capability_add.unwrap_or_default(),
                capability_drop: c.capability_drop.unwrap_or_default(),
                sysctls: c.sysctls.unwrap_or_default(),
                ulimits: c
                    .ulimits
                    .unwrap_or_default()
                    .into_iter()
                    .map(|u| control::Ulimit {
                        name: u.name,
                        soft: u.soft,
                        hard: u.hard,
                    })
                    .collect(),
                hosts: c.hosts.unwrap_or_default(),
                dns_config: c.dns_config.map(|d| control::DnsConfig {
                    nameservers: d.nameservers.unwrap_or_default(),
                    search: d.search.unwrap_or_default(),
                    options: d.options.unwrap_or_default(),
                }),
                healthcheck: c.healthcheck.map(|h| control::HealthConfig {
                    test: h.test.unwrap_or_default(),
                    interval_ns: h.interval,
                    timeout_ns: h.timeout,
                    start_period_ns: h.start_period,
                    retries: h.retries,
                }),
                init: c.init,
                networks: t
                    .networks
                    .unwrap_or_default()
                    .into_iter()
                    .map(|n| control::NetworkAttachmentConfig {
                        target: n.target,
                        aliases: n.aliases.unwrap_or_default(),
                    })
                    .collect(),
                registry_auth: Vec::new(),
            }),
            mode: mode.into(),
            replicas,
            update_config: update_config(self.update_config, "UpdateConfig")?,
            rollback_config: update_config(self.rollback_config, "RollbackConfig")?,
            omitted: Some(omitted),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> ApiResult<control::ServiceSpec> {
        serde_json::from_str::<ServiceSpec>(json).unwrap().into_control()
    }

    #[test]
    fn the_cli_minimal_body_is_one_replica() {
        let spec = parse(
            r#"{"Name":"probe_svc2","Labels":{},"TaskTemplate":{"ContainerSpec":{"Image":"bb:latest","Args":["sleep","3600"],"Init":false,"DNSConfig":{}},"Resources":{"Limits":{},"Reservations":{}},"Placement":{},"ForceUpdate":0},"Mode":{"Replicated":{}},"EndpointSpec":{"Mode":"vip"}}"#,
        )
        .unwrap();
        assert_eq!((spec.mode.as_str(), spec.replicas), ("replicated", 1));
        let task = spec.task.unwrap();
        assert_eq!(task.args, ["sleep", "3600"]);
        assert!(task.restart.is_none());
    }

    #[test]
    fn references_keep_their_targets() {
        let spec = parse(
            r#"{"Name":"s","TaskTemplate":{"ContainerSpec":{"Image":"bb","Secrets":[{"File":{"Name":"/run/sx","UID":"1","GID":"2","Mode":256},"SecretID":"abc","SecretName":"s1"}],"Configs":[{"File":{"Name":"/cfg","UID":"0","GID":"0","Mode":292},"ConfigID":"def","ConfigName":"c1"}]}},"Mode":{"Global":{}}}"#,
        )
        .unwrap();
        assert_eq!(spec.mode, "global");
        let task = spec.task.unwrap();
        assert_eq!(task.secrets[0].id, "abc");
        assert_eq!(task.secrets[0].file.as_ref().unwrap().mode, 0o400);
        assert_eq!(task.configs[0].name, "c1");
    }

    #[test]
    fn what_is_not_built_is_refused_by_name() {
        let spec = parse(
            r#"{"Name":"s","TaskTemplate":{"ContainerSpec":{"Image":"bb"}},"EndpointSpec":{"Mode":"dnsrr","Ports":[{"Protocol":"udp","TargetPort":80,"PublishedPort":18080,"PublishMode":"host"}]}}"#,
        )
        .unwrap();
        let endpoint = spec.endpoint.unwrap();
        assert_eq!(endpoint.mode, "dnsrr");
        let port = &endpoint.ports[0];
        assert_eq!(
            (
                port.protocol.as_str(),
                port.target_port,
                port.published_port,
                port.publish_mode.as_str()
            ),
            ("udp", 80, 18080, "host")
        );
        let spec = parse(
            r#"{"Name":"s","TaskTemplate":{"ContainerSpec":{"Image":"bb"},"Placement":{"Constraints":["node.role==manager"],"Preferences":[{"Spread":{"SpreadDescriptor":"node.labels.zone"}}],"MaxReplicas":2},"Resources":{"Reservations":{"NanoCPUs":500000000,"MemoryBytes":67108864}}}}"#,
        )
        .unwrap();
        let task = spec.task.unwrap();
        let placement = task.placement.unwrap();
        assert_eq!(placement.constraints, ["node.role==manager"]);
        assert_eq!(placement.spread, ["node.labels.zone"]);
        assert_eq!(placement.max_replicas, 2);
        let r = task.reservations.unwrap();
        assert_eq!((r.nano_cpus, r.memory_bytes), (500_000_000, 64 << 20));
        let err = parse(
            r#"{"Name":"s","TaskTemplate":{"ContainerSpec":{"Image":"bb"},"Placement":{"Preferences":[{"Pack":{}}]}}}"#,
        )
        .unwrap_err();
        assert!(
            err.message.contains("placement preferences other than spread"),
            "{}",
            err.message
        );
        let err = parse(
            r#"{"Name":"s","TaskTemplate":{"ContainerSpec":{"Image":"bb","Mounts":[{"Type":"npipe","Target":"/x"}]}}}"#,
        )
        .unwrap_err();
        assert!(err.message.contains("Mounts"), "{}", err.message);
    }

    #[test]
    fn container_options_are_taken() {
        let spec = parse(
            r#"{"Name":"s","TaskTemplate":{"ContainerSpec":{"Image":"bb","Labels":{"a":"b"},"Groups":["audio"],"StopSignal":"SIGUSR1","Hosts":["10.0.0.9 db"],"DNSConfig":{"Nameservers":["10.1.1.1"],"Search":["corp"],"Options":["ndots:2"]},"Sysctls":{"net.ipv4.ip_default_ttl":"42"},"CapabilityAdd":["CAP_NET_ADMIN"],"CapabilityDrop":["CAP_CHOWN"],"Ulimits":[{"Name":"nofile","Soft":10,"Hard":20}],"Privileges":{"CredentialSpec":null,"SELinuxContext":null,"NoNewPrivileges":true}}}}"#,
        )
        .unwrap();
        let t = spec.task.unwrap();
        assert_eq!(t.container_labels["a"], "b");
        assert_eq!((t.groups[0].as_str(), t.stop_signal.as_str()), ("audio", "SIGUSR1"));
        assert_eq!(t.dns_config.unwrap().options, ["ndots:2"]);
        assert_eq!((t.capability_add.len(), t.ulimits[0].hard), (1, 20));
        let err = parse(r#"{"Name":"s","TaskTemplate":{"ContainerSpec":{"Image":"bb","Privileges":{"SELinuxContext":{"User":"u"}}}}}"#)
            .unwrap_err();
        assert_eq!(
            err.message,
            "swarmkeep does not support ContainerSpec.Privileges.SELinuxContext yet"
        );
    }

    #[test]
    fn negative_durations_are_refused() {
        let err =
            parse(r#"{"Name":"s","TaskTemplate":{"ContainerSpec":{"Image":"bb","StopGracePeriod":-1}}}"#).unwrap_err();
        assert_eq!(err.message, "StopGracePeriod must not be negative");
    }
}
