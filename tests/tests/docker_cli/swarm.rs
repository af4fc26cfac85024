//! `docker swarm …` (golden/swarm-and-nodes.txt).

use std::time::Duration;
use swarmkeep_tests::docker::{self, assert_golden, http};

use swarmkeep_tests::{Daemon, eventually, free_addr};

use super::docker_swarm;

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

/// A `swarm update` whose rotation is refused saves nothing: the settings and
/// the rotations are one write. (The audit's `POST /swarm/update` with `{}`
/// and `rotateManagerUnlockKey=true` was refused only after the spec — with
/// autolock off — had been saved.) Raw HTTP: no docker CLI needed.
#[test]
fn a_refused_swarm_update_saves_nothing() {
    let d = Daemon::start_with(&["--hostname", "vm"], "info");
    let sock = d.docker_socket();
    let addr = free_addr("127.0.0.1");
    let init = format!(r#"{{"ListenAddr":"{addr}","AdvertiseAddr":"127.0.0.1","AutoLockManagers":true}}"#);
    let (status, _, body) = http(&sock, "POST", "/v1.41/swarm/init", Some(init.as_bytes()));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let inspect = || {
        let (status, _, body) = http(&sock, "GET", "/v1.41/swarm", None);
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        (
            v["Version"]["Index"].as_u64().unwrap(),
            v["Spec"]["EncryptionConfig"]["AutoLockManagers"].as_bool().unwrap(),
            v["JoinTokens"]["Worker"].as_str().unwrap().to_string(),
            v["Spec"].clone(),
        )
    };
    let unlock_key = || {
        let (_, _, body) = http(&sock, "GET", "/v1.41/swarm/unlockkey", None);
        serde_json::from_slice::<serde_json::Value>(&body).unwrap()["UnlockKey"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (version, autolock, token, spec) = inspect();
    assert!(autolock);
    let key = unlock_key();

    // `{}` turns autolock off, so the unlock key cannot be rotated: refused,
    // and neither the spec nor the worker token changed.
    let (status, _, body) = http(
        &sock,
        "POST",
        &format!("/v1.41/swarm/update?version={version}&rotateWorkerToken=true&rotateManagerUnlockKey=true"),
        Some(b"{}"),
    );
    assert_eq!(
        (status, String::from_utf8_lossy(&body).as_ref()),
        (
            400,
            "{\"message\":\"cannot rotate because autolock is not turned on\"}\n"
        )
    );
    let (after, autolock, same_token, _) = inspect();
    assert_eq!((after, autolock, same_token.as_str()), (version, true, token.as_str()));
    assert_eq!(unlock_key(), key);

    // With the spec as it is, both rotations are made, in one write.
    let (status, _, body) = http(
        &sock,
        "POST",
        &format!("/v1.41/swarm/update?version={version}&rotateWorkerToken=true&rotateManagerUnlockKey=true"),
        Some(spec.to_string().as_bytes()),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let (after, autolock, new_token, _) = inspect();
    assert!(after > version && autolock);
    assert_ne!(new_token, token);
    assert_ne!(unlock_key(), key);
}

/// `docker swarm ca` shows the root; `docker swarm ca --rotate` (attached:
/// the CLI's progress compares each node's TLSInfo with the swarm's) comes
/// back with the same root, and the node has a new certificate and key.
#[test]
fn docker_swarm_ca_rotate_renews_the_nodes_certificate() {
    if docker::skip() {
        return;
    }
    let (d, _) = docker_swarm();
    let tls = || swarmkeep_transport::tls::NodeTls::load(&d.data_dir().join("tls")).expect("node TLS identity");
    let before = tls();
    let shown = d.docker(&["swarm", "ca"]);
    assert_eq!(shown.ok().trim(), before.ca_pem.trim());
    let rotated = d.docker(&["swarm", "ca", "--rotate"]);
    assert_eq!(rotated.code, 0, "{rotated:?}");
    assert!(rotated.stdout.contains(before.ca_pem.trim()), "{rotated:?}");
    let force = d.docker(&["info", "--format", "{{.Swarm.Cluster.Spec.CAConfig.ForceRotate}}"]);
    assert_eq!(force.ok().trim(), "1");
    assert!(
        eventually(Duration::from_secs(10), || tls().cert_pem != before.cert_pem),
        "the certificate was not renewed"
    );
    let after = tls();
    assert_ne!(after.key_pem, before.key_pem);
    assert_eq!(after.ca_pem, before.ca_pem);
    let node = d.docker(&[
        "node",
        "inspect",
        "self",
        "--format",
        "{{.Description.TLSInfo.TrustRoot}}",
    ]);
    assert_eq!(node.ok().trim(), before.ca_pem.trim());
}
