//! `docker secret …` and `docker config …` (golden/secrets.txt, configs-and-in-use.txt).

use swarmkeep_tests::docker::{self, assert_golden};

use super::*;

#[test]
fn secret_and_config_commands_match_docker() {
    if docker::skip() {
        return;
    }
    let (d, _) = docker_swarm();
    // What golden's machine already had.
    d.docker_stdin(&["secret", "create", "my_mysql_password", "-"], b"pw")
        .ok();
    d.docker_stdin(&["config", "create", "registry-config", "-"], b"version: 0.1\nlog:\n")
        .ok();
    let dir = d.path();
    std::fs::write(dir.join("file"), "another").unwrap();
    std::fs::write(dir.join("sfile"), "api-key-value").unwrap();
    std::fs::write(dir.join("big"), vec![0u8; 512_001]).unwrap();
    std::fs::write(dir.join("max"), vec![0u8; 512_000]).unwrap();

    let s = "secrets.txt";
    let created = d.docker_stdin(&["secret", "create", "db_password", "-"], b"s3cr3t-value");
    assert_golden(
        s,
        "printf \"s3cr3t-value\" | docker secret create db_password -",
        created.ok(),
    );
    let dup = d.docker(&["secret", "create", "db_password", "./file"]);
    assert_eq!(dup.code, 1);
    assert_golden(s, "docker secret create db_password ./file", &dup.stderr);
    let labelled = d.docker(&["secret", "create", "--label", "env=prod", "api_key", "./sfile"]);
    assert_golden(
        s,
        "docker secret create --label env=prod api_key ./sfile",
        labelled.ok(),
    );
    assert_golden(s, "docker secret ls", d.docker(&["secret", "ls"]).ok());
    let q = d.docker(&["secret", "ls", "-q"]);
    assert_eq!(
        format!("{}\n", q.ok().lines().count()),
        docker::golden(s, "docker secret ls -q | wc -l")
    );
    let filtered = d.docker(&["secret", "ls", "--filter", "label=env=prod", "--format", "{{.Name}}"]);
    assert_golden(s, "docker secret ls --filter label=env=prod", filtered.ok());
    let names = d.docker(&["secret", "ls", "--format", "{{.Name}}"]);
    assert_eq!(names.ok(), "api_key\ndb_password\nmy_mysql_password\n");
    let prefix = d.docker(&["secret", "ls", "--filter", "name=my_", "--format", "{{.Name}}"]);
    assert_eq!(prefix.ok(), "my_mysql_password\n");
    // Different keys are ANDed: a name and another secret's ID match nothing.
    let db_id = d
        .docker(&["secret", "inspect", "--format", "{{.ID}}", "db_password"])
        .ok()
        .trim()
        .to_string();
    let both = d.docker(&[
        "secret",
        "ls",
        "-q",
        "--filter",
        "name=my_",
        "--filter",
        &format!("id={}", &db_id[..6]),
    ]);
    assert_eq!(both.ok(), "");
    let same = d.docker(&[
        "secret",
        "ls",
        "--format",
        "{{.Name}}",
        "--filter",
        "name=db",
        "--filter",
        &format!("id={}", &db_id[..6]),
    ]);
    assert_eq!(same.ok(), "db_password\n");
    assert_golden(
        s,
        "docker secret inspect api_key",
        d.docker(&["secret", "inspect", "api_key"]).ok(),
    );
    assert_golden(
        s,
        "docker secret inspect --pretty api_key",
        d.docker(&["secret", "inspect", "--pretty", "api_key"]).ok(),
    );
    let nope = d.docker(&["secret", "inspect", "nope"]);
    assert_golden(
        s,
        "docker secret inspect nope",
        &format!("{}{}exit={}\n", nope.stdout, nope.stderr, nope.code),
    );
    for (args, golden) in [
        (
            vec!["secret", "create", "bad name!", "./sfile"],
            "docker secret create \"bad name!\"",
        ),
        (
            vec!["secret", "create", "empty_one", "/dev/null"],
            "docker secret create empty_one",
        ),
        (vec!["secret", "create", "too_big", "big"], "head -c 512001"),
        (vec!["secret", "create", "max_size", "max"], "head -c 512000"),
        (
            vec!["secret", "create", &"a".repeat(65), "sfile"],
            "docker secret create $(python3 -c \"print(\\\"a\\\"*65)\")",
        ),
        (
            vec!["secret", "create", "--", "-x", "sfile"],
            "docker secret create -x f",
        ),
    ] {
        let out = d.docker(&args);
        assert_eq!(out.code, 1, "{args:?}");
        assert_golden(s, golden, &out.stderr);
    }
    assert_eq!(d.docker(&["secret", "create", &"a".repeat(64), "sfile"]).code, 0);
    let rm = d.docker(&["secret", "rm", "api_key", "nope"]);
    assert_golden(
        s,
        "docker secret rm api_key nope",
        &format!("{}{}exit={}\n", rm.stdout, rm.stderr, rm.code),
    );

    let c = "configs-and-in-use.txt";
    std::fs::write(dir.join("config.yml"), docker::golden(c, "cat config.yml")).unwrap();
    let created = d.docker(&["config", "create", "app-config", "config.yml"]);
    assert_golden(c, "docker config create app-config config.yml", created.ok());
    assert_golden(c, "docker config ls", d.docker(&["config", "ls"]).ok());
    assert_golden(
        c,
        "docker config inspect app-config",
        d.docker(&["config", "inspect", "app-config"]).ok(),
    );
    assert_golden(
        c,
        "docker config inspect --pretty app-config",
        d.docker(&["config", "inspect", "--pretty", "app-config"]).ok(),
    );
    let dup = d.docker(&["config", "create", "app-config", "config.yml"]);
    // golden has the same command twice; the second is the duplicate.
    assert_eq!(
        dup.stderr,
        "Error response from daemon: rpc error: code = AlreadyExists desc = config app-config already exists\n"
    );
    std::fs::write(dir.join("bigc"), vec![0u8; 1_000_001]).unwrap();
    let big = d.docker(&["config", "create", "big_cfg", "bigc"]);
    assert_golden(
        c,
        "head -c 1000001 /dev/zero > big; docker config create big_cfg big",
        big.ok(),
    );
    let uses = d.docker(&[
        "service",
        "create",
        "-d",
        "--name",
        "uses",
        "--secret",
        "db_password",
        "--config",
        "app-config",
        "bb:latest",
        "sleep",
        "1000000",
    ]);
    assert_golden(c, "docker service create --name uses", uses.ok());
    for (args, golden) in [
        (["secret", "rm", "db_password"], "docker secret rm db_password"),
        (["config", "rm", "app-config"], "docker config rm app-config"),
    ] {
        let out = d.docker(&args);
        assert_eq!(out.code, 1);
        assert_golden(c, golden, &out.stderr);
    }
    let bad = d.docker(&[
        "service",
        "create",
        "--name",
        "bad",
        "--secret",
        "nosuch",
        "bb:latest",
        "sleep",
        "1",
    ]);
    assert_golden(c, "docker service create --name bad --secret nosuch", &bad.stderr);
    // Docker accepts `target=../escape`; swarmkeep refuses a target outside
    // /run/secrets (a documented difference).
    let escape = d.docker(&[
        "service",
        "create",
        "--name",
        "bad",
        "--secret",
        "source=db_password,target=../escape",
        "bb:latest",
        "sleep",
        "1",
    ]);
    assert_eq!(escape.code, 1);
    assert!(escape.stderr.contains("InvalidArgument"), "{escape:?}");
}
