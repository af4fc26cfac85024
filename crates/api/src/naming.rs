//! How Swarm names a task's container: its ID, derived from the task ID
//! (the same on every node and after an agent restart), and its name,
//! `<service>.<slot>.<task id>` (`<service>.<node id>.<task id>` for a
//! global service's task).

use sha2::{Digest, Sha256};

/// The task's container ID: 64 hex digits.
pub fn container_id(task_id: &str) -> String {
    let digest = Sha256::digest(format!("swarmkeep task container {task_id}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Docker's container name for a task (swarmkit's `naming.Task`).
pub fn container_name(service_name: &str, slot: u64, node_id: &str, task_id: &str) -> String {
    if slot > 0 {
        format!("{service_name}.{slot}.{task_id}")
    } else {
        format!("{service_name}.{node_id}.{task_id}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_are_stable() {
        let id = container_id("8wegy8lmh7yu");
        assert_eq!(id.len(), 64);
        assert_eq!(id, container_id("8wegy8lmh7yu"));
        assert_ne!(id, container_id("0j7szig38sav"));
        assert_eq!(container_name("web", 2, "n", "t"), "web.2.t");
        assert_eq!(container_name("web", 0, "n", "t"), "web.n.t");
    }
}
