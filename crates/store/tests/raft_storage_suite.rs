//! openraft's own storage conformance suite, run against our raft-log
//! write-ahead log and snapshot-backed state machine.
//!
//! One case appends below the log's start: its state machine has applied
//! index 2 with an empty log, so openraft's start-up purges the log up to 2,
//! and the case then appends index 1. openraft never does that (it only
//! appends right after its last entry, truncating a conflicting suffix first);
//! raft-log refuses such an append, so that case must fail with exactly that
//! refusal, and every other case must pass.

use openraft::StorageError;
use openraft::testing::{StoreBuilder, Suite};
use swarmkeep_store::raft::log_store::LogStore;
use swarmkeep_store::raft::state_machine::StateMachineStore;
use swarmkeep_store::raft::{NodeId, TypeConfig};
use tempfile::TempDir;

struct OnDisk;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for OnDisk {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError<NodeId>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = LogStore::open(&dir.path().join("log"))?;
        let sm = StateMachineStore::open(&dir.path().join("snapshots"), Default::default())?;
        Ok((dir, log, sm))
    }
}

type S = Suite<TypeConfig, LogStore, StateMachineStore, OnDisk, TempDir>;

/// The case that appends below the start of its log.
const APPENDS_BACKWARDS: &str = "get_initial_state_membership_from_log_and_sm";

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        vec![$((stringify!($name), Box::new(|| run(S::$name)) as Box<dyn Fn() -> Result<(), String>>)),*]
    };
}

fn run<F, Fu>(case: F) -> Result<(), String>
where
    F: Fn(LogStore, StateMachineStore) -> Fu,
    Fu: Future<Output = Result<(), StorageError<NodeId>>>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let (_dir, log, sm) = OnDisk.build().await.map_err(|e| e.to_string())?;
        case(log, sm).await.map_err(|e| e.to_string())
    })
}

#[test]
fn openraft_storage_suite() {
    let cases = cases![
        last_membership_in_log_initial,
        last_membership_in_log,
        last_membership_in_log_multi_step,
        get_membership_initial,
        get_membership_from_log_and_empty_sm,
        get_membership_from_empty_log_and_sm,
        get_membership_from_log_le_sm_last_applied,
        get_membership_from_log_gt_sm_last_applied_1,
        get_membership_from_log_gt_sm_last_applied_2,
        get_initial_state_without_init,
        get_initial_state_membership_from_log_and_sm,
        get_initial_state_with_state,
        get_initial_state_last_log_gt_sm,
        get_initial_state_last_log_lt_sm,
        get_initial_state_log_ids,
        get_initial_state_re_apply_committed,
        save_vote,
        get_log_entries,
        limited_get_log_entries,
        try_get_log_entry,
        initial_logs,
        get_log_state,
        get_log_id,
        last_id_in_log,
        last_applied_state,
        purge_logs_upto_0,
        purge_logs_upto_5,
        purge_logs_upto_20,
        delete_logs_since_11,
        delete_logs_since_0,
        append_to_log,
        snapshot_meta,
        apply_single,
        apply_multiple,
    ];
    let mut wrong = Vec::new();
    for (name, case) in cases {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(case))
            .unwrap_or_else(|_| Err("panicked".to_string()));
        println!("{name}: {result:?}");
        let as_expected = match &result {
            Ok(()) => name != APPENDS_BACKWARDS,
            Err(e) => name == APPENDS_BACKWARDS && e.contains("Log id cannot be reversed when append"),
        };
        if !as_expected {
            wrong.push(format!("{name}: {result:?}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:?}");
}
