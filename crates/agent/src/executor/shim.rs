//! The task shim: `swarmkeepd task-shim` runs in a fresh process
//! (single-threaded, unlike the agent), reads its spec from a pipe (never
//! argv or the environment, which other users and the task itself could
//! read), gives the task its own mount and PID namespaces and a root made of
//! its image — an overlay of the image's layers with a per-task upper
//! directory — drops the capabilities Docker drops (and CAP_MKNOD), then
//! execs the task's command. It stays as the task's parent, so its exit code
//! is the task's.
//!
//! The host's tree is never visible to the task: the root is entered with
//! pivot_root and the old root detached. The task's secret mount is cloned
//! (open_tree) before that and attached read-only at `/run/secrets` and at
//! each absolute target inside the new root, so a target is made inside the
//! task's own upper directory and never on the host.

use std::convert::Infallible;
use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount};
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
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub workdir: String,
    pub user: String,
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
    let spec = match serde_json::from_str::<ShimSpec>(&spec_json) {
        Ok(s) => s,
        Err(e) => return fail(&mut report, format!("invalid task spec: {e}")),
    };
    // Its own session (the agent stops the task by signalling the group),
    // mount namespace and PID namespace.
    let setup = nix::unistd::setsid().map_err(io("starting a session")).and_then(|_| {
        unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID).map_err(io("creating the task's namespaces"))
    });
    if let Err(e) = setup {
        return fail(&mut report, e);
    }
    // SAFETY: the shim is single-threaded (it runs before any runtime).
    match unsafe { nix::unistd::fork() } {
        Err(e) => fail(&mut report, format!("fork: {e}")),
        Ok(ForkResult::Child) => std::process::exit(init(&spec, report)),
        Ok(ForkResult::Parent { child }) => {
            drop(report);
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
fn init(spec: &ShimSpec, mut report: std::fs::File) -> i32 {
    if let Err(e) = prepare_root(spec) {
        return fail(&mut report, e);
    }
    // SAFETY: still single-threaded.
    match unsafe { nix::unistd::fork() } {
        Err(e) => fail(&mut report, format!("fork: {e}")),
        Ok(ForkResult::Child) => match exec_task(spec) {
            Ok(never) => match never {},
            Err(e) => fail(&mut report, e),
        },
        Ok(ForkResult::Parent { child }) => {
            drop(report);
            loop {
                match waitpid(Pid::from_raw(-1), None) {
                    Ok(WaitStatus::Exited(pid, code)) if pid == child => return code,
                    Ok(WaitStatus::Signaled(pid, sig, _)) if pid == child => return 128 + sig as i32,
                    Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                    Err(_) => return 255,
                }
            }
        }
    }
}

fn prepare_root(spec: &ShimSpec) -> Result<(), String> {
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(io("making mounts private"))?;
    // The task's secret mounts, cloned while the host's tree is still here.
    let secrets = spec.secrets_dir.as_deref().map(clone_read_only).transpose()?;
    let files = spec
        .files
        .iter()
        .map(|(src, target)| Ok((clone_read_only(src)?, target.clone())))
        .collect::<Result<Vec<_>, String>>()?;
    // The service's bind mounts: the host paths it named, and only them.
    let binds = spec
        .binds
        .iter()
        .map(|(src, target, ro)| {
            if !src.exists() {
                return Err(format!(
                    "invalid mount config for type \"bind\": bind source path does not exist: {}",
                    src.display()
                ));
            }
            let dir = src.is_dir();
            Ok((clone_tree(src, true, *ro)?, target.clone(), dir))
        })
        .collect::<Result<Vec<_>, String>>()?;
    if spec.layers.is_empty() {
        return Err("the image has no layers".into());
    }
    let lower = spec
        .layers
        .iter()
        .rev()
        .map(|l| l.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(":");
    let options = format!(
        "lowerdir={lower},upperdir={},workdir={}",
        spec.upper.display(),
        spec.work.display()
    );
    let root = &spec.root;
    // nodev: a device node an image carries (a disk, say) cannot be opened
    // — there is no device cgroup yet; the task's /dev is its own tmpfs.
    mount(
        Some("overlay"),
        root,
        Some("overlay"),
        MsFlags::MS_NODEV,
        Some(options.as_str()),
    )
    .map_err(io("mounting the task's root"))?;
    private_proc_and_dev(root)?;
    // pivot_root, then detach the old root: nothing of the host's tree is
    // left in the namespace to climb back to.
    nix::unistd::chdir(root).map_err(io("entering the task's root"))?;
    nix::unistd::pivot_root(".", ".").map_err(io("pivot_root"))?;
    nix::mount::umount2(".", MntFlags::MNT_DETACH).map_err(io("detaching the host's root"))?;
    nix::unistd::chdir("/").map_err(io("entering the task's root"))?;
    // Inside the task's root now: paths (and any symlink in them) resolve
    // there, and what is made lands in the task's upper directory.
    for (tree, target, dir) in binds {
        attach(tree, &target, dir)?;
    }
    if let Some(tree) = secrets {
        attach(tree, Path::new("/run/secrets"), true)?;
    }
    for (tree, target) in files {
        attach(tree, &target, false)?;
    }
    let workdir = if spec.workdir.is_empty() { "/" } else { &spec.workdir };
    std::fs::create_dir_all(workdir).map_err(io(format!("creating working directory {workdir}")))?;
    nix::unistd::chdir(workdir).map_err(io(format!("changing to working directory {workdir}")))?;
    Ok(())
}

/// A detached, read-only (nosuid, nodev, noexec) copy of the mount at or
/// containing `src`, limited to `src` (open_tree with OPEN_TREE_CLONE): how
/// a task gets its secrets.
fn clone_read_only(src: &Path) -> Result<OwnedFd, String> {
    clone_tree(src, false, true)
}

/// A detached copy of `src` (with the mounts under it when `recursive`),
/// read-only, nosuid, nodev and noexec when `read_only`.
fn clone_tree(src: &Path, recursive: bool, read_only: bool) -> Result<OwnedFd, String> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    const AT_RECURSIVE: libc::c_uint = 0x8000;
    const AT_EMPTY_PATH: libc::c_uint = 0x1000;
    const MOUNT_ATTR_RDONLY: u64 = 0x1;
    const MOUNT_ATTR_NOSUID: u64 = 0x2;
    const MOUNT_ATTR_NODEV: u64 = 0x4;
    const MOUNT_ATTR_NOEXEC: u64 = 0x8;
    let path = CString::new(src.as_os_str().as_encoded_bytes()).map_err(io("path"))?;
    // SAFETY: a NUL-terminated path; the fd returned is owned below.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            path.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | if recursive { AT_RECURSIVE } else { 0 },
        )
    };
    if fd < 0 {
        return Err(format!(
            "cloning {}: {}",
            src.display(),
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: open_tree returned a new fd.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    if !read_only {
        return Ok(fd);
    }
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let empty = CString::default();
    // SAFETY: a live fd, an empty path with AT_EMPTY_PATH, and a mount_attr of the size passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            empty.as_ptr(),
            AT_EMPTY_PATH | if recursive { AT_RECURSIVE } else { 0 },
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc != 0 {
        return Err(format!(
            "making {} read-only: {}",
            src.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(fd)
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Attaches a cloned tree at `target` (absolute, inside the task's root),
/// making the mount point (a directory or an empty file) where missing.
fn attach(tree: OwnedFd, target: &Path, dir: bool) -> Result<(), String> {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(io(format!("target {}", target.display())))?;
    }
    match std::fs::symlink_metadata(target) {
        Ok(md) if md.is_dir() != dir => {
            return Err(format!(
                "target {}: exists as a {}",
                target.display(),
                if md.is_dir() { "directory" } else { "file" }
            ));
        }
        Ok(_) => {}
        Err(_) if dir => std::fs::create_dir(target).map_err(io(format!("target {}", target.display())))?,
        Err(_) => {
            std::fs::File::create(target).map_err(io(format!("target {}", target.display())))?;
        }
    }
    let to = CString::new(target.as_os_str().as_encoded_bytes()).map_err(io("path"))?;
    let empty = CString::default();
    // SAFETY: a live mount fd, NUL-terminated paths.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if rc != 0 {
        return Err(format!(
            "mounting at {}: {}",
            target.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// `dir` inside the new root, before pivot_root: a real directory (an
/// image's symlink there would point into the host's tree).
fn own_dir(root: &Path, name: &str) -> Result<PathBuf, String> {
    let dir = root.join(name);
    match std::fs::symlink_metadata(&dir) {
        Ok(md) if md.is_dir() => Ok(dir),
        Ok(_) => {
            std::fs::remove_file(&dir).map_err(io(format!("replacing the image's /{name}")))?;
            std::fs::create_dir(&dir).map_err(io(format!("creating /{name}")))?;
            Ok(dir)
        }
        Err(_) => {
            std::fs::create_dir(&dir).map_err(io(format!("creating /{name}")))?;
            Ok(dir)
        }
    }
}

/// A /proc of the task's own PID namespace (no other process, the agent's
/// included, is visible) and a /dev with only the harmless devices.
fn private_proc_and_dev(root: &Path) -> Result<(), String> {
    let proc_dir = own_dir(root, "proc")?;
    mount(
        Some("proc"),
        &proc_dir,
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(io("mounting the task's /proc"))?;
    let dev = own_dir(root, "dev")?;
    mount(
        Some("swarmkeep-dev"),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("mode=0755"),
    )
    .map_err(io("mounting the task's /dev"))?;
    for name in ["null", "zero", "full", "random", "urandom", "tty"] {
        let host = Path::new("/dev").join(name);
        if !host.exists() {
            continue;
        }
        let dst = dev.join(name);
        std::fs::File::create(&dst).map_err(io(format!("creating /dev/{name}")))?;
        mount(Some(&host), &dst, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .map_err(io(format!("binding /dev/{name}")))?;
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let _ = std::os::unix::fs::symlink(target, dev.join(link));
    }
    let shm = dev.join("shm");
    if std::fs::create_dir(&shm).is_ok() {
        mount(
            Some("shm"),
            &shm,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some("mode=1777,size=65536k"),
        )
        .map_err(io("mounting /dev/shm"))?;
    }
    Ok(())
}

/// Docker's default capability set, less CAP_MKNOD (there is no device
/// cgroup here to make device nodes harmless) and CAP_SYS_CHROOT.
const KEPT_CAPS: [u32; 12] = [0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 29, 31];

fn drop_capabilities() -> Result<(), String> {
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(40);
    for cap in 0..=last {
        if !KEPT_CAPS.contains(&cap) {
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

/// Sets the effective, permitted and inheritable sets to [`KEPT_CAPS`].
fn limit_capabilities() -> Result<(), String> {
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
    for cap in KEPT_CAPS {
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

fn exec_task(spec: &ShimSpec) -> Result<Infallible, String> {
    drop_capabilities()?;
    set_user(&spec.user)?;
    if nix::unistd::geteuid().is_root() {
        limit_capabilities()?;
    }
    let argv: Vec<CString> = spec
        .argv
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(io("command"))?;
    let env: Vec<CString> = spec
        .env
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(io("environment"))?;
    if argv.is_empty() {
        return Err("No command specified".into());
    }
    let path = spec
        .env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    let resolved = resolve_program(&spec.argv[0], path);
    let resolved = CString::new(resolved.as_bytes()).map_err(io("command"))?;
    Err(match nix::unistd::execve(&resolved, &argv, &env) {
        Ok(never) => match never {},
        Err(e) => format!("starting {}: {e}", spec.argv[0]),
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

fn set_user(user: &str) -> Result<(), String> {
    if user.is_empty() {
        return Ok(());
    }
    let (u, g) = user.split_once(':').unwrap_or((user, ""));
    let uid: u32 = u
        .parse()
        .map_err(|_| format!("user {user:?}: only numeric uid[:gid] is supported"))?;
    let gid: u32 = if g.is_empty() {
        uid
    } else {
        g.parse().map_err(|_| format!("user {user:?}: gid must be numeric"))?
    };
    nix::unistd::setgroups(&[]).map_err(io("dropping supplementary groups"))?;
    nix::unistd::setgid(nix::unistd::Gid::from_raw(gid)).map_err(io("setgid"))?;
    nix::unistd::setuid(nix::unistd::Uid::from_raw(uid)).map_err(io("setuid"))?;
    Ok(())
}
