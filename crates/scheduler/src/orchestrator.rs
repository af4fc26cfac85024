//! Services → tasks: slots for replicated services, one task per eligible
//! node for global ones, the restart policy, and task history retention.

use std::collections::{BTreeMap, BTreeSet};

use swarmkeep_store::objects::{Availability, NodeState, Service, ServiceMode, Task, TaskState};
use swarmkeep_store::{ClusterState, Command};
use time::OffsetDateTime;

use crate::placement::{self, Placement};
use crate::slots::{SlotKey, stopping};
use crate::tasks::{new_task, of_spec, restart, shut_down, status};

/// Swarm's default `TaskHistoryRetentionLimit`.
const DEFAULT_HISTORY: usize = 5;

/// The commands that move `state` toward what its services ask, as of `now`,
/// naming new tasks with `new_id` (the leader's random IDs; a test's
/// counter). Empty when nothing is to be done.
pub fn reconcile(state: &ClusterState, now: OffsetDateTime, new_id: &mut dyn FnMut() -> String) -> Vec<Command> {
    let mut put: BTreeMap<String, Task> = BTreeMap::new();
    let mut service_changes = Vec::new();
    let mut placement = Placement::new(state);
    let ready: BTreeSet<&str> = state
        .nodes
        .values()
        .filter(|n| n.state == NodeState::Ready)
        .map(|n| n.id.as_str())
        .collect();
    for service in state.services.values() {
        if service.spec.mode.is_job() {
            crate::jobs::reconcile(state, service, now, new_id, &mut put, &mut placement);
            continue;
        }
        let mut slots: BTreeMap<SlotKey<'_>, Vec<&Task>> = BTreeMap::new();
        for t in state.tasks.values().filter(|t| t.service_id == service.id) {
            // On a node that went down, was drained, or no longer meets the
            // task's constraints: shut down, and its slot starts over
            // elsewhere at once (no rebalancing when the node is back).
            if t.desired_state <= TaskState::Running
                && let Some(node) = t.node_id.as_deref()
                && !placement::keeps(state.nodes.get(node), &t.spec)
            {
                put.insert(t.id.clone(), shut_down(t, now));
                if matches!(service.spec.mode, ServiceMode::Replicated { .. }) {
                    continue;
                }
            }
            let key = match service.spec.mode {
                ServiceMode::Replicated { .. } => SlotKey::Replica(t.slot),
                _ => SlotKey::Node(t.node_id.as_deref().unwrap_or("")),
            };
            slots.entry(key).or_default().push(t);
        }
        let wanted: Vec<SlotKey<'_>> = match service.spec.mode {
            ServiceMode::Replicated { replicas } => (1..=replicas).map(SlotKey::Replica).collect(),
            // Every node up that takes new tasks and meets the constraints;
            // a paused node keeps the task it has.
            ServiceMode::Global | ServiceMode::ReplicatedJob { .. } | ServiceMode::GlobalJob => state
                .nodes
                .values()
                .filter(|n| {
                    placement::keeps(Some(n), &service.spec.task)
                        && (n.availability == Availability::Active
                            || slots.get(&SlotKey::Node(n.id.as_str())).is_some_and(|h| {
                                h.iter()
                                    .any(|t| t.desired_state <= TaskState::Running && !t.status.state.is_terminal())
                            }))
                })
                .map(|n| SlotKey::Node(n.id.as_str()))
                .collect(),
        };
        let rollout = crate::update::plan(service, &wanted, &slots, &ready, now);
        service_changes.extend(rollout.change);
        for key in &wanted {
            let history = slots.remove(key).unwrap_or_default();
            let step = SlotStep {
                replace: rollout.may_replace.contains(key),
                start_first: rollout.start_first,
            };
            if let Some(restarts) = reconcile_slot(service, &history, &ready, now, step, &mut put) {
                let (slot, node) = match key {
                    SlotKey::Replica(slot) => (*slot, None),
                    SlotKey::Node(node) => (0, Some(*node)),
                };
                let task = new_task(service, slot, node, now, new_id(), restarts);
                placement.add(&task);
                put.insert(task.id.clone(), task);
            }
        }
        // Slots beyond the replica count (or nodes no longer eligible for a
        // global service) are emptied.
        for t in slots.into_values().flatten() {
            if t.desired_state <= TaskState::Running {
                put.insert(t.id.clone(), shut_down(t, now));
            }
        }
    }
    // Place every task still waiting for a node, the new ones included.
    let waiting: Vec<Task> = state
        .tasks
        .values()
        .filter(|t| !put.contains_key(&t.id))
        .cloned()
        .chain(put.values().cloned())
        .filter(|t| {
            t.node_id.is_none()
                && t.status.state == TaskState::Pending
                && matches!(t.desired_state, TaskState::Running | TaskState::Complete)
        })
        .collect();
    for mut task in waiting {
        match placement.choose(&task) {
            Ok(node) => {
                task.node_id = Some(node);
                task.status = status(TaskState::Assigned, "scheduler assigned task to node", now);
                placement.add(&task);
                put.insert(task.id.clone(), task);
            }
            // Pending, saying why (written only when the reason changes).
            Err(why) if task.status.err != why => {
                task.status.err = why;
                put.insert(task.id.clone(), task);
            }
            Err(_) => {}
        }
    }
    let limit = state
        .cluster
        .as_ref()
        .map(|c| usize::try_from(c.task_history_retention_limit).unwrap_or(DEFAULT_HISTORY))
        .unwrap_or(DEFAULT_HISTORY);
    let remove = old_history(state, &put, limit);
    let mut commands = crate::networks::predefined(state, now, new_id);
    commands.extend(crate::ipam::allocate(state, &mut put, now));
    if !put.is_empty() {
        commands.push(Command::PutTasks(put.into_values().collect()));
    }
    if !remove.is_empty() {
        commands.push(Command::RemoveTasks(remove));
    }
    commands.extend(service_changes);
    commands
}

/// What the service's rollout allows a slot this pass.
#[derive(Clone, Copy)]
struct SlotStep {
    /// Its task of an older spec may be replaced now.
    replace: bool,
    /// The new task starts before the old one stops.
    start_first: bool,
}

/// One replica slot (or one node of a global service): keeps one task wanting
/// to run. Shuts down what the slot no longer wants and says whether a new
/// task is due (none runs, and the rollout or the restart policy allows one
/// now), with the restarts it carries.
fn reconcile_slot(
    service: &Service,
    history: &[&Task],
    ready: &BTreeSet<&str>,
    now: OffsetDateTime,
    step: SlotStep,
    put: &mut BTreeMap<String, Task>,
) -> Option<Vec<i64>> {
    let spec = &service.spec.task;
    let current: Vec<&&Task> = history
        .iter()
        .filter(|t| t.desired_state <= TaskState::Running)
        .collect();
    let live_old: Vec<&&&Task> = current
        .iter()
        .filter(|t| !of_spec(t, service) && !t.status.state.is_terminal())
        .collect();
    if let Some(new) = current
        .iter()
        .find(|t| of_spec(t, service) && !t.status.state.is_terminal())
    {
        // Replaced: the old task stops at once (stop-first), or once its
        // replacement runs (start-first).
        if !step.start_first || new.status.state == TaskState::Running {
            for t in live_old {
                put.insert(t.id.clone(), shut_down(t, now));
            }
        }
        return None;
    }
    // A replacement that failed while the old task runs (start-first) is
    // restarted under the restart policy, the old one running meanwhile.
    let failed_replacement = current
        .iter()
        .any(|t| of_spec(t, service) && t.status.state.is_terminal());
    if !live_old.is_empty() && !failed_replacement {
        // Of an older spec: replaced when the rollout says.
        if !step.replace {
            return None;
        }
        if step.start_first {
            return Some(Vec::new());
        }
        for t in live_old {
            put.insert(t.id.clone(), shut_down(t, now));
        }
        return None;
    }
    // Stop-first: a task still stopping on a live node is waited for (a
    // minute at most), so the two never run together.
    if live_old.is_empty() && history.iter().any(|t| stopping(t, ready, now)) {
        return None;
    }
    let Some(last) = current
        .iter()
        .filter(|t| t.status.state.is_terminal())
        .max_by_key(|t| t.status.timestamp)
    else {
        return Some(Vec::new());
    };
    // A finished task of an older spec: its slot starts over with the new one.
    let restarts = if last.spec != *spec {
        Vec::new()
    } else {
        restart(&spec.restart, last, now)?
    };
    for t in current.iter().filter(|t| t.status.state.is_terminal()) {
        put.insert(t.id.clone(), shut_down(t, now));
    }
    Some(restarts)
}

/// Finished tasks beyond the history limit of their slot, oldest first.
fn old_history(state: &ClusterState, put: &BTreeMap<String, Task>, limit: usize) -> Vec<String> {
    let mut slots: BTreeMap<(&str, u64, &str), Vec<&Task>> = BTreeMap::new();
    for t in state.tasks.values() {
        let t = put.get(&t.id).unwrap_or(t);
        let node = if t.slot == 0 {
            t.node_id.as_deref().unwrap_or("")
        } else {
            ""
        };
        slots.entry((t.service_id.as_str(), t.slot, node)).or_default().push(t);
    }
    let mut remove = Vec::new();
    for mut tasks in slots.into_values() {
        if tasks.len() <= limit.max(1) {
            continue;
        }
        tasks.sort_by_key(|t| t.meta.created_at);
        let excess = tasks.len() - limit.max(1);
        remove.extend(
            tasks
                .into_iter()
                .filter(|t| t.desired_state > TaskState::Running && t.status.state.is_terminal())
                .take(excess)
                .map(|t| t.id.clone()),
        );
    }
    remove
}
