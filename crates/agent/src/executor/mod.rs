//! Executors run a task's command with its secret mount in place. One today:
//! the process executor (a host process in its own mount namespace); the
//! docker executor comes later behind the same shape.

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
    /// `<mount>/secrets`, shown as the task's `/run/secrets`.
    pub secrets_dir: Option<PathBuf>,
    /// (file in the mount, absolute path in the task).
    pub files: Vec<(PathBuf, PathBuf)>,
}
