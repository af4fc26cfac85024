//! The node-local bridge (Docker's `docker_gwbridge` / default bridge): one
//! Linux bridge per agent with a private /24, a veth pair per task (one end
//! on the bridge, the other the task's `eth0`), made through netlink
//! (`rtnetlink`); outbound NAT by the kernel's firewall (see `firewall.rs`).
//!
//! Several agents may share a host (the tests run several nodes on one
//! machine): each has its own bridge, named after its exec root, with the
//! path of the lock file it holds as the bridge's alias. A bridge whose lock
//! is no longer held (its agent died) is removed by the next agent that
//! starts, and its subnet reused.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use futures::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{InfoData, InfoVeth, LinkAttribute};
use rtnetlink::{Handle, LinkBridge, LinkBridgePort, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};

use super::firewall;
use super::netns::{connect, io, link_index};

/// The range agents take their /24 from: 10.213.0.0/16.
const RANGE: [u8; 2] = [10, 213];
const BRIDGE_PREFIX: &str = "swk-";
const HOST_LOCK: &str = "/run/swarmkeep-bridges.lock";

/// What a task got: its address and its veth's host end.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub address: Ipv4Addr,
    pub gateway: Ipv4Addr,
    pub prefix: u8,
    pub mac: [u8; 6],
    host_veth: String,
}

pub struct Bridge {
    name: String,
    lock_path: PathBuf,
    /// The third octet of the agent's 10.213.N.0/24.
    subnet: u8,
    leases: Mutex<BTreeMap<String, u8>>,
    /// Held for the agent's life: says this bridge is in use.
    _lock: std::fs::File,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn flock(file: &std::fs::File, blocking: bool) -> bool {
    let op = if blocking {
        libc::LOCK_EX
    } else {
        libc::LOCK_EX | libc::LOCK_NB
    };
    // SAFETY: flock on a live fd.
    unsafe { libc::flock(file.as_raw_fd(), op) == 0 }
}

/// A short name for `exec_root`'s bridge (interface names are ≤ 15 bytes).
fn bridge_name(exec_root: &Path) -> String {
    let digest = swarmkeep_image::sha256_digest(exec_root.as_os_str().as_encoded_bytes());
    let hex = digest.trim_start_matches("sha256:");
    format!("{BRIDGE_PREFIX}{}", &hex[..10])
}

impl Bridge {
    /// Makes (or takes back, after a restart) this agent's bridge.
    pub async fn setup(exec_root: &Path) -> Result<Self, String> {
        let lock_path = exec_root.join("network.lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(format!("opening {}", lock_path.display())))?;
        if !flock(&lock, false) {
            return Err(format!(
                "{} is locked: another agent uses this exec root",
                lock_path.display()
            ));
        }
        // One agent at a time picks a subnet on this host.
        let host_lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(HOST_LOCK)
            .map_err(io(format!("opening {HOST_LOCK}")))?;
        let host_lock = tokio::task::spawn_blocking(move || {
            flock(&host_lock, true);
            host_lock
        })
        .await
        .map_err(io("locking"))?;
        let name = bridge_name(exec_root);
        let handle = connect()?;
        remove_stale(&handle, &name).await?;
        let subnet = match own_subnet(&handle, &name).await? {
            Some(n) => n,
            None => create(&handle, &name, &lock_path, None).await?,
        };
        firewall::install(&name, subnet_cidr(subnet), &ports_prefix(&name)).await?;
        // Forwarding is how tasks reach past the node (Docker turns it on too).
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").map_err(io("enabling IPv4 forwarding"))?;
        drop(host_lock);
        tracing::info!(bridge = %name, subnet = %subnet_cidr(subnet), "task bridge ready");
        Ok(Self {
            name,
            lock_path,
            subnet,
            leases: Mutex::default(),
            _lock: lock,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(RANGE[0], RANGE[1], self.subnet, 1)
    }

    /// Gives the task running as `pid` (in its own network namespace) an
    /// address on the bridge, a default route through it, and `lo`.
    pub async fn attach(&self, task_id: &str, pid: u32) -> Result<Endpoint, String> {
        let host = {
            let mut leases = lock(&self.leases);
            let taken: std::collections::BTreeSet<u8> = leases.values().copied().collect();
            let host = (2..=254u8)
                .find(|h| !taken.contains(h))
                .ok_or("the node's task bridge has no free address (253 tasks)")?;
            leases.insert(task_id.to_string(), host);
            host
        };
        let address = Ipv4Addr::new(RANGE[0], RANGE[1], self.subnet, host);
        let o = address.octets();
        // Docker's MAC: 02:42 and the IPv4 address.
        let mac = [0x02, 0x42, o[0], o[1], o[2], o[3]];
        let digest = swarmkeep_image::sha256_digest(task_id.as_bytes());
        let hex = &digest.trim_start_matches("sha256:")[..10];
        let endpoint = Endpoint {
            address,
            gateway: self.gateway(),
            prefix: 24,
            mac,
            host_veth: format!("{}{hex}", ports_prefix(&self.name)),
        };
        let peer = format!("p{}{hex}", &ports_prefix(&self.name)[1..]);
        let result = self.plug(&endpoint, &peer, pid).await;
        if let Err(e) = result {
            self.detach(task_id, Some(&endpoint)).await;
            return Err(e);
        }
        Ok(endpoint)
    }

    async fn plug(&self, endpoint: &Endpoint, peer: &str, pid: u32) -> Result<(), String> {
        let t0 = std::time::Instant::now();
        let ms = |t: std::time::Instant| t.elapsed().as_secs_f64() * 1000.0;
        let handle = connect()?;
        let bridge = match link_index(&handle, &self.name).await? {
            Some(index) => index,
            None => {
                // Removed under us (by hand, say): made again on its subnet.
                tracing::warn!(bridge = %self.name, "the task bridge was removed; making it again");
                create(&handle, &self.name, &self.lock_path, Some(self.subnet)).await?;
                firewall::install(&self.name, subnet_cidr(self.subnet), &ports_prefix(&self.name)).await?;
                link_index(&handle, &self.name)
                    .await?
                    .ok_or_else(|| format!("the task bridge {} is gone", self.name))?
            }
        };
        // The pair is made with its task end already in the task's
        // namespace: moving a device between namespaces waits for an RCU
        // grace period (10–20 ms here), creating it there does not. The
        // port's firewall entry goes in meanwhile (an nft run, ~7 ms); the
        // task sends nothing before the spec is passed, after both.
        let links = async {
            let task_end = LinkMessageBuilder::<LinkUnspec>::new()
                .name(peer.to_string())
                .setns_by_pid(pid)
                .build();
            handle
                .link()
                .add(
                    LinkVeth::new(&endpoint.host_veth, peer)
                        .set_info_data(InfoData::Veth(InfoVeth::Peer(task_end)))
                        .build(),
                )
                .execute()
                .await
                .map_err(io("creating the task's veth pair"))?;
            let host_end = link_index(&handle, &endpoint.host_veth)
                .await?
                .ok_or("the task's veth vanished")?;
            handle
                .link()
                .set(LinkUnspec::new_with_index(host_end).controller(bridge).up().build())
                .execute()
                .await
                .map_err(io("putting the task's veth on the bridge"))?;
            Ok::<f64, String>(ms(t0))
        };
        // Only the task's own MAC and address leave its port.
        let allowed = async {
            firewall::allow(&self.name, &endpoint.host_veth, &endpoint.mac, endpoint.address).await?;
            Ok::<f64, String>(ms(t0))
        };
        let (veth, allowed) = tokio::join!(links, allowed);
        let (veth, allowed) = (veth?, allowed?);
        let (peer, endpoint) = (peer.to_string(), endpoint.clone());
        tokio::task::spawn_blocking(move || inside(pid, &peer, &endpoint))
            .await
            .map_err(io("configuring the task's network"))??;
        tracing::debug!(veth, allowed, inside = ms(t0), "task network phases (ms)");
        Ok(())
    }

    /// Hands the address leased to `from` (a sandbox made ahead) to `to`
    /// (the task that took it).
    pub fn rekey(&self, from: &str, to: &str) {
        let mut leases = lock(&self.leases);
        if let Some(host) = leases.remove(from) {
            leases.insert(to.to_string(), host);
        }
    }

    /// (Again) lets the endpoint's port send as its own MAC and address
    /// only: its element of the bridge's anti-spoofing set.
    pub async fn admit(&self, endpoint: &Endpoint) -> Result<(), String> {
        firewall::allow(&self.name, &endpoint.host_veth, &endpoint.mac, endpoint.address).await
    }

    /// Makes the endpoint's port an isolated one: it exchanges no frame with
    /// another isolated port (a task on a swarm network reaches the other
    /// tasks of its node only over their networks, as Docker's
    /// `docker_gwbridge` has no inter-container traffic), only with the bridge.
    pub async fn isolate(&self, endpoint: &Endpoint) -> Result<(), String> {
        let handle = connect()?;
        let index = link_index(&handle, &endpoint.host_veth)
            .await?
            .ok_or("the task's veth vanished")?;
        handle
            .link()
            .set_port(LinkBridgePort::new(index).isolated(true).build())
            .execute()
            .await
            .map_err(io("isolating the task's port on the bridge"))
    }

    /// Whether the endpoint's veth is still on this bridge (a bridge
    /// removed by hand takes its ports with it).
    pub fn port_exists(&self, endpoint: &Endpoint) -> bool {
        // (A bridge removed by hand unplugs its ports: no `master` then.)
        std::fs::read_link(Path::new("/sys/class/net").join(&endpoint.host_veth).join("master"))
            .is_ok_and(|m| m.file_name().is_some_and(|n| *n == *self.name))
    }

    /// Frees the task's address and removes its veth (gone already when its
    /// namespace ended; that is fine).
    pub async fn detach(&self, task_id: &str, endpoint: Option<&Endpoint>) {
        lock(&self.leases).remove(task_id);
        let Some(endpoint) = endpoint else { return };
        firewall::forget(&self.name, &endpoint.host_veth, &endpoint.mac, endpoint.address).await;
        let Ok(handle) = connect() else { return };
        if let Ok(Some(index)) = link_index(&handle, &endpoint.host_veth).await {
            let _ = handle.link().del(index).execute().await;
        }
    }

    /// Removes the bridge and its firewall rules (daemon shutdown).
    pub async fn teardown(&self) {
        if let Ok(handle) = connect()
            && let Ok(Some(index)) = link_index(&handle, &self.name).await
        {
            let _ = handle.link().del(index).execute().await;
        }
        firewall::remove(&self.name).await;
    }
}

/// The name prefix of a bridge's veths (host ends): `v` and 4 hex digits of
/// the bridge's own, so each agent's firewall rules match its ports only.
fn ports_prefix(bridge: &str) -> String {
    format!("v{}", &bridge.trim_start_matches(BRIDGE_PREFIX)[..4])
}

fn subnet_cidr(n: u8) -> String {
    format!("{}.{}.{n}.0/24", RANGE[0], RANGE[1])
}

/// Inside the task's namespace (a thread of its own joins it): `lo` up, the
/// veth renamed `eth0` with its address and MAC, the default route, and
/// Docker's namespaced sysctls.
fn inside(pid: u32, peer: &str, endpoint: &Endpoint) -> Result<(), String> {
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).map_err(io("opening the task's network namespace"))?;
    let peer = peer.to_string();
    let endpoint = endpoint.clone();
    std::thread::spawn(move || -> Result<(), String> {
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(io("entering the task's network namespace"))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(io("runtime"))?;
        rt.block_on(async move {
            let handle = connect()?;
            let lo = link_index(&handle, "lo").await?.ok_or("the namespace has no lo")?;
            handle
                .link()
                .set(LinkUnspec::new_with_index(lo).up().build())
                .execute()
                .await
                .map_err(io("bringing up lo"))?;
            let index = link_index(&handle, &peer).await?.ok_or("the task's veth vanished")?;
            handle
                .link()
                .set(
                    LinkUnspec::new_with_index(index)
                        .name("eth0".to_string())
                        .address(endpoint.mac.to_vec())
                        .build(),
                )
                .execute()
                .await
                .map_err(io("naming the task's eth0"))?;
            handle
                .address()
                .add(index, IpAddr::V4(endpoint.address), endpoint.prefix)
                .execute()
                .await
                .map_err(io("addressing the task's eth0"))?;
            handle
                .link()
                .set(LinkUnspec::new_with_index(index).up().build())
                .execute()
                .await
                .map_err(io("bringing up the task's eth0"))?;
            handle
                .route()
                .add(RouteMessageBuilder::<Ipv4Addr>::new().gateway(endpoint.gateway).build())
                .execute()
                .await
                .map_err(io("adding the task's default route"))?;
            Ok::<(), String>(())
        })?;
        for (key, value) in [
            ("net/ipv4/ip_unprivileged_port_start", "0"),
            ("net/ipv4/ping_group_range", "0 2147483647"),
        ] {
            std::fs::write(Path::new("/proc/sys").join(key), value).map_err(io(format!("setting {key}")))?;
        }
        Ok(())
    })
    .join()
    .map_err(|_| "configuring the task's network panicked".to_string())?
}

/// The third octet of the subnet `name` already has (after an agent restart).
async fn own_subnet(handle: &Handle, name: &str) -> Result<Option<u8>, String> {
    let Some(index) = link_index(handle, name).await? else {
        return Ok(None);
    };
    let mut addrs = handle.address().get().set_link_index_filter(index).execute();
    while let Some(msg) = addrs.try_next().await.map_err(io("listing addresses"))? {
        for attr in msg.attributes {
            if let AddressAttribute::Address(IpAddr::V4(a)) = attr {
                let o = a.octets();
                if o[0] == RANGE[0] && o[1] == RANGE[1] && o[3] == 1 {
                    return Ok(Some(o[2]));
                }
            }
        }
    }
    // An address-less bridge of ours: start it again.
    let _ = handle.link().del(index).execute().await;
    Ok(None)
}

/// Creates the bridge on `subnet`, or on the first /24 of the range no
/// interface of this host is on; its alias names the lock file that says
/// it is in use.
async fn create(handle: &Handle, name: &str, lock_path: &Path, subnet: Option<u8>) -> Result<u8, String> {
    let mut used = std::collections::BTreeSet::new();
    let mut addrs = handle.address().get().execute();
    while let Some(msg) = addrs.try_next().await.map_err(io("listing addresses"))? {
        for attr in msg.attributes {
            if let AddressAttribute::Address(IpAddr::V4(a)) = attr {
                let o = a.octets();
                if o[0] == RANGE[0] && o[1] == RANGE[1] {
                    used.insert(o[2]);
                }
            }
        }
    }
    let subnet = match subnet {
        Some(n) => n,
        None => (0..=255u8)
            .find(|n| !used.contains(n))
            .ok_or("no free /24 in 10.213.0.0/16 for the task bridge")?,
    };
    handle
        .link()
        .add(LinkBridge::new(name).build())
        .execute()
        .await
        .map_err(io(format!("creating the task bridge {name}")))?;
    let index = link_index(handle, name).await?.ok_or("the task bridge vanished")?;
    // The alias is set on the link made (the kernel ignores it at creation),
    // with an address of its own (see `bridge_mac`).
    handle
        .link()
        .set(
            LinkUnspec::new_with_index(index)
                .alias(lock_path.to_string_lossy().into_owned())
                .address(super::netns::bridge_mac(name))
                .build(),
        )
        .execute()
        .await
        .map_err(io("naming the task bridge's owner"))?;
    handle
        .address()
        .add(index, IpAddr::V4(Ipv4Addr::new(RANGE[0], RANGE[1], subnet, 1)), 24)
        .execute()
        .await
        .map_err(io("addressing the task bridge"))?;
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(io("bringing up the task bridge"))?;
    Ok(subnet)
}

/// Removes the bridges (and their firewall rules) of agents that are gone:
/// those whose lock file is missing or no longer locked. A bridge without
/// an alias is never taken for stale (its owner cannot be told).
async fn remove_stale(handle: &Handle, own: &str) -> Result<(), String> {
    let mut stale = Vec::new();
    let mut bridges = vec![own.to_string()];
    let mut links = handle.link().get().execute();
    while let Some(link) = links.try_next().await.map_err(io("listing links"))? {
        let mut name = None;
        let mut alias = None;
        for attr in &link.attributes {
            match attr {
                LinkAttribute::IfName(n) => name = Some(n.clone()),
                LinkAttribute::IfAlias(a) => alias = Some(PathBuf::from(a)),
                _ => {}
            }
        }
        let Some(name) = name.filter(|n| n.starts_with(BRIDGE_PREFIX) && n != own) else {
            continue;
        };
        bridges.push(name.clone());
        let Some(alias) = alias else { continue };
        let in_use = std::fs::OpenOptions::new()
            .write(true)
            .open(&alias)
            .is_ok_and(|f| !flock(&f, false));
        if !in_use {
            stale.push((name, link.header.index));
        }
    }
    for (name, index) in stale {
        tracing::info!(bridge = %name, "removing the task bridge of an agent that is gone");
        let _ = handle.link().del(index).execute().await;
        firewall::remove(&name).await;
    }
    // Rules of a bridge that is gone (removed by hand, say): they would
    // still masquerade or filter a /24 that a new bridge may take.
    for name in firewall::bridges_with_rules().await {
        if name.starts_with(BRIDGE_PREFIX) && !bridges.contains(&name) {
            tracing::info!(bridge = %name, "removing the firewall rules of a task bridge that is gone");
            firewall::remove(&name).await;
        }
    }
    Ok(())
}
