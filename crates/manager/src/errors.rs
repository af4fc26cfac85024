//! Docker's texts for what the manager refuses, in one place: the daemon's
//! own errors (shown bare) and the store's refusals as swarmkit words them.
//! How a status is then shown to an operator is `swarmkeep_api::errors`.

use swarmkeep_api::errors::{plain, rpc};
use swarmkeep_store::{CommandError, WriteError};
use tonic::{Code, Status};

pub const NOT_A_MANAGER: &str = "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.";
pub const WORKER_NOT_A_MANAGER: &str = "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager.";
pub const SWARM_LOCKED: &str = "Swarm is encrypted and needs to be unlocked before it can be used. Please use \"docker swarm unlock\" to unlock it.";
pub const ALREADY_IN_SWARM: &str =
    "This node is already part of a swarm. Use \"docker swarm leave\" to leave this swarm and join another one.";

pub const NOT_IN_SWARM: &str = "This node is not part of a swarm";
pub const SWARM_NOT_LOCKED: &str = "swarm is not locked";

/// Maps a refused or failed store write to the status Docker shows.
pub fn write_error(e: WriteError) -> Status {
    match e {
        WriteError::Rejected(CommandError::NameConflict { kind, name }) => {
            rpc(Code::AlreadyExists, format!("{kind} {name} already exists"))
        }
        WriteError::Rejected(CommandError::NotFound { kind, id }) => {
            rpc(Code::NotFound, format!("{kind} {id} not found"))
        }
        WriteError::Rejected(e @ CommandError::InUse { .. }) => rpc(Code::InvalidArgument, e.to_string()),
        WriteError::Rejected(e @ CommandError::NotAssigned { .. }) => rpc(Code::PermissionDenied, e.to_string()),
        WriteError::Rejected(CommandError::VersionConflict) => version_conflict(),
        // An allocation decided on a state that changed meanwhile: the
        // caller may allocate again.
        WriteError::Rejected(e @ CommandError::AddressInUse { .. }) => rpc(Code::Aborted, e.to_string()),
        WriteError::Rejected(CommandError::Refused(why)) => rpc(Code::FailedPrecondition, why),
        WriteError::Rejected(CommandError::AlreadyInitialized) => plain(Code::Unavailable, ALREADY_IN_SWARM),
        WriteError::NotLeader { leader } => rpc(
            Code::Unavailable,
            match leader {
                Some(addr) => format!("this manager is not the raft leader; the leader is {addr}"),
                None => "no raft leader is elected: the swarm does not have a quorum of managers".into(),
            },
        ),
        WriteError::Unavailable(reason) => rpc(Code::Unavailable, format!("the swarm store is unavailable: {reason}")),
    }
}

/// Docker's answer to a write against a version that is no longer current.
pub(crate) fn version_conflict() -> Status {
    rpc(Code::Unknown, UPDATE_OUT_OF_SEQUENCE)
}

/// Whether `status` is [`version_conflict`]: the object changed since it was
/// read, and a read-modify-write may read again.
pub(crate) fn is_version_conflict(status: &Status) -> bool {
    status.code() == Code::Unknown && status.message() == UPDATE_OUT_OF_SEQUENCE
}

const UPDATE_OUT_OF_SEQUENCE: &str = "update out of sequence";

/// A failure of this manager's own machinery (disk, raft), with what it was doing.
pub(crate) fn internal(what: &str, e: &dyn std::fmt::Display) -> Status {
    rpc(Code::Internal, format!("{what}: {e}"))
}
