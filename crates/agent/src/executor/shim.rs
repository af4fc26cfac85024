//! The task shim: `swarmkeepd task-shim <spec>` runs in a fresh process
//! (single-threaded, unlike the agent), gives the task its own mount and PID
//! namespaces and root, drops the capabilities Docker drops (and CAP_MKNOD),
//! then execs the task's command. It stays as the task's parent, so its exit
//! code is the task's.
//!
//! The task's root is a tmpfs holding bind mounts of the host's top-level
//! entries, so the task sees the host's filesystem (read-only, but for /tmp
//! and /var/tmp); a directory that needs a new entry (a target that does not
//! exist on the host) is "shadowed" the same way one level down, so nothing
//! is ever created on the host. The task's secret mount is bound read-only at
//! `/run/secrets` and at each absolute target; the agent's exec root and data
//! dir are detached from the namespace and covered; the root is entered with
//! pivot_root and the old root detached.

use std::collections::HashSet;
use std::convert::Infallible;
use std::ffi::CString;
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::{SigHandler, Signal};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};
use serde::{Deserialize, Serialize};

use crate::mounts::mounts_under;

/// The fd the agent passes for the shim's error report; closed on exec.
pub const ERROR_FD: i32 = 3;

#[derive(Debug, Serialize, Deserialize)]
pub struct ShimSpec {
    /// An empty host directory the task's root is built on.
    pub root: PathBuf,
    pub secrets_dir: Option<PathBuf>,
    pub files: Vec<(PathBuf, PathBuf)>,
    /// Host paths the task must not see.
    pub hide: Vec<PathBuf>,
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
pub fn main(spec_json: &str) -> i32 {
    // SAFETY: the agent dup2'ed the write end of its error pipe to ERROR_FD
    // for this process; nothing else owns it.
    let mut report = unsafe { std::fs::File::from(OwnedFd::from_raw_fd(ERROR_FD)) };
    let _ = nix::fcntl::fcntl(&report, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC));
    let spec = match serde_json::from_str::<ShimSpec>(spec_json) {
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
    let root = &spec.root;
    mount(
        Some("swarmkeep-root"),
        root,
        Some("tmpfs"),
        MsFlags::empty(),
        Some("mode=0755"),
    )
    .map_err(io("mounting the task's root"))?;
    populate(root, Path::new("/"), TOP_LEVEL_OWN)?;
    let mut owned: HashSet<PathBuf> = HashSet::from([PathBuf::from("/")]);
    if let Some(dir) = &spec.secrets_dir {
        let dst = ensure(root, Path::new("/run/secrets"), true, &mut owned)?;
        bind_ro(dir, &dst)?;
    }
    for (src, target) in &spec.files {
        let dst = ensure(root, target, false, &mut owned)?;
        bind_ro(src, &dst)?;
    }
    // The host's tree is read-only to the task, but for the scratch dirs.
    set_recursive_readonly(root)?;
    for dir in WRITABLE {
        let inside = root.join(dir.trim_start_matches('/'));
        if Path::new(dir).is_dir() && inside.is_dir() {
            // Replace the read-only bind rather than stack on it.
            detach_all(&inside);
            mount(
                Some(*dir),
                &inside,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(io(format!("binding {dir} writable")))?;
        }
    }
    // The agent's exec root (every task's mount) and data dir: their copies in
    // this namespace are detached, not just covered, then an empty tmpfs
    // stands in their place.
    for h in &spec.hide {
        let inside = root.join(h.strip_prefix("/").unwrap_or(h));
        detach_all(&inside);
        if inside.is_dir() {
            mount(
                Some("swarmkeep-hidden"),
                &inside,
                Some("tmpfs"),
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                Some("size=4k,mode=0000"),
            )
            .map_err(io(format!("hiding {}", h.display())))?;
        }
    }
    private_proc_and_dev(root)?;
    // pivot_root, then detach the old root: unlike chroot, nothing of the
    // host's tree outside the task's root is left in the namespace to climb
    // back to.
    nix::unistd::chdir(root).map_err(io("entering the task's root"))?;
    nix::unistd::pivot_root(".", ".").map_err(io("pivot_root"))?;
    nix::mount::umount2(".", MntFlags::MNT_DETACH).map_err(io("detaching the host's root"))?;
    nix::unistd::chdir("/").map_err(io("entering the task's root"))?;
    let workdir = if spec.workdir.is_empty() { "/" } else { &spec.workdir };
    nix::unistd::chdir(workdir).map_err(io(format!("changing to working directory {workdir}")))?;
    Ok(())
}

/// Host directories a task may write to (as on the host): scratch space.
const WRITABLE: &[&str] = &["/tmp", "/var/tmp"];

/// Detaches every mount at or under `dir`, also those stacked under others
/// at one path (each pass detaches the topmost).
fn detach_all(dir: &Path) {
    for _ in 0..64 {
        let mounts = mounts_under(dir);
        if mounts.is_empty() {
            return;
        }
        for m in mounts {
            let _ = nix::mount::umount2(&m, MntFlags::MNT_DETACH);
        }
    }
}

/// mount_setattr(2) with AT_RECURSIVE: every mount under `dir` read-only.
fn set_recursive_readonly(dir: &Path) -> Result<(), String> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    const MOUNT_ATTR_RDONLY: u64 = 0x1;
    const AT_RECURSIVE: libc::c_uint = 0x8000;
    let path = CString::new(dir.as_os_str().as_encoded_bytes()).map_err(io("path"))?;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: a NUL-terminated path and a mount_attr of the size passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc != 0 {
        return Err(format!(
            "making the task's view of the host read-only: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// A /proc of the task's own PID namespace (no other process, the agent's
/// included, is visible) and a /dev with only the harmless devices.
fn private_proc_and_dev(root: &Path) -> Result<(), String> {
    let proc_dir = root.join("proc");
    let _ = nix::mount::umount2(&proc_dir, MntFlags::MNT_DETACH);
    mount(
        Some("proc"),
        &proc_dir,
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(io("mounting the task's /proc"))?;
    let dev = root.join("dev");
    let _ = nix::mount::umount2(&dev, MntFlags::MNT_DETACH);
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
        return Err("no command: the image's default command is unknown to the process executor; give one".into());
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

/// Top-level directories the task gets its own of (mounted later), so the
/// host's are not copied only to be replaced: fewer mounts per task start.
const TOP_LEVEL_OWN: &[&str] = &["proc", "dev", "tmp"];

/// Fills `dir` (a fresh tmpfs) with binds of the host directory's entries;
/// the names in `own` get an empty directory instead.
fn populate(dir: &Path, host: &Path, own: &[&str]) -> Result<(), String> {
    let entries = std::fs::read_dir(host).map_err(io(format!("reading {}", host.display())))?;
    for entry in entries.flatten() {
        let src = entry.path();
        let dst = dir.join(entry.file_name());
        if own.iter().any(|o| entry.file_name() == *o) {
            let _ = std::fs::create_dir(&dst);
            continue;
        }
        let Ok(md) = std::fs::symlink_metadata(&src) else {
            continue;
        };
        if md.file_type().is_symlink() {
            if let Ok(link) = std::fs::read_link(&src) {
                let _ = std::os::unix::fs::symlink(link, &dst);
            }
        } else if md.is_dir() {
            if std::fs::create_dir(&dst).is_ok() {
                mount(
                    Some(&src),
                    &dst,
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )
                .map_err(io(format!("binding {}", src.display())))?;
            }
        } else if std::fs::File::create(&dst).is_ok() {
            mount(Some(&src), &dst, None::<&str>, MsFlags::MS_BIND, None::<&str>)
                .map_err(io(format!("binding {}", src.display())))?;
        }
    }
    Ok(())
}

/// Makes `path` (absolute, as the task sees it) exist in the task's root
/// without touching the host, and returns where it is on this side.
fn ensure(root: &Path, path: &Path, dir: bool, owned: &mut HashSet<PathBuf>) -> Result<PathBuf, String> {
    let parts: Vec<&std::ffi::OsStr> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(p),
            _ => None,
        })
        .collect();
    let mut cur = PathBuf::from("/");
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let next = cur.join(part);
        let real = root.join(next.strip_prefix("/").unwrap_or(&next));
        match std::fs::symlink_metadata(&real) {
            Ok(md) if md.file_type().is_symlink() => {
                return Err(format!(
                    "target {}: {} is a symbolic link",
                    path.display(),
                    next.display()
                ));
            }
            Ok(md) if !last && !md.is_dir() => {
                return Err(format!(
                    "target {}: {} is not a directory",
                    path.display(),
                    next.display()
                ));
            }
            Ok(md) if last && md.is_dir() != dir => {
                return Err(format!(
                    "target {}: exists as a {}",
                    path.display(),
                    if md.is_dir() { "directory" } else { "file" }
                ));
            }
            Ok(_) => {}
            Err(_) => {
                if !owned.contains(&cur) {
                    shadow(root, &cur)?;
                    owned.insert(cur.clone());
                }
                if dir || !last {
                    std::fs::create_dir(&real).map_err(io(format!("creating {}", next.display())))?;
                    owned.insert(next.clone());
                } else {
                    std::fs::File::create(&real).map_err(io(format!("creating {}", next.display())))?;
                }
            }
        }
        cur = next;
    }
    Ok(root.join(path.strip_prefix("/").unwrap_or(path)))
}

/// Replaces the bind of host directory `dir` in the task's root by a tmpfs
/// holding binds of its entries, so new entries can be made in it.
fn shadow(root: &Path, dir: &Path) -> Result<(), String> {
    let real = root.join(dir.strip_prefix("/").unwrap_or(dir));
    mount(
        Some("swarmkeep-dir"),
        &real,
        Some("tmpfs"),
        MsFlags::empty(),
        Some("mode=0755"),
    )
    .map_err(io(format!("shadowing {}", dir.display())))?;
    populate(&real, dir, &[])
}

fn bind_ro(src: &Path, dst: &Path) -> Result<(), String> {
    mount(Some(src), dst, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .map_err(io(format!("binding {}", dst.display())))?;
    mount(
        None::<&str>,
        dst,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        None::<&str>,
    )
    .map_err(io(format!("making {} read-only", dst.display())))
}
