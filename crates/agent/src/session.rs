//! The agent's session with the leader's dispatcher: find a dispatcher
//! through the [`Upstream`](swarmkeep_transport::Upstream) the daemon gave,
//! open a session with a fresh X25519 key (secrets are sealed to it), apply
//! each assignments message and let the controller act on it; follow "not
//! the leader" hints; when the node is in no swarm, stop everything.

use std::sync::Arc;
use std::time::Duration;

use swarmkeep_api::dispatcher::SessionRequest;
use swarmkeep_api::dispatcher::dispatcher_client::DispatcherClient;
use swarmkeep_crypto::SessionKey;
use swarmkeep_transport::Dispatchers;
use swarmkeep_transport::leader::leader_hint;
use swarmkeep_transport::tls::TlsCell;

use crate::controller;
use crate::state::{AgentState, lock, stop_all};

pub(crate) async fn session_loop(agent: Arc<AgentState>) {
    let mut hint: Option<String> = None;
    loop {
        let Some(Dispatchers {
            tls,
            managers: mut candidates,
        }) = agent.upstream.dispatchers()
        else {
            if !lock(&agent.running).is_empty() || !lock(&agent.assignments).tasks.is_empty() {
                tracing::info!("not in a swarm: stopping every task");
                stop_all(&agent);
                lock(&agent.assignments).clear();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        if let Some(h) = hint.take() {
            candidates.retain(|c| c != &h);
            candidates.insert(0, h);
        }
        for addr in candidates {
            match session(&agent, &tls, &addr).await {
                Ok(()) => {}
                Err(status) => {
                    tracing::debug!(%addr, error = %status.message(), "dispatcher session ended");
                    if let Some(leader) = leader_hint(&status) {
                        hint = Some(leader);
                        break;
                    }
                }
            }
        }
        *lock(&agent.client) = None;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn session(agent: &Arc<AgentState>, tls: &TlsCell, addr: &str) -> Result<(), tonic::Status> {
    let channel = tls
        .channel(addr)
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let mut client = DispatcherClient::new(channel);
    let key = SessionKey::generate();
    let mut stream = client
        .session(SessionRequest {
            public_key: key.public().to_vec(),
        })
        .await?
        .into_inner();
    *lock(&agent.client) = Some(client.clone());
    tracing::info!(%addr, "dispatcher session open");
    // Log subscriptions ride beside the session, and end with it.
    let logs = AbortOnDrop(tokio::spawn(crate::logs::log_subscriptions(agent.logs.clone(), client)));
    while let Some(mut msg) = stream.message().await? {
        // The overlays' peers and records first: a task started for this
        // message finds them.
        if let Some(view) = msg.network_view.take() {
            agent.executor.overlays().update_view(view).await;
        }
        {
            let mut held = lock(&agent.assignments);
            held.apply(&key, msg);
            agent.logs.retain(|id| held.tasks.contains_key(id));
        }
        controller::reconcile(agent);
    }
    drop(logs);
    Ok(())
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
