//! Sealing secrets to one node: the leader's dispatcher re-seals each payload
//! to the X25519 key the node's agent registered for its session.
//!
//! One ephemeral X25519 key per message; the shared secret goes through
//! HKDF-SHA256 (salt = ephemeral public ‖ recipient public) to an
//! XChaCha20-Poly1305 key, and every payload of the message is sealed with it
//! under a fresh random nonce, AAD = the secret's ID.

use hkdf::Hkdf;
use sha2::Sha256;
use x25519_dalek::{EphemeralSecret, PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::keys::SymmetricKey;
use crate::{CryptoError, SecretBytes};

const INFO: &[u8] = b"swarmkeep/sealed-box/v1";

fn derive(shared: &[u8; 32], ephemeral: &[u8; 32], recipient: &[u8; 32]) -> SymmetricKey {
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(ephemeral);
    salt[32..].copy_from_slice(recipient);
    let hk = Hkdf::<Sha256>::new(Some(&salt), shared);
    let mut okm = Zeroizing::new([0u8; 32]);
    hk.expand(INFO, okm.as_mut())
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    SymmetricKey(crate::locked::LockedKey::from_bytes(&okm))
}

fn public_key(bytes: &[u8]) -> Result<PublicKey, CryptoError> {
    let b: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::KeyLength)?;
    Ok(PublicKey::from(b))
}

/// An agent's key for one session. Lives in memory only.
pub struct SessionKey(StaticSecret);

impl SessionKey {
    pub fn generate() -> Self {
        Self(StaticSecret::random())
    }

    pub fn public(&self) -> [u8; 32] {
        PublicKey::from(&self.0).to_bytes()
    }

    /// The key that opens the payloads of one message sealed with `ephemeral`.
    pub fn opener(&self, ephemeral: &[u8]) -> Result<BoxOpener, CryptoError> {
        let eph = public_key(ephemeral)?;
        let shared = self.0.diffie_hellman(&eph);
        if !shared.was_contributory() {
            return Err(CryptoError::Open);
        }
        Ok(BoxOpener(derive(shared.as_bytes(), eph.as_bytes(), &self.public())))
    }
}

/// Seals the payloads of one message to one recipient.
pub struct BoxSealer {
    key: SymmetricKey,
    ephemeral: [u8; 32],
}

impl BoxSealer {
    pub fn new(recipient: &[u8]) -> Result<Self, CryptoError> {
        let rcpt = public_key(recipient)?;
        let secret = EphemeralSecret::random();
        let ephemeral = PublicKey::from(&secret).to_bytes();
        let shared = secret.diffie_hellman(&rcpt);
        if !shared.was_contributory() {
            return Err(CryptoError::KeyLength);
        }
        Ok(Self {
            key: derive(shared.as_bytes(), &ephemeral, rcpt.as_bytes()),
            ephemeral,
        })
    }

    pub fn ephemeral_public(&self) -> [u8; 32] {
        self.ephemeral
    }

    pub fn seal(&self, id: &str, plaintext: &SecretBytes) -> Vec<u8> {
        self.key.seal(id.as_bytes(), plaintext.expose())
    }
}

pub struct BoxOpener(SymmetricKey);

impl BoxOpener {
    pub fn open(&self, id: &str, sealed: &[u8]) -> Result<SecretBytes, CryptoError> {
        self.0.open(id.as_bytes(), sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_session_key_opens_and_the_id_is_bound() {
        let node = SessionKey::generate();
        let other = SessionKey::generate();
        let sealer = BoxSealer::new(&node.public()).unwrap();
        let sealed = sealer.seal("sid", &SecretBytes::new(b"\x00\xffpayload".to_vec()));
        let opener = node.opener(&sealer.ephemeral_public()).unwrap();
        assert_eq!(opener.open("sid", &sealed).unwrap().expose(), b"\x00\xffpayload");
        assert!(opener.open("other-id", &sealed).is_err());
        let mut tampered = sealed.clone();
        tampered[30] ^= 1;
        assert!(opener.open("sid", &tampered).is_err());
        let wrong = other.opener(&sealer.ephemeral_public()).unwrap();
        assert!(wrong.open("sid", &sealed).is_err());
        // A low-order point is refused rather than giving a predictable key.
        assert!(node.opener(&[0u8; 32]).is_err());
        assert!(BoxSealer::new(&[0u8; 32]).is_err());
    }
}
