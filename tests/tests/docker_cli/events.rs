//! `docker events`: the swarm's events as dockerd 20.10 streams them (each
//! line as recorded from a real 20.10 swarm: `{"Type":"service","Action":
//! "update","Actor":{"ID":…,"Attributes":{"name":"w","replicas.new":"2",
//! "replicas.old":"1"}},"scope":"swarm",…}`), live and from `--since`, with
//! `--until` and `--filter`; never a secret's value.

use std::io::{BufRead, BufReader};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use swarmkeep_tests::docker;
use swarmkeep_tests::eventually;

use super::*;

/// (Type, Action, name, the other attributes as `k=v` sorted).
type Seen = (String, String, String, Vec<String>);

fn seen(v: &Value) -> Seen {
    let attrs = v["Actor"]["Attributes"].as_object().cloned().unwrap_or_default();
    let mut other: Vec<String> = attrs
        .iter()
        .filter(|(k, _)| *k != "name")
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    other.sort();
    (
        v["Type"].as_str().unwrap_or("").into(),
        v["Action"].as_str().unwrap_or("").into(),
        attrs.get("name").and_then(Value::as_str).unwrap_or("").into(),
        other,
    )
}

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
}

#[test]
fn docker_events_streams_the_swarms_changes_as_dockerd() {
    if docker::skip() {
        return;
    }
    let (d, _) = docker_swarm();
    let marker = format!("SKMARK-events-{}", std::process::id());
    let start = now();
    std::thread::sleep(Duration::from_millis(20));

    let mut live = docker::spawn(&d.docker_socket(), d.path(), &["events", "--format", "{{json .}}"]);
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    {
        let got = got.clone();
        let out = live.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                got.lock().unwrap().push(line);
            }
        });
    }
    // The stream is open before anything happens (dockerd answers at once).
    std::thread::sleep(Duration::from_millis(500));

    d.docker_stdin(&["secret", "create", "ev_secret", "-"], marker.as_bytes())
        .ok();
    d.docker_stdin(&["config", "create", "ev_config", "-"], b"c").ok();
    d.docker(&["network", "create", "-d", "overlay", "ev_net"]).ok();
    d.docker(&[
        "service",
        "create",
        "-d",
        "--name",
        "ev_web",
        "--replicas",
        "1",
        "--no-resolve-image",
        "bb:latest",
        "sleep",
        "100000",
    ])
    .ok();
    d.docker(&["service", "scale", "-d", "ev_web=2"]).ok();
    d.docker(&[
        "service",
        "update",
        "-d",
        "--no-resolve-image",
        "--image",
        "bb:v2",
        "ev_web",
    ])
    .ok();
    let node = d.docker(&["node", "ls", "-q"]).ok().trim().to_string();
    d.docker(&["node", "update", "--availability", "drain", &node]).ok();
    d.docker(&["node", "update", "--availability", "active", &node]).ok();
    d.docker(&["service", "rm", "ev_web"]).ok();
    d.docker(&["network", "rm", "ev_net"]).ok();
    d.docker(&["config", "rm", "ev_config"]).ok();
    d.docker(&["secret", "rm", "ev_secret"]).ok();

    let ended = |v: &Value| v["Type"] == "secret" && v["Action"] == "remove";
    assert!(
        eventually(Duration::from_secs(20), || got
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("\"remove\"") && l.contains("ev_secret"))),
        "{:#?}",
        got.lock().unwrap()
    );
    let streamed: Vec<Value> = lines(&got.lock().unwrap().join("\n"));
    let _ = live.kill();
    let _ = live.wait();

    for v in &streamed {
        assert_eq!(v["scope"], "swarm", "{v}");
        let nanos = v["timeNano"].as_i64().unwrap();
        assert_eq!(v["time"].as_i64().unwrap(), nanos / 1_000_000_000, "{v}");
        assert!(!v["Actor"]["ID"].as_str().unwrap().is_empty(), "{v}");
    }
    let all: Vec<Seen> = streamed.iter().map(seen).collect();
    let s = |t: &str, a: &str, n: &str, attrs: &[&str]| -> Seen {
        (
            t.into(),
            a.into(),
            n.into(),
            attrs.iter().map(|x| x.to_string()).collect(),
        )
    };
    // In this order, among others (the orchestrator's own service updates,
    // the node's own changes).
    let expected = [
        s("secret", "create", "ev_secret", &[]),
        s("config", "create", "ev_config", &[]),
        s("network", "create", "ev_net", &[]),
        s("service", "create", "ev_web", &[]),
        s("service", "update", "ev_web", &["replicas.new=2", "replicas.old=1"]),
        s(
            "service",
            "update",
            "ev_web",
            &["image.new=bb:v2", "image.old=bb:latest"],
        ),
        s(
            "node",
            "update",
            "vm",
            &["availability.new=drain", "availability.old=active"],
        ),
        s(
            "node",
            "update",
            "vm",
            &["availability.new=active", "availability.old=drain"],
        ),
        s("service", "remove", "ev_web", &[]),
        s("network", "remove", "ev_net", &[]),
        s("config", "remove", "ev_config", &[]),
        s("secret", "remove", "ev_secret", &[]),
    ];
    // An event may say more than expected: the update that changed the
    // image also started the rollout (`updatestate.new`), one change here.
    let covers = |x: &Seen, e: &Seen| x.0 == e.0 && x.1 == e.1 && x.2 == e.2 && e.3.iter().all(|a| x.3.contains(a));
    let mut at = 0;
    for e in &expected {
        match all[at..].iter().position(|x| covers(x, e)) {
            Some(i) => at += i + 1,
            None => panic!("{e:?} not seen in order in {all:#?}"),
        }
    }
    // The image update started a rollout, shown as its update state.
    assert!(
        all.iter()
            .any(|x| x.0 == "service" && x.3.contains(&"updatestate.new=updating".to_string())),
        "{all:#?}"
    );
    assert!(ended(streamed.last().unwrap()), "{all:#?}");

    // The same from the kept ones: --since with an --until in the past ends.
    let since = format!("{}.{:09}", start.as_secs(), start.subsec_nanos());
    let until = format!("{}", now().as_secs() + 1);
    std::thread::sleep(Duration::from_millis(1100));
    let past = d.docker(&["events", "--since", &since, "--until", &until, "--format", "{{json .}}"]);
    let kept: Vec<Seen> = lines(past.ok()).iter().map(seen).collect();
    assert!(kept.ends_with(&all), "{kept:#?}\n{all:#?}");
    // Filters as dockerd's.
    let filtered = |args: &[&str]| -> Vec<Seen> {
        let mut cmd = vec!["events", "--since", &since, "--until", &until, "--format", "{{json .}}"];
        cmd.extend_from_slice(args);
        lines(d.docker(&cmd).ok()).iter().map(seen).collect()
    };
    assert_eq!(
        filtered(&["--filter", "type=secret"]),
        [
            s("secret", "create", "ev_secret", &[]),
            s("secret", "remove", "ev_secret", &[])
        ]
    );
    assert_eq!(
        filtered(&["--filter", "event=remove", "--filter", "type=network"]),
        [s("network", "remove", "ev_net", &[])]
    );
    let web = filtered(&["--filter", "service=ev_w"]);
    assert!(web.len() >= 4 && web.iter().all(|x| x.2 == "ev_web"), "{web:#?}");
    // dockerd matches any event's ID or name against a `container` filter.
    assert!(filtered(&["--filter", "container=nothing"]).is_empty());
    assert!(filtered(&["--filter", "scope=local"]).is_empty());
    assert_eq!(filtered(&["--filter", "scope=swarm"]), kept);

    // dockerd's refusals.
    let (code, _, body) = docker::http(&d.docker_socket(), "GET", "/v1.41/events?since=2&until=1", None);
    assert_eq!(code, 400);
    assert_eq!(
        String::from_utf8_lossy(&body),
        "{\"message\":\"`since` time (2) cannot be after `until` time (1)\"}\n"
    );
    // dockerd answers this one 500; a time that does not parse is the
    // caller's error, so 400 (Docker's text).
    let (code, _, body) = docker::http(&d.docker_socket(), "GET", "/v1.41/events?since=abc", None);
    assert_eq!(code, 400);
    assert!(
        String::from_utf8_lossy(&body).contains("strconv.ParseInt: parsing \\\"abc\\\": invalid syntax"),
        "{}",
        String::from_utf8_lossy(&body)
    );

    // Names only: the secret's value is nowhere.
    for text in [got.lock().unwrap().join("\n"), past.stdout.clone(), d.log()] {
        assert!(!text.contains(&marker), "the secret's value leaked");
    }
}
