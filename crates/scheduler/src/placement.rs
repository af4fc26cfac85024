//! Tasks → nodes, as swarmkit's scheduler: the nodes that pass every filter
//! (up and active, the service's constraints, `max_replicas` per node, the
//! reservations against the node's resources) and, among them, the one in
//! the least loaded `spread` group, then with the fewest tasks of the
//! service, then the fewest tasks (ties by node ID, so placement is
//! repeatable). A task no node takes stays pending with swarmkit's
//! `no suitable node (…)` explanation.

use std::collections::{BTreeMap, BTreeSet};

use swarmkeep_store::ClusterState;
use swarmkeep_store::objects::{Availability, Node, NodeRole, NodeState, PublishMode, Task, TaskSpec, TaskState};

/// A constraint as swarmkit parses it: `key==value` or `key!=value`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Constraint {
    pub key: String,
    pub equal: bool,
    pub value: String,
}

/// swarmkit's error for a constraint without an operator.
pub const CONSTRAINT_OPERATOR: &str = "constraint expected one operator from ==, !=";

impl Constraint {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (key, equal, value) = if let Some((k, v)) = text.split_once("==") {
            (k, true, v)
        } else if let Some((k, v)) = text.split_once("!=") {
            (k, false, v)
        } else {
            return Err(CONSTRAINT_OPERATOR.into());
        };
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() || value.is_empty() || value.contains("==") || value.contains("!=") {
            return Err(format!("invalid constraint: {text}"));
        }
        Ok(Self {
            key: key.into(),
            equal,
            value: value.into(),
        })
    }

    /// Whether `node` satisfies it (values compared without case, label
    /// keys with it, as swarmkit).
    pub fn matches(&self, node: &Node) -> bool {
        let lower = self.key.to_ascii_lowercase();
        let role = match node.role {
            NodeRole::Manager => "manager",
            NodeRole::Worker => "worker",
        };
        let what: Option<&str> = match lower.as_str() {
            "node.id" => Some(&node.id),
            "node.hostname" => Some(&node.description.hostname),
            "node.role" => Some(role),
            "node.platform.os" => Some(&node.description.os),
            "node.platform.arch" => Some(&node.description.architecture),
            _ if lower.starts_with("node.labels.") => {
                node.labels.get(&self.key["node.labels.".len()..]).map(String::as_str)
            }
            // swarmkeepd has no engine labels: none is ever set.
            _ if lower.starts_with("engine.labels.") => None,
            _ => return false,
        };
        let matched = what.is_some_and(|w| w.eq_ignore_ascii_case(&self.value));
        matched == self.equal
    }
}

/// Every filter a node is put through, in swarmkit's order, with its
/// explanation for `n` nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Filter {
    Ready,
    Resources,
    Constraints,
    Platform,
    HostPort,
    MaxReplicas,
}

impl Filter {
    fn explain(self, n: usize) -> String {
        let plural = if n == 1 { "" } else { "s" };
        match self {
            Filter::Ready => format!("{n} node{plural} not available for new tasks"),
            Filter::Resources => format!("insufficient resources on {n} node{plural}"),
            Filter::Constraints if n == 1 => "scheduling constraint not satisfied on 1 node".into(),
            Filter::Constraints => format!("scheduling constraints not satisfied on {n} nodes"),
            Filter::Platform => format!("unsupported platform on {n} node{plural}"),
            Filter::HostPort => format!("host-mode port already in use on {n} node{plural}"),
            Filter::MaxReplicas => "max replicas per node limit exceed".into(),
        }
    }
}

#[derive(Default, Clone)]
struct Load {
    /// Live tasks on the node.
    tasks: usize,
    /// Live tasks per service.
    by_service: BTreeMap<String, usize>,
    nano_cpus: i64,
    memory_bytes: i64,
    /// The host-mode ports its live tasks publish: (protocol, port).
    host_ports: BTreeSet<(String, u32)>,
}

pub(crate) struct Placement<'a> {
    nodes: Vec<&'a Node>,
    load: BTreeMap<&'a str, Load>,
}

impl<'a> Placement<'a> {
    pub(crate) fn new(state: &'a ClusterState) -> Self {
        let nodes: Vec<&Node> = state.nodes.values().collect();
        let mut load: BTreeMap<&str, Load> = nodes.iter().map(|n| (n.id.as_str(), Load::default())).collect();
        for t in state.tasks.values() {
            if (t.desired_state <= TaskState::Running || t.desired_state == TaskState::Complete)
                && !t.status.state.is_terminal()
                && let Some(l) = t.node_id.as_deref().and_then(|id| load.get_mut(id))
            {
                l.add(t);
            }
        }
        Self { nodes, load }
    }

    /// The node for `task`, or swarmkit's explanation of why none fits.
    pub(crate) fn choose(&self, task: &Task) -> Result<String, String> {
        let spec = &task.spec;
        let constraints: Vec<Constraint> = spec
            .placement
            .constraints
            .iter()
            .filter_map(|c| Constraint::parse(c).ok())
            .collect();
        let mut failures: BTreeMap<Filter, usize> = BTreeMap::new();
        let mut fit = Vec::new();
        for node in &self.nodes {
            let load = &self.load[node.id.as_str()];
            let failed = if node.state != NodeState::Ready || node.availability != Availability::Active {
                Some(Filter::Ready)
            } else if !fits(node, load, spec) {
                Some(Filter::Resources)
            } else if !constraints.iter().all(|c| c.matches(node)) {
                Some(Filter::Constraints)
            } else if !on_platform(node, spec) {
                Some(Filter::Platform)
            } else if host_ports(task).any(|p| load.host_ports.contains(&p)) {
                Some(Filter::HostPort)
            } else if spec.placement.max_replicas > 0
                && load.by_service.get(&task.service_id).copied().unwrap_or(0) as u64 >= spec.placement.max_replicas
            {
                Some(Filter::MaxReplicas)
            } else {
                None
            };
            match failed {
                Some(f) => *failures.entry(f).or_default() += 1,
                None => fit.push(*node),
            }
        }
        let best = fit.into_iter().min_by_key(|n| self.rank(n, task));
        match best {
            Some(n) => Ok(n.id.clone()),
            None => {
                let mut why: Vec<(Filter, usize)> = failures.into_iter().collect();
                // Most failures first, as swarmkit's pipeline explains.
                why.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                let text: Vec<String> = why.into_iter().map(|(f, n)| f.explain(n)).collect();
                Err(format!("no suitable node ({})", text.join("; ")))
            }
        }
    }

    /// Smaller is better: the spread groups' loads (outermost first), then
    /// the node's tasks of the service, then all its tasks, then its ID.
    fn rank(&self, node: &Node, task: &Task) -> (Vec<usize>, usize, usize, String) {
        let mut groups = Vec::new();
        let mut path: Vec<Option<&str>> = Vec::new();
        for pref in &task.spec.placement.spread {
            path.push(label_of(node, pref));
            // The service's tasks on the eligible nodes sharing this path.
            let in_group: usize = self
                .nodes
                .iter()
                .filter(|n| n.state == NodeState::Ready && n.availability == Availability::Active)
                .filter(|n| {
                    task.spec.placement.spread[..path.len()]
                        .iter()
                        .zip(&path)
                        .all(|(p, v)| label_of(n, p) == *v)
                })
                .map(|n| {
                    self.load[n.id.as_str()]
                        .by_service
                        .get(&task.service_id)
                        .copied()
                        .unwrap_or(0)
                })
                .sum();
            groups.push(in_group);
        }
        let load = &self.load[node.id.as_str()];
        (
            groups,
            load.by_service.get(&task.service_id).copied().unwrap_or(0),
            load.tasks,
            node.id.clone(),
        )
    }

    pub(crate) fn add(&mut self, task: &Task) {
        if let Some(l) = task.node_id.as_deref().and_then(|id| self.load.get_mut(id)) {
            l.add(task);
        }
    }
}

impl Load {
    fn add(&mut self, t: &Task) {
        self.tasks += 1;
        *self.by_service.entry(t.service_id.clone()).or_default() += 1;
        self.nano_cpus += t.spec.reservations.nano_cpus;
        self.memory_bytes += t.spec.reservations.memory_bytes;
        self.host_ports.extend(host_ports(t));
    }
}

/// The ports a task publishes on its node (host mode, a number given): one
/// node runs one task publishing each (a port left 0 is the node's choice).
fn host_ports(t: &Task) -> impl Iterator<Item = (String, u32)> + '_ {
    t.endpoint_spec
        .ports
        .iter()
        .filter(|p| p.publish_mode == PublishMode::Host && p.published_port != 0)
        .map(|p| (p.protocol.clone(), p.published_port))
}

/// The node is one of the platforms the task names (any, when none).
fn on_platform(node: &Node, spec: &TaskSpec) -> bool {
    let arch = |a: &str| match a.to_ascii_lowercase().as_str() {
        "x86_64" => "amd64".to_string(),
        "aarch64" => "arm64".to_string(),
        other => other.to_string(),
    };
    spec.placement.platforms.is_empty()
        || spec.placement.platforms.iter().any(|(os, a)| {
            (os.is_empty() || os.eq_ignore_ascii_case(&node.description.os))
                && (a.is_empty() || arch(a) == arch(&node.description.architecture))
        })
}

/// The task's reservations fit in what the node has left.
fn fits(node: &Node, load: &Load, spec: &TaskSpec) -> bool {
    let r = &spec.reservations;
    (r.nano_cpus == 0 || load.nano_cpus + r.nano_cpus <= node.description.nano_cpus)
        && (r.memory_bytes == 0 || load.memory_bytes + r.memory_bytes <= node.description.memory_bytes)
}

/// The value a `spread=` descriptor (`node.labels.x`, `engine.labels.x`)
/// gives a node; nodes without it form one group.
fn label_of<'n>(node: &'n Node, descriptor: &str) -> Option<&'n str> {
    let lower = descriptor.to_ascii_lowercase();
    if lower.starts_with("node.labels.") {
        node.labels.get(&descriptor["node.labels.".len()..]).map(String::as_str)
    } else {
        None
    }
}

/// Whether a task of `spec` stays on `node`: the node is known and not down
/// or drained, and still meets the task's constraints (swarmkit's
/// constraint enforcer); a paused node keeps its tasks.
pub(crate) fn keeps(node: Option<&Node>, spec: &TaskSpec) -> bool {
    node.is_some_and(|n| {
        n.state != NodeState::Down
            && n.availability != Availability::Drain
            && spec
                .placement
                .constraints
                .iter()
                .filter_map(|c| Constraint::parse(c).ok())
                .all(|c| c.matches(n))
    })
}
