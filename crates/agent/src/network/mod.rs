//! A task's network: its own namespace (made by the executor), plugged into
//! the node's task bridge, and the `/etc/hostname`, `/etc/hosts` and
//! `/etc/resolv.conf` Docker writes for a container.

mod bridge;
mod dns;
mod firewall;
pub mod host_ports;
mod netns;
mod nft_netlink;
mod overlay;

pub use bridge::{Bridge, Endpoint};
pub use overlay::{OverlayAttachment, Overlays, internal_only};

use std::net::Ipv4Addr;

/// How a task is networked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum NetworkMode {
    /// Its own namespace on the node's task bridge (the default).
    #[default]
    Bridge,
    /// The host's namespace (`--network host`).
    Host,
}

/// Docker's `/etc/hosts` for a container: the fixed entries, the service's
/// extra hosts (`IP name [alias...]`, a line per name as dockerd writes
/// them), then the container's address and hostname (tab-separated).
pub fn hosts_file(address: Option<Ipv4Addr>, hostname: &str, extra: &[String]) -> String {
    let mut out = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
         ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    for line in extra {
        let mut fields = line.split_whitespace();
        if let Some(ip) = fields.next() {
            for name in fields {
                out.push_str(&format!("{ip}\t{name}\n"));
            }
        }
    }
    if let Some(a) = address {
        out.push_str(&format!("{a}\t{hostname}\n"));
    }
    out
}

/// Docker's `/etc/resolv.conf` on a bridge network: the host's, less its
/// loopback nameservers (unreachable from the task's namespace); Google's
/// if none is left.
pub fn resolv_conf(host: &str) -> String {
    let mut out = String::new();
    let mut servers = 0;
    for line in host.lines() {
        let trimmed = line.trim();
        if let Some(server) = trimmed.strip_prefix("nameserver") {
            let server = server.trim();
            if server.starts_with("127.") || server == "::1" {
                continue;
            }
            servers += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    if servers == 0 {
        out.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }
    out
}

/// Docker's `/etc/resolv.conf` for a container on a swarm network: the
/// embedded DNS server instead of the host's nameservers (it forwards to
/// them), the host's search domains and options, and `ndots:0`.
pub fn overlay_resolv_conf(host: &str) -> String {
    let mut out = String::new();
    let mut options = Vec::new();
    for line in host.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("nameserver") {
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix("options") {
            options.extend(
                rest.split_whitespace()
                    .filter(|o| !o.starts_with("ndots:"))
                    .map(str::to_string),
            );
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(&format!("nameserver {}\n", dns::ADDRESS));
    options.push("ndots:0".into());
    out.push_str(&format!("options {}\n", options.join(" ")));
    out
}

/// Docker's `--dns`, `--dns-search`, `--dns-option`: when any is given the
/// file is rebuilt as dockerd does (search, nameservers, options), each part
/// not given taken from `base`.
pub fn with_dns(base: &str, dns: &swarmkeep_api::control::DnsConfig) -> String {
    if dns.nameservers.is_empty() && dns.search.is_empty() && dns.options.is_empty() {
        return base.to_string();
    }
    let from_base = |key: &str| -> Vec<String> {
        base.lines()
            .filter_map(|l| l.trim().strip_prefix(key))
            .filter(|rest| rest.starts_with([' ', '\t']))
            .flat_map(|rest| rest.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .collect()
    };
    let pick = |given: &Vec<String>, key: &str| {
        if given.is_empty() {
            from_base(key)
        } else {
            given.clone()
        }
    };
    let (search, servers, options) = (
        pick(&dns.search, "search"),
        pick(&dns.nameservers, "nameserver"),
        pick(&dns.options, "options"),
    );
    let mut out = String::new();
    if !search.is_empty() && search.join(" ").trim() != "." {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    for s in servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_file_is_dockers() {
        assert_eq!(
            hosts_file(Some(Ipv4Addr::new(172, 17, 0, 2)), "f7ad820a6664", &[]),
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
             ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n172.17.0.2\tf7ad820a6664\n"
        );
    }

    #[test]
    fn extra_hosts_and_dns_as_dockerd_writes_them() {
        let hosts = hosts_file(Some(Ipv4Addr::new(10, 0, 0, 2)), "h", &["10.0.0.9 db db.local".into()]);
        assert!(
            hosts.ends_with("10.0.0.9\tdb\n10.0.0.9\tdb.local\n10.0.0.2\th\n"),
            "{hosts}"
        );
        let base = "search corp\nnameserver 10.1.1.1\noptions ndots:2\n";
        let dns = swarmkeep_api::control::DnsConfig {
            nameservers: vec!["10.9.9.9".into()],
            ..Default::default()
        };
        assert_eq!(
            with_dns(base, &dns),
            "search corp\nnameserver 10.9.9.9\noptions ndots:2\n"
        );
        assert_eq!(with_dns(base, &Default::default()), base);
    }

    #[test]
    fn a_swarm_networked_task_asks_the_embedded_server() {
        assert_eq!(
            overlay_resolv_conf("search corp\nnameserver 10.1.1.1\noptions ndots:2 edns0\n"),
            "search corp\nnameserver 127.0.0.11\noptions edns0 ndots:0\n"
        );
    }

    #[test]
    fn resolv_conf_drops_loopback_servers() {
        assert_eq!(resolv_conf("nameserver 10.255.255.53\n"), "nameserver 10.255.255.53\n");
        assert_eq!(
            resolv_conf("search example\nnameserver 127.0.0.53\n"),
            "search example\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
    }
}
