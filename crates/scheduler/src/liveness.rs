//! Which nodes are up: a node is Ready while its heartbeats arrive and Down
//! after three missed heartbeat periods, as swarmkit's dispatcher judges it.
//! The leader keeps the heartbeat times; this only judges them.

use std::time::Duration;

use swarmkeep_store::objects::{Node, NodeRole, NodeState};
use swarmkeep_store::{ClusterState, Command};

/// Swarm's default dispatcher heartbeat period.
pub const DEFAULT_HEARTBEAT_MS: u64 = 5000;

/// How many heartbeat periods a node may miss before it is Down.
const MISSED_PERIODS: u64 = 3;

/// The node updates that make each node's state match how long it has been
/// silent (`silent_for(node_id)`: the time since its last heartbeat).
pub fn node_states(state: &ClusterState, silent_for: &dyn Fn(&str) -> Duration) -> Vec<Command> {
    let period_ms = state
        .cluster
        .as_ref()
        .map(|c| c.heartbeat_period_ms)
        .unwrap_or(DEFAULT_HEARTBEAT_MS);
    let grace = Duration::from_millis(period_ms.saturating_mul(MISSED_PERIODS));
    state
        .nodes
        .values()
        .filter_map(|n| {
            let want = if silent_for(&n.id) < grace {
                NodeState::Ready
            } else {
                NodeState::Down
            };
            (n.state != want).then(|| updated(n, |node| node.state = want))
        })
        .collect()
}

/// `n` changed by `change`, as an update against the version read.
fn updated(n: &Node, change: impl FnOnce(&mut Node)) -> Command {
    let mut node = n.clone();
    change(&mut node);
    Command::UpdateNode {
        expected_version: n.meta.version,
        node,
    }
}

/// The node updates that make each manager's reachability match the raft
/// answers the leader (raft member `me`) has had: `silent_for(raft_id)` is
/// the time since that member last answered (`None`: never). A manager
/// silent for longer than `limit` is unreachable; the leader itself never.
pub fn manager_reachability(
    state: &ClusterState,
    me: u64,
    silent_for: &dyn Fn(u64) -> Option<Duration>,
    limit: Duration,
) -> Vec<Command> {
    state
        .nodes
        .values()
        .filter(|n| n.role == NodeRole::Manager)
        .filter_map(|n| {
            let peer = n.raft_id?;
            let unreachable = peer != me && silent_for(peer).is_none_or(|d| d > limit);
            (n.raft_unreachable != unreachable).then(|| updated(n, |node| node.raft_unreachable = unreachable))
        })
        .collect()
}
