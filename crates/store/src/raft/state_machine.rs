//! The state machine: the cluster state in memory, made durable by snapshot
//! files in the data dir plus the raft log after them — swarmkit's design
//! (memdb + WAL + snapshots). A restart loads the newest snapshot and openraft
//! re-applies the committed log entries that follow it.
//!
//! Snapshot files are written to a temporary name, fsync'd, renamed into
//! place and the directory fsync'd, so a crash leaves the old or the new one.

use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use futures::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use serde::{Deserialize, Serialize};

use super::{LogId, Snapshot, SnapshotData, SnapshotMeta, StoredMembership, TypeConfig};
use crate::command::ProposalResult;
use crate::events::{self, EventLog};
use crate::state::ClusterState;

/// What has been applied, kept under one lock so readers see a state and the
/// log position it corresponds to together.
#[derive(Debug, Default)]
pub struct Applied {
    pub state: ClusterState,
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
}

pub type SharedState = Arc<RwLock<Applied>>;

#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta,
    /// The snapshot data as sent to followers: the JSON of a [`ClusterState`].
    data: String,
}

const SNAPSHOT_FILE: &str = "snapshot.json";

/// An older snapshot kept beside the newest (Swarm's KeepOldSnapshots),
/// named by its last log index so that names sort by age.
fn old_snapshot_name(index: u64) -> String {
    format!("snapshot-{index:020}.json")
}

#[derive(Clone)]
pub struct StateMachineStore {
    applied: SharedState,
    dir: PathBuf,
    /// The last log index of the snapshot in `SNAPSHOT_FILE`, if there is one.
    current: Arc<std::sync::Mutex<Option<u64>>>,
    /// Where applied commands' events go (`docker events`).
    events: Arc<EventLog>,
    /// The state's assignment epoch, sent when an apply (or an installed
    /// snapshot) moved it: what dispatcher sessions wait on.
    assignments: Arc<tokio::sync::watch::Sender<u64>>,
    /// The last log index whose state readers see, sent as each batch of
    /// entries is applied (or a snapshot installed): a write's caller waits on
    /// it directly, not for openraft's metrics, which follow one hop later.
    applied_index: Arc<tokio::sync::watch::Sender<u64>>,
}

/// openraft's storage traits return `io::Error`s; each says what it was
/// doing.
fn sm_read_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("reading the state machine: {e}"))
}

fn snapshot_read_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("reading a raft snapshot: {e}"))
}

fn snapshot_write_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("writing a raft snapshot: {e}"))
}

impl StateMachineStore {
    /// Opens the state machine in `dir`, loading the newest snapshot if any.
    pub fn open(dir: &Path, events: Arc<EventLog>) -> io::Result<Self> {
        swarmkeep_disk::private_dir(dir).map_err(snapshot_write_err)?;
        let store = Self {
            applied: SharedState::default(),
            dir: dir.to_path_buf(),
            current: Default::default(),
            events,
            assignments: Arc::new(tokio::sync::watch::channel(0).0),
            applied_index: Arc::new(tokio::sync::watch::channel(0).0),
        };
        if let Some(file) = store.read_snapshot_file()? {
            *store.current.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(file.meta.last_log_id.map_or(0, |l| l.index));
            let mut state: ClusterState = serde_json::from_str(&file.data).map_err(sm_read_err)?;
            state.reindex();
            let mut applied = store.applied.write().map_err(|_| poisoned())?;
            applied.state = state;
            applied.last_applied = file.meta.last_log_id;
            applied.membership = file.meta.last_membership;
            store
                .applied_index
                .send_replace(file.meta.last_log_id.map_or(0, |l| l.index));
        }
        Ok(store)
    }

    /// The state readers see; shared with the [`crate::Store`] handle.
    pub fn shared(&self) -> SharedState {
        self.applied.clone()
    }

    /// Told of every move of [`ClusterState::assignment_epoch`].
    pub fn assignment_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.assignments.subscribe()
    }

    /// The last applied log index, as readers of the state see it.
    pub fn applied_index(&self) -> tokio::sync::watch::Receiver<u64> {
        self.applied_index.subscribe()
    }

    fn publish_epoch(&self, epoch: u64) {
        self.assignments.send_if_modified(|seen| {
            let moved = *seen != epoch;
            *seen = epoch;
            moved
        });
    }

    fn read_snapshot_file(&self) -> io::Result<Option<SnapshotFile>> {
        match std::fs::read(self.dir.join(SNAPSHOT_FILE)) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(snapshot_read_err),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(snapshot_read_err(e)),
        }
    }

    /// Writes `file` as the newest snapshot. With `keep_old` > 0 the one it
    /// replaces stays as an older snapshot (a hard link, made first, so the
    /// newest name always holds a whole snapshot), and only the `keep_old`
    /// newest older ones are kept.
    fn write_snapshot_file(&self, file: &SnapshotFile, keep_old: u64) -> io::Result<()> {
        let bytes = serde_json::to_vec(file).map_err(snapshot_write_err)?;
        let newest = self.dir.join(SNAPSHOT_FILE);
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let index = file.meta.last_log_id.map_or(0, |l| l.index);
        if let Some(previous) = *current
            && keep_old > 0
            && previous != index
        {
            let old = self.dir.join(old_snapshot_name(previous));
            match std::fs::hard_link(&newest, &old) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(snapshot_write_err(e)),
            }
        }
        swarmkeep_disk::write_private(&newest, &bytes).map_err(snapshot_write_err)?;
        *current = Some(index);
        self.prune_old_snapshots(keep_old).map_err(snapshot_write_err)
    }

    fn prune_old_snapshots(&self, keep_old: u64) -> std::io::Result<()> {
        let mut old: Vec<String> = std::fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with("snapshot-") && n.ends_with(".json"))
            .collect();
        old.sort();
        let excess = old
            .len()
            .saturating_sub(usize::try_from(keep_old).unwrap_or(usize::MAX));
        for name in &old[..excess] {
            std::fs::remove_file(self.dir.join(name))?;
        }
        Ok(())
    }
}

/// The cluster's KeepOldSnapshots, as of the state a snapshot holds.
fn keep_old_snapshots(state: &ClusterState) -> u64 {
    state.cluster.as_ref().map_or(0, |c| c.keep_old_snapshots)
}

fn poisoned() -> io::Error {
    io::Error::other("the state machine's lock is poisoned")
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> io::Result<Snapshot> {
        let (data, last_log_id, membership, keep_old) = {
            let applied = self.applied.read().map_err(|_| poisoned())?;
            let data = serde_json::to_string(&applied.state).map_err(snapshot_write_err)?;
            (
                data,
                applied.last_applied,
                applied.membership.clone(),
                keep_old_snapshots(&applied.state),
            )
        };
        let meta = SnapshotMeta {
            last_log_id,
            last_membership: membership,
        };
        let file = SnapshotFile {
            meta: meta.clone(),
            data,
        };
        self.write_snapshot_file(&file, keep_old)?;
        Ok(Snapshot {
            meta,
            snapshot: Cursor::new(file.data.into_bytes()),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> io::Result<(Option<LogId>, StoredMembership)> {
        let applied = self.applied.read().map_err(|_| poisoned())?;
        Ok((applied.last_applied, applied.membership.clone()))
    }

    /// Applies each entry and answers its writer (if it has one here) as soon
    /// as it is applied; the state lock is never held across an await.
    async fn apply<Strm>(&mut self, mut entries: Strm) -> io::Result<()>
    where
        Strm: Stream<Item = io::Result<EntryResponder<TypeConfig>>> + Unpin + OptionalSend,
    {
        let mut epoch = None;
        let mut last = None;
        while let Some((entry, responder)) = entries.try_next().await? {
            last = Some(entry.log_id.index);
            let reply = {
                let mut applied = self.applied.write().map_err(|_| poisoned())?;
                applied.last_applied = Some(entry.log_id);
                let index = entry.log_id.index;
                let reply = match entry.payload {
                    EntryPayload::Blank => ProposalResult::default(),
                    EntryPayload::Normal(proposal) => {
                        let results = proposal
                            .commands
                            .into_iter()
                            .map(|cmd| {
                                let touched = events::touched(&applied.state, &cmd);
                                let result = applied.state.apply(index, cmd);
                                if result.is_ok() {
                                    self.events.publish(events::events(&applied.state, touched));
                                }
                                result
                            })
                            .collect();
                        ProposalResult { results }
                    }
                    EntryPayload::Membership(m) => {
                        applied.membership = StoredMembership::new(Some(entry.log_id), m);
                        ProposalResult::default()
                    }
                };
                epoch = Some(applied.state.assignment_epoch());
                reply
            };
            if let Some(responder) = responder {
                responder.send(reply);
            }
        }
        if let Some(last) = last {
            self.applied_index.send_replace(last);
        }
        if let Some(epoch) = epoch {
            self.publish_epoch(epoch);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: SnapshotData) -> io::Result<()> {
        let data = String::from_utf8(snapshot.into_inner()).map_err(snapshot_read_err)?;
        let mut state: ClusterState = serde_json::from_str(&data).map_err(snapshot_read_err)?;
        state.reindex();
        self.write_snapshot_file(
            &SnapshotFile {
                meta: meta.clone(),
                data,
            },
            keep_old_snapshots(&state),
        )?;
        let mut applied = self.applied.write().map_err(|_| poisoned())?;
        applied.state = state;
        applied.last_applied = meta.last_log_id;
        applied.membership = meta.last_membership.clone();
        let epoch = applied.state.assignment_epoch();
        drop(applied);
        self.applied_index.send_replace(meta.last_log_id.map_or(0, |l| l.index));
        self.publish_epoch(epoch);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> io::Result<Option<Snapshot>> {
        Ok(self.read_snapshot_file()?.map(|file| Snapshot {
            meta: file.meta,
            snapshot: Cursor::new(file.data.into_bytes()),
        }))
    }
}

/// Where a snapshot sent in chunks (openraft's v1 snapshot messages, which
/// the managers speak) is gathered before it is installed.
impl openraft_legacy::network_v1::SnapshotReceiverFactory<TypeConfig> for StateMachineStore {
    type SnapshotReceiver = SnapshotData;

    async fn begin_receiving_snapshot(&mut self) -> io::Result<SnapshotData> {
        Ok(Cursor::new(Vec::new()))
    }
}
