//! The networks every swarm has from the start, as swarmkit's manager creates
//! them when it becomes leader: today `host` (a task attached to it runs in its
//! node's own network namespace). Overlay networks and their addresses are
//! allocated here as they come.

use std::collections::BTreeMap;

use swarmkeep_store::objects::{Annotations, Meta, Network, NetworkSpec, PREDEFINED_LABEL};
use swarmkeep_store::{ClusterState, Command};
use time::OffsetDateTime;

/// (name, driver) of each predefined network.
const PREDEFINED: [(&str, &str); 1] = [("host", "host")];

/// The predefined networks, new: what a swarm's first entry carries.
pub fn predefined_networks(now: OffsetDateTime, new_id: &mut dyn FnMut() -> String) -> Vec<Network> {
    PREDEFINED
        .iter()
        .map(|(name, driver)| network(name, driver, now, new_id()))
        .collect()
}

/// The commands creating the predefined networks an initialized swarm lacks
/// (one initialized before they existed).
pub fn predefined(state: &ClusterState, now: OffsetDateTime, new_id: &mut dyn FnMut() -> String) -> Vec<Command> {
    if state.cluster.is_none() {
        return Vec::new();
    }
    PREDEFINED
        .iter()
        .filter(|(name, _)| state.network_by_name(name).is_none())
        .map(|(name, driver)| Command::CreateNetwork(network(name, driver, now, new_id())))
        .collect()
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
        },
    }
}
