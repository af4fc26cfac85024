//! The unmodified docker CLI drives swarmkeepd through its Docker Engine API
//! (`--docker-api`): every command of `tests/golden/` that a one- or two-node
//! swarmkeep can run, compared with what real Docker printed (IDs, tokens,
//! times, versions and column padding masked). Skipped, saying so, where no
//! docker CLI is installed.

mod containers;
mod events;
mod health;
mod images;
mod leaks;
mod limits;
mod logs;
mod networks;
mod nodes;
mod refusals;
mod registry_auth;
mod secrets;
mod services;
mod stacks;
mod swarm;

use swarmkeep_tests::{Daemon, free_addr};

/// A daemon whose swarm was made by `docker swarm init`, as in golden.
pub(crate) fn docker_swarm() -> (Daemon, String) {
    docker_swarm_logging("info")
}

/// [`docker_swarm`] with the daemon logging at `level` (`trace` for the
/// leak scans of its log).
pub(crate) fn docker_swarm_logging(level: &str) -> (Daemon, String) {
    let d = Daemon::start_with(&["--hostname", "vm"], level);
    let addr = free_addr("127.0.0.1");
    let out = d.docker(&[
        "swarm",
        "init",
        "--advertise-addr",
        "127.0.0.1",
        "--listen-addr",
        &addr,
        "--dispatcher-heartbeat",
        "500ms",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    (d, addr)
}

/// The progress lines of an attached `service create|update|scale`.
/// (The CLI prints them on stdout when it is not a terminal.)
pub(crate) fn converged(out: &swarmkeep_tests::Run, what: &str, tasks: usize) {
    assert_eq!(out.code, 0, "{out:?}");
    let all = &out.stdout;
    assert!(
        all.contains(&format!("overall progress: {tasks} out of {tasks} tasks"))
            || all.contains(&format!(
                "overall progress: rolling back update: {tasks} out of {tasks} tasks"
            )),
        "{all}"
    );
    assert!(all.contains("verify: Waiting"), "{all}");
    assert!(
        all.trim_end().ends_with(&format!("verify: Service {what} converged")),
        "{all}"
    );
}

pub(crate) fn first_line(out: &swarmkeep_tests::Run) -> String {
    out.stdout.lines().next().unwrap_or("").to_string()
}
