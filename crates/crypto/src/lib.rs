//! Keys, sealing and the types that hold plaintext secrets.
//!
//! Architecture invariant: every plaintext secret lives in a [`SecretBytes`]
//! (zeroized on drop, `Debug` prints `[redacted]`, no `Display`, no serde), and
//! every key in a type that zeroizes itself. Nothing here does I/O except
//! reading the OS random source.

mod ids;
mod keys;
mod locked;
mod sealed_box;
mod secret_bytes;

pub use ids::{base36_padded, base36_to_32_bytes, new_id};
pub use keys::{CryptoError, DataKey, KeyEncryptionKey, StoredDataKey};
pub use sealed_box::{BoxOpener, BoxSealer, SessionKey};
pub use secret_bytes::SecretBytes;

/// Fills `buf` from the operating system's random source.
pub fn random_bytes(buf: &mut [u8]) {
    // The OS random source failing is not a condition any caller can recover from.
    getrandom::fill(buf).expect("the operating system's random source failed");
}
