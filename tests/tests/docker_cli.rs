//! The unmodified docker CLI drives swarmkeepd through its Docker Engine API
//! (`--docker-api`): every command of `tests/golden/` that a one- or two-node
//! swarmkeep can run, compared with what real Docker printed (IDs, tokens,
//! times, versions and column padding masked). Skipped, saying so, where no
//! docker CLI is installed.

use std::path::Path;
use std::time::Duration;

use swarmkeep_tests::docker::{self, assert_golden, http, normalize};
use swarmkeep_tests::{Daemon, eventually, free_addr, leaks};

/// A daemon whose swarm was made by `docker swarm init`, as in golden.
fn docker_swarm() -> (Daemon, String) {
    let d = Daemon::start_with(&["--hostname", "vm"], "info");
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

#[test]
fn swarm_commands_match_docker() {
    if docker::skip() {
        return;
    }
    let d = Daemon::start_with(&["--hostname", "vm"], "info");
    // Before init: the CLI talks to an inactive node.
    let ping = d.docker(&["version", "--format", "{{.Server.APIVersion}}"]);
    assert_eq!(ping.ok(), "1.41\n");
    let info = d.docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
    assert_eq!(info.ok(), "inactive\n");
    let out = d.docker(&["secret", "ls"]);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        "Error response from daemon: This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.\n"
    );

    let addr = free_addr("127.0.0.1");
    // An init whose settings are refused leaves no swarm behind.
    let bad = d.docker(&[
        "swarm",
        "init",
        "--advertise-addr",
        "127.0.0.1",
        "--listen-addr",
        &addr,
        "--cert-expiry",
        "30m",
    ]);
    assert_eq!(
        bad.stderr,
        "Error response from daemon: rpc error: code = InvalidArgument desc = minimum certificate expiry time is: 1h0m0s\n"
    );
    assert_eq!(
        d.docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]).ok(),
        "inactive\n"
    );
    let init = d.docker(&["swarm", "init", "--advertise-addr", "127.0.0.1", "--listen-addr", &addr]);
    assert_golden("swarm-and-nodes.txt", "docker swarm init --advertise-addr", init.ok());
    let worker = d.docker(&["swarm", "join-token", "worker"]);
    assert_golden("swarm-and-nodes.txt", "docker swarm join-token worker", worker.ok());
    let token = d.docker(&["swarm", "join-token", "-q", "manager"]);
    assert!(
        regex::Regex::new(r"^SWMTKN-1-[0-9a-z]{50}-[0-9a-z]{25}\n$")
            .unwrap()
            .is_match(token.ok()),
        "{token:?}"
    );
    let before = d.docker(&["swarm", "join-token", "-q", "worker"]).ok().to_string();
    let rotate = d.docker(&["swarm", "join-token", "--rotate", "worker"]);
    assert_golden(
        "swarm-and-nodes.txt",
        "docker swarm join-token --rotate worker",
        rotate.ok(),
    );
    let after = d.docker(&["swarm", "join-token", "-q", "worker"]).ok().to_string();
    assert_ne!(before, after);
    // Only the secret part changes (the CA digest stays).
    assert_eq!(before[..60], after[..60]);
    let again = d.docker(&["swarm", "init"]);
    assert_eq!(again.code, 1);
    assert_golden("swarm-and-nodes.txt", "docker swarm init (second time)", &again.stderr);
    let ls = d.docker(&["node", "ls"]);
    assert_golden("swarm-and-nodes.txt", "docker node ls", ls.ok());

    // docker info shows the swarm; swarm update goes through the whole spec.
    let cluster = d.docker(&[
        "info",
        "--format",
        "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}} {{.Swarm.Nodes}} {{.Swarm.Managers}}",
    ]);
    assert_eq!(cluster.ok(), "active true 1 1\n");
    assert_eq!(
        d.docker(&["swarm", "update", "--task-history-limit", "3"]).ok(),
        "Swarm updated.\n"
    );
    let limit = d.docker(&[
        "info",
        "--format",
        "{{.Swarm.Cluster.Spec.Orchestration.TaskHistoryRetentionLimit}}",
    ]);
    assert_eq!(limit.ok(), "3\n");
    // An update against a stale version is refused and changes nothing.
    let (status, _, body) = http(
        &d.docker_socket(),
        "POST",
        "/v1.41/swarm/update?version=1&rotateWorkerToken=false&rotateManagerToken=false&rotateManagerUnlockKey=false",
        Some(br#"{"Orchestration":{"TaskHistoryRetentionLimit":9}}"#),
    );
    assert_eq!(
        (status, String::from_utf8_lossy(&body).as_ref()),
        (
            500,
            "{\"message\":\"rpc error: code = Unknown desc = update out of sequence\"}\n"
        )
    );
    let limit = d.docker(&[
        "info",
        "--format",
        "{{.Swarm.Cluster.Spec.Orchestration.TaskHistoryRetentionLimit}}",
    ]);
    assert_eq!(limit.ok(), "3\n");
    let ca = d.docker(&["swarm", "ca"]);
    assert!(ca.ok().starts_with("-----BEGIN CERTIFICATE-----\n"), "{ca:?}");

    // Autolock: no key, then a key that can be read back and rotated.
    let none = d.docker(&["swarm", "unlock-key"]);
    assert_eq!((none.code, none.stderr.as_str()), (1, "no unlock key is set\n"));
    let on = d.docker(&["swarm", "update", "--autolock=true"]);
    let text = on.ok();
    let key = regex::Regex::new(r"SWMKEY-1-\S+").unwrap();
    let first = key.find(text).expect("unlock key printed").as_str().to_string();
    assert_eq!(d.docker(&["swarm", "unlock-key", "-q"]).ok().trim(), first);
    d.docker(&["swarm", "unlock-key", "--rotate"]).ok();
    let rotated = d.docker(&["swarm", "unlock-key", "-q"]).ok().trim().to_string();
    assert!(rotated.starts_with("SWMKEY-1-") && rotated != first);
    let unlock = d.docker(&["swarm", "unlock"]);
    assert_eq!(
        (unlock.code, unlock.stderr.as_str()),
        (1, "Error: swarm is not locked\n")
    );
    d.docker(&["swarm", "update", "--autolock=false"]).ok();
    assert_eq!(d.docker(&["swarm", "unlock-key"]).code, 1);
}

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

#[test]
fn secret_and_config_commands_match_docker() {
    if docker::skip() {
        return;
    }
    let (d, _) = docker_swarm();
    // What golden's machine already had.
    d.docker_stdin(&["secret", "create", "my_mysql_password", "-"], b"pw")
        .ok();
    d.docker_stdin(&["config", "create", "registry-config", "-"], b"version: 0.1\nlog:\n")
        .ok();
    let dir = d.path();
    std::fs::write(dir.join("file"), "another").unwrap();
    std::fs::write(dir.join("sfile"), "api-key-value").unwrap();
    std::fs::write(dir.join("big"), vec![0u8; 512_001]).unwrap();
    std::fs::write(dir.join("max"), vec![0u8; 512_000]).unwrap();

    let s = "secrets.txt";
    let created = d.docker_stdin(&["secret", "create", "db_password", "-"], b"s3cr3t-value");
    assert_golden(
        s,
        "printf \"s3cr3t-value\" | docker secret create db_password -",
        created.ok(),
    );
    let dup = d.docker(&["secret", "create", "db_password", "./file"]);
    assert_eq!(dup.code, 1);
    assert_golden(s, "docker secret create db_password ./file", &dup.stderr);
    let labelled = d.docker(&["secret", "create", "--label", "env=prod", "api_key", "./sfile"]);
    assert_golden(
        s,
        "docker secret create --label env=prod api_key ./sfile",
        labelled.ok(),
    );
    assert_golden(s, "docker secret ls", d.docker(&["secret", "ls"]).ok());
    let q = d.docker(&["secret", "ls", "-q"]);
    assert_eq!(
        format!("{}\n", q.ok().lines().count()),
        docker::golden(s, "docker secret ls -q | wc -l")
    );
    let filtered = d.docker(&["secret", "ls", "--filter", "label=env=prod", "--format", "{{.Name}}"]);
    assert_golden(s, "docker secret ls --filter label=env=prod", filtered.ok());
    let names = d.docker(&["secret", "ls", "--format", "{{.Name}}"]);
    assert_eq!(names.ok(), "api_key\ndb_password\nmy_mysql_password\n");
    let prefix = d.docker(&["secret", "ls", "--filter", "name=my_", "--format", "{{.Name}}"]);
    assert_eq!(prefix.ok(), "my_mysql_password\n");
    // Different keys are ANDed: a name and another secret's ID match nothing.
    let db_id = d
        .docker(&["secret", "inspect", "--format", "{{.ID}}", "db_password"])
        .ok()
        .trim()
        .to_string();
    let both = d.docker(&[
        "secret",
        "ls",
        "-q",
        "--filter",
        "name=my_",
        "--filter",
        &format!("id={}", &db_id[..6]),
    ]);
    assert_eq!(both.ok(), "");
    let same = d.docker(&[
        "secret",
        "ls",
        "--format",
        "{{.Name}}",
        "--filter",
        "name=db",
        "--filter",
        &format!("id={}", &db_id[..6]),
    ]);
    assert_eq!(same.ok(), "db_password\n");
    assert_golden(
        s,
        "docker secret inspect api_key",
        d.docker(&["secret", "inspect", "api_key"]).ok(),
    );
    assert_golden(
        s,
        "docker secret inspect --pretty api_key",
        d.docker(&["secret", "inspect", "--pretty", "api_key"]).ok(),
    );
    let nope = d.docker(&["secret", "inspect", "nope"]);
    assert_golden(
        s,
        "docker secret inspect nope",
        &format!("{}{}exit={}\n", nope.stdout, nope.stderr, nope.code),
    );
    for (args, golden) in [
        (
            vec!["secret", "create", "bad name!", "./sfile"],
            "docker secret create \"bad name!\"",
        ),
        (
            vec!["secret", "create", "empty_one", "/dev/null"],
            "docker secret create empty_one",
        ),
        (vec!["secret", "create", "too_big", "big"], "head -c 512001"),
        (vec!["secret", "create", "max_size", "max"], "head -c 512000"),
        (
            vec!["secret", "create", &"a".repeat(65), "sfile"],
            "docker secret create $(python3 -c \"print(\\\"a\\\"*65)\")",
        ),
        (
            vec!["secret", "create", "--", "-x", "sfile"],
            "docker secret create -x f",
        ),
    ] {
        let out = d.docker(&args);
        assert_eq!(out.code, 1, "{args:?}");
        assert_golden(s, golden, &out.stderr);
    }
    assert_eq!(d.docker(&["secret", "create", &"a".repeat(64), "sfile"]).code, 0);
    let rm = d.docker(&["secret", "rm", "api_key", "nope"]);
    assert_golden(
        s,
        "docker secret rm api_key nope",
        &format!("{}{}exit={}\n", rm.stdout, rm.stderr, rm.code),
    );

    let c = "configs-and-in-use.txt";
    std::fs::write(dir.join("config.yml"), docker::golden(c, "cat config.yml")).unwrap();
    let created = d.docker(&["config", "create", "app-config", "config.yml"]);
    assert_golden(c, "docker config create app-config config.yml", created.ok());
    assert_golden(c, "docker config ls", d.docker(&["config", "ls"]).ok());
    assert_golden(
        c,
        "docker config inspect app-config",
        d.docker(&["config", "inspect", "app-config"]).ok(),
    );
    assert_golden(
        c,
        "docker config inspect --pretty app-config",
        d.docker(&["config", "inspect", "--pretty", "app-config"]).ok(),
    );
    let dup = d.docker(&["config", "create", "app-config", "config.yml"]);
    // golden has the same command twice; the second is the duplicate.
    assert_eq!(
        dup.stderr,
        "Error response from daemon: rpc error: code = AlreadyExists desc = config app-config already exists\n"
    );
    std::fs::write(dir.join("bigc"), vec![0u8; 1_000_001]).unwrap();
    let big = d.docker(&["config", "create", "big_cfg", "bigc"]);
    assert_golden(
        c,
        "head -c 1000001 /dev/zero > big; docker config create big_cfg big",
        big.ok(),
    );
    let uses = d.docker(&[
        "service",
        "create",
        "-d",
        "--name",
        "uses",
        "--secret",
        "db_password",
        "--config",
        "app-config",
        "bb:latest",
        "sleep",
        "1000000",
    ]);
    assert_golden(c, "docker service create --name uses", uses.ok());
    for (args, golden) in [
        (["secret", "rm", "db_password"], "docker secret rm db_password"),
        (["config", "rm", "app-config"], "docker config rm app-config"),
    ] {
        let out = d.docker(&args);
        assert_eq!(out.code, 1);
        assert_golden(c, golden, &out.stderr);
    }
    let bad = d.docker(&[
        "service",
        "create",
        "--name",
        "bad",
        "--secret",
        "nosuch",
        "bb:latest",
        "sleep",
        "1",
    ]);
    assert_golden(c, "docker service create --name bad --secret nosuch", &bad.stderr);
    // Docker accepts `target=../escape`; swarmkeep refuses a target outside
    // /run/secrets (a documented difference).
    let escape = d.docker(&[
        "service",
        "create",
        "--name",
        "bad",
        "--secret",
        "source=db_password,target=../escape",
        "bb:latest",
        "sleep",
        "1",
    ]);
    assert_eq!(escape.code, 1);
    assert!(escape.stderr.contains("InvalidArgument"), "{escape:?}");
}

/// The progress lines of an attached `service create|update|scale`.
/// (The CLI prints them on stdout when it is not a terminal.)
fn converged(out: &swarmkeep_tests::Run, what: &str, tasks: usize) {
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

fn first_line(out: &swarmkeep_tests::Run) -> String {
    out.stdout.lines().next().unwrap_or("").to_string()
}

#[test]
fn service_commands_match_docker() {
    if docker::skip() {
        return;
    }
    let (d, _) = docker_swarm();
    let s = "services.txt";
    let create = d.docker(&[
        "service",
        "create",
        "--name",
        "myweb",
        "--replicas",
        "2",
        "--no-resolve-image",
        "bb:latest",
        "sleep",
        "1000000",
    ]);
    let id = first_line(&create);
    assert_eq!(id.len(), 25, "{create:?}");
    converged(&create, &id, 2);
    assert_golden(s, "docker service ls", d.docker(&["service", "ls"]).ok());
    assert_golden(s, "docker service ps myweb", d.docker(&["service", "ps", "myweb"]).ok());
    let scale = d.docker(&["service", "scale", "myweb=4"]);
    // `scale` prints its line, then waits like create.
    assert!(scale.stdout.starts_with("myweb scaled to 4\n"), "{scale:?}");
    converged(&scale, "myweb", 4);
    let global = d.docker(&[
        "service",
        "create",
        "--name",
        "global_web",
        "--mode",
        "global",
        "-d",
        "--no-resolve-image",
        "bb:latest",
        "sleep",
        "1000000",
    ]);
    assert_golden(s, "docker service create --name global_web", global.ok());
    let myweb3 = d.docker(&[
        "service",
        "create",
        "--name",
        "myweb3",
        "--replicas",
        "4",
        "--update-delay",
        "10s",
        "--update-parallelism",
        "2",
        "-d",
        "--no-resolve-image",
        "bb:latest",
        "sleep",
        "1000000",
    ]);
    assert_golden(s, "docker service create --name myweb3", myweb3.ok());
    assert_golden(
        s,
        "docker service inspect --pretty myweb3",
        d.docker(&["service", "inspect", "--pretty", "myweb3"]).ok(),
    );
    assert!(eventually(Duration::from_secs(15), || {
        normalize(&d.docker(&["service", "ls"]).stdout) == normalize(&docker::golden_at(s, "docker service ls", 1))
    }));
    assert_golden(
        s,
        "docker service inspect myweb3",
        d.docker(&["service", "inspect", "myweb3"]).ok(),
    );
    let endpoint = d.docker(&["service", "inspect", "--format", "{{json .Endpoint}}", "myweb3"]);
    assert_eq!(endpoint.ok(), "{\"Spec\":{}}\n");
    let modes = d.docker(&["service", "ls", "--filter", "mode=global", "--format", "{{.Name}}"]);
    assert_eq!(modes.ok(), "global_web\n");

    // services-2.txt: an update, its rollback, and the history they leave.
    let s2 = "services-2.txt";
    let update = d.docker(&[
        "service",
        "update",
        "--image",
        "bb:v2",
        "--update-parallelism",
        "2",
        "--update-delay",
        "1s",
        "myweb",
    ]);
    assert_eq!(first_line(&update), "myweb");
    converged(&update, "myweb", 4);
    let ps = d.docker(&["service", "ps", "myweb"]);
    assert_golden(s2, "docker service ps myweb", ps.ok());
    let rollback = d.docker(&["service", "rollback", "myweb"]);
    converged(&rollback, "myweb", 4);
    // Docker's UpdateStatus drives the CLI's rollback display.
    assert!(
        rollback.stdout.contains("rollback: manually requested rollback"),
        "{rollback:?}"
    );
    assert!(
        rollback
            .stdout
            .contains("overall progress: rolling back update: 4 out of 4 tasks"),
        "{rollback:?}"
    );
    let status = d.docker(&[
        "service",
        "inspect",
        "--format",
        "{{.UpdateStatus.State}} {{.UpdateStatus.Message}}",
        "myweb",
    ]);
    assert!(
        eventually(Duration::from_secs(10), || d
            .docker(&["service", "inspect", "--format", "{{.UpdateStatus.State}}", "myweb"])
            .stdout
            == "rollback_completed\n"),
        "{status:?}"
    );
    let images = d.docker(&[
        "service",
        "inspect",
        "--format",
        "{{.Spec.TaskTemplate.ContainerSpec.Image}} {{.PreviousSpec.TaskTemplate.ContainerSpec.Image}}",
        "myweb",
    ]);
    assert_eq!(images.ok(), "bb:latest bb:v2\n");
    let shutdown = d.docker(&[
        "service",
        "ps",
        "--no-trunc",
        "--filter",
        "desired-state=shutdown",
        "myweb",
        "--format",
        "{{.Name}} {{.CurrentState}} {{.Error}}",
    ]);
    assert_eq!(shutdown.ok().lines().count(), 8, "{shutdown:?}");
    assert!(
        shutdown
            .stdout
            .lines()
            .all(|l| l.starts_with("myweb.") && l.contains(" Shutdown "))
    );
    let scale = d.docker(&["service", "scale", "myweb=1"]);
    assert!(scale.stdout.starts_with("myweb scaled to 1\n"), "{scale:?}");
    let gscale = d.docker(&["service", "scale", "global_web=2"]);
    assert_eq!(
        gscale.stderr,
        "global_web: scale can only be used with replicated or replicated-job mode\n"
    );
    let rm = d.docker(&["service", "rm", "myweb", "global_web", "myweb3"]);
    assert_golden(s2, "docker service rm myweb global_web myweb3", rm.ok());
    let nope = d.docker(&["service", "rm", "nope"]);
    assert_golden(s2, "docker service rm nope", &nope.stderr);
    assert!(eventually(Duration::from_secs(15), || d.mounts().is_empty()));
}

#[test]
fn a_service_created_by_docker_reads_its_secrets() {
    if docker::skip() {
        return;
    }
    let (d, _) = docker_swarm();
    let value = format!("DOCKERMARK-{}-\u{1}\u{7f}end", std::process::id());
    d.docker_stdin(&["secret", "create", "db", "-"], value.as_bytes()).ok();
    d.docker_stdin(&["config", "create", "app.conf", "-"], b"cfg-data\n")
        .ok();
    let out = d.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let o = out.display();
    let script = format!(
        "cat /run/secrets/db > {o}/default; cat /run/sx > {o}/abs; cat /cfg > {o}/cfg; \
         stat -c '%u %g %a' /run/secrets/db /run/sx /cfg > {o}/stat; touch {o}/done; exec sleep 1000"
    );
    let create = d.docker(&[
        "service",
        "create",
        "--name",
        "reader",
        "--secret",
        "db",
        "--secret",
        "source=db,target=/run/sx,uid=1,gid=2,mode=0400",
        "--config",
        "source=app.conf,target=/cfg",
        "--update-monitor",
        "1s",
        "busybox:latest",
        "sh",
        "-c",
        &script,
    ]);
    let id = first_line(&create);
    converged(&create, &id, 1);
    // The CLI's registry lookup failed, so it warned and went on.
    assert!(
        create
            .stderr
            .contains("image busybox:latest could not be accessed on a registry"),
        "{create:?}"
    );
    assert!(
        eventually(Duration::from_secs(15), || out.join("done").exists()),
        "{}",
        d.log()
    );
    assert_eq!(std::fs::read_to_string(out.join("default")).unwrap(), value);
    assert_eq!(std::fs::read_to_string(out.join("abs")).unwrap(), value);
    assert_eq!(std::fs::read_to_string(out.join("cfg")).unwrap(), "cfg-data\n");
    assert_eq!(
        std::fs::read_to_string(out.join("stat")).unwrap(),
        "0 0 444\n1 2 400\n0 0 444\n"
    );
    let refs = d.docker(&[
        "service",
        "inspect",
        "--format",
        "{{json .Spec.TaskTemplate.ContainerSpec.Secrets}}",
        "reader",
    ]);
    assert!(
        refs.ok()
            .contains("\"File\":{\"Name\":\"/run/sx\",\"UID\":\"1\",\"GID\":\"2\",\"Mode\":256}"),
        "{refs:?}"
    );
    // `service ps` through docker agrees with the task that ran.
    let ps = d.docker(&[
        "service",
        "ps",
        "reader",
        "--format",
        "{{.Name}} {{.DesiredState}} {{.CurrentState}}",
    ]);
    assert!(ps.ok().starts_with("reader.1 Running Running"), "{ps:?}");
    // A detached create returns at once with the ID.
    let detached = d.docker(&[
        "service", "create", "-d", "--name", "quick", "--secret", "db", "busybox", "sleep", "1000",
    ]);
    assert_eq!(detached.ok().trim().len(), 25);
    assert_eq!(d.docker(&["service", "rm", "reader", "quick"]).ok(), "reader\nquick\n");
    assert!(eventually(Duration::from_secs(15), || d.mounts().is_empty()));
}

#[test]
fn unsupported_and_bad_requests_get_clear_errors() {
    if docker::skip() {
        return;
    }
    let (d, _) = docker_swarm();
    let sock = d.docker_socket();
    // Published ports, placement and networks are not built: said plainly.
    let ports = d.docker(&[
        "service", "create", "-d", "--name", "p", "-p", "8080:80", "bb", "sleep", "1",
    ]);
    assert_eq!(
        ports.stderr,
        "Error response from daemon: swarmkeep does not support EndpointSpec.Ports (published ports) yet\n"
    );
    let constraint = d.docker(&[
        "service",
        "create",
        "-d",
        "--constraint",
        "node.role==manager",
        "bb",
        "sleep",
        "1",
    ]);
    assert!(
        constraint.stderr.contains("does not support TaskTemplate.Placement"),
        "{constraint:?}"
    );
    let net = d.docker(&["service", "create", "-d", "--network", "foo", "bb", "sleep", "1"]);
    assert_eq!(net.stderr, "Error response from daemon: network foo not found\n");
    assert_eq!(d.docker(&["service", "ls", "-q"]).ok(), "", "nothing half-made");
    let netls = d.docker(&["network", "ls", "-q"]);
    assert_eq!(netls.ok(), "");
    let netc = d.docker(&["network", "create", "-d", "overlay", "n1"]);
    assert_eq!(
        netc.stderr,
        "Error response from daemon: swarmkeep does not support networks yet\n"
    );
    d.docker(&["service", "create", "-d", "--name", "s1", "bb", "sleep", "1000"])
        .ok();
    let logs = d.docker(&["service", "logs", "nope"]);
    assert_eq!(logs.stderr, "no such task or service: nope\n");
    let rollback = d.docker(&["service", "rollback", "s1"]);
    assert!(
        rollback.stderr.contains("does not have a previous spec"),
        "{rollback:?}"
    );

    // Raw HTTP: unknown routes, bad JSON, bad filters, stale versions.
    let (status, head, body) = http(&sock, "GET", "/v1.41/nope", None);
    assert_eq!(
        (status, body.as_slice()),
        (404, &b"{\"message\":\"page not found\"}\n"[..])
    );
    assert!(head.contains("Content-Type: application/json") || head.contains("content-type: application/json"));
    let (status, head, body) = http(&sock, "HEAD", "/_ping", None);
    assert_eq!(status, 200);
    assert!(body.is_empty());
    assert!(head.to_ascii_lowercase().contains("api-version: 1.41"), "{head}");
    let (status, _, body) = http(&sock, "GET", "/_ping", None);
    assert_eq!((status, body.as_slice()), (200, &b"OK"[..]));
    let (status, _, _) = http(&sock, "POST", "/v1.41/secrets/create", Some(b"{not json"));
    assert_eq!(status, 400);
    let (status, _, body) = http(
        &sock,
        "GET",
        "/secrets?filters=%7B%22bogus%22%3A%7B%22x%22%3Atrue%7D%7D",
        None,
    );
    assert_eq!(
        (status, body.as_slice()),
        (400, &b"{\"message\":\"invalid filter 'bogus'\"}\n"[..])
    );
    let (status, _, body) = http(
        &sock,
        "POST",
        "/v1.41/services/s1/update?version=1",
        Some(b"{\"Name\":\"s1\",\"TaskTemplate\":{\"ContainerSpec\":{\"Image\":\"bb\"}}}"),
    );
    assert_eq!(status, 500, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("update out of sequence"));
    let image = d.docker(&[
        "service",
        "inspect",
        "--format",
        "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
        "s1",
    ]);
    assert_eq!(image.ok(), "bb:latest\n", "a refused update changed nothing");
    let (status, _, body) = http(&sock, "POST", "/v1.41/services/s1/update", Some(b"{}"));
    assert_eq!(
        (status, String::from_utf8_lossy(&body).as_ref()),
        (
            400,
            "{\"message\":\"invalid service version '': strconv.ParseUint: parsing \\\"\\\": invalid syntax\"}\n"
        ),
        "the version is required"
    );
    let (status, _, body) = http(&sock, "GET", "/v1.43/info", None);
    assert_eq!(
        (status, String::from_utf8_lossy(&body).as_ref()),
        (
            400,
            "{\"message\":\"client version 1.43 is too new. Maximum supported API version is 1.41\"}\n"
        )
    );
    let huge = d.docker(&["service", "create", "-d", "--replicas", "100000", "bb", "sleep", "1"]);
    assert_eq!(
        huge.stderr,
        "Error response from daemon: rpc error: code = InvalidArgument desc = replicas must be at most 10000\n"
    );
    // `--force` replaces the tasks even though nothing else changed.
    let before = d.docker(&["service", "ps", "-q", "s1"]).ok().to_string();
    d.docker(&["service", "update", "-d", "--force", "s1"]).ok();
    let force = d.docker(&[
        "service",
        "inspect",
        "--format",
        "{{.Spec.TaskTemplate.ForceUpdate}}",
        "s1",
    ]);
    assert_eq!(force.ok(), "1\n");
    assert!(eventually(Duration::from_secs(15), || {
        let ps = d
            .docker(&["service", "ps", "--format", "{{.ID}} {{.DesiredState}}", "s1"])
            .stdout;
        ps.lines().count() == 2
            && ps
                .lines()
                .any(|l| l.ends_with(" Running") && !before.contains(&l[..12]))
    }));
}

/// A secret's value, sent through the Docker API, comes back in no response
/// (lists, inspects, tasks, services, info, errors), no log line at trace
/// level and no file of the data dir.
#[test]
fn no_secret_value_leaves_through_the_docker_api() {
    if docker::skip() {
        return;
    }
    let d = Daemon::start_with(&["--hostname", "vm"], "trace");
    let addr = free_addr("127.0.0.1");
    d.docker(&["swarm", "init", "--advertise-addr", "127.0.0.1", "--listen-addr", &addr])
        .ok();
    let value = format!("APIMARK-{}-payload", std::process::id()).into_bytes();
    let sock = d.docker_socket();
    let created = d.docker_stdin(&["secret", "create", "--label", "k=v", "leaky", "-"], &value);
    assert!(!leaks(created.ok().as_bytes(), &value));
    // The same value through raw HTTP, then refused in ways that echo input.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&value);
    let (status, _, body) = http(
        &sock,
        "POST",
        "/v1.41/secrets/create",
        Some(format!("{{\"Name\":\"raw\",\"Data\":\"{b64}\"}}").as_bytes()),
    );
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let mut responses = vec![body];
    for bad in [
        format!("{{\"Name\":\"raw\",\"Data\":\"{b64}\"}}"),
        format!("{{\"Name\":\"bad name!\",\"Data\":\"{b64}\"}}"),
        format!("{{\"Name\":\"x\",\"Data\":\"{}!!\"}}", String::from_utf8_lossy(&value)),
        format!("{{\"Name\":\"x\",\"Data\":\"{b64}\",\"Labels\":\"{b64}\"}}"),
        format!("{{\"Name\":\"x\",\"Data\":\"{b64}\",\"Driver\":{{\"Name\":\"vault\"}}}}"),
        // serde quotes a wrong-typed string with its escapes: still not shown.
        format!(
            "{{\"Name\":\"x\",\"Labels\":\"a\\\"{}\\\"b\"}}",
            String::from_utf8_lossy(&value)
        ),
    ] {
        let (status, _, body) = http(&sock, "POST", "/v1.41/secrets/create", Some(bad.as_bytes()));
        assert!(status >= 400, "{}", String::from_utf8_lossy(&body));
        responses.push(body);
    }
    let other = base64::engine::general_purpose::STANDARD.encode(b"other value");
    for data in [&b64, &other] {
        let (status, _, body) = http(
            &sock,
            "POST",
            "/v1.41/secrets/raw/update?version=1",
            Some(format!("{{\"Name\":\"raw\",\"Data\":\"{data}\"}}").as_bytes()),
        );
        assert!(status >= 400);
        responses.push(body);
    }
    let version = d
        .docker(&["secret", "inspect", "--format", "{{.Version.Index}}", "raw"])
        .ok()
        .trim()
        .to_string();
    let (status, _, body) = http(
        &sock,
        "POST",
        &format!("/v1.41/secrets/raw/update?version={version}"),
        Some(format!("{{\"Name\":\"raw\",\"Labels\":{{\"a\":\"b\"}},\"Data\":\"{other}\"}}").as_bytes()),
    );
    assert_eq!(
        (status, String::from_utf8_lossy(&body).as_ref()),
        (
            400,
            "{\"message\":\"rpc error: code = InvalidArgument desc = only updates to Labels are allowed\"}\n"
        )
    );
    responses.push(body);
    d.docker(&[
        "service", "create", "-d", "--name", "user", "--secret", "leaky", "--secret", "raw", "busybox", "sleep", "1000",
    ])
    .ok();
    assert!(eventually(Duration::from_secs(15), || {
        d.docker(&["service", "ls", "--format", "{{.Replicas}}"]).stdout == "1/1\n"
    }));
    let node = d
        .docker(&["info", "--format", "{{.Swarm.NodeID}}"])
        .ok()
        .trim()
        .to_string();
    let task = d.docker(&["service", "ps", "-q", "user"]).ok().trim().to_string();
    for path in [
        "/v1.41/secrets",
        "/v1.41/secrets/leaky",
        "/v1.41/secrets/raw",
        "/v1.41/services?status=true",
        "/v1.41/services/user",
        "/v1.41/tasks",
        "/v1.41/info",
        "/v1.41/swarm",
        "/v1.41/nodes",
        "/v1.41/configs",
        "/v1.41/version",
        "/v1.41/services/user/logs?stdout=1&stderr=1&details=1&timestamps=1",
        &format!("/v1.41/nodes/{node}"),
        &format!("/v1.41/tasks/{task}"),
    ] {
        let (status, _, body) = http(&sock, "GET", path, None);
        assert_eq!(status, 200, "{path}");
        responses.push(body);
    }
    for args in [
        vec!["secret", "inspect", "leaky", "raw"],
        vec!["secret", "inspect", "--pretty", "leaky"],
        vec!["secret", "ls"],
        vec!["service", "inspect", "user"],
        vec!["service", "ps", "user"],
        vec!["info"],
    ] {
        let out = d.docker(&args);
        responses.push(format!("{}{}", out.stdout, out.stderr).into_bytes());
    }
    for (i, r) in responses.iter().enumerate() {
        assert!(
            !leaks(r, &value),
            "response {i} shows the secret: {}",
            String::from_utf8_lossy(r)
        );
    }
    let log = d.log();
    assert!(log.contains("docker API request"), "trace logging reached the facade");
    assert!(!leaks(log.as_bytes(), &value), "the daemon log shows the secret");
    for f in swarmkeep_tests::files_under(&d.data_dir()) {
        let bytes = std::fs::read(&f).unwrap_or_default();
        assert!(!leaks(&bytes, &value), "{} holds the secret", f.display());
    }
    assert!(!Path::new(&d.data_dir()).join("docker").exists());
}

/// `docker service logs`: each task's output, kept in its agent's memory,
/// gathered by the leader (Docker's `name.slot.task@node | line` prefixes;
/// stdout and stderr apart; `--tail`, `-t`, one task, `-f`).
#[test]
fn service_logs_come_from_the_agents() {
    if docker::skip() {
        return;
    }
    let (d, _) = docker_swarm();
    d.docker(&[
        "service",
        "create",
        "-d",
        "--name",
        "probe_logs",
        "--replicas",
        "2",
        "--no-resolve-image",
        "busybox",
        "sh",
        "-c",
        "echo hello-out; echo hello-err >&2; echo second; exec sleep 1000",
    ])
    .ok();
    let logs = || d.docker(&["service", "logs", "probe_logs"]);
    assert!(
        eventually(Duration::from_secs(15), || logs().stdout.lines().count() == 4),
        "{:?}",
        logs()
    );
    let out = logs();
    let line = regex::Regex::new(r"^probe_logs\.([12])\.[0-9a-z]{12}@vm    \| (hello-out|second|hello-err)$").unwrap();
    let mut seen: Vec<String> = out
        .stdout
        .lines()
        .map(|l| {
            let c = line.captures(l).unwrap_or_else(|| panic!("{l:?}"));
            format!("{} {}", &c[1], &c[2])
        })
        .collect();
    seen.sort();
    assert_eq!(seen, ["1 hello-out", "1 second", "2 hello-out", "2 second"]);
    let mut err: Vec<&str> = out
        .stderr
        .lines()
        .map(|l| l.rsplit("| ").next().unwrap_or(""))
        .collect();
    err.sort();
    assert_eq!(err, ["hello-err", "hello-err"], "{out:?}");
    // swarmkeep's own CLI prints the same lines.
    let ours = d.cli(&["service", "logs", "probe_logs"]);
    let sorted = |t: &str| {
        let mut v: Vec<String> = t.lines().map(str::to_string).collect();
        v.sort();
        v
    };
    assert_eq!(sorted(&ours.stdout), sorted(&out.stdout));
    assert_eq!(sorted(&ours.stderr), sorted(&out.stderr));
    // (stdout and stderr are read apart, so either may hold a task's last line)
    let last = d.cli(&["service", "logs", "--raw", "-n", "1", "probe_logs"]);
    let lines: Vec<&str> = last.stdout.lines().chain(last.stderr.lines()).collect();
    assert!(
        lines.len() == 2 && lines.iter().all(|l| *l == "second" || *l == "hello-err"),
        "{last:?}"
    );
    // The last line of each task, with its time.
    let tail = d.docker(&["service", "logs", "--tail", "1", "-t", "probe_logs"]);
    let stamped = regex::Regex::new(
        r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z probe_logs\.[12]\.\S+@vm    \| (second|hello-err)$",
    )
    .unwrap();
    assert_eq!(tail.stdout.lines().count() + tail.stderr.lines().count(), 2, "{tail:?}");
    for l in tail.stdout.lines().chain(tail.stderr.lines()) {
        assert!(stamped.is_match(l), "{l:?}");
    }
    // One task, by ID, raw.
    let task = d
        .docker(&["service", "ps", "-q", "--filter", "name=probe_logs.1", "probe_logs"])
        .ok()
        .trim()
        .to_string();
    let one = d.docker(&["service", "logs", "--raw", &task]);
    assert_eq!(one.ok(), "hello-out\nsecond\n");
    // A task that has ended (here: failed, not restarted) still has its output.
    d.docker(&[
        "service",
        "create",
        "-d",
        "--name",
        "crash",
        "--restart-condition",
        "none",
        "--no-resolve-image",
        "busybox",
        "sh",
        "-c",
        "echo last-words; exit 3",
    ])
    .ok();
    assert!(
        eventually(Duration::from_secs(15), || d
            .docker(&["service", "logs", "--raw", "crash"])
            .stdout
            == "last-words\n"),
        "{:?}",
        d.docker(&["service", "ps", "crash"])
    );
    // Following: lines printed after the call started arrive.
    d.docker(&[
        "service",
        "create",
        "-d",
        "--name",
        "ticker",
        "--no-resolve-image",
        "busybox",
        "sh",
        "-c",
        "while true; do echo tick; sleep 0.2; done",
    ])
    .ok();
    let mut follow = docker::spawn(
        &d.docker_socket(),
        d.path(),
        &["service", "logs", "-f", "--tail", "0", "ticker"],
    );
    let stdout = follow.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                return;
            }
        }
    });
    let got = rx.recv_timeout(Duration::from_secs(20));
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(got.as_deref().is_ok_and(|l| l.ends_with("| tick")), "{got:?}");
}
