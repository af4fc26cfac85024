//! A task's network: its own namespace (made by the executor), plugged into
//! the node's task bridge, and the `/etc/hostname`, `/etc/hosts` and
//! `/etc/resolv.conf` Docker writes for a container.

mod bridge;
mod firewall;

pub use bridge::{Bridge, Endpoint};

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

/// Docker's `/etc/hosts` for a container: the fixed entries, then the
/// container's address and hostname (tab-separated, as Docker writes it).
pub fn hosts_file(address: Option<Ipv4Addr>, hostname: &str) -> String {
    let mut out = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
         ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_file_is_dockers() {
        assert_eq!(
            hosts_file(Some(Ipv4Addr::new(172, 17, 0, 2)), "f7ad820a6664"),
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
             ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n172.17.0.2\tf7ad820a6664\n"
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
