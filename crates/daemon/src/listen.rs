//! Where the control API and the Docker API listen: a unix socket (0660, the
//! daemon's user and `--group`), a loopback TCP address (with a warning), or
//! any TCP address with mutual TLS (`--tlsverify`: a client must present a
//! certificate from `--tlscacert`), as dockerd.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, UnixListener};
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

pub enum Listener {
    Unix(UnixListener, OwnSocket),
    Tcp(TcpListener),
}

/// The APIs' TLS identity and the CA their clients' certificates must chain
/// to. Read once at start; a file that does not parse stops the daemon.
pub struct ApiTls {
    ca_pem: Vec<u8>,
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    docker: Arc<rustls::ServerConfig>,
}

impl ApiTls {
    pub fn load(ca: &Path, cert: &Path, key: &Path) -> anyhow::Result<Self> {
        let read = |flag: &str, path: &Path| {
            std::fs::read(path).with_context(|| format!("{flag} {}: cannot read it", path.display()))
        };
        let ca_pem = read("--tlscacert", ca)?;
        let cert_pem = read("--tlscert", cert)?;
        let key_pem = read("--tlskey", key)?;
        let roots = {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(&ca_pem) {
                let c = c.with_context(|| format!("--tlscacert {}: not a PEM certificate", ca.display()))?;
                roots
                    .add(c)
                    .with_context(|| format!("--tlscacert {}: not a usable CA certificate", ca.display()))?;
            }
            if roots.is_empty() {
                bail!("--tlscacert {}: no certificate in it", ca.display());
            }
            Arc::new(roots)
        };
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("--tlscert {}: not a PEM certificate", cert.display()))?;
        if chain.is_empty() {
            bail!("--tlscert {}: no certificate in it", cert.display());
        }
        let private = PrivateKeyDer::from_pem_slice(&key_pem)
            .with_context(|| format!("--tlskey {}: not a PEM private key", key.display()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .context("--tlscacert: cannot verify clients with it")?;
        let mut docker = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS versions")?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, private)
            .with_context(|| {
                format!(
                    "--tlscert/--tlskey: {} does not go with {}",
                    key.display(),
                    cert.display()
                )
            })?;
        docker.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            ca_pem,
            cert_pem,
            key_pem,
            docker: Arc::new(docker),
        })
    }

    /// The control API (gRPC): a client certificate is required.
    pub fn control(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
            .client_ca_root(Certificate::from_pem(&self.ca_pem))
            // A client that does not finish its handshake is dropped.
            .timeout(std::time::Duration::from_secs(10))
    }

    /// The Docker API (HTTP/1.1): a client certificate is required.
    pub fn docker(&self) -> Arc<rustls::ServerConfig> {
        self.docker.clone()
    }
}

/// Without TLS an API authenticates nobody beyond who can reach it, so it is
/// served on a unix socket or a loopback address only; with `--tlsverify` on
/// any address, and only to clients with a certificate from the CA.
pub fn check_api_addr(flag: &str, addr: &str, tls: bool) -> anyhow::Result<()> {
    if let Some(hp) = addr.strip_prefix("tcp://") {
        let sock: std::net::SocketAddr = hp
            .parse()
            .with_context(|| format!("invalid {flag} {addr:?}: expected tcp://IP:PORT"))?;
        if tls {
            return Ok(());
        }
        if !sock.ip().is_loopback() {
            bail!("{flag} {addr}: without --tlsverify this API is served only on a unix socket or a loopback address");
        }
        tracing::warn!(
            "{flag} {addr}: a loopback TCP listener has no authentication: any local process — a task sharing the \
             host's network included — can use it; prefer a unix socket, or --tlsverify"
        );
    }
    Ok(())
}

/// The socket file this daemon bound at `path`, as (device, inode).
fn identity(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Removes the socket at `path` if it is still the one this daemon bound
/// (a daemon started since on the same path keeps its own).
pub fn remove_own_socket(path: &OwnSocket) {
    if identity(&path.path) == Some(path.identity) {
        let _ = std::fs::remove_file(&path.path);
    }
}

/// Where the socket at `path` is bound before it is renamed into place:
/// beside it (a rename stays on one file system), named for this process; a
/// shorter name when the path is near the 107 bytes a socket address holds.
fn staging_path(path: &Path) -> PathBuf {
    let pid = std::process::id();
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    let long = path.with_file_name(format!(".{name}.{pid}"));
    if long.as_os_str().len() <= 107 {
        long
    } else {
        path.with_file_name(format!(".{pid}"))
    }
}

/// A unix socket path and the file this daemon bound there.
pub struct OwnSocket {
    pub path: PathBuf,
    identity: (u64, u64),
}

pub fn bind(host: &str, group: Option<&nix::unistd::Group>) -> anyhow::Result<Listener> {
    if let Some(path) = host.strip_prefix("unix://") {
        let path = PathBuf::from(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        // Bound, listening and given to its group under a name of its own,
        // then renamed into place: a client that sees the path can connect
        // (between bind(2) and listen(2) a connect is refused, and a loaded
        // machine once lost that race), and never finds it with the wrong group.
        let staging = staging_path(&path);
        match std::fs::remove_file(&staging) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing stale socket {}", staging.display())),
        }
        // Made 0660 by the umask at bind: never, even briefly, wider.
        use nix::sys::stat::{Mode, umask};
        let old = umask(Mode::from_bits_truncate(0o117));
        let bound = UnixListener::bind(&staging);
        umask(old);
        let listener = bound.with_context(|| format!("binding {}", path.display()))?;
        let published = (|| {
            if let Some(group) = group {
                // The socket itself, never what a link planted at its name
                // points to.
                std::os::unix::fs::lchown(&staging, None, Some(group.gid.as_raw()))
                    .with_context(|| format!("giving {} to group {}", path.display(), group.name))?;
            }
            // Replaces a stale socket left by a daemon that did not clean up.
            std::fs::rename(&staging, &path).with_context(|| format!("binding {}", path.display()))
        })();
        if let Err(e) = published {
            let _ = std::fs::remove_file(&staging);
            return Err(e);
        }
        let identity = identity(&path).with_context(|| format!("reading {}", path.display()))?;
        Ok(Listener::Unix(listener, OwnSocket { path, identity }))
    } else if let Some(addr) = host.strip_prefix("tcp://") {
        let std_listener = std::net::TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
        std_listener.set_nonblocking(true)?;
        Ok(Listener::Tcp(TcpListener::from_std(std_listener)?))
    } else {
        bail!("invalid --host {host:?}: expected unix:///PATH or tcp://IP:PORT")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_unix_socket_accepts_connections_once_its_path_exists_and_leaves_no_staging_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("api.sock");
        // A stale socket file (a daemon killed without cleaning up) is replaced.
        drop(std::os::unix::net::UnixListener::bind(&path).expect("stale socket"));
        assert!(std::os::unix::net::UnixStream::connect(&path).is_err());
        let Listener::Unix(listener, own) = bind(&format!("unix://{}", path.display()), None).expect("bind") else {
            panic!("a unix listener");
        };
        let client = tokio::net::UnixStream::connect(&path).await.expect("connect");
        let _served = listener.accept().await.expect("accept");
        drop(client);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("api.sock")]);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        remove_own_socket(&own);
        assert!(!path.exists());
    }

    #[test]
    fn the_staging_name_fits_a_socket_address() {
        let near = format!("/{}/d.sock", "x".repeat(96));
        let staged = staging_path(Path::new(&near));
        assert!(staged.as_os_str().len() <= 107, "{}", staged.display());
        assert_eq!(staged.parent(), Path::new(&near).parent());
        let short = staging_path(Path::new("/run/swarmkeep.sock"));
        assert_eq!(
            short,
            PathBuf::from(format!("/run/.swarmkeep.sock.{}", std::process::id()))
        );
    }
}
