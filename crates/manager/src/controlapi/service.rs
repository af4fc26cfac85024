//! Services and tasks: specs validated at the door (names, images, secret
//! and config references and their targets), then written for the leader's
//! orchestrator to turn into tasks.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use regex::Regex;
use swarmkeep_api::control;
use swarmkeep_api::errors::rpc;
use swarmkeep_api::targets::effective_target;
use swarmkeep_api::timefmt::{to_datetime, to_timestamp};
use swarmkeep_crypto::new_id;
use swarmkeep_store::objects::{
    FailureAction, FileReference, RestartCondition, RestartPolicy, Service, ServiceMode, ServiceSpec, Task, TaskSpec,
    TaskState, TaskStatus, UpdateConfig, UpdateOrder, UpdateState, UpdateStatus,
};
use swarmkeep_store::{ClusterState, Command};
use tonic::{Code, Status};

use super::common::{
    Listed, annotations_from_proto, annotations_to_proto, matches_filters, meta_to_proto, new_meta, resolve,
};
use crate::ActiveSwarm;
use crate::logbroker::TaskSource;

/// The most replicas one service may ask for: the orchestrator writes a
/// service's new tasks in one raft entry, which must stay a sane size.
pub const MAX_REPLICAS: u64 = 10_000;

/// swarmkit's rule for service names: a DNS name component.
static SERVICE_NAME_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-zA-Z0-9](?:[-_]*[A-Za-z0-9]+)*$").expect("valid regex"));

impl Listed for Service {
    fn id(&self) -> &str {
        &self.id
    }
    fn name(&self) -> &str {
        &self.spec.annotations.name
    }
    fn labels(&self) -> &BTreeMap<String, String> {
        &self.spec.annotations.labels
    }
}

fn refs_to_proto(refs: &[FileReference]) -> Vec<control::FileReference> {
    refs.iter()
        .map(|r| control::FileReference {
            id: r.id.clone(),
            name: r.name.clone(),
            file: Some(control::FileTarget {
                name: r.target.clone(),
                uid: r.uid.clone(),
                gid: r.gid.clone(),
                mode: r.mode,
            }),
        })
        .collect()
}

pub fn task_spec_to_proto(t: &TaskSpec) -> control::TaskSpec {
    control::TaskSpec {
        image: t.image.clone(),
        command: t.command.clone(),
        args: t.args.clone(),
        env: t.env.clone(),
        workdir: t.workdir.clone(),
        user: t.user.clone(),
        secrets: refs_to_proto(&t.secrets),
        configs: refs_to_proto(&t.configs),
        restart: Some(control::RestartPolicy {
            condition: match t.restart.condition {
                RestartCondition::None => "none",
                RestartCondition::OnFailure => "on-failure",
                RestartCondition::Any => "any",
            }
            .into(),
            delay_ns: t.restart.delay_ns,
            max_attempts: t.restart.max_attempts,
        }),
        stop_grace_period_ns: t.stop_grace_period_ns,
        force_update: t.force_update,
    }
}

fn update_config_to_proto(c: &UpdateConfig) -> control::UpdateConfig {
    control::UpdateConfig {
        parallelism: c.parallelism,
        delay_ns: c.delay_ns,
        failure_action: match c.failure_action {
            FailureAction::Pause => "pause",
            FailureAction::Continue => "continue",
            FailureAction::Rollback => "rollback",
        }
        .into(),
        monitor_ns: c.monitor_ns,
        max_failure_ratio: c.max_failure_ratio,
        order: match c.order {
            UpdateOrder::StopFirst => "stop-first",
            UpdateOrder::StartFirst => "start-first",
        }
        .into(),
    }
}

fn update_config_from_proto(kind: &str, c: Option<control::UpdateConfig>) -> Result<UpdateConfig, Status> {
    let Some(c) = c else {
        return Ok(UpdateConfig::default());
    };
    let failure_action = match c.failure_action.as_str() {
        "" | "pause" => FailureAction::Pause,
        "continue" => FailureAction::Continue,
        "rollback" if kind == "UpdateConfig" => FailureAction::Rollback,
        other => {
            return Err(rpc(
                Code::InvalidArgument,
                format!("{kind}: invalid failure action {other:?}"),
            ));
        }
    };
    let order = match c.order.as_str() {
        "" | "stop-first" => UpdateOrder::StopFirst,
        "start-first" => UpdateOrder::StartFirst,
        other => return Err(rpc(Code::InvalidArgument, format!("{kind}: invalid order {other:?}"))),
    };
    if !(0.0..=1.0).contains(&c.max_failure_ratio) {
        return Err(rpc(
            Code::InvalidArgument,
            format!("{kind}: max failure ratio must be between 0 and 1"),
        ));
    }
    Ok(UpdateConfig {
        parallelism: c.parallelism,
        delay_ns: c.delay_ns,
        failure_action,
        monitor_ns: c.monitor_ns,
        max_failure_ratio: c.max_failure_ratio,
        order,
    })
}

fn spec_to_proto(spec: &ServiceSpec) -> control::ServiceSpec {
    let (mode, replicas) = match spec.mode {
        ServiceMode::Replicated { replicas } => ("replicated", replicas),
        ServiceMode::Global => ("global", 0),
    };
    control::ServiceSpec {
        annotations: Some(annotations_to_proto(&spec.annotations)),
        task: Some(task_spec_to_proto(&spec.task)),
        mode: mode.into(),
        replicas,
        update_config: Some(update_config_to_proto(&spec.update_config)),
        rollback_config: Some(update_config_to_proto(&spec.rollback_config)),
    }
}

pub fn service_to_proto(s: &Service) -> control::Service {
    control::Service {
        id: s.id.clone(),
        meta: Some(meta_to_proto(&s.meta)),
        spec: Some(spec_to_proto(&s.spec)),
        previous_spec: s.previous_spec.as_ref().map(spec_to_proto),
        update_status: s.update_status.as_ref().map(|u| control::UpdateStatus {
            state: u.state.as_str().into(),
            started_at: Some(to_timestamp(u.started_at)),
            completed_at: u.completed_at.map(to_timestamp),
            message: u.message.clone(),
        }),
    }
}

pub fn status_to_proto(s: &TaskStatus) -> control::TaskStatus {
    control::TaskStatus {
        state: s.state.as_str().into(),
        timestamp: Some(to_timestamp(s.timestamp)),
        message: s.message.clone(),
        err: s.err.clone(),
        exit_code: s.exit_code,
        pid: s.pid,
    }
}

pub fn task_to_proto(t: &Task) -> control::Task {
    control::Task {
        id: t.id.clone(),
        meta: Some(meta_to_proto(&t.meta)),
        service_id: t.service_id.clone(),
        service_name: t.service_name.clone(),
        slot: t.slot,
        node_id: t.node_id.clone().unwrap_or_default(),
        spec: Some(task_spec_to_proto(&t.spec)),
        desired_state: t.desired_state.as_str().into(),
        status: Some(status_to_proto(&t.status)),
    }
}

/// A status as an agent reported it; the state must be one an agent reaches.
pub fn status_from_proto(s: control::TaskStatus) -> Result<TaskStatus, Status> {
    let state = TaskState::parse(&s.state)
        .filter(|st| *st >= TaskState::Accepted)
        .ok_or_else(|| rpc(Code::InvalidArgument, format!("invalid task state {:?}", s.state)))?;
    Ok(TaskStatus {
        state,
        timestamp: s
            .timestamp
            .as_ref()
            .map(|t| to_datetime(Some(t)))
            .unwrap_or_else(time::OffsetDateTime::now_utc),
        message: s.message,
        err: s.err,
        exit_code: s.exit_code,
        pid: s.pid,
    })
}

fn refs_from_proto(
    kind: &str,
    refs: Vec<control::FileReference>,
    secret: bool,
    seen: &mut HashMap<String, String>,
) -> Result<Vec<FileReference>, Status> {
    let mut out = Vec::with_capacity(refs.len());
    for r in refs {
        let file = r.file.ok_or_else(|| {
            rpc(
                Code::InvalidArgument,
                format!("malformed {kind} reference, no target provided"),
            )
        })?;
        if file.name.is_empty() {
            return Err(rpc(
                Code::InvalidArgument,
                format!("malformed file {kind} reference, invalid target file name provided"),
            ));
        }
        let path = effective_target(&file.name, secret).map_err(|e| rpc(Code::InvalidArgument, e))?;
        if let Some(prev) = seen.insert(path.clone(), r.name.clone()) {
            return Err(rpc(
                Code::InvalidArgument,
                format!(
                    "{kind} references '{prev}' and '{}' have a conflicting target: '{}'",
                    r.name, file.name
                ),
            ));
        }
        let uid = if file.uid.is_empty() { "0".to_string() } else { file.uid };
        let gid = if file.gid.is_empty() { "0".to_string() } else { file.gid };
        for (what, v) in [("uid", &uid), ("gid", &gid)] {
            if v.parse::<u32>().is_err() {
                return Err(rpc(
                    Code::InvalidArgument,
                    format!("invalid {what} {v:?}: must be a number"),
                ));
            }
        }
        if file.mode > 0o7777 {
            return Err(rpc(Code::InvalidArgument, format!("invalid file mode {:o}", file.mode)));
        }
        out.push(FileReference {
            id: r.id,
            name: r.name,
            target: file.name,
            uid,
            gid,
            mode: file.mode,
        });
    }
    Ok(out)
}

fn spec_from_proto(spec: Option<control::ServiceSpec>) -> Result<ServiceSpec, Status> {
    let spec = spec.ok_or_else(|| rpc(Code::InvalidArgument, "invalid argument"))?;
    let mut annotations = annotations_from_proto(spec.annotations);
    if annotations.name.is_empty() {
        // As Docker: a service created without a name gets a random one.
        annotations.name = swarmkeep_scheduler::random_service_name();
    }
    if annotations.name.len() > 63 || !SERVICE_NAME_RE.is_match(&annotations.name) {
        return Err(rpc(Code::InvalidArgument, "name must be valid as a DNS name component"));
    }
    let task = spec.task.unwrap_or_default();
    if task.image.is_empty() {
        return Err(rpc(
            Code::InvalidArgument,
            "ContainerSpec: image reference must be provided",
        ));
    }
    let mut seen = HashMap::new();
    let secrets = refs_from_proto("secret", task.secrets, true, &mut seen)?;
    let configs = refs_from_proto("config", task.configs, false, &mut seen)?;
    let restart = match task.restart {
        None => RestartPolicy::default(),
        Some(r) => RestartPolicy {
            condition: match r.condition.as_str() {
                "" | "any" => RestartCondition::Any,
                "on-failure" => RestartCondition::OnFailure,
                "none" => RestartCondition::None,
                other => {
                    return Err(rpc(
                        Code::InvalidArgument,
                        format!("invalid restart condition {other:?}"),
                    ));
                }
            },
            delay_ns: r.delay_ns,
            max_attempts: r.max_attempts,
        },
    };
    let mode = match spec.mode.as_str() {
        "" | "replicated" if spec.replicas > MAX_REPLICAS => {
            return Err(rpc(
                Code::InvalidArgument,
                format!("replicas must be at most {MAX_REPLICAS}"),
            ));
        }
        "" | "replicated" => ServiceMode::Replicated {
            replicas: spec.replicas,
        },
        "global" => ServiceMode::Global,
        other => return Err(rpc(Code::InvalidArgument, format!("invalid service mode {other:?}"))),
    };
    let update_config = update_config_from_proto("UpdateConfig", spec.update_config)?;
    let rollback_config = update_config_from_proto("RollbackConfig", spec.rollback_config)?;
    Ok(ServiceSpec {
        annotations,
        task: TaskSpec {
            image: task.image,
            command: task.command,
            args: task.args,
            env: task.env,
            workdir: task.workdir,
            user: task.user,
            secrets,
            configs,
            restart,
            stop_grace_period_ns: if task.stop_grace_period_ns == 0 {
                10_000_000_000
            } else {
                task.stop_grace_period_ns
            },
            force_update: task.force_update,
        },
        mode,
        update_config,
        rollback_config,
    })
}

/// swarmkit's existence check: every reference must name an existing object
/// by ID, under its current name.
fn check_references(st: &ClusterState, spec: &ServiceSpec) -> Result<(), Status> {
    for (kind, refs, secret) in [
        ("secret", &spec.task.secrets, true),
        ("config", &spec.task.configs, false),
    ] {
        let missing: Vec<&str> = refs
            .iter()
            .filter(|r| {
                let name = if secret {
                    st.secrets.get(&r.id).map(|s| &s.annotations.name)
                } else {
                    st.configs.get(&r.id).map(|c| &c.annotations.name)
                };
                name != Some(&r.name)
            })
            .map(|r| r.name.as_str())
            .collect();
        if !missing.is_empty() {
            let plural = if missing.len() > 1 { "s" } else { "" };
            return Err(rpc(
                Code::InvalidArgument,
                format!("{kind}{plural} not found: {}", missing.join(", ")),
            ));
        }
    }
    Ok(())
}

impl ActiveSwarm {
    pub async fn create_service(&self, spec: Option<control::ServiceSpec>) -> Result<control::Service, Status> {
        let spec = spec_from_proto(spec)?;
        self.store.read(|st| check_references(st, &spec))?;
        let id = new_id();
        let name = spec.annotations.name.clone();
        let service = Service {
            id: id.clone(),
            meta: new_meta(),
            spec,
            previous_spec: None,
            update_status: None,
        };
        let index = self.write(Command::CreateService(service)).await?;
        tracing::info!(%id, %name, index, "service created");
        self.get_service(&id).await
    }

    pub async fn get_service(&self, input: &str) -> Result<control::Service, Status> {
        self.store
            .read(|st| resolve("service", input, &st.services, |n| st.service_by_name(n)).map(service_to_proto))
    }

    pub async fn list_services(&self, filters: Option<&control::ListFilters>) -> control::ListServicesResponse {
        self.store.read(|st| {
            let services: Vec<&Service> = st.services.values().filter(|s| matches_filters(*s, filters)).collect();
            let counts = services
                .iter()
                .map(|s| {
                    let tasks = st.tasks.values().filter(|t| t.service_id == s.id);
                    let running = tasks
                        .clone()
                        .filter(|t| t.desired_state == TaskState::Running && t.status.state == TaskState::Running)
                        .count() as u64;
                    let desired = match s.spec.mode {
                        ServiceMode::Replicated { replicas } => replicas,
                        ServiceMode::Global => tasks.filter(|t| t.desired_state == TaskState::Running).count() as u64,
                    };
                    control::ServiceCounts {
                        service_id: s.id.clone(),
                        running,
                        desired,
                    }
                })
                .collect();
            control::ListServicesResponse {
                services: services.into_iter().map(service_to_proto).collect(),
                counts,
            }
        })
    }

    /// Docker's service update: the whole spec replaces the current one, which
    /// becomes the previous spec; with `rollback` the previous spec comes back
    /// (and the current one becomes the previous, as in swarmkit).
    pub async fn update_service(
        &self,
        input: &str,
        version: Option<control::Version>,
        spec: Option<control::ServiceSpec>,
        rollback: bool,
    ) -> Result<control::Service, Status> {
        let version = version.ok_or_else(|| rpc(Code::InvalidArgument, "invalid argument"))?;
        let current = self
            .store
            .read(|st| resolve("service", input, &st.services, |n| st.service_by_name(n)).cloned())?;
        let spec = if rollback {
            current.previous_spec.clone().ok_or_else(|| {
                rpc(
                    Code::FailedPrecondition,
                    format!("service {} does not have a previous spec", current.id),
                )
            })?
        } else {
            spec_from_proto(spec)?
        };
        self.store.read(|st| check_references(st, &spec))?;
        let mut service = current.clone();
        let now = time::OffsetDateTime::now_utc();
        if spec.task != current.spec.task {
            // The tasks will be replaced: Docker's UpdateStatus follows it
            // (the orchestrator completes it once the new tasks run).
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
        self.write(Command::UpdateService {
            service,
            expected_version: version.index,
        })
        .await?;
        tracing::info!(id = %current.id, "service updated");
        self.get_service(&current.id).await
    }

    pub async fn remove_service(&self, input: &str) -> Result<(), Status> {
        let id = self
            .store
            .read(|st| resolve("service", input, &st.services, |n| st.service_by_name(n)).map(|s| s.id.clone()))?;
        self.write(Command::RemoveService { id: id.clone() }).await?;
        tracing::info!(%id, "service removed");
        Ok(())
    }

    pub async fn list_tasks(&self, req: &control::ListTasksRequest) -> Vec<control::Task> {
        self.store.read(|st| {
            st.tasks
                .values()
                .filter(|t| req.service_ids.is_empty() || req.service_ids.contains(&t.service_id))
                .filter(|t| req.node_ids.is_empty() || t.node_id.as_ref().is_some_and(|n| req.node_ids.contains(n)))
                .filter(|t| {
                    req.desired_states.is_empty() || req.desired_states.iter().any(|d| d == t.desired_state.as_str())
                })
                .filter(|t| req.id_prefixes.is_empty() || req.id_prefixes.iter().any(|p| t.id.starts_with(p)))
                .map(task_to_proto)
                .collect()
        })
    }

    /// Where the tasks of `service logs` ran: one task, or every task of a
    /// service (its history included) that was placed on a node.
    pub fn log_sources(&self, req: &control::ServiceLogsRequest) -> Result<Vec<TaskSource>, Status> {
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
    ) -> Result<super::LogStream, Status> {
        let swarm = self;
        swarm.read_barrier().await?;
        let sources = swarm.log_sources(&req)?;
        let mut known: std::collections::HashSet<String> = sources.iter().map(|t| t.task_id.clone()).collect();
        let (id, rx) = swarm.logs.subscribe(
            sources,
            crate::logbroker::LogOptions {
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
                let mut changes = swarm.store.changes();
                while swarm.logs.is_open(&id) {
                    tokio::select! {
                        changed = changes.changed() => if changed.is_err() {
                            swarm.logs.fail(&id, Status::unavailable("this manager is shutting down"));
                            return;
                        },
                        _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
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

    pub async fn get_task(&self, input: &str) -> Result<control::Task, Status> {
        self.store.read(|st| {
            st.tasks
                .get(input)
                .map(task_to_proto)
                .ok_or_else(|| swarmkeep_api::errors::plain(Code::NotFound, format!("task {input} not found")))
        })
    }
}
