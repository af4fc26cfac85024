//! Finding objects as Docker does: by full ID, name or unique ID prefix, and
//! the list filters (names, name prefixes, ID prefixes, labels).

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use swarmkeep_api::control;
use swarmkeep_api::errors::{plain, rpc};
use swarmkeep_store::objects::Named;
use tonic::{Code, Status};

/// swarmkit's list filters: each kind given (exact names, name prefixes, ID
/// prefixes, labels) must match — values of one kind are OR-ed, kinds are
/// AND-ed, as Docker's `--filter name=… --filter id=…` expect.
pub fn matches_filters<T: Named>(obj: &T, filters: Option<&control::ListFilters>) -> bool {
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
pub fn resolve<'a, T: Named>(
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
pub fn scan_name<'a, T: Named>(objects: &'a BTreeMap<String, T>, name: &str) -> Option<&'a T> {
    let lower = name.to_lowercase();
    objects.values().find(|o| o.name().to_lowercase() == lower)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    struct O(&'static str, &'static str, BTreeMap<String, String>);
    impl Named for O {
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
