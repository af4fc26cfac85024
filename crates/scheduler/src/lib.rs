//! The rest of Swarm, on the leader: the orchestrator turns services into
//! tasks (one per replica slot, or one per node for global services, with the
//! restart policy and task history), and the scheduler places tasks on nodes.
//!
//! It also judges which nodes are up ([`liveness`]) and starts and follows
//! rollouts ([`update`]).
//!
//! Everything here is a pure function of its inputs — the cluster state, the
//! time, and the IDs or random numbers the leader draws: [`reconcile`]
//! returns the commands that move the state toward what the services ask, and
//! the leader proposes them through the same store every other write uses.
//! Running it again on the result proposes nothing.
//!
//! Architecture invariant: decides, never writes, never talks to an agent;
//! depends on the store's types only.

pub mod ipam;
mod jobs;
pub mod liveness;
mod names;
pub mod networks;
mod orchestrator;
pub mod placement;
mod slots;
mod tasks;
pub mod update;

pub use names::service_name;
pub use orchestrator::reconcile;

#[cfg(test)]
mod tests;
