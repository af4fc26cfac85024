//! What the dispatcher gave this node, in memory only: the tasks placed on
//! it, and the secrets and configs they reference. A session's first message
//! is the complete set; every later one is a difference.

use std::collections::{BTreeMap, HashMap};

use swarmkeep_api::control;
use swarmkeep_api::dispatcher::AssignmentsMessage;
use swarmkeep_crypto::{SecretBytes, SessionKey};

#[derive(Default)]
pub(crate) struct Assignments {
    /// Opened from the session's sealed boxes; never leave this process but
    /// into a task's mount.
    pub secrets: HashMap<String, SecretBytes>,
    pub configs: HashMap<String, Vec<u8>>,
    /// The tasks as last sent (their registry credentials taken out).
    pub tasks: BTreeMap<String, control::Task>,
    /// Per task: its service's registry credential (an X-Registry-Auth
    /// value), opened from the session's sealed box.
    pub registry_auths: HashMap<String, SecretBytes>,
}

impl Assignments {
    /// Applies one message of the session whose key is `key`. A secret that
    /// does not open (sealed to another key, or tampered with) is left out
    /// and the task that needs it fails with "not found".
    pub fn apply(&mut self, key: &SessionKey, msg: AssignmentsMessage) {
        if msg.complete {
            self.clear();
        }
        for id in &msg.secrets_removed {
            self.secrets.remove(id);
        }
        if !msg.secrets_updated.is_empty() {
            match key.opener(&msg.ephemeral_public_key) {
                Ok(opener) => {
                    for s in &msg.secrets_updated {
                        match opener.open(&s.id, &s.sealed) {
                            Ok(plain) => {
                                self.secrets.insert(s.id.clone(), plain);
                            }
                            Err(_) => {
                                tracing::warn!(secret = %s.id, "a secret sealed to this node could not be opened")
                            }
                        }
                    }
                }
                Err(_) => tracing::warn!("an assignment carried an invalid ephemeral key"),
            }
        }
        for id in &msg.configs_removed {
            self.configs.remove(id);
        }
        for c in msg.configs_updated {
            self.configs.insert(c.id, c.data);
        }
        for id in &msg.tasks_removed {
            self.tasks.remove(id);
            self.registry_auths.remove(id);
        }
        for mut t in msg.tasks_updated {
            let sealed = t
                .spec
                .as_mut()
                .map(|s| std::mem::take(&mut s.registry_auth))
                .unwrap_or_default();
            if sealed.is_empty() {
                self.registry_auths.remove(&t.id);
            } else {
                match key
                    .opener(&msg.ephemeral_public_key)
                    .and_then(|o| o.open(&format!("registry-auth:{}", t.id), &sealed))
                {
                    Ok(plain) => {
                        self.registry_auths.insert(t.id.clone(), plain);
                    }
                    Err(_) => {
                        tracing::warn!(task = %t.id, "a registry credential sealed to this node could not be opened")
                    }
                }
            }
            self.tasks.insert(t.id.clone(), t);
        }
        let mut held: Vec<&String> = self.secrets.keys().collect();
        held.sort();
        tracing::info!(sequence = msg.sequence, complete = msg.complete, secrets = ?held, "assignments received");
    }

    pub fn clear(&mut self) {
        self.secrets.clear();
        self.configs.clear();
        self.tasks.clear();
        self.registry_auths.clear();
    }
}

#[cfg(test)]
mod tests {
    use swarmkeep_api::dispatcher::{ConfigPayload, SealedSecret};
    use swarmkeep_crypto::BoxSealer;

    use super::*;

    fn task(id: &str) -> control::Task {
        control::Task {
            id: id.into(),
            ..Default::default()
        }
    }

    fn sealed(sealer: &BoxSealer, id: &str, plain: &[u8]) -> SealedSecret {
        SealedSecret {
            id: id.into(),
            name: id.into(),
            sealed: sealer.seal(id, &SecretBytes::new(plain.to_vec())),
        }
    }

    #[test]
    fn a_complete_set_replaces_and_a_difference_amends() {
        let key = SessionKey::generate();
        let sealer = BoxSealer::new(&key.public()).unwrap();
        let mut a = Assignments::default();
        a.secrets.insert("stale".into(), SecretBytes::new(b"old".to_vec()));
        a.apply(
            &key,
            AssignmentsMessage {
                complete: true,
                ephemeral_public_key: sealer.ephemeral_public().to_vec(),
                tasks_updated: vec![task("t1"), task("t2")],
                secrets_updated: vec![sealed(&sealer, "s1", b"one"), sealed(&sealer, "s2", b"two")],
                configs_updated: vec![ConfigPayload {
                    id: "c1".into(),
                    name: "c1".into(),
                    data: b"conf".to_vec(),
                }],
                ..Default::default()
            },
        );
        assert!(!a.secrets.contains_key("stale"), "a complete set forgets the rest");
        assert_eq!(a.secrets["s1"].expose(), b"one");
        assert_eq!(a.secrets["s2"].expose(), b"two");
        assert_eq!(a.configs["c1"], b"conf");
        assert_eq!(a.tasks.keys().collect::<Vec<_>>(), ["t1", "t2"]);

        let sealer = BoxSealer::new(&key.public()).unwrap();
        a.apply(
            &key,
            AssignmentsMessage {
                ephemeral_public_key: sealer.ephemeral_public().to_vec(),
                tasks_removed: vec!["t1".into()],
                tasks_updated: vec![task("t3")],
                secrets_removed: vec!["s1".into()],
                secrets_updated: vec![sealed(&sealer, "s3", b"three")],
                configs_removed: vec!["c1".into()],
                ..Default::default()
            },
        );
        assert_eq!(a.tasks.keys().collect::<Vec<_>>(), ["t2", "t3"]);
        let mut ids: Vec<_> = a.secrets.keys().cloned().collect();
        ids.sort();
        assert_eq!(ids, ["s2", "s3"]);
        assert_eq!(a.secrets["s3"].expose(), b"three");
        assert!(a.configs.is_empty());
    }

    #[test]
    fn a_secret_sealed_to_another_session_or_under_another_id_is_not_taken() {
        let key = SessionKey::generate();
        let other = SessionKey::generate();
        let to_other = BoxSealer::new(&other.public()).unwrap();
        let mut a = Assignments::default();
        a.apply(
            &key,
            AssignmentsMessage {
                complete: true,
                ephemeral_public_key: to_other.ephemeral_public().to_vec(),
                secrets_updated: vec![sealed(&to_other, "s1", b"one")],
                ..Default::default()
            },
        );
        assert!(a.secrets.is_empty());
        let to_us = BoxSealer::new(&key.public()).unwrap();
        let mut swapped = sealed(&to_us, "s1", b"one");
        swapped.id = "s2".into();
        a.apply(
            &key,
            AssignmentsMessage {
                ephemeral_public_key: to_us.ephemeral_public().to_vec(),
                secrets_updated: vec![swapped],
                ..Default::default()
            },
        );
        assert!(a.secrets.is_empty(), "a box is bound to its secret's ID");
        a.apply(
            &key,
            AssignmentsMessage {
                ephemeral_public_key: vec![1, 2, 3],
                secrets_updated: vec![sealed(&to_us, "s1", b"one")],
                ..Default::default()
            },
        );
        assert!(a.secrets.is_empty(), "an invalid ephemeral key opens nothing");
    }

    #[test]
    fn a_tasks_registry_credential_is_opened_out_of_it_and_bound_to_it() {
        let key = SessionKey::generate();
        let sealer = BoxSealer::new(&key.public()).unwrap();
        let with_auth = |id: &str, aad: &str| control::Task {
            id: id.into(),
            spec: Some(control::TaskSpec {
                registry_auth: sealer.seal(aad, &SecretBytes::new(b"encoded-login".to_vec())),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut a = Assignments::default();
        a.apply(
            &key,
            AssignmentsMessage {
                complete: true,
                ephemeral_public_key: sealer.ephemeral_public().to_vec(),
                tasks_updated: vec![with_auth("t1", "registry-auth:t1"), with_auth("t2", "registry-auth:t1")],
                ..Default::default()
            },
        );
        assert_eq!(a.registry_auths["t1"].expose(), b"encoded-login");
        assert!(!a.registry_auths.contains_key("t2"), "a box is bound to its task's ID");
        assert!(
            a.tasks
                .values()
                .all(|t| t.spec.as_ref().unwrap().registry_auth.is_empty()),
            "the sealed credential is not kept in the task"
        );
        a.apply(
            &key,
            AssignmentsMessage {
                ephemeral_public_key: sealer.ephemeral_public().to_vec(),
                tasks_removed: vec!["t1".into()],
                ..Default::default()
            },
        );
        assert!(a.registry_auths.is_empty());
    }
}
