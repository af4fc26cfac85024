//! The agent's side of `exec`: starts `swarmkeepd task-exec` (see
//! `exec.rs`) with the command's spec on a pipe, and hands back its stdio
//! pipes or, with a TTY, the pseudo-terminal's master.

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Stdio;

use super::ProcessExecutor;
use super::exec::{ExecSpec, PTY_FD};
use super::shim::{ERROR_FD, SPEC_FD};

/// A command running inside a task.
pub struct ExecProcess {
    /// The helper's host PID (the command is its only child).
    pub pid: u32,
    child: tokio::process::Child,
    pub stdin: Option<tokio::process::ChildStdin>,
    pub stdout: Option<tokio::process::ChildStdout>,
    pub stderr: Option<tokio::process::ChildStderr>,
    /// The pseudo-terminal's master (TTY only).
    pub pty: Option<std::fs::File>,
}

impl ExecProcess {
    pub fn pty_reader(&self) -> Option<tokio::fs::File> {
        self.pty.as_ref()?.try_clone().ok().map(tokio::fs::File::from_std)
    }

    pub fn pty_writer(&self) -> Option<tokio::fs::File> {
        self.pty_reader()
    }

    /// Kills the command (its whole process group: it leads a session of
    /// its own) and the helper.
    pub fn kill(&mut self) {
        let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", self.pid)).unwrap_or_default();
        for child in children.split_whitespace().filter_map(|c| c.parse::<i32>().ok()) {
            // SAFETY: kill(2) with a PID read just now from the helper's
            // children; the helper has not reaped it (it waits for it).
            unsafe {
                libc::kill(-child, libc::SIGKILL);
                libc::kill(child, libc::SIGKILL);
            }
        }
        let _ = self.child.start_kill();
    }

    /// The command's exit code (the helper exits with it).
    pub async fn wait(&mut self) -> i32 {
        use std::os::unix::process::ExitStatusExt;
        match self.child.wait().await {
            Ok(s) => s.code().or_else(|| s.signal().map(|sig| 128 + sig)).unwrap_or(-1),
            Err(_) => -1,
        }
    }
}

/// Sets the terminal's size (`docker exec -it`'s resize).
pub fn resize(pty: &std::fs::File, height: u32, width: u32) {
    let size = libc::winsize {
        ws_row: u16::try_from(height).unwrap_or(u16::MAX),
        ws_col: u16::try_from(width).unwrap_or(u16::MAX),
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ with a winsize on a live terminal fd.
    unsafe {
        libc::ioctl(pty.as_raw_fd(), libc::TIOCSWINSZ, &size);
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), (String, i32)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| (format!("creating a pipe: {e}"), 126))
}

/// Receives the master fd the helper sends (None if it sent none).
fn receive_fd(socket: &OwnedFd) -> Option<OwnedFd> {
    let mut buf = [0u8; 8];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = nix::sys::socket::recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        nix::sys::socket::MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .ok()?;
    for cmsg in msg.cmsgs().ok()? {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = cmsg
            && let Some(fd) = fds.first()
        {
            // SAFETY: the kernel installed this fd for us.
            return Some(unsafe { OwnedFd::from_raw_fd(*fd) });
        }
    }
    None
}

impl ProcessExecutor {
    /// Runs `spec` inside the task; fails with the helper's words and
    /// Docker's code (126, or 127 for a command not found).
    pub async fn exec(&self, spec: ExecSpec, attach_stdin: bool) -> Result<ExecProcess, (String, i32)> {
        let (report_read, report_write) = pipe()?;
        let (spec_read, spec_write) = pipe()?;
        let sockets = if spec.tty {
            Some(
                nix::sys::socket::socketpair(
                    nix::sys::socket::AddressFamily::Unix,
                    nix::sys::socket::SockType::Stream,
                    None,
                    nix::sys::socket::SockFlag::SOCK_CLOEXEC,
                )
                .map_err(|e| (format!("creating a socket pair: {e}"), 126))?,
            )
        } else {
            None
        };
        let (report_raw, spec_raw) = (report_write.as_raw_fd(), spec_read.as_raw_fd());
        let pty_raw = sockets.as_ref().map(|(_, theirs)| theirs.as_raw_fd()).unwrap_or(-1);
        let mut cmd = tokio::process::Command::new(&self.shim_exe);
        cmd.arg("task-exec").env_clear();
        if spec.tty {
            cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        } else {
            cmd.stdin(if attach_stdin { Stdio::piped() } else { Stdio::null() })
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
        }
        // SAFETY: between fork and exec only fcntl/dup2, async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                let mut moved = [(report_raw, ERROR_FD), (spec_raw, SPEC_FD), (pty_raw, PTY_FD)];
                for (fd, _) in moved.iter_mut() {
                    if *fd >= 0 {
                        *fd = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 10);
                        if *fd < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                }
                for (fd, target) in moved {
                    if fd >= 0 && libc::dup2(fd, target) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| (format!("starting the exec helper: {e}"), 126))?;
        drop(report_write);
        drop(spec_read);
        let pid = child.id().unwrap_or(0);
        let text = serde_json::to_string(&spec).map_err(|e| (e.to_string(), 126))?;
        let mut spec_file = std::fs::File::from(spec_write);
        let _ = std::io::Write::write_all(&mut spec_file, text.as_bytes());
        drop(spec_file);
        let ours = sockets.map(|(ours, theirs)| {
            drop(theirs);
            ours
        });
        let waited = tokio::task::spawn_blocking(move || {
            let pty = ours.as_ref().and_then(receive_fd);
            let mut report = String::new();
            let _ = std::fs::File::from(report_read).read_to_string(&mut report);
            (pty, report)
        })
        .await;
        let (pty, report) = waited.unwrap_or((None, "the exec helper failed".into()));
        if !report.is_empty() {
            use std::os::unix::process::ExitStatusExt;
            let code = match child.wait().await {
                Ok(s) => s.code().or_else(|| s.signal().map(|sig| 128 + sig)).unwrap_or(126),
                Err(_) => 126,
            };
            return Err((report, code));
        }
        Ok(ExecProcess {
            pid,
            stdin: child.stdin.take(),
            stdout: child.stdout.take(),
            stderr: child.stderr.take(),
            child,
            pty: pty.map(std::fs::File::from),
        })
    }
}
