//! The log broker (swarmkit's `manager/logbroker`), on the leader: task
//! output stays in each agent's memory; `service logs` becomes a
//! subscription sent to the agents whose tasks are asked for, and their
//! answers are passed to the caller. Nothing is stored, on disk or in raft.
//!
//! An agent may answer only for tasks the subscription placed on its own
//! node, so no node can inject lines into another node's tasks.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use swarmkeep_api::control::LogMessage;
use swarmkeep_api::dispatcher::{LogSubscription, PublishLogsMessage};
use swarmkeep_crypto::new_id;
use tokio::sync::mpsc;
use tonic::Status;

/// How long a subscription that does not follow waits without hearing from
/// any agent (gone, or partitioned) before it ends.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an agent's answer may wait for a slow reader before the
/// subscription is ended (the answer shares the agent's connection with its
/// task status reports, which must not stall).
const SLOW_READER: Duration = Duration::from_secs(2);
/// Subscriptions open at once, over all callers.
const MAX_SUBSCRIPTIONS: usize = 256;

/// One task asked for: where it ran.
#[derive(Clone, Debug)]
pub struct TaskSource {
    pub task_id: String,
    pub node_id: String,
    pub service_id: String,
}

/// What a subscription asks of each agent.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogOptions {
    pub follow: bool,
    pub tail: Option<u64>,
    pub since_ns: i64,
}

struct Subscription {
    tx: mpsc::Sender<Result<LogMessage, Status>>,
    tasks: HashMap<String, TaskSource>,
    /// Nodes that have not said they are done.
    open: HashSet<String>,
    /// Nodes that said they are done (a close may come before `open` is set).
    closed: HashSet<String>,
    opts: LogOptions,
    /// When an agent last answered (a subscription that does not follow ends
    /// after ANSWER_TIMEOUT of silence).
    last_answer: std::time::Instant,
}

#[derive(Default)]
pub struct LogBroker {
    agents: Mutex<HashMap<String, mpsc::Sender<LogSubscription>>>,
    subs: Mutex<HashMap<String, Subscription>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl LogBroker {
    /// An agent's subscription stream: the latest registration of a node
    /// wins. An agent that (re)connects is given the open subscriptions that
    /// name its tasks and that it has not answered in full (a following one
    /// from now on, so nothing is sent twice).
    pub fn register_agent(&self, node_id: &str) -> mpsc::Receiver<LogSubscription> {
        let (tx, rx) = mpsc::channel(64);
        let now_ns = i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos()).unwrap_or(i64::MAX);
        let mut subs = lock(&self.subs);
        for (id, sub) in subs.iter_mut() {
            if sub.closed.contains(node_id) {
                continue;
            }
            let task_ids: Vec<String> = sub
                .tasks
                .values()
                .filter(|t| t.node_id == node_id)
                .map(|t| t.task_id.clone())
                .collect();
            if task_ids.is_empty() {
                continue;
            }
            let (tail, since_ns) = if sub.opts.follow {
                (None, now_ns)
            } else {
                (sub.opts.tail, sub.opts.since_ns)
            };
            let again = LogSubscription {
                id: id.clone(),
                task_ids,
                follow: sub.opts.follow,
                has_tail: tail.is_some(),
                tail: tail.unwrap_or(0),
                since_ns,
            };
            if tx.try_send(again).is_ok() {
                sub.open.insert(node_id.to_string());
            }
        }
        lock(&self.agents).insert(node_id.to_string(), tx);
        rx
    }

    /// Starts a subscription; the receiver yields the lines and ends when
    /// every agent asked has answered (or, following, when the caller goes).
    /// The ID is the subscription's, for [`LogBroker::extend`].
    pub fn subscribe(
        self: &std::sync::Arc<Self>,
        tasks: Vec<TaskSource>,
        opts: LogOptions,
    ) -> Result<(String, mpsc::Receiver<Result<LogMessage, Status>>), Status> {
        let (tx, rx) = mpsc::channel(1024);
        let id = new_id();
        // Following, the subscription lasts until the caller goes; otherwise
        // until every agent answered, or a silence (no sender kept here, so
        // the caller's stream ends with the last answer).
        let closed = opts.follow.then(|| tx.clone());
        {
            let mut subs = lock(&self.subs);
            if subs.len() >= MAX_SUBSCRIPTIONS {
                return Err(Status::resource_exhausted(
                    "too many log subscriptions are open; try again later",
                ));
            }
            // Registered before any agent hears of it, so no answer comes too early.
            subs.insert(
                id.clone(),
                Subscription {
                    tx,
                    tasks: tasks.iter().map(|t| (t.task_id.clone(), t.clone())).collect(),
                    open: HashSet::new(),
                    closed: HashSet::new(),
                    opts,
                    last_answer: std::time::Instant::now(),
                },
            );
        }
        let open = self.send_to_agents(&id, &tasks, opts);
        {
            let mut subs = lock(&self.subs);
            if let Some(sub) = subs.get_mut(&id) {
                let open: Vec<String> = open.into_iter().filter(|n| !sub.closed.contains(n)).collect();
                sub.open.extend(open);
                if sub.open.is_empty() && !sub.opts.follow {
                    subs.remove(&id);
                    return Ok((id, rx));
                }
            }
        }
        let broker = self.clone();
        let sub_id = id.clone();
        tokio::spawn(async move {
            match closed {
                Some(tx) => tx.closed().await,
                None => loop {
                    let last = match lock(&broker.subs).get(&sub_id) {
                        Some(sub) => sub.last_answer,
                        None => return,
                    };
                    let deadline = last + ANSWER_TIMEOUT;
                    if std::time::Instant::now() >= deadline {
                        break;
                    }
                    tokio::time::sleep_until(deadline.into()).await;
                },
            }
            lock(&broker.subs).remove(&sub_id);
        });
        Ok((id, rx))
    }

    /// Ends a subscription, with an error for the caller if its channel has
    /// room (the leader stepped down, the service went away; a reader too
    /// slow to make room just sees the stream end).
    pub fn fail(&self, id: &str, status: Status) {
        if let Some(sub) = lock(&self.subs).remove(id) {
            let _ = sub.tx.try_send(Err(status));
        }
    }

    /// Sends the subscription for `tasks` to their nodes' agents; returns the
    /// nodes that took it.
    fn send_to_agents(&self, id: &str, tasks: &[TaskSource], opts: LogOptions) -> HashSet<String> {
        let mut by_node: HashMap<String, Vec<String>> = HashMap::new();
        for t in tasks {
            by_node.entry(t.node_id.clone()).or_default().push(t.task_id.clone());
        }
        let mut open = HashSet::new();
        let mut agents = lock(&self.agents);
        for (node, task_ids) in by_node {
            let Some(agent) = agents.get(&node) else {
                tracing::debug!(%node, "no agent connected for a log subscription");
                continue;
            };
            let sub = LogSubscription {
                id: id.to_string(),
                task_ids,
                follow: opts.follow,
                has_tail: opts.tail.is_some(),
                tail: opts.tail.unwrap_or(0),
                since_ns: opts.since_ns,
            };
            if agent.try_send(sub).is_ok() {
                open.insert(node);
            } else if agent.is_closed() {
                agents.remove(&node);
            }
        }
        open
    }

    /// A following subscription also covers tasks that appeared after it
    /// began (a replacement, a scale-up). False once the subscription is over.
    pub fn extend(&self, id: &str, tasks: Vec<TaskSource>) -> bool {
        {
            let mut subs = lock(&self.subs);
            let Some(sub) = subs.get_mut(id) else { return false };
            for t in &tasks {
                sub.tasks.insert(t.task_id.clone(), t.clone());
            }
        }
        let opts = LogOptions {
            follow: true,
            tail: None,
            since_ns: 0,
        };
        let open = self.send_to_agents(id, &tasks, opts);
        if let Some(sub) = lock(&self.subs).get_mut(id) {
            let closed = &sub.closed;
            let open: Vec<String> = open.into_iter().filter(|n| !closed.contains(n)).collect();
            sub.open.extend(open);
        }
        true
    }

    pub fn is_open(&self, id: &str) -> bool {
        lock(&self.subs).contains_key(id)
    }

    /// Lines from the agent of `node_id`. An error ends the agent's answer
    /// (the subscription is over, or the agent named a task not its own).
    pub async fn publish(&self, node_id: &str, msg: PublishLogsMessage) -> Result<(), Status> {
        let (tx, lines) = {
            let mut subs = lock(&self.subs);
            let sub = subs
                .get_mut(&msg.subscription_id)
                .ok_or_else(|| Status::not_found("the log subscription has ended"))?;
            sub.last_answer = std::time::Instant::now();
            let mut lines = Vec::with_capacity(msg.lines.len());
            for line in msg.lines {
                let source = sub
                    .tasks
                    .get(&line.task_id)
                    .filter(|s| s.node_id == node_id)
                    .ok_or_else(|| {
                        Status::permission_denied(format!(
                            "task {} is not on node {node_id} in this subscription",
                            line.task_id
                        ))
                    })?;
                lines.push(LogMessage {
                    node_id: node_id.to_string(),
                    service_id: source.service_id.clone(),
                    task_id: line.task_id,
                    stream: line.stream,
                    timestamp_ns: line.timestamp_ns,
                    data: line.data,
                });
            }
            (sub.tx.clone(), lines)
        };
        for line in lines {
            match tokio::time::timeout(SLOW_READER, tx.send(Ok(line))).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(Status::not_found("the log subscription has ended")),
                Err(_) => {
                    self.fail(
                        &msg.subscription_id,
                        Status::resource_exhausted("the logs were read too slowly; the subscription ended"),
                    );
                    return Err(Status::resource_exhausted("the log reader is too slow"));
                }
            }
        }
        if msg.close {
            let mut subs = lock(&self.subs);
            if let Some(sub) = subs.get_mut(&msg.subscription_id) {
                sub.open.remove(node_id);
                sub.closed.insert(node_id.to_string());
                if sub.open.is_empty() && !sub.opts.follow {
                    subs.remove(&msg.subscription_id);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use swarmkeep_api::dispatcher::LogLine;

    use super::*;

    fn line(task: &str, text: &str) -> LogLine {
        LogLine {
            task_id: task.into(),
            stream: 1,
            timestamp_ns: 1,
            data: text.as_bytes().to_vec(),
        }
    }

    #[tokio::test]
    async fn agents_answer_only_for_their_own_tasks_and_the_stream_ends_when_all_have() {
        let broker = Arc::new(LogBroker::default());
        let mut a = broker.register_agent("a");
        let mut b = broker.register_agent("b");
        let tasks = vec![
            TaskSource {
                task_id: "t1".into(),
                node_id: "a".into(),
                service_id: "s".into(),
            },
            TaskSource {
                task_id: "t2".into(),
                node_id: "b".into(),
                service_id: "s".into(),
            },
        ];
        let (_, mut rx) = broker.subscribe(tasks, LogOptions::default()).unwrap();
        let sub_a = a.recv().await.unwrap();
        let sub_b = b.recv().await.unwrap();
        assert_eq!(
            (sub_a.task_ids.as_slice(), sub_b.task_ids.as_slice()),
            (&["t1".to_string()][..], &["t2".to_string()][..])
        );
        // Node b cannot speak for node a's task.
        let forged = PublishLogsMessage {
            subscription_id: sub_b.id.clone(),
            lines: vec![line("t1", "forged")],
            close: false,
        };
        assert_eq!(
            broker.publish("b", forged).await.unwrap_err().code(),
            tonic::Code::PermissionDenied
        );
        let msg = PublishLogsMessage {
            subscription_id: sub_a.id.clone(),
            lines: vec![line("t1", "hello")],
            close: true,
        };
        broker.publish("a", msg).await.unwrap();
        let got = rx.recv().await.unwrap().unwrap();
        assert_eq!(
            (got.node_id.as_str(), got.task_id.as_str(), got.data.as_slice()),
            ("a", "t1", &b"hello"[..])
        );
        let done = PublishLogsMessage {
            subscription_id: sub_b.id.clone(),
            lines: vec![],
            close: true,
        };
        broker.publish("b", done).await.unwrap();
        assert!(rx.recv().await.is_none(), "every agent answered: the stream ends");
        // A late answer finds the subscription gone.
        let late = PublishLogsMessage {
            subscription_id: sub_b.id,
            lines: vec![line("t2", "late")],
            close: false,
        };
        assert_eq!(
            broker.publish("b", late).await.unwrap_err().code(),
            tonic::Code::NotFound
        );
    }

    #[tokio::test]
    async fn an_agent_that_connects_late_is_given_the_following_subscription() {
        let broker = Arc::new(LogBroker::default());
        let tasks = vec![TaskSource {
            task_id: "t1".into(),
            node_id: "late".into(),
            service_id: "s".into(),
        }];
        let follow = LogOptions {
            follow: true,
            tail: Some(5),
            since_ns: 0,
        };
        let (id, _rx) = broker.subscribe(tasks, follow).unwrap();
        let mut agent = broker.register_agent("late");
        let sub = agent.recv().await.unwrap();
        assert_eq!(
            (sub.id.as_str(), sub.task_ids.as_slice(), sub.follow),
            (id.as_str(), &["t1".to_string()][..], true)
        );
        // From now on only: what it sent before the reconnect is not sent again.
        assert!(!sub.has_tail && sub.since_ns > 0);
    }
}
