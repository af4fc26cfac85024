//! The agent as the daemon sees it: started with an upstream and a config,
//! shut down once. What it runs: the session with the dispatcher
//! (`session.rs`), the task controller (`controller.rs`), the status reporter
//! (`reporter.rs`) and the log publisher (`logs/`), all sharing one
//! [`AgentState`](crate::state::AgentState).

use std::os::unix::fs::DirBuilderExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use swarmkeep_transport::Upstream;
use tokio::sync::mpsc;

use crate::config::{AgentConfig, Backend};
use crate::executor::{ProcessExecutor, process::cleanup_stale};
use crate::mounts::{FuseBackend, SecretMount, TmpfsBackend};
use crate::state::{AgentState, lock, stop_all};

pub struct Agent {
    state: Arc<AgentState>,
}

impl Agent {
    /// Cleans up what a crashed predecessor left, then starts the session loop.
    pub fn start(upstream: Arc<dyn Upstream>, mut config: AgentConfig) -> Result<Self, String> {
        // Canonical paths (overlay and mount options take them literally).
        let _ = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&config.exec_root);
        for p in [&mut config.exec_root, &mut config.data_dir] {
            if let Ok(c) = std::fs::canonicalize(&*p) {
                *p = c;
            }
        }
        cleanup_stale(&config.exec_root);
        crate::volumes::remove_orphans(&config.data_dir);
        let mounts: Arc<dyn SecretMount> = match config.backend {
            Backend::Tmpfs => Arc::new(TmpfsBackend::new(&config.exec_root)),
            Backend::Fuse => Arc::new(FuseBackend::new(&config.exec_root)),
        };
        let executor = ProcessExecutor::new(
            &config.exec_root,
            config.shim_exe.clone(),
            config.warm_sandboxes,
            config.userns_remap.clone(),
        );
        let images = swarmkeep_image::ImageStore::open(
            &config.data_dir.join("images"),
            config.insecure_registries.clone(),
            &config.registry_mirrors,
        )
        .map_err(|e| e.to_string())?;
        let (status_tx, status_rx) = mpsc::unbounded_channel();
        let state = Arc::new(AgentState {
            upstream,
            config,
            mounts,
            executor,
            images: Arc::new(images),
            assignments: Mutex::default(),
            running: Mutex::default(),
            stopping: Default::default(),
            started: Mutex::default(),
            status_tx,
            client: Mutex::default(),
            logs: Arc::default(),
            containers: Default::default(),
        });
        tracing::info!(backend = state.mounts.name(), exec_root = %state.config.exec_root.display(), "agent started");
        tokio::spawn(crate::session::session_loop(state.clone()));
        tokio::spawn(crate::reporter::status_loop(state.clone(), status_rx));
        tokio::spawn(crate::images_api::gc_loop(state.clone(), state.config.image_gc_idle));
        Ok(Self { state })
    }

    /// This node's task containers (`docker ps`, `exec`, … on this node).
    pub fn containers(&self) -> Arc<dyn swarmkeep_api::containers::NodeContainers> {
        Arc::new(crate::containers_api::ContainersService {
            state: self.state.clone(),
        })
    }

    /// Stops every task and removes its mount (daemon shutdown).
    pub async fn shutdown(&self) {
        self.state.stopping.store(true, std::sync::atomic::Ordering::SeqCst);
        stop_all(&self.state);
        // The longest stop grace period (10 s) and the unmount.
        for _ in 0..240 {
            if lock(&self.state.running).is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        lock(&self.state.assignments).clear();
        self.state.executor.drain_warm().await;
        if lock(&self.state.running).is_empty() {
            self.state.executor.shutdown().await;
        }
    }
}
