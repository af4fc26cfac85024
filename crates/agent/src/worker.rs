//! The agent's loop: a session with the leader's dispatcher, the node's
//! assignments (tasks, and the secrets and configs they reference) in memory,
//! and one controller per task that prepares its mount, runs it and reports
//! its status.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::Signal;
use swarmkeep_api::control;
use swarmkeep_api::dispatcher::dispatcher_client::DispatcherClient;
use swarmkeep_api::dispatcher::{
    AssignmentsMessage, LogLine, LogSubscription, LogSubscriptionsRequest, PublishLogsMessage, SessionRequest,
    TaskStatusUpdate, UpdateTaskStatusRequest,
};
use swarmkeep_api::targets::{SECRETS_DIR, effective_target};
use swarmkeep_api::timefmt::to_timestamp;
use swarmkeep_crypto::{SecretBytes, SessionKey};
use swarmkeep_manager::Membership;
use swarmkeep_manager::cluster::tls::NodeTls;
use swarmkeep_store::objects::TaskState;
use tokio::sync::{mpsc, oneshot};
use tonic::transport::Channel;

use crate::executor::{ProcessExecutor, TaskRun, process::cleanup_stale};
use crate::logs::LogStore;
use crate::mounts::{FuseBackend, SecretMount, TaskFile, TmpfsBackend};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Tmpfs,
    Fuse,
}

#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// Where task mounts and roots are made (`--exec-root`).
    pub exec_root: PathBuf,
    pub backend: Backend,
    /// The daemon's data dir, hidden from tasks.
    pub data_dir: PathBuf,
    /// The daemon binary, which also serves as the task shim.
    pub shim_exe: PathBuf,
}

/// Says what is missing when this host cannot run the chosen backend, so
/// the daemon refuses at start instead of failing each task with EPERM.
pub fn check_privileges(backend: Backend) -> Result<(), String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    const CAP_SYS_ADMIN: u64 = 1 << 21;
    if cap_eff & CAP_SYS_ADMIN == 0 {
        return Err(
            "the agent needs CAP_SYS_ADMIN (run swarmkeepd as root): tasks get their own mount namespace, and the \
             tmpfs secrets backend mounts a tmpfs per task"
                .into(),
        );
    }
    if backend == Backend::Fuse
        && let Err(e) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/fuse")
    {
        return Err(format!(
            "--secrets-backend fuse needs /dev/fuse, which cannot be opened: {e} (load the fuse module, or pass \
             /dev/fuse into the container)"
        ));
    }
    Ok(())
}

struct LocalTask {
    stop: Option<oneshot::Sender<()>>,
}

struct Inner {
    manager: Arc<swarmkeep_manager::Manager>,
    config: AgentConfig,
    mounts: Arc<dyn SecretMount>,
    executor: ProcessExecutor,
    secrets: Mutex<HashMap<String, SecretBytes>>,
    configs: Mutex<HashMap<String, Vec<u8>>>,
    /// The tasks the dispatcher gave this node, as last sent.
    assigned: Mutex<BTreeMap<String, control::Task>>,
    running: Mutex<HashMap<String, LocalTask>>,
    /// Set on daemon shutdown: no task is started any more.
    stopping: std::sync::atomic::AtomicBool,
    /// Tasks this run of the agent started: a task is never run twice.
    started: Mutex<std::collections::HashSet<String>>,
    status_tx: mpsc::UnboundedSender<(String, control::TaskStatus)>,
    client: Mutex<Option<DispatcherClient<Channel>>>,
    /// The output of this node's tasks, in memory only.
    logs: Arc<LogStore>,
}

pub struct Agent {
    inner: Arc<Inner>,
}

impl Agent {
    /// Cleans up what a crashed predecessor left, then starts the session loop.
    pub fn start(manager: Arc<swarmkeep_manager::Manager>, mut config: AgentConfig) -> Self {
        // Canonical paths: the shim hides them inside the task's root, where a
        // symlinked path would land elsewhere.
        let _ = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&config.exec_root);
        for p in [&mut config.exec_root, &mut config.data_dir] {
            if let Ok(c) = std::fs::canonicalize(&*p) {
                *p = c;
            }
        }
        cleanup_stale(&config.exec_root);
        let mounts: Arc<dyn SecretMount> = match config.backend {
            Backend::Tmpfs => Arc::new(TmpfsBackend::new(&config.exec_root)),
            Backend::Fuse => Arc::new(FuseBackend::new(&config.exec_root)),
        };
        let executor = ProcessExecutor::new(
            &config.exec_root,
            config.shim_exe.clone(),
            vec![config.exec_root.clone(), config.data_dir.clone()],
        );
        let (status_tx, status_rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            manager,
            config,
            mounts,
            executor,
            secrets: Mutex::default(),
            configs: Mutex::default(),
            assigned: Mutex::default(),
            running: Mutex::default(),
            stopping: Default::default(),
            started: Mutex::default(),
            status_tx,
            client: Mutex::default(),
            logs: Arc::default(),
        });
        tracing::info!(backend = inner.mounts.name(), exec_root = %inner.config.exec_root.display(), "agent started");
        tokio::spawn(session_loop(inner.clone()));
        tokio::spawn(status_loop(inner.clone(), status_rx));
        Self { inner }
    }

    /// Stops every task and removes its mount (daemon shutdown).
    pub async fn shutdown(&self) {
        self.inner.stopping.store(true, std::sync::atomic::Ordering::SeqCst);
        stop_all(&self.inner);
        // The longest stop grace period (10 s) and the unmount.
        for _ in 0..240 {
            if lock(&self.inner.running).is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        lock(&self.inner.secrets).clear();
        lock(&self.inner.configs).clear();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn stop_all(inner: &Inner) {
    for t in lock(&inner.running).values_mut() {
        if let Some(stop) = t.stop.take() {
            let _ = stop.send(());
        }
    }
    lock(&inner.assigned).clear();
}

/// Where to find the dispatcher: the leader a manager knows of, or the
/// managers a worker heard about.
fn upstream(inner: &Inner) -> Option<(Arc<NodeTls>, Vec<String>)> {
    match inner.manager.membership() {
        Membership::Inactive | Membership::Locked(_) => None,
        Membership::Manager(s) => {
            let leader = s.store.leader_addr()?;
            Some((s.tls.clone(), vec![leader]))
        }
        Membership::Worker(w) => Some((
            w.tls.clone(),
            w.managers.read().unwrap_or_else(|p| p.into_inner()).clone(),
        )),
    }
}

async fn session_loop(inner: Arc<Inner>) {
    let mut hint: Option<String> = None;
    loop {
        let Some((tls, mut candidates)) = upstream(&inner) else {
            if !lock(&inner.running).is_empty() || !lock(&inner.assigned).is_empty() {
                tracing::info!("not in a swarm: stopping every task");
                stop_all(&inner);
                lock(&inner.secrets).clear();
                lock(&inner.configs).clear();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        if let Some(h) = hint.take() {
            candidates.retain(|c| c != &h);
            candidates.insert(0, h);
        }
        for addr in candidates {
            match session(&inner, &tls, &addr).await {
                Ok(()) => {}
                Err(status) => {
                    tracing::debug!(%addr, error = %status.message(), "dispatcher session ended");
                    if let Some(leader) = swarmkeep_manager::cluster::leader_hint(&status) {
                        hint = Some(leader);
                        break;
                    }
                }
            }
        }
        *lock(&inner.client) = None;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn session(inner: &Arc<Inner>, tls: &NodeTls, addr: &str) -> Result<(), tonic::Status> {
    let channel = tls
        .channel(addr)
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let mut client = DispatcherClient::new(channel);
    let key = SessionKey::generate();
    let mut stream = client
        .session(SessionRequest {
            public_key: key.public().to_vec(),
        })
        .await?
        .into_inner();
    *lock(&inner.client) = Some(client.clone());
    tracing::info!(%addr, "dispatcher session open");
    // Log subscriptions ride beside the session, and end with it.
    let logs = AbortOnDrop(tokio::spawn(log_subscriptions(inner.logs.clone(), client)));
    while let Some(msg) = stream.message().await? {
        apply(inner, &key, msg);
    }
    drop(logs);
    Ok(())
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Answers the leader's log subscriptions with the output of this node's
/// tasks, each subscription on its own `PublishLogs` stream.
async fn log_subscriptions(logs: Arc<LogStore>, mut client: DispatcherClient<Channel>) {
    let mut subs = match client.log_subscriptions(LogSubscriptionsRequest {}).await {
        Ok(s) => s.into_inner(),
        Err(e) => {
            tracing::debug!(error = %e.message(), "log subscriptions unavailable");
            return;
        }
    };
    while let Ok(Some(sub)) = subs.message().await {
        tokio::spawn(publish_logs(logs.clone(), client.clone(), sub));
    }
}

async fn publish_logs(logs: Arc<LogStore>, mut client: DispatcherClient<Channel>, sub: LogSubscription) {
    let (tx, rx) = mpsc::channel::<PublishLogsMessage>(16);
    let id = sub.id.clone();
    let producer = async move {
        let tail = sub.has_tail.then_some(sub.tail);
        let mut feeds = tokio_stream::StreamMap::new();
        let mut backlog = Vec::new();
        for task_id in &sub.task_ids {
            let task = if sub.follow {
                logs.get_or_create(task_id)
            } else {
                match logs.get(task_id) {
                    Some(t) => t,
                    None => continue,
                }
            };
            let (lines, feed) = task.snapshot(tail, sub.since_ns);
            backlog.extend(lines.into_iter().map(|l| log_line(task_id, l)));
            feeds.insert(task_id.clone(), tokio_stream::wrappers::BroadcastStream::new(feed));
        }
        backlog.sort_by_key(|l| l.timestamp_ns);
        // A first message at once (even empty) names the subscription, so
        // the leader can end this call when the subscription is over; then
        // the backlog in messages well under gRPC's 4 MiB limit.
        let mut batch: Vec<LogLine> = Vec::new();
        let mut bytes = 0;
        let mut first = true;
        for line in backlog.into_iter().map(Some).chain(std::iter::once(None)) {
            let full = line.as_ref().is_none_or(|l| bytes + l.data.len() > PUBLISH_BATCH_BYTES);
            if full && (first || !batch.is_empty()) {
                let msg = PublishLogsMessage {
                    subscription_id: sub.id.clone(),
                    lines: std::mem::take(&mut batch),
                    close: false,
                };
                if tx.send(msg).await.is_err() {
                    return;
                }
                bytes = 0;
                first = false;
            }
            if let Some(line) = line {
                bytes += line.data.len();
                batch.push(line);
            }
        }
        if !sub.follow {
            let _ = tx
                .send(PublishLogsMessage {
                    subscription_id: sub.id.clone(),
                    lines: Vec::new(),
                    close: true,
                })
                .await;
            return;
        }
        use tokio_stream::StreamExt;
        while let Some((task_id, line)) = feeds.next().await {
            // A follower that fell behind the feed skips what it missed.
            let Ok(line) = line else { continue };
            let msg = PublishLogsMessage {
                subscription_id: sub.id.clone(),
                lines: vec![log_line(&task_id, line)],
                close: false,
            };
            if tx.send(msg).await.is_err() {
                return;
            }
        }
    };
    let call = client.publish_logs(tokio_stream::wrappers::ReceiverStream::new(rx));
    tokio::pin!(call, producer);
    // The leader ends the call when the subscription is over (the caller
    // went away): the producer is then dropped, whatever it waits for.
    let result = tokio::select! {
        result = &mut call => result,
        () = &mut producer => call.await,
    };
    if let Err(e) = result {
        tracing::debug!(subscription = %id, error = %e.message(), "log subscription ended");
    }
}

/// The most task output one PublishLogs message carries.
const PUBLISH_BATCH_BYTES: usize = 1024 * 1024;

fn log_line(task_id: &str, l: crate::logs::Line) -> LogLine {
    LogLine {
        task_id: task_id.to_string(),
        stream: l.stream,
        timestamp_ns: l.timestamp_ns,
        data: l.data,
    }
}

fn apply(inner: &Arc<Inner>, key: &SessionKey, msg: AssignmentsMessage) {
    {
        let mut secrets = lock(&inner.secrets);
        let mut configs = lock(&inner.configs);
        if msg.complete {
            secrets.clear();
            configs.clear();
        }
        for id in &msg.secrets_removed {
            secrets.remove(id);
        }
        if !msg.secrets_updated.is_empty() {
            match key.opener(&msg.ephemeral_public_key) {
                Ok(opener) => {
                    for s in &msg.secrets_updated {
                        match opener.open(&s.id, &s.sealed) {
                            Ok(plain) => {
                                secrets.insert(s.id.clone(), plain);
                            }
                            Err(_) => {
                                tracing::warn!(secret = %s.id, "a secret sealed to this node could not be opened")
                            }
                        }
                    }
                }
                Err(_) => tracing::warn!("an assignment carried an invalid ephemeral key"),
            }
        }
        for id in &msg.configs_removed {
            configs.remove(id);
        }
        for c in msg.configs_updated {
            configs.insert(c.id, c.data);
        }
        let mut held: Vec<&String> = secrets.keys().collect();
        held.sort();
        tracing::info!(sequence = msg.sequence, complete = msg.complete, secrets = ?held, "assignments received");
    }
    {
        let mut assigned = lock(&inner.assigned);
        if msg.complete {
            assigned.clear();
        }
        for id in &msg.tasks_removed {
            assigned.remove(id);
        }
        for t in msg.tasks_updated {
            assigned.insert(t.id.clone(), t);
        }
        inner.logs.retain(|id| assigned.contains_key(id));
    }
    reconcile(inner);
}

fn state_of(text: &str) -> TaskState {
    TaskState::parse(text).unwrap_or(TaskState::New)
}
const ASSIGNED: TaskState = TaskState::Assigned;
const RUNNING: TaskState = TaskState::Running;

fn status(state: &str, message: &str, err: String, exit_code: Option<i32>, pid: Option<u32>) -> control::TaskStatus {
    control::TaskStatus {
        state: state.into(),
        timestamp: Some(to_timestamp(time::OffsetDateTime::now_utc())),
        message: message.into(),
        err,
        exit_code,
        pid,
    }
}

/// Starts what is assigned and new, stops what is no longer wanted.
fn reconcile(inner: &Arc<Inner>) {
    let assigned = lock(&inner.assigned).clone();
    let mut running = lock(&inner.running);
    let mut started = lock(&inner.started);
    started.retain(|id| assigned.contains_key(id));
    for (id, task) in &assigned {
        let desired = state_of(&task.desired_state);
        let state = task
            .status
            .as_ref()
            .map(|s| state_of(&s.state))
            .unwrap_or(TaskState::New);
        if let Some(local) = running.get_mut(id) {
            if desired > RUNNING
                && let Some(stop) = local.stop.take()
            {
                let _ = stop.send(());
            }
            continue;
        }
        if started.contains(id) {
            continue;
        }
        if desired <= RUNNING && state <= ASSIGNED {
            if inner.stopping.load(std::sync::atomic::Ordering::SeqCst) {
                continue;
            }
            started.insert(id.clone());
            let (tx, rx) = oneshot::channel();
            running.insert(id.clone(), LocalTask { stop: Some(tx) });
            tokio::spawn(run_task(inner.clone(), task.clone(), rx));
        } else if desired > RUNNING && state <= ASSIGNED {
            // Stopped before it was started here: nothing to stop.
            started.insert(id.clone());
            let _ = inner
                .status_tx
                .send((id.clone(), status("shutdown", "shutdown", String::new(), None, None)));
        } else if state > ASSIGNED && state <= RUNNING {
            // Started by an earlier run of this agent, whose processes were
            // stopped when it came back.
            let (s, msg) = if desired > RUNNING {
                ("shutdown", "shutdown")
            } else {
                ("failed", "started")
            };
            let err = if s == "failed" {
                "task: the agent restarted and the task's process was stopped".to_string()
            } else {
                String::new()
            };
            let _ = inner.status_tx.send((id.clone(), status(s, msg, err, None, None)));
        }
    }
    for (id, local) in running.iter_mut() {
        if !assigned.contains_key(id)
            && let Some(stop) = local.stop.take()
        {
            let _ = stop.send(());
        }
    }
}

/// The task's files: one per reference, from the agent's memory.
fn task_files(inner: &Inner, spec: &control::TaskSpec) -> Result<(Vec<TaskFile>, TaskRun), String> {
    let secrets = lock(&inner.secrets);
    let configs = lock(&inner.configs);
    let mut files = Vec::new();
    let mut run = TaskRun {
        task_id: String::new(),
        argv: spec.command.iter().chain(spec.args.iter()).cloned().collect(),
        env: spec.env.clone(),
        workdir: spec.workdir.clone(),
        user: spec.user.clone(),
        secrets_dir: None,
        files: Vec::new(),
    };
    let refs = spec
        .secrets
        .iter()
        .map(|r| (r, true))
        .chain(spec.configs.iter().map(|r| (r, false)));
    for (i, (r, is_secret)) in refs.enumerate() {
        let data = if is_secret {
            secrets.get(&r.id).cloned()
        } else {
            configs.get(&r.id).map(|d| SecretBytes::new(d.clone()))
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
        files.push(TaskFile {
            rel,
            data,
            uid: file.uid.parse().unwrap_or(0),
            gid: file.gid.parse().unwrap_or(0),
            mode: file.mode,
        });
    }
    Ok((files, run))
}

async fn run_task(inner: Arc<Inner>, task: control::Task, mut stop: oneshot::Receiver<()>) {
    let id = task.id.clone();
    let report = |state: &str, message: &str, err: String, code: Option<i32>, pid: Option<u32>| {
        let _ = inner
            .status_tx
            .send((id.clone(), status(state, message, err, code, pid)));
    };
    report("accepted", "accepted", String::new(), None, None);
    report("preparing", "preparing", String::new(), None, None);
    let spec = task.spec.clone().unwrap_or_default();
    let prepared = task_files(&inner, &spec);
    let (files, mut run) = match prepared {
        Ok(p) => p,
        Err(e) => {
            report("rejected", "preparing", e, None, None);
            lock(&inner.running).remove(&id);
            return;
        }
    };
    run.task_id = id.clone();
    let has_secrets_dir = files.iter().any(|f| f.rel.starts_with("secrets/"));
    let mounts = inner.mounts.clone();
    let tid = id.clone();
    let mount = tokio::task::spawn_blocking(move || mounts.prepare(&tid, files))
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
    let mount = match mount {
        Ok(m) => m,
        Err(e) => {
            let err = format!("mounting the task's secrets: {e}");
            report("rejected", "preparing", err, None, None);
            release(&inner, &id).await;
            return;
        }
    };
    if has_secrets_dir {
        run.secrets_dir = Some(mount.join("secrets"));
    }
    for (src, _) in run.files.iter_mut() {
        *src = mount.join(&*src);
    }
    report("starting", "starting", String::new(), None, None);
    let mut proc = match inner.executor.start(&run).await {
        Ok(p) => p,
        Err(e) => {
            report("rejected", "starting", format!("starting the task: {e}"), None, None);
            release(&inner, &id).await;
            return;
        }
    };
    let (stdout, stderr) = proc.take_output();
    inner.logs.capture(&id, stdout, stderr);
    tracing::info!(task = %id, pid = proc.pid, "task running");
    report("running", "started", String::new(), None, Some(proc.pid));
    let grace = Duration::from_nanos(spec.stop_grace_period_ns.clamp(1, 10_000_000_000));
    tokio::select! {
        code = proc.wait() => {
            if code == 0 {
                report("complete", "finished", String::new(), Some(0), None);
            } else {
                report("failed", "started", format!("task: non-zero exit ({code})"), Some(code), None);
            }
        }
        _ = &mut stop => {
            proc.signal(Signal::SIGTERM);
            let code = match tokio::time::timeout(grace, proc.wait()).await {
                Ok(code) => code,
                Err(_) => {
                    proc.signal(Signal::SIGKILL);
                    proc.wait().await
                }
            };
            report("shutdown", "shutdown", String::new(), Some(code), None);
        }
    }
    // The task was PID 1's child in its own PID namespace: when it ended,
    // every process it left went with the namespace.
    release(&inner, &id).await;
    tracing::info!(task = %id, "task ended; its mount is removed");
}

async fn release(inner: &Arc<Inner>, id: &str) {
    let mounts = inner.mounts.clone();
    let tid = id.to_string();
    let _ = tokio::task::spawn_blocking(move || mounts.release(&tid)).await;
    lock(&inner.running).remove(id);
}

/// Sends task status to the leader, the latest per task, retrying until it
/// is taken.
async fn status_loop(inner: Arc<Inner>, mut rx: mpsc::UnboundedReceiver<(String, control::TaskStatus)>) {
    let mut pending: BTreeMap<String, control::TaskStatus> = BTreeMap::new();
    loop {
        if pending.is_empty() {
            match rx.recv().await {
                Some((id, s)) => {
                    pending.insert(id, s);
                }
                None => return,
            }
        }
        while let Ok((id, s)) = rx.try_recv() {
            pending.insert(id, s);
        }
        let client = lock(&inner.client).clone();
        let Some(mut client) = client else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let updates = pending
            .iter()
            .map(|(id, s)| TaskStatusUpdate {
                task_id: id.clone(),
                status: Some(s.clone()),
            })
            .collect();
        match client.update_task_status(UpdateTaskStatusRequest { updates }).await {
            Ok(_) => pending.clear(),
            Err(e) => {
                tracing::debug!(error = %e.message(), "reporting task status failed; will retry");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}
