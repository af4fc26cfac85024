//! `/tasks`: list with dockerd's filters (`service` and `node` by ID or
//! name, `desired-state`, `id`, `name`, `label`, and the CLI's internal
//! `_up-to-date`) and inspect.

use std::collections::HashMap;

use swarmkeep_api::control::control_server::Control;
use swarmkeep_api::control::{
    GetNodeRequest, GetServiceRequest, GetTaskRequest, ListServicesRequest, ListTasksRequest, Task, TaskSpec,
};
use swarmkeep_api::engine;

use super::{Api, call};
use crate::error::{ApiError, ApiResult};
use crate::exchange::{Reply, Req};
use crate::filters::Filters;

/// A task's name as Docker shows it: `service.slot`, or `service.node` for a
/// global service's task.
fn task_name(t: &Task) -> String {
    if t.slot > 0 {
        format!("{}.{}", t.service_name, t.slot)
    } else {
        format!("{}.{}", t.service_name, t.node_id)
    }
}

impl<C: Control> Api<C> {
    pub async fn tasks_list(&self, req: &Req) -> ApiResult<Reply> {
        let filters = Filters::parse(req.query("filters"))?;
        filters.allow(&["id", "name", "label", "service", "node", "desired-state", "_up-to-date"])?;
        let mut service_ids = Vec::new();
        for s in filters.get("service") {
            let service = call!(self, get_service, GetServiceRequest { id: s.clone() })?;
            service_ids.extend(service.service.map(|s| s.id));
        }
        let mut node_ids = Vec::new();
        for n in filters.get("node") {
            let node = call!(self, get_node, GetNodeRequest { id: n.clone() })?;
            node_ids.extend(node.node.map(|n| n.id));
        }
        for d in filters.get("desired-state") {
            if !matches!(d.as_str(), "running" | "shutdown" | "accepted") {
                return Err(ApiError::bad_request(format!(
                    "Invalid desired-state filter: '{d}'. Valid values are running, shutdown and accepted"
                )));
            }
        }
        let tasks = call!(
            self,
            list_tasks,
            ListTasksRequest {
                service_ids,
                node_ids,
                desired_states: filters.get("desired-state").to_vec(),
                id_prefixes: filters.get("id").to_vec(),
            }
        )?
        .tasks;
        let labels = filters.labels("label");
        let up_to_date = filters.contains("_up-to-date");
        let services: HashMap<String, swarmkeep_api::control::ServiceSpec> = if up_to_date || !labels.is_empty() {
            call!(self, list_services, ListServicesRequest { filters: None })?
                .services
                .into_iter()
                .map(|s| (s.id, s.spec.unwrap_or_default()))
                .collect()
        } else {
            HashMap::new()
        };
        // `_up-to-date`: tasks made from their service's current spec, which
        // is what the CLI's progress display counts during an update.
        let current: Option<HashMap<&str, Option<&TaskSpec>>> = up_to_date.then(|| {
            services
                .iter()
                .map(|(id, spec)| (id.as_str(), spec.task.as_ref()))
                .collect()
        });
        // `label`: a task's labels are its service's (swarmkit matches the
        // service annotations a task carries), as `docker stack ps` asks.
        let labelled = |t: &Task| {
            labels.is_empty()
                || services
                    .get(&t.service_id)
                    .and_then(|spec| spec.annotations.as_ref())
                    .is_some_and(|a| crate::filters::labels_match(&a.labels, &labels))
        };
        let names = filters.get("name");
        let out: Vec<serde_json::Value> = tasks
            .iter()
            .filter(|t| names.is_empty() || names.contains(&task_name(t)))
            .filter(|t| {
                current.as_ref().is_none_or(|c| {
                    c.get(t.service_id.as_str())
                        .is_some_and(|spec| *spec == t.spec.as_ref())
                })
            })
            .filter(|t| labelled(t))
            .map(engine::task_json)
            .collect();
        Ok(Reply::Json(200, out.into()))
    }

    pub async fn task_inspect(&self, id: &str) -> ApiResult<Reply> {
        let task = call!(self, get_task, GetTaskRequest { id: id.into() })?
            .task
            .unwrap_or_default();
        Ok(Reply::Json(200, engine::task_json(&task)))
    }
}
