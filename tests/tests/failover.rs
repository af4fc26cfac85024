//! Losing managers: the leader killed with `kill -9` under a stream of
//! writes through a follower (five managers; each write readable on that
//! follower as soon as it is acknowledged), and a cluster without a quorum
//! (three managers).

use std::time::{Duration, Instant};

use swarmkeep_tests::{SwarmNode, eventually, node_rows, swarm};

/// The leader as `asker` sees it, waiting out an election in progress.
fn leader_index(nodes: &[SwarmNode], asker: &SwarmNode) -> usize {
    let mut host = None;
    let found = eventually(Duration::from_secs(15), || {
        host = node_rows(asker).iter().find(|r| r.3 == "Leader").map(|r| r.0.clone());
        host.is_some()
    });
    assert!(found, "no leader: {:?}", node_rows(asker));
    let host = host.unwrap_or_default();
    nodes
        .iter()
        .position(|n| n.name == host)
        .expect("leader is one of ours")
}

fn secret_names(node: &SwarmNode) -> Vec<String> {
    node.cli(&["secret", "ls", "--format", "{{.Name}}"])
        .stdout
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn leader_kill_9_under_writes_loses_no_acknowledged_write() {
    let mut nodes = swarm(5, 0);
    assert!(eventually(Duration::from_secs(15), || node_rows(&nodes[1])
        .iter()
        .all(|r| r.1 == "Ready")));
    let leader = leader_index(&nodes, &nodes[1]);
    let writer = (leader + 1) % nodes.len();

    let mut acknowledged = Vec::new();
    let mut killed_at = None;
    let mut first_ack_after_kill = None;
    for i in 0..80 {
        if i == 20 {
            nodes[leader].daemon.kill9();
            killed_at = Some(Instant::now());
        }
        let name = format!("s{i}");
        let out = nodes[writer]
            .daemon
            .cli_stdin(&["secret", "create", &name, "-"], Some(b"v"));
        if out.code == 0 {
            if let (Some(k), None) = (killed_at, first_ack_after_kill) {
                first_ack_after_kill = Some(k.elapsed());
            }
            // Read-your-writes on the follower that forwarded it, across
            // the leader change: the create answers with the secret as that
            // follower has applied it (a local read, no barrier).
            assert_eq!(out.stdout.trim().len(), 25, "{name}: {}", out.stdout);
            let seen = nodes[writer].cli(&["secret", "inspect", "--format", "{{.Spec.Name}}", &name]);
            assert_eq!((seen.code, seen.stdout.trim()), (0, name.as_str()), "{}", seen.stderr);
            acknowledged.push(name);
        } else {
            // Refused or timed out, never committed-but-not-yet-applied here.
            assert!(!out.stderr.contains("not found"), "{name}: {}", out.stderr);
        }
    }
    let failover = first_ack_after_kill.expect("writes resumed after the leader died");
    assert!(failover < Duration::from_secs(15), "failover took {failover:?}");
    assert!(
        acknowledged.len() >= 60,
        "most writes acknowledged: {}",
        acknowledged.len()
    );

    let survivors: Vec<usize> = (0..nodes.len()).filter(|&i| i != leader).collect();
    for &i in &survivors {
        let complete = eventually(Duration::from_secs(10), || {
            let names = secret_names(&nodes[i]);
            acknowledged.iter().all(|a| names.contains(a))
        });
        assert!(complete, "{} is missing acknowledged writes", nodes[i].name);
    }
    let new_leader = leader_index(&nodes, &nodes[writer]);
    assert_ne!(new_leader, leader);
    // Across the leader change no live node was shown Unknown (Swarm shows
    // Unknown for a while): survivors stay Ready, the dead one goes Down.
    let rows = node_rows(&nodes[writer]);
    for (host, status, _, _) in &rows {
        let expect = if *host == nodes[leader].name {
            ["Ready", "Down"]
        } else {
            ["Ready", "Ready"]
        };
        assert!(expect.contains(&status.as_str()), "{host} is {status}: {rows:?}");
    }
    assert!(eventually(Duration::from_secs(10), || {
        node_rows(&nodes[writer])
            .iter()
            .any(|r| r.0 == nodes[leader].name && r.1 == "Down")
    }));

    // The old leader restarts, rejoins as a follower and catches up.
    nodes[leader].daemon.restart();
    let caught_up = eventually(Duration::from_secs(20), || {
        let names = secret_names(&nodes[leader]);
        acknowledged.iter().all(|a| names.contains(a))
    });
    assert!(caught_up, "the old leader caught up");
    assert!(eventually(Duration::from_secs(15), || node_rows(&nodes[writer])
        .iter()
        .all(|r| r.1 == "Ready")));
}

#[test]
fn without_quorum_writes_fail_cleanly_and_resume_when_it_returns() {
    let mut nodes = swarm(3, 0);
    assert!(eventually(Duration::from_secs(15), || node_rows(&nodes[0])
        .iter()
        .all(|r| r.1 == "Ready")));
    nodes[1].daemon.kill9();
    nodes[2].daemon.kill9();
    // The leader's last quorum acknowledgement ages out within two heartbeats;
    // from then on it refuses writes before they enter the log.
    std::thread::sleep(Duration::from_secs(1));

    let started = Instant::now();
    let out = nodes[0]
        .daemon
        .cli_stdin(&["secret", "create", "no_quorum", "-"], Some(b"v"));
    let took = started.elapsed();
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("no quorum of managers"), "{out:?}");
    assert!(took < Duration::from_secs(20), "failed within a bounded time: {took:?}");

    nodes[1].daemon.restart();
    nodes[2].daemon.restart();
    let resumed = eventually(Duration::from_secs(30), || {
        nodes[0]
            .daemon
            .cli_stdin(&["secret", "create", "with_quorum", "-"], Some(b"v"))
            .code
            == 0
    });
    assert!(resumed, "writes succeed once the managers return");
    // The refused write was never applied, anywhere.
    // (A restarted manager catches up and serves linearizable reads again;
    // under the whole suite's load that has taken more than 10 s.)
    for n in &nodes {
        assert!(
            eventually(Duration::from_secs(30), || secret_names(n)
                .contains(&"with_quorum".to_string())),
            "{} never showed the write: {:?}",
            n.name,
            n.cli(&["secret", "ls"])
        );
        assert!(
            !secret_names(n).contains(&"no_quorum".to_string()),
            "{} applied a refused write",
            n.name
        );
    }
}

/// A manager whose store is empty when it starts again — killed the moment
/// its join returned, before the leader's first append reached it — takes
/// raft traffic from the managers it was told of when it joined (kept in its
/// `state.json`), as right after the join; before, it refused the leader for
/// good ("not a manager this new member was told of"). The empty store is
/// made here by removing the raft directory of a stopped manager, which
/// otherwise depends on the moment of the kill.
#[test]
fn a_manager_that_restarts_with_an_empty_store_catches_up_from_the_managers_it_joined() {
    let mut nodes = swarm(3, 0);
    let ids = |n: &SwarmNode| -> Vec<String> {
        let state = std::fs::read(n.daemon.data_dir().join("state.json")).expect("state.json");
        let state: serde_json::Value = serde_json::from_slice(&state).expect("JSON");
        let mut ids: Vec<String> = state["manager_ids"]
            .as_array()
            .expect("manager_ids")
            .iter()
            .map(|v| v.as_str().expect("an ID").to_string())
            .collect();
        ids.sort();
        ids
    };
    // (The leader's list includes the new manager itself.)
    let node_id = |n: &SwarmNode| {
        n.cli(&["node", "inspect", "self", "--format", "{{.ID}}"])
            .ok()
            .trim()
            .to_string()
    };
    nodes[2].daemon.kill9();
    let kept = ids(&nodes[2]);
    for m in [&nodes[0], &nodes[1]] {
        assert!(
            kept.contains(&node_id(m)),
            "m3 keeps the managers it was told of: {kept:?}"
        );
    }
    std::fs::remove_dir_all(nodes[2].daemon.data_dir().join("raft")).expect("removing m3's raft dir");
    nodes[0]
        .daemon
        .cli_stdin(&["secret", "create", "while_m3_was_down", "-"], Some(b"v"))
        .ok();
    nodes[2].daemon.restart();
    assert!(
        eventually(Duration::from_secs(30), || secret_names(&nodes[2])
            .contains(&"while_m3_was_down".to_string())),
        "m3 caught up: {:?}\n{}",
        nodes[2].cli(&["secret", "ls"]),
        nodes[2].daemon.log()
    );
}

/// A manager that was paused past the election timeout (SIGSTOP: a stalled
/// VM, a long GC pause, a partition that heals) does not depose a leader a
/// quorum still follows when it resumes: with Pre-Vote it asks whether it
/// would win before it raises its term, and it would not. Without Pre-Vote
/// it raised its term, and its answers made the leader step down.
#[test]
fn a_paused_manager_that_resumes_does_not_depose_the_leader() {
    let nodes = swarm(3, 0);
    let leader = leader_index(&nodes, &nodes[0]);
    let paused = (leader + 1) % 3;
    let terms = |n: &SwarmNode| n.daemon.log().matches("vote is changing").count();
    let before = terms(&nodes[leader]);
    let pid = nix::unistd::Pid::from_raw(nodes[paused].daemon.pid().expect("running") as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).expect("SIGSTOP");
    std::thread::sleep(Duration::from_secs(3));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).expect("SIGCONT");
    // Its timers fire at once on resuming; give its campaign time to happen.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(leader_index(&nodes, &nodes[0]), leader, "the leader changed");
    assert_eq!(
        terms(&nodes[leader]),
        before,
        "the leader's vote changed: {}",
        nodes[leader].daemon.log()
    );
    assert!(
        nodes[leader]
            .daemon
            .cli_stdin(&["secret", "create", "after_the_pause", "-"], Some(b"v"))
            .code
            == 0
    );
}
