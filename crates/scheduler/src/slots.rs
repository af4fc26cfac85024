//! What the orchestrator and the rollout both speak of: a service's slots,
//! tasks still stopping, and durations.

use std::collections::BTreeSet;

use swarmkeep_store::objects::{Task, TaskState};
use time::OffsetDateTime;

/// A replica slot of a replicated service, or a node of a global one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum SlotKey<'a> {
    Replica(u64),
    Node(&'a str),
}

/// How long a replacement waits for the task it replaces to stop (stop-first),
/// as swarmkit's `defaultOldTaskTimeout`.
const OLD_TASK_TIMEOUT: time::Duration = time::Duration::minutes(1);

/// A task told to stop that has not yet, on a node that is up (for at most
/// a minute): stop-first waits for it before starting its replacement.
pub(crate) fn stopping(t: &Task, ready: &BTreeSet<&str>, now: OffsetDateTime) -> bool {
    t.desired_state > TaskState::Running
        && !t.status.state.is_terminal()
        && t.node_id.as_deref().is_some_and(|n| ready.contains(n))
        && now < t.meta.updated_at + OLD_TASK_TIMEOUT
}

pub(crate) fn nanos(ns: u64) -> time::Duration {
    time::Duration::nanoseconds(i64::try_from(ns).unwrap_or(i64::MAX))
}
