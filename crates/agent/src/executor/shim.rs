//! The task shim: `swarmkeepd task-shim` runs in a fresh process
//! (single-threaded, unlike the agent), reads its spec from a pipe (never
//! argv or the environment, which other users and the task itself could
//! read; the agent has put it in the task's cgroups), gives the task its own mount, PID, UTS,
//! IPC and cgroup namespaces (the agent made its network namespace) and a
//! root made of its image (see [`super::rootfs`]), then starts the command
//! with Docker's default capabilities, `no_new_privs` and Docker's default
//! seccomp profile. It stays as the task's parent, so its exit code is the
//! task's.

use std::convert::Infallible;
use std::ffi::CString;
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::{SigHandler, Signal};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};
use serde::{Deserialize, Serialize};

/// The fd the agent passes for the shim's error report; closed on exec.
pub const ERROR_FD: i32 = 3;
/// The fd the shim reads its spec from (JSON, to EOF).
pub const SPEC_FD: i32 = 4;

#[derive(Debug, Serialize, Deserialize)]
pub struct ShimSpec {
    /// An empty host directory the task's root is mounted on.
    pub root: PathBuf,
    /// The image's layer directories, bottom first.
    pub layers: Vec<PathBuf>,
    /// The task's own upper and work directories for the overlay.
    pub upper: PathBuf,
    pub work: PathBuf,
    pub secrets_dir: Option<PathBuf>,
    pub files: Vec<(PathBuf, PathBuf)>,
    /// (host path, path in the task, read-only).
    pub binds: Vec<(PathBuf, PathBuf, bool)>,
    pub volumes: Vec<super::volumes::VolumeMount>,
    pub tmpfs: Vec<super::volumes::TmpfsMount>,
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub workdir: String,
    pub creds: Credentials,
    /// The task's hostname (its UTS namespace's).
    pub hostname: String,
    /// Files the agent wrote for the task, bound read-write at their paths
    /// (`/etc/hostname`, `/etc/hosts`, `/etc/resolv.conf`), as Docker's.
    pub etc_files: Vec<(PathBuf, PathBuf)>,
    pub read_only_root: bool,
    /// Resource limits (resource, soft, hard), Docker's `--ulimit`.
    pub rlimits: Vec<(u32, u64, u64)>,
    /// Namespaced sysctls (`--sysctl`), set in the task's own namespaces.
    pub sysctls: Vec<(String, String)>,
    /// `--tty`: the command's stdin, stdout and stderr are the slave of a
    /// pseudo-terminal of the task's own devpts (its controlling terminal);
    /// PID 1 copies the master to its stdout, the task's log.
    #[serde(default)]
    pub tty: bool,
    /// `--userns-remap`: the task's users are these host ranges.
    #[serde(default)]
    pub userns: Option<super::userns::Remap>,
    /// `--network host`: the task is in the node's own network namespace.
    #[serde(default)]
    pub host_network: bool,
}

/// Who the command runs as and what it may do.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Credentials {
    /// `name|uid[:group|gid]`, resolved in the task's root (see [`super::user`]).
    pub user: String,
    /// `--group`: supplementary groups (names or IDs).
    pub groups: Vec<String>,
    /// The capabilities it keeps (numbers).
    pub caps: Vec<u32>,
}

fn io<E: std::fmt::Display>(what: impl std::fmt::Display) -> impl FnOnce(E) -> String {
    move |e| format!("{what}: {e}")
}

/// Runs the shim; returns the task's exit code (or 127, after reporting the
/// error on [`ERROR_FD`], if the task could not be started).
pub fn main() -> i32 {
    // SAFETY: the agent dup2'ed the write end of its error pipe to ERROR_FD
    // and the read end of the spec pipe to SPEC_FD for this process; nothing
    // else owns them.
    let mut report = unsafe { std::fs::File::from(OwnedFd::from_raw_fd(ERROR_FD)) };
    let _ = nix::fcntl::fcntl(&report, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC));
    let mut spec_pipe = unsafe { std::fs::File::from(OwnedFd::from_raw_fd(SPEC_FD)) };
    let mut spec_json = String::new();
    if let Err(e) = std::io::Read::read_to_string(&mut spec_pipe, &mut spec_json) {
        return fail(&mut report, format!("reading the task spec: {e}"));
    }
    drop(spec_pipe);
    // Nothing the daemon inherited (from whatever started it) reaches the
    // task: a directory fd would be a way out of its root.
    close_from(ERROR_FD + 1);
    let spec = match serde_json::from_str::<ShimSpec>(&spec_json) {
        Ok(s) => s,
        Err(e) => return fail(&mut report, format!("invalid task spec: {e}")),
    };
    // The user namespace first: its helper child must not be the PID
    // namespace's first process.
    let userns = match spec.userns.as_ref().map(super::userns::Remap::create).transpose() {
        Ok(u) => u,
        Err(e) => return fail(&mut report, e),
    };
    if let Err(e) = enter_namespaces(&spec) {
        return fail(&mut report, e);
    }
    // SAFETY: the shim is single-threaded (it runs before any runtime).
    match unsafe { nix::unistd::fork() } {
        Err(e) => fail(&mut report, format!("fork: {e}")),
        Ok(ForkResult::Child) => std::process::exit(init(&spec, report, userns.as_ref())),
        Ok(ForkResult::Parent { child }) => {
            drop(report);
            // This process only waits from here on; in the task's user
            // namespace, where `exec` finds it, it keeps no privilege over
            // the host's.
            if let Some(userns) = &userns
                && super::userns::enter(userns).is_err()
            {
                let _ = nix::sys::signal::kill(child, Signal::SIGKILL);
            }
            // The task's group gets the agent's signals directly; this
            // process only waits, so its exit is the task's.
            for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP, Signal::SIGQUIT] {
                // SAFETY: setting a disposition to SIG_IGN installs no handler code.
                let _ = unsafe { nix::sys::signal::signal(sig, SigHandler::SigIgn) };
            }
            wait_code(child)
        }
    }
}

/// Its own session (the agent stops the task by signalling the group),
/// then its namespaces: mount, PID (for the next child), UTS (with the
/// task's hostname), IPC and cgroup (the task's cgroup, which the agent put
/// this process in before passing the spec, is its root).
fn enter_namespaces(spec: &ShimSpec) -> Result<(), String> {
    nix::unistd::setsid().map_err(io("starting a session"))?;
    unshare(
        CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWPID
            | CloneFlags::CLONE_NEWUTS
            | CloneFlags::CLONE_NEWIPC
            | CloneFlags::CLONE_NEWCGROUP,
    )
    .map_err(io("creating the task's namespaces"))?;
    if !spec.hostname.is_empty() {
        nix::unistd::sethostname(&spec.hostname).map_err(io("setting the task's hostname"))?;
    }
    // Still the host's /proc, but /proc/sys/net and the IPC sysctls answer
    // for the namespaces of the process writing: the task's own.
    for (name, value) in &spec.sysctls {
        swarmkeep_api::sandbox::check_sysctl(name)?;
        // A task in the node's network namespace (`--network host`) would
        // set the node's own: refused as runc does.
        if name.starts_with("net.") && spec.host_network {
            return Err(format!("sysctl {name:?} is not allowed in the hosts network namespace"));
        }
        let path = Path::new("/proc/sys").join(name.replace('.', "/"));
        std::fs::write(&path, value).map_err(io(format!("setting sysctl {name}")))?;
    }
    for (resource, soft, hard) in &spec.rlimits {
        let limit = libc::rlimit {
            rlim_cur: *soft,
            rlim_max: *hard,
        };
        // SAFETY: setrlimit with a valid rlimit struct.
        if unsafe { libc::setrlimit(*resource as _, &limit) } != 0 {
            return Err(format!(
                "setting ulimit {resource}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// Closes every file descriptor from `first` up.
pub fn close_from(first: i32) {
    // SAFETY: close_range with plain integers; nothing here holds those fds.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            0 as libc::c_uint,
        );
    }
}

fn fail(report: &mut std::fs::File, e: String) -> i32 {
    let _ = report.write_all(e.as_bytes());
    127
}

/// The exit code of `pid`, Docker style (128 + signal when killed).
fn wait_code(pid: Pid) -> i32 {
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::Signaled(_, sig, _)) => return 128 + sig as i32,
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return 255,
        }
    }
}

/// PID 1 of the task's PID namespace: builds the task's root, starts the
/// task, reaps orphans, and exits with the task's code (which ends every
/// process left in the namespace).
fn init(spec: &ShimSpec, mut report: std::fs::File, userns: Option<&OwnedFd>) -> i32 {
    if let Err(e) = super::rootfs::prepare_root(spec, userns) {
        return fail(&mut report, e);
    }
    // The task's own devpts is mounted: its pseudo-terminal comes from there.
    let pty = if spec.tty {
        match open_pty() {
            Ok(p) => Some(p),
            Err(e) => return fail(&mut report, e),
        }
    } else {
        None
    };
    // With a terminal, signals wait (blocked) from the fork until PID 1
    // forwards them: one sent as the command starts is not lost.
    let all = nix::sys::signal::SigSet::all();
    if pty.is_some() {
        let _ = nix::sys::signal::sigprocmask(nix::sys::signal::SigmaskHow::SIG_BLOCK, Some(&all), None);
    }
    // SAFETY: still single-threaded.
    match unsafe { nix::unistd::fork() } {
        Err(e) => fail(&mut report, format!("fork: {e}")),
        Ok(ForkResult::Child) => {
            if let Some((master, slave)) = pty {
                drop(master);
                let _ = nix::sys::signal::sigprocmask(nix::sys::signal::SigmaskHow::SIG_UNBLOCK, Some(&all), None);
                if let Err(e) = take_terminal(slave) {
                    return fail(&mut report, e);
                }
            }
            if let Some(userns) = userns
                && let Err(e) = super::userns::enter(userns)
            {
                return fail(&mut report, e);
            }
            match exec_command(&spec.argv, &spec.env, &spec.creds) {
                Ok(never) => match never {},
                Err(e) => fail(&mut report, e),
            }
        }
        Ok(ForkResult::Parent { child }) => {
            drop(report);
            let relay = pty.and_then(|(master, slave)| {
                drop(slave);
                // The command leads its own session (its terminal's): the
                // agent's signals to this group reach it through here.
                forward_signals(child);
                let _ = nix::sys::signal::sigprocmask(nix::sys::signal::SigmaskHow::SIG_UNBLOCK, Some(&all), None);
                // A thread, so that orphans are reaped meanwhile; if the
                // task's pids limit leaves none, the relay runs here until
                // the terminal is released, then the reaping.
                let master = std::sync::Arc::new(master);
                let theirs = master.clone();
                match std::thread::Builder::new().spawn(move || relay_output(&theirs)) {
                    Ok(thread) => Some(thread),
                    Err(_) => {
                        relay_output(&master);
                        None
                    }
                }
            });
            let code = loop {
                match waitpid(Pid::from_raw(-1), None) {
                    Ok(WaitStatus::Exited(pid, code)) if pid == child => break code,
                    Ok(WaitStatus::Signaled(pid, sig, _)) if pid == child => break 128 + sig as i32,
                    Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                    Err(_) => break 255,
                }
            };
            // What the command wrote last is still in the terminal: read
            // for a moment (a process it left holding the terminal ends
            // with this one anyway).
            if let Some(relay) = relay {
                let deadline = std::time::Instant::now() + std::time::Duration::from_millis(200);
                while !relay.is_finished() && std::time::Instant::now() < deadline {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
            }
            code
        }
    }
}

/// A pseudo-terminal of the task's devpts: (master, slave).
fn open_pty() -> Result<(OwnedFd, OwnedFd), String> {
    use nix::fcntl::OFlag;
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(io("opening the task's terminal"))?;
    nix::pty::grantpt(&master).map_err(io("opening the task's terminal"))?;
    nix::pty::unlockpt(&master).map_err(io("opening the task's terminal"))?;
    let name = nix::pty::ptsname_r(&master).map_err(io("opening the task's terminal"))?;
    let slave = nix::fcntl::open(
        name.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(io("opening the task's terminal"))?;
    // SAFETY: posix_openpt returned a new fd that PtyMaster owns; it is
    // handed over whole.
    let master = unsafe { OwnedFd::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(master)) };
    Ok((master, slave))
}

/// In the command's process: its own session with `slave` as controlling
/// terminal and as stdin, stdout and stderr.
fn take_terminal(slave: OwnedFd) -> Result<(), String> {
    use std::os::fd::AsRawFd;
    nix::unistd::setsid().map_err(io("starting the command's session"))?;
    // SAFETY: TIOCSCTTY on a terminal fd with an integer argument.
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } != 0 {
        return Err(format!(
            "taking the task's terminal: {}",
            std::io::Error::last_os_error()
        ));
    }
    for fd in 0..=2 {
        // SAFETY: dup2 onto the standard descriptors.
        if unsafe { libc::dup2(slave.as_raw_fd(), fd) } < 0 {
            return Err(format!(
                "taking the task's terminal: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// The child whose process group PID 1 forwards signals to.
static FORWARD_TO: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let pid = FORWARD_TO.load(std::sync::atomic::Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(-pid, sig) };
    }
}

/// Every signal the agent may stop the task with goes on to the command's
/// process group (it has its own session with a terminal).
fn forward_signals(child: Pid) {
    FORWARD_TO.store(child.as_raw(), std::sync::atomic::Ordering::Relaxed);
    for sig in Signal::iterator() {
        if matches!(sig, Signal::SIGKILL | Signal::SIGSTOP | Signal::SIGCHLD) {
            continue;
        }
        // SAFETY: the handler only calls kill, which is async-signal-safe.
        let _ = unsafe { nix::sys::signal::signal(sig, SigHandler::Handler(forward)) };
    }
}

/// Copies the terminal's output to stdout (the task's log) until the last
/// holder of its slave is gone.
fn relay_output(master: &OwnedFd) {
    let Ok(dup) = master.try_clone() else { return };
    let mut master = std::fs::File::from(dup);
    let mut out = std::io::stdout().lock();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match std::io::Read::read(&mut master, &mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if out.write_all(&buf[..n]).and_then(|()| out.flush()).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // EIO: no process holds the slave any more.
            Err(_) => break,
        }
    }
}

/// Drops from the bounding set every capability not in `caps` (by default
/// [`swarmkeep_api::sandbox::DEFAULT_CAPABILITIES`]: Docker's less MKNOD —
/// a device node made in a bind-mounted host directory would be usable by
/// the host's users; in the task every writable mount is nodev).
fn drop_capabilities(caps: &[u32]) -> Result<(), String> {
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(40);
    for cap in 0..=last {
        if !caps.contains(&cap) {
            // SAFETY: prctl with integer arguments only.
            let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
            if rc != 0 {
                return Err(format!(
                    "dropping capability {cap}: {}",
                    std::io::Error::last_os_error()
                ));
            }
        }
    }
    Ok(())
}

/// Sets the effective and permitted sets to `caps`, the inheritable one to
/// none.
fn limit_capabilities(caps: &[u32]) -> Result<(), String> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut mask = [0u32; 2];
    for cap in caps.iter().filter(|c| **c < 64) {
        mask[(cap / 32) as usize] |= 1 << (cap % 32);
    }
    let header = Header {
        version: 0x2008_0522,
        pid: 0,
    };
    let data = [
        Data {
            effective: mask[0],
            permitted: mask[0],
            inheritable: 0,
        },
        Data {
            effective: mask[1],
            permitted: mask[1],
            inheritable: 0,
        },
    ];
    // SAFETY: capset with a v3 header and two data words, as the ABI asks.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &header as *const Header, data.as_ptr()) };
    if rc != 0 {
        return Err(format!("limiting capabilities: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Execs `argv` with its capabilities, no_new_privs and Docker's seccomp
/// profile, as its user: the last step of a task's start and of an exec
/// (the task's root is already `/`).
pub(super) fn exec_command(argv_in: &[String], env_in: &[String], creds: &Credentials) -> Result<Infallible, String> {
    let seccomp = super::seccomp::default_profile(&creds.caps)?;
    let user = super::user::resolve(
        &creds.user,
        &creds.groups,
        &read_small("/etc/passwd"),
        &read_small("/etc/group"),
    )?;
    let mut env_in = env_in.to_vec();
    if !env_in.iter().any(|e| e.starts_with("HOME=")) {
        env_in.push(format!("HOME={}", user.home));
    }
    let env_in = &env_in;
    drop_capabilities(&creds.caps)?;
    set_user(&user)?;
    if nix::unistd::geteuid().is_root() {
        limit_capabilities(&creds.caps)?;
    }
    let argv: Vec<CString> = argv_in
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(io("command"))?;
    let env: Vec<CString> = env_in
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(io("environment"))?;
    if argv.is_empty() {
        return Err("No command specified".into());
    }
    let path = env_in
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    let resolved = resolve_program(&argv_in[0], path);
    let resolved = CString::new(resolved.as_bytes()).map_err(io("command"))?;
    // no_new_privs: a setuid binary in the image (or planted in a bind
    // mount) gains nothing; it also lets the filter be installed.
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(format!("setting no_new_privs: {}", std::io::Error::last_os_error()));
    }
    super::seccomp::install(&seccomp)?;
    Err(match nix::unistd::execve(&resolved, &argv, &env) {
        Ok(never) => match never {},
        Err(nix::errno::Errno::ENOENT) if !argv_in[0].contains('/') => {
            format!("exec: \"{}\": executable file not found in $PATH", argv_in[0])
        }
        Err(e) => format!("exec: \"{}\": {}", argv_in[0], e.desc()),
    })
}

fn resolve_program(program: &str, path: &str) -> String {
    if program.contains('/') {
        return program.to_string();
    }
    for dir in path.split(':') {
        let candidate = Path::new(dir).join(program);
        if candidate.is_file() {
            return candidate.to_string_lossy().into_owned();
        }
    }
    program.to_string()
}

/// A small regular file of the task's root (`/etc/passwd`), or nothing:
/// never blocks on a FIFO the task put there, never reads more than 1 MiB.
fn read_small(path: &str) -> String {
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    else {
        return String::new();
    };
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return String::new();
    }
    let mut text = String::new();
    let _ = std::io::Read::read_to_string(&mut std::io::Read::take(file, 1 << 20), &mut text);
    text
}

fn set_user(user: &super::user::ExecUser) -> Result<(), String> {
    let groups: Vec<nix::unistd::Gid> = user.groups.iter().map(|g| nix::unistd::Gid::from_raw(*g)).collect();
    nix::unistd::setgroups(&groups).map_err(io("setting supplementary groups"))?;
    nix::unistd::setgid(nix::unistd::Gid::from_raw(user.gid)).map_err(io("setgid"))?;
    nix::unistd::setuid(nix::unistd::Uid::from_raw(user.uid)).map_err(io("setuid"))?;
    Ok(())
}
