//! The dispatcher, on the leader: each node's agent holds a session that
//! streams its assignments — the tasks placed on it and exactly the secrets
//! and configs those tasks reference — and reports task status back.
//!
//! The node is always the one its client certificate names. A secret is in a
//! node's set while one of its not-yet-finished tasks references it (counted
//! per node, as swarmkit's assignment set does); it is opened with the data
//! key only to be sealed again to the session's X25519 key.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::Stream;
use swarmkeep_api::dispatcher::dispatcher_server::Dispatcher;
use swarmkeep_api::dispatcher::*;
use swarmkeep_crypto::BoxSealer;
use swarmkeep_store::Command;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

use crate::authority;
use crate::ca::caller;
use crate::controlapi::convert::status_from_proto;
use crate::state::{CurrentMembership, ManagerState};

mod assignments;
mod network_view;

use assignments::{AssignmentSet, assignment_set, diff_message, node_may_read_secret, seal_secret};

/// Streams one node's assignments until the agent goes away or this manager
/// stops leading.
async fn run_session(
    swarm: Arc<ManagerState>,
    node_id: String,
    session_key: Vec<u8>,
    tx: mpsc::Sender<Result<AssignmentsMessage, Status>>,
) {
    let open = swarm.open_sessions.fetch_add(1, Ordering::Relaxed) + 1;
    tracing::info!(node = %node_id, open_sessions = open, "agent session opened");
    session_loop(&swarm, &node_id, &session_key, &tx).await;
    let open = swarm.open_sessions.fetch_sub(1, Ordering::Relaxed) - 1;
    tracing::info!(node = %node_id, open_sessions = open, "agent session closed");
}

async fn session_loop(
    swarm: &ManagerState,
    node_id: &str,
    session_key: &[u8],
    tx: &mpsc::Sender<Result<AssignmentsMessage, Status>>,
) {
    // Woken only when an apply may have changed some node's assignments: a
    // secret write costs nothing per session.
    let mut assignments = swarm.store.assignment_changes();
    let mut sent: Option<AssignmentSet> = None;
    let mut sequence = 0u64;
    // The assignment epoch the last look was at: an apply that left it (a
    // secret or config written) changes no node's assignments.
    let mut looked_at: Option<u64> = None;
    loop {
        if !swarm.store.is_leader() {
            let _ = tx
                .send(Err(swarmkeep_transport::leader::not_leader(swarm.store.leader_addr())))
                .await;
            return;
        }
        let step = swarm.store.read(|st| {
            let epoch = st.assignment_epoch();
            if looked_at == Some(epoch) {
                return Ok(None);
            }
            if !st.nodes.contains_key(node_id) {
                return Err(Status::permission_denied(format!(
                    "node {node_id} is not part of this swarm"
                )));
            }
            let set = assignment_set(st, node_id);
            let msg = diff_message(&swarm.data_key, st, sent.as_ref(), &set, session_key)?;
            Ok(Some((epoch, set, msg)))
        });
        let step = match step {
            Ok(None) => Ok(None),
            Ok(Some((epoch, set, msg))) => {
                looked_at = Some(epoch);
                Ok(Some((set, msg)))
            }
            Err(e) => Err(e),
        };
        match step {
            Ok(None) => {}
            Err(status) => {
                let _ = tx.send(Err(status)).await;
                return;
            }
            Ok(Some((set, Some(mut msg)))) => {
                sequence += 1;
                msg.sequence = sequence;
                tracing::debug!(
                    node = %node_id,
                    sequence,
                    complete = msg.complete,
                    tasks = msg.tasks_updated.len(),
                    tasks_removed = msg.tasks_removed.len(),
                    secrets = msg.secrets_updated.len(),
                    secrets_removed = msg.secrets_removed.len(),
                    "assignments sent"
                );
                // An agent that stopped reading (a vanished peer) must not
                // hold this task forever.
                tokio::select! {
                    sent_ok = tx.send(Ok(msg)) => if sent_ok.is_err() { return },
                    _ = tx.closed() => return,
                }
                sent = Some(set);
            }
            Ok(Some((_, None))) => {}
        }
        tokio::select! {
            _ = tx.closed() => return,
            changed = assignments.changed() => if changed.is_err() { return },
            // Leadership can be lost without an apply that moves the
            // assignments; look again now and then.
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// The dispatcher's gRPC service on the cluster port; served by the leader.
pub struct DispatcherService {
    membership: Arc<CurrentMembership>,
}

impl DispatcherService {
    pub fn new(membership: Arc<CurrentMembership>) -> Self {
        Self { membership }
    }

    /// The calling node (from its certificate) and the leader's state, if
    /// the caller is a member of the swarm: every dispatcher call starts here.
    fn member<T>(&self, req: &Request<T>) -> Result<(String, Arc<ManagerState>), Status> {
        let node_id = caller(req)?;
        let swarm = self.membership.leading()?;
        authority::member(&swarm, &node_id)?;
        Ok((node_id, swarm))
    }
}

type SessionStream = Pin<Box<dyn Stream<Item = Result<AssignmentsMessage, Status>> + Send>>;
type LogSubscriptionsStream = Pin<Box<dyn Stream<Item = Result<LogSubscription, Status>> + Send>>;

#[tonic::async_trait]
impl Dispatcher for DispatcherService {
    type SessionStream = SessionStream;
    type LogSubscriptionsStream = LogSubscriptionsStream;

    async fn log_subscriptions(
        &self,
        req: Request<LogSubscriptionsRequest>,
    ) -> Result<Response<LogSubscriptionsStream>, Status> {
        let (node_id, swarm) = self.member(&req)?;
        let rx = swarm.logs.register_agent(&node_id);
        Ok(Response::new(Box::pin(tokio_stream::StreamExt::map(
            tokio_stream::wrappers::ReceiverStream::new(rx),
            Ok,
        ))))
    }

    async fn publish_logs(
        &self,
        req: Request<tonic::Streaming<PublishLogsMessage>>,
    ) -> Result<Response<PublishLogsResponse>, Status> {
        let (node_id, swarm) = self.member(&req)?;
        let mut stream = req.into_inner();
        // One call answers one subscription; once that is over (the caller
        // went away) the call ends, which stops the agent following it.
        let mut subscription: Option<String> = None;
        let mut check = tokio::time::interval(Duration::from_secs(1));
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                msg = stream.message() => match msg? {
                    Some(msg) => {
                        subscription = Some(msg.subscription_id.clone());
                        swarm.logs.publish(&node_id, msg).await?;
                    }
                    None => break,
                },
                _ = check.tick() => {
                    // A node removed meanwhile publishes nothing more.
                    authority::member(&swarm, &node_id)?;
                    if subscription.as_deref().is_some_and(|id| !swarm.logs.is_open(id)) {
                        break;
                    }
                }
            }
        }
        Ok(Response::new(PublishLogsResponse {}))
    }

    async fn session(&self, req: Request<SessionRequest>) -> Result<Response<SessionStream>, Status> {
        let (node_id, swarm) = self.member(&req)?;
        let key = req.into_inner().public_key;
        if key.len() != 32 {
            return Err(Status::invalid_argument("invalid session public key"));
        }
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(run_session(swarm, node_id, key, tx));
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    async fn update_task_status(
        &self,
        req: Request<UpdateTaskStatusRequest>,
    ) -> Result<Response<UpdateTaskStatusResponse>, Status> {
        let (node_id, swarm) = self.member(&req)?;
        // Each update stands alone: one the store refuses (a task gone or
        // placed elsewhere meanwhile) must not hold back the others, or the
        // agent would resend the same batch forever.
        for update in req.into_inner().updates {
            let Some(status) = update.status else { continue };
            let status = match status_from_proto(status) {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(node = %node_id, task = %update.task_id, error = %e.message(), "task status ignored");
                    continue;
                }
            };
            let command = Command::UpdateTaskStatus {
                id: update.task_id.clone(),
                node_id: node_id.clone(),
                status,
            };
            match swarm.write(command).await {
                Ok(_) => {}
                Err(s) if matches!(s.code(), tonic::Code::NotFound | tonic::Code::PermissionDenied) => {
                    tracing::debug!(node = %node_id, task = %update.task_id, error = %s.message(), "task status ignored");
                }
                // Unavailable and the like: the agent retries the batch.
                Err(s) => return Err(s),
            }
        }
        Ok(Response::new(UpdateTaskStatusResponse {}))
    }

    async fn fetch_secret(&self, req: Request<FetchSecretRequest>) -> Result<Response<FetchSecretResponse>, Status> {
        let (node_id, swarm) = self.member(&req)?;
        swarm.read_barrier().await?;
        let req = req.into_inner();
        let sealer =
            BoxSealer::new(&req.public_key).map_err(|_| Status::invalid_argument("invalid session public key"))?;
        let sealed = swarm.store.read(|st| {
            if !node_may_read_secret(st, &node_id, &req.id) {
                return Err(Status::permission_denied(format!(
                    "no task assigned to node {node_id} references secret {}",
                    req.id
                )));
            }
            seal_secret(&swarm.data_key, st, &sealer, &req.id)
        })?;
        let secret = sealed.ok_or_else(|| Status::not_found(format!("secret {} not found", req.id)))?;
        tracing::info!(node = %node_id, secret = %req.id, "secret fetched by its node");
        Ok(Response::new(FetchSecretResponse {
            ephemeral_public_key: sealer.ephemeral_public().to_vec(),
            secret: Some(secret),
        }))
    }
}
