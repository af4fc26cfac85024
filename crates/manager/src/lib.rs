//! The manager role: a node's membership in the swarm (init, its keys and
//! local state on disk), and the control API that operators call.
//!
//! Architecture invariant: plaintext secrets pass through here only on the
//! way in — sealed under the cluster data key before they reach the store —
//! and on the way out to a node, sealed to that node's session key by the
//! dispatcher. Nothing this crate returns, logs or writes to disk contains one.

pub mod ca;
pub mod cluster;
pub mod controlapi;
pub mod dispatcher;
mod keystore;
mod local_node;
pub mod logbroker;
mod manager;
pub mod tokens;

pub use manager::{ActiveSwarm, Manager, ManagerConfig, Membership};
