//! Rollouts: what a spec change starts (Docker's `UpdateStatus`) and when an
//! update or rollback is done, as swarmkit's `orchestrator/update` judges it.

use swarmkeep_store::ClusterState;
use swarmkeep_store::objects::{Service, ServiceMode, ServiceSpec, Task, TaskState, UpdateState, UpdateStatus};
use time::OffsetDateTime;

/// `service` with `spec` in place of its current spec, which becomes the
/// previous one (a rollback passes the previous spec back). When the task
/// spec changes, the tasks will be replaced and Docker's `UpdateStatus`
/// starts (`updating`, or `rollback_started` for a rollback); the
/// orchestrator completes it once the new tasks ran for the monitor period.
pub fn apply_spec(current: &Service, spec: ServiceSpec, rollback: bool, now: OffsetDateTime) -> Service {
    let mut service = current.clone();
    if spec.task != current.spec.task {
        let (state, message) = if rollback {
            (UpdateState::RollbackStarted, "manually requested rollback")
        } else {
            (UpdateState::Updating, "update in progress")
        };
        service.update_status = Some(UpdateStatus {
            state,
            started_at: now,
            completed_at: None,
            message: message.into(),
        });
    }
    service.previous_spec = Some(std::mem::replace(&mut service.spec, spec));
    service.meta.updated_at = now;
    service
}

/// Whether a service's update (or rollback) is done, as swarmkit's updater
/// judges it: no task of an older spec still runs, and every task wanted has
/// run the current spec for the monitor period.
pub(crate) fn converged(state: &ClusterState, service: &Service, now: OffsetDateTime) -> bool {
    let monitor_ns = match service.update_status.as_ref().map(|u| u.state) {
        Some(UpdateState::Updating) => service.spec.update_config.monitor_ns,
        Some(UpdateState::RollbackStarted) => service.spec.rollback_config.monitor_ns,
        _ => return false,
    };
    let monitor = time::Duration::nanoseconds(i64::try_from(monitor_ns).unwrap_or(i64::MAX));
    let tasks: Vec<&Task> = state.tasks.values().filter(|t| t.service_id == service.id).collect();
    if tasks
        .iter()
        .any(|t| t.spec != service.spec.task && !t.status.state.is_terminal())
    {
        return false;
    }
    let wanted: Vec<&&Task> = tasks.iter().filter(|t| t.desired_state == TaskState::Running).collect();
    // Running for the monitor period, or done (a task that finished as its
    // restart policy allows is not waited for).
    let stable = wanted
        .iter()
        .filter(|t| {
            t.status.state == TaskState::Complete
                || (t.status.state == TaskState::Running
                    && t.status.timestamp.checked_add(monitor).is_some_and(|at| at <= now))
        })
        .count();
    match service.spec.mode {
        ServiceMode::Replicated { replicas } => stable as u64 == replicas && wanted.len() as u64 == replicas,
        ServiceMode::Global => stable == wanted.len(),
    }
}
