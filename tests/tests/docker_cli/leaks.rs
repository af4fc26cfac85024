//! No secret value leaves through the Docker API.

use std::path::Path;
use std::time::Duration;

use swarmkeep_tests::docker::{self, http};
use swarmkeep_tests::{Daemon, eventually, free_addr, leaks};

/// A secret's value, sent through the Docker API, comes back in no response
/// (lists, inspects, tasks, services, info, errors), no log line at trace
/// level and no file of the data dir.
#[test]
fn no_secret_value_leaves_through_the_docker_api() {
    if docker::skip() {
        return;
    }
    let d = Daemon::start_with(&["--hostname", "vm"], "trace");
    let addr = free_addr("127.0.0.1");
    d.docker(&["swarm", "init", "--advertise-addr", "127.0.0.1", "--listen-addr", &addr])
        .ok();
    let value = format!("APIMARK-{}-payload", std::process::id()).into_bytes();
    let sock = d.docker_socket();
    let created = d.docker_stdin(&["secret", "create", "--label", "k=v", "leaky", "-"], &value);
    assert!(!leaks(created.ok().as_bytes(), &value));
    // The same value through raw HTTP, then refused in ways that echo input.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&value);
    let (status, _, body) = http(
        &sock,
        "POST",
        "/v1.41/secrets/create",
        Some(format!("{{\"Name\":\"raw\",\"Data\":\"{b64}\"}}").as_bytes()),
    );
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let mut responses = vec![body];
    for bad in [
        format!("{{\"Name\":\"raw\",\"Data\":\"{b64}\"}}"),
        format!("{{\"Name\":\"bad name!\",\"Data\":\"{b64}\"}}"),
        format!("{{\"Name\":\"x\",\"Data\":\"{}!!\"}}", String::from_utf8_lossy(&value)),
        format!("{{\"Name\":\"x\",\"Data\":\"{b64}\",\"Labels\":\"{b64}\"}}"),
        format!("{{\"Name\":\"x\",\"Data\":\"{b64}\",\"Driver\":{{\"Name\":\"vault\"}}}}"),
        // serde quotes a wrong-typed string with its escapes: still not shown.
        format!(
            "{{\"Name\":\"x\",\"Labels\":\"a\\\"{}\\\"b\"}}",
            String::from_utf8_lossy(&value)
        ),
    ] {
        let (status, _, body) = http(&sock, "POST", "/v1.41/secrets/create", Some(bad.as_bytes()));
        assert!(status >= 400, "{}", String::from_utf8_lossy(&body));
        responses.push(body);
    }
    let other = base64::engine::general_purpose::STANDARD.encode(b"other value");
    for data in [&b64, &other] {
        let (status, _, body) = http(
            &sock,
            "POST",
            "/v1.41/secrets/raw/update?version=1",
            Some(format!("{{\"Name\":\"raw\",\"Data\":\"{data}\"}}").as_bytes()),
        );
        assert!(status >= 400);
        responses.push(body);
    }
    let version = d
        .docker(&["secret", "inspect", "--format", "{{.Version.Index}}", "raw"])
        .ok()
        .trim()
        .to_string();
    let (status, _, body) = http(
        &sock,
        "POST",
        &format!("/v1.41/secrets/raw/update?version={version}"),
        Some(format!("{{\"Name\":\"raw\",\"Labels\":{{\"a\":\"b\"}},\"Data\":\"{other}\"}}").as_bytes()),
    );
    assert_eq!(
        (status, String::from_utf8_lossy(&body).as_ref()),
        (
            400,
            "{\"message\":\"rpc error: code = InvalidArgument desc = only updates to Labels are allowed\"}\n"
        )
    );
    responses.push(body);
    d.docker(&[
        "service", "create", "-d", "--name", "user", "--secret", "leaky", "--secret", "raw", "busybox", "sleep", "1000",
    ])
    .ok();
    assert!(eventually(Duration::from_secs(15), || {
        d.docker(&["service", "ls", "--format", "{{.Replicas}}"]).stdout == "1/1\n"
    }));
    let node = d
        .docker(&["info", "--format", "{{.Swarm.NodeID}}"])
        .ok()
        .trim()
        .to_string();
    let task = d.docker(&["service", "ps", "-q", "user"]).ok().trim().to_string();
    for path in [
        "/v1.41/secrets",
        "/v1.41/secrets/leaky",
        "/v1.41/secrets/raw",
        "/v1.41/services?status=true",
        "/v1.41/services/user",
        "/v1.41/tasks",
        "/v1.41/info",
        "/v1.41/swarm",
        "/v1.41/nodes",
        "/v1.41/configs",
        "/v1.41/version",
        "/v1.41/services/user/logs?stdout=1&stderr=1&details=1&timestamps=1",
        &format!("/v1.41/nodes/{node}"),
        &format!("/v1.41/tasks/{task}"),
    ] {
        let (status, _, body) = http(&sock, "GET", path, None);
        assert_eq!(status, 200, "{path}");
        responses.push(body);
    }
    for args in [
        vec!["secret", "inspect", "leaky", "raw"],
        vec!["secret", "inspect", "--pretty", "leaky"],
        vec!["secret", "ls"],
        vec!["service", "inspect", "user"],
        vec!["service", "ps", "user"],
        vec!["info"],
    ] {
        let out = d.docker(&args);
        responses.push(format!("{}{}", out.stdout, out.stderr).into_bytes());
    }
    for (i, r) in responses.iter().enumerate() {
        assert!(
            !leaks(r, &value),
            "response {i} shows the secret: {}",
            String::from_utf8_lossy(r)
        );
    }
    let log = d.log();
    assert!(log.contains("docker API request"), "trace logging reached the facade");
    assert!(!leaks(log.as_bytes(), &value), "the daemon log shows the secret");
    for f in swarmkeep_tests::files_under(&d.data_dir()) {
        let bytes = std::fs::read(&f).unwrap_or_default();
        assert!(!leaks(&bytes, &value), "{} holds the secret", f.display());
    }
    assert!(!Path::new(&d.data_dir()).join("docker").exists());
}
