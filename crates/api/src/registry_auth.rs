//! The credential `--with-registry-auth` sends with a service: the docker
//! CLI's `X-Registry-Auth` value, base64 (URL alphabet, as Docker's; the
//! standard one too) of a JSON `AuthConfig`. Decoded only where it is
//! checked (the manager, before sealing it) and used (the agent, to pull);
//! the decoded form lives in zeroizing strings and has no `Debug`.

use base64::Engine;
use zeroize::Zeroizing;

/// A registry's username and password, and the registry they are for
/// (`serveraddress`; empty when the sender did not say).
pub struct Credential {
    pub username: Zeroizing<String>,
    pub password: Zeroizing<String>,
    pub server: String,
}

/// The registry host an image reference names (Docker's rule: a first path
/// component with a `.` or `:`, or `localhost`), Docker Hub as `docker.io`.
pub fn registry_of(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => normalize_host(first),
        _ => "docker.io".into(),
    }
}

/// `https://host:port/v1/` → `host:port`; Docker Hub's names → `docker.io`.
pub fn normalize_host(server: &str) -> String {
    let s = server
        .strip_prefix("https://")
        .or_else(|| server.strip_prefix("http://"))
        .unwrap_or(server);
    let host = s.split('/').next().unwrap_or(s).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => "docker.io".into(),
        _ => host,
    }
}

impl Credential {
    /// Whether this credential may be sent for `image`: its registry is the
    /// one the credential names (or the credential names none).
    pub fn is_for(&self, image: &str) -> bool {
        self.server.is_empty() || normalize_host(&self.server) == registry_of(image)
    }
}

/// The `AuthConfig` fields a registry pull can use.
#[derive(serde::Deserialize, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
struct AuthConfig {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    /// base64 of `username:password` (what `docker login` stores).
    #[serde(default)]
    auth: String,
    #[serde(default)]
    identitytoken: String,
    #[serde(default)]
    registrytoken: String,
    #[serde(default)]
    serveraddress: String,
}

fn unbase64(text: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let text = text.trim_ascii();
    [URL_SAFE, URL_SAFE_NO_PAD, STANDARD, STANDARD_NO_PAD]
        .iter()
        .find_map(|e| e.decode(text).ok())
        .map(Zeroizing::new)
}

/// Decodes an `X-Registry-Auth` value. `Ok(None)`: an empty credential
/// (Docker's `{}`: pull anonymously). The errors never quote the value.
pub fn decode(encoded: &[u8]) -> Result<Option<Credential>, String> {
    const BAD: &str = "invalid registry credential (X-Registry-Auth): not base64 of a JSON AuthConfig";
    let json = unbase64(encoded).ok_or(BAD)?;
    let mut config: AuthConfig = serde_json::from_slice(&json).map_err(|_| BAD.to_string())?;
    if !config.identitytoken.is_empty() || !config.registrytoken.is_empty() {
        return Err(
            "registry credentials with an identity or registry token are not supported (IdentityToken, RegistryToken): use a username and password"
                .into(),
        );
    }
    let (username, password) = if !config.auth.is_empty() {
        let pair = unbase64(config.auth.as_bytes()).ok_or(BAD)?;
        let pair = std::str::from_utf8(&pair).map_err(|_| BAD.to_string())?;
        let (u, p) = pair.split_once(':').ok_or(BAD)?;
        (Zeroizing::new(u.to_string()), Zeroizing::new(p.to_string()))
    } else {
        (
            Zeroizing::new(std::mem::take(&mut config.username)),
            Zeroizing::new(std::mem::take(&mut config.password)),
        )
    };
    if username.is_empty() && password.is_empty() {
        return Ok(None);
    }
    if username.is_empty() {
        return Err("invalid registry credential (X-Registry-Auth): a password without a username".into());
    }
    Ok(Some(Credential {
        username,
        password,
        server: std::mem::take(&mut config.serveraddress),
    }))
}

/// The `X-Registry-Auth` value for a username and password (what the docker
/// CLI sends).
pub fn encode(username: &str, password: &str, server: &str) -> Zeroizing<String> {
    let json = Zeroizing::new(
        serde_json::json!({"username": username, "password": password, "serveraddress": server}).to_string(),
    );
    encode_raw(json.as_bytes())
}

/// The `X-Registry-Auth` value of an `AuthConfig` JSON.
pub fn encode_raw(json: &[u8]) -> Zeroizing<String> {
    Zeroizing::new(base64::engine::general_purpose::URL_SAFE.encode(json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_docker_clis_forms_decode_and_bad_ones_do_not_echo() {
        let c = decode(encode("ann", "pa:ss+/?", "127.0.0.1:5000").as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("ann", "pa:ss+/?"));
        let stored = base64::engine::general_purpose::STANDARD.encode(r#"{"auth":"Ym9iOnNlY3JldA=="}"#);
        let c = decode(stored.as_bytes()).unwrap().unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("bob", "secret"));
        let empty = base64::engine::general_purpose::URL_SAFE.encode("{}");
        assert!(decode(empty.as_bytes()).unwrap().is_none());
        let e = decode(b"not-base64-marker!!").err().unwrap();
        assert!(!e.contains("marker"), "{e}");
        let c = decode(encode("ann", "pw", "https://index.docker.io/v1/").as_bytes())
            .unwrap()
            .unwrap();
        assert!(c.is_for("busybox") && c.is_for("docker.io/library/busybox:1"));
        assert!(
            !c.is_for("evil.example/app"),
            "a Hub login is not sent to another registry"
        );
        let c = decode(encode("ann", "pw", "127.0.0.1:5000").as_bytes())
            .unwrap()
            .unwrap();
        assert!(c.is_for("127.0.0.1:5000/team/app:v1"));
        assert!(!c.is_for("127.0.0.1:5001/team/app:v1") && !c.is_for("busybox"));
        let token = base64::engine::general_purpose::URL_SAFE.encode(r#"{"identitytoken":"tok"}"#);
        assert!(decode(token.as_bytes()).err().unwrap().contains("IdentityToken"));
    }
}
