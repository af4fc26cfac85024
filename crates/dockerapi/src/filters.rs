//! Docker's `filters` query parameter: URL-encoded JSON, either
//! `{"key":{"value":true}}` or the older `{"key":["value"]}`. Values of one
//! key are OR-ed, keys are AND-ed.

use std::collections::BTreeMap;

use swarmkeep_api::control::ListFilters;

use crate::error::{ApiError, ApiResult};

#[derive(Debug, Default)]
pub struct Filters(BTreeMap<String, Vec<String>>);

impl Filters {
    pub fn parse(raw: Option<&str>) -> ApiResult<Self> {
        let Some(raw) = raw.filter(|r| !r.is_empty()) else {
            return Ok(Self::default());
        };
        let value: serde_json::Value =
            serde_json::from_str(raw).map_err(|e| ApiError::bad_request(format!("invalid filter: {e}")))?;
        let serde_json::Value::Object(map) = value else {
            return Err(ApiError::bad_request("invalid filter: expected a JSON object"));
        };
        let mut out = BTreeMap::new();
        for (key, values) in map {
            let list: Vec<String> = match values {
                serde_json::Value::Object(m) => m
                    .into_iter()
                    .filter(|(_, on)| on.as_bool().unwrap_or(false))
                    .map(|(v, _)| v)
                    .collect(),
                serde_json::Value::Array(a) => a.into_iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
                _ => return Err(ApiError::bad_request(format!("invalid filter '{key}'"))),
            };
            out.insert(key, list);
        }
        Ok(Self(out))
    }

    /// Refuses keys the endpoint does not know, as dockerd does.
    pub fn allow(&self, keys: &[&str]) -> ApiResult<()> {
        match self.0.keys().find(|k| !keys.contains(&k.as_str())) {
            Some(k) => Err(ApiError::bad_request(format!("invalid filter '{k}'"))),
            None => Ok(()),
        }
    }

    pub fn get(&self, key: &str) -> &[String] {
        self.0.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Every (key, value) given.
    pub fn pairs(&self) -> Vec<(String, String)> {
        self.0
            .iter()
            .flat_map(|(k, vs)| vs.iter().map(move |v| (k.clone(), v.clone())))
            .collect()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// `name` (prefix), `id` (prefix) and `label` (`key` or `key=value`) as
    /// the control API's list filters, the way dockerd maps them for secrets,
    /// configs, nodes and services.
    pub fn list_filters(&self) -> Option<ListFilters> {
        let labels = self.labels("label");
        if self.get("name").is_empty() && self.get("id").is_empty() && labels.is_empty() {
            return None;
        }
        Some(ListFilters {
            names: Vec::new(),
            name_prefixes: self.get("name").to_vec(),
            id_prefixes: self.get("id").to_vec(),
            labels,
        })
    }

    /// `key` or `key=value` label filters of `field`.
    pub fn labels(&self, field: &str) -> std::collections::HashMap<String, String> {
        self.get(field)
            .iter()
            .map(|l| match l.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (l.clone(), String::new()),
            })
            .collect()
    }
}

/// Whether `labels` has every `key` (and `key=value`) filter asked.
pub fn labels_match(
    labels: &std::collections::HashMap<String, String>,
    wanted: &std::collections::HashMap<String, String>,
) -> bool {
    wanted
        .iter()
        .all(|(k, v)| labels.get(k).is_some_and(|have| v.is_empty() || have == v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_encodings_parse() {
        let f = Filters::parse(Some(r#"{"name":{"a":true,"b":true},"label":["x=1"]}"#)).unwrap();
        assert_eq!(f.get("name"), ["a", "b"]);
        assert_eq!(f.labels("label").get("x").map(String::as_str), Some("1"));
        let lf = f.list_filters().unwrap();
        assert_eq!(lf.name_prefixes, ["a", "b"]);
    }

    #[test]
    fn false_values_are_not_filters() {
        let f = Filters::parse(Some(r#"{"name":{"a":false}}"#)).unwrap();
        assert!(f.get("name").is_empty());
    }

    #[test]
    fn bad_filters_are_refused() {
        assert_eq!(Filters::parse(Some("{")).unwrap_err().status, 400);
        assert_eq!(Filters::parse(Some(r#"{"name":"x"}"#)).unwrap_err().status, 400);
        let f = Filters::parse(Some(r#"{"nope":{"a":true}}"#)).unwrap();
        assert_eq!(f.allow(&["name"]).unwrap_err().message, "invalid filter 'nope'");
    }
}
