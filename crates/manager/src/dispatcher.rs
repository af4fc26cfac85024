//! The dispatcher, on the leader: each node's agent holds a session that
//! streams its assignments — the tasks placed on it and exactly the secrets
//! and configs those tasks reference — and reports task status back.
//!
//! The node is always the one its client certificate names. A secret is in a
//! node's set while one of its not-yet-finished tasks references it (counted
//! per node, as swarmkit's assignment set does); it is opened with the data
//! key only to be sealed again to the session's X25519 key.

use std::collections::{BTreeMap, BTreeSet};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use swarmkeep_api::dispatcher::dispatcher_server::Dispatcher;
use swarmkeep_api::dispatcher::*;
use swarmkeep_crypto::{BoxSealer, SecretBytes};
use swarmkeep_store::objects::Task;
use swarmkeep_store::{ClusterState, Command};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

use crate::cluster::server::{ClusterService, caller};
use crate::controlapi::service::{status_from_proto, task_to_proto};
use crate::manager::ActiveSwarm;

/// What one node holds: task versions, and the secrets and configs its
/// unfinished tasks reference.
#[derive(Default, PartialEq, Eq)]
struct AssignmentSet {
    tasks: BTreeMap<String, u64>,
    secrets: BTreeSet<String>,
    configs: BTreeSet<String>,
}

/// The tasks a node is given: placed on it and not yet finished there.
fn node_tasks<'a>(st: &'a ClusterState, node_id: &'a str) -> impl Iterator<Item = &'a Task> + 'a {
    st.tasks
        .values()
        .filter(move |t| t.node_id.as_deref() == Some(node_id) && !t.status.state.is_terminal())
}

fn assignment_set(st: &ClusterState, node_id: &str) -> AssignmentSet {
    let mut set = AssignmentSet::default();
    for t in node_tasks(st, node_id) {
        set.tasks.insert(t.id.clone(), t.meta.version);
        set.secrets.extend(t.spec.secrets.iter().map(|r| r.id.clone()));
        set.configs.extend(t.spec.configs.iter().map(|r| r.id.clone()));
    }
    set
}

/// Whether one of the node's unfinished tasks references the secret.
pub fn node_may_read_secret(st: &ClusterState, node_id: &str, secret_id: &str) -> bool {
    node_tasks(st, node_id).any(|t| t.spec.secrets.iter().any(|r| r.id == secret_id))
}

fn seal_secret(
    swarm: &ActiveSwarm,
    st: &ClusterState,
    sealer: &BoxSealer,
    id: &str,
) -> Result<Option<SealedSecret>, Status> {
    let Some(secret) = st.secrets.get(id) else {
        // Removed meanwhile; the task will fail on the node with "not found".
        tracing::debug!(%id, "assigned secret no longer exists");
        return Ok(None);
    };
    let plain: SecretBytes = swarm
        .data_key
        .open(id, &secret.sealed_data)
        .map_err(|_| Status::internal("a stored secret cannot be opened with this manager's data key"))?;
    Ok(Some(SealedSecret {
        id: id.to_string(),
        name: secret.annotations.name.clone(),
        sealed: sealer.seal(id, &plain),
    }))
}

/// The message that takes a node from `old` to `new`; `None` if nothing changed.
fn diff_message(
    swarm: &ActiveSwarm,
    st: &ClusterState,
    old: Option<&AssignmentSet>,
    new: &AssignmentSet,
    session_key: &[u8],
) -> Result<Option<AssignmentsMessage>, Status> {
    let empty = AssignmentSet::default();
    let complete = old.is_none();
    let old = old.unwrap_or(&empty);
    if !complete && old == new {
        return Ok(None);
    }
    let sealer = BoxSealer::new(session_key).map_err(|_| Status::invalid_argument("invalid session public key"))?;
    let mut msg = AssignmentsMessage {
        complete,
        ephemeral_public_key: sealer.ephemeral_public().to_vec(),
        ..Default::default()
    };
    for (id, version) in &new.tasks {
        if old.tasks.get(id) != Some(version)
            && let Some(t) = st.tasks.get(id)
        {
            msg.tasks_updated.push(task_to_proto(t));
        }
    }
    msg.tasks_removed = old
        .tasks
        .keys()
        .filter(|id| !new.tasks.contains_key(*id))
        .cloned()
        .collect();
    for id in new.secrets.difference(&old.secrets) {
        if let Some(s) = seal_secret(swarm, st, &sealer, id)? {
            msg.secrets_updated.push(s);
        }
    }
    msg.secrets_removed = old.secrets.difference(&new.secrets).cloned().collect();
    for id in new.configs.difference(&old.configs) {
        if let Some(c) = st.configs.get(id) {
            msg.configs_updated.push(ConfigPayload {
                id: id.clone(),
                name: c.annotations.name.clone(),
                data: c.data.clone(),
            });
        }
    }
    msg.configs_removed = old.configs.difference(&new.configs).cloned().collect();
    Ok(Some(msg))
}

/// Streams one node's assignments until the agent goes away or this manager
/// stops leading.
async fn run_session(
    swarm: Arc<ActiveSwarm>,
    node_id: String,
    session_key: Vec<u8>,
    tx: mpsc::Sender<Result<AssignmentsMessage, Status>>,
) {
    let mut metrics = swarm.store.changes();
    let mut sent: Option<AssignmentSet> = None;
    let mut sequence = 0u64;
    loop {
        if !swarm.store.is_leader() {
            let _ = tx
                .send(Err(crate::cluster::not_leader(swarm.store.leader_addr())))
                .await;
            return;
        }
        let step = swarm.store.read(|st| {
            if !st.nodes.contains_key(&node_id) {
                return Err(Status::permission_denied(format!(
                    "node {node_id} is not part of this swarm"
                )));
            }
            let set = assignment_set(st, &node_id);
            let msg = diff_message(&swarm, st, sent.as_ref(), &set, &session_key)?;
            Ok((set, msg))
        });
        match step {
            Err(status) => {
                let _ = tx.send(Err(status)).await;
                return;
            }
            Ok((set, Some(mut msg))) => {
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
            Ok((_, None)) => {}
        }
        tokio::select! {
            _ = tx.closed() => return,
            changed = metrics.changed() => if changed.is_err() { return },
            // Leadership can be lost without a local apply; look again now and then.
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

type SessionStream = Pin<Box<dyn Stream<Item = Result<AssignmentsMessage, Status>> + Send>>;
type LogSubscriptionsStream = Pin<Box<dyn Stream<Item = Result<LogSubscription, Status>> + Send>>;

#[tonic::async_trait]
impl Dispatcher for ClusterService {
    type SessionStream = SessionStream;
    type LogSubscriptionsStream = LogSubscriptionsStream;

    async fn log_subscriptions(
        &self,
        req: Request<LogSubscriptionsRequest>,
    ) -> Result<Response<LogSubscriptionsStream>, Status> {
        let node_id = caller(&req)?;
        let swarm = self.leader()?;
        if !swarm.store.read(|st| st.nodes.contains_key(&node_id)) {
            return Err(Status::permission_denied(format!(
                "node {node_id} is not part of this swarm"
            )));
        }
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
        let node_id = caller(&req)?;
        let swarm = self.leader()?;
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
                    if subscription.as_deref().is_some_and(|id| !swarm.logs.is_open(id)) {
                        break;
                    }
                }
            }
        }
        Ok(Response::new(PublishLogsResponse {}))
    }

    async fn session(&self, req: Request<SessionRequest>) -> Result<Response<SessionStream>, Status> {
        let node_id = caller(&req)?;
        let swarm = self.leader()?;
        let key = req.into_inner().public_key;
        if key.len() != 32 {
            return Err(Status::invalid_argument("invalid session public key"));
        }
        if !swarm.store.read(|st| st.nodes.contains_key(&node_id)) {
            return Err(Status::permission_denied(format!(
                "node {node_id} is not part of this swarm"
            )));
        }
        tracing::info!(node = %node_id, "agent session opened");
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(run_session(swarm, node_id, key, tx));
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    async fn update_task_status(
        &self,
        req: Request<UpdateTaskStatusRequest>,
    ) -> Result<Response<UpdateTaskStatusResponse>, Status> {
        let node_id = caller(&req)?;
        let swarm = self.leader()?;
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
        let node_id = caller(&req)?;
        let swarm = self.leader()?;
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
            seal_secret(&swarm, st, &sealer, &req.id)
        })?;
        let secret = sealed.ok_or_else(|| Status::not_found(format!("secret {} not found", req.id)))?;
        tracing::info!(node = %node_id, secret = %req.id, "secret fetched by its node");
        Ok(Response::new(FetchSecretResponse {
            ephemeral_public_key: sealer.ephemeral_public().to_vec(),
            secret: Some(secret),
        }))
    }
}
