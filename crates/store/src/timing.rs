//! The raft timing a member runs with: Swarm's `Raft.ElectionTick` and
//! `Raft.HeartbeatTick`, counted in swarmkeep's tick.
//!
//! Swarm counts them in a one-second tick (10 s before a follower
//! campaigns); swarmkeep's tick is [`TICK`], so the defaults (10 and 1) mean
//! a heartbeat every 30 ms and an election timeout of 300–450 ms. openraft
//! fixes its timing when a member starts, as swarmkit's raft does: a member
//! starts with the ticks saved beside its log (`timing.json`, written when it
//! joined and whenever the cluster's change), so a `swarm update` of them
//! takes effect on each manager at its next start.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One raft tick.
pub const TICK: Duration = Duration::from_millis(30);

/// Swarm's defaults.
pub const DEFAULT_ELECTION_TICK: u32 = 10;
pub const DEFAULT_HEARTBEAT_TICK: u32 = 1;

/// The longest election timeout taken: 1000 ticks (30 s).
pub const MAX_ELECTION_TICK: u32 = 1000;

const TIMING_FILE: &str = "timing.json";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftTicks {
    pub election: u32,
    pub heartbeat: u32,
}

impl Default for RaftTicks {
    fn default() -> Self {
        Self {
            election: DEFAULT_ELECTION_TICK,
            heartbeat: DEFAULT_HEARTBEAT_TICK,
        }
    }
}

impl RaftTicks {
    /// Refuses what raft cannot run with, naming Swarm's fields (etcd's raft,
    /// under swarmkit, requires the same).
    pub fn check(&self) -> Result<(), String> {
        if self.heartbeat == 0 {
            return Err("Raft.HeartbeatTick must be at least 1".into());
        }
        if self.election <= self.heartbeat {
            return Err(format!(
                "Raft.ElectionTick ({}) must be greater than Raft.HeartbeatTick ({})",
                self.election, self.heartbeat
            ));
        }
        if self.election > MAX_ELECTION_TICK {
            return Err(format!(
                "Raft.ElectionTick ({}) must be at most {MAX_ELECTION_TICK}",
                self.election
            ));
        }
        Ok(())
    }

    /// Milliseconds between the leader's heartbeats.
    pub fn heartbeat_ms(&self) -> u64 {
        u64::from(self.heartbeat) * TICK.as_millis() as u64
    }

    /// The election timeout's range in milliseconds: a follower campaigns
    /// after a random time in it (openraft adds its leader lease, the
    /// range's upper end, while it still saw a leader).
    pub fn election_ms(&self) -> (u64, u64) {
        let min = u64::from(self.election) * TICK.as_millis() as u64;
        (min, min + min / 2)
    }

    /// The ticks saved in `dir`, if any.
    pub(crate) fn load(dir: &Path) -> std::io::Result<Option<Self>> {
        match std::fs::read(dir.join(TIMING_FILE)) {
            Ok(bytes) => {
                let ticks: Self = serde_json::from_slice(&bytes).map_err(std::io::Error::other)?;
                ticks.check().map_err(std::io::Error::other)?;
                Ok(Some(ticks))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn save(&self, dir: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        swarmkeep_disk::write_private(&dir.join(TIMING_FILE), &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swarm_defaults_are_a_30_ms_heartbeat_and_a_300_to_450_ms_election_timeout() {
        let t = RaftTicks::default();
        assert_eq!(t.check(), Ok(()));
        assert_eq!(t.heartbeat_ms(), 30);
        assert_eq!(t.election_ms(), (300, 450));
    }

    #[test]
    fn ticks_raft_cannot_run_with_are_refused_by_name() {
        let bad = |election, heartbeat| RaftTicks { election, heartbeat }.check().unwrap_err();
        assert_eq!(bad(10, 0), "Raft.HeartbeatTick must be at least 1");
        assert_eq!(
            bad(3, 3),
            "Raft.ElectionTick (3) must be greater than Raft.HeartbeatTick (3)"
        );
        assert_eq!(bad(1001, 1), "Raft.ElectionTick (1001) must be at most 1000");
        assert_eq!(
            RaftTicks {
                election: 2,
                heartbeat: 1
            }
            .check(),
            Ok(())
        );
    }

    #[test]
    fn saved_ticks_come_back_and_a_damaged_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(RaftTicks::load(dir.path()).unwrap(), None);
        let t = RaftTicks {
            election: 20,
            heartbeat: 2,
        };
        t.save(dir.path()).unwrap();
        assert_eq!(RaftTicks::load(dir.path()).unwrap(), Some(t));
        std::fs::write(dir.path().join(TIMING_FILE), br#"{"election":1,"heartbeat":1}"#).unwrap();
        assert!(RaftTicks::load(dir.path()).is_err());
    }
}
