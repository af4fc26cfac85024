//! The control API (gRPC), one file per object as in swarmkit's
//! `manager/controlapi`. Every call but `Init` and `Info` needs this node to
//! be a manager of a swarm.

pub mod common;
mod config;
pub mod convert;
mod network;
mod node;
pub(crate) mod registry_auth;
mod sandbox;
mod secret;
pub mod service;
mod swarm;
mod task;

pub use config::MAX_CONFIG_SIZE;
pub use secret::MAX_SECRET_SIZE;

use std::sync::Arc;

use swarmkeep_api::control::control_server::Control;
use swarmkeep_api::control::*;
use tonic::{Code, Request, Response, Status};

use crate::SwarmNode;

/// Moves a secret spec's payload into a `SecretBytes` (zeroized however the
/// call ends), leaving the spec without data.
fn take_payload(spec: Option<SecretSpec>) -> (Option<SecretSpec>, swarmkeep_crypto::SecretBytes) {
    match spec {
        Some(mut spec) => {
            let data = swarmkeep_crypto::SecretBytes::new(std::mem::take(&mut spec.data));
            (Some(spec), data)
        }
        None => (None, swarmkeep_crypto::SecretBytes::new(Vec::new())),
    }
}

pub struct ControlService {
    manager: Arc<SwarmNode>,
}

impl ControlService {
    pub fn new(manager: Arc<SwarmNode>) -> Self {
        Self { manager }
    }
}

pub use crate::logs::LogStream;

/// `Events`' answer: control events as this manager applies them.
pub type EventStream =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<swarmkeep_api::control::Event, Status>> + Send>>;

fn event_to_proto(e: swarmkeep_store::events::Event) -> swarmkeep_api::control::Event {
    swarmkeep_api::control::Event {
        r#type: e.kind.as_str().into(),
        action: e.action.as_str().into(),
        id: e.id,
        attributes: e.attributes.into_iter().collect(),
        time_ns: i64::try_from(e.time.unix_timestamp_nanos()).unwrap_or(i64::MAX),
    }
}

#[tonic::async_trait]
impl Control for ControlService {
    type ServiceLogsStream = LogStream;
    type EventsStream = EventStream;

    /// Served by every manager from what it applies itself (each applies
    /// every entry), so no call goes to the leader.
    async fn events(&self, req: Request<EventsRequest>) -> Result<Response<EventStream>, Status> {
        use tokio_stream::StreamExt;
        let swarm = self.manager.active()?;
        let (history, feed) = swarm.store.events().subscribe();
        let req = req.into_inner();
        let history = if req.history || req.history_only {
            history
        } else {
            Vec::new()
        };
        let history = tokio_stream::iter(history).map(|e| Ok(event_to_proto(e)));
        if req.history_only {
            return Ok(Response::new(Box::pin(history)));
        }
        // A subscriber that fell behind the feed skips what it missed.
        let live = tokio_stream::wrappers::BroadcastStream::new(feed).filter_map(Result::ok);
        Ok(Response::new(Box::pin(
            history.chain(live.map(|e| Ok(event_to_proto(e)))),
        )))
    }

    /// Served by the leader, which holds the agents' sessions; a follower
    /// passes the call on to it over the cluster port.
    async fn service_logs(&self, req: Request<ServiceLogsRequest>) -> Result<Response<LogStream>, Status> {
        let swarm = self.manager.active()?;
        let req = req.into_inner();
        if swarm.store.is_leader() {
            return Ok(Response::new(swarm.service_logs(req).await?));
        }
        let leader = swarm.store.leader_addr().ok_or_else(|| {
            swarmkeep_api::errors::rpc(
                Code::Unavailable,
                "the swarm has no leader to serve logs: no quorum of managers",
            )
        })?;
        let stream = crate::leader::call_leader(&swarm.tls, &leader, |mut c| {
            let req = req.clone();
            async move { c.service_logs(req).await }
        })
        .await?;
        Ok(Response::new(Box::pin(stream)))
    }

    async fn init(&self, req: Request<InitRequest>) -> Result<Response<InitResponse>, Status> {
        let req = req.into_inner();
        if req.node_cert_expiry_ms != 0 {
            swarm::check_cert_expiry(req.node_cert_expiry_ms)?;
        }
        let settings = crate::state::InitSettings {
            heartbeat_ms: req.heartbeat_period_ms,
            cert_expiry_ms: req.node_cert_expiry_ms,
            networking: swarm::network_defaults(&req)?,
            ticks: swarm::init_ticks(&req)?,
        };
        let node_id = self
            .manager
            .init(&req.advertise_addr, &req.listen_addr, settings, &req.data_path_addr)
            .await?;
        if req.autolock {
            let swarm = self.manager.active()?;
            swarm::update_cluster(
                &swarm,
                UpdateClusterRequest {
                    autolock: Some(true),
                    ..Default::default()
                },
            )
            .await?;
        }
        Ok(Response::new(InitResponse { node_id }))
    }

    async fn get_cluster(&self, _req: Request<GetClusterRequest>) -> Result<Response<GetClusterResponse>, Status> {
        let swarm = self.manager.active()?;
        Ok(Response::new(swarm::cluster_info(&swarm).await?))
    }

    async fn update_cluster(
        &self,
        req: Request<UpdateClusterRequest>,
    ) -> Result<Response<UpdateClusterResponse>, Status> {
        let swarm = self.manager.active()?;
        Ok(Response::new(swarm::update_cluster(&swarm, req.into_inner()).await?))
    }

    async fn get_unlock_key(
        &self,
        req: Request<GetUnlockKeyRequest>,
    ) -> Result<Response<GetUnlockKeyResponse>, Status> {
        let swarm = self.manager.active()?;
        Ok(Response::new(swarm::unlock_key(&swarm, req.get_ref().rotate).await?))
    }

    async fn unlock(&self, req: Request<UnlockRequest>) -> Result<Response<UnlockResponse>, Status> {
        self.manager.unlock(&req.get_ref().unlock_key).await?;
        Ok(Response::new(UnlockResponse {}))
    }

    async fn join(&self, req: Request<JoinRequest>) -> Result<Response<JoinResponse>, Status> {
        let req = req.into_inner();
        let role = self
            .manager
            .join(
                &req.token,
                &req.remote_addr,
                &req.advertise_addr,
                &req.listen_addr,
                &req.data_path_addr,
            )
            .await?;
        Ok(Response::new(JoinResponse { role }))
    }

    async fn leave(&self, req: Request<LeaveRequest>) -> Result<Response<LeaveResponse>, Status> {
        self.manager.leave(req.get_ref().force).await?;
        Ok(Response::new(LeaveResponse {}))
    }

    async fn get_join_token(
        &self,
        req: Request<GetJoinTokenRequest>,
    ) -> Result<Response<GetJoinTokenResponse>, Status> {
        let swarm = self.manager.active()?;
        let req = req.into_inner();
        Ok(Response::new(swarm::join_token(&swarm, &req.role, req.rotate).await?))
    }

    async fn update_node(&self, req: Request<UpdateNodeRequest>) -> Result<Response<UpdateNodeResponse>, Status> {
        let swarm = self.manager.active()?;
        let node = node::update_node(&swarm, req.into_inner()).await?;
        Ok(Response::new(UpdateNodeResponse { node: Some(node) }))
    }

    async fn remove_node(&self, req: Request<RemoveNodeRequest>) -> Result<Response<RemoveNodeResponse>, Status> {
        let swarm = self.manager.active()?;
        let req = req.into_inner();
        node::remove_node(&swarm, &req.id, req.force).await?;
        Ok(Response::new(RemoveNodeResponse {}))
    }

    async fn info(&self, _req: Request<InfoRequest>) -> Result<Response<InfoResponse>, Status> {
        let swarm = match self.manager.membership() {
            crate::state::Membership::Manager(s) => s,
            crate::state::Membership::Worker(w) => {
                let node_addr = w
                    .identity
                    .advertise_addr
                    .rsplit_once(':')
                    .map(|(ip, _)| ip.to_string())
                    .unwrap_or_default();
                return Ok(Response::new(InfoResponse {
                    node_id: w.identity.node_id.clone(),
                    node_addr,
                    local_node_state: "active".into(),
                    control_available: false,
                    cluster_id: w.identity.cluster_id.clone(),
                    role: "worker".into(),
                    ..Default::default()
                }));
            }
            crate::state::Membership::Locked(local) => {
                return Ok(Response::new(InfoResponse {
                    node_id: local.node_id.clone(),
                    local_node_state: "locked".into(),
                    cluster_id: local.cluster_id.clone(),
                    role: "manager".into(),
                    ..Default::default()
                }));
            }
            crate::state::Membership::Inactive => {
                return Ok(Response::new(InfoResponse {
                    local_node_state: "inactive".into(),
                    ..Default::default()
                }));
            }
        };
        let (nodes, managers) = swarm.store.read(|st| {
            (
                st.nodes.len(),
                st.nodes
                    .values()
                    .filter(|n| n.role == swarmkeep_store::objects::NodeRole::Manager)
                    .count(),
            )
        });
        let node_addr = swarm
            .identity
            .advertise_addr
            .rsplit_once(':')
            .map(|(ip, _)| ip.to_string())
            .unwrap_or_default();
        Ok(Response::new(InfoResponse {
            node_id: swarm.identity.node_id.clone(),
            node_addr,
            local_node_state: "active".into(),
            control_available: true,
            cluster_id: swarm.identity.cluster_id.clone(),
            nodes: nodes as u32,
            managers: managers as u32,
            role: "manager".into(),
        }))
    }

    async fn list_nodes(&self, req: Request<ListNodesRequest>) -> Result<Response<ListNodesResponse>, Status> {
        let swarm = self.manager.active()?;
        swarm.read_barrier().await?;
        let nodes = node::list_nodes(&swarm, req.get_ref().filters.as_ref()).await;
        Ok(Response::new(ListNodesResponse { nodes }))
    }

    async fn get_node(&self, req: Request<GetNodeRequest>) -> Result<Response<GetNodeResponse>, Status> {
        let swarm = self.manager.active()?;
        swarm.read_barrier().await?;
        let node = node::get_node(&swarm, &req.get_ref().id).await?;
        Ok(Response::new(GetNodeResponse { node: Some(node) }))
    }

    async fn create_secret(&self, req: Request<CreateSecretRequest>) -> Result<Response<CreateSecretResponse>, Status> {
        // The payload goes into a zeroizing buffer before anything can refuse the call.
        let (spec, data) = take_payload(req.into_inner().spec);
        let swarm = self.manager.active()?;
        let secret = secret::create_secret(&swarm, spec, data).await?;
        Ok(Response::new(CreateSecretResponse { secret: Some(secret) }))
    }

    async fn get_secret(&self, req: Request<GetSecretRequest>) -> Result<Response<GetSecretResponse>, Status> {
        let swarm = self.manager.active()?;
        swarm.read_barrier().await?;
        let secret = secret::get_secret(&swarm, &req.get_ref().id).await?;
        Ok(Response::new(GetSecretResponse { secret: Some(secret) }))
    }

    async fn list_secrets(&self, req: Request<ListSecretsRequest>) -> Result<Response<ListSecretsResponse>, Status> {
        let swarm = self.manager.active()?;
        swarm.read_barrier().await?;
        let secrets = secret::list_secrets(&swarm, req.get_ref().filters.as_ref()).await;
        Ok(Response::new(ListSecretsResponse { secrets }))
    }

    async fn update_secret(&self, req: Request<UpdateSecretRequest>) -> Result<Response<UpdateSecretResponse>, Status> {
        let req = req.into_inner();
        let (spec, data) = take_payload(req.spec);
        let swarm = self.manager.active()?;
        let secret = secret::update_secret(&swarm, &req.id, req.version, spec, data).await?;
        Ok(Response::new(UpdateSecretResponse { secret: Some(secret) }))
    }

    async fn remove_secret(&self, req: Request<RemoveSecretRequest>) -> Result<Response<RemoveSecretResponse>, Status> {
        let swarm = self.manager.active()?;
        secret::remove_secret(&swarm, &req.get_ref().id).await?;
        Ok(Response::new(RemoveSecretResponse {}))
    }

    async fn create_config(&self, req: Request<CreateConfigRequest>) -> Result<Response<CreateConfigResponse>, Status> {
        let swarm = self.manager.active()?;
        let config = config::create_config(&swarm, req.into_inner().spec).await?;
        Ok(Response::new(CreateConfigResponse { config: Some(config) }))
    }

    async fn get_config(&self, req: Request<GetConfigRequest>) -> Result<Response<GetConfigResponse>, Status> {
        let swarm = self.manager.active()?;
        swarm.read_barrier().await?;
        let config = config::get_config(&swarm, &req.get_ref().id).await?;
        Ok(Response::new(GetConfigResponse { config: Some(config) }))
    }

    async fn list_configs(&self, req: Request<ListConfigsRequest>) -> Result<Response<ListConfigsResponse>, Status> {
        let swarm = self.manager.active()?;
        swarm.read_barrier().await?;
        let configs = config::list_configs(&swarm, req.get_ref().filters.as_ref()).await;
        Ok(Response::new(ListConfigsResponse { configs }))
    }

    async fn update_config(&self, req: Request<UpdateConfigRequest>) -> Result<Response<UpdateConfigResponse>, Status> {
        let swarm = self.manager.active()?;
        let req = req.into_inner();
        let config = config::update_config(&swarm, &req.id, req.version, req.spec).await?;
        Ok(Response::new(UpdateConfigResponse { config: Some(config) }))
    }

    async fn remove_config(&self, req: Request<RemoveConfigRequest>) -> Result<Response<RemoveConfigResponse>, Status> {
        let swarm = self.manager.active()?;
        config::remove_config(&swarm, &req.get_ref().id).await?;
        Ok(Response::new(RemoveConfigResponse {}))
    }

    async fn create_network(
        &self,
        req: Request<CreateNetworkRequest>,
    ) -> Result<Response<CreateNetworkResponse>, Status> {
        let swarm = self.manager.active()?;
        let network = network::create_network(&swarm, req.into_inner().spec).await?;
        Ok(Response::new(CreateNetworkResponse { network: Some(network) }))
    }

    async fn get_network(&self, req: Request<GetNetworkRequest>) -> Result<Response<GetNetworkResponse>, Status> {
        let swarm = self.manager.active()?;
        swarm.read_barrier().await?;
        let network = network::get_network(&swarm, &req.get_ref().id).await?;
        Ok(Response::new(GetNetworkResponse { network: Some(network) }))
    }

    async fn list_networks(&self, req: Request<ListNetworksRequest>) -> Result<Response<ListNetworksResponse>, Status> {
        let swarm = self.manager.active()?;
        swarm.read_barrier().await?;
        let networks = network::list_networks(&swarm, req.get_ref().filters.as_ref()).await;
        Ok(Response::new(ListNetworksResponse { networks }))
    }

    async fn remove_network(
        &self,
        req: Request<RemoveNetworkRequest>,
    ) -> Result<Response<RemoveNetworkResponse>, Status> {
        let swarm = self.manager.active()?;
        network::remove_network(&swarm, &req.get_ref().id).await?;
        Ok(Response::new(RemoveNetworkResponse {}))
    }

    async fn create_service(
        &self,
        req: Request<CreateServiceRequest>,
    ) -> Result<Response<CreateServiceResponse>, Status> {
        let swarm = self.manager.active()?;
        let mut req = req.into_inner();
        let auth = swarmkeep_crypto::SecretBytes::new(std::mem::take(&mut req.registry_auth));
        let service = service::create_service(&swarm, req.spec, auth).await?;
        Ok(Response::new(CreateServiceResponse { service: Some(service) }))
    }

    async fn get_service(&self, req: Request<GetServiceRequest>) -> Result<Response<GetServiceResponse>, Status> {
        let swarm = self.manager.active()?;
        swarm.read_barrier().await?;
        let service = service::get_service(&swarm, &req.get_ref().id).await?;
        Ok(Response::new(GetServiceResponse { service: Some(service) }))
    }

    async fn list_services(&self, req: Request<ListServicesRequest>) -> Result<Response<ListServicesResponse>, Status> {
        let swarm = self.manager.active()?;
        swarm.read_barrier().await?;
        Ok(Response::new(
            service::list_services(&swarm, req.get_ref().filters.as_ref()).await,
        ))
    }

    async fn update_service(
        &self,
        req: Request<UpdateServiceRequest>,
    ) -> Result<Response<UpdateServiceResponse>, Status> {
        let swarm = self.manager.active()?;
        let mut req = req.into_inner();
        let auth = swarmkeep_crypto::SecretBytes::new(std::mem::take(&mut req.registry_auth));
        let service = service::update_service(&swarm, &req.id, req.version, req.spec, req.rollback, auth).await?;
        Ok(Response::new(UpdateServiceResponse { service: Some(service) }))
    }

    async fn remove_service(
        &self,
        req: Request<RemoveServiceRequest>,
    ) -> Result<Response<RemoveServiceResponse>, Status> {
        let swarm = self.manager.active()?;
        swarm.read_barrier().await?;
        service::remove_service(&swarm, &req.get_ref().id).await?;
        Ok(Response::new(RemoveServiceResponse {}))
    }

    async fn list_tasks(&self, req: Request<ListTasksRequest>) -> Result<Response<ListTasksResponse>, Status> {
        let swarm = self.manager.active()?;
        swarm.read_barrier().await?;
        let tasks = task::list_tasks(&swarm, req.get_ref()).await;
        Ok(Response::new(ListTasksResponse { tasks }))
    }

    async fn get_task(&self, req: Request<GetTaskRequest>) -> Result<Response<GetTaskResponse>, Status> {
        let swarm = self.manager.active()?;
        swarm.read_barrier().await?;
        let task = task::get_task(&swarm, &req.get_ref().id).await?;
        Ok(Response::new(GetTaskResponse { task: Some(task) }))
    }
}
