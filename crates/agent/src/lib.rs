//! The node agent: holds a session with the leader's dispatcher, keeps the
//! secrets and configs its tasks reference in memory only, builds each task's
//! private mount of them (tmpfs or FUSE), and runs the tasks.
//!
//! Architecture invariant: a secret's plaintext exists on a node only in this
//! crate's zeroizing buffers and inside a task's mount; it is never written to
//! a disk file, an environment variable or a log.

pub mod executor;
pub mod logs;
pub mod mounts;
mod worker;

pub use worker::{Agent, AgentConfig, Backend, check_privileges};
