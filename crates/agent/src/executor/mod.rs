//! Executors run a task's command on its image's root with its secret mount
//! in place: the process executor (the task shim's namespaces and overlay).

pub mod process;
pub mod shim;

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
}
