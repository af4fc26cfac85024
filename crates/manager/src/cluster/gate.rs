//! The door of the cluster port: who may be heard at all, decided from the
//! TLS handshake and the method's path before a byte of the request body is
//! read. A connection without a client certificate reaches only the node CA
//! (what a joiner needs); a removed node's certificate reaches nothing; raft
//! traffic comes only from raft peers. The services then check what each
//! method needs (leader only, manager only, the caller's own tasks).

use std::sync::Arc;

use tonic::Status;
use tonic::body::Body;
use tonic::codegen::http::{Request, Response};
use tonic::codegen::{BoxFuture, Context, Poll, Service};
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

use crate::authority;
use crate::ca::node_id_of;
use crate::state::CurrentMembership;

const NODE_CA: &str = "swarmkeep.cluster.NodeCA";
const RAFT: &str = "swarmkeep.cluster.Raft";

#[derive(Clone)]
pub(crate) struct Gate {
    membership: Arc<CurrentMembership>,
}

impl Gate {
    pub(crate) fn new(membership: Arc<CurrentMembership>) -> Self {
        Self { membership }
    }

    fn admit<B>(&self, req: &Request<B>) -> Result<(), Status> {
        let service = req.uri().path().trim_start_matches('/').split('/').next().unwrap_or("");
        if service == NODE_CA {
            return Ok(());
        }
        let node_id = req
            .extensions()
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .and_then(|i| i.peer_certs())
            .and_then(|certs| certs.first().and_then(|c| node_id_of(c.as_ref())))
            .ok_or_else(|| Status::unauthenticated("a cluster client certificate is required"))?;
        let swarm = self.membership.serving()?;
        if service == RAFT {
            return authority::raft_peer(&swarm, &node_id);
        }
        // A node this manager does not know yet may be one a lagging follower
        // has not heard of: the method decides (most send it to the leader).
        // A removed one is refused everywhere, now.
        if swarm.store.read(|st| st.is_removed(&node_id)) {
            return Err(Status::permission_denied(format!(
                "node {node_id} was removed from this swarm"
            )));
        }
        Ok(())
    }
}

impl<S> tower::Layer<S> for Gate {
    type Service = Gated<S>;

    fn layer(&self, inner: S) -> Gated<S> {
        Gated {
            gate: self.clone(),
            inner,
        }
    }
}

#[derive(Clone)]
pub(crate) struct Gated<S> {
    gate: Gate,
    inner: S,
}

impl<S, B> Service<Request<B>> for Gated<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Response<Body>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match self.gate.admit(&req) {
            Ok(()) => Box::pin(self.inner.call(req)),
            // Answered now; the body is dropped unread.
            Err(status) => Box::pin(async move { Ok(status.into_http()) }),
        }
    }
}
