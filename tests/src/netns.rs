//! Test hosts as network namespaces: each a node of a test swarm with its
//! own address, on a bridge of the test's own in this host's namespace (the
//! hosts' "switch"), which also carries the registry the hosts pull from.
//! Made by the test and removed when dropped; traffic stays among them.

use std::path::PathBuf;
use std::process::Command;

use crate::registry::{Registry, busybox_image};
use crate::{Daemon, SwarmNode};

/// The hosts of one [`TestHosts`]: a tag for their names and the N of
/// their subnet 172.31.N.0/24, from the test process's PID and a count of
/// the sets it made (tests of one process run side by side).
fn instance() -> (String, u8) {
    static MADE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let k = MADE.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let pid = std::process::id();
    (format!("swkt{pid}{}", k % 10), ((pid * 7 + k) % 200) as u8 + 20)
}

fn ip(args: &[&str]) -> std::process::Output {
    Command::new("ip")
        .args(args)
        .output()
        .expect("running ip (install iproute2)")
}

fn ip_ok(args: &[&str]) {
    let out = ip(args);
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Network namespaces `swkt<pid><k>-<i>` with addresses 172.31.N.(i+1), joined
/// by a bridge in the namespace `swkt<pid><k>-sw`, and a registry on this
/// host's leg into it, 172.31.N.254, holding the test images.
pub struct TestHosts {
    /// This host's leg into the switch.
    bridge: String,
    /// The switch's namespace, then the hosts'.
    names: Vec<String>,
    pub addrs: Vec<String>,
    registry: Option<Registry>,
}

impl TestHosts {
    pub fn new(count: usize) -> Self {
        let (tag, n) = instance();
        let bridge = tag.clone();
        let mut hosts = Self {
            bridge: bridge.clone(),
            names: Vec::new(),
            addrs: Vec::new(),
            registry: None,
        };
        // The switch: a bridge in a namespace of its own, where no firewall
        // (Docker's drops forwarded traffic in this host's) sees the frames.
        let switch = format!("{tag}-sw");
        ip_ok(&["netns", "add", &switch]);
        hosts.names.push(switch.clone());
        ip_ok(&["-n", &switch, "link", "add", "br0", "type", "bridge"]);
        // A switch: frames are bridged, never put through IP's firewall hooks.
        for hook in ["iptables", "ip6tables", "arptables"] {
            let out = Command::new("ip")
                .args(["netns", "exec", &switch, "sysctl", "-qw"])
                .arg(format!("net.bridge.bridge-nf-call-{hook}=0"))
                .output()
                .expect("running sysctl");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
        ip_ok(&["-n", &switch, "link", "set", "br0", "up"]);
        // This host's leg (the registry's address): traffic to it ends here.
        ip_ok(&[
            "link", "add", &bridge, "type", "veth", "peer", "name", "up0", "netns", &switch,
        ]);
        ip_ok(&["addr", "add", &format!("172.31.{n}.254/24"), "dev", &bridge]);
        ip_ok(&["link", "set", &bridge, "up"]);
        ip_ok(&["-n", &switch, "link", "set", "up0", "master", "br0", "up"]);
        for i in 0..count {
            let name = format!("{tag}-{i}");
            ip_ok(&["netns", "add", &name]);
            hosts.names.push(name.clone());
            let port = format!("p{i}");
            ip_ok(&[
                "-n", &switch, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &name,
            ]);
            ip_ok(&["-n", &switch, "link", "set", &port, "master", "br0", "up"]);
            let addr = format!("172.31.{n}.{}", i + 1);
            ip_ok(&["-n", &name, "link", "set", "lo", "up"]);
            ip_ok(&["-n", &name, "addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
            ip_ok(&["-n", &name, "link", "set", "eth0", "up"]);
            hosts.addrs.push(addr);
        }
        let registry = Registry::start_on(&format!("172.31.{n}.254"));
        for image in ["library/busybox:latest", "library/bb:latest"] {
            registry.push(image, busybox_image());
        }
        hosts.registry = Some(registry);
        hosts
    }

    /// Host `i`'s namespace, as a file to enter.
    pub fn netns(&self, i: usize) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.names[i + 1])
    }

    /// Host `i`'s namespace name (for `ip -n`).
    pub fn name(&self, i: usize) -> &str {
        &self.names[i + 1]
    }

    fn mirror(&self) -> String {
        format!(
            "http://{}",
            self.registry.as_ref().map(|r| r.addr()).unwrap_or_default()
        )
    }

    /// `ip -n <host i> ARGS`'s output.
    pub fn ip(&self, i: usize, args: &[&str]) -> String {
        let mut all = vec!["-n", self.names[i + 1].as_str()];
        all.extend_from_slice(args);
        String::from_utf8_lossy(&ip(&all).stdout).into_owned()
    }

    /// `nft list tables` in host `i`.
    pub fn nft_tables(&self, i: usize) -> String {
        self.nft(i, &["list", "tables"])
    }

    /// `nft ARGS`' output in host `i`.
    pub fn nft(&self, i: usize, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", self.name(i), "nft"])
            .args(args)
            .output()
            .expect("running nft (install nftables)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// This host's address on the hosts' network (the test's connections
    /// to them come from it).
    pub fn this_host(&self) -> String {
        let first = self.addrs.first().map(String::as_str).unwrap_or("172.31.0.1");
        format!("{}.254", first.rsplit_once('.').map_or(first, |(net, _)| net))
    }

    /// A second address on host `i`'s interface (172.31.N.(101 + i)), its
    /// own traffic still leaving from the first.
    pub fn second_address(&self, i: usize) -> String {
        let first = &self.addrs[i];
        let addr = format!(
            "{}.{}",
            first.rsplit_once('.').map_or(first.as_str(), |(net, _)| net),
            101 + i
        );
        ip_ok(&["-n", self.name(i), "addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
        addr
    }

    /// A swarm with a node per host: host 0 the manager (`m1`), the others
    /// workers (`w1`, `w2`, …), heartbeats every 500 ms.
    pub fn swarm(&self) -> Vec<SwarmNode> {
        self.swarm_with_data_path(&[])
    }

    /// As [`swarm`](Self::swarm), host `i` given `--data-path-addr
    /// data_path[i]` at init or join (where there is one).
    pub fn swarm_with_data_path(&self, data_path: &[String]) -> Vec<SwarmNode> {
        let mut nodes: Vec<SwarmNode> = Vec::new();
        for i in 0..self.addrs.len() {
            let name = if i == 0 { "m1".to_string() } else { format!("w{i}") };
            let daemon = Daemon::start_in_netns(&self.netns(i), &self.mirror(), &["--hostname", &name], "info");
            let node = SwarmNode {
                daemon,
                addr: format!("{}:2377", self.addrs[i]),
                name,
            };
            let data_path: Vec<&str> = data_path
                .get(i)
                .map(|a| vec!["--data-path-addr", a.as_str()])
                .unwrap_or_default();
            if i == 0 {
                let mut args = vec![
                    "swarm",
                    "init",
                    "--advertise-addr",
                    &node.addr,
                    "--listen-addr",
                    &node.addr,
                    "--dispatcher-heartbeat",
                    "500ms",
                ];
                args.extend(&data_path);
                node.cli(&args).ok();
            } else {
                let token = nodes[0]
                    .cli(&["swarm", "join-token", "-q", "worker"])
                    .ok()
                    .trim()
                    .to_string();
                let mut args = vec![
                    "swarm",
                    "join",
                    "--token",
                    &token,
                    "--advertise-addr",
                    &node.addr,
                    "--listen-addr",
                    &node.addr,
                ];
                args.extend(&data_path);
                args.push(&nodes[0].addr);
                let out = node.cli(&args);
                assert_eq!(out.ok(), "This node joined a swarm as a worker.\n");
            }
            nodes.push(node);
        }
        nodes
    }
}

impl Drop for TestHosts {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = ip(&["netns", "del", name]);
        }
        let _ = ip(&["link", "del", &self.bridge]);
    }
}
