//! A task's volumes and tmpfs mounts: a named local volume (a directory
//! under the node's data dir, made on first use) is filled with what the
//! image has at its target the first time it is used, as Docker's local
//! driver does (unless `volume-nocopy`); a tmpfs is mounted nosuid, nodev
//! and noexec, as Docker's.
//!
//! The copy reads the image through the task's root with `openat2`'s
//! RESOLVE_IN_ROOT and every step below with O_NOFOLLOW: an image's
//! symlink never leads the copy out of the image.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, SFlag};
use serde::{Deserialize, Serialize};

/// A volume for the shim: its host directory and where the task sees it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VolumeMount {
    pub source: PathBuf,
    pub target: PathBuf,
    pub read_only: bool,
    /// Fill it with the image's content at `target` if it is empty.
    pub copy_up: bool,
}

/// A tmpfs for the shim.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TmpfsMount {
    pub target: PathBuf,
    /// Bytes (0: the kernel's default, half the memory).
    pub size: u64,
    /// Permission bits (0: the kernel's default, 1777).
    pub mode: u32,
    pub read_only: bool,
}

fn io<E: std::fmt::Display>(what: impl std::fmt::Display) -> impl FnOnce(E) -> String {
    move |e| format!("{what}: {e}")
}

const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_IN_ROOT: u64 = 0x10;
const MAX_DEPTH: u32 = 128;

/// `path` (absolute, in the task's view) opened as a directory under `root`,
/// resolved as if `root` were `/`. None if it is not a directory there.
fn open_in_root(root: &Path, path: &Path) -> Result<Option<OwnedFd>, String> {
    let root_fd = nix::fcntl::open(
        root,
        OFlag::O_DIRECTORY | OFlag::O_PATH | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(io("opening the task's root"))?;
    let rel = CString::new(path.as_os_str().as_encoded_bytes()).map_err(io("path"))?;
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let how = OpenHow {
        flags: (libc::O_DIRECTORY | libc::O_RDONLY | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: a live dirfd, a NUL-terminated path and an open_how of the size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root_fd.as_raw_fd(),
            rel.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENOTDIR) => Ok(None),
            _ => Err(format!("opening {} in the image: {e}", path.display())),
        };
    }
    // SAFETY: openat2 returned a new fd.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(fd as i32) }))
}

fn is_empty(dir: &Path) -> Result<bool, String> {
    Ok(std::fs::read_dir(dir)
        .map_err(io(format!("reading volume {}", dir.display())))?
        .next()
        .is_none())
}

/// Fills the volume at `volume` (a host directory the agent made) with the
/// image's content at `target` under `root`, if the volume is empty and
/// the image has a directory there; the volume's root takes that
/// directory's owner and mode.
pub fn copy_up(root: &Path, target: &Path, volume: &Path) -> Result<(), String> {
    if !is_empty(volume)? {
        return Ok(());
    }
    let Some(src) = open_in_root(root, target)? else {
        return Ok(());
    };
    let dst = nix::fcntl::open(
        volume,
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(io(format!("opening volume {}", volume.display())))?;
    copy_dir(&src, &dst, 0).map_err(|e| format!("copying the image's {} into its volume: {e}", target.display()))?;
    let st = nix::sys::stat::fstat(&src).map_err(io("stat"))?;
    nix::unistd::fchown(&dst, Some(st.st_uid.into()), Some(st.st_gid.into())).map_err(io("chown"))?;
    nix::sys::stat::fchmod(&dst, Mode::from_bits_truncate(st.st_mode & 0o1777)).map_err(io("chmod"))?;
    Ok(())
}

fn open_at(dir: &OwnedFd, name: &CStr, flags: OFlag, mode: Mode) -> nix::Result<OwnedFd> {
    nix::fcntl::openat(dir, name, flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, mode)
}

fn copy_dir(src: &OwnedFd, dst: &OwnedFd, depth: u32) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err("too deep".into());
    }
    let listing = nix::unistd::dup(src).map_err(io("dup"))?;
    let mut dir = nix::dir::Dir::from_fd(listing).map_err(io("listing"))?;
    let names: Vec<CString> = dir
        .iter()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_owned())
        .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
        .collect();
    for name in names {
        let st = nix::sys::stat::fstatat(src, name.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW).map_err(io("stat"))?;
        let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
        let perms = Mode::from_bits_truncate(st.st_mode & 0o1777);
        let owner = (Some(st.st_uid.into()), Some(st.st_gid.into()));
        let shown = name.to_string_lossy().into_owned();
        if kind == SFlag::S_IFDIR {
            match nix::sys::stat::mkdirat(dst, name.as_c_str(), Mode::from_bits_truncate(0o700)) {
                Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                Err(e) => return Err(format!("{shown}: {e}")),
            }
            let s = open_at(src, &name, OFlag::O_DIRECTORY | OFlag::O_RDONLY, Mode::empty()).map_err(io(&shown))?;
            let d = open_at(dst, &name, OFlag::O_DIRECTORY | OFlag::O_RDONLY, Mode::empty()).map_err(io(&shown))?;
            copy_dir(&s, &d, depth + 1)?;
            nix::unistd::fchown(&d, owner.0, owner.1).map_err(io(&shown))?;
            nix::sys::stat::fchmod(&d, perms).map_err(io(&shown))?;
        } else if kind == SFlag::S_IFREG {
            let s = open_at(src, &name, OFlag::O_RDONLY, Mode::empty()).map_err(io(&shown))?;
            let d = match open_at(
                dst,
                &name,
                OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL,
                Mode::from_bits_truncate(0o600),
            ) {
                Ok(d) => d,
                // Another task filled it meanwhile.
                Err(nix::errno::Errno::EEXIST) => continue,
                Err(e) => return Err(format!("{shown}: {e}")),
            };
            let (mut from, mut to) = (std::fs::File::from(s), std::fs::File::from(d));
            std::io::copy(&mut from, &mut to).map_err(io(&shown))?;
            nix::unistd::fchown(to.as_fd(), owner.0, owner.1).map_err(io(&shown))?;
            nix::sys::stat::fchmod(to.as_fd(), perms).map_err(io(&shown))?;
        } else if kind == SFlag::S_IFLNK {
            let link = nix::fcntl::readlinkat(src, name.as_c_str()).map_err(io(&shown))?;
            match nix::unistd::symlinkat(link.as_os_str(), dst, name.as_c_str()) {
                Ok(()) => {}
                Err(nix::errno::Errno::EEXIST) => continue,
                Err(e) => return Err(format!("{shown}: {e}")),
            }
            nix::unistd::fchownat(dst, name.as_c_str(), owner.0, owner.1, AtFlags::AT_SYMLINK_NOFOLLOW)
                .map_err(io(&shown))?;
        }
        // Device nodes, FIFOs and sockets are not copied.
    }
    Ok(())
}

/// Mounts a tmpfs at `m.target` (the task's root is `/` now).
/// `owner`: the task's root on the host (with `--userns-remap`).
pub fn mount_tmpfs(m: &TmpfsMount, owner: Option<(u32, u32)>) -> Result<(), String> {
    use nix::mount::{MsFlags, mount};
    std::fs::create_dir_all(&m.target).map_err(io(format!("target {}", m.target.display())))?;
    let mut options = Vec::new();
    if m.size > 0 {
        options.push(format!("size={}", m.size));
    }
    if m.mode > 0 {
        options.push(format!("mode={:o}", m.mode & 0o7777));
    }
    if let Some((uid, gid)) = owner {
        options.push(format!("uid={uid},gid={gid}"));
    }
    let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    if m.read_only {
        flags |= MsFlags::MS_RDONLY;
    }
    mount(
        Some("tmpfs"),
        &m.target,
        Some("tmpfs"),
        flags,
        Some(options.join(",").as_str()),
    )
    .map_err(io(format!("mounting a tmpfs at {}", m.target.display())))
}
