//! The manager role: this node's life in a swarm, the raft-backed cluster
//! state it serves, and the control API operators call.
//!
//! Layers, each using only those above it:
//! - `errors` (Docker's texts), `lookup` (Docker's ways to find objects),
//!   `ca`, `tokens`, `keystore`, `saved` (the node's `state.json`), and
//!   `logbroker` (log subscriptions) — no manager state;
//! - `state` — what a node holds while in a swarm ([`ManagerState`],
//!   [`Membership`]);
//! - `leader` — talking to the leader: writes, read barriers, calls that
//!   follow "not the leader";
//! - `controlapi`, `dispatcher`, `logs` (`service logs` on the leader),
//!   `cluster` (the cluster port),
//!   `orchestrator` (the leader's loops running the scheduler crate),
//!   `upkeep` (every manager's key wrapping and snapshots);
//! - `node` — the transitions between roles, which start and stop the rest.
//!
//! Architecture invariant: plaintext secrets pass through here only on the
//! way in — sealed under the cluster data key before they reach the store —
//! and on the way out to a node, sealed to that node's session key by the
//! dispatcher. Nothing this crate returns, logs or writes to disk contains one.

mod authority;
pub mod ca;
pub mod cluster;
pub mod controlapi;
pub mod dispatcher;
pub mod errors;
mod keystore;
pub mod leader;
mod leader_link;
pub mod logbroker;
mod logs;
mod lookup;
mod node;
mod orchestrator;
mod saved;
pub mod state;
pub mod tokens;
mod upkeep;

pub use node::{ManagerConfig, SwarmNode};
pub use state::{ManagerState, Membership};
