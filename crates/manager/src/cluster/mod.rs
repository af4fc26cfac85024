//! The cluster side of a node: the mTLS listener (raft, CA, dispatcher-style
//! heartbeats, write forwarding), the heartbeat loop every node runs, and the
//! leader's judgement of which nodes are up.

pub mod network;
pub(crate) mod server;
pub mod tls;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use swarmkeep_api::cluster::cluster_client::ClusterClient;
use swarmkeep_api::cluster::cluster_server::ClusterServer;
use swarmkeep_api::cluster::node_ca_server::NodeCaServer;
use swarmkeep_api::cluster::raft_server::RaftServer;
use swarmkeep_api::cluster::{HeartbeatRequest, ProposeRequest, ReadIndexRequest};
use swarmkeep_api::dispatcher::dispatcher_server::DispatcherServer;
use swarmkeep_api::errors::{plain, rpc};
use swarmkeep_store::objects::{NodeRole, NodeState};
use swarmkeep_store::{Command, CommandError, WriteError};
use tokio::sync::watch;
use tonic::transport::Channel;
use tonic::{Code, Response, Status};

use crate::controlapi::common::write_error;
use crate::keystore::KeyStore;
use crate::manager::{ActiveSwarm, Manager, Membership};
use tls::NodeTls;

/// AAD of the CA key sealed in the cluster object.
pub const CA_KEY_AAD: &str = "ca-key";
/// AAD of the unlock key sealed in the cluster object.
pub const UNLOCK_KEY_AAD: &str = "unlock-key";
const LEADER_KEY: &str = "x-swarmkeep-leader";
/// How long a write may wait for a quorum before it is reported as failed.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// "Ask the leader instead", with its address when known.
pub fn not_leader(leader: Option<String>) -> Status {
    let mut status = rpc(Code::FailedPrecondition, "this manager is not the raft leader");
    if let Some(addr) = leader.and_then(|a| a.parse().ok()) {
        status.metadata_mut().insert(LEADER_KEY, addr);
    }
    status
}

pub fn leader_hint(status: &Status) -> Option<String> {
    status
        .metadata()
        .get(LEADER_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn is_not_leader(status: &Status) -> bool {
    status.code() == Code::FailedPrecondition && status.message() == "this manager is not the raft leader"
}

fn no_quorum() -> Status {
    rpc(
        Code::Unavailable,
        format!(
            "the swarm has no quorum of managers: the write was not committed within {}s",
            WRITE_TIMEOUT.as_secs()
        ),
    )
}

/// Calls `f` on the manager at `first`, following "not the leader" answers
/// to the leader, and waiting out an election.
pub async fn call_leader<T, F, Fut>(tls: &NodeTls, first: &str, f: F) -> Result<T, Status>
where
    F: Fn(ClusterClient<Channel>) -> Fut,
    Fut: Future<Output = Result<Response<T>, Status>>,
{
    let mut addr = first.to_string();
    let deadline = Instant::now() + WRITE_TIMEOUT;
    loop {
        let channel = tls.channel(&addr).map_err(|e| rpc(Code::Unavailable, e.to_string()))?;
        match f(ClusterClient::new(channel)).await {
            Ok(r) => return Ok(r.into_inner()),
            Err(s) if is_not_leader(&s) && Instant::now() < deadline => match leader_hint(&s) {
                Some(leader) => addr = leader,
                None => tokio::time::sleep(Duration::from_millis(50)).await,
            },
            Err(s) => return Err(s),
        }
    }
}

/// See [`ActiveSwarm::write`].
pub(crate) async fn write(swarm: &ActiveSwarm, command: Command) -> Result<u64, Status> {
    let deadline = tokio::time::Instant::now() + WRITE_TIMEOUT;
    loop {
        let attempt = tokio::time::timeout_at(deadline, swarm.store.write(command.clone())).await;
        match attempt {
            Err(_) => return Err(no_quorum()),
            Ok(Ok(index)) => return Ok(index),
            Ok(Err(WriteError::NotLeader { leader: Some(addr) })) => {
                let forwarded = tokio::time::timeout_at(deadline, forward(swarm, &addr, &command)).await;
                match forwarded {
                    Err(_) => return Err(no_quorum()),
                    Ok(Ok(index)) => {
                        wait_applied(swarm, index).await;
                        return Ok(index);
                    }
                    Ok(Err(s)) if is_not_leader(&s) || s.code() == Code::Unavailable => {
                        tokio::time::sleep(Duration::from_millis(25)).await;
                    }
                    Ok(Err(s)) => return Err(s),
                }
            }
            Ok(Err(WriteError::NotLeader { leader: None })) | Ok(Err(WriteError::Unavailable(_))) => {
                if tokio::time::Instant::now() >= deadline {
                    return Err(no_quorum());
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            Ok(Err(e)) => return Err(write_error(e)),
        }
    }
}

/// A linearizable read barrier: returns once this manager has applied every
/// write acknowledged anywhere before the call. The leader uses its lease or a
/// quorum round trip; a follower asks the leader for its read index.
pub(crate) async fn read_barrier(swarm: &ActiveSwarm) -> Result<(), Status> {
    // No leader known (a manager just restarted, an election under way): wait
    // for one, as a write does, rather than refuse at once.
    let deadline = Instant::now() + WRITE_TIMEOUT;
    let index = loop {
        if swarm.store.is_leader() {
            match swarm.store.read_index().await {
                Ok(i) => break i,
                Err(WriteError::NotLeader { .. }) => {}
                Err(_) => return Err(no_quorum_for_read()),
            }
        } else if let Some(leader) = swarm.store.leader_addr() {
            let left = deadline.saturating_duration_since(Instant::now());
            let resp = tokio::time::timeout(
                left,
                call_leader(&swarm.tls, &leader, |mut c| async move {
                    c.read_index(ReadIndexRequest {}).await
                }),
            )
            .await
            .map_err(|_| no_quorum_for_read())?
            .map_err(|_| no_quorum_for_read())?;
            break resp.index;
        }
        if Instant::now() >= deadline {
            return Err(no_quorum_for_read());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    if swarm.store.wait_applied(index, Duration::from_secs(5)).await {
        Ok(())
    } else {
        Err(no_quorum_for_read())
    }
}

fn no_quorum_for_read() -> Status {
    rpc(
        Code::Unavailable,
        "the swarm has no quorum of managers: a consistent read is not possible",
    )
}

async fn forward(swarm: &ActiveSwarm, leader: &str, command: &Command) -> Result<u64, Status> {
    let channel = swarm
        .tls
        .channel(leader)
        .map_err(|e| rpc(Code::Unavailable, e.to_string()))?;
    let payload = serde_json::to_vec(command).map_err(|e| rpc(Code::Internal, e.to_string()))?;
    let resp = ClusterClient::new(channel)
        .propose(ProposeRequest { command: payload })
        .await?
        .into_inner();
    let result: Result<u64, CommandError> =
        serde_json::from_slice(&resp.result).map_err(|e| rpc(Code::Internal, e.to_string()))?;
    result.map_err(|e| write_error(WriteError::Rejected(e)))
}

/// Read-your-writes on a follower: wait until the forwarded write is applied here.
async fn wait_applied(swarm: &ActiveSwarm, index: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while swarm.store.last_applied() < index && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// When the leader last heard from each node.
#[derive(Default)]
pub struct Liveness {
    seen: Mutex<HashMap<String, Instant>>,
    was_leader: AtomicBool,
    /// The cluster object version this manager's key wrapping last matched.
    keys_reconciled_at: AtomicU64,
}

impl Liveness {
    pub fn saw(&self, node_id: &str) {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(node_id.to_string(), Instant::now());
    }
}

/// Starts the cluster listener, the heartbeat loop and the liveness monitor.
pub(crate) fn spawn(
    manager: Arc<Manager>,
    listen_addr: &str,
    stop: watch::Receiver<bool>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, Status> {
    let tls = match manager.membership() {
        Membership::Manager(m) => m.tls.clone(),
        Membership::Worker(w) => w.tls.clone(),
        Membership::Inactive | Membership::Locked(_) => return Err(plain(Code::Internal, "not in a swarm")),
    };
    let listener = std::net::TcpListener::bind(listen_addr).map_err(|e| {
        plain(
            Code::InvalidArgument,
            format!("failed to listen on remote API address: listen tcp {listen_addr}: {e}"),
        )
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|e| plain(Code::Internal, e.to_string()))?;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| plain(Code::Internal, e.to_string()))?;
    let service = server::ClusterService::new(Arc::downgrade(&manager));
    let router = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(5)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .tls_config(tls.server_config())
        .map_err(|e| plain(Code::Internal, e.to_string()))?
        .add_service(RaftServer::new(service.clone()).max_decoding_message_size(256 * 1024 * 1024))
        .add_service(NodeCaServer::new(service.clone()))
        .add_service(DispatcherServer::new(service.clone()))
        .add_service(ClusterServer::new(service));
    let mut server_stop = stop.clone();
    let server = tokio::spawn(async move {
        // Raft round trips are small messages: no Nagle delay on them.
        let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let shutdown = async move {
            let _ = server_stop.changed().await;
        };
        if let Err(e) = router.serve_with_incoming_shutdown(incoming, shutdown).await {
            tracing::error!(error = %e, "cluster listener failed");
        }
    });
    let heartbeats = tokio::spawn(heartbeat_loop(Arc::downgrade(&manager), stop.clone()));
    let monitor = tokio::spawn(liveness_loop(Arc::downgrade(&manager), stop.clone()));
    let orchestrator = tokio::spawn(orchestrator_loop(Arc::downgrade(&manager), stop));
    Ok(vec![server, heartbeats, monitor, orchestrator])
}

async fn heartbeat_loop(manager: Weak<Manager>, mut stop: watch::Receiver<bool>) {
    let mut period = Duration::from_millis(500);
    let mut next_manager = 0usize;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(period) => {}
        }
        let Some(m) = manager.upgrade() else { return };
        let (tls, target, role) = match m.membership() {
            Membership::Inactive | Membership::Locked(_) => return,
            Membership::Manager(swarm) => {
                if swarm.store.is_leader() {
                    swarm.liveness.saw(&swarm.local.node_id);
                    let demoted = swarm.store.read(|st| {
                        st.nodes
                            .get(&swarm.local.node_id)
                            .is_some_and(|n| n.role == NodeRole::Worker)
                    });
                    if demoted {
                        let m = m.clone();
                        tokio::spawn(async move {
                            if let Err(e) = m.become_worker().await {
                                tracing::warn!(error = %e.message(), "stepping down to worker failed; will retry");
                            }
                        });
                    }
                    continue;
                }
                let Some(leader) = swarm.store.leader_addr() else {
                    continue;
                };
                (swarm.tls.clone(), leader, "manager")
            }
            Membership::Worker(w) => {
                let managers = w.managers.read().unwrap_or_else(|p| p.into_inner()).clone();
                if managers.is_empty() {
                    continue;
                }
                (w.tls.clone(), managers[next_manager % managers.len()].clone(), "worker")
            }
        };
        let Ok(channel) = tls.channel(&target) else { continue };
        match ClusterClient::new(channel).heartbeat(HeartbeatRequest {}).await {
            Ok(resp) => {
                let resp = resp.into_inner();
                period = Duration::from_millis(resp.period_ms.clamp(100, 60_000));
                if let Membership::Worker(w) = m.membership()
                    && !resp.managers.is_empty()
                {
                    let mut list = resp.managers.clone();
                    list.retain(|a| a != &target);
                    list.insert(0, target.clone());
                    *w.managers.write().unwrap_or_else(|p| p.into_inner()) = list;
                    next_manager = 0;
                }
                if resp.role.is_empty() {
                    m.removed_from_swarm().await;
                    return;
                }
                if resp.role != role {
                    let m = m.clone();
                    tokio::spawn(async move {
                        let result = if resp.role == "manager" {
                            m.promote_self(&target).await
                        } else {
                            m.become_worker().await
                        };
                        if let Err(e) = result {
                            tracing::warn!(error = %e.message(), "changing role failed; will retry");
                        }
                    });
                }
            }
            Err(s) => {
                if let Some(leader) = leader_hint(&s)
                    && let Membership::Worker(w) = m.membership()
                {
                    let mut list = w.managers.write().unwrap_or_else(|p| p.into_inner());
                    list.retain(|a| a != &leader);
                    list.insert(0, leader);
                    next_manager = 0;
                } else {
                    next_manager += 1;
                }
            }
        }
    }
}

/// On the leader: runs the orchestrator and scheduler whenever the state
/// changes (and every half second, for restart delays), and proposes what
/// they decide.
async fn orchestrator_loop(manager: Weak<Manager>, mut stop: watch::Receiver<bool>) {
    let mut metrics = match manager.upgrade().map(|m| m.membership()) {
        Some(Membership::Manager(swarm)) => swarm.store.changes(),
        _ => return,
    };
    loop {
        let Some(m) = manager.upgrade() else { return };
        let Membership::Manager(swarm) = m.membership() else {
            return;
        };
        drop(m);
        if swarm.store.is_leader() {
            let now = time::OffsetDateTime::now_utc();
            let commands = swarm.store.read(|st| swarmkeep_scheduler::reconcile(st, now));
            for command in commands {
                if let Err(e) = swarm.write(command).await {
                    tracing::debug!(error = %e.message(), "orchestrator write failed; will retry");
                    break;
                }
            }
        }
        drop(swarm);
        tokio::select! {
            _ = stop.changed() => return,
            changed = metrics.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

/// On the leader: marks nodes Ready when they heartbeat and Down after three
/// missed periods. A new leader first gives every node a full grace period,
/// so a leader change does not flap STATUS.
async fn liveness_loop(manager: Weak<Manager>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        let Some(m) = manager.upgrade() else { return };
        let Membership::Manager(swarm) = m.membership() else {
            continue;
        };
        reconcile_autolock(&m, &swarm);
        let interval = swarm
            .store
            .read(|st| st.cluster.as_ref().map(|c| c.snapshot_interval))
            .unwrap_or(0);
        swarm.store.snapshot_if_due(interval).await;
        if !swarm.store.is_leader() {
            swarm.liveness.was_leader.store(false, Ordering::SeqCst);
            continue;
        }
        let (period_ms, nodes) = swarm.store.read(|st| {
            (
                st.cluster.as_ref().map(|c| c.heartbeat_period_ms).unwrap_or(5000),
                st.nodes.values().cloned().collect::<Vec<_>>(),
            )
        });
        let grace = Duration::from_millis(period_ms * 3);
        let updates: Vec<_> = {
            let mut seen = swarm.liveness.seen.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            if !swarm.liveness.was_leader.swap(true, Ordering::SeqCst) {
                for n in &nodes {
                    seen.insert(n.id.clone(), now);
                }
            }
            seen.insert(swarm.local.node_id.clone(), now);
            nodes
                .into_iter()
                .filter_map(|mut n| {
                    let last = *seen.entry(n.id.clone()).or_insert(now);
                    let want = if now.duration_since(last) < grace {
                        NodeState::Ready
                    } else {
                        NodeState::Down
                    };
                    (n.state != want).then(|| {
                        n.state = want;
                        n
                    })
                })
                .collect()
        };
        for node in updates {
            let expected_version = node.meta.version;
            tracing::info!(node_id = %node.id, state = ?node.state, "node status changed");
            if let Err(e) = swarm.store.write(Command::UpdateNode { node, expected_version }).await {
                tracing::debug!(error = %e, "node status update not applied");
            }
        }
        reconcile_raft_members(&swarm).await;
    }
}

/// Every manager keeps its data key wrapped the way the cluster asks: by the
/// current unlock key (and no key file on disk) with autolock, by a local
/// key-encryption key without.
fn reconcile_autolock(m: &Manager, swarm: &ActiveSwarm) {
    let Some((version, autolock, sealed)) = swarm.store.read(|st| {
        st.cluster
            .as_ref()
            .map(|c| (c.meta.version, c.autolock, c.sealed_unlock_key.clone()))
    }) else {
        return;
    };
    // Only when the cluster object changed since the last successful pass.
    if swarm.liveness.keys_reconciled_at.load(Ordering::SeqCst) == version {
        return;
    }
    let keys = KeyStore::new(&m.keys_dir());
    let result = if autolock {
        match swarm.open_unlock_key(&sealed) {
            Ok(kek) if keys.is_locked_mode() && keys.wrapped_opens_with(&kek) => Ok(()),
            Ok(kek) => keys
                .lock_with(&swarm.data_key, &kek)
                .map(|_| tracing::info!("data key now wrapped by the unlock key")),
            Err(e) => {
                tracing::warn!(error = %e.message(), "autolock is on but the unlock key cannot be read");
                Ok(())
            }
        }
    } else if keys.is_locked_mode() {
        keys.create(&swarm.data_key)
            .map(|_| tracing::info!("autolock off: data key wrapped by a local key again"))
    } else {
        Ok(())
    };
    match result {
        Ok(()) => swarm.liveness.keys_reconciled_at.store(version, Ordering::SeqCst),
        Err(e) => tracing::warn!(error = %e, "re-wrapping the data key failed; will retry"),
    }
}

/// Demoted nodes leave the raft group: the leader removes any voter whose
/// node the store now lists as a worker (also when that node is down and
/// cannot ask itself).
async fn reconcile_raft_members(swarm: &ActiveSwarm) {
    let voters = swarm.store.voters();
    let demoted: Vec<_> = swarm.store.read(|st| {
        st.nodes
            .values()
            .filter(|n| n.role == NodeRole::Worker && n.raft_id.is_some_and(|r| voters.contains(&r)))
            .cloned()
            .collect()
    });
    for mut node in demoted {
        let Some(raft_id) = node.raft_id else { continue };
        if let Err(e) = swarm.store.remove_member(raft_id).await {
            tracing::warn!(node_id = %node.id, error = %e, "removing a demoted manager from raft failed");
            continue;
        }
        tracing::info!(node_id = %node.id, "demoted manager removed from the raft group");
        let expected_version = node.meta.version;
        node.raft_id = None;
        node.manager_addr = None;
        let _ = swarm.store.write(Command::UpdateNode { node, expected_version }).await;
    }
}
