//! Networks: today the predefined ones every swarm has (`host`), looked up
//! and listed as Docker's clients expect; they cannot be removed.

use swarmkeep_api::control;
use swarmkeep_api::errors::{plain, rpc};
use swarmkeep_store::objects::Network;
use tonic::{Code, Status};

use super::common::{annotations_to_proto, meta_to_proto};
use crate::lookup::{matches_filters, resolve};
use crate::state::ManagerState;

pub fn to_proto(n: &Network) -> control::Network {
    control::Network {
        id: n.id.clone(),
        meta: Some(meta_to_proto(&n.meta)),
        spec: Some(control::NetworkSpec {
            annotations: Some(annotations_to_proto(&n.spec.annotations)),
            driver: n.spec.driver.clone(),
        }),
    }
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

/// Docker refuses to remove a predefined network (its own words, 403); there
/// are no others yet.
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
    Err(rpc(
        Code::Unimplemented,
        format!(
            "network {}: only predefined networks exist",
            network.spec.annotations.name
        ),
    ))
}
