//! Connecting to the daemon's control API and showing its errors as the
//! docker CLI does.

use std::fmt;
use std::path::Path;

use hyper_util::rt::TokioIo;
use swarmkeep_api::control::control_client::ControlClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity, Uri};

pub const DEFAULT_HOST: &str = "unix:///run/swarmkeep/swarmkeep.sock";

pub type Client = ControlClient<Channel>;

/// A failure the CLI reports on stderr before exiting with status 1. The
/// message is complete as it stands.
#[derive(Debug)]
pub struct CliError(pub String);

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CliError {}

impl From<tonic::Status> for CliError {
    fn from(status: tonic::Status) -> Self {
        CliError(daemon_error(&status))
    }
}

/// `Error response from daemon: …`, as the docker CLI prints a daemon error.
pub fn daemon_error(status: &tonic::Status) -> String {
    format!(
        "Error response from daemon: {}",
        swarmkeep_api::errors::docker_message(status)
    )
}

fn cannot_connect(host: &str) -> CliError {
    CliError(format!(
        "Cannot connect to the swarmkeep daemon at {host}. Is the swarmkeepd daemon running?"
    ))
}

/// Why the unix socket at `host` took no connection (the connector's own
/// error, found in `e`'s sources): docker's words for a socket this user may
/// not use, else [`cannot_connect`].
fn unix_error(host: &str, e: &tonic::transport::Error) -> CliError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied)
        {
            return CliError(format!(
                "Got permission denied while trying to connect to the swarmkeep daemon socket at {host}: connect: permission denied"
            ));
        }
        source = err.source();
    }
    cannot_connect(host)
}

/// What a client presents to a daemon's TCP API served with `--tlsverify`:
/// the CA the daemon's certificate must chain to, and its own certificate.
pub struct ClientTls {
    pub ca_pem: Vec<u8>,
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl ClientTls {
    /// Reads the three PEM files; an unreadable one is named.
    pub fn load(ca: &Path, cert: &Path, key: &Path) -> Result<Self, CliError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|e| CliError(format!("could not read TLS file {}: {e}", path.display())))
        };
        Ok(Self {
            ca_pem: read(ca)?,
            cert_pem: read(cert)?,
            key_pem: read(key)?,
        })
    }
}

/// Connects to `host` (`unix:///PATH` or `tcp://IP:PORT`).
pub async fn connect(host: &str) -> Result<Client, CliError> {
    connect_with(host, None).await
}

/// Connects to `host`, over TLS with `tls` when it is TCP.
pub async fn connect_with(host: &str, tls: Option<&ClientTls>) -> Result<Client, CliError> {
    Ok(control_client(channel_with(host, tls).await?))
}

/// The control API's client on `channel`.
pub fn control_client(channel: Channel) -> Client {
    ControlClient::new(channel).max_decoding_message_size(64 * 1024 * 1024)
}

/// A connection to `host` (the control API and the node's containers
/// and images are served on it).
pub async fn channel_with(host: &str, tls: Option<&ClientTls>) -> Result<Channel, CliError> {
    let invalid = || CliError(format!("invalid host {host:?}: expected unix:///PATH or tcp://IP:PORT"));
    let channel = if let Some(path) = host.strip_prefix("unix://") {
        let path = path.to_string();
        // The URI is required by the HTTP/2 layer but unused by the connector.
        Endpoint::from_static("http://localhost")
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?)) }
            }))
            .await
            .map_err(|e| unix_error(host, &e))?
    } else if let Some(addr) = host.strip_prefix("tcp://") {
        match tls {
            None => Endpoint::from_shared(format!("http://{addr}"))
                .map_err(|_| invalid())?
                .connect()
                .await
                .map_err(|_| cannot_connect(host))?,
            Some(tls) => {
                let name = addr.rsplit_once(':').map(|(h, _)| h).ok_or_else(invalid)?;
                let name = name.trim_start_matches('[').trim_end_matches(']');
                let config = ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(&tls.ca_pem))
                    .identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem))
                    .domain_name(name);
                Endpoint::from_shared(format!("https://{addr}"))
                    .map_err(|_| invalid())?
                    .tls_config(config)
                    .map_err(|e| CliError(format!("error during connect: {}", innermost(&e))))?
                    .connect()
                    .await
                    .map_err(|e| CliError(format!("error during connect: {host}: {}", innermost(&e))))?
            }
        }
    } else {
        return Err(invalid());
    };
    Ok(channel)
}

/// The root cause of a connection failure (a refused connection, a
/// certificate the other side did not accept).
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
