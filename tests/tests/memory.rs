//! No plaintext copy of a secret stays in the daemon's memory once the calls
//! that carried it are done, and the daemon leaves no core dump to find one
//! in. The scan reads the daemon's whole address space through
//! `/proc/PID/mem` (as root), as the audit did.

use std::io::{Read, Seek, SeekFrom};
use std::time::Duration;

use base64::Engine as _;
use swarmkeep_tests::docker::http;
use swarmkeep_tests::{Daemon, eventually};

/// Whether `needle` is anywhere in the readable memory of process `pid`.
fn memory_contains(pid: u32, needle: &[u8]) -> bool {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    const CHUNK: u64 = 1 << 20;
    let mut buf = vec![0u8; CHUNK as usize + needle.len()];
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        if !perms.starts_with('r') {
            continue;
        }
        let Some((a, b)) = range.split_once('-') else { continue };
        let (Ok(start), Ok(end)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) else {
            continue;
        };
        let mut at = start;
        while at < end {
            // Overlap the chunks so a needle across a boundary is seen.
            let len = (end - at).min(CHUNK + needle.len() as u64) as usize;
            if mem.seek(SeekFrom::Start(at)).is_err() {
                break;
            }
            match mem.read(&mut buf[..len]) {
                Ok(n) if n > 0 => {
                    if buf[..n].windows(needle.len()).any(|w| w == needle) {
                        return true;
                    }
                }
                // [vvar] and the like cannot be read: nothing of ours is there.
                _ => break,
            }
            at += CHUNK;
        }
    }
    false
}

#[test]
fn no_plaintext_copy_stays_in_the_daemons_memory() {
    let d = Daemon::start();
    d.init();
    let pid = d.pid().unwrap();
    let marker = |tag: &str| format!("MEMSCAN-{tag}-{}-payload", std::process::id()).into_bytes();

    // Through the control API (gRPC), as `swarmkeep secret create` sends it.
    let grpc = marker("grpc");
    d.cli_stdin(&["secret", "create", "by_cli", "-"], Some(&grpc)).ok();
    // Through the Docker API, base64 in JSON.
    let rest = marker("rest");
    let b64 = base64::engine::general_purpose::STANDARD.encode(&rest);
    let body = format!("{{\"Name\":\"by_http\",\"Data\":\"{b64}\"}}");
    let (status, _, _) = http(
        &d.docker_socket(),
        "POST",
        "/v1.41/secrets/create",
        Some(body.as_bytes()),
    );
    assert_eq!(status, 201);
    for (name, value) in [("gRPC", &grpc), ("Docker API", &rest)] {
        assert!(
            !memory_contains(pid, value),
            "a plaintext copy of a secret sent over the {name} stayed in memory"
        );
    }
    assert!(
        !memory_contains(pid, b64.as_bytes()),
        "the base64 request body stayed in memory"
    );

    // A task that reads it: the agent holds it while the task runs, and
    // nothing of it once the service is gone.
    d.cli(&[
        "service", "create", "-d", "--name", "s", "--secret", "by_cli", "busybox", "sleep", "1000",
    ])
    .ok();
    assert!(eventually(Duration::from_secs(15), || d.mounts().len() == 1));
    assert!(memory_contains(pid, &grpc), "the scan finds a secret the agent holds");
    d.cli(&["service", "rm", "s"]).ok();
    assert!(eventually(Duration::from_secs(15), || d.mounts().is_empty()));
    assert!(
        eventually(Duration::from_secs(10), || !memory_contains(pid, &grpc)),
        "the secret stayed in memory after its last task was removed"
    );
}

#[test]
fn the_daemon_leaves_no_core_dump() {
    let d = Daemon::start();
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", d.pid().unwrap())).unwrap();
    let core = limits.lines().find(|l| l.starts_with("Max core file size")).unwrap();
    assert_eq!(core.split_whitespace().nth(4), Some("0"), "{core}");
}

/// The cluster data key sits on a locked page (never swapped out) once the
/// node is a manager; before, nothing is locked.
#[test]
fn the_data_key_is_locked_in_memory() {
    let d = Daemon::start();
    let pid = d.pid().unwrap();
    assert_eq!(swarmkeep_tests::memory_kib(pid, "VmLck:"), 0);
    d.init();
    assert!(swarmkeep_tests::memory_kib(pid, "VmLck:") >= 4);
}
