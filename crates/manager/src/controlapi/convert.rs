//! Services and tasks between the control API's messages and the store's
//! objects, validating at the door what a spec may ask for (names, images,
//! modes, rollout settings, secret and config references and their targets).

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;
use swarmkeep_api::control;
use swarmkeep_api::errors::rpc;
use swarmkeep_api::targets::effective_target;
use swarmkeep_api::timefmt::{to_datetime, to_timestamp};
use swarmkeep_store::ClusterState;
use swarmkeep_store::objects::{
    EndpointMode, EndpointSpec, FailureAction, FileReference, Mount, MountKind, NetworkAttachmentConfig, Placement,
    PortConfig, PublishMode, ResourceLimits, RestartCondition, RestartPolicy, Service, ServiceMode, ServiceSpec,
    SpecOmitted, Task, TaskSpec, TaskState, TaskStatus, UpdateConfig, UpdateOrder,
};
use tonic::{Code, Status};

use super::common::{annotations_from_proto, annotations_to_proto, meta_to_proto};

/// The most replicas one service may ask for: the orchestrator writes a
/// service's new tasks in one raft entry, which must stay a sane size.
pub const MAX_REPLICAS: u64 = 10_000;

/// swarmkit's rule for service names: a DNS name component.
static SERVICE_NAME_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-zA-Z0-9](?:[-_]*[A-Za-z0-9]+)*$").expect("valid regex"));

pub(crate) fn refs_to_proto(refs: &[FileReference]) -> Vec<control::FileReference> {
    refs.iter()
        .map(|r| control::FileReference {
            id: r.id.clone(),
            name: r.name.clone(),
            file: Some(control::FileTarget {
                name: r.target.clone(),
                uid: r.uid.clone(),
                gid: r.gid.clone(),
                mode: r.mode,
            }),
        })
        .collect()
}

pub fn task_spec_to_proto(t: &TaskSpec) -> control::TaskSpec {
    let mut out = control::TaskSpec {
        image: t.image.clone(),
        command: t.command.clone(),
        args: t.args.clone(),
        env: t.env.clone(),
        workdir: t.workdir.clone(),
        user: t.user.clone(),
        secrets: refs_to_proto(&t.secrets),
        configs: refs_to_proto(&t.configs),
        restart: Some(control::RestartPolicy {
            condition: match t.restart.condition {
                RestartCondition::None => "none",
                RestartCondition::OnFailure => "on-failure",
                RestartCondition::Any => "any",
            }
            .into(),
            delay_ns: t.restart.delay_ns,
            max_attempts: t.restart.max_attempts,
            window_ns: t.restart.window_ns,
        }),
        stop_grace_period_ns: t.stop_grace_period_ns,
        force_update: t.force_update,
        networks: t
            .networks
            .iter()
            .map(|n| control::NetworkAttachmentConfig {
                target: n.target.clone(),
                aliases: n.aliases.clone(),
            })
            .collect(),
        mounts: t
            .mounts
            .iter()
            .map(|m| control::Mount {
                r#type: match m.kind {
                    MountKind::Bind => "bind",
                    MountKind::Volume => "volume",
                    MountKind::Tmpfs => "tmpfs",
                }
                .into(),
                source: m.source.clone(),
                target: m.target.clone(),
                read_only: m.read_only,
                volume_options: (m.kind == MountKind::Volume).then(|| control::VolumeOptions {
                    no_copy: m.no_copy,
                    labels: m.volume_labels.clone().into_iter().collect(),
                    driver: m.volume_driver.clone(),
                }),
                tmpfs_options: (m.kind == MountKind::Tmpfs).then_some(control::TmpfsOptions {
                    size_bytes: m.tmpfs_size,
                    mode: m.tmpfs_mode,
                }),
            })
            .collect(),
        hostname: t.hostname.clone(),
        read_only: t.read_only,
        tty: t.tty,
        limits: (t.limits != ResourceLimits::default()).then_some(control::ResourceLimits {
            nano_cpus: t.limits.nano_cpus,
            memory_bytes: t.limits.memory_bytes,
            pids: t.limits.pids,
        }),
        placement: (t.placement != Placement::default()).then(|| control::Placement {
            constraints: t.placement.constraints.clone(),
            spread: t.placement.spread.clone(),
            max_replicas: t.placement.max_replicas,
            platforms: t
                .placement
                .platforms
                .iter()
                .map(|(os, architecture)| control::Platform {
                    os: os.clone(),
                    architecture: architecture.clone(),
                })
                .collect(),
        }),
        reservations: (t.reservations != ResourceLimits::default()).then_some(control::ResourceLimits {
            nano_cpus: t.reservations.nano_cpus,
            memory_bytes: t.reservations.memory_bytes,
            pids: 0,
        }),
        ..Default::default()
    };
    super::sandbox::options_to_proto(t, &mut out);
    out
}

/// `Placement` as swarmkit checks it: constraints that parse, `spread`
/// over a label, `MaxReplicas` only for a replicated service.
fn placement_from_proto(p: Option<control::Placement>, global: bool) -> Result<Placement, Status> {
    let Some(p) = p else {
        return Ok(Placement::default());
    };
    for c in &p.constraints {
        swarmkeep_scheduler::placement::Constraint::parse(c).map_err(|e| rpc(Code::InvalidArgument, e))?;
    }
    for d in &p.spread {
        let lower = d.to_ascii_lowercase();
        if !(lower.starts_with("node.labels.") || lower.starts_with("engine.labels.")) || d.ends_with('.') {
            return Err(rpc(
                Code::InvalidArgument,
                format!(
                    "invalid placement preference: spread over {d:?}: only node.labels.* and engine.labels.* can be spread over"
                ),
            ));
        }
    }
    if global && p.max_replicas > 0 {
        return Err(rpc(
            Code::InvalidArgument,
            "replicas-max-per-node can only be used with replicated mode",
        ));
    }
    Ok(Placement {
        constraints: p.constraints,
        spread: p.spread,
        max_replicas: p.max_replicas,
        platforms: p.platforms.into_iter().map(|p| (p.os, p.architecture)).collect(),
    })
}

/// Swarm's checks of `Resources.Limits` (the messages are swarmkit's).
fn limits_from_proto(limits: Option<control::ResourceLimits>) -> Result<ResourceLimits, Status> {
    let Some(l) = limits else {
        return Ok(ResourceLimits::default());
    };
    if l.nano_cpus != 0 && l.nano_cpus < 1_000_000 {
        return Err(rpc(
            Code::InvalidArgument,
            format!("invalid cpu value {}: Must be at least 0.001", l.nano_cpus as f64 / 1e9),
        ));
    }
    if l.memory_bytes != 0 && l.memory_bytes < 4 * 1024 * 1024 {
        return Err(rpc(
            Code::InvalidArgument,
            format!("invalid memory value {}: Must be at least 4MiB", l.memory_bytes),
        ));
    }
    if l.pids < 0 {
        return Err(rpc(
            Code::InvalidArgument,
            format!("invalid pids value {}: Must not be negative", l.pids),
        ));
    }
    Ok(ResourceLimits {
        nano_cpus: l.nano_cpus,
        memory_bytes: l.memory_bytes,
        pids: l.pids,
    })
}

/// A hostname as the kernel takes it (at most 64 bytes, no NUL or '/').
fn hostname_from_proto(h: String) -> Result<String, Status> {
    if h.len() > 64 || h.contains(['\0', '/']) || h.chars().any(char::is_whitespace) {
        return Err(rpc(Code::InvalidArgument, format!("invalid hostname {h:?}")));
    }
    Ok(h)
}

/// A local volume's name as Docker's local driver takes it.
static VOLUME_NAME_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$").expect("valid regex"));

/// A service's mounts, as Docker checks them at the door (its messages).
fn mounts_from_proto(mounts: Vec<control::Mount>) -> Result<Vec<Mount>, Status> {
    let mut out: Vec<Mount> = Vec::new();
    for m in mounts {
        let kind = match m.r#type.as_str() {
            "bind" => MountKind::Bind,
            "volume" => MountKind::Volume,
            "tmpfs" => MountKind::Tmpfs,
            "npipe" | "cluster" => {
                return Err(rpc(
                    Code::InvalidArgument,
                    format!("mount type {:?} is not supported by swarmkeep yet", m.r#type),
                ));
            }
            other => return Err(rpc(Code::InvalidArgument, format!("invalid mount type: {other:?}"))),
        };
        let invalid = |why: String| {
            rpc(
                Code::InvalidArgument,
                format!("invalid mount config for type {:?}: {why}", m.r#type),
            )
        };
        if !m.target.starts_with('/') {
            return Err(invalid(format!(
                "invalid mount target: '{}' mount path must be absolute",
                m.target
            )));
        }
        if m.target.trim_end_matches('/').is_empty() {
            return Err(rpc(
                Code::InvalidArgument,
                "invalid specification: destination can't be '/'",
            ));
        }
        if m.target.split('/').any(|c| c == "..") || m.target.contains('\0') {
            return Err(invalid(format!("{} climbs with \"..\"", m.target)));
        }
        if kind == MountKind::Bind && m.source.split('/').any(|c| c == "..") {
            return Err(invalid(format!("{} climbs with \"..\"", m.source)));
        }
        if kind != MountKind::Volume && m.volume_options.is_some() {
            return Err(invalid("field VolumeOptions must not be specified".into()));
        }
        if kind != MountKind::Tmpfs && m.tmpfs_options.is_some() {
            return Err(invalid("field TmpfsOptions must not be specified".into()));
        }
        match kind {
            MountKind::Bind if m.source.is_empty() => {
                return Err(invalid("field Source must not be empty".into()));
            }
            MountKind::Bind if !m.source.starts_with('/') => {
                return Err(invalid(format!(
                    "invalid mount path: '{}' mount path must be absolute",
                    m.source
                )));
            }
            MountKind::Volume if !m.source.is_empty() && !VOLUME_NAME_RE.is_match(&m.source) => {
                return Err(invalid(format!(
                    "{:?} includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path",
                    m.source
                )));
            }
            MountKind::Tmpfs if !m.source.is_empty() => {
                return Err(invalid("field Source must not be specified".into()));
            }
            _ => {}
        }
        let volume = m.volume_options.unwrap_or_default();
        if !volume.driver.is_empty() && volume.driver != "local" {
            return Err(invalid(format!(
                "volume driver {:?}: swarmkeep has only the \"local\" driver",
                volume.driver
            )));
        }
        let tmpfs = m.tmpfs_options.unwrap_or_default();
        if tmpfs.size_bytes < 0 {
            return Err(invalid(format!("invalid tmpfs size {}", tmpfs.size_bytes)));
        }
        if tmpfs.mode > 0o7777 {
            return Err(invalid(format!("invalid tmpfs mode {:o}", tmpfs.mode)));
        }
        if out.iter().any(|o| o.target == m.target) {
            return Err(rpc(
                Code::InvalidArgument,
                format!("Duplicate mount point: {}", m.target),
            ));
        }
        out.push(Mount {
            kind,
            source: m.source,
            target: m.target,
            read_only: m.read_only,
            no_copy: volume.no_copy,
            volume_labels: volume.labels.into_iter().collect(),
            volume_driver: volume.driver,
            tmpfs_size: tmpfs.size_bytes,
            tmpfs_mode: tmpfs.mode,
        });
    }
    Ok(out)
}

pub(crate) fn update_config_to_proto(c: &UpdateConfig) -> control::UpdateConfig {
    control::UpdateConfig {
        parallelism: c.parallelism,
        delay_ns: c.delay_ns,
        failure_action: match c.failure_action {
            FailureAction::Pause => "pause",
            FailureAction::Continue => "continue",
            FailureAction::Rollback => "rollback",
        }
        .into(),
        monitor_ns: c.monitor_ns,
        max_failure_ratio: c.max_failure_ratio,
        order: match c.order {
            UpdateOrder::StopFirst => "stop-first",
            UpdateOrder::StartFirst => "start-first",
        }
        .into(),
    }
}

pub(crate) fn update_config_from_proto(kind: &str, c: Option<control::UpdateConfig>) -> Result<UpdateConfig, Status> {
    let Some(c) = c else {
        return Ok(UpdateConfig::default());
    };
    let failure_action = match c.failure_action.as_str() {
        "" | "pause" => FailureAction::Pause,
        "continue" => FailureAction::Continue,
        "rollback" if kind == "UpdateConfig" => FailureAction::Rollback,
        other => {
            return Err(rpc(
                Code::InvalidArgument,
                format!("{kind}: invalid failure action {other:?}"),
            ));
        }
    };
    let order = match c.order.as_str() {
        "" | "stop-first" => UpdateOrder::StopFirst,
        "start-first" => UpdateOrder::StartFirst,
        other => return Err(rpc(Code::InvalidArgument, format!("{kind}: invalid order {other:?}"))),
    };
    if !(0.0..=1.0).contains(&c.max_failure_ratio) {
        return Err(rpc(
            Code::InvalidArgument,
            format!("{kind}: max failure ratio must be between 0 and 1"),
        ));
    }
    Ok(UpdateConfig {
        parallelism: c.parallelism,
        delay_ns: c.delay_ns,
        failure_action,
        monitor_ns: c.monitor_ns,
        max_failure_ratio: c.max_failure_ratio,
        order,
    })
}

pub(crate) fn spec_to_proto(spec: &ServiceSpec) -> control::ServiceSpec {
    let (mode, replicas, max_concurrent) = match spec.mode {
        ServiceMode::Replicated { replicas } => ("replicated", replicas, 0),
        ServiceMode::Global => ("global", 0, 0),
        ServiceMode::ReplicatedJob {
            max_concurrent,
            total_completions,
        } => ("replicated-job", total_completions, max_concurrent),
        ServiceMode::GlobalJob => ("global-job", 0, 0),
    };
    control::ServiceSpec {
        annotations: Some(annotations_to_proto(&spec.annotations)),
        task: Some(task_spec_to_proto(&spec.task)),
        mode: mode.into(),
        replicas,
        update_config: Some(update_config_to_proto(&spec.update_config)),
        rollback_config: Some(update_config_to_proto(&spec.rollback_config)),
        max_concurrent,
        endpoint: Some(endpoint_to_proto(&spec.endpoint)),
        omitted: Some(control::SpecOmitted {
            update_config: spec.omitted.update_config,
            rollback_config: spec.omitted.rollback_config,
            restart_policy: spec.omitted.restart_policy,
            resources: spec.omitted.resources,
            placement: spec.omitted.placement,
            stop_grace_period: spec.omitted.stop_grace_period,
            dns_config: spec.omitted.dns_config,
            restart_window_given: spec.omitted.restart_window_given,
        }),
    }
}

fn endpoint_to_proto(e: &EndpointSpec) -> control::EndpointSpec {
    control::EndpointSpec {
        mode: match e.mode {
            EndpointMode::Vip => "vip".into(),
            EndpointMode::Dnsrr => "dnsrr".into(),
        },
        ports: e.ports.iter().map(port_to_proto).collect(),
    }
}

fn port_to_proto(p: &PortConfig) -> control::PortConfig {
    control::PortConfig {
        name: p.name.clone(),
        protocol: p.protocol.clone(),
        target_port: p.target_port,
        published_port: p.published_port,
        publish_mode: match p.publish_mode {
            PublishMode::Ingress => "ingress".into(),
            PublishMode::Host => "host".into(),
        },
    }
}

/// Docker's EndpointSpec, checked with Docker's and swarmkit's words.
fn endpoint_from_proto(e: Option<control::EndpointSpec>) -> Result<EndpointSpec, Status> {
    let e = e.unwrap_or_default();
    let mode = match e.mode.as_str() {
        "" | "vip" => EndpointMode::Vip,
        "dnsrr" => EndpointMode::Dnsrr,
        other => {
            return Err(rpc(
                Code::InvalidArgument,
                format!("invalid resolution mode: {other:?}"),
            ));
        }
    };
    let mut ports = Vec::with_capacity(e.ports.len());
    for p in e.ports {
        let protocol = match p.protocol.to_ascii_lowercase().as_str() {
            "" | "tcp" => "tcp",
            "udp" => "udp",
            "sctp" => {
                return Err(rpc(
                    Code::InvalidArgument,
                    "EndpointSpec: sctp ports are not supported by swarmkeep's routing mesh",
                ));
            }
            other => return Err(rpc(Code::InvalidArgument, format!("invalid protocol {other:?}"))),
        };
        let publish_mode = match p.publish_mode.as_str() {
            "" | "ingress" => PublishMode::Ingress,
            "host" => PublishMode::Host,
            other => return Err(rpc(Code::InvalidArgument, format!("invalid publish mode {other:?}"))),
        };
        ports.push(PortConfig {
            name: p.name,
            protocol: protocol.into(),
            target_port: p.target_port,
            published_port: p.published_port,
            publish_mode,
        });
    }
    let spec = EndpointSpec { mode, ports };
    swarmkeep_scheduler::ipam::check_endpoint(&spec).map_err(|e| rpc(Code::InvalidArgument, e))?;
    Ok(spec)
}

pub fn service_to_proto(s: &Service) -> control::Service {
    control::Service {
        id: s.id.clone(),
        meta: Some(meta_to_proto(&s.meta)),
        spec: Some(spec_to_proto(&s.spec)),
        previous_spec: s.previous_spec.as_ref().map(spec_to_proto),
        update_status: s.update_status.as_ref().map(|u| control::UpdateStatus {
            state: u.state.as_str().into(),
            started_at: Some(to_timestamp(u.started_at)),
            completed_at: u.completed_at.map(to_timestamp),
            message: u.message.clone(),
        }),
        endpoint: Some(control::Endpoint {
            ports: s.endpoint.ports.iter().map(port_to_proto).collect(),
            virtual_ips: s
                .endpoint
                .virtual_ips
                .iter()
                .map(|v| control::VirtualIp {
                    network_id: v.network_id.clone(),
                    addr: v.addr.clone(),
                })
                .collect(),
        }),
    }
}

pub fn status_to_proto(s: &TaskStatus) -> control::TaskStatus {
    control::TaskStatus {
        state: s.state.as_str().into(),
        timestamp: Some(to_timestamp(s.timestamp)),
        message: s.message.clone(),
        err: s.err.clone(),
        exit_code: s.exit_code,
        pid: s.pid,
        port_status: s.port_status.iter().map(port_to_proto).collect(),
    }
}

/// A task as the control API and the dispatcher show it: with the networks
/// it is attached to and its address on each (swarmkit's `Task.Networks`):
/// the overlays it was given addresses on (ingress first), then the others
/// its spec names (`host`).
pub fn task_to_proto(st: &ClusterState, t: &Task) -> control::Task {
    let mut networks: Vec<control::NetworkAttachment> = t
        .addresses
        .iter()
        .filter_map(|a| st.networks.get(&a.network_id).map(|n| (n, a)))
        .map(|(n, a)| control::NetworkAttachment {
            network: Some(super::network::to_proto(n)),
            addresses: vec![a.addr.clone()],
        })
        .collect();
    networks.extend(
        t.spec
            .networks
            .iter()
            .filter(|a| !t.addresses.iter().any(|x| x.network_id == a.target))
            .filter_map(|a| st.networks.get(&a.target))
            .map(|n| control::NetworkAttachment {
                network: Some(super::network::to_proto(n)),
                addresses: Vec::new(),
            }),
    );
    control::Task {
        networks,
        id: t.id.clone(),
        meta: Some(meta_to_proto(&t.meta)),
        service_id: t.service_id.clone(),
        service_name: t.service_name.clone(),
        slot: t.slot,
        node_id: t.node_id.clone().unwrap_or_default(),
        spec: Some(task_spec_to_proto(&t.spec)),
        desired_state: t.desired_state.as_str().into(),
        status: Some(status_to_proto(&t.status)),
        endpoint: Some(endpoint_to_proto(&t.endpoint_spec)),
    }
}

/// A status as an agent reported it; the state must be one an agent reaches.
pub fn status_from_proto(s: control::TaskStatus) -> Result<TaskStatus, Status> {
    let state = TaskState::parse(&s.state)
        .filter(|st| *st >= TaskState::Accepted)
        .ok_or_else(|| rpc(Code::InvalidArgument, format!("invalid task state {:?}", s.state)))?;
    Ok(TaskStatus {
        state,
        timestamp: s
            .timestamp
            .as_ref()
            .map(|t| to_datetime(Some(t)))
            .unwrap_or_else(time::OffsetDateTime::now_utc),
        message: s.message,
        err: s.err,
        exit_code: s.exit_code,
        pid: s.pid,
        port_status: port_status_from_proto(s.port_status)?,
    })
}

/// The host-mode ports an agent says its task publishes: shown in the
/// task's `PortStatus`, so held to what one can be.
fn port_status_from_proto(ports: Vec<control::PortConfig>) -> Result<Vec<PortConfig>, Status> {
    const MAX: usize = 1024;
    if ports.len() > MAX {
        return Err(rpc(Code::InvalidArgument, format!("more than {MAX} published ports")));
    }
    ports
        .into_iter()
        .map(|p| {
            let protocol = match p.protocol.as_str() {
                "tcp" | "udp" => p.protocol,
                other => return Err(rpc(Code::InvalidArgument, format!("invalid protocol {other:?}"))),
            };
            if p.publish_mode != "host" || p.published_port == 0 || p.published_port > 65535 || p.target_port > 65535 {
                return Err(rpc(Code::InvalidArgument, "invalid published port status"));
            }
            Ok(PortConfig {
                name: String::new(),
                protocol,
                target_port: p.target_port,
                published_port: p.published_port,
                publish_mode: PublishMode::Host,
            })
        })
        .collect()
}

pub(crate) fn refs_from_proto(
    kind: &str,
    refs: Vec<control::FileReference>,
    secret: bool,
    seen: &mut HashMap<String, String>,
) -> Result<Vec<FileReference>, Status> {
    let mut out = Vec::with_capacity(refs.len());
    for r in refs {
        let file = r.file.ok_or_else(|| {
            rpc(
                Code::InvalidArgument,
                format!("malformed {kind} reference, no target provided"),
            )
        })?;
        if file.name.is_empty() {
            return Err(rpc(
                Code::InvalidArgument,
                format!("malformed file {kind} reference, invalid target file name provided"),
            ));
        }
        let path = effective_target(&file.name, secret).map_err(|e| rpc(Code::InvalidArgument, e))?;
        if let Some(prev) = seen.insert(path.clone(), r.name.clone()) {
            return Err(rpc(
                Code::InvalidArgument,
                format!(
                    "{kind} references '{prev}' and '{}' have a conflicting target: '{}'",
                    r.name, file.name
                ),
            ));
        }
        let uid = if file.uid.is_empty() { "0".to_string() } else { file.uid };
        let gid = if file.gid.is_empty() { "0".to_string() } else { file.gid };
        for (what, v) in [("uid", &uid), ("gid", &gid)] {
            if v.parse::<u32>().is_err() {
                return Err(rpc(
                    Code::InvalidArgument,
                    format!("invalid {what} {v:?}: must be a number"),
                ));
            }
        }
        if file.mode > 0o7777 {
            return Err(rpc(Code::InvalidArgument, format!("invalid file mode {:o}", file.mode)));
        }
        out.push(FileReference {
            id: r.id,
            name: r.name,
            target: file.name,
            uid,
            gid,
            mode: file.mode,
        });
    }
    Ok(out)
}

pub(crate) fn spec_from_proto(spec: Option<control::ServiceSpec>) -> Result<ServiceSpec, Status> {
    let spec = spec.ok_or_else(|| rpc(Code::InvalidArgument, "invalid argument"))?;
    let mut annotations = annotations_from_proto(spec.annotations);
    if annotations.name.is_empty() {
        // As Docker: a service created without a name gets a random one.
        annotations.name = {
            let mut b = [0u8; 4];
            swarmkeep_crypto::random_bytes(&mut b);
            swarmkeep_scheduler::service_name(u32::from_le_bytes(b))
        };
    }
    if annotations.name.len() > 63 || !SERVICE_NAME_RE.is_match(&annotations.name) {
        return Err(rpc(Code::InvalidArgument, "name must be valid as a DNS name component"));
    }
    let mut task = spec.task.unwrap_or_default();
    if task.image.is_empty() {
        return Err(rpc(
            Code::InvalidArgument,
            "ContainerSpec: image reference must be provided",
        ));
    }
    let mut options = TaskSpec::default();
    super::sandbox::options_from_proto(&mut task, &mut options)?;
    let mut seen = HashMap::new();
    let secrets = refs_from_proto("secret", task.secrets, true, &mut seen)?;
    let configs = refs_from_proto("config", task.configs, false, &mut seen)?;
    let restart = match task.restart {
        None => RestartPolicy::default(),
        Some(r) => RestartPolicy {
            condition: match r.condition.as_str() {
                "" | "any" => RestartCondition::Any,
                "on-failure" => RestartCondition::OnFailure,
                "none" => RestartCondition::None,
                other => {
                    return Err(rpc(
                        Code::InvalidArgument,
                        format!("invalid restart condition {other:?}"),
                    ));
                }
            },
            delay_ns: r.delay_ns,
            max_attempts: r.max_attempts,
            window_ns: r.window_ns,
        },
    };
    let mode = match spec.mode.as_str() {
        "" | "replicated" if spec.replicas > MAX_REPLICAS => {
            return Err(rpc(
                Code::InvalidArgument,
                format!("replicas must be at most {MAX_REPLICAS}"),
            ));
        }
        "" | "replicated" => ServiceMode::Replicated {
            replicas: spec.replicas,
        },
        "global" => ServiceMode::Global,
        // swarmkit's defaults: one at a time, as many completions as that.
        "replicated-job" if spec.replicas > MAX_REPLICAS || spec.max_concurrent > MAX_REPLICAS => {
            return Err(rpc(
                Code::InvalidArgument,
                format!("replicas must be at most {MAX_REPLICAS}"),
            ));
        }
        "replicated-job" => {
            let max_concurrent = spec.max_concurrent.max(1);
            ServiceMode::ReplicatedJob {
                max_concurrent,
                total_completions: if spec.replicas == 0 {
                    max_concurrent
                } else {
                    spec.replicas
                },
            }
        }
        "global-job" => ServiceMode::GlobalJob,
        other => return Err(rpc(Code::InvalidArgument, format!("invalid service mode {other:?}"))),
    };
    let update_config = update_config_from_proto("UpdateConfig", spec.update_config)?;
    let rollback_config = update_config_from_proto("RollbackConfig", spec.rollback_config)?;
    let endpoint = endpoint_from_proto(spec.endpoint)?;
    let omitted = spec.omitted.unwrap_or_default();
    Ok(ServiceSpec {
        endpoint,
        omitted: SpecOmitted {
            update_config: omitted.update_config,
            rollback_config: omitted.rollback_config,
            restart_policy: omitted.restart_policy,
            resources: omitted.resources,
            placement: omitted.placement,
            stop_grace_period: omitted.stop_grace_period,
            dns_config: omitted.dns_config,
            restart_window_given: omitted.restart_window_given,
        },
        annotations,
        task: TaskSpec {
            image: task.image,
            command: task.command,
            args: task.args,
            env: task.env,
            workdir: task.workdir,
            user: task.user,
            secrets,
            configs,
            restart,
            stop_grace_period_ns: if task.stop_grace_period_ns == 0 {
                10_000_000_000
            } else {
                task.stop_grace_period_ns
            },
            force_update: task.force_update,
            mounts: mounts_from_proto(task.mounts)?,
            hostname: hostname_from_proto(task.hostname)?,
            read_only: task.read_only,
            tty: task.tty,
            limits: limits_from_proto(task.limits)?,
            placement: placement_from_proto(
                task.placement,
                matches!(mode, ServiceMode::Global | ServiceMode::GlobalJob),
            )?,
            reservations: ResourceLimits {
                pids: 0,
                ..limits_from_proto(task.reservations)?
            },
            networks: task
                .networks
                .into_iter()
                .map(|n| NetworkAttachmentConfig {
                    target: n.target,
                    aliases: n.aliases,
                })
                .collect(),
            ..options
        },
        mode,
        update_config,
        rollback_config,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(kind: &str, source: &str, target: &str) -> control::Mount {
        control::Mount {
            r#type: kind.into(),
            source: source.into(),
            target: target.into(),
            ..Default::default()
        }
    }

    #[test]
    fn mounts_get_dockers_errors() {
        let err = |m| mounts_from_proto(vec![m]).unwrap_err().message().to_string();
        assert_eq!(
            err(mount("tmpfs", "", "/")),
            "invalid specification: destination can't be '/'"
        );
        assert_eq!(
            err(mount("volume", "v1", "//")),
            "invalid specification: destination can't be '/'"
        );
        assert!(err(mount("volume", "../x", "/d")).contains("invalid characters for a local volume name"));
        assert!(err(mount("bind", "/tmp/../etc", "/d")).contains("climbs"));
        let ok = mounts_from_proto(vec![mount("volume", "", "/data")]).unwrap();
        assert_eq!((ok[0].kind, ok[0].source.as_str()), (MountKind::Volume, ""));
    }
}
