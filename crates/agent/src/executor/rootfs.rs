//! The task's root filesystem, built by the shim in the task's own mount
//! namespace: an overlay of the image's layers with a per-task upper
//! directory, Docker's `/proc`, `/dev` and `/sys` (masked and read-only
//! paths included), then pivot_root with the host's tree detached, then the
//! secrets, the `/etc` files and the service's bind mounts attached inside.
//!
//! Every mount a task can write to is `nodev`, so a device node made with
//! CAP_MKNOD (which a task holds, as Docker's) cannot be opened: the root,
//! `/dev`, `/dev/shm`, bind mounts. The devices a task can use are the
//! host's own null, zero, full, random, urandom and tty, bound in.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount};

use super::shim::ShimSpec;

fn io<E: std::fmt::Display>(what: impl std::fmt::Display) -> impl FnOnce(E) -> String {
    move |e| format!("{what}: {e}")
}

/// Files under `/proc` hidden behind `/dev/null`, and directories behind an
/// empty read-only tmpfs (Docker's masked paths).
const MASKED_PROC_FILES: [&str; 6] = [
    "kcore",
    "keys",
    "latency_stats",
    "timer_list",
    "timer_stats",
    "sched_debug",
];
const MASKED_PROC_DIRS: [&str; 3] = ["acpi", "asound", "scsi"];
const MASKED_SYS_DIRS: [&str; 2] = ["firmware", "devices/virtual/powercap"];
/// `/proc` paths bound read-only (Docker's read-only paths).
const READ_ONLY_PROC: [&str; 5] = ["bus", "fs", "irq", "sys", "sysrq-trigger"];

/// Builds the root and enters it (the process's cwd is the working
/// directory afterwards).
pub fn prepare_root(spec: &ShimSpec, userns: Option<&OwnedFd>) -> Result<(), String> {
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(io("making mounts private"))?;
    // Everything the task gets from the host is cloned while the host's
    // tree is still here: its secret mount, its /etc files, its bind mounts.
    let secrets = spec.secrets_dir.as_deref().map(clone_read_only).transpose()?;
    let files = spec
        .files
        .iter()
        .map(|(src, target)| Ok((clone_read_only(src)?, target.clone())))
        .collect::<Result<Vec<_>, String>>()?;
    let etc = spec
        .etc_files
        .iter()
        .map(|(src, target)| Ok((clone_tree(src, false, Access::ReadWrite, None)?, target.clone())))
        .collect::<Result<Vec<_>, String>>()?;
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
            let access = if *ro { Access::ReadOnly } else { Access::ReadWrite };
            Ok((clone_tree(src, true, access, None)?, target.clone(), src.is_dir()))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let volumes = spec
        .volumes
        .iter()
        .map(|v| {
            let access = if v.read_only {
                Access::ReadOnly
            } else {
                Access::ReadWrite
            };
            Ok((clone_tree(&v.source, true, access, None)?, v.target.clone()))
        })
        .collect::<Result<Vec<_>, String>>()?;
    if spec.layers.is_empty() {
        return Err("the image has no layers".into());
    }
    // With a user namespace, the layers are seen through idmapped mounts
    // (attached beside the upper directory, in this mount namespace only):
    // the image's root is the task's root.
    let layers = match userns {
        None => spec.layers.clone(),
        Some(userns) => {
            let dir = spec.upper.with_file_name("lower");
            spec.layers
                .iter()
                .enumerate()
                .map(|(i, layer)| {
                    let at = dir.join(i.to_string());
                    attach(clone_tree(layer, false, Access::ReadWrite, Some(userns))?, &at, true)?;
                    Ok(at)
                })
                .collect::<Result<Vec<_>, String>>()?
        }
    };
    let lower = layers
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
    mount(
        Some("overlay"),
        root,
        Some("overlay"),
        MsFlags::MS_NODEV,
        Some(options.as_str()),
    )
    .map_err(io("mounting the task's root"))?;
    for v in spec.volumes.iter().filter(|v| v.copy_up) {
        super::volumes::copy_up(root, &v.target, &v.source)?;
    }
    // What is made for the task belongs to its root (remapped or not).
    let owner = spec.userns.as_ref().map(|m| m.root());
    let tty_gid = spec.userns.as_ref().map_or(Some(5), |m| m.gid(5));
    proc_fs(root)?;
    dev_fs(root, owner, tty_gid)?;
    sys_fs(root)?;
    // pivot_root, then detach the old root: nothing of the host's tree is
    // left in the namespace to climb back to.
    nix::unistd::chdir(root).map_err(io("entering the task's root"))?;
    nix::unistd::pivot_root(".", ".").map_err(io("pivot_root"))?;
    nix::mount::umount2(".", MntFlags::MNT_DETACH).map_err(io("detaching the host's root"))?;
    nix::unistd::chdir("/").map_err(io("entering the task's root"))?;
    // Inside the task's root now: paths (and any symlink in them) resolve
    // there, and what is made lands in the task's upper directory.
    // The service's mounts, parents before what is mounted inside them.
    let mut user_mounts: Vec<(PathBuf, UserMount)> = binds
        .into_iter()
        .map(|(tree, target, dir)| (target, UserMount::Tree(tree, dir)))
        .chain(
            volumes
                .into_iter()
                .map(|(tree, target)| (target, UserMount::Tree(tree, true))),
        )
        .chain(spec.tmpfs.iter().map(|t| (t.target.clone(), UserMount::Tmpfs(t))))
        .collect();
    user_mounts.sort_by_key(|(target, _)| target.components().count());
    for (target, m) in user_mounts {
        match m {
            UserMount::Tree(tree, dir) => attach(tree, &target, dir)?,
            UserMount::Tmpfs(t) => super::volumes::mount_tmpfs(t, owner)?,
        }
    }
    for (tree, target) in etc {
        attach(tree, &target, false)?;
    }
    if let Some(tree) = secrets {
        attach(tree, Path::new("/run/secrets"), true)?;
    }
    for (tree, target) in files {
        attach(tree, &target, false)?;
    }
    let workdir = if spec.workdir.is_empty() { "/" } else { &spec.workdir };
    std::fs::create_dir_all(workdir).map_err(io(format!("creating working directory {workdir}")))?;
    if spec.read_only_root {
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | MsFlags::MS_NODEV,
            None::<&str>,
        )
        .map_err(io("making the root read-only"))?;
    }
    nix::unistd::chdir(workdir).map_err(io(format!("changing to working directory {workdir}")))?;
    Ok(())
}

enum UserMount<'a> {
    /// A cloned bind or volume tree; whether it is a directory.
    Tree(OwnedFd, bool),
    Tmpfs(&'a super::volumes::TmpfsMount),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    ReadOnly,
    ReadWrite,
}

/// A detached, read-only (nosuid, nodev, noexec) copy of the mount at or
/// containing `src`, limited to `src` (open_tree with OPEN_TREE_CLONE): how
/// a task gets its secrets.
fn clone_read_only(src: &Path) -> Result<OwnedFd, String> {
    clone_tree(src, false, Access::ReadOnly, None)
}

/// A detached copy of `src` (with the mounts under it when `recursive`),
/// always nosuid and nodev; read-only and noexec too for `ReadOnly`; its
/// owners seen through `idmap`'s ID maps when given (the host's root's files
/// are that user namespace's root's).
fn clone_tree(src: &Path, recursive: bool, access: Access, idmap: Option<&OwnedFd>) -> Result<OwnedFd, String> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    const AT_RECURSIVE: libc::c_uint = 0x8000;
    const AT_EMPTY_PATH: libc::c_uint = 0x1000;
    const MOUNT_ATTR_RDONLY: u64 = 0x1;
    const MOUNT_ATTR_NOSUID: u64 = 0x2;
    const MOUNT_ATTR_NODEV: u64 = 0x4;
    const MOUNT_ATTR_NOEXEC: u64 = 0x8;
    const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
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
    let attr_set = match access {
        Access::ReadOnly => MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
        Access::ReadWrite => MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
    };
    let attr = MountAttr {
        attr_set: attr_set | if idmap.is_some() { MOUNT_ATTR_IDMAP } else { 0 },
        attr_clr: 0,
        propagation: 0,
        userns_fd: idmap.and_then(|fd| u64::try_from(fd.as_raw_fd()).ok()).unwrap_or(0),
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
            "restricting the mount of {}{}: {}",
            src.display(),
            if idmap.is_some() {
                " (idmapped: does its filesystem support idmapped mounts?)"
            } else {
                ""
            },
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
    const MOVE_MOUNT_T_SYMLINKS: libc::c_uint = 0x10;
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(io(format!("target {}", target.display())))?;
    }
    // Inside the task's root: an image's symlink on the way resolves there,
    // as runc's mount destinations do.
    match std::fs::metadata(target) {
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
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_SYMLINKS,
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

const HIDDEN: MsFlags = MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV).union(MsFlags::MS_NOEXEC);

/// Hides `path` (a file behind the host's /dev/null, a directory behind an
/// empty read-only tmpfs); a path the kernel does not have is skipped.
fn mask(path: &Path) -> Result<(), String> {
    match std::fs::symlink_metadata(path) {
        Ok(md) if md.is_dir() => mount(
            Some("swarmkeep-masked"),
            path,
            Some("tmpfs"),
            HIDDEN | MsFlags::MS_RDONLY,
            Some("size=0"),
        ),
        Ok(_) => mount(Some("/dev/null"), path, None::<&str>, MsFlags::MS_BIND, None::<&str>),
        Err(_) => return Ok(()),
    }
    .map_err(io(format!("masking {}", path.display())))
}

/// Binds `path` onto itself read-only (nosuid, nodev, noexec).
fn read_only(path: &Path) -> Result<(), String> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    mount(
        Some(path),
        path,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .and_then(|_| {
        mount(
            None::<&str>,
            path,
            None::<&str>,
            MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | HIDDEN,
            None::<&str>,
        )
    })
    .map_err(io(format!("making {} read-only", path.display())))
}

/// A /proc of the task's own PID namespace (no other process, the agent's
/// included, is visible), with Docker's masked and read-only paths.
fn proc_fs(root: &Path) -> Result<(), String> {
    let proc_dir = own_dir(root, "proc")?;
    mount(Some("proc"), &proc_dir, Some("proc"), HIDDEN, None::<&str>).map_err(io("mounting the task's /proc"))?;
    for name in READ_ONLY_PROC {
        read_only(&proc_dir.join(name))?;
    }
    for name in MASKED_PROC_FILES.iter().chain(MASKED_PROC_DIRS.iter()) {
        mask(&proc_dir.join(name))?;
    }
    Ok(())
}

/// A /dev with only the harmless devices, a private devpts, /dev/shm and
/// /dev/mqueue (of the task's own IPC namespace).
fn dev_fs(root: &Path, owner: Option<(u32, u32)>, tty_gid: Option<u32>) -> Result<(), String> {
    let dev = own_dir(root, "dev")?;
    let owned = owner.map(|(u, g)| format!(",uid={u},gid={g}")).unwrap_or_default();
    mount(
        Some("tmpfs"),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_STRICTATIME,
        Some(format!("mode=755,size=65536k{owned}").as_str()),
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
        ("ptmx", "pts/ptmx"),
    ] {
        std::os::unix::fs::symlink(target, dev.join(link)).map_err(io(format!("creating /dev/{link}")))?;
    }
    let pts = dev.join("pts");
    std::fs::create_dir(&pts).map_err(io("creating /dev/pts"))?;
    mount(
        Some("devpts"),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        // (`max`: the kernel's pool of terminals is shared by every devpts
        // instance; one task cannot take it all.)
        Some(
            format!(
                "newinstance,ptmxmode=0666,mode=0620{},max=64",
                tty_gid.map(|g| format!(",gid={g}")).unwrap_or_default()
            )
            .as_str(),
        ),
    )
    .map_err(io("mounting /dev/pts"))?;
    let shm = dev.join("shm");
    std::fs::create_dir(&shm).map_err(io("creating /dev/shm"))?;
    mount(
        Some("shm"),
        &shm,
        Some("tmpfs"),
        HIDDEN,
        Some(format!("mode=1777,size=67108864{owned}").as_str()),
    )
    .map_err(io("mounting /dev/shm"))?;
    let mqueue = dev.join("mqueue");
    std::fs::create_dir(&mqueue).map_err(io("creating /dev/mqueue"))?;
    mount(Some("mqueue"), &mqueue, Some("mqueue"), HIDDEN, None::<&str>).map_err(io("mounting /dev/mqueue"))?;
    Ok(())
}

/// A read-only /sys (of the task's own network namespace), firmware and
/// powercap masked.
fn sys_fs(root: &Path) -> Result<(), String> {
    let sys = own_dir(root, "sys")?;
    mount(
        Some("sysfs"),
        &sys,
        Some("sysfs"),
        HIDDEN | MsFlags::MS_RDONLY,
        None::<&str>,
    )
    .map_err(io("mounting the task's /sys"))?;
    for name in MASKED_SYS_DIRS {
        mask(&sys.join(name))?;
    }
    Ok(())
}
