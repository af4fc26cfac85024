//! Services read their secrets: real daemons, real tasks (the process
//! executor), real tmpfs and FUSE mounts.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use swarmkeep_tests::{Daemon, eventually, leaks};

/// `--mount` of the test's output directory at `/out` in the task.
fn out_mount(out: &Path) -> String {
    format!("type=bind,source={},target=/out", out.display())
}

/// A value no test output could contain by chance, with bytes a text path
/// would mangle.
fn marker(tag: &str) -> Vec<u8> {
    let mut v = format!("SKMARK-{tag}-{}-", std::process::id()).into_bytes();
    v.extend_from_slice(&[0, 0xff, 0xfe, b'\n', 0x01]);
    v.extend_from_slice(b"end");
    v
}

fn out_dir(d: &Daemon) -> PathBuf {
    let out = d.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    out
}

fn wait_file(path: &Path) -> bool {
    eventually(Duration::from_secs(15), || path.exists())
}

/// The task rows of `service ps` as (name, desired, current state word).
fn ps(d: &Daemon, service: &str) -> Vec<(String, String, String)> {
    let out = d.cli(&[
        "service",
        "ps",
        service,
        "--format",
        "{{.Name}}|{{.DesiredState}}|{{.CurrentState}}",
    ]);
    out.stdout
        .lines()
        .filter_map(|l| {
            let mut it = l.split('|');
            let state = it.clone().nth(2)?.split(' ').next()?.to_string();
            Some((it.next()?.to_string(), it.next()?.to_string(), state))
        })
        .collect()
}

fn reads_secrets(backend: &str) {
    let d = Daemon::start_with(&["--secrets-backend", backend], "info");
    d.init();
    let value = marker(backend);
    d.cli_stdin(&["secret", "create", "db", "-"], Some(&value)).ok();
    d.cli_stdin(&["config", "create", "app.conf", "-"], Some(b"cfg-data\n"))
        .ok();
    let out = out_dir(&d);
    let tag = format!("{}-{backend}", std::process::id());
    let abs = format!("/etc/swarmkeep-test-{tag}/key.pem");
    let cfg_abs = format!("/opt/swarmkeep-test-{tag}/conf");
    let o = "/out";
    let mount = out_mount(&out);
    let script = format!(
        "cat /run/secrets/db > {o}/default; cat /run/secrets/sub/custom > {o}/custom; cat {abs} > {o}/abs; \
         cat /app.conf > {o}/cfg; cat {cfg_abs} > {o}/cfg_abs; \
         stat -c '%u %g %a' /run/secrets/db /run/secrets/sub/custom {abs} /app.conf {cfg_abs} > {o}/stat; \
         ls /run/secrets > {o}/ls; touch {o}/done; exec sleep 1000"
    );
    let id = d
        .cli(&[
            "service",
            "create",
            "-d",
            "--name",
            "reader",
            "--mount",
            &mount,
            "--secret",
            "db",
            "--secret",
            "source=db,target=sub/custom,uid=1000,gid=50,mode=0440",
            "--secret",
            &format!("source=db,target={abs},uid=123,gid=456,mode=0400"),
            "--config",
            "app.conf",
            "--config",
            &format!("source=app.conf,target={cfg_abs},mode=0600"),
            "busybox:latest",
            "sh",
            "-c",
            &script,
        ])
        .ok()
        .trim()
        .to_string();
    assert_eq!(id.len(), 25, "{id}");
    assert!(
        wait_file(&out.join("done")),
        "task never finished its reads:\n{}",
        d.log()
    );
    for f in ["default", "custom", "abs"] {
        assert_eq!(std::fs::read(out.join(f)).unwrap(), value, "{f}");
    }
    assert_eq!(std::fs::read(out.join("cfg")).unwrap(), b"cfg-data\n");
    assert_eq!(std::fs::read(out.join("cfg_abs")).unwrap(), b"cfg-data\n");
    assert_eq!(
        std::fs::read_to_string(out.join("stat")).unwrap(),
        "0 0 444\n1000 50 440\n123 456 400\n0 0 444\n0 0 600\n"
    );
    // One file per reference: the absolute and config targets are not in /run/secrets.
    assert_eq!(std::fs::read_to_string(out.join("ls")).unwrap(), "db\nsub\n");
    // Nothing was made on the host: the targets exist only in the task's view.
    assert!(!Path::new(&abs).parent().unwrap().exists());
    assert!(!Path::new(&cfg_abs).parent().unwrap().exists());
    assert!(!Path::new("/app.conf").exists());
    assert_eq!(d.mounts().len(), 1, "one private mount for the task: {:?}", d.mounts());
    assert!(eventually(Duration::from_secs(10), || ps(&d, "reader")
        == vec![("reader.1".into(), "Running".into(), "Running".into())]));
    let ls = d.cli(&["service", "ls"]).ok().to_string();
    assert!(ls.contains("reader    replicated   1/1        busybox:latest"), "{ls}");
    let inspect = d.cli(&["service", "inspect", "reader"]).ok().to_string();
    assert!(!leaks(inspect.as_bytes(), &value));
    assert!(inspect.contains("\"SecretName\": \"db\""), "{inspect}");
}

#[test]
fn a_task_reads_its_secrets_and_configs_from_tmpfs() {
    reads_secrets("tmpfs");
}

#[test]
fn a_task_reads_its_secrets_and_configs_from_fuse() {
    reads_secrets("fuse");
}

#[test]
fn fuse_reads_are_logged_with_pid_and_uid() {
    let d = Daemon::start_with(&["--secrets-backend", "fuse"], "info");
    d.init();
    d.cli_stdin(&["secret", "create", "s", "-"], Some(b"v")).ok();
    let out = out_dir(&d);
    let script = "cat /run/secrets/s > /dev/null; touch /out/done; exec sleep 1000";
    d.cli(&[
        "service",
        "create",
        "-d",
        "--name",
        "audit",
        "--mount",
        &out_mount(&out),
        "--secret",
        "s",
        "busybox",
        "sh",
        "-c",
        script,
    ])
    .ok();
    assert!(wait_file(&out.join("done")));
    assert!(eventually(Duration::from_secs(5), || {
        let log = d.log();
        log.lines().any(|l| {
            l.contains("secret file read") && l.contains("file=secrets/s") && l.contains("pid=") && l.contains("uid=0")
        })
    }));
}

#[test]
fn service_rm_unmounts_and_removes_files_within_a_second() {
    let d = Daemon::start();
    d.init();
    d.cli_stdin(&["secret", "create", "db_password", "-"], Some(b"pw")).ok();
    d.cli_stdin(&["config", "create", "app-config", "-"], Some(b"c")).ok();
    d.cli(&[
        "service",
        "create",
        "-d",
        "--name",
        "uses",
        "--secret",
        "db_password",
        "--config",
        "app-config",
        "busybox",
        "sleep",
        "1000",
    ])
    .ok();
    assert!(eventually(Duration::from_secs(10), || d.mounts().len() == 1));
    // In use: Docker's refusals, and nothing is removed.
    let e = d.cli(&["secret", "rm", "db_password"]);
    assert_eq!(
        e.stderr,
        "Error response from daemon: rpc error: code = InvalidArgument desc = secret 'db_password' is in use by the following service: uses\n"
    );
    let e = d.cli(&["config", "rm", "app-config"]);
    assert_eq!(
        e.stderr,
        "Error response from daemon: rpc error: code = InvalidArgument desc = config 'app-config' is in use by the following service: uses\n"
    );
    let tasks = d.exec_root().join("tasks");
    let task_dirs = std::fs::read_dir(&tasks).unwrap().count();
    assert_eq!(task_dirs, 1);
    let task = std::fs::read_dir(&tasks).unwrap().next().unwrap().unwrap().file_name();
    // Written once the task runs (its mount is made before).
    let pid = d.task_pid(&task.to_string_lossy()) as i32;
    let start = Instant::now();
    assert_eq!(d.cli(&["service", "rm", "uses"]).ok(), "uses\n");
    let gone = eventually(Duration::from_secs(1), || {
        d.mounts().is_empty()
            && std::fs::read_dir(&tasks).map(|r| r.count()).unwrap_or(0) == 0
            && !Path::new(&format!("/proc/{pid}")).exists()
    });
    assert!(gone, "after {:?}: mounts {:?}", start.elapsed(), d.mounts());
    d.cli(&["secret", "rm", "db_password"]).ok();
    let e = d.cli(&["service", "rm", "nope"]);
    assert_eq!(e.stderr, "Error response from daemon: service nope not found\n");
}

#[test]
fn agent_kill9_and_restart_leaves_no_stale_mount_and_tasks_come_back() {
    let mut d = Daemon::start();
    d.init();
    let value = marker("restart");
    d.cli_stdin(&["secret", "create", "db", "-"], Some(&value)).ok();
    let out = out_dir(&d);
    let script = format!(
        "echo started >> {o}/starts; cat /run/secrets/db > {o}/value.tmp && mv {o}/value.tmp {o}/value; exec sleep 1000",
        o = "/out"
    );
    d.cli(&[
        "service",
        "create",
        "-d",
        "--name",
        "r",
        "--mount",
        &out_mount(&out),
        "--restart-delay",
        "1s",
        "--secret",
        "db",
        "busybox",
        "sh",
        "-c",
        &script,
    ])
    .ok();
    assert!(eventually(Duration::from_secs(10), || std::fs::read_to_string(
        out.join("starts")
    )
    .is_ok_and(|s| s.lines().count() == 1)));
    let before = d.mounts();
    assert_eq!(before.len(), 1);
    d.kill9();
    // kill -9 leaves the mount behind; the restarted agent must clean it.
    assert_eq!(d.mounts(), before);
    std::fs::remove_file(out.join("value")).unwrap();
    d.restart();
    assert!(
        eventually(Duration::from_secs(5), || !d
            .mounts()
            .iter()
            .any(|m| before.contains(m))),
        "stale mount left: {:?}",
        d.mounts()
    );
    assert!(
        eventually(Duration::from_secs(20), || std::fs::read_to_string(out.join("starts"))
            .is_ok_and(|s| s.lines().count() == 2)),
        "the task was not re-established:\n{}",
        d.log()
    );
    assert!(wait_file(&out.join("value")));
    assert_eq!(std::fs::read(out.join("value")).unwrap(), value);
    assert_eq!(d.mounts().len(), 1);
    let rows = ps(&d, "r");
    assert_eq!(
        rows[0],
        ("r.1".to_string(), "Running".to_string(), "Running".to_string()),
        "{rows:?}"
    );
    assert_eq!(rows[1].0, " \\_ r.1");
    assert_eq!(rows[1].2, "Failed");
}

#[test]
fn bad_references_are_refused_at_create() {
    let d = Daemon::start();
    d.init();
    d.cli_stdin(&["secret", "create", "db_password", "-"], Some(b"pw")).ok();
    let e = d.cli(&[
        "service", "create", "-d", "--name", "bad", "--secret", "nosuch", "busybox", "sleep", "1",
    ]);
    assert_eq!(e.stderr, "secret not found: nosuch\n");
    let e = d.cli(&[
        "service",
        "create",
        "-d",
        "--name",
        "bad",
        "--secret",
        "source=db_password,target=../escape",
        "busybox",
        "sleep",
        "1",
    ]);
    assert_eq!(
        e.stderr,
        "Error response from daemon: rpc error: code = InvalidArgument desc = invalid target \"../escape\": a target must not contain \"..\"\n"
    );
    let e = d.cli(&[
        "service",
        "create",
        "-d",
        "--name",
        "bad",
        "--secret",
        "source=db_password,target=x",
        "--secret",
        "source=db_password,target=/run/secrets/x",
        "busybox",
        "sleep",
        "1",
    ]);
    assert_eq!(
        e.stderr,
        "Error response from daemon: rpc error: code = InvalidArgument desc = secret references 'db_password' and 'db_password' have a conflicting target: '/run/secrets/x'\n"
    );
    assert_eq!(d.cli(&["service", "ls", "-q"]).ok(), "");
}

/// Columns split the way a reader sees them (two or more spaces).
fn cells(line: &str) -> Vec<String> {
    regex::Regex::new(r" {2,}")
        .unwrap()
        .split(line.trim_end())
        .map(str::to_string)
        .collect()
}

#[test]
fn service_ls_ps_and_inspect_have_dockers_shape() {
    let d = Daemon::start_with(&["--hostname", "vm"], "info");
    d.init();
    d.cli(&[
        "service",
        "create",
        "-d",
        "--name",
        "myweb",
        "--replicas",
        "2",
        "--no-resolve-image",
        "bb:latest",
        "sleep",
        "1000000",
    ])
    .ok();
    assert!(eventually(Duration::from_secs(15), || d
        .cli(&["service", "ls"])
        .stdout
        .contains("2/2")));
    // golden/services.txt: `docker service ls` (the ID column aside, byte for byte).
    let golden_ls = "ID             NAME      MODE         REPLICAS   IMAGE       PORTS\n\
                     y25bpliz3nhp   myweb     replicated   2/2        bb:latest   \n";
    let ls = d.cli(&["service", "ls"]).ok().to_string();
    assert_eq!(ls.lines().count(), 2, "{ls}");
    for (ours, theirs) in ls.lines().zip(golden_ls.lines()) {
        assert_eq!(ours.get(12..), theirs.get(12..), "{ls}");
    }
    // `docker service ps myweb`, with times masked as the golden file masks them.
    let table = d.cli(&["service", "ps", "myweb"]).ok().to_string();
    let when = regex::Regex::new(r"(Running|Pending|Assigned|Starting) (\d+|About an?|Less than a) .*? ago").unwrap();
    let rows: Vec<Vec<String>> = table.lines().map(|l| cells(&when.replace(l, "$1 <when>"))).collect();
    assert_eq!(
        rows[0],
        [
            "ID",
            "NAME",
            "IMAGE",
            "NODE",
            "DESIRED STATE",
            "CURRENT STATE",
            "ERROR",
            "PORTS"
        ]
    );
    assert_eq!(
        rows[1][1..],
        ["myweb.1", "bb:latest", "vm", "Running", "Running <when>"]
    );
    assert_eq!(
        rows[2][1..],
        ["myweb.2", "bb:latest", "vm", "Running", "Running <when>"]
    );
    assert_eq!(rows[1][0].len(), 12);
    // `docker service inspect`: golden's myweb3 shape, for a service with the
    // default update settings.
    let json = swarmkeep_tests::mask(d.cli(&["service", "inspect", "myweb"]).ok());
    let expected = r#"[
    {
        "ID": "<id>",
        "Version": {
            "Index": <n>
        },
        "CreatedAt": "<time>",
        "UpdatedAt": "<time>",
        "Spec": {
            "Name": "myweb",
            "Labels": {},
            "TaskTemplate": {
                "ContainerSpec": {
                    "Image": "bb:latest",
                    "Args": [
                        "sleep",
                        "1000000"
                    ],
                    "Init": false,
                    "StopGracePeriod": 10000000000,
                    "DNSConfig": {},
                    "Isolation": "default"
                },
                "Resources": {
                    "Limits": {},
                    "Reservations": {}
                },
                "RestartPolicy": {
                    "Condition": "any",
                    "Delay": 5000000000,
                    "MaxAttempts": 0
                },
                "Placement": {},
                "ForceUpdate": 0,
                "Runtime": "container"
            },
            "Mode": {
                "Replicated": {
                    "Replicas": 2
                }
            },
            "UpdateConfig": {
                "Parallelism": 1,
                "FailureAction": "pause",
                "Monitor": 5000000000,
                "MaxFailureRatio": 0,
                "Order": "stop-first"
            },
            "RollbackConfig": {
                "Parallelism": 1,
                "FailureAction": "pause",
                "Monitor": 5000000000,
                "MaxFailureRatio": 0,
                "Order": "stop-first"
            },
            "EndpointSpec": {
                "Mode": "vip"
            }
        },
        "Endpoint": {
            "Spec": {}
        }
    }
]
"#;
    assert_eq!(json, expected);
    assert_eq!(
        d.cli(&["service", "scale", "-d", "myweb=1"]).ok(),
        "myweb scaled to 1\n"
    );
    assert!(eventually(Duration::from_secs(10), || d
        .cli(&["service", "ls"])
        .stdout
        .contains("1/1")));
    assert!(eventually(Duration::from_secs(10), || d.mounts().len() == 1
        && ps(&d, "myweb").len() == 2));
    assert_eq!(
        ps(&d, "myweb")[1],
        ("myweb.2".to_string(), "Shutdown".to_string(), "Shutdown".to_string())
    );
    let e = d.cli(&["service", "inspect", "nope"]);
    assert_eq!(
        (e.stdout.as_str(), e.stderr.as_str()),
        ("[]\n", "Error: no such service: nope\n")
    );
}

#[test]
fn swarmkeep_ps_logs_and_exec_work_on_the_nodes_task_containers() {
    let d = Daemon::start();
    d.init();
    d.cli_stdin(&["secret", "create", "db_pw", "-"], Some(b"exec-secret-value"))
        .ok();
    d.cli(&[
        "service",
        "create",
        "-d",
        "--name",
        "db",
        "--secret",
        "source=db_pw,target=db_password",
        "busybox",
        "sh",
        "-c",
        "echo to-out; echo to-err >&2; exec sleep 1000000",
    ])
    .ok();
    let mut name = String::new();
    assert!(
        eventually(Duration::from_secs(30), || {
            name = d.cli(&["ps", "--format", "{{.Names}}"]).stdout.trim().to_string();
            name.starts_with("db.1.")
        }),
        "{}",
        d.log()
    );
    // docker ps's columns.
    let ps = d.cli(&["ps"]);
    let lines: Vec<&str> = ps.ok().lines().collect();
    assert_eq!(
        cells(lines[0]),
        [
            "CONTAINER ID",
            "IMAGE",
            "COMMAND",
            "CREATED",
            "STATUS",
            "PORTS",
            "NAMES"
        ],
        "{}",
        ps.stdout
    );
    // Docker's cut: 20 characters, the opening quote included.
    assert!(lines[1].contains(" \"sh -c echo to-out;…  "), "{}", ps.stdout);
    assert!(lines[1].contains(" ago "), "{}", ps.stdout);
    assert!(lines[1].contains("Up "), "{}", ps.stdout);
    assert!(!ps.stdout.contains("ago ago"), "{}", ps.stdout);
    let id = d.cli(&["ps", "-q"]).ok().trim().to_string();
    assert_eq!(id.len(), 12);
    assert_eq!(d.cli(&["ps", "-q", "--filter", "name=nosuch"]).ok(), "");
    // exec: the secret check, stdin, exit codes.
    let cat = d.cli(&["exec", &name, "cat", "/run/secrets/db_password"]);
    assert_eq!(cat.ok(), "exec-secret-value");
    let echo = d.cli_stdin(&["exec", "-i", &id, "cat"], Some(b"through stdin\n"));
    assert_eq!(echo.ok(), "through stdin\n");
    assert_eq!(d.cli(&["exec", &name, "sh", "-c", "exit 3"]).code, 3);
    assert_eq!(d.cli(&["exec", &name, "nosuchcommand"]).code, 127);
    let missing = d.cli(&["exec", "nosuch", "true"]);
    assert!(missing.stderr.contains("No such container: nosuch"), "{missing:?}");
    // logs: each stream to its own.
    let logs = d.cli(&["logs", &name]);
    assert_eq!((logs.stdout.as_str(), logs.stderr.as_str()), ("to-out\n", "to-err\n"));
    let stamped = d.cli(&["logs", "-t", "--tail", "2", &name]);
    assert!(stamped.stdout.ends_with("Z to-out\n"), "{stamped:?}");
}
