//! openraft's network over the cluster's mTLS gRPC: each raft message is
//! serialized with serde into a `RaftMessage`. One lazily connecting channel
//! per peer, reused for every RPC. Every answer a peer gives is noted
//! ([`RaftContact`]): the leader judges managers' reachability from it.

use std::sync::Arc;

use openraft::BasicNode;
use openraft::error::{NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, VoteRequest, VoteResponse};
use openraft_legacy::network_v1::{
    Adapter, InstallSnapshotError, InstallSnapshotRequest, InstallSnapshotResponse, RaftNetwork,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use swarmkeep_api::cluster::RaftMessage;
use swarmkeep_api::cluster::raft_client::RaftClient;
use swarmkeep_store::raft::{NodeId, SnapshotData, TypeConfig};
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
}

/// Snapshots go in chunks (openraft's v1 messages, through its adapter).
impl RaftNetworkFactory<TypeConfig> for GrpcNetwork {
    type Network = Adapter<TypeConfig, PeerClient, SnapshotData>;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Self::Network {
        let client = self.tls.channel(&node.addr).ok().map(RaftClient::new);
        PeerClient {
            target,
            client,
            contact: self.contact.clone(),
        }
        .into_v2()
    }
}

type RpcResult<T, E> = Result<T, RPCError<TypeConfig, E>>;

impl PeerClient {
    async fn call<Req, Resp, E>(&mut self, kind: Kind, req: &Req) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let Some(client) = self.client.as_mut() else {
            return Err(RPCError::Unreachable(Unreachable::new(&std::io::Error::other(
                "invalid peer address",
            ))));
        };
        let payload = serde_json::to_vec(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let msg = RaftMessage { payload };
        let resp = match kind {
            Kind::Append => client.append_entries(msg).await,
            Kind::Vote => client.vote(msg).await,
            Kind::Snapshot => client.install_snapshot(msg).await,
        };
        if resp.is_ok() {
            self.contact.heard(self.target);
        }
        let resp = resp.map_err(|status| match status.code() {
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Unknown => {
                RPCError::Unreachable(Unreachable::new(&status))
            }
            _ => RPCError::Network(NetworkError::new(&status)),
        })?;
        let result: Result<Resp, E> =
            serde_json::from_slice(&resp.into_inner().payload).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Append,
    Vote,
    Snapshot,
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
