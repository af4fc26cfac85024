//! Multi-node swarms on loopback addresses (each node its own daemon, data
//! dir and 127.0.0.x address): join, node status, promote, demote, drain,
//! leave and rm, compared with ../shared/golden/multi-node.txt and nodes.txt.

use std::time::Duration;

use swarmkeep_tests::{eventually, node_rows, swarm, swarm_logging};

const WORKER_REFUSAL: &str = "Error response from daemon: This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager.\n";

fn row<'a>(rows: &'a [(String, String, String, String)], host: &str) -> &'a (String, String, String, String) {
    rows.iter()
        .find(|r| r.0 == host)
        .unwrap_or_else(|| panic!("{host} not in {rows:?}"))
}

#[test]
fn three_managers_two_workers_join_promote_demote_drain_leave_rm() {
    let nodes = swarm(3, 2);
    let (m1, m2, m3, w1, w2) = (&nodes[0], &nodes[1], &nodes[2], &nodes[3], &nodes[4]);

    // As soon as the joins have returned, every node is listed Ready and
    // every manager Leader or Reachable (Docker lists a node Ready once its
    // join returns; not after a heartbeat or a liveness pass).
    let rows = node_rows(m2);
    assert_eq!(rows.len(), 5, "{rows:?}");
    assert!(rows.iter().all(|r| r.1 == "Ready"), "{rows:?}");
    for m in ["m1", "m2", "m3"] {
        assert!(["Leader", "Reachable"].contains(&row(&rows, m).3.as_str()), "{rows:?}");
    }
    // One leader, two reachable managers, workers blank.
    // (Polled: on a busy machine an election may be under way at any instant.)
    let one_leader = eventually(Duration::from_secs(10), || {
        let rows = node_rows(m3);
        let count = |want: &str| rows.iter().filter(|r| r.3 == want).count();
        count("Leader") == 1 && count("Reachable") == 2
    });
    assert!(one_leader, "{:?}", node_rows(m3));
    assert_eq!(row(&node_rows(m3), "w1").3, "");
    let ls = m2.cli(&["node", "ls"]).ok().to_string();
    assert!(ls.lines().any(|l| l.contains(" * ") && l.contains("m2")), "{ls}");

    // Workers cannot read cluster state.
    assert_eq!(w1.cli(&["secret", "ls"]).stderr, WORKER_REFUSAL);
    assert_eq!(w1.cli(&["node", "ls"]).stderr, WORKER_REFUSAL);

    // A write on any manager is seen on every manager.
    let id = m3
        .daemon
        .cli_stdin(&["secret", "create", "from_m3", "-"], Some(b"v"))
        .ok()
        .trim()
        .to_string();
    for m in [m1, m2, m3] {
        assert!(eventually(Duration::from_secs(5), || m
            .cli(&["secret", "ls", "-q"])
            .stdout
            .contains(&id)));
    }

    // Reads are linearizable on every manager: a write acknowledged by one is
    // seen by the next read on any other, with no waiting.
    for i in 0..5 {
        let name = format!("linear{i}");
        let writer = [m1, m2, m3][i % 3];
        let id = writer
            .daemon
            .cli_stdin(&["secret", "create", &name, "-"], Some(b"v"))
            .ok()
            .trim()
            .to_string();
        for reader in [m1, m2, m3] {
            assert_eq!(
                reader
                    .cli(&["secret", "inspect", "--format", "{{.ID}}", &name])
                    .ok()
                    .trim(),
                id
            );
        }
    }

    // Drain.
    assert_eq!(
        m1.cli(&["node", "update", "--availability", "drain", "w2"]).ok(),
        "w2\n"
    );
    assert_eq!(row(&node_rows(m2), "w2").2, "Drain");

    // Promote a worker: it becomes a reachable manager and can serve reads.
    let w1_id = w1.node_id();
    assert!(w1_id.is_empty(), "a worker cannot inspect");
    let out = m1.cli(&["node", "promote", "w1"]);
    assert!(
        out.ok().starts_with("Node ") && out.stdout.ends_with(" promoted to a manager in the swarm.\n"),
        "{out:?}"
    );
    let promoted = eventually(Duration::from_secs(20), || {
        row(&node_rows(m1), "w1").3 == "Reachable" && w1.cli(&["secret", "ls", "-q"]).stdout.contains(&id)
    });
    assert!(promoted, "{:?}", node_rows(m1));
    assert!(
        m2.cli(&["node", "promote", "w1"])
            .ok()
            .ends_with(" is already a manager.\n")
    );

    // Demote it again: out of the raft group, back to a worker.
    assert!(
        m2.cli(&["node", "demote", "w1"])
            .ok()
            .ends_with(" demoted in the swarm.\n")
    );
    let demoted = eventually(Duration::from_secs(20), || {
        row(&node_rows(m1), "w1").3.is_empty() && w1.cli(&["secret", "ls"]).stderr == WORKER_REFUSAL
    });
    assert!(demoted, "{:?}", node_rows(m1));
    // It keeps, for its next start, the managers it last knew as a manager
    // (the only servers it then accepts): m1, m2, m3 — not itself.
    let manager_ids = |n: &swarmkeep_tests::SwarmNode| {
        let state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(n.daemon.data_dir().join("state.json")).unwrap()).unwrap();
        let mut ids: Vec<String> = state["manager_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    let id_of = |n: &swarmkeep_tests::SwarmNode| {
        n.cli(&["node", "inspect", "self", "--format", "{{.ID}}"])
            .ok()
            .trim()
            .to_string()
    };
    let mut expected = vec![id_of(m1), id_of(m2), id_of(m3)];
    expected.sort();
    assert!(
        eventually(Duration::from_secs(10), || manager_ids(w1) == expected),
        "{:?} {expected:?}",
        manager_ids(w1)
    );

    // A live node cannot be removed; a manager must be demoted first.
    let rm_live = m1.cli(&["node", "rm", "w2"]);
    assert!(
        rm_live.stderr.ends_with("is not down and can't be removed\n"),
        "{rm_live:?}"
    );
    let rm_manager = m1.cli(&["node", "rm", "m3"]);
    assert!(
        rm_manager.stderr.contains(
            "is a cluster manager and is a member of the raft cluster. It must be demoted to worker before removal"
        ),
        "{rm_manager:?}"
    );

    // A worker leaves: it goes Down on the managers, then `node rm` removes it.
    assert_eq!(w2.cli(&["swarm", "leave"]).ok(), "Node left the swarm.\n");
    assert!(eventually(Duration::from_secs(10), || row(&node_rows(m1), "w2").1 == "Down"));
    assert_eq!(m1.cli(&["node", "rm", "w2"]).ok(), "w2\n");
    assert!(!node_rows(m1).iter().any(|r| r.0 == "w2"));

    // A manager leaves only with --force, and then it leaves the raft group
    // too (no ghost member counting against the quorum).
    let refused = m3.cli(&["swarm", "leave"]);
    assert!(refused.stderr.contains("participating as a manager"), "{refused:?}");
    assert_eq!(m3.cli(&["swarm", "leave", "--force"]).ok(), "Node left the swarm.\n");
    let gone = eventually(Duration::from_secs(10), || {
        let r = node_rows(m1);
        let m3row = row(&r, "m3");
        m3row.1 == "Down" && m3row.3.is_empty()
    });
    assert!(gone, "{:?}", node_rows(m1));
    // Two managers remain, both voters: writes still commit.
    m2.daemon
        .cli_stdin(&["secret", "create", "after_leave", "-"], Some(b"v"))
        .ok();
    assert!(m3.cli(&["secret", "ls"]).stderr.contains("not a swarm manager"));
}

/// MANAGER STATUS follows raft: a manager killed with -9 is Unreachable as
/// soon as it stops answering the leader (while its STATUS is still Ready:
/// Down takes three missed 5 s heartbeats), and Reachable again once it is
/// back.
#[test]
fn a_manager_that_stops_answering_raft_is_unreachable_before_it_is_down() {
    let mut nodes = swarm(3, 0);
    // The helper's 500 ms heartbeats would make a node Down 1–1.5 s after a
    // kill, as soon as raft finds it Unreachable: Swarm's 5 s keep them apart.
    nodes[0].cli(&["swarm", "update", "--dispatcher-heartbeat", "5s"]).ok();
    let rows = node_rows(&nodes[0]);
    let leader = ["m1", "m2", "m3"]
        .iter()
        .position(|m| row(&rows, m).3 == "Leader")
        .unwrap_or_else(|| panic!("no leader in {rows:?}"));
    let victim = (leader + 1) % 3;
    let asker = (leader + 2) % 3;
    let name = nodes[victim].name.clone();
    nodes[victim].daemon.kill9();
    let killed = std::time::Instant::now();
    let unreachable = eventually(Duration::from_secs(20), || {
        row(&node_rows(&nodes[asker]), &name).3 == "Unreachable"
    });
    assert!(unreachable, "{:?}", node_rows(&nodes[asker]));
    let rows = node_rows(&nodes[asker]);
    assert!(
        killed.elapsed() < Duration::from_secs(12) && row(&rows, &name).1 == "Ready",
        "Unreachable only with Down ({:?} after the kill): {rows:?}",
        killed.elapsed()
    );
    nodes[victim].daemon.restart();
    let back = eventually(Duration::from_secs(30), || {
        row(&node_rows(&nodes[asker]), &name).3 == "Reachable"
    });
    assert!(back, "{:?}", node_rows(&nodes[asker]));
}

/// The refusals of golden/nodes.txt on a one-manager swarm.
#[test]
fn last_manager_refusals_match_docker() {
    let nodes = swarm(1, 0);
    let m1 = &nodes[0];
    let id = m1.node_id();
    assert_eq!(
        m1.cli(&["node", "demote", "m1"]).stderr,
        "Error response from daemon: rpc error: code = FailedPrecondition desc = attempting to demote the last manager of the swarm\n"
    );
    assert_eq!(
        m1.cli(&["node", "rm", "m1"]).stderr,
        format!(
            "Error response from daemon: rpc error: code = FailedPrecondition desc = node {id} is a cluster manager and is a member of the raft cluster. It must be demoted to worker before removal\n"
        )
    );
    assert_eq!(
        m1.cli(&["node", "promote", "m1"]).ok(),
        format!("Node {id} is already a manager.\n")
    );
    assert_eq!(
        m1.cli(&["swarm", "leave"]).stderr,
        "Error response from daemon: You are attempting to leave the swarm on a node that is participating as a manager. Removing the last manager erases all current state of the swarm. Use `--force` to ignore this message.\n"
    );
    assert_eq!(
        m1.cli(&["node", "update", "--availability", "drain", "m1"]).ok(),
        "m1\n"
    );
    let ls = m1.cli(&["node", "ls", "--format", "{{.Availability}} {{.ManagerStatus}}"]);
    assert_eq!(ls.ok(), "Drain Leader\n");
    assert_eq!(m1.cli(&["node", "update", "--label-add", "zone=a", "m1"]).ok(), "m1\n");
    assert_eq!(
        m1.cli(&["node", "inspect", "self", "--format", "{{json .Spec.Labels}}"])
            .ok(),
        "{\"zone\":\"a\"}\n"
    );
    assert_eq!(m1.cli(&["swarm", "leave", "--force"]).ok(), "Node left the swarm.\n");
    assert_eq!(
        m1.cli(&["node", "ls"]).stderr,
        "Error response from daemon: This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.\n"
    );
}

/// A node's heartbeats go on one kept connection to the manager: a new
/// connection each period cost the leader a TLS handshake per node and
/// heartbeat (with 50 workers on Swarm's 5 s period, ten a second).
#[test]
fn heartbeats_go_on_one_kept_connection() {
    let nodes = swarm_logging(1, 1, "info,swarmkeep_manager::cluster::incoming=debug");
    let m1 = &nodes[0];
    let accepted = || m1.daemon.log().matches("cluster connection accepted").count();
    assert!(eventually(Duration::from_secs(10), || {
        node_rows(m1).iter().any(|r| r.0 == "w1" && r.1 == "Ready")
    }));
    std::thread::sleep(Duration::from_secs(1));
    let before = accepted();
    assert!(before > 0, "the manager's log counts no accepted connection");
    // Six of the helper's 500 ms heartbeat periods.
    std::thread::sleep(Duration::from_secs(3));
    let opened = accepted() - before;
    assert!(
        opened == 0,
        "{opened} new connections to the manager in 3 s of 500 ms heartbeats"
    );
    // Still heartbeating: the worker stays Ready.
    assert_eq!(row(&node_rows(m1), "w1").1, "Ready");
}

/// A secret or config write does not wake the leader's orchestrator: it
/// reads services, tasks, nodes, networks and cluster settings, never
/// secrets or configs, so a secret write costs the leader no orchestration
/// pass (a scan of the whole swarm's services and tasks) whatever the swarm
/// runs. The orchestrator still passes every half second (restart delays):
/// 30 secret writes add nothing to those.
#[test]
fn secret_and_config_writes_do_not_wake_the_orchestrator() {
    let nodes = swarm_logging(1, 0, "info,swarmkeep_manager::orchestrator=debug");
    let m1 = &nodes[0];
    let passes = || m1.daemon.log().matches("orchestrator pass").count();
    assert!(
        eventually(Duration::from_secs(10), || passes() > 0),
        "no orchestrator pass is logged"
    );
    let before = passes();
    let started = std::time::Instant::now();
    for i in 0..15 {
        m1.daemon
            .cli_stdin(&["secret", "create", &format!("s{i}"), "-"], Some(b"v"))
            .ok();
        m1.daemon
            .cli_stdin(&["config", "create", &format!("c{i}"), "-"], Some(b"v"))
            .ok();
    }
    let elapsed = started.elapsed();
    let during = passes() - before;
    // The half-second passes in that time, and one more either side.
    let ticks = (elapsed.as_millis() / 500) as usize + 2;
    assert!(
        during <= ticks,
        "{during} orchestrator passes during 30 secret and config writes in {elapsed:?} (the timer alone makes {ticks})"
    );
}
