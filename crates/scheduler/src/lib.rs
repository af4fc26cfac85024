//! The rest of Swarm, on the leader: the orchestrator turns services into
//! tasks (one per replica slot, or one per node for global services, with the
//! restart policy and task history), and the scheduler places tasks on nodes.
//!
//! Everything here is a pure function of the cluster state: [`reconcile`]
//! returns the commands that move the state toward what the services ask, and
//! the leader proposes them through the same store every other write uses.
//! Running it again on the result proposes nothing.

mod names;
mod orchestrator;
mod scheduler;

pub use names::random_service_name;
pub use orchestrator::reconcile;

#[cfg(test)]
mod tests;
