//! Tasks: listed and inspected as the orchestrator and the agents left them.

use swarmkeep_api::control;
use tonic::{Code, Status};

use super::convert::*;
use crate::state::ManagerState;

pub(super) async fn list_tasks(swarm: &ManagerState, req: &control::ListTasksRequest) -> Vec<control::Task> {
    swarm.store.read(|st| {
        st.tasks
            .values()
            .filter(|t| req.service_ids.is_empty() || req.service_ids.contains(&t.service_id))
            .filter(|t| req.node_ids.is_empty() || t.node_id.as_ref().is_some_and(|n| req.node_ids.contains(n)))
            .filter(|t| {
                req.desired_states.is_empty() || req.desired_states.iter().any(|d| d == t.desired_state.as_str())
            })
            .filter(|t| req.id_prefixes.is_empty() || req.id_prefixes.iter().any(|p| t.id.starts_with(p)))
            .map(|t| task_to_proto(st, t))
            .collect()
    })
}

pub(super) async fn get_task(swarm: &ManagerState, input: &str) -> Result<control::Task, Status> {
    swarm.store.read(|st| {
        st.tasks
            .get(input)
            .map(|t| task_to_proto(st, t))
            .ok_or_else(|| swarmkeep_api::errors::plain(Code::NotFound, format!("task {input} not found")))
    })
}
