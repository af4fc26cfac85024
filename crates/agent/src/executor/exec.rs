//! `swarmkeepd task-exec`: a command run inside a running task (`docker
//! exec`). A fresh single-threaded process reads its spec from a pipe, joins
//! the task's cgroups and namespaces (those of the task's shim: IPC, UTS,
//! network, cgroup, the PID namespace for its child, and last the mount
//! namespace, which puts it at the task's root), then forks the command
//! with the same restrictions as the task's own processes: Docker's
//! capabilities, no_new_privs, Docker's seccomp profile.
//!
//! With a TTY, the pseudo-terminal is the task's own (its `/dev/pts`): the
//! master is handed to the agent over a unix socket, the command gets the
//! slave as its controlling terminal. Without, the command inherits this
//! process's stdio pipes. Either way this process waits and exits with the
//! command's code; 126 when the command could not be started, 127 when it
//! was not found (Docker's).

use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use nix::sched::{CloneFlags, setns};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::ForkResult;
use serde::{Deserialize, Serialize};

use super::shim::{ERROR_FD, SPEC_FD};

/// The unix socket the pseudo-terminal's master is sent over (TTY only).
pub const PTY_FD: i32 = 5;

#[derive(Debug, Serialize, Deserialize)]
pub struct ExecSpec {
    /// The task shim's PID: its namespaces are the task's.
    pub pid: u32,
    /// Its start time (/proc/<pid>/stat field 22): a process that got the
    /// PID after the task ended is never joined.
    pub start_time: u64,
    pub cgroups: Vec<PathBuf>,
    pub argv: Vec<String>,
    pub env: Vec<String>,
    /// The task's credentials, its user replaced by `docker exec -u`'s.
    pub creds: super::shim::Credentials,
    pub workdir: String,
    pub tty: bool,
}

fn io<E: std::fmt::Display>(what: impl std::fmt::Display) -> impl FnOnce(E) -> String {
    move |e| format!("{what}: {e}")
}

fn fail(report: &mut std::fs::File, e: String, code: i32) -> i32 {
    let _ = report.write_all(e.as_bytes());
    code
}

pub fn main() -> i32 {
    // SAFETY: the agent placed these fds for this process; nothing else owns them.
    let mut report = unsafe { std::fs::File::from(OwnedFd::from_raw_fd(ERROR_FD)) };
    let _ = nix::fcntl::fcntl(&report, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC));
    let mut spec_pipe = unsafe { std::fs::File::from(OwnedFd::from_raw_fd(SPEC_FD)) };
    let mut text = String::new();
    if let Err(e) = std::io::Read::read_to_string(&mut spec_pipe, &mut text) {
        return fail(&mut report, format!("reading the exec spec: {e}"), 126);
    }
    drop(spec_pipe);
    let spec = match serde_json::from_str::<ExecSpec>(&text) {
        Ok(s) => s,
        Err(e) => return fail(&mut report, format!("invalid exec spec: {e}"), 126),
    };
    let pty_socket = spec
        .tty
        // SAFETY: as above, the agent passed the socket at PTY_FD with a TTY.
        .then(|| unsafe { OwnedFd::from_raw_fd(PTY_FD) });
    // Nothing else the daemon inherited reaches the task (a directory fd
    // would be a way out of its root).
    super::shim::close_from(if spec.tty { PTY_FD + 1 } else { SPEC_FD });
    let master = match enter(&spec).and_then(|_| pty_socket.map(send_pty).transpose()) {
        Ok(m) => m,
        Err(e) => return fail(&mut report, e, 126),
    };
    // SAFETY: single-threaded.
    match unsafe { nix::unistd::fork() } {
        Err(e) => fail(&mut report, format!("fork: {e}"), 126),
        Ok(ForkResult::Child) => {
            let e = match run(&spec, master.as_ref().map(|(_, slave)| slave.as_str())) {
                Ok(never) => match never {},
                Err(e) => e,
            };
            let code = if e.contains("not found") { 127 } else { 126 };
            std::process::exit(fail(&mut report, e, code))
        }
        Ok(ForkResult::Parent { child }) => {
            drop(report);
            drop(master);
            loop {
                match waitpid(child, None) {
                    Ok(WaitStatus::Exited(_, code)) => return code,
                    Ok(WaitStatus::Signaled(_, sig, _)) => return 128 + sig as i32,
                    Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                    Err(_) => return 255,
                }
            }
        }
    }
}

/// Joins the task's cgroups and namespaces (the mount namespace last: it
/// moves this process to the task's root).
fn enter(spec: &ExecSpec) -> Result<(), String> {
    let kinds = [
        ("ipc", CloneFlags::CLONE_NEWIPC),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("net", CloneFlags::CLONE_NEWNET),
        ("cgroup", CloneFlags::CLONE_NEWCGROUP),
        ("pid_for_children", CloneFlags::CLONE_NEWPID),
        ("mnt", CloneFlags::CLONE_NEWNS),
    ];
    // Opened first: once in the task's mount namespace, /proc is the task's.
    let files = kinds
        .iter()
        .map(|(name, flag)| {
            std::fs::File::open(format!("/proc/{}/ns/{name}", spec.pid))
                .map(|f| (f, *flag, *name))
                .map_err(io("the task is not running"))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let own = |pid: &str| std::fs::metadata(format!("/proc/{pid}/ns/user")).map(|m| (m.dev(), m.ino()));
    let userns = match (own("self"), own(&spec.pid.to_string())) {
        (Ok(mine), Ok(theirs)) if mine != theirs => {
            Some(std::fs::File::open(format!("/proc/{}/ns/user", spec.pid)).map_err(io("the task is not running"))?)
        }
        (Ok(_), Ok(_)) => None,
        _ => return Err("the task is not running".into()),
    };
    // Checked after the files are open: if the PID is still the task's
    // shim now, the namespaces opened are the task's.
    if super::process::start_time(spec.pid) != Some(spec.start_time) {
        return Err("the task is not running".into());
    }
    for dir in &spec.cgroups {
        std::fs::write(dir.join("cgroup.procs"), "0").map_err(io("joining the task's cgroup"))?;
    }
    for (file, flag, name) in files {
        setns(&file, flag).map_err(io(format!("joining the task's {name} namespace")))?;
    }
    // The task's user namespace (`--userns-remap`) last: joining it gives
    // up every privilege over the others.
    if let Some(userns) = userns {
        super::userns::enter(&OwnedFd::from(userns))?;
    }
    Ok(())
}

/// Opens a pseudo-terminal of the task's own devpts and sends its master
/// to the agent; returns it with the slave's path.
fn send_pty(socket: OwnedFd) -> Result<(OwnedFd, String), String> {
    use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
    let master = posix_openpt(nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_NOCTTY | nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(io("opening the task's /dev/ptmx"))?;
    grantpt(&master).map_err(io("grantpt"))?;
    unlockpt(&master).map_err(io("unlockpt"))?;
    let slave = ptsname_r(&master).map_err(io("ptsname"))?;
    let fds = [master.as_raw_fd()];
    let cmsg = [nix::sys::socket::ControlMessage::ScmRights(&fds)];
    let iov = [std::io::IoSlice::new(b"pty")];
    nix::sys::socket::sendmsg::<()>(
        socket.as_raw_fd(),
        &iov,
        &cmsg,
        nix::sys::socket::MsgFlags::empty(),
        None,
    )
    .map_err(io("passing the terminal to the agent"))?;
    // SAFETY: posix_openpt's master, owned from here on.
    let master = unsafe { OwnedFd::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(master)) };
    Ok((master, slave))
}

/// In the child: a session of its own (with the terminal as its
/// controlling one), the working directory, then the command.
fn run(spec: &ExecSpec, slave: Option<&str>) -> Result<std::convert::Infallible, String> {
    nix::unistd::setsid().map_err(io("setsid"))?;
    if let Some(path) = slave {
        let c = CString::new(path).map_err(io("terminal"))?;
        // SAFETY: a NUL-terminated path; the fd is placed on 0, 1 and 2 below.
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDWR) };
        if fd < 0 {
            return Err(format!("opening {path}: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: ioctl/dup2 on fds this process owns.
        unsafe {
            libc::ioctl(fd, libc::TIOCSCTTY, 0);
            for target in 0..3 {
                libc::dup2(fd, target);
            }
            if fd > 2 {
                libc::close(fd);
            }
        }
    }
    let workdir = if spec.workdir.is_empty() { "/" } else { &spec.workdir };
    nix::unistd::chdir(workdir).map_err(io(format!("changing to working directory {workdir}")))?;
    super::shim::exec_command(&spec.argv, &spec.env, &spec.creds)
}
