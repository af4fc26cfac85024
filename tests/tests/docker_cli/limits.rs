//! The Docker API's own limits, replayed as the audit's attacks with raw
//! sockets (no docker CLI needed): a body claimed or sent beyond what the
//! endpoint takes, and headers that never finish.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use swarmkeep_tests::docker::http;
use swarmkeep_tests::{Daemon, memory_kib};

/// Reads what the server sent until it closed the connection, or `None` if
/// it was still open after `wait`.
fn until_closed(s: &mut UnixStream, wait: Duration) -> Option<String> {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(String::from_utf8_lossy(&got).into_owned()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Some(String::from_utf8_lossy(&got).into_owned());
            }
            Err(_) => return None,
        }
    }
}

#[test]
fn oversized_bodies_and_unfinished_headers_hold_nothing() {
    let d = Daemon::start_with(&["--hostname", "vm"], "info");
    let sock = d.docker_socket();
    let pid = d.pid().unwrap();
    assert_eq!(http(&sock, "GET", "/_ping", None).0, 200);
    let before = memory_kib(pid, "VmHWM:");

    // 40 clients claim a 16 MB secret and send 4 MB of it: each is answered
    // 413 from its headers alone and cut off; nothing of the body is kept.
    let mut big = Vec::new();
    for _ in 0..40 {
        let mut s = UnixStream::connect(&sock).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(
            b"POST /v1.41/secrets/create HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: 16000000\r\n\r\n{\"Name\":\"x\",\"Data\":\"",
        )
        .unwrap();
        // The server may close before all of it is written.
        let _ = s.write_all(&vec![b'A'; 4 * 1024 * 1024]);
        big.push(s);
    }
    for s in &mut big {
        let answer = until_closed(s, Duration::from_secs(10)).expect("the connection was closed");
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains("request body too large"), "{answer}");
    }

    // 200 clients that never finish their headers are closed after the
    // header timeout (10 s), freeing their connection slots.
    let mut slow: Vec<UnixStream> = (0..200)
        .map(|_| {
            let mut s = UnixStream::connect(&sock).unwrap();
            s.write_all(b"GET /v1.41/secrets HTTP/1.1\r\nHost: docker\r\n").unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_secs(11));
    for s in &mut slow {
        assert!(
            until_closed(s, Duration::from_secs(3)).is_some(),
            "a connection with unfinished headers was still open"
        );
    }

    let after = memory_kib(pid, "VmHWM:");
    assert!(
        after < before + 64 * 1024,
        "the daemon's peak grew from {before} KiB to {after} KiB"
    );
    // The API still serves everyone else.
    assert_eq!(http(&sock, "GET", "/_ping", None).0, 200);
}

/// A client that sends requests but never reads the answers does not hold
/// its connection: once a response write has made no progress for 30 s the
/// connection is closed (while a reader that keeps up is served on).
#[test]
fn a_client_that_never_reads_loses_its_connection() {
    let d = Daemon::start_with(&["--hostname", "vm"], "info");
    let sock = d.docker_socket();
    assert_eq!(http(&sock, "GET", "/_ping", None).0, 200);
    // 20 000 pipelined pings: their answers (~5 MB) are far more than the
    // socket buffers hold, so the server's writes stall.
    let request = b"GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n";
    const REQUESTS: usize = 20_000;
    let mut s = UnixStream::connect(&sock).unwrap();
    s.set_nonblocking(true).unwrap();
    let all = request.repeat(REQUESTS);
    let mut sent = 0;
    let start = std::time::Instant::now();
    while sent < all.len() && start.elapsed() < Duration::from_secs(5) {
        match s.write(&all[sent..]) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("{e}"),
        }
    }
    std::thread::sleep(Duration::from_secs(40));
    // Closed: what was answered before the stall, then the end, at once.
    s.set_nonblocking(false).unwrap();
    let answer = until_closed(&mut s, Duration::from_secs(3)).expect("the connection was still open");
    let answered = answer.matches("HTTP/1.1 200 OK").count();
    assert!(
        answered < REQUESTS,
        "all {answered} answered: the writes never stalled, the test shows nothing"
    );
    // And the daemon serves others as before.
    assert_eq!(http(&sock, "GET", "/_ping", None).0, 200);
}
