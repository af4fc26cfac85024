//! Docker's swarm-scoped events (`docker events`, `GET /events`): what each
//! applied command did to a node, service, secret, config or network, as
//! dockerd derives them from swarmkit's watch queue: `create`, `update`
//! (with the `availability`, `role`, `state`, `image`, `replicas` and
//! `updatestate` changes as `.old`/`.new` attributes) and `remove`, each
//! carrying the object's name and nothing else of it.
//!
//! Every manager applies every entry, so each one publishes the same events
//! to its own subscribers; the last [`RECENT`] are kept for `since` queries,
//! as dockerd keeps its last 256.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use time::OffsetDateTime;
use tokio::sync::broadcast;

use crate::command::Command;
use crate::objects::{Availability, Node, NodeState, Service, ServiceMode};
use crate::state::ClusterState;

/// Events kept for `since` (dockerd's `eventsLimit`).
pub const RECENT: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Node,
    Service,
    Secret,
    Config,
    Network,
}

impl EventKind {
    /// Docker's event `Type`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Node => "node",
            EventKind::Service => "service",
            EventKind::Secret => "secret",
            EventKind::Config => "config",
            EventKind::Network => "network",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventAction {
    Create,
    Update,
    Remove,
}

impl EventAction {
    pub fn as_str(self) -> &'static str {
        match self {
            EventAction::Create => "create",
            EventAction::Update => "update",
            EventAction::Remove => "remove",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub action: EventAction,
    pub id: String,
    /// `name`, and for updates what changed (`replicas.old`, …).
    pub attributes: BTreeMap<String, String>,
    /// The object's creation or update time; a removal's is when this
    /// manager applied it (the store keeps no time for a removal), as dockerd.
    pub time: OffsetDateTime,
}

/// The events this manager has seen: the last [`RECENT`] and a feed of new ones.
pub struct EventLog {
    recent: Mutex<VecDeque<Event>>,
    feed: broadcast::Sender<Event>,
}

impl Default for EventLog {
    fn default() -> Self {
        Self {
            recent: Mutex::new(VecDeque::with_capacity(RECENT)),
            feed: broadcast::channel(1024).0,
        }
    }
}

impl EventLog {
    /// The kept events and a receiver of every later one: taken together, so
    /// none is missed or seen twice.
    pub fn subscribe(&self) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        (recent.iter().cloned().collect(), self.feed.subscribe())
    }

    pub(crate) fn publish(&self, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        for event in events {
            if recent.len() == RECENT {
                recent.pop_front();
            }
            recent.push_back(event.clone());
            // No subscriber is not an error.
            let _ = self.feed.send(event);
        }
    }
}

/// An object a command may change, as it was before.
pub(crate) struct Touched {
    kind: EventKind,
    id: String,
    before: Option<Before>,
}

enum Before {
    Node(Box<Node>),
    Service(Box<Service>),
    /// Secrets, configs and networks: only the name is shown, and the version
    /// tells whether the command changed them.
    Named {
        name: String,
        version: u64,
    },
}

/// What `command` may change, read before it is applied.
pub(crate) fn touched(state: &ClusterState, command: &Command) -> Vec<Touched> {
    let one = |kind, id: &str| {
        let before = match kind {
            EventKind::Node => state.nodes.get(id).map(|n| Before::Node(Box::new(n.clone()))),
            EventKind::Service => state.services.get(id).map(|s| Before::Service(Box::new(s.clone()))),
            EventKind::Secret => state.secrets.get(id).map(|s| Before::Named {
                name: s.annotations.name.clone(),
                version: s.meta.version,
            }),
            EventKind::Config => state.configs.get(id).map(|c| Before::Named {
                name: c.annotations.name.clone(),
                version: c.meta.version,
            }),
            EventKind::Network => state.networks.get(id).map(|n| Before::Named {
                name: n.spec.annotations.name.clone(),
                version: n.meta.version,
            }),
        };
        Touched {
            kind,
            id: id.to_string(),
            before,
        }
    };
    match command {
        Command::InitCluster { node, networks, .. } => std::iter::once(one(EventKind::Node, &node.id))
            .chain(networks.iter().map(|n| one(EventKind::Network, &n.id)))
            .collect(),
        Command::PutNode(node) | Command::UpdateNode { node, .. } => vec![one(EventKind::Node, &node.id)],
        Command::RemoveNode { id, .. } => vec![one(EventKind::Node, id)],
        Command::CreateSecret(s) => vec![one(EventKind::Secret, &s.id)],
        Command::UpdateSecretLabels(u) => vec![one(EventKind::Secret, &u.id)],
        Command::RemoveSecret { id } => vec![one(EventKind::Secret, id)],
        Command::CreateConfig(c) => vec![one(EventKind::Config, &c.id)],
        Command::UpdateConfigLabels(u) => vec![one(EventKind::Config, &u.id)],
        Command::RemoveConfig { id } => vec![one(EventKind::Config, id)],
        Command::CreateNetwork(n) => vec![one(EventKind::Network, &n.id)],
        Command::RemoveNetwork { id } => vec![one(EventKind::Network, id)],
        Command::CreateService(s) => vec![one(EventKind::Service, &s.id)],
        Command::UpdateService { service, .. } => vec![one(EventKind::Service, &service.id)],
        Command::CompleteServiceUpdate { id, .. } | Command::RemoveService { id } => {
            vec![one(EventKind::Service, id)]
        }
        Command::PutCluster(_)
        | Command::UpdateCluster { .. }
        | Command::PutTasks(_)
        | Command::UpdateTaskStatus { .. }
        | Command::RemoveTasks(_) => Vec::new(),
    }
}

/// The events of the objects `touched` named, now that the command is applied.
pub(crate) fn events(state: &ClusterState, touched: Vec<Touched>) -> Vec<Event> {
    touched.into_iter().filter_map(|t| event(state, t)).collect()
}

fn event(state: &ClusterState, t: Touched) -> Option<Event> {
    // (name, version, created_at, updated_at) of the object now.
    let now = match t.kind {
        EventKind::Node => state
            .nodes
            .get(&t.id)
            .map(|n| (n.description.hostname.clone(), &n.meta)),
        EventKind::Service => state
            .services
            .get(&t.id)
            .map(|s| (s.spec.annotations.name.clone(), &s.meta)),
        EventKind::Secret => state.secrets.get(&t.id).map(|s| (s.annotations.name.clone(), &s.meta)),
        EventKind::Config => state.configs.get(&t.id).map(|c| (c.annotations.name.clone(), &c.meta)),
        EventKind::Network => state
            .networks
            .get(&t.id)
            .map(|n| (n.spec.annotations.name.clone(), &n.meta)),
    };
    let (action, name, time, mut attributes) = match (t.before, now) {
        (None, None) => return None,
        (None, Some((name, meta))) => (EventAction::Create, name, meta.created_at, BTreeMap::new()),
        (Some(before), None) => {
            let name = match before {
                Before::Node(n) => n.description.hostname,
                Before::Service(s) => s.spec.annotations.name,
                Before::Named { name, .. } => name,
            };
            (EventAction::Remove, name, OffsetDateTime::now_utc(), BTreeMap::new())
        }
        (Some(before), Some((name, meta))) => {
            let version = match &before {
                Before::Node(n) => n.meta.version,
                Before::Service(s) => s.meta.version,
                Before::Named { version, .. } => *version,
            };
            if version == meta.version {
                // Refused, or nothing to change.
                return None;
            }
            let changes = match before {
                Before::Node(old) => state.nodes.get(&t.id).map(|new| node_changes(&old, new)),
                Before::Service(old) => state.services.get(&t.id).map(|new| service_changes(&old, new)),
                Before::Named { .. } => None,
            };
            (EventAction::Update, name, meta.updated_at, changes.unwrap_or_default())
        }
    };
    attributes.insert("name".into(), name);
    Some(Event {
        kind: t.kind,
        action,
        id: t.id,
        attributes,
        time,
    })
}

fn changed(into: &mut BTreeMap<String, String>, what: &str, old: String, new: String) {
    if old != new {
        into.insert(format!("{what}.old"), old);
        into.insert(format!("{what}.new"), new);
    }
}

fn node_changes(old: &Node, new: &Node) -> BTreeMap<String, String> {
    let availability = |a: Availability| {
        match a {
            Availability::Active => "active",
            Availability::Pause => "pause",
            Availability::Drain => "drain",
        }
        .to_string()
    };
    let state = |s: NodeState| {
        match s {
            NodeState::Unknown => "unknown",
            NodeState::Ready => "ready",
            NodeState::Down => "down",
        }
        .to_string()
    };
    let mut out = BTreeMap::new();
    changed(
        &mut out,
        "availability",
        availability(old.availability),
        availability(new.availability),
    );
    changed(&mut out, "role", old.role.as_str().into(), new.role.as_str().into());
    changed(&mut out, "state", state(old.state), state(new.state));
    out
}

fn service_changes(old: &Service, new: &Service) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    changed(
        &mut out,
        "image",
        old.spec.task.image.clone(),
        new.spec.task.image.clone(),
    );
    if let (ServiceMode::Replicated { replicas: a }, ServiceMode::Replicated { replicas: b }) =
        (&old.spec.mode, &new.spec.mode)
    {
        changed(&mut out, "replicas", a.to_string(), b.to_string());
    }
    match (&old.update_status, &new.update_status) {
        (None, Some(s)) => {
            out.insert("updatestate.new".into(), s.state.as_str().into());
        }
        (Some(a), Some(b)) => changed(
            &mut out,
            "updatestate",
            a.state.as_str().into(),
            b.state.as_str().into(),
        ),
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::{Annotations, Meta, NodeDescription, NodeRole, Secret};

    fn apply(state: &mut ClusterState, index: u64, command: Command) -> Vec<Event> {
        let touched = touched(state, &command);
        match state.apply(index, command) {
            Ok(_) => events(state, touched),
            Err(_) => Vec::new(),
        }
    }

    type Seen = (EventKind, EventAction, Vec<(String, String)>);

    fn seen(events: &[Event]) -> Vec<Seen> {
        events
            .iter()
            .map(|e| (e.kind, e.action, e.attributes.clone().into_iter().collect()))
            .collect()
    }

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn node(state: NodeState, availability: Availability) -> Node {
        Node {
            id: "n1".into(),
            meta: Meta {
                version: 0,
                created_at: OffsetDateTime::UNIX_EPOCH,
                updated_at: OffsetDateTime::UNIX_EPOCH,
            },
            labels: BTreeMap::new(),
            role: NodeRole::Manager,
            availability,
            state,
            description: NodeDescription {
                hostname: "vm".into(),
                os: "linux".into(),
                architecture: "x86_64".into(),
                nano_cpus: 0,
                memory_bytes: 0,
                engine_version: String::new(),
            },
            addr: "127.0.0.1".into(),
            raft_id: None,
            manager_addr: None,
            ingress_address: None,
            raft_unreachable: false,
            data_path_addr: String::new(),
        }
    }

    #[test]
    fn each_applied_change_is_one_event_with_what_changed() {
        let mut st = ClusterState::default();
        let n = node(NodeState::Unknown, Availability::Active);
        assert_eq!(
            seen(&apply(&mut st, 1, Command::PutNode(n))),
            [(EventKind::Node, EventAction::Create, kv(&[("name", "vm")]))]
        );
        let ready = node(NodeState::Ready, Availability::Active);
        assert_eq!(
            seen(&apply(&mut st, 2, Command::PutNode(ready))),
            [(
                EventKind::Node,
                EventAction::Update,
                kv(&[("name", "vm"), ("state.new", "ready"), ("state.old", "unknown")])
            )]
        );
        let drained = node(NodeState::Ready, Availability::Drain);
        let update = Command::UpdateNode {
            node: drained,
            expected_version: 2,
        };
        assert_eq!(
            seen(&apply(&mut st, 3, update.clone())),
            [(
                EventKind::Node,
                EventAction::Update,
                kv(&[
                    ("availability.new", "drain"),
                    ("availability.old", "active"),
                    ("name", "vm")
                ])
            )]
        );
        // Refused (a stale version): nothing happened, no event.
        assert!(apply(&mut st, 4, update).is_empty());

        let secret = Secret {
            id: "s1".into(),
            meta: Meta {
                version: 0,
                created_at: OffsetDateTime::UNIX_EPOCH,
                updated_at: OffsetDateTime::UNIX_EPOCH,
            },
            annotations: Annotations {
                name: "db".into(),
                labels: BTreeMap::new(),
            },
            sealed_data: b"SKMARK-sealed".to_vec(),
        };
        let created = apply(&mut st, 5, Command::CreateSecret(secret));
        assert_eq!(
            seen(&created),
            [(EventKind::Secret, EventAction::Create, kv(&[("name", "db")]))]
        );
        assert!(!format!("{created:?}").contains("SKMARK"));
        let removed = apply(&mut st, 6, Command::RemoveSecret { id: "s1".into() });
        assert_eq!(
            seen(&removed),
            [(EventKind::Secret, EventAction::Remove, kv(&[("name", "db")]))]
        );
        assert_eq!(removed[0].id, "s1");
    }

    #[test]
    fn the_log_keeps_the_last_ones_and_feeds_new_ones() {
        let log = EventLog::default();
        let e = |i: usize| Event {
            kind: EventKind::Config,
            action: EventAction::Create,
            id: i.to_string(),
            attributes: BTreeMap::new(),
            time: OffsetDateTime::UNIX_EPOCH,
        };
        log.publish((0..RECENT + 10).map(e).collect());
        let (kept, mut feed) = log.subscribe();
        assert_eq!(kept.len(), RECENT);
        assert_eq!(kept[0].id, "10");
        log.publish(vec![e(999)]);
        assert_eq!(feed.try_recv().map(|e| e.id).ok(), Some("999".to_string()));
    }
}
