//! The leader's loops that carry out what the scheduler crate decides: the
//! orchestrator (services → tasks → nodes), node liveness (Ready/Down from
//! heartbeats), and the raft membership of demoted managers. Each runs on
//! every manager and acts only while that manager leads.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use swarmkeep_store::Command;
use swarmkeep_store::objects::NodeRole;
use tokio::sync::watch;

use crate::state::{CurrentMembership, ManagerState, Membership};

/// On the leader: runs the orchestrator and scheduler whenever what they
/// read may have changed — services, tasks, nodes, networks, cluster
/// settings (the assignment epoch: not secret or config writes, which they
/// never read) — or leadership moves, and every half second (restart
/// delays), and proposes what they decide.
pub(crate) async fn orchestrator_loop(membership: Arc<CurrentMembership>, mut stop: watch::Receiver<bool>) {
    let (mut assignments, mut leadership) = match membership.get() {
        Membership::Manager(swarm) => (swarm.store.assignment_changes(), swarm.store.leadership()),
        _ => return,
    };
    loop {
        let Membership::Manager(swarm) = membership.get() else {
            return;
        };
        if swarm.store.is_leader() {
            tracing::debug!("orchestrator pass");
            let now = time::OffsetDateTime::now_utc();
            let commands = swarm
                .store
                .read(|st| swarmkeep_scheduler::reconcile(st, now, &mut swarmkeep_crypto::new_id));
            for command in commands {
                if let Err(e) = swarm.write(command).await {
                    tracing::debug!(error = %e.message(), "orchestrator write failed; will retry");
                    break;
                }
            }
        }
        drop(swarm);
        tokio::select! {
            _ = stop.changed() => return,
            changed = assignments.changed() => if changed.is_err() { return },
            changed = leadership.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

/// On the leader: marks nodes Ready when they heartbeat and Down after three
/// missed periods. A new leader first gives every node a full grace period,
/// so a leader change does not flap STATUS.
pub(crate) async fn liveness_pass(swarm: &ManagerState) {
    if !swarm.store.is_leader() {
        swarm.heartbeats.was_leader.store(false, Ordering::SeqCst);
        return;
    }
    let updates = {
        let mut seen = swarm.heartbeats.seen.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let first_pass = !swarm.heartbeats.was_leader.swap(true, Ordering::SeqCst);
        if first_pass {
            *swarm.heartbeats.leading_since.lock().unwrap_or_else(|p| p.into_inner()) = Some(now);
        }
        swarm.store.read(|st| {
            // A node heard of for the first time (or by a new leader) gets
            // a full grace period.
            for id in st.nodes.keys() {
                if first_pass {
                    seen.insert(id.clone(), now);
                } else {
                    seen.entry(id.clone()).or_insert(now);
                }
            }
            seen.insert(swarm.identity.node_id.clone(), now);
            swarmkeep_scheduler::liveness::node_states(st, &|id| {
                seen.get(id).map_or(Duration::ZERO, |last| now.duration_since(*last))
            })
        })
    };
    for command in updates {
        if let Command::UpdateNode { node, .. } = &command {
            tracing::info!(node_id = %node.id, state = ?node.state, "node status changed");
        }
        if let Err(e) = swarm.store.write(command).await {
            tracing::debug!(error = %e, "node status update not applied");
        }
    }
    reconcile_reachability(swarm).await;
    reconcile_raft_members(swarm).await;
}

/// On the leader: a manager it has had no raft answer from for twice its
/// election timeout's upper end (at least a second) is Unreachable in
/// `node ls`, and Reachable again once it answers (the leader's heartbeats
/// reach every member every heartbeat interval). A new leader judges only
/// once it has led that long. Written only when it changes.
async fn reconcile_reachability(swarm: &ManagerState) {
    let (_, election_max) = swarm.store.ticks().election_ms();
    let limit = Duration::from_millis((election_max * 2).max(1000));
    let leading_for = swarm
        .heartbeats
        .leading_since
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .map(|t| t.elapsed())
        .unwrap_or_default();
    if leading_for < limit {
        return;
    }
    let me = swarm.store.raft_id();
    let updates = swarm.store.read(|st| {
        swarmkeep_scheduler::liveness::manager_reachability(st, me, &|peer| swarm.raft_contact.silent_for(peer), limit)
    });
    for command in updates {
        if let Command::UpdateNode { node, .. } = &command {
            tracing::info!(node_id = %node.id, unreachable = node.raft_unreachable, "manager reachability changed");
        }
        if let Err(e) = swarm.store.write(command).await {
            tracing::debug!(error = %e, "manager reachability update not applied");
        }
    }
}

/// Demoted nodes leave the raft group: the leader removes any voter whose
/// node the store now lists as a worker (also when that node is down and
/// cannot ask itself).
async fn reconcile_raft_members(swarm: &ManagerState) {
    let voters = swarm.store.voters();
    let demoted: Vec<_> = swarm.store.read(|st| {
        st.nodes
            .values()
            .filter(|n| n.role == NodeRole::Worker && n.raft_id.is_some_and(|r| voters.contains(&r)))
            .cloned()
            .collect()
    });
    for mut node in demoted {
        let Some(raft_id) = node.raft_id else { continue };
        if let Err(e) = swarm.store.remove_member(raft_id).await {
            tracing::warn!(node_id = %node.id, error = %e, "removing a demoted manager from raft failed");
            continue;
        }
        tracing::info!(node_id = %node.id, "demoted manager removed from the raft group");
        let expected_version = node.meta.version;
        node.raft_id = None;
        node.manager_addr = None;
        let _ = swarm.store.write(Command::UpdateNode { node, expected_version }).await;
    }
}
