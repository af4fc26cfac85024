//! `docker stack deploy|ls|services|ps|rm` through the unmodified docker CLI
//! against a one-node swarm whose node is a network namespace of the test's
//! own (its published port answers there, and nowhere else): a compose file
//! with a file secret, an external secret, a config, a published port, the
//! stack's default overlay and `deploy:` (replicas, mode, update_config,
//! placement, resources), then `stack rm`, which takes everything of the
//! stack away and leaves the external secret.

use std::time::Duration;

use swarmkeep_tests::netns::TestHosts;
use swarmkeep_tests::{docker, eventually, http_body};

const COMPOSE: &str = r#"version: "3.8"
services:
  web:
    image: bb:latest
    command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && cat /run/secrets/db_pass > /www/db && cat /run/secrets/ext_secret > /www/ext && cat /etc/app.conf > /www/conf && exec httpd -f -p 80 -h /www"]
    ports:
      - "8082:80"
    secrets:
      - db_pass
      - source: ext
        target: ext_secret
    configs:
      - source: app
        target: /etc/app.conf
    deploy:
      replicas: 2
      update_config:
        parallelism: 1
        delay: 1s
      placement:
        constraints: [node.role == manager]
      resources:
        limits:
          memory: 64M
        reservations:
          cpus: "0.01"
  client:
    image: bb:latest
    command: ["sleep", "1000"]
    deploy:
      mode: global
secrets:
  db_pass:
    file: ./db_pass.txt
  ext:
    external: true
configs:
  app:
    file: ./app.conf
"#;

#[test]
fn a_compose_stack_deploys_and_is_removed() {
    if docker::skip() {
        return;
    }
    let hosts = TestHosts::new(1);
    let nodes = hosts.swarm();
    let m = &nodes[0];
    let d = &m.daemon;
    let dir = d.path().join("stack");
    std::fs::create_dir_all(&dir).unwrap();
    let marker = format!("STACKMARK-{}", std::process::id());
    std::fs::write(dir.join("db_pass.txt"), &marker).unwrap();
    std::fs::write(dir.join("app.conf"), "listen 80\n").unwrap();
    let compose = dir.join("compose.yml");
    std::fs::write(&compose, COMPOSE).unwrap();
    d.docker_stdin(&["secret", "create", "ext", "-"], b"external-value")
        .ok();

    let compose_arg = compose.to_string_lossy().into_owned();
    let deploy = d.docker(&["stack", "deploy", "-c", &compose_arg, "st"]);
    assert_eq!(deploy.code, 0, "{deploy:?}");
    let mut lines: Vec<&str> = deploy.stdout.lines().collect();
    // (Services are created in the CLI's map order.)
    lines.sort();
    assert_eq!(
        lines,
        [
            "Creating config st_app",
            "Creating network st_default",
            "Creating secret st_db_pass",
            "Creating service st_client",
            "Creating service st_web",
        ],
        "{deploy:?}"
    );

    // The published port answers with what the tasks read from their files.
    let addr = format!("{}:8082", hosts.addrs[0]);
    assert!(
        eventually(Duration::from_secs(60), || http_body(&addr, "/db").as_deref()
            == Some(marker.as_str())),
        "{}\n{}",
        d.docker(&["stack", "ps", "st", "--no-trunc"]).stdout,
        d.log()
    );
    assert_eq!(http_body(&addr, "/ext").as_deref(), Some("external-value"));
    assert_eq!(http_body(&addr, "/conf").as_deref(), Some("listen 80\n"));
    // The stack's services are on its default overlay, by their short names.
    let client = d
        .docker(&["ps", "-q", "--filter", "name=st_client"])
        .ok()
        .trim()
        .to_string();
    assert!(!client.is_empty());
    // (Each task's VIP rules follow the tasks the network view lists: the
    // web tasks' addresses join them as they come up.)
    let mut by_name = None;
    assert!(
        eventually(Duration::from_secs(20), || {
            let out = d.docker(&["exec", &client, "wget", "-qO-", "http://web/index.html"]);
            let ok = out.code == 0;
            by_name = Some(out);
            ok
        }),
        "{by_name:?}"
    );

    let ls = d.docker(&["stack", "ls"]);
    assert_eq!(ls.ok(), "NAME      SERVICES\nst        2\n");
    let services = d.docker(&[
        "stack",
        "services",
        "st",
        "--format",
        "{{.Name}} {{.Mode}} {{.Replicas}} {{.Ports}}",
    ]);
    assert!(
        eventually(Duration::from_secs(30), || {
            d.docker(&[
                "stack",
                "services",
                "st",
                "--format",
                "{{.Name}} {{.Mode}} {{.Replicas}} {{.Ports}}",
            ])
            .stdout
                == "st_client global 1/1 \nst_web replicated 2/2 *:8082->80/tcp\n"
        }),
        "{services:?}"
    );
    let ps = d.docker(&["stack", "ps", "st", "--format", "{{.Name}} {{.DesiredState}}"]);
    let mut rows: Vec<&str> = ps.ok().lines().collect();
    rows.sort();
    assert_eq!(rows.len(), 3, "{ps:?}");
    assert!(
        rows[1..]
            .iter()
            .all(|r| r.starts_with("st_web.") && r.ends_with(" Running")),
        "{ps:?}"
    );
    // The spec as the compose file said.
    let spec = d.docker(&["service", "inspect", "st_web", "--format", "{{json .Spec}}"]);
    let spec: serde_json::Value = serde_json::from_str(spec.ok()).unwrap();
    assert_eq!(spec["Labels"]["com.docker.stack.namespace"], "st");
    assert_eq!(spec["Mode"]["Replicated"]["Replicas"], 2);
    assert_eq!(spec["UpdateConfig"]["Parallelism"], 1);
    assert_eq!(spec["UpdateConfig"]["Delay"], 1_000_000_000u64);
    assert_eq!(
        spec["TaskTemplate"]["Placement"]["Constraints"][0],
        "node.role == manager"
    );
    assert_eq!(
        spec["TaskTemplate"]["Resources"]["Limits"]["MemoryBytes"],
        64 * 1024 * 1024
    );
    assert_eq!(
        spec["TaskTemplate"]["Resources"]["Reservations"]["NanoCPUs"],
        10_000_000
    );
    assert_eq!(spec["TaskTemplate"]["Networks"][0]["Aliases"][0], "web");
    // Nothing of the secret's value in what the stack's objects show.
    for what in [
        &["secret", "inspect", "st_db_pass"][..],
        &["service", "inspect", "st_web"],
        &["stack", "ps", "st"],
    ] {
        let out = d.docker(what);
        assert!(
            !out.stdout.contains(&marker) && !out.stderr.contains(&marker),
            "{what:?}"
        );
    }

    // Deployed again unchanged: the services are updated in place; with the
    // secret's file changed, refused as Swarm refuses it (secrets do not
    // change), the rest left as it was.
    let again = d.docker(&["stack", "deploy", "-c", &compose_arg, "st"]);
    assert_eq!(again.code, 0, "{again:?}");
    for service in ["st_web", "st_client"] {
        assert!(
            again.stdout.contains(&format!("Updating service {service} (id: ")),
            "{again:?}"
        );
    }
    std::fs::write(dir.join("db_pass.txt"), "changed").unwrap();
    let changed = d.docker(&["stack", "deploy", "-c", &compose_arg, "st"]);
    assert_ne!(changed.code, 0, "{changed:?}");
    assert!(
        changed
            .stderr
            .contains("failed to update secret st_db_pass: Error response from daemon: rpc error: code = InvalidArgument desc = only updates to Labels are allowed"),
        "{changed:?}"
    );
    assert_eq!(http_body(&addr, "/db").as_deref(), Some(marker.as_str()));

    // Removed: services, secrets, configs, networks, in Docker's order.
    let rm = d.docker(&["stack", "rm", "st"]);
    assert_eq!(
        rm.ok(),
        "Removing service st_client\nRemoving service st_web\nRemoving secret st_db_pass\n\
         Removing config st_app\nRemoving network st_default\n"
    );
    assert!(eventually(Duration::from_secs(30), || http_body(&addr, "/").is_none()));
    assert_eq!(d.docker(&["stack", "ls"]).ok(), "NAME      SERVICES\n");
    assert_eq!(
        d.docker(&["secret", "ls", "--format", "{{.Name}}"]).ok(),
        "ext\n",
        "the external secret stays"
    );
    assert_eq!(d.docker(&["config", "ls", "-q"]).ok(), "");
    let networks = d.docker(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!networks.ok().contains("st_default"), "{networks:?}");
    let again = d.docker(&["stack", "rm", "st"]);
    assert_eq!(again.stderr, "Nothing found in stack: st\n", "{again:?}");
    assert!(eventually(Duration::from_secs(15), || d.mounts().is_empty()));
    assert!(!d.log().contains(&marker), "the secret's value is in the daemon's log");
}
