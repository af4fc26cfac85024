//! How the daemon configures the agent.

use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Tmpfs,
    Fuse,
}

#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// Where task mounts and roots are made (`--exec-root`).
    pub exec_root: PathBuf,
    pub backend: Backend,
    /// The daemon's data dir, hidden from tasks.
    pub data_dir: PathBuf,
    /// The daemon binary, which also serves as the task shim.
    pub shim_exe: PathBuf,
}
