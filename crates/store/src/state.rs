//! The cluster state every manager holds in memory, and the one function that
//! changes it: [`ClusterState::apply`].

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::command::{Command, CommandError, CommandResult, LabelUpdate, ObjectKind};
use crate::objects::{Cluster, Config, Node, Secret};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ClusterState {
    pub cluster: Option<Cluster>,
    pub nodes: BTreeMap<String, Node>,
    pub secrets: BTreeMap<String, Secret>,
    pub configs: BTreeMap<String, Config>,
    /// Lower-cased name → ID; names are unique case-insensitively, as in swarmkit.
    #[serde(skip)]
    secret_names: HashMap<String, String>,
    #[serde(skip)]
    config_names: HashMap<String, String>,
}

impl ClusterState {
    /// Rebuilds the derived indexes after deserializing a snapshot.
    pub fn reindex(&mut self) {
        self.secret_names = self
            .secrets
            .values()
            .map(|s| (s.annotations.name.to_lowercase(), s.id.clone()))
            .collect();
        self.config_names = self
            .configs
            .values()
            .map(|c| (c.annotations.name.to_lowercase(), c.id.clone()))
            .collect();
    }

    /// Name lookup is case-insensitive, as swarmkit's name index is.
    pub fn secret_by_name(&self, name: &str) -> Option<&Secret> {
        self.secret_names
            .get(&name.to_lowercase())
            .and_then(|id| self.secrets.get(id))
    }

    pub fn config_by_name(&self, name: &str) -> Option<&Config> {
        self.config_names
            .get(&name.to_lowercase())
            .and_then(|id| self.configs.get(id))
    }

    /// Applies one command at raft log `index`. A refused command changes nothing.
    pub fn apply(&mut self, index: u64, command: Command) -> CommandResult {
        match command {
            Command::InitCluster { mut cluster, mut node } => {
                if self.cluster.is_some() {
                    return Err(CommandError::AlreadyInitialized);
                }
                cluster.meta.version = index;
                node.meta.version = index;
                self.cluster = Some(*cluster);
                self.nodes.insert(node.id.clone(), *node);
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
                node.meta.created_at = old.meta.created_at;
                node.meta.version = index;
                self.nodes.insert(node.id.clone(), node);
            }
            Command::RemoveNode { id } => {
                self.nodes.remove(&id).ok_or_else(|| not_found(ObjectKind::Node, &id))?;
            }
            Command::PutNode(mut node) => {
                node.meta.version = index;
                if let Some(old) = self.nodes.get(&node.id) {
                    node.meta.created_at = old.meta.created_at;
                }
                self.nodes.insert(node.id.clone(), node);
            }
            Command::CreateSecret(mut secret) => {
                let key = secret.annotations.name.to_lowercase();
                if self.secret_names.contains_key(&key) || self.secrets.contains_key(&secret.id) {
                    return Err(CommandError::NameConflict {
                        kind: ObjectKind::Secret,
                        name: secret.annotations.name,
                    });
                }
                secret.meta.version = index;
                self.secret_names.insert(key, secret.id.clone());
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
                let secret = self
                    .secrets
                    .remove(&id)
                    .ok_or_else(|| not_found(ObjectKind::Secret, &id))?;
                self.secret_names.remove(&secret.annotations.name.to_lowercase());
            }
            Command::CreateConfig(mut config) => {
                let key = config.annotations.name.to_lowercase();
                if self.config_names.contains_key(&key) || self.configs.contains_key(&config.id) {
                    return Err(CommandError::NameConflict {
                        kind: ObjectKind::Config,
                        name: config.annotations.name,
                    });
                }
                config.meta.version = index;
                self.config_names.insert(key, config.id.clone());
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
                let config = self
                    .configs
                    .remove(&id)
                    .ok_or_else(|| not_found(ObjectKind::Config, &id))?;
                self.config_names.remove(&config.annotations.name.to_lowercase());
            }
        }
        Ok(index)
    }
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
}
