//! What secrets and configs share in the CLI: reading a payload, the list
//! filters, the `ls` rows, and the pretty inspect texts.

use std::io::Read;

use swarmkeep_api::control;
use swarmkeep_api::timefmt::{ago, pretty};
use swarmkeep_crypto::SecretBytes;
use time::OffsetDateTime;

use crate::client::CliError;

/// Reads a payload from `path` (`-` is stdin) into a zeroizing buffer,
/// allocated once so no copy is left behind by growth. At most `limit` bytes
/// are read; more than the server accepts still gets the server's error.
pub fn read_payload(kind: &str, path: Option<&str>, limit: usize) -> Result<SecretBytes, CliError> {
    let Some(path) = path else {
        return Err(CliError(format!("{kind} file is required")));
    };
    let mut buf = Vec::with_capacity(limit + 1);
    let (name, result) = if path == "-" {
        (
            "STDIN".to_string(),
            std::io::stdin().lock().take(limit as u64).read_to_end(&mut buf),
        )
    } else {
        let file = std::fs::File::open(path).map_err(|e| CliError(format!("open {path}: {}", go_io_error(&e))))?;
        (path.to_string(), file.take(limit as u64).read_to_end(&mut buf))
    };
    let data = SecretBytes::new(buf);
    result.map_err(|e| CliError(format!("error reading from {name}: {}", go_io_error(&e))))?;
    if data.is_empty() {
        return Err(CliError(format!("error reading from {name}: data is empty")));
    }
    Ok(data)
}

/// An I/O error worded as Go's syscall errors are.
fn go_io_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        std::io::ErrorKind::IsADirectory => "is a directory".into(),
        _ => e.to_string(),
    }
}

/// `--filter` for secrets and configs: `name` (prefix), `names` (exact),
/// `id` (prefix), `label` (`k` or `k=v`).
pub fn list_filters(flags: &[String]) -> Result<control::ListFilters, CliError> {
    let mut f = control::ListFilters::default();
    for (k, v) in super::parse_filters(flags, &["id", "label", "name", "names"])? {
        match k.as_str() {
            "id" => f.id_prefixes.push(v),
            "name" => f.name_prefixes.push(v),
            "names" => f.names.push(v),
            _ => {
                let (lk, lv) = v.split_once('=').unwrap_or((v.as_str(), ""));
                f.labels.insert(lk.to_string(), lv.to_string());
            }
        }
    }
    Ok(f)
}

pub struct Common<'a> {
    pub id: &'a str,
    pub meta: Option<&'a control::Meta>,
    pub annotations: Option<&'a control::Annotations>,
}

impl<'a> Common<'a> {
    pub fn name(&self) -> &'a str {
        self.annotations.map(|a| a.name.as_str()).unwrap_or("")
    }

    fn sorted_labels(&self) -> Vec<(String, String)> {
        let mut labels: Vec<_> = self
            .annotations
            .map(|a| a.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        labels.sort();
        labels
    }

    /// The `ls` formatting context, keys in the order Docker's JSON has them.
    pub fn ls_row(&self, now: OffsetDateTime, driver: Option<&str>) -> serde_json::Value {
        let labels = self
            .sorted_labels()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut row = serde_json::Map::new();
        row.insert(
            "CreatedAt".into(),
            ago(self.meta.and_then(|m| m.created_at.as_ref()), now).into(),
        );
        if let Some(d) = driver {
            row.insert("Driver".into(), d.into());
        }
        row.insert("ID".into(), self.id.into());
        row.insert("Labels".into(), labels.into());
        row.insert("Name".into(), self.name().into());
        row.insert(
            "UpdatedAt".into(),
            ago(self.meta.and_then(|m| m.updated_at.as_ref()), now).into(),
        );
        serde_json::Value::Object(row)
    }

    pub fn label_lines(&self) -> String {
        let labels = self.sorted_labels();
        if labels.is_empty() {
            return String::new();
        }
        let mut out = String::from("\nLabels:");
        for (k, v) in labels {
            out.push_str(&format!("\n - {k}"));
            if !v.is_empty() {
                out.push_str(&format!("={v}"));
            }
        }
        out
    }

    pub fn created(&self) -> String {
        pretty(self.meta.and_then(|m| m.created_at.as_ref()))
    }

    pub fn updated(&self) -> String {
        pretty(self.meta.and_then(|m| m.updated_at.as_ref()))
    }
}

/// `secret ls` / `config ls`: sorted by name, rendered with the table or
/// `--format`. `driver` is the DRIVER column (secrets only).
pub fn ls_output(
    mut items: Vec<Common<'_>>,
    quiet: bool,
    format: Option<&str>,
    default_format: &str,
    driver: Option<&str>,
) -> super::Output {
    sort_by_name(&mut items, |c| c.name());
    let now = OffsetDateTime::now_utc();
    let rows: Vec<_> = items.iter().map(|c| c.ls_row(now, driver)).collect();
    match crate::format::render_list(super::list_format(quiet, format, default_format), &ls_headers(), &rows) {
        Ok(s) => super::Output::ok(s),
        Err(e) => e.into(),
    }
}

/// Headers of the `ls` columns.
fn ls_headers() -> serde_json::Value {
    serde_json::json!({
        "CreatedAt": "CREATED", "Driver": "DRIVER", "ID": "ID", "Labels": "LABELS",
        "Name": "NAME", "UpdatedAt": "UPDATED",
    })
}

/// Sorts by name the way the docker CLI does (natural order).
pub fn sort_by_name<T>(items: &mut [T], name: impl Fn(&T) -> &str) {
    items.sort_by(|a, b| natord::compare(name(a), name(b)));
}
