//! Connecting to the daemon's control API and showing its errors as the
//! docker CLI does.

use std::fmt;

use hyper_util::rt::TokioIo;
use swarmkeep_api::control::control_client::ControlClient;
use tonic::transport::{Channel, Endpoint, Uri};

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

/// Connects to `host` (`unix:///PATH` or `tcp://IP:PORT`).
pub async fn connect(host: &str) -> Result<Client, CliError> {
    let channel = if let Some(path) = host.strip_prefix("unix://") {
        let path = path.to_string();
        // The URI is required by the HTTP/2 layer but unused by the connector.
        Endpoint::from_static("http://localhost")
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?)) }
            }))
            .await
            .map_err(|_| cannot_connect(host))?
    } else if let Some(addr) = host.strip_prefix("tcp://") {
        Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|_| CliError(format!("invalid host {host:?}: expected unix:///PATH or tcp://IP:PORT")))?
            .connect()
            .await
            .map_err(|_| cannot_connect(host))?
    } else {
        return Err(CliError(format!(
            "invalid host {host:?}: expected unix:///PATH or tcp://IP:PORT"
        )));
    };
    Ok(ControlClient::new(channel).max_decoding_message_size(64 * 1024 * 1024))
}
