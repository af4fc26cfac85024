//! The manager's keys on disk: the cluster data key, wrapped by a
//! key-encryption key that sits in its own 0600 file (autolock, which keeps
//! the KEK off disk, builds on this layout).

use std::fs;
use std::path::{Path, PathBuf};

use swarmkeep_crypto::{DataKey, KeyEncryptionKey, SecretBytes};

const KEK_FILE: &str = "kek";
const DATA_KEY_FILE: &str = "data-key.wrapped";

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

    /// Writes a new KEK and the data key wrapped by it, each fsync'd.
    pub fn create(&self, data_key: &DataKey) -> Result<(), KeyStoreError> {
        swarmkeep_disk::private_dir(&self.dir).map_err(io_err(&self.dir))?;
        let kek = KeyEncryptionKey::generate();
        write_private(&self.dir.join(KEK_FILE), kek.to_bytes().expose())?;
        write_private(&self.dir.join(DATA_KEY_FILE), &kek.wrap(data_key))?;
        Ok(())
    }

    /// Autolock mode: the data key is wrapped by the unlock key only, and no
    /// key-encryption key is on disk.
    pub fn is_locked_mode(&self) -> bool {
        !self.dir.join(KEK_FILE).exists() && self.dir.join(DATA_KEY_FILE).exists()
    }

    /// Opens the data key with an unlock key (autolock mode).
    pub fn unlock(&self, kek: &KeyEncryptionKey) -> Result<DataKey, KeyStoreError> {
        let dk_path = self.dir.join(DATA_KEY_FILE);
        let wrapped = fs::read(&dk_path).map_err(io_err(&dk_path))?;
        kek.unwrap_key(&wrapped)
            .map_err(|_| KeyStoreError::Unwrap(dk_path.display().to_string()))
    }

    pub fn wrapped_opens_with(&self, kek: &KeyEncryptionKey) -> bool {
        self.unlock(kek).is_ok()
    }

    /// Switches to autolock mode: re-wraps the data key with `kek` (the
    /// unlock key), then removes the key-encryption key file.
    pub fn lock_with(&self, data_key: &DataKey, kek: &KeyEncryptionKey) -> Result<(), KeyStoreError> {
        write_private(&self.dir.join(DATA_KEY_FILE), &kek.wrap(data_key))?;
        match fs::remove_file(self.dir.join(KEK_FILE)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_err(&self.dir)(e)),
            _ => {}
        }
        swarmkeep_disk::sync_dir(&self.dir).map_err(io_err(&self.dir))
    }

    pub fn load(&self) -> Result<DataKey, KeyStoreError> {
        let kek_path = self.dir.join(KEK_FILE);
        let kek_bytes = SecretBytes::new(fs::read(&kek_path).map_err(io_err(&kek_path))?);
        let kek = KeyEncryptionKey::from_bytes(kek_bytes.expose())
            .map_err(|_| KeyStoreError::Unwrap(kek_path.display().to_string()))?;
        let dk_path = self.dir.join(DATA_KEY_FILE);
        let wrapped = fs::read(&dk_path).map_err(io_err(&dk_path))?;
        kek.unwrap_key(&wrapped)
            .map_err(|_| KeyStoreError::Unwrap(dk_path.display().to_string()))
    }
}

/// Replaces `path` whole (never truncated in place: a crash leaves the old
/// key or the new one), 0600.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeyStoreError> {
    swarmkeep_disk::write_private(path, bytes).map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keys_round_trip_and_kek_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let ks = KeyStore::new(dir.path());
        let dk = DataKey::generate();
        ks.create(&dk).unwrap();
        let mode = fs::metadata(dir.path().join(KEK_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let loaded = ks.load().unwrap();
        let sealed = dk.seal("x", &SecretBytes::new(b"v".to_vec()));
        assert_eq!(loaded.open("x", &sealed).unwrap().expose(), b"v");
    }
}
