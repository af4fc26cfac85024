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
use super::shim::{ERROR_FD, SPEC_FD, ShimSpec};
use crate::mounts::task_dir;

pub struct ProcessExecutor {
    exec_root: PathBuf,
    /// The daemon binary, which runs the shim as `task-shim`.
    shim_exe: PathBuf,
}

/// A started task.
pub struct RunningTask {
    pub pid: u32,
    child: tokio::process::Child,
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
        }
    }

    /// Starts the task; fails with the shim's own words if it could not get
    /// as far as exec'ing the command.
    pub async fn start(&self, run: &TaskRun) -> Result<RunningTask, String> {
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
        if !env.iter().any(|e| e.starts_with("HOME=")) {
            env.push("HOME=/root".into());
        }
        let spec = ShimSpec {
            root,
            layers: run.layers.clone(),
            upper,
            work,
            secrets_dir: run.secrets_dir.clone(),
            files: run.files.clone(),
            binds: run.binds.clone(),
            argv: run.argv.clone(),
            env,
            workdir: run.workdir.clone(),
            user: run.user.clone(),
        };
        let spec = serde_json::to_string(&spec).map_err(|e| e.to_string())?;
        let (read_end, write_end): (OwnedFd, OwnedFd) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("creating a pipe: {e}"))?;
        let write_raw = write_end.as_raw_fd();
        // The spec goes over a pipe: argv and the environment are readable
        // by other users (and by the task, as its /proc/1/cmdline).
        let (spec_read, spec_write): (OwnedFd, OwnedFd) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("creating a pipe: {e}"))?;
        let spec_raw = spec_read.as_raw_fd();
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
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| format!("starting the task shim: {e}"))?;
        drop(write_end);
        drop(spec_read);
        let mut spec_write = std::fs::File::from(spec_write);
        let written = std::io::Write::write_all(&mut spec_write, spec.as_bytes());
        drop(spec_write);
        written.map_err(|e| format!("passing the task spec: {e}"))?;
        let pid = child.id().unwrap_or(0);
        // EOF once the shim exec'd the command (the fd is close-on-exec
        // there) or exited; anything read is its error.
        let report = tokio::task::spawn_blocking(move || {
            let mut text = String::new();
            let _ = std::fs::File::from(read_end).read_to_string(&mut text);
            text
        })
        .await
        .unwrap_or_default();
        let mut task = RunningTask { pid, child };
        if !report.is_empty() {
            let _ = task.child.wait().await;
            return Err(report);
        }
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
    if let Ok(entries) = std::fs::read_dir(&tasks) {
        for e in entries.flatten() {
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
    if let Err(e) = std::fs::remove_dir_all(&tasks)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %tasks.display(), error = %e, "removing stale task directories failed");
    }
}
