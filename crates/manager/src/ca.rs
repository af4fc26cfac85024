//! The cluster's certificate authority: an ECDSA P-256 root made at
//! `swarm init` (as Swarm's), node certificates issued from CSRs with the node
//! ID as CN, and the node identity read back from a peer's certificate.
//!
//! The CA key is replicated to managers inside the cluster object, sealed
//! under the data key; it exists in plaintext only in memory.

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use sha2::{Digest, Sha256};
use swarmkeep_crypto::SecretBytes;

use swarmkeep_store::objects::NodeRole;
use swarmkeep_transport::tls::{CERT_BACKDATE, MANAGER_CERT_NAME, WORKER_CERT_NAME};

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("certificate authority: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("certificate authority: {0}")]
    Invalid(String),
}

pub struct RootCa {
    pub cert_pem: String,
    key_pem: SecretBytes,
}

impl RootCa {
    pub fn generate() -> Result<Self, CaError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "swarm-ca");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2046, 1, 1);
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert_pem: cert.pem(),
            key_pem: SecretBytes::new(key.serialize_pem().into_bytes()),
        })
    }

    pub fn from_parts(cert_pem: String, key_pem: SecretBytes) -> Self {
        Self { cert_pem, key_pem }
    }

    pub fn key_pem(&self) -> &SecretBytes {
        &self.key_pem
    }

    /// SHA-256 of the CA certificate's DER: what join tokens pin.
    pub fn digest(&self) -> Result<[u8; 32], CaError> {
        cert_digest(&self.cert_pem)
    }

    /// Signs `csr_pem` for `node_id` in `role`. Only the public key is taken
    /// from the CSR; the subject, names and usages are the CA's choice: CN =
    /// the node ID, OU and DNS name = `swarm-manager` or `swarm-worker`, as
    /// swarmkit names roles.
    pub fn issue(
        &self,
        csr_pem: &str,
        node_id: &str,
        role: NodeRole,
        validity: time::Duration,
    ) -> Result<String, CaError> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|_| CaError::Invalid("the certificate signing request is malformed".into()))?;
        let role_name = role_cert_name(role);
        let mut params = CertificateParams::new(vec![role_name.to_string()])?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, node_id);
        dn.push(DnType::OrganizationalUnitName, role_name);
        params.distinguished_name = dn;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - CERT_BACKDATE;
        params.not_after = now + validity;
        let key_text = std::str::from_utf8(self.key_pem.expose()).map_err(|_| CaError::Invalid("CA key".into()))?;
        let ca_key = KeyPair::from_pem(key_text)?;
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, ca_key)?;
        let csr = CertificateSigningRequestParams {
            params,
            public_key: csr.public_key,
        };
        Ok(csr.signed_by(&issuer)?.pem())
    }
}

/// The name a certificate of `role` carries.
pub fn role_cert_name(role: NodeRole) -> &'static str {
    match role {
        NodeRole::Manager => MANAGER_CERT_NAME,
        NodeRole::Worker => WORKER_CERT_NAME,
    }
}

pub fn cert_digest(cert_pem: &str) -> Result<[u8; 32], CaError> {
    let der = pem_to_der(cert_pem)?;
    Ok(Sha256::digest(&der).into())
}

fn pem_to_der(cert_pem: &str) -> Result<Vec<u8>, CaError> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .map_err(|_| CaError::Invalid("not a PEM certificate".into()))?;
    Ok(pem.contents)
}

/// A new node key (PEM, zeroized on drop) and a CSR for it.
pub fn node_key_and_csr() -> Result<(SecretBytes, String), CaError> {
    let key = KeyPair::generate()?;
    let csr = CertificateParams::new(Vec::<String>::new())?.serialize_request(&key)?;
    Ok((SecretBytes::new(key.serialize_pem().into_bytes()), csr.pem()?))
}

/// The node ID (certificate CN) of a peer's leaf certificate (DER).
pub fn node_id_of(cert_der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?.to_string();
    Some(cn)
}

/// The caller's node ID, from its verified client certificate.
pub(crate) fn caller<T>(req: &tonic::Request<T>) -> Result<String, tonic::Status> {
    let certs = req
        .peer_certs()
        .ok_or_else(|| tonic::Status::unauthenticated("a cluster client certificate is required"))?;
    let leaf = certs
        .first()
        .ok_or_else(|| tonic::Status::unauthenticated("a cluster client certificate is required"))?;
    node_id_of(leaf.as_ref()).ok_or_else(|| tonic::Status::unauthenticated("the client certificate names no node"))
}

/// The node ID of a certificate in PEM form.
pub fn node_id_of_pem(cert_pem: &str) -> Option<String> {
    node_id_of(&pem_to_der(cert_pem).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The role a certificate (DER) was issued for, from its OU.
    fn role_of(cert_der: &[u8]) -> Option<NodeRole> {
        let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
        let ou = cert
            .subject()
            .iter_organizational_unit()
            .next()?
            .as_str()
            .ok()?
            .to_string();
        [NodeRole::Manager, NodeRole::Worker]
            .into_iter()
            .find(|r| role_cert_name(*r) == ou)
    }

    /// [`role_of`] a certificate in PEM form.
    fn role_of_pem(cert_pem: &str) -> Option<NodeRole> {
        role_of(&pem_to_der(cert_pem).ok()?)
    }

    #[test]
    fn issues_node_certificates_with_the_node_id_as_cn() {
        let ca = RootCa::generate().unwrap();
        let (_key, csr) = node_key_and_csr().unwrap();
        let cert = ca
            .issue(&csr, "abc123", NodeRole::Worker, time::Duration::days(90))
            .unwrap();
        assert_eq!(role_of_pem(&cert), Some(NodeRole::Worker));
        let manager = ca
            .issue(&csr, "abc123", NodeRole::Manager, time::Duration::days(90))
            .unwrap();
        assert_eq!(role_of_pem(&manager), Some(NodeRole::Manager));
        assert_eq!(node_id_of_pem(&cert).as_deref(), Some("abc123"));
        assert_ne!(ca.digest().unwrap(), RootCa::generate().unwrap().digest().unwrap());
        assert!(
            ca.issue("garbage", "x", NodeRole::Worker, time::Duration::days(1))
                .is_err()
        );
    }
}
