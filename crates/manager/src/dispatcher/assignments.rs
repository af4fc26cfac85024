//! What each node may hold, as swarmkit's `dispatcher/assignments.go`: the
//! tasks placed on it and not yet finished, and exactly the secrets and
//! configs those tasks reference; the message that takes an agent from what
//! it was sent to what it should now hold, each secret sealed to the
//! session's key. Pure functions of the cluster state.

use std::collections::{BTreeMap, BTreeSet};

use swarmkeep_api::dispatcher::{AssignmentsMessage, ConfigPayload, NetworkView, SealedSecret};
use swarmkeep_crypto::{BoxSealer, DataKey, SecretBytes};
use swarmkeep_store::ClusterState;
use swarmkeep_store::objects::Task;
use tonic::Status;

use crate::controlapi::convert::task_to_proto;

/// What one node holds: task versions, and the secrets and configs its
/// unfinished tasks reference.
#[derive(Debug, Default, PartialEq)]
pub(super) struct AssignmentSet {
    tasks: BTreeMap<String, u64>,
    secrets: BTreeSet<String>,
    configs: BTreeSet<String>,
    /// The overlays its tasks are on, as it needs them.
    network: NetworkView,
}

/// The tasks a node is given: placed on it and not yet finished there.
fn node_tasks<'a>(st: &'a ClusterState, node_id: &'a str) -> impl Iterator<Item = &'a Task> + 'a {
    st.tasks
        .values()
        .filter(move |t| t.node_id.as_deref() == Some(node_id) && !t.status.state.is_terminal())
}

pub(super) fn assignment_set(st: &ClusterState, node_id: &str) -> AssignmentSet {
    let mut set = AssignmentSet::default();
    for t in node_tasks(st, node_id) {
        set.tasks.insert(t.id.clone(), t.meta.version);
        set.secrets.extend(t.spec.secrets.iter().map(|r| r.id.clone()));
        set.configs.extend(t.spec.configs.iter().map(|r| r.id.clone()));
    }
    set.network = super::network_view::network_view(st, node_id);
    set
}

/// Whether one of the node's unfinished tasks references the secret.
pub fn node_may_read_secret(st: &ClusterState, node_id: &str, secret_id: &str) -> bool {
    node_tasks(st, node_id).any(|t| t.spec.secrets.iter().any(|r| r.id == secret_id))
}

pub(super) fn seal_secret(
    data_key: &DataKey,
    st: &ClusterState,
    sealer: &BoxSealer,
    id: &str,
) -> Result<Option<SealedSecret>, Status> {
    let Some(secret) = st.secrets.get(id) else {
        // Removed meanwhile; the task will fail on the node with "not found".
        tracing::debug!(%id, "assigned secret no longer exists");
        return Ok(None);
    };
    let plain: SecretBytes = data_key
        .open(id, &secret.sealed_data)
        .map_err(|_| Status::internal("a stored secret cannot be opened with this manager's data key"))?;
    Ok(Some(SealedSecret {
        id: id.to_string(),
        name: secret.annotations.name.clone(),
        sealed: sealer.seal(id, &plain),
    }))
}

/// The message that takes a node from `old` to `new`; `None` if nothing changed.
pub(super) fn diff_message(
    data_key: &DataKey,
    st: &ClusterState,
    old: Option<&AssignmentSet>,
    new: &AssignmentSet,
    session_key: &[u8],
) -> Result<Option<AssignmentsMessage>, Status> {
    let empty = AssignmentSet::default();
    let complete = old.is_none();
    let old = old.unwrap_or(&empty);
    if !complete && old == new {
        return Ok(None);
    }
    let sealer = BoxSealer::new(session_key).map_err(|_| Status::invalid_argument("invalid session public key"))?;
    let mut msg = AssignmentsMessage {
        complete,
        ephemeral_public_key: sealer.ephemeral_public().to_vec(),
        ..Default::default()
    };
    for (id, version) in &new.tasks {
        if old.tasks.get(id) != Some(version)
            && let Some(t) = st.tasks.get(id)
        {
            let mut task = task_to_proto(st, t);
            // The service's registry credential, for this node only.
            if let Some(sealed) = &t.spec.sealed_registry_auth
                && let Some(spec) = task.spec.as_mut()
            {
                let plain = crate::controlapi::registry_auth::open(data_key, &t.service_id, sealed)?;
                spec.registry_auth = sealer.seal(&format!("registry-auth:{}", t.id), &plain);
            }
            msg.tasks_updated.push(task);
        }
    }
    msg.tasks_removed = old
        .tasks
        .keys()
        .filter(|id| !new.tasks.contains_key(*id))
        .cloned()
        .collect();
    for id in new.secrets.difference(&old.secrets) {
        if let Some(s) = seal_secret(data_key, st, &sealer, id)? {
            msg.secrets_updated.push(s);
        }
    }
    msg.secrets_removed = old.secrets.difference(&new.secrets).cloned().collect();
    for id in new.configs.difference(&old.configs) {
        if let Some(c) = st.configs.get(id) {
            msg.configs_updated.push(ConfigPayload {
                id: id.clone(),
                name: c.annotations.name.clone(),
                data: c.data.clone(),
            });
        }
    }
    msg.configs_removed = old.configs.difference(&new.configs).cloned().collect();
    if complete || old.network != new.network {
        msg.network_view = Some(new.network.clone());
    }
    Ok(Some(msg))
}

#[cfg(test)]
mod tests {
    use swarmkeep_crypto::SessionKey;
    use swarmkeep_store::objects::{Annotations, Config, FileReference, Meta, Secret, TaskSpec, TaskState, TaskStatus};
    use time::OffsetDateTime;

    use super::*;

    fn meta(version: u64) -> Meta {
        Meta {
            version,
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn reference(id: &str) -> FileReference {
        FileReference {
            id: id.into(),
            name: id.into(),
            target: id.into(),
            uid: "0".into(),
            gid: "0".into(),
            mode: 0o444,
        }
    }

    fn task(id: &str, node: &str, state: TaskState, secrets: &[&str], configs: &[&str]) -> Task {
        Task {
            addresses: Vec::new(),
            endpoint_spec: Default::default(),
            id: id.into(),
            meta: meta(1),
            service_id: "svc".into(),
            service_name: "web".into(),
            slot: 1,
            node_id: Some(node.into()),
            spec: TaskSpec {
                secrets: secrets.iter().map(|s| reference(s)).collect(),
                configs: configs.iter().map(|c| reference(c)).collect(),
                ..Default::default()
            },
            spec_version: 1,
            running_at: None,
            restarts: Vec::new(),
            desired_state: TaskState::Running,
            status: TaskStatus {
                state,
                timestamp: OffsetDateTime::UNIX_EPOCH,
                message: String::new(),
                err: String::new(),
                exit_code: None,
                pid: None,
                port_status: Vec::new(),
            },
        }
    }

    /// Two secrets and a config under `key`; node `a` runs t1 (s1, c1) and
    /// has a finished t2 (s2); node `b` runs t3 (s2).
    fn state(key: &DataKey) -> ClusterState {
        let mut st = ClusterState::default();
        for (id, plain) in [("s1", b"one".as_slice()), ("s2", b"two".as_slice())] {
            st.secrets.insert(
                id.into(),
                Secret {
                    id: id.into(),
                    meta: meta(1),
                    annotations: Annotations {
                        name: format!("name-{id}"),
                        labels: Default::default(),
                    },
                    sealed_data: key.seal(id, &SecretBytes::new(plain.to_vec())),
                },
            );
        }
        st.configs.insert(
            "c1".into(),
            Config {
                id: "c1".into(),
                meta: meta(1),
                annotations: Annotations {
                    name: "conf".into(),
                    labels: Default::default(),
                },
                data: b"config".to_vec(),
            },
        );
        for t in [
            task("t1", "a", TaskState::Running, &["s1"], &["c1"]),
            task("t2", "a", TaskState::Complete, &["s2"], &[]),
            task("t3", "b", TaskState::Assigned, &["s2"], &[]),
        ] {
            st.tasks.insert(t.id.clone(), t);
        }
        st
    }

    fn ids(set: &BTreeSet<String>) -> Vec<&str> {
        set.iter().map(String::as_str).collect()
    }

    #[test]
    fn a_node_holds_only_what_its_unfinished_tasks_reference() {
        let key = DataKey::generate();
        let st = state(&key);
        let a = assignment_set(&st, "a");
        assert_eq!(a.tasks.keys().collect::<Vec<_>>(), ["t1"]);
        assert_eq!(ids(&a.secrets), ["s1"], "t2 finished: s2 is not a's any more");
        assert_eq!(ids(&a.configs), ["c1"]);
        let b = assignment_set(&st, "b");
        assert_eq!(ids(&b.secrets), ["s2"]);
        assert!(b.configs.is_empty());
        let nobody = assignment_set(&st, "nobody");
        assert!(nobody.tasks.is_empty() && nobody.secrets.is_empty() && nobody.configs.is_empty());
        assert!(nobody.network.networks.is_empty(), "no task: no overlay");
    }

    #[test]
    fn a_secret_is_readable_only_by_a_node_whose_unfinished_task_references_it() {
        let key = DataKey::generate();
        let st = state(&key);
        assert!(node_may_read_secret(&st, "a", "s1"));
        assert!(
            !node_may_read_secret(&st, "a", "s2"),
            "only a finished task of a references s2"
        );
        assert!(node_may_read_secret(&st, "b", "s2"));
        assert!(!node_may_read_secret(&st, "b", "s1"));
        assert!(!node_may_read_secret(&st, "c", "s1"));
        assert!(!node_may_read_secret(&st, "a", "c1"), "a config is not a secret");
    }

    #[test]
    fn the_first_message_is_complete_and_sealed_to_the_session() {
        let key = DataKey::generate();
        let st = state(&key);
        let session = SessionKey::generate();
        let set = assignment_set(&st, "a");
        let msg = diff_message(&key, &st, None, &set, &session.public())
            .unwrap()
            .expect("a first message");
        assert!(msg.complete);
        assert_eq!(
            msg.tasks_updated.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
            ["t1"]
        );
        assert_eq!(msg.secrets_updated.len(), 1);
        let sealed = &msg.secrets_updated[0];
        assert_eq!(sealed.id, "s1");
        assert!(!sealed.sealed.windows(3).any(|w| w == b"one"), "sealed, not plain");
        let opener = session.opener(&msg.ephemeral_public_key).unwrap();
        assert_eq!(opener.open("s1", &sealed.sealed).unwrap().expose(), b"one");
        assert!(opener.open("s2", &sealed.sealed).is_err(), "bound to its ID");
        let other = SessionKey::generate().opener(&msg.ephemeral_public_key).unwrap();
        assert!(other.open("s1", &sealed.sealed).is_err(), "only this session opens it");
        assert_eq!(msg.configs_updated.len(), 1);
        assert_eq!(msg.configs_updated[0].data, b"config");
    }

    #[test]
    fn later_messages_carry_only_the_difference() {
        let key = DataKey::generate();
        let mut st = state(&key);
        let session = SessionKey::generate().public();
        let before = assignment_set(&st, "a");
        assert!(
            diff_message(&key, &st, Some(&before), &before, &session)
                .unwrap()
                .is_none(),
            "nothing changed, nothing sent"
        );
        // t1 finishes and t4 (s2) arrives: s1 and c1 leave, s2 comes.
        st.tasks.get_mut("t1").unwrap().status.state = TaskState::Failed;
        let t4 = task("t4", "a", TaskState::Assigned, &["s2"], &[]);
        st.tasks.insert(t4.id.clone(), t4);
        let after = assignment_set(&st, "a");
        let msg = diff_message(&key, &st, Some(&before), &after, &session)
            .unwrap()
            .expect("a change");
        assert!(!msg.complete);
        assert_eq!(
            msg.tasks_updated.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
            ["t4"]
        );
        assert_eq!(msg.tasks_removed, ["t1"]);
        assert_eq!(
            msg.secrets_updated.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
            ["s2"]
        );
        assert_eq!(msg.secrets_removed, ["s1"]);
        assert_eq!(msg.configs_removed, ["c1"]);
        assert!(msg.configs_updated.is_empty());
    }

    #[test]
    fn a_secret_removed_meanwhile_is_skipped_and_a_bad_session_key_refused() {
        let key = DataKey::generate();
        let mut st = state(&key);
        st.secrets.remove("s1");
        let set = assignment_set(&st, "a");
        let msg = diff_message(&key, &st, None, &set, &SessionKey::generate().public())
            .unwrap()
            .unwrap();
        assert!(msg.secrets_updated.is_empty());
        assert!(diff_message(&key, &st, None, &set, &[1, 2, 3]).is_err());
        // A secret sealed under another data key is an error, not a leak.
        let st = state(&DataKey::generate());
        let set = assignment_set(&st, "a");
        assert!(diff_message(&key, &st, None, &set, &SessionKey::generate().public()).is_err());
    }
}
