//! Ports a task publishes in host mode (`--publish mode=host`): the node's
//! port, on every address of the node, goes straight to the task's address
//! on the node's bridge (a DNAT of the bridge's firewall, see
//! [`super::firewall::publish`]) — only on the node running the task, the
//! client's address kept, unlike the routing mesh.
//!
//! While it is published the node holds the port (a socket bound to it in
//! the node's namespace, never listening): no other process of the node
//! takes it, and a port the spec leaves 0 is one the kernel picked from its
//! ephemeral range, as Docker's port allocator does.

use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;

use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, bind, getsockname, socket};
use swarmkeep_api::control::PortConfig;

/// A port the task has on its node, held while it is.
#[derive(Debug)]
pub struct Published {
    pub protocol: String,
    pub published: u16,
    pub target: u16,
    _hold: OwnedFd,
}

impl Published {
    /// As the task's `PortStatus` shows it.
    pub fn status(&self) -> PortConfig {
        PortConfig {
            name: String::new(),
            protocol: self.protocol.clone(),
            target_port: self.target.into(),
            published_port: self.published.into(),
            publish_mode: "host".into(),
        }
    }
}

/// The host-mode ports among a task's endpoint spec's.
pub fn wanted(ports: &[PortConfig]) -> Vec<PortConfig> {
    ports.iter().filter(|p| p.publish_mode == "host").cloned().collect()
}

/// Holds `port` (0: one the kernel picks) of `protocol` on the node.
fn hold(protocol: &str, port: u16) -> Result<(OwnedFd, u16), String> {
    let proto = super::firewall::host_protocol(protocol)?;
    let kind = if proto == "tcp" {
        SockType::Stream
    } else {
        SockType::Datagram
    };
    let fd = socket(AddressFamily::Inet, kind, SockFlag::SOCK_CLOEXEC, None)
        .map_err(|e| format!("reserving port {port}: {e}"))?;
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::from(std::net::SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)),
    )
    .map_err(|e| match e {
        nix::errno::Errno::EADDRINUSE => {
            format!("listen {proto}4 0.0.0.0:{port}: bind: address already in use")
        }
        e => format!("reserving port {port}: {e}"),
    })?;
    let bound: SockaddrIn =
        getsockname(std::os::fd::AsRawFd::as_raw_fd(&fd)).map_err(|e| format!("reserving port {port}: {e}"))?;
    Ok((fd, bound.port()))
}

/// Publishes the task's host-mode `ports` for its `address` on `bridge`;
/// on an error none stays published.
pub async fn publish(bridge: &str, address: Ipv4Addr, ports: &[PortConfig]) -> Result<Vec<Published>, String> {
    let mut done: Vec<Published> = Vec::new();
    for p in ports {
        let result = async {
            let asked = u16::try_from(p.published_port).map_err(|_| format!("invalid port {}", p.published_port))?;
            let target = u16::try_from(p.target_port).map_err(|_| format!("invalid port {}", p.target_port))?;
            let protocol = super::firewall::host_protocol(&p.protocol)?;
            let (fd, published) = hold(protocol, asked)?;
            super::firewall::publish(bridge, protocol, published, address, target).await?;
            Ok::<_, String>(Published {
                protocol: protocol.to_string(),
                published,
                target,
                _hold: fd,
            })
        }
        .await;
        match result {
            Ok(p) => done.push(p),
            Err(e) => {
                unpublish(bridge, &done).await;
                return Err(e);
            }
        }
    }
    Ok(done)
}

/// Takes back what [`publish`] did (the ports are let go when `published`
/// is dropped).
pub async fn unpublish(bridge: &str, published: &[Published]) {
    for p in published {
        super::firewall::unpublish(bridge, &p.protocol, p.published).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_port_is_not_handed_out_again() {
        let (fd, port) = hold("tcp", 0).unwrap();
        assert_ne!(port, 0);
        let again = hold("tcp", port).unwrap_err();
        assert_eq!(
            again,
            format!("listen tcp4 0.0.0.0:{port}: bind: address already in use")
        );
        drop(fd);
        // Let go with the task: the node can have it again.
        assert_eq!(hold("tcp", port).unwrap().1, port);
        assert!(hold("sctp", 0).unwrap_err().contains("sctp"));
    }

    #[test]
    fn only_host_mode_ports_are_the_nodes() {
        let port = |mode: &str| PortConfig {
            protocol: "tcp".into(),
            target_port: 80,
            published_port: 8080,
            publish_mode: mode.into(),
            ..Default::default()
        };
        assert_eq!(wanted(&[port("ingress"), port("host")]), vec![port("host")]);
    }
}
