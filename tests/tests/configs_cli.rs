//! `swarmkeep config …` against a real daemon, compared with
//! ../shared/golden/configs-and-in-use.txt.

use swarmkeep_tests::{Daemon, mask};

const CONFIG_YML: &str = "version: 0.1\nlog:\n level: info\nhttp:\n addr: 0.0.0.0:5000\n";

#[test]
fn config_commands_match_docker() {
    let d = Daemon::start();
    d.init();
    std::fs::write(d.path().join("config.yml"), CONFIG_YML).unwrap();
    let id = d
        .cli(&["config", "create", "app-config", "config.yml"])
        .ok()
        .trim()
        .to_string();
    assert_eq!(id.len(), 25);

    let ls = d.cli(&["config", "ls"]);
    assert_eq!(
        mask(ls.ok()),
        "ID                          NAME         CREATED                  UPDATED\n\
         <id>   app-config   Less than a second ago   Less than a second ago\n"
    );

    let inspect = d.cli(&["config", "inspect", "app-config"]);
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
            "Name": "app-config",
            "Labels": {},
            "Data": "dmVyc2lvbjogMC4xCmxvZzoKIGxldmVsOiBpbmZvCmh0dHA6CiBhZGRyOiAwLjAuMC4wOjUwMDAK"
        }
    }
]
"#
    );
    let pretty = d.cli(&["config", "inspect", "--pretty", "app-config"]);
    assert_eq!(
        mask(pretty.ok()),
        format!(
            "ID:\t\t\t<id>\nName:\t\t\tapp-config\nCreated at:            \t<time>\nUpdated at:            \t<time>\nData:\n{CONFIG_YML}\n"
        )
    );

    let dup = d.cli(&["config", "create", "app-config", "config.yml"]);
    assert_eq!(
        dup.stderr,
        "Error response from daemon: rpc error: code = AlreadyExists desc = config app-config already exists\n"
    );

    // Configs may be up to 1000 KiB (secrets only 500 KiB).
    std::fs::write(d.path().join("big"), vec![b'x'; 1_000_001]).unwrap();
    d.cli(&["config", "create", "big_cfg", "big"]).ok();
    std::fs::write(d.path().join("huge"), vec![b'x'; 1_024_000]).unwrap();
    assert_eq!(
        d.cli(&["config", "create", "huge_cfg", "huge"]).stderr,
        "Error response from daemon: rpc error: code = InvalidArgument desc = config data must be larger than 0 and less than 1024000 bytes\n"
    );

    let missing = d.cli(&["config", "inspect", "app-config", "nope"]);
    assert_eq!(missing.code, 1);
    assert!(missing.stdout.contains("\"Name\": \"app-config\""));
    assert_eq!(missing.stderr, "Error response from daemon: config nope not found\n");

    let rm = d.cli(&["config", "rm", "app-config", "big_cfg"]);
    assert_eq!(rm.ok(), "app-config\nbig_cfg\n");
    assert_eq!(d.cli(&["config", "ls", "-q"]).ok(), "");
}
