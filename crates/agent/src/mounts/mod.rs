//! A task's private secret mount: the files of its secret and config
//! references, built from the agent's memory and nothing else. Two backends
//! behind one trait: tmpfs (default) and FUSE.

mod fuse;
mod tmpfs;

use std::path::{Path, PathBuf};

use swarmkeep_crypto::SecretBytes;

pub use fuse::FuseBackend;
pub use tmpfs::TmpfsBackend;

/// One file of a task's mount, at `rel` under the mount root.
pub struct TaskFile {
    /// `secrets/<target>` for relative secret targets, `files/<n>` otherwise.
    pub rel: String,
    pub data: SecretBytes,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

/// Where a backend builds task mounts: `<exec_root>/tasks/<task>/mnt`.
pub fn task_dir(exec_root: &Path, task_id: &str) -> PathBuf {
    exec_root.join("tasks").join(task_id)
}

pub trait SecretMount: Send + Sync {
    /// Builds the task's mount with exactly `files` and returns its root.
    fn prepare(&self, task_id: &str, files: Vec<TaskFile>) -> std::io::Result<PathBuf>;
    /// Unmounts and removes the task's mount; the plaintext is gone after this.
    fn release(&self, task_id: &str);
    fn name(&self) -> &'static str;
}

/// The directories a file's path needs under the mount root, shallowest first.
pub(crate) fn parent_dirs(rel: &str) -> Vec<String> {
    let parts: Vec<&str> = rel.split('/').collect();
    (1..parts.len()).map(|i| parts[..i].join("/")).collect()
}

/// Mount points at or under `dir` (this mount namespace), deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mountinfo)
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

fn unescape_mountinfo(s: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo.
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Detaches every mount under `dir`, deepest first.
pub fn unmount_all_under(dir: &Path) {
    for m in mounts_under(dir) {
        if let Err(e) = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH) {
            tracing::warn!(mount = %m.display(), error = %e, "unmounting a stale task mount failed");
        }
    }
}
