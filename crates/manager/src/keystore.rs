//! The manager's keys on disk: the cluster data key in one file
//! ([`StoredDataKey`]), wrapped by a key-encryption key kept in the same
//! record, or — with autolock — by the unlock key only. Every change (create,
//! lock, unlock) is one atomic replace of that file: a crash leaves the old
//! record or the new one, never a KEK that does not open the key beside it.

use std::fs;
use std::path::{Path, PathBuf};

use swarmkeep_crypto::{DataKey, KeyEncryptionKey, StoredDataKey};

const DATA_KEY_FILE: &str = "data-key";
/// The layout before one file: a KEK file and the wrapped key beside it.
const LEGACY_KEK_FILE: &str = "kek";
const LEGACY_DATA_KEY_FILE: &str = "data-key.wrapped";

pub struct KeyStore {
    dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error("key store {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("the data key in {0} cannot be opened with this node's key-encryption key")]
    Unwrap(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KeyStoreError + '_ {
    move |source| KeyStoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl KeyStore {
    pub fn new(dir: &Path) -> Self {
        Self { dir: dir.to_path_buf() }
    }

    fn path(&self) -> PathBuf {
        self.dir.join(DATA_KEY_FILE)
    }

    /// A new KEK and the data key wrapped by it, in one write.
    pub fn create(&self, data_key: &DataKey) -> Result<(), KeyStoreError> {
        swarmkeep_disk::private_dir(&self.dir).map_err(io_err(&self.dir))?;
        let kek = KeyEncryptionKey::generate();
        let wrapped = kek.wrap(data_key);
        self.write(&StoredDataKey::WithKek { kek, wrapped })
    }

    /// Autolock mode: the data key is wrapped by the unlock key only, and no
    /// key-encryption key is on disk.
    pub fn is_locked_mode(&self) -> bool {
        matches!(self.read(), Ok(StoredDataKey::UnlockKeyOnly { .. }))
    }

    /// Opens the data key with an unlock key (autolock mode).
    pub fn unlock(&self, kek: &KeyEncryptionKey) -> Result<DataKey, KeyStoreError> {
        self.read()?
            .unlock(kek)
            .map_err(|_| KeyStoreError::Unwrap(self.path().display().to_string()))
    }

    pub fn wrapped_opens_with(&self, kek: &KeyEncryptionKey) -> bool {
        self.unlock(kek).is_ok()
    }

    /// Switches to autolock mode: the data key wrapped by `kek` (the unlock
    /// key) replaces the record, key-encryption key and all, in one write.
    pub fn lock_with(&self, data_key: &DataKey, kek: &KeyEncryptionKey) -> Result<(), KeyStoreError> {
        self.write(&StoredDataKey::UnlockKeyOnly {
            wrapped: kek.wrap(data_key),
        })
    }

    pub fn load(&self) -> Result<DataKey, KeyStoreError> {
        self.read()?
            .open()
            .map_err(|_| KeyStoreError::Unwrap(self.path().display().to_string()))
    }

    /// The record, from its file or — once, for a data dir of the older
    /// layout — from the two legacy files, which are then replaced by it.
    fn read(&self) -> Result<StoredDataKey, KeyStoreError> {
        let path = self.path();
        match fs::read(&path) {
            Ok(bytes) => {
                let bytes = swarmkeep_crypto::SecretBytes::new(bytes);
                StoredDataKey::decode(bytes.expose()).map_err(|_| KeyStoreError::Unwrap(path.display().to_string()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let legacy = self.read_legacy()?;
                self.write(&legacy)?;
                Ok(legacy)
            }
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    fn read_legacy(&self) -> Result<StoredDataKey, KeyStoreError> {
        let dk_path = self.dir.join(LEGACY_DATA_KEY_FILE);
        let wrapped = fs::read(&dk_path).map_err(io_err(&dk_path))?;
        let kek_path = self.dir.join(LEGACY_KEK_FILE);
        match fs::read(&kek_path) {
            Ok(bytes) => {
                let bytes = swarmkeep_crypto::SecretBytes::new(bytes);
                let kek = KeyEncryptionKey::from_bytes(bytes.expose())
                    .map_err(|_| KeyStoreError::Unwrap(kek_path.display().to_string()))?;
                Ok(StoredDataKey::WithKek { kek, wrapped })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(StoredDataKey::UnlockKeyOnly { wrapped }),
            Err(e) => Err(io_err(&kek_path)(e)),
        }
    }

    /// Replaces the record whole (temporary file, fsync, rename, directory
    /// fsync), 0600; the legacy files go once it is in place.
    fn write(&self, stored: &StoredDataKey) -> Result<(), KeyStoreError> {
        let path = self.path();
        swarmkeep_disk::write_private(&path, stored.encode().expose()).map_err(io_err(&path))?;
        for legacy in [LEGACY_KEK_FILE, LEGACY_DATA_KEY_FILE] {
            match fs::remove_file(self.dir.join(legacy)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_err(&self.dir)(e)),
                _ => {}
            }
        }
        swarmkeep_disk::sync_dir(&self.dir).map_err(io_err(&self.dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use swarmkeep_crypto::SecretBytes;

    #[test]
    fn keys_round_trip_and_kek_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let ks = KeyStore::new(dir.path());
        let dk = DataKey::generate();
        ks.create(&dk).unwrap();
        let mode = fs::metadata(dir.path().join(DATA_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let loaded = ks.load().unwrap();
        let sealed = dk.seal("x", &SecretBytes::new(b"v".to_vec()));
        assert_eq!(loaded.open("x", &sealed).unwrap().expose(), b"v");
    }

    /// Locking and unlocking are each one replace: whatever point a crash
    /// stops at — a temporary file written but not renamed — the store opens
    /// the way the last completed change left it.
    #[test]
    fn a_crash_before_the_rename_leaves_the_previous_record_usable() {
        let dir = tempfile::tempdir().unwrap();
        let ks = KeyStore::new(dir.path());
        let dk = DataKey::generate();
        ks.create(&dk).unwrap();
        let unlock = KeyEncryptionKey::generate();
        // The lock's new record was written to a temporary file, then the
        // node died before the rename.
        let half = StoredDataKey::UnlockKeyOnly {
            wrapped: unlock.wrap(&dk),
        };
        fs::write(dir.path().join("data-key.crashed.tmp"), half.encode().expose()).unwrap();
        assert!(!ks.is_locked_mode());
        assert_eq!(ks.load().unwrap().to_bytes().expose(), dk.to_bytes().expose());
        // The lock done: the unlock key opens it, nothing else does.
        ks.lock_with(&dk, &unlock).unwrap();
        assert!(ks.is_locked_mode());
        assert!(ks.load().is_err());
        assert_eq!(ks.unlock(&unlock).unwrap().to_bytes().expose(), dk.to_bytes().expose());
        // And back: a new KEK in the same record.
        ks.create(&dk).unwrap();
        assert!(!ks.is_locked_mode());
        assert_eq!(ks.load().unwrap().to_bytes().expose(), dk.to_bytes().expose());
    }

    /// A data dir of the two-file layout is read, and rewritten as one file.
    #[test]
    fn the_legacy_two_file_layout_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let dk = DataKey::generate();
        let kek = KeyEncryptionKey::generate();
        fs::write(dir.path().join(LEGACY_KEK_FILE), kek.to_bytes().expose()).unwrap();
        fs::write(dir.path().join(LEGACY_DATA_KEY_FILE), kek.wrap(&dk)).unwrap();
        let ks = KeyStore::new(dir.path());
        assert_eq!(ks.load().unwrap().to_bytes().expose(), dk.to_bytes().expose());
        assert!(dir.path().join(DATA_KEY_FILE).exists());
        assert!(!dir.path().join(LEGACY_KEK_FILE).exists());
        assert!(!dir.path().join(LEGACY_DATA_KEY_FILE).exists());
    }
}
