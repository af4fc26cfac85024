//! The `swarmkeep` CLI: Docker's `swarm`, `node`, `secret` and `config`
//! commands against a swarmkeep daemon's control API.
//!
//! Architecture invariant: a secret payload read by the CLI goes from a
//! zeroizing buffer into the create request and nowhere else — it is never
//! printed, and errors about it name only the file it came from.

pub mod client;
pub mod commands;
pub mod format;
