//! The Docker Engine API as Docker SDKs use it, through raw HTTP (no docker
//! CLI): request bodies decoded as dockerd's Go decoder decodes them —
//! object keys matched to fields ignoring case, as clients written in other
//! languages send them (`{"mode":{"replicated":{"replicas":3}}}`), map keys
//! (labels) kept as sent — and a value of the wrong type refused with Go's
//! words, nothing made; dockerd's status codes. And the official Docker SDK
//! for Python driving a swarm (`tests/python/docker_sdk.py`).

use swarmkeep_tests::docker::http;
use swarmkeep_tests::{Daemon, free_addr};

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(body)))
}

#[test]
fn request_keys_match_fields_ignoring_case_as_dockerd_does() {
    let d = Daemon::start();
    let sock = d.docker_socket();
    // Swarm init, its keys in lower case.
    let init = format!(
        r#"{{"listenaddr":"{}","advertiseaddr":"127.0.0.1","spec":{{"dispatcher":{{"heartbeatperiod":500000000}}}}}}"#,
        free_addr("127.0.0.1")
    );
    let (status, _, body) = http(&sock, "POST", "/v1.41/swarm/init", Some(init.as_bytes()));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let (_, _, body) = http(&sock, "GET", "/v1.41/swarm", None);
    assert_eq!(json(&body)["Spec"]["Dispatcher"]["HeartbeatPeriod"], 500_000_000u64);

    // A global service (`mode.global`), in camel case as many SDKs write it.
    let global = br#"{"name":"g","taskTemplate":{"containerSpec":{"image":"bb:latest","command":["sleep","1000"]}},"mode":{"global":{}}}"#;
    let (status, _, body) = http(&sock, "POST", "/v1.41/services/create", Some(global));
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let (_, _, body) = http(&sock, "GET", "/v1.41/services/g", None);
    let spec = &json(&body)["Spec"];
    assert!(spec["Mode"]["Global"].is_object(), "{spec}");
    assert!(spec["Mode"]["Replicated"].is_null(), "{spec}");
    assert_eq!(spec["TaskTemplate"]["ContainerSpec"]["Command"][0], "sleep");

    // Replicated, with update and rollback configs, all lower case.
    let replicated = br#"{"name":"r","labels":{"Team":"a","team":"b"},
        "tasktemplate":{"containerspec":{"image":"bb:latest","command":["sleep","1000"]}},
        "mode":{"replicated":{"replicas":3}},
        "updateconfig":{"parallelism":2,"order":"start-first"},
        "rollbackconfig":{"order":"start-first","failureaction":"pause"}}"#;
    let (status, _, body) = http(&sock, "POST", "/v1.41/services/create", Some(replicated));
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let (_, _, body) = http(&sock, "GET", "/v1.41/services/r", None);
    let service = json(&body);
    let spec = &service["Spec"];
    assert_eq!(spec["Mode"]["Replicated"]["Replicas"], 3, "{spec}");
    assert_eq!(spec["UpdateConfig"]["Parallelism"], 2, "{spec}");
    assert_eq!(spec["UpdateConfig"]["Order"], "start-first", "{spec}");
    assert_eq!(spec["RollbackConfig"]["Order"], "start-first", "{spec}");
    assert_eq!(spec["RollbackConfig"]["FailureAction"], "pause", "{spec}");
    // A map's keys are data: both labels kept as sent.
    assert_eq!(spec["Labels"]["Team"], "a");
    assert_eq!(spec["Labels"]["team"], "b");

    // Scaled by an update in lower case.
    let version = service["Version"]["Index"].as_u64().unwrap();
    let scale = br#"{"name":"r","tasktemplate":{"containerspec":{"image":"bb:latest","command":["sleep","1000"]}},"mode":{"replicated":{"replicas":1}}}"#;
    let (status, _, body) = http(
        &sock,
        "POST",
        &format!("/v1.41/services/r/update?version={version}"),
        Some(scale),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let (_, _, body) = http(&sock, "GET", "/v1.41/services/r", None);
    assert_eq!(json(&body)["Spec"]["Mode"]["Replicated"]["Replicas"], 1);

    // A secret with its labels, keys in lower case.
    let secret = br#"{"name":"s","data":"c2VjcmV0","labels":{"Env":"prod"}}"#;
    let (status, _, body) = http(&sock, "POST", "/v1.41/secrets/create", Some(secret));
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let (_, _, body) = http(&sock, "GET", "/v1.41/secrets/s", None);
    let s = json(&body);
    assert_eq!(s["Spec"]["Name"], "s");
    assert_eq!(s["Spec"]["Labels"]["Env"], "prod");

    // The wrong type: Go's words (never the value), nothing made.
    let wrong = br#"{"name":"w","tasktemplate":{"containerspec":{"image":"bb:latest"}},"mode":{"replicated":{"replicas":"MARKER-three"}}}"#;
    let (status, _, body) = http(&sock, "POST", "/v1.41/services/create", Some(wrong));
    assert_eq!(status, 400);
    assert_eq!(
        json(&body)["message"],
        "json: cannot unmarshal string into Go struct field ServiceSpec.Mode.Replicated.Replicas of type uint64"
    );
    let (_, _, body) = http(&sock, "GET", "/v1.41/services", None);
    let names: Vec<String> = json(&body)
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Spec"]["Name"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(!names.contains(&"w".to_string()), "{names:?}");
    assert!(!d.log().contains("MARKER-three"));

    // The last manager leaving without force: dockerd's 503 and words; still in.
    let (status, _, body) = http(&sock, "POST", "/v1.41/swarm/leave", None);
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    assert!(
        json(&body)["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Removing the last manager erases all current state of the swarm"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let (status, _, _) = http(&sock, "GET", "/v1.41/swarm", None);
    assert_eq!(status, 200);
}

#[test]
fn every_swarm_spec_field_is_honoured_shown_as_docker_or_refused_by_name() {
    let d = Daemon::start();
    let sock = d.docker_socket();
    let listen = free_addr("127.0.0.1");
    let init = |spec: &str| format!(r#"{{"ListenAddr":"{listen}","AdvertiseAddr":"127.0.0.1","Spec":{spec}}}"#);
    // What swarmkeep cannot honour, refused by name, and no swarm made.
    for (spec, field) in [
        (r#"{"Labels":{"a":"b"}}"#, "Spec.Labels"),
        (r#"{"Raft":{"KeepOldSnapshots":2}}"#, "Raft.KeepOldSnapshots"),
        (
            r#"{"raft":{"logEntriesForSlowFollowers":7}}"#,
            "Raft.LogEntriesForSlowFollowers",
        ),
        (r#"{"Raft":{"ElectionTick":3}}"#, "Raft.ElectionTick"),
        (r#"{"Raft":{"HeartbeatTick":2}}"#, "Raft.HeartbeatTick"),
        (
            r#"{"CAConfig":{"ExternalCAs":[{"Protocol":"cfssl","URL":"https://ca"}]}}"#,
            "CAConfig.ExternalCAs",
        ),
        (r#"{"CAConfig":{"SigningCACert":"x"}}"#, "CAConfig.SigningCACert"),
        (r#"{"caconfig":{"forcerotate":1}}"#, "CAConfig.ForceRotate"),
        (
            r#"{"TaskDefaults":{"LogDriver":{"Name":"json-file"}}}"#,
            "TaskDefaults.LogDriver",
        ),
    ] {
        let (status, _, body) = http(&sock, "POST", "/v1.41/swarm/init", Some(init(spec).as_bytes()));
        let text = String::from_utf8_lossy(&body);
        assert_eq!(status, 400, "{spec}: {text}");
        assert!(
            text.contains(field) && text.contains("does not support"),
            "{spec}: {text}"
        );
        let (status, _, _) = http(&sock, "GET", "/v1.41/swarm", None);
        assert_eq!(status, 503, "{spec} made a swarm");
    }
    // Docker's values (or 0, unset) are taken, as the docker CLI sends them.
    let spec = r#"{"Name":"default","Labels":{},"Raft":{"ElectionTick":0,"HeartbeatTick":0,"LogEntriesForSlowFollowers":500,"SnapshotInterval":5000},"CAConfig":{},"TaskDefaults":{}}"#;
    let (status, _, body) = http(&sock, "POST", "/v1.41/swarm/init", Some(init(spec).as_bytes()));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let (_, _, body) = http(&sock, "GET", "/v1.41/swarm", None);
    let swarm = json(&body);
    assert_eq!(
        swarm["Spec"]["Raft"],
        serde_json::json!({"SnapshotInterval": 5000, "KeepOldSnapshots": 0, "LogEntriesForSlowFollowers": 500, "ElectionTick": 10, "HeartbeatTick": 1})
    );
    // The spec read comes back unchanged through an update; a refused field
    // in an update changes nothing.
    let version = swarm["Version"]["Index"].as_u64().unwrap();
    let mut spec = swarm["Spec"].clone();
    spec["Orchestration"]["TaskHistoryRetentionLimit"] = 7.into();
    spec["CAConfig"]["ForceRotate"] = 1.into();
    let path = format!("/v1.41/swarm/update?version={version}");
    let (status, _, body) = http(&sock, "POST", &path, Some(spec.to_string().as_bytes()));
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("CAConfig.ForceRotate"));
    let (_, _, body) = http(&sock, "GET", "/v1.41/swarm", None);
    assert_eq!(json(&body)["Spec"]["Orchestration"]["TaskHistoryRetentionLimit"], 5);
    spec["CAConfig"]["ForceRotate"] = 0.into();
    let (status, _, body) = http(&sock, "POST", &path, Some(spec.to_string().as_bytes()));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let (_, _, body) = http(&sock, "GET", "/v1.41/swarm", None);
    assert_eq!(json(&body)["Spec"]["Orchestration"]["TaskHistoryRetentionLimit"], 7);
}

// The official Docker SDK for Python drives swarmkeep through its Docker
// Engine API (`tests/python/docker_sdk.py`): a swarm with its address pool,
// secrets and configs with labels, a global service, a replicated one that
// reads its secret and is scaled, update and rollback settings read back,
// dockerd's status codes — and the secret's value never shown or logged.

/// Whether python3 can import the SDK; without it the test is skipped,
/// saying so, unless CI (which installs it) asks for it.
fn sdk_present() -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import docker"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("SWARMKEEP_REQUIRE_DOCKER_SDK").is_none(),
            "SWARMKEEP_REQUIRE_DOCKER_SDK is set but python3 cannot import the Docker SDK (pip install docker)"
        );
        eprintln!("skipped: python3 has no Docker SDK (pip install docker)");
    }
    ok
}

#[test]
fn the_python_docker_sdk_drives_a_swarm() {
    if !sdk_present() {
        return;
    }
    let d = Daemon::start_with(&["--hostname", "vm"], "debug");
    let marker = format!("SKMARK-sdk-{}", std::process::id());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/docker_sdk.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(d.docker_socket())
        .arg(free_addr("127.0.0.1"))
        .arg(&marker)
        .output()
        .expect("running python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Each step's time, for whoever reads the test's output.
    eprintln!("{stdout}");
    assert!(
        out.status.success() && stdout.trim_end().ends_with("ok"),
        "{stdout}\n{stderr}"
    );
    assert!(!d.log().contains(&marker), "the secret's value is in the daemon's log");
    assert!(!stderr.contains(&marker));
}
