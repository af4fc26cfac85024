//! What a node is told of the overlay networks its tasks are on (the part of
//! swarmkit's network attachments and libnetwork's gossiped service records
//! a node needs): for each such network its VXLAN ID and subnet, the other
//! nodes with tasks on it (its VXLAN peers), and every service attached —
//! names, aliases, VIP, running tasks — for the node's DNS answers and VIP
//! load balancing. A pure function of the cluster state.

use std::collections::{BTreeMap, BTreeSet};

use swarmkeep_api::dispatcher::{IngressPort, IngressView, NetworkView, OverlayNetwork, ServiceRecord, TaskRecord};
use swarmkeep_api::naming::container_name;
use swarmkeep_store::ClusterState;
use swarmkeep_store::objects::{EndpointMode, PublishMode, Task, TaskState};

/// Swarm's VXLAN port when the cluster does not say otherwise.
const DEFAULT_DATA_PATH_PORT: u32 = 4789;

fn holds_address(t: &Task) -> bool {
    t.node_id.is_some() && !t.status.state.is_terminal()
}

fn bare(addr: &str) -> &str {
    addr.split('/').next().unwrap_or(addr)
}

/// The view for `node_id`: the networks its unfinished tasks have addresses
/// on, in ID order.
pub(super) fn network_view(st: &ClusterState, node_id: &str) -> NetworkView {
    let mut wanted = BTreeSet::new();
    for t in st.tasks.values().filter(|t| holds_address(t)) {
        if t.node_id.as_deref() == Some(node_id) {
            wanted.extend(t.addresses.iter().map(|a| a.network_id.as_str()));
        }
    }
    // Peers are reached at their data-path addresses (`--data-path-addr`, or
    // the advertise address's IP).
    let node_addr = |id: &str| {
        st.nodes
            .get(id)
            .map(|n| n.data_addr().to_string())
            .filter(|a| !a.is_empty())
    };
    let mut networks = Vec::new();
    for id in wanted {
        let Some(network) = st.networks.get(id) else { continue };
        let Some(alloc) = &network.allocation else { continue };
        let mut peers = BTreeSet::new();
        let mut running: BTreeMap<&str, Vec<TaskRecord>> = BTreeMap::new();
        for t in st.tasks.values().filter(|t| holds_address(t)) {
            let Some(addr) = t.addresses.iter().find(|a| a.network_id == id) else {
                continue;
            };
            let on = t.node_id.as_deref().unwrap_or_default();
            if on != node_id
                && let Some(a) = node_addr(on)
            {
                peers.insert(a);
            }
            if t.status.state == TaskState::Running && t.desired_state == TaskState::Running {
                running.entry(t.service_id.as_str()).or_default().push(TaskRecord {
                    id: t.id.clone(),
                    name: container_name(&t.service_name, t.slot, on, &t.id),
                    addr: bare(&addr.addr).to_string(),
                });
            }
        }
        let mut services = Vec::new();
        // The ingress network carries the routing mesh only: no names, no
        // VIPs there (Docker's embedded DNS does not answer on it).
        for s in st.services.values().filter(|_| !network.spec.ingress) {
            let attached = s.endpoint.virtual_ips.iter().any(|v| v.network_id == id)
                || s.spec.task.networks.iter().any(|a| a.target == id);
            if !attached {
                continue;
            }
            let vip = match s.spec.endpoint.mode {
                EndpointMode::Dnsrr => String::new(),
                EndpointMode::Vip => s
                    .endpoint
                    .virtual_ips
                    .iter()
                    .find(|v| v.network_id == id)
                    .map(|v| bare(&v.addr).to_string())
                    .unwrap_or_default(),
            };
            let aliases = s
                .spec
                .task
                .networks
                .iter()
                .filter(|a| a.target == id)
                .flat_map(|a| a.aliases.iter().cloned())
                .collect();
            services.push(ServiceRecord {
                id: s.id.clone(),
                name: s.spec.annotations.name.clone(),
                aliases,
                vip,
                tasks: running.remove(s.id.as_str()).unwrap_or_default(),
            });
        }
        networks.push(OverlayNetwork {
            id: id.to_string(),
            name: network.spec.annotations.name.clone(),
            vni: alloc.vni,
            subnet: alloc.subnet.clone(),
            gateway: alloc.gateway.clone(),
            peers: peers.into_iter().collect(),
            services,
            internal: network.spec.internal,
        });
    }
    let data_path_port = st
        .cluster
        .as_ref()
        .map(|c| c.data_path_port)
        .filter(|p| *p != 0)
        .unwrap_or(DEFAULT_DATA_PATH_PORT);
    NetworkView {
        data_path_port,
        networks,
        ingress: ingress_view(st, node_id),
        local_addr: st
            .nodes
            .get(node_id)
            .map(|n| n.data_addr().to_string())
            .unwrap_or_default(),
    }
}

/// The routing mesh as `node_id` runs it: while any service publishes a
/// port through it, every node with an ingress address takes the ports and
/// passes connections to the services' running tasks.
fn ingress_view(st: &ClusterState, node_id: &str) -> Option<IngressView> {
    let network = st.networks.values().find(|n| n.spec.ingress)?;
    let alloc = network.allocation.as_ref()?;
    let address = st
        .nodes
        .get(node_id)?
        .ingress_address
        .as_ref()
        .filter(|a| a.network_id == network.id)?
        .addr
        .clone();
    let mut ports = Vec::new();
    for s in st.services.values() {
        let published: Vec<_> = s
            .endpoint
            .ports
            .iter()
            .filter(|p| p.publish_mode == PublishMode::Ingress && p.published_port != 0)
            .collect();
        if published.is_empty() {
            continue;
        }
        let backends: Vec<String> = st
            .tasks
            .values()
            .filter(|t| {
                t.service_id == s.id && t.status.state == TaskState::Running && t.desired_state == TaskState::Running
            })
            .filter_map(|t| t.addresses.iter().find(|a| a.network_id == network.id))
            .map(|a| bare(&a.addr).to_string())
            .collect();
        for p in published {
            ports.push(IngressPort {
                protocol: p.protocol.clone(),
                published_port: p.published_port,
                target_port: p.target_port,
                backends: backends.clone(),
            });
        }
    }
    if ports.is_empty() {
        return None;
    }
    let peers: BTreeSet<String> = st
        .nodes
        .values()
        .filter(|n| n.id != node_id && n.ingress_address.is_some() && !n.data_addr().is_empty())
        .map(|n| n.data_addr().to_string())
        .collect();
    Some(IngressView {
        network: Some(OverlayNetwork {
            id: network.id.clone(),
            name: network.spec.annotations.name.clone(),
            vni: alloc.vni,
            subnet: alloc.subnet.clone(),
            gateway: alloc.gateway.clone(),
            peers: peers.into_iter().collect(),
            services: Vec::new(),
            internal: false,
        }),
        address,
        ports,
    })
}
