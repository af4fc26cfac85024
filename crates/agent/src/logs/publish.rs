//! Answers the leader's log subscriptions with the output of this node's
//! tasks: one `PublishLogs` call per subscription, the backlog in batches,
//! then (when following) each new line.

use std::sync::Arc;

use swarmkeep_api::dispatcher::dispatcher_client::DispatcherClient;
use swarmkeep_api::dispatcher::{LogLine, LogSubscription, LogSubscriptionsRequest, PublishLogsMessage};
use tokio::sync::mpsc;
use tonic::transport::Channel;

use super::{Line, LogStore};

/// Answers the leader's log subscriptions with the output of this node's
/// tasks, each subscription on its own `PublishLogs` stream.
pub(crate) async fn log_subscriptions(logs: Arc<LogStore>, mut client: DispatcherClient<Channel>) {
    let mut subs = match client.log_subscriptions(LogSubscriptionsRequest {}).await {
        Ok(s) => s.into_inner(),
        Err(e) => {
            tracing::debug!(error = %e.message(), "log subscriptions unavailable");
            return;
        }
    };
    while let Ok(Some(sub)) = subs.message().await {
        tokio::spawn(publish_logs(logs.clone(), client.clone(), sub));
    }
}

async fn publish_logs(logs: Arc<LogStore>, mut client: DispatcherClient<Channel>, sub: LogSubscription) {
    let (tx, rx) = mpsc::channel::<PublishLogsMessage>(16);
    let id = sub.id.clone();
    let producer = async move {
        let tail = sub.has_tail.then_some(sub.tail);
        let mut feeds = tokio_stream::StreamMap::new();
        let mut backlog = Vec::new();
        for task_id in &sub.task_ids {
            let task = if sub.follow {
                logs.get_or_create(task_id)
            } else {
                match logs.get(task_id) {
                    Some(t) => t,
                    None => continue,
                }
            };
            let (lines, feed) = task.snapshot(tail, sub.since_ns);
            backlog.extend(lines.into_iter().map(|l| log_line(task_id, l)));
            feeds.insert(task_id.clone(), tokio_stream::wrappers::BroadcastStream::new(feed));
        }
        backlog.sort_by_key(|l| l.timestamp_ns);
        // A first message at once (even empty) names the subscription, so
        // the leader can end this call when the subscription is over; then
        // the backlog in messages well under gRPC's 4 MiB limit.
        let mut batch: Vec<LogLine> = Vec::new();
        let mut bytes = 0;
        let mut first = true;
        for line in backlog.into_iter().map(Some).chain(std::iter::once(None)) {
            let full = line.as_ref().is_none_or(|l| bytes + l.data.len() > PUBLISH_BATCH_BYTES);
            if full && (first || !batch.is_empty()) {
                let msg = PublishLogsMessage {
                    subscription_id: sub.id.clone(),
                    lines: std::mem::take(&mut batch),
                    close: false,
                };
                if tx.send(msg).await.is_err() {
                    return;
                }
                bytes = 0;
                first = false;
            }
            if let Some(line) = line {
                bytes += line.data.len();
                batch.push(line);
            }
        }
        if !sub.follow {
            let _ = tx
                .send(PublishLogsMessage {
                    subscription_id: sub.id.clone(),
                    lines: Vec::new(),
                    close: true,
                })
                .await;
            return;
        }
        use tokio_stream::StreamExt;
        while let Some((task_id, line)) = feeds.next().await {
            // A follower that fell behind the feed skips what it missed.
            let Ok(line) = line else { continue };
            let msg = PublishLogsMessage {
                subscription_id: sub.id.clone(),
                lines: vec![log_line(&task_id, line)],
                close: false,
            };
            if tx.send(msg).await.is_err() {
                return;
            }
        }
    };
    let call = client.publish_logs(tokio_stream::wrappers::ReceiverStream::new(rx));
    tokio::pin!(call, producer);
    // The leader ends the call when the subscription is over (the caller
    // went away): the producer is then dropped, whatever it waits for.
    let result = tokio::select! {
        result = &mut call => result,
        () = &mut producer => call.await,
    };
    if let Err(e) = result {
        tracing::debug!(subscription = %id, error = %e.message(), "log subscription ended");
    }
}

/// The most task output one PublishLogs message carries.
const PUBLISH_BATCH_BYTES: usize = 1024 * 1024;

fn log_line(task_id: &str, l: Line) -> LogLine {
    LogLine {
        task_id: task_id.to_string(),
        stream: l.stream,
        timestamp_ns: l.timestamp_ns,
        data: l.data,
    }
}
