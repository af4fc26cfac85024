//! TLS for cluster traffic: this node's identity (CA, certificate, key) on
//! disk, the server and client configurations, and the one unverified
//! connection a joiner makes to fetch the CA it then checks against the join
//! token's digest.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use hyper_util::rt::TokioIo;
use rustls::DigitallySignedStruct;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use swarmkeep_crypto::SecretBytes;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Uri};

/// The name (and organizational unit) of a manager's certificate. Every
/// client dials managers only, and checks for this name: a worker's
/// certificate, which names `swarm-worker`, cannot serve as a manager. Nodes
/// are told apart by the CN (their node ID).
pub const TLS_SERVER_NAME: &str = MANAGER_CERT_NAME;
pub const MANAGER_CERT_NAME: &str = "swarm-manager";
pub const WORKER_CERT_NAME: &str = "swarm-worker";
/// How far before its issue a node certificate is valid from (clock skew
/// between nodes), as swarmkit backdates.
pub const CERT_BACKDATE: Duration = Duration::from_secs(3600);

/// This node's cluster identity.
#[derive(Clone)]
pub struct NodeTls {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: SecretBytes,
}

const CA_FILE: &str = "ca.crt";
/// The node's certificate and then its key, in one file: a renewal replaces
/// both in one rename, so a crash never pairs a key with another's
/// certificate.
const NODE_FILE: &str = "node.pem";
/// The layout before one file.
const LEGACY_CERT_FILE: &str = "node.crt";
const LEGACY_KEY_FILE: &str = "node.key";

impl NodeTls {
    pub fn load(dir: &Path) -> std::io::Result<Self> {
        let ca_pem = fs::read_to_string(dir.join(CA_FILE))?;
        match fs::read(dir.join(NODE_FILE)) {
            Ok(bundle) => {
                let bundle = SecretBytes::new(bundle);
                let text = std::str::from_utf8(bundle.expose()).map_err(|_| invalid_bundle())?;
                let at = text.find("-----BEGIN PRIVATE KEY-----").ok_or_else(invalid_bundle)?;
                Ok(Self {
                    ca_pem,
                    cert_pem: text[..at].to_string(),
                    key_pem: SecretBytes::new(text.as_bytes()[at..].to_vec()),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let legacy = Self {
                    ca_pem,
                    cert_pem: fs::read_to_string(dir.join(LEGACY_CERT_FILE))?,
                    key_pem: SecretBytes::new(fs::read(dir.join(LEGACY_KEY_FILE))?),
                };
                legacy.save(dir)?;
                Ok(legacy)
            }
            Err(e) => Err(e),
        }
    }

    /// Each file written whole (temp, fsync, rename), 0600 in a 0700
    /// directory; the certificate and key together in one.
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        swarmkeep_disk::private_dir(dir)?;
        swarmkeep_disk::write_private(&dir.join(CA_FILE), self.ca_pem.as_bytes())?;
        // Sized once, so the key is never copied by a reallocation.
        let mut bundle = Vec::with_capacity(self.cert_pem.len() + 1 + self.key_pem.len());
        bundle.extend_from_slice(self.cert_pem.as_bytes());
        if !self.cert_pem.ends_with('\n') {
            bundle.push(b'\n');
        }
        bundle.extend_from_slice(self.key_pem.expose());
        let bundle = SecretBytes::new(bundle);
        swarmkeep_disk::write_private(&dir.join(NODE_FILE), bundle.expose())?;
        for legacy in [LEGACY_CERT_FILE, LEGACY_KEY_FILE] {
            match fs::remove_file(dir.join(legacy)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        swarmkeep_disk::sync_dir(dir)
    }

    /// A channel presenting this identity to the manager at `addr`, any
    /// manager the CA vouches for (no pins): for one-off callers.
    pub fn channel(&self, addr: &str) -> Result<Channel, TlsError> {
        TlsCell::new(Arc::new(self.clone()))?
            .channel(addr)
            .map_err(|_| TlsError("not an IP:PORT address"))
    }

    /// What this certificate says (node ID, role name, validity).
    pub fn info(&self) -> Option<CertInfo> {
        CertInfo::from_pem(&self.cert_pem)
    }

    /// The certificate chain, parsed.
    fn chain(&self) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| TlsError("the node certificate is not PEM"))
    }

    /// The certificate chain and the key, parsed (the key's DER lives as
    /// long as rustls keeps it; the zeroing allocator wipes it when freed).
    fn chain_and_key(&self) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
        let key =
            PrivateKeyDer::from_pem_slice(self.key_pem.expose()).map_err(|_| TlsError("the node key is not PEM"))?;
        Ok((self.chain()?, key))
    }

    /// The client side: our certificate, servers checked against our CA, as
    /// managers (`swarm-manager`), and against `pins` when they are set.
    fn client_config(&self, pins: Arc<ManagerPins>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let webpki = WebPkiServerVerifier::builder_with_provider(roots(&self.ca_pem)?, provider.clone())
            .build()
            .map_err(|_| TlsError("the CA certificate cannot verify servers"))?;
        let (chain, key) = self.chain_and_key()?;

        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|_| TlsError("TLS versions"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ManagerVerifier { webpki, pins }))
            .with_client_auth_cert(chain, key)
            .map_err(|_| TlsError("the node key does not go with its certificate"))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }
}

/// The cluster's root, as a trust store. (A root rotation would put the old
/// and the new root here while nodes are re-issued.)
fn roots(ca_pem: &str) -> Result<Arc<rustls::RootCertStore>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(c.map_err(|_| TlsError("the CA certificate is not PEM"))?)
            .map_err(|_| TlsError("the CA certificate is not usable"))?;
    }
    Ok(Arc::new(roots))
}

fn invalid_bundle() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("{NODE_FILE} does not hold a certificate and a PKCS#8 key"),
    )
}

/// Why a renewed identity was not taken.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error(transparent)]
    Invalid(TlsError),
    #[error("writing the TLS identity: {0}")]
    Io(std::io::Error),
}

/// A node identity that cannot be used (unparsable PEM, a key that does not
/// match). The text names the part, never its contents.
#[derive(Debug, thiserror::Error)]
#[error("TLS identity: {0}")]
pub struct TlsError(&'static str);

/// What a node certificate says.
#[derive(Clone, Debug)]
pub struct CertInfo {
    /// The CN: the node ID.
    pub node_id: String,
    /// The OU: `swarm-manager` or `swarm-worker` (none on certificates made
    /// before roles were).
    pub role_name: Option<String>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl CertInfo {
    /// When it was issued: its start of validity, less the backdate.
    pub fn issued_at(&self) -> SystemTime {
        let issued = self.not_before + CERT_BACKDATE;
        if issued < self.not_after {
            issued
        } else {
            self.not_before
        }
    }
}

impl CertInfo {
    pub fn from_der(der: &[u8]) -> Option<Self> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let node_id = cert.subject().iter_common_name().next()?.as_str().ok()?.to_string();
        let role_name = cert
            .subject()
            .iter_organizational_unit()
            .next()
            .and_then(|ou| ou.as_str().ok())
            .map(str::to_string);
        let at = |t: x509_parser::time::ASN1Time| {
            let secs = t.timestamp();
            if secs >= 0 {
                SystemTime::UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
            } else {
                SystemTime::UNIX_EPOCH
            }
        };
        Some(Self {
            node_id,
            role_name,
            not_before: at(cert.validity().not_before),
            not_after: at(cert.validity().not_after),
        })
    }

    pub fn from_pem(pem: &str) -> Option<Self> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
        Self::from_der(&pem.contents)
    }
}

/// The managers this node accepts as servers, by node ID: unset (any
/// manager certificate from the CA) until the node has heard who they are.
/// A demoted or removed manager's old certificate — still unexpired, still
/// naming `swarm-manager` — is then refused.
#[derive(Debug, Default)]
pub struct ManagerPins(RwLock<Option<BTreeSet<String>>>);

impl ManagerPins {
    fn allows(&self, node_id: &str) -> bool {
        match &*self.0.read().unwrap_or_else(|p| p.into_inner()) {
            Some(ids) => ids.contains(node_id),
            None => true,
        }
    }
}

/// The CA's verification of a manager's certificate, then the pins.
#[derive(Debug)]
struct ManagerVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    pins: Arc<ManagerPins>,
}

impl ServerCertVerifier for ManagerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        let node_id = CertInfo::from_der(end_entity.as_ref())
            .map(|c| c.node_id)
            .ok_or(rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding))?;
        if !self.pins.allows(&node_id) {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// The node's identity as it is now — a renewal or a role change replaces
/// it, and new connections, in either direction, present the new one — and
/// the managers it accepts as servers.
pub struct TlsCell {
    current: Arc<RwLock<Current>>,
    pins: Arc<ManagerPins>,
    server: Arc<rustls::ServerConfig>,
}

struct Current {
    tls: Arc<NodeTls>,
    client: Arc<rustls::ClientConfig>,
    certified: Arc<rustls::sign::CertifiedKey>,
}

impl Current {
    fn new(tls: Arc<NodeTls>, pins: Arc<ManagerPins>) -> Result<Self, TlsError> {
        let client = tls.client_config(pins)?;
        let provider = rustls::crypto::ring::default_provider();
        let (chain, key) = tls.chain_and_key()?;
        let certified = rustls::sign::CertifiedKey::from_der(chain, key, &provider)
            .map_err(|_| TlsError("the node key does not go with its certificate"))?;
        Ok(Self {
            tls,
            client,
            certified: Arc::new(certified),
        })
    }
}

/// The server side presents whatever certificate the cell holds now.
#[derive(Debug)]
struct CurrentCert(Arc<RwLock<Current>>);

impl std::fmt::Debug for Current {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Current")
    }
}

impl rustls::server::ResolvesServerCert for CurrentCert {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|p| p.into_inner()).certified.clone())
    }
}

impl TlsCell {
    pub fn new(tls: Arc<NodeTls>) -> Result<Arc<Self>, TlsError> {
        let pins = Arc::new(ManagerPins::default());
        let roots = roots(&tls.ca_pem)?;
        let current = Arc::new(RwLock::new(Current::new(tls, pins.clone())?));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        // Client certificates from the CA are verified when presented; the
        // node CA is callable without one (joiners), and the cluster
        // listener's gate refuses every other call that has none.
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
            .allow_unauthenticated()
            .build()
            .map_err(|_| TlsError("the CA certificate cannot verify clients"))?;
        let mut server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|_| TlsError("TLS versions"))?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(CurrentCert(current.clone())));
        server.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(Self {
            current,
            pins,
            server: Arc::new(server),
        }))
    }

    pub fn get(&self) -> Arc<NodeTls> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).tls.clone()
    }

    /// From now on, connections present `tls` (both ways). It must be a
    /// usable identity for the same node, from the same CA, or nothing
    /// changes.
    pub fn replace(&self, tls: Arc<NodeTls>) -> Result<(), TlsError> {
        let next = self.check(tls)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = next;
        Ok(())
    }

    /// Whether `tls` could replace the current identity: the same node, the
    /// same CA, a certificate that chains to it for the role it names, and
    /// the key that goes with it. Nothing is changed.
    fn check(&self, tls: Arc<NodeTls>) -> Result<Current, TlsError> {
        let now = self.get();
        let same_node = match (now.info(), tls.info()) {
            (Some(a), Some(b)) => a.node_id == b.node_id,
            _ => false,
        };
        if !same_node || tls.ca_pem != now.ca_pem {
            return Err(TlsError("the new certificate is not this node's"));
        }
        let chain = tls.chain()?;
        let leaf = chain.first().ok_or(TlsError("no node certificate"))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiServerVerifier::builder_with_provider(roots(&tls.ca_pem)?, provider)
            .build()
            .map_err(|_| TlsError("the CA certificate cannot verify servers"))?;
        let role_name = tls.info().and_then(|i| i.role_name).unwrap_or_default();
        let name = ServerName::try_from(role_name).map_err(|_| TlsError("the certificate names no role"))?;
        verifier
            .verify_server_cert(leaf, &chain[1..], &name, &[], UnixTime::now())
            .map_err(|_| TlsError("the new certificate does not chain to the cluster CA"))?;
        Current::new(tls, self.pins.clone())
    }

    /// Checks `tls` as [`TlsCell::replace`] would, saves it to `dir`, then
    /// makes it current: a bad answer never reaches the disk.
    pub fn save_and_replace(&self, tls: Arc<NodeTls>, dir: &Path) -> Result<(), SaveError> {
        let next = self.check(tls.clone()).map_err(SaveError::Invalid)?;
        tls.save(dir).map_err(SaveError::Io)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = next;
        Ok(())
    }

    /// The cluster listener's TLS: the current certificate, client
    /// certificates from the CA verified when presented.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.server.clone()
    }

    /// Accept only these nodes as managers from now on; whether that
    /// changed anything. An empty list changes nothing (a node never locks
    /// itself out).
    pub fn pin_managers(&self, ids: impl IntoIterator<Item = String>) -> bool {
        let ids: BTreeSet<String> = ids.into_iter().collect();
        if ids.is_empty() {
            return false;
        }
        let mut pinned = self.pins.0.write().unwrap_or_else(|p| p.into_inner());
        if pinned.as_ref() == Some(&ids) {
            return false;
        }
        *pinned = Some(ids);
        true
    }

    /// A lazily connecting mTLS channel to the manager at `addr` (IP:PORT).
    pub fn channel(&self, addr: &str) -> Result<Channel, tonic::transport::Error> {
        let current = self.current.clone();
        let target = addr.to_string();
        Ok(
            endpoint(addr)?.connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                // Each (re)connect of a long-lived channel presents the
                // identity as it is then, not as it was when the channel
                // was made.
                let config = current.read().unwrap_or_else(|p| p.into_inner()).client.clone();
                let connector = tokio_rustls::TlsConnector::from(config);
                let target = target.clone();
                async move {
                    let tcp = tokio::net::TcpStream::connect(&target).await?;
                    tcp.set_nodelay(true)?;
                    let name = ServerName::try_from(TLS_SERVER_NAME).map_err(std::io::Error::other)?;
                    let tls = connector.connect(name, tcp).await?;
                    Ok::<_, std::io::Error>(TokioIo::new(tls))
                }
            })),
        )
    }
}

/// An endpoint for `addr`; TLS is the connector's (the scheme is unused).
fn endpoint(addr: &str) -> Result<Endpoint, tonic::transport::Error> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))?
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
    Ok(Endpoint::from_shared(format!("https://{addr}"))?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
        .tls_config(tls)?
        .connect_lazy())
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

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    const KEY: &[u8] = b"-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n";

    fn identity() -> NodeTls {
        NodeTls {
            ca_pem: "ca".into(),
            cert_pem: CERT.into(),
            key_pem: SecretBytes::new(KEY.to_vec()),
        }
    }

    #[test]
    fn certificate_and_key_are_one_file_and_read_back_apart() {
        let dir = tempfile::tempdir().unwrap();
        identity().save(dir.path()).unwrap();
        let names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        let back = NodeTls::load(dir.path()).unwrap();
        assert_eq!(back.cert_pem, CERT);
        assert_eq!(back.key_pem.expose(), KEY);
    }

    /// A CA and a function issuing node certificates from it, as the
    /// cluster CA does (CN = node, OU and DNS name = role).
    fn ca() -> (String, impl Fn(&str, &str) -> NodeTls) {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let ca_pem = params.self_signed(&key).unwrap().pem();
        let issuer = Issuer::new(params, key);
        let ca = ca_pem.clone();
        (ca_pem, move |node: &str, role: &str| {
            let mut p = CertificateParams::new(vec![role.to_string()]).unwrap();
            p.distinguished_name.push(DnType::CommonName, node);
            p.distinguished_name.push(DnType::OrganizationalUnitName, role);
            let key = KeyPair::generate().unwrap();
            NodeTls {
                ca_pem: ca.clone(),
                cert_pem: p.signed_by(&key, &issuer).unwrap().pem(),
                key_pem: SecretBytes::new(key.serialize_pem().into_bytes()),
            }
        })
    }

    /// A renewal answer is taken only if it is this node's, from this CA,
    /// with the key that goes with it; otherwise nothing changes.
    #[test]
    fn only_this_nodes_certificate_from_this_ca_replaces_the_current_one() {
        let (_, issue) = ca();
        let (_, foreign) = ca();
        let cell = TlsCell::new(Arc::new(issue("a", WORKER_CERT_NAME))).unwrap();
        let before = cell.get().cert_pem.clone();
        assert!(cell.replace(Arc::new(issue("b", WORKER_CERT_NAME))).is_err());
        let mut other_ca = foreign("a", WORKER_CERT_NAME);
        other_ca.ca_pem = cell.get().ca_pem.clone();
        assert!(cell.replace(Arc::new(other_ca)).is_err());
        let mut wrong_key = issue("a", WORKER_CERT_NAME);
        wrong_key.key_pem = issue("a", WORKER_CERT_NAME).key_pem;
        assert!(cell.replace(Arc::new(wrong_key)).is_err());
        assert_eq!(cell.get().cert_pem, before);
        let renewed = issue("a", MANAGER_CERT_NAME);
        cell.replace(Arc::new(renewed.clone())).unwrap();
        assert_eq!(cell.get().cert_pem, renewed.cert_pem);
    }

    #[test]
    fn the_legacy_two_file_layout_is_read_and_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(CA_FILE), "ca").unwrap();
        fs::write(dir.path().join(LEGACY_CERT_FILE), CERT).unwrap();
        fs::write(dir.path().join(LEGACY_KEY_FILE), KEY).unwrap();
        let back = NodeTls::load(dir.path()).unwrap();
        assert_eq!((back.cert_pem.as_str(), back.key_pem.expose()), (CERT, KEY));
        assert!(dir.path().join(NODE_FILE).exists());
        assert!(!dir.path().join(LEGACY_KEY_FILE).exists());
        assert!(!dir.path().join(LEGACY_CERT_FILE).exists());
    }
}
