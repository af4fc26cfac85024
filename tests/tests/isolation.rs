//! Least privilege for secrets: a task sees only its own, a node receives
//! only what its tasks reference, the dispatcher hands nothing to a node
//! that has no task needing it, and no secret shows up anywhere else.

use std::path::Path;
use std::time::Duration;

use swarmkeep_api::dispatcher::dispatcher_client::DispatcherClient;
use swarmkeep_api::dispatcher::{FetchSecretRequest, SessionRequest};
use swarmkeep_crypto::SessionKey;
use swarmkeep_tests::{Daemon, eventually, leaks, swarm};
use swarmkeep_transport::tls::{NodeTls, pinned_channel};

fn marker(tag: &str) -> Vec<u8> {
    format!("SKISO-{tag}-{}-\u{1}end", std::process::id()).into_bytes()
}

fn secret_id(d: &Daemon, name: &str) -> String {
    d.cli(&["secret", "inspect", name, "--format", "{{.ID}}"])
        .ok()
        .trim()
        .to_string()
}

#[test]
fn two_services_on_one_node_cannot_read_each_others_secrets() {
    let d = Daemon::start();
    d.init();
    let (a, b) = (marker("a"), marker("b"));
    d.cli_stdin(&["secret", "create", "sa", "-"], Some(&a)).ok();
    d.cli_stdin(&["secret", "create", "sb", "-"], Some(&b)).ok();
    let out = d.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    d.cli(&[
        "service", "create", "-d", "--name", "b", "--secret", "sb", "busybox", "sleep", "1000",
    ])
    .ok();
    assert!(eventually(Duration::from_secs(10), || d.mounts().len() == 1));
    // Task a tries every way to B's secret it has: the path, other
    // processes' roots, the agent's exec root and data dir, device nodes,
    // unmounting its own view.
    let script = format!(
        "O={o}; cat /run/secrets/sa > $O/own; \
         cat /run/secrets/sb > $O/path 2>&1; \
         for p in /proc/[0-9]*; do cat $p/root/run/secrets/sb; cat $p/environ; done > $O/proc 2>&1; \
         cat {exec}/tasks/*/mnt/secrets/sb > $O/exec 2>&1; ls -A {exec} {data} > $O/ls 2>&1; \
         mknod $O/disk b 253 0 > $O/mknod 2>&1; echo rc=$? >> $O/mknod; \
         umount /run/secrets > $O/umount 2>&1; echo rc=$? >> $O/umount; \
         mkdir -p /tmp/esc-$$ && chroot /tmp/esc-$$ sh -c 'cd ../../../../../..; cat .{exec}/tasks/*/mnt/secrets/sb' > $O/chroot 2>&1; \
         (echo x > /bin/sk-written-$$) 2> $O/write; echo rc=$? >> $O/write; \
         grep '{exec}' /proc/self/mountinfo > $O/copies; \
         touch $O/done; exec sleep 1000",
        o = "/out",
        exec = d.exec_root().display(),
        data = d.data_dir().display(),
    );
    d.cli(&[
        "service",
        "create",
        "-d",
        "--name",
        "a",
        "--mount",
        &format!("type=bind,source={},target=/out", out.display()),
        "--secret",
        "sa",
        "busybox",
        "sh",
        "-c",
        &script,
    ])
    .ok();
    assert!(
        eventually(Duration::from_secs(15), || out.join("done").exists()),
        "{}",
        d.log()
    );
    assert_eq!(std::fs::read(out.join("own")).unwrap(), a);
    for f in ["path", "proc", "exec", "ls", "mknod", "umount", "chroot", "write"] {
        let text = std::fs::read(out.join(f)).unwrap();
        assert!(!leaks(&text, &b), "task a read b's secret via {f}");
    }
    // The task's root is its image: the host's exec root and data dir are
    // not there at all.
    let ls = std::fs::read_to_string(out.join("ls")).unwrap();
    for dir in [d.data_dir(), d.exec_root()] {
        assert!(
            ls.contains(&format!("{}: No such file or directory", dir.display())),
            "{ls}"
        );
    }
    assert!(std::fs::read_to_string(out.join("mknod")).unwrap().ends_with("rc=1\n"));
    assert!(!std::fs::read_to_string(out.join("umount")).unwrap().ends_with("rc=0\n"));
    assert!(!out.join("disk").exists());
    // No copy of another task's mount is in this task's namespace: the exec
    // root appears only with this task's own directory (its root's overlay
    // options, its /etc files).
    let copies = std::fs::read_to_string(out.join("copies")).unwrap();
    let prefix = format!("{}/tasks/", d.exec_root().display());
    let dirs: std::collections::BTreeSet<&str> = copies
        .lines()
        .flat_map(|l| l.split(prefix.as_str()).skip(1))
        .filter_map(|rest| rest.split(['/', ',', ' ']).next())
        .collect();
    let b_task = d
        .cli(&["service", "ps", "b", "-q", "--no-trunc"])
        .stdout
        .trim()
        .to_string();
    assert_eq!(dirs.len(), 1, "{copies}");
    assert!(!dirs.contains(b_task.as_str()), "{copies}");
    // A write to the task's root lands in its own upper directory: not on the
    // host, not in the image's shared layers.
    assert!(std::fs::read_to_string(out.join("write")).unwrap().ends_with("rc=0\n"));
    for dir in [Path::new("/bin").to_path_buf(), d.data_dir().join("images/layers")] {
        let planted = swarmkeep_tests::files_under(&dir)
            .iter()
            .any(|f| f.to_string_lossy().contains("sk-written-"));
        assert!(!planted, "written under {}", dir.display());
    }
}

/// The secret IDs of every "assignments received" log line of a node.
fn received_lines(d: &Daemon) -> Vec<String> {
    d.log()
        .lines()
        .filter(|l| l.contains("assignments received"))
        .map(str::to_string)
        .collect()
}

/// Every file in the node's task mounts, read from the host.
fn mounted_bytes(d: &Daemon) -> Vec<u8> {
    let mut all = Vec::new();
    for m in d.mounts() {
        for f in swarmkeep_tests::files_under(Path::new(&m)) {
            all.extend(std::fs::read(f).unwrap_or_default());
        }
    }
    all
}

#[test]
fn a_node_receives_only_the_secrets_its_tasks_reference() {
    let nodes = swarm(1, 1);
    let m1 = &nodes[0];
    let (x, y) = (marker("x"), marker("y"));
    m1.daemon.cli_stdin(&["secret", "create", "sx", "-"], Some(&x)).ok();
    m1.daemon.cli_stdin(&["secret", "create", "sy", "-"], Some(&y)).ok();
    let (xid, yid) = (secret_id(&m1.daemon, "sx"), secret_id(&m1.daemon, "sy"));
    assert!(eventually(Duration::from_secs(10), || {
        m1.cli(&["node", "ls", "--format", "{{.Status}}"]).stdout == "Ready\nReady\n"
    }));
    m1.cli(&[
        "service", "create", "-d", "--name", "sx", "--secret", "sx", "busybox", "sleep", "1000",
    ])
    .ok();
    let node_of_x = || {
        m1.cli(&["service", "ps", "sx", "--format", "{{.Node}}|{{.CurrentState}}"])
            .stdout
            .lines()
            .find(|l| l.contains("Running"))
            .map(|l| l.split('|').next().unwrap_or("").to_string())
    };
    assert!(eventually(Duration::from_secs(15), || node_of_x().is_some()));
    let holder = node_of_x().unwrap();
    let (with_x, without_x) = if holder == "m1" {
        (&nodes[0], &nodes[1])
    } else {
        (&nodes[1], &nodes[0])
    };
    m1.cli(&[
        "service", "create", "-d", "--name", "sy", "--mode", "global", "--secret", "sy", "busybox", "sleep", "1000",
    ])
    .ok();
    assert!(eventually(Duration::from_secs(15), || {
        m1.cli(&["service", "ls", "--format", "{{.Name}} {{.Replicas}}"]).stdout == "sx 1/1\nsy 2/2\n"
    }));
    assert!(eventually(Duration::from_secs(5), || without_x.daemon.mounts().len() == 1));
    // The node without an sx task got sy and never sx: not in what its
    // agent received, not in its mounts.
    let lines = received_lines(&without_x.daemon);
    assert!(lines.iter().any(|l| l.contains(&yid)), "{lines:?}");
    assert!(!lines.iter().any(|l| l.contains(&xid)), "{lines:?}");
    assert!(!leaks(&mounted_bytes(&without_x.daemon), &x));
    assert!(leaks(&mounted_bytes(&without_x.daemon), &y));
    assert!(received_lines(&with_x.daemon).iter().any(|l| l.contains(&xid)));
    assert!(leaks(&mounted_bytes(&with_x.daemon), &x));
    // When its last task leaves, the secret leaves the node's memory.
    m1.cli(&["service", "rm", "sx"]).ok();
    assert!(eventually(Duration::from_secs(10), || {
        received_lines(&with_x.daemon)
            .last()
            .is_some_and(|l| !l.contains(&xid) && l.contains(&yid))
    }));
    assert!(eventually(Duration::from_secs(5), || !leaks(
        &mounted_bytes(&with_x.daemon),
        &x
    )));
}

fn cluster_addr(d: &Daemon) -> String {
    d.cli(&["node", "inspect", "self", "--format", "{{.ManagerStatus.Addr}}"])
        .ok()
        .trim()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dispatcher_refuses_unassigned_secrets_and_foreign_identities() {
    let d = Daemon::start();
    d.init();
    let used = marker("used");
    d.cli_stdin(&["secret", "create", "used", "-"], Some(&used)).ok();
    d.cli_stdin(&["secret", "create", "unused", "-"], Some(&marker("unused")))
        .ok();
    d.cli(&[
        "service", "create", "-d", "--name", "s", "--secret", "used", "busybox", "sleep", "1000",
    ])
    .ok();
    assert!(eventually(Duration::from_secs(10), || d.mounts().len() == 1));
    let addr = cluster_addr(&d);
    let tls = NodeTls::load(&d.data_dir().join("tls")).unwrap();
    let key = SessionKey::generate();
    let mut client = DispatcherClient::new(tls.channel(&addr).unwrap());

    // The node's own identity gets the secret its task references, sealed
    // to the key it asked with…
    let resp = client
        .fetch_secret(FetchSecretRequest {
            id: secret_id(&d, "used"),
            public_key: key.public().to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    let sealed = resp.secret.unwrap();
    assert!(!leaks(&sealed.sealed, &used));
    let opened = key
        .opener(&resp.ephemeral_public_key)
        .unwrap()
        .open(&sealed.id, &sealed.sealed)
        .unwrap();
    assert_eq!(opened.expose(), used);
    // …and nothing else.
    let e = client
        .fetch_secret(FetchSecretRequest {
            id: secret_id(&d, "unused"),
            public_key: key.public().to_vec(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");

    // No client certificate: no session.
    let anonymous = pinned_channel(&addr, &tls.ca_pem).unwrap();
    let e = DispatcherClient::new(anonymous)
        .session(SessionRequest {
            public_key: key.public().to_vec(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");

    // A certificate from another swarm's CA (naming a node of its own) is
    // refused, however the client trusts our server.
    let other = Daemon::start();
    other.init();
    let foreign = NodeTls::load(&other.data_dir().join("tls")).unwrap();
    let forged = NodeTls {
        ca_pem: tls.ca_pem.clone(),
        cert_pem: foreign.cert_pem.clone(),
        key_pem: foreign.key_pem.clone(),
    };
    let result = match forged.channel(&addr) {
        Ok(ch) => DispatcherClient::new(ch)
            .fetch_secret(FetchSecretRequest {
                id: secret_id(&d, "used"),
                public_key: key.public().to_vec(),
            })
            .await
            .map(|_| ()),
        Err(e) => Err(tonic::Status::unavailable(e.to_string())),
    };
    assert!(result.is_err(), "a foreign certificate was accepted");
}

fn leak_scan(backend: &str) {
    let d = Daemon::start_with(&["--secrets-backend", backend], "trace");
    d.init();
    let value = marker(&format!("leak-{backend}"));
    d.cli_stdin(&["secret", "create", "m", "-"], Some(&value)).ok();
    d.cli(&[
        "service",
        "create",
        "-d",
        "--name",
        "s",
        "--secret",
        "m",
        "--secret",
        "source=m,target=/etc/m",
        "busybox",
        "sh",
        "-c",
        "cat /run/secrets/m /etc/m > /dev/null; exec sleep 1000",
    ])
    .ok();
    assert!(eventually(Duration::from_secs(10), || {
        d.cli(&["service", "ps", "s", "--format", "{{.CurrentState}}"])
            .stdout
            .starts_with("Running")
    }));
    // The task's mount holds the value (the scan would see a leak)…
    assert!(leaks(&mounted_bytes(&d), &value));
    // …and nothing outside it does: files, outputs, logs, environments.
    let mounts = d.mounts();
    for f in swarmkeep_tests::files_under_except(d.path(), &mounts) {
        if f.extension().is_some_and(|e| e == "log") {
            continue;
        }
        assert!(
            !leaks(&std::fs::read(&f).unwrap_or_default(), &value),
            "leak in {}",
            f.display()
        );
    }
    for args in [
        vec!["service", "inspect", "s"],
        vec!["service", "inspect", "--pretty", "s"],
        vec!["service", "ps", "--no-trunc", "s"],
        vec!["service", "ls"],
        vec!["secret", "inspect", "m"],
    ] {
        let out = d.cli(&args);
        assert!(
            !leaks(out.stdout.as_bytes(), &value) && !leaks(out.stderr.as_bytes(), &value),
            "{args:?}"
        );
    }
    let pid = d.pid().unwrap();
    assert!(!leaks(&std::fs::read(format!("/proc/{pid}/environ")).unwrap(), &value));
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
        assert!(!leaks(&cmdline, &value));
        if contains(&cmdline, b"sleep\x001000") {
            assert!(!leaks(
                &std::fs::read(p.path().join("environ")).unwrap_or_default(),
                &value
            ));
        }
    }
    d.cli(&["service", "rm", "s"]).ok();
    assert!(eventually(Duration::from_secs(5), || d.mounts().is_empty()));
    for f in swarmkeep_tests::files_under(d.path()) {
        assert!(
            !leaks(&std::fs::read(&f).unwrap_or_default(), &value),
            "leak in {}",
            f.display()
        );
    }
    let log = d.log();
    assert!(log.contains("TRACE"), "the scan covers trace-level logs");
    assert!(!leaks(log.as_bytes(), &value));
}

fn contains(h: &[u8], n: &[u8]) -> bool {
    h.windows(n.len()).any(|w| w == n)
}

#[test]
fn a_running_task_leaks_its_secret_nowhere_tmpfs() {
    leak_scan("tmpfs");
}

#[test]
fn a_running_task_leaks_its_secret_nowhere_fuse() {
    leak_scan("fuse");
}

/// A task's root is its image: a host file is not there, a secret target
/// under /tmp lands in the task's own root (the host's same path untouched),
/// and the shim's spec is not in any command line a task can read.
#[test]
fn a_task_sees_its_image_not_the_hosts_tree() {
    let d = Daemon::start();
    d.init();
    let value = marker("image-root");
    d.cli_stdin(&["secret", "create", "t", "-"], Some(&value)).ok();
    let tag = std::process::id();
    let host_file = format!("/tmp/sk-host-{tag}");
    let target = format!("/tmp/sk-target-{tag}");
    std::fs::write(&host_file, b"host").unwrap();
    let out = d.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let script = format!(
        "ls {host_file} > /out/host 2>&1; cat /etc/os-release > /out/osrel 2>&1; \
         cat {target} > /out/target; tr '\\0' ' ' < /proc/1/cmdline > /out/cmdline; \
         tr '\\0' ' ' < /proc/self/cmdline > /out/self; \
         (echo x > /planted-null) 2> /out/devnode; echo rc=$? >> /out/devnode; touch /out/done; exec sleep 1000"
    );
    d.cli(&[
        "service",
        "create",
        "-d",
        "--name",
        "img",
        "--mount",
        &format!("type=bind,source={},target=/out", out.display()),
        "--secret",
        &format!("source=t,target={target}"),
        "busybox",
        "sh",
        "-c",
        &script,
    ])
    .ok();
    assert!(
        eventually(Duration::from_secs(20), || out.join("done").exists()),
        "{}",
        d.log()
    );
    let _ = std::fs::remove_file(&host_file);
    let read = |f: &str| std::fs::read_to_string(out.join(f)).unwrap();
    assert!(read("host").contains("No such file or directory"), "{}", read("host"));
    assert!(read("osrel").contains("No such file or directory"), "{}", read("osrel"));
    assert_eq!(std::fs::read(out.join("target")).unwrap(), value);
    assert!(
        !std::path::Path::new(&target).exists(),
        "the target was made on the host"
    );
    assert_eq!(
        read("cmdline").trim(),
        format!("{} task-shim", swarmkeep_tests::daemon_binary().display())
    );
    assert!(!read("self").contains('{'), "{}", read("self"));
    // A device node the image carries cannot be opened (the root is nodev).
    assert!(read("devnode").contains("Permission denied"), "{}", read("devnode"));
}
