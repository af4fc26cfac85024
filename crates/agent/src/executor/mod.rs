//! Executors run a task's command on its image's root with its secret mount
//! in place: the process executor (the task shim's namespaces and overlay).

mod cgroup;
pub mod exec;
pub mod exec_process;
pub mod process;
mod rootfs;
mod seccomp;
pub mod shim;

pub use cgroup::Limits;
pub use process::{ProcessExecutor, RunningTask};

use std::path::PathBuf;

/// Everything an executor needs to start one task. Holds paths, never data.
#[derive(Clone, Debug)]
pub struct TaskRun {
    pub task_id: String,
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub workdir: String,
    pub user: String,
    /// The image's layer directories, bottom first.
    pub layers: Vec<PathBuf>,
    /// `<mount>/secrets`, shown as the task's `/run/secrets`.
    pub secrets_dir: Option<PathBuf>,
    /// (file in the mount, absolute path in the task).
    pub files: Vec<(PathBuf, PathBuf)>,
    /// The service's bind mounts: (host path, path in the task, read-only).
    pub binds: Vec<(PathBuf, PathBuf, bool)>,
    /// The task's container ID (64 hex digits, derived from the task ID).
    pub container_id: String,
    /// `--hostname`; the container ID's first 12 digits when empty.
    pub hostname: String,
    pub network: crate::network::NetworkMode,
    /// `--read-only`: the task's root is mounted read-only.
    pub read_only: bool,
    /// `--limit-cpu`, `--limit-memory`, `--limit-pids`.
    pub limits: Limits,
}

pub use swarmkeep_api::naming::container_id;
