//! What every manager keeps up on its own, leader or not: its data key
//! wrapped the way the cluster asks (autolock), snapshots on the cluster's
//! interval, and its log compacted behind them as far as the cluster says;
//! the cluster's raft ticks saved for its next start.

use std::sync::atomic::Ordering;
use swarmkeep_store::objects::NodeRole;

use crate::keystore::KeyStore;
use crate::state::ManagerState;

/// One pass of a manager's upkeep (every 250 ms).
pub(crate) async fn upkeep_pass(swarm: &ManagerState) {
    reconcile_autolock(swarm);
    // The managers this one dials (raft, forwarded writes) must be managers
    // now, not a removed one presenting its old certificate. A demoted one
    // stays dialable while it is still in the raft group: the leader needs
    // its vote to take it out (a two-manager group cannot change without it).
    let _ = swarm.tls.pin_managers(swarm.store.read(|st| {
        st.nodes
            .values()
            .filter(|n| n.role == NodeRole::Manager || n.manager_addr.is_some())
            .map(|n| n.id.clone())
            .collect::<Vec<_>>()
    }));
    let Some((interval, keep, ticks)) = swarm.store.read(|st| {
        st.cluster
            .as_ref()
            .map(|c| (c.snapshot_interval, c.log_entries_for_slow_followers, c.raft_ticks()))
    }) else {
        return;
    };
    // The cluster's raft timing, for this manager's next start (openraft
    // fixes it when a member starts, as swarmkit's raft does).
    match swarm.store.save_ticks(ticks) {
        Ok(true) if ticks != swarm.store.ticks() => {
            let running = swarm.store.ticks();
            tracing::warn!(
                election_tick = ticks.election,
                heartbeat_tick = ticks.heartbeat,
                running_election_tick = running.election,
                running_heartbeat_tick = running.heartbeat,
                "the cluster's raft ticks differ from this manager's: they take effect when it restarts"
            );
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "saving the cluster's raft ticks failed"),
    }
    swarm.store.snapshot_if_due(interval).await;
    swarm.store.compact(keep).await;
}

/// Every manager keeps its data key wrapped the way the cluster asks: by the
/// current unlock key (and no key file on disk) with autolock, by a local
/// key-encryption key without.
fn reconcile_autolock(swarm: &ManagerState) {
    let Some((version, autolock, sealed)) = swarm.store.read(|st| {
        st.cluster
            .as_ref()
            .map(|c| (c.meta.version, c.autolock, c.sealed_unlock_key.clone()))
    }) else {
        return;
    };
    // Only when the cluster object changed since the last successful pass.
    if swarm.keys_reconciled_at.load(Ordering::SeqCst) == version {
        return;
    }
    let keys = KeyStore::new(&swarm.keys_dir);
    let result = if autolock {
        match swarm.open_unlock_key(&sealed) {
            Ok(kek) if keys.is_locked_mode() && keys.wrapped_opens_with(&kek) => Ok(()),
            Ok(kek) => keys
                .lock_with(&swarm.data_key, &kek)
                .map(|_| tracing::info!("data key now wrapped by the unlock key")),
            Err(e) => {
                tracing::warn!(error = %e.message(), "autolock is on but the unlock key cannot be read");
                Ok(())
            }
        }
    } else if keys.is_locked_mode() {
        keys.create(&swarm.data_key)
            .map(|_| tracing::info!("autolock off: data key wrapped by a local key again"))
    } else {
        Ok(())
    };
    match result {
        Ok(()) => swarm.keys_reconciled_at.store(version, Ordering::SeqCst),
        Err(e) => tracing::warn!(error = %e, "re-wrapping the data key failed; will retry"),
    }
}
