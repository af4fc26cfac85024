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
    /// The daemon's data dir (images live in `images/` under it).
    pub data_dir: PathBuf,
    /// Registries spoken to over plain HTTP besides loopback ones
    /// (`--insecure-registry`).
    pub insecure_registries: Vec<String>,
    /// Docker Hub mirrors tried first (`--registry-mirror`, http:// or https:// URLs).
    pub registry_mirrors: Vec<String>,
    /// The daemon binary, which also serves as the task shim.
    pub shim_exe: PathBuf,
    /// An image pulled for tasks is removed once none here has used it for
    /// this long (`--image-gc-idle`); images an operator pulled or loaded stay.
    pub image_gc_idle: std::time::Duration,
    /// Task sandboxes kept made ahead once tasks run here (`--warm-sandboxes`;
    /// 0: each is made when its task starts).
    pub warm_sandboxes: usize,
    /// `--userns-remap`: tasks' users are these subordinate host ranges
    /// (None: the host's own, as Docker's default).
    pub userns_remap: Option<crate::executor::userns::Remap>,
}
