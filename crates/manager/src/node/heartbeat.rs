//! Every node's heartbeat to the managers: how the leader knows the node is
//! up, and how the node learns its role changed (promoted, demoted, removed)
//! and which managers there are (a worker's list to find the leader by).

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use swarmkeep_api::cluster::HeartbeatRequest;
use swarmkeep_api::cluster::cluster_client::ClusterClient;
use swarmkeep_store::objects::NodeRole;
use swarmkeep_transport::leader::leader_hint;
use swarmkeep_transport::tls::{NodeTls, TlsCell};
use tokio::sync::watch;
use tonic::transport::Channel;

use super::SwarmNode;
use crate::state::Membership;

/// How long one connection carries the heartbeats at most: a new one then
/// presents the certificate again (an expired one is refused at the
/// handshake, as it would be on any new connection).
const KEEP_CONNECTION: Duration = Duration::from_secs(60);

/// The connection the heartbeats go on, kept while the manager, this node's
/// identity and its pinned managers stay the same: a connection per
/// heartbeat cost the leader a TLS handshake per node and period.
struct Kept {
    target: String,
    cell: Arc<TlsCell>,
    identity: Arc<NodeTls>,
    opened: Instant,
    channel: Channel,
}

impl Kept {
    fn fits(&self, target: &str, cell: &Arc<TlsCell>) -> bool {
        self.target == target
            && Arc::ptr_eq(&self.cell, cell)
            && Arc::ptr_eq(&self.identity, &cell.get())
            && self.opened.elapsed() < KEEP_CONNECTION
    }
}

pub(super) async fn heartbeat_loop(manager: Weak<SwarmNode>, mut stop: watch::Receiver<bool>) {
    let mut period = Duration::from_millis(500);
    let mut next_manager = 0usize;
    let mut kept: Option<Kept> = None;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(period) => {}
        }
        let Some(m) = manager.upgrade() else { return };
        let (tls, target, role) = match m.membership() {
            Membership::Inactive | Membership::Locked(_) => return,
            Membership::Manager(swarm) => {
                if swarm.store.is_leader() {
                    // No connection held to a manager this one no longer asks.
                    kept = None;
                    swarm.heartbeats.saw(&swarm.identity.node_id);
                    if let Some(v) = swarm.store.read(|st| st.cluster.as_ref().map(|c| c.ca_force_rotate)) {
                        m.cert_rotation.heard(v);
                    }
                    let demoted = swarm.store.read(|st| {
                        st.nodes
                            .get(&swarm.identity.node_id)
                            .is_some_and(|n| n.role == NodeRole::Worker)
                    });
                    if demoted {
                        let m = m.clone();
                        tokio::spawn(async move {
                            if let Err(e) = m.become_worker().await {
                                tracing::warn!(error = %e.message(), "stepping down to worker failed; will retry");
                            }
                        });
                    }
                    continue;
                }
                let Some(leader) = swarm.store.leader_addr() else {
                    continue;
                };
                (swarm.tls.clone(), leader, NodeRole::Manager)
            }
            Membership::Worker(w) => {
                let managers = w.managers.read().unwrap_or_else(|p| p.into_inner()).clone();
                if managers.is_empty() {
                    continue;
                }
                (
                    w.tls.clone(),
                    managers[next_manager % managers.len()].clone(),
                    NodeRole::Worker,
                )
            }
        };
        let channel = match &kept {
            Some(k) if k.fits(&target, &tls) => k.channel.clone(),
            _ => {
                let identity = tls.get();
                let Ok(channel) = tls.channel(&target) else { continue };
                kept = Some(Kept {
                    target: target.clone(),
                    cell: tls.clone(),
                    identity,
                    opened: Instant::now(),
                    channel: channel.clone(),
                });
                channel
            }
        };
        let answer = ClusterClient::new(channel).heartbeat(HeartbeatRequest {}).await;
        if answer.is_err() {
            // The next heartbeat starts on a new connection.
            kept = None;
        }
        match answer {
            Ok(resp) => {
                let resp = resp.into_inner();
                period = Duration::from_millis(resp.period_ms.clamp(100, 60_000));
                m.cert_rotation.heard(resp.cert_rotation);
                if let Membership::Worker(w) = m.membership()
                    && !resp.managers.is_empty()
                {
                    let mut list = resp.managers.clone();
                    list.retain(|a| a != &target);
                    list.insert(0, target.clone());
                    *w.managers.write().unwrap_or_else(|p| p.into_inner()) = list.clone();
                    next_manager = 0;
                    // A worker accepts as managers only these from now on,
                    // across restarts too. (Managers pin from their store.)
                    if tls.pin_managers(resp.manager_ids.iter().cloned()) {
                        // Connections from now on check the new pins.
                        kept = None;
                        let (m, ids) = (m.clone(), resp.manager_ids.clone());
                        tokio::spawn(async move { m.save_managers(list, ids).await });
                    }
                }
                match NodeRole::parse(&resp.role) {
                    Some(told) if told != role => {
                        let m = m.clone();
                        tokio::spawn(async move {
                            let result = match told {
                                NodeRole::Manager => m.promote_self(&target).await,
                                NodeRole::Worker => m.become_worker().await,
                            };
                            if let Err(e) = result {
                                tracing::warn!(error = %e.message(), "changing role failed; will retry");
                            }
                        });
                    }
                    Some(_) => {}
                    None => tracing::warn!(role = %resp.role, "a manager answered an unknown role"),
                }
            }
            // The leader no longer lists this node (it was removed).
            Err(s) if s.code() == tonic::Code::PermissionDenied => {
                tracing::warn!(reason = %s.message(), "the leader refused this node's heartbeat");
                m.removed_from_swarm().await;
                return;
            }
            Err(s) => {
                if let Some(leader) = leader_hint(&s)
                    && let Membership::Worker(w) = m.membership()
                {
                    let mut list = w.managers.write().unwrap_or_else(|p| p.into_inner());
                    list.retain(|a| a != &leader);
                    list.insert(0, leader);
                    next_manager = 0;
                } else {
                    next_manager += 1;
                }
            }
        }
    }
}
