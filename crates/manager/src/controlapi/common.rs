//! What every control call shares: Docker's texts, validation at the door,
//! lookups by ID/name/prefix, and the mapping of store answers to statuses.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::LazyLock;

use regex::Regex;
use swarmkeep_api::control;
use swarmkeep_api::errors::{plain, rpc};
use swarmkeep_api::timefmt::to_timestamp;
use swarmkeep_store::objects::Meta;
use swarmkeep_store::{CommandError, WriteError};
use tonic::{Code, Status};

pub const NOT_A_MANAGER: &str = "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.";
pub const WORKER_NOT_A_MANAGER: &str = "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager.";
pub const SWARM_LOCKED: &str = "Swarm is encrypted and needs to be unlocked before it can be used. Please use \"docker swarm unlock\" to unlock it.";
pub const ALREADY_IN_SWARM: &str =
    "This node is already part of a swarm. Use \"docker swarm leave\" to leave this swarm and join another one.";

static NAME_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-zA-Z0-9]+(?:[a-zA-Z0-9_.-]*[a-zA-Z0-9])?$").expect("valid regex"));

/// swarmkit's `validateAnnotations` for secrets and configs.
pub fn validate_name(annotations: Option<&control::Annotations>) -> Result<(), Status> {
    let name = annotations.map(|a| a.name.as_str()).unwrap_or("");
    if name.is_empty() {
        return Err(rpc(Code::InvalidArgument, "name must be provided"));
    }
    if name.len() > 64 || !NAME_RE.is_match(name) {
        return Err(rpc(
            Code::InvalidArgument,
            "invalid name, only 64 [a-zA-Z0-9-_.] characters allowed, and the start and end character must be [a-zA-Z0-9]",
        ));
    }
    Ok(())
}

/// Maps a refused or failed store write to the status Docker shows.
pub fn write_error(e: WriteError) -> Status {
    match e {
        WriteError::Rejected(CommandError::NameConflict { kind, name }) => {
            rpc(Code::AlreadyExists, format!("{kind} {name} already exists"))
        }
        WriteError::Rejected(CommandError::NotFound { kind, id }) => {
            rpc(Code::NotFound, format!("{kind} {id} not found"))
        }
        WriteError::Rejected(e @ CommandError::InUse { .. }) => rpc(Code::InvalidArgument, e.to_string()),
        WriteError::Rejected(e @ CommandError::NotAssigned { .. }) => rpc(Code::PermissionDenied, e.to_string()),
        WriteError::Rejected(CommandError::VersionConflict) => rpc(Code::Unknown, "update out of sequence"),
        WriteError::Rejected(CommandError::AlreadyInitialized) => plain(Code::Unavailable, ALREADY_IN_SWARM),
        WriteError::NotLeader { leader } => rpc(
            Code::Unavailable,
            match leader {
                Some(addr) => format!("this manager is not the raft leader; the leader is {addr}"),
                None => "no raft leader is elected: the swarm does not have a quorum of managers".into(),
            },
        ),
        WriteError::Unavailable(reason) => rpc(Code::Unavailable, format!("the swarm store is unavailable: {reason}")),
    }
}

pub fn meta_to_proto(meta: &Meta) -> control::Meta {
    control::Meta {
        version: Some(control::Version { index: meta.version }),
        created_at: Some(to_timestamp(meta.created_at)),
        updated_at: Some(to_timestamp(meta.updated_at)),
    }
}

/// Metadata of an object created now (the version is set when it is applied).
pub fn new_meta() -> Meta {
    let now = time::OffsetDateTime::now_utc();
    Meta {
        version: 0,
        created_at: now,
        updated_at: now,
    }
}

pub fn annotations_from_proto(a: Option<control::Annotations>) -> swarmkeep_store::objects::Annotations {
    let a = a.unwrap_or_default();
    swarmkeep_store::objects::Annotations {
        name: a.name,
        labels: a.labels.into_iter().collect(),
    }
}

/// The labels-only change of `id` that swarmkit's Update allows, checked
/// against the version the caller read.
pub fn label_update(
    id: &str,
    version: control::Version,
    annotations: Option<control::Annotations>,
) -> swarmkeep_store::LabelUpdate {
    swarmkeep_store::LabelUpdate {
        id: id.to_string(),
        expected_version: version.index,
        labels: annotations.map(|a| a.labels.into_iter().collect()).unwrap_or_default(),
        updated_at: time::OffsetDateTime::now_utc(),
    }
}

pub fn annotations_to_proto(a: &swarmkeep_store::objects::Annotations) -> control::Annotations {
    control::Annotations {
        name: a.name.clone(),
        labels: a.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
    }
}

/// What an object looks like to the list filters and lookups.
pub trait Listed {
    fn id(&self) -> &str;
    fn name(&self) -> &str;
    fn labels(&self) -> &std::collections::BTreeMap<String, String>;
}

/// swarmkit's list filters: each kind given (exact names, name prefixes, ID
/// prefixes, labels) must match — values of one kind are OR-ed, kinds are
/// AND-ed, as Docker's `--filter name=… --filter id=…` expect.
pub fn matches_filters<T: Listed>(obj: &T, filters: Option<&control::ListFilters>) -> bool {
    let Some(f) = filters else { return true };
    let lower = obj.name().to_lowercase();
    let names = f.names.is_empty() || f.names.iter().any(|n| n.to_lowercase() == lower);
    let prefixes = f.name_prefixes.is_empty() || f.name_prefixes.iter().any(|p| lower.starts_with(&p.to_lowercase()));
    let ids = f.id_prefixes.is_empty() || f.id_prefixes.iter().any(|p| obj.id().starts_with(p.as_str()));
    if !(names && prefixes && ids) {
        return false;
    }
    labels_match(obj.labels(), &f.labels)
}

fn labels_match(labels: &std::collections::BTreeMap<String, String>, wanted: &HashMap<String, String>) -> bool {
    wanted.iter().all(|(k, v)| match labels.get(k) {
        Some(have) => v.is_empty() || have == v,
        None => false,
    })
}

/// Docker's lookup of `input`: full ID, then name (case-insensitive, as
/// swarmkit's name index), then unique ID prefix. `objects` is keyed by ID, so
/// each step is an index lookup or a range scan, not a walk of every object.
pub fn resolve<'a, T: Listed>(
    kind: &str,
    input: &str,
    objects: &'a BTreeMap<String, T>,
    by_name: impl FnOnce(&str) -> Option<&'a T>,
) -> Result<&'a T, Status> {
    if input.is_empty() {
        return Err(rpc(Code::InvalidArgument, format!("{kind} ID must be provided")));
    }
    if let Some(obj) = objects.get(input) {
        return Ok(obj);
    }
    if let Some(obj) = by_name(input) {
        return Ok(obj);
    }
    let mut by_prefix = objects
        .range::<str, _>((Bound::Included(input), Bound::Unbounded))
        .take_while(|(id, _)| id.starts_with(input));
    match (by_prefix.next(), by_prefix.count()) {
        (Some((_, obj)), 0) => Ok(obj),
        (Some(_), more) => Err(plain(
            Code::InvalidArgument,
            format!("{kind} {input} is ambiguous ({} matches found)", more + 1),
        )),
        (None, _) => Err(plain(Code::NotFound, format!("{kind} {input} not found"))),
    }
}

/// A name lookup for objects without a name index (nodes: there are few).
pub fn scan_name<'a, T: Listed>(objects: &'a BTreeMap<String, T>, name: &str) -> Option<&'a T> {
    let lower = name.to_lowercase();
    objects.values().find(|o| o.name().to_lowercase() == lower)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    struct O(&'static str, &'static str, BTreeMap<String, String>);
    impl Listed for O {
        fn id(&self) -> &str {
            self.0
        }
        fn name(&self) -> &str {
            self.1
        }
        fn labels(&self) -> &BTreeMap<String, String> {
            &self.2
        }
    }

    #[test]
    fn names_follow_swarmkit_rules() {
        let a = |n: &str| control::Annotations {
            name: n.into(),
            labels: Default::default(),
        };
        assert!(validate_name(Some(&a("db_password"))).is_ok());
        assert!(validate_name(Some(&a("a.b-c_d"))).is_ok());
        assert!(validate_name(Some(&a(&"a".repeat(64)))).is_ok());
        for bad in ["bad name!", "-x", "x-", &"a".repeat(65), "é"] {
            let e = validate_name(Some(&a(bad))).unwrap_err();
            assert!(e.message().starts_with("invalid name, only 64"), "{bad}");
        }
        assert_eq!(
            validate_name(Some(&a(""))).unwrap_err().message(),
            "name must be provided"
        );
    }

    #[test]
    fn lookup_order_is_id_then_name_then_prefix() {
        let objs: BTreeMap<String, O> = [
            O("abc111", "abc222", BTreeMap::new()),
            O("abc222", "other", BTreeMap::new()),
            O("xyz333", "third", BTreeMap::new()),
        ]
        .into_iter()
        .map(|o| (o.0.to_string(), o))
        .collect();
        let find = |input: &str| resolve("secret", input, &objs, |n| scan_name(&objs, n)).map(|o| o.0);
        assert_eq!(find("abc222").unwrap(), "abc222");
        assert_eq!(find("THIRD").unwrap(), "xyz333");
        assert_eq!(find("xyz").unwrap(), "xyz333");
        assert_eq!(
            find("abc").unwrap_err().message(),
            "secret abc is ambiguous (2 matches found)"
        );
        let nf = find("nope").unwrap_err();
        assert_eq!(swarmkeep_api::errors::docker_message(&nf), "secret nope not found");
    }

    #[test]
    fn label_filters_need_key_and_optional_value() {
        let o = O("i", "n", [("env".to_string(), "prod".to_string())].into());
        let f = |k: &str, v: &str| control::ListFilters {
            labels: [(k.to_string(), v.to_string())].into(),
            ..Default::default()
        };
        assert!(matches_filters(&o, Some(&f("env", "prod"))));
        assert!(matches_filters(&o, Some(&f("env", ""))));
        assert!(!matches_filters(&o, Some(&f("env", "dev"))));
        assert!(!matches_filters(&o, Some(&f("team", ""))));
        let names = control::ListFilters {
            name_prefixes: vec!["N".into()],
            ..Default::default()
        };
        assert!(matches_filters(&o, Some(&names)));
    }
}
