//! Rollouts on a real daemon through the swarmkeep CLI: an update goes in
//! waves of `--update-parallelism` after `--update-delay`; a failing update
//! pauses, goes on with `continue`, or rolls back; `service rollback` restores
//! image, env and secrets; the restart policy stops after its attempts.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use swarmkeep_tests::{Daemon, eventually, leaks};

/// One `service ps` row.
#[derive(Debug, Clone)]
struct Row {
    id: String,
    image: String,
    desired: String,
    current: String,
}

fn ps(d: &Daemon, service: &str) -> Vec<Row> {
    let out = d.cli(&[
        "service",
        "ps",
        "--no-trunc",
        service,
        "--format",
        "{{.ID}}|{{.Image}}|{{.DesiredState}}|{{.CurrentState}}",
    ]);
    out.stdout
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            Some(Row {
                id: f.first()?.to_string(),
                image: f.get(1)?.to_string(),
                desired: f.get(2)?.to_string(),
                current: f.get(3)?.split(' ').next()?.to_string(),
            })
        })
        .collect()
}

fn running(d: &Daemon, service: &str) -> usize {
    ps(d, service)
        .iter()
        .filter(|r| r.desired == "Running" && r.current == "Running")
        .count()
}

fn inspect(d: &Daemon, service: &str) -> serde_json::Value {
    let out = d.cli(&["service", "inspect", service]);
    let v: serde_json::Value = serde_json::from_str(out.ok()).unwrap();
    v[0].clone()
}

/// `UpdateStatus` as (State, Message); empty strings before any update.
fn update_status(d: &Daemon, service: &str) -> (String, String) {
    let v = inspect(d, service);
    let s = &v["UpdateStatus"];
    (
        s["State"].as_str().unwrap_or("").to_string(),
        s["Message"].as_str().unwrap_or("").to_string(),
    )
}

fn wait_state(d: &Daemon, service: &str, state: &str, secs: u64) {
    assert!(
        eventually(Duration::from_secs(secs), || update_status(d, service).0 == state),
        "{service} never reached {state}: {:?}\n{:#?}",
        update_status(d, service),
        ps(d, service)
    );
}

#[test]
fn an_update_goes_in_waves_and_service_rollback_restores_the_spec() {
    let d = Daemon::start();
    d.init();
    // Values no output may show, whatever an update or rollback does.
    let one = format!("SKMARK-rollout-one-{}", std::process::id()).into_bytes();
    let two = format!("SKMARK-rollout-two-{}", std::process::id()).into_bytes();
    d.cli_stdin(&["secret", "create", "s1", "-"], Some(&one)).ok();
    d.cli_stdin(&["secret", "create", "s2", "-"], Some(&two)).ok();
    d.cli(&[
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--replicas",
        "6",
        "--stop-grace-period",
        "1s",
        "--update-parallelism",
        "2",
        "--update-delay",
        "1s",
        "--update-monitor",
        "1s",
        "--rollback-parallelism",
        "0",
        "--rollback-monitor",
        "1s",
        "--env",
        "A=1",
        "--secret",
        "s1",
        "--no-resolve-image",
        "bb:latest",
        "sleep",
        "100000",
    ])
    .ok();
    assert!(eventually(Duration::from_secs(60), || running(&d, "web") == 6));

    let out = d.cli(&[
        "service",
        "update",
        "-d",
        "--image",
        "bb:v2",
        "--env-add",
        "A=2",
        "--secret-rm",
        "s1",
        "--secret-add",
        "s2",
        "--no-resolve-image",
        "web",
    ]);
    assert_eq!(out.ok(), "web\n");
    // When each new task first shows up.
    let start = Instant::now();
    let mut seen: BTreeMap<String, Duration> = BTreeMap::new();
    loop {
        for r in ps(&d, "web").into_iter().filter(|r| r.image == "bb:v2") {
            seen.entry(r.id).or_insert_with(|| start.elapsed());
        }
        if update_status(&d, "web").0 == "completed" || start.elapsed() > Duration::from_secs(90) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        update_status(&d, "web"),
        ("completed".to_string(), "update completed".to_string())
    );
    let mut times: Vec<Duration> = seen.values().copied().collect();
    times.sort();
    let mut waves: Vec<Vec<Duration>> = Vec::new();
    for t in times {
        match waves.last_mut() {
            Some(w) if t - w[0] < Duration::from_millis(500) => w.push(t),
            _ => waves.push(vec![t]),
        }
    }
    let sizes: Vec<usize> = waves.iter().map(Vec::len).collect();
    assert_eq!(sizes, [2, 2, 2], "{waves:?}");
    for pair in waves.windows(2) {
        // The wave's tasks started, then the 1 s delay, then the next wave's
        // old tasks stopped: at least a second apart.
        assert!(pair[1][0] - pair[0][0] >= Duration::from_millis(1000), "{waves:?}");
    }
    assert_eq!(running(&d, "web"), 6);
    let spec = &inspect(&d, "web")["Spec"]["TaskTemplate"]["ContainerSpec"];
    assert_eq!(spec["Env"], serde_json::json!(["A=2"]));
    assert_eq!(spec["Secrets"][0]["SecretName"], "s2");

    // `service rollback`: image, env and secrets as before, all at once
    // (--rollback-parallelism 0).
    assert_eq!(d.cli(&["service", "rollback", "-d", "web"]).ok(), "web\n");
    wait_state(&d, "web", "rollback_completed", 60);
    let v = inspect(&d, "web");
    let spec = &v["Spec"]["TaskTemplate"]["ContainerSpec"];
    assert_eq!(spec["Image"], "bb:latest");
    assert_eq!(spec["Env"], serde_json::json!(["A=1"]));
    assert_eq!(spec["Secrets"][0]["SecretName"], "s1");
    assert_eq!(v["UpdateStatus"]["Message"], "rollback completed");
    let rows = ps(&d, "web");
    let live: Vec<&Row> = rows.iter().filter(|r| r.desired == "Running").collect();
    assert_eq!(live.len(), 6, "{rows:#?}");
    assert!(
        live.iter().all(|r| r.image == "bb:latest" && r.current == "Running"),
        "{rows:#?}"
    );
    let mut seen = format!("{v}\n{rows:?}\n").into_bytes();
    for args in [
        &["service", "inspect", "--pretty", "web"][..],
        &["service", "update", "--force", "web"][..],
        &["service", "rollback", "web"][..],
    ] {
        let out = d.cli(args);
        seen.extend_from_slice(out.stdout.as_bytes());
        seen.extend_from_slice(out.stderr.as_bytes());
    }
    seen.extend_from_slice(d.log().as_bytes());
    assert!(!leaks(&seen, &one) && !leaks(&seen, &two), "a secret value was shown");
    // --rollback with other flags is refused by name, as by the docker CLI.
    let out = d.cli(&["service", "update", "-d", "--rollback", "--image", "bb:v2", "web"]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("other flags may not be combined with --rollback"),
        "{out:?}"
    );
}

#[test]
fn a_failing_update_pauses_continues_or_rolls_back_as_told() {
    let d = Daemon::start();
    d.init();
    for (name, action) in [("p", "pause"), ("r", "rollback")] {
        d.cli(&[
            "service",
            "create",
            "-d",
            "--name",
            name,
            "--replicas",
            "3",
            "--stop-grace-period",
            "1s",
            "--update-monitor",
            "2s",
            "--update-failure-action",
            action,
            "--rollback-monitor",
            "1s",
            "--no-resolve-image",
            "bb:latest",
            "sleep",
            "100000",
        ])
        .ok();
    }
    assert!(eventually(Duration::from_secs(60), || running(&d, "p") == 3
        && running(&d, "r") == 3));

    // pause: the first failed task stops the update (a slot whose new task
    // ran before that failure was seen is replaced too, as with Docker); the
    // other old tasks run on, and no more are replaced while it is paused.
    // Old tasks are told apart by id: a new task runs for a moment before it
    // fails, and counted with the old ones it made the count look unsteady.
    let originals: Vec<String> = ps(&d, "p").into_iter().map(|r| r.id).collect();
    let old_running = |d: &Daemon| -> Vec<String> {
        ps(d, "p")
            .into_iter()
            .filter(|r| originals.contains(&r.id) && r.desired == "Running" && r.current == "Running")
            .map(|r| r.id)
            .collect()
    };
    d.cli(&["service", "update", "-d", "--args", "sh -c 'exit 3'", "p"])
        .ok();
    wait_state(&d, "p", "paused", 60);
    let (_, message) = update_status(&d, "p");
    let task = message
        .strip_prefix("update paused due to failure or early termination of task ")
        .unwrap_or_else(|| panic!("{message}"));
    assert!(ps(&d, "p").iter().any(|r| r.id == task), "{message}");
    let old = old_running(&d);
    assert!((1..3).contains(&old.len()), "{:#?}", ps(&d, "p"));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(update_status(&d, "p").0, "paused");
    assert_eq!(old_running(&d), old, "{:#?}", ps(&d, "p"));
    // Another update with `continue` resumes it; every slot gets the new spec.
    d.cli(&["service", "update", "-d", "--update-failure-action", "continue", "p"])
        .ok();
    wait_state(&d, "p", "completed", 90);
    // No old task runs on (the new ones fail as they start, each running
    // only for a moment).
    assert!(
        eventually(Duration::from_secs(10), || running(&d, "p") == 0),
        "{:#?}",
        ps(&d, "p")
    );

    // rollback: the service goes back to its previous spec on its own.
    d.cli(&["service", "update", "-d", "--args", "sh -c 'exit 3'", "r"])
        .ok();
    wait_state(&d, "r", "rollback_started", 60);
    let (_, message) = update_status(&d, "r");
    assert!(
        message.starts_with("update rolled back due to failure or early termination of task "),
        "{message}"
    );
    wait_state(&d, "r", "rollback_completed", 60);
    let args = &inspect(&d, "r")["Spec"]["TaskTemplate"]["ContainerSpec"]["Args"];
    assert_eq!(*args, serde_json::json!(["sleep", "100000"]));
    assert!(eventually(Duration::from_secs(30), || running(&d, "r") == 3));
}

#[test]
fn restarts_stop_after_max_attempts_even_beyond_the_task_history() {
    let d = Daemon::start();
    d.init();
    d.cli(&[
        "service",
        "create",
        "-d",
        "--name",
        "crash",
        "--restart-max-attempts",
        "5",
        "--restart-delay",
        "100ms",
        "--no-resolve-image",
        "bb:latest",
        "sh",
        "-c",
        "exit 1",
    ])
    .ok();
    // The first task and five restarts; history keeps five tasks.
    let failed = |d: &Daemon| ps(d, "crash").iter().filter(|r| r.current == "Failed").count();
    assert!(eventually(Duration::from_secs(60), || failed(&d) == 5));
    let ids = |rows: &[Row]| rows.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
    // Restarts 100 ms apart: quiet for 2 s means they stopped.
    let mut last = ids(&ps(&d, "crash"));
    let mut quiet = Instant::now();
    let start = Instant::now();
    while quiet.elapsed() < Duration::from_secs(2) && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(200));
        let now = ids(&ps(&d, "crash"));
        if now != last {
            last = now;
            quiet = Instant::now();
        }
    }
    std::thread::sleep(Duration::from_secs(4));
    let later = ps(&d, "crash");
    assert_eq!(last, ids(&later), "restarts went on after the fifth");
    assert!(later.iter().all(|r| r.current == "Failed"), "{later:#?}");
}

#[test]
fn attached_commands_show_dockers_progress_until_converged() {
    let d = Daemon::start();
    d.init();
    let converged = |out: &swarmkeep_tests::Run, what: &str, tasks: usize, rollback: bool| {
        assert_eq!(out.code, 0, "{out:?}");
        let prefix = if rollback { "rolling back update: " } else { "" };
        assert!(
            out.stdout
                .contains(&format!("overall progress: {prefix}{tasks} out of {tasks} tasks\n")),
            "{out:?}"
        );
        assert!(
            out.stdout
                .contains("verify: Waiting 5 seconds to verify that tasks are stable...\n"),
            "{out:?}"
        );
        assert!(
            out.stdout.ends_with(&format!("verify: Service {what} converged\n")),
            "{out:?}"
        );
    };
    let out = d.cli(&[
        "service",
        "create",
        "--name",
        "web",
        "--replicas",
        "2",
        "--stop-grace-period",
        "1s",
        "--update-parallelism",
        "0",
        "--update-monitor",
        "1s",
        "--no-resolve-image",
        "bb:latest",
        "sleep",
        "100000",
    ]);
    let id = out.stdout.lines().next().unwrap_or("").to_string();
    assert_eq!(id.len(), 25, "{out:?}");
    converged(&out, &id, 2, false);
    assert_eq!(running(&d, "web"), 2);

    let out = d.cli(&["service", "scale", "web=3"]);
    assert!(out.stdout.starts_with("web scaled to 3\n"), "{out:?}");
    converged(&out, "web", 3, false);

    let out = d.cli(&["service", "update", "--image", "bb:v2", "--no-resolve-image", "web"]);
    assert!(out.stdout.starts_with("web\n"), "{out:?}");
    converged(&out, "web", 3, false);
    assert_eq!(update_status(&d, "web").0, "completed");

    let out = d.cli(&["service", "rollback", "web"]);
    assert!(out.stdout.starts_with("web\n"), "{out:?}");
    converged(&out, "web", 3, true);
    assert_eq!(update_status(&d, "web").0, "rollback_completed");

    // On a terminal: a bar per slot above the overall line (indicatif).
    let cmd = format!(
        "{} -H {} service scale web=2",
        swarmkeep_tests::cli_binary().display(),
        d.host()
    );
    let tty = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("COLUMNS", "120")
        .output()
        .expect("script (util-linux) gives the CLI a terminal");
    let text = String::from_utf8_lossy(&tty.stdout);
    assert!(text.contains("1/2: running"), "{text}");
    assert!(text.contains(&format!("[{}]", "=".repeat(50))), "{text}");
    assert!(
        !text.contains("rolling back"),
        "an earlier rollback is not this scale's: {text}"
    );
    assert!(text.contains("verify: Service web converged"), "{text}");

    // A paused update ends the wait with Docker's error.
    let out = d.cli(&["service", "update", "--args", "sh -c 'exit 3'", "web"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .contains("service update paused: update paused due to failure or early termination of task "),
        "{out:?}"
    );
    // -q: no progress, the same wait.
    let out = d.cli(&["service", "update", "-q", "--args", "sleep 100000", "web"]);
    assert_eq!(out.ok(), "web\n");
    assert_eq!(update_status(&d, "web").0, "completed");
    assert_eq!(running(&d, "web"), 2);
}

#[test]
fn start_first_runs_the_new_task_before_the_old_one_stops_and_stop_first_after() {
    if swarmkeep_tests::docker::skip() {
        return;
    }
    let d = Daemon::start();
    d.init();
    for (name, order) in [("sf", "start-first"), ("tf", "stop-first")] {
        d.cli(&[
            "service",
            "create",
            "-d",
            "--name",
            name,
            "--stop-grace-period",
            "1s",
            "--update-order",
            order,
            "--no-resolve-image",
            "bb:latest",
            "sleep",
            "100000",
        ])
        .ok();
    }
    assert!(eventually(Duration::from_secs(60), || running(&d, "sf") == 1
        && running(&d, "tf") == 1));
    for name in ["sf", "tf"] {
        d.cli(&[
            "service",
            "update",
            "-d",
            "--image",
            "bb:v2",
            "--no-resolve-image",
            name,
        ])
        .ok();
    }
    wait_state(&d, "sf", "completed", 60);
    wait_state(&d, "tf", "completed", 60);
    // When the new task reached Running, and when the old one reached
    // Shutdown (each one's last status, through the Docker API).
    let times = |name: &str| {
        let rows = ps(&d, name);
        let at = |image: &str| {
            let row = rows.iter().find(|r| r.image == image).unwrap();
            let out = d.docker(&[
                "inspect",
                "--format",
                "{{.Status.State}} {{.Status.Timestamp}}",
                &row.id,
            ]);
            let text = out.ok().trim().to_string();
            let (state, time) = text.split_once(' ').unwrap();
            (state.to_string(), swarmkeep_tests::day_seconds(time))
        };
        (at("bb:v2"), at("bb:latest"))
    };
    let ((new_state, new_running), (old_state, old_stopped)) = times("sf");
    assert_eq!((new_state.as_str(), old_state.as_str()), ("running", "shutdown"));
    assert!(
        new_running < old_stopped,
        "start-first: new running at {new_running}, old stopped at {old_stopped}"
    );
    let ((_, new_running), (_, old_stopped)) = times("tf");
    assert!(
        old_stopped < new_running,
        "stop-first: old stopped at {old_stopped}, new running at {new_running}"
    );
}
