//! Placement and recovery on a real three-node swarm (daemons on their own
//! 127.0.0.x addresses, heartbeats every 500 ms): constraints and spread
//! place as Docker does, a task no node takes says why, a stopped node's
//! tasks reappear elsewhere and stay there when it returns, drain empties a
//! node, and a global service follows its nodes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use swarmkeep_tests::{SwarmNode, eventually, node_rows, swarm};

/// Tasks of `service` per node hostname whose desired state is running and
/// whose current state `counts`.
fn per_node(m: &SwarmNode, service: &str, counts: fn(&str) -> bool) -> BTreeMap<String, usize> {
    let out = m.cli(&[
        "service",
        "ps",
        service,
        "--format",
        "{{.Node}}|{{.DesiredState}}|{{.CurrentState}}",
    ]);
    let mut per = BTreeMap::new();
    for l in out.stdout.lines() {
        let f: Vec<&str> = l.split('|').collect();
        let state = f.get(2).and_then(|s| s.split(' ').next()).unwrap_or("");
        if f.get(1) == Some(&"Running") && counts(state) && !f[0].is_empty() {
            *per.entry(f[0].to_string()).or_insert(0) += 1;
        }
    }
    per
}

/// Live tasks (placed, not ended).
fn placed(m: &SwarmNode, service: &str) -> BTreeMap<String, usize> {
    per_node(m, service, |s| {
        matches!(
            s,
            "Running" | "Starting" | "Preparing" | "Assigned" | "Accepted" | "Ready"
        )
    })
}

fn running_on(m: &SwarmNode, service: &str) -> BTreeMap<String, usize> {
    per_node(m, service, |s| s == "Running")
}

fn map(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

fn create(m: &SwarmNode, args: &[&str]) {
    let mut all = vec![
        "service",
        "create",
        "-d",
        "--no-resolve-image",
        "--stop-grace-period",
        "1s",
    ];
    all.extend_from_slice(args);
    all.extend_from_slice(&["bb:latest", "sleep", "100000"]);
    m.cli(&all).ok();
}

#[test]
fn placement_recovery_drain_and_global_services_across_nodes() {
    let mut nodes = swarm(1, 2);
    let m = &nodes[0];
    // Tasks go only to nodes that are up: wait for the workers' sessions.
    assert!(eventually(Duration::from_secs(30), || node_rows(m)
        .iter()
        .all(|r| r.1 == "Ready")));
    for (node, zone) in [("m1", "east"), ("w1", "west"), ("w2", "west")] {
        m.cli(&["node", "update", "--label-add", &format!("zone={zone}"), node])
            .ok();
    }
    create(
        m,
        &[
            "--name",
            "spread",
            "--replicas",
            "4",
            "--placement-pref",
            "spread=node.labels.zone",
        ],
    );
    create(
        m,
        &[
            "--name",
            "pinned",
            "--replicas",
            "2",
            "--constraint",
            "node.labels.zone==west",
        ],
    );
    create(m, &["--name", "nowhere", "--constraint", "node.role==nothing"]);
    create(m, &["--name", "everywhere", "--mode", "global"]);
    let settled = || {
        running_on(m, "spread").values().sum::<usize>() == 4
            && running_on(m, "pinned").values().sum::<usize>() == 2
            && running_on(m, "everywhere").len() == 3
    };
    assert!(
        eventually(Duration::from_secs(60), settled),
        "{:?}",
        placed(m, "spread")
    );
    // Half of `spread` in the east zone (its one node), half in the west.
    let spread = running_on(m, "spread");
    assert_eq!(spread.get("m1"), Some(&2), "{spread:?}");
    assert_eq!(spread.get("w1").unwrap_or(&0) + spread.get("w2").unwrap_or(&0), 2);
    assert_eq!(running_on(m, "pinned"), map(&[("w1", 1), ("w2", 1)]));
    let why = m.cli(&[
        "service",
        "ps",
        "nowhere",
        "--no-trunc",
        "--format",
        "{{.CurrentState}}|{{.Error}}",
    ]);
    let why = why.ok().trim();
    assert!(why.starts_with("Pending"), "{why}");
    assert!(
        why.ends_with("|\"no suitable node (scheduling constraints not satisfied on 3 nodes)\""),
        "{why}"
    );

    // w2 stops: once it is down, its tasks start over elsewhere at once.
    let hb = Duration::from_millis(500);
    let stopped = Instant::now();
    nodes[2].daemon.stop();
    let m = &nodes[0];
    assert!(eventually(Duration::from_secs(30), || placed(m, "pinned") == map(&[("w1", 2)])));
    let moved_after = stopped.elapsed();
    // Down after three missed heartbeats, then one pass of the orchestrator.
    eprintln!("pinned's w2 task placed on w1 {moved_after:?} after w2 stopped");
    assert!(moved_after <= 3 * hb + Duration::from_secs(2), "{moved_after:?}");
    assert!(eventually(Duration::from_secs(30), || !placed(m, "everywhere").contains_key("w2")));
    assert_eq!(placed(m, "spread").values().sum::<usize>(), 4);
    assert!(!placed(m, "spread").contains_key("w2"));

    // w2 comes back: nothing moves to it but the global service's task.
    nodes[2].daemon.restart();
    let m = &nodes[0];
    assert!(eventually(Duration::from_secs(30), || running_on(m, "everywhere")
        .len()
        == 3));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(running_on(m, "pinned"), map(&[("w1", 2)]));
    assert!(!placed(m, "spread").contains_key("w2"));

    // Drain w1: its tasks go where they may (pinned: to w2, the other west
    // node), the global one leaves it.
    m.cli(&["node", "update", "--availability", "drain", "w1"]).ok();
    assert!(eventually(Duration::from_secs(30), || running_on(m, "pinned") == map(&[("w2", 2)])));
    assert!(eventually(Duration::from_secs(30), || !placed(m, "everywhere").contains_key("w1")));
    assert!(!placed(m, "spread").contains_key("w1"));
    assert_eq!(placed(m, "spread").values().sum::<usize>(), 4);
    // Active again: the global service comes back to it; the others stay.
    m.cli(&["node", "update", "--availability", "active", "w1"]).ok();
    assert!(eventually(Duration::from_secs(30), || running_on(m, "everywhere")
        .len()
        == 3));
    assert_eq!(running_on(m, "pinned"), map(&[("w2", 2)]));
}
