//! What the agent's loops share: the node's assignments, the tasks it runs,
//! the current session's client, the task output.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use swarmkeep_api::control;
use swarmkeep_api::dispatcher::dispatcher_client::DispatcherClient;
use swarmkeep_transport::Upstream;
use tokio::sync::{mpsc, oneshot};
use tonic::transport::Channel;

use crate::assignments::Assignments;
use crate::config::AgentConfig;
use crate::executor::ProcessExecutor;
use crate::logs::LogStore;
use crate::mounts::SecretMount;

/// A task whose process this agent runs; `stop` ends it.
pub(crate) struct LocalTask {
    pub stop: Option<oneshot::Sender<()>>,
}

/// What the agent's loops share.
pub(crate) struct AgentState {
    pub upstream: Arc<dyn Upstream>,
    pub config: AgentConfig,
    pub mounts: Arc<dyn SecretMount>,
    pub executor: ProcessExecutor,
    /// The images this node's tasks run, pulled on first use.
    pub images: Arc<swarmkeep_image::ImageStore>,
    /// What the dispatcher gave this node, in memory only.
    pub assignments: Mutex<Assignments>,
    pub running: Mutex<HashMap<String, LocalTask>>,
    /// Set on daemon shutdown: no task is started any more.
    pub stopping: AtomicBool,
    /// Tasks this run of the agent started: a task is never run twice.
    pub started: Mutex<HashSet<String>>,
    pub status_tx: mpsc::UnboundedSender<(String, control::TaskStatus)>,
    /// The current session's client, for status reports.
    pub client: Mutex<Option<DispatcherClient<Channel>>>,
    /// The output of this node's tasks, in memory only.
    pub logs: Arc<LogStore>,
    /// This node's task containers, as Docker shows them.
    pub containers: crate::containers::Registry,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Stops every running task and forgets the assigned ones.
pub(crate) fn stop_all(state: &AgentState) {
    for t in lock(&state.running).values_mut() {
        if let Some(stop) = t.stop.take() {
            let _ = stop.send(());
        }
    }
    lock(&state.assignments).tasks.clear();
}
