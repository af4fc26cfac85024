//! TLS for cluster traffic: this node's identity (CA, certificate, key) on
//! disk, the server and client configurations, and the one unverified
//! connection a joiner makes to fetch the CA it then checks against the join
//! token's digest.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use hyper_util::rt::TokioIo;
use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use swarmkeep_crypto::SecretBytes;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig, Uri};

/// The name (and organizational unit) of a manager's certificate. Every
/// client dials managers only, and checks for this name: a worker's
/// certificate, which names `swarm-worker`, cannot serve as a manager. Nodes
/// are told apart by the CN (their node ID).
pub const TLS_SERVER_NAME: &str = MANAGER_CERT_NAME;
pub const MANAGER_CERT_NAME: &str = "swarm-manager";
pub const WORKER_CERT_NAME: &str = "swarm-worker";

/// This node's cluster identity.
#[derive(Clone)]
pub struct NodeTls {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: SecretBytes,
}

const CA_FILE: &str = "ca.crt";
const CERT_FILE: &str = "node.crt";
const KEY_FILE: &str = "node.key";

impl NodeTls {
    pub fn load(dir: &Path) -> std::io::Result<Self> {
        Ok(Self {
            ca_pem: fs::read_to_string(dir.join(CA_FILE))?,
            cert_pem: fs::read_to_string(dir.join(CERT_FILE))?,
            key_pem: SecretBytes::new(fs::read(dir.join(KEY_FILE))?),
        })
    }

    /// Each file written whole (temp, fsync, rename), 0600 in a 0700 directory.
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        swarmkeep_disk::private_dir(dir)?;
        swarmkeep_disk::write_private(&dir.join(CA_FILE), self.ca_pem.as_bytes())?;
        swarmkeep_disk::write_private(&dir.join(CERT_FILE), self.cert_pem.as_bytes())?;
        swarmkeep_disk::write_private(&dir.join(KEY_FILE), self.key_pem.expose())
    }

    fn identity(&self) -> Identity {
        Identity::from_pem(self.cert_pem.as_bytes(), self.key_pem.expose())
    }

    /// The server side: our certificate; client certificates from our CA
    /// are verified when presented (NodeCA is callable without one; every
    /// other service checks that one was presented).
    pub fn server_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(self.identity())
            .client_ca_root(Certificate::from_pem(self.ca_pem.as_bytes()))
            .client_auth_optional(true)
    }

    /// A lazily connecting mTLS channel to another node at `addr` (IP:PORT).
    pub fn channel(&self, addr: &str) -> Result<Channel, tonic::transport::Error> {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(self.ca_pem.as_bytes()))
            .identity(self.identity())
            .domain_name(TLS_SERVER_NAME);
        Ok(endpoint(addr)?.tls_config(tls)?.connect_lazy())
    }
}

fn endpoint(addr: &str) -> Result<Endpoint, tonic::transport::Error> {
    Ok(Endpoint::from_shared(format!("https://{addr}"))?
        .connect_timeout(std::time::Duration::from_secs(2))
        .timeout(std::time::Duration::from_secs(10))
        // A long-lived stream (an agent's dispatcher session) notices a peer
        // that vanished without a reset.
        .http2_keep_alive_interval(std::time::Duration::from_secs(5))
        .keep_alive_timeout(std::time::Duration::from_secs(10))
        .keep_alive_while_idle(true))
}

/// A channel that trusts only `ca_pem` and presents no certificate: what a
/// joiner uses once it has pinned the CA, before it has a certificate.
pub fn pinned_channel(addr: &str, ca_pem: &str) -> Result<Channel, tonic::transport::Error> {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem.as_bytes()))
        .domain_name(TLS_SERVER_NAME);
    Ok(endpoint(addr)?.tls_config(tls)?.connect_lazy())
}

/// Accepts any server certificate. Used for exactly one call — fetching the
/// root CA — whose answer is trusted only after its SHA-256 matches the
/// digest in the join token.
#[derive(Debug)]
struct UnverifiedForDigestCheck(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for UnverifiedForDigestCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A channel for the CA fetch before the CA is known (see
/// [`UnverifiedForDigestCheck`]).
pub async fn unverified_channel(addr: &str) -> Result<Channel, tonic::transport::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(UnverifiedForDigestCheck(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let target = addr.to_string();
    Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(std::time::Duration::from_secs(2))
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let connector = connector.clone();
            let target = target.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(&target).await?;
                let name = ServerName::try_from(TLS_SERVER_NAME).map_err(std::io::Error::other)?;
                let tls = connector.connect(name, tcp).await?;
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        }))
        .await
}
