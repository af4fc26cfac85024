//! openraft wiring: the type configuration, the on-disk log, the state
//! machine with its snapshots, and the network between managers.

pub mod log_store;
pub mod network;
pub mod state_machine;

use crate::command::{Proposal, ProposalResult};

pub type NodeId = u64;

openraft::declare_raft_types!(
    /// swarmkeep's raft types: a log entry carries a [`Proposal`] of commands.
    pub TypeConfig:
        D = Proposal,
        R = ProposalResult,
        NodeId = NodeId,
        Node = openraft::BasicNode,
);

/// A snapshot as it is held and sent: the JSON of a cluster state.
pub type SnapshotData = std::io::Cursor<Vec<u8>>;
pub type Raft = openraft::Raft<TypeConfig, state_machine::StateMachineStore>;
pub type Entry = openraft::alias::EntryOf<TypeConfig>;
pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
pub type Vote = openraft::alias::VoteOf<TypeConfig>;
pub type LeaderId = openraft::alias::CommittedLeaderIdOf<TypeConfig>;
pub type Membership = openraft::Membership<NodeId, openraft::BasicNode>;
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
pub type Snapshot = openraft::alias::SnapshotOf<TypeConfig, SnapshotData>;
pub type EntryPayload = openraft::alias::EntryPayloadOf<TypeConfig>;
pub type RaftMetrics = openraft::RaftMetrics<TypeConfig>;

/// The bytes openraft's types take on disk (a log entry's payload, a
/// snapshot's meta) and between managers (votes, log ids), pinned: an
/// openraft upgrade that changed them would make existing data dirs
/// unreadable, or mixed-version managers misread each other, and must fail
/// here first.
#[cfg(test)]
mod encoding {
    use std::collections::{BTreeMap, BTreeSet};

    use openraft::BasicNode;
    use openraft::vote::RaftLeaderId;

    use super::{EntryPayload, LeaderId, LogId, Membership, SnapshotMeta, StoredMembership, Vote};

    /// `value` is written as `json`, and `json` reads back as `value`.
    fn pinned<T>(value: &T, json: &str)
    where
        T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        assert_eq!(serde_json::to_string(value).unwrap(), json);
        assert_eq!(&serde_json::from_str::<T>(json).unwrap(), value);
    }

    fn membership() -> Membership {
        Membership::new(
            vec![BTreeSet::from([1, 2])],
            BTreeMap::from([
                (1, BasicNode::new("127.0.0.5:2377")),
                (2, BasicNode::new("127.0.0.6:2377")),
            ]),
        )
        .unwrap()
    }

    const LOG_ID: &str = r#"{"leader_id":{"term":3,"node_id":1},"index":42}"#;
    const MEMBERSHIP: &str =
        r#"{"configs":[[1,2]],"nodes":{"1":{"addr":"127.0.0.5:2377"},"2":{"addr":"127.0.0.6:2377"}}}"#;

    #[test]
    fn log_ids_and_votes() {
        let id: LogId = LogId::new(LeaderId::new(3, 1), 42);
        pinned(&id, LOG_ID);
        let mut vote = Vote::new(5, 2);
        vote.committed = true;
        pinned(&vote, r#"{"leader_id":{"term":5,"node_id":2},"committed":true}"#);
    }

    #[test]
    fn entry_payloads_other_than_commands() {
        let blank = EntryPayload::Blank;
        assert_eq!(serde_json::to_string(&blank).unwrap(), r#""Blank""#);
        assert!(matches!(
            serde_json::from_str::<EntryPayload>(r#""Blank""#).unwrap(),
            EntryPayload::Blank
        ));
        let change = EntryPayload::Membership(membership());
        let json = format!(r#"{{"Membership":{MEMBERSHIP}}}"#);
        assert_eq!(serde_json::to_string(&change).unwrap(), json);
        match serde_json::from_str::<EntryPayload>(&json).unwrap() {
            EntryPayload::Membership(m) => assert_eq!(m, membership()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn snapshot_meta() {
        let meta = SnapshotMeta {
            last_log_id: Some(LogId::new(LeaderId::new(3, 1), 42)),
            last_membership: StoredMembership::new(Some(LogId::new(LeaderId::new(3, 1), 40)), membership()),
        };
        // The id slot openraft 0.9 wrote is still written (empty) and read
        // past: a snapshot file written before the upgrade loads.
        let json = format!(
            r#"{{"last_log_id":{LOG_ID},"last_membership":{{"log_id":{{"leader_id":{{"term":3,"node_id":1}},"index":40}},"membership":{MEMBERSHIP}}},"snapshot_id":""}}"#
        );
        pinned(&meta, &json);
        let written_by_0_9 = json.replace(r#""snapshot_id":"""#, r#""snapshot_id":"3-1-42""#);
        assert_eq!(serde_json::from_str::<SnapshotMeta>(&written_by_0_9).unwrap(), meta);
    }
}
