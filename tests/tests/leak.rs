//! The security invariant: a secret's value appears in no CLI output, no
//! daemon log line (at trace level) and no byte of any file in the data dir.

use std::os::unix::fs::PermissionsExt;

use swarmkeep_tests::{Daemon, files_under, leaks};

const MARKER: &[u8] = b"MARKER-7f3a9c-do-not-leak-4b1e";

#[test]
fn a_secret_value_shows_up_nowhere() {
    let mut d = Daemon::start_with(&["--snapshot-interval", "5"], "trace");
    d.init();
    let id = d
        .cli_stdin(&["secret", "create", "--label", "k=v", "marked", "-"], Some(MARKER))
        .ok()
        .trim()
        .to_string();
    // Enough writes after it that a snapshot (which holds the secret) is taken.
    for i in 0..8 {
        d.cli_stdin(&["secret", "create", &format!("filler{i}"), "-"], Some(b"filler"))
            .ok();
    }
    let mut outputs = Vec::new();
    for args in [
        vec!["secret", "ls"],
        vec!["secret", "ls", "--format", "{{json .}}"],
        vec!["secret", "inspect", "marked"],
        vec!["secret", "inspect", "--pretty", "marked"],
        vec!["secret", "inspect", "--format", "{{json .}}", "marked"],
        vec!["secret", "inspect", "--format", "{{json .Spec}}", &id],
    ] {
        let out = d.cli(&args);
        outputs.push(out.ok().to_string());
        outputs.push(out.stderr);
    }
    // An update attempt that carries the value is refused without echoing it.
    let dup = d.cli_stdin(&["secret", "create", "marked", "-"], Some(MARKER));
    outputs.push(dup.stderr);
    for text in &outputs {
        assert!(!leaks(text.as_bytes(), MARKER), "marker in CLI output: {text}");
    }

    let snapshot = d.data_dir().join("raft/snapshots/snapshot.json");
    assert!(swarmkeep_tests::eventually(std::time::Duration::from_secs(10), || {
        snapshot.exists()
    }));
    // Restart so the state is also recovered from disk, then stop cleanly.
    d.restart();
    assert!(d.cli(&["secret", "inspect", "marked"]).ok().contains("marked"));
    assert_eq!(d.stop(), Some(0), "clean shutdown on SIGTERM");

    let log = d.log();
    assert!(log.contains("TRACE"), "the daemon logged at trace level");
    assert!(!leaks(log.as_bytes(), MARKER), "marker in the daemon log");

    let files = files_under(&d.data_dir());
    assert!(
        files.iter().any(|f| f.ends_with("snapshot.json")),
        "a snapshot was written: {files:?}"
    );
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        assert!(!leaks(&bytes, MARKER), "marker in {}", f.display());
    }
    // The scan is able to fail: a config's data is stored plain (base64 in
    // the log and snapshot), and the same scan finds it.
    let config_marker = b"CONFIG-MARKER-visible-by-design";
    d.restart();
    d.cli_stdin(&["config", "create", "visible", "-"], Some(config_marker))
        .ok();
    for i in 0..6 {
        d.cli_stdin(&["config", "create", &format!("cfiller{i}"), "-"], Some(b"f"))
            .ok();
    }
    assert_eq!(d.stop(), Some(0));
    let found = files_under(&d.data_dir())
        .iter()
        .any(|f| leaks(&std::fs::read(f).unwrap(), config_marker));
    assert!(found, "the leak scan finds a plain config in the data dir");

    let keys = d.data_dir().join("keys/data-key");
    assert_eq!(std::fs::metadata(keys).unwrap().permissions().mode() & 0o777, 0o600);
}

/// The same invariant across a cluster: raft replication, write forwarding,
/// joins and the data key's transfer to a new manager show no secret value
/// in any node's trace log or data dir.
#[test]
fn a_secret_value_shows_up_nowhere_in_a_cluster() {
    let nodes = swarmkeep_tests::swarm_logging(3, 1, "trace");
    // Created on a follower: forwarded to the leader, replicated to all.
    nodes[1]
        .daemon
        .cli_stdin(&["secret", "create", "clustered", "-"], Some(MARKER))
        .ok();
    for n in &nodes[..3] {
        assert!(swarmkeep_tests::eventually(std::time::Duration::from_secs(10), || {
            n.cli(&["secret", "ls", "--format", "{{.Name}}"])
                .stdout
                .contains("clustered")
        }));
        for args in [
            vec!["secret", "inspect", "clustered"],
            vec!["secret", "ls", "--format", "{{json .}}"],
        ] {
            let out = n.cli(&args);
            assert!(!leaks(out.stdout.as_bytes(), MARKER) && !leaks(out.stderr.as_bytes(), MARKER));
        }
    }
    // A manager that joins now receives the state (and the data key) over mTLS.
    let late = swarmkeep_tests::swarm_node_logging(4, "late", "trace");
    let token = nodes[0]
        .cli(&["swarm", "join-token", "-q", "manager"])
        .ok()
        .trim()
        .to_string();
    late.cli(&[
        "swarm",
        "join",
        "--token",
        &token,
        "--advertise-addr",
        &late.addr,
        "--listen-addr",
        &late.addr,
        &nodes[0].addr,
    ])
    .ok();
    assert!(swarmkeep_tests::eventually(std::time::Duration::from_secs(10), || {
        late.cli(&["secret", "ls", "--format", "{{.Name}}"])
            .stdout
            .contains("clustered")
    }));
    // The cluster data key itself travelled to `late`: it must not be in any
    // log either (it is on disk only wrapped by the key-encryption key).
    let data_key = swarmkeep_tests::stored_data_key(&nodes[0].daemon.data_dir())
        .expect("the data key record")
        .open()
        .unwrap()
        .to_bytes();
    for n in nodes.iter().chain(std::iter::once(&late)) {
        assert!(!leaks(n.daemon.log().as_bytes(), MARKER), "marker in {}'s log", n.name);
        assert!(
            !leaks(n.daemon.log().as_bytes(), data_key.expose()),
            "data key in {}'s log",
            n.name
        );
        for f in files_under(&n.daemon.data_dir()) {
            assert!(!leaks(&std::fs::read(&f).unwrap(), MARKER), "marker in {}", f.display());
        }
    }
}
