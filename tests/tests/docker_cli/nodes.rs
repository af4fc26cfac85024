//! `docker node …` and a worker joining through docker (golden/nodes.txt, multi-node.txt).

use std::time::Duration;

use swarmkeep_tests::docker::{self, assert_golden, http, normalize};
use swarmkeep_tests::{Daemon, eventually, free_addr, leaks};

use super::*;

#[test]
fn node_commands_match_docker() {
    if docker::skip() {
        return;
    }
    let (d, _) = docker_swarm();
    let pretty = d.docker(&["node", "inspect", "--pretty", "self"]);
    // Up to the CPU count: swarmkeep reports no engine plugins, and memory is the machine's.
    let golden = docker::golden("nodes.txt", "docker node inspect --pretty self");
    let upto = |t: &str| {
        let n = normalize(t);
        n[..n.find(" Memory:").expect("a Memory line")].to_string()
    };
    assert_eq!(upto(pretty.ok()), upto(&golden), "{}", pretty.stdout);
    let fmt = d.docker(&[
        "node",
        "inspect",
        "self",
        "--format",
        "{{json .Spec}} {{json .Status}} {{json .ManagerStatus}}",
    ]);
    assert_golden("nodes.txt", "docker node inspect self --format", fmt.ok());
    let demote = d.docker(&["node", "demote", "vm"]);
    assert_eq!(demote.code, 1);
    assert_golden("nodes.txt", "docker node demote vm", &demote.stderr);
    let rm = d.docker(&["node", "rm", "vm"]);
    assert_eq!(rm.code, 1);
    assert_golden("nodes.txt", "docker node rm vm", &rm.stderr);
    let drain = d
        .docker(&["node", "update", "--availability", "drain", "vm"])
        .ok()
        .to_string();
    let ls = d.docker(&["node", "ls"]);
    assert_golden(
        "nodes.txt",
        "docker node update --availability drain vm",
        &(drain + ls.ok()),
    );
    let promote = d.docker(&["node", "promote", "vm"]);
    assert_golden("nodes.txt", "docker node promote vm", promote.ok());
    // `self` is the CLI's to resolve (through /info); sent raw it is no node.
    let raw_self = d.docker(&["node", "promote", "self"]);
    assert_eq!(raw_self.stderr, "Error response from daemon: node self not found\n");
    let leave = d.docker(&["swarm", "leave"]);
    assert_eq!(leave.code, 1);
    assert_golden("nodes.txt", "docker swarm leave", &leave.stderr);

    // Labels: the CLI sends the whole spec back with the version it read.
    d.docker(&[
        "node",
        "update",
        "--availability",
        "active",
        "--label-add",
        "zone=a",
        "--label-add",
        "x=1",
        "vm",
    ])
    .ok();
    d.docker(&["node", "update", "--label-rm", "x", "vm"]).ok();
    let spec = d.docker(&["node", "inspect", "vm", "--format", "{{json .Spec}}"]);
    assert_eq!(
        spec.ok(),
        "{\"Labels\":{\"zone\":\"a\"},\"Role\":\"manager\",\"Availability\":\"active\"}\n"
    );
    let missing = d.docker(&["node", "update", "--label-rm", "nope", "vm"]);
    assert_eq!(missing.stderr, "key nope doesn't exist in node's labels\n");
    let filtered = d.docker(&[
        "node",
        "ls",
        "-q",
        "--filter",
        "node.label=zone=a",
        "--filter",
        "role=manager",
    ]);
    assert_eq!(filtered.ok().trim().len(), 25);
    let none = d.docker(&["node", "ls", "-q", "--filter", "role=worker"]);
    assert_eq!(none.ok(), "");
    // An update against a stale version is refused and changes nothing.
    let id = d
        .docker(&["node", "inspect", "self", "--format", "{{.ID}}"])
        .ok()
        .trim()
        .to_string();
    let (status, _, body) = http(
        &d.docker_socket(),
        "POST",
        &format!("/v1.41/nodes/{id}/update?version=1"),
        Some(br#"{"Labels":{},"Role":"manager","Availability":"drain"}"#),
    );
    assert_eq!(status, 500, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        String::from_utf8_lossy(&body),
        "{\"message\":\"rpc error: code = Unknown desc = update out of sequence\"}\n"
    );
    let avail = d.docker(&["node", "inspect", "self", "--format", "{{.Spec.Availability}}"]);
    assert_eq!(avail.ok(), "active\n");
}

#[test]
fn workers_join_and_leave_through_docker() {
    if docker::skip() {
        return;
    }
    let (m, addr) = docker_swarm();
    let w = Daemon::start_with(&["--hostname", "w1"], "info");
    let token = m
        .docker(&["swarm", "join-token", "-q", "worker"])
        .ok()
        .trim()
        .to_string();
    let garbage = w.docker(&["swarm", "join", "--token", "garbage", &addr]);
    assert_eq!(garbage.code, 1);
    assert_golden(
        "multi-node.txt",
        "(m4) docker swarm join --token garbage",
        &garbage.stderr,
    );
    let waddr = free_addr("127.0.0.1");
    let join = w.docker(&[
        "swarm",
        "join",
        "--token",
        &token,
        "--advertise-addr",
        &waddr,
        "--listen-addr",
        &waddr,
        &addr,
    ]);
    assert_golden(
        "multi-node.txt",
        "(m4) docker swarm join --token <worker token>",
        join.ok(),
    );
    for args in [["node", "ls"], ["secret", "ls"]] {
        let out = w.docker(&args);
        assert_eq!(out.code, 1);
        assert_golden(
            "multi-node.txt",
            &format!("(m4) docker {} {}", args[0], args[1]),
            &out.stderr,
        );
    }
    let again = w.docker(&["swarm", "join", "--token", &token, &addr]);
    assert_golden(
        "multi-node.txt",
        "(m4) docker swarm join --token SWMTKN-1-<wrong> 127.0.0.3:2379  (already in a swarm)",
        &again.stderr,
    );
    // A worker refuses a secret without echoing it.
    let marker = format!("WORKERMARK-{}", std::process::id());
    let refused = w.docker_stdin(&["secret", "create", "s", "-"], marker.as_bytes());
    assert_golden("multi-node.txt", "(m4) docker secret ls", &refused.stderr);
    assert!(!leaks(format!("{refused:?}{}", w.log()).as_bytes(), marker.as_bytes()));
    let wid = w
        .docker(&["info", "--format", "{{.Swarm.NodeID}}"])
        .ok()
        .trim()
        .to_string();
    assert!(eventually(Duration::from_secs(15), || {
        m.docker(&["node", "ls", "--format", "{{.Hostname}} {{.Status}}"])
            .stdout
            == "vm Ready\nw1 Ready\n"
    }));
    // A global service's output comes from both nodes' agents.
    m.docker(&[
        "service",
        "create",
        "-d",
        "--name",
        "g",
        "--mode",
        "global",
        "--no-resolve-image",
        "busybox",
        "sh",
        "-c",
        "echo from-task; exec sleep 1000",
    ])
    .ok();
    let hosts = || {
        let mut h: Vec<String> = m
            .docker(&["service", "logs", "g"])
            .stdout
            .lines()
            .filter(|l| l.ends_with("| from-task"))
            .filter_map(|l| l.split('@').nth(1)?.split_whitespace().next().map(str::to_string))
            .collect();
        h.sort();
        h
    };
    assert!(
        eventually(Duration::from_secs(20), || hosts() == ["vm", "w1"]),
        "{:?}",
        hosts()
    );
    let promote = m.docker(&["node", "promote", &wid]);
    assert_eq!(
        promote.ok(),
        format!("Node {wid} promoted to a manager in the swarm.\n")
    );
    assert!(eventually(Duration::from_secs(20), || {
        w.docker(&["info", "--format", "{{.Swarm.ControlAvailable}}"]).stdout == "true\n"
    }));
    // A follower manager passes `service logs` on to the leader.
    // (Polled: the promoted node's agent reconnects to the dispatcher meanwhile.)
    assert!(
        eventually(Duration::from_secs(15), || w
            .docker(&["service", "logs", "--raw", "g"])
            .stdout
            == "from-task\nfrom-task\n"),
        "{:?}",
        w.docker(&["service", "logs", "--raw", "g"])
    );
    m.docker(&["service", "rm", "g"]).ok();
    let demote = m.docker(&["node", "demote", &wid]);
    assert_eq!(demote.ok(), format!("Manager {wid} demoted in the swarm.\n"));
    // Demoted: the node answers as a worker again (its raft membership is gone).
    let refusal = docker::golden("multi-node.txt", "(m4) docker node ls");
    assert!(eventually(Duration::from_secs(20), || {
        w.docker(&["info", "--format", "{{.Swarm.ControlAvailable}}"]).stdout == "false\n"
            && w.docker(&["node", "ls"]).stderr == refusal
    }));
    let leave = w.docker(&["swarm", "leave"]);
    assert_golden("multi-node.txt", "(m4) docker swarm leave   (now a worker)", leave.ok());
    assert!(eventually(Duration::from_secs(20), || {
        m.docker(&["node", "ls", "--format", "{{.Hostname}} {{.Status}}"])
            .stdout
            == "vm Ready\nw1 Down\n"
    }));
    assert_eq!(m.docker(&["node", "rm", &wid]).ok(), format!("{wid}\n"));
    assert_eq!(
        w.docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]).ok(),
        "inactive\n"
    );
}
