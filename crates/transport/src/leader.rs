//! "This manager is not the raft leader": the answer a follower gives to a
//! call only the leader serves, with the leader's address as a hint in the
//! status metadata when it knows one.

use swarmkeep_api::errors::rpc;
use tonic::{Code, Status};

const LEADER_KEY: &str = "x-swarmkeep-leader";
const NOT_LEADER: &str = "this manager is not the raft leader";

/// "Ask the leader instead", with its address when known.
pub fn not_leader(leader: Option<String>) -> Status {
    let mut status = rpc(Code::FailedPrecondition, NOT_LEADER);
    if let Some(addr) = leader.and_then(|a| a.parse().ok()) {
        status.metadata_mut().insert(LEADER_KEY, addr);
    }
    status
}

/// The leader's address a [`not_leader`] answer carries.
pub fn leader_hint(status: &Status) -> Option<String> {
    status
        .metadata()
        .get(LEADER_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

pub fn is_not_leader(status: &Status) -> bool {
    status.code() == Code::FailedPrecondition && status.message() == NOT_LEADER
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hint_survives_the_status() {
        let s = not_leader(Some("127.0.0.3:2377".into()));
        assert!(is_not_leader(&s));
        assert_eq!(leader_hint(&s).as_deref(), Some("127.0.0.3:2377"));
        assert_eq!(leader_hint(&not_leader(None)), None);
        assert!(!is_not_leader(&rpc(Code::FailedPrecondition, "other")));
    }
}
