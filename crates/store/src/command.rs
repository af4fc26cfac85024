//! What a raft log entry carries: commands that change the cluster state, and
//! what applying each one answered.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::objects::{Cluster, Config, Network, Node, Secret, Service, Task, TaskStatus};

/// One change to the cluster state. Commands are decided by the leader (IDs,
/// timestamps, sealed payloads) so that applying them is deterministic.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Command {
    InitCluster {
        cluster: Box<Cluster>,
        node: Box<Node>,
        /// The predefined networks, there from the swarm's first entry.
        #[serde(default)]
        networks: Vec<Network>,
    },
    /// Replaces the cluster settings (keeps `created_at`).
    PutCluster(Box<Cluster>),
    /// As PutCluster, refused unless the cluster is still at `expected_version`.
    UpdateCluster {
        cluster: Box<Cluster>,
        expected_version: u64,
    },
    /// Creates or replaces a node (keeps `created_at`).
    PutNode(Node),
    /// Updates a node's spec if it is still at `expected_version`.
    UpdateNode {
        node: Node,
        expected_version: u64,
    },
    /// Removes a node for good: its ID is remembered until its certificates
    /// have expired (so they are refused everywhere until then), and its
    /// unfinished tasks are orphaned, which takes their secrets and configs out
    /// of its assignments and lets the orchestrator replace them.
    RemoveNode {
        id: String,
        /// When (decided by the leader; entries written before this field
        /// existed use the node's last update).
        #[serde(default, with = "time::serde::rfc3339::option")]
        removed_at: Option<OffsetDateTime>,
    },
    CreateSecret(Secret),
    UpdateSecretLabels(LabelUpdate),
    RemoveSecret {
        id: String,
    },
    CreateConfig(Config),
    UpdateConfigLabels(LabelUpdate),
    RemoveConfig {
        id: String,
    },
    /// Refused if the name is taken, or its subnet or VNI is.
    CreateNetwork(Network),
    /// Refused while a service or a task uses it.
    RemoveNetwork {
        id: String,
    },
    /// Refused if the name is taken or a referenced secret, config or network
    /// is gone.
    CreateService(Service),
    UpdateService {
        service: Service,
        expected_version: u64,
    },
    /// The orchestrator's finding that a service's update (or rollback) has
    /// converged: `updating` → `completed`, `rollback_started` →
    /// `rollback_completed`; nothing if the service is not in one of those.
    /// Applies only to the update that started at `started_at`: one begun
    /// after the orchestrator looked is not completed by its finding.
    CompleteServiceUpdate {
        id: String,
        #[serde(with = "time::serde::rfc3339")]
        started_at: time::OffsetDateTime,
        #[serde(with = "time::serde::rfc3339")]
        completed_at: time::OffsetDateTime,
    },
    /// Removes the service and all its tasks.
    RemoveService {
        id: String,
    },
    /// Creates or replaces tasks (the orchestrator and scheduler, on the leader).
    PutTasks(Vec<Task>),
    /// A status reported by the agent of `node_id`; applied only if the task
    /// is on that node and the state moves forward.
    UpdateTaskStatus {
        id: String,
        node_id: String,
        status: TaskStatus,
    },
    RemoveTasks(Vec<String>),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LabelUpdate {
    pub id: String,
    /// The `Version.Index` the caller read; a write against an older version
    /// is refused (optimistic concurrency, as swarmkit's store does).
    pub expected_version: u64,
    pub labels: BTreeMap<String, String>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// One raft log entry: the commands that arrived together, applied in order.
/// Batching concurrent writes into one entry costs one fsync for all of them.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Proposal {
    pub commands: Vec<Command>,
}

/// What openraft logs of an entry: how many commands it carries, never what
/// they hold.
impl std::fmt::Display for Proposal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "proposal of {} command(s)", self.commands.len())
    }
}

/// Why the state machine refused a command. Nothing was changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum CommandError {
    #[error("{kind} {name} already exists")]
    NameConflict { kind: ObjectKind, name: String },
    #[error("{kind} {id} not found")]
    NotFound { kind: ObjectKind, id: String },
    #[error("update out of sequence")]
    VersionConflict,
    #[error("the cluster is already initialized")]
    AlreadyInitialized,
    /// swarmkit's text, "services" when there are several.
    #[error("{kind} '{name}' is in use by the following service{}: {}", if services.len() > 1 { "s" } else { "" }, services.join(", "))]
    InUse {
        kind: ObjectKind,
        name: String,
        services: Vec<String>,
    },
    #[error("task {id} is not assigned to this node")]
    NotAssigned { id: String },
    /// An address another service or task holds (an allocation decided on
    /// a state that changed since: the allocator tries again).
    #[error("address {addr} is already in use on network {network}")]
    AddressInUse { addr: String, network: String },
    /// Refused with the reason's own words (a network in use).
    #[error("{0}")]
    Refused(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObjectKind {
    Cluster,
    Secret,
    Config,
    Node,
    Service,
    Task,
    Network,
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ObjectKind::Cluster => "cluster",
            ObjectKind::Secret => "secret",
            ObjectKind::Config => "config",
            ObjectKind::Node => "node",
            ObjectKind::Service => "service",
            ObjectKind::Task => "task",
            ObjectKind::Network => "network",
        })
    }
}

/// The answer to one command: the raft index it was applied at.
pub type CommandResult = Result<u64, CommandError>;

/// The answers to one proposal, in command order.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ProposalResult {
    pub results: Vec<CommandResult>,
}
