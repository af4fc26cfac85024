use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};

use crate::locked::LockedKey;

use crate::SecretBytes;

const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const WRAP_AAD: &[u8] = b"swarmkeep/data-key/v1";

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// Wrong key, wrong associated data, or tampered ciphertext. Deliberately
    /// says nothing more.
    #[error("sealed data could not be opened")]
    Open,
    #[error("key material has the wrong length")]
    KeyLength,
}

/// A 32-byte XChaCha20-Poly1305 key, on a locked page of its own
/// ([`LockedKey`]). Zeroized on drop, never printed.
#[derive(Clone)]
pub(crate) struct SymmetricKey(pub(crate) LockedKey);

impl SymmetricKey {
    fn generate() -> Self {
        let mut k = LockedKey::zeroed();
        crate::random_bytes(&mut *k);
        Self(k)
    }

    pub(crate) fn from_slice(bytes: &[u8]) -> Result<Self, CryptoError> {
        let k: &[u8; 32] = bytes.try_into().map_err(|_| CryptoError::KeyLength)?;
        Ok(Self(LockedKey::from_bytes(k)))
    }

    /// `nonce(24) ‖ ciphertext ‖ tag(16)`, with a fresh random nonce.
    pub(crate) fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let cipher = XChaCha20Poly1305::new(&Key::from(*self.0));
        let mut nonce = [0u8; NONCE_LEN];
        crate::random_bytes(&mut nonce);
        let ct = cipher
            .encrypt(&XNonce::from(nonce), Payload { msg: plaintext, aad })
            .expect("XChaCha20-Poly1305 encryption of an in-memory buffer cannot fail");
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    pub(crate) fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<SecretBytes, CryptoError> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(CryptoError::Open);
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| CryptoError::Open)?;
        let cipher = XChaCha20Poly1305::new(&Key::from(*self.0));
        cipher
            .decrypt(&XNonce::from(nonce), Payload { msg: ct, aad })
            .map(SecretBytes::new)
            .map_err(|_| CryptoError::Open)
    }
}

/// The cluster data key: seals every secret payload before it enters the raft
/// log. Made once at `swarm init`.
#[derive(Clone)]
pub struct DataKey(SymmetricKey);

impl DataKey {
    pub fn generate() -> Self {
        Self(SymmetricKey::generate())
    }

    /// The raw key, for handing to a joining manager over mTLS.
    pub fn to_bytes(&self) -> SecretBytes {
        SecretBytes::new(self.0.0.to_vec())
    }

    pub fn from_bytes(bytes: &SecretBytes) -> Result<Self, CryptoError> {
        SymmetricKey::from_slice(bytes.expose()).map(Self)
    }

    /// Seals a secret payload; the object's ID is the associated data, so a
    /// sealed payload cannot be moved to another object.
    pub fn seal(&self, object_id: &str, plaintext: &SecretBytes) -> Vec<u8> {
        self.0.seal(object_id.as_bytes(), plaintext.expose())
    }

    pub fn open(&self, object_id: &str, sealed: &[u8]) -> Result<SecretBytes, CryptoError> {
        self.0.open(object_id.as_bytes(), sealed)
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey([redacted])")
    }
}

/// The key-encryption key that wraps the data key on a manager's disk.
pub struct KeyEncryptionKey(SymmetricKey);

impl KeyEncryptionKey {
    pub fn generate() -> Self {
        Self(SymmetricKey::generate())
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        SymmetricKey::from_slice(bytes).map(Self)
    }

    /// Parses an unlock key, `SWMKEY-1-<base64 of 32 bytes>`.
    pub fn from_unlock_key(text: &str) -> Result<Self, CryptoError> {
        use base64::Engine;
        let b64 = text.trim().strip_prefix("SWMKEY-1-").ok_or(CryptoError::KeyLength)?;
        let raw = SecretBytes::new(
            base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(b64)
                .map_err(|_| CryptoError::KeyLength)?,
        );
        Self::from_bytes(raw.expose())
    }

    /// This key written as an unlock key.
    pub fn to_unlock_key(&self) -> SecretBytes {
        use base64::Engine;
        let text = format!(
            "SWMKEY-1-{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(*self.0.0)
        );
        SecretBytes::new(text.into_bytes())
    }

    /// The raw key, to be written to a 0600 file.
    pub fn to_bytes(&self) -> SecretBytes {
        SecretBytes::new(self.0.0.to_vec())
    }

    pub fn wrap(&self, key: &DataKey) -> Vec<u8> {
        self.0.seal(WRAP_AAD, &*key.0.0)
    }

    pub fn unwrap_key(&self, wrapped: &[u8]) -> Result<DataKey, CryptoError> {
        let raw = self.0.open(WRAP_AAD, wrapped)?;
        SymmetricKey::from_slice(raw.expose()).map(DataKey)
    }
}

impl std::fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyEncryptionKey([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_rejects_tampering() {
        let key = DataKey::generate();
        let plain = SecretBytes::new(b"s3cr3t-value".to_vec());
        let sealed = key.seal("id1", &plain);
        assert!(!sealed.windows(12).any(|w| w == b"s3cr3t-value"));
        assert_eq!(key.open("id1", &sealed).unwrap().expose(), b"s3cr3t-value");
        assert!(key.open("id2", &sealed).is_err(), "wrong AAD must fail");
        let mut flipped = sealed.clone();
        flipped[30] ^= 1;
        assert!(key.open("id1", &flipped).is_err(), "tampering must fail");
        assert!(DataKey::generate().open("id1", &sealed).is_err(), "wrong key must fail");
        assert!(key.open("id1", &sealed[..10]).is_err());
    }

    #[test]
    fn nonces_are_fresh() {
        let key = DataKey::generate();
        let plain = SecretBytes::new(b"x".to_vec());
        assert_ne!(key.seal("a", &plain), key.seal("a", &plain));
    }

    #[test]
    fn unlock_keys_round_trip() {
        let kek = KeyEncryptionKey::generate();
        let text = String::from_utf8(kek.to_unlock_key().expose().to_vec()).unwrap();
        assert!(text.starts_with("SWMKEY-1-"));
        let back = KeyEncryptionKey::from_unlock_key(&text).unwrap();
        let dk = DataKey::generate();
        assert!(back.unwrap_key(&kek.wrap(&dk)).is_ok());
        assert!(KeyEncryptionKey::from_unlock_key("SWMKEY-1-short").is_err());
    }

    #[test]
    fn wrapped_data_key_round_trips() {
        let kek = KeyEncryptionKey::generate();
        let dk = DataKey::generate();
        let wrapped = kek.wrap(&dk);
        let back = kek.unwrap_key(&wrapped).unwrap();
        let sealed = dk.seal("o", &SecretBytes::new(b"v".to_vec()));
        assert_eq!(back.open("o", &sealed).unwrap().expose(), b"v");
        let kek2 = KeyEncryptionKey::from_bytes(kek.to_bytes().expose()).unwrap();
        assert!(kek2.unwrap_key(&wrapped).is_ok());
        assert!(KeyEncryptionKey::generate().unwrap_key(&wrapped).is_err());
        assert_eq!(format!("{dk:?}"), "DataKey([redacted])");
    }
}

/// The data key as a manager keeps it on disk, in one file so that every
/// change to it is one atomic replace: wrapped by a key-encryption key kept
/// in the same record, or — with autolock — wrapped by the unlock key only.
///
/// Layout: `SKDK` `1` (version), then `K` + the 32-byte KEK + the wrapped
/// key, or `U` + the wrapped key.
pub enum StoredDataKey {
    WithKek { kek: KeyEncryptionKey, wrapped: Vec<u8> },
    UnlockKeyOnly { wrapped: Vec<u8> },
}

const STORED_MAGIC: &[u8] = b"SKDK1";

impl StoredDataKey {
    pub fn encode(&self) -> SecretBytes {
        let mut out = STORED_MAGIC.to_vec();
        match self {
            Self::WithKek { kek, wrapped } => {
                out.push(b'K');
                out.extend_from_slice(&*kek.0.0);
                out.extend_from_slice(wrapped);
            }
            Self::UnlockKeyOnly { wrapped } => {
                out.push(b'U');
                out.extend_from_slice(wrapped);
            }
        }
        SecretBytes::new(out)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, CryptoError> {
        let rest = bytes.strip_prefix(STORED_MAGIC).ok_or(CryptoError::KeyLength)?;
        match rest.split_first() {
            Some((b'K', rest)) if rest.len() > 32 => Ok(Self::WithKek {
                kek: KeyEncryptionKey::from_bytes(&rest[..32])?,
                wrapped: rest[32..].to_vec(),
            }),
            Some((b'U', rest)) if !rest.is_empty() => Ok(Self::UnlockKeyOnly { wrapped: rest.to_vec() }),
            _ => Err(CryptoError::KeyLength),
        }
    }

    /// Opens the data key with the KEK beside it.
    pub fn open(&self) -> Result<DataKey, CryptoError> {
        match self {
            Self::WithKek { kek, wrapped } => kek.unwrap_key(wrapped),
            Self::UnlockKeyOnly { .. } => Err(CryptoError::Open),
        }
    }

    /// Opens the data key with an unlock key.
    pub fn unlock(&self, unlock_key: &KeyEncryptionKey) -> Result<DataKey, CryptoError> {
        match self {
            Self::UnlockKeyOnly { wrapped } => unlock_key.unwrap_key(wrapped),
            Self::WithKek { .. } => Err(CryptoError::Open),
        }
    }
}

#[cfg(test)]
mod stored_tests {
    use super::*;

    #[test]
    fn a_stored_data_key_round_trips_in_both_modes() {
        let dk = DataKey::generate();
        let kek = KeyEncryptionKey::generate();
        let wrapped = kek.wrap(&dk);
        let with = StoredDataKey::WithKek {
            kek: KeyEncryptionKey::from_bytes(kek.to_bytes().expose()).unwrap(),
            wrapped: wrapped.clone(),
        };
        let back = StoredDataKey::decode(with.encode().expose()).unwrap();
        assert_eq!(back.open().unwrap().to_bytes().expose(), dk.to_bytes().expose());
        assert!(back.unlock(&kek).is_err());
        let locked = StoredDataKey::UnlockKeyOnly { wrapped };
        let back = StoredDataKey::decode(locked.encode().expose()).unwrap();
        assert!(back.open().is_err());
        assert_eq!(back.unlock(&kek).unwrap().to_bytes().expose(), dk.to_bytes().expose());
        for bad in [&b""[..], b"SKDK1", b"SKDK1K", b"SKDK1U", b"SKDK1Xabc", b"nope"] {
            assert!(StoredDataKey::decode(bad).is_err());
        }
    }
}
