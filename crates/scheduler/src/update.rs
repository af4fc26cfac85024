//! Rollouts: what a spec change starts (Docker's `UpdateStatus`), and how
//! the tasks of a changed spec replace the old ones, as swarmkit's
//! `orchestrator/update` does it.

use std::collections::{BTreeMap, BTreeSet};

use swarmkeep_store::Command;
use swarmkeep_store::objects::{
    FailureAction, Service, ServiceSpec, Task, TaskState, UpdateConfig, UpdateOrder, UpdateState, UpdateStatus,
};
use time::OffsetDateTime;

use crate::slots::{SlotKey, nanos, stopping};
use crate::tasks::of_spec;

/// `service` with `spec` in place of its current spec, which becomes the
/// previous one (a rollback passes the previous spec back). When the task
/// spec changes, the tasks will be replaced and Docker's `UpdateStatus`
/// starts (`updating`, or `rollback_started` for a rollback) and [`plan`]
/// carries it out; another update of a paused one resumes it.
pub fn apply_spec(current: &Service, spec: ServiceSpec, rollback: bool, now: OffsetDateTime) -> Service {
    let mut service = current.clone();
    // Another update of a paused one resumes it, as with Docker.
    let paused = current
        .update_status
        .as_ref()
        .is_some_and(|s| matches!(s.state, UpdateState::Paused | UpdateState::RollbackPaused));
    if spec.task != current.spec.task || spec.endpoint != current.spec.endpoint || paused {
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

/// What a service's rollout allows this pass, and the change it makes to the
/// service (completed, paused, rolled back), if any.
pub(crate) struct Rollout<'a> {
    /// Slots whose task of an older spec may be replaced now.
    pub(crate) may_replace: BTreeSet<SlotKey<'a>>,
    pub(crate) start_first: bool,
    pub(crate) change: Option<Command>,
}

/// swarmkit's updater, judged afresh from the state each pass: the slots
/// still running an older spec are replaced `parallelism` at a time (0: all
/// at once), a slot staying busy until its new task runs (or fails) and
/// `delay` has passed; new tasks that fail within `monitor` of running count
/// as failures, and once their share of the slots exceeds
/// `max_failure_ratio` the `failure_action` is taken; the update completes
/// when no slot is left to replace and the last one has been watched for
/// `delay` + `monitor`.
pub(crate) fn plan<'a>(
    service: &Service,
    wanted: &[SlotKey<'a>],
    slots: &BTreeMap<SlotKey<'a>, Vec<&'a Task>>,
    ready: &BTreeSet<&str>,
    now: OffsetDateTime,
) -> Rollout<'a> {
    let live = |t: &Task| t.desired_state <= TaskState::Running && !t.status.state.is_terminal();
    let history = |key: &SlotKey<'a>| slots.get(key).map(Vec::as_slice).unwrap_or_default();
    let dirty: Vec<SlotKey<'a>> = wanted
        .iter()
        .filter(|k| history(k).iter().any(|t| live(t) && !of_spec(t, service)))
        .copied()
        .collect();
    let all_at_once = |config: &UpdateConfig| Rollout {
        may_replace: dirty.iter().copied().collect(),
        start_first: config.order == UpdateOrder::StartFirst,
        change: None,
    };
    let Some(status) = service.update_status.as_ref() else {
        return all_at_once(&service.spec.update_config);
    };
    let (config, rolling_back) = match status.state {
        UpdateState::Updating => (&service.spec.update_config, false),
        UpdateState::RollbackStarted => (&service.spec.rollback_config, true),
        UpdateState::Paused | UpdateState::RollbackPaused => {
            return Rollout {
                may_replace: BTreeSet::new(),
                start_first: service.spec.update_config.order == UpdateOrder::StartFirst,
                change: None,
            };
        }
        UpdateState::Completed | UpdateState::RollbackCompleted => return all_at_once(&service.spec.update_config),
    };
    let hold = |change| Rollout {
        may_replace: BTreeSet::new(),
        start_first: config.order == UpdateOrder::StartFirst,
        change: Some(change),
    };
    let delay = nanos(config.delay_ns);
    let monitor = nanos(config.monitor_ns);
    // The tasks this rollout made.
    let ours = |t: &Task| of_spec(t, service) && t.meta.created_at >= status.started_at;

    // The task the rollout made for each slot (later ones are restarts).
    let replacement = |tasks: &[&'a Task]| -> Option<&'a Task> {
        tasks
            .iter()
            .copied()
            .filter(|t| ours(t))
            .min_by_key(|t| t.meta.created_at)
    };
    if config.failure_action != FailureAction::Continue {
        let failed: Vec<&Task> = slots
            .values()
            .filter_map(|tasks| replacement(tasks))
            .filter(|t| {
                matches!(
                    t.status.state,
                    TaskState::Complete | TaskState::Failed | TaskState::Rejected
                ) && t.running_at.is_none_or(|at| t.status.timestamp <= at + monitor)
            })
            .collect();
        let ratio = failed.len() as f32 / wanted.len().max(1) as f32;
        if let Some(last) = failed.iter().max_by_key(|t| (t.status.timestamp, &t.id))
            && ratio > config.max_failure_ratio
        {
            return hold(failure_action(
                service,
                config.failure_action,
                rolling_back,
                &last.id,
                now,
            ));
        }
    }

    // When a task of this rollout settled: running, or finished.
    let settled = |t: &Task| match t.status.state {
        TaskState::Running => Some(t.running_at.unwrap_or(t.status.timestamp)),
        s if s.is_terminal() => Some(t.status.timestamp),
        _ => None,
    };
    let mut busy = 0usize;
    let mut last_settled: Option<OffsetDateTime> = None;
    let mut candidates = Vec::new();
    for key in wanted {
        let tasks = history(key);
        let replacement = replacement(tasks);
        let in_flight = match replacement {
            Some(t) => match settled(t) {
                Some(at) => {
                    last_settled = last_settled.max(Some(at));
                    now < at + delay
                }
                None => t.desired_state <= TaskState::Running,
            },
            // Stop-first: the old task stopped by this rollout, its
            // replacement not made yet (it waits for the stop).
            None => tasks.iter().any(|t| {
                !of_spec(t, service)
                    && t.desired_state > TaskState::Running
                    && t.meta.updated_at >= status.started_at
                    && (stopping(t, ready, now) || t.status.state.is_terminal())
            }),
        };
        if in_flight {
            busy += 1;
        } else if dirty.contains(key) && replacement.is_none() {
            candidates.push(*key);
        }
    }
    let free = match config.parallelism {
        0 => usize::MAX,
        n => usize::try_from(n).unwrap_or(usize::MAX).saturating_sub(busy),
    };
    let watched = last_settled.is_none_or(|at| at + delay + monitor <= now);
    // Every slot has its task of the spec (running, or ended as its restart
    // policy leaves it).
    let filled = wanted.iter().all(|k| {
        history(k)
            .iter()
            .any(|t| of_spec(t, service) && t.desired_state == TaskState::Running)
    });
    let change = (dirty.is_empty() && busy == 0 && watched && filled).then(|| Command::CompleteServiceUpdate {
        id: service.id.clone(),
        started_at: status.started_at,
        completed_at: now,
    });
    Rollout {
        may_replace: candidates.into_iter().take(free).collect(),
        start_first: config.order == UpdateOrder::StartFirst,
        change,
    }
}

/// What a failed rollout does, in swarmkit's words: pause (a failing
/// rollback pauses too), or go back to the previous spec under its
/// rollback config.
fn failure_action(
    service: &Service,
    action: FailureAction,
    rolling_back: bool,
    task: &str,
    now: OffsetDateTime,
) -> Command {
    let mut changed = service.clone();
    changed.meta.updated_at = now;
    let status = match (action, rolling_back, changed.previous_spec.take()) {
        (FailureAction::Rollback, false, Some(previous)) => {
            changed.spec = previous;
            UpdateStatus {
                state: UpdateState::RollbackStarted,
                started_at: now,
                completed_at: None,
                message: format!("update rolled back due to failure or early termination of task {task}"),
            }
        }
        (_, _, previous) => {
            changed.previous_spec = previous;
            let (state, message) = match (action, rolling_back) {
                (FailureAction::Rollback, true) => (
                    UpdateState::RollbackPaused,
                    format!("rollback paused due to failure or early termination of task {task}"),
                ),
                (_, true) => (
                    UpdateState::RollbackPaused,
                    format!("update paused due to failure or early termination of task {task}"),
                ),
                (_, false) => (
                    UpdateState::Paused,
                    format!("update paused due to failure or early termination of task {task}"),
                ),
            };
            UpdateStatus {
                state,
                started_at: service.update_status.as_ref().map_or(now, |s| s.started_at),
                completed_at: None,
                message,
            }
        }
    };
    changed.update_status = Some(status);
    Command::UpdateService {
        expected_version: service.meta.version,
        service: changed,
    }
}
