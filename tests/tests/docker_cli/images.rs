//! The node's images through the unmodified docker CLI: `docker load` of a
//! `docker save` archive (run as a service without any registry), `docker
//! images`, `docker rmi` (refused while a task uses it), `docker pull`, a
//! corrupted archive refused; and images pulled for tasks removed once no
//! task uses them (`--image-gc-idle`).

use std::time::Duration;

use swarmkeep_tests::registry::save_archive;
use swarmkeep_tests::{Daemon, docker, eventually, free_addr};

use super::docker_swarm;

#[test]
fn docker_load_images_rmi_and_pull_on_a_node() {
    if docker::skip() {
        return;
    }
    let (d, _) = docker_swarm();
    let archive = d.path().join("saved.tar");
    std::fs::write(&archive, save_archive("loaded:v1", false)).unwrap();
    let out = d.docker(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout.trim(), "Loaded image: loaded:v1");
    let images = d.docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(images.stdout.trim(), "loaded:v1", "{images:?}");

    // No registry has it: the task runs the loaded image.
    let out = d.docker(&[
        "service",
        "create",
        "--name",
        "fromload",
        "-d",
        "--no-resolve-image",
        "loaded:v1",
        "sh",
        "-c",
        "echo hi; exec sleep 100000",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        eventually(Duration::from_secs(30), || {
            d.docker(&["service", "ps", "fromload", "--format", "{{.CurrentState}}"])
                .stdout
                .starts_with("Running")
        }),
        "{}",
        d.docker(&["service", "ps", "fromload", "--no-trunc"]).stdout
    );
    let out = d.docker(&["rmi", "loaded:v1"]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr
            .contains("conflict: unable to remove repository reference \"loaded:v1\""),
        "{out:?}"
    );
    assert_eq!(d.docker(&["service", "rm", "fromload"]).code, 0);
    assert!(
        eventually(Duration::from_secs(20), || d
            .docker(&["ps", "-q"])
            .stdout
            .trim()
            .is_empty()),
        "the task did not end"
    );
    let out = d.docker(&["rmi", "loaded:v1"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.starts_with("Untagged: loaded:v1\nDeleted: sha256:"),
        "{out:?}"
    );
    assert_eq!(d.docker(&["images", "-q"]).stdout.trim(), "");
    let layers = d.data_dir().join("images/layers");
    assert_eq!(std::fs::read_dir(&layers).unwrap().count(), 0, "its layer is left");

    let out = d.docker(&["rmi", "nosuch:v9"]);
    assert!(out.stderr.contains("No such image: nosuch:v9"), "{out:?}");

    // A corrupted archive is refused whole.
    std::fs::write(&archive, save_archive("bad:v1", true)).unwrap();
    let out = d.docker(&["load", "-i", archive.to_str().unwrap()]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("digest mismatch"), "{out:?}");
    assert_eq!(d.docker(&["images", "-q"]).stdout.trim(), "");

    // docker pull (from the node's mirror), then rmi.
    let out = d.docker(&["pull", "busybox"]);
    assert_eq!(out.code, 0, "{out:?}");
    let images = d.docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(images.stdout.contains("busybox:latest"), "{images:?}");
    assert_eq!(d.docker(&["rmi", "busybox"]).code, 0);
}

#[test]
fn an_image_pulled_for_tasks_goes_once_no_task_uses_it() {
    if docker::skip() {
        return;
    }
    let d = Daemon::start_with(&["--hostname", "vm", "--image-gc-idle", "0s"], "info");
    let addr = free_addr("127.0.0.1");
    assert_eq!(
        d.docker(&["swarm", "init", "--advertise-addr", "127.0.0.1", "--listen-addr", &addr])
            .code,
        0
    );
    let out = d.docker(&[
        "service",
        "create",
        "--name",
        "gc",
        "-d",
        "--no-resolve-image",
        "bb:v2",
        "sleep",
        "100000",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        eventually(Duration::from_secs(30), || d.docker(&["ps", "-q"]).stdout.trim().len()
            == 12),
        "{}",
        d.docker(&["service", "ps", "gc", "--no-trunc"]).stdout
    );
    // In use: kept, however long.
    std::thread::sleep(Duration::from_secs(8));
    assert!(d.docker(&["images"]).stdout.contains("bb"), "removed while in use");
    assert_eq!(d.docker(&["service", "rm", "gc"]).code, 0);
    let layers = d.data_dir().join("images/layers");
    assert!(
        eventually(Duration::from_secs(30), || {
            d.docker(&["images", "-q"]).stdout.trim().is_empty()
                && std::fs::read_dir(&layers).map(|r| r.count()).unwrap_or(1) == 0
        }),
        "{}",
        d.docker(&["images"]).stdout
    );
}
