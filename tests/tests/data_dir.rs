//! What the daemon leaves on disk: key and state files whole or not at all
//! (see swarmkeep-disk's unit tests for the crash between write and rename),
//! never readable by others whatever the umask, and no data dir that another
//! user could write to.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use swarmkeep_tests::{Daemon, daemon_refuses, eventually};

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Every directory and file under `dir`, with its mode.
fn tree(dir: &Path) -> Vec<(String, u32, bool)> {
    let mut out = vec![(dir.display().to_string(), mode(dir), true)];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let is_dir = p.is_dir();
            out.push((p.display().to_string(), mode(&p), is_dir));
            if is_dir {
                stack.push(p);
            }
        }
    }
    out
}

#[test]
fn key_and_state_files_are_private_whatever_the_umask() {
    // The daemon inherits the most permissive umask there is.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    let d = Daemon::start();
    nix::sys::stat::umask(old);
    d.init();
    d.cli_stdin(&["secret", "create", "s", "-"], Some(b"v")).ok();
    // Autolock on and off again: the data key is re-wrapped twice.
    d.cli(&["swarm", "update", "--autolock=true"]).ok();
    assert!(eventually(Duration::from_secs(5), || !swarmkeep_tests::kek_on_disk(
        &d.data_dir()
    )));
    d.cli(&["swarm", "update", "--autolock=false"]).ok();
    assert!(eventually(Duration::from_secs(5), || swarmkeep_tests::kek_on_disk(
        &d.data_dir()
    )));
    let entries = tree(&d.data_dir());
    let expected = ["state.json", "keys/data-key", "tls/ca.crt", "tls/node.pem", "raft/log"];
    for name in expected {
        assert!(
            entries.iter().any(|(p, _, _)| p.ends_with(name)),
            "{name} missing: {entries:?}"
        );
    }
    for (path, mode, is_dir) in &entries {
        // Image layers keep the modes their images give (a task's files);
        // the directory holding them is private.
        if path.contains("/images/layers/") {
            continue;
        }
        let want = if *is_dir { 0o700 } else { 0o600 };
        assert_eq!(*mode, want, "{path} is {mode:o}");
        assert!(!path.ends_with(".tmp"), "a temporary file was left: {path}");
    }
}

#[test]
fn a_data_dir_others_can_write_to_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777)).unwrap();
    let sock = format!("unix://{}", dir.path().join("s.sock").display());
    let stderr = daemon_refuses(&["--data-dir".as_ref(), data.as_os_str(), "-H".as_ref(), sock.as_ref()]);
    assert!(stderr.contains("is writable by everyone"), "{stderr}");
    // Nothing was written into it.
    assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0);
}
