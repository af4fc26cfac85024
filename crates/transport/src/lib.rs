//! How a node reaches the other nodes of its swarm: its TLS identity on disk
//! and the mTLS channels made from it ([`tls`]), the "ask the leader instead"
//! answer and the hint it carries ([`leader`]), and the [`Upstream`] an agent
//! is handed to find a dispatcher.
//!
//! Architecture invariant: this crate knows nothing of raft, the store or
//! the manager. It is the only thing the agent and the manager share besides
//! the wire contract (`api`) and the key types (`crypto`).

pub mod leader;
pub mod tls;

use std::sync::Arc;

use tls::TlsCell;

/// Where a node's agent finds a dispatcher: the identity to present and the
/// managers to try, best first.
#[derive(Clone)]
pub struct Dispatchers {
    pub tls: Arc<TlsCell>,
    pub managers: Vec<String>,
}

/// What the daemon hands the agent: asked each time the agent (re)connects,
/// so it follows role changes, leader changes and leaving the swarm.
pub trait Upstream: Send + Sync {
    /// `None` while the node is in no swarm (or is a locked manager): the
    /// agent then stops every task it runs. An empty list of managers (a
    /// manager during an election) only means "try again soon".
    fn dispatchers(&self) -> Option<Dispatchers>;
}
