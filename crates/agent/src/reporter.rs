//! Task status back to the leader: the latest status per task, sent in
//! batches over the current session's client and retried until taken.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use swarmkeep_api::control;
use swarmkeep_api::dispatcher::{TaskStatusUpdate, UpdateTaskStatusRequest};
use swarmkeep_api::task_state::TaskState;
use swarmkeep_api::timefmt::to_timestamp;
use tokio::sync::mpsc;

use crate::state::{AgentState, lock};

/// A task status as of now.
pub(crate) fn status(
    state: TaskState,
    message: &str,
    err: String,
    exit_code: Option<i32>,
    pid: Option<u32>,
) -> control::TaskStatus {
    control::TaskStatus {
        state: state.as_str().into(),
        timestamp: Some(to_timestamp(time::OffsetDateTime::now_utc())),
        message: message.into(),
        err,
        exit_code,
        pid,
        port_status: Vec::new(),
    }
}

/// Sends task status to the leader, the latest per task, retrying until it
/// is taken.
pub(crate) async fn status_loop(
    agent: Arc<AgentState>,
    mut rx: mpsc::UnboundedReceiver<(String, control::TaskStatus)>,
) {
    let mut pending: BTreeMap<String, control::TaskStatus> = BTreeMap::new();
    loop {
        if pending.is_empty() {
            match rx.recv().await {
                Some((id, s)) => {
                    pending.insert(id, s);
                }
                None => return,
            }
        }
        while let Ok((id, s)) = rx.try_recv() {
            pending.insert(id, s);
        }
        let client = lock(&agent.client).clone();
        let Some(mut client) = client else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let updates = pending
            .iter()
            .map(|(id, s)| TaskStatusUpdate {
                task_id: id.clone(),
                status: Some(s.clone()),
            })
            .collect();
        match client.update_task_status(UpdateTaskStatusRequest { updates }).await {
            Ok(_) => pending.clear(),
            Err(e) => {
                tracing::debug!(error = %e.message(), "reporting task status failed; will retry");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}
