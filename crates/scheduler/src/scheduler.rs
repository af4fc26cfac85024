//! Tasks → nodes: spread over Ready, Active nodes by how many tasks each
//! already runs (fewest first; ties by node ID, so placement is repeatable).

use std::collections::BTreeMap;

use swarmkeep_store::ClusterState;
use swarmkeep_store::objects::{Availability, NodeState, TaskState};

pub(crate) struct Placement {
    /// Eligible node → tasks it runs or is about to.
    load: BTreeMap<String, usize>,
}

impl Placement {
    pub(crate) fn new(state: &ClusterState) -> Self {
        let mut load: BTreeMap<String, usize> = state
            .nodes
            .values()
            .filter(|n| n.state == NodeState::Ready && n.availability == Availability::Active)
            .map(|n| (n.id.clone(), 0))
            .collect();
        for t in state.tasks.values() {
            if t.desired_state <= TaskState::Running
                && !t.status.state.is_terminal()
                && let Some(n) = t.node_id.as_ref().and_then(|id| load.get_mut(id))
            {
                *n += 1;
            }
        }
        Self { load }
    }

    pub(crate) fn choose(&self) -> Option<String> {
        self.load
            .iter()
            .min_by_key(|(id, n)| (**n, (*id).clone()))
            .map(|(id, _)| id.clone())
    }

    pub(crate) fn add(&mut self, node: &str) {
        if let Some(n) = self.load.get_mut(node) {
            *n += 1;
        }
    }
}
