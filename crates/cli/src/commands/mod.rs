//! One module per command group, as the docker CLI splits them.

pub mod config;
pub mod container;
pub mod container_flags;
pub mod image;
pub mod network;
pub mod node;
pub mod placement;
pub mod ports;
pub mod progress;
pub mod registry_auth;
pub mod rollout;
pub mod secret;
pub mod service;
pub mod service_update;
pub mod swarm;

mod objects;

use crate::client::CliError;

/// Output of a command: what goes to stdout, and an error for stderr (which
/// makes the exit status 1) — both may be set, as for `rm a nope`.
#[derive(Default)]
pub struct Output {
    pub stdout: String,
    /// Warnings, written to stderr before stdout (the command still succeeds).
    pub warnings: String,
    pub error: Option<CliError>,
    /// The exit code when it is not 0/1 by `error` (`exec`: the command's).
    pub code: Option<u8>,
}

impl Output {
    pub fn ok(stdout: String) -> Self {
        Self {
            stdout,
            ..Default::default()
        }
    }
}

impl From<CliError> for Output {
    fn from(e: CliError) -> Self {
        Self {
            error: Some(e),
            ..Default::default()
        }
    }
}

/// Looks up each name in turn, as `docker … inspect` does: the found objects,
/// and Docker's error text for each one that was not.
pub async fn fetch_each<T>(
    names: &[String],
    mut fetch: impl AsyncFnMut(String) -> Result<Option<T>, tonic::Status>,
) -> (Vec<T>, Vec<String>) {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for name in names {
        match fetch(name.clone()).await {
            Ok(obj) => found.extend(obj),
            Err(status) => errors.push(crate::client::daemon_error(&status)),
        }
    }
    (found, errors)
}

/// Removes each name in turn, as `docker … rm` does: the removed names on
/// stdout, the failures together on stderr (exit status 1).
pub async fn remove_each(names: &[String], mut remove: impl AsyncFnMut(String) -> Result<(), tonic::Status>) -> Output {
    let mut out = Output::default();
    let mut errors = Vec::new();
    for name in names {
        match remove(name.clone()).await {
            Ok(()) => out.stdout.push_str(&format!("{name}\n")),
            Err(status) => errors.push(crate::client::daemon_error(&status)),
        }
    }
    if !errors.is_empty() {
        out.error = Some(CliError(errors.join("\n")));
    }
    out
}

/// The template an `ls` renders: IDs only with `-q`, else `--format`, else
/// the command's default table.
pub fn list_format<'a>(quiet: bool, format: Option<&'a str>, default: &'a str) -> &'a str {
    if quiet { "{{.ID}}" } else { format.unwrap_or(default) }
}

/// `--filter key=value` flags as Docker parses them.
pub fn parse_filters(flags: &[String], valid: &[&str]) -> Result<Vec<(String, String)>, CliError> {
    let mut out = Vec::new();
    for f in flags {
        let Some((k, v)) = f.split_once('=') else {
            return Err(CliError("bad format of filter (expected name=value)".into()));
        };
        let key = k.trim().to_lowercase();
        if !valid.contains(&key.as_str()) {
            return Err(CliError(format!("Error response from daemon: invalid filter '{key}'")));
        }
        out.push((key, v.to_string()));
    }
    Ok(out)
}

/// Docker's `--label k=v` list as a map (`k` alone means an empty value).
pub fn parse_labels(flags: &[String]) -> std::collections::HashMap<String, String> {
    flags
        .iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (l.to_string(), String::new()),
        })
        .collect()
}

/// `docker inspect`'s output: the found objects (as a JSON array, one
/// `--format` line each, or pretty text), then the lookup errors.
pub fn inspect_output(
    found: Vec<serde_json::Value>,
    pretty: Option<Vec<String>>,
    format: Option<&str>,
    errors: Vec<String>,
) -> Output {
    let stdout = match (pretty, format) {
        (Some(texts), _) => texts.join("\n\n") + if found.is_empty() { "" } else { "\n" },
        (None, Some(f)) => match crate::format::render_each(f, &found) {
            Ok(s) => s,
            Err(e) => return e.into(),
        },
        (None, None) => swarmkeep_api::engine::to_inspect_json(&found) + "\n",
    };
    let error = if errors.is_empty() {
        None
    } else {
        Some(CliError(errors.join("\n")))
    };
    Output {
        stdout,
        error,
        ..Default::default()
    }
}
