//! `swarmkeep secret …` and `swarm init`/`node ls` driven through the real
//! binaries against a real daemon, compared with ../shared/golden
//! (swarm-and-nodes.txt, secrets.txt), IDs and times masked.

use swarmkeep_tests::{Daemon, mask, run_cli};

#[test]
fn before_init_every_call_says_not_a_manager_and_a_dead_daemon_is_named() {
    let d = Daemon::start();
    let out = d.cli(&["secret", "ls"]);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        "Error response from daemon: This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.\n"
    );
    let gone = run_cli("unix:///nonexistent/swarmkeep.sock", &["secret", "ls"], None, None);
    assert_eq!(gone.code, 1);
    assert_eq!(
        gone.stderr,
        "Cannot connect to the swarmkeep daemon at unix:///nonexistent/swarmkeep.sock. Is the swarmkeepd daemon running?\n"
    );
}

#[test]
fn swarm_init_and_node_ls() {
    let d = Daemon::start_with(&["--hostname", "vm"], "info");
    let addr = swarmkeep_tests::free_addr("127.0.0.1");
    let out = d.cli(&["swarm", "init", "--advertise-addr", "127.0.0.1", "--listen-addr", &addr]);
    let token = regex::Regex::new(r"SWMTKN-1-[0-9a-z]{50}-[0-9a-z]{25}").unwrap();
    let port = addr.rsplit_once(':').unwrap().1;
    assert_eq!(
        mask(&token.replace_all(out.ok(), "<token>")),
        format!(
            "Swarm initialized: current node (<id>) is now a manager.\n\n\
             To add a worker to this swarm, run the following command:\n\n    \
             swarmkeep swarm join --token <token> 127.0.0.1:{port}\n\n\
             To add a manager to this swarm, run 'swarmkeep swarm join-token manager' and follow the instructions.\n\n"
        )
    );
    let again = d.cli(&["swarm", "init"]);
    assert_eq!(again.code, 1);
    assert_eq!(
        again.stderr,
        "Error response from daemon: This node is already part of a swarm. Use \"docker swarm leave\" to leave this swarm and join another one.\n"
    );
    let ls = d.cli(&["node", "ls"]);
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        mask(ls.ok()),
        format!(
            "ID                            HOSTNAME   STATUS    AVAILABILITY   MANAGER STATUS   ENGINE VERSION\n\
             <id> *   vm         Ready     Active         Leader           {version}\n"
        )
    );
    let fmt = d.cli(&[
        "node",
        "inspect",
        "self",
        "--format",
        "{{json .Spec}} {{json .Status}} {{json .ManagerStatus}}",
    ]);
    assert_eq!(
        fmt.ok(),
        format!(
            "{{\"Labels\":{{}},\"Role\":\"manager\",\"Availability\":\"active\"}} {{\"State\":\"ready\",\"Addr\":\"127.0.0.1\"}} {{\"Leader\":true,\"Reachability\":\"reachable\",\"Addr\":\"127.0.0.1:{port}\"}}\n"
        )
    );
    let pretty = d.cli(&["node", "inspect", "--pretty", "self"]);
    let text = mask(pretty.ok());
    assert!(
        text.starts_with(
            &format!("ID:\t\t\t<id>\nHostname:              \tvm\nJoined at:             \t<time>\nStatus:\n State:\t\t\tReady\n Availability:         \tActive\n Address:\t\t127.0.0.1\nManager Status:\n Address:\t\t127.0.0.1:{port}\n Raft Status:\t\tReachable\n Leader:\t\tYes\nPlatform:\n Operating System:\tlinux\n")
        ),
        "{text}"
    );
}

#[test]
fn secret_commands_match_docker() {
    let d = Daemon::start();
    d.init();
    let created = d.cli_stdin(&["secret", "create", "db_password", "-"], Some(b"s3cr3t-value"));
    let db_id = created.ok().trim().to_string();
    assert_eq!(mask(created.ok()), "<id>\n");

    std::fs::write(d.path().join("file"), "another").unwrap();
    let dup = d.cli(&["secret", "create", "db_password", "./file"]);
    assert_eq!(dup.code, 1);
    assert_eq!(
        dup.stderr,
        "Error response from daemon: rpc error: code = AlreadyExists desc = secret db_password already exists\n"
    );
    // Names are unique case-insensitively, as in swarmkit.
    let dup_case = d.cli(&["secret", "create", "DB_PASSWORD", "./file"]);
    assert!(dup_case.stderr.contains("AlreadyExists"), "{dup_case:?}");

    let api = d.cli(&["secret", "create", "--label", "env=prod", "api_key", "./file"]);
    let api_id = api.ok().trim().to_string();

    let ls = d.cli(&["secret", "ls"]);
    assert_eq!(
        mask(ls.ok()),
        "ID                          NAME          DRIVER    CREATED                  UPDATED\n\
         <id>   api_key                 Less than a second ago   Less than a second ago\n\
         <id>   db_password             Less than a second ago   Less than a second ago\n"
    );
    assert_eq!(d.cli(&["secret", "ls", "-q"]).ok().lines().count(), 2);
    assert_eq!(
        d.cli(&["secret", "ls", "--filter", "label=env=prod", "--format", "{{.Name}}"])
            .ok(),
        "api_key\n"
    );
    assert_eq!(
        d.cli(&["secret", "ls", "--filter", "label=env", "-q"]).ok(),
        format!("{api_id}\n")
    );
    assert_eq!(
        d.cli(&["secret", "ls", "--filter", "name=db", "-q"]).ok(),
        format!("{db_id}\n")
    );
    assert_eq!(
        d.cli(&["secret", "ls", "--filter", "id=", "-q"]).ok().lines().count(),
        2
    );
    let bad_filter = d.cli(&["secret", "ls", "--filter", "colour=red"]);
    assert_eq!(
        bad_filter.stderr,
        "Error response from daemon: invalid filter 'colour'\n"
    );
    let json_rows = d.cli(&["secret", "ls", "--format", "{{json .}}", "--filter", "name=api"]);
    assert_eq!(
        mask(json_rows.ok()),
        "{\"CreatedAt\":\"Less than a second ago\",\"Driver\":\"\",\"ID\":\"<id>\",\"Labels\":\"env=prod\",\"Name\":\"api_key\",\"UpdatedAt\":\"Less than a second ago\"}\n"
    );

    let inspect = d.cli(&["secret", "inspect", "api_key"]);
    assert_eq!(
        mask(inspect.ok()),
        r#"[
    {
        "ID": "<id>",
        "Version": {
            "Index": <n>
        },
        "CreatedAt": "<time>",
        "UpdatedAt": "<time>",
        "Spec": {
            "Name": "api_key",
            "Labels": {
                "env": "prod"
            }
        }
    }
]
"#
    );
    // Lookup by ID prefix, and the template form of inspect.
    let by_prefix = d.cli(&["secret", "inspect", "--format", "{{.Spec.Name}} {{.ID}}", &api_id[..6]]);
    assert_eq!(by_prefix.ok(), format!("api_key {api_id}\n"));

    let pretty = d.cli(&["secret", "inspect", "--pretty", "api_key"]);
    assert_eq!(
        mask(pretty.ok()),
        "ID:              <id>\nName:              api_key\nLabels:\n - env=prod\nDriver:            \nCreated at:        <time>\nUpdated at:        <time>\n"
    );

    let missing = d.cli(&["secret", "inspect", "nope"]);
    assert_eq!((missing.stdout.as_str(), missing.code), ("[]\n", 1));
    assert_eq!(missing.stderr, "Error response from daemon: secret nope not found\n");

    let invalid = "Error response from daemon: rpc error: code = InvalidArgument desc = invalid name, only 64 [a-zA-Z0-9-_.] characters allowed, and the start and end character must be [a-zA-Z0-9]\n";
    assert_eq!(d.cli(&["secret", "create", "bad name!", "./file"]).stderr, invalid);
    assert_eq!(d.cli(&["secret", "create", &"a".repeat(65), "./file"]).stderr, invalid);
    assert_eq!(d.cli(&["secret", "create", "-x", "./file"]).stderr, invalid);
    d.cli(&["secret", "create", &"a".repeat(64), "./file"]).ok();

    let empty = d.cli(&["secret", "create", "empty_one", "/dev/null"]);
    assert_eq!(
        (empty.stderr.as_str(), empty.code),
        ("error reading from /dev/null: data is empty\n", 1)
    );
    let empty_stdin = d.cli_stdin(&["secret", "create", "empty_two", "-"], Some(b""));
    assert_eq!(empty_stdin.stderr, "error reading from STDIN: data is empty\n");
    let no_file = d.cli(&["secret", "create", "nofile", "./does-not-exist"]);
    assert_eq!(no_file.stderr, "open ./does-not-exist: no such file or directory\n");

    let too_big = "Error response from daemon: rpc error: code = InvalidArgument desc = secret data must be larger than 0 and less than 512000 bytes\n";
    std::fs::write(d.path().join("max"), vec![0u8; 512000]).unwrap();
    std::fs::write(d.path().join("big"), vec![0u8; 512001]).unwrap();
    std::fs::write(d.path().join("fits"), vec![0u8; 511999]).unwrap();
    assert_eq!(d.cli(&["secret", "create", "max_size", "max"]).stderr, too_big);
    assert_eq!(d.cli(&["secret", "create", "too_big", "big"]).stderr, too_big);
    d.cli(&["secret", "create", "fits", "fits"]).ok();

    // Secrets are bytes: non-UTF-8 data is accepted.
    d.cli_stdin(&["secret", "create", "binary", "-"], Some(&[0xff, 0x00, 0xfe, 0x80]))
        .ok();

    let rm = d.cli(&["secret", "rm", "api_key", "nope"]);
    assert_eq!((rm.stdout.as_str(), rm.code), ("api_key\n", 1));
    assert_eq!(rm.stderr, "Error response from daemon: secret nope not found\n");
    assert!(
        !d.cli(&["secret", "ls", "--format", "{{.Name}}"])
            .ok()
            .contains("api_key")
    );
    // Nothing half-written: the refused creates left no objects behind.
    assert_eq!(
        d.cli(&["secret", "ls", "--format", "{{.Name}}"]).ok(),
        format!("{}\nbinary\ndb_password\nfits\n", "a".repeat(64))
    );
}

#[test]
fn bad_templates_and_flags_are_clear_errors() {
    let d = Daemon::start();
    d.init();
    let out = d.cli(&["secret", "ls", "--format", "{{.Name"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.starts_with("template parsing error"), "{out:?}");
    let unknown = d.cli(&["secret", "ls", "--bogus"]);
    assert_ne!(unknown.code, 0);
    assert!(unknown.stderr.contains("--bogus"), "{unknown:?}");
}
