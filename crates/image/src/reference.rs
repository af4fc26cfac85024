//! Image references as Docker reads them: `busybox` is
//! `docker.io/library/busybox:latest`; a first component with a dot, a colon
//! or `localhost` names a registry; `@sha256:…` pins a digest.

use oci_client::Reference;

use crate::ImageError;

/// A parsed, normalised reference.
pub fn parse(text: &str) -> Result<Reference, ImageError> {
    let r = text
        .parse::<Reference>()
        .map_err(|_| ImageError::InvalidReference("invalid reference format".into()))?;
    if r.repository().chars().any(|c| c.is_ascii_uppercase()) {
        return Err(ImageError::InvalidReference(
            "invalid reference format: repository name must be lowercase".into(),
        ));
    }
    Ok(r)
}

/// The reference as Docker shows it: `docker.io/library/` dropped.
pub fn familiar(r: &Reference) -> String {
    let whole = r.whole();
    whole
        .strip_prefix("docker.io/library/")
        .or_else(|| whole.strip_prefix("docker.io/"))
        .map(str::to_string)
        .unwrap_or(whole)
}

/// Whether the registry is spoken to over plain HTTP: loopback addresses
/// (as dockerd treats 127.0.0.0/8 and localhost) and the ones the operator
/// named with `--insecure-registry`.
pub fn plain_http(registry: &str, insecure: &[String]) -> bool {
    if insecure.iter().any(|r| r == registry) {
        return true;
    }
    let host = match registry.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => registry,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_normalise_as_dockers() {
        let r = parse("busybox").unwrap();
        assert_eq!(r.whole(), "docker.io/library/busybox:latest");
        assert_eq!(familiar(&r), "busybox:latest");
        let r = parse("127.0.0.1:5000/test/busybox:1").unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "test/busybox");
        assert_eq!(familiar(&r), "127.0.0.1:5000/test/busybox:1");
        assert!(parse("UPPER/case").is_err());
    }

    #[test]
    fn only_loopback_and_named_registries_are_plain_http() {
        assert!(plain_http("127.0.0.1:5000", &[]));
        assert!(plain_http("localhost:5000", &[]));
        assert!(plain_http("[::1]:5000", &[]));
        assert!(!plain_http("docker.io", &[]));
        assert!(!plain_http("10.0.0.1:5000", &[]));
        assert!(plain_http("10.0.0.1:5000", &["10.0.0.1:5000".into()]));
    }
}
