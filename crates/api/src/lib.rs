//! The wire contract of swarmkeep: gRPC types generated from `proto/`, the
//! Docker Engine JSON shapes they are shown as, and the one mapping from a
//! gRPC status to the error text Docker prints.
//!
//! Architecture invariant: nothing here converts a secret's payload into a
//! shape that is shown — the engine shapes of a secret have no data field
//! that is ever filled.

pub mod control {
    tonic::include_proto!("swarmkeep.control");
}
pub mod cluster {
    tonic::include_proto!("swarmkeep.cluster");
}
pub mod dispatcher {
    tonic::include_proto!("swarmkeep.dispatcher");
}
pub mod containers;
pub mod engine;
pub mod errors;
pub mod naming;
pub mod registry_auth;
pub mod sandbox;
pub mod targets;
pub mod task_state;
pub mod timefmt;
