//! `--with-registry-auth`: the credential `docker login` stored for the
//! image's registry (in `$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`), sent with the service as the docker CLI sends
//! its X-Registry-Auth value. Credential helpers are refused by name.

use std::path::PathBuf;

use crate::client::CliError;

/// Docker Hub's key in `auths`.
const DOCKER_HUB: &str = "https://index.docker.io/v1/";

fn config_path() -> Option<PathBuf> {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) => Some(PathBuf::from(dir).join("config.json")),
        None => std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json")),
    }
}

/// The X-Registry-Auth value for `image` (`{}` when nothing is stored for
/// its registry: anonymous, and it replaces a login the service had, as the
/// docker CLI's does).
pub fn for_image(image: &str) -> Result<Vec<u8>, CliError> {
    let host = swarmkeep_api::registry_auth::registry_of(image);
    // `docker login` keys Docker Hub by its v1 URL, the others by host.
    let registry = if host == "docker.io" {
        DOCKER_HUB.to_string()
    } else {
        host.clone()
    };
    let none = || swarmkeep_api::registry_auth::encode_raw(b"{}").as_bytes().to_vec();
    let Some(path) = config_path() else {
        return Ok(none());
    };
    let text = match std::fs::read(&path) {
        Ok(t) => zeroize::Zeroizing::new(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(none()),
        Err(e) => return Err(CliError(format!("reading {}: {e}", path.display()))),
    };
    let config: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|e| CliError(format!("{} is not valid JSON: {}", path.display(), e.classify_name())))?;
    let helper = config.get("credHelpers").and_then(|h| h.get(&registry)).is_some()
        || config
            .get("credsStore")
            .is_some_and(|s| s.as_str().is_some_and(|s| !s.is_empty()));
    let stored = config.get("auths").and_then(|a| a.as_object()).and_then(|auths| {
        auths
            .iter()
            .find(|(key, _)| swarmkeep_api::registry_auth::normalize_host(key) == host)
            .and_then(|(_, v)| v.get("auth"))
            .and_then(|a| a.as_str())
    });
    match stored {
        Some(auth) => {
            let json =
                zeroize::Zeroizing::new(serde_json::json!({"auth": auth, "serveraddress": registry}).to_string());
            let encoded = swarmkeep_api::registry_auth::encode_raw(json.as_bytes());
            Ok(encoded.as_bytes().to_vec())
        }
        None if helper => Err(CliError(format!(
            "--with-registry-auth: credential helpers (credsStore, credHelpers in {}) are not supported; store the login in \"auths\"",
            path.display()
        ))),
        None => Ok(none()),
    }
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "unexpected data",
            serde_json::error::Category::Eof => "unexpected end",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_are_named_as_docker_names_them() {
        use swarmkeep_api::registry_auth::{normalize_host, registry_of};
        assert_eq!(registry_of("busybox"), "docker.io");
        assert_eq!(registry_of("library/busybox:1"), "docker.io");
        assert_eq!(registry_of("127.0.0.1:5000/app:v1"), "127.0.0.1:5000");
        assert_eq!(registry_of("localhost/app"), "localhost");
        assert_eq!(registry_of("reg.example.com/team/app"), "reg.example.com");
        assert_eq!(normalize_host("https://127.0.0.1:5000/v2/"), "127.0.0.1:5000");
        assert_eq!(normalize_host(DOCKER_HUB), "docker.io");
    }
}
