//! openraft's network over the cluster's mTLS gRPC: each raft message is
//! serialized with serde into a `RaftMessage`. One lazily connecting channel
//! per peer, reused for every RPC. Every answer a peer gives is noted
//! ([`RaftContact`]): the leader judges managers' reachability from it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use openraft::base::{BoxFuture, BoxStream};
use openraft::errors::decompose::DecomposeResult;
use openraft::raft::StreamAppendResult;

use openraft::BasicNode;
use openraft::error::{NetworkError, RPCError, RaftError, RemoteError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{Backoff, RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest, TransferLeaderResponse,
    VoteRequest, VoteResponse,
};
use openraft_legacy::network_v1::{
    Adapter, InstallSnapshotError, InstallSnapshotRequest, InstallSnapshotResponse, RaftNetwork,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use swarmkeep_api::cluster::raft_client::RaftClient;
use swarmkeep_api::cluster::{RaftMessage, RaftStreamMessage};
use swarmkeep_store::raft::{NodeId, Snapshot, SnapshotData, TypeConfig, Vote};
use tonic::transport::Channel;

use swarmkeep_transport::tls::TlsCell;

use crate::state::RaftContact;

#[derive(Clone)]
pub struct GrpcNetwork {
    tls: Arc<TlsCell>,
    contact: Arc<RaftContact>,
}

impl GrpcNetwork {
    pub fn new(tls: Arc<TlsCell>, contact: Arc<RaftContact>) -> Self {
        Self { tls, contact }
    }
}

pub struct PeerClient {
    target: NodeId,
    client: Option<RaftClient<Channel>>,
    contact: Arc<RaftContact>,
    /// The open append stream to this peer, if any.
    link: Option<AppendLink>,
    /// The peer answered that it has no append stream (a manager of an
    /// earlier version): appends go as calls of their own.
    no_stream: bool,
}

/// A long-lived AppendStream call: requests go out on `tx`, answers come
/// back on `rx` in the same order, each with its request's `seq`.
struct AppendLink {
    tx: tokio::sync::mpsc::Sender<RaftStreamMessage>,
    rx: tonic::Streaming<RaftStreamMessage>,
    next_seq: u64,
}

/// How long an append waits for its answer at least: a follower's fsync of a
/// large batch on a loaded machine can take longer than openraft's per-RPC
/// budget (a fraction of the heartbeat interval), and a link given up on is
/// a new stream to open.
const APPEND_ANSWER_MIN_WAIT: Duration = Duration::from_secs(2);

impl RaftNetworkFactory<TypeConfig> for GrpcNetwork {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Self::Network {
        let client = self.tls.channel(&node.addr).ok().map(RaftClient::new);
        Peer(
            PeerClient {
                target,
                client,
                contact: self.contact.clone(),
                link: None,
                no_stream: false,
            }
            .into_v2(),
        )
    }
}

/// A raft peer: openraft's v1 messages through its adapter (snapshots in
/// chunks), and Pre-Vote, which the adapter does not carry.
pub struct Peer(Adapter<TypeConfig, PeerClient, SnapshotData>);

impl RaftNetworkV2<TypeConfig> for Peer {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.0.append_entries(rpc, option).await
    }

    /// Appends on one long-lived stream to the peer (see [`PeerClient::append`]),
    /// one request at a time, as openraft's sequential default does.
    fn stream_append<'s, S>(
        &'s mut self,
        input: S,
        option: RPCOption,
    ) -> BoxFuture<
        's,
        Result<BoxStream<'s, Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>>, RPCError<TypeConfig>>,
    >
    where
        S: Stream<Item = AppendEntriesRequest<TypeConfig>> + Send + Unpin + 'static,
    {
        let wait = option.soft_ttl().max(APPEND_ANSWER_MIN_WAIT);
        Box::pin(async move {
            let answers = futures::stream::unfold(Some((self, input)), move |state| async move {
                let (peer, mut input) = state?;
                let req = input.next().await?;
                let prev = req.prev_log_id;
                let last = req.entries.last().map(|e| e.log_id).or(prev);
                match peer.0.inner_mut().append(&req, wait).await.decompose_infallible() {
                    Ok(resp) => {
                        // A follower that took only part of the request stops
                        // this stream, as openraft's sequential default does.
                        let go_on = match &resp {
                            AppendEntriesResponse::Success => true,
                            AppendEntriesResponse::PartialSuccess(upto) => *upto == last,
                            _ => false,
                        };
                        let result = resp.into_stream_result(prev, last);
                        let next = (go_on && result.is_ok()).then_some((peer, input));
                        Some((Ok(result), next))
                    }
                    Err(e) => Some((Err(e), None)),
                }
            });
            let answers: BoxStream<'s, Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>> =
                Box::pin(answers);
            Ok(answers)
        })
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        RaftNetworkV2::vote(&mut self.0, rpc, option).await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let peer = self.0.inner_mut();
        let payload = match peer.send(Kind::PreVote, &rpc).await {
            Ok(payload) => payload,
            // A manager of a version without Pre-Vote: counted as granting,
            // as openraft counts a network without it (the real vote is
            // still judged by its rules).
            Err(status) if status.code() == tonic::Code::Unimplemented => {
                return Ok(VoteResponse::new(rpc.vote, None, true));
            }
            Err(status) => return Err(rpc_error(status)),
        };
        // A remote refusal (it stopped, say) is this RPC failing.
        peer.decode::<_, RaftError<TypeConfig>>(&payload).map_err(|e| match e {
            RPCError::RemoteError(e) => RPCError::Network(NetworkError::new(&e)),
            RPCError::Network(e) => RPCError::Network(e),
            RPCError::Unreachable(e) => RPCError::Unreachable(e),
            RPCError::Timeout(e) => RPCError::Timeout(e),
        })
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        self.0.full_snapshot(vote, snapshot, cancel, option).await
    }

    async fn transfer_leader(
        &mut self,
        rpc: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.0.transfer_leader(rpc, option).await
    }

    fn backoff(&self) -> Option<Backoff> {
        RaftNetworkV2::backoff(&self.0)
    }
}

type RpcResult<T, E> = Result<T, RPCError<TypeConfig, E>>;

impl PeerClient {
    /// Sends one raft message; every answer notes the peer as heard.
    async fn send<Req: Serialize>(&mut self, kind: Kind, req: &Req) -> Result<Vec<u8>, tonic::Status> {
        let Some(client) = self.client.as_mut() else {
            return Err(tonic::Status::unavailable("invalid peer address"));
        };
        let payload = serde_json::to_vec(req).map_err(|e| tonic::Status::internal(e.to_string()))?;
        let msg = RaftMessage { payload };
        let resp = match kind {
            Kind::Append => client.append_entries(msg).await,
            Kind::Vote => client.vote(msg).await,
            Kind::Snapshot => client.install_snapshot(msg).await,
            Kind::PreVote => client.pre_vote(msg).await,
        };
        if resp.is_ok() {
            self.contact.heard(self.target);
        }
        resp.map(|r| r.into_inner().payload)
    }

    /// One append over the peer's append stream (opened on first use and
    /// after a failure), waiting at most `wait` for its answer. Answers to
    /// requests whose caller stopped waiting (openraft drops a replication
    /// or heartbeat future when it gives up) are skipped by their `seq`. A
    /// peer without the stream gets the append as a call of its own.
    async fn append(
        &mut self,
        req: &AppendEntriesRequest<TypeConfig>,
        wait: Duration,
    ) -> RpcResult<AppendEntriesResponse<TypeConfig>, RaftError<TypeConfig>> {
        if self.no_stream {
            return self.call(Kind::Append, req).await;
        }
        let payload = serde_json::to_vec(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let answer = match tokio::time::timeout(wait, self.append_on_link(payload)).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(status)) if status.code() == tonic::Code::Unimplemented => {
                self.no_stream = true;
                return self.call(Kind::Append, req).await;
            }
            Ok(Err(status)) => {
                self.link = None;
                return Err(rpc_error(status));
            }
            Err(_) => {
                self.link = None;
                return Err(rpc_error(tonic::Status::deadline_exceeded(format!(
                    "no answer to an append within {wait:?}"
                ))));
            }
        };
        self.contact.heard(self.target);
        self.decode(&answer)
    }

    async fn append_on_link(&mut self, payload: Vec<u8>) -> Result<Vec<u8>, tonic::Status> {
        if self.link.is_none() {
            let Some(client) = self.client.as_mut() else {
                return Err(tonic::Status::unavailable("invalid peer address"));
            };
            let (tx, requests) = tokio::sync::mpsc::channel(16);
            let rx = client
                .append_stream(tokio_stream::wrappers::ReceiverStream::new(requests))
                .await?
                .into_inner();
            self.link = Some(AppendLink { tx, rx, next_seq: 0 });
        }
        let Some(link) = self.link.as_mut() else {
            return Err(tonic::Status::internal("append stream missing"));
        };
        let seq = link.next_seq;
        link.next_seq += 1;
        link.tx
            .send(RaftStreamMessage { seq, payload })
            .await
            .map_err(|_| tonic::Status::unavailable("the append stream to the peer closed"))?;
        loop {
            let Some(answer) = link.rx.message().await? else {
                return Err(tonic::Status::unavailable("the peer ended the append stream"));
            };
            match answer.seq.cmp(&seq) {
                std::cmp::Ordering::Less => continue,
                std::cmp::Ordering::Equal => return Ok(answer.payload),
                std::cmp::Ordering::Greater => {
                    return Err(tonic::Status::internal("the peer answered an append not sent"));
                }
            }
        }
    }

    async fn call<Req, Resp, E>(&mut self, kind: Kind, req: &Req) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let payload = self.send(kind, req).await.map_err(rpc_error)?;
        self.decode(&payload)
    }

    /// A peer's answer: what it returned, or its refusal as a remote error.
    fn decode<Resp, E>(&self, payload: &[u8]) -> RpcResult<Resp, E>
    where
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let result: Result<Resp, E> =
            serde_json::from_slice(payload).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

fn rpc_error<E: std::error::Error>(status: tonic::Status) -> RPCError<TypeConfig, E> {
    match status.code() {
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Unknown => {
            RPCError::Unreachable(Unreachable::new(&status))
        }
        _ => RPCError::Network(NetworkError::new(&status)),
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Append,
    Vote,
    Snapshot,
    PreVote,
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<TypeConfig>, RaftError<TypeConfig>> {
        self.call(Kind::Append, &rpc).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<TypeConfig>, RaftError<TypeConfig, InstallSnapshotError>> {
        self.call(Kind::Snapshot, &rpc).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<VoteResponse<TypeConfig>, RaftError<TypeConfig>> {
        self.call(Kind::Vote, &rpc).await
    }
}
