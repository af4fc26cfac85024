//! The node agent: holds a session with the leader's dispatcher, keeps the
//! secrets and configs its tasks reference in memory only, builds each task's
//! private mount of them (tmpfs or FUSE), and runs the tasks.
//!
//! `agent.rs` (start, shutdown; `state.rs` is what its loops share) →
//! `session.rs` (the dispatcher
//! session) → `assignments.rs` (what this node holds) → `controller.rs`
//! (start/stop tasks, each task's life: its image from `swarmkeep_image`,
//! `image_config.rs` for what it runs, `health.rs` for its healthcheck) →
//! `mounts/` and `executor/`;
//! `reporter.rs` sends task status back; `logs/` keeps and publishes output.
//!
//! Architecture invariants: a secret's plaintext exists on a node only in
//! this crate's zeroizing buffers and inside a task's mount; it is never
//! written to a disk file, an environment variable or a log. The agent knows
//! nothing of the manager: it speaks the wire contract (`api`) to the
//! upstream the daemon hands it (`transport`).

mod agent;
mod assignments;
mod config;
mod containers;
mod containers_api;
mod controller;
pub mod executor;
mod health;
mod image_config;
mod images_api;
pub mod logs;
pub mod mounts;
mod network;
mod privileges;
mod reporter;
mod session;
mod state;
mod volumes;

pub use agent::Agent;
pub use config::{AgentConfig, Backend};
pub use privileges::check_privileges;
