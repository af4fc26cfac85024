//! `docker swarm …` (golden/swarm-and-nodes.txt).

use swarmkeep_tests::docker::{self, assert_golden, http};
use swarmkeep_tests::{Daemon, free_addr};

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
