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

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub id: String,
    pub meta: Meta,
    pub labels: BTreeMap<String, String>,
    pub role: NodeRole,
    pub availability: Availability,
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
