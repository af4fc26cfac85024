//! Jobs on a real daemon through the swarmkeep CLI: a replicated job runs
//! its completions at most `--max-concurrent` at a time and is not run
//! again; a global job runs once on the node; `service ls` shows Docker
//! 20.10's `N/M (K/L completed)`; an attached create shows the job's
//! progress until it is complete.

use std::time::Duration;

use swarmkeep_tests::{Daemon, eventually};

/// `service ps` rows as (desired, current state word).
fn states(d: &Daemon, service: &str) -> Vec<(String, String)> {
    d.cli(&[
        "service",
        "ps",
        service,
        "--format",
        "{{.DesiredState}}|{{.CurrentState}}",
    ])
    .stdout
    .lines()
    .filter_map(|l| {
        let (desired, current) = l.split_once('|')?;
        Some((desired.to_string(), current.split(' ').next()?.to_string()))
    })
    .collect()
}

/// `service ls` as (mode, replicas) for `name`.
fn ls(d: &Daemon, name: &str) -> (String, String) {
    let out = d.cli(&["service", "ls", "--format", "{{.Name}}|{{.Mode}}|{{.Replicas}}"]);
    out.ok()
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            (f[0] == name).then(|| (f[1].to_string(), f[2].to_string()))
        })
        .unwrap_or_default()
}

#[test]
fn jobs_run_to_completion_once_and_show_their_progress() {
    let d = Daemon::start();
    d.init();
    d.cli(&[
        "service",
        "create",
        "-d",
        "--name",
        "batch",
        "--mode",
        "replicated-job",
        "--replicas",
        "3",
        "--max-concurrent",
        "2",
        "--no-resolve-image",
        "bb:latest",
        "sh",
        "-c",
        "sleep 1",
    ])
    .ok();
    let complete = |d: &Daemon, n: usize| {
        let s = states(d, "batch");
        s.len() == n
            && s.iter()
                .all(|(desired, current)| desired == "Complete" && current == "Complete")
    };
    // While it runs, never more than two at once.
    let mut most = 0;
    assert!(eventually(Duration::from_secs(60), || {
        let running = states(&d, "batch").iter().filter(|(_, c)| c == "Running").count();
        most = most.max(running);
        complete(&d, 3)
    }));
    assert!(most <= 2, "{most} ran at once");
    assert_eq!(
        ls(&d, "batch"),
        ("replicated job".to_string(), "0/0 (3/3 completed)".to_string())
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        complete(&d, 3),
        "a completed job is not run again: {:?}",
        states(&d, "batch")
    );

    d.cli(&[
        "service",
        "create",
        "-d",
        "--name",
        "each",
        "--mode",
        "global-job",
        "--no-resolve-image",
        "bb:latest",
        "true",
    ])
    .ok();
    assert!(eventually(Duration::from_secs(30), || ls(&d, "each").1 == "0/0 (1/1 completed)"));
    assert_eq!(ls(&d, "each").0, "global job");

    // A job has no rollout: its update settings are refused by name.
    let refused = d.cli(&[
        "service",
        "create",
        "-d",
        "--mode",
        "replicated-job",
        "--update-parallelism",
        "2",
        "bb:latest",
        "true",
    ]);
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("cannot be used with jobs"), "{refused:?}");

    // Attached: the job's progress, then `job complete`.
    let out = d.cli(&[
        "service",
        "create",
        "--name",
        "attached",
        "--mode",
        "replicated-job",
        "--replicas",
        "2",
        "--no-resolve-image",
        "bb:latest",
        "true",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("job progress: 2 out of 2 complete\n"), "{out:?}");
    assert!(out.stdout.ends_with("job complete\n"), "{out:?}");
}
