//! `service logs` on the leader: which tasks the call asks for, a
//! subscription to the agents that ran them, and — when following — the
//! tasks of the service placed later joining in.

use swarmkeep_api::control;
use swarmkeep_store::objects::Task;
use tonic::{Code, Status};

use crate::logbroker::{LogOptions, TaskSource};
use crate::lookup::resolve;
use crate::state::ManagerState;

/// What a `service logs` call streams back.
pub type LogStream = std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<control::LogMessage, Status>> + Send>>;

impl ManagerState {
    /// Where the tasks of `service logs` ran: one task, or every task of a
    /// service (its history included) that was placed on a node.
    fn log_sources(&self, req: &control::ServiceLogsRequest) -> Result<Vec<TaskSource>, Status> {
        self.store.read(|st| {
            let tasks: Vec<&Task> = if !req.task.is_empty() {
                let task = st.tasks.get(&req.task).ok_or_else(|| {
                    swarmkeep_api::errors::plain(Code::NotFound, format!("task {} not found", req.task))
                })?;
                vec![task]
            } else {
                let service = resolve("service", &req.service, &st.services, |n| st.service_by_name(n))?;
                st.tasks.values().filter(|t| t.service_id == service.id).collect()
            };
            Ok(tasks
                .into_iter()
                .filter_map(|t| {
                    Some(TaskSource {
                        task_id: t.id.clone(),
                        node_id: t.node_id.clone()?,
                        service_id: t.service_id.clone(),
                    })
                })
                .collect())
        })
    }

    /// `service logs` on the leader: a subscription to the agents of the
    /// tasks asked for (see crate::logbroker).
    pub async fn service_logs(
        self: &std::sync::Arc<Self>,
        req: control::ServiceLogsRequest,
    ) -> Result<LogStream, Status> {
        let swarm = self;
        swarm.read_barrier().await?;
        let sources = swarm.log_sources(&req)?;
        let mut known: std::collections::HashSet<String> = sources.iter().map(|t| t.task_id.clone()).collect();
        let (id, rx) = swarm.logs.subscribe(
            sources,
            LogOptions {
                follow: req.follow,
                tail: req.has_tail.then_some(req.tail),
                since_ns: req.since_ns,
            },
        )?;
        if req.follow {
            // Following: the tasks of the service placed from now on join in;
            // the stream ends with an error if this manager stops leading or
            // the service goes away.
            let swarm = swarm.clone();
            tokio::spawn(async move {
                let (mut assignments, mut leadership) = (swarm.store.assignment_changes(), swarm.store.leadership());
                while swarm.logs.is_open(&id) {
                    let changed = tokio::select! {
                        changed = assignments.changed() => changed,
                        changed = leadership.changed() => changed,
                        _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => Ok(()),
                    };
                    if changed.is_err() {
                        swarm
                            .logs
                            .fail(&id, Status::unavailable("this manager is shutting down"));
                        return;
                    }
                    if !swarm.store.is_leader() {
                        let leader = swarm.store.leader_addr().unwrap_or_default();
                        swarm.logs.fail(
                            &id,
                            Status::unavailable(format!("this manager is no longer the leader ({leader} is)")),
                        );
                        return;
                    }
                    if !req.task.is_empty() {
                        continue;
                    }
                    let now = match swarm.log_sources(&req) {
                        Ok(now) => now,
                        Err(e) => {
                            swarm.logs.fail(&id, e);
                            return;
                        }
                    };
                    let new: Vec<_> = now.into_iter().filter(|t| known.insert(t.task_id.clone())).collect();
                    if !new.is_empty() && !swarm.logs.extend(&id, new) {
                        return;
                    }
                }
            });
        }
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }
}
