//! Nodes as the control API shows them: the replicated node object plus what
//! only the managers know live (readiness, raft leadership).

use std::collections::BTreeMap;

use swarmkeep_api::control;
use swarmkeep_store::objects::{Availability, Node, NodeRole};
use tonic::Status;

use super::common::{Listed, matches_filters, meta_to_proto, resolve, scan_name};
use crate::ActiveSwarm;

impl Listed for Node {
    fn id(&self) -> &str {
        &self.id
    }
    fn name(&self) -> &str {
        &self.description.hostname
    }
    fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }
}

impl ActiveSwarm {
    fn node_to_proto(&self, n: &Node) -> control::Node {
        // This manager answers, so its own node is up. Other nodes' status
        // comes from dispatcher heartbeats once agents join.
        let state = if n.id == self.local.node_id { "ready" } else { "unknown" };
        let leader = n.raft_id.is_some() && n.raft_id == self.store.current_leader();
        control::Node {
            id: n.id.clone(),
            meta: Some(meta_to_proto(&n.meta)),
            spec: Some(control::NodeSpec {
                annotations: Some(control::Annotations {
                    name: String::new(),
                    labels: n.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                }),
                role: match n.role {
                    NodeRole::Manager => "manager",
                    NodeRole::Worker => "worker",
                }
                .into(),
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
            manager_status: n.manager_addr.as_ref().map(|addr| control::ManagerStatus {
                leader,
                reachability: "reachable".into(),
                addr: addr.clone(),
                raft_id: n.raft_id.unwrap_or(0),
            }),
        }
    }

    pub async fn list_nodes(&self, filters: Option<&control::ListFilters>) -> Vec<control::Node> {
        let nodes: Vec<Node> = self.store.read(|st| {
            st.nodes
                .values()
                .filter(|n| matches_filters(*n, filters))
                .cloned()
                .collect()
        });
        nodes.iter().map(|n| self.node_to_proto(n)).collect()
    }

    /// `self` is this node, as the docker CLI resolves it.
    pub async fn get_node(&self, input: &str) -> Result<control::Node, Status> {
        let input = if input == "self" {
            self.local.node_id.as_str()
        } else {
            input
        };
        let node = self
            .store
            .read(|st| resolve("node", input, &st.nodes, |n| scan_name(&st.nodes, n)).cloned())?;
        Ok(self.node_to_proto(&node))
    }
}
