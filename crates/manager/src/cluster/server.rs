//! The services on the cluster port. Every caller but a joiner presents a
//! certificate from the cluster CA; its node ID is that certificate's CN, and
//! manager-only calls check the caller's role in the store.

use openraft_legacy::network_v1::ChunkedSnapshotReceiver;
use std::sync::Arc;

use swarmkeep_api::cluster::cluster_server::Cluster;
use swarmkeep_api::cluster::node_ca_server::NodeCa;
use swarmkeep_api::cluster::raft_server::Raft as RaftService;
use swarmkeep_api::cluster::*;
use swarmkeep_api::errors::rpc;
use swarmkeep_crypto::{SecretBytes, new_id};
use swarmkeep_store::objects::{Availability, Meta, Node, NodeDescription, NodeRole, NodeState};
use swarmkeep_store::{Command, WriteError};
use time::OffsetDateTime;
use tonic::{Code, Request, Response, Status};

use swarmkeep_transport::leader::{leader_hint, not_leader};

use crate::authority;
use crate::ca::{RootCa, caller};
use crate::state::{CA_KEY_AAD, CurrentMembership, ManagerState};
use crate::tokens;

#[derive(Clone)]
pub struct ClusterService {
    membership: Arc<CurrentMembership>,
}

impl ClusterService {
    pub fn new(membership: Arc<CurrentMembership>) -> Self {
        Self { membership }
    }

    fn swarm(&self) -> Result<Arc<ManagerState>, Status> {
        self.membership.serving()
    }

    fn leader(&self) -> Result<Arc<ManagerState>, Status> {
        self.membership.leading()
    }
}

fn decode<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Result<T, Status> {
    serde_json::from_slice(payload).map_err(|e| Status::invalid_argument(format!("malformed raft message: {e}")))
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Response<RaftMessage>, Status> {
    let payload = serde_json::to_vec(value).map_err(|e| Status::internal(e.to_string()))?;
    Ok(Response::new(RaftMessage { payload }))
}

/// Calls one leader stream may have under way at once.
const LEADER_STREAM_CALLS: usize = 256;

impl ClusterService {
    /// A write a follower carried here (unary or on its leader stream).
    async fn propose_for(&self, id: &str, req: ProposeRequest) -> Result<ProposeResponse, Status> {
        let swarm = self.leader()?;
        authority::manager_role(&swarm, id)?;
        let command: Command = decode(&req.command)?;
        let result = match swarm.store.write(command).await {
            Ok(index) => Ok(index),
            Err(WriteError::Rejected(e)) => Err(e),
            Err(WriteError::NotLeader { leader }) => return Err(not_leader(leader)),
            Err(e) => return Err(Status::unavailable(e.to_string())),
        };
        let index = *result.as_ref().unwrap_or(&0);
        let result = serde_json::to_vec(&result).map_err(|e| Status::internal(e.to_string()))?;
        Ok(ProposeResponse { result, index })
    }

    /// The leader's read index for a follower's linearizable read.
    async fn read_index_for(&self, id: &str) -> Result<ReadIndexResponse, Status> {
        let swarm = self.leader()?;
        authority::manager_role(&swarm, id)?;
        let index = match swarm.store.read_index().await {
            Ok(i) => i,
            Err(WriteError::NotLeader { leader }) => return Err(not_leader(leader)),
            Err(e) => return Err(Status::unavailable(e.to_string())),
        };
        Ok(ReadIndexResponse { index })
    }

    /// Raft traffic: only from a raft peer (see [`authority::raft_peer`]).
    fn raft_peer<T>(&self, req: &Request<T>) -> Result<Arc<ManagerState>, Status> {
        let id = caller(req)?;
        let swarm = self.swarm()?;
        authority::raft_peer(&swarm, &id)?;
        Ok(swarm)
    }
}

/// A leader's stream of appends, answered in order (see [`RaftService::append_stream`]).
type AppendStream = std::pin::Pin<Box<dyn futures::Stream<Item = Result<RaftStreamMessage, Status>> + Send>>;

#[tonic::async_trait]
impl RaftService for ClusterService {
    type AppendStreamStream = AppendStream;

    /// Each message is taken only while its sender is still a raft peer (a
    /// stream outlives the check of its opening: a manager removed since is
    /// refused at its next message, and the stream ends there). Messages are
    /// handled one after the other, so the answers come back in their order.
    async fn append_stream(
        &self,
        req: Request<tonic::Streaming<RaftStreamMessage>>,
    ) -> Result<Response<AppendStream>, Status> {
        let id = caller(&req)?;
        let swarm = self.swarm()?;
        authority::raft_peer(&swarm, &id)?;
        let service = self.clone();
        let input = req.into_inner();
        let answers = futures::stream::unfold(Some(input), move |input| {
            let (service, id) = (service.clone(), id.clone());
            async move {
                let mut input = input?;
                let msg = match input.message().await {
                    Ok(Some(msg)) => msg,
                    Ok(None) => return None,
                    Err(status) => return Some((Err(status), None)),
                };
                let answer = async {
                    let swarm = service.swarm()?;
                    authority::raft_peer(&swarm, &id)?;
                    let rpc = decode(&msg.payload)?;
                    let answer = swarm.store.raft().append_entries(rpc).await;
                    serde_json::to_vec(&answer).map_err(|e| Status::internal(e.to_string()))
                }
                .await;
                match answer {
                    Ok(payload) => Some((Ok(RaftStreamMessage { seq: msg.seq, payload }), Some(input))),
                    Err(status) => Some((Err(status), None)),
                }
            }
        });
        Ok(Response::new(Box::pin(answers)))
    }

    async fn append_entries(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let swarm = self.raft_peer(&req)?;
        let rpc = decode(&req.into_inner().payload)?;
        encode(&swarm.store.raft().append_entries(rpc).await)
    }

    async fn vote(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let swarm = self.raft_peer(&req)?;
        let rpc = decode(&req.into_inner().payload)?;
        encode(&swarm.store.raft().vote(rpc).await)
    }

    async fn pre_vote(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let swarm = self.raft_peer(&req)?;
        let rpc = decode(&req.into_inner().payload)?;
        encode(&swarm.store.raft().pre_vote(rpc).await)
    }

    async fn install_snapshot(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let swarm = self.raft_peer(&req)?;
        let rpc = decode(&req.into_inner().payload)?;
        encode(&ChunkedSnapshotReceiver::install_snapshot(swarm.store.raft(), rpc).await)
    }
}

#[tonic::async_trait]
impl NodeCa for ClusterService {
    async fn get_root_ca_certificate(
        &self,
        _req: Request<GetRootCaRequest>,
    ) -> Result<Response<GetRootCaResponse>, Status> {
        let swarm = self.swarm()?;
        let pem = swarm
            .store
            .read(|st| st.cluster.as_ref().map(|c| c.ca_cert_pem.clone()));
        Ok(Response::new(GetRootCaResponse {
            certificate_pem: pem.unwrap_or_default(),
        }))
    }

    async fn issue_node_certificate(
        &self,
        req: Request<IssueNodeCertificateRequest>,
    ) -> Result<Response<IssueNodeCertificateResponse>, Status> {
        let swarm = self.swarm()?;
        let req = req.into_inner();
        let cluster = swarm
            .store
            .read(|st| st.cluster.clone())
            .ok_or_else(|| Status::unavailable("no cluster"))?;
        let invalid = || {
            rpc(
                Code::InvalidArgument,
                "A valid join token is necessary to join this cluster",
            )
        };
        tokens::parse(&req.token).ok_or_else(invalid)?;
        let worker = swarm.open_token("worker", &cluster.sealed_worker_token)?;
        let manager = swarm.open_token("manager", &cluster.sealed_manager_token)?;
        // Both comparisons always run, in constant time.
        let (is_worker, is_manager) = (
            tokens::matches(&req.token, &worker),
            tokens::matches(&req.token, &manager),
        );
        let role = match (is_worker, is_manager) {
            (true, _) => NodeRole::Worker,
            (_, true) => NodeRole::Manager,
            _ => return Err(invalid()),
        };
        check_joiner_data_path_addr(&req.data_path_addr)?;
        let node_id = new_id();
        let cert = sign(&swarm, &cluster, &req.csr_pem, &node_id, role)?;
        let addr = req
            .advertise_addr
            .rsplit_once(':')
            .map(|(ip, _)| ip.to_string())
            .unwrap_or_default();
        let now = OffsetDateTime::now_utc();
        let node = Node {
            id: node_id.clone(),
            meta: Meta {
                version: 0,
                created_at: now,
                updated_at: now,
            },
            labels: Default::default(),
            role,
            availability: Availability::Active,
            // It is up: it just called. The leader's liveness judgement
            // takes over from here (Down after three missed heartbeats).
            state: NodeState::Ready,
            description: NodeDescription {
                hostname: req.hostname,
                os: req.os,
                architecture: req.architecture,
                nano_cpus: req.nano_cpus,
                memory_bytes: req.memory_bytes,
                engine_version: req.engine_version,
            },
            addr,
            raft_id: None,
            manager_addr: None,
            ingress_address: None,
            raft_unreachable: false,
            data_path_addr: req.data_path_addr,
        };
        swarm.write(Command::PutNode(node)).await?;
        tracing::info!(%node_id, ?role, "node joined");
        Ok(Response::new(IssueNodeCertificateResponse {
            node_id,
            certificate_pem: cert,
            role: role.as_str().into(),
            cluster_id: cluster.id,
            cert_rotation: cluster.ca_force_rotate,
        }))
    }

    /// The caller's own new certificate, for the role the store gives it
    /// now. The node CA is open to peers without a certificate (joiners);
    /// this call is not: it needs the member's current one.
    async fn renew_node_certificate(
        &self,
        req: Request<RenewNodeCertificateRequest>,
    ) -> Result<Response<RenewNodeCertificateResponse>, Status> {
        let id = caller(&req)?;
        // The leader's store is the one that knows the role now (a lagging
        // follower could still see a demoted node as a manager).
        let swarm = self.leader()?;
        let node = authority::member(&swarm, &id)?;
        let cluster = swarm
            .store
            .read(|st| st.cluster.clone())
            .ok_or_else(|| Status::unavailable("no cluster"))?;
        let certificate_pem = sign(&swarm, &cluster, &req.get_ref().csr_pem, &id, node.role)?;
        tracing::info!(node_id = %id, role = node.role.as_str(), "node certificate renewed");
        Ok(Response::new(RenewNodeCertificateResponse {
            certificate_pem,
            role: node.role.as_str().into(),
            // Read before signing: a rotation ordered meanwhile is not
            // taken as done by this certificate.
            cert_rotation: cluster.ca_force_rotate,
        }))
    }
}

/// A certificate for `node_id` in `role`, from the cluster's CA, for the
/// cluster's certificate lifetime.
fn sign(
    swarm: &ManagerState,
    cluster: &swarmkeep_store::objects::Cluster,
    csr_pem: &str,
    node_id: &str,
    role: NodeRole,
) -> Result<String, Status> {
    let ca_key = swarm
        .data_key
        .open(CA_KEY_AAD, &cluster.sealed_ca_key)
        .map_err(|_| Status::internal("the CA key cannot be opened with this manager's data key"))?;
    let ca = RootCa::from_parts(cluster.ca_cert_pem.clone(), ca_key);
    let lifetime = time::Duration::milliseconds(i64::try_from(cluster.node_cert_expiry_ms).unwrap_or(i64::MAX));
    ca.issue(csr_pem, node_id, role, lifetime)
        .map_err(|e| Status::invalid_argument(e.to_string()))
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    type ServiceLogsStream = crate::logs::LogStream;

    async fn service_logs(
        &self,
        req: Request<swarmkeep_api::control::ServiceLogsRequest>,
    ) -> Result<Response<Self::ServiceLogsStream>, Status> {
        let id = caller(&req)?;
        let swarm = self.leader()?;
        authority::manager(&swarm, &id)?;
        Ok(Response::new(swarm.service_logs(req.into_inner()).await?))
    }

    async fn propose(&self, req: Request<ProposeRequest>) -> Result<Response<ProposeResponse>, Status> {
        let id = caller(&req)?;
        Ok(Response::new(self.propose_for(&id, req.into_inner()).await?))
    }

    async fn manager_keys(&self, req: Request<ManagerKeysRequest>) -> Result<Response<ManagerKeysResponse>, Status> {
        let id = caller(&req)?;
        let swarm = self.swarm()?;
        authority::manager(&swarm, &id)?;
        let key: SecretBytes = swarm.data_key.to_bytes();
        tracing::info!(node_id = %id, "data key sent to a manager");
        let (manager_node_ids, ticks) = swarm.store.read(|st| {
            let ids = st
                .nodes
                .values()
                .filter(|n| n.role == NodeRole::Manager)
                .map(|n| n.id.clone())
                .collect();
            (ids, st.cluster.as_ref().map(|c| c.raft_ticks()).unwrap_or_default())
        });
        Ok(Response::new(ManagerKeysResponse {
            data_key: key.expose().to_vec(),
            manager_node_ids,
            election_tick: ticks.election,
            heartbeat_tick: ticks.heartbeat,
        }))
    }

    async fn join_raft(&self, req: Request<JoinRaftRequest>) -> Result<Response<JoinRaftResponse>, Status> {
        let id = caller(&req)?;
        let swarm = self.leader()?;
        authority::manager(&swarm, &id)?;
        let req = req.into_inner();
        swarm
            .store
            .add_voter(req.raft_id, &req.addr)
            .await
            .map_err(crate::errors::write_error)?;
        // Ready and Reachable from now on in node ls (it just called), not
        // from the next liveness pass.
        swarm.heartbeats.saw(&id);
        update_node(&swarm, &id, |n| {
            n.raft_id = Some(req.raft_id);
            n.manager_addr = Some(req.addr.clone());
            n.state = NodeState::Ready;
        })
        .await?;
        tracing::info!(node_id = %id, raft_id = req.raft_id, "manager added to the raft group");
        Ok(Response::new(JoinRaftResponse {}))
    }

    async fn leave_raft(&self, req: Request<LeaveRaftRequest>) -> Result<Response<LeaveRaftResponse>, Status> {
        let id = caller(&req)?;
        let swarm = self.leader()?;
        // A manager, or a demoted one still in the raft group.
        let node = authority::member(&swarm, &id)?;
        if node.role != NodeRole::Manager && node.raft_id.is_none() {
            return Err(Status::permission_denied(format!("node {id} is not a manager")));
        }
        if let Some(raft_id) = node.raft_id {
            swarm
                .store
                .remove_member(raft_id)
                .await
                .map_err(crate::errors::write_error)?;
        }
        update_node(&swarm, &id, |n| {
            n.role = NodeRole::Worker;
            n.raft_id = None;
            n.manager_addr = None;
        })
        .await?;
        tracing::info!(node_id = %id, "manager left the raft group");
        Ok(Response::new(LeaveRaftResponse {}))
    }

    async fn read_index(&self, req: Request<ReadIndexRequest>) -> Result<Response<ReadIndexResponse>, Status> {
        let id = caller(&req)?;
        Ok(Response::new(self.read_index_for(&id).await?))
    }

    type LeaderStreamStream = tokio_stream::wrappers::ReceiverStream<Result<LeaderAnswer, Status>>;

    /// The calls of a manager's stream are each checked as their own call
    /// would be (leader, caller a manager, now) and answered as they
    /// complete; at most [`LEADER_STREAM_CALLS`] at once per stream.
    async fn leader_stream(
        &self,
        req: Request<tonic::Streaming<LeaderCall>>,
    ) -> Result<Response<Self::LeaderStreamStream>, Status> {
        let id = caller(&req)?;
        let swarm = self.swarm()?;
        authority::manager_role(&swarm, &id)?;
        drop(swarm);
        let mut calls = req.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(LEADER_STREAM_CALLS);
        let service = self.clone();
        let slots = Arc::new(tokio::sync::Semaphore::new(LEADER_STREAM_CALLS));
        tokio::spawn(async move {
            loop {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let call = match calls.message().await {
                    Ok(Some(call)) => call,
                    Ok(None) => return,
                    Err(status) => {
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                };
                let (service, id, tx) = (service.clone(), id.clone(), tx.clone());
                let mut answering = Box::pin(async move {
                    let answer = match call.call {
                        Some(leader_call::Call::Propose(p)) => {
                            service.propose_for(&id, p).await.map(leader_answer::Answer::Propose)
                        }
                        Some(leader_call::Call::ReadIndex(_)) => {
                            service.read_index_for(&id).await.map(leader_answer::Answer::ReadIndex)
                        }
                        None => Err(Status::invalid_argument("a leader call names no call")),
                    };
                    let answer = answer.unwrap_or_else(|s| {
                        leader_answer::Answer::Refused(CallRefused {
                            code: s.code() as i32,
                            message: s.message().to_string(),
                            leader: leader_hint(&s).unwrap_or_default(),
                        })
                    });
                    let _ = tx
                        .send(Ok(LeaderAnswer {
                            seq: call.seq,
                            answer: Some(answer),
                        }))
                        .await;
                    drop(slot);
                });
                // A call done at once (a read index within the leader's
                // lease) is answered here; one that waits (a write) gets a
                // task of its own, so it does not hold up the calls behind it.
                let mut now = std::task::Context::from_waker(std::task::Waker::noop());
                if answering.as_mut().poll(&mut now).is_pending() {
                    tokio::spawn(answering);
                }
            }
        });
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }

    async fn heartbeat(&self, req: Request<HeartbeatRequest>) -> Result<Response<HeartbeatResponse>, Status> {
        let id = caller(&req)?;
        let swarm = self.leader()?;
        // A removed node learns only that (and leaves the swarm). A node this
        // leader does not know (yet: a new leader may not have applied the
        // entry that added it) is asked to try again, never told to leave.
        if swarm.store.read(|st| st.is_removed(&id)) {
            return Err(Status::permission_denied(format!(
                "node {id} was removed from this swarm"
            )));
        }
        let node = authority::member(&swarm, &id)
            .map_err(|_| Status::unavailable(format!("node {id} is not known to this manager yet")))?;
        swarm.heartbeats.saw(&id);
        let (period_ms, cert_rotation, managers, manager_ids) = swarm.store.read(|st| {
            (
                st.cluster.as_ref().map(|c| c.heartbeat_period_ms).unwrap_or(5000),
                st.cluster.as_ref().map(|c| c.ca_force_rotate).unwrap_or(0),
                st.nodes
                    .values()
                    .filter_map(|n| n.manager_addr.clone())
                    .collect::<Vec<_>>(),
                // A demoted manager still in the raft group is no longer one.
                st.nodes
                    .values()
                    .filter(|n| n.role == NodeRole::Manager)
                    .map(|n| n.id.clone())
                    .collect::<Vec<_>>(),
            )
        });
        Ok(Response::new(HeartbeatResponse {
            role: node.role.as_str().into(),
            period_ms,
            managers,
            manager_ids,
            cert_rotation,
        }))
    }
}

/// Read-modify-write of a node, retried if it changed meanwhile.
async fn update_node(swarm: &ManagerState, id: &str, change: impl Fn(&mut Node)) -> Result<(), Status> {
    for _ in 0..10 {
        let Some(mut node) = swarm.store.read(|st| st.nodes.get(id).cloned()) else {
            return Err(Status::not_found(format!("node {id} not found")));
        };
        let expected_version = node.meta.version;
        change(&mut node);
        node.meta.updated_at = OffsetDateTime::now_utc();
        match swarm.write(Command::UpdateNode { node, expected_version }).await {
            Ok(_) => return Ok(()),
            Err(s) if crate::errors::is_version_conflict(&s) => continue,
            Err(s) => return Err(s),
        }
    }
    Err(Status::aborted("node changed too often to update"))
}

/// dockerd's refusal of a `--data-path-addr` that is neither an interface
/// nor a non-zero IP.
pub(crate) const BAD_DATA_PATH_ADDR: &str =
    "data path address must be a non-zero IP address or network interface (without a port number)";

/// What a manager takes as a joiner's data-path address: empty, or a
/// non-zero unicast IPv4 address (the joiner resolved any interface name).
/// Every peer sends the joiner's overlay traffic there, so a multicast or
/// broadcast one — which would spread it over the network — is refused.
pub(crate) fn check_joiner_data_path_addr(text: &str) -> Result<(), Status> {
    match text.parse::<std::net::IpAddr>() {
        _ if text.is_empty() => Ok(()),
        Ok(std::net::IpAddr::V4(v4)) if v4.is_multicast() || v4.is_broadcast() => Err(swarmkeep_api::errors::plain(
            Code::InvalidArgument,
            format!("a data path address must be a unicast address, not {v4}"),
        )),
        Ok(std::net::IpAddr::V4(v4)) if !v4.is_unspecified() => Ok(()),
        _ => Err(swarmkeep_api::errors::plain(Code::InvalidArgument, BAD_DATA_PATH_ADDR)),
    }
}
