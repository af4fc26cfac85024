//! What a node remembers about itself across restarts: `state.json` in the
//! data dir. Written last during `swarm init`, so its presence means the
//! node's keys and raft store are complete.

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};
use swarmkeep_store::objects::NodeRole;

const STATE_FILE: &str = "state.json";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SavedState {
    pub node_id: String,
    pub cluster_id: String,
    pub raft_id: u64,
    /// `IP:PORT` other nodes reach this manager at.
    pub advertise_addr: String,
    /// `IP:PORT` the cluster listener binds.
    pub listen_addr: String,
    #[serde(default = "manager_role")]
    pub role: NodeRole,
    /// Cluster addresses of the managers, as last heard (workers use them
    /// to find the leader).
    #[serde(default)]
    pub managers: Vec<String>,
    /// The managers' node IDs, as last heard: the only certificates a
    /// worker accepts from a server, from the moment it restarts; for a
    /// manager, those it was told of when it joined, the only raft peers it
    /// takes traffic from while its store is still empty.
    #[serde(default)]
    pub manager_ids: Vec<String>,
    /// The cluster's `CAConfig.ForceRotate` the node's certificate was
    /// signed under.
    #[serde(default)]
    pub cert_rotation: u64,
}

fn manager_role() -> NodeRole {
    NodeRole::Manager
}

impl SavedState {
    pub fn load(data_dir: &Path) -> std::io::Result<Option<Self>> {
        match fs::read(data_dir.join(STATE_FILE)) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(std::io::Error::other),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn remove(data_dir: &Path) -> std::io::Result<()> {
        match fs::remove_file(data_dir.join(STATE_FILE)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Writes atomically (temp file, fsync, rename, fsync of the directory), 0600.
    pub fn save(&self, data_dir: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        swarmkeep_disk::write_private(&data_dir.join(STATE_FILE), &bytes)
    }
}
