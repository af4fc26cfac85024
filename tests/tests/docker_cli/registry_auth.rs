//! `docker service create --with-registry-auth` with an image in a private
//! registry (a real registry that requires a login): without the login the
//! task cannot pull, with it the service is pinned to the image's digest and
//! runs; the password shows nowhere — not in inspect, the daemon's log at
//! trace level, its data dir (raft log and snapshots included), nor the
//! task's container.

use std::time::Duration;

use base64::Engine;
use swarmkeep_tests::registry::{Registry, busybox_image};
use swarmkeep_tests::{eventually, files_under, leaks};

use super::docker_swarm_logging;

#[test]
fn a_private_image_runs_with_registry_auth_and_the_password_shows_nowhere() {
    if swarmkeep_tests::docker::skip() {
        return;
    }
    let password = "pw-7q3v9x-registry-marker";
    let registry = Registry::start_with_login("deployer", password);
    registry.push("private/app:v1", busybox_image());
    let image = format!("{}/private/app:v1", registry.addr);
    // At trace level: the scan below reads everything the daemon logged.
    let (d, _) = docker_swarm_logging("trace");

    // No login: the pull is refused, the task rejected.
    let out = d.docker(&[
        "service",
        "create",
        "--name",
        "anon",
        "-d",
        "--no-resolve-image",
        &image,
        "sleep",
        "1000000",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        eventually(Duration::from_secs(30), || d
            .docker(&["service", "ps", "anon", "--no-trunc", "--format", "{{.Error}}"])
            .stdout
            .contains("pull access denied")),
        "{}",
        d.docker(&["service", "ps", "anon", "--no-trunc"]).stdout
    );
    d.docker(&["service", "rm", "anon"]);

    // The login, as `docker login` stores it, and --with-registry-auth.
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("deployer:{password}"));
    std::fs::write(
        d.path().join("docker-config/config.json"),
        serde_json::json!({"auths": {registry.addr.clone(): {"auth": auth}}}).to_string(),
    )
    .unwrap();
    let out = d.docker(&[
        "service",
        "create",
        "--name",
        "private",
        "-d",
        "--with-registry-auth",
        &image,
        "sleep",
        "1000000",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        eventually(Duration::from_secs(30), || d
            .docker(&["service", "ps", "private", "--format", "{{.CurrentState}}"])
            .stdout
            .starts_with("Running")),
        "{}\n{}",
        d.docker(&["service", "ps", "private", "--no-trunc"]).stdout,
        d.log()
    );
    // Pinned through /distribution, which used the login too.
    let inspect = d.docker(&["service", "inspect", "private"]);
    let spec_image = d.docker(&[
        "service",
        "inspect",
        "private",
        "--format",
        "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
    ]);
    assert!(
        spec_image.stdout.trim().starts_with(&format!("{image}@sha256:")),
        "{spec_image:?}"
    );

    // An update that sends no login keeps the service's: its new task pulls.
    let out = d.docker(&["service", "update", "-d", "--force", "private"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        eventually(Duration::from_secs(40), || {
            let states = d
                .docker(&["service", "ps", "private", "--format", "{{.CurrentState}}"])
                .stdout;
            states.lines().count() == 2 && states.starts_with("Running")
        }),
        "{}",
        d.docker(&["service", "ps", "private", "--no-trunc"]).stdout
    );

    // `docker pull` sends the login as X-Registry-Auth, and it is used.
    let pulled = d.docker(&["pull", &image]);
    assert_eq!(pulled.code, 0, "{pulled:?}");

    // Where an update's credential comes from: Docker's two answers, others refused by name.
    let version = d.docker(&["service", "inspect", "private", "--format", "{{.Version.Index}}"]);
    for (from, why) in [
        (
            "previous-spec",
            "registryAuthFrom=previous-spec is supported only with rollback=previous",
        ),
        ("bogus", "unsupported registryAuthFrom value \\\"bogus\\\""),
    ] {
        let path = format!(
            "/v1.41/services/private/update?version={}&registryAuthFrom={from}",
            version.stdout.trim()
        );
        let (status, _, body) = swarmkeep_tests::docker::http(&d.docker_socket(), "POST", &path, Some(b"{}"));
        let body = String::from_utf8_lossy(&body);
        assert_eq!(status, 400, "{body}");
        assert!(body.contains(why), "{body}");
    }

    // Nowhere to be seen.
    let tasks = d.docker(&["service", "ps", "private", "-q"]).stdout;
    let mut shown = vec![inspect.stdout, d.docker(&["service", "ls"]).stdout];
    for task in tasks.lines() {
        shown.push(d.docker(&["inspect", task]).stdout);
    }
    let container = d.docker(&["ps", "-q"]).stdout;
    shown.push(d.docker(&["inspect", container.trim()]).stdout);
    shown.push(d.docker(&["exec", container.trim(), "env"]).stdout);
    shown.push(d.log());
    for text in &shown {
        assert!(
            !leaks(text.as_bytes(), password.as_bytes()),
            "the password shows in:\n{text}"
        );
    }
    for file in files_under(&d.data_dir()) {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(
            !leaks(&bytes, password.as_bytes()),
            "the password is in {}",
            file.display()
        );
    }
}
