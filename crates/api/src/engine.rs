//! The Docker Engine API JSON shapes (API 1.41) of swarmkeep's objects, as
//! `docker … inspect` prints them. Field order is Docker's.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Serialize;

use crate::control;
use crate::timefmt::rfc3339_nano;

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Version {
    pub index: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SecretSpec {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

#[derive(Serialize)]
pub struct Secret {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Version")]
    pub version: Version,
    #[serde(rename = "CreatedAt")]
    pub created_at: String,
    #[serde(rename = "UpdatedAt")]
    pub updated_at: String,
    #[serde(rename = "Spec")]
    pub spec: SecretSpec,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConfigSpec {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// base64, as Go marshals `[]byte`.
    pub data: String,
}

#[derive(Serialize)]
pub struct Config {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Version")]
    pub version: Version,
    #[serde(rename = "CreatedAt")]
    pub created_at: String,
    #[serde(rename = "UpdatedAt")]
    pub updated_at: String,
    #[serde(rename = "Spec")]
    pub spec: ConfigSpec,
}

fn meta_parts(meta: Option<&control::Meta>) -> (Version, String, String) {
    let index = meta.and_then(|m| m.version.as_ref()).map(|v| v.index).unwrap_or(0);
    (
        Version { index },
        rfc3339_nano(meta.and_then(|m| m.created_at.as_ref())),
        rfc3339_nano(meta.and_then(|m| m.updated_at.as_ref())),
    )
}

fn annotations(a: Option<&control::Annotations>) -> (String, BTreeMap<String, String>) {
    match a {
        Some(a) => (
            a.name.clone(),
            a.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        ),
        None => (String::new(), BTreeMap::new()),
    }
}

impl From<&control::Secret> for Secret {
    fn from(s: &control::Secret) -> Self {
        let (version, created_at, updated_at) = meta_parts(s.meta.as_ref());
        let (name, labels) = annotations(s.spec.as_ref().and_then(|sp| sp.annotations.as_ref()));
        // The payload is never shown: SecretSpec has no data field at all.
        Secret {
            id: s.id.clone(),
            version,
            created_at,
            updated_at,
            spec: SecretSpec { name, labels },
        }
    }
}

impl From<&control::Config> for Config {
    fn from(c: &control::Config) -> Self {
        let (version, created_at, updated_at) = meta_parts(c.meta.as_ref());
        let spec = c.spec.as_ref();
        let (name, labels) = annotations(spec.and_then(|sp| sp.annotations.as_ref()));
        let data = base64::engine::general_purpose::STANDARD.encode(spec.map(|s| s.data.as_slice()).unwrap_or(&[]));
        Config {
            id: c.id.clone(),
            version,
            created_at,
            updated_at,
            spec: ConfigSpec { name, labels, data },
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeSpec {
    pub labels: BTreeMap<String, String>,
    pub role: String,
    pub availability: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Platform {
    pub architecture: String,
    #[serde(rename = "OS")]
    pub os: String,
}

#[derive(Serialize)]
pub struct Resources {
    #[serde(rename = "NanoCPUs")]
    pub nano_cpus: i64,
    #[serde(rename = "MemoryBytes")]
    pub memory_bytes: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EngineDescription {
    pub engine_version: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeDescription {
    pub hostname: String,
    pub platform: Platform,
    pub resources: Resources,
    pub engine: EngineDescription,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeStatus {
    pub state: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    pub addr: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ManagerStatus {
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub leader: bool,
    pub reachability: String,
    pub addr: String,
}

#[derive(Serialize)]
pub struct Node {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Version")]
    pub version: Version,
    #[serde(rename = "CreatedAt")]
    pub created_at: String,
    #[serde(rename = "UpdatedAt")]
    pub updated_at: String,
    #[serde(rename = "Spec")]
    pub spec: NodeSpec,
    #[serde(rename = "Description")]
    pub description: NodeDescription,
    #[serde(rename = "Status")]
    pub status: NodeStatus,
    #[serde(rename = "ManagerStatus", skip_serializing_if = "Option::is_none")]
    pub manager_status: Option<ManagerStatus>,
}

impl From<&control::Node> for Node {
    fn from(n: &control::Node) -> Self {
        let (version, created_at, updated_at) = meta_parts(n.meta.as_ref());
        let spec = n.spec.clone().unwrap_or_default();
        let desc = n.description.clone().unwrap_or_default();
        let status = n.status.clone().unwrap_or_default();
        Node {
            id: n.id.clone(),
            version,
            created_at,
            updated_at,
            spec: NodeSpec {
                labels: annotations(spec.annotations.as_ref()).1,
                role: spec.role,
                availability: spec.availability,
            },
            description: NodeDescription {
                hostname: desc.hostname,
                platform: Platform {
                    architecture: desc.architecture,
                    os: desc.os,
                },
                resources: Resources {
                    nano_cpus: desc.nano_cpus,
                    memory_bytes: desc.memory_bytes,
                },
                engine: EngineDescription {
                    engine_version: desc.engine_version,
                },
            },
            status: NodeStatus {
                state: status.state,
                message: status.message,
                addr: status.addr,
            },
            manager_status: n.manager_status.as_ref().map(|m| ManagerStatus {
                leader: m.leader,
                reachability: m.reachability.clone(),
                addr: m.addr.clone(),
            }),
        }
    }
}

/// `TLSInfo` of the cluster's root CA (`GET /swarm`'s, and every node's:
/// swarmkeep's one root issues every node certificate): the PEM, and the DER subject and
/// public key base64-encoded as Go's `[]byte`.
pub fn tls_info(ca_pem: &str) -> serde_json::Value {
    let (subject, public_key) = x509_parser::pem::parse_x509_pem(ca_pem.as_bytes())
        .ok()
        .and_then(|(_, pem)| {
            let (_, cert) = x509_parser::parse_x509_certificate(&pem.contents).ok()?;
            Some((
                base64::engine::general_purpose::STANDARD.encode(cert.tbs_certificate.subject.as_raw()),
                base64::engine::general_purpose::STANDARD.encode(cert.tbs_certificate.subject_pki.raw),
            ))
        })
        .unwrap_or_default();
    serde_json::json!({
        "TrustRoot": ca_pem,
        "CertIssuerSubject": subject,
        "CertIssuerPublicKey": public_key,
    })
}

/// A node as Docker shows it, with `Description.TLSInfo` (from
/// [`tls_info`] of the cluster's root).
pub fn node_json(node: &control::Node, tls: &serde_json::Value) -> serde_json::Value {
    let mut json = serde_json::to_value(Node::from(node)).unwrap_or_default();
    json["Description"]["TLSInfo"] = tls.clone();
    json
}

/// JSON as Go's `encoding/json` writes it: `<`, `>` and `&` inside strings are
/// escaped (they never occur outside strings in JSON).
pub fn go_escape(json: String) -> String {
    if !json.contains(['<', '>', '&']) {
        return json;
    }
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// A value as `docker inspect` prints a list: indented by four spaces.
pub fn to_inspect_json<T: Serialize>(value: &T) -> String {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    // Serializing these plain structs cannot fail.
    if value.serialize(&mut ser).is_err() {
        return "null".into();
    }
    go_escape(String::from_utf8(out).unwrap_or_default())
}

fn file_refs(refs: &[control::FileReference], id_key: &str, name_key: &str) -> serde_json::Value {
    refs.iter()
        .map(|r| {
            let f = r.file.clone().unwrap_or_default();
            let mut m = serde_json::Map::new();
            m.insert(
                "File".into(),
                serde_json::json!({"Name": f.name, "UID": f.uid, "GID": f.gid, "Mode": f.mode}),
            );
            m.insert(id_key.into(), r.id.clone().into());
            m.insert(name_key.into(), r.name.clone().into());
            serde_json::Value::Object(m)
        })
        .collect()
}

/// Docker's `ContainerSpec` of a task spec; empty lists are left out, as Go's
/// `omitempty` does.
fn container_spec(t: &control::TaskSpec) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    m.insert("Image".into(), t.image.clone().into());
    if !t.container_labels.is_empty() {
        m.insert("Labels".into(), sorted(&t.container_labels));
    }
    if !t.command.is_empty() {
        m.insert("Command".into(), t.command.clone().into());
    }
    if !t.args.is_empty() {
        m.insert("Args".into(), t.args.clone().into());
    }
    if !t.hostname.is_empty() {
        m.insert("Hostname".into(), t.hostname.clone().into());
    }
    if !t.env.is_empty() {
        m.insert("Env".into(), t.env.clone().into());
    }
    if !t.workdir.is_empty() {
        m.insert("Dir".into(), t.workdir.clone().into());
    }
    if !t.user.is_empty() {
        m.insert("User".into(), t.user.clone().into());
    }
    if !t.groups.is_empty() {
        m.insert("Groups".into(), t.groups.clone().into());
    }
    if let Some(init) = t.init {
        m.insert("Init".into(), init.into());
    }
    if t.tty {
        m.insert("TTY".into(), true.into());
    }
    if !t.stop_signal.is_empty() {
        m.insert("StopSignal".into(), t.stop_signal.clone().into());
    }
    if t.read_only {
        m.insert("ReadOnly".into(), true.into());
    }
    if !t.mounts.is_empty() {
        let mounts: Vec<serde_json::Value> = t
            .mounts
            .iter()
            .map(|x| {
                let mut o = serde_json::json!({"Type": x.r#type});
                if !x.source.is_empty() {
                    o["Source"] = x.source.clone().into();
                }
                o["Target"] = x.target.clone().into();
                if x.read_only {
                    o["ReadOnly"] = true.into();
                }
                if let Some(v) = &x.volume_options {
                    let mut vo = serde_json::Map::new();
                    if v.no_copy {
                        vo.insert("NoCopy".into(), true.into());
                    }
                    if !v.labels.is_empty() {
                        vo.insert("Labels".into(), sorted(&v.labels));
                    }
                    let driver = if v.driver.is_empty() {
                        serde_json::json!({})
                    } else {
                        serde_json::json!({"Name": v.driver})
                    };
                    vo.insert("DriverConfig".into(), driver);
                    o["VolumeOptions"] = vo.into();
                }
                if let Some(t) = &x.tmpfs_options {
                    let mut to = serde_json::Map::new();
                    if t.size_bytes != 0 {
                        to.insert("SizeBytes".into(), t.size_bytes.into());
                    }
                    if t.mode != 0 {
                        to.insert("Mode".into(), t.mode.into());
                    }
                    o["TmpfsOptions"] = to.into();
                }
                o
            })
            .collect();
        m.insert("Mounts".into(), mounts.into());
    }
    m.insert("StopGracePeriod".into(), t.stop_grace_period_ns.into());
    if let Some(h) = &t.healthcheck {
        let mut hc = serde_json::Map::new();
        if !h.test.is_empty() {
            hc.insert("Test".into(), h.test.clone().into());
        }
        for (k, v) in [
            ("Interval", h.interval_ns),
            ("Timeout", h.timeout_ns),
            ("StartPeriod", h.start_period_ns),
            ("Retries", i64::from(h.retries)),
        ] {
            if v != 0 {
                hc.insert(k.into(), v.into());
            }
        }
        m.insert("Healthcheck".into(), hc.into());
    }
    if !t.hosts.is_empty() {
        m.insert("Hosts".into(), t.hosts.clone().into());
    }
    let dns = t.dns_config.clone().unwrap_or_default();
    let mut dns_json = serde_json::Map::new();
    for (k, v) in [
        ("Nameservers", dns.nameservers),
        ("Search", dns.search),
        ("Options", dns.options),
    ] {
        if !v.is_empty() {
            dns_json.insert(k.into(), v.into());
        }
    }
    m.insert("DNSConfig".into(), dns_json.into());
    if !t.secrets.is_empty() {
        m.insert("Secrets".into(), file_refs(&t.secrets, "SecretID", "SecretName"));
    }
    if !t.configs.is_empty() {
        m.insert("Configs".into(), file_refs(&t.configs, "ConfigID", "ConfigName"));
    }
    m.insert("Isolation".into(), "default".into());
    if !t.sysctls.is_empty() {
        m.insert("Sysctls".into(), sorted(&t.sysctls));
    }
    if !t.capability_add.is_empty() {
        m.insert("CapabilityAdd".into(), t.capability_add.clone().into());
    }
    if !t.capability_drop.is_empty() {
        m.insert("CapabilityDrop".into(), t.capability_drop.clone().into());
    }
    if !t.ulimits.is_empty() {
        let ulimits: Vec<serde_json::Value> = t
            .ulimits
            .iter()
            .map(|u| serde_json::json!({"Name": u.name, "Hard": u.hard, "Soft": u.soft}))
            .collect();
        m.insert("Ulimits".into(), ulimits.into());
    }
    serde_json::Value::Object(m)
}

/// A string map as a JSON object with its keys in order (Go's encoding).
fn sorted(map: &std::collections::HashMap<String, String>) -> serde_json::Value {
    let ordered: std::collections::BTreeMap<&String, &String> = map.iter().collect();
    serde_json::json!(ordered)
}

/// Docker's `Limit`, zero fields left out (`omitempty`).
fn limits_json(l: Option<&control::ResourceLimits>) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    if let Some(l) = l {
        for (k, v) in [
            ("NanoCPUs", l.nano_cpus),
            ("MemoryBytes", l.memory_bytes),
            ("Pids", l.pids),
        ] {
            if v != 0 {
                m.insert(k.into(), v.into());
            }
        }
    }
    serde_json::Value::Object(m)
}

/// Docker's `Placement`, its empty parts left out.
fn placement_json(p: Option<&control::Placement>) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    if let Some(p) = p {
        if !p.constraints.is_empty() {
            m.insert("Constraints".into(), serde_json::json!(p.constraints));
        }
        if !p.spread.is_empty() {
            let prefs: Vec<serde_json::Value> = p
                .spread
                .iter()
                .map(|d| serde_json::json!({"Spread": {"SpreadDescriptor": d}}))
                .collect();
            m.insert("Preferences".into(), prefs.into());
        }
        if p.max_replicas > 0 {
            m.insert("MaxReplicas".into(), p.max_replicas.into());
        }
        if !p.platforms.is_empty() {
            let platforms: Vec<serde_json::Value> = p
                .platforms
                .iter()
                .map(|p| serde_json::json!({"Architecture": p.architecture, "OS": p.os}))
                .collect();
            m.insert("Platforms".into(), platforms.into());
        }
    }
    serde_json::Value::Object(m)
}

fn task_template(t: &control::TaskSpec) -> serde_json::Value {
    let restart = t.restart.clone().unwrap_or_default();
    let mut out = serde_json::json!({
        "ContainerSpec": container_spec(t),
        "Resources": {
            "Limits": limits_json(t.limits.as_ref()),
            "Reservations": limits_json(t.reservations.as_ref()),
        },
        "RestartPolicy": {
            "Condition": restart.condition,
            "Delay": restart.delay_ns,
            "MaxAttempts": restart.max_attempts,
        },
        "Placement": placement_json(t.placement.as_ref()),
    });
    if restart.window_ns > 0 {
        out["RestartPolicy"]["Window"] = serde_json::json!(restart.window_ns);
    }
    if !t.networks.is_empty() {
        let networks: Vec<serde_json::Value> = t
            .networks
            .iter()
            .map(|n| {
                let mut m = serde_json::json!({"Target": n.target});
                if !n.aliases.is_empty() {
                    m["Aliases"] = serde_json::json!(n.aliases);
                }
                m
            })
            .collect();
        out["Networks"] = serde_json::Value::Array(networks);
    }
    out["ForceUpdate"] = serde_json::json!(t.force_update);
    out["Runtime"] = serde_json::json!("container");
    out
}

/// Swarm's default `UpdateConfig` (and `RollbackConfig`), for a spec that
/// has none.
pub fn default_update_config() -> control::UpdateConfig {
    control::UpdateConfig {
        parallelism: 1,
        delay_ns: 0,
        failure_action: "pause".into(),
        monitor_ns: 5_000_000_000,
        max_failure_ratio: 0.0,
        order: "stop-first".into(),
    }
}

fn update_config_json(c: Option<&control::UpdateConfig>) -> serde_json::Value {
    let c = c.cloned().unwrap_or_else(default_update_config);
    let mut m = serde_json::Map::new();
    m.insert("Parallelism".into(), c.parallelism.into());
    if c.delay_ns != 0 {
        m.insert("Delay".into(), c.delay_ns.into());
    }
    m.insert("FailureAction".into(), c.failure_action.into());
    if c.monitor_ns != 0 {
        m.insert("Monitor".into(), c.monitor_ns.into());
    }
    // Go prints a whole float without a fraction; f32 → shortest decimal.
    let ratio = if c.max_failure_ratio == 0.0 {
        serde_json::Value::from(0)
    } else {
        c.max_failure_ratio
            .to_string()
            .parse::<f64>()
            .map(serde_json::Value::from)
            .unwrap_or_default()
    };
    m.insert("MaxFailureRatio".into(), ratio);
    m.insert("Order".into(), c.order.into());
    serde_json::Value::Object(m)
}

/// Docker's `ServiceSpec` of a spec.
pub fn service_spec_json(spec: &control::ServiceSpec) -> serde_json::Value {
    let (name, labels) = annotations(spec.annotations.as_ref());
    let mode = match spec.mode.as_str() {
        "global" => serde_json::json!({"Global": {}}),
        "global-job" => serde_json::json!({"GlobalJob": {}}),
        "replicated-job" => serde_json::json!({"ReplicatedJob": {
            "MaxConcurrent": spec.max_concurrent,
            "TotalCompletions": spec.replicas,
        }}),
        _ => serde_json::json!({"Replicated": {"Replicas": spec.replicas}}),
    };
    serde_json::json!({
        "Name": name,
        "Labels": labels,
        "TaskTemplate": task_template(&spec.task.clone().unwrap_or_default()),
        "Mode": mode,
        "UpdateConfig": update_config_json(spec.update_config.as_ref()),
        "RollbackConfig": update_config_json(spec.rollback_config.as_ref()),
        "EndpointSpec": endpoint_spec_json(spec.endpoint.as_ref()),
    })
}

/// Docker's `EndpointSpec`: the mode, and the ports when there are any.
fn endpoint_spec_json(e: Option<&control::EndpointSpec>) -> serde_json::Value {
    let e = e.cloned().unwrap_or_default();
    let mut m = serde_json::Map::new();
    m.insert(
        "Mode".into(),
        if e.mode.is_empty() { "vip".into() } else { e.mode.into() },
    );
    if !e.ports.is_empty() {
        m.insert("Ports".into(), e.ports.iter().map(port_json).collect());
    }
    serde_json::Value::Object(m)
}

/// Docker's `PortConfig` (an empty name left out).
pub fn port_json(p: &control::PortConfig) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    if !p.name.is_empty() {
        m.insert("Name".into(), p.name.clone().into());
    }
    m.insert("Protocol".into(), p.protocol.clone().into());
    m.insert("TargetPort".into(), p.target_port.into());
    m.insert("PublishedPort".into(), p.published_port.into());
    m.insert("PublishMode".into(), p.publish_mode.clone().into());
    serde_json::Value::Object(m)
}

/// Docker's `Endpoint` of a service: `{"Spec": {}}` until something is
/// allocated (as Swarm shows it), then the spec, the ports with their
/// published numbers and the virtual IPs.
fn endpoint_json(s: &control::Service) -> serde_json::Value {
    let e = s.endpoint.clone().unwrap_or_default();
    if e.ports.is_empty() && e.virtual_ips.is_empty() {
        return serde_json::json!({"Spec": {}});
    }
    let spec = s.spec.as_ref().and_then(|s| s.endpoint.as_ref());
    let mut m = serde_json::Map::new();
    m.insert("Spec".into(), endpoint_spec_json(spec));
    if !e.ports.is_empty() {
        m.insert("Ports".into(), e.ports.iter().map(port_json).collect());
    }
    if !e.virtual_ips.is_empty() {
        let vips: Vec<serde_json::Value> = e
            .virtual_ips
            .iter()
            .map(|v| serde_json::json!({"NetworkID": v.network_id, "Addr": v.addr}))
            .collect();
        m.insert("VirtualIPs".into(), vips.into());
    }
    serde_json::Value::Object(m)
}

/// A network as swarm objects carry it (`swarm.Network`: a task's
/// `NetworksAttachments`).
pub fn swarm_network_json(n: &control::Network) -> serde_json::Value {
    let (version, created_at, updated_at) = meta_parts(n.meta.as_ref());
    let spec = n.spec.clone().unwrap_or_default();
    let (name, labels) = annotations(spec.annotations.as_ref());
    let mut spec_json = serde_json::json!({
        "Name": name,
        "Labels": labels,
        "DriverConfiguration": {"Name": spec.driver},
        "Scope": "swarm",
    });
    if spec.ingress {
        spec_json["Ingress"] = true.into();
    }
    if spec.attachable {
        spec_json["Attachable"] = true.into();
    }
    if spec.internal {
        spec_json["Internal"] = true.into();
    }
    let mut m = serde_json::json!({
        "ID": n.id,
        "Version": {"Index": version.index},
        "CreatedAt": created_at,
        "UpdatedAt": updated_at,
        "Spec": spec_json,
    });
    if let Some(a) = &n.allocation {
        m["DriverState"] = serde_json::json!({
            "Name": spec.driver,
            "Options": {"com.docker.network.driver.overlay.vxlanid_list": a.vni.to_string()},
        });
        m["IPAMOptions"] = serde_json::json!({
            "Driver": {"Name": "default"},
            "Configs": [{"Subnet": a.subnet, "Gateway": a.gateway}],
        });
    }
    m
}

/// A service as `docker service inspect` prints it (`insertDefaults=true`).
pub fn service_json(s: &control::Service) -> serde_json::Value {
    service_json_with(s, true)
}

/// The spec as dockerd shows it: as stored — the sections a Docker API
/// request left out stay out — unless `insert_defaults` (the query's
/// `insertDefaults=true`) asks for Swarm's defaults in their place. A
/// `RestartPolicy.Window` that was given is shown, even when 0.
fn spec_as_stored(spec: &control::ServiceSpec, insert_defaults: bool) -> serde_json::Value {
    let mut out = service_spec_json(spec);
    let omitted = spec.omitted.unwrap_or_default();
    if omitted.restart_window_given
        && let Some(restart) = out["TaskTemplate"]["RestartPolicy"].as_object_mut()
    {
        let window = spec
            .task
            .as_ref()
            .and_then(|t| t.restart.as_ref())
            .map_or(0, |r| r.window_ns);
        restart.insert("Window".into(), window.into());
    }
    if insert_defaults {
        return out;
    }
    let remove = |v: &mut serde_json::Value, key: &str, omitted: bool| {
        if let (true, Some(m)) = (omitted, v.as_object_mut()) {
            m.remove(key);
        }
    };
    remove(&mut out, "UpdateConfig", omitted.update_config);
    remove(&mut out, "RollbackConfig", omitted.rollback_config);
    let task = &mut out["TaskTemplate"];
    remove(task, "RestartPolicy", omitted.restart_policy);
    remove(task, "Resources", omitted.resources);
    remove(task, "Placement", omitted.placement);
    let container = &mut task["ContainerSpec"];
    remove(container, "StopGracePeriod", omitted.stop_grace_period);
    remove(container, "DNSConfig", omitted.dns_config);
    out
}

/// [`service_json`], with Swarm's defaults in the left-out sections only if
/// `insert_defaults`.
pub fn service_json_with(s: &control::Service, insert_defaults: bool) -> serde_json::Value {
    let (version, created_at, updated_at) = meta_parts(s.meta.as_ref());
    let mut m = serde_json::Map::new();
    m.insert("ID".into(), s.id.clone().into());
    m.insert("Version".into(), serde_json::json!({"Index": version.index}));
    m.insert("CreatedAt".into(), created_at.into());
    m.insert("UpdatedAt".into(), updated_at.into());
    m.insert(
        "Spec".into(),
        spec_as_stored(&s.spec.clone().unwrap_or_default(), insert_defaults),
    );
    if let Some(prev) = &s.previous_spec {
        m.insert("PreviousSpec".into(), spec_as_stored(prev, insert_defaults));
    }
    m.insert("Endpoint".into(), endpoint_json(s));
    if let Some(u) = &s.update_status {
        let mut st = serde_json::Map::new();
        st.insert("State".into(), u.state.clone().into());
        st.insert("StartedAt".into(), rfc3339_nano(u.started_at.as_ref()).into());
        if u.completed_at.is_some() {
            st.insert("CompletedAt".into(), rfc3339_nano(u.completed_at.as_ref()).into());
        }
        st.insert("Message".into(), u.message.clone().into());
        m.insert("UpdateStatus".into(), serde_json::Value::Object(st));
    }
    serde_json::Value::Object(m)
}

/// A task as `docker inspect <task>` prints it.
pub fn task_json(t: &control::Task) -> serde_json::Value {
    let (version, created_at, updated_at) = meta_parts(t.meta.as_ref());
    let status = t.status.clone().unwrap_or_default();
    let mut st = serde_json::Map::new();
    st.insert("Timestamp".into(), rfc3339_nano(status.timestamp.as_ref()).into());
    st.insert("State".into(), status.state.clone().into());
    st.insert("Message".into(), status.message.clone().into());
    if !status.err.is_empty() {
        st.insert("Err".into(), status.err.clone().into());
    }
    if status.pid.is_some() || status.exit_code.is_some() {
        st.insert(
            "ContainerStatus".into(),
            serde_json::json!({
                "ContainerID": crate::naming::container_id(&t.id),
                "PID": status.pid.unwrap_or(0),
                "ExitCode": status.exit_code.unwrap_or(0)
            }),
        );
    }
    // Docker's PortStatus: `{}`, or the host-mode ports the task publishes.
    let ports: Vec<serde_json::Value> = status.port_status.iter().map(port_json).collect();
    st.insert(
        "PortStatus".into(),
        if ports.is_empty() {
            serde_json::json!({})
        } else {
            serde_json::json!({ "Ports": ports })
        },
    );
    let mut m = serde_json::Map::new();
    m.insert("ID".into(), t.id.clone().into());
    m.insert("Version".into(), serde_json::json!({"Index": version.index}));
    m.insert("CreatedAt".into(), created_at.into());
    m.insert("UpdatedAt".into(), updated_at.into());
    m.insert("Labels".into(), serde_json::json!({}));
    m.insert("Spec".into(), task_template(&t.spec.clone().unwrap_or_default()));
    m.insert("ServiceID".into(), t.service_id.clone().into());
    if t.slot > 0 {
        m.insert("Slot".into(), t.slot.into());
    }
    if !t.node_id.is_empty() {
        m.insert("NodeID".into(), t.node_id.clone().into());
    }
    m.insert("Status".into(), serde_json::Value::Object(st));
    m.insert("DesiredState".into(), t.desired_state.clone().into());
    let attachments: Vec<serde_json::Value> = t
        .networks
        .iter()
        .filter(|a| !a.addresses.is_empty())
        .filter_map(|a| a.network.as_ref().map(|n| (n, a)))
        .map(|(n, a)| serde_json::json!({"Network": swarm_network_json(n), "Addresses": a.addresses}))
        .collect();
    if !attachments.is_empty() {
        m.insert("NetworksAttachments".into(), attachments.into());
    }
    serde_json::Value::Object(m)
}

/// A network's name (empty if the spec is missing).
pub fn network_name(n: &control::Network) -> &str {
    n.spec
        .as_ref()
        .and_then(|s| s.annotations.as_ref())
        .map(|a| a.name.as_str())
        .unwrap_or("")
}

/// One of the networks every swarm has (swarmkit's predefined label).
pub fn network_is_predefined(n: &control::Network) -> bool {
    n.spec
        .as_ref()
        .and_then(|s| s.annotations.as_ref())
        .and_then(|a| a.labels.get("com.docker.swarm.predefined"))
        .is_some_and(|v| v == "true")
}

/// A predefined network is the node's own (Docker lists `host` as local).
pub fn network_scope(n: &control::Network) -> &'static str {
    if network_is_predefined(n) { "local" } else { "swarm" }
}

/// dockerd's network list filters over `(key, value)` pairs: `name` and `id`
/// match a part, `type` is `builtin` or `custom`, a builtin network is never
/// dangling; values of one key are OR-ed, keys AND-ed, labels (`key` or
/// `key=value`) all required.
pub fn network_matches(n: &control::Network, filters: &[(String, String)]) -> bool {
    let spec = n.spec.clone().unwrap_or_default();
    let labels = spec.annotations.clone().unwrap_or_default().labels;
    let one = |key: &str, v: &str| match key {
        "name" => network_name(n).contains(v),
        "id" => n.id.contains(v),
        "driver" => spec.driver == v,
        "scope" => network_scope(n) == v,
        "type" => (v == "builtin") == network_is_predefined(n),
        "dangling" => matches!(v, "false" | "0"),
        "label" => {
            let (lk, lv) = v.split_once('=').unwrap_or((v, ""));
            labels.get(lk).is_some_and(|have| lv.is_empty() || have == lv)
        }
        _ => false,
    };
    filters.iter().all(|(key, _)| {
        let mut values = filters.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str());
        if key == "label" {
            values.all(|v| one(key, v))
        } else {
            values.any(|v| one(key, v))
        }
    })
}

/// `docker network inspect`'s shape.
pub fn network_json(n: &control::Network) -> serde_json::Value {
    let spec = n.spec.clone().unwrap_or_default();
    let labels: BTreeMap<String, String> = spec
        .annotations
        .clone()
        .unwrap_or_default()
        .labels
        .into_iter()
        .collect();
    let created = rfc3339_nano(n.meta.as_ref().and_then(|m| m.created_at.as_ref()));
    let (config, options) = match &n.allocation {
        Some(a) => {
            let mut c = serde_json::json!({"Subnet": a.subnet, "Gateway": a.gateway});
            if !a.range.is_empty() {
                c["IPRange"] = a.range.clone().into();
            }
            (
                serde_json::json!([c]),
                serde_json::json!({"com.docker.network.driver.overlay.vxlanid_list": a.vni.to_string()}),
            )
        }
        None => (serde_json::json!([]), serde_json::json!({})),
    };
    serde_json::json!({
        "Name": network_name(n),
        "Id": n.id,
        "Created": created,
        "Scope": network_scope(n),
        "Driver": spec.driver,
        "EnableIPv6": false,
        "IPAM": {"Driver": "default", "Options": null, "Config": config},
        "Internal": spec.internal,
        "Attachable": spec.attachable,
        "Ingress": spec.ingress,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": {},
        "Options": options,
        "Labels": labels,
    })
}
