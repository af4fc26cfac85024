//! The cluster port: the mTLS listener every node in a swarm serves — raft
//! between managers (`network.rs` is the client side), the node CA and the
//! cluster calls (`server.rs`), and the dispatcher (`crate::dispatcher`) —
//! behind one door (`gate.rs`) that decides who is heard before any request
//! body is read.

mod gate;
mod incoming;
pub mod network;
pub(crate) mod server;

/// The largest message each service decodes (after the gate admitted the caller).
const RAFT_MESSAGE_LIMIT: usize = 256 * 1024 * 1024;
const NODE_CA_MESSAGE_LIMIT: usize = 64 * 1024;
const DISPATCHER_MESSAGE_LIMIT: usize = 4 * 1024 * 1024;
const CLUSTER_MESSAGE_LIMIT: usize = 2 * 1024 * 1024;
/// Calls in flight on one connection (an agent's session, logs and status
/// reports, or a manager's raft and forwarded writes, need far fewer).
const MAX_STREAMS_PER_CONNECTION: u32 = 64;

use std::sync::Arc;
use std::time::Duration;

use swarmkeep_api::cluster::cluster_server::ClusterServer;
use swarmkeep_api::cluster::node_ca_server::NodeCaServer;
use swarmkeep_api::cluster::raft_server::RaftServer;
use swarmkeep_api::dispatcher::dispatcher_server::DispatcherServer;
use swarmkeep_api::errors::plain;
use swarmkeep_transport::tls::TlsCell;
use tokio::sync::watch;
use tonic::{Code, Status};

use crate::state::CurrentMembership;

/// Binds `listen_addr` and serves the cluster port until `stop`.
pub(crate) fn serve(
    membership: Arc<CurrentMembership>,
    tls: &Arc<TlsCell>,
    listen_addr: &str,
    mut stop: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, Status> {
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
    let dispatcher = DispatcherServer::new(crate::dispatcher::DispatcherService::new(membership.clone()));
    let gate = gate::Gate::new(membership.clone());
    let service = server::ClusterService::new(membership);
    let router = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(5)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        // Bounds what one admitted connection can make the node hold at once.
        .max_concurrent_streams(Some(MAX_STREAMS_PER_CONNECTION))
        // Who may be heard at all, before any body is read.
        .layer(gate)
        // Raft batches of entries (a service's tasks are one entry) are
        // large, but come only from raft peers; snapshots are sent in chunks.
        .add_service(RaftServer::new(service.clone()).max_decoding_message_size(RAFT_MESSAGE_LIMIT))
        // What a joiner sends: a token and a CSR.
        .add_service(NodeCaServer::new(service.clone()).max_decoding_message_size(NODE_CA_MESSAGE_LIMIT))
        .add_service(dispatcher.max_decoding_message_size(DISPATCHER_MESSAGE_LIMIT))
        // Forwarded writes: a secret of the largest size (500 KiB) fits,
        // base64-grown in the command's JSON.
        .add_service(ClusterServer::new(service).max_decoding_message_size(CLUSTER_MESSAGE_LIMIT));
    // TLS with the node's current certificate (see `incoming`).
    let (incoming, accepting) = incoming::incoming(listener, tls.clone(), stop.clone());
    Ok(tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop.changed().await;
        };
        if let Err(e) = router.serve_with_incoming_shutdown(incoming, shutdown).await {
            tracing::error!(error = %e, "cluster listener failed");
        }
        // The listener is closed once this returns: a role change binds the
        // same address right after.
        let _ = accepting.await;
    }))
}
