//! A size-capped `nosuid,nodev,noexec` tmpfs per task, mode 0700; the files
//! are written with their owner and mode, then the tmpfs is remounted
//! read-only. Swap-backed memory, never a disk file.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};

use super::{SecretMount, TaskFile, parent_dirs, task_dir, unmount_all_under};

pub struct TmpfsBackend {
    exec_root: PathBuf,
}

impl TmpfsBackend {
    pub fn new(exec_root: &Path) -> Self {
        Self {
            exec_root: exec_root.to_path_buf(),
        }
    }

    fn build(&self, mnt: &Path, files: &[TaskFile]) -> std::io::Result<()> {
        let total: usize = files.iter().map(|f| f.data.len() + 4096).sum();
        // Room for the files and their directories, and no more.
        let size = (total + 64 * 1024).next_multiple_of(4096);
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        let opts = format!("size={size},mode=0700");
        mount(
            Some("swarmkeep-secrets"),
            mnt,
            Some("tmpfs"),
            flags,
            Some(opts.as_str()),
        )
        .map_err(std::io::Error::from)?;
        for f in files {
            for dir in parent_dirs(&f.rel) {
                let p = mnt.join(&dir);
                if !p.exists() {
                    std::fs::DirBuilder::new().mode(0o755).create(&p)?;
                }
            }
            let path = mnt.join(&f.rel);
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)?;
            file.write_all(f.data.expose())?;
            std::os::unix::fs::fchown(&file, Some(f.uid), Some(f.gid))?;
            file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(f.mode))?;
        }
        mount(
            None::<&str>,
            mnt,
            None::<&str>,
            flags | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            Some(opts.as_str()),
        )
        .map_err(std::io::Error::from)?;
        Ok(())
    }
}

impl SecretMount for TmpfsBackend {
    fn prepare(&self, task_id: &str, files: Vec<TaskFile>) -> std::io::Result<PathBuf> {
        let dir = task_dir(&self.exec_root, task_id);
        let mnt = dir.join("mnt");
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&mnt)?;
        if let Err(e) = self.build(&mnt, &files) {
            self.release(task_id);
            return Err(e);
        }
        Ok(mnt)
    }

    fn release(&self, task_id: &str) {
        let dir = task_dir(&self.exec_root, task_id);
        unmount_all_under(&dir);
        let mnt = dir.join("mnt");
        if let Err(e) = nix::mount::umount2(&mnt, nix::mount::MntFlags::MNT_DETACH)
            && e != nix::errno::Errno::EINVAL
            && e != nix::errno::Errno::ENOENT
        {
            tracing::warn!(task = %task_id, error = %e, "unmounting the task's secrets failed");
        }
        if let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(task = %task_id, error = %e, "removing the task's directory failed");
        }
    }

    fn name(&self) -> &'static str {
        "tmpfs"
    }
}
