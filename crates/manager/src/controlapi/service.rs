//! Services: specs checked against the secrets and configs they reference,
//! then written for the leader's orchestrator to turn into tasks; updates
//! and rollbacks start a rollout (`swarmkeep_scheduler::update`).

use std::collections::BTreeMap;

use swarmkeep_api::control;
use swarmkeep_api::errors::rpc;
use swarmkeep_crypto::new_id;
use swarmkeep_store::objects::{Service, ServiceMode, ServiceSpec, TaskState};
use swarmkeep_store::{ClusterState, Command};
use tonic::{Code, Status};

use super::common::new_meta;
use super::convert::*;
use crate::lookup::{Listed, matches_filters, resolve};
use crate::state::ManagerState;

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

impl ManagerState {
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
        let service =
            swarmkeep_scheduler::update::apply_spec(&current, spec, rollback, time::OffsetDateTime::now_utc());
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
}
