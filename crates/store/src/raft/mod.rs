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

/// The bytes openraft's types take on disk (a log entry's payload, a
/// snapshot's meta) and between managers (votes, log ids), pinned: an
/// openraft upgrade that changed them would make existing data dirs
/// unreadable, or mixed-version managers misread each other, and must fail
/// here first.
#[cfg(test)]
mod encoding {
    use std::collections::{BTreeMap, BTreeSet};

    use openraft::{BasicNode, CommittedLeaderId, EntryPayload, Membership, SnapshotMeta, StoredMembership, Vote};

    use super::{LogId, NodeId, TypeConfig};

    /// `value` is written as `json`, and `json` reads back as `value`.
    fn pinned<T>(value: &T, json: &str)
    where
        T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        assert_eq!(serde_json::to_string(value).unwrap(), json);
        assert_eq!(&serde_json::from_str::<T>(json).unwrap(), value);
    }

    fn membership() -> Membership<NodeId, BasicNode> {
        Membership::new(
            vec![BTreeSet::from([1, 2])],
            BTreeMap::from([
                (1, BasicNode::new("127.0.0.5:2377")),
                (2, BasicNode::new("127.0.0.6:2377")),
            ]),
        )
    }

    const LOG_ID: &str = r#"{"leader_id":{"term":3,"node_id":1},"index":42}"#;
    const MEMBERSHIP: &str =
        r#"{"configs":[[1,2]],"nodes":{"1":{"addr":"127.0.0.5:2377"},"2":{"addr":"127.0.0.6:2377"}}}"#;

    #[test]
    fn log_ids_and_votes() {
        let id: LogId = LogId::new(CommittedLeaderId::new(3, 1), 42);
        pinned(&id, LOG_ID);
        let mut vote = Vote::<NodeId>::new(5, 2);
        vote.committed = true;
        pinned(&vote, r#"{"leader_id":{"term":5,"node_id":2},"committed":true}"#);
    }

    #[test]
    fn entry_payloads_other_than_commands() {
        let blank = EntryPayload::<TypeConfig>::Blank;
        assert_eq!(serde_json::to_string(&blank).unwrap(), r#""Blank""#);
        assert!(matches!(
            serde_json::from_str::<EntryPayload<TypeConfig>>(r#""Blank""#).unwrap(),
            EntryPayload::Blank
        ));
        let change = EntryPayload::<TypeConfig>::Membership(membership());
        let json = format!(r#"{{"Membership":{MEMBERSHIP}}}"#);
        assert_eq!(serde_json::to_string(&change).unwrap(), json);
        match serde_json::from_str::<EntryPayload<TypeConfig>>(&json).unwrap() {
            EntryPayload::Membership(m) => assert_eq!(m, membership()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn snapshot_meta() {
        let meta = SnapshotMeta::<NodeId, BasicNode> {
            last_log_id: Some(LogId::new(CommittedLeaderId::new(3, 1), 42)),
            last_membership: StoredMembership::new(Some(LogId::new(CommittedLeaderId::new(3, 1), 40)), membership()),
            snapshot_id: "3-1-42".into(),
        };
        let json = format!(
            r#"{{"last_log_id":{LOG_ID},"last_membership":{{"log_id":{{"leader_id":{{"term":3,"node_id":1}},"index":40}},"membership":{MEMBERSHIP}}},"snapshot_id":"3-1-42"}}"#
        );
        pinned(&meta, &json);
    }
}
