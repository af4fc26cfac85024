//! Group commit: concurrent writes are gathered into one raft entry.
//!
//! Each client write is a raft entry of its own to openraft; the proposer
//! keeps one proposal in flight and makes everything that arrives meanwhile
//! the next proposal, so N concurrent writers share one entry, one quorum
//! check and each fsync.

use openraft::async_runtime::WatchReceiver;
use tokio::sync::{mpsc, oneshot};

use crate::command::{Command, CommandError, Proposal};
use crate::raft::Raft;

/// Most commands in one raft entry.
const MAX_BATCH: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// The state machine refused the command; nothing changed.
    #[error(transparent)]
    Rejected(#[from] CommandError),
    /// This member does not lead; `leader` is the address of the one that does, if known.
    #[error("not the raft leader")]
    NotLeader { leader: Option<String> },
    /// No quorum, shut down, or a storage failure: the write may not have happened.
    #[error("the raft group is unavailable: {0}")]
    Unavailable(String),
}

impl WriteError {
    pub(crate) fn from_raft(text: &str) -> Self {
        WriteError::Unavailable(text.to_string())
    }
}

type Reply = oneshot::Sender<Result<u64, WriteError>>;

#[derive(Clone)]
pub(crate) struct Proposer {
    tx: mpsc::UnboundedSender<(Command, Reply)>,
}

impl Proposer {
    /// `recent_ack_ms`: see [`check_quorum`].
    pub(crate) fn spawn(raft: Raft, recent_ack_ms: u64) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(raft, recent_ack_ms, rx));
        Self { tx }
    }

    pub(crate) async fn propose(&self, command: Command) -> Result<u64, WriteError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((command, reply))
            .map_err(|_| WriteError::Unavailable("the store is shut down".into()))?;
        answer
            .await
            .map_err(|_| WriteError::Unavailable("the store is shut down".into()))?
    }
}

/// How long the leader waits for a quorum to confirm it still leads.
const QUORUM_CHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether a quorum still follows this leader: acknowledged less than
/// `recent_ack_ms` ago (half the election timeout: no follower has voted for
/// another since), or confirmed now by a round trip.
async fn check_quorum(raft: &Raft, recent_ack_ms: u64) -> Result<(), WriteError> {
    let recent = crate::quorum_acked_within(&raft.metrics().borrow_watched(), recent_ack_ms);
    if recent {
        return Ok(());
    }
    match tokio::time::timeout(QUORUM_CHECK, raft.ensure_linearizable(openraft::ReadPolicy::ReadIndex)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(match e.forward_to_leader() {
            Some(fwd) => WriteError::NotLeader {
                leader: fwd.leader_node.as_ref().map(|n| n.addr.clone()),
            },
            None => WriteError::Unavailable(e.to_string()),
        }),
        Err(_) => Err(WriteError::Unavailable(
            "no quorum of managers confirmed the leader".into(),
        )),
    }
}

async fn run(raft: Raft, recent_ack_ms: u64, mut rx: mpsc::UnboundedReceiver<(Command, Reply)>) {
    while let Some(first) = rx.recv().await {
        let mut commands = vec![first.0];
        let mut replies = vec![first.1];
        while commands.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok((c, r)) => {
                    commands.push(c);
                    replies.push(r);
                }
                Err(_) => break,
            }
        }
        // Propose only while a quorum still follows this leader (acknowledged
        // recently, or confirmed now): a write refused here never
        // enters the log, so its failure cannot turn into a commit later.
        if let Err(err) = check_quorum(&raft, recent_ack_ms).await {
            for reply in replies {
                let _ = reply.send(Err(err.clone()));
            }
            continue;
        }
        // A caller that stopped waiting (its write timed out while the
        // quorum was being confirmed) was told its write failed: it must not
        // be proposed after that, when a quorum returns.
        let (commands, replies): (Vec<_>, Vec<_>) = commands
            .into_iter()
            .zip(replies)
            .filter(|(_, reply)| !reply.is_closed())
            .unzip();
        if commands.is_empty() {
            continue;
        }
        match raft.client_write(Proposal { commands }).await {
            Ok(resp) => {
                let results = resp.data.results;
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(result.map_err(WriteError::Rejected));
                }
            }
            Err(e) => {
                let err = match &e {
                    // Appended, then lost this leader's term: it may yet be
                    // committed by the next leader, so it must not be retried
                    // elsewhere as if it had never been written.
                    openraft::error::RaftError::APIError(openraft::error::ClientWriteError::LogEntryDiscarded(_)) => {
                        WriteError::Unavailable(e.to_string())
                    }
                    _ => match e.forward_to_leader() {
                        Some(fwd) => WriteError::NotLeader {
                            leader: fwd.leader_node.as_ref().map(|n| n.addr.clone()),
                        },
                        None => WriteError::Unavailable(e.to_string()),
                    },
                };
                for reply in replies {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }
}
