//! A node's certificate renews itself before it expires: at a random point
//! in the last third of its life (so a swarm's nodes, issued together, do not
//! all renew together), with a new key, through a manager that signs for the
//! role the store gives the node now. A certificate whose role is not the
//! node's (a role change whose renewal failed, or one issued before roles
//! were in certificates) is renewed at once. Connections made after a
//! renewal — the node's listener's included — present the new certificate;
//! open ones carry on.
//!
//! `CAConfig.ForceRotate` (`swarm update`, Docker's `swarm ca --rotate`)
//! renews every node's at once: each certificate is signed under the
//! cluster's value of it, every heartbeat's answer carries the value now
//! (a leader reads its own store), and a node whose certificate was signed
//! under another one renews it.

use std::sync::Weak;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use swarmkeep_store::objects::NodeRole;
use swarmkeep_transport::tls::{CertInfo, MANAGER_CERT_NAME, WORKER_CERT_NAME};
use tokio::sync::watch;

use super::SwarmNode;
use crate::state::Membership;

/// After a renewal, the next one waits at least this long (a certificate
/// that still names the wrong role — a role change under way — is not
/// renewed in a loop).
const SETTLE: Duration = Duration::from_secs(5);
/// Failed renewals back off from one second to this.
const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// `CAConfig.ForceRotate` as this node knows it: the value its certificate
/// was signed under, and the cluster's as last heard.
pub(super) struct CertRotation {
    own: AtomicU64,
    cluster: watch::Sender<u64>,
}

impl Default for CertRotation {
    fn default() -> Self {
        Self {
            own: AtomicU64::new(0),
            cluster: watch::channel(0).0,
        }
    }
}

impl CertRotation {
    /// A certificate from a start, an init or a join: nothing to rotate
    /// until the cluster says otherwise.
    pub(super) fn reset(&self, value: u64) {
        self.own.store(value, Ordering::SeqCst);
        self.cluster.send_replace(value);
    }

    /// A renewed certificate, signed under `value`.
    pub(super) fn signed_under(&self, value: u64) {
        self.own.store(value, Ordering::SeqCst);
    }

    /// The cluster's value, from a heartbeat's answer or the leader's store.
    pub(super) fn heard(&self, value: u64) {
        self.cluster.send_if_modified(|v| {
            let changed = *v != value;
            *v = value;
            changed
        });
    }

    /// Whether the certificate predates the cluster's last rotation.
    fn due(&self) -> bool {
        *self.cluster.borrow() != self.own.load(Ordering::SeqCst)
    }
}

pub(super) async fn renewal_loop(node: Weak<SwarmNode>, mut stop: watch::Receiver<bool>) {
    let mut rotation = match node.upgrade() {
        Some(n) => n.cert_rotation.cluster.subscribe(),
        None => return,
    };
    // The point at which the certificate (by its PEM) is due.
    let mut due: Option<(String, SystemTime)> = None;
    // No attempt before this (after a renewal, or a failure's backoff).
    let mut not_before = SystemTime::now();
    let mut backoff = Duration::from_secs(1);
    loop {
        let wait = {
            let Some(n) = node.upgrade() else { return };
            let Some((cert_pem, role)) = current(&n) else { return };
            let rotate = n.cert_rotation.due();
            let at = match &due {
                _ if rotate => SystemTime::now(),
                Some((pem, at)) if *pem == cert_pem => *at,
                _ => {
                    let at = CertInfo::from_pem(&cert_pem)
                        .map_or(SystemTime::now(), |info| renewal_point(&info, role, random_fraction()));
                    due = Some((cert_pem, at));
                    at
                }
            };
            at.max(not_before)
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO)
        };
        if !wait.is_zero() {
            // Woken at least every minute: a role change replaces the
            // certificate meanwhile, and the next pass sees it.
            tokio::select! {
                _ = stop.changed() => return,
                _ = rotation.changed() => continue,
                _ = tokio::time::sleep(wait.min(Duration::from_secs(60))) => continue,
            }
        }
        let Some(n) = node.upgrade() else { return };
        if n.cert_rotation.due() {
            tracing::info!("the swarm rotated its node certificates (CAConfig.ForceRotate): renewing this node's");
        }
        match n.renew_own_certificate().await {
            Ok(()) => {
                due = None;
                backoff = Duration::from_secs(1);
                not_before = SystemTime::now() + SETTLE;
            }
            Err(e) => {
                let left = current(&n)
                    .and_then(|(pem, _)| CertInfo::from_pem(&pem))
                    .and_then(|info| info.not_after.duration_since(SystemTime::now()).ok());
                match left {
                    Some(left) => {
                        tracing::warn!(error = %e, left_secs = left.as_secs(), "renewing the node certificate failed; will retry");
                        // Retried well before it runs out.
                        backoff = backoff.min(left / 10).max(Duration::from_secs(1));
                    }
                    None => tracing::error!(
                        error = %e,
                        "this node's certificate has expired: no manager will take it; the node must leave and join the swarm again"
                    ),
                }
                not_before = SystemTime::now() + backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
        drop(n);
    }
}

/// The node's certificate and the role it should name, while in a swarm.
fn current(node: &SwarmNode) -> Option<(String, NodeRole)> {
    match node.membership() {
        Membership::Manager(m) => Some((m.tls.get().cert_pem.clone(), NodeRole::Manager)),
        Membership::Worker(w) => Some((w.tls.get().cert_pem.clone(), NodeRole::Worker)),
        Membership::Inactive | Membership::Locked(_) => None,
    }
}

/// When a certificate for `role` is renewed: `fraction` (in [0, 1)) of the
/// way through the last third of its life, kept clear of its last tenth;
/// now if it names another role.
pub(super) fn renewal_point(info: &CertInfo, role: NodeRole, fraction: f64) -> SystemTime {
    let wanted = match role {
        NodeRole::Manager => MANAGER_CERT_NAME,
        NodeRole::Worker => WORKER_CERT_NAME,
    };
    if info.role_name.as_deref() != Some(wanted) {
        return SystemTime::now();
    }
    let issued = info.issued_at();
    let life = info.not_after.duration_since(issued).unwrap_or(Duration::ZERO);
    // From 2/3 to 9/10 of its life since it was issued.
    let start = life.mul_f64(2.0 / 3.0);
    let span = life.mul_f64(0.9) - start;
    issued + start + span.mul_f64(fraction.clamp(0.0, 1.0))
}

fn random_fraction() -> f64 {
    let mut b = [0u8; 8];
    swarmkeep_crypto::random_bytes(&mut b);
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(role: Option<&str>, days: u64) -> CertInfo {
        let issued = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        CertInfo {
            node_id: "n".into(),
            role_name: role.map(str::to_string),
            not_before: issued - swarmkeep_transport::tls::CERT_BACKDATE,
            not_after: issued + Duration::from_secs(days * 86_400),
        }
    }

    #[test]
    fn renews_in_the_last_third_short_of_the_end() {
        let c = cert(Some(WORKER_CERT_NAME), 90);
        let day = |t: SystemTime| t.duration_since(c.issued_at()).unwrap().as_secs() / 86_400;
        assert_eq!(day(renewal_point(&c, NodeRole::Worker, 0.0)), 60);
        assert_eq!(day(renewal_point(&c, NodeRole::Worker, 0.5)), 70);
        assert_eq!(day(renewal_point(&c, NodeRole::Worker, 0.9999)), 80);
        for _ in 0..100 {
            let f = random_fraction();
            assert!((0.0..1.0).contains(&f));
        }
    }

    #[test]
    fn a_short_lived_certificate_renews_in_its_own_last_third_not_its_backdate() {
        let issued = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let c = CertInfo {
            node_id: "n".into(),
            role_name: Some(WORKER_CERT_NAME.into()),
            not_before: issued - swarmkeep_transport::tls::CERT_BACKDATE,
            not_after: issued + Duration::from_secs(30),
        };
        let at = renewal_point(&c, NodeRole::Worker, 0.0).duration_since(issued).unwrap();
        assert_eq!(at.as_secs(), 20);
    }

    #[test]
    fn a_certificate_for_another_role_or_none_renews_now() {
        let before = SystemTime::now();
        for (c, role) in [
            (cert(Some(MANAGER_CERT_NAME), 90), NodeRole::Worker),
            (cert(Some(WORKER_CERT_NAME), 90), NodeRole::Manager),
            (cert(None, 90), NodeRole::Worker),
        ] {
            assert!(renewal_point(&c, role, 0.5) >= before);
        }
    }
}
