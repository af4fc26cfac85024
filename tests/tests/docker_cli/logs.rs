//! `docker service logs` from the agents' memory.

use std::time::Duration;

use swarmkeep_tests::docker::{self};
use swarmkeep_tests::eventually;

use super::*;

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
