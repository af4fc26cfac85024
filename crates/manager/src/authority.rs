//! Who may call what on the cluster port. The caller is the node its
//! certificate names (`ca::caller`); the store says what that node may do.
//! A removed node's certificate, an unknown node and a worker asking for a
//! manager's call are refused here, the same way for every service.

use swarmkeep_store::ClusterState;
use swarmkeep_store::objects::{Node, NodeRole};
use tonic::Status;

use crate::state::ManagerState;

/// A node of this swarm: in the store, and not removed.
pub(crate) fn member(swarm: &ManagerState, node_id: &str) -> Result<Node, Status> {
    swarm.store.read(|st| listed(st, node_id).cloned())
}

fn listed<'s>(st: &'s ClusterState, node_id: &str) -> Result<&'s Node, Status> {
    if st.is_removed(node_id) {
        return Err(Status::permission_denied(format!(
            "node {node_id} was removed from this swarm"
        )));
    }
    st.nodes
        .get(node_id)
        .ok_or_else(|| Status::permission_denied(format!("node {node_id} is not part of this swarm")))
}

fn manager_of(node: &Node, node_id: &str) -> Result<(), Status> {
    if node.role != NodeRole::Manager {
        return Err(Status::permission_denied(format!("node {node_id} is not a manager")));
    }
    Ok(())
}

/// A member whose role is manager.
pub(crate) fn manager(swarm: &ManagerState, node_id: &str) -> Result<Node, Status> {
    let node = member(swarm, node_id)?;
    manager_of(&node, node_id)?;
    Ok(node)
}

/// [`manager`] without a copy of the node: for calls made per write.
pub(crate) fn manager_role(swarm: &ManagerState, node_id: &str) -> Result<(), Status> {
    swarm.store.read(|st| manager_of(listed(st, node_id)?, node_id))
}

/// A peer this manager takes raft traffic from: a manager, or a node still in
/// the raft group on its way out (a demoted manager, until the leader removes
/// it). A member that joined so recently that it has no cluster state yet
/// takes it only from the managers it was told of when it joined.
pub(crate) fn raft_peer(swarm: &ManagerState, node_id: &str) -> Result<(), Status> {
    if swarm.store.read(|st| st.cluster.is_none()) {
        return if swarm.bootstrap_peers.iter().any(|p| p == node_id) {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "node {node_id} is not a manager this new member was told of"
            )))
        };
    }
    swarm.store.read(|st| {
        let node = listed(st, node_id)?;
        if node.raft_id.is_some() {
            return Ok(());
        }
        manager_of(node, node_id)
    })
}
