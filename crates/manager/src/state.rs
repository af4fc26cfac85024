//! What a node holds while it is in a swarm: as a manager ([`ManagerState`]:
//! the raft store, the cluster data key, its identity and TLS), as a worker
//! ([`WorkerState`]), or neither ([`Membership`]), and the one cell every
//! part of the manager reads the current membership from.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use swarmkeep_api::errors::{plain, rpc};
use swarmkeep_crypto::{DataKey, SecretBytes};
use swarmkeep_store::Store;
use swarmkeep_transport::leader::not_leader;
use swarmkeep_transport::tls::TlsCell;
use tonic::{Code, Status};

use crate::errors::{NOT_A_MANAGER, SWARM_LOCKED, WORKER_NOT_A_MANAGER};
use crate::saved::SavedState;

/// AAD of the CA key sealed in the cluster object.
pub const CA_KEY_AAD: &str = "ca-key";
/// AAD of the unlock key sealed in the cluster object.
pub const UNLOCK_KEY_AAD: &str = "unlock-key";

/// Who this node is in its swarm.
#[derive(Clone, Debug)]
pub struct NodeIdentity {
    pub node_id: String,
    pub cluster_id: String,
    pub advertise_addr: String,
    pub listen_addr: String,
}

/// A manager's state while it is in a swarm.
pub struct ManagerState {
    pub store: Store,
    pub data_key: DataKey,
    pub identity: NodeIdentity,
    pub tls: Arc<TlsCell>,
    /// Where this manager's wrapped data key lives.
    pub keys_dir: PathBuf,
    /// When the leader last heard from each node.
    pub heartbeats: Heartbeats,
    /// The cluster object version this manager's key wrapping last matched.
    pub keys_reconciled_at: AtomicU64,
    /// Log subscriptions to the agents (used while leading).
    pub logs: Arc<crate::logbroker::LogBroker>,
    /// The managers a newly joined member takes raft traffic from until it
    /// has the cluster state (from then on, the store says who is one).
    pub bootstrap_peers: Vec<String>,
    /// Channels to the managers writes are forwarded to, by address: kept,
    /// so a forwarded write does not pay a TCP and TLS handshake (a channel
    /// reconnects by itself, presenting the identity as it is then).
    pub(crate) leader_channels: std::sync::Mutex<std::collections::HashMap<String, tonic::transport::Channel>>,
    /// The streams forwarded writes and read indexes go to the leader on.
    pub(crate) leader_links: crate::leader_link::LeaderLinks,
    /// Agent sessions this manager's dispatcher holds open (while leading).
    pub(crate) open_sessions: std::sync::atomic::AtomicUsize,
    /// The raft peers' last answers to this manager (see `cluster::network`).
    pub(crate) raft_contact: Arc<RaftContact>,
}

/// A worker: no store, no keys; it knows the managers to heartbeat.
pub struct WorkerState {
    pub identity: NodeIdentity,
    pub tls: Arc<TlsCell>,
    pub managers: RwLock<Vec<String>>,
}

#[derive(Clone, Default)]
pub enum Membership {
    #[default]
    Inactive,
    /// An autolocked manager after a restart, waiting for `swarm unlock`.
    Locked(Arc<SavedState>),
    Worker(Arc<WorkerState>),
    Manager(Arc<ManagerState>),
}

/// The node's current membership, shared by the control API, the cluster
/// listener and the background loops; only the node's transitions set it.
#[derive(Default)]
pub struct CurrentMembership(RwLock<Membership>);

impl CurrentMembership {
    pub fn get(&self) -> Membership {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn set(&self, m: Membership) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = m;
    }

    /// This manager's state, for a caller on the cluster port.
    pub(crate) fn serving(&self) -> Result<Arc<ManagerState>, Status> {
        match self.get() {
            Membership::Manager(s) => Ok(s),
            _ => Err(Status::unavailable("this node is not a manager")),
        }
    }

    /// The leader's state, or "ask the leader" with its address.
    pub(crate) fn leading(&self) -> Result<Arc<ManagerState>, Status> {
        let swarm = self.serving()?;
        if swarm.store.is_leader() {
            Ok(swarm)
        } else {
            Err(not_leader(swarm.store.leader_addr()))
        }
    }

    /// The swarm this node manages, or Docker's "not a swarm manager" error.
    pub fn manager(&self) -> Result<Arc<ManagerState>, Status> {
        match self.get() {
            Membership::Manager(m) => Ok(m),
            Membership::Worker(_) => Err(plain(Code::Unavailable, WORKER_NOT_A_MANAGER)),
            Membership::Locked(_) => Err(plain(Code::Unavailable, SWARM_LOCKED)),
            Membership::Inactive => Err(plain(Code::Unavailable, NOT_A_MANAGER)),
        }
    }
}

/// When the leader last heard from each node (the scheduler crate judges
/// what that means: `liveness::node_states`).
#[derive(Default)]
pub struct Heartbeats {
    pub(crate) seen: Mutex<HashMap<String, Instant>>,
    /// Whether this manager led at the last look: a new leader first gives
    /// every node a full grace period.
    pub(crate) was_leader: AtomicBool,
    /// Since when this manager leads (its first liveness pass as leader).
    pub(crate) leading_since: Mutex<Option<Instant>>,
}

impl Heartbeats {
    pub fn saw(&self, node_id: &str) {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(node_id.to_string(), Instant::now());
    }
}

impl ManagerState {
    pub(crate) fn new(
        store: Store,
        data_key: DataKey,
        identity: NodeIdentity,
        tls: Arc<TlsCell>,
        keys_dir: PathBuf,
    ) -> Self {
        Self {
            store,
            data_key,
            identity,
            tls,
            keys_dir,
            heartbeats: Heartbeats::default(),
            keys_reconciled_at: AtomicU64::new(0),
            logs: Arc::default(),
            bootstrap_peers: Vec::new(),
            leader_channels: Default::default(),
            leader_links: Default::default(),
            open_sessions: Default::default(),
            raft_contact: Default::default(),
        }
    }

    /// See [`ManagerState::bootstrap_peers`].
    pub(crate) fn with_bootstrap_peers(mut self, peers: Vec<String>) -> Self {
        self.bootstrap_peers = peers;
        self
    }

    pub(crate) fn open_unlock_key(&self, sealed: &[u8]) -> Result<swarmkeep_crypto::KeyEncryptionKey, Status> {
        let text = self.data_key.open(UNLOCK_KEY_AAD, sealed).map_err(|_| {
            rpc(
                Code::Internal,
                "the unlock key cannot be opened with this manager's data key",
            )
        })?;
        let text = std::str::from_utf8(text.expose())
            .map_err(|_| rpc(Code::Internal, "unlock key"))?
            .to_string();
        swarmkeep_crypto::KeyEncryptionKey::from_unlock_key(&text).map_err(|_| rpc(Code::Internal, "unlock key"))
    }

    pub(crate) fn seal_token(&self, role: &str, token: &str) -> Vec<u8> {
        self.data_key.seal(
            &format!("join-token/{role}"),
            &SecretBytes::new(token.as_bytes().to_vec()),
        )
    }

    pub(crate) fn open_token(&self, role: &str, sealed: &[u8]) -> Result<String, Status> {
        let plain = self.data_key.open(&format!("join-token/{role}"), sealed).map_err(|_| {
            rpc(
                Code::Internal,
                "the join token cannot be opened with this manager's data key",
            )
        })?;
        String::from_utf8(plain.expose().to_vec()).map_err(|_| rpc(Code::Internal, "join token"))
    }
}

/// When this manager last had an answer from each raft peer (any answer:
/// a peer that refuses a request is still reachable).
#[derive(Default)]
pub struct RaftContact(Mutex<HashMap<u64, Instant>>);

impl RaftContact {
    pub(crate) fn heard(&self, peer: u64) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(peer, Instant::now());
    }

    /// How long since `peer` last answered; `None` if it never did.
    pub fn silent_for(&self, peer: u64) -> Option<Duration> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&peer)
            .map(|t| t.elapsed())
    }
}

/// What `swarm init` sets besides the addresses (zero and empty: Swarm's
/// defaults).
#[derive(Clone, Debug, Default)]
pub struct InitSettings {
    pub heartbeat_ms: u64,
    pub cert_expiry_ms: u64,
    pub networking: NetworkDefaults,
    /// Checked: the raft of the new swarm's first manager starts with them.
    pub ticks: swarmkeep_store::RaftTicks,
}

/// `swarm init`'s `--default-addr-pool`, `--default-addr-pool-mask-length`
/// and `--data-path-port` (empty and zero: Swarm's defaults).
#[derive(Clone, Debug, Default)]
pub struct NetworkDefaults {
    pub default_addr_pool: Vec<String>,
    pub subnet_size: u32,
    pub data_path_port: u32,
}
