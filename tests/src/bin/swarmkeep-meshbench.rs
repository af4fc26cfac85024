//! `swarmkeep-meshbench [--seconds N]` (root): the routing mesh against a
//! direct connection, on a three-node swarm whose nodes are network
//! namespaces (made here, removed at the end). A service `web` (busybox
//! httpd, one replica on w1) publishes 8080; from w1's namespace the
//! client connects
//! - directly: to the task's address on w1's task bridge, port 80;
//! - through the mesh at w1's own address, port 8080 (w1's mesh, then its
//!   ingress bridge to the task);
//! - to m1's address, port 8081, published in host mode by a task of its
//!   own on m1 (the same server): a connection to a task on another node
//!   without the mesh;
//! - through the mesh at m1's address, port 8080 (m1 runs no task of `web`:
//!   the connection crosses m1's mesh and the ingress overlay's VXLAN to w1).
//!
//! It prints connections per second (a small page, one connection each) and
//! throughput (a 16 MiB file), both ways, and the mesh/direct ratios; then
//! the time from `service scale web=2` to the new replica answering through
//! the mesh. Figures are from one run on a shared machine: compare the
//! ratios, not the absolute numbers.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use swarmkeep_tests::eventually;
use swarmkeep_tests::netns::TestHosts;

/// Runs `work` on a thread inside the network namespace `ns`.
fn in_netns<T: Send + 'static>(ns: &Path, work: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = std::fs::File::open(ns).expect("the namespace");
    std::thread::spawn(move || {
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("entering the namespace");
        work()
    })
    .join()
    .expect("the client thread")
}

/// `GET path` at `addr`: the body's length and its first line.
fn get(addr: SocketAddr, path: &str) -> std::io::Result<(usize, String)> {
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)?;
    let at = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(answer.len(), |p| p + 4);
    let body = &answer[at..];
    let first = String::from_utf8_lossy(body)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    Ok((body.len(), first))
}

/// (connections/s, MiB/s) to `addr` over `seconds` each.
fn measure(ns: &Path, addr: SocketAddr, seconds: f64) -> (f64, f64) {
    in_netns(ns, move || {
        let t0 = Instant::now();
        let mut n = 0u64;
        while t0.elapsed().as_secs_f64() < seconds {
            get(addr, "/").expect("a page");
            n += 1;
        }
        let cps = n as f64 / t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let mut bytes = 0usize;
        while t0.elapsed().as_secs_f64() < seconds {
            bytes += get(addr, "/big").expect("the file").0;
        }
        (cps, bytes as f64 / (1 << 20) as f64 / t0.elapsed().as_secs_f64())
    })
}

/// A service `name` of one busybox httpd (a page with its hostname and a
/// 16 MiB file) placed by `constraint`, publishing `publish`.
fn serve(m: &swarmkeep_tests::SwarmNode, name: &str, constraint: &str, publish: &str) {
    m.cli(&[
        "service",
        "create",
        "-d",
        "--no-resolve-image",
        "--name",
        name,
        "--constraint",
        constraint,
        "--publish",
        publish,
        "bb:latest",
        "sh",
        "-c",
        "mkdir -p /www && hostname > /www/index.html && dd if=/dev/zero of=/www/big bs=1M count=16 2>/dev/null \
         && exec httpd -f -p 80 -h /www",
    ])
    .ok();
}

fn main() {
    let seconds: f64 = std::env::args()
        .skip_while(|a| a != "--seconds")
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let hosts = TestHosts::new(3);
    let nodes = hosts.swarm();
    let m = &nodes[0];
    assert!(eventually(Duration::from_secs(30), || {
        swarmkeep_tests::node_rows(m).iter().all(|r| r.1 == "Ready")
    }));
    serve(m, "web", "node.hostname==w1", "8080:80");
    // The same server on m1, its port published on m1 only (host mode): a
    // connection from w1 crossing to a task on another node without the
    // mesh, the baseline for the mesh's cross-node case.
    serve(m, "far", "node.hostname==m1", "mode=host,target=80,published=8081");
    let w1 = &nodes[1];
    let mesh: SocketAddr = format!("{}:8080", hosts.addrs[0]).parse().unwrap();
    let w1_ns = hosts.netns(1);
    let ready = eventually(Duration::from_secs(60), || {
        let ns = w1_ns.clone();
        in_netns(&ns, move || get(mesh, "/big").is_ok_and(|(n, _)| n == 16 << 20))
    });
    assert!(ready, "the service did not answer through the mesh");
    let name = w1.cli(&["ps", "--format", "{{.Names}}"]).ok().trim().to_string();
    let ip = w1
        .cli(&[
            "exec",
            &name,
            "sh",
            "-c",
            "ip -o -4 addr show eth0 | awk '{print $4}' | cut -d/ -f1",
        ])
        .ok()
        .trim()
        .to_string();
    let direct: SocketAddr = format!("{ip}:80").parse().unwrap();
    // Warm both paths, then measure, direct first.
    measure(&w1_ns, direct, 0.5);
    measure(&w1_ns, mesh, 0.5);
    let local: SocketAddr = format!("{}:8080", hosts.addrs[1]).parse().unwrap();
    measure(&w1_ns, local, 0.5);
    let far: SocketAddr = format!("{}:8081", hosts.addrs[0]).parse().unwrap();
    let far_ready = eventually(Duration::from_secs(60), || {
        let ns = w1_ns.clone();
        in_netns(&ns, move || get(far, "/big").is_ok_and(|(n, _)| n == 16 << 20))
    });
    assert!(far_ready, "the host-mode port on m1 did not answer");
    measure(&w1_ns, far, 0.5);
    let (d_cps, d_mib) = measure(&w1_ns, direct, seconds);
    let (l_cps, l_mib) = measure(&w1_ns, local, seconds);
    let (f_cps, f_mib) = measure(&w1_ns, far, seconds);
    let (m_cps, m_mib) = measure(&w1_ns, mesh, seconds);
    println!("                     direct   mesh (task's node)   task on m1 (host port)   mesh (m1, over VXLAN)");
    println!(
        "connections/s  {d_cps:11.0}  {l_cps:10.0} ({:.2})  {f_cps:14.0} ({:.2})  {m_cps:12.0} ({:.2}; {:.2} of m1's host port)",
        l_cps / d_cps,
        f_cps / d_cps,
        m_cps / d_cps,
        m_cps / f_cps
    );
    println!(
        "MiB/s          {d_mib:11.0}  {l_mib:10.0} ({:.2})  {f_mib:14.0} ({:.2})  {m_mib:12.0} ({:.2}; {:.2} of m1's host port)",
        l_mib / d_mib,
        f_mib / d_mib,
        m_mib / d_mib,
        m_mib / f_mib
    );
    // Scale-up to traffic: the second replica's hostname answers.
    let first = in_netns(&w1_ns, move || get(mesh, "/").expect("a page").1);
    let t0 = Instant::now();
    m.cli(&["service", "scale", "-d", "web=2"]).ok();
    let served = eventually(Duration::from_secs(60), || {
        let ns = w1_ns.clone();
        let first = first.clone();
        in_netns(&ns, move || get(mesh, "/").is_ok_and(|(_, host)| host != first))
    });
    assert!(served, "the new replica never answered");
    println!(
        "scale-up to traffic: {:.2} s (service scale to the new replica answering through the mesh)",
        t0.elapsed().as_secs_f64()
    );
}
