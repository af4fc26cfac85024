//! A read-only FUSE filesystem per task, served from the agent's memory:
//! nothing is written anywhere, and every open and read is logged with the
//! reading process and user (the start of an audit trail).

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use fuser::{
    BackgroundSession, Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    LockOwner, MountOption, OpenAccMode, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry,
    ReplyOpen, ReplyXattr, Request, SessionACL,
};
use swarmkeep_crypto::SecretBytes;

use super::{SecretMount, TaskFile, parent_dirs, task_dir};

const TTL: Duration = Duration::from_secs(60);

enum Node {
    Dir { children: BTreeMap<String, u64> },
    File { data: SecretBytes, path: String },
}

struct Inode {
    node: Node,
    parent: u64,
    uid: u32,
    gid: u32,
    mode: u16,
}

/// The immutable tree of one task's files.
struct SecretsFs {
    task_id: String,
    inodes: HashMap<u64, Inode>,
    created: SystemTime,
}

impl SecretsFs {
    fn new(task_id: &str, files: Vec<TaskFile>) -> Self {
        let mut fs = Self {
            task_id: task_id.to_string(),
            inodes: HashMap::new(),
            created: SystemTime::now(),
        };
        fs.inodes.insert(
            1,
            Inode {
                node: Node::Dir {
                    children: BTreeMap::new(),
                },
                parent: 1,
                uid: 0,
                gid: 0,
                mode: 0o755,
            },
        );
        let mut dirs: HashMap<String, u64> = HashMap::from([(String::new(), 1)]);
        for f in files {
            let mut parent = 1;
            for dir in parent_dirs(&f.rel) {
                parent = match dirs.get(&dir) {
                    Some(ino) => *ino,
                    None => {
                        let ino = fs.add(
                            parent,
                            leaf(&dir),
                            Node::Dir {
                                children: BTreeMap::new(),
                            },
                            0,
                            0,
                            0o755,
                        );
                        dirs.insert(dir, ino);
                        ino
                    }
                };
            }
            let mode = u16::try_from(f.mode & 0o7777).unwrap_or(0o444);
            let name = leaf(&f.rel).to_string();
            fs.add(
                parent,
                &name,
                Node::File {
                    data: f.data,
                    path: f.rel,
                },
                f.uid,
                f.gid,
                mode,
            );
        }
        fs
    }

    fn add(&mut self, parent: u64, name: &str, node: Node, uid: u32, gid: u32, mode: u16) -> u64 {
        let ino = self.inodes.len() as u64 + 1;
        self.inodes.insert(
            ino,
            Inode {
                node,
                parent,
                uid,
                gid,
                mode,
            },
        );
        if let Some(Inode {
            node: Node::Dir { children },
            ..
        }) = self.inodes.get_mut(&parent)
        {
            children.insert(name.to_string(), ino);
        }
        ino
    }

    fn attr(&self, ino: u64) -> Option<FileAttr> {
        let i = self.inodes.get(&ino)?;
        let (kind, size, nlink) = match &i.node {
            Node::Dir { .. } => (FileType::Directory, 0, 2),
            Node::File { data, .. } => (FileType::RegularFile, data.len() as u64, 1),
        };
        Some(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: self.created,
            mtime: self.created,
            ctime: self.created,
            crtime: self.created,
            kind,
            perm: i.mode,
            nlink,
            uid: i.uid,
            gid: i.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }
}

fn leaf(rel: &str) -> &str {
    rel.rsplit('/').next().unwrap_or(rel)
}

impl Filesystem for SecretsFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let child = match self.inodes.get(&parent.0).map(|i| &i.node) {
            Some(Node::Dir { children }) => name.to_str().and_then(|n| children.get(n)).copied(),
            _ => None,
        };
        match child.and_then(|c| self.attr(c)) {
            Some(attr) => reply.entry(&TTL, &attr, Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.attr(ino.0) {
            Some(attr) => reply.attr(&TTL, &attr),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let Some(Inode {
            node: Node::File { path, .. },
            ..
        }) = self.inodes.get(&ino.0)
        else {
            reply.error(Errno::ENOENT);
            return;
        };
        if flags.acc_mode() != OpenAccMode::O_RDONLY {
            reply.error(Errno::EACCES);
            return;
        }
        tracing::info!(task = %self.task_id, file = %path, pid = req.pid(), uid = req.uid(), "secret file opened");
        reply.opened(FileHandle(0), FopenFlags::empty());
    }

    fn read(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let Some(Inode {
            node: Node::File { data, path },
            ..
        }) = self.inodes.get(&ino.0)
        else {
            reply.error(Errno::ENOENT);
            return;
        };
        let bytes = data.expose();
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(bytes.len());
        let end = start.saturating_add(size as usize).min(bytes.len());
        tracing::info!(
            task = %self.task_id, file = %path, pid = req.pid(), uid = req.uid(), offset, len = end - start,
            "secret file read"
        );
        reply.data(&bytes[start..end]);
    }

    // Nothing to flush in a read-only filesystem; saying so keeps fuser from
    // logging "not implemented" on every close.
    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        reply.ok();
    }

    fn getxattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, _size: u32, reply: ReplyXattr) {
        reply.error(Errno::ENODATA);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, size: u32, reply: ReplyXattr) {
        if size == 0 {
            reply.size(0);
        } else {
            reply.data(&[]);
        }
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let Some(Inode {
            node: Node::Dir { children },
            parent,
            ..
        }) = self.inodes.get(&ino.0)
        else {
            reply.error(Errno::ENOTDIR);
            return;
        };
        let mut entries = vec![(ino.0, FileType::Directory, "."), (*parent, FileType::Directory, "..")];
        for (name, child) in children {
            let kind = match self.inodes.get(child).map(|i| &i.node) {
                Some(Node::Dir { .. }) => FileType::Directory,
                _ => FileType::RegularFile,
            };
            entries.push((*child, kind, name.as_str()));
        }
        for (i, (ino, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(ino), (i + 1) as u64, kind, name) {
                break;
            }
        }
        reply.ok();
    }
}

pub struct FuseBackend {
    exec_root: PathBuf,
    sessions: Mutex<HashMap<String, BackgroundSession>>,
}

impl FuseBackend {
    pub fn new(exec_root: &Path) -> Self {
        Self {
            exec_root: exec_root.to_path_buf(),
            sessions: Mutex::new(HashMap::new()),
        }
    }
}

impl SecretMount for FuseBackend {
    fn prepare(&self, task_id: &str, files: Vec<TaskFile>) -> std::io::Result<PathBuf> {
        let mnt = task_dir(&self.exec_root, task_id).join("mnt");
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&mnt)?;
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::RO,
            MountOption::NoExec,
            MountOption::NoSuid,
            MountOption::NoDev,
            MountOption::DefaultPermissions,
            MountOption::FSName("swarmkeep-secrets".into()),
        ];
        // Tasks run as any user; the kernel checks each file's owner and mode.
        config.acl = SessionACL::All;
        let session = fuser::spawn_mount(SecretsFs::new(task_id, files), &mnt, &config)?;
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(task_id.to_string(), session);
        Ok(mnt)
    }

    fn release(&self, task_id: &str) {
        let session = self.sessions.lock().unwrap_or_else(|p| p.into_inner()).remove(task_id);
        let dir = task_dir(&self.exec_root, task_id);
        if let Some(s) = session
            && let Err(e) = s.umount_and_join()
        {
            tracing::warn!(task = %task_id, error = %e, "unmounting the task's FUSE mount failed");
        }
        super::unmount_all_under(&dir);
        if let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(task = %task_id, error = %e, "removing the task's directory failed");
        }
    }

    fn name(&self) -> &'static str {
        "fuse"
    }
}
