//! The wire contract of swarmkeep: gRPC types generated from `proto/`, the
//! Docker Engine JSON shapes they are shown as, and the one mapping from a gRPC
//! status to the error text Docker prints.
pub mod control {
    tonic::include_proto!("swarmkeep.control");
}
