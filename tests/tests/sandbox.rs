//! The task sandbox, Docker's defaults: what a root task sees of itself, and
//! the escapes an audit made from a task, replayed from inside one and
//! refused — `/proc/sys` writes, `mount`, `unshare`, the host's loopback
//! services, raw sockets on the host's interfaces, masked `/proc` files.

use std::path::PathBuf;
use std::time::Duration;

use swarmkeep_tests::{Daemon, eventually};

/// Runs `script` (busybox sh) as a service on `d` with `/out` bound to a
/// fresh directory; returns it once the script touched `/out/done`.
fn run(d: &Daemon, name: &str, script: &str, extra: &[&str]) -> PathBuf {
    let out = d.path().join(format!("out-{name}"));
    std::fs::create_dir_all(&out).unwrap();
    // Writable for a task running as another user than root.
    std::fs::set_permissions(&out, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let mount = format!("type=bind,source={},target=/out", out.display());
    let script = format!("{script}; touch /out/done; exec sleep 1000");
    let mut args = vec!["service", "create", "-d", "--name", name, "--mount", &mount];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["busybox", "sh", "-c", &script]);
    d.cli(&args).ok();
    assert!(
        eventually(Duration::from_secs(30), || out.join("done").exists()),
        "the task did not finish its script\n{}\n{}",
        d.cli(&["service", "ps", name, "--no-trunc"]).stdout,
        d.log()
    );
    out
}

fn read(out: &std::path::Path, f: &str) -> String {
    std::fs::read_to_string(out.join(f)).unwrap_or_else(|e| panic!("/out/{f}: {e}"))
}

fn field<'a>(status: &'a str, name: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
        .unwrap_or_else(|| panic!("no {name} in {status}"))
        .trim()
}

#[test]
fn a_default_task_gets_dockers_sandbox() {
    let d = Daemon::start();
    d.init();
    // A plaintext service on the host's loopback (an admin's TCP control
    // call, say): a task must not reach it.
    let host_service = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = host_service.local_addr().unwrap().port();
    let script = format!(
        "grep -E '^(Cap(Inh|Prm|Eff|Bnd)|NoNewPrivs|Seccomp):' /proc/self/status > /out/status; \
         hostname > /out/hostname; cat /etc/hostname > /out/etchostname; cat /etc/hosts > /out/hosts; \
         (echo x > /proc/sys/kernel/hostname) 2> /out/sysctl; \
         (mount -t tmpfs none /mnt) 2> /out/mount; echo rc=$? >> /out/mount; \
         (unshare -r -U true) 2> /out/unshare; echo rc=$? >> /out/unshare; \
         (unshare -n true) 2> /out/unshare-net; echo rc=$? >> /out/unshare-net; \
         for n in net uts ipc pid; do readlink /proc/self/ns/$n; done > /out/ns; \
         ip -o -4 addr > /out/addr; ip route > /out/route; \
         cat /proc/timer_list > /out/timer_list 2>&1; cat /proc/keys > /out/keys 2>&1; \
         (touch /sys/x) 2> /out/sys; \
         (nc -w 3 127.0.0.1 {port} < /dev/null) > /out/lo 2>&1; echo rc=$? >> /out/lo; \
         cat /proc/mounts > /out/mounts; \
         (mknod /dev/sda-copy b 8 0 && head -c 1 /dev/sda-copy) > /out/mknod 2>&1; echo rc=$? >> /out/mknod; \
         ping -c 1 -W 3 $(ip route | awk '/default/ {{print $3}}') > /out/ping 2>&1; echo rc=$? >> /out/ping"
    );
    let out = run(&d, "sandbox", &script, &[]);
    drop(host_service);

    // Docker's capability set less MKNOD for a root task; no_new_privs; seccomp.
    let status = read(&out, "status");
    for set in ["CapPrm", "CapEff", "CapBnd"] {
        assert_eq!(field(&status, set), "00000000a00425fb", "{set}: {status}");
    }
    assert_eq!(field(&status, "CapInh"), "0000000000000000", "{status}");
    assert_eq!(field(&status, "NoNewPrivs"), "1", "{status}");
    assert_eq!(field(&status, "Seccomp"), "2", "{status}");

    // Hostname = the container's short ID, in /etc/hostname and /etc/hosts.
    let hostname = read(&out, "hostname").trim().to_string();
    assert_eq!(hostname.len(), 12, "{hostname}");
    assert!(hostname.chars().all(|c| c.is_ascii_hexdigit()), "{hostname}");
    assert_eq!(read(&out, "etchostname").trim(), hostname);
    let hosts = read(&out, "hosts");
    assert!(
        hosts.starts_with("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"),
        "{hosts}"
    );
    let last = hosts.lines().last().unwrap();
    assert!(
        last.starts_with("10.213.") && last.ends_with(&format!("\t{hostname}")),
        "{hosts}"
    );

    // The escapes.
    assert!(
        read(&out, "sysctl").contains("Read-only file system"),
        "{}",
        read(&out, "sysctl")
    );
    let mount = read(&out, "mount");
    assert!(
        mount.to_lowercase().contains("permission denied") && !mount.contains("rc=0"),
        "{mount}"
    );
    let unshare = read(&out, "unshare");
    assert!(!unshare.contains("rc=0"), "{unshare}");
    assert!(
        !read(&out, "unshare-net").contains("rc=0"),
        "{}",
        read(&out, "unshare-net")
    );
    assert!(
        !read(&out, "lo").contains("rc=0"),
        "the host's loopback was reachable: {}",
        read(&out, "lo")
    );
    // Masked (this kernel may lack /proc/kcore; these two it has).
    assert_eq!(read(&out, "timer_list").trim(), "", "/proc/timer_list is not masked");
    assert_eq!(read(&out, "keys").trim(), "", "/proc/keys is not masked");
    assert!(
        read(&out, "sys").contains("Read-only file system"),
        "{}",
        read(&out, "sys")
    );
    // No CAP_MKNOD (and a node would be useless: every writable mount is nodev).
    assert!(!read(&out, "mknod").contains("rc=0"), "{}", read(&out, "mknod"));

    // Its own namespaces; its own address on the node's bridge.
    let ns = read(&out, "ns");
    for kind in ["net", "uts", "ipc", "pid"] {
        let host = std::fs::read_link(format!("/proc/self/ns/{kind}")).unwrap();
        let host = host.to_string_lossy();
        assert!(ns.contains(&format!("{kind}:[")), "{ns}");
        assert!(
            !ns.contains(&*host),
            "the task shares the host's {kind} namespace: {ns}"
        );
    }
    let addr = read(&out, "addr");
    assert!(addr.contains("eth0") && addr.contains("inet 10.213."), "{addr}");
    assert!(
        read(&out, "route").contains("default via 10.213."),
        "{}",
        read(&out, "route")
    );
    // NET_RAW works in its own namespace: ping of the bridge's gateway.
    assert!(read(&out, "ping").contains("rc=0"), "{}", read(&out, "ping"));
    let mounts = read(&out, "mounts");
    for expect in [
        "proc /proc/sys proc ro,",
        "sysfs /sys sysfs ro,",
        "devpts /dev/pts devpts rw,nosuid,noexec",
        "mqueue /dev/mqueue mqueue rw,nosuid,nodev,noexec",
        "shm /dev/shm tmpfs rw,nosuid,nodev,noexec",
        "tmpfs /dev tmpfs rw,nosuid,nodev",
    ] {
        assert!(mounts.contains(expect), "no {expect:?} in\n{mounts}");
    }
}

#[test]
fn seccomp_answers_as_dockers_profile() {
    let d = Daemon::start();
    d.init();
    // clone3 gets ENOSYS (libc falls back to clone, so fork works); chroot
    // is allowed (CAP_SYS_CHROOT); pivot_root and swapon are not.
    let script = "(sh -c 'echo forked') > /out/fork 2>&1; \
                  (chroot / true) > /out/chroot 2>&1; echo rc=$? >> /out/chroot; \
                  (mkdir -p /a /b && pivot_root /a /b) > /out/pivot 2>&1; echo rc=$? >> /out/pivot; \
                  (swapoff -a; swapon /x) > /out/swap 2>&1; echo rc=$? >> /out/swap";
    let out = run(&d, "seccomp", script, &[]);
    assert_eq!(read(&out, "fork").trim(), "forked");
    assert!(read(&out, "chroot").contains("rc=0"), "{}", read(&out, "chroot"));
    assert!(
        read(&out, "pivot").contains("Operation not permitted"),
        "{}",
        read(&out, "pivot")
    );
    assert!(!read(&out, "swap").contains("rc=0"), "{}", read(&out, "swap"));
}

/// The cgroup directory (v1 `pids` hierarchy, or the v2 one) whose
/// `pids.max` is `pids`.
fn cgroup_with_pids_max(pids: &str) -> Option<PathBuf> {
    ["/sys/fs/cgroup/pids/swarmkeep", "/sys/fs/cgroup/swarmkeep"]
        .iter()
        .filter_map(|p| std::fs::read_dir(p).ok())
        .flatten()
        .flatten()
        .map(|e| e.path())
        .find(|p| std::fs::read_to_string(p.join("pids.max")).is_ok_and(|s| s.trim() == pids))
}

#[test]
fn limits_hostname_and_read_only_root_are_honoured() {
    let d = Daemon::start();
    d.init();
    let pids = (4000 + std::process::id() % 1000).to_string();
    let script = "hostname > /out/hostname; tail -1 /etc/hosts > /out/hosts; \
                  (touch /x) 2> /out/root; echo rc=$? >> /out/root; \
                  (echo x > /out/written) 2> /out/bind; echo rc=$? >> /out/bind";
    let out = run(
        &d,
        "limited",
        script,
        &[
            "--hostname",
            "web1",
            "--read-only",
            "--limit-cpu",
            "0.5",
            "--limit-memory",
            "64m",
            "--limit-pids",
            &pids,
        ],
    );
    assert_eq!(read(&out, "hostname").trim(), "web1");
    assert!(
        read(&out, "hosts").trim().ends_with("\tweb1"),
        "{}",
        read(&out, "hosts")
    );
    assert!(
        read(&out, "root").contains("Read-only file system"),
        "{}",
        read(&out, "root")
    );
    // A bind mount stays writable on a read-only root.
    assert!(read(&out, "bind").contains("rc=0"), "{}", read(&out, "bind"));

    let dir = cgroup_with_pids_max(&pids).expect("the task's cgroup with its pids limit");
    let id = dir.file_name().unwrap().to_string_lossy().into_owned();
    if dir.starts_with("/sys/fs/cgroup/pids") {
        let v1 = |ctl: &str, file: &str| {
            std::fs::read_to_string(format!("/sys/fs/cgroup/{ctl}/swarmkeep/{id}/{file}")).unwrap()
        };
        assert_eq!(v1("memory", "memory.limit_in_bytes").trim(), "67108864");
        assert_eq!(v1("cpu", "cpu.cfs_quota_us").trim(), "50000");
        assert_eq!(v1("cpu", "cpu.cfs_period_us").trim(), "100000");
        assert!(v1("devices", "devices.list").contains("c 1:3 rwm"));
    } else {
        assert_eq!(
            std::fs::read_to_string(dir.join("memory.max")).unwrap().trim(),
            "67108864"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("cpu.max")).unwrap().trim(),
            "50000 100000"
        );
    }
    // The service shows what it was given, as Docker's.
    let inspect = d.cli(&["service", "inspect", "limited"]);
    let v: serde_json::Value = serde_json::from_str(inspect.ok()).unwrap();
    let t = &v[0]["Spec"]["TaskTemplate"];
    assert_eq!(t["ContainerSpec"]["Hostname"], "web1");
    assert_eq!(t["ContainerSpec"]["ReadOnly"], true);
    assert_eq!(t["Resources"]["Limits"]["NanoCPUs"], 500_000_000);
    assert_eq!(t["Resources"]["Limits"]["MemoryBytes"], 67_108_864);

    // Removing the service removes the task's cgroup.
    d.cli(&["service", "rm", "limited"]).ok();
    assert!(
        eventually(Duration::from_secs(20), || !dir.exists()),
        "the task's cgroup {} is left",
        dir.display()
    );
}

#[test]
fn a_task_over_its_memory_limit_is_oom_killed_with_dockers_exit_code() {
    let d = Daemon::start();
    d.init();
    d.cli(&[
        "service",
        "create",
        "-d",
        "--name",
        "hog",
        "--restart-condition",
        "none",
        "--limit-memory",
        "16m",
        "busybox",
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=64M",
        "count=1",
    ])
    .ok();
    assert!(
        eventually(Duration::from_secs(30), || {
            d.cli(&["service", "ps", "hog", "--no-trunc", "--format", "{{.Error}}"])
                .stdout
                .contains("task: non-zero exit (137)")
        }),
        "{}\n{}",
        d.cli(&["service", "ps", "hog", "--no-trunc"]).stdout,
        d.log()
    );
    assert!(d.log().contains("OOM"), "the agent did not log the OOM kill");
}

#[test]
fn bad_limits_get_swarms_errors() {
    let d = Daemon::start();
    d.init();
    let out = d.cli(&["service", "create", "-d", "--limit-memory", "1k", "busybox", "true"]);
    assert!(
        out.stderr.contains("invalid memory value 1024: Must be at least 4MiB"),
        "{}",
        out.stderr
    );
    let out = d.cli(&["service", "create", "-d", "--limit-cpu", "x", "busybox", "true"]);
    assert!(
        out.stderr.contains("failed to parse x as a rational number"),
        "{}",
        out.stderr
    );
    let out = d.cli(&["service", "create", "-d", "--limit-memory", "12q", "busybox", "true"]);
    assert!(out.stderr.contains("invalid size: '12q'"), "{}", out.stderr);
    assert_eq!(d.cli(&["service", "ls", "-q"]).stdout.trim(), "", "nothing was created");
}

#[test]
fn descriptors_the_daemon_inherited_never_reach_a_task() {
    // An audit escaped through a directory fd the daemon inherited: the task
    // (and an exec) got it, and /proc/self/fd/7 was the host's root.
    let d = Daemon::start_inheriting(std::path::Path::new("/"));
    d.init();
    let out = run(
        &d,
        "fds",
        "ls /proc/self/fd > /out/fds; ls /proc/self/fd/7/etc > /out/escape 2>&1",
        &[],
    );
    let fds: Vec<String> = read(&out, "fds").lines().map(str::to_string).collect();
    // 0, 1, 2 and the fd ls reads /proc/self/fd through.
    assert!(fds.len() <= 4 && !fds.contains(&"7".to_string()), "{fds:?}");
    assert!(
        read(&out, "escape").contains("No such file"),
        "{}",
        read(&out, "escape")
    );
}

/// Sends gratuitous ARP replies claiming `claim` for `mac` out of `eth0` in
/// the network namespace of process `pid`: what a task with NET_RAW can do
/// from its own namespace (sent from the test, the task image has no tool
/// that forges the sender address).
fn forge_arp_from(pid: u32, mac: [u8; 6], claim: [u8; 4]) -> Result<(), String> {
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).map_err(|e| e.to_string())?;
    std::thread::spawn(move || -> Result<(), String> {
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| e.to_string())?;
        // SAFETY: plain socket calls on buffers of the sizes passed.
        unsafe {
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, (libc::ETH_P_ARP as u16).to_be() as i32);
            if fd < 0 {
                return Err(std::io::Error::last_os_error().to_string());
            }
            let ifindex = libc::if_nametoindex(c"eth0".as_ptr());
            let mut frame = Vec::with_capacity(42);
            frame.extend_from_slice(&[0xff; 6]);
            frame.extend_from_slice(&mac);
            frame.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 2]);
            frame.extend_from_slice(&mac);
            frame.extend_from_slice(&claim);
            frame.extend_from_slice(&[0xff; 6]);
            frame.extend_from_slice(&claim);
            let mut addr: libc::sockaddr_ll = std::mem::zeroed();
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_protocol = (libc::ETH_P_ARP as u16).to_be();
            addr.sll_ifindex = ifindex as i32;
            addr.sll_halen = 6;
            addr.sll_addr[..6].copy_from_slice(&[0xff; 6]);
            for _ in 0..6 {
                libc::sendto(
                    fd,
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    (&addr as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                );
                std::thread::sleep(Duration::from_millis(500));
            }
            libc::close(fd);
        }
        Ok(())
    })
    .join()
    .map_err(|_| "panicked".to_string())?
}

#[test]
fn a_task_cannot_spoof_its_neighbours_gateway() {
    // An audit poisoned a neighbour's ARP cache with NET_RAW (claiming the
    // gateway's address) and read its traffic. Frames a task sends must
    // carry its own MAC and address.
    let d = Daemon::start();
    d.init();
    let out = d.path().join("out-arp");
    std::fs::create_dir_all(&out).unwrap();
    // Writable for a task running as another user than root.
    std::fs::set_permissions(&out, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let mount = format!("type=bind,source={},target=/out", out.display());
    let victim = "gw=$(ip route | awk '/default/ {print $3}'); echo $gw > /out/gw; \
         ping -c 1 -W 2 $gw > /dev/null; cat /proc/net/arp > /out/before; touch /out/victim-ready; \
         while [ ! -e /out/spoofed ]; do sleep 0.2; done; ping -c 1 -W 2 $gw > /dev/null; \
         cat /proc/net/arp > /out/after; touch /out/done; exec sleep 1000";
    d.cli(&[
        "service", "create", "-d", "--name", "victim", "--mount", &mount, "busybox", "sh", "-c", victim,
    ])
    .ok();
    let attacker = "ip link show eth0 | awk '/ether/ {print $2}' > /out/attacker-mac; exec sleep 1000";
    d.cli(&[
        "service", "create", "-d", "--name", "attacker", "--mount", &mount, "busybox", "sh", "-c", attacker,
    ])
    .ok();
    assert!(eventually(Duration::from_secs(40), || {
        out.join("victim-ready").exists() && out.join("attacker-mac").exists()
    }));
    let task = d
        .cli(&["service", "ps", "attacker", "-q", "--no-trunc"])
        .stdout
        .trim()
        .to_string();
    let pid = d.task_pid(&task);
    let mac_text = read(&out, "attacker-mac").trim().to_string();
    let mac: Vec<u8> = mac_text
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect();
    let gw: Vec<u8> = read(&out, "gw").trim().split('.').map(|o| o.parse().unwrap()).collect();
    forge_arp_from(pid, mac.clone().try_into().unwrap(), gw.clone().try_into().unwrap()).unwrap();
    std::fs::write(out.join("spoofed"), b"").unwrap();
    assert!(
        eventually(Duration::from_secs(20), || out.join("done").exists()),
        "{}",
        d.log()
    );
    let before = read(&out, "before");
    let after = read(&out, "after");
    assert!(!before.contains(&mac_text), "{before}");
    assert!(
        !after.contains(&mac_text),
        "the victim's ARP cache took the attacker's MAC:\n{after}"
    );
}

#[test]
fn container_options_shape_the_sandbox() {
    let d = Daemon::start();
    d.init();
    let host_ttl = std::fs::read_to_string("/proc/sys/net/ipv4/ip_default_ttl").unwrap();
    let host_shmmni = std::fs::read_to_string("/proc/sys/kernel/shmmni").unwrap();
    let script = "grep -E '^(CapEff|Groups):' /proc/self/status > /out/status; \
                  ip addr add 10.99.0.1/32 dev lo 2> /out/netadmin; echo rc=$? >> /out/netadmin; \
                  cat /proc/sys/net/ipv4/ip_default_ttl > /out/ttl; cat /proc/sys/kernel/shmmni > /out/shmmni; \
                  ulimit -n > /out/nofile; ulimit -Hn >> /out/nofile; \
                  cat /etc/hosts > /out/hosts; cat /etc/resolv.conf > /out/resolv; echo $HOME > /out/home; \
                  trap 'echo usr1 > /out/stopped; exit 0' USR1; touch /out/done; while :; do sleep 0.2; done";
    let out = run(
        &d,
        "opts",
        script,
        &[
            "--cap-add",
            "net_admin",
            "--cap-drop",
            "CHOWN",
            "--group",
            "1234",
            "--sysctl",
            "net.ipv4.ip_default_ttl=42",
            "--sysctl",
            "kernel.shmmni=1000",
            "--ulimit",
            "nofile=100:200",
            "--host",
            "db:10.9.9.9",
            "--dns",
            "10.1.1.1",
            "--dns-search",
            "corp.example",
            "--dns-option",
            "ndots:3",
            "--stop-signal",
            "SIGUSR1",
            "--container-label",
            "team=blue",
            "--health-cmd",
            "test -e /out/done",
            "--health-interval",
            "100ms",
            "--init",
        ],
    );
    let status = read(&out, "status");
    // Docker's defaults (less MKNOD) + NET_ADMIN - CHOWN.
    assert_eq!(field(&status, "CapEff"), "00000000a00435fa", "{status}");
    assert_eq!(field(&status, "Groups"), "1234", "{status}");
    assert!(read(&out, "netadmin").contains("rc=0"), "{}", read(&out, "netadmin"));
    assert_eq!(read(&out, "ttl").trim(), "42");
    assert_eq!(read(&out, "shmmni").trim(), "1000");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_default_ttl").unwrap(),
        host_ttl,
        "the node's own sysctl changed"
    );
    assert_eq!(std::fs::read_to_string("/proc/sys/kernel/shmmni").unwrap(), host_shmmni);
    assert_eq!(read(&out, "nofile"), "100\n200\n");
    assert!(
        read(&out, "hosts").contains("10.9.9.9\tdb\n"),
        "{}",
        read(&out, "hosts")
    );
    let resolv = read(&out, "resolv");
    assert!(
        resolv.starts_with("search corp.example\nnameserver 10.1.1.1\noptions ndots:3\n"),
        "{resolv}"
    );
    assert_eq!(read(&out, "home").trim(), "/root");
    let inspect = d.cli(&["service", "inspect", "opts"]);
    let v: serde_json::Value = serde_json::from_str(inspect.ok()).unwrap();
    let c = &v[0]["Spec"]["TaskTemplate"]["ContainerSpec"];
    assert_eq!(c["CapabilityAdd"][0], "CAP_NET_ADMIN");
    assert_eq!(c["CapabilityDrop"][0], "CAP_CHOWN");
    assert_eq!(c["Labels"]["team"], "blue");
    assert_eq!(c["Sysctls"]["net.ipv4.ip_default_ttl"], "42");
    assert_eq!(
        c["Ulimits"][0],
        serde_json::json!({"Name": "nofile", "Hard": 200, "Soft": 100})
    );
    assert_eq!(c["Hosts"][0], "10.9.9.9 db");
    assert_eq!(c["DNSConfig"]["Nameservers"][0], "10.1.1.1");
    assert_eq!(c["StopSignal"], "SIGUSR1");
    assert_eq!(
        c["Healthcheck"],
        serde_json::json!({"Test": ["CMD-SHELL", "test -e /out/done"], "Interval": 100_000_000})
    );
    assert_eq!(c["Init"], true);
    // Healthy (its probe ran inside it): Running.
    assert!(
        eventually(Duration::from_secs(20), || d
            .cli(&["service", "ps", "opts", "--format", "{{.CurrentState}}"])
            .stdout
            .starts_with("Running")),
        "{}",
        d.cli(&["service", "ps", "opts"]).stdout
    );
    // The stop signal is the service's.
    d.cli(&["service", "rm", "opts"]).ok();
    assert!(
        eventually(Duration::from_secs(20), || out.join("stopped").exists()),
        "the task never got SIGUSR1\n{}",
        d.log()
    );

    // A named user from the image's /etc/passwd, with its home.
    let out = run(
        &d,
        "nobody",
        "id -u > /out/id; id -g >> /out/id; echo $HOME >> /out/id",
        &["--user", "nobody"],
    );
    assert_eq!(read(&out, "id"), "65534\n65534\n/\n");
    d.cli(&[
        "service", "create", "-d", "--name", "ghost", "--user", "ghost", "busybox", "true",
    ])
    .ok();
    assert!(
        eventually(Duration::from_secs(20), || {
            d.cli(&["service", "ps", "ghost", "--no-trunc", "--format", "{{.Error}}"])
                .stdout
                .contains("unable to find user ghost: no matching entries in passwd file")
        }),
        "{}",
        d.cli(&["service", "ps", "ghost", "--no-trunc"]).stdout
    );
}

#[test]
fn bad_container_options_get_dockers_errors_and_create_nothing() {
    let d = Daemon::start();
    d.init();
    for (flags, error) in [
        (&["--cap-add", "NOPE"][..], "unknown capability: \"CAP_NOPE\""),
        (
            &["--sysctl", "kernel.core_pattern=|/tmp/x"],
            "sysctl 'kernel.core_pattern' is not whitelisted",
        ),
        (
            &["--sysctl", "net.ipv4/../../kernel/core_pattern=x"],
            "is not whitelisted",
        ),
        (&["--stop-signal", "SIGNOPE"], "Invalid signal: SIGNOPE"),
        (
            &["--ulimit", "nofile=10:5"],
            "ulimit soft limit must be less than or equal to hard limit: 10 > 5",
        ),
        (&["--host", "db:not-an-ip"], "invalid IP address in add-host"),
        (&["--dns", "dns.example"], "dns.example is not an ip address"),
    ] {
        let mut args = vec!["service", "create", "-d"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["busybox", "true"]);
        let out = d.cli(&args);
        assert!(out.stderr.contains(error), "{flags:?}: {}", out.stderr);
    }
    assert_eq!(d.cli(&["service", "ls", "-q"]).stdout.trim(), "", "nothing was created");
}

#[test]
fn volumes_and_tmpfs_mounts() {
    let d = Daemon::start();
    d.init();
    let volumes = d.data_dir().join("volumes");
    let script = "echo hello > /data/msg; echo x > /scratch/f; grep ' /cache ' /proc/mounts > /out/tmpfs; \
                  (dd if=/dev/zero of=/cache/big bs=1M count=2) 2> /out/full; echo rc=$? >> /out/full; \
                  ls /linked > /out/linked";
    let out = run(
        &d,
        "writer",
        script,
        &[
            "--mount",
            "type=volume,source=shared,target=/data",
            "--mount",
            "type=volume,target=/scratch",
            "--mount",
            "type=volume,source=tools,target=/bin",
            "--mount",
            "type=volume,source=linked,target=/var/etc-link",
            "--mount",
            "type=tmpfs,target=/cache,tmpfs-size=1m,tmpfs-mode=1770",
        ],
    );
    assert_eq!(
        std::fs::read_to_string(volumes.join("shared/_data/msg")).unwrap(),
        "hello\n"
    );
    // A new volume is filled with what the image has there.
    assert!(volumes.join("tools/_data/busybox").is_file());
    assert_eq!(
        std::fs::read_link(volumes.join("tools/_data/sh")).unwrap(),
        std::path::Path::new("busybox")
    );
    // Through the image's own symlink to /etc: the image's /etc, never the host's.
    let linked = volumes.join("linked/_data");
    assert!(linked.join("passwd").is_file(), "{}", read(&out, "linked"));
    assert!(
        !linked.join("shadow").exists(),
        "the host's /etc was copied into a volume"
    );
    assert!(
        std::fs::read_to_string(linked.join("passwd"))
            .unwrap()
            .contains("nobody:x:65534"),
        "not the image's passwd"
    );
    let tmpfs = read(&out, "tmpfs");
    for opt in ["nosuid", "nodev", "noexec", "size=1024k", "mode=1770"] {
        assert!(tmpfs.contains(opt), "{opt} missing: {tmpfs}");
    }
    assert!(read(&out, "full").contains("No space left"), "{}", read(&out, "full"));
    let names = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&volumes)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names().len(), 4, "{:?}", names());
    let inspect = d.cli(&["service", "inspect", "writer"]);
    let v: serde_json::Value = serde_json::from_str(inspect.ok()).unwrap();
    let mounts = &v[0]["Spec"]["TaskTemplate"]["ContainerSpec"]["Mounts"];
    // (`run` adds the /out bind first.)
    assert_eq!(mounts[5]["TmpfsOptions"]["SizeBytes"], 1_048_576);
    assert_eq!(mounts[1]["Source"], "shared");
    assert!(mounts[2].get("Source").is_none(), "{}", mounts[2]);
    // The anonymous volume goes with its task; named ones stay.
    d.cli(&["service", "rm", "writer"]).ok();
    assert!(
        eventually(Duration::from_secs(20), || names() == ["linked", "shared", "tools"]),
        "{:?}",
        names()
    );
    let out = run(
        &d,
        "reader",
        "cat /data/msg > /out/msg; (echo y > /data/x) 2> /out/ro",
        &["--mount", "type=volume,source=shared,target=/data,readonly"],
    );
    assert_eq!(read(&out, "msg"), "hello\n");
    assert!(
        read(&out, "ro").contains("Read-only file system"),
        "{}",
        read(&out, "ro")
    );
    for (mount, error) in [
        (
            "type=volume,source=../x,target=/d",
            "includes invalid characters for a local volume name",
        ),
        ("type=tmpfs,source=x,target=/d", "field Source must not be specified"),
        ("type=bind,target=/d", "field Source must not be empty"),
        (
            "type=bind,source=/tmp,target=/d,tmpfs-size=1m",
            "cannot mix 'tmpfs-*' options with mount type 'bind'",
        ),
        ("type=volume,source=v1,target=d", "mount path must be absolute"),
    ] {
        let out = d.cli(&["service", "create", "-d", "--mount", mount, "busybox", "true"]);
        assert!(out.stderr.contains(error), "{mount}: {}", out.stderr);
    }
}

/// The sandboxes this daemon's agent made ahead: (shim PID, cgroup name).
fn warm_sandboxes(d: &Daemon) -> Vec<(u32, String)> {
    let Ok(entries) = std::fs::read_dir(d.exec_root().join("warm")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid = std::fs::read_to_string(e.path().join("pid")).ok()?;
            let cgroup = std::fs::read_to_string(e.path().join("cgroup")).ok()?;
            Some((pid.split_whitespace().next()?.parse().ok()?, cgroup))
        })
        .collect()
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

fn pids_cgroup(name: &str) -> PathBuf {
    PathBuf::from("/sys/fs/cgroup/pids/swarmkeep").join(name)
}

/// A node that runs tasks keeps sandboxes made ahead (`--warm-sandboxes`,
/// 2 by default): a task that takes one gets its own limits, hostname,
/// address and namespaces, exactly as one made for it; the ones left end
/// with the daemon, and after a crash they end by themselves and the next
/// start removes their cgroups.
#[test]
fn tasks_from_sandboxes_made_ahead_are_sandboxed_as_their_own() {
    let mut d = Daemon::start();
    d.init();
    assert!(warm_sandboxes(&d).is_empty(), "sandboxes made before any task");
    let script = "hostname > /out/hostname; ip -o -4 addr show eth0 > /out/addr; \
                  readlink /proc/self/ns/net > /out/netns; readlink /proc/self/ns/mnt > /out/mntns";
    let first = run(&d, "first", script, &[]);
    assert!(
        eventually(Duration::from_secs(20), || warm_sandboxes(&d).len() == 2),
        "no sandboxes made ahead: {:?}\n{}",
        warm_sandboxes(&d),
        d.log()
    );
    let warm = warm_sandboxes(&d);
    let pids = (5000 + std::process::id() % 1000).to_string();
    let second = run(
        &d,
        "second",
        script,
        &["--hostname", "warm1", "--limit-pids", &pids, "--limit-memory", "64m"],
    );
    let task = d.cli(&["service", "ps", "second", "-q", "--no-trunc"]);
    let task_id = task.ok().lines().next().unwrap().trim().to_string();
    let pid = d.task_pid(&task_id);
    let (_, cgroup) = warm
        .iter()
        .find(|(p, _)| *p == pid)
        .unwrap_or_else(|| panic!("task shim {pid} is none of the sandboxes made ahead {warm:?}"));

    // Its own limits, on the cgroup it came with.
    let dir = cgroup_with_pids_max(&pids).expect("the task's cgroup with its pids limit");
    assert_eq!(dir.file_name().unwrap().to_string_lossy(), *cgroup);
    if dir.starts_with("/sys/fs/cgroup/pids") {
        let memory = format!("/sys/fs/cgroup/memory/swarmkeep/{cgroup}/memory.limit_in_bytes");
        assert_eq!(std::fs::read_to_string(memory).unwrap().trim(), "67108864");
    }
    // Its own hostname, address and namespaces.
    assert_eq!(read(&second, "hostname").trim(), "warm1");
    assert_eq!(read(&first, "hostname").trim().len(), 12);
    for f in ["addr", "netns", "mntns"] {
        assert!(!read(&second, f).is_empty(), "{f}");
        assert_ne!(read(&first, f), read(&second, f), "{f}");
    }
    assert!(
        read(&second, "addr").contains("inet 10.213."),
        "{}",
        read(&second, "addr")
    );

    // A clean stop ends the ones left and removes their cgroups.
    assert!(eventually(Duration::from_secs(20), || warm_sandboxes(&d).len() == 2));
    let left = warm_sandboxes(&d);
    d.stop();
    for (pid, cgroup) in &left {
        assert!(
            eventually(Duration::from_secs(10), || !alive(*pid)),
            "sandbox {pid} outlived the daemon"
        );
        if std::path::Path::new("/sys/fs/cgroup/pids/swarmkeep").exists() {
            assert!(!pids_cgroup(cgroup).exists(), "cgroup {cgroup} left");
        }
    }

    // A crash: they end by themselves (their spec pipe closes); the next
    // start removes their cgroups.
    d.restart();
    run(&d, "third", "true", &[]);
    assert!(eventually(Duration::from_secs(20), || warm_sandboxes(&d).len() == 2));
    let left = warm_sandboxes(&d);
    d.kill9();
    for (pid, _) in &left {
        assert!(
            eventually(Duration::from_secs(10), || !alive(*pid)),
            "sandbox {pid} outlived a crash"
        );
    }
    d.restart();
    for (_, cgroup) in &left {
        if std::path::Path::new("/sys/fs/cgroup/pids/swarmkeep").exists() {
            assert!(
                eventually(Duration::from_secs(10), || !pids_cgroup(cgroup).exists()),
                "cgroup {cgroup} left after a crash"
            );
        }
    }
}

/// The firewall flushed under a running node (`nft flush ruleset`, a
/// firewall reload): a task must not start without its port's anti-spoofing
/// entry — from a sandbox made ahead no more than from a fresh one.
#[test]
fn a_task_never_starts_without_its_anti_spoofing_entry() {
    let d = Daemon::start();
    d.init();
    run(&d, "first", "true", &[]);
    assert!(eventually(Duration::from_secs(20), || warm_sandboxes(&d).len() == 2));
    let log = d.log();
    let bridge = log
        .split("task bridge ready bridge=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the bridge's name in the log")
        .to_string();
    let table = bridge.replace('-', "_");
    let out = std::process::Command::new("nft")
        .args(["delete", "table", "bridge", &table])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    d.cli(&[
        "service",
        "create",
        "-d",
        "--name",
        "after",
        "--restart-condition",
        "none",
        "busybox",
        "sleep",
        "1000",
    ])
    .ok();
    assert!(
        eventually(Duration::from_secs(20), || d
            .cli(&[
                "service",
                "ps",
                "after",
                "--no-trunc",
                "--format",
                "{{.CurrentState}} {{.Error}}"
            ])
            .stdout
            .contains("firewall entry")),
        "{}\n{}",
        d.cli(&["service", "ps", "after", "--no-trunc"]).stdout,
        d.log()
    );
    assert!(
        !d.cli(&["service", "ps", "after", "--format", "{{.CurrentState}}"])
            .stdout
            .contains("Running")
    );
}

/// A crash between making a sandbox's cgroup and recording its shim: the
/// next start still finds the cgroup (named before it is made) and removes it.
#[test]
fn a_cgroup_made_before_a_crash_is_removed_at_the_next_start() {
    let mut d = Daemon::start();
    d.kill9();
    let name = format!("{:064x}", 0x5eed_0000_u64 + u64::from(std::process::id()));
    let dirs: Vec<PathBuf> = ["pids", "memory", "cpu"]
        .iter()
        .map(|c| PathBuf::from("/sys/fs/cgroup").join(c).join("swarmkeep").join(&name))
        .filter(|d| d.parent().unwrap().parent().unwrap().join("cgroup.procs").exists())
        .collect();
    let dirs = if dirs.is_empty() {
        vec![PathBuf::from("/sys/fs/cgroup/swarmkeep").join(&name)]
    } else {
        dirs
    };
    for dir in &dirs {
        std::fs::create_dir_all(dir).unwrap();
    }
    let record = d.exec_root().join("warm").join("warm-crashed");
    std::fs::create_dir_all(&record).unwrap();
    std::fs::write(record.join("cgroup"), &name).unwrap();
    d.restart();
    for dir in &dirs {
        assert!(
            eventually(Duration::from_secs(10), || !dir.exists()),
            "{} left\n{}",
            dir.display(),
            d.log()
        );
    }
    assert!(!record.exists());
}

/// Tasks on a node's bridge see each other's own addresses, as on Docker's
/// bridge: only traffic leaving the bridge is masqueraded. The rules of a
/// bridge that is gone (a NAT of the whole range, say) are removed when an
/// agent sets its bridge up.
#[test]
fn tasks_on_the_bridge_see_each_others_addresses() {
    let orphan = format!("swk_0{:09x}", std::process::id());
    let planted = std::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(
                format!(
                    "table ip {orphan} {{\n chain postrouting {{\n type nat hook postrouting priority srcnat; \
                     policy accept;\n ip saddr 10.213.0.0/16 masquerade\n }}\n}}\n"
                )
                .as_bytes(),
            )?;
            c.wait()
        })
        .unwrap();
    assert!(planted.success());
    let d = Daemon::start();
    d.init();
    let out = d.path().join("out-peers");
    std::fs::create_dir_all(&out).unwrap();
    let mount = format!("type=bind,source={},target=/out", out.display());
    let me = "ip -o -4 addr show eth0 | awk '{print $4}' | cut -d/ -f1";
    let server = format!(
        "{me} > /out/b.tmp && mv /out/b.tmp /out/b; nc -l -p 7000 > /out/got & \
         while ! grep -q hi /out/got 2>/dev/null; do sleep 0.1; done; netstat -tn > /out/conns; \
         touch /out/done; exec sleep 1000"
    );
    let client = format!(
        "{me} > /out/a; while [ ! -s /out/b ]; do sleep 0.1; done; (echo hi; sleep 20) | nc $(cat /out/b) 7000"
    );
    for (name, script) in [("server", &server), ("client", &client)] {
        d.cli(&[
            "service", "create", "-d", "--name", name, "--mount", &mount, "busybox", "sh", "-c", script,
        ])
        .ok();
    }
    assert!(
        eventually(Duration::from_secs(30), || out.join("done").exists()),
        "{}",
        d.log()
    );
    let tables = std::process::Command::new("nft")
        .args(["list", "tables"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&tables.stdout).contains(&orphan),
        "the orphan rules are still there"
    );
    let a = read(&out, "a");
    let conns = read(&out, "conns");
    assert!(
        conns.contains(&format!("{}:", a.trim())),
        "the server saw another address than the client's {a}: {conns}"
    );
}

/// `--tty` (ContainerSpec.TTY): the command's stdin, stdout and stderr are a
/// pseudo-terminal of the task's own devpts, its controlling terminal; what
/// it writes is the task's log; the agent's stop signal still reaches it.
#[test]
fn a_tty_task_runs_on_its_own_terminal() {
    let d = Daemon::start();
    d.init();
    d.cli(&[
        "service",
        "create",
        "-d",
        "--name",
        "term",
        "-t",
        "busybox",
        "sh",
        "-c",
        "tty; [ -t 0 ] && echo stdin-is-a-tty; grep -o 'devpts.*max=[0-9]*' /proc/mounts; \
         echo on-stderr >&2; exec sleep 1000",
    ])
    .ok();
    let inspect = d.cli(&["service", "inspect", "term"]);
    let v: serde_json::Value = serde_json::from_str(inspect.ok()).unwrap();
    assert_eq!(v[0]["Spec"]["TaskTemplate"]["ContainerSpec"]["TTY"], true);
    assert!(
        eventually(Duration::from_secs(30), || d
            .cli(&["service", "logs", "--raw", "term"])
            .stdout
            .contains("on-stderr")),
        "{}\n{}",
        d.cli(&["service", "logs", "term"]).stdout,
        d.log()
    );
    let logs = d.cli(&["service", "logs", "--raw", "term"]).stdout;
    // A terminal's output: \r\n line ends.
    assert!(logs.contains("/dev/pts/0\r\n"), "{logs:?}");
    assert!(logs.contains("stdin-is-a-tty\r\n"), "{logs:?}");
    // Its own devpts, capped: the kernel's pool of terminals is shared.
    assert!(logs.contains("max=64\r\n"), "{logs:?}");
    let task = d.cli(&["service", "ps", "term", "-q", "--no-trunc"]);
    let task_id = task.ok().lines().next().unwrap().trim().to_string();
    let pid = d.task_pid(&task_id);
    // The stop signal reaches the command (in its terminal's session) at
    // once, not after the 10 s grace period.
    let t = std::time::Instant::now();
    d.cli(&["service", "rm", "term"]).ok();
    assert!(
        eventually(Duration::from_secs(20), || !alive(pid)),
        "the task outlived its service"
    );
    assert!(t.elapsed() < Duration::from_secs(8), "stopped after {:?}", t.elapsed());

    // A pids limit that leaves PID 1 no thread for the relay: the output
    // still reaches the log and the task completes.
    d.cli(&[
        "service",
        "create",
        "-d",
        "--name",
        "starved",
        "-t",
        "--limit-pids",
        // The shim, PID 1 and the command.
        "3",
        "--restart-condition",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo hi-from-a-starved-tty",
    ])
    .ok();
    assert!(
        eventually(Duration::from_secs(30), || d
            .cli(&["service", "ps", "starved", "--format", "{{.CurrentState}}"])
            .stdout
            .starts_with("Complete")),
        "{}\n{}",
        d.cli(&["service", "ps", "starved", "--no-trunc"]).stdout,
        d.cli(&["service", "logs", "--raw", "starved"]).stdout
    );
    let logs = d.cli(&["service", "logs", "--raw", "starved"]).stdout;
    assert!(logs.contains("hi-from-a-starved-tty"), "{logs:?}");
    assert!(!logs.contains("panicked"), "{logs:?}");
}
