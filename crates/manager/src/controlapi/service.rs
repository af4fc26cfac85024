//! Services: specs checked against the secrets and configs they reference,
//! then written for the leader's orchestrator to turn into tasks; updates
//! and rollbacks start a rollout (`swarmkeep_scheduler::update`).

use swarmkeep_api::control;
use swarmkeep_api::errors::rpc;
use swarmkeep_crypto::{SecretBytes, new_id};
use swarmkeep_store::objects::{Service, ServiceMode, ServiceSpec, TaskState};
use swarmkeep_store::{ClusterState, Command};
use tonic::{Code, Status};

use super::common::new_meta;
use super::convert::*;
use crate::lookup::{matches_filters, resolve};
use crate::state::ManagerState;

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

/// Docker's daemon resolves each network a service attaches to (a name, ID
/// or ID prefix) to the network's ID before the spec is stored.
fn resolve_networks(st: &ClusterState, spec: &mut ServiceSpec) -> Result<(), Status> {
    let mut seen = std::collections::HashSet::new();
    for attachment in &mut spec.task.networks {
        let network = resolve("network", &attachment.target, &st.networks, |n| st.network_by_name(n))?;
        if !seen.insert(network.id.clone()) {
            return Err(rpc(
                Code::InvalidArgument,
                format!("network {} is attached more than once", network.spec.annotations.name),
            ));
        }
        if network.spec.driver == "host" && !attachment.aliases.is_empty() {
            return Err(rpc(
                Code::InvalidArgument,
                "network-scoped aliases are only supported for user-defined networks",
            ));
        }
        attachment.target = network.id.clone();
        // The host's own network sysctls are not a task's to set (runc's
        // words; the agent's shim checks it again).
        if network.spec.driver == "host"
            && let Some(name) = spec.task.sysctls.keys().find(|k| k.starts_with("net."))
        {
            return Err(rpc(
                Code::InvalidArgument,
                format!("sysctl {name:?} is not allowed in the hosts network namespace"),
            ));
        }
    }
    Ok(())
}

pub(super) async fn create_service(
    swarm: &ManagerState,
    spec: Option<control::ServiceSpec>,
    registry_auth: SecretBytes,
) -> Result<control::Service, Status> {
    let mut spec = spec_from_proto(spec)?;
    swarm.store.read(|st| {
        check_references(st, &spec)?;
        resolve_networks(st, &mut spec)
    })?;
    let id = new_id();
    spec.task.sealed_registry_auth = super::registry_auth::seal_new(swarm, &id, registry_auth)?;
    let name = spec.annotations.name.clone();
    let mut service = Service {
        id: id.clone(),
        meta: new_meta(),
        spec,
        previous_spec: None,
        update_status: None,
        endpoint: Default::default(),
    };
    let index = write_with_endpoint(swarm, &mut service, |service| Command::CreateService(service.clone())).await?;
    tracing::info!(%id, %name, index, "service created");
    get_service(swarm, &id).await
}

/// Writes `service` with its endpoint (virtual IPs, published ports)
/// allocated from the state as it is; allocated again if another write took
/// an address meanwhile (the store refuses a taken one).
async fn write_with_endpoint(
    swarm: &ManagerState,
    service: &mut Service,
    command: impl Fn(&Service) -> Command,
) -> Result<u64, Status> {
    let mut attempts = 0;
    loop {
        service.endpoint = swarm.store.read(|st| {
            swarmkeep_scheduler::ipam::service_endpoint(st, &service.id, &service.spec, &service.endpoint)
                .map_err(|e| rpc(Code::InvalidArgument, e))
        })?;
        match swarm.write(command(service)).await {
            Err(e) if e.code() == Code::Aborted && attempts < 3 => attempts += 1,
            other => return other,
        }
    }
}

pub(super) async fn get_service(swarm: &ManagerState, input: &str) -> Result<control::Service, Status> {
    swarm
        .store
        .read(|st| resolve("service", input, &st.services, |n| st.service_by_name(n)).map(service_to_proto))
}

pub(super) async fn list_services(
    swarm: &ManagerState,
    filters: Option<&control::ListFilters>,
) -> control::ListServicesResponse {
    swarm.store.read(|st| {
        let services: Vec<&Service> = st.services.values().filter(|s| matches_filters(*s, filters)).collect();
        let counts = services
            .iter()
            .map(|s| {
                let tasks = st.tasks.values().filter(|t| t.service_id == s.id);
                // A job's run: its tasks of the current spec.
                let wanted = if s.spec.mode.is_job() {
                    TaskState::Complete
                } else {
                    TaskState::Running
                };
                let running = tasks
                    .clone()
                    .filter(|t| t.desired_state == wanted && t.status.state == TaskState::Running)
                    .count() as u64;
                let completed = tasks
                    .clone()
                    .filter(|t| t.spec == s.spec.task && t.status.state == TaskState::Complete)
                    .count() as u64;
                let live = tasks
                    .clone()
                    .filter(|t| t.desired_state == wanted && !t.status.state.is_terminal())
                    .count() as u64;
                let (desired, total) = match s.spec.mode {
                    ServiceMode::Replicated { replicas } => (replicas, 0),
                    ServiceMode::Global => (live, 0),
                    ServiceMode::ReplicatedJob {
                        max_concurrent,
                        total_completions,
                    } => (
                        max_concurrent.min(total_completions.saturating_sub(completed)),
                        total_completions,
                    ),
                    ServiceMode::GlobalJob => (live, live + completed),
                };
                control::ServiceCounts {
                    service_id: s.id.clone(),
                    running,
                    desired,
                    completed,
                    total,
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
pub(super) async fn update_service(
    swarm: &ManagerState,
    input: &str,
    version: Option<control::Version>,
    spec: Option<control::ServiceSpec>,
    rollback: bool,
    registry_auth: SecretBytes,
) -> Result<control::Service, Status> {
    let version = version.ok_or_else(|| rpc(Code::InvalidArgument, "invalid argument"))?;
    let current = swarm
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
        let mut spec = spec_from_proto(spec)?;
        // A stored login stays with its registry: an image moved to another
        // one without a new login goes without it.
        let kept = current.spec.task.sealed_registry_auth.as_ref().filter(|_| {
            swarmkeep_api::registry_auth::registry_of(&current.spec.task.image)
                == swarmkeep_api::registry_auth::registry_of(&spec.task.image)
        });
        spec.task.sealed_registry_auth = super::registry_auth::seal_update(swarm, &current.id, kept, registry_auth)?;
        spec
    };
    let mut spec = spec;
    swarm.store.read(|st| {
        check_references(st, &spec)?;
        resolve_networks(st, &mut spec)
    })?;
    let mut service =
        swarmkeep_scheduler::update::apply_spec(&current, spec, rollback, time::OffsetDateTime::now_utc());
    write_with_endpoint(swarm, &mut service, |service| Command::UpdateService {
        service: service.clone(),
        expected_version: version.index,
    })
    .await?;
    tracing::info!(id = %current.id, "service updated");
    get_service(swarm, &current.id).await
}

pub(super) async fn remove_service(swarm: &ManagerState, input: &str) -> Result<(), Status> {
    let id = swarm
        .store
        .read(|st| resolve("service", input, &st.services, |n| st.service_by_name(n)).map(|s| s.id.clone()))?;
    swarm.write(Command::RemoveService { id: id.clone() }).await?;
    tracing::info!(%id, "service removed");
    Ok(())
}
