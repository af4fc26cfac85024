//! Talking to the leader, the bottom layer every other part of the manager
//! writes and reads through: a write proposed here or forwarded to the
//! leader (and applied here before it returns), a linearizable read
//! barrier, and calls that follow "not the leader" answers to the leader.

use std::future::Future;
use std::time::{Duration, Instant};

use swarmkeep_api::cluster::cluster_client::ClusterClient;
use swarmkeep_api::cluster::{ProposeRequest, ReadIndexRequest};
use swarmkeep_api::errors::rpc;
use swarmkeep_store::objects::NodeRole;
use swarmkeep_store::{Command, CommandError, WriteError};
use swarmkeep_transport::leader::{is_not_leader, leader_hint};
use swarmkeep_transport::tls::TlsCell;
use tonic::transport::Channel;
use tonic::{Code, Response, Status};

use crate::errors::write_error;
use crate::state::ManagerState;

/// How long a write may wait for a quorum before it is reported as failed.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

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
pub async fn call_leader<T, F, Fut>(tls: &TlsCell, first: &str, f: F) -> Result<T, Status>
where
    F: Fn(ClusterClient<Channel>) -> Fut,
    Fut: Future<Output = Result<Response<T>, Status>>,
{
    let channel = |addr: &str| tls.channel(addr).map_err(|e| rpc(Code::Unavailable, e.to_string()));
    follow_leader(channel, first, f).await
}

/// [`call_leader`] over the channels `channel` gives for an address.
async fn follow_leader<T, F, Fut>(
    channel: impl Fn(&str) -> Result<Channel, Status>,
    first: &str,
    f: F,
) -> Result<T, Status>
where
    F: Fn(ClusterClient<Channel>) -> Fut,
    Fut: Future<Output = Result<Response<T>, Status>>,
{
    let mut addr = first.to_string();
    let deadline = Instant::now() + WRITE_TIMEOUT;
    loop {
        let channel = channel(&addr)?;
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

impl ManagerState {
    /// Proposes a write; on a follower it is carried to the leader, and the
    /// call returns once this manager has applied it too (read-your-writes).
    /// A write that cannot reach a quorum fails within a bounded time.
    pub async fn write(&self, command: Command) -> Result<u64, Status> {
        let swarm = self;
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
                            // Read-your-writes: applied here too before it
                            // returns (woken by the apply, not a poll).
                            swarm.store.wait_applied(index, Duration::from_secs(5)).await;
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

    /// Makes the next local read linearizable: returns once this manager has
    /// applied every write acknowledged anywhere before the call. The leader
    /// uses its lease or a quorum round trip; a follower asks the leader for
    /// its read index.
    pub async fn read_barrier(&self) -> Result<(), Status> {
        let swarm = self;
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
                    follow_leader(
                        |a| leader_channel(swarm, a),
                        &leader,
                        |mut c| async move { c.read_index(ReadIndexRequest {}).await },
                    ),
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
}

fn no_quorum_for_read() -> Status {
    rpc(
        Code::Unavailable,
        "the swarm has no quorum of managers: a consistent read is not possible",
    )
}

/// The kept channel to the manager at `addr` (made on first use). Kept only
/// while a manager of the store's has that address: a connection made to a
/// manager since demoted or removed is not reused (a new one must pass the
/// pinned-manager check of its handshake).
fn leader_channel(swarm: &ManagerState, addr: &str) -> Result<Channel, Status> {
    let is_manager = swarm.store.read(|st| {
        st.nodes
            .values()
            .any(|n| n.role == NodeRole::Manager && n.manager_addr.as_deref() == Some(addr))
    });
    let mut kept = swarm.leader_channels.lock().unwrap_or_else(|p| p.into_inner());
    match kept.get(addr) {
        Some(channel) if is_manager => return Ok(channel.clone()),
        Some(_) => {
            kept.remove(addr);
        }
        None => {}
    }
    let channel = swarm
        .tls
        .channel(addr)
        .map_err(|e| rpc(Code::Unavailable, e.to_string()))?;
    // Leaders come and go; a handful of managers' channels at most.
    if is_manager {
        if kept.len() >= 16 {
            kept.clear();
        }
        kept.insert(addr.to_string(), channel.clone());
    }
    Ok(channel)
}

async fn forward(swarm: &ManagerState, leader: &str, command: &Command) -> Result<u64, Status> {
    let channel = leader_channel(swarm, leader)?;
    let payload = serde_json::to_vec(command).map_err(|e| rpc(Code::Internal, e.to_string()))?;
    let resp = ClusterClient::new(channel)
        .propose(ProposeRequest { command: payload })
        .await?
        .into_inner();
    let result: Result<u64, CommandError> =
        serde_json::from_slice(&resp.result).map_err(|e| rpc(Code::Internal, e.to_string()))?;
    result.map_err(|e| write_error(WriteError::Rejected(e)))
}
