//! openraft's own storage conformance suite, run against our raft-log
//! write-ahead log and snapshot-backed state machine: every case, one at a
//! time on a fresh data dir, must pass (openraft's `test_all` stops at the
//! first failure; this names every failing case).

use openraft::StorageError;
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::TypeConfigExt;
use swarmkeep_store::raft::TypeConfig;
use swarmkeep_store::raft::log_store::LogStore;
use swarmkeep_store::raft::state_machine::StateMachineStore;
use tempfile::TempDir;

struct OnDisk;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for OnDisk {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let log =
            LogStore::open(&dir.path().join("log")).map_err(|e| StorageError::write(TypeConfig::err_from_error(&e)))?;
        let sm = StateMachineStore::open(&dir.path().join("snapshots"), Default::default())
            .map_err(|e| StorageError::write(TypeConfig::err_from_error(&e)))?;
        Ok((dir, log, sm))
    }
}

type S = Suite<TypeConfig, LogStore, StateMachineStore, OnDisk, TempDir>;

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        vec![$((stringify!($name), Box::new(|| run(S::$name)) as Box<dyn Fn() -> Result<(), String>>)),*]
    };
}

fn run<F, Fu>(case: F) -> Result<(), String>
where
    F: Fn(LogStore, StateMachineStore) -> Fu,
    Fu: Future<Output = Result<(), std::io::Error>>,
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
        get_initial_state_membership_from_empty_log_and_sm,
        get_initial_state_membership_from_sm_inlog_is_smaller,
        get_initial_state_membership_from_log_insm_is_smaller,
        get_initial_state_with_state,
        get_initial_state_last_log_gt_sm,
        get_initial_state_last_log_lt_sm,
        get_initial_state_inverted_log_order,
        get_initial_state_conflict_at_same_index,
        get_initial_state_log_ids,
        get_initial_state_re_apply_committed,
        save_vote,
        get_log_entries,
        limited_get_log_entries,
        leader_bounded_stream,
        entries_stream,
        try_get_log_entry,
        log_reader_reads_new_entries,
        initial_logs,
        get_log_state,
        get_log_id,
        last_id_in_log,
        last_applied_state,
        purge_logs_upto_0,
        purge_logs_upto_5,
        purge_logs_upto_20,
        delete_logs_after_11,
        delete_logs_after_5,
        delete_logs_after_0,
        delete_logs_after_none,
        append_to_log,
        snapshot_meta,
        snapshot_meta_optional,
        apply_single,
        apply_multiple,
    ];
    let mut wrong = Vec::new();
    let transfer = || -> Result<(), String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(S::transfer_snapshot(&OnDisk)).map_err(|e| e.to_string())
    };
    let mut cases = cases;
    cases.push(("transfer_snapshot", Box::new(transfer)));
    for (name, case) in cases {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(case))
            .unwrap_or_else(|_| Err("panicked".to_string()));
        println!("{name}: {result:?}");
        if result.is_err() {
            wrong.push(format!("{name}: {result:?}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:?}");
}
