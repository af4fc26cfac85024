//! Talking to the leader, the bottom layer every other part of the manager
//! writes and reads through: a write proposed here or forwarded to the
//! leader (and applied here before it returns), a linearizable read
//! barrier, and calls that follow "not the leader" answers to the leader.

use std::future::Future;
use std::time::{Duration, Instant};

use swarmkeep_api::cluster::cluster_client::ClusterClient;
use swarmkeep_api::cluster::{ProposeRequest, ProposeResponse, ReadIndexRequest, leader_answer, leader_call};
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
    follow_leader(first, |addr| {
        let channel = tls.channel(&addr).map_err(|e| rpc(Code::Unavailable, e.to_string()));
        let call = channel.map(|c| f(ClusterClient::new(c)));
        async move { Ok(call?.await?.into_inner()) }
    })
    .await
}

/// `call(address)` from the manager at `first` on, following "not the
/// leader" answers to the leader (or waiting a moment when none is named)
/// until [`WRITE_TIMEOUT`].
async fn follow_leader<T, F, Fut>(first: &str, call: F) -> Result<T, Status>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let mut addr = first.to_string();
    let deadline = Instant::now() + WRITE_TIMEOUT;
    loop {
        match call(addr.clone()).await {
            Ok(r) => return Ok(r),
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
                let index = tokio::time::timeout(left, follow_leader(&leader, |a| read_index_at(swarm, a)))
                    .await
                    .map_err(|_| no_quorum_for_read())?
                    .map_err(|_| no_quorum_for_read())?;
                break index;
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
/// while a manager of the store's has that address: a connection (or leader
/// stream) made to a manager since demoted or removed is not reused (a new
/// one must pass the pinned-manager check of its handshake). `false` with a
/// channel not kept.
fn leader_channel(swarm: &ManagerState, addr: &str) -> Result<(Channel, bool), Status> {
    let is_manager = swarm.store.read(|st| {
        st.nodes
            .values()
            .any(|n| n.role == NodeRole::Manager && n.manager_addr.as_deref() == Some(addr))
    });
    let mut kept = swarm.leader_channels.lock().unwrap_or_else(|p| p.into_inner());
    match kept.get(addr) {
        Some(channel) if is_manager => return Ok((channel.clone(), true)),
        Some(_) => {
            kept.remove(addr);
        }
        None => {}
    }
    if !is_manager {
        swarm.leader_links.forget(addr);
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
    Ok((channel, is_manager))
}

/// `call` to the manager at `addr`: on the leader stream to it when it is a
/// manager of the store's that has one, as a call of its own otherwise.
async fn to_leader(swarm: &ManagerState, addr: &str, call: leader_call::Call) -> Result<leader_answer::Answer, Status> {
    let (channel, kept) = leader_channel(swarm, addr)?;
    if kept && !swarm.leader_links.unsupported(addr) {
        match swarm.leader_links.link(addr, channel.clone()).await {
            Ok(link) => return link.call(call).await,
            Err(s) if s.code() == Code::Unimplemented => {}
            Err(s) => return Err(s),
        }
    }
    let mut client = ClusterClient::new(channel);
    match call {
        leader_call::Call::Propose(p) => Ok(leader_answer::Answer::Propose(client.propose(p).await?.into_inner())),
        leader_call::Call::ReadIndex(r) => Ok(leader_answer::Answer::ReadIndex(
            client.read_index(r).await?.into_inner(),
        )),
    }
}

async fn read_index_at(swarm: &ManagerState, addr: String) -> Result<u64, Status> {
    match to_leader(swarm, &addr, leader_call::Call::ReadIndex(ReadIndexRequest {})).await? {
        leader_answer::Answer::ReadIndex(r) => Ok(r.index),
        _ => Err(rpc(
            Code::Internal,
            "the leader answered a read index with something else",
        )),
    }
}

async fn forward(swarm: &ManagerState, leader: &str, command: &Command) -> Result<u64, Status> {
    let command = serde_json::to_vec(command).map_err(|e| rpc(Code::Internal, e.to_string()))?;
    let resp: ProposeResponse =
        match to_leader(swarm, leader, leader_call::Call::Propose(ProposeRequest { command })).await? {
            leader_answer::Answer::Propose(resp) => resp,
            _ => return Err(rpc(Code::Internal, "the leader answered a write with something else")),
        };
    let result: Result<u64, CommandError> =
        serde_json::from_slice(&resp.result).map_err(|e| rpc(Code::Internal, e.to_string()))?;
    result.map_err(|e| write_error(WriteError::Rejected(e)))
}
