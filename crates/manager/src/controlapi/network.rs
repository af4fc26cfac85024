//! Networks: the predefined `host`, the `ingress` overlay made at init, and
//! the overlay networks operators create — each with the subnet and VXLAN ID
//! the scheduler crate's IPAM allocates; removed only when no service or
//! running task uses it (swarmkit's words).

use swarmkeep_api::control;
use swarmkeep_api::errors::{plain, rpc};
use swarmkeep_store::Command;
use swarmkeep_store::objects::{IpamConfig, Network, NetworkSpec};
use tonic::{Code, Status};

use super::common::{annotations_from_proto, annotations_to_proto, meta_to_proto, new_meta, validate_name};
use crate::lookup::{matches_filters, resolve};
use crate::state::ManagerState;

pub fn to_proto(n: &Network) -> control::Network {
    control::Network {
        id: n.id.clone(),
        meta: Some(meta_to_proto(&n.meta)),
        spec: Some(control::NetworkSpec {
            annotations: Some(annotations_to_proto(&n.spec.annotations)),
            driver: n.spec.driver.clone(),
            driver_options: n.spec.driver_options.clone().into_iter().collect(),
            ipam: n
                .spec
                .ipam
                .iter()
                .map(|c| control::IpamConfig {
                    subnet: c.subnet.clone(),
                    range: c.range.clone(),
                    gateway: c.gateway.clone(),
                })
                .collect(),
            internal: n.spec.internal,
            attachable: n.spec.attachable,
            ingress: n.spec.ingress,
            ipv6: false,
            ipam_driver: String::new(),
        }),
        allocation: n.allocation.as_ref().map(|a| control::NetworkAllocation {
            subnet: a.subnet.clone(),
            gateway: a.gateway.clone(),
            range: a.range.clone(),
            vni: a.vni,
        }),
    }
}

/// The spec of a new network, checked: overlay only (a node-local bridge is
/// not a swarm object), IPv4, the default IPAM driver, one IPAM config; the
/// driver options not built yet refused by name.
fn spec_from_proto(spec: Option<control::NetworkSpec>) -> Result<NetworkSpec, Status> {
    let spec = spec.ok_or_else(|| rpc(Code::InvalidArgument, "invalid argument"))?;
    validate_name(spec.annotations.as_ref())?;
    let driver = if spec.driver.is_empty() {
        "overlay".to_string()
    } else {
        spec.driver
    };
    if driver != "overlay" {
        return Err(rpc(
            Code::InvalidArgument,
            format!("network driver {driver:?} is not supported: swarmkeep's swarm networks are overlay networks"),
        ));
    }
    if spec.ipv6 {
        return Err(rpc(
            Code::InvalidArgument,
            "EnableIPv6 is not supported: overlay networks are IPv4",
        ));
    }
    if !matches!(spec.ipam_driver.as_str(), "" | "default") {
        return Err(rpc(
            Code::InvalidArgument,
            format!("IPAM driver {:?} is not supported (only \"default\")", spec.ipam_driver),
        ));
    }
    if spec.ipam.len() > 1 {
        return Err(rpc(
            Code::InvalidArgument,
            "only one IPAM configuration (one IPv4 subnet) per network is supported",
        ));
    }
    if let Some(name) = spec.driver_options.keys().next() {
        return Err(rpc(
            Code::InvalidArgument,
            format!("network driver option {name:?} is not supported yet"),
        ));
    }
    if spec.ingress && spec.attachable {
        return Err(rpc(Code::InvalidArgument, "ingress network cannot be attachable"));
    }
    let ipam: Vec<IpamConfig> = spec
        .ipam
        .into_iter()
        .map(|c| IpamConfig {
            subnet: c.subnet,
            range: c.range,
            gateway: c.gateway,
        })
        .collect();
    for c in &ipam {
        swarmkeep_scheduler::ipam::check_ipam(c).map_err(|e| rpc(Code::InvalidArgument, e))?;
    }
    Ok(NetworkSpec {
        annotations: annotations_from_proto(spec.annotations),
        driver,
        driver_options: Default::default(),
        ipam,
        internal: spec.internal,
        attachable: spec.attachable,
        ingress: spec.ingress,
    })
}

/// `network create -d overlay`: allocated (subnet, gateway, VNI) before it
/// is stored, so inspect shows them at once.
pub(super) async fn create_network(
    swarm: &ManagerState,
    spec: Option<control::NetworkSpec>,
) -> Result<control::Network, Status> {
    let spec = spec_from_proto(spec)?;
    let name = spec.annotations.name.clone();
    // Another create may take the subnet between the allocation and the
    // write (the store refuses it then): allocated again.
    for _ in 0..3 {
        let network = swarm.store.read(|st| {
            if let Some(existing) = st.network_by_name(&name) {
                return Err(network_exists(&existing.spec.annotations.name));
            }
            if spec.ingress
                && let Some(ingress) = st.networks.values().find(|n| n.spec.ingress)
            {
                return Err(rpc(
                    Code::AlreadyExists,
                    format!("ingress network ({}) is already present", ingress.id),
                ));
            }
            let allocation =
                swarmkeep_scheduler::ipam::allocate_network(st, &spec).map_err(|e| rpc(Code::InvalidArgument, e))?;
            Ok(Network {
                id: swarmkeep_crypto::new_id(),
                meta: new_meta(),
                spec: spec.clone(),
                allocation: Some(allocation),
            })
        })?;
        let id = network.id.clone();
        match swarm.write(Command::CreateNetwork(network)).await {
            Ok(_) => {
                tracing::info!(%id, %name, "network created");
                return get_network(swarm, &id).await;
            }
            Err(e) if e.code() == Code::Aborted => continue,
            Err(e) if e.code() == Code::AlreadyExists => return Err(network_exists(&name)),
            Err(e) => return Err(e),
        }
    }
    Err(rpc(
        Code::Aborted,
        "network create: the subnet was taken meanwhile; try again",
    ))
}

/// Docker's words (409).
fn network_exists(name: &str) -> Status {
    rpc(Code::AlreadyExists, format!("network with name {name} already exists"))
}

pub(super) async fn get_network(swarm: &ManagerState, input: &str) -> Result<control::Network, Status> {
    swarm
        .store
        .read(|st| resolve("network", input, &st.networks, |n| st.network_by_name(n)).map(to_proto))
}

pub(super) async fn list_networks(
    swarm: &ManagerState,
    filters: Option<&control::ListFilters>,
) -> Vec<control::Network> {
    swarm.store.read(|st| {
        st.networks
            .values()
            .filter(|n| matches_filters(*n, filters))
            .map(to_proto)
            .collect()
    })
}

/// Docker refuses to remove a predefined network (its own words, 403); any
/// other goes unless a service or a running task uses it (the store's
/// check, in swarmkit's words).
pub(super) async fn remove_network(swarm: &ManagerState, input: &str) -> Result<(), Status> {
    let network = swarm
        .store
        .read(|st| resolve("network", input, &st.networks, |n| st.network_by_name(n)).cloned())?;
    if network.is_predefined() {
        return Err(plain(
            Code::PermissionDenied,
            format!(
                "{} is a pre-defined network and cannot be removed",
                network.spec.annotations.name
            ),
        ));
    }
    swarm.write(Command::RemoveNetwork { id: network.id.clone() }).await?;
    tracing::info!(id = %network.id, name = %network.spec.annotations.name, "network removed");
    Ok(())
}
