//! The task shim: `swarmkeepd task-shim <spec>` runs in a fresh process
//! (single-threaded, unlike the agent), gives the task its own mount
//! namespace and root, then execs the task's command.
//!
//! The task's root is a tmpfs holding bind mounts of the host's top-level
//! entries, so the task sees the host's filesystem; a directory that needs a
//! new entry (a target that does not exist on the host) is "shadowed" the
//! same way one level down, so nothing is ever created on the host. The
//! task's secret mount is bound read-only at `/run/secrets` and at each
//! absolute target; the agent's exec root and data dir are hidden.

use std::collections::HashSet;
use std::convert::Infallible;
use std::ffi::CString;
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use serde::{Deserialize, Serialize};

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

/// Runs the shim; only returns (with the process exit code) on failure,
/// after reporting the error on [`ERROR_FD`].
pub fn main(spec_json: &str) -> i32 {
    // SAFETY: the agent dup2'ed the write end of its error pipe to ERROR_FD
    // for this process; nothing else owns it.
    let mut report = unsafe { std::fs::File::from(OwnedFd::from_raw_fd(ERROR_FD)) };
    let _ = nix::fcntl::fcntl(&report, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC));
    let result = serde_json::from_str::<ShimSpec>(spec_json)
        .map_err(|e| format!("invalid task spec: {e}"))
        .and_then(|spec| run(&spec));
    match result {
        Ok(never) => match never {},
        Err(e) => {
            let _ = report.write_all(e.as_bytes());
            127
        }
    }
}

fn run(spec: &ShimSpec) -> Result<Infallible, String> {
    unshare(CloneFlags::CLONE_NEWNS).map_err(io("creating the task's mount namespace"))?;
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .map_err(io("making mounts private"))?;
    let root = &spec.root;
    mount(Some("swarmkeep-root"), root, Some("tmpfs"), MsFlags::empty(), Some("mode=0755"))
        .map_err(io("mounting the task's root"))?;
    populate(root, Path::new("/"))?;
    let mut owned: HashSet<PathBuf> = HashSet::from([PathBuf::from("/")]);
    if let Some(dir) = &spec.secrets_dir {
        let dst = ensure(root, Path::new("/run/secrets"), true, &mut owned)?;
        bind_ro(dir, &dst)?;
    }
    for (src, target) in &spec.files {
        let dst = ensure(root, target, false, &mut owned)?;
        bind_ro(src, &dst)?;
    }
    for h in &spec.hide {
        let inside = root.join(h.strip_prefix("/").unwrap_or(h));
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
    nix::unistd::chroot(root).map_err(io("entering the task's root"))?;
    let workdir = if spec.workdir.is_empty() { "/" } else { &spec.workdir };
    nix::unistd::chdir(workdir).map_err(io(format!("changing to working directory {workdir}")))?;
    nix::unistd::setsid().map_err(io("starting a session"))?;
    set_user(&spec.user)?;
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
    let Some(program) = argv.first() else {
        return Err("no command: the image's default command is unknown to the process executor; give one".into());
    };
    // execvpe looks the program up in the task's PATH.
    let path = spec
        .env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    let resolved = resolve_program(&spec.argv[0], path);
    let resolved = CString::new(resolved.as_bytes()).map_err(io("command"))?;
    let _ = program;
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
    let uid: u32 = u.parse().map_err(|_| format!("user {user:?}: only numeric uid[:gid] is supported"))?;
    let gid: u32 = if g.is_empty() { uid } else { g.parse().map_err(|_| format!("user {user:?}: gid must be numeric"))? };
    nix::unistd::setgroups(&[]).map_err(io("dropping supplementary groups"))?;
    nix::unistd::setgid(nix::unistd::Gid::from_raw(gid)).map_err(io("setgid"))?;
    nix::unistd::setuid(nix::unistd::Uid::from_raw(uid)).map_err(io("setuid"))?;
    Ok(())
}

/// Fills `dir` (a fresh tmpfs) with binds of the host directory's entries.
fn populate(dir: &Path, host: &Path) -> Result<(), String> {
    let entries = std::fs::read_dir(host).map_err(io(format!("reading {}", host.display())))?;
    for entry in entries.flatten() {
        let src = entry.path();
        let dst = dir.join(entry.file_name());
        let Ok(md) = std::fs::symlink_metadata(&src) else { continue };
        if md.file_type().is_symlink() {
            if let Ok(link) = std::fs::read_link(&src) {
                let _ = std::os::unix::fs::symlink(link, &dst);
            }
        } else if md.is_dir() {
            if std::fs::create_dir(&dst).is_ok() {
                mount(Some(&src), &dst, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
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
                return Err(format!("target {}: {} is a symbolic link", path.display(), next.display()));
            }
            Ok(md) if !last && !md.is_dir() => {
                return Err(format!("target {}: {} is not a directory", path.display(), next.display()));
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
    mount(Some("swarmkeep-dir"), &real, Some("tmpfs"), MsFlags::empty(), Some("mode=0755"))
        .map_err(io(format!("shadowing {}", dir.display())))?;
    populate(&real, dir)
}

fn bind_ro(src: &Path, dst: &Path) -> Result<(), String> {
    mount(Some(src), dst, None::<&str>, MsFlags::MS_BIND, None::<&str>).map_err(io(format!("binding {}", dst.display())))?;
    mount(
        None::<&str>,
        dst,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        None::<&str>,
    )
    .map_err(io(format!("making {} read-only", dst.display())))
}
