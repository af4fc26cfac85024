//! The credential `--with-registry-auth` sends with a service: the docker
//! CLI's `X-Registry-Auth` value, base64 (URL alphabet, as Docker's; the
//! standard one too) of a JSON `AuthConfig`. Decoded only where it is
//! checked (the manager, before sealing it) and used (the agent, to pull);
//! the decoded form lives in zeroizing strings and has no `Debug`.

use base64::Engine;
use zeroize::Zeroizing;

/// A registry's username and password.
pub struct Credential {
    pub username: Zeroizing<String>,
    pub password: Zeroizing<String>,
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
    Ok(Some(Credential { username, password }))
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
        let token = base64::engine::general_purpose::URL_SAFE.encode(r#"{"identitytoken":"tok"}"#);
        assert!(decode(token.as_bytes()).err().unwrap().contains("IdentityToken"));
    }
}
