//! The process executor: the task's command started through the task shim in
//! its own namespaces, on a root made of its image, in its own session (so
//! stopping it stops its whole process group).

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::TaskRun;
use super::cgroup::TaskCgroup;
use super::shim::{Credentials, ERROR_FD, SPEC_FD, ShimSpec};
use crate::mounts::task_dir;
use crate::network::{Bridge, Endpoint, NetworkMode, hosts_file, resolv_conf, with_dns};

pub struct ProcessExecutor {
    exec_root: PathBuf,
    /// The daemon binary, which runs the shim as `task-shim` (and the exec
    /// helper as `task-exec`).
    pub(super) shim_exe: PathBuf,
    /// The node's task bridge, made when the first task needs it.
    bridge: tokio::sync::OnceCell<Bridge>,
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

impl ProcessExecutor {
    pub fn new(exec_root: &Path, shim_exe: PathBuf) -> Self {
        Self {
            exec_root: exec_root.to_path_buf(),
            shim_exe,
            bridge: tokio::sync::OnceCell::new(),
        }
    }

    async fn bridge(&self) -> Result<&Bridge, String> {
        self.bridge
            .get_or_try_init(|| Bridge::setup(&self.exec_root))
            .await
            .map_err(|e| format!("setting up the node's task bridge: {e}"))
    }

    /// Frees what the ended task held: its address, its cgroup.
    pub async fn finish(&self, task: &RunningTask) {
        if let Some(bridge) = self.bridge.get() {
            bridge.detach(&task.task_id, task.endpoint.as_ref()).await;
        }
        task.cgroup.remove().await;
    }

    /// Removes the node's task bridge (daemon shutdown, no task left).
    pub async fn shutdown(&self) {
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
            rlimits: run.sandbox.rlimits.clone(),
            sysctls: run.sandbox.sysctls.clone(),
        };
        let (read_end, write_end): (OwnedFd, OwnedFd) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("creating a pipe: {e}"))?;
        let write_raw = write_end.as_raw_fd();
        // The spec goes over a pipe: argv and the environment are readable
        // by other users (and by the task, as its /proc/1/cmdline).
        let (spec_read, spec_write): (OwnedFd, OwnedFd) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("creating a pipe: {e}"))?;
        let spec_raw = spec_read.as_raw_fd();
        let prepared = ms(t0);
        let cgroup = TaskCgroup::create(&run.container_id, run.limits)?;
        let cgrouped = ms(t0);
        let own_netns = bridge.is_some();
        let mut cmd = tokio::process::Command::new(&self.shim_exe);
        cmd.arg("task-shim")
            .env_clear()
            .stdin(Stdio::null())
            // The task's output goes to the agent, which keeps it in memory
            // (see crate::logs); never to a file.
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: between fork and exec only dup2/fcntl, which are async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                // Both onto their fixed numbers; the spec's first, so that
                // placing the error pipe cannot clobber it (nor the other way).
                let spec_tmp = libc::fcntl(spec_raw, libc::F_DUPFD_CLOEXEC, 10);
                let error_tmp = libc::fcntl(write_raw, libc::F_DUPFD_CLOEXEC, 10);
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
        drop(write_end);
        drop(spec_read);
        let spawned = ms(t0);
        let pid = child.id().unwrap_or(0);
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
                Some(b) => b.attach(&run.task_id, pid).await.map(Some),
                None => Ok(None),
            }
        };
        let (joined, attached) = tokio::join!(joined, attached);
        let joined = joined.unwrap_or_else(|e| Err(e.to_string()));
        let endpoint = match (joined, attached) {
            (Ok(()), Ok(endpoint)) => endpoint,
            (joined, attached) => {
                // (A failed attach has undone itself; a done one is undone here.)
                if let (Some(b), Ok(Some(endpoint))) = (bridge, &attached) {
                    b.detach(&run.task_id, Some(endpoint)).await;
                }
                let _ = child.kill().await;
                cgroup.remove().await;
                return Err(joined.err().or(attached.err()).unwrap_or_default());
            }
        };
        let attached = ms(t0);
        let mut task = RunningTask {
            pid,
            child,
            task_id: run.task_id.clone(),
            endpoint,
            cgroup,
            hostname: hostname.clone(),
            env: task_env,
        };
        let etc = self.etc_files(&dir, run, &hostname, task.endpoint.as_ref().map(|e| e.address));
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
            task = %run.task_id, prepared, cgrouped, spawned, attached, exec = ms(t0),
            "task start phases (ms since start)"
        );
        let _ = std::fs::write(
            dir.join("pid"),
            format!("{pid} {}", start_time(pid).unwrap_or_default()),
        );
        Ok(task)
    }
}

/// A process's start time (field 22 of /proc/<pid>/stat), to tell it from a
/// later process that got the same PID.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    after.split_whitespace().nth(19)?.parse().ok()
}

/// Kills what a previous run of the agent left in `exec_root` (after a crash):
/// the task processes it recorded, then every mount, then the directories.
pub fn cleanup_stale(exec_root: &Path) {
    let tasks = exec_root.join("tasks");
    let mut container_ids = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&tasks) {
        for e in entries.flatten() {
            container_ids.push(super::container_id(&e.file_name().to_string_lossy()));
            let Ok(text) = std::fs::read_to_string(e.path().join("pid")) else {
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
                tracing::info!(task = ?e.file_name(), pid, "stopping a task left by a previous agent");
                if let Ok(p) = i32::try_from(pid) {
                    let _ = killpg(Pid::from_raw(p), Signal::SIGKILL);
                }
            }
        }
    }
    crate::mounts::unmount_all_under(&tasks);
    super::cgroup::cleanup_stale(&container_ids);
    if let Err(e) = std::fs::remove_dir_all(&tasks)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %tasks.display(), error = %e, "removing stale task directories failed");
    }
}
