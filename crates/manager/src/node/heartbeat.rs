//! Every node's heartbeat to the managers: how the leader knows the node is
//! up, and how the node learns its role changed (promoted, demoted, removed)
//! and which managers there are (a worker's list to find the leader by).

use std::sync::Weak;
use std::time::Duration;

use swarmkeep_api::cluster::HeartbeatRequest;
use swarmkeep_api::cluster::cluster_client::ClusterClient;
use swarmkeep_store::objects::NodeRole;
use swarmkeep_transport::leader::leader_hint;
use tokio::sync::watch;

use super::SwarmNode;
use crate::state::Membership;

pub(super) async fn heartbeat_loop(manager: Weak<SwarmNode>, mut stop: watch::Receiver<bool>) {
    let mut period = Duration::from_millis(500);
    let mut next_manager = 0usize;
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
        let Ok(channel) = tls.channel(&target) else { continue };
        match ClusterClient::new(channel).heartbeat(HeartbeatRequest {}).await {
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
