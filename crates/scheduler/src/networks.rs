//! The networks every swarm has from the start, as swarmkit's manager creates
//! them when it becomes leader: `host` (a task attached to it runs in its
//! node's own network namespace, predefined: it cannot be removed) and the
//! `ingress` overlay of the routing mesh (the pool's first subnet, VNI 4096).

use std::collections::BTreeMap;

use swarmkeep_store::objects::{Annotations, Cluster, Meta, Network, NetworkSpec, PREDEFINED_LABEL};
use swarmkeep_store::{ClusterState, Command};
use time::OffsetDateTime;

/// (name, driver) of each predefined network.
const PREDEFINED: [(&str, &str); 1] = [("host", "host")];

pub const INGRESS: &str = "ingress";

/// The swarm's networks, new: what its first entry carries (`cluster` gives
/// the address pool the ingress subnet comes from).
pub fn predefined_networks(cluster: &Cluster, now: OffsetDateTime, new_id: &mut dyn FnMut() -> String) -> Vec<Network> {
    let mut state = ClusterState::default();
    state.cluster = Some(cluster.clone());
    let mut out: Vec<Network> = PREDEFINED
        .iter()
        .map(|(name, driver)| network(name, driver, now, new_id()))
        .collect();
    out.extend(ingress(&state, now, new_id()));
    out
}

/// The commands creating the predefined networks an initialized swarm lacks
/// (one initialized before they existed).
pub fn predefined(state: &ClusterState, now: OffsetDateTime, new_id: &mut dyn FnMut() -> String) -> Vec<Command> {
    if state.cluster.is_none() {
        return Vec::new();
    }
    // (A swarm made before `ingress` existed gets none: `network create
    // --ingress` makes one, as in Docker after `network rm ingress`.)
    PREDEFINED
        .iter()
        .filter(|(name, _)| state.network_by_name(name).is_none())
        .map(|(name, driver)| Command::CreateNetwork(network(name, driver, now, new_id())))
        .collect()
}

fn ingress(state: &ClusterState, now: OffsetDateTime, id: String) -> Option<Network> {
    let mut n = network(INGRESS, "overlay", now, id);
    n.spec.annotations.labels.clear();
    n.spec.ingress = true;
    n.allocation = Some(crate::ipam::allocate_network(state, &n.spec).ok()?);
    Some(n)
}

fn network(name: &str, driver: &str, now: OffsetDateTime, id: String) -> Network {
    Network {
        id,
        meta: Meta {
            version: 0,
            created_at: now,
            updated_at: now,
        },
        spec: NetworkSpec {
            annotations: Annotations {
                name: name.to_string(),
                labels: BTreeMap::from([(PREDEFINED_LABEL.to_string(), "true".to_string())]),
            },
            driver: driver.to_string(),
            driver_options: BTreeMap::new(),
            ipam: Vec::new(),
            internal: false,
            attachable: false,
            ingress: false,
        },
        allocation: None,
    }
}
