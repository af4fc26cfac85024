//! `swarmkeepd --userns-remap default`, as dockerd's: a task's root is a
//! subordinate, unprivileged user of the host (`dockremap`'s range from
//! /etc/subuid and /etc/subgid, made if missing), yet it owns its image's
//! files, its secrets, volumes, tmpfs mounts and `/etc` files, and `exec`
//! joins the same namespace. A host file only the host's root may write,
//! bound into the task, stays unwritable to the task's root.

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use swarmkeep_tests::{Daemon, eventually};

/// dockremap's first subordinate ID in `file`.
fn base(file: &str) -> u32 {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("dockremap:"))
        .and_then(|r| r.split(':').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no dockremap range in {file}"))
}

#[test]
fn a_remapped_tasks_root_is_an_unprivileged_host_user_that_owns_its_task() {
    let d = Daemon::start_with(&["--userns-remap", "default"], "info");
    d.init();
    let (uid, gid) = (base("/etc/subuid"), base("/etc/subgid"));
    assert!(uid >= 100_000 && gid >= 100_000, "{uid} {gid}");

    let out = d.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::set_permissions(&out, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    // Only the host's root may write here.
    let root_only = d.path().join("root-only");
    std::fs::create_dir_all(&root_only).unwrap();
    std::fs::set_permissions(&root_only, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    d.cli_stdin(&["secret", "create", "s", "-"], Some(b"remapped-secret-marker"))
        .ok();
    let script = "cat /proc/self/uid_map > /out/uid_map; cat /proc/self/gid_map > /out/gid_map; id -u > /out/id; \
                  cat /run/secrets/s > /out/secret 2>&1; \
                  (echo x >> /etc/passwd && stat -c '%u %g' /etc/passwd) > /out/etc 2>&1; \
                  (echo 10.1.1.1 extra >> /etc/hosts && echo ok) > /out/hosts 2>&1; \
                  (touch /vol/f /cache/f /dev/shm/f && echo ok) > /out/mounts 2>&1; \
                  stat -c '%u %g' / /vol /cache /dev /etc/hostname /run/secrets/s > /out/owners; \
                  (touch /host/x) > /out/host 2>&1; echo rc=$? >> /out/host; \
                  touch /out/by-task; touch /out/done; exec sleep 1000";
    let bind_out = format!("type=bind,source={},target=/out", out.display());
    let bind_host = format!("type=bind,source={},target=/host", root_only.display());
    d.cli(&[
        "service",
        "create",
        "-d",
        "--name",
        "remapped",
        "--secret",
        "source=s,mode=0400",
        "--mount",
        &bind_out,
        "--mount",
        &bind_host,
        "--mount",
        "type=volume,source=v1,target=/vol",
        "--mount",
        "type=tmpfs,target=/cache",
        "busybox",
        "sh",
        "-c",
        script,
    ])
    .ok();
    assert!(
        eventually(Duration::from_secs(30), || out.join("done").exists()),
        "the task did not finish its script\n{}\n{}",
        d.cli(&["service", "ps", "remapped", "--no-trunc"]).stdout,
        d.log()
    );
    let read = |f: &str| std::fs::read_to_string(out.join(f)).unwrap();
    assert_eq!(
        read("uid_map").split_whitespace().collect::<Vec<_>>(),
        ["0", &uid.to_string(), "65536"]
    );
    assert_eq!(
        read("gid_map").split_whitespace().collect::<Vec<_>>(),
        ["0", &gid.to_string(), "65536"]
    );
    assert_eq!(read("id"), "0\n");
    // Its secret (root's, mode 0400), its image's files, its /etc files,
    // its mounts: all its root's.
    assert_eq!(read("secret"), "remapped-secret-marker");
    assert_eq!(read("etc"), "0 0\n");
    assert_eq!(read("hosts"), "ok\n");
    assert_eq!(read("mounts"), "ok\n");
    assert_eq!(read("owners"), "0 0\n".repeat(6));
    // On the host, what it made is the subordinate user's, and a root-only
    // host directory refused it.
    let made = std::fs::metadata(out.join("by-task")).unwrap();
    assert_eq!((made.uid(), made.gid()), (uid, gid));
    assert!(read("host").contains("Permission denied"), "{}", read("host"));
    assert!(!root_only.join("x").exists());
    let volume = std::fs::metadata(d.data_dir().join("volumes/v1/_data/f")).unwrap();
    assert_eq!(volume.uid(), uid);

    // The shim waiting for the task is the remapped root too (as is every
    // process joining the namespace, `exec` included: never the host's root
    // inside it, where a task with CAP_SYS_PTRACE could take it over).
    let task_id = d
        .cli(&["service", "ps", "remapped", "-q", "--no-trunc"])
        .ok()
        .trim()
        .to_string();
    let shim = std::fs::read_to_string(format!("/proc/{}/status", d.task_pid(&task_id))).unwrap();
    let ids = |key: &str| {
        shim.lines()
            .find(|l| l.starts_with(key))
            .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>())
            .unwrap()
    };
    assert_eq!(ids("Uid:"), vec![uid.to_string(); 4], "{shim}");
    assert_eq!(ids("Gid:"), vec![gid.to_string(); 4], "{shim}");
    // exec joins the task's user namespace.
    let name = d.cli(&["ps", "--format", "{{.Names}}"]).ok().trim().to_string();
    assert!(name.starts_with("remapped.1."), "{name}");
    let exec = d.cli(&[
        "exec",
        &name,
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map; cat /run/secrets/s",
    ]);
    let text = exec.ok();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("0"), "{text}");
    assert_eq!(
        lines.next().map(|l| l.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["0", &uid.to_string(), "65536"]),
        "{text}"
    );
    assert_eq!(lines.next(), Some("remapped-secret-marker"), "{text}");
    // The task's command runs as the subordinate user on the host (this
    // task's: a descendant of its shim, not another test's sleeper).
    let shim_pid = d.task_pid(&task_id).to_string();
    let under_shim = |pid: &str| {
        let mut pid = pid.to_string();
        for _ in 0..8 {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let Some(ppid) = status.lines().find_map(|l| l.strip_prefix("PPid:")) else {
                return false;
            };
            pid = ppid.trim().to_string();
            if pid == shim_pid {
                return true;
            }
        }
        false
    };
    let sleepers: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == b"sleep\x001000\x00"))
        .filter(|e| under_shim(&e.file_name().to_string_lossy()))
        .filter_map(|e| std::fs::read_to_string(e.path().join("status")).ok())
        .filter_map(|s| s.lines().find(|l| l.starts_with("Uid:")).map(str::to_string))
        .collect();
    assert!(!sleepers.is_empty());
    for line in sleepers {
        assert_eq!(line.split_whitespace().nth(1), Some(uid.to_string().as_str()), "{line}");
    }
    // dockerd's refusal: the node's own network is not for a remapped root.
    d.cli(&[
        "service",
        "create",
        "-d",
        "--name",
        "hostnet",
        "--network",
        "host",
        "busybox",
        "sleep",
        "1000",
    ])
    .ok();
    let words = "Cannot share the host's network namespace when user namespaces are enabled";
    assert!(
        eventually(Duration::from_secs(30), || d
            .cli(&["service", "ps", "hostnet", "--no-trunc"])
            .stdout
            .contains(words)),
        "{}",
        d.cli(&["service", "ps", "hostnet", "--no-trunc"]).stdout
    );
}
