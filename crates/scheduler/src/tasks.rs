//! Making and ending tasks, and the restart policy's verdict on a slot: what
//! the orchestrator and the jobs share.

use swarmkeep_store::objects::{Meta, RestartCondition, RestartPolicy, Service, Task, TaskState, TaskStatus};
use time::OffsetDateTime;

use crate::slots::nanos;

/// swarmkit's restart supervisor for a slot whose last task ended: the
/// restarts it carries once the policy lets it start again now, else none.
/// Restarts are counted per slot since the spec changed, within the window
/// when there is one, judged as of the failure so the answer does not
/// change later. A task that completed is restarted only under `any`.
pub(crate) fn restart(policy: &RestartPolicy, last: &Task, now: OffsetDateTime) -> Option<Vec<i64>> {
    let wanted = match policy.condition {
        RestartCondition::Any => true,
        RestartCondition::OnFailure => last.status.state != TaskState::Complete,
        RestartCondition::None => false,
    };
    let since = (last.status.timestamp - nanos(policy.window_ns)).unix_timestamp_nanos();
    let mut restarts: Vec<i64> = last
        .restarts
        .iter()
        .copied()
        .filter(|at| policy.window_ns == 0 || i128::from(*at) > since)
        .collect();
    if !wanted || (policy.max_attempts > 0 && restarts.len() as u64 >= policy.max_attempts) {
        return None;
    }
    if now < last.status.timestamp + nanos(policy.delay_ns) {
        return None;
    }
    restarts.push(i64::try_from(now.unix_timestamp_nanos()).unwrap_or(i64::MAX));
    Some(restarts)
}

pub(crate) fn new_task(
    service: &Service,
    slot: u64,
    node: Option<&str>,
    now: OffsetDateTime,
    id: String,
    restarts: Vec<i64>,
) -> Task {
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
        running_at: None,
        restarts,
        addresses: Vec::new(),
        endpoint_spec: service.spec.endpoint.clone(),
    }
}

/// Whether `t` was made from `service`'s current spec: its task spec and its
/// endpoint spec (swarmkit's `IsTaskDirty`, negated).
pub(crate) fn of_spec(t: &Task, service: &Service) -> bool {
    t.spec == service.spec.task && t.endpoint_spec == service.spec.endpoint
}

pub(crate) fn shut_down(t: &Task, now: OffsetDateTime) -> Task {
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
        port_status: Vec::new(),
    }
}
