//! openraft wiring: the type configuration, the on-disk log, the state
//! machine with its snapshots, and the network between managers.

// openraft's `StorageError` is what its storage traits return; our helpers return it
// too rather than boxing and unboxing at every trait boundary.
#![allow(clippy::result_large_err)]

pub mod log_store;
pub mod network;
pub mod state_machine;

use std::io::Cursor;

use crate::command::{Proposal, ProposalResult};

pub type NodeId = u64;

openraft::declare_raft_types!(
    /// swarmkeep's raft types: a log entry carries a [`Proposal`] of commands.
    pub TypeConfig:
        D = Proposal,
        R = ProposalResult,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        SnapshotData = Cursor<Vec<u8>>,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type LogId = openraft::LogId<NodeId>;
