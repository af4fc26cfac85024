//! `docker service …`, and a service created by docker reading its secrets (golden/services.txt, services-2.txt).

use std::time::Duration;

use swarmkeep_tests::docker::{self, assert_golden, normalize};
use swarmkeep_tests::eventually;

use super::*;

#[test]
fn service_commands_match_docker() {
    if docker::skip() {
        return;
    }
    let (d, _) = docker_swarm();
    let s = "services.txt";
    let create = d.docker(&[
        "service",
        "create",
        "--name",
        "myweb",
        "--replicas",
        "2",
        "--no-resolve-image",
        "bb:latest",
        "sleep",
        "1000000",
    ]);
    let id = first_line(&create);
    assert_eq!(id.len(), 25, "{create:?}");
    converged(&create, &id, 2);
    assert_golden(s, "docker service ls", d.docker(&["service", "ls"]).ok());
    assert_golden(s, "docker service ps myweb", d.docker(&["service", "ps", "myweb"]).ok());
    let scale = d.docker(&["service", "scale", "myweb=4"]);
    // `scale` prints its line, then waits like create.
    assert!(scale.stdout.starts_with("myweb scaled to 4\n"), "{scale:?}");
    converged(&scale, "myweb", 4);
    let global = d.docker(&[
        "service",
        "create",
        "--name",
        "global_web",
        "--mode",
        "global",
        "-d",
        "--no-resolve-image",
        "bb:latest",
        "sleep",
        "1000000",
    ]);
    assert_golden(s, "docker service create --name global_web", global.ok());
    let myweb3 = d.docker(&[
        "service",
        "create",
        "--name",
        "myweb3",
        "--replicas",
        "4",
        "--update-delay",
        "10s",
        "--update-parallelism",
        "2",
        "-d",
        "--no-resolve-image",
        "bb:latest",
        "sleep",
        "1000000",
    ]);
    assert_golden(s, "docker service create --name myweb3", myweb3.ok());
    assert_golden(
        s,
        "docker service inspect --pretty myweb3",
        d.docker(&["service", "inspect", "--pretty", "myweb3"]).ok(),
    );
    assert!(eventually(Duration::from_secs(15), || {
        normalize(&d.docker(&["service", "ls"]).stdout) == normalize(&docker::golden_at(s, "docker service ls", 1))
    }));
    assert_golden(
        s,
        "docker service inspect myweb3",
        d.docker(&["service", "inspect", "myweb3"]).ok(),
    );
    let endpoint = d.docker(&["service", "inspect", "--format", "{{json .Endpoint}}", "myweb3"]);
    assert_eq!(endpoint.ok(), "{\"Spec\":{}}\n");
    let modes = d.docker(&["service", "ls", "--filter", "mode=global", "--format", "{{.Name}}"]);
    assert_eq!(modes.ok(), "global_web\n");

    // services-2.txt: an update, its rollback, and the history they leave.
    let s2 = "services-2.txt";
    let update = d.docker(&[
        "service",
        "update",
        "--image",
        "bb:v2",
        "--update-parallelism",
        "2",
        "--update-delay",
        "1s",
        "myweb",
    ]);
    assert_eq!(first_line(&update), "myweb");
    converged(&update, "myweb", 4);
    // Two waves of two (--update-parallelism 2), the second at least the
    // 1 s delay after the first (the tasks' CreatedAt, through the API).
    let ids = d.docker(&[
        "service",
        "ps",
        "myweb",
        "--filter",
        "desired-state=running",
        "-q",
        "--no-trunc",
    ]);
    let mut args = vec!["inspect", "--format", "{{.CreatedAt}}"];
    args.extend(ids.ok().lines());
    let created = d.docker(&args);
    let mut at: Vec<f64> = created.ok().lines().map(swarmkeep_tests::day_seconds).collect();
    at.sort_by(f64::total_cmp);
    assert_eq!(at.len(), 4, "{created:?}");
    assert!(at.iter().all(|t| *t > 0.0), "{created:?}");
    assert!(at[1] - at[0] < 0.5 && at[3] - at[2] < 0.5, "{at:?}");
    assert!(at[2] - at[1] >= 1.0, "{at:?}");
    // `inspect --pretty` shows Docker's UpdateStatus once it completed.
    assert!(eventually(Duration::from_secs(20), || d
        .docker(&["service", "inspect", "--format", "{{.UpdateStatus.State}}", "myweb"])
        .stdout
        == "completed\n"));
    let pretty = d.docker(&["service", "inspect", "--pretty", "myweb"]);
    assert!(
        pretty.ok().contains("UpdateStatus:\n State:\t\tcompleted\n"),
        "{pretty:?}"
    );
    assert!(pretty.ok().contains(" Message:\tupdate completed\n"), "{pretty:?}");
    let ps = d.docker(&["service", "ps", "myweb"]);
    assert_golden(s2, "docker service ps myweb", ps.ok());
    let rollback = d.docker(&["service", "rollback", "myweb"]);
    converged(&rollback, "myweb", 4);
    // Docker's UpdateStatus drives the CLI's rollback display.
    assert!(
        rollback.stdout.contains("rollback: manually requested rollback"),
        "{rollback:?}"
    );
    assert!(
        rollback
            .stdout
            .contains("overall progress: rolling back update: 4 out of 4 tasks"),
        "{rollback:?}"
    );
    let status = d.docker(&[
        "service",
        "inspect",
        "--format",
        "{{.UpdateStatus.State}} {{.UpdateStatus.Message}}",
        "myweb",
    ]);
    assert!(
        eventually(Duration::from_secs(10), || d
            .docker(&["service", "inspect", "--format", "{{.UpdateStatus.State}}", "myweb"])
            .stdout
            == "rollback_completed\n"),
        "{status:?}"
    );
    let images = d.docker(&[
        "service",
        "inspect",
        "--format",
        "{{.Spec.TaskTemplate.ContainerSpec.Image}} {{.PreviousSpec.TaskTemplate.ContainerSpec.Image}}",
        "myweb",
    ]);
    // The update's image was pinned to its digest by the CLI, as Docker's.
    assert!(images.ok().starts_with("bb:latest bb:v2@sha256:"), "{images:?}");
    let shutdown = d.docker(&[
        "service",
        "ps",
        "--no-trunc",
        "--filter",
        "desired-state=shutdown",
        "myweb",
        "--format",
        "{{.Name}} {{.CurrentState}} {{.Error}}",
    ]);
    assert_eq!(shutdown.ok().lines().count(), 8, "{shutdown:?}");
    assert!(
        shutdown
            .stdout
            .lines()
            .all(|l| l.starts_with("myweb.") && l.contains(" Shutdown "))
    );
    let scale = d.docker(&["service", "scale", "myweb=1"]);
    assert!(scale.stdout.starts_with("myweb scaled to 1\n"), "{scale:?}");
    let gscale = d.docker(&["service", "scale", "global_web=2"]);
    assert_eq!(
        gscale.stderr,
        "global_web: scale can only be used with replicated or replicated-job mode\n"
    );
    let rm = d.docker(&["service", "rm", "myweb", "global_web", "myweb3"]);
    assert_golden(s2, "docker service rm myweb global_web myweb3", rm.ok());
    let nope = d.docker(&["service", "rm", "nope"]);
    assert_golden(s2, "docker service rm nope", &nope.stderr);
    assert!(eventually(Duration::from_secs(15), || d.mounts().is_empty()));
}

#[test]
fn a_service_created_by_docker_reads_its_secrets() {
    if docker::skip() {
        return;
    }
    let (d, _) = docker_swarm();
    let value = format!("DOCKERMARK-{}-\u{1}\u{7f}end", std::process::id());
    d.docker_stdin(&["secret", "create", "db", "-"], value.as_bytes()).ok();
    d.docker_stdin(&["config", "create", "app.conf", "-"], b"cfg-data\n")
        .ok();
    let out = d.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let o = "/out";
    let mount = format!("type=bind,source={},target=/out", out.display());
    let script = format!(
        "cat /run/secrets/db > {o}/default; cat /run/sx > {o}/abs; cat /cfg > {o}/cfg; \
         stat -c '%u %g %a' /run/secrets/db /run/sx /cfg > {o}/stat; touch {o}/done; exec sleep 1000"
    );
    let create = d.docker(&[
        "service",
        "create",
        "--name",
        "reader",
        "--mount",
        &mount,
        "--secret",
        "db",
        "--secret",
        "source=db,target=/run/sx,uid=1,gid=2,mode=0400",
        "--config",
        "source=app.conf,target=/cfg",
        "--update-monitor",
        "1s",
        "busybox:latest",
        "sh",
        "-c",
        &script,
    ]);
    let id = first_line(&create);
    converged(&create, &id, 1);
    // The CLI asked the node for the tag's digest and pinned the service to it.
    assert!(
        !create.stderr.contains("could not be accessed on a registry"),
        "{create:?}"
    );
    let image = d.docker(&[
        "service",
        "inspect",
        "--format",
        "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
        "reader",
    ]);
    assert!(image.ok().starts_with("busybox:latest@sha256:"), "{image:?}");
    assert!(
        eventually(Duration::from_secs(15), || out.join("done").exists()),
        "{}",
        d.log()
    );
    assert_eq!(std::fs::read_to_string(out.join("default")).unwrap(), value);
    assert_eq!(std::fs::read_to_string(out.join("abs")).unwrap(), value);
    assert_eq!(std::fs::read_to_string(out.join("cfg")).unwrap(), "cfg-data\n");
    assert_eq!(
        std::fs::read_to_string(out.join("stat")).unwrap(),
        "0 0 444\n1 2 400\n0 0 444\n"
    );
    let refs = d.docker(&[
        "service",
        "inspect",
        "--format",
        "{{json .Spec.TaskTemplate.ContainerSpec.Secrets}}",
        "reader",
    ]);
    assert!(
        refs.ok()
            .contains("\"File\":{\"Name\":\"/run/sx\",\"UID\":\"1\",\"GID\":\"2\",\"Mode\":256}"),
        "{refs:?}"
    );
    // `service ps` through docker agrees with the task that ran.
    let ps = d.docker(&[
        "service",
        "ps",
        "reader",
        "--format",
        "{{.Name}} {{.DesiredState}} {{.CurrentState}}",
    ]);
    assert!(ps.ok().starts_with("reader.1 Running Running"), "{ps:?}");
    // A detached create returns at once with the ID.
    let detached = d.docker(&[
        "service", "create", "-d", "--name", "quick", "--secret", "db", "busybox", "sleep", "1000",
    ]);
    assert_eq!(detached.ok().trim().len(), 25);
    assert_eq!(d.docker(&["service", "rm", "reader", "quick"]).ok(), "reader\nquick\n");
    assert!(eventually(Duration::from_secs(15), || d.mounts().is_empty()));
}
