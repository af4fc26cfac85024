//! The swarm's networks through the unmodified docker CLI: the predefined
//! `host` network, listed and inspected as Docker shows it, not removable,
//! and `docker service create --network host` running a task in its node's
//! own network namespace (Docker's semantics) while the rest of its sandbox
//! stays.

use std::io::{Read, Write};
use std::time::Duration;

use swarmkeep_tests::{docker, eventually, free_addr};

use super::docker_swarm;

#[test]
fn a_service_on_the_host_network_shares_its_nodes_network_only() {
    if docker::skip() {
        return;
    }
    let (d, _) = docker_swarm();
    let ls = d.docker(&["network", "ls", "--format", "{{.Name}} {{.Driver}} {{.Scope}}"]);
    assert_eq!(
        ls.stdout,
        "bridge bridge local\ndocker_gwbridge bridge local\nhost host local\ningress overlay swarm\nnone null local\n",
        "a swarm node's networks (golden services-2.txt): {ls:?}"
    );
    let ls = d.docker(&["network", "ls"]);
    assert!(
        ls.stdout
            .starts_with("NETWORK ID     NAME              DRIVER    SCOPE\n"),
        "{ls:?}"
    );
    let host_id = d
        .docker(&[
            "network",
            "inspect",
            "host",
            "--format",
            "{{.Id}} {{.Driver}} {{.Scope}}",
        ])
        .stdout;
    let host_id = host_id.strip_suffix(" host local\n").expect(&host_id).to_string();
    assert_eq!(host_id.len(), 25, "{host_id}");
    let rm = d.docker(&["network", "rm", "host"]);
    assert_eq!(
        rm.stderr, "Error response from daemon: host is a pre-defined network and cannot be removed\nexit status 1\n",
        "as Docker's CLI prints it (golden services-2.txt)"
    );
    let ids = d.docker(&["network", "ls", "-q"]).stdout;
    assert!(ids.lines().any(|l| l == &host_id[..12]), "{ids}");
    // The swarmkeep CLI shows the swarm's networks the same way.
    let ours = d.cli(&["network", "ls"]);
    assert!(
        ours.stdout
            .contains(&format!("{}   host      host      local\n", &host_id[..12])),
        "{ours:?}"
    );
    assert!(ours.stdout.contains("   ingress   overlay   swarm\n"), "{ours:?}");

    // A network that does not exist: refused, nothing created.
    let out = d.docker(&[
        "service",
        "create",
        "--name",
        "nonet",
        "-d",
        "--no-resolve-image",
        "--network",
        "nope",
        "busybox",
        "true",
    ]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("network nope not found"), "{out:?}");
    let out = d.cli(&[
        "service",
        "create",
        "-d",
        "--name",
        "alias",
        "--no-resolve-image",
        "--network",
        "name=host,alias=x",
        "busybox",
        "true",
    ]);
    assert_eq!(
        out.stderr,
        "Error response from daemon: rpc error: code = InvalidArgument desc = network-scoped aliases are only supported for user-defined networks\n"
    );
    // The host's own network sysctls are not a task's (runc's words).
    let forward = std::fs::read_to_string("/proc/sys/net/ipv4/conf/lo/forwarding").unwrap();
    let flipped = if forward.trim() == "1" { "0" } else { "1" };
    let sysctl = format!("net.ipv4.conf.lo.forwarding={flipped}");
    let out = d.docker(&[
        "service",
        "create",
        "--name",
        "sysctl",
        "-d",
        "--no-resolve-image",
        "--network",
        "host",
        "--sysctl",
        &sysctl,
        "busybox",
        "true",
    ]);
    assert_eq!(
        out.stderr,
        "Error response from daemon: rpc error: code = InvalidArgument desc = sysctl \"net.ipv4.conf.lo.forwarding\" is not allowed in the hosts network namespace\n",
        "{out:?}"
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/conf/lo/forwarding").unwrap(),
        forward
    );
    assert_eq!(d.docker(&["service", "ls", "-q"]).stdout, "");

    // A web server on the host network answers on the host's loopback.
    let addr = free_addr("127.0.0.1");
    let out = d.docker(&[
        "service",
        "create",
        "--name",
        "hostweb",
        "-d",
        "--no-resolve-image",
        "--network",
        "host",
        "busybox",
        "httpd",
        "-f",
        "-p",
        &addr,
        "-h",
        "/etc",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    let targets = d.docker(&[
        "service",
        "inspect",
        "hostweb",
        "--format",
        "{{json .Spec.TaskTemplate.Networks}}",
    ]);
    assert_eq!(targets.stdout.trim(), format!(r#"[{{"Target":"{host_id}"}}]"#));
    let mut name = String::new();
    assert!(
        eventually(Duration::from_secs(30), || {
            name = d.docker(&["ps", "--format", "{{.Names}}"]).stdout.trim().to_string();
            name.starts_with("hostweb.1.")
        }),
        "{}\n{}",
        d.docker(&["service", "ps", "hostweb", "--no-trunc"]).stdout,
        d.log()
    );
    let hostname = nix::unistd::gethostname().unwrap().into_string().unwrap();
    let mut page = String::new();
    assert!(
        eventually(Duration::from_secs(10), || {
            page = get(&addr, "/hostname").unwrap_or_default();
            page.starts_with("HTTP/1.")
        }),
        "nothing answered on {addr}"
    );
    assert!(page.ends_with(&format!("\r\n\r\n{hostname}\n")), "{page}");
    let mode = d.docker(&[
        "inspect",
        &name,
        "--format",
        "{{.HostConfig.NetworkMode}} {{.State.Pid}}",
    ]);
    let (mode, pid) = mode.stdout.trim().split_once(' ').unwrap();
    assert_eq!(mode, "host");
    let netns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    assert_eq!(
        netns(pid),
        netns("self"),
        "the task is not in the host's network namespace"
    );
    assert_ne!(
        std::fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap(),
        std::fs::read_link("/proc/self/ns/mnt").unwrap()
    );
    assert_eq!(d.docker(&["exec", &name, "hostname"]).stdout.trim(), hostname);

    // Still its own root and sandbox: no host socket, no host file, no new
    // privilege; and no NET_RAW (a raw socket on the node's loopback would
    // read other services' registry logins), unlike Docker's.
    let probe = d.docker(&[
        "exec",
        &name,
        "sh",
        "-c",
        &format!(
            "ls {} /run/docker.sock /etc/shadow-host 2>&1; grep -E '^(CapEff|Seccomp):' /proc/self/status",
            d.socket().display()
        ),
    ]);
    assert!(probe.stdout.contains("No such file or directory"), "{probe:?}");
    assert!(!probe.stdout.contains("docker.sock\n"), "{probe:?}");
    assert!(
        probe.stdout.ends_with("CapEff:\t00000000a00405fb\nSeccomp:\t2\n"),
        "{probe:?}"
    );
}

/// A plain HTTP/1.0 GET on `addr`: the whole answer.
fn get(addr: &str, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// The walkthrough's overlay commands through the unmodified docker CLI, as
/// golden/services-2.txt recorded them on a real swarm.
#[test]
fn overlay_network_commands_match_golden() {
    if docker::skip() {
        return;
    }
    let (d, _) = docker_swarm();
    docker::assert_golden("services-2.txt", "docker network ls", d.docker(&["network", "ls"]).ok());
    let created = d.docker(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--subnet",
        "10.255.9.0/24",
        "myoverlay",
    ]);
    docker::assert_golden(
        "services-2.txt",
        "docker network create -d overlay --subnet 10.255.9.0/24 myoverlay",
        created.ok(),
    );
    d.docker(&[
        "service",
        "create",
        "--name",
        "server",
        "--replicas",
        "2",
        "--network",
        "myoverlay",
        "-d",
        "bb:latest",
        "sleep",
        "1000000",
    ])
    .ok();
    let vips = d.docker(&[
        "service",
        "inspect",
        "--format",
        "{{json .Endpoint.VirtualIPs}}",
        "server",
    ]);
    docker::assert_golden(
        "services-2.txt",
        "docker service inspect --format \"{{json .Endpoint.VirtualIPs}}\" server",
        vips.ok(),
    );
    assert!(
        vips.stdout.contains(created.stdout.trim()),
        "the VIP is on myoverlay: {vips:?}"
    );
    let ipam = d.docker(&[
        "network",
        "inspect",
        "myoverlay",
        "--format",
        "{{json .IPAM}} {{.Driver}} {{.Scope}}",
    ]);
    docker::assert_golden(
        "services-2.txt",
        "docker network inspect myoverlay --format \"{{json .IPAM}} {{.Driver}} {{.Scope}}\"",
        ipam.ok(),
    );
    let rm = d.docker(&["network", "rm", "myoverlay"]);
    docker::assert_golden("services-2.txt", "docker network rm myoverlay", &rm.stderr);
    assert_ne!(rm.code, 0);
    assert!(
        d.docker(&["network", "ls", "--format", "{{.Name}}"])
            .ok()
            .contains("myoverlay"),
        "nothing removed"
    );
    // Once the service is gone it goes.
    d.docker(&["service", "rm", "server"]).ok();
    d.docker(&["network", "rm", "myoverlay"]).ok();
}
