//! Join tokens: `SWMTKN-1-<CA digest, 50 base36>-<secret, 25 base36>`, one for
//! workers and one for managers, compared in constant time.

use subtle::ConstantTimeEq;
use swarmkeep_crypto::{base36_padded, base36_to_32_bytes, random_bytes};

const PREFIX: &str = "SWMTKN-1-";

pub fn generate(ca_digest: &[u8; 32]) -> String {
    let mut secret = [0u8; 16];
    random_bytes(&mut secret);
    format!(
        "{PREFIX}{}-{}",
        base36_padded(ca_digest, 50),
        base36_padded(&secret, 25)
    )
}

/// A token taken apart: the CA digest it pins.
pub struct ParsedToken {
    pub ca_digest: [u8; 32],
    pub text: String,
}

/// Docker's "invalid join token" for anything not shaped like a token.
pub fn parse(token: &str) -> Option<ParsedToken> {
    let rest = token.strip_prefix(PREFIX)?;
    let (digest, secret) = rest.split_once('-')?;
    if digest.len() != 50 || secret.len() != 25 || !secret.bytes().all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
    {
        return None;
    }
    Some(ParsedToken {
        ca_digest: base36_to_32_bytes(digest)?,
        text: token.to_string(),
    })
}

/// Constant-time equality of a presented token with a stored one.
pub fn matches(presented: &str, stored: &str) -> bool {
    presented.len() == stored.len() && bool::from(presented.as_bytes().ct_eq(stored.as_bytes()))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_swarm_shape_and_pin_the_digest() {
        let digest = [7u8; 32];
        let t = generate(&digest);
        assert!(t.starts_with("SWMTKN-1-"));
        assert_eq!(t.len(), 9 + 50 + 1 + 25);
        assert_eq!(parse(&t).unwrap().ca_digest, digest);
        assert!(parse("garbage").is_none());
        assert!(matches(&t, &t.clone()));
        assert!(!matches(&t, &generate(&digest)));
    }
}
