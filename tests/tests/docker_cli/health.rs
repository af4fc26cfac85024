//! Healthchecks through the unmodified docker CLI, as Swarm runs them: the
//! probe runs inside the task, the task is `Starting` until its first healthy
//! probe, `docker ps` and `docker inspect` show the health, and an unhealthy
//! task is stopped, fails with swarmkit's error and is replaced.

use std::time::Duration;

use swarmkeep_tests::{Daemon, eventually};

use super::docker_swarm;

fn task_states(d: &Daemon, service: &str) -> Vec<String> {
    d.docker(&[
        "service",
        "ps",
        service,
        "--no-trunc",
        "--format",
        "{{.CurrentState}}|{{.Error}}",
    ])
    .stdout
    .lines()
    .map(str::to_string)
    .collect()
}

#[test]
fn a_task_is_starting_until_healthy_and_an_unhealthy_one_is_replaced() {
    if swarmkeep_tests::docker::skip() {
        return;
    }
    let (d, _) = docker_swarm();
    let out = d.docker(&[
        "service",
        "create",
        "--name",
        "hc",
        "-d",
        "--no-resolve-image",
        "--health-cmd",
        "echo probing; test -e /tmp/ready",
        "--health-interval",
        "200ms",
        "--health-retries",
        "1000",
        "busybox",
        "sleep",
        "1000000",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    let spec = d.docker(&[
        "service",
        "inspect",
        "hc",
        "--format",
        "{{json .Spec.TaskTemplate.ContainerSpec.Healthcheck}}",
    ]);
    assert_eq!(
        spec.stdout.trim(),
        r#"{"Test":["CMD-SHELL","echo probing; test -e /tmp/ready"],"Interval":200000000,"Retries":1000}"#
    );
    // Started, probed, not healthy: Starting, and `(health: starting)`.
    let mut name = String::new();
    assert!(
        eventually(Duration::from_secs(30), || {
            name = d.docker(&["ps", "--format", "{{.Names}}"]).stdout.trim().to_string();
            !name.is_empty()
                && d.docker(&["inspect", &name, "--format", "{{len .State.Health.Log}}"])
                    .stdout
                    .trim()
                    == "2"
        }),
        "{:?}\n{}",
        task_states(&d, "hc"),
        d.log()
    );
    let status = d.docker(&["ps", "--format", "{{.Status}}"]).stdout;
    assert!(status.trim().ends_with("(health: starting)"), "{status}");
    let states = task_states(&d, "hc");
    assert!(states.len() == 1 && states[0].starts_with("Starting"), "{states:?}");
    let failing = d.docker(&[
        "inspect",
        &name,
        "--format",
        "{{.State.Health.Status}} {{(index .State.Health.Log 0).ExitCode}} {{json (index .State.Health.Log 0).Output}}",
    ]);
    assert_eq!(failing.stdout.trim(), r#"starting 1 "probing\n""#, "{failing:?}");
    let unhealthy_filter = d.docker(&["ps", "-q", "--filter", "health=starting"]);
    assert_eq!(unhealthy_filter.stdout.lines().count(), 1, "{unhealthy_filter:?}");

    // Made ready from inside: Running, `(healthy)`.
    assert_eq!(d.docker(&["exec", &name, "touch", "/tmp/ready"]).code, 0);
    assert!(
        eventually(Duration::from_secs(15), || task_states(&d, "hc")
            .first()
            .is_some_and(|s| s.starts_with("Running"))),
        "{:?}",
        task_states(&d, "hc")
    );
    let status = d.docker(&["ps", "--format", "{{.Status}}"]).stdout;
    assert!(status.trim().ends_with("(healthy)"), "{status}");
    let health = d.docker(&[
        "inspect",
        &name,
        "--format",
        "{{.State.Health.Status}} {{.State.Health.FailingStreak}}",
    ]);
    assert_eq!(health.stdout.trim(), "healthy 0");

    // A probe that always fails: stopped after 2 failures, Failed with
    // swarmkit's error, and replaced.
    let out = d.docker(&[
        "service",
        "create",
        "--name",
        "sick",
        "-d",
        "--no-resolve-image",
        "--health-cmd",
        "exit 1",
        "--health-interval",
        "200ms",
        "--health-retries",
        "2",
        "--restart-delay",
        "100ms",
        "busybox",
        "sleep",
        "1000000",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        eventually(Duration::from_secs(40), || {
            let states = task_states(&d, "sick");
            states.len() >= 2
                && states.iter().any(|s| {
                    s.starts_with("Failed")
                        && s.ends_with("|\"task: non-zero exit (143): dockerexec: unhealthy container\"")
                })
        }),
        "{:?}\n{}",
        task_states(&d, "sick"),
        d.log()
    );
    // No task of it was ever Running.
    let tasks = d.docker(&["service", "ps", "sick", "-q"]).stdout;
    for task in tasks.lines() {
        let state = d.docker(&["inspect", task, "--format", "{{.Status.State}}"]);
        assert!(!state.stdout.starts_with("running"), "{state:?}");
    }

    // The manager refuses a bad healthcheck with swarmkit's words.
    let bad = d.docker(&[
        "service",
        "create",
        "--name",
        "bad",
        "-d",
        "--no-resolve-image",
        "--health-cmd",
        "true",
        "--health-interval",
        "1us",
        "busybox",
    ]);
    assert_ne!(bad.code, 0);
    assert!(
        bad.stderr
            .contains("ContainerSpec: Interval in HealthConfig cannot be less than 1ms"),
        "{bad:?}"
    );
}
