//! Jobs (Docker's `ReplicatedJob` and `GlobalJob`): tasks that run to
//! completion. A job's tasks want `Complete`; one that completed is done
//! and never started again; one that failed is restarted under the restart
//! policy; a replicated job runs `total_completions` tasks, at most
//! `max_concurrent` at a time, a global job one on each eligible node. A
//! spec change (`service update`, `--force`) runs the job again.

use std::collections::BTreeMap;

use swarmkeep_store::ClusterState;
use swarmkeep_store::objects::{Availability, Service, ServiceMode, Task, TaskState};
use time::OffsetDateTime;

use crate::placement::{self, Placement};
use crate::slots::SlotKey;
use crate::tasks::{new_task, restart, shut_down};

pub(crate) fn reconcile(
    state: &ClusterState,
    service: &Service,
    now: OffsetDateTime,
    new_id: &mut dyn FnMut() -> String,
    put: &mut BTreeMap<String, Task>,
    placement: &mut Placement<'_>,
) {
    let spec = &service.spec.task;
    let mut slots: BTreeMap<SlotKey<'_>, Vec<&Task>> = BTreeMap::new();
    for t in state.tasks.values().filter(|t| t.service_id == service.id) {
        if t.desired_state != TaskState::Complete {
            continue;
        }
        // An earlier run's task still going, or one on a node that is down,
        // drained or no longer meets the constraints: stopped (a replicated
        // job's slot starts over elsewhere).
        let displaced = t
            .node_id
            .as_deref()
            .is_some_and(|n| !placement::keeps(state.nodes.get(n), spec));
        if t.spec != *spec || (displaced && !t.status.state.is_terminal()) {
            put.insert(t.id.clone(), shut_down(t, now));
            continue;
        }
        let key = match service.spec.mode {
            ServiceMode::ReplicatedJob { .. } => SlotKey::Replica(t.slot),
            _ => SlotKey::Node(t.node_id.as_deref().unwrap_or("")),
        };
        slots.entry(key).or_default().push(t);
    }
    let (wanted, max_concurrent): (Vec<SlotKey<'_>>, u64) = match service.spec.mode {
        ServiceMode::ReplicatedJob {
            max_concurrent,
            total_completions,
        } => ((1..=total_completions).map(SlotKey::Replica).collect(), max_concurrent),
        _ => (
            state
                .nodes
                .values()
                .filter(|n| placement::keeps(Some(n), spec) && n.availability == Availability::Active)
                .map(|n| SlotKey::Node(n.id.as_str()))
                .collect(),
            u64::MAX,
        ),
    };
    let mut live = slots
        .values()
        .flatten()
        .filter(|t| !t.status.state.is_terminal())
        .count() as u64;
    for key in wanted {
        let history = slots.get(&key).map(Vec::as_slice).unwrap_or_default();
        if history
            .iter()
            .any(|t| t.status.state == TaskState::Complete || !t.status.state.is_terminal())
        {
            continue;
        }
        let restarts = match history.iter().max_by_key(|t| t.status.timestamp) {
            None => Vec::new(),
            Some(last) => match restart(&spec.restart, last, now) {
                Some(r) => r,
                None => continue,
            },
        };
        if live >= max_concurrent {
            break;
        }
        for t in history {
            put.insert(t.id.clone(), shut_down(t, now));
        }
        let (slot, node) = match key {
            SlotKey::Replica(slot) => (slot, None),
            SlotKey::Node(node) => (0, Some(node)),
        };
        let mut task = new_task(service, slot, node, now, new_id(), restarts);
        task.desired_state = TaskState::Complete;
        placement.add(&task);
        put.insert(task.id.clone(), task);
        live += 1;
    }
}
