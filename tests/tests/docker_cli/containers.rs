//! A service's task container seen from its node through the unmodified
//! docker CLI, as golden `containers.txt`: `docker ps`, `exec` (the
//! walkthrough's secret check, stdin, a TTY, exit codes), `inspect` of the
//! container and of its task, `top`, `logs`.

use std::time::Duration;

use swarmkeep_tests::{docker, eventually};

use super::docker_swarm;

#[test]
fn the_walkthroughs_secret_check_works_through_docker_exec() {
    if docker::skip() {
        return;
    }
    let (d, _) = docker_swarm();
    let value = b"1q2w3e4r-exec-marker";
    assert_eq!(
        d.docker_stdin(&["secret", "create", "my_mysql_password", "-"], value)
            .code,
        0
    );
    let out = d.docker(&[
        "service",
        "create",
        "--name",
        "mysql",
        "-d",
        "--no-resolve-image",
        "--secret",
        "source=my_mysql_password,target=mysql_root_password",
        "--secret",
        "source=my_mysql_password,target=mysql_password",
        "busybox",
        "sh",
        "-c",
        "echo started; exec sleep 1000000",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    let mut name = String::new();
    assert!(
        eventually(Duration::from_secs(30), || {
            name = d.docker(&["ps", "--format", "{{.Names}}"]).stdout.trim().to_string();
            name.starts_with("mysql.1.")
        }),
        "{}\n{}",
        d.docker(&["service", "ps", "mysql", "--no-trunc"]).stdout,
        d.log()
    );
    let task_id = name.trim_start_matches("mysql.1.").to_string();
    assert_eq!(task_id.len(), 25, "{name}");

    // docker ps, the walkthrough's format.
    let ps = d.docker(&["ps", "--format", "table {{.ID}}\t{{.Status}}\t{{.Image}}"]);
    let lines: Vec<&str> = ps.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", ps.stdout);
    let cols: Vec<&str> = lines[0].split("   ").map(str::trim).filter(|s| !s.is_empty()).collect();
    assert_eq!(cols, ["CONTAINER ID", "STATUS", "IMAGE"], "{}", ps.stdout);
    let row: Vec<&str> = lines[1].split("   ").map(str::trim).filter(|s| !s.is_empty()).collect();
    assert_eq!(row.len(), 3, "{}", ps.stdout);
    assert_eq!(row[0].len(), 12);
    assert!(row[1].starts_with("Up "), "{}", ps.stdout);
    assert_eq!(row[2], "busybox:latest");
    let short_id = row[0].to_string();
    let full = d.docker(&["ps", "-q", "--no-trunc"]).stdout.trim().to_string();
    assert!(full.starts_with(&short_id) && full.len() == 64, "{full}");

    // The secret check.
    let cat = d.docker(&["exec", &name, "cat", "/run/secrets/mysql_password"]);
    assert_eq!(cat.code, 0, "{cat:?}");
    assert_eq!(cat.stdout.as_bytes(), value);
    let ls = d.docker(&["exec", &name, "ls", "/run/secrets"]);
    assert_eq!(ls.stdout, "mysql_password\nmysql_root_password\n");
    // By ID prefix too, and the hostname is the short ID.
    assert_eq!(d.docker(&["exec", &short_id, "hostname"]).stdout.trim(), short_id);

    // Detached: answered at once, the command runs on.
    let started = std::time::Instant::now();
    let out = d.docker(&["exec", "-d", &name, "sh", "-c", "sleep 5; echo late > /tmp/detached"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "docker exec -d waited for the command"
    );
    assert!(
        eventually(Duration::from_secs(15), || d
            .docker(&["exec", &name, "cat", "/tmp/detached"])
            .stdout
            .contains("late")),
        "the detached command did not run"
    );

    // Exit codes, stdin, stderr, a TTY, errors.
    assert_eq!(d.docker(&["exec", &name, "sh", "-c", "exit 3"]).code, 3);
    let echo = d.docker_stdin(&["exec", "-i", &name, "cat"], b"through stdin\n");
    assert_eq!(echo.stdout, "through stdin\n", "{echo:?}");
    let err = d.docker(&["exec", &name, "sh", "-c", "echo to-stderr >&2"]);
    assert_eq!(err.stderr, "to-stderr\n", "{err:?}");
    let tty = d.docker(&["exec", "-t", &name, "tty"]);
    assert!(tty.stdout.trim().starts_with("/dev/pts/"), "{tty:?}");
    let missing = d.docker(&["exec", &name, "nosuchcommand"]);
    assert_eq!(missing.code, 127, "{missing:?}");
    assert!(
        missing.stdout.contains("executable file not found") || missing.stderr.contains("executable file not found"),
        "{missing:?}"
    );
    let nosuch = d.docker(&["exec", "nosuch", "true"]);
    assert_eq!(nosuch.stderr, "Error response from daemon: No such container: nosuch\n");
    // An exec gets the task's sandbox.
    let status = d.docker(&["exec", &name, "grep", "-E", "^(CapEff|Seccomp):", "/proc/self/status"]);
    assert_eq!(status.stdout, "CapEff:\t00000000a00425fb\nSeccomp:\t2\n", "{status:?}");
    // The API's AttachStdout/AttachStderr: a stream not attached is not sent.
    for (attach_out, attach_err, want) in [(false, true, "2:err\n"), (true, false, "1:out\n")] {
        let body = serde_json::json!({
            "AttachStdout": attach_out, "AttachStderr": attach_err,
            "Cmd": ["sh", "-c", "echo out; echo err >&2"],
        });
        let (code, _, created) = swarmkeep_tests::docker::http(
            &d.docker_socket(),
            "POST",
            &format!("/v1.41/containers/{name}/exec"),
            Some(body.to_string().as_bytes()),
        );
        assert_eq!(code, 201, "{}", String::from_utf8_lossy(&created));
        let id = serde_json::from_slice::<serde_json::Value>(&created).unwrap()["Id"]
            .as_str()
            .unwrap()
            .to_string();
        let (code, _, out) = swarmkeep_tests::docker::http(
            &d.docker_socket(),
            "POST",
            &format!("/v1.41/exec/{id}/start"),
            Some(br#"{"Detach":false,"Tty":false}"#),
        );
        assert_eq!(code, 200);
        // Docker's multiplexed frames: stream byte, 3 zeros, big-endian length.
        let mut frames = String::new();
        let mut rest = &out[..];
        while rest.len() >= 8 {
            let len = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
            frames.push_str(&format!("{}:{}", rest[0], String::from_utf8_lossy(&rest[8..8 + len])));
            rest = &rest[8 + len..];
        }
        assert_eq!(frames, want, "AttachStdout={attach_out} AttachStderr={attach_err}");
    }

    // inspect: name, hostname, network mode, labels; the task's ContainerID.
    let out = d.docker(&[
        "inspect",
        &name,
        "--format",
        "{{.Name}} {{.Config.Hostname}} {{json .HostConfig.NetworkMode}} {{.State.Status}}",
    ]);
    assert_eq!(
        out.stdout.trim(),
        format!("/{name} {short_id} \"default\" running"),
        "{out:?}"
    );
    let labels = d.docker(&["inspect", &name, "--format", "{{json .Config.Labels}}"]);
    let labels: serde_json::Value = serde_json::from_str(&labels.stdout).unwrap();
    for key in [
        "com.docker.swarm.node.id",
        "com.docker.swarm.service.id",
        "com.docker.swarm.service.name",
        "com.docker.swarm.task",
        "com.docker.swarm.task.id",
        "com.docker.swarm.task.name",
    ] {
        assert!(labels.get(key).is_some(), "no {key} in {labels}");
    }
    assert_eq!(labels["com.docker.swarm.task.name"], name.as_str());
    let status = d.docker(&[
        "inspect",
        &task_id,
        "--format",
        "{{.Status.ContainerStatus.ContainerID}}",
    ]);
    assert_eq!(status.stdout.trim(), full);

    // top and logs.
    let top = d.docker(&["top", &name]);
    assert!(top.stdout.starts_with("UID"), "{top:?}");
    assert!(top.stdout.contains("sleep 1000000"), "{top:?}");
    assert!(!top.stdout.contains("task-shim"), "{top:?}");
    let logs = d.docker(&["logs", &name]);
    assert_eq!(logs.stdout, "started\n", "{logs:?}");

    // Filters.
    let by_label = d.docker(&["ps", "-q", "--filter", "label=com.docker.swarm.service.name=mysql"]);
    assert_eq!(by_label.stdout.trim(), short_id);
    assert_eq!(d.docker(&["ps", "-q", "--filter", "name=nosuch"]).stdout, "");

    // After service rm the container is gone from `docker ps`.
    assert_eq!(d.docker(&["service", "rm", "mysql"]).code, 0);
    assert!(eventually(Duration::from_secs(20), || d
        .docker(&["ps", "-q"])
        .stdout
        .is_empty()));
}
