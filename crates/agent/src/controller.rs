//! The task controller: which assigned tasks to start and which to stop
//! ([`plan`], a pure function of what is assigned and what runs here), and
//! each task's life on this node — its files from memory into a mount, its
//! process, its status, and the cleanup when it ends.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use swarmkeep_api::control;
use swarmkeep_api::targets::{SECRETS_DIR, effective_target};
use swarmkeep_api::task_state::TaskState;
use swarmkeep_crypto::SecretBytes;
use tokio::sync::oneshot;

use crate::executor::TaskRun;
use crate::mounts::TaskFile;
use crate::reporter::status;
use crate::state::{AgentState, LocalTask, lock};

/// What the controller does for one task.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Assigned, wanted running, not started by this run of the agent.
    Start(String),
    /// Runs here but is no longer wanted (or no longer assigned).
    Stop(String),
    /// Reports a status without running anything; `settled` tasks are not
    /// looked at again.
    Report {
        id: String,
        state: TaskState,
        message: &'static str,
        err: String,
        settled: bool,
    },
}

fn state_of(text: &str) -> TaskState {
    TaskState::parse(text).unwrap_or(TaskState::New)
}

/// What to do about each task: `assigned` as the dispatcher last sent it,
/// `running` (tasks whose process this agent runs), `started` (tasks this
/// run of the agent already took on), `stopping` (the daemon shuts down).
pub(crate) fn plan(
    assigned: &BTreeMap<String, control::Task>,
    running: &HashSet<String>,
    started: &HashSet<String>,
    stopping: bool,
) -> Vec<Action> {
    let mut actions = Vec::new();
    for (id, task) in assigned {
        let desired = state_of(&task.desired_state);
        let state = task
            .status
            .as_ref()
            .map(|s| state_of(&s.state))
            .unwrap_or(TaskState::New);
        // A job's task wants `complete`: it runs until it ends.
        let wanted = desired <= TaskState::Running || desired == TaskState::Complete;
        if running.contains(id) {
            if !wanted {
                actions.push(Action::Stop(id.clone()));
            }
            continue;
        }
        if started.contains(id) {
            continue;
        }
        if state <= TaskState::Assigned {
            if !wanted {
                // Stopped before it was started here: nothing to stop.
                actions.push(Action::Report {
                    id: id.clone(),
                    state: TaskState::Shutdown,
                    message: "shutdown",
                    err: String::new(),
                    settled: true,
                });
            } else if !stopping {
                actions.push(Action::Start(id.clone()));
            }
        } else if state <= TaskState::Running {
            // Started by an earlier run of this agent, whose processes were
            // stopped when it came back.
            actions.push(if wanted {
                Action::Report {
                    id: id.clone(),
                    state: TaskState::Failed,
                    message: "started",
                    err: "task: the agent restarted and the task's process was stopped".into(),
                    settled: false,
                }
            } else {
                Action::Report {
                    id: id.clone(),
                    state: TaskState::Shutdown,
                    message: "shutdown",
                    err: String::new(),
                    settled: false,
                }
            });
        }
    }
    actions.extend(
        running
            .iter()
            .filter(|id| !assigned.contains_key(*id))
            .map(|id| Action::Stop(id.clone())),
    );
    actions
}

/// Starts what is assigned and new, stops what is no longer wanted.
pub(crate) fn reconcile(agent: &Arc<AgentState>) {
    let assigned = lock(&agent.assignments).tasks.clone();
    let mut running = lock(&agent.running);
    let mut started = lock(&agent.started);
    started.retain(|id| assigned.contains_key(id));
    agent.containers.retain(|id| assigned.contains_key(id));
    let ids: HashSet<String> = running.keys().cloned().collect();
    let stopping = agent.stopping.load(std::sync::atomic::Ordering::SeqCst);
    for action in plan(&assigned, &ids, &started, stopping) {
        match action {
            Action::Start(id) => {
                let Some(task) = assigned.get(&id) else { continue };
                started.insert(id.clone());
                let (tx, rx) = oneshot::channel();
                running.insert(id, LocalTask { stop: Some(tx) });
                tokio::spawn(run_task(agent.clone(), task.clone(), rx));
            }
            Action::Stop(id) => {
                if let Some(stop) = running.get_mut(&id).and_then(|t| t.stop.take()) {
                    let _ = stop.send(());
                }
            }
            Action::Report {
                id,
                state,
                message,
                err,
                settled,
            } => {
                if settled {
                    started.insert(id.clone());
                }
                let _ = agent.status_tx.send((id, status(state, message, err, None, None)));
            }
        }
    }
}

/// The task's files: one per reference, from the agent's memory.
fn task_files(agent: &AgentState, spec: &control::TaskSpec) -> Result<(Vec<TaskFile>, TaskRun), String> {
    let held = lock(&agent.assignments);
    let mut files = Vec::new();
    let mut run = TaskRun {
        task_id: String::new(),
        argv: spec.command.iter().chain(spec.args.iter()).cloned().collect(),
        env: spec.env.clone(),
        workdir: spec.workdir.clone(),
        user: spec.user.clone(),
        layers: Vec::new(),
        secrets_dir: None,
        files: Vec::new(),
        binds: spec
            .mounts
            .iter()
            .filter(|m| m.r#type == "bind")
            .map(|m| (PathBuf::from(&m.source), PathBuf::from(&m.target), m.read_only))
            .collect(),
        volumes: Vec::new(),
        tmpfs: spec
            .mounts
            .iter()
            .filter(|m| m.r#type == "tmpfs")
            .map(|m| {
                let o = m.tmpfs_options.unwrap_or_default();
                crate::executor::volumes::TmpfsMount {
                    target: PathBuf::from(&m.target),
                    size: u64::try_from(o.size_bytes).unwrap_or(0),
                    mode: o.mode,
                    read_only: m.read_only,
                }
            })
            .collect(),
        container_id: String::new(),
        hostname: spec.hostname.clone(),
        network: crate::network::NetworkMode::Bridge,
        overlays: Vec::new(),
        host_ports: Vec::new(),
        read_only: spec.read_only,
        tty: spec.tty,
        limits: spec
            .limits
            .map(|l| crate::executor::Limits {
                nano_cpus: u64::try_from(l.nano_cpus).unwrap_or(0),
                memory_bytes: u64::try_from(l.memory_bytes).unwrap_or(0),
                pids: l.pids,
            })
            .unwrap_or_default(),
        sandbox: Default::default(),
    };
    let refs = spec
        .secrets
        .iter()
        .map(|r| (r, true))
        .chain(spec.configs.iter().map(|r| (r, false)));
    for (i, (r, is_secret)) in refs.enumerate() {
        let data = if is_secret {
            held.secrets.get(&r.id).cloned()
        } else {
            held.configs.get(&r.id).map(|d| SecretBytes::new(d.clone()))
        };
        let kind = if is_secret { "secret" } else { "config" };
        let data = data.ok_or_else(|| format!("{kind} {} not found", r.id))?;
        let file = r.file.clone().unwrap_or_default();
        let target = effective_target(&file.name, is_secret)?;
        let rel = match target.strip_prefix(&format!("{SECRETS_DIR}/")) {
            Some(inside) => format!("secrets/{inside}"),
            None => {
                let rel = format!("files/{i}");
                run.files.push((PathBuf::from(&rel), PathBuf::from(&target)));
                rel
            }
        };
        let (mut uid, mut gid) = (file.uid.parse().unwrap_or(0), file.gid.parse().unwrap_or(0));
        // With `--userns-remap`, the task's uid and gid as the host has them.
        if let Some(remap) = &agent.config.userns_remap {
            uid = remap
                .uid(uid)
                .ok_or_else(|| format!("{}: uid {uid} is outside the node's user namespace", file.name))?;
            gid = remap
                .gid(gid)
                .ok_or_else(|| format!("{}: gid {gid} is outside the node's user namespace", file.name))?;
        }
        files.push(TaskFile {
            rel,
            data,
            uid,
            gid,
            mode: file.mode,
        });
    }
    Ok((files, run))
}

async fn run_task(agent: Arc<AgentState>, task: control::Task, mut stop: oneshot::Receiver<()>) {
    let id = task.id.clone();
    // Its host-mode ports, once published: in every status after.
    let ports: std::sync::Mutex<Vec<control::PortConfig>> = Default::default();
    let report = |state: TaskState, message: &str, err: String, code: Option<i32>, pid: Option<u32>| {
        let mut status = status(state, message, err, code, pid);
        status.port_status = lock(&ports).clone();
        let _ = agent.status_tx.send((id.clone(), status));
    };
    let t0 = std::time::Instant::now();
    report(TaskState::Accepted, "accepted", String::new(), None, None);
    report(TaskState::Preparing, "preparing", String::new(), None, None);
    let spec = task.spec.clone().unwrap_or_default();
    let prepared = task_files(&agent, &spec);
    let prepared = prepared.and_then(|(files, mut run)| {
        (run.network, run.overlays) = network_mode(&task)?;
        if run.network == crate::network::NetworkMode::Bridge {
            let endpoint = task.endpoint.as_ref().map(|e| e.ports.as_slice()).unwrap_or_default();
            run.host_ports = crate::network::host_ports::wanted(endpoint);
        }
        // dockerd's refusal: the node's network is not for a remapped root.
        if run.network == crate::network::NetworkMode::Host && agent.config.userns_remap.is_some() {
            return Err("Cannot share the host's network namespace when user namespaces are enabled".into());
        }
        Ok((files, run))
    });
    let (files, mut run) = match prepared {
        Ok(p) => p,
        Err(e) => {
            report(TaskState::Rejected, "preparing", e, None, None);
            lock(&agent.running).remove(&id);
            return;
        }
    };
    // Its volumes; the anonymous ones go when this function returns.
    let mut anonymous = crate::volumes::Anonymous::default();
    let volume_owner = agent.config.userns_remap.as_ref().map(|r| r.root());
    run.volumes = match crate::volumes::prepare(&agent.config.data_dir, &spec.mounts, &mut anonymous, volume_owner) {
        Ok(v) => v,
        Err(e) => {
            report(TaskState::Rejected, "preparing", e, None, None);
            lock(&agent.running).remove(&id);
            return;
        }
    };
    run.task_id = id.clone();
    run.container_id = crate::executor::container_id(&id);
    // The image: here already, or pulled now (still "preparing", as Swarm).
    let auth = match registry_auth(&agent, &id, &spec.image) {
        Ok(a) => a,
        Err(e) => {
            report(TaskState::Rejected, "preparing", e, None, None);
            lock(&agent.running).remove(&id);
            return;
        }
    };
    let image = match agent.images.ensure(&spec.image, &auth).await {
        Ok(image) => image,
        Err(e) => {
            report(TaskState::Rejected, "preparing", e.to_string(), None, None);
            lock(&agent.running).remove(&id);
            return;
        }
    };
    crate::image_config::apply(&mut run, &spec, &image.config);
    run.sandbox = match crate::executor::SandboxOptions::from_spec(&spec, &image.config.stop_signal) {
        Ok(s) => s,
        Err(e) => {
            report(TaskState::Rejected, "preparing", e, None, None);
            lock(&agent.running).remove(&id);
            return;
        }
    };
    // On the node's own network a raw socket reads (and forges) every
    // loopback conversation on the node — other services' registry logins
    // among them: a host-network task has NET_RAW only when its service asks
    // for it (`--cap-add NET_RAW`), unlike Docker's.
    if run.network == crate::network::NetworkMode::Host && !asks_for_net_raw(&spec.capability_add) {
        run.sandbox.caps.retain(|c| *c != CAP_NET_RAW);
    }
    run.layers = agent.images.layer_dirs(&image);
    let has_secrets_dir = files.iter().any(|f| f.rel.starts_with("secrets/"));
    let mounts = agent.mounts.clone();
    let tid = id.clone();
    let mount = tokio::task::spawn_blocking(move || mounts.prepare(&tid, files))
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
    let mount = match mount {
        Ok(m) => m,
        Err(e) => {
            let err = format!("mounting the task's secrets: {e}");
            report(TaskState::Rejected, "preparing", err, None, None);
            release(&agent, &id).await;
            return;
        }
    };
    if has_secrets_dir {
        run.secrets_dir = Some(mount.join("secrets"));
    }
    for (src, _) in run.files.iter_mut() {
        *src = mount.join(&*src);
    }
    let mounted = t0.elapsed().as_secs_f64() * 1000.0;
    report(TaskState::Starting, "starting", String::new(), None, None);
    let created = prost_types::Timestamp::from(std::time::SystemTime::now());
    let mut proc = match agent.executor.start(&run).await {
        Ok(p) => p,
        Err(e) => {
            report(
                TaskState::Rejected,
                "starting",
                format!("starting the task: {e}"),
                None,
                None,
            );
            release(&agent, &id).await;
            return;
        }
    };
    tracing::debug!(task = %id, mounted, started = t0.elapsed().as_secs_f64() * 1000.0, "task start (ms since assigned)");
    *lock(&ports) = proc.published.iter().map(|p| p.status()).collect();
    agent
        .containers
        .started(container_record(&task, &spec, &run, &image, &proc, created));
    let (stdout, stderr) = proc.take_output();
    agent.logs.capture(&id, stdout, stderr);
    // With a healthcheck the task stays "starting" until its first healthy
    // probe (swarmkit's controller waits for it); without, it runs now.
    let probe = crate::health::Probe::of(spec.healthcheck.as_ref(), image.config.healthcheck.as_ref());
    let mut health = None;
    let monitor = probe.map(|probe| {
        let (tx, rx) = tokio::sync::watch::channel(crate::health::Status::Starting);
        health = Some(rx);
        tokio::spawn(crate::health::monitor(
            agent.clone(),
            run.container_id.clone(),
            probe,
            tx,
        ))
    });
    let mut running = health.is_none();
    if running {
        tracing::info!(task = %id, pid = proc.pid, "task running");
        report(TaskState::Running, "started", String::new(), None, Some(proc.pid));
    }
    let grace = Duration::from_nanos(spec.stop_grace_period_ns.clamp(1, 10_000_000_000));
    let stop_signal = Signal::try_from(run.sandbox.stop_signal).unwrap_or(Signal::SIGTERM);
    enum End {
        Exited(i32),
        Stopped,
        Unhealthy,
    }
    let end = loop {
        tokio::select! {
            code = proc.wait() => break End::Exited(code),
            _ = &mut stop => break End::Stopped,
            status = crate::health::next(&mut health) => match status {
                crate::health::Status::Healthy if !running => {
                    running = true;
                    tracing::info!(task = %id, pid = proc.pid, "task healthy: running");
                    report(TaskState::Running, "started", String::new(), None, Some(proc.pid));
                }
                crate::health::Status::Unhealthy => break End::Unhealthy,
                _ => {}
            },
        }
    };
    if let Some(m) = monitor {
        m.abort();
    }
    match end {
        End::Exited(code) => {
            agent.containers.ended(&run.container_id, code, proc.oom_killed());
            if proc.oom_killed() {
                tracing::warn!(task = %id, code, "the task went over its memory limit: OOM-killed by the kernel");
            }
            if code == 0 {
                report(TaskState::Complete, "finished", String::new(), Some(0), None);
            } else {
                report(
                    TaskState::Failed,
                    "started",
                    format!("task: non-zero exit ({code})"),
                    Some(code),
                    None,
                );
            }
        }
        End::Stopped => {
            let code = stop_process(&mut proc, stop_signal, grace).await;
            agent.containers.ended(&run.container_id, code, proc.oom_killed());
            report(TaskState::Shutdown, "shutdown", String::new(), Some(code), None);
        }
        End::Unhealthy => {
            tracing::warn!(task = %id, "the task is unhealthy: stopping it");
            let code = stop_process(&mut proc, stop_signal, grace).await;
            agent.containers.ended(&run.container_id, code, proc.oom_killed());
            if code == 0 {
                report(TaskState::Complete, "finished", String::new(), Some(0), None);
            } else {
                let err = format!("task: non-zero exit ({code}): {}", crate::health::UNHEALTHY);
                report(TaskState::Failed, "started", err, Some(code), None);
            }
        }
    }
    // The task was PID 1's child in its own PID namespace: when it ended,
    // every process it left went with the namespace.
    // The secrets first: they go as soon as the task has ended.
    release(&agent, &id).await;
    agent.executor.finish(&proc).await;
    tracing::info!(task = %id, "task ended; its mount is removed");
}

/// The task's registry credential (`--with-registry-auth`) for its image's
/// registry; anonymous without one.
fn registry_auth(agent: &AgentState, task_id: &str, image: &str) -> Result<swarmkeep_image::RegistryAuth, String> {
    let held = lock(&agent.assignments);
    match held.registry_auths.get(task_id) {
        Some(encoded) => crate::images_api::registry_auth(encoded.expose(), image),
        None => Ok(swarmkeep_image::RegistryAuth::Anonymous),
    }
}

/// Stops the task as `docker stop` does: its stop signal, then SIGKILL
/// after the grace period.
async fn stop_process(proc: &mut crate::executor::RunningTask, signal: Signal, grace: Duration) -> i32 {
    proc.signal(signal);
    match tokio::time::timeout(grace, proc.wait()).await {
        Ok(code) => code,
        Err(_) => {
            proc.signal(Signal::SIGKILL);
            proc.wait().await
        }
    }
}

/// Linux's number for CAP_NET_RAW.
const CAP_NET_RAW: u32 = 13;

/// Whether `--cap-add` names NET_RAW (or ALL).
fn asks_for_net_raw(capability_add: &[String]) -> bool {
    capability_add.iter().any(|c| {
        let c = swarmkeep_api::sandbox::normalize_capability(c);
        c == "CAP_NET_RAW" || c == "ALL"
    })
}

/// How the task is networked: in its node's own namespace when attached to a
/// `host` network, else on the node's task bridge, and on the overlay
/// networks it has an address on.
fn network_mode(
    task: &control::Task,
) -> Result<(crate::network::NetworkMode, Vec<crate::network::OverlayAttachment>), String> {
    let mut mode = crate::network::NetworkMode::Bridge;
    let mut overlays = Vec::new();
    for attachment in &task.networks {
        let Some(network) = attachment.network.as_ref() else {
            continue;
        };
        let spec = network.spec.clone().unwrap_or_default();
        let name = spec.annotations.map(|a| a.name).unwrap_or_default();
        match spec.driver.as_str() {
            "host" => mode = crate::network::NetworkMode::Host,
            "overlay" => {
                let alloc = network.allocation.clone().unwrap_or_default();
                let address = attachment.addresses.first().and_then(|a| a.split_once('/'));
                let parsed = address.and_then(|(ip, prefix)| Some((ip.parse().ok()?, prefix.parse().ok()?)));
                let (Some((address, prefix)), Ok(gateway)) = (parsed, alloc.gateway.parse()) else {
                    return Err(format!("network {name}: the task has no address on it"));
                };
                overlays.push(crate::network::OverlayAttachment {
                    network_id: network.id.clone(),
                    vni: alloc.vni,
                    gateway,
                    address,
                    prefix,
                    ingress: spec.ingress,
                    internal: spec.internal,
                });
            }
            driver => {
                return Err(format!(
                    "network {name}: the {driver:?} driver is not supported on this node"
                ));
            }
        }
    }
    if mode == crate::network::NetworkMode::Host && !overlays.is_empty() {
        return Err("a task on the host's network cannot be on an overlay network too".into());
    }
    Ok((mode, overlays))
}

/// The task's container as Docker shows it (`docker ps`, `inspect`).
fn container_record(
    task: &control::Task,
    spec: &control::TaskSpec,
    run: &TaskRun,
    image: &swarmkeep_image::Image,
    proc: &crate::executor::RunningTask,
    created: prost_types::Timestamp,
) -> crate::containers::Record {
    use swarmkeep_api::containers as pb;
    let name = swarmkeep_api::naming::container_name(&task.service_name, task.slot, &task.node_id, &task.id);
    let labels = spec
        .container_labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .chain([
            ("com.docker.swarm.node.id", task.node_id.clone()),
            ("com.docker.swarm.service.id", task.service_id.clone()),
            ("com.docker.swarm.service.name", task.service_name.clone()),
            ("com.docker.swarm.task", String::new()),
            ("com.docker.swarm.task.id", task.id.clone()),
            ("com.docker.swarm.task.name", name.clone()),
        ])
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let mut mounts: Vec<pb::Mount> = run
        .binds
        .iter()
        .map(|(src, dst, ro)| pb::Mount {
            r#type: "bind".into(),
            source: src.display().to_string(),
            destination: dst.display().to_string(),
            read_only: *ro,
        })
        .collect();
    for v in &run.volumes {
        mounts.push(pb::Mount {
            r#type: "volume".into(),
            source: v.source.display().to_string(),
            destination: v.target.display().to_string(),
            read_only: v.read_only,
        });
    }
    for t in &run.tmpfs {
        mounts.push(pb::Mount {
            r#type: "tmpfs".into(),
            source: String::new(),
            destination: t.target.display().to_string(),
            read_only: t.read_only,
        });
    }
    if let Some(dir) = &run.secrets_dir {
        mounts.push(pb::Mount {
            r#type: "bind".into(),
            source: dir.display().to_string(),
            destination: SECRETS_DIR.into(),
            read_only: true,
        });
    }
    for (src, dst) in &run.files {
        mounts.push(pb::Mount {
            r#type: "bind".into(),
            source: src.display().to_string(),
            destination: dst.display().to_string(),
            read_only: true,
        });
    }
    let ep = proc.endpoint.as_ref();
    let limits = spec.limits.unwrap_or_default();
    crate::containers::Record {
        info: pb::Container {
            id: run.container_id.clone(),
            name,
            image: spec.image.clone(),
            image_id: image.id.clone(),
            command: run.argv.clone(),
            created: Some(created),
            state: "running".into(),
            pid: proc.pid,
            labels,
            hostname: proc.hostname.clone(),
            env: proc.env.clone(),
            working_dir: if run.workdir.is_empty() {
                "/".into()
            } else {
                run.workdir.clone()
            },
            user: run.user.clone(),
            network_mode: if ep.is_some() { "default".into() } else { "host".into() },
            ip_address: ep.map(|e| e.address.to_string()).unwrap_or_default(),
            gateway: ep.map(|e| e.gateway.to_string()).unwrap_or_default(),
            mac_address: ep
                .map(|e| e.mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":"))
                .unwrap_or_default(),
            ip_prefix_len: ep.map(|e| i32::from(e.prefix)).unwrap_or(0),
            read_only: run.read_only,
            tty: run.tty,
            mounts,
            task_id: task.id.clone(),
            service_id: task.service_id.clone(),
            service_name: task.service_name.clone(),
            node_id: task.node_id.clone(),
            nano_cpus: limits.nano_cpus,
            memory_bytes: limits.memory_bytes,
            pids_limit: limits.pids,
            ..Default::default()
        },
        env: proc.env.clone(),
        cgroups: proc.cgroup_dirs(),
        start_time: crate::executor::process::start_time(proc.pid).unwrap_or(0),
        creds: crate::executor::shim::Credentials {
            user: run.user.clone(),
            groups: run.sandbox.groups.clone(),
            caps: run.sandbox.caps.clone(),
        },
    }
}

async fn release(agent: &Arc<AgentState>, id: &str) {
    let mounts = agent.mounts.clone();
    let tid = id.to_string();
    let _ = tokio::task::spawn_blocking(move || mounts.release(&tid)).await;
    lock(&agent.running).remove(id);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, desired: TaskState, state: TaskState) -> (String, control::Task) {
        (
            id.to_string(),
            control::Task {
                id: id.into(),
                desired_state: desired.as_str().into(),
                status: Some(control::TaskStatus {
                    state: state.as_str().into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
    }

    fn set(ids: &[&str]) -> HashSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn new_assigned_tasks_start_once_and_not_while_stopping() {
        let assigned: BTreeMap<_, _> = [
            task("new", TaskState::Running, TaskState::Assigned),
            task("pending", TaskState::Running, TaskState::New),
        ]
        .into();
        assert_eq!(
            plan(&assigned, &set(&[]), &set(&[]), false),
            [Action::Start("new".into()), Action::Start("pending".into())]
        );
        assert_eq!(plan(&assigned, &set(&[]), &set(&["new", "pending"]), false), []);
        assert_eq!(plan(&assigned, &set(&[]), &set(&[]), true), []);
    }

    #[test]
    fn unwanted_or_unassigned_running_tasks_stop() {
        let assigned: BTreeMap<_, _> = [
            task("keep", TaskState::Running, TaskState::Running),
            task("drop", TaskState::Shutdown, TaskState::Running),
        ]
        .into();
        let mut actions = plan(
            &assigned,
            &set(&["keep", "drop", "gone"]),
            &set(&["keep", "drop", "gone"]),
            false,
        );
        actions.sort_by_key(|a| format!("{a:?}"));
        assert_eq!(actions, [Action::Stop("drop".into()), Action::Stop("gone".into())]);
    }

    #[test]
    fn a_task_stopped_before_it_started_is_reported_shut_down_once() {
        let assigned: BTreeMap<_, _> = [task("t", TaskState::Shutdown, TaskState::Assigned)].into();
        let actions = plan(&assigned, &set(&[]), &set(&[]), false);
        assert!(matches!(
            &actions[..],
            [Action::Report {
                state: TaskState::Shutdown,
                settled: true,
                ..
            }]
        ));
        assert_eq!(plan(&assigned, &set(&[]), &set(&["t"]), false), []);
    }

    #[test]
    fn a_task_an_earlier_run_started_is_reported_failed_or_shut_down() {
        let assigned: BTreeMap<_, _> = [
            task("wanted", TaskState::Running, TaskState::Running),
            task("unwanted", TaskState::Shutdown, TaskState::Starting),
            task("finished", TaskState::Running, TaskState::Complete),
        ]
        .into();
        let actions = plan(&assigned, &set(&[]), &set(&[]), false);
        assert_eq!(actions.len(), 2, "a finished task is left alone: {actions:?}");
        assert!(actions.iter().any(|a| matches!(
            a,
            Action::Report { id, state: TaskState::Shutdown, .. } if id == "unwanted"
        )));
        assert!(actions.iter().any(|a| matches!(
            a,
            Action::Report { id, state: TaskState::Failed, err, .. } if id == "wanted" && err.contains("agent restarted")
        )));
    }
}
