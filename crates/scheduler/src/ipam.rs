//! Addresses on overlay networks, decided on the leader (swarmkit's network
//! allocator with libnetwork's default IPAM): a subnet per network from the
//! cluster's default pool (10.0.0.0/8 in /24s unless `swarm init` said
//! otherwise), a VXLAN ID per network from 4096, a virtual IP per service per
//! network, an address per task per network.
//!
//! Addresses are handed out serially, as Docker's are: after the last one
//! given on the network (the store keeps that cursor, [`ClusterState::ipam_cursor`]),
//! wrapping, so a freed address is not reused at once. What is in use is read
//! from the replicated state — services' VIPs and the addresses of tasks that
//! have not stopped — so a new leader carries on where the last one was; the
//! store refuses a command handing out an address another holder has.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use swarmkeep_store::objects::{
    Endpoint, EndpointMode, EndpointSpec, IpamConfig, Network, NetworkAddress, NetworkAllocation, NetworkSpec,
    PortConfig, PublishMode, ServiceSpec,
};
use swarmkeep_store::objects::{Task, TaskState};
use swarmkeep_store::{ClusterState, Command};
use time::OffsetDateTime;

/// Swarm's default address pool and subnet size.
pub const DEFAULT_POOL: &str = "10.0.0.0/8";
pub const DEFAULT_SUBNET_SIZE: u32 = 24;
/// The first VXLAN ID (the ingress network's).
pub const FIRST_VNI: u32 = 4096;
const MAX_VNI: u32 = (1 << 24) - 1;

/// An IPv4 network: its first address and prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub base: u32,
    pub prefix: u8,
}

impl Cidr {
    /// `10.0.1.0/24` (a host address such as `10.0.1.7/24` is taken to its
    /// network, as Go's `net.ParseCIDR` does).
    pub fn parse(text: &str) -> Option<Self> {
        let (addr, prefix) = text.split_once('/')?;
        let addr: Ipv4Addr = addr.parse().ok()?;
        let prefix: u8 = prefix.parse().ok()?;
        if prefix > 32 {
            return None;
        }
        let base = u32::from(addr) & mask(prefix);
        Some(Self { base, prefix })
    }

    pub fn size(self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    pub fn last(self) -> u32 {
        self.base | !mask(self.prefix)
    }

    pub fn contains(self, ip: u32) -> bool {
        ip & mask(self.prefix) == self.base
    }

    pub fn overlaps(self, other: Cidr) -> bool {
        self.contains(other.base) || other.contains(self.base)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

/// The address part of `10.0.1.3/24`.
pub fn address_of(cidr_addr: &str) -> Option<u32> {
    let (ip, _) = cidr_addr.split_once('/')?;
    ip.parse::<Ipv4Addr>().ok().map(u32::from)
}

/// Swarm's checks of `swarm init --default-addr-pool/--default-addr-pool-mask-length`.
pub fn check_pool(pools: &[String], subnet_size: u32) -> Result<(), String> {
    if subnet_size > 29 {
        return Err(format!("subnet size is out of range: {subnet_size}"));
    }
    let size = if subnet_size == 0 {
        DEFAULT_SUBNET_SIZE
    } else {
        subnet_size
    };
    for pool in pools {
        let cidr = Cidr::parse(pool).ok_or_else(|| format!("invalid base pool {pool:?}"))?;
        if u32::from(cidr.prefix) > size {
            return Err(format!(
                "invalid Subnet Size: {pool} is smaller than the subnet size {size}: Subnet size is too small for pool"
            ));
        }
    }
    Ok(())
}

/// Swarm's checks of a network's IPAM configuration, in its words.
pub fn check_ipam(config: &IpamConfig) -> Result<Cidr, String> {
    let subnet =
        Cidr::parse(&config.subnet).ok_or_else(|| format!("ipam configuration: invalid subnet {}", config.subnet))?;
    if !config.range.is_empty() {
        let range =
            Cidr::parse(&config.range).ok_or_else(|| format!("ipam configuration: invalid range {}", config.range))?;
        if !subnet.contains(range.base) {
            return Err(format!(
                "ipam configuration: subnet {} does not contain range {}",
                config.subnet, config.range
            ));
        }
    }
    if !config.gateway.is_empty() {
        let gateway: Ipv4Addr = config
            .gateway
            .parse()
            .map_err(|_| format!("ipam configuration: invalid gateway {}", config.gateway))?;
        if !subnet.contains(u32::from(gateway)) {
            return Err(format!(
                "ipam configuration: subnet {} does not contain gateway {}",
                config.subnet, config.gateway
            ));
        }
    }
    if subnet.prefix > 30 {
        return Err(format!("ipam configuration: subnet {} is too small", config.subnet));
    }
    Ok(subnet)
}

/// The subnet, gateway and VNI for a new overlay network: the operator's
/// subnet if given (refused if it overlaps another network's), else the first
/// free one of the cluster's pool; the first free VNI.
pub fn allocate_network(state: &ClusterState, spec: &NetworkSpec) -> Result<NetworkAllocation, String> {
    let taken: Vec<Cidr> = state
        .networks
        .values()
        .filter_map(|n| n.allocation.as_ref())
        .filter_map(|a| Cidr::parse(&a.subnet))
        .collect();
    let (subnet, gateway, range) = match spec.ipam.first() {
        Some(config) if !config.subnet.is_empty() => {
            let subnet = check_ipam(config)?;
            if taken.iter().any(|t| t.overlaps(subnet)) {
                return Err("Pool overlaps with other one on this address space".into());
            }
            let gateway = if config.gateway.is_empty() {
                Ipv4Addr::from(subnet.base + 1).to_string()
            } else {
                config.gateway.clone()
            };
            (subnet, gateway, config.range.clone())
        }
        Some(config) if !config.gateway.is_empty() || !config.range.is_empty() => {
            return Err("ipam configuration: a gateway or range needs a subnet".into());
        }
        _ => {
            let subnet = free_subnet(state, &taken)?;
            (subnet, Ipv4Addr::from(subnet.base + 1).to_string(), String::new())
        }
    };
    let vnis: BTreeSet<u32> = state
        .networks
        .values()
        .filter_map(|n| n.allocation.as_ref())
        .map(|a| a.vni)
        .collect();
    let vni = (FIRST_VNI..=MAX_VNI)
        .find(|v| !vnis.contains(v))
        .ok_or("no VXLAN ID left")?;
    Ok(NetworkAllocation {
        subnet: subnet.to_string(),
        gateway,
        range,
        vni,
    })
}

fn free_subnet(state: &ClusterState, taken: &[Cidr]) -> Result<Cidr, String> {
    let (pools, size) = match &state.cluster {
        Some(c) => (
            c.default_addr_pool.clone(),
            if c.subnet_size == 0 {
                DEFAULT_SUBNET_SIZE
            } else {
                c.subnet_size
            },
        ),
        None => (Vec::new(), DEFAULT_SUBNET_SIZE),
    };
    let pools = if pools.is_empty() {
        vec![DEFAULT_POOL.to_string()]
    } else {
        pools
    };
    let prefix = u8::try_from(size).map_err(|_| "subnet size is out of range")?;
    for pool in pools.iter().filter_map(|p| Cidr::parse(p)) {
        let step = 1u64 << (32 - u32::from(prefix));
        let mut base = u64::from(pool.base);
        while base + step - 1 <= u64::from(pool.last()) {
            let candidate = Cidr {
                base: u32::try_from(base).map_err(|_| "address out of range")?,
                prefix,
            };
            if !taken.iter().any(|t| t.overlaps(candidate)) {
                return Ok(candidate);
            }
            base += step;
        }
    }
    Err(
        "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network"
            .into(),
    )
}

/// The addresses in use on each network, and the hand-out that continues
/// after the last one given. One per orchestrator pass (or control call):
/// what it hands out counts as in use for the rest of the pass.
pub struct Addresses<'a> {
    state: &'a ClusterState,
    in_use: BTreeMap<String, BTreeSet<u32>>,
    cursor: BTreeMap<String, u32>,
}

impl<'a> Addresses<'a> {
    /// What `state` has in use, leaving out the holder `except` (a service
    /// whose endpoint is being decided again).
    pub fn new(state: &'a ClusterState, except: Option<&str>) -> Self {
        let mut in_use: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
        for (holder, a) in state.addresses_in_use() {
            if Some(holder) != except
                && let Some(ip) = address_of(&a.addr)
            {
                in_use.entry(a.network_id.clone()).or_default().insert(ip);
            }
        }
        Self {
            state,
            in_use,
            cursor: state.ipam_cursor.clone(),
        }
    }

    /// Marks `held` in use (a holder this pass already decided on).
    pub fn hold(&mut self, held: &[NetworkAddress]) {
        for a in held {
            if let Some(ip) = address_of(&a.addr) {
                self.in_use.entry(a.network_id.clone()).or_default().insert(ip);
            }
        }
    }

    /// The next free address of `network`, as `10.0.1.3/24`.
    pub fn allocate(&mut self, network: &Network) -> Result<NetworkAddress, String> {
        let alloc = network
            .allocation
            .as_ref()
            .ok_or_else(|| format!("network {} has no subnet", network.spec.annotations.name))?;
        let subnet = Cidr::parse(&alloc.subnet).ok_or("bad subnet")?;
        let pool = if alloc.range.is_empty() {
            subnet
        } else {
            Cidr::parse(&alloc.range).ok_or("bad range")?
        };
        let gateway = alloc.gateway.parse::<Ipv4Addr>().map(u32::from).ok();
        let used = self.in_use.entry(network.id.clone()).or_default();
        let first = pool.base.max(subnet.base + 1);
        let last = pool.last().min(subnet.last() - 1);
        if last < first {
            return Err(format!("no addresses in network {}", network.spec.annotations.name));
        }
        let span = last - first + 1;
        let start = self
            .cursor
            .get(&network.id)
            .filter(|c| (first..=last).contains(*c))
            .map_or(0, |c| c - first + 1);
        let ip = (0..span)
            .map(|i| first + (start + i) % span)
            .find(|ip| Some(*ip) != gateway && !used.contains(ip))
            .ok_or_else(|| {
                format!(
                    "could not allocate an address on network {}: no address left",
                    network.spec.annotations.name
                )
            })?;
        used.insert(ip);
        self.cursor.insert(network.id.clone(), ip);
        Ok(NetworkAddress {
            network_id: network.id.clone(),
            addr: format!("{}/{}", Ipv4Addr::from(ip), subnet.prefix),
        })
    }

    /// The overlay networks `spec`'s tasks are attached to (ingress first when
    /// it publishes ports through the routing mesh).
    pub fn task_networks(&self, spec: &ServiceSpec) -> Vec<&'a Network> {
        task_networks(self.state, spec)
    }
}

/// The overlay networks a service's tasks are attached to: the ingress
/// network first when a port is published through the routing mesh, then
/// those of its spec in order.
pub fn task_networks<'a>(state: &'a ClusterState, spec: &ServiceSpec) -> Vec<&'a Network> {
    let mut out: Vec<&Network> = Vec::new();
    if spec
        .endpoint
        .ports
        .iter()
        .any(|p| p.publish_mode == swarmkeep_store::objects::PublishMode::Ingress)
        && let Some(ingress) = state.networks.values().find(|n| n.spec.ingress)
    {
        out.push(ingress);
    }
    for a in &spec.task.networks {
        if let Some(n) = state.networks.get(&a.target).filter(|n| n.is_overlay())
            && !out.iter().any(|o| o.id == n.id)
        {
            out.push(n);
        }
    }
    out
}

/// The virtual IPs a service wants: one per overlay network it is on, in vip
/// mode; those it has are kept.
pub fn virtual_ips(
    addresses: &mut Addresses<'_>,
    spec: &ServiceSpec,
    current: &[NetworkAddress],
) -> Result<Vec<NetworkAddress>, String> {
    if spec.endpoint.mode == EndpointMode::Dnsrr {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for network in addresses.task_networks(spec) {
        match current.iter().find(|v| v.network_id == network.id) {
            Some(kept) => out.push(kept.clone()),
            None => out.push(addresses.allocate(network)?),
        }
    }
    Ok(out)
}

/// The first port given to an ingress port published without a number.
pub const DYNAMIC_PORTS: std::ops::RangeInclusive<u32> = 30000..=32767;

/// A service's endpoint as the leader allocates it: its ports with a
/// published number each (an ingress port without one takes the next free
/// one of 30000–32767; a host-mode port keeps 0, the kernel's choice) and its
/// virtual IPs. Refused with swarmkit's words when a published port is
/// another service's. `current` is what the service has (kept where it
/// still fits).
pub fn service_endpoint(
    state: &ClusterState,
    service_id: &str,
    spec: &ServiceSpec,
    current: &Endpoint,
) -> Result<Endpoint, String> {
    let mut addresses = Addresses::new(state, Some(service_id));
    endpoint_with(state, &mut addresses, service_id, spec, current)
}

fn endpoint_with(
    state: &ClusterState,
    addresses: &mut Addresses<'_>,
    service_id: &str,
    spec: &ServiceSpec,
    current: &Endpoint,
) -> Result<Endpoint, String> {
    let mut taken: BTreeMap<(String, u32), (&str, &str, PublishMode)> = BTreeMap::new();
    for s in state.services.values().filter(|s| s.id != service_id) {
        for p in &s.endpoint.ports {
            if p.published_port != 0 {
                taken.insert(
                    (p.protocol.clone(), p.published_port),
                    (s.spec.annotations.name.as_str(), s.id.as_str(), p.publish_mode),
                );
            }
        }
    }
    let mut ports = Vec::new();
    for p in &spec.endpoint.ports {
        let mut port = p.clone();
        if port.published_port != 0 {
            if let Some((name, id, mode)) = taken.get(&(port.protocol.clone(), port.published_port)) {
                // Two host-mode services may share a port (the scheduler
                // keeps their tasks apart); the mesh's are the swarm's.
                if *mode == PublishMode::Ingress || port.publish_mode == PublishMode::Ingress {
                    let how = match mode {
                        PublishMode::Ingress => "an ingress port",
                        PublishMode::Host => "a host-published port",
                    };
                    return Err(format!(
                        "port '{}' is already in use by service '{name}' ({id}) as {how}",
                        port.published_port
                    ));
                }
            }
        } else if port.publish_mode == PublishMode::Ingress {
            // Kept from before, else the next free one.
            let kept = current
                .ports
                .iter()
                .find(|c| {
                    c.protocol == port.protocol
                        && c.target_port == port.target_port
                        && c.publish_mode == PublishMode::Ingress
                })
                .map(|c| c.published_port)
                .filter(|n| DYNAMIC_PORTS.contains(n) && !taken.contains_key(&(port.protocol.clone(), *n)));
            port.published_port = match kept {
                Some(n) => n,
                None => DYNAMIC_PORTS
                    .clone()
                    .find(|n| {
                        !taken.contains_key(&(port.protocol.clone(), *n))
                            && !ports
                                .iter()
                                .any(|q: &PortConfig| q.protocol == port.protocol && q.published_port == *n)
                            && !spec
                                .endpoint
                                .ports
                                .iter()
                                .any(|q| q.protocol == port.protocol && q.published_port == *n)
                    })
                    .ok_or("no free port left in 30000-32767")?,
            };
        }
        if port.published_port != 0 {
            taken.insert(
                (port.protocol.clone(), port.published_port),
                ("", service_id, port.publish_mode),
            );
        }
        ports.push(port);
    }
    let virtual_ips = virtual_ips(addresses, spec, &current.virtual_ips)?;
    Ok(Endpoint { ports, virtual_ips })
}

/// The orchestrator's allocation pass: services whose endpoint is not what
/// their spec asks (a network attached or detached, the mode changed) get it
/// again; each task about to be placed or started gets an address on each of
/// its networks (one that cannot waits, Pending, saying why).
pub(crate) fn allocate(state: &ClusterState, put: &mut BTreeMap<String, Task>, now: OffsetDateTime) -> Vec<Command> {
    let mut addresses = Addresses::new(state, None);
    let mut commands = Vec::new();
    for s in state.services.values() {
        match endpoint_with(state, &mut addresses, &s.id, &s.spec, &s.endpoint) {
            Ok(endpoint) if endpoint != s.endpoint => {
                let mut service = s.clone();
                service.endpoint = endpoint;
                commands.push(Command::UpdateService {
                    service,
                    expected_version: s.meta.version,
                });
            }
            // One that cannot be allocated keeps what it has (the control
            // API refuses such specs; this is a network removed under it).
            Ok(_) | Err(_) => {}
        }
    }
    let needing: Vec<String> = state
        .tasks
        .values()
        .filter(|t| !put.contains_key(&t.id))
        .chain(put.values())
        .filter(|t| {
            t.addresses.is_empty()
                && !t.status.state.is_terminal()
                && t.status.state <= TaskState::Assigned
                && t.desired_state <= TaskState::Complete
        })
        .map(|t| t.id.clone())
        .collect();
    for id in needing {
        let Some(mut task) = put.get(&id).or_else(|| state.tasks.get(&id)).cloned() else {
            continue;
        };
        let Some(service) = state.services.get(&task.service_id) else {
            continue;
        };
        let mut spec = service.spec.clone();
        spec.task.networks = task.spec.networks.clone();
        let networks = addresses.task_networks(&spec);
        if networks.is_empty() {
            continue;
        }
        let mut held = Vec::new();
        let mut failed = None;
        for n in networks {
            match addresses.allocate(n) {
                Ok(a) => held.push(a),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        match failed {
            None => task.addresses = held,
            Some(why) => {
                if task.status.err == why && task.node_id.is_none() {
                    continue;
                }
                task.node_id = None;
                task.status = crate::tasks::status(TaskState::Pending, "pending task scheduling", now);
                task.status.err = why;
            }
        }
        put.insert(task.id.clone(), task);
    }
    // Every node's address on the ingress network (Docker's ingress-sbox
    // endpoint): the routing mesh on the node takes connections from it.
    if let Some(ingress) = state
        .networks
        .values()
        .find(|n| n.spec.ingress && n.allocation.is_some())
    {
        for node in state.nodes.values() {
            if node
                .ingress_address
                .as_ref()
                .is_some_and(|a| a.network_id == ingress.id)
            {
                continue;
            }
            if let Ok(address) = addresses.allocate(ingress) {
                let mut updated = node.clone();
                updated.ingress_address = Some(address);
                commands.push(Command::UpdateNode {
                    node: updated,
                    expected_version: node.meta.version,
                });
            }
        }
    }
    commands
}

/// Swarm's checks of an `EndpointSpec`, in its words.
pub fn check_endpoint(spec: &EndpointSpec) -> Result<(), String> {
    let mut published = BTreeSet::new();
    for p in &spec.ports {
        if p.publish_mode == PublishMode::Ingress && spec.mode == EndpointMode::Dnsrr {
            return Err("EndpointSpec: port published with ingress mode can't be used with dnsrr mode".into());
        }
        // (swarmkit's key: the port and protocol, whatever the mode.)
        if p.published_port != 0 && !published.insert((p.protocol.clone(), p.published_port)) {
            return Err("EndpointSpec: duplicate published ports provided".into());
        }
        if p.target_port == 0 || p.target_port > 65535 || p.published_port > 65535 {
            return Err(format!(
                "invalid port {}",
                if p.target_port == 0 || p.target_port > 65535 {
                    p.target_port
                } else {
                    p.published_port
                }
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parsing_and_overlap() {
        let a = Cidr::parse("10.0.1.7/24").unwrap();
        assert_eq!(a.to_string(), "10.0.1.0/24");
        assert_eq!(a.size(), 256);
        assert!(a.overlaps(Cidr::parse("10.0.0.0/16").unwrap()));
        assert!(!a.overlaps(Cidr::parse("10.0.2.0/24").unwrap()));
        assert!(Cidr::parse("10.0.1.0").is_none());
        assert!(Cidr::parse("10.0.1.0/33").is_none());
        assert!(Cidr::parse("nope/8").is_none());
    }

    #[test]
    fn ipam_checks_use_swarmkits_words() {
        let c = |subnet: &str, range: &str, gateway: &str| IpamConfig {
            subnet: subnet.into(),
            range: range.into(),
            gateway: gateway.into(),
        };
        assert_eq!(
            check_ipam(&c("10.9.0.0/33", "", "")).unwrap_err(),
            "ipam configuration: invalid subnet 10.9.0.0/33"
        );
        assert_eq!(
            check_ipam(&c("10.9.0.0/24", "10.8.0.0/25", "")).unwrap_err(),
            "ipam configuration: subnet 10.9.0.0/24 does not contain range 10.8.0.0/25"
        );
        assert_eq!(
            check_ipam(&c("10.9.0.0/24", "", "10.9.1.1")).unwrap_err(),
            "ipam configuration: subnet 10.9.0.0/24 does not contain gateway 10.9.1.1"
        );
        assert!(check_ipam(&c("10.9.0.0/24", "10.9.0.128/25", "10.9.0.254")).is_ok());
        assert!(
            check_pool(&["10.0.0.0/8".into()], 30)
                .unwrap_err()
                .contains("out of range")
        );
        assert!(
            check_pool(&["10.0.0.0/26".into()], 24)
                .unwrap_err()
                .contains("too small for pool")
        );
        assert!(check_pool(&["10.20.0.0/16".into()], 26).is_ok());
    }
}
