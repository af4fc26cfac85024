//! Services → tasks: slots for replicated services, one task per eligible
//! node for global ones, the restart policy, and task history retention.

use std::collections::{BTreeMap, BTreeSet};

use swarmkeep_store::objects::{
    Availability, Meta, NodeState, RestartCondition, Service, ServiceMode, Task, TaskState, TaskStatus,
};
use swarmkeep_store::{ClusterState, Command};
use time::OffsetDateTime;

use crate::scheduler::Placement;

/// Swarm's default `TaskHistoryRetentionLimit`.
const DEFAULT_HISTORY: usize = 5;

/// The commands that move `state` toward what its services ask, as of `now`,
/// naming new tasks with `new_id` (the leader's random IDs; a test's
/// counter). Empty when nothing is to be done.
pub fn reconcile(state: &ClusterState, now: OffsetDateTime, new_id: &mut dyn FnMut() -> String) -> Vec<Command> {
    let mut put: BTreeMap<String, Task> = BTreeMap::new();
    let mut placement = Placement::new(state);
    for service in state.services.values() {
        let tasks: Vec<&Task> = state.tasks.values().filter(|t| t.service_id == service.id).collect();
        match service.spec.mode {
            ServiceMode::Replicated { replicas } => {
                let mut by_slot: BTreeMap<u64, Vec<&Task>> = BTreeMap::new();
                for t in &tasks {
                    by_slot.entry(t.slot).or_default().push(t);
                }
                for slot in 1..=replicas {
                    let history = by_slot.remove(&slot).unwrap_or_default();
                    if reconcile_slot(service, &history, now, &mut put) {
                        let task = new_task(service, slot, None, now, new_id());
                        put.insert(task.id.clone(), task);
                    }
                }
                // Slots beyond the replica count are scaled away.
                for t in by_slot.into_values().flatten() {
                    if t.desired_state <= TaskState::Running {
                        put.insert(t.id.clone(), shut_down(t, now));
                    }
                }
            }
            ServiceMode::Global => {
                let eligible: BTreeSet<&str> = state
                    .nodes
                    .values()
                    .filter(|n| n.state == NodeState::Ready && n.availability == Availability::Active)
                    .map(|n| n.id.as_str())
                    .collect();
                let mut by_node: BTreeMap<&str, Vec<&Task>> = BTreeMap::new();
                for t in &tasks {
                    by_node.entry(t.node_id.as_deref().unwrap_or("")).or_default().push(t);
                }
                for node in &eligible {
                    let history = by_node.remove(node).unwrap_or_default();
                    if reconcile_slot(service, &history, now, &mut put) {
                        let task = new_task(service, 0, Some(node), now, new_id());
                        placement.add(node);
                        put.insert(task.id.clone(), task);
                    }
                }
                for t in by_node.into_values().flatten() {
                    if t.desired_state <= TaskState::Running {
                        put.insert(t.id.clone(), shut_down(t, now));
                    }
                }
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
            t.node_id.is_none() && t.status.state == TaskState::Pending && t.desired_state == TaskState::Running
        })
        .collect();
    for mut task in waiting {
        if let Some(node) = placement.choose() {
            task.node_id = Some(node.clone());
            task.status = status(TaskState::Assigned, "scheduler assigned task to node", now);
            placement.add(&node);
            put.insert(task.id.clone(), task);
        }
    }
    let limit = state
        .cluster
        .as_ref()
        .map(|c| usize::try_from(c.task_history_retention_limit).unwrap_or(DEFAULT_HISTORY))
        .unwrap_or(DEFAULT_HISTORY);
    let remove = old_history(state, &put, limit);
    let mut commands = crate::networks::predefined(state, now, new_id);
    if !put.is_empty() {
        commands.push(Command::PutTasks(put.into_values().collect()));
    }
    if !remove.is_empty() {
        commands.push(Command::RemoveTasks(remove));
    }
    commands.extend(
        state
            .services
            .values()
            .filter(|s| crate::update::converged(state, s, now))
            .filter_map(|s| {
                Some(Command::CompleteServiceUpdate {
                    id: s.id.clone(),
                    started_at: s.update_status.as_ref()?.started_at,
                    completed_at: now,
                })
            }),
    );
    commands
}

/// One replica slot (or one node of a global service): keeps one task wanting
/// to run. Shuts down what the slot no longer wants and says whether a new
/// task is due (none runs, and the restart policy allows one now).
fn reconcile_slot(service: &Service, history: &[&Task], now: OffsetDateTime, put: &mut BTreeMap<String, Task>) -> bool {
    let current: Vec<&&Task> = history
        .iter()
        .filter(|t| t.desired_state <= TaskState::Running)
        .collect();
    // Tasks made from an older spec are replaced (no rolling update yet: all at once).
    for t in &current {
        if t.spec != service.spec.task && !t.status.state.is_terminal() {
            put.insert(t.id.clone(), shut_down(t, now));
        }
    }
    let live = current
        .iter()
        .find(|t| t.spec == service.spec.task && !t.status.state.is_terminal());
    if live.is_some() {
        return false;
    }
    let policy = &service.spec.task.restart;
    let finished = current
        .iter()
        .filter(|t| t.status.state.is_terminal())
        .max_by_key(|t| t.status.timestamp);
    if let Some(last) = finished {
        let restarts = history.len() as u64;
        let wanted = match policy.condition {
            RestartCondition::Any => true,
            RestartCondition::OnFailure => last.status.state != TaskState::Complete,
            RestartCondition::None => false,
        } && (policy.max_attempts == 0 || restarts <= policy.max_attempts);
        let stale_spec = last.spec != service.spec.task;
        if !wanted && !stale_spec {
            return false;
        }
        let delay = time::Duration::nanoseconds(i64::try_from(policy.delay_ns).unwrap_or(i64::MAX));
        if !stale_spec && now < last.status.timestamp + delay {
            return false;
        }
        for t in current.iter().filter(|t| t.status.state.is_terminal()) {
            put.insert(t.id.clone(), shut_down(t, now));
        }
    }
    true
}

fn new_task(service: &Service, slot: u64, node: Option<&str>, now: OffsetDateTime, id: String) -> Task {
    let (node_id, st) = match node {
        Some(n) => (
            Some(n.to_string()),
            status(TaskState::Assigned, "scheduler assigned task to node", now),
        ),
        None => (None, status(TaskState::Pending, "pending task scheduling", now)),
    };
    Task {
        id,
        meta: Meta {
            version: 0,
            created_at: now,
            updated_at: now,
        },
        service_id: service.id.clone(),
        service_name: service.spec.annotations.name.clone(),
        slot,
        node_id,
        spec: service.spec.task.clone(),
        spec_version: service.meta.version,
        desired_state: TaskState::Running,
        status: st,
    }
}

fn shut_down(t: &Task, now: OffsetDateTime) -> Task {
    let mut t = t.clone();
    t.desired_state = TaskState::Shutdown;
    t.meta.updated_at = now;
    // A task never given to a node has no agent to stop it.
    if t.node_id.is_none() && !t.status.state.is_terminal() {
        t.status = status(TaskState::Shutdown, "shutdown", now);
    }
    t
}

pub(crate) fn status(state: TaskState, message: &str, now: OffsetDateTime) -> TaskStatus {
    TaskStatus {
        state,
        timestamp: now,
        message: message.into(),
        err: String::new(),
        exit_code: None,
        pid: None,
    }
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
