//! What the control calls share: validation at the door,
//! lookups by ID/name/prefix, and the mapping of store answers to statuses.

use std::sync::LazyLock;

use regex::Regex;
use swarmkeep_api::control;
use swarmkeep_api::errors::rpc;
use swarmkeep_api::timefmt::to_timestamp;
use swarmkeep_store::objects::Meta;
use tonic::{Code, Status};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
