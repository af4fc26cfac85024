//! The process executor: the task's command started through the task shim in
//! its own namespaces, on a root made of its image, in its own session (so
//! stopping it stops its whole process group).

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::cgroup::{Limits, TaskCgroup};
use super::shim::{Credentials, ERROR_FD, SPEC_FD, ShimSpec};
use super::{TaskRun, container_id};
use crate::mounts::task_dir;
use crate::network::{Bridge, Endpoint, NetworkMode, Overlays, hosts_file, overlay_resolv_conf, resolv_conf, with_dns};

pub struct ProcessExecutor {
    inner: Arc<Inner>,
}

pub struct Inner {
    exec_root: PathBuf,
    /// The daemon binary, which runs the shim as `task-shim` (and the exec
    /// helper as `task-exec`).
    pub(super) shim_exe: PathBuf,
    /// The node's task bridge, made when the first task needs it.
    bridge: tokio::sync::OnceCell<Bridge>,
    /// The overlay networks of the node's tasks.
    overlays: Overlays,
    /// Bridged sandboxes made ahead, waiting for a task: a task's start
    /// then skips the shim's spawn, the cgroup move (a cgroup v1 move waits
    /// for an RCU grace period, ~8–11 ms here) and the network's plumbing
    /// (~5–8 ms), the same for every task. At most `warm_target`.
    warm: Mutex<Vec<Sandbox>>,
    warm_target: usize,
    /// The background task making them, while it runs.
    refilling: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Set at shutdown: no more sandboxes are made ahead.
    closed: AtomicBool,
    /// `--userns-remap`: every task's users are these host ranges.
    pub userns: Option<super::userns::Remap>,
}

impl std::ops::Deref for ProcessExecutor {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

/// A task's sandbox before it knows its task: the shim, spawned in a
/// network namespace of its own (plugged into the bridge) and moved into
/// its cgroup, waiting on its spec pipe. It runs nothing of a task before
/// it reads a spec, so one made ahead is as fresh as one made for the task;
/// none is ever used twice.
struct Sandbox {
    /// Its address lease's key: the task's ID, or `warm-…` until claimed.
    key: String,
    child: tokio::process::Child,
    pid: u32,
    cgroup: TaskCgroup,
    cgroup_name: String,
    endpoint: Option<Endpoint>,
    spec_write: OwnedFd,
    error_read: OwnedFd,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A started task.
pub struct RunningTask {
    pub pid: u32,
    child: tokio::process::Child,
    pub task_id: String,
    /// Its place on the node's bridge (none with `--network host`).
    pub endpoint: Option<Endpoint>,
    cgroup: TaskCgroup,
    pub hostname: String,
    /// The environment it was started with (an exec inherits it).
    pub env: Vec<String>,
    /// Its ports published on the node (host mode).
    pub published: Vec<crate::network::host_ports::Published>,
}

impl RunningTask {
    /// The exit code, Docker style: 128 + the signal for a killed process.
    pub async fn wait(&mut self) -> i32 {
        use std::os::unix::process::ExitStatusExt;
        match self.child.wait().await {
            Ok(s) => s.code().or_else(|| s.signal().map(|sig| 128 + sig)).unwrap_or(-1),
            Err(_) => -1,
        }
    }

    /// The task's stdout and stderr pipes (once).
    pub fn take_output(&mut self) -> (Option<tokio::process::ChildStdout>, Option<tokio::process::ChildStderr>) {
        (self.child.stdout.take(), self.child.stderr.take())
    }

    /// The task's cgroup directories.
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        self.cgroup.dirs().to_vec()
    }

    /// Whether the kernel's OOM killer killed a process of the task.
    pub fn oom_killed(&self) -> bool {
        self.cgroup.oom_killed()
    }

    /// Signals the task's whole process group.
    pub fn signal(&self, sig: Signal) {
        if let Ok(pid) = i32::try_from(self.pid) {
            let _ = killpg(Pid::from_raw(pid), sig);
        }
    }
}

impl Inner {
    /// Spawns the shim in its cgroup (and, with a bridge, its own network
    /// namespace plugged in): everything of a task's start that does not
    /// depend on the task.
    ///
    /// `record` (the task's directory, or the sandbox's own under `warm/`)
    /// gets the cgroup's name before the cgroup exists, so that a crash at
    /// any point leaves the next agent a way to remove it.
    async fn sandbox(
        &self,
        key: &str,
        record: &Path,
        cgroup_name: &str,
        limits: Limits,
        bridge: Option<&Bridge>,
    ) -> Result<Sandbox, String> {
        std::fs::create_dir_all(record)
            .and_then(|()| std::fs::write(record.join("cgroup"), cgroup_name))
            .map_err(|e| format!("recording the task's cgroup in {}: {e}", record.display()))?;
        let (error_read, error_write): (OwnedFd, OwnedFd) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("creating a pipe: {e}"))?;
        let error_raw = error_write.as_raw_fd();
        // The spec goes over a pipe: argv and the environment are readable
        // by other users (and by the task, as its /proc/1/cmdline).
        let (spec_read, spec_write): (OwnedFd, OwnedFd) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("creating a pipe: {e}"))?;
        let spec_raw = spec_read.as_raw_fd();
        let cgroup = TaskCgroup::create(cgroup_name, limits)?;
        let own_netns = bridge.is_some();
        let mut cmd = tokio::process::Command::new(&self.shim_exe);
        cmd.arg("task-shim")
            .env_clear()
            .stdin(Stdio::null())
            // The task's output goes to the agent, which keeps it in memory
            // (see crate::logs); never to a file.
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: between fork and exec only fcntl/dup2/unshare, which are async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                // Both onto their fixed numbers; the spec's first, so that
                // placing the error pipe cannot clobber it (nor the other way).
                let spec_tmp = libc::fcntl(spec_raw, libc::F_DUPFD_CLOEXEC, 10);
                let error_tmp = libc::fcntl(error_raw, libc::F_DUPFD_CLOEXEC, 10);
                if spec_tmp < 0 || error_tmp < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::dup2(error_tmp, ERROR_FD) < 0 || libc::dup2(spec_tmp, SPEC_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The task's own network namespace, made here so that the
                // agent can plug it in before the shim reads its spec.
                if own_netns && libc::unshare(libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                cgroup.remove().await;
                return Err(format!("starting the task shim: {e}"));
            }
        };
        drop(error_write);
        drop(spec_read);
        // (Never 0: written to cgroup.procs, 0 would move the agent itself.)
        let Some(pid) = child.id().filter(|p| *p != 0) else {
            let _ = child.kill().await;
            cgroup.remove().await;
            return Err("the task shim exited at once".into());
        };
        // The shim goes into the task's cgroups from here, while its network
        // is plumbed (a cgroup v1 move waits for an RCU grace period, ~8 ms);
        // it reads nothing of its spec, so forks nothing, before both are done.
        let dirs = cgroup.dirs().to_vec();
        let joined = tokio::task::spawn_blocking(move || {
            for dir in &dirs {
                std::fs::write(dir.join("cgroup.procs"), pid.to_string())
                    .map_err(|e| format!("putting the task in its cgroup {}: {e}", dir.display()))?;
            }
            Ok::<(), String>(())
        });
        let attached = async {
            match bridge {
                Some(b) => b.attach(key, pid).await.map(Some),
                None => Ok(None),
            }
        };
        let (joined, attached) = tokio::join!(joined, attached);
        let joined = joined.unwrap_or_else(|e| Err(e.to_string()));
        match (joined, attached) {
            (Ok(()), Ok(endpoint)) => Ok(Sandbox {
                key: key.to_string(),
                child,
                pid,
                cgroup,
                cgroup_name: cgroup_name.to_string(),
                endpoint,
                spec_write,
                error_read,
            }),
            (joined, attached) => {
                // (A failed attach has undone itself; a done one is undone here.)
                if let (Some(b), Ok(Some(endpoint))) = (bridge, &attached) {
                    b.detach(key, Some(endpoint)).await;
                }
                let _ = child.kill().await;
                cgroup.remove().await;
                Err(joined.err().or(attached.err()).unwrap_or_default())
            }
        }
    }

    /// Ends a sandbox that will run no task.
    async fn dispose(&self, mut sandbox: Sandbox) {
        let _ = sandbox.child.kill().await;
        if let Some(bridge) = self.bridge.get() {
            bridge.detach(&sandbox.key, sandbox.endpoint.as_ref()).await;
        }
        sandbox.cgroup.remove().await;
        let _ = std::fs::remove_dir_all(warm_record(&self.exec_root, &sandbox.key));
    }
}

/// Where a sandbox made ahead is recorded (`cgroup` and `pid`, as in a
/// task's directory) until a task takes it: `<exec root>/warm/<key>`,
/// beside the tasks' directories.
fn warm_record(exec_root: &Path, key: &str) -> PathBuf {
    exec_root.join("warm").join(key)
}

impl ProcessExecutor {
    pub fn new(exec_root: &Path, shim_exe: PathBuf, warm_target: usize, userns: Option<super::userns::Remap>) -> Self {
        Self {
            inner: Arc::new(Inner {
                exec_root: exec_root.to_path_buf(),
                shim_exe,
                bridge: tokio::sync::OnceCell::new(),
                overlays: Overlays::new(exec_root),
                warm: Mutex::default(),
                warm_target,
                refilling: Mutex::default(),
                closed: AtomicBool::new(false),
                userns,
            }),
        }
    }

    async fn bridge(&self) -> Result<&Bridge, String> {
        self.bridge
            .get_or_try_init(|| Bridge::setup(&self.exec_root))
            .await
            .map_err(|e| format!("setting up the node's task bridge: {e}"))
    }

    /// Makes sandboxes ahead up to the target, in the background.
    fn refill(&self) {
        let mut refilling = lock(&self.refilling);
        if self.closed.load(Ordering::SeqCst) || refilling.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        let inner = self.inner.clone();
        *refilling = Some(tokio::spawn(async move {
            while !inner.closed.load(Ordering::SeqCst) && lock(&inner.warm).len() < inner.warm_target {
                let Some(bridge) = inner.bridge.get() else { break };
                let key = format!("warm-{}", swarmkeep_crypto::new_id());
                let record = warm_record(&inner.exec_root, &key);
                match inner
                    .sandbox(&key, &record, &container_id(&key), Limits::default(), Some(bridge))
                    .await
                {
                    Ok(sandbox) => {
                        // Found and ended by the next agent if this one dies.
                        let recorded = std::fs::write(record.join("pid"), pid_record(sandbox.pid));
                        // Pushed only while not closed, under the lock
                        // drain_warm takes after closing.
                        let refused = {
                            let mut warm = lock(&inner.warm);
                            if recorded.is_ok() && !inner.closed.load(Ordering::SeqCst) {
                                warm.push(sandbox);
                                None
                            } else {
                                Some(sandbox)
                            }
                        };
                        if let Some(sandbox) = refused {
                            inner.dispose(sandbox).await;
                            break;
                        }
                    }
                    Err(e) => {
                        let _ = std::fs::remove_dir_all(&record);
                        tracing::debug!(error = %e, "making a sandbox ahead failed");
                        break;
                    }
                }
            }
        }));
    }

    /// A sandbox made ahead, made the task's: its limits set, its lease
    /// renamed. None when there is none (or it is no longer usable).
    async fn take_warm(&self, run: &TaskRun, bridge: &Bridge) -> Option<Sandbox> {
        loop {
            let mut sandbox = lock(&self.warm).pop()?;
            let alive = matches!(sandbox.child.try_wait(), Ok(None));
            let plugged = match &sandbox.endpoint {
                Some(e) => bridge.port_exists(e),
                None => false,
            };
            // (A few small cgroup files, written in place: no blocking pool.)
            let limited = alive
                && plugged
                && TaskCgroup::apply_limits(sandbox.cgroup.dirs(), run.limits)
                    .map_err(|e| tracing::debug!(error = %e, "a sandbox made ahead could not take the task's limits"))
                    .is_ok();
            // Its port's anti-spoofing entry, again: the firewall may have
            // been flushed since it was made (a fresh start fails then; so
            // must this one). Idempotent, one netlink round trip.
            let admitted = limited
                && match &sandbox.endpoint {
                    Some(e) => bridge
                        .admit(e)
                        .await
                        .map_err(|e| tracing::warn!(error = %e, "a sandbox made ahead lost its firewall entry"))
                        .is_ok(),
                    None => false,
                };
            // The task's directory names the cgroup before the sandbox's
            // record goes: a crash in between leaves it findable.
            let recorded = admitted
                && std::fs::write(
                    task_dir(&self.exec_root, &run.task_id).join("cgroup"),
                    &sandbox.cgroup_name,
                )
                .is_ok();
            if !recorded {
                self.dispose(sandbox).await;
                continue;
            }
            let _ = std::fs::remove_dir_all(warm_record(&self.exec_root, &sandbox.key));
            bridge.rekey(&sandbox.key, &run.task_id);
            sandbox.key = run.task_id.clone();
            return Some(sandbox);
        }
    }

    /// Ends the sandboxes made ahead (daemon shutdown).
    pub async fn drain_warm(&self) {
        self.closed.store(true, Ordering::SeqCst);
        // A sandbox being made finishes (and, seeing `closed`, ends itself)
        // before the bridge may go.
        let refilling = lock(&self.refilling).take();
        if let Some(handle) = refilling {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), handle).await;
        }
        let warm = std::mem::take(&mut *lock(&self.warm));
        for sandbox in warm {
            self.dispose(sandbox).await;
        }
    }

    /// The overlay networks of the node's tasks.
    pub fn overlays(&self) -> &Overlays {
        &self.overlays
    }

    /// Frees what the ended task held: its addresses, its cgroup.
    pub async fn finish(&self, task: &RunningTask) {
        self.overlays.detach(&task.task_id).await;
        if let Some(bridge) = self.bridge.get() {
            crate::network::host_ports::unpublish(bridge.name(), &task.published).await;
            bridge.detach(&task.task_id, task.endpoint.as_ref()).await;
        }
        task.cgroup.remove().await;
    }

    /// Removes the node's task bridge and overlays (daemon shutdown, no
    /// task left).
    pub async fn shutdown(&self) {
        self.overlays.teardown().await;
        if let Some(bridge) = self.bridge.get() {
            bridge.teardown().await;
        }
    }

    /// `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf` for the task, in
    /// its directory (bound into its root by the shim).
    fn etc_files(
        &self,
        dir: &Path,
        run: &TaskRun,
        hostname: &str,
        address: Option<std::net::Ipv4Addr>,
    ) -> Result<Vec<(PathBuf, PathBuf)>, String> {
        let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let (hosts, resolv) = match run.network {
            NetworkMode::Bridge if !run.overlays.is_empty() => (
                hosts_file(address, hostname, &run.sandbox.hosts),
                // The embedded server stays the nameserver; `--dns` servers
                // are what it asks (as Docker's).
                with_dns(
                    &overlay_resolv_conf(&host_resolv),
                    &swarmkeep_api::control::DnsConfig {
                        nameservers: Vec::new(),
                        ..run.sandbox.dns.clone()
                    },
                ),
            ),
            NetworkMode::Bridge => (
                hosts_file(address, hostname, &run.sandbox.hosts),
                with_dns(&resolv_conf(&host_resolv), &run.sandbox.dns),
            ),
            NetworkMode::Host => (
                std::fs::read_to_string("/etc/hosts").unwrap_or_default(),
                with_dns(&host_resolv, &run.sandbox.dns),
            ),
        };
        let mut out = Vec::new();
        for (name, text) in [
            ("hostname", format!("{hostname}\n")),
            ("hosts", hosts),
            ("resolv.conf", resolv),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
            if let Some(remap) = &self.userns {
                let (uid, gid) = remap.root();
                std::os::unix::fs::chown(&path, Some(uid), Some(gid))
                    .map_err(|e| format!("writing {}: {e}", path.display()))?;
            }
            out.push((path, PathBuf::from("/etc").join(name)));
        }
        Ok(out)
    }

    /// Starts the task; fails with the shim's own words if it could not get
    /// as far as exec'ing the command.
    pub async fn start(&self, run: &TaskRun) -> Result<RunningTask, String> {
        let t0 = std::time::Instant::now();
        let ms = |t: std::time::Instant| t.elapsed().as_secs_f64() * 1000.0;
        let dir = task_dir(&self.exec_root, &run.task_id);
        let (root, upper, work) = (dir.join("root"), dir.join("upper"), dir.join("work"));
        for d in [&root, &upper, &work] {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(d)
                .map_err(|e| format!("creating {}: {e}", d.display()))?;
        }
        // The upper dir's own mode is the task's `/`: 0755, as Docker's
        // (the task directory around it stays 0700).
        std::fs::set_permissions(&upper, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .map_err(|e| format!("creating {}: {e}", upper.display()))?;
        // With a user namespace, the task's `/` and what is written there
        // belong to its (remapped) root.
        if let Some(remap) = &self.userns {
            let (uid, gid) = remap.root();
            std::os::unix::fs::chown(&upper, Some(uid), Some(gid))
                .map_err(|e| format!("creating {}: {e}", upper.display()))?;
        }
        let mut env = run.env.clone();
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
        }
        let hostname = match (run.network, run.hostname.as_str()) {
            (_, h) if !h.is_empty() => h.to_string(),
            (NetworkMode::Host, _) => nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
            (NetworkMode::Bridge, _) => run.container_id.chars().take(12).collect(),
        };
        if !env.iter().any(|e| e.starts_with("HOSTNAME=")) {
            env.push(format!("HOSTNAME={hostname}"));
        }
        let bridge = match run.network {
            NetworkMode::Bridge => Some(self.bridge().await?),
            NetworkMode::Host => None,
        };
        let task_env = env.clone();
        let mut spec = ShimSpec {
            root,
            layers: run.layers.clone(),
            upper,
            work,
            secrets_dir: run.secrets_dir.clone(),
            files: run.files.clone(),
            binds: run.binds.clone(),
            volumes: run.volumes.clone(),
            tmpfs: run.tmpfs.clone(),
            argv: run.argv.clone(),
            env,
            workdir: run.workdir.clone(),
            creds: Credentials {
                user: run.user.clone(),
                groups: run.sandbox.groups.clone(),
                caps: run.sandbox.caps.clone(),
            },
            hostname: hostname.clone(),
            etc_files: Vec::new(),
            read_only_root: run.read_only,
            tty: run.tty,
            rlimits: run.sandbox.rlimits.clone(),
            sysctls: run.sandbox.sysctls.clone(),
            userns: self.userns.clone(),
            host_network: run.network == NetworkMode::Host,
        };
        let prepared = ms(t0);
        let warm = match bridge {
            Some(b) => self.take_warm(run, b).await,
            None => None,
        };
        let from_warm = warm.is_some();
        let sandbox = match warm {
            Some(s) => s,
            None => {
                self.sandbox(&run.task_id, &dir, &run.container_id, run.limits, bridge)
                    .await?
            }
        };
        let Sandbox {
            child,
            pid,
            cgroup,
            endpoint,
            spec_write,
            error_read: read_end,
            ..
        } = sandbox;
        let attached = ms(t0);
        let mut task = RunningTask {
            pid,
            child,
            task_id: run.task_id.clone(),
            endpoint,
            cgroup,
            hostname: hostname.clone(),
            env: task_env,
            published: Vec::new(),
        };
        // Its overlay networks, before it runs anything; on the node's
        // bridge it then talks to no other such task.
        let isolated = match (run.overlays.is_empty(), bridge, task.endpoint.as_ref()) {
            (false, Some(b), Some(e)) => b.isolate(e).await,
            _ => Ok(()),
        };
        if let Err(e) = isolated {
            let _ = task.child.kill().await;
            self.finish(&task).await;
            return Err(e);
        }
        if !run.overlays.is_empty()
            && let Err(e) = self
                .overlays
                .attach(&run.task_id, pid, &run.overlays, dns_servers(&run.sandbox.dns))
                .await
        {
            let _ = task.child.kill().await;
            self.finish(&task).await;
            return Err(format!("attaching the task to its networks: {e}"));
        }
        // On internal networks only it keeps no leg on the node's bridge.
        if crate::network::internal_only(&run.overlays)
            && let (Some(b), Some(endpoint)) = (bridge, task.endpoint.take())
        {
            b.detach(&run.task_id, Some(&endpoint)).await;
            if !run.host_ports.is_empty() {
                let _ = task.child.kill().await;
                self.finish(&task).await;
                return Err("a task on internal networks only cannot publish ports on its node".into());
            }
        }
        // Its host-mode ports (on the node's own network a task binds them itself).
        if let (Some(b), Some(e)) = (bridge, task.endpoint.as_ref())
            && !run.host_ports.is_empty()
        {
            match crate::network::host_ports::publish(b.name(), e.address, &run.host_ports).await {
                Ok(published) => task.published = published,
                Err(e) => {
                    let _ = task.child.kill().await;
                    self.finish(&task).await;
                    return Err(e);
                }
            }
        }
        // Docker's /etc/hosts names the container by its first overlay address.
        let address = run
            .overlays
            .first()
            .map(|o| o.address)
            .or(task.endpoint.as_ref().map(|e| e.address));
        let etc = self.etc_files(&dir, run, &hostname, address);
        let passed = etc.and_then(|files| {
            spec.etc_files = files;
            let spec = serde_json::to_string(&spec).map_err(|e| e.to_string())?;
            let mut spec_write = std::fs::File::from(spec_write);
            std::io::Write::write_all(&mut spec_write, spec.as_bytes())
                .map_err(|e| format!("passing the task spec: {e}"))
        });
        if let Err(e) = passed {
            let _ = task.child.kill().await;
            self.finish(&task).await;
            return Err(e);
        }
        // EOF once the shim exec'd the command (the fd is close-on-exec
        // there) or exited; anything read is its error.
        let report = tokio::task::spawn_blocking(move || {
            let mut text = String::new();
            let _ = std::fs::File::from(read_end).read_to_string(&mut text);
            text
        })
        .await
        .unwrap_or_default();
        if !report.is_empty() {
            let _ = task.child.wait().await;
            self.finish(&task).await;
            return Err(report);
        }
        tracing::debug!(
            task = %run.task_id, from_warm, prepared, attached, exec = ms(t0),
            "task start phases (ms since start)"
        );
        let _ = std::fs::write(dir.join("pid"), pid_record(pid));
        if bridge.is_some() {
            self.refill();
        }
        Ok(task)
    }
}

/// The service's `--dns` servers that are addresses.
fn dns_servers(dns: &swarmkeep_api::control::DnsConfig) -> Vec<std::net::IpAddr> {
    dns.nameservers.iter().filter_map(|s| s.parse().ok()).collect()
}

/// What `cleanup_stale` finds of a shim: its PID and start time (its
/// cgroup's name is in the `cgroup` file beside it).
fn pid_record(pid: u32) -> String {
    format!("{pid} {}", start_time(pid).unwrap_or_default())
}

/// A process's (state, start time): fields 3 and 22 of /proc/<pid>/stat.
fn stat(pid: u32) -> Option<(String, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.to_string();
    Some((state, fields.nth(18)?.parse().ok()?))
}

/// A process's start time, to tell it from a later process that got the
/// same PID.
pub fn start_time(pid: u32) -> Option<u64> {
    stat(pid).map(|(_, start)| start)
}

/// Whether `pid` is still the process that started at `start` and has not
/// exited (a zombie has left its cgroups).
fn live(pid: u32, start: u64) -> bool {
    stat(pid).is_some_and(|(state, s)| state != "Z" && s == start)
}

/// Kills what a previous run of the agent left in `exec_root` (after a crash):
/// the task processes it recorded, then every mount, then the directories.
pub fn cleanup_stale(exec_root: &Path) {
    let tasks = exec_root.join("tasks");
    let warm = exec_root.join("warm");
    // Each task's directory, each sandbox made ahead's: `cgroup` (written
    // before the cgroup is made) and `pid` (once the shim runs).
    let mut records = Vec::new();
    for dir in [&tasks, &warm] {
        if let Ok(entries) = std::fs::read_dir(dir) {
            records.extend(
                entries
                    .flatten()
                    .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path())),
            );
        }
    }
    let mut container_ids = Vec::new();
    let mut killed = Vec::new();
    for (name, record) in records {
        // The cgroup is named after the container, or after the sandbox
        // made ahead (that the task took); only a hex name is a cgroup's.
        let cgroup = std::fs::read_to_string(record.join("cgroup"))
            .ok()
            .filter(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_hexdigit()));
        container_ids.push(cgroup.unwrap_or_else(|| super::container_id(&name)));
        let Ok(text) = std::fs::read_to_string(record.join("pid")) else {
            continue;
        };
        let mut it = text.split_whitespace();
        let (Some(pid), Some(start)) = (
            it.next().and_then(|p| p.parse::<u32>().ok()),
            it.next().and_then(|s| s.parse::<u64>().ok()),
        ) else {
            continue;
        };
        if start_time(pid) == Some(start) {
            tracing::info!(task = %name, pid, "stopping a task left by a previous agent");
            if let Ok(p) = i32::try_from(pid) {
                // (A sandbox made ahead has no group of its own yet.)
                let _ = nix::sys::signal::kill(Pid::from_raw(p), Signal::SIGKILL);
                let _ = killpg(Pid::from_raw(p), Signal::SIGKILL);
                killed.push((pid, start));
            }
        }
    }
    // Their cgroups can go once they have exited (a moment after SIGKILL).
    for _ in 0..100 {
        if killed.iter().all(|(pid, start)| !live(*pid, *start)) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    crate::mounts::unmount_all_under(&tasks);
    super::cgroup::cleanup_stale(&container_ids);
    for dir in [&tasks, &warm] {
        if let Err(e) = std::fs::remove_dir_all(dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %dir.display(), error = %e, "removing stale task directories failed");
        }
    }
    Overlays::cleanup_stale(exec_root);
}
