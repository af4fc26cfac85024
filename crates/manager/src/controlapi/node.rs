//! Nodes as the control API shows them: the replicated node object plus what
//! only the managers know live (readiness, raft leadership).

use swarmkeep_api::control;
use swarmkeep_api::errors::rpc;
use swarmkeep_store::Command;
use swarmkeep_store::objects::{Availability, Node, NodeRole, NodeState};
use time::OffsetDateTime;
use tonic::Code;
use tonic::Status;

use super::common::meta_to_proto;
use crate::lookup::{matches_filters, resolve, scan_name};
use crate::state::ManagerState;

pub(super) fn node_to_proto(swarm: &ManagerState, n: &Node) -> control::Node {
    let state = match n.state {
        NodeState::Ready => "ready",
        NodeState::Down => "down",
        NodeState::Unknown => "unknown",
    };
    let leader = n.raft_id.is_some() && n.raft_id == swarm.store.current_leader();
    // Down, or not answering the leader's raft messages.
    let reachability = if n.state == NodeState::Ready && !n.raft_unreachable {
        "reachable"
    } else {
        "unreachable"
    };
    control::Node {
        id: n.id.clone(),
        meta: Some(meta_to_proto(&n.meta)),
        spec: Some(control::NodeSpec {
            annotations: Some(control::Annotations {
                name: String::new(),
                labels: n.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            }),
            role: n.role.as_str().into(),
            availability: match n.availability {
                Availability::Active => "active",
                Availability::Pause => "pause",
                Availability::Drain => "drain",
            }
            .into(),
        }),
        description: Some(control::NodeDescription {
            hostname: n.description.hostname.clone(),
            os: n.description.os.clone(),
            architecture: n.description.architecture.clone(),
            nano_cpus: n.description.nano_cpus,
            memory_bytes: n.description.memory_bytes,
            engine_version: n.description.engine_version.clone(),
        }),
        status: Some(control::NodeStatus {
            state: state.into(),
            message: String::new(),
            addr: n.addr.clone(),
        }),
        manager_status: (n.role == NodeRole::Manager && n.raft_id.is_some()).then(|| control::ManagerStatus {
            leader,
            reachability: reachability.into(),
            addr: n.manager_addr.clone().unwrap_or_default(),
            raft_id: n.raft_id.unwrap_or(0),
        }),
    }
}

pub(super) async fn list_nodes(swarm: &ManagerState, filters: Option<&control::ListFilters>) -> Vec<control::Node> {
    let nodes: Vec<Node> = swarm.store.read(|st| {
        st.nodes
            .values()
            .filter(|n| matches_filters(*n, filters))
            .cloned()
            .collect()
    });
    nodes.iter().map(|n| node_to_proto(swarm, n)).collect()
}

/// `self` is this node, as the docker CLI resolves it.
pub(super) async fn get_node(swarm: &ManagerState, input: &str) -> Result<control::Node, Status> {
    let input = if input == "self" {
        swarm.identity.node_id.as_str()
    } else {
        input
    };
    let node = swarm
        .store
        .read(|st| resolve("node", input, &st.nodes, |n| scan_name(&st.nodes, n)).cloned())?;
    Ok(node_to_proto(swarm, &node))
}

/// `node update`, `node promote`, `node demote`. A role change takes
/// effect as the node hears it (heartbeat) and the leader reconciles the
/// raft membership with the roles in the store.
pub(super) async fn update_node(
    swarm: &ManagerState,
    req: control::UpdateNodeRequest,
) -> Result<control::Node, Status> {
    let input = if req.id == "self" {
        swarm.identity.node_id.clone()
    } else {
        req.id.clone()
    };
    for _ in 0..10 {
        let (mut node, managers) = swarm.store.read(|st| {
            let node = resolve("node", &input, &st.nodes, |n| scan_name(&st.nodes, n)).cloned();
            (node, st.nodes.values().filter(|n| n.role == NodeRole::Manager).count())
        });
        let node_ref = node.as_mut().map_err(|e| e.clone())?;
        // With a caller's version (Docker's API) the update is against that
        // version or refused; without one it is applied to the current node.
        let expected_version = req.version.map(|v| v.index).unwrap_or(node_ref.meta.version);
        match req.role.as_str() {
            "" => {}
            "manager" => node_ref.role = NodeRole::Manager,
            "worker" => {
                if node_ref.role == NodeRole::Manager && managers <= 1 {
                    return Err(rpc(
                        Code::FailedPrecondition,
                        "attempting to demote the last manager of the swarm",
                    ));
                }
                node_ref.role = NodeRole::Worker;
            }
            other => return Err(rpc(Code::InvalidArgument, format!("invalid role {other:?}"))),
        }
        match req.availability.as_str() {
            "" => {}
            "active" => node_ref.availability = Availability::Active,
            "pause" => node_ref.availability = Availability::Pause,
            "drain" => node_ref.availability = Availability::Drain,
            other => return Err(rpc(Code::InvalidArgument, format!("invalid availability {other:?}"))),
        }
        for k in &req.label_rm {
            node_ref.labels.remove(k);
        }
        for (k, v) in &req.label_add {
            node_ref.labels.insert(k.clone(), v.clone());
        }
        node_ref.meta.updated_at = OffsetDateTime::now_utc();
        let id = node_ref.id.clone();
        let node = node.map_err(|e| e.clone())?;
        match swarm.write(Command::UpdateNode { node, expected_version }).await {
            Ok(_) => return get_node(swarm, &id).await,
            Err(s) if crate::errors::is_version_conflict(&s) && req.version.is_none() => continue,
            Err(s) => return Err(s),
        }
    }
    Err(rpc(Code::Aborted, "the node changed too often to update"))
}

/// `node rm`: a raft member must be demoted first; a live node only goes with `force`.
pub(super) async fn remove_node(swarm: &ManagerState, input: &str, force: bool) -> Result<(), Status> {
    let node = swarm
        .store
        .read(|st| resolve("node", input, &st.nodes, |n| scan_name(&st.nodes, n)).cloned())?;
    // Also a demoted manager the leader has not yet taken out of the raft
    // group: removed now, it would stay a voter no one removes.
    if node.raft_id.is_some() {
        return Err(rpc(
            Code::FailedPrecondition,
            format!(
                "node {} is a cluster manager and is a member of the raft cluster. It must be demoted to worker before removal",
                node.id
            ),
        ));
    }
    if !force && node.state == NodeState::Ready {
        return Err(rpc(
            Code::FailedPrecondition,
            format!("node {} is not down and can't be removed", node.id),
        ));
    }
    swarm
        .write(Command::RemoveNode {
            id: node.id.clone(),
            removed_at: Some(time::OffsetDateTime::now_utc()),
        })
        .await?;
    tracing::info!(node_id = %node.id, "node removed");
    Ok(())
}
