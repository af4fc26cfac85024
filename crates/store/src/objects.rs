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

/// What Docker's lookups, list filters and the store's name indexes see of
/// an object: its ID, its name and its labels.
pub trait Named {
    fn id(&self) -> &str;
    fn name(&self) -> &str;
    fn labels(&self) -> &BTreeMap<String, String>;
}

/// An object whose name and labels are its `Annotations` at `$path`.
macro_rules! named_by_annotations {
    ($type:ty, $($path:ident).+) => {
        impl Named for $type {
            fn id(&self) -> &str {
                &self.id
            }
            fn name(&self) -> &str {
                &self.$($path).+.name
            }
            fn labels(&self) -> &BTreeMap<String, String> {
                &self.$($path).+.labels
            }
        }
    };
}

named_by_annotations!(Secret, annotations);
named_by_annotations!(Config, annotations);
named_by_annotations!(Service, spec.annotations);
named_by_annotations!(Network, spec.annotations);

/// A node is looked up by its hostname; its labels are the spec's.
impl Named for Node {
    fn id(&self) -> &str {
        &self.id
    }
    fn name(&self) -> &str {
        &self.description.hostname
    }
    fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }
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

/// The label swarmkit puts on the networks every swarm has from the start.
pub const PREDEFINED_LABEL: &str = "com.docker.swarm.predefined";

/// A swarm network: the predefined ones (`host`, `ingress`) and the overlay
/// networks operators create, with the subnet and VXLAN ID the leader
/// allocated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub id: String,
    pub meta: Meta,
    pub spec: NetworkSpec,
    /// The overlay's subnet, gateway and VNI (Docker's `IPAMOptions` and
    /// `DriverState`); none for `host`.
    #[serde(default)]
    pub allocation: Option<NetworkAllocation>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSpec {
    pub annotations: Annotations,
    /// The driver's name: `host` puts a task in its node's own network
    /// namespace; `overlay` spans the nodes.
    pub driver: String,
    /// The driver's options (`--opt`), as given.
    #[serde(default)]
    pub driver_options: BTreeMap<String, String>,
    /// The operator's `--subnet`, `--ip-range`, `--gateway` (at most one).
    #[serde(default)]
    pub ipam: Vec<IpamConfig>,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub attachable: bool,
    /// The routing mesh's network (`ingress`).
    #[serde(default)]
    pub ingress: bool,
}

/// Docker's `IPAMConfig`: an empty field is the allocator's to choose.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamConfig {
    pub subnet: String,
    #[serde(default)]
    pub range: String,
    #[serde(default)]
    pub gateway: String,
}

/// What the leader allocated for an overlay network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkAllocation {
    /// `10.0.1.0/24`.
    pub subnet: String,
    /// `10.0.1.1`.
    pub gateway: String,
    /// The addresses handed out, when `--ip-range` narrows the subnet.
    #[serde(default)]
    pub range: String,
    /// The VXLAN network identifier (4096 upward).
    pub vni: u32,
}

/// An address a task or a service holds on a network: `10.0.1.3/24`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkAddress {
    pub network_id: String,
    pub addr: String,
}

/// Docker's `EndpointSpec`: how a service is reached.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointSpec {
    pub mode: EndpointMode,
    #[serde(default)]
    pub ports: Vec<PortConfig>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointMode {
    /// A virtual IP per network, balanced over the tasks by the kernel.
    #[default]
    Vip,
    /// DNS answers the tasks' addresses.
    Dnsrr,
}

/// Docker's `PortConfig`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortConfig {
    #[serde(default)]
    pub name: String,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    pub target_port: u32,
    /// 0: the allocator picks one (ingress) or the kernel does (host).
    pub published_port: u32,
    pub publish_mode: PublishMode,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PublishMode {
    #[default]
    Ingress,
    Host,
}

/// Docker's `Endpoint` of a service: its spec as allocated, the ports with
/// their published numbers, and a virtual IP per network (vip mode).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub ports: Vec<PortConfig>,
    pub virtual_ips: Vec<NetworkAddress>,
}

impl Network {
    /// An overlay network (tasks attached get an address on it).
    pub fn is_overlay(&self) -> bool {
        self.spec.driver == "overlay"
    }

    /// One of the networks every swarm has (it cannot be removed).
    pub fn is_predefined(&self) -> bool {
        self.spec
            .annotations
            .labels
            .get(PREDEFINED_LABEL)
            .is_some_and(|v| v == "true")
    }
}

/// A task's attachment to a network (Docker's `NetworkAttachmentConfig`):
/// `target` is the network's ID once the manager has resolved the name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkAttachmentConfig {
    pub target: String,
    #[serde(default)]
    pub aliases: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeRole {
    Worker,
    Manager,
}

impl NodeRole {
    /// The word Docker and the wire use: `worker` or `manager`.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeRole::Worker => "worker",
            NodeRole::Manager => "manager",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [NodeRole::Worker, NodeRole::Manager]
            .into_iter()
            .find(|r| r.as_str() == text)
    }
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
    /// Its address on the ingress network (Docker's `ingress-sbox`
    /// endpoint): where the routing mesh on this node takes connections
    /// to published ports from, allocated by the leader.
    #[serde(default)]
    pub ingress_address: Option<NetworkAddress>,
    /// `--data-path-addr`: the IP its overlay (VXLAN) traffic leaves from and
    /// arrives at; empty: `addr`. Docker shows it nowhere, nor does this.
    #[serde(default)]
    pub data_path_addr: String,
    /// A manager the leader has had no raft answer from for longer than an
    /// election timeout (`ManagerStatus.Reachability: unreachable`); written
    /// by the leader when it changes, as Ready/Down.
    #[serde(default)]
    pub raft_unreachable: bool,
}

impl Node {
    /// The IP overlay peers send this node's VXLAN traffic to.
    pub fn data_addr(&self) -> &str {
        if self.data_path_addr.is_empty() {
            &self.addr
        } else {
            &self.data_path_addr
        }
    }
}

/// Swarm's default `Raft.LogEntriesForSlowFollowers`.
pub const DEFAULT_LOG_ENTRIES_FOR_SLOW_FOLLOWERS: u64 = 500;

fn default_log_entries_for_slow_followers() -> u64 {
    DEFAULT_LOG_ENTRIES_FOR_SLOW_FOLLOWERS
}

impl Cluster {
    /// The raft timing the cluster asks of its managers.
    pub fn raft_ticks(&self) -> crate::timing::RaftTicks {
        crate::timing::RaftTicks {
            election: self.election_tick,
            heartbeat: self.heartbeat_tick,
        }
    }
}

fn default_election_tick() -> u32 {
    crate::timing::DEFAULT_ELECTION_TICK
}

fn default_heartbeat_tick() -> u32 {
    crate::timing::DEFAULT_HEARTBEAT_TICK
}

/// Cluster-wide settings, as `docker swarm inspect` shows them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    pub id: String,
    pub meta: Meta,
    pub name: String,
    pub snapshot_interval: u64,
    /// Swarm's `Raft.KeepOldSnapshots`: snapshot files kept beside the newest.
    #[serde(default)]
    pub keep_old_snapshots: u64,
    /// Swarm's `Raft.LogEntriesForSlowFollowers`: log entries kept behind the
    /// newest snapshot, so a follower that lags by fewer catches up from the
    /// log rather than by a snapshot.
    #[serde(default = "default_log_entries_for_slow_followers")]
    pub log_entries_for_slow_followers: u64,
    /// Swarm's `Raft.ElectionTick` and `Raft.HeartbeatTick`, in swarmkeep's
    /// raft tick ([`crate::timing::TICK`]): every manager starts its raft
    /// with them (a change takes effect at each one's next start).
    #[serde(default = "default_election_tick")]
    pub election_tick: u32,
    #[serde(default = "default_heartbeat_tick")]
    pub heartbeat_tick: u32,
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
    /// Swarm's `CAConfig.ForceRotate`: every node whose certificate was
    /// signed under another value takes a new key and certificate.
    #[serde(default)]
    pub ca_force_rotate: u64,
    /// Autolock: managers keep the data key wrapped by the unlock key only.
    #[serde(default)]
    pub autolock: bool,
    /// The unlock key (`SWMKEY-1-…`), sealed under the data key (AAD
    /// `unlock-key`); empty when autolock is off.
    #[serde(default, with = "bytes_b64")]
    pub sealed_unlock_key: Vec<u8>,
    /// Where overlay subnets come from (`--default-addr-pool`; empty:
    /// 10.0.0.0/8) and their size (`--default-addr-pool-mask-length`; 0: 24).
    #[serde(default)]
    pub default_addr_pool: Vec<String>,
    #[serde(default)]
    pub subnet_size: u32,
    /// The VXLAN UDP port (`--data-path-port`; 0: 4789).
    #[serde(default)]
    pub data_path_port: u32,
}

/// Swarm's default node certificate lifetime: 90 days.
pub const DEFAULT_CERT_EXPIRY_MS: u64 = 90 * 24 * 3600 * 1000;

fn default_cert_expiry_ms() -> u64 {
    DEFAULT_CERT_EXPIRY_MS
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

/// Where a secret or config reference puts its file in the task, and with
/// which owner and mode. `target` is as the user gave it: relative targets
/// are under `/run/secrets` (secrets) or `/` (configs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileReference {
    /// The referenced object's ID (references are by ID, as in swarmkit).
    pub id: String,
    /// The object's name when the reference was made (display only).
    pub name: String,
    pub target: String,
    pub uid: String,
    pub gid: String,
    pub mode: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartCondition {
    None,
    OnFailure,
    Any,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartPolicy {
    pub condition: RestartCondition,
    pub delay_ns: u64,
    /// 0 means unlimited, as in Docker.
    pub max_attempts: u64,
    /// The window `max_attempts` counts restarts in; 0: a slot's restarts
    /// since its spec last changed.
    #[serde(default)]
    pub window_ns: u64,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            condition: RestartCondition::Any,
            delay_ns: 5_000_000_000,
            max_attempts: 0,
            window_ns: 0,
        }
    }
}

/// What a task runs: Docker's `TaskTemplate`, trimmed to what swarmkeep runs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSpec {
    pub image: String,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub workdir: String,
    pub user: String,
    pub secrets: Vec<FileReference>,
    pub configs: Vec<FileReference>,
    pub restart: RestartPolicy,
    pub stop_grace_period_ns: u64,
    /// Docker's `ForceUpdate` counter: changing it replaces the tasks.
    #[serde(default)]
    pub force_update: u64,
    #[serde(default)]
    pub mounts: Vec<Mount>,
    /// Docker's `Hostname` (empty: the container's short ID).
    #[serde(default)]
    pub hostname: String,
    /// Docker's `ReadOnly`: the task's root filesystem is read-only.
    #[serde(default)]
    pub read_only: bool,
    /// Docker's `TTY`: the command runs on a pseudo-terminal.
    #[serde(default)]
    pub tty: bool,
    #[serde(default)]
    pub limits: ResourceLimits,
    /// Docker's `ContainerSpec.Labels`: the task container's labels.
    #[serde(default)]
    pub container_labels: BTreeMap<String, String>,
    /// Supplementary groups (names or IDs).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Empty: the image's, else SIGTERM.
    #[serde(default)]
    pub stop_signal: String,
    /// `CAP_X` names (or `ALL`), as the docker CLI normalises them.
    #[serde(default)]
    pub capability_add: Vec<String>,
    #[serde(default)]
    pub capability_drop: Vec<String>,
    /// Namespaced sysctls only.
    #[serde(default)]
    pub sysctls: BTreeMap<String, String>,
    #[serde(default)]
    pub ulimits: Vec<Ulimit>,
    /// Extra `/etc/hosts` lines: `IP hostname [alias...]`.
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub dns: DnsConfig,
    /// Docker's `Healthcheck` (None: the image's).
    #[serde(default)]
    pub healthcheck: Option<HealthConfig>,
    /// Docker's `Init`, as given (None: not set).
    #[serde(default)]
    pub init: Option<bool>,
    /// Docker's `TaskTemplate.Networks`, by network ID.
    #[serde(default)]
    pub networks: Vec<NetworkAttachmentConfig>,
    /// Docker's TaskTemplate.Placement.
    #[serde(default)]
    pub placement: Placement,
    /// Docker's Resources.Reservations: what the scheduler counts against a
    /// node's CPUs and memory (`pids` unused).
    #[serde(default)]
    pub reservations: ResourceLimits,
    /// The service's registry credential (`--with-registry-auth`), sealed
    /// under the cluster data key by the manager; never shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_registry_auth: Option<Vec<u8>>,
}

/// Docker's `Placement`: where the scheduler may put a task.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// `key==value` / `key!=value` (node.id, node.hostname, node.role,
    /// node.platform.os|arch, node.labels.*, engine.labels.*).
    pub constraints: Vec<String>,
    /// `spread` preferences' descriptors (`node.labels.zone`), outermost first.
    pub spread: Vec<String>,
    /// Docker's `MaxReplicas`: tasks of the service per node; 0 = no limit.
    pub max_replicas: u64,
    /// Docker's `Platforms` as (os, architecture): the node must be one.
    pub platforms: Vec<(String, String)>,
}

/// Docker's `HealthConfig` (zero: the image's value, else Docker's default).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthConfig {
    pub test: Vec<String>,
    pub interval_ns: i64,
    pub timeout_ns: i64,
    pub start_period_ns: i64,
    pub retries: i32,
}

/// Docker's `Ulimit`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ulimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

/// Docker's `DNSConfig` (all empty: the node's resolv.conf, as Docker).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsConfig {
    pub nameservers: Vec<String>,
    pub search: Vec<String>,
    pub options: Vec<String>,
}

/// Docker's `Resources.Limits` (0: unlimited).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceLimits {
    pub nano_cpus: i64,
    pub memory_bytes: i64,
    pub pids: i64,
}

/// Docker's `Mount`: a node's host path, a local volume or a tmpfs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    #[serde(default)]
    pub kind: MountKind,
    /// The host path (bind), the volume's name (volume; empty: anonymous).
    pub source: String,
    pub target: String,
    pub read_only: bool,
    /// Volume: do not fill a new volume with the image's content there.
    #[serde(default)]
    pub no_copy: bool,
    #[serde(default)]
    pub volume_labels: BTreeMap<String, String>,
    /// Volume: the driver named (`local`, the only one; empty: not named).
    #[serde(default)]
    pub volume_driver: String,
    /// Tmpfs: its size (0: the kernel's default) and mode (0: 1777).
    #[serde(default)]
    pub tmpfs_size: i64,
    #[serde(default)]
    pub tmpfs_mode: u32,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    #[default]
    Bind,
    Volume,
    Tmpfs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureAction {
    Pause,
    Continue,
    Rollback,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateOrder {
    StopFirst,
    StartFirst,
}

/// Docker's `UpdateConfig` (and `RollbackConfig`): how a spec change is rolled
/// out, followed by the scheduler crate's `update` module.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpdateConfig {
    pub parallelism: u64,
    pub delay_ns: u64,
    pub failure_action: FailureAction,
    pub monitor_ns: u64,
    pub max_failure_ratio: f32,
    pub order: UpdateOrder,
}

impl Eq for UpdateConfig {}

impl Default for UpdateConfig {
    /// Swarm's defaults.
    fn default() -> Self {
        Self {
            parallelism: 1,
            delay_ns: 0,
            failure_action: FailureAction::Pause,
            monitor_ns: 5_000_000_000,
            max_failure_ratio: 0.0,
            order: UpdateOrder::StopFirst,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceMode {
    Replicated {
        replicas: u64,
    },
    Global,
    /// Docker's `ReplicatedJob`: `total_completions` tasks run to completion,
    /// at most `max_concurrent` at a time; a spec change runs it again.
    ReplicatedJob {
        max_concurrent: u64,
        total_completions: u64,
    },
    /// Docker's `GlobalJob`: one task to completion on each eligible node.
    GlobalJob,
}

impl ServiceMode {
    pub fn is_job(&self) -> bool {
        matches!(self, ServiceMode::ReplicatedJob { .. } | ServiceMode::GlobalJob)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpec {
    pub annotations: Annotations,
    pub task: TaskSpec,
    pub mode: ServiceMode,
    #[serde(default)]
    pub update_config: UpdateConfig,
    #[serde(default)]
    pub rollback_config: UpdateConfig,
    #[serde(default)]
    pub endpoint: EndpointSpec,
    /// What a Docker API request left out (shown only with insertDefaults).
    #[serde(default)]
    pub omitted: SpecOmitted,
}

/// Docker's optional `ServiceSpec` sections a spec did not give: dockerd shows
/// a spec as stored and fills them only with `insertDefaults=true`. All
/// false (a spec from the control API, or stored before this existed):
/// shown whole.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SpecOmitted {
    pub update_config: bool,
    pub rollback_config: bool,
    pub restart_policy: bool,
    pub resources: bool,
    pub placement: bool,
    pub stop_grace_period: bool,
    pub dns_config: bool,
    /// `RestartPolicy.Window` was given: shown even when 0.
    pub restart_window_given: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub id: String,
    pub meta: Meta,
    pub spec: ServiceSpec,
    /// The spec before the last update: what a rollback returns to.
    #[serde(default)]
    pub previous_spec: Option<ServiceSpec>,
    /// Docker's `UpdateStatus`: set when an update or rollback changes the
    /// tasks, completed by the orchestrator once they run.
    #[serde(default)]
    pub update_status: Option<UpdateStatus>,
    /// Its virtual IPs and published ports, allocated by the leader.
    #[serde(default)]
    pub endpoint: Endpoint,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateState {
    Updating,
    Paused,
    Completed,
    RollbackStarted,
    RollbackPaused,
    RollbackCompleted,
}

impl UpdateState {
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateState::Updating => "updating",
            UpdateState::Paused => "paused",
            UpdateState::Completed => "completed",
            UpdateState::RollbackStarted => "rollback_started",
            UpdateState::RollbackPaused => "rollback_paused",
            UpdateState::RollbackCompleted => "rollback_completed",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateStatus {
    pub state: UpdateState,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub completed_at: Option<OffsetDateTime>,
    pub message: String,
}

pub use swarmkeep_api::task_state::{ALL_TASK_STATES, TaskState};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskStatus {
    pub state: TaskState,
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
    pub message: String,
    pub err: String,
    pub exit_code: Option<i32>,
    pub pid: Option<u32>,
    /// Docker's `PortStatus`: the ports the task publishes on its node (host
    /// mode), as its node bound them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_status: Vec<PortConfig>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    pub meta: Meta,
    pub service_id: String,
    /// The service's name when the task was made (tasks are `name.slot`).
    pub service_name: String,
    /// Replicated services number their tasks' slots from 1; global tasks have 0.
    pub slot: u64,
    pub node_id: Option<String>,
    pub spec: TaskSpec,
    /// The service version the task was made from.
    pub spec_version: u64,
    pub desired_state: TaskState,
    pub status: TaskStatus,
    /// When the task first reported Running (an update's monitor period
    /// counts from it).
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub running_at: Option<OffsetDateTime>,
    /// When its slot was restarted by the restart policy (Unix nanoseconds),
    /// carried from task to task while the spec stays the same: what
    /// `max_attempts` counts, within `window_ns`.
    #[serde(default)]
    pub restarts: Vec<i64>,
    /// Its address on each overlay network of its spec (ingress first),
    /// allocated by the leader; held until the task has stopped.
    #[serde(default)]
    pub addresses: Vec<NetworkAddress>,
    /// The service's endpoint spec it was made with (swarmkit's
    /// `Task.Endpoint.Spec`): a task made under another is out of date, as
    /// publishing a port puts the tasks on the ingress network.
    #[serde(default)]
    pub endpoint_spec: EndpointSpec,
}
