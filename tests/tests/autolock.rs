//! Autolock: a restarted manager keeps its data key wrapped by the unlock key
//! only, refuses control calls until `swarm unlock`, and the key never sits
//! on its disk.

use swarmkeep_tests::{Daemon, free_addr, leaks};

const LOCKED: &str = "Error response from daemon: Swarm is encrypted and needs to be unlocked before it can be used. Please use \"docker swarm unlock\" to unlock it.\n";

#[test]
fn autolocked_manager_stays_locked_until_unlocked() {
    let mut d = Daemon::start();
    let addr = free_addr("127.0.0.1");
    let init = d.cli(&[
        "swarm",
        "init",
        "--advertise-addr",
        &addr,
        "--listen-addr",
        &addr,
        "--autolock",
    ]);
    assert!(
        init.ok().contains("To unlock a swarm manager after it restarts"),
        "{init:?}"
    );
    let key = d.cli(&["swarm", "unlock-key", "-q"]).ok().trim().to_string();
    assert!(key.starts_with("SWMKEY-1-"));
    assert!(init.stdout.contains(&key));
    d.cli_stdin(&["secret", "create", "kept", "-"], Some(b"value")).ok();
    assert!(
        swarmkeep_tests::eventually(std::time::Duration::from_secs(5), || {
            swarmkeep_tests::stored_data_key(&d.data_dir()).is_some() && !swarmkeep_tests::kek_on_disk(&d.data_dir())
        }),
        "no key-encryption key on disk"
    );

    d.restart();
    assert_eq!(d.cli(&["secret", "ls"]).stderr, LOCKED);
    assert_eq!(d.cli(&["node", "ls"]).stderr, LOCKED);
    let wrong = d.cli_stdin(
        &["swarm", "unlock"],
        Some(b"SWMKEY-1-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"),
    );
    assert_eq!(wrong.stderr, "Error response from daemon: invalid key\n");
    d.cli_stdin(&["swarm", "unlock"], Some(format!("{key}\n").as_bytes()))
        .ok();
    assert!(d.cli(&["secret", "ls", "--format", "{{.Name}}"]).ok().contains("kept"));
    assert_eq!(
        d.cli_stdin(&["swarm", "unlock"], Some(b"x\n")).stderr,
        "Error: swarm is not locked\n"
    );

    // Rotation: the old key no longer opens the data key after a restart.
    let rotated = d.cli(&["swarm", "unlock-key", "--rotate"]);
    assert!(rotated.ok().starts_with("Successfully rotated manager unlock key.\n\n"));
    let new_key = d.cli(&["swarm", "unlock-key", "-q"]).ok().trim().to_string();
    assert_ne!(new_key, key);
    std::thread::sleep(std::time::Duration::from_secs(1));
    d.restart();
    assert_eq!(
        d.cli_stdin(&["swarm", "unlock"], Some(format!("{key}\n").as_bytes()))
            .stderr,
        "Error response from daemon: invalid key\n"
    );
    d.cli_stdin(&["swarm", "unlock"], Some(format!("{new_key}\n").as_bytes()))
        .ok();

    // The unlock key is in no file of the data dir and no log line.
    for f in swarmkeep_tests::files_under(&d.data_dir()) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(!leaks(&bytes, new_key.as_bytes()), "unlock key in {}", f.display());
    }
    assert!(!d.log().contains(&new_key[9..]));

    // Turning autolock off puts a key file back; a restart needs no unlock.
    assert_eq!(d.cli(&["swarm", "update", "--autolock=false"]).ok(), "Swarm updated.\n");
    assert!(swarmkeep_tests::eventually(std::time::Duration::from_secs(5), || {
        swarmkeep_tests::kek_on_disk(&d.data_dir())
    }));
    assert_eq!(
        d.cli(&["swarm", "unlock-key"]).stderr,
        "Error response from daemon: no unlock key is set\n"
    );
    d.restart();
    assert!(d.cli(&["secret", "ls", "--format", "{{.Name}}"]).ok().contains("kept"));
}

#[test]
fn swarm_inspect_and_update_show_and_change_settings() {
    let d = Daemon::start();
    d.init();
    let spec = |d: &Daemon| {
        d.cli(&["swarm", "inspect", "--format", "{{.Spec.Orchestration.TaskHistoryRetentionLimit}} {{.Spec.Raft.SnapshotInterval}} {{.Spec.Dispatcher.HeartbeatPeriod}} {{.Spec.CAConfig.NodeCertExpiry}} {{.Spec.EncryptionConfig.AutoLockManagers}}"])
            .ok()
            .to_string()
    };
    assert_eq!(spec(&d), "5 10000 5000000000 7776000000000000 false\n");
    let out = d.cli(&[
        "swarm",
        "update",
        "--task-history-limit",
        "3",
        "--snapshot-interval",
        "500",
        "--dispatcher-heartbeat",
        "2s",
        "--cert-expiry",
        "48h",
    ]);
    assert_eq!(out.ok(), "Swarm updated.\n");
    assert_eq!(spec(&d), "3 500 2000000000 172800000000000 false\n");
    assert_eq!(
        d.cli(&["swarm", "update", "--cert-expiry", "1m"]).stderr,
        "Error response from daemon: rpc error: code = InvalidArgument desc = minimum certificate expiry time is: 1h0m0s\n"
    );
    // The snapshot interval is live and cluster-wide.
    let snapshot = d.data_dir().join("raft/snapshots/snapshot.json");
    assert!(!snapshot.exists());
    d.cli(&["swarm", "update", "--snapshot-interval", "10"]).ok();
    for i in 0..12 {
        d.cli_stdin(&["secret", "create", &format!("s{i}"), "-"], Some(b"v"))
            .ok();
    }
    assert!(swarmkeep_tests::eventually(std::time::Duration::from_secs(5), || {
        snapshot.exists()
    }));
    let tokens = d.cli(&["swarm", "inspect", "--format", "{{.JoinTokens.Worker}}"]);
    assert_eq!(
        tokens.ok().trim(),
        d.cli(&["swarm", "join-token", "-q", "worker"]).ok().trim()
    );
}
