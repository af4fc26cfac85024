//! The addresses a node uses, as Docker's flags take them: `--listen-addr`,
//! `--advertise-addr` (probed from the default route when not given), the
//! remote manager of `swarm join`; and what the node says about its host.

use std::net::{IpAddr, SocketAddr};

use swarmkeep_api::errors::plain;

use crate::cluster::server::BAD_DATA_PATH_ADDR;
use swarmkeep_store::objects::NodeDescription;
use tonic::{Code, Status};

/// Swarm's default cluster port.
pub const DEFAULT_PORT: u16 = 2377;

/// `IP[:PORT]`, as Docker's `--advertise-addr` and `--listen-addr` take it.
pub fn parse_addr(text: &str, default_port: u16) -> Result<SocketAddr, ()> {
    if let Ok(sa) = text.parse::<SocketAddr>() {
        return Ok(sa);
    }
    let ip: IpAddr = text
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| ())?;
    Ok(SocketAddr::new(ip, default_port))
}

/// A manager's address as `swarm join` takes it: `IP[:PORT]` or `HOST[:PORT]`.
pub(super) async fn resolve_remote(remote: &str) -> Result<String, Status> {
    if let Ok(addr) = parse_addr(remote, DEFAULT_PORT) {
        return Ok(addr.to_string());
    }
    let with_port = if remote.contains(':') {
        remote.to_string()
    } else {
        format!("{remote}:{DEFAULT_PORT}")
    };
    let invalid = || plain(Code::InvalidArgument, format!("invalid remote address {remote}"));
    let mut addrs = tokio::net::lookup_host(with_port).await.map_err(|_| invalid())?;
    addrs.next().map(|a| a.to_string()).ok_or_else(invalid)
}

pub(super) fn addresses(advertise_addr: &str, listen_addr: &str) -> Result<(SocketAddr, SocketAddr), Status> {
    let listen = parse_addr(
        if listen_addr.is_empty() { "0.0.0.0" } else { listen_addr },
        DEFAULT_PORT,
    )
    .map_err(|_| plain(Code::InvalidArgument, format!("invalid listen address {listen_addr}")))?;
    Ok((choose_advertise_addr(advertise_addr, listen)?, listen))
}

fn choose_advertise_addr(advertise: &str, listen: SocketAddr) -> Result<SocketAddr, Status> {
    let bad = || {
        plain(
            Code::InvalidArgument,
            "advertise address must be a non-zero IP address or network interface (with optional port number)",
        )
    };
    if !advertise.is_empty() {
        let addr = parse_addr(advertise, listen.port()).map_err(|_| bad())?;
        if addr.ip().is_unspecified() {
            return Err(bad());
        }
        return Ok(addr);
    }
    if !listen.ip().is_unspecified() {
        return Ok(listen);
    }
    Ok(SocketAddr::new(
        default_route_ip().unwrap_or(IpAddr::from([127, 0, 0, 1])),
        listen.port(),
    ))
}

/// The IPv4 address of the interface that holds the default route, read from
/// `/proc/net/route` and the interface list (no packet is sent).
fn default_route_ip() -> Option<IpAddr> {
    let routes = std::fs::read_to_string("/proc/net/route").ok()?;
    let iface = routes
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[1] == "00000000")
        .map(|f| f[0].to_string())?;
    nix::ifaddrs::getifaddrs().ok()?.find_map(|ifa| {
        if ifa.interface_name != iface {
            return None;
        }
        ifa.address.as_ref()?.as_sockaddr_in().map(|sin| IpAddr::V4(sin.ip()))
    })
}

/// `--data-path-addr` as dockerd resolves it: an interface name (its one IPv4
/// address, else its one IPv6 address) or a non-zero IP, without a port;
/// empty when not given. Overlay networks here are IPv4, so an IPv6 address
/// is refused by name.
pub(super) fn resolve_data_path_addr(text: &str) -> Result<String, Status> {
    if text.is_empty() {
        return Ok(String::new());
    }
    let invalid = |m: String| plain(Code::InvalidArgument, m);
    let ip = match interface_addr(text)? {
        Some(ip) => ip,
        None => match text.parse::<IpAddr>() {
            Ok(ip) if !ip.is_unspecified() => ip,
            _ => return Err(invalid(BAD_DATA_PATH_ADDR.into())),
        },
    };
    match ip {
        IpAddr::V4(v4) if v4.is_multicast() || v4.is_broadcast() => Err(invalid(format!(
            "a data path address must be a unicast address, not {v4}"
        ))),
        IpAddr::V4(v4) => Ok(v4.to_string()),
        IpAddr::V6(_) => Err(invalid(format!(
            "an IPv6 data path address ({ip}) is not supported: swarmkeep's overlay networks carry VXLAN over IPv4"
        ))),
    }
}

/// The address of interface `name` as dockerd picks it: `None` if there is
/// no such interface; an error if it has two of a family or none at all.
fn interface_addr(name: &str) -> Result<Option<IpAddr>, Status> {
    let invalid = |m: String| plain(Code::InvalidArgument, m);
    let Ok(all) = nix::ifaddrs::getifaddrs() else {
        return Ok(None);
    };
    let (mut found, mut v4, mut v6) = (false, None::<IpAddr>, None::<IpAddr>);
    for ifa in all.filter(|ifa| ifa.interface_name == name) {
        found = true;
        let Some(addr) = ifa.address.as_ref() else { continue };
        let (slot, ip, family) = if let Some(sin) = addr.as_sockaddr_in() {
            (&mut v4, IpAddr::V4(sin.ip()), "IPv4")
        } else if let Some(sin6) = addr.as_sockaddr_in6() {
            (&mut v6, IpAddr::V6(sin6.ip()), "IPv6")
        } else {
            continue;
        };
        if let Some(first) = slot {
            return Err(invalid(format!(
                "interface {name} has more than one {family} address ({first} and {ip})"
            )));
        }
        *slot = Some(ip);
    }
    if !found {
        return Ok(None);
    }
    v4.or(v6)
        .map(Some)
        .ok_or_else(|| invalid(format!("interface {name} has no usable IPv4 or IPv6 address")))
}

pub(super) fn describe_host(hostname: Option<&str>) -> NodeDescription {
    let hostname = hostname
        .map(str::to_string)
        .or_else(|| nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()))
        .unwrap_or_else(|| "localhost".into());
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get() as i64)
        .unwrap_or(1);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<i64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0);
    NodeDescription {
        hostname,
        os: std::env::consts::OS.into(),
        architecture: std::env::consts::ARCH.into(),
        nano_cpus: cpus * 1_000_000_000,
        memory_bytes: memory,
        engine_version: env!("CARGO_PKG_VERSION").into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::server::check_joiner_data_path_addr;

    #[test]
    fn addresses_take_docker_forms() {
        assert_eq!(parse_addr("127.0.0.1", 2377).unwrap().to_string(), "127.0.0.1:2377");
        assert_eq!(
            parse_addr("127.0.0.2:4000", 2377).unwrap().to_string(),
            "127.0.0.2:4000"
        );
        assert!(parse_addr("eth0:x", 2377).is_err());
        let listen = parse_addr("0.0.0.0", 2377).unwrap();
        assert!(choose_advertise_addr("0.0.0.0", listen).is_err());
        let specific = parse_addr("127.0.0.5:3000", 1).unwrap();
        assert_eq!(
            choose_advertise_addr("", specific).unwrap().to_string(),
            "127.0.0.5:3000"
        );
    }

    #[test]
    fn data_path_addresses_resolve_as_dockerd_resolves_them() {
        assert_eq!(resolve_data_path_addr("").unwrap(), "");
        assert_eq!(resolve_data_path_addr("10.1.2.3").unwrap(), "10.1.2.3");
        assert_eq!(resolve_data_path_addr("lo").unwrap(), "127.0.0.1");
        for bad in ["nosuchif0", "0.0.0.0", "999.1.1.1", "10.1.2.3:4789"] {
            let e = resolve_data_path_addr(bad).unwrap_err();
            assert_eq!(e.message(), BAD_DATA_PATH_ADDR, "{bad}");
        }
        assert!(
            resolve_data_path_addr("fd00::1")
                .unwrap_err()
                .message()
                .contains("IPv6")
        );
        assert!(check_joiner_data_path_addr("10.1.2.3").is_ok());
        assert!(check_joiner_data_path_addr("").is_ok());
        for bad in ["lo", "0.0.0.0", "fd00::1", "239.1.1.1", "255.255.255.255"] {
            assert!(check_joiner_data_path_addr(bad).is_err(), "{bad}");
        }
        for multi in ["224.0.0.1", "255.255.255.255"] {
            let e = resolve_data_path_addr(multi).unwrap_err();
            assert!(e.message().contains("unicast"), "{multi}: {}", e.message());
        }
    }
}
