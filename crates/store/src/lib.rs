//! The replicated cluster store: an openraft group of managers whose state
//! machine holds every cluster object, with its log and snapshots on disk.
//!
//! Architecture invariant: the store never sees a plaintext secret. Secrets
//! arrive already sealed under the cluster data key ([`objects::Secret`] has no
//! field for plaintext), so the raft log, snapshots and memory of this crate
//! hold ciphertext only.

pub mod command;
pub mod events;
pub mod objects;
mod proposer;
pub mod raft;
pub mod state;
pub mod timing;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::{BasicNode, ReadPolicy, SnapshotPolicy};

pub use command::{Command, CommandError, CommandResult, LabelUpdate, ObjectKind, Proposal, ProposalResult};
pub use proposer::WriteError;
pub use state::ClusterState;
pub use timing::RaftTicks;

use raft::log_store::LogStore;
use raft::state_machine::{SharedState, StateMachineStore};
use raft::{NodeId, Raft};

fn membership_error(
    e: &openraft::error::RaftError<raft::TypeConfig, openraft::error::ClientWriteError<raft::TypeConfig>>,
) -> WriteError {
    match e.forward_to_leader() {
        Some(fwd) => WriteError::NotLeader {
            leader: fwd.leader_node.as_ref().map(|n| n.addr.clone()),
        },
        None => WriteError::Unavailable(e.to_string()),
    }
}

/// Swarm's default: a snapshot every 10000 log entries.
pub const DEFAULT_SNAPSHOT_INTERVAL: u64 = 10_000;

#[derive(Clone, Debug)]
pub struct StoreSettings {
    /// Raft entries between snapshots, as openraft's own policy. `None`
    /// leaves snapshots to the caller ([`Store::snapshot_if_due`]), which is
    /// how managers follow the cluster-wide setting of `swarm update`.
    pub snapshot_interval: Option<u64>,
    /// Entries kept behind a snapshot for slow followers (Swarm's
    /// LogEntriesForSlowFollowers, 500), as openraft's own policy. `None`
    /// leaves purging to the caller ([`Store::compact`]), which is how
    /// managers follow the cluster-wide setting.
    pub log_entries_for_slow_followers: Option<u64>,
    /// The raft timing of a new member. One that has run before starts with
    /// the ticks saved beside its log ([`Store::save_ticks`]).
    pub ticks: RaftTicks,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            snapshot_interval: Some(DEFAULT_SNAPSHOT_INTERVAL),
            log_entries_for_slow_followers: Some(objects::DEFAULT_LOG_ENTRIES_FOR_SLOW_FOLLOWERS),
            ticks: RaftTicks::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage: {0}")]
    Storage(#[from] std::io::Error),
    #[error("raft: {0}")]
    Raft(String),
}

/// A manager's handle on the replicated store.
#[derive(Clone)]
pub struct Store {
    raft: Raft,
    state: SharedState,
    proposer: proposer::Proposer,
    raft_id: NodeId,
    /// Whether this member leads, updated only when that changes (raft's
    /// server metrics move on votes, leaders and memberships, not on writes).
    leadership: tokio::sync::watch::Receiver<bool>,
    events: Arc<events::EventLog>,
    assignments: tokio::sync::watch::Receiver<u64>,
    /// The last log index applied to `state` (see [`Store::wait_applied`]).
    applied_index: tokio::sync::watch::Receiver<u64>,
    dir: PathBuf,
    /// The timing this member runs with, and what is saved for its next start.
    ticks: RaftTicks,
    saved_ticks: Arc<std::sync::Mutex<RaftTicks>>,
    /// A quorum acknowledgement younger than this proves the leader still
    /// leads (half the election timeout).
    recent_ack_ms: u64,
    /// `true` once the raft log is closed (see [`LogStore::closed`]).
    log_closed: tokio::sync::watch::Receiver<bool>,
}

impl Store {
    /// Opens (or creates) the store under `dir` and starts this member's raft
    /// node. A store that was bootstrapped before resumes where it stopped.
    pub async fn open<N>(dir: &Path, raft_id: NodeId, settings: &StoreSettings, network: N) -> Result<Self, StoreError>
    where
        N: openraft::RaftNetworkFactory<raft::TypeConfig>,
        N::Network: openraft::network::NetSnapshot<raft::TypeConfig, SnapshotData = raft::SnapshotData>,
    {
        swarmkeep_disk::private_dir(dir).map_err(|e| StoreError::Raft(format!("creating {}: {e}", dir.display())))?;
        let redb_log = dir.join("log.redb");
        if redb_log.exists() {
            return Err(StoreError::Raft(format!(
                "{} holds the raft log in the redb format that swarmkeep used until 2026-12; this version \
                 keeps it in {}/ and cannot read the old file: rejoin this manager to the swarm with an \
                 empty data dir (the file is left as it is)",
                redb_log.display(),
                dir.join("log").display()
            )));
        }
        let log = LogStore::open(&dir.join("log"))?;
        let log_closed = log.closed();
        let events = Arc::new(events::EventLog::default());
        let sm = StateMachineStore::open(&dir.join("snapshots"), events.clone())?;
        let state = sm.shared();
        let assignments = sm.assignment_changes();
        let applied_index = sm.applied_index();
        let ticks = match RaftTicks::load(dir) {
            Ok(Some(saved)) => saved,
            Ok(None) => {
                settings.ticks.check().map_err(StoreError::Raft)?;
                settings
                    .ticks
                    .save(dir)
                    .map_err(|e| StoreError::Raft(format!("saving the raft timing: {e}")))?;
                settings.ticks
            }
            Err(e) => return Err(StoreError::Raft(format!("reading {}/timing.json: {e}", dir.display()))),
        };
        let (election_min, election_max) = ticks.election_ms();
        tracing::info!(
            election_tick = ticks.election,
            heartbeat_tick = ticks.heartbeat,
            heartbeat_ms = ticks.heartbeat_ms(),
            election_timeout_min_ms = election_min,
            election_timeout_max_ms = election_max,
            "raft timing"
        );
        let config = openraft::Config {
            cluster_name: "swarmkeep".into(),
            // Swarm's ticks in swarmkeep's 30 ms tick: with the defaults a
            // dead leader is replaced within 0.75–0.9 s (openraft waits out
            // its leader lease, the timeout's upper end, before the timeout).
            heartbeat_interval: ticks.heartbeat_ms(),
            election_timeout_min: election_min,
            election_timeout_max: election_max,
            install_snapshot_timeout: 10_000,
            snapshot_policy: match settings.snapshot_interval {
                Some(n) => SnapshotPolicy::LogsSinceLast(n),
                None => SnapshotPolicy::Never,
            },
            // Never purged by openraft when the caller purges.
            max_in_snapshot_log_to_keep: settings.log_entries_for_slow_followers.unwrap_or(u64::MAX),
            purge_batch_size: 256,
            // A member that cannot win (back from a partition, or a pause)
            // first asks whether it would get the votes, without raising its
            // term: it does not depose a leader a quorum still follows.
            enable_pre_vote: Some(true),
            ..Default::default()
        };
        let config = Arc::new(config.validate().map_err(|e| StoreError::Raft(e.to_string()))?);
        let raft = Raft::new(raft_id, config, network, log, sm)
            .await
            .map_err(|e| StoreError::Raft(e.to_string()))?;
        let recent_ack_ms = election_min / 2;
        let proposer = proposer::Proposer::spawn(raft.clone(), recent_ack_ms);
        let leadership = watch_leadership(&raft, raft_id);
        let store = Self {
            raft,
            state,
            proposer,
            raft_id,
            leadership,
            events,
            assignments,
            applied_index,
            dir: dir.to_path_buf(),
            ticks,
            saved_ticks: Arc::new(std::sync::Mutex::new(ticks)),
            recent_ack_ms,
            log_closed,
        };
        store.elect_if_sole_voter().await;
        Ok(store)
    }

    /// Makes this member the first and only voter of a new raft group and
    /// waits until it leads it.
    pub async fn bootstrap(&self, addr: &str) -> Result<(), StoreError> {
        let members = BTreeMap::from([(self.raft_id, BasicNode { addr: addr.to_string() })]);
        self.raft
            .initialize(members)
            .await
            .map_err(|e| StoreError::Raft(e.to_string()))?;
        self.wait_for_leader(Duration::from_secs(10)).await
    }

    /// A member that is the only voter of its group need not wait out an
    /// election timeout after a restart: it campaigns at once.
    async fn elect_if_sole_voter(&self) {
        let sole = {
            let m = self.raft.metrics();
            let m = m.borrow_watched();
            let voters: Vec<_> = m.membership_config.membership().voter_ids().collect();
            voters == [self.raft_id]
        };
        if sole {
            let _ = self.raft.trigger().elect(false).await;
        }
    }

    /// Waits until some member leads and this one has applied what it committed.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<(), StoreError> {
        self.raft
            .wait(Some(timeout))
            .metrics(|m| m.current_leader.is_some(), "a leader is elected")
            .await
            .map_err(|e| StoreError::Raft(e.to_string()))?;
        Ok(())
    }

    /// Whether this member has ever been part of a raft group (it has a vote
    /// or a log on disk).
    pub async fn is_initialized(&self) -> bool {
        self.raft.is_initialized().await.unwrap_or(false)
    }

    /// Proposes `command`, returning once it is committed on a quorum (fsync'd)
    /// and applied here, with the raft index it was applied at.
    pub async fn write(&self, command: Command) -> Result<u64, WriteError> {
        // A follower that knows another leader says so at once, without a
        // round trip through the proposer and raft's core (were it leader
        // by now, the manager named answers "not the leader" in turn).
        if let Some(leader) = self.other_leader_addr() {
            return Err(WriteError::NotLeader { leader: Some(leader) });
        }
        self.proposer.propose(command).await
    }

    /// Reads the state this member has applied.
    pub fn read<R>(&self, f: impl FnOnce(&ClusterState) -> R) -> R {
        let applied = self.state.read().unwrap_or_else(|p| p.into_inner());
        f(&applied.state)
    }

    /// Reads after confirming with a quorum that this member leads and has
    /// applied everything committed so far (openraft's linearizable read).
    pub async fn read_linearizable<R>(&self, f: impl FnOnce(&ClusterState) -> R) -> Result<R, WriteError> {
        self.raft
            .ensure_linearizable(ReadPolicy::ReadIndex)
            .await
            .map_err(|e| WriteError::from_raft(&e.to_string()))?;
        Ok(self.read(f))
    }

    /// The leader's side of a linearizable read: an index such that a member
    /// that has applied it sees every write acknowledged before the call.
    /// Within the leader's lease (a quorum acknowledged it less than half an
    /// election timeout ago, so no other leader can exist) that is its last log index; otherwise openraft confirms
    /// leadership with a quorum round trip.
    pub async fn read_index(&self) -> Result<u64, WriteError> {
        let (lease, last_log) = {
            let m = self.raft.metrics();
            let m = m.borrow_watched();
            (
                m.current_leader == Some(self.raft_id) && quorum_acked_within(&m, self.recent_ack_ms),
                m.last_log_index.unwrap_or(0),
            )
        };
        if lease {
            return Ok(last_log);
        }
        match self.raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
            Ok(read_log_id) => Ok(read_log_id.index()),
            Err(e) => Err(match e.forward_to_leader() {
                Some(fwd) => WriteError::NotLeader {
                    leader: fwd.leader_node.as_ref().map(|n| n.addr.clone()),
                },
                None => WriteError::Unavailable(e.to_string()),
            }),
        }
    }

    /// Waits until this member has applied `index` (or `timeout` passes):
    /// woken by the apply itself, once the state readers see holds it.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> bool {
        let mut applied = self.applied_index.clone();
        matches!(
            tokio::time::timeout(timeout, applied.wait_for(|applied| *applied >= index)).await,
            Ok(Ok(_))
        )
    }

    /// Changes whenever an apply may have changed some node's assignments
    /// ([`ClusterState::assignment_epoch`]); quiet for secret and config
    /// writes.
    pub fn assignment_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        let mut rx = self.assignments.clone();
        rx.mark_changed();
        rx
    }

    /// The raft timing this member runs with.
    pub fn ticks(&self) -> RaftTicks {
        self.ticks
    }

    /// Saves `ticks` for this member's next start; `Ok(true)` when that
    /// changed what was saved.
    pub fn save_ticks(&self, ticks: RaftTicks) -> std::io::Result<bool> {
        ticks.check().map_err(std::io::Error::other)?;
        let mut saved = self.saved_ticks.lock().unwrap_or_else(|p| p.into_inner());
        if *saved == ticks {
            return Ok(false);
        }
        ticks.save(&self.dir)?;
        *saved = ticks;
        Ok(true)
    }

    pub fn raft_id(&self) -> NodeId {
        self.raft_id
    }

    /// The raft ID of the member this one believes leads, if any.
    pub fn current_leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow_watched().current_leader
    }

    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow_watched().current_leader == Some(self.raft_id)
    }

    /// Whether this member leads; changes when it starts or stops leading
    /// (not with each write): with [`Store::assignment_changes`], what the
    /// leader's loops wait on.
    pub fn leadership(&self) -> tokio::sync::watch::Receiver<bool> {
        let mut rx = self.leadership.clone();
        rx.mark_changed();
        rx
    }

    /// The raft handle, for the transport that feeds it peers' messages.
    /// The swarm events this manager has applied (`docker events`).
    pub fn events(&self) -> &events::EventLog {
        &self.events
    }

    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// The raft IDs of the voting members.
    pub fn voters(&self) -> BTreeSet<NodeId> {
        self.raft
            .metrics()
            .borrow_watched()
            .membership_config
            .membership()
            .voter_ids()
            .collect()
    }

    /// The cluster address of the member this one believes leads.
    pub fn leader_addr(&self) -> Option<String> {
        let m = self.raft.metrics();
        let m = m.borrow_watched();
        let leader = m.current_leader?;
        m.membership_config
            .membership()
            .get_node(&leader)
            .map(|n| n.addr.clone())
    }

    /// The leader's address when a member other than this one leads.
    fn other_leader_addr(&self) -> Option<String> {
        let m = self.raft.metrics();
        let m = m.borrow_watched();
        let leader = m.current_leader.filter(|l| *l != self.raft_id)?;
        m.membership_config
            .membership()
            .get_node(&leader)
            .map(|n| n.addr.clone())
    }

    /// Adds a manager: first as a learner that catches up (by snapshot if its
    /// log is far behind), then as a voter. Must be called on the leader.
    pub async fn add_voter(&self, raft_id: NodeId, addr: &str) -> Result<(), WriteError> {
        let node = BasicNode { addr: addr.to_string() };
        self.raft
            .add_learner(raft_id, node, true)
            .await
            .map_err(|e| membership_error(&e))?;
        let mut voters = self.voters();
        voters.insert(raft_id);
        self.raft
            .change_membership(voters, false)
            .await
            .map_err(|e| membership_error(&e))?;
        Ok(())
    }

    /// Takes a member out of the raft group (voter or learner). Must be called
    /// on the leader.
    pub async fn remove_member(&self, raft_id: NodeId) -> Result<(), WriteError> {
        let mut voters = self.voters();
        let change: openraft::ChangeMembers<NodeId, BasicNode> = if voters.remove(&raft_id) {
            openraft::ChangeMembers::ReplaceAllVoters(voters)
        } else {
            openraft::ChangeMembers::RemoveNodes(BTreeSet::from([raft_id]))
        };
        self.raft
            .change_membership(change, false)
            .await
            .map_err(|e| membership_error(&e))?;
        Ok(())
    }

    /// Builds a snapshot if `interval` entries were applied since the last
    /// one (raft compacts the log behind it).
    pub async fn snapshot_if_due(&self, interval: u64) {
        let (applied, snapshot) = {
            let m = self.raft.metrics();
            let m = m.borrow_watched();
            (
                m.last_applied.map(|l| l.index).unwrap_or(0),
                m.snapshot.map(|l| l.index).unwrap_or(0),
            )
        };
        // openraft ignores a trigger while a snapshot is being built.
        if interval > 0 && applied.saturating_sub(snapshot) >= interval {
            let _ = self.raft.trigger().snapshot().await;
        }
    }

    /// Purges the log up to `keep` entries behind the newest snapshot (Swarm's
    /// LogEntriesForSlowFollowers); entries no snapshot holds are kept.
    pub async fn compact(&self, keep: u64) {
        let (snapshot, purged) = {
            let m = self.raft.metrics();
            let m = m.borrow_watched();
            (m.snapshot.map(|l| l.index), m.purged.map(|l| l.index))
        };
        let Some(upto) = snapshot.and_then(|s| s.checked_sub(keep)) else {
            return;
        };
        if purged.is_none_or(|p| p < upto) {
            let _ = self.raft.trigger().purge_log(upto).await;
        }
    }

    /// Stops this member's raft node and returns once its log is closed, so
    /// that the directory can be opened again (a later `swarm init` or join).
    pub async fn shutdown(&self) {
        let _ = self.raft.shutdown().await;
        let mut closed = self.log_closed.clone();
        if tokio::time::timeout(Duration::from_secs(10), closed.wait_for(|c| *c))
            .await
            .is_err()
        {
            tracing::warn!("the raft log is still open 10 s after the raft node stopped");
        }
    }
}

/// Whether a quorum acknowledged this leader less than `ms` ago.
pub(crate) fn quorum_acked_within(m: &raft::RaftMetrics, ms: u64) -> bool {
    use openraft::Instant;
    m.last_quorum_acked
        .as_ref()
        .is_some_and(|at| at.elapsed() < Duration::from_millis(ms))
}

fn watch_leadership(raft: &Raft, raft_id: NodeId) -> tokio::sync::watch::Receiver<bool> {
    let mut server = raft.server_metrics();
    let leads = move |m: &openraft::metrics::RaftServerMetrics<raft::TypeConfig>| m.current_leader == Some(raft_id);
    let (tx, rx) = tokio::sync::watch::channel(leads(&server.borrow_watched()));
    tokio::spawn(async move {
        while server.changed().await.is_ok() {
            let now = leads(&server.borrow_watched());
            tx.send_if_modified(|v| {
                let changed = *v != now;
                *v = now;
                changed
            });
            if tx.is_closed() {
                return;
            }
        }
    });
    rx
}
