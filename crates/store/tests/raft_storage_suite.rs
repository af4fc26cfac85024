//! openraft's own storage conformance suite, run against our redb log store
//! and snapshot-backed state machine.

use openraft::testing::{StoreBuilder, Suite};
use swarmkeep_store::raft::log_store::LogStore;
use swarmkeep_store::raft::state_machine::StateMachineStore;
use swarmkeep_store::raft::{StorageError, TypeConfig};
use tempfile::TempDir;

struct OnDisk;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for OnDisk {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = LogStore::open(&dir.path().join("log.redb"))?;
        let sm = StateMachineStore::open(&dir.path().join("snapshots"), Default::default())?;
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(OnDisk).expect("openraft storage suite");
}
