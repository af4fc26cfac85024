//! The kernel's firewall for a task bridge, through `nft` (nftables):
//! - an `ip` table of the bridge's own: the outbound NAT (masquerade of the
//!   bridge's subnet leaving by any other interface), and a forward chain
//!   that drops traffic from this bridge to another agent's bridge and
//!   unsolicited traffic into this bridge from elsewhere (replies pass);
//! - a `bridge` table of its own against spoofing: a frame a task sends must
//!   carry its own MAC and IPv4 address (ARP included), as the set of
//!   endpoints says; anything but IPv4 and ARP is dropped — so a task with
//!   NET_RAW cannot poison a neighbour's ARP cache and read its traffic;
//! - the task ports published in host mode: a map from protocol and node
//!   port to the task's address and port, DNATed for every local address
//!   of the node (prerouting, and output for the node's own connections),
//!   let through the forward chain, and masqueraded when a task of the
//!   bridge reaches one through its node (hairpin);
//! - where Docker's iptables rules drop forwarded traffic by default, an
//!   accept for the bridge in Docker's `DOCKER-USER` chain, marked so it can
//!   be removed (a drop in our own chains still wins).
//!
//! Packets are forwarded by the kernel, never by a user-space process.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use super::nft_netlink::Op;

fn table(bridge: &str) -> String {
    // nft names: letters, digits, '_' (a bridge name has a '-').
    bridge.replace('-', "_")
}

fn marker(bridge: &str) -> String {
    format!("swarmkeep {bridge}")
}

async fn nft(script: &str) -> Result<String, String> {
    let mut child = tokio::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running nft (install nftables): {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .await
            .map_err(|e| format!("nft: {e}"))?;
    }
    let out = child.wait_with_output().await.map_err(|e| format!("nft: {e}"))?;
    if !out.status.success() {
        return Err(format!("nft: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Installs (again: idempotent) the bridge's NAT, forwarding and
/// anti-spoofing rules; `ports` is the name prefix of its veths' host ends.
pub async fn install(bridge: &str, subnet: String, ports: &str) -> Result<(), String> {
    let t = table(bridge);
    nft(&format!(
        "add table ip {t}\n\
         delete table ip {t}\n\
         table ip {t} {{\n\
           map host_ports {{ type inet_proto . inet_service : ipv4_addr . inet_service; }}\n\
           chain prerouting {{\n\
             type nat hook prerouting priority dstnat; policy accept;\n\
             fib daddr type local dnat ip to meta l4proto . th dport map @host_ports\n\
           }}\n\
           chain output {{\n\
             type nat hook output priority -100; policy accept;\n\
             fib daddr type local dnat ip to meta l4proto . th dport map @host_ports\n\
           }}\n\
           chain postrouting {{\n\
             type nat hook postrouting priority srcnat; policy accept;\n\
             ip saddr {subnet} ip daddr != {subnet} oifname != \"{bridge}\" masquerade\n\
             ip saddr {subnet} oifname \"{bridge}\" ct status dnat masquerade\n\
           }}\n\
           chain forward {{\n\
             type filter hook forward priority filter - 1; policy accept;\n\
             iifname \"{bridge}\" oifname \"swk-*\" oifname != \"{bridge}\" drop\n\
             oifname \"{bridge}\" ct status dnat accept\n\
             oifname \"{bridge}\" iifname != \"{bridge}\" ct state != {{ established, related }} drop\n\
           }}\n\
         }}\n\
         add table bridge {t}\n\
         delete table bridge {t}\n\
         table bridge {t} {{\n\
           set endpoints {{ type ifname . ether_addr . ipv4_addr; }}\n\
           chain prerouting {{\n\
             type filter hook prerouting priority -300; policy accept;\n\
             iifname \"{ports}*\" ether type arp iifname . ether saddr . arp saddr ip != @endpoints drop\n\
             iifname \"{ports}*\" ether type arp iifname . arp saddr ether . arp saddr ip != @endpoints drop\n\
             iifname \"{ports}*\" ether type ip iifname . ether saddr . ip saddr != @endpoints drop\n\
             iifname \"{ports}*\" ether type != {{ ip, arp }} drop\n\
           }}\n\
         }}\n"
    ))
    .await?;
    remove_docker_user(bridge).await;
    if nft("list chain ip filter DOCKER-USER\n").await.is_ok() {
        let m = marker(bridge);
        nft(&format!(
            "insert rule ip filter DOCKER-USER iifname \"{bridge}\" accept comment \"{m}\"\n\
             insert rule ip filter DOCKER-USER oifname \"{bridge}\" accept comment \"{m}\"\n"
        ))
        .await?;
    }
    Ok(())
}

/// Docker-USER rules of `bridge`, by handle.
async fn remove_docker_user(bridge: &str) {
    let Ok(listing) = tokio::process::Command::new("nft")
        .args(["-a", "list", "chain", "ip", "filter", "DOCKER-USER"])
        .output()
        .await
    else {
        return;
    };
    let needle = format!("comment \"{}\"", marker(bridge));
    let text = String::from_utf8_lossy(&listing.stdout);
    let script: String = text
        .lines()
        .filter(|l| l.contains(&needle))
        .filter_map(|l| l.rsplit_once("# handle ").map(|(_, h)| h.trim().to_string()))
        .map(|h| format!("delete rule ip filter DOCKER-USER handle {h}\n"))
        .collect();
    if !script.is_empty() {
        let _ = nft(&script).await;
    }
}

/// Publishes `published` (of `protocol`) on the node's addresses for the
/// task at `address`:`target`; refused, as dockerd words it, when another
/// task of this bridge has it.
pub async fn publish(
    bridge: &str,
    protocol: &str,
    published: u16,
    address: std::net::Ipv4Addr,
    target: u16,
) -> Result<(), String> {
    let t = table(bridge);
    let protocol = host_protocol(protocol)?;
    nft(&format!(
        "create element ip {t} host_ports {{ {protocol} . {published} : {address} . {target} }}\n"
    ))
    .await
    .map(drop)
    .map_err(|e| {
        if e.contains("File exists") {
            format!("Bind for 0.0.0.0:{published} failed: port is already allocated")
        } else {
            e
        }
    })
}

/// Takes back what [`publish`] did.
pub async fn unpublish(bridge: &str, protocol: &str, published: u16) {
    let Ok(protocol) = host_protocol(protocol) else { return };
    let t = table(bridge);
    if let Err(e) = nft(&format!(
        "delete element ip {t} host_ports {{ {protocol} . {published} }}\n"
    ))
    .await
    {
        tracing::debug!(published, error = %e, "removing a host-mode port");
    }
}

/// A host-mode port's protocol as nft (and the kernel's sockets) name it.
pub(super) fn host_protocol(protocol: &str) -> Result<&'static str, String> {
    match protocol {
        "" | "tcp" => Ok("tcp"),
        "udp" => Ok("udp"),
        other => Err(format!("cannot publish a {other:?} port")),
    }
}

/// Lets the task behind `port` send as `mac` and `ip` (and nothing else):
/// the port's element in the bridge's `endpoints` set, over netlink (see
/// [`super::nft_netlink`]: this is on every task's start).
pub async fn allow(bridge: &str, port: &str, mac: &[u8; 6], ip: std::net::Ipv4Addr) -> Result<(), String> {
    endpoint(Op::Add, bridge, port, mac, ip).await
}

/// Forgets what [`allow`] let through.
pub async fn forget(bridge: &str, port: &str, mac: &[u8; 6], ip: std::net::Ipv4Addr) {
    if let Err(e) = endpoint(Op::Delete, bridge, port, mac, ip).await {
        tracing::debug!(port, error = %e, "removing a port's firewall entry");
    }
}

async fn endpoint(op: Op, bridge: &str, port: &str, mac: &[u8; 6], ip: std::net::Ipv4Addr) -> Result<(), String> {
    let key = super::nft_netlink::endpoint_key(port, mac, ip)?;
    let t = table(bridge);
    tokio::task::spawn_blocking(move || super::nft_netlink::endpoint(op, &t, "endpoints", &key))
        .await
        .map_err(|e| e.to_string())?
}

/// The bridges (by name) that have tables of [`install`]'s here.
pub async fn bridges_with_rules() -> Vec<String> {
    let Ok(listing) = nft("list tables\n").await else {
        return Vec::new();
    };
    let mut names: Vec<String> = listing
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            match (f.next(), f.next(), f.next()) {
                (Some("table"), Some("ip" | "bridge"), Some(t)) if t.starts_with("swk_") => {
                    Some(t.replacen("swk_", "swk-", 1))
                }
                _ => None,
            }
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Removes everything [`install`] made for `bridge`.
pub async fn remove(bridge: &str) {
    let t = table(bridge);
    let _ = nft(&format!(
        "add table ip {t}\ndelete table ip {t}\nadd table bridge {t}\ndelete table bridge {t}\n"
    ))
    .await;
    remove_docker_user(bridge).await;
}
