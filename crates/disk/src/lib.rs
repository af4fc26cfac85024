//! How swarmkeep writes the files that hold keys and state: whole or not at
//! all (a temporary file, fsync'd, renamed over the old one, and the
//! directory fsync'd), never readable by others (files 0600, directories
//! 0700, whatever the umask and whatever a directory was before), and never
//! inside a directory that others could write to.
//!
//! Architecture invariant: nothing here opens a key or state file for writing
//! in place, so a crash leaves either the old content or the new one.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Creates `dir` (and its missing parents) with mode 0700, and makes it 0700
/// if it already existed.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
}

/// Replaces `path` with `bytes`, atomically and durably, as a 0600 file.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "a file path has a directory"))?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "a file path has a name"))?;
    // A name of its own per write: two writers of one file (a snapshot built
    // while another is installed) never share a temporary file. One left by
    // a crash is never read.
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let tmp = dir.join(format!(
        ".{}.{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        WRITES.fetch_add(1, Ordering::Relaxed)
    ));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    // The mode passed to open is masked by the umask; this is not.
    f.set_permissions(fs::Permissions::from_mode(0o600))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path)?;
    sync_dir(dir)
}

/// Makes an existing file 0600 (for files a library creates, such as the
/// raft log database).
pub fn restrict_file(path: &Path) -> io::Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
}

/// Makes a rename or removal in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Refuses a data directory that another user could change: a symbolic
/// link (which could be made to point anywhere), one owned by someone else,
/// or one writable by its group or by others.
pub fn check_not_shared(dir: &Path) -> Result<(), String> {
    let me = effective_uid();
    let meta = fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if meta.file_type().is_symlink() {
        return Err(format!(
            "the data dir {} is a symbolic link; give the real directory",
            dir.display()
        ));
    }
    if meta.uid() != me {
        return Err(format!(
            "the data dir {} belongs to uid {}, not to this daemon's uid {me}",
            dir.display(),
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "the data dir {} is writable by {} (mode {:o}): another user could replace its keys; run `chmod go-w {}`",
            dir.display(),
            if meta.mode() & 0o002 != 0 {
                "everyone"
            } else {
                "its group"
            },
            meta.mode() & 0o7777,
            dir.display()
        ));
    }
    Ok(())
}

/// The effective uid, read from /proc (no libc call needed).
fn effective_uid() -> u32 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn a_write_replaces_the_file_and_never_changes_it_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data-key.wrapped");
        write_private(&path, b"old").unwrap();
        // A reader (or a crash) holding the old file still sees all of it:
        // the new content is a new inode, renamed over the name.
        let held = dir.path().join("held");
        fs::hard_link(&path, &held).unwrap();
        write_private(&path, b"new content").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new content");
        assert_eq!(fs::read(&held).unwrap(), b"old");
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn a_crash_between_write_and_rename_leaves_the_old_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek");
        write_private(&path, b"the key").unwrap();
        // What a crash after writing the temporary file, before the rename,
        // leaves: a partial temporary file next to the intact old one.
        fs::write(dir.path().join(".kek.tmp"), b"half of the ne").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"the key");
        // The next write is not disturbed by it.
        write_private(&path, b"the new key").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"the new key");
    }

    #[test]
    fn modes_hold_whatever_was_there_before() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("keys");
        fs::create_dir(&sub).unwrap();
        fs::set_permissions(&sub, fs::Permissions::from_mode(0o777)).unwrap();
        private_dir(&sub).unwrap();
        assert_eq!(mode(&sub), 0o700);
        let file = sub.join("f");
        fs::write(&file, b"x").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o666)).unwrap();
        write_private(&file, b"y").unwrap();
        assert_eq!(mode(&file), 0o600);
        restrict_file(&file).unwrap();
        assert_eq!(mode(&file), 0o600);
    }

    #[test]
    fn a_shared_data_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
        assert!(check_not_shared(dir.path()).is_ok());
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
        let e = check_not_shared(dir.path()).unwrap_err();
        assert!(e.contains("writable by everyone"), "{e}");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o770)).unwrap();
        assert!(check_not_shared(dir.path()).unwrap_err().contains("its group"));
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/etc", &link).unwrap();
        assert!(check_not_shared(&link).unwrap_err().contains("symbolic link"));
    }
}
