//! The replicated cluster objects, as the state machine holds them.
//!
//! Secrets hold only `sealed_data` (ciphertext under the cluster data key);
//! there is no field a plaintext secret could be put in.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Version and timestamps of an object. `version` is the raft log index of the
/// object's last write; the times are set by the leader when it proposes the
/// write, so every manager shows the same ones.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    pub version: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Annotations {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secret {
    pub id: String,
    pub meta: Meta,
    pub annotations: Annotations,
    /// `nonce ‖ ciphertext ‖ tag` under the cluster data key, AAD = `id`.
    #[serde(with = "bytes_b64")]
    pub sealed_data: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub id: String,
    pub meta: Meta,
    pub annotations: Annotations,
    #[serde(with = "bytes_b64")]
    pub data: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeRole {
    Worker,
    Manager,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Availability {
    Active,
    Pause,
    Drain,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeDescription {
    pub hostname: String,
    pub os: String,
    pub architecture: String,
    pub nano_cpus: i64,
    pub memory_bytes: i64,
    pub engine_version: String,
}

/// A node's liveness as the leader's dispatcher judges it from heartbeats.
/// Written to the store only when it changes, so every manager shows the
/// same STATUS, also right after a leader change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    #[default]
    Unknown,
    Ready,
    Down,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub id: String,
    pub meta: Meta,
    pub labels: BTreeMap<String, String>,
    pub role: NodeRole,
    pub availability: Availability,
    #[serde(default)]
    pub state: NodeState,
    pub description: NodeDescription,
    /// The address the node's traffic comes from (`Status.Addr`).
    pub addr: String,
    /// Raft member ID and advertised cluster address, for managers.
    pub raft_id: Option<u64>,
    pub manager_addr: Option<String>,
}

/// Cluster-wide settings, as `docker swarm inspect` shows them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    pub id: String,
    pub meta: Meta,
    pub name: String,
    pub snapshot_interval: u64,
    pub task_history_retention_limit: i64,
    /// How often nodes heartbeat; a node is Down after three missed periods.
    pub heartbeat_period_ms: u64,
    /// The root CA certificate (public).
    pub ca_cert_pem: String,
    /// The CA's private key, sealed under the data key (AAD `ca-key`).
    #[serde(with = "bytes_b64")]
    pub sealed_ca_key: Vec<u8>,
    /// Join tokens, sealed under the data key (AAD `join-token/worker|manager`).
    #[serde(with = "bytes_b64")]
    pub sealed_worker_token: Vec<u8>,
    #[serde(with = "bytes_b64")]
    pub sealed_manager_token: Vec<u8>,
    /// Node certificate lifetime (Swarm's default: 90 days).
    #[serde(default = "default_cert_expiry_ms")]
    pub node_cert_expiry_ms: u64,
    /// Autolock: managers keep the data key wrapped by the unlock key only.
    #[serde(default)]
    pub autolock: bool,
    /// The unlock key (`SWMKEY-1-…`), sealed under the data key (AAD
    /// `unlock-key`); empty when autolock is off.
    #[serde(default, with = "bytes_b64")]
    pub sealed_unlock_key: Vec<u8>,
}

fn default_cert_expiry_ms() -> u64 {
    90 * 24 * 3600 * 1000
}

/// Byte fields are stored as base64 in the JSON the log and snapshots use,
/// instead of serde's array of numbers.
mod bytes_b64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}
