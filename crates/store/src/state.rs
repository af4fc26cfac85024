//! The cluster state every manager holds in memory, and the one function that
//! changes it: [`ClusterState::apply`].

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::command::{Command, CommandError, CommandResult, LabelUpdate, ObjectKind};
use crate::objects::{
    Cluster, Config, DEFAULT_CERT_EXPIRY_MS, Named, Network, NetworkAddress, Node, Secret, Service, Task, TaskState,
    TaskStatus, UpdateState,
};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ClusterState {
    pub cluster: Option<Cluster>,
    pub nodes: BTreeMap<String, Node>,
    pub secrets: BTreeMap<String, Secret>,
    pub configs: BTreeMap<String, Config>,
    #[serde(default)]
    pub services: BTreeMap<String, Service>,
    #[serde(default)]
    pub tasks: BTreeMap<String, Task>,
    /// Removed node IDs → until when their certificates could still be valid:
    /// no RPC is taken from them, and no node object comes back under them.
    #[serde(default)]
    pub removed_nodes: BTreeMap<String, OffsetDateTime>,
    #[serde(default)]
    pub networks: BTreeMap<String, Network>,
    /// Network ID → the last address handed out on it (as a `u32`): the
    /// allocator continues after it, so freed addresses are not reused at
    /// once (Docker's serial allocation), across leader changes.
    #[serde(default)]
    pub ipam_cursor: BTreeMap<String, u32>,
    #[serde(skip)]
    secret_names: NameIndex,
    #[serde(skip)]
    config_names: NameIndex,
    #[serde(skip)]
    service_names: NameIndex,
    #[serde(skip)]
    network_names: NameIndex,
    /// Moves with every applied command that can change what a node is
    /// assigned; see [`ClusterState::assignment_epoch`].
    #[serde(skip)]
    assignment_epoch: u64,
}

/// Epoch values are drawn from one counter, so a state restored from a
/// snapshot never repeats a value a reader saw before it.
static NEXT_EPOCH: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn next_epoch() -> u64 {
    NEXT_EPOCH.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Lower-cased name → ID: names are unique case-insensitively, as in swarmkit.
#[derive(Clone, Debug, Default)]
struct NameIndex(HashMap<String, String>);

impl NameIndex {
    fn of<'a, T: Named + 'a>(objects: impl Iterator<Item = &'a T>) -> Self {
        Self(objects.map(|o| (o.name().to_lowercase(), o.id().to_string())).collect())
    }

    fn get<'a, T>(&self, objects: &'a BTreeMap<String, T>, name: &str) -> Option<&'a T> {
        self.0.get(&name.to_lowercase()).and_then(|id| objects.get(id))
    }

    /// Refuses a new `obj` whose name (or ID) is taken.
    fn check_new<T: Named>(
        &self,
        kind: ObjectKind,
        obj: &T,
        objects: &BTreeMap<String, T>,
    ) -> Result<(), CommandError> {
        if self.0.contains_key(&obj.name().to_lowercase()) || objects.contains_key(obj.id()) {
            return Err(conflict(kind, obj));
        }
        Ok(())
    }

    /// Refuses renaming `old` to `new`'s name when another object has it.
    fn check_rename<T: Named>(&self, kind: ObjectKind, old: &T, new: &T) -> Result<(), CommandError> {
        let key = new.name().to_lowercase();
        if key != old.name().to_lowercase() && self.0.contains_key(&key) {
            return Err(conflict(kind, new));
        }
        Ok(())
    }

    fn insert<T: Named>(&mut self, obj: &T) {
        self.0.insert(obj.name().to_lowercase(), obj.id().to_string());
    }

    fn remove<T: Named>(&mut self, obj: &T) {
        self.0.remove(&obj.name().to_lowercase());
    }
}

/// A task holds its addresses until it has stopped.
fn holds_addresses(t: &Task) -> bool {
    !t.status.state.is_terminal()
}

/// `10.0.1.3` of `10.0.1.3/24`.
fn ip_part(addr: &str) -> &str {
    addr.split_once('/').map_or(addr, |(ip, _)| ip)
}

fn subnets_overlap(a: &str, b: &str) -> bool {
    let parse = |s: &str| -> Option<(u32, u32)> {
        let (ip, prefix) = s.split_once('/')?;
        let ip: std::net::Ipv4Addr = ip.parse().ok()?;
        let prefix: u32 = prefix.parse().ok()?;
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX.checked_shl(32 - prefix)?
        };
        Some((u32::from(ip) & mask, mask))
    };
    match (parse(a), parse(b)) {
        (Some((a, ma)), Some((b, mb))) => a & mb == b || b & ma == a,
        _ => false,
    }
}

fn conflict<T: Named>(kind: ObjectKind, obj: &T) -> CommandError {
    CommandError::NameConflict {
        kind,
        name: obj.name().to_string(),
    }
}

impl ClusterState {
    /// Rebuilds the derived indexes after deserializing a snapshot.
    pub fn reindex(&mut self) {
        self.assignment_epoch = next_epoch();
        self.secret_names = NameIndex::of(self.secrets.values());
        self.config_names = NameIndex::of(self.configs.values());
        self.service_names = NameIndex::of(self.services.values());
        self.network_names = NameIndex::of(self.networks.values());
    }

    /// Whether `id` names a node that was removed (and whose certificates may
    /// still be valid).
    pub fn is_removed(&self, id: &str) -> bool {
        self.removed_nodes.contains_key(id)
    }

    pub fn service_by_name(&self, name: &str) -> Option<&Service> {
        self.service_names.get(&self.services, name)
    }

    /// Adds `network` unless its name (or ID) is taken.
    fn create_network(&mut self, index: u64, mut network: Network) -> Result<(), CommandError> {
        self.network_names
            .check_new(ObjectKind::Network, &network, &self.networks)?;
        network.meta.version = index;
        self.network_names.insert(&network);
        self.networks.insert(network.id.clone(), network);
        Ok(())
    }

    pub fn network_by_name(&self, name: &str) -> Option<&Network> {
        self.network_names.get(&self.networks, name)
    }

    /// Every address held on an overlay network, with its holder's ID: the
    /// services' virtual IPs and the addresses of tasks that have not
    /// stopped (a task past running gives its addresses back).
    pub fn addresses_in_use(&self) -> impl Iterator<Item = (&str, &NetworkAddress)> {
        let vips = self
            .services
            .values()
            .flat_map(|s| s.endpoint.virtual_ips.iter().map(move |a| (s.id.as_str(), a)));
        let tasks = self
            .tasks
            .values()
            .filter(|t| holds_addresses(t))
            .flat_map(|t| t.addresses.iter().map(move |a| (t.id.as_str(), a)));
        let nodes = self
            .nodes
            .values()
            .filter_map(|n| n.ingress_address.as_ref().map(|a| (n.id.as_str(), a)));
        vips.chain(tasks).chain(nodes)
    }

    /// Refuses `held` (the addresses `holder` is to have) if another holder
    /// has one of them; `in_use` is [`Self::addresses_in_use`] as a map.
    fn check_addresses(
        in_use: &HashMap<(&str, &str), &str>,
        holder: &str,
        held: &[NetworkAddress],
    ) -> Result<(), CommandError> {
        for a in held {
            if let Some(other) = in_use.get(&(a.network_id.as_str(), ip_part(&a.addr)))
                && *other != holder
            {
                return Err(CommandError::AddressInUse {
                    addr: a.addr.clone(),
                    network: a.network_id.clone(),
                });
            }
        }
        Ok(())
    }

    fn in_use_map(&self) -> HashMap<(&str, &str), &str> {
        self.addresses_in_use()
            .map(|(holder, a)| ((a.network_id.as_str(), ip_part(&a.addr)), holder))
            .collect()
    }

    /// Moves each network's cursor to the addresses `new` has that `old`
    /// did not.
    fn advance_cursor(&mut self, old: &[NetworkAddress], new: &[NetworkAddress]) {
        for a in new.iter().filter(|a| !old.contains(a)) {
            if let Ok(ip) = ip_part(&a.addr).parse::<std::net::Ipv4Addr>() {
                self.ipam_cursor.insert(a.network_id.clone(), u32::from(ip));
            }
        }
    }

    /// Why the network cannot be removed (swarmkit's words), if it cannot.
    fn network_in_use(&self, network: &Network) -> Option<String> {
        let id = &network.id;
        if network.spec.ingress {
            return self
                .services
                .values()
                .find(|s| {
                    s.spec
                        .endpoint
                        .ports
                        .iter()
                        .any(|p| p.publish_mode == crate::objects::PublishMode::Ingress)
                })
                .map(|s| {
                    format!(
                        "ingress network cannot be removed because service {} depends on it",
                        s.id
                    )
                });
        }
        if let Some(s) = self
            .services
            .values()
            .find(|s| s.spec.task.networks.iter().any(|n| n.target == *id))
        {
            return Some(format!("network {id} is in use by service {}", s.id));
        }
        self.tasks
            .values()
            .find(|t| {
                t.desired_state <= TaskState::Running
                    && !t.status.state.is_terminal()
                    && (t.spec.networks.iter().any(|n| n.target == *id)
                        || t.addresses.iter().any(|a| a.network_id == *id))
            })
            .map(|t| format!("network {id} is in use by task {}", t.id))
    }

    /// Names of the services whose tasks reference the secret (or config) `id`.
    pub fn services_using(&self, id: &str, secret: bool) -> Vec<String> {
        let mut names: Vec<String> = self
            .services
            .values()
            .filter(|s| {
                let refs = if secret {
                    &s.spec.task.secrets
                } else {
                    &s.spec.task.configs
                };
                refs.iter().any(|r| r.id == id)
            })
            .map(|s| s.spec.annotations.name.clone())
            .collect();
        names.sort();
        names
    }

    /// The first secret or config a service spec references that is gone.
    fn missing_reference(&self, service: &Service) -> Option<CommandError> {
        let task = &service.spec.task;
        if let Some(r) = task.secrets.iter().find(|r| !self.secrets.contains_key(&r.id)) {
            return Some(not_found(ObjectKind::Secret, &r.name));
        }
        if let Some(r) = task.configs.iter().find(|r| !self.configs.contains_key(&r.id)) {
            return Some(not_found(ObjectKind::Config, &r.name));
        }
        if let Some(n) = task.networks.iter().find(|n| !self.networks.contains_key(&n.target)) {
            return Some(not_found(ObjectKind::Network, &n.target));
        }
        None
    }

    /// Name lookup is case-insensitive, as swarmkit's name index is.
    pub fn secret_by_name(&self, name: &str) -> Option<&Secret> {
        self.secret_names.get(&self.secrets, name)
    }

    pub fn config_by_name(&self, name: &str) -> Option<&Config> {
        self.config_names.get(&self.configs, name)
    }

    /// Applies one command at raft log `index`. A refused command changes nothing.
    /// A value that changes whenever an applied command may have changed
    /// some node's assignments — tasks, services, networks, nodes, cluster
    /// settings — and not for secret and config creates, label updates and
    /// removals, which change none (a task's reference comes with a task
    /// change, and a referenced secret or config cannot be removed). The
    /// dispatcher recomputes a node's assignments only when it moved, so a
    /// secret write costs the leader the same whatever the number of nodes.
    pub fn assignment_epoch(&self) -> u64 {
        self.assignment_epoch
    }

    pub fn apply(&mut self, index: u64, command: Command) -> CommandResult {
        if !matches!(
            command,
            Command::CreateSecret(_)
                | Command::UpdateSecretLabels(_)
                | Command::RemoveSecret { .. }
                | Command::CreateConfig(_)
                | Command::UpdateConfigLabels(_)
                | Command::RemoveConfig { .. }
        ) {
            self.assignment_epoch = next_epoch();
        }
        match command {
            Command::InitCluster {
                mut cluster,
                mut node,
                networks,
            } => {
                if self.cluster.is_some() {
                    return Err(CommandError::AlreadyInitialized);
                }
                cluster.meta.version = index;
                node.meta.version = index;
                self.cluster = Some(*cluster);
                self.nodes.insert(node.id.clone(), *node);
                for network in networks {
                    let _ = self.create_network(index, network);
                }
            }
            Command::UpdateCluster {
                cluster,
                expected_version,
            } => {
                if self
                    .cluster
                    .as_ref()
                    .is_some_and(|c| c.meta.version != expected_version)
                {
                    return Err(CommandError::VersionConflict);
                }
                return self.apply(index, Command::PutCluster(cluster));
            }
            Command::PutCluster(mut cluster) => {
                let Some(old) = &self.cluster else {
                    return Err(CommandError::NotFound {
                        kind: ObjectKind::Cluster,
                        id: cluster.id,
                    });
                };
                cluster.meta.created_at = old.meta.created_at;
                cluster.meta.version = index;
                self.cluster = Some(*cluster);
            }
            Command::UpdateNode {
                mut node,
                expected_version,
            } => {
                let old = self
                    .nodes
                    .get(&node.id)
                    .ok_or_else(|| not_found(ObjectKind::Node, &node.id))?;
                if old.meta.version != expected_version {
                    return Err(CommandError::VersionConflict);
                }
                if let Some(a) = &node.ingress_address {
                    Self::check_addresses(&self.in_use_map(), &node.id, std::slice::from_ref(a))?;
                }
                node.meta.created_at = old.meta.created_at;
                node.meta.version = index;
                self.nodes.insert(node.id.clone(), node);
            }
            Command::RemoveNode { id, removed_at } => {
                let node = self.nodes.remove(&id).ok_or_else(|| not_found(ObjectKind::Node, &id))?;
                let at = removed_at.unwrap_or(node.meta.updated_at);
                let lifetime = self
                    .cluster
                    .as_ref()
                    .map_or(DEFAULT_CERT_EXPIRY_MS, |c| c.node_cert_expiry_ms);
                let lifetime = time::Duration::milliseconds(i64::try_from(lifetime).unwrap_or(i64::MAX));
                self.removed_nodes.retain(|_, until| *until > at);
                self.removed_nodes.insert(id.clone(), at.saturating_add(lifetime));
                for task in self.tasks.values_mut() {
                    if task.node_id.as_deref() == Some(id.as_str()) && !task.status.state.is_terminal() {
                        orphan(task, at);
                        task.meta.version = index;
                    }
                }
            }
            Command::PutNode(node) if self.removed_nodes.contains_key(&node.id) => {
                // A removed node never comes back under its old ID.
                return Err(not_found(ObjectKind::Node, &node.id));
            }
            Command::PutNode(mut node) => {
                node.meta.version = index;
                if let Some(old) = self.nodes.get(&node.id) {
                    node.meta.created_at = old.meta.created_at;
                }
                self.nodes.insert(node.id.clone(), node);
            }
            Command::CreateSecret(mut secret) => {
                self.secret_names
                    .check_new(ObjectKind::Secret, &secret, &self.secrets)?;
                secret.meta.version = index;
                self.secret_names.insert(&secret);
                self.secrets.insert(secret.id.clone(), secret);
            }
            Command::UpdateSecretLabels(update) => {
                let secret = self
                    .secrets
                    .get_mut(&update.id)
                    .ok_or_else(|| not_found(ObjectKind::Secret, &update.id))?;
                apply_labels(&mut secret.meta, &mut secret.annotations.labels, index, update)?;
            }
            Command::RemoveSecret { id } => {
                self.check_unused(&id, true)?;
                let secret = self
                    .secrets
                    .remove(&id)
                    .ok_or_else(|| not_found(ObjectKind::Secret, &id))?;
                self.secret_names.remove(&secret);
            }
            Command::CreateConfig(mut config) => {
                self.config_names
                    .check_new(ObjectKind::Config, &config, &self.configs)?;
                config.meta.version = index;
                self.config_names.insert(&config);
                self.configs.insert(config.id.clone(), config);
            }
            Command::UpdateConfigLabels(update) => {
                let config = self
                    .configs
                    .get_mut(&update.id)
                    .ok_or_else(|| not_found(ObjectKind::Config, &update.id))?;
                apply_labels(&mut config.meta, &mut config.annotations.labels, index, update)?;
            }
            Command::RemoveConfig { id } => {
                self.check_unused(&id, false)?;
                let config = self
                    .configs
                    .remove(&id)
                    .ok_or_else(|| not_found(ObjectKind::Config, &id))?;
                self.config_names.remove(&config);
            }
            Command::CreateNetwork(network) => {
                if let Some(alloc) = &network.allocation
                    && let Some(other) = self.networks.values().find(|n| {
                        n.allocation
                            .as_ref()
                            .is_some_and(|a| a.vni == alloc.vni || subnets_overlap(&a.subnet, &alloc.subnet))
                    })
                {
                    return Err(CommandError::AddressInUse {
                        addr: alloc.subnet.clone(),
                        network: other.id.clone(),
                    });
                }
                self.create_network(index, network)?
            }
            Command::RemoveNetwork { id } => {
                let network = self
                    .networks
                    .get(&id)
                    .ok_or_else(|| not_found(ObjectKind::Network, &id))?;
                if let Some(why) = self.network_in_use(network) {
                    return Err(CommandError::Refused(why));
                }
                if let Some(network) = self.networks.remove(&id) {
                    self.network_names.remove(&network);
                }
                self.ipam_cursor.remove(&id);
            }
            Command::CreateService(mut service) => {
                self.service_names
                    .check_new(ObjectKind::Service, &service, &self.services)?;
                if let Some(e) = self.missing_reference(&service) {
                    return Err(e);
                }
                Self::check_addresses(&self.in_use_map(), &service.id, &service.endpoint.virtual_ips)?;
                self.advance_cursor(&[], &service.endpoint.virtual_ips.clone());
                service.meta.version = index;
                self.service_names.insert(&service);
                self.services.insert(service.id.clone(), service);
            }
            Command::UpdateService {
                mut service,
                expected_version,
            } => {
                let old = self
                    .services
                    .get(&service.id)
                    .ok_or_else(|| not_found(ObjectKind::Service, &service.id))?;
                if old.meta.version != expected_version {
                    return Err(CommandError::VersionConflict);
                }
                self.service_names.check_rename(ObjectKind::Service, old, &service)?;
                if let Some(e) = self.missing_reference(&service) {
                    return Err(e);
                }
                Self::check_addresses(&self.in_use_map(), &service.id, &service.endpoint.virtual_ips)?;
                let old_vips = old.endpoint.virtual_ips.clone();
                self.advance_cursor(&old_vips, &service.endpoint.virtual_ips.clone());
                let old = &self.services[&service.id];
                service.meta.created_at = old.meta.created_at;
                service.meta.version = index;
                let old = old.clone();
                self.service_names.remove(&old);
                self.service_names.insert(&service);
                self.services.insert(service.id.clone(), service);
            }
            Command::CompleteServiceUpdate {
                id,
                started_at,
                completed_at,
            } => {
                let service = self
                    .services
                    .get_mut(&id)
                    .ok_or_else(|| not_found(ObjectKind::Service, &id))?;
                if let Some(status) = service.update_status.as_mut().filter(|s| s.started_at == started_at) {
                    let next = match status.state {
                        UpdateState::Updating => Some((UpdateState::Completed, "update completed")),
                        UpdateState::RollbackStarted => Some((UpdateState::RollbackCompleted, "rollback completed")),
                        UpdateState::Paused
                        | UpdateState::RollbackPaused
                        | UpdateState::Completed
                        | UpdateState::RollbackCompleted => None,
                    };
                    if let Some((state, message)) = next {
                        status.state = state;
                        status.message = message.into();
                        status.completed_at = Some(completed_at);
                        service.meta.version = index;
                    }
                }
            }
            Command::RemoveService { id } => {
                let service = self
                    .services
                    .remove(&id)
                    .ok_or_else(|| not_found(ObjectKind::Service, &id))?;
                self.service_names.remove(&service);
                self.tasks.retain(|_, t| t.service_id != id);
            }
            Command::PutTasks(tasks) => {
                {
                    let in_use = self.in_use_map();
                    for task in tasks.iter().filter(|t| holds_addresses(t)) {
                        Self::check_addresses(&in_use, &task.id, &task.addresses)?;
                    }
                    // Two new tasks of the command with one address.
                    let mut seen = std::collections::HashSet::new();
                    for task in tasks.iter().filter(|t| holds_addresses(t)) {
                        for a in &task.addresses {
                            let old = self.tasks.get(&task.id).map(|o| o.addresses.as_slice()).unwrap_or(&[]);
                            if !old.contains(a) && !seen.insert((a.network_id.clone(), a.addr.clone())) {
                                return Err(CommandError::AddressInUse {
                                    addr: a.addr.clone(),
                                    network: a.network_id.clone(),
                                });
                            }
                        }
                    }
                }
                for mut task in tasks {
                    let old_addresses = self
                        .tasks
                        .get(&task.id)
                        .map(|o| o.addresses.clone())
                        .unwrap_or_default();
                    self.advance_cursor(&old_addresses, &task.addresses.clone());
                    // A placement decided before its node was removed: the
                    // task is orphaned as RemoveNode orphans the node's tasks.
                    if task
                        .node_id
                        .as_ref()
                        .is_some_and(|n| self.removed_nodes.contains_key(n))
                        && !task.status.state.is_terminal()
                    {
                        let at = task.status.timestamp;
                        orphan(&mut task, at);
                    }
                    task.meta.version = index;
                    if let Some(old) = self.tasks.get(&task.id) {
                        task.meta.created_at = old.meta.created_at;
                        // The orchestrator decided on a status it read earlier;
                        // an agent's report applied meanwhile is not undone.
                        if old.status.state > task.status.state {
                            task.status = old.status.clone();
                        }
                        task.running_at = task.running_at.or(old.running_at);
                    }
                    self.tasks.insert(task.id.clone(), task);
                }
            }
            Command::UpdateTaskStatus { id, node_id, status } => {
                let task = self
                    .tasks
                    .get_mut(&id)
                    .ok_or_else(|| not_found(ObjectKind::Task, &id))?;
                if task.node_id.as_deref() != Some(node_id.as_str()) || self.removed_nodes.contains_key(&node_id) {
                    return Err(CommandError::NotAssigned { id });
                }
                // A task only moves forward; a late report of an earlier
                // state is dropped.
                if status.state > task.status.state {
                    if status.state == TaskState::Running {
                        task.running_at = Some(status.timestamp);
                    }
                    task.status = status;
                    task.meta.version = index;
                    task.meta.updated_at = task.status.timestamp;
                }
            }
            Command::RemoveTasks(ids) => {
                for id in ids {
                    self.tasks.remove(&id);
                }
            }
        }
        Ok(index)
    }

    fn check_unused(&self, id: &str, secret: bool) -> Result<(), CommandError> {
        let services = self.services_using(id, secret);
        if services.is_empty() {
            return Ok(());
        }
        let (kind, name) = if secret {
            (
                ObjectKind::Secret,
                self.secrets.get(id).map(|s| s.annotations.name.clone()),
            )
        } else {
            (
                ObjectKind::Config,
                self.configs.get(id).map(|c| c.annotations.name.clone()),
            )
        };
        Err(CommandError::InUse {
            kind,
            name: name.unwrap_or_else(|| id.to_string()),
            services,
        })
    }
}

/// A task whose node was removed: it will not run there, and is replaced.
fn orphan(task: &mut Task, at: OffsetDateTime) {
    task.desired_state = TaskState::Shutdown;
    task.status = TaskStatus {
        state: TaskState::Orphaned,
        timestamp: at,
        message: "node removed".into(),
        err: String::new(),
        exit_code: None,
        pid: None,
        port_status: Vec::new(),
    };
}

fn not_found(kind: ObjectKind, id: &str) -> CommandError {
    CommandError::NotFound {
        kind,
        id: id.to_string(),
    }
}

fn apply_labels(
    meta: &mut crate::objects::Meta,
    labels: &mut BTreeMap<String, String>,
    index: u64,
    update: LabelUpdate,
) -> Result<(), CommandError> {
    if meta.version != update.expected_version {
        return Err(CommandError::VersionConflict);
    }
    *labels = update.labels;
    meta.version = index;
    meta.updated_at = update.updated_at;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::{Annotations, Meta};
    use time::OffsetDateTime;

    fn secret(id: &str, name: &str) -> Secret {
        let now = OffsetDateTime::UNIX_EPOCH;
        Secret {
            id: id.into(),
            meta: Meta {
                version: 0,
                created_at: now,
                updated_at: now,
            },
            annotations: Annotations {
                name: name.into(),
                labels: BTreeMap::new(),
            },
            sealed_data: vec![1, 2, 3],
        }
    }

    #[test]
    fn names_are_unique_case_insensitively_and_refusals_change_nothing() {
        let mut st = ClusterState::default();
        assert_eq!(st.apply(5, Command::CreateSecret(secret("a", "Db"))), Ok(5));
        let err = st.apply(6, Command::CreateSecret(secret("b", "dB"))).unwrap_err();
        assert_eq!(err.to_string(), "secret dB already exists");
        assert_eq!(st.secrets.len(), 1);
        assert_eq!(st.secrets["a"].meta.version, 5);
        assert!(st.secret_by_name("Db").is_some());
        assert_eq!(st.secret_by_name("db").map(|s| s.id.as_str()), Some("a"));
    }

    #[test]
    fn label_update_checks_version() {
        let mut st = ClusterState::default();
        st.apply(3, Command::CreateSecret(secret("a", "x"))).unwrap();
        let upd = |v| {
            Command::UpdateSecretLabels(LabelUpdate {
                id: "a".into(),
                expected_version: v,
                labels: [("k".to_string(), "v".to_string())].into(),
                updated_at: OffsetDateTime::UNIX_EPOCH,
            })
        };
        assert_eq!(st.apply(4, upd(2)), Err(CommandError::VersionConflict));
        assert_eq!(st.apply(4, upd(3)), Ok(4));
        assert_eq!(st.secrets["a"].annotations.labels["k"], "v");
        assert_eq!(st.secrets["a"].meta.version, 4);
    }

    #[test]
    fn remove_frees_the_name() {
        let mut st = ClusterState::default();
        st.apply(1, Command::CreateSecret(secret("a", "x"))).unwrap();
        st.apply(2, Command::RemoveSecret { id: "a".into() }).unwrap();
        assert!(st.apply(3, Command::RemoveSecret { id: "a".into() }).is_err());
        assert_eq!(st.apply(4, Command::CreateSecret(secret("b", "x"))), Ok(4));
    }

    #[test]
    fn reindex_restores_name_lookup() {
        let mut st = ClusterState::default();
        st.apply(1, Command::CreateSecret(secret("a", "x"))).unwrap();
        let json = serde_json::to_string(&st).unwrap();
        let mut back: ClusterState = serde_json::from_str(&json).unwrap();
        back.reindex();
        assert_eq!(back.secret_by_name("x").map(|s| s.id.as_str()), Some("a"));
    }

    #[test]
    fn secret_and_config_writes_leave_the_assignment_epoch_and_other_writes_move_it() {
        let mut st = ClusterState::default();
        let e0 = st.assignment_epoch();
        st.apply(1, Command::CreateSecret(secret("a", "x"))).unwrap();
        st.apply(
            2,
            Command::UpdateSecretLabels(crate::command::LabelUpdate {
                id: "a".into(),
                expected_version: 1,
                labels: BTreeMap::from([("k".to_string(), "v".to_string())]),
                updated_at: OffsetDateTime::UNIX_EPOCH,
            }),
        )
        .unwrap();
        st.apply(3, Command::RemoveSecret { id: "a".into() }).unwrap();
        assert_eq!(st.assignment_epoch(), e0, "secret writes change no node's assignments");
        // A task change moves it (even one refused: conservative).
        st.apply(4, Command::RemoveTasks(vec!["none".into()])).ok();
        let e1 = st.assignment_epoch();
        assert_ne!(e1, e0);
        // A state restored from a snapshot never shows an epoch seen before.
        let mut back: ClusterState = serde_json::from_str(&serde_json::to_string(&st).unwrap()).unwrap();
        back.reindex();
        assert_ne!(back.assignment_epoch(), e1);
        assert_ne!(back.assignment_epoch(), e0);
    }

    fn task_status(state: crate::objects::TaskState) -> crate::objects::TaskStatus {
        crate::objects::TaskStatus {
            state,
            timestamp: OffsetDateTime::UNIX_EPOCH,
            message: String::new(),
            err: String::new(),
            exit_code: None,
            pid: None,
            port_status: Vec::new(),
        }
    }

    #[test]
    fn only_the_tasks_node_moves_its_state_and_only_forward() {
        use crate::objects::{Task, TaskSpec, TaskState};
        let mut st = ClusterState::default();
        let now = OffsetDateTime::UNIX_EPOCH;
        let task = Task {
            addresses: Default::default(),
            endpoint_spec: Default::default(),
            id: "t".into(),
            meta: Meta {
                version: 0,
                created_at: now,
                updated_at: now,
            },
            service_id: "s".into(),
            service_name: "s".into(),
            slot: 1,
            node_id: Some("n1".into()),
            spec: TaskSpec::default(),
            spec_version: 1,
            desired_state: TaskState::Running,
            status: task_status(TaskState::Assigned),
            running_at: None,
            restarts: Vec::new(),
        };
        st.apply(1, Command::PutTasks(vec![task])).unwrap();
        let update = |node: &str, state| Command::UpdateTaskStatus {
            id: "t".into(),
            node_id: node.into(),
            status: task_status(state),
        };
        assert_eq!(
            st.apply(2, update("n2", TaskState::Running)),
            Err(CommandError::NotAssigned { id: "t".into() })
        );
        assert_eq!(st.tasks["t"].status.state, TaskState::Assigned);
        st.apply(3, update("n1", TaskState::Running)).unwrap();
        st.apply(4, update("n1", TaskState::Starting)).unwrap();
        assert_eq!(st.tasks["t"].status.state, TaskState::Running);
        assert_eq!(st.tasks["t"].meta.version, 3);
    }

    #[test]
    fn a_secret_in_use_is_not_removed() {
        use crate::objects::{FileReference, Service, ServiceMode, ServiceSpec, TaskSpec};
        let mut st = ClusterState::default();
        st.apply(1, Command::CreateSecret(secret("a", "db"))).unwrap();
        let now = OffsetDateTime::UNIX_EPOCH;
        let service = |id: &str, name: &str| Service {
            endpoint: Default::default(),
            id: id.into(),
            meta: Meta {
                version: 0,
                created_at: now,
                updated_at: now,
            },
            spec: ServiceSpec {
                endpoint: Default::default(),
                annotations: Annotations {
                    name: name.into(),
                    labels: BTreeMap::new(),
                },
                task: TaskSpec {
                    secrets: vec![FileReference {
                        id: "a".into(),
                        name: "db".into(),
                        target: "db".into(),
                        uid: "0".into(),
                        gid: "0".into(),
                        mode: 0o444,
                    }],
                    ..Default::default()
                },
                mode: ServiceMode::Replicated { replicas: 1 },
                update_config: Default::default(),
                rollback_config: Default::default(),
                omitted: Default::default(),
            },
            previous_spec: None,
            update_status: None,
        };
        st.apply(2, Command::CreateService(service("s1", "web"))).unwrap();
        st.apply(3, Command::CreateService(service("s2", "api"))).unwrap();
        let err = st.apply(4, Command::RemoveSecret { id: "a".into() }).unwrap_err();
        assert_eq!(
            err.to_string(),
            "secret 'db' is in use by the following services: api, web"
        );
        assert!(st.secrets.contains_key("a"));
        st.apply(5, Command::RemoveService { id: "s1".into() }).unwrap();
        st.apply(6, Command::RemoveService { id: "s2".into() }).unwrap();
        st.apply(7, Command::RemoveSecret { id: "a".into() }).unwrap();
        // A service cannot be made to reference a secret that is gone.
        assert!(st.apply(8, Command::CreateService(service("s3", "late"))).is_err());
    }

    #[test]
    fn a_removed_node_stays_removed_and_its_tasks_are_orphaned() {
        use crate::objects::{Availability, NodeDescription, NodeRole, NodeState, TaskSpec};
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let meta = Meta {
            version: 0,
            created_at: t0,
            updated_at: t0,
        };
        let node = |id: &str| Node {
            id: id.into(),
            meta: meta.clone(),
            labels: BTreeMap::new(),
            role: NodeRole::Worker,
            availability: Availability::Active,
            state: NodeState::Ready,
            description: NodeDescription {
                hostname: id.into(),
                os: "linux".into(),
                architecture: "x86_64".into(),
                nano_cpus: 0,
                memory_bytes: 0,
                engine_version: String::new(),
            },
            addr: String::new(),
            raft_id: None,
            manager_addr: None,
            ingress_address: None,
            raft_unreachable: false,
            data_path_addr: String::new(),
        };
        let task = |id: &str, node: &str, state: TaskState| Task {
            addresses: Default::default(),
            endpoint_spec: Default::default(),
            id: id.into(),
            meta: meta.clone(),
            service_id: "svc".into(),
            service_name: "web".into(),
            slot: 1,
            node_id: Some(node.into()),
            spec: TaskSpec::default(),
            spec_version: 1,
            desired_state: TaskState::Running,
            status: TaskStatus {
                state,
                timestamp: t0,
                message: String::new(),
                err: String::new(),
                exit_code: None,
                pid: None,
                port_status: Vec::new(),
            },
            running_at: None,
            restarts: Vec::new(),
        };
        let mut st = ClusterState::default();
        st.apply(1, Command::PutNode(node("w1"))).unwrap();
        st.apply(2, Command::PutNode(node("w2"))).unwrap();
        st.apply(
            3,
            Command::PutTasks(vec![
                task("running", "w1", TaskState::Running),
                task("done", "w1", TaskState::Complete),
                task("elsewhere", "w2", TaskState::Running),
            ]),
        )
        .unwrap();
        let at = t0 + time::Duration::days(1);
        st.apply(
            4,
            Command::RemoveNode {
                id: "w1".into(),
                removed_at: Some(at),
            },
        )
        .unwrap();
        assert!(st.is_removed("w1") && !st.nodes.contains_key("w1"));
        assert_eq!(st.removed_nodes["w1"], at + time::Duration::days(90));
        let orphaned = &st.tasks["running"];
        assert_eq!(orphaned.status.state, TaskState::Orphaned);
        assert_eq!(orphaned.desired_state, TaskState::Shutdown);
        assert_eq!(orphaned.meta.version, 4);
        assert_eq!(
            st.tasks["done"].status.state,
            TaskState::Complete,
            "finished tasks keep their end"
        );
        assert_eq!(st.tasks["elsewhere"].status.state, TaskState::Running);
        // The ID never comes back, and its agent's reports are refused.
        let err = st.apply(5, Command::PutNode(node("w1"))).unwrap_err();
        assert_eq!(err.to_string(), "node w1 not found");
        assert!(!st.nodes.contains_key("w1"));
        assert!(
            st.apply(
                6,
                Command::UpdateTaskStatus {
                    id: "running".into(),
                    node_id: "w1".into(),
                    status: task("running", "w1", TaskState::Running).status,
                },
            )
            .is_err()
        );
        assert_eq!(st.tasks["running"].status.state, TaskState::Orphaned);
        // A placement decided before the removal, applied after it.
        st.apply(6, Command::PutTasks(vec![task("late", "w1", TaskState::Assigned)]))
            .unwrap();
        assert_eq!(st.tasks["late"].status.state, TaskState::Orphaned);
        assert_eq!(st.tasks["late"].desired_state, TaskState::Shutdown);
        // Once its certificates expired, the ID is forgotten (at the next removal).
        let later = at + time::Duration::days(91);
        st.apply(
            7,
            Command::RemoveNode {
                id: "w2".into(),
                removed_at: Some(later),
            },
        )
        .unwrap();
        assert!(!st.is_removed("w1"));
        assert!(st.is_removed("w2"));
        // The state survives a snapshot round trip.
        let back: ClusterState = serde_json::from_slice(&serde_json::to_vec(&st).unwrap()).unwrap();
        assert_eq!(back.removed_nodes, st.removed_nodes);
    }

    #[test]
    fn a_cluster_update_against_a_stale_version_changes_nothing() {
        let mut st = ClusterState::default();
        let cluster = crate::objects::Cluster {
            data_path_port: Default::default(),
            default_addr_pool: Default::default(),
            subnet_size: Default::default(),
            id: "c".into(),
            meta: Meta {
                version: 3,
                created_at: OffsetDateTime::UNIX_EPOCH,
                updated_at: OffsetDateTime::UNIX_EPOCH,
            },
            name: "default".into(),
            snapshot_interval: 10_000,
            keep_old_snapshots: 0,
            election_tick: 10,
            heartbeat_tick: 1,
            log_entries_for_slow_followers: crate::objects::DEFAULT_LOG_ENTRIES_FOR_SLOW_FOLLOWERS,
            task_history_retention_limit: 5,
            heartbeat_period_ms: 5000,
            ca_cert_pem: String::new(),
            sealed_ca_key: Vec::new(),
            sealed_worker_token: Vec::new(),
            sealed_manager_token: Vec::new(),
            node_cert_expiry_ms: 1,
            ca_force_rotate: 0,
            autolock: false,
            sealed_unlock_key: Vec::new(),
        };
        st.cluster = Some(cluster.clone());
        let mut changed = cluster.clone();
        changed.task_history_retention_limit = 9;
        let stale = Command::UpdateCluster {
            cluster: Box::new(changed.clone()),
            expected_version: cluster.meta.version + 1,
        };
        assert_eq!(st.apply(10, stale), Err(CommandError::VersionConflict));
        assert_eq!(st.cluster.as_ref().unwrap().task_history_retention_limit, 5);
        let current = Command::UpdateCluster {
            cluster: Box::new(changed),
            expected_version: cluster.meta.version,
        };
        st.apply(11, current).unwrap();
        assert_eq!(st.cluster.as_ref().unwrap().task_history_retention_limit, 9);
    }

    #[test]
    fn a_service_attaches_only_to_networks_that_exist() {
        use crate::objects::{NetworkAttachmentConfig, NetworkSpec, Service, ServiceMode, ServiceSpec, TaskSpec};
        let mut st = ClusterState::default();
        let now = OffsetDateTime::UNIX_EPOCH;
        let meta = Meta {
            version: 0,
            created_at: now,
            updated_at: now,
        };
        let network = |id: &str, name: &str| Network {
            allocation: Default::default(),
            id: id.into(),
            meta: meta.clone(),
            spec: NetworkSpec {
                annotations: Annotations {
                    name: name.into(),
                    labels: BTreeMap::new(),
                },
                driver: "host".into(),
                ..Default::default()
            },
        };
        st.apply(1, Command::CreateNetwork(network("n1", "host"))).unwrap();
        assert_eq!(
            st.apply(2, Command::CreateNetwork(network("n2", "HOST"))),
            Err(CommandError::NameConflict {
                kind: ObjectKind::Network,
                name: "HOST".into()
            })
        );
        assert_eq!(st.network_by_name("Host").map(|n| n.id.as_str()), Some("n1"));
        let service = |target: &str| Service {
            endpoint: Default::default(),
            id: "s".into(),
            meta: meta.clone(),
            spec: ServiceSpec {
                endpoint: Default::default(),
                annotations: Annotations {
                    name: "web".into(),
                    labels: BTreeMap::new(),
                },
                task: TaskSpec {
                    networks: vec![NetworkAttachmentConfig {
                        target: target.into(),
                        aliases: Vec::new(),
                    }],
                    ..Default::default()
                },
                mode: ServiceMode::Replicated { replicas: 1 },
                update_config: Default::default(),
                rollback_config: Default::default(),
                omitted: Default::default(),
            },
            previous_spec: None,
            update_status: None,
        };
        assert_eq!(
            st.apply(3, Command::CreateService(service("gone"))),
            Err(CommandError::NotFound {
                kind: ObjectKind::Network,
                id: "gone".into()
            })
        );
        assert!(st.services.is_empty());
        st.apply(4, Command::CreateService(service("n1"))).unwrap();
        // A snapshot keeps the networks and their name index.
        let mut copy: ClusterState = serde_json::from_str(&serde_json::to_string(&st).unwrap()).unwrap();
        copy.reindex();
        assert_eq!(copy.network_by_name("host").map(|n| n.id.as_str()), Some("n1"));
    }
}
