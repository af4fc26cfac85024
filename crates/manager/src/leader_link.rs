//! A follower's one long-lived stream to the leader (`Cluster.LeaderStream`):
//! the writes it carries there and the read indexes it asks for, each call
//! sent with a seq and answered with it as soon as the leader is done, so
//! concurrent callers share the stream. A call of its own cost a new HTTP/2
//! stream, three writes and two certificate parses per forwarded write.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use swarmkeep_api::cluster::cluster_client::ClusterClient;
use swarmkeep_api::cluster::{CallRefused, LeaderAnswer, LeaderCall, leader_answer, leader_call};
use swarmkeep_api::errors::rpc;
use swarmkeep_transport::leader::not_leader;
use tokio::sync::{mpsc, oneshot};
use tonic::transport::Channel;
use tonic::{Code, Status};

/// Calls sent and not yet taken by the stream.
const QUEUED_CALLS: usize = 256;

/// How long a manager that had no leader stream is taken at its word: it
/// may be upgraded (a rolling upgrade restarts it under the same address).
const RETRY_STREAM_AFTER: Duration = Duration::from_secs(60);

type Answer = Result<leader_answer::Answer, Status>;

/// The open streams, by the leader's address.
#[derive(Default)]
pub(crate) struct LeaderLinks {
    links: Mutex<HashMap<String, Link>>,
    /// Managers that answered they have no leader stream (an earlier
    /// version), and when: their callers use a call each until
    /// `RETRY_STREAM_AFTER` has passed.
    without: Mutex<HashMap<String, Instant>>,
}

#[derive(Clone)]
pub(crate) struct Link {
    tx: mpsc::Sender<LeaderCall>,
    shared: Arc<Shared>,
}

/// What the stream's reader shares with the callers.
#[derive(Default)]
struct Shared {
    pending: Mutex<HashMap<u64, oneshot::Sender<Answer>>>,
    next_seq: AtomicU64,
    closed: AtomicBool,
}

impl Shared {
    fn pending(&self) -> MutexGuard<'_, HashMap<u64, oneshot::Sender<Answer>>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The stream ended: every caller still waiting is told.
    fn close(&self, why: &Status) {
        self.closed.store(true, Ordering::SeqCst);
        for (_, waiter) in self.pending().drain() {
            let _ = waiter.send(Err(rpc(Code::Unavailable, why.message().to_string())));
        }
    }
}

/// Takes a caller's seq out of the pending calls when its caller stops
/// waiting (answered, timed out or dropped).
struct Waiting<'a> {
    shared: &'a Shared,
    seq: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.shared.pending().remove(&self.seq);
    }
}

impl LeaderLinks {
    /// Whether `addr` answered that it has no leader stream.
    pub(crate) fn unsupported(&self, addr: &str) -> bool {
        self.unsupported_at(addr, Instant::now())
    }

    fn unsupported_at(&self, addr: &str, now: Instant) -> bool {
        let mut without = self.without.lock().unwrap_or_else(|p| p.into_inner());
        match without.get(addr) {
            Some(since) if now.saturating_duration_since(*since) < RETRY_STREAM_AFTER => true,
            Some(_) => {
                without.remove(addr);
                false
            }
            None => false,
        }
    }

    /// Closes the stream to `addr`, if one is open (it is no longer a
    /// manager's address: a new stream must pass the pinned-manager check of a new handshake).
    pub(crate) fn forget(&self, addr: &str) {
        self.links.lock().unwrap_or_else(|p| p.into_inner()).remove(addr);
    }

    /// The stream to the manager at `addr`, opened over `channel` on first
    /// use and again after it ended. `Unimplemented` when that manager has
    /// no leader stream.
    pub(crate) async fn link(&self, addr: &str, channel: Channel) -> Result<Link, Status> {
        {
            let mut links = self.links.lock().unwrap_or_else(|p| p.into_inner());
            match links.get(addr) {
                Some(link) if !link.shared.closed.load(Ordering::SeqCst) => return Ok(link.clone()),
                Some(_) => {
                    links.remove(addr);
                }
                None => {}
            }
        }
        let (tx, calls) = mpsc::channel(QUEUED_CALLS);
        let answers = match ClusterClient::new(channel)
            .leader_stream(tokio_stream::wrappers::ReceiverStream::new(calls))
            .await
        {
            Ok(answers) => answers.into_inner(),
            Err(status) => {
                if status.code() == Code::Unimplemented {
                    self.without
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(addr.to_string(), Instant::now());
                }
                return Err(status);
            }
        };
        let shared = Arc::new(Shared::default());
        tokio::spawn(read_answers(answers, shared.clone()));
        let link = Link { tx, shared };
        // Two callers may have opened one each at once: the later is kept,
        // the other ends once its callers are answered.
        self.links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(addr.to_string(), link.clone());
        Ok(link)
    }
}

impl Link {
    /// Sends `call` on the stream and waits for its answer.
    pub(crate) async fn call(&self, call: leader_call::Call) -> Answer {
        let seq = self.shared.next_seq.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.shared.pending().insert(seq, tx);
        let _waiting = Waiting {
            shared: &self.shared,
            seq,
        };
        let closed = || rpc(Code::Unavailable, "the stream to the leader closed");
        // Closed before the call was noted: no reader is left to answer it
        // (the next `link` opens a new stream).
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(closed());
        }
        if self.tx.send(LeaderCall { seq, call: Some(call) }).await.is_err() {
            self.shared.close(&closed());
            return Err(closed());
        }
        rx.await.unwrap_or_else(|_| Err(closed()))
    }
}

/// Hands each answer to its caller until the stream ends.
async fn read_answers(mut answers: tonic::Streaming<LeaderAnswer>, shared: Arc<Shared>) {
    let why = loop {
        match answers.message().await {
            Ok(Some(answer)) => {
                let waiter = shared.pending().remove(&answer.seq);
                if let Some(waiter) = waiter {
                    let _ = waiter.send(match answer.answer {
                        Some(leader_answer::Answer::Refused(refused)) => Err(refusal(refused)),
                        Some(answer) => Ok(answer),
                        None => Err(rpc(Code::Internal, "the leader's answer was empty")),
                    });
                }
            }
            Ok(None) => break rpc(Code::Unavailable, "the leader ended the stream"),
            Err(status) => break status,
        }
    };
    shared.close(&why);
}

/// A refusal as the call of its own would have returned it.
fn refusal(refused: CallRefused) -> Status {
    if !refused.leader.is_empty() {
        return not_leader(Some(refused.leader));
    }
    rpc(Code::from_i32(refused.code), refused.message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarmkeep_transport::leader::{is_not_leader, leader_hint};

    #[test]
    fn refusals_come_back_as_their_calls_would_have() {
        let hinted = refusal(CallRefused {
            code: Code::FailedPrecondition as i32,
            message: "this manager is not the raft leader".into(),
            leader: "127.0.0.3:2377".into(),
        });
        assert!(is_not_leader(&hinted));
        assert_eq!(leader_hint(&hinted).as_deref(), Some("127.0.0.3:2377"));
        let unhinted = refusal(CallRefused {
            code: Code::FailedPrecondition as i32,
            message: "this manager is not the raft leader".into(),
            leader: String::new(),
        });
        assert!(is_not_leader(&unhinted));
        let denied = refusal(CallRefused {
            code: Code::PermissionDenied as i32,
            message: "node x is not a manager".into(),
            leader: String::new(),
        });
        assert_eq!(denied.code(), Code::PermissionDenied);
        assert_eq!(denied.message(), "node x is not a manager");
    }

    #[test]
    fn a_manager_without_the_stream_is_asked_again_after_a_while() {
        let links = LeaderLinks::default();
        let noted = Instant::now();
        links.without.lock().unwrap().insert("127.0.0.3:2377".into(), noted);
        assert!(links.unsupported_at("127.0.0.3:2377", noted + Duration::from_secs(1)));
        assert!(!links.unsupported_at("127.0.0.4:2377", noted));
        // Upgraded since, perhaps: its stream is tried again.
        assert!(!links.unsupported_at("127.0.0.3:2377", noted + RETRY_STREAM_AFTER));
        assert!(links.without.lock().unwrap().is_empty());
    }

    #[test]
    fn a_closed_stream_answers_every_waiting_caller() {
        let shared = Shared::default();
        let (tx, mut rx) = oneshot::channel();
        shared.pending().insert(7, tx);
        shared.close(&rpc(Code::Unavailable, "gone"));
        let answer = rx.try_recv().expect("answered");
        assert_eq!(answer.unwrap_err().code(), Code::Unavailable);
        assert!(shared.pending().is_empty());
        assert!(shared.closed.load(Ordering::SeqCst));
    }
}
