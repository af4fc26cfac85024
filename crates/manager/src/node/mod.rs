//! This node's life in a swarm ([`SwarmNode`]): inactive until `swarm init`
//! or `swarm join`; then a worker or a manager, promoted, demoted, unlocked,
//! leaving or removed. Each transition sets the [`CurrentMembership`] and
//! starts or stops the background work of the new role: the cluster port,
//! the heartbeat loop, the leader's loops and every manager's upkeep.
//! `address.rs` chooses the addresses, `heartbeat.rs` sends the node's
//! heartbeats to the managers; `crate::saved` is what it remembers on disk.

mod address;
mod heartbeat;
mod renewal;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use swarmkeep_api::cluster::cluster_client::ClusterClient;
use swarmkeep_api::cluster::node_ca_client::NodeCaClient;
use swarmkeep_api::cluster::{
    GetRootCaRequest, IssueNodeCertificateRequest, JoinRaftRequest, LeaveRaftRequest, ManagerKeysRequest,
    RenewNodeCertificateRequest,
};
use swarmkeep_api::errors::{plain, rpc};
use swarmkeep_crypto::{DataKey, SecretBytes, new_id, random_bytes};
use swarmkeep_store::objects::{Availability, Cluster, Meta, Node, NodeRole, NodeState};
use swarmkeep_store::{Command, RaftTicks, Store, StoreSettings};
use swarmkeep_transport::leader::leader_hint;
use swarmkeep_transport::tls::{NodeTls, TlsCell, pinned_channel, unverified_channel};
use swarmkeep_transport::{Dispatchers, Upstream};
use time::OffsetDateTime;
use tokio::sync::watch;
use tonic::{Code, Status};

use crate::saved::SavedState;
use address::{addresses, describe_host, resolve_data_path_addr, resolve_remote};

use crate::ca::{RootCa, cert_digest, node_key_and_csr};
use crate::cluster::{self, network::GrpcNetwork};
use crate::errors::{ALREADY_IN_SWARM, NOT_IN_SWARM, SWARM_NOT_LOCKED, internal, write_error};
use crate::keystore::KeyStore;
use crate::leader::call_leader;
use crate::state::InitSettings;
use crate::state::{CA_KEY_AAD, CurrentMembership, ManagerState, Membership, NodeIdentity, WorkerState};
use crate::{orchestrator, tokens, upkeep};

#[derive(Clone, Debug)]
pub struct ManagerConfig {
    pub data_dir: PathBuf,
    /// The hostname this node reports (`--hostname`), else the system's.
    pub hostname: Option<String>,
    pub store: StoreSettings,
    /// The snapshot interval a new swarm starts with (`swarm update
    /// --snapshot-interval` changes it cluster-wide).
    pub initial_snapshot_interval: u64,
}

struct Background {
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// This node's membership in a swarm, and the transitions between roles.
pub struct SwarmNode {
    config: ManagerConfig,
    membership: Arc<CurrentMembership>,
    /// Serialises init, join, leave and role changes.
    transitions: tokio::sync::Mutex<()>,
    background: std::sync::Mutex<Option<Background>>,
    /// Raft peers' last answers, shared by this node's raft network and its
    /// manager state (the leader's reachability judgement).
    raft_contact: Arc<crate::state::RaftContact>,
    /// `CAConfig.ForceRotate`: the node certificate's and the cluster's.
    cert_rotation: renewal::CertRotation,
}

impl SwarmNode {
    /// Starts from the data dir: a node that was in a swarm resumes its role;
    /// any leftover of an interrupted init or join is removed.
    pub async fn start(config: ManagerConfig) -> Result<Arc<Self>, String> {
        // A data dir another user could write to is refused, not repaired:
        // its keys could already have been replaced.
        if config.data_dir.exists() {
            swarmkeep_disk::check_not_shared(&config.data_dir)?;
        }
        swarmkeep_disk::private_dir(&config.data_dir)
            .map_err(|e| format!("creating data dir {}: {e}", config.data_dir.display()))?;
        let manager = Arc::new(Self {
            config,
            membership: Arc::default(),
            transitions: Default::default(),
            background: Default::default(),
            raft_contact: Default::default(),
            cert_rotation: Default::default(),
        });
        match SavedState::load(&manager.config.data_dir).map_err(|e| format!("reading node state: {e}"))? {
            Some(local) => {
                let tls = NodeTls::load(&manager.tls_dir()).map_err(|e| format!("reading TLS identity: {e}"))?;
                manager.cert_rotation.reset(local.cert_rotation);
                let tls = TlsCell::new(Arc::new(tls)).map_err(|e| e.to_string())?;
                let info = NodeIdentity {
                    node_id: local.node_id.clone(),
                    cluster_id: local.cluster_id.clone(),
                    advertise_addr: local.advertise_addr.clone(),
                    listen_addr: local.listen_addr.clone(),
                };
                if local.role == NodeRole::Manager && KeyStore::new(&manager.keys_dir()).is_locked_mode() {
                    tracing::warn!(node_id = %local.node_id, "swarm is locked: run `swarmkeep swarm unlock`");
                    manager.set(Membership::Locked(Arc::new(local)));
                    return Ok(manager);
                }
                if local.role == NodeRole::Manager {
                    let data_key = KeyStore::new(&manager.keys_dir()).load().map_err(|e| e.to_string())?;
                    let store = manager
                        .open_store(local.raft_id, &tls, RaftTicks::default())
                        .await
                        .map_err(|e| e.message().to_string())?;
                    // A manager restarted before its store received
                    // anything takes raft traffic from the managers it was
                    // told of, as right after joining.
                    manager.set(Membership::Manager(Arc::new(
                        manager
                            .manager_state(store, data_key, info, tls)
                            .with_bootstrap_peers(local.manager_ids.clone()),
                    )));
                } else {
                    // The managers it last heard of, and only them.
                    let _ = tls.pin_managers(local.manager_ids.iter().cloned());
                    manager.set(Membership::Worker(Arc::new(WorkerState {
                        identity: info,
                        tls,
                        managers: RwLock::new(local.managers.clone()),
                    })));
                }
                tracing::info!(node_id = %local.node_id, role = local.role.as_str(), "resuming swarm membership");
                manager
                    .start_background(&local.listen_addr)
                    .map_err(|e| e.message().to_string())?;
            }
            None => manager.remove_local_state(),
        }
        Ok(manager)
    }

    pub(crate) fn keys_dir(&self) -> PathBuf {
        self.config.data_dir.join("keys")
    }

    fn raft_dir(&self) -> PathBuf {
        self.config.data_dir.join("raft")
    }

    fn tls_dir(&self) -> PathBuf {
        self.config.data_dir.join("tls")
    }

    fn remove_local_state(&self) {
        let _ = SavedState::remove(&self.config.data_dir);
        for dir in [self.keys_dir(), self.raft_dir(), self.tls_dir()] {
            if dir.exists() {
                tracing::info!(dir = %dir.display(), "removing swarm state");
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
    }

    /// Opens this manager's raft store; `ticks` is the timing of a new
    /// member (one that has run before keeps the timing it saved).
    async fn open_store(&self, raft_id: u64, tls: &Arc<TlsCell>, ticks: RaftTicks) -> Result<Store, Status> {
        let settings = StoreSettings {
            ticks,
            ..self.config.store.clone()
        };
        Store::open(
            &self.raft_dir(),
            raft_id,
            &settings,
            GrpcNetwork::new(tls.clone(), self.raft_contact.clone()),
        )
        .await
        .map_err(|e| internal("opening the raft store", &e))
    }

    fn set(&self, m: Membership) {
        self.membership.set(m);
    }

    pub fn membership(&self) -> Membership {
        self.membership.get()
    }

    /// The swarm this node manages, or Docker's "not a swarm manager" error.
    pub fn active(&self) -> Result<Arc<ManagerState>, Status> {
        self.membership.manager()
    }

    fn manager_state(
        &self,
        store: Store,
        data_key: DataKey,
        identity: NodeIdentity,
        tls: Arc<TlsCell>,
    ) -> ManagerState {
        let mut state = ManagerState::new(store, data_key, identity, tls, self.keys_dir());
        state.raft_contact = self.raft_contact.clone();
        state
    }

    fn ensure_inactive(&self) -> Result<(), Status> {
        match self.membership() {
            Membership::Inactive => Ok(()),
            _ => Err(plain(Code::Unavailable, ALREADY_IN_SWARM)),
        }
    }

    /// `swarm init`: a new one-manager swarm. Either every piece (CA, keys,
    /// raft store, cluster and node objects, node state) is in place when it
    /// returns Ok, or none is.
    pub async fn init(
        self: &Arc<Self>,
        advertise_addr: &str,
        listen_addr: &str,
        mut settings: InitSettings,
        data_path_addr: &str,
    ) -> Result<String, Status> {
        let _guard = self.transitions.lock().await;
        self.ensure_inactive()?;
        let (advertise, listen) = addresses(advertise_addr, listen_addr)?;
        let data_path_addr = resolve_data_path_addr(data_path_addr)?;
        self.remove_local_state();
        if settings.cert_expiry_ms == 0 {
            settings.cert_expiry_ms = swarmkeep_store::objects::DEFAULT_CERT_EXPIRY_MS;
        }
        let result = self.create_swarm(advertise, listen, settings, data_path_addr).await;
        if result.is_err() {
            self.abandon().await;
        }
        result
    }

    /// Undoes a failed init or join: nothing of it stays running or on disk.
    async fn abandon(&self) {
        self.stop_background().await;
        if let Membership::Manager(m) = self.membership() {
            m.store.shutdown().await;
        }
        self.set(Membership::Inactive);
        self.remove_local_state();
    }

    async fn create_swarm(
        self: &Arc<Self>,
        advertise: SocketAddr,
        listen: SocketAddr,
        settings: InitSettings,
        data_path_addr: String,
    ) -> Result<String, Status> {
        let InitSettings {
            heartbeat_ms,
            cert_expiry_ms,
            networking,
            ticks,
        } = settings;
        let node_id = new_id();
        let cluster_id = new_id();
        let raft_id = random_raft_id();
        let data_key = DataKey::generate();
        let ca = RootCa::generate().map_err(|e| internal("creating the cluster CA", &e))?;
        let (key_pem, csr) = node_key_and_csr().map_err(|e| internal("creating the node key", &e))?;
        let cert_pem = ca
            .issue(
                &csr,
                &node_id,
                NodeRole::Manager,
                time::Duration::milliseconds(i64::try_from(cert_expiry_ms).unwrap_or(i64::MAX)),
            )
            .map_err(|e| internal("issuing the node certificate", &e))?;
        let tls = Arc::new(NodeTls {
            ca_pem: ca.cert_pem.clone(),
            cert_pem,
            key_pem,
        });
        tls.save(&self.tls_dir())
            .map_err(|e| internal("writing the TLS identity", &e))?;
        let tls = TlsCell::new(tls).map_err(|e| internal("the TLS identity", &e))?;
        KeyStore::new(&self.keys_dir())
            .create(&data_key)
            .map_err(|e| internal("writing keys", &e))?;

        let store = self.open_store(raft_id, &tls, ticks).await?;
        let info = NodeIdentity {
            node_id: node_id.clone(),
            cluster_id: cluster_id.clone(),
            advertise_addr: advertise.to_string(),
            listen_addr: listen.to_string(),
        };
        let swarm = Arc::new(self.manager_state(store, data_key, info, tls));
        self.set(Membership::Manager(swarm.clone()));
        // The listener first, so raft peers (later) and joiners can reach us.
        self.start_background(&listen.to_string())?;
        swarm
            .store
            .bootstrap(&advertise.to_string())
            .await
            .map_err(|e| internal("starting raft", &e))?;

        let digest = ca.digest().map_err(|e| internal("cluster CA", &e))?;
        let now = OffsetDateTime::now_utc();
        let meta = Meta {
            version: 0,
            created_at: now,
            updated_at: now,
        };
        let cluster = Cluster {
            id: cluster_id.clone(),
            meta: meta.clone(),
            name: "default".into(),
            snapshot_interval: self.config.initial_snapshot_interval,
            keep_old_snapshots: 0,
            election_tick: ticks.election,
            heartbeat_tick: ticks.heartbeat,
            log_entries_for_slow_followers: swarmkeep_store::objects::DEFAULT_LOG_ENTRIES_FOR_SLOW_FOLLOWERS,
            task_history_retention_limit: 5,
            heartbeat_period_ms: if heartbeat_ms == 0 {
                swarmkeep_scheduler::liveness::DEFAULT_HEARTBEAT_MS
            } else {
                heartbeat_ms
            },
            ca_cert_pem: ca.cert_pem.clone(),
            sealed_ca_key: swarm.data_key.seal(CA_KEY_AAD, ca.key_pem()),
            sealed_worker_token: swarm.seal_token("worker", &tokens::generate(&digest)),
            sealed_manager_token: swarm.seal_token("manager", &tokens::generate(&digest)),
            node_cert_expiry_ms: cert_expiry_ms,
            ca_force_rotate: 0,
            autolock: false,
            sealed_unlock_key: Vec::new(),
            default_addr_pool: networking.default_addr_pool,
            subnet_size: networking.subnet_size,
            data_path_port: networking.data_path_port,
        };
        let networks = swarmkeep_scheduler::networks::predefined_networks(&cluster, now, &mut new_id);
        let node = Node {
            id: node_id.clone(),
            meta,
            labels: Default::default(),
            role: NodeRole::Manager,
            availability: Availability::Active,
            state: NodeState::Ready,
            description: describe_host(self.config.hostname.as_deref()),
            addr: advertise.ip().to_string(),
            raft_id: Some(raft_id),
            manager_addr: Some(advertise.to_string()),
            ingress_address: None,
            raft_unreachable: false,
            data_path_addr,
        };
        swarm
            .store
            .write(Command::InitCluster {
                cluster: Box::new(cluster),
                node: Box::new(node),
                // The networks every swarm has, there before the first
                // service can ask for one.
                networks,
            })
            .await
            .map_err(write_error)?;
        SavedState {
            node_id: node_id.clone(),
            cluster_id,
            raft_id,
            advertise_addr: advertise.to_string(),
            listen_addr: listen.to_string(),
            role: NodeRole::Manager,
            managers: vec![advertise.to_string()],
            manager_ids: Vec::new(),
            cert_rotation: 0,
        }
        .save(&self.config.data_dir)
        .map_err(|e| internal("writing node state", &e))?;
        self.cert_rotation.reset(0);
        tracing::info!(%node_id, %advertise, "swarm initialized");
        Ok(node_id)
    }

    /// `swarm join`: pins the CA by the token's digest, gets a certificate
    /// for the token's role, and — for a manager — the data key and a seat in
    /// the raft group. Returns the role joined as.
    pub async fn join(
        self: &Arc<Self>,
        token: &str,
        remote: &str,
        advertise_addr: &str,
        listen_addr: &str,
        data_path_addr: &str,
    ) -> Result<String, Status> {
        let _guard = self.transitions.lock().await;
        self.ensure_inactive()?;
        let parsed = tokens::parse(token).ok_or_else(|| plain(Code::InvalidArgument, "invalid join token"))?;
        let remote = resolve_remote(remote).await?;
        let (advertise, listen) = addresses(advertise_addr, listen_addr)?;
        let data_path_addr = resolve_data_path_addr(data_path_addr)?;
        self.remove_local_state();
        let result = self
            .join_swarm(parsed, &remote, advertise, listen, data_path_addr)
            .await;
        if result.is_err() {
            self.abandon().await;
        }
        result
    }

    async fn join_swarm(
        self: &Arc<Self>,
        token: tokens::ParsedToken,
        remote: &str,
        advertise: SocketAddr,
        listen: SocketAddr,
        data_path_addr: String,
    ) -> Result<String, Status> {
        let unreachable = |e: &dyn std::fmt::Display| {
            rpc(
                Code::Unavailable,
                format!("connection error: desc = \"transport: Error while dialing dial tcp {remote}: {e}\""),
            )
        };
        let channel = unverified_channel(remote)
            .await
            .map_err(|_| unreachable(&"connect: connection refused"))?;
        let ca_pem = NodeCaClient::new(channel)
            .get_root_ca_certificate(GetRootCaRequest {})
            .await
            .map_err(|s| unreachable(&s.message()))?
            .into_inner()
            .certificate_pem;
        let digest = cert_digest(&ca_pem).map_err(|e| internal("remote CA", &e))?;
        if digest != token.ca_digest {
            return Err(plain(
                Code::InvalidArgument,
                format!(
                    "remote CA does not match fingerprint. Expected: {}",
                    tokens::hex(&token.ca_digest)
                ),
            ));
        }
        let (key_pem, csr) = node_key_and_csr().map_err(|e| internal("creating the node key", &e))?;
        let desc = describe_host(self.config.hostname.as_deref());
        let pinned = pinned_channel(remote, &ca_pem).map_err(|e| unreachable(&e))?;
        let issued = NodeCaClient::new(pinned)
            .issue_node_certificate(IssueNodeCertificateRequest {
                token: token.text.clone(),
                csr_pem: csr,
                hostname: desc.hostname.clone(),
                advertise_addr: advertise.to_string(),
                os: desc.os.clone(),
                architecture: desc.architecture.clone(),
                nano_cpus: desc.nano_cpus,
                memory_bytes: desc.memory_bytes,
                engine_version: desc.engine_version.clone(),
                data_path_addr,
            })
            .await?
            .into_inner();
        let tls = Arc::new(NodeTls {
            ca_pem,
            cert_pem: issued.certificate_pem,
            key_pem,
        });
        tls.save(&self.tls_dir())
            .map_err(|e| internal("writing the TLS identity", &e))?;
        let tls = TlsCell::new(tls).map_err(|e| internal("the TLS identity", &e))?;
        let info = NodeIdentity {
            node_id: issued.node_id.clone(),
            cluster_id: issued.cluster_id.clone(),
            advertise_addr: advertise.to_string(),
            listen_addr: listen.to_string(),
        };
        let role = NodeRole::parse(&issued.role).ok_or_else(|| {
            internal(
                "joining",
                &format!("the manager answered an unknown role {:?}", issued.role),
            )
        })?;
        let mut local = SavedState {
            node_id: issued.node_id.clone(),
            cluster_id: issued.cluster_id,
            raft_id: 0,
            advertise_addr: advertise.to_string(),
            listen_addr: listen.to_string(),
            role,
            managers: vec![remote.to_string()],
            manager_ids: Vec::new(),
            cert_rotation: issued.cert_rotation,
        };
        self.cert_rotation.reset(issued.cert_rotation);
        if role == NodeRole::Manager {
            let swarm = self.become_manager(info, tls, remote).await?;
            local.raft_id = swarm.store.raft_id();
            local.manager_ids = swarm.bootstrap_peers.clone();
        } else {
            self.set(Membership::Worker(Arc::new(WorkerState {
                identity: info,
                tls,
                managers: RwLock::new(vec![remote.to_string()]),
            })));
            self.start_background(&listen.to_string())?;
        }
        local
            .save(&self.config.data_dir)
            .map_err(|e| internal("writing node state", &e))?;
        tracing::info!(node_id = %issued.node_id, role = %issued.role, "joined the swarm");
        Ok(issued.role)
    }

    /// Fetches the data key from a manager, starts an empty raft member and
    /// asks the leader to add it (it catches up by log or snapshot).
    async fn become_manager(
        self: &Arc<Self>,
        info: NodeIdentity,
        tls: Arc<TlsCell>,
        via: &str,
    ) -> Result<Arc<ManagerState>, Status> {
        let channel = tls.channel(via).map_err(|e| internal("connecting", &e))?;
        let keys = ClusterClient::new(channel)
            .manager_keys(ManagerKeysRequest {})
            .await?
            .into_inner();
        let data_key = DataKey::from_bytes(&SecretBytes::new(keys.data_key)).map_err(|e| internal("data key", &e))?;
        KeyStore::new(&self.keys_dir())
            .create(&data_key)
            .map_err(|e| internal("writing keys", &e))?;
        let raft_id = random_raft_id();
        let _ = std::fs::remove_dir_all(self.raft_dir());
        let ticks = RaftTicks {
            election: keys.election_tick,
            heartbeat: keys.heartbeat_tick,
        };
        // A manager of a version before the ticks were replicated sends none.
        let ticks = if ticks.check().is_ok() {
            ticks
        } else {
            RaftTicks::default()
        };
        let store = self.open_store(raft_id, &tls, ticks).await?;
        let advertise = info.advertise_addr.clone();
        let listen = info.listen_addr.clone();
        let swarm = Arc::new(
            self.manager_state(store, data_key, info, tls.clone())
                .with_bootstrap_peers(keys.manager_node_ids),
        );
        self.stop_background().await;
        self.set(Membership::Manager(swarm.clone()));
        self.start_background(&listen)?;
        call_leader(&tls, via, |mut client| {
            let advertise = advertise.clone();
            async move {
                client
                    .join_raft(JoinRaftRequest {
                        raft_id,
                        addr: advertise,
                    })
                    .await
            }
        })
        .await?;
        swarm
            .store
            .wait_for_leader(Duration::from_secs(10))
            .await
            .map_err(|e| internal("raft", &e))?;
        Ok(swarm)
    }

    /// A manager that was demoted: leave the raft group, drop the store and
    /// the keys, carry on as a worker.
    pub(crate) async fn become_worker(self: &Arc<Self>) -> Result<(), Status> {
        let _guard = self.transitions.lock().await;
        let Membership::Manager(swarm) = self.membership() else {
            return Ok(());
        };
        let leader = swarm.store.leader_addr();
        if let Some(addr) = &leader {
            let _ = call_leader(&swarm.tls, addr, |mut c| async move {
                c.leave_raft(LeaveRaftRequest {}).await
            })
            .await;
        }
        // The managers as this store last knew them: the certificates the
        // worker accepts from a server when it restarts (not the managers it
        // was told of when it joined, which may be long gone).
        let manager_ids: Vec<String> = swarm.store.read(|st| {
            st.nodes
                .values()
                .filter(|n| n.role == NodeRole::Manager)
                .map(|n| n.id.clone())
                .collect()
        });
        swarm.store.shutdown().await;
        let _ = std::fs::remove_dir_all(self.raft_dir());
        let _ = std::fs::remove_dir_all(self.keys_dir());
        // A worker's certificate: this node can no longer serve as a manager.
        // (If none can be had now, the renewal loop gets one: it renews at
        // once a certificate whose role is not the node's.)
        if let Some(addr) = &leader
            && let Err(e) = self.renew_certificate(&swarm.tls, addr).await
        {
            tracing::warn!(error = %e.message(), "no worker certificate yet; keeping the old one");
        }
        let tls = swarm.tls.clone();
        let managers: Vec<String> = leader.into_iter().collect();
        self.stop_background().await;
        self.set(Membership::Worker(Arc::new(WorkerState {
            identity: swarm.identity.clone(),
            tls,
            managers: RwLock::new(managers.clone()),
        })));
        self.start_background(&swarm.identity.listen_addr)?;
        self.save_role(NodeRole::Worker, 0, managers, manager_ids)?;
        tracing::info!("demoted: now a worker");
        Ok(())
    }

    /// A worker that was promoted.
    pub(crate) async fn promote_self(self: &Arc<Self>, via: &str) -> Result<(), Status> {
        let _guard = self.transitions.lock().await;
        let Membership::Worker(w) = self.membership() else {
            return Ok(());
        };
        // A manager's certificate first: the other managers dial it as one.
        self.renew_certificate(&w.tls, via).await?;
        let swarm = self.become_manager(w.identity.clone(), w.tls.clone(), via).await?;
        self.save_role(
            NodeRole::Manager,
            swarm.store.raft_id(),
            vec![via.to_string()],
            swarm.bootstrap_peers.clone(),
        )?;
        tracing::info!("promoted: now a manager");
        Ok(())
    }

    /// A new key and a certificate for the role the store gives this node
    /// now, from the manager at `via` (authenticated by the current
    /// certificate), saved over the old identity.
    pub(super) async fn renew_certificate(&self, tls: &TlsCell, via: &str) -> Result<(), Status> {
        let (key_pem, csr_pem) = node_key_and_csr().map_err(|e| internal("creating the node key", &e))?;
        // Only the leader signs (its store says the node's role now); a
        // follower's answer names it.
        let mut addr = via.to_string();
        let mut hops = 0;
        let resp = loop {
            let channel = tls.channel(&addr).map_err(|e| internal("connecting", &e))?;
            let answer = NodeCaClient::new(channel)
                .renew_node_certificate(RenewNodeCertificateRequest {
                    csr_pem: csr_pem.clone(),
                })
                .await;
            match answer {
                Ok(resp) => break resp.into_inner(),
                Err(s) if hops < 3 && leader_hint(&s).is_some() => {
                    addr = leader_hint(&s).unwrap_or_default();
                    hops += 1;
                }
                Err(s) => return Err(s),
            }
        };
        let renewed = Arc::new(NodeTls {
            ca_pem: tls.get().ca_pem.clone(),
            cert_pem: resp.certificate_pem,
            key_pem,
        });
        tls.save_and_replace(renewed, &self.tls_dir())
            .map_err(|e| internal("the renewed TLS identity", &e))?;
        self.cert_rotation.signed_under(resp.cert_rotation);
        let saved = SavedState::load(&self.config.data_dir).ok().flatten().map(|mut local| {
            local.cert_rotation = resp.cert_rotation;
            local.save(&self.config.data_dir)
        });
        if let Some(Err(e)) = saved {
            // It renews once more after a restart.
            tracing::warn!(error = %e, "saving the certificate's rotation failed");
        }
        tracing::info!(role = %resp.role, "node certificate renewed");
        Ok(())
    }

    /// The renewal loop's call: a new certificate for the role the node has
    /// now, through itself (a manager) or the managers it knows (a worker).
    pub(super) async fn renew_own_certificate(&self) -> Result<(), String> {
        let _guard = self.transitions.lock().await;
        let (tls, via) = match self.membership() {
            Membership::Manager(m) => {
                // Through itself (it knows the leader), then the others.
                let mut via = vec![m.identity.advertise_addr.clone()];
                via.extend(m.store.read(|st| {
                    st.nodes
                        .values()
                        .filter_map(|n| n.manager_addr.clone())
                        .collect::<Vec<_>>()
                }));
                via.dedup();
                (m.tls.clone(), via)
            }
            Membership::Worker(w) => (
                w.tls.clone(),
                w.managers.read().unwrap_or_else(|p| p.into_inner()).clone(),
            ),
            Membership::Inactive | Membership::Locked(_) => return Ok(()),
        };
        let mut last = "no manager known".to_string();
        for addr in via {
            match self.renew_certificate(&tls, &addr).await {
                Ok(()) => return Ok(()),
                Err(e) => last = format!("{addr}: {}", e.message()),
            }
        }
        Err(last)
    }

    /// A worker's list of managers (addresses and node IDs), kept for its
    /// next start — unless a role change came first (it saves its own).
    pub(super) async fn save_managers(&self, managers: Vec<String>, manager_ids: Vec<String>) {
        let _guard = self.transitions.lock().await;
        if !matches!(self.membership(), Membership::Worker(_)) {
            return;
        }
        let saved = SavedState::load(&self.config.data_dir).ok().flatten().map(|mut local| {
            local.managers = managers;
            local.manager_ids = manager_ids;
            local.save(&self.config.data_dir)
        });
        if let Some(Err(e)) = saved {
            tracing::warn!(error = %e, "saving the list of managers failed");
        }
    }

    /// Saves a role change, with the managers' addresses and node IDs kept for
    /// the next start.
    fn save_role(
        &self,
        role: NodeRole,
        raft_id: u64,
        managers: Vec<String>,
        manager_ids: Vec<String>,
    ) -> Result<(), Status> {
        let mut local = SavedState::load(&self.config.data_dir)
            .map_err(|e| internal("reading node state", &e))?
            .ok_or_else(|| internal("node state", &"missing"))?;
        local.role = role;
        local.raft_id = raft_id;
        local.managers = managers;
        local.manager_ids = manager_ids;
        local
            .save(&self.config.data_dir)
            .map_err(|e| internal("writing node state", &e))
    }

    /// `swarm unlock`: opens the data key with the unlock key and resumes
    /// the manager role.
    pub async fn unlock(self: &Arc<Self>, unlock_key: &str) -> Result<(), Status> {
        let _guard = self.transitions.lock().await;
        let local = match self.membership() {
            Membership::Locked(local) => local,
            Membership::Inactive => return Err(plain(Code::FailedPrecondition, NOT_IN_SWARM)),
            _ => return Err(plain(Code::FailedPrecondition, SWARM_NOT_LOCKED)),
        };
        let invalid = || plain(Code::InvalidArgument, "invalid key");
        let kek = swarmkeep_crypto::KeyEncryptionKey::from_unlock_key(unlock_key).map_err(|_| invalid())?;
        let data_key = KeyStore::new(&self.keys_dir()).unlock(&kek).map_err(|_| invalid())?;
        let tls = NodeTls::load(&self.tls_dir()).map_err(|e| internal("reading TLS identity", &e))?;
        let tls = TlsCell::new(Arc::new(tls)).map_err(|e| internal("reading TLS identity", &e))?;
        let store = self.open_store(local.raft_id, &tls, RaftTicks::default()).await?;
        let info = NodeIdentity {
            node_id: local.node_id.clone(),
            cluster_id: local.cluster_id.clone(),
            advertise_addr: local.advertise_addr.clone(),
            listen_addr: local.listen_addr.clone(),
        };
        self.set(Membership::Manager(Arc::new(
            self.manager_state(store, data_key, info, tls)
                .with_bootstrap_peers(local.manager_ids.clone()),
        )));
        self.start_background(&local.listen_addr)?;
        tracing::info!("swarm unlocked");
        Ok(())
    }

    /// `swarm leave`. A manager leaves only with `force`; then, unlike Swarm,
    /// it first takes itself out of the raft membership so no ghost member
    /// counts against the quorum.
    pub async fn leave(self: &Arc<Self>, force: bool) -> Result<(), Status> {
        let _guard = self.transitions.lock().await;
        match self.membership() {
            Membership::Inactive => return Err(plain(Code::Unavailable, NOT_IN_SWARM)),
            Membership::Locked(_) => {}
            Membership::Manager(swarm) => {
                if !force {
                    let last = swarm.store.voters().len() <= 1;
                    return Err(plain(
                        Code::FailedPrecondition,
                        if last {
                            "You are attempting to leave the swarm on a node that is participating as a manager. Removing the last manager erases all current state of the swarm. Use `--force` to ignore this message."
                        } else {
                            "You are attempting to leave the swarm on a node that is participating as a manager. The only way to restore a swarm that has lost consensus is to reinitialize it with `--force-new-cluster`. Use `--force` to suppress this message."
                        },
                    ));
                }
                if swarm.store.voters().len() > 1
                    && let Some(addr) = swarm.store.leader_addr()
                {
                    let left = call_leader(&swarm.tls, &addr, |mut c| async move {
                        c.leave_raft(LeaveRaftRequest {}).await
                    })
                    .await;
                    if let Err(e) = left {
                        tracing::warn!(error = %e.message(), "could not leave the raft group cleanly");
                    }
                }
                swarm.store.shutdown().await;
            }
            Membership::Worker(_) => {}
        }
        self.stop_background().await;
        self.set(Membership::Inactive);
        self.remove_local_state();
        tracing::info!("left the swarm");
        Ok(())
    }

    /// Leaves because the managers no longer list this node.
    pub(crate) async fn removed_from_swarm(self: &Arc<Self>) {
        let _guard = self.transitions.lock().await;
        if let Membership::Manager(swarm) = self.membership() {
            swarm.store.shutdown().await;
        }
        self.set(Membership::Inactive);
        self.remove_local_state();
        tracing::warn!("this node was removed from the swarm");
        // The heartbeat loop calling this ends with the stop signal.
        if let Some(bg) = self.background.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = bg.stop.send(true);
        }
    }

    /// The work of the current role: the cluster port, heartbeats, the
    /// leader's loops and a manager's upkeep (the last two idle on a worker).
    fn start_background(self: &Arc<Self>, listen_addr: &str) -> Result<(), Status> {
        let tls = match self.membership() {
            Membership::Manager(m) => m.tls.clone(),
            Membership::Worker(w) => w.tls.clone(),
            Membership::Inactive | Membership::Locked(_) => return Err(plain(Code::Internal, "not in a swarm")),
        };
        let (stop, stop_rx) = watch::channel(false);
        let m = &self.membership;
        let tasks = vec![
            cluster::serve(m.clone(), &tls, listen_addr, stop_rx.clone())?,
            tokio::spawn(heartbeat::heartbeat_loop(Arc::downgrade(self), stop_rx.clone())),
            tokio::spawn(renewal::renewal_loop(Arc::downgrade(self), stop_rx.clone())),
            tokio::spawn(orchestrator::orchestrator_loop(m.clone(), stop_rx.clone())),
            tokio::spawn(manager_passes(m.clone(), stop_rx)),
        ];
        *self.background.lock().unwrap_or_else(|p| p.into_inner()) = Some(Background { stop, tasks });
        Ok(())
    }

    async fn stop_background(&self) {
        let bg = self.background.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(bg) = bg {
            let _ = bg.stop.send(true);
            for t in bg.tasks {
                let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
            }
        }
    }

    pub async fn shutdown(&self) {
        self.stop_background().await;
        if let Membership::Manager(swarm) = self.membership() {
            swarm.store.shutdown().await;
        }
    }
}

/// Every 250 ms on a manager: its upkeep, and — while it leads — the node
/// liveness judgement.
async fn manager_passes(membership: Arc<CurrentMembership>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        if let Membership::Manager(swarm) = membership.get() {
            upkeep::upkeep_pass(&swarm).await;
            orchestrator::liveness_pass(&swarm).await;
        }
    }
}

/// The agent's way to the dispatcher: the leader a manager knows of, or the
/// managers a worker heard about.
impl Upstream for SwarmNode {
    fn dispatchers(&self) -> Option<Dispatchers> {
        match self.membership() {
            Membership::Inactive | Membership::Locked(_) => None,
            // No leader known (an election): no dispatcher to try yet, but
            // still in the swarm, so the agent keeps its tasks running.
            Membership::Manager(s) => Some(Dispatchers {
                tls: s.tls.clone(),
                managers: s.store.leader_addr().into_iter().collect(),
            }),
            Membership::Worker(w) => Some(Dispatchers {
                tls: w.tls.clone(),
                managers: w.managers.read().unwrap_or_else(|p| p.into_inner()).clone(),
            }),
        }
    }
}

fn random_raft_id() -> u64 {
    let mut b = [0u8; 8];
    random_bytes(&mut b);
    u64::from_le_bytes(b).max(1)
}
