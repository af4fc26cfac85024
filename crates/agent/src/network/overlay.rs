//! Overlay networks on this node, built on the kernel as Docker's overlay
//! driver builds them:
//! - per network with a task here, a network namespace of its own (held at
//!   `<exec root>/netns/<network ID>`) with a bridge `br0` (the network's
//!   gateway address) and a VXLAN device `vxlan0` on it (the network's VNI,
//!   the swarm's data path port); the VXLAN device is created from the
//!   node's namespace, so its UDP socket lives there, on the node's address;
//! - an all-zero forwarding entry per peer (another node with tasks on the
//!   network): broadcast and unknown frames go to every peer, and the
//!   bridge learns where each task's MAC is from what arrives;
//! - per task and network a veth pair: one end on `br0`, the other the
//!   task's `eth1`, `eth2`, … with its address from the leader;
//! - in each task's namespace, the service VIPs of its networks balanced
//!   over the services' running tasks by nftables DNAT (`numgen inc`), and
//!   the embedded DNS server at 127.0.0.11 (see `dns.rs`).
//!
//! Peers, VIP backends and DNS records follow the dispatcher's network view
//! as tasks come and go. A network's namespace goes with its last task here,
//! and every one on daemon stop; the namespaces take their devices along.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use netlink_packet_core::{NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::packet_route::link::{InfoData, InfoVeth};
use rtnetlink::{Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, LinkVxlan};
use swarmkeep_api::dispatcher::NetworkView;

use super::netns::{self, io, link_index};

/// VXLAN's 50 bytes of headers out of a 1500-byte underlay.
const MTU: u32 = 1450;
/// Swarm's VXLAN port when the view has not said yet.
const DEFAULT_PORT: u16 = 4789;

/// A task's address on one overlay network, from its assignment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverlayAttachment {
    pub network_id: String,
    pub vni: u32,
    pub gateway: Ipv4Addr,
    pub address: Ipv4Addr,
    pub prefix: u8,
    /// The ingress network: its bridge holds the node's own ingress
    /// address (the routing mesh's), not the gateway.
    pub ingress: bool,
    /// `--internal`: no way out of the overlay (a task on internal networks
    /// only has no leg on the node's bridge and no upstream resolvers).
    pub internal: bool,
}

/// Whether a task on `overlays` is on internal networks only: then it has
/// nothing but them (Docker leaves such a container off `docker_gwbridge`).
pub fn internal_only(overlays: &[OverlayAttachment]) -> bool {
    !overlays.is_empty() && overlays.iter().all(|o| o.internal)
}

struct NetSandbox {
    path: PathBuf,
    peers: BTreeSet<Ipv4Addr>,
    users: BTreeSet<String>,
}

struct TaskNets {
    ns: PathBuf,
    networks: Vec<String>,
    /// (network ID, the veth's end on the network's bridge)
    ports: Vec<(String, String)>,
    dns: tokio::task::JoinHandle<()>,
    /// The VIP rules last installed in its namespace.
    balancing: String,
}

#[derive(Default)]
struct State {
    nets: BTreeMap<String, NetSandbox>,
    tasks: BTreeMap<String, TaskNets>,
    /// The routing mesh's rules as installed (node's, ingress network's).
    mesh: Option<(String, String)>,
}

/// The ingress network's user that is the routing mesh, not a task.
const MESH_USER: &str = "@ingress";
/// The routing mesh's link between the node's namespace and the ingress
/// network's: the node's end, the other end.
const MESH_NODE_ADDR: Ipv4Addr = Ipv4Addr::new(169, 254, 223, 1);
const MESH_SBOX_ADDR: Ipv4Addr = Ipv4Addr::new(169, 254, 223, 2);

/// This node's part of the overlays its tasks are on.
pub struct Overlays {
    dir: PathBuf,
    /// The nftables table (in the node's namespace) that lets VXLAN in from
    /// peers only: named after the exec root, as several agents may share
    /// a namespace.
    guard: String,
    view: Arc<RwLock<NetworkView>>,
    state: tokio::sync::Mutex<State>,
}

fn short(text: &str) -> String {
    let digest = swarmkeep_image::sha256_digest(text.as_bytes());
    digest.trim_start_matches("sha256:")[..10].to_string()
}

async fn up(handle: &Handle, index: u32, what: &str) -> Result<(), String> {
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).mtu(MTU).up().build())
        .execute()
        .await
        .map_err(io(format!("bringing up {what}")))
}

/// The all-zero forwarding entry that sends flooded frames to `peer`.
fn flood_entry(vxlan: u32, peer: Ipv4Addr) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Bridge;
    msg.header.ifindex = vxlan;
    msg.header.state = NeighbourState::Permanent;
    msg.header.flags = NeighbourFlags::Own;
    msg.attributes.push(NeighbourAttribute::LinkLayerAddress(vec![0; 6]));
    msg.attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(peer)));
    msg
}

async fn add_peer(handle: &Handle, vxlan: u32, peer: Ipv4Addr) -> Result<(), String> {
    let mut req = NetlinkMessage::from(RouteNetlinkMessage::NewNeighbour(flood_entry(vxlan, peer)));
    // APPEND: the all-zero entry holds a list of destinations.
    req.header.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND;
    let mut handle = handle.clone();
    let mut response = handle.request(req).map_err(io("adding a VXLAN peer"))?;
    while let Some(message) = futures::StreamExt::next(&mut response).await {
        if let NetlinkPayload::Error(err) = message.payload
            && err.raw_code() != -libc::EEXIST
        {
            return Err(format!("adding the VXLAN peer {peer}: {err}"));
        }
    }
    Ok(())
}

async fn remove_peer(handle: &Handle, vxlan: u32, peer: Ipv4Addr) {
    let _ = handle.neighbours().del(flood_entry(vxlan, peer)).execute().await;
}

/// Brings `vxlan0`'s peers from `old` to `new` (inside the network's namespace).
async fn sync_peers(handle: &Handle, old: &BTreeSet<Ipv4Addr>, new: &BTreeSet<Ipv4Addr>) -> Result<(), String> {
    let vxlan = link_index(handle, "vxlan0")
        .await?
        .ok_or("the network's VXLAN device is gone")?;
    for peer in new.difference(old) {
        add_peer(handle, vxlan, *peer).await?;
    }
    for peer in old.difference(new) {
        remove_peer(handle, vxlan, *peer).await;
    }
    Ok(())
}

impl Overlays {
    pub fn new(exec_root: &Path) -> Self {
        Self {
            dir: exec_root.join("netns"),
            guard: guard_table(exec_root),
            view: Arc::default(),
            state: tokio::sync::Mutex::default(),
        }
    }

    /// The namespaces a previous run of the agent left (after a crash).
    pub fn cleanup_stale(exec_root: &Path) {
        let guard = guard_table(exec_root);
        let mesh = guard.replace("swarmkeep_vxlan_", "swarmkeep_mesh_");
        for table in [guard, mesh] {
            let _ = std::process::Command::new("nft")
                .args(["delete", "table", "ip", &table])
                .stderr(std::process::Stdio::null())
                .status();
        }
        let dir = exec_root.join("netns");
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                netns::remove(&e.path());
            }
        }
        let _ = std::fs::remove_dir(&dir);
    }

    fn port(&self) -> u16 {
        let view = self.view.read().unwrap_or_else(|p| p.into_inner());
        u16::try_from(view.data_path_port)
            .ok()
            .filter(|p| *p != 0)
            .unwrap_or(DEFAULT_PORT)
    }

    fn peers_of(&self, network_id: &str) -> BTreeSet<Ipv4Addr> {
        let view = self.view.read().unwrap_or_else(|p| p.into_inner());
        let mesh = view.ingress.as_ref().and_then(|i| i.network.as_ref());
        view.networks
            .iter()
            .chain(mesh)
            .filter(|n| n.id == network_id)
            .flat_map(|n| n.peers.iter().filter_map(|p| p.parse().ok()))
            .collect()
    }

    /// (Again) the node's VXLAN guard for the current view: the data path
    /// port takes packets from the view's peers only, and none that the
    /// node's tasks send (from any agent's task bridge) leaves the node.
    /// Without it a task — on no overlay at all — could send VXLAN packets
    /// to its own node, or through its node's NAT to another, and put
    /// frames on any overlay there.
    async fn guard(&self) -> Result<(), String> {
        let (port, peers) = {
            let view = self.view.read().unwrap_or_else(|p| p.into_inner());
            let mesh = view.ingress.as_ref().and_then(|i| i.network.as_ref());
            let peers: BTreeSet<Ipv4Addr> = view
                .networks
                .iter()
                .chain(mesh)
                .flat_map(|n| n.peers.iter().filter_map(|p| p.parse().ok()))
                .collect();
            (self.port(), peers)
        };
        let t = &self.guard;
        let elements = if peers.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = peers.iter().map(Ipv4Addr::to_string).collect();
            format!("elements = {{ {} }}", list.join(", "))
        };
        let script = format!(
            "add table ip {t}\ndelete table ip {t}\ntable ip {t} {{\n  \
             set peers {{ type ipv4_addr; {elements} }}\n  \
             chain input {{ type filter hook input priority filter - 10; policy accept;\n    \
               udp dport {port} ip saddr != @peers drop\n    \
               iifname \"swi*\" udp dport {port} drop\n  }}\n  \
             chain forward {{ type filter hook forward priority filter - 10; policy accept;\n    \
               iifname \"swk-*\" udp dport {port} drop\n  }}\n}}\n"
        );
        nft(None, &script)
            .await
            .map_err(|e| format!("installing the VXLAN guard: {e}"))
    }

    /// This node's data-path address, the VXLAN devices' local address (none
    /// from a manager that does not send it: the route decides).
    fn local_addr(&self) -> Option<Ipv4Addr> {
        self.view
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .local_addr
            .parse()
            .ok()
    }

    /// Makes the network's namespace, bridge and VXLAN device.
    async fn sandbox(&self, a: &OverlayAttachment) -> Result<NetSandbox, String> {
        // (The ID names a file under the exec root.)
        if a.network_id.is_empty() || !a.network_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!("invalid network ID {:?}", a.network_id));
        }
        self.guard().await?;
        let path = self.dir.join(&a.network_id);
        netns::create(&path)?;
        let port = self.port();
        let local = self.local_addr();
        let (vni, gateway, prefix, ingress) = (a.vni, a.gateway, a.prefix, a.ingress);
        let made = async {
            // From the node's namespace: the VXLAN socket is bound here.
            let handle = netns::connect()?;
            let ns = std::fs::File::open(&path).map_err(io("opening the network's namespace"))?;
            // Sent from the data-path address, which is what the peers take
            // overlay packets from.
            let vxlan = LinkVxlan::new("vxlan0", vni).port(port).learning(true);
            let vxlan = match local {
                Some(ip) => vxlan.local(ip),
                None => vxlan,
            };
            handle
                .link()
                .add(vxlan.setns_by_fd(ns.as_raw_fd()).build())
                .execute()
                .await
                .map_err(io(format!("creating the VXLAN device (VNI {vni}, port {port})")))?;
            netns::run_in(&path, move || async move {
                // Frames bridged here (task to VXLAN, task to task) skip the
                // IP firewall hooks: nothing in this namespace filters them,
                // and conntrack per bridged frame costs every connection.
                for hook in ["iptables", "ip6tables", "arptables"] {
                    let knob = format!("/proc/sys/net/bridge/bridge-nf-call-{hook}");
                    if let Err(e) = std::fs::write(&knob, "0") {
                        tracing::debug!(knob, error = %e, "bridged frames stay on the IP hooks");
                    }
                }
                let handle = netns::connect()?;
                handle
                    .link()
                    .add(LinkBridge::new("br0").build())
                    .execute()
                    .await
                    .map_err(io("creating the network's bridge"))?;
                let br = link_index(&handle, "br0").await?.ok_or("the bridge vanished")?;
                handle
                    .link()
                    .set(LinkUnspec::new_with_index(br).address(netns::bridge_mac("br0")).build())
                    .execute()
                    .await
                    .map_err(io("giving the network's bridge its address"))?;
                if !ingress {
                    handle
                        .address()
                        .add(br, IpAddr::V4(gateway), prefix)
                        .execute()
                        .await
                        .map_err(io("addressing the network's bridge"))?;
                }
                let vx = link_index(&handle, "vxlan0")
                    .await?
                    .ok_or("the VXLAN device vanished")?;
                handle
                    .link()
                    .set(LinkUnspec::new_with_index(vx).controller(br).build())
                    .execute()
                    .await
                    .map_err(io("putting the VXLAN device on the bridge"))?;
                up(&handle, vx, "the VXLAN device").await?;
                up(&handle, br, "the network's bridge").await?;
                Ok(())
            })
            .await
        };
        if let Err(e) = made.await {
            netns::remove(&path);
            return Err(e);
        }
        tracing::info!(network = %a.network_id, vni, port, "overlay network ready on this node");
        Ok(NetSandbox {
            path,
            peers: BTreeSet::new(),
            users: BTreeSet::new(),
        })
    }

    /// Puts the task running as `pid` (in its own namespace) on its overlay
    /// networks, with its DNS server and VIP rules, before it runs.
    /// `dns`: the service's own servers (`--dns`), which the task's DNS
    /// server asks for names that are not the swarm's.
    pub async fn attach(
        &self,
        task_id: &str,
        pid: u32,
        attachments: &[OverlayAttachment],
        dns: Vec<IpAddr>,
    ) -> Result<(), String> {
        let mut state = self.state.lock().await;
        let ns = PathBuf::from(format!("/proc/{pid}/ns/net"));
        let mut task = TaskNets {
            ns: ns.clone(),
            networks: Vec::new(),
            ports: Vec::new(),
            dns: tokio::spawn(async {}),
            balancing: String::new(),
        };
        let result = async {
            for (i, a) in attachments.iter().enumerate() {
                if !state.nets.contains_key(&a.network_id) {
                    let sandbox = self.sandbox(a).await?;
                    state.nets.insert(a.network_id.clone(), sandbox);
                }
                let Some(net) = state.nets.get_mut(&a.network_id) else {
                    continue;
                };
                net.users.insert(task_id.to_string());
                task.networks.push(a.network_id.clone());
                let peers = self.peers_of(&a.network_id);
                let synced = peers.clone();
                let old = net.peers.clone();
                let hex = short(&format!("{task_id}/{}", a.network_id));
                let (port, temp) = (format!("veth{hex}"), format!("ovl{hex}"));
                task.ports.push((a.network_id.clone(), port.clone()));
                let (port2, temp2, temp_peer) = (port.clone(), temp.clone(), temp.clone());
                netns::run_in(&net.path, move || async move {
                    let handle = netns::connect()?;
                    sync_peers(&handle, &old, &peers).await?;
                    let task_end = LinkMessageBuilder::<LinkUnspec>::new()
                        .name(temp2)
                        .setns_by_pid(pid)
                        .build();
                    handle
                        .link()
                        .add(
                            LinkVeth::new(&port2, &temp_peer)
                                .set_info_data(InfoData::Veth(InfoVeth::Peer(task_end)))
                                .build(),
                        )
                        .execute()
                        .await
                        .map_err(io("creating the task's overlay veth"))?;
                    let br = link_index(&handle, "br0")
                        .await?
                        .ok_or("the network's bridge is gone")?;
                    let index = link_index(&handle, &port2).await?.ok_or("the task's veth vanished")?;
                    handle
                        .link()
                        .set(LinkUnspec::new_with_index(index).controller(br).build())
                        .execute()
                        .await
                        .map_err(io("putting the task's veth on the bridge"))?;
                    up(&handle, index, "the task's veth").await
                })
                .await?;
                // What was synced (a newer view syncs the rest itself).
                net.peers = synced;
                let (name, a) = (format!("eth{}", i + 1), a.clone());
                netns::run_in(&ns, move || async move {
                    let handle = netns::connect()?;
                    let index = link_index(&handle, &temp).await?.ok_or("the task's veth vanished")?;
                    let o = a.address.octets();
                    handle
                        .link()
                        .set(
                            LinkUnspec::new_with_index(index)
                                .name(name.clone())
                                .address(vec![0x02, 0x42, o[0], o[1], o[2], o[3]])
                                .build(),
                        )
                        .execute()
                        .await
                        .map_err(io(format!("naming the task's {name}")))?;
                    handle
                        .address()
                        .add(index, IpAddr::V4(a.address), a.prefix)
                        .execute()
                        .await
                        .map_err(io(format!("addressing the task's {name}")))?;
                    up(&handle, index, &format!("the task's {name}")).await
                })
                .await?;
            }
            // On internal networks only, the swarm's names are all it learns.
            let upstream = if internal_only(attachments) {
                super::dns::Upstream::None
            } else {
                super::dns::Upstream::Given(dns)
            };
            task.dns = super::dns::serve(&ns, self.view.clone(), task.networks.clone(), upstream).await?;
            task.balancing = balancing_rules(&self.view.read().unwrap_or_else(|p| p.into_inner()), &task.networks);
            apply_balancing(&ns, &task.balancing).await?;
            Ok::<(), String>(())
        }
        .await;
        let networks = task.networks.clone();
        state.tasks.insert(task_id.to_string(), task);
        if let Err(e) = result {
            self.release(&mut state, task_id).await;
            return Err(e);
        }
        tracing::debug!(task = %task_id, ?networks, "task attached to its overlays");
        Ok(())
    }

    /// Takes the task off its overlays; a network no task here is on any
    /// more goes from this node.
    pub async fn detach(&self, task_id: &str) {
        let mut state = self.state.lock().await;
        self.release(&mut state, task_id).await;
    }

    async fn release(&self, state: &mut State, task_id: &str) {
        let Some(task) = state.tasks.remove(task_id) else {
            return;
        };
        task.dns.abort();
        for (network_id, port) in &task.ports {
            let Some(net) = state.nets.get_mut(network_id) else {
                continue;
            };
            net.users.remove(task_id);
            let port = port.clone();
            // (Gone already with the task's namespace, mostly.)
            let _ = netns::run_in(&net.path, move || async move {
                let handle = netns::connect()?;
                if let Some(index) = link_index(&handle, &port).await? {
                    let _ = handle.link().del(index).execute().await;
                }
                Ok(())
            })
            .await;
        }
        let idle: Vec<String> = state
            .nets
            .iter()
            .filter(|(_, n)| n.users.is_empty())
            .map(|(id, _)| id.clone())
            .collect();
        for id in idle {
            if let Some(net) = state.nets.remove(&id) {
                netns::remove(&net.path);
                tracing::info!(network = %id, "overlay network removed from this node (no task on it)");
            }
        }
        if state.nets.is_empty() {
            let _ = nft(None, &format!("delete table ip {}\n", self.guard)).await;
        }
    }

    /// Takes the dispatcher's new view: peers, VIP backends and DNS records.
    pub async fn update_view(&self, view: NetworkView) {
        *self.view.write().unwrap_or_else(|p| p.into_inner()) = view;
        let mut state = self.state.lock().await;
        let ids: Vec<String> = state.nets.keys().cloned().collect();
        for id in ids {
            let peers = self.peers_of(&id);
            let Some(net) = state.nets.get_mut(&id) else { continue };
            if net.peers == peers {
                continue;
            }
            let (old, new) = (net.peers.clone(), peers.clone());
            let synced = netns::run_in(&net.path, move || async move {
                let handle = netns::connect()?;
                sync_peers(&handle, &old, &new).await
            })
            .await;
            match synced {
                Ok(()) => net.peers = peers,
                Err(e) => tracing::warn!(network = %id, error = %e, "updating the overlay's peers failed"),
            }
        }
        if let Err(e) = self.sync_mesh(&mut state).await {
            tracing::warn!(error = %e, "updating the routing mesh failed");
        }
        if !state.nets.is_empty()
            && let Err(e) = self.guard().await
        {
            tracing::warn!(error = %e, "updating the VXLAN guard failed");
        }
        for (id, task) in state.tasks.iter_mut() {
            let rules = balancing_rules(&self.view.read().unwrap_or_else(|p| p.into_inner()), &task.networks);
            if rules == task.balancing {
                continue;
            }
            match apply_balancing(&task.ns, &rules).await {
                Ok(()) => task.balancing = rules,
                Err(e) => tracing::debug!(task = %id, error = %e, "updating the task's VIP rules failed"),
            }
        }
    }

    /// Removes every overlay of this node (daemon stop).
    pub async fn teardown(&self) {
        let mut state = self.state.lock().await;
        self.stop_mesh(&mut state).await;
        let ids: Vec<String> = state.tasks.keys().cloned().collect();
        for id in ids {
            self.release(&mut state, &id).await;
        }
        for (_, net) in std::mem::take(&mut state.nets) {
            netns::remove(&net.path);
        }
        let _ = std::fs::remove_dir(&self.dir);
        let _ = nft(None, &format!("delete table ip {}\n", self.guard)).await;
    }

    fn mesh_table(&self) -> String {
        self.guard.replace("swarmkeep_vxlan_", "swarmkeep_mesh_")
    }

    fn mesh_link(&self) -> String {
        format!("swi{}", &self.guard["swarmkeep_vxlan_".len()..][..8])
    }

    /// Brings the routing mesh to the view: while a port is published, the
    /// ingress network's namespace is on this node with the node's ingress
    /// address, linked to the node's namespace; the node's published ports
    /// go there (nftables DNAT) and on to the services' tasks (DNAT,
    /// `numgen inc`), masqueraded to the node's ingress address so replies
    /// come back the same way.
    async fn sync_mesh(&self, state: &mut State) -> Result<(), String> {
        let ingress = self.view.read().unwrap_or_else(|p| p.into_inner()).ingress.clone();
        let Some(ingress) = ingress else {
            self.stop_mesh(state).await;
            return Ok(());
        };
        let network = ingress.network.clone().unwrap_or_default();
        let (address, prefix) = ingress
            .address
            .split_once('/')
            .and_then(|(a, p)| Some((a.parse::<Ipv4Addr>().ok()?, p.parse::<u8>().ok()?)))
            .ok_or("the node's ingress address is not an address")?;
        if !state.nets.contains_key(&network.id) {
            let attachment = OverlayAttachment {
                network_id: network.id.clone(),
                vni: network.vni,
                gateway: network.gateway.parse().unwrap_or(Ipv4Addr::UNSPECIFIED),
                address,
                prefix,
                ingress: true,
                internal: false,
            };
            let sandbox = self.sandbox(&attachment).await?;
            state.nets.insert(network.id.clone(), sandbox);
        }
        let Some(net) = state.nets.get_mut(&network.id) else {
            return Ok(());
        };
        // The mesh's user goes in once its link is made: a failed setup
        // is tried again with the next view.
        let fresh = !net.users.contains(MESH_USER);
        let peers = self.peers_of(&network.id);
        let (old, path) = (net.peers.clone(), net.path.clone());
        let link = self.mesh_link();
        if fresh {
            let ns = std::fs::File::open(&path).map_err(io("opening the ingress network's namespace"))?;
            let handle = netns::connect()?;
            if let Some(index) = link_index(&handle, &link).await? {
                let _ = handle.link().del(index).execute().await;
            }
            let sbox_end = LinkMessageBuilder::<LinkUnspec>::new()
                .name("mesh0".to_string())
                .setns_by_fd(ns.as_raw_fd())
                .build();
            handle
                .link()
                .add(
                    LinkVeth::new(&link, "mesh0")
                        .set_info_data(InfoData::Veth(InfoVeth::Peer(sbox_end)))
                        .build(),
                )
                .execute()
                .await
                .map_err(io("linking the routing mesh"))?;
            let index = link_index(&handle, &link).await?.ok_or("the mesh link vanished")?;
            netns::address_up(&handle, index, MESH_NODE_ADDR, 30, "the mesh link").await?;
            // Connections from the node itself (to 127.0.0.1:PORT) may leave
            // by the link once masqueraded.
            let _ = std::fs::write(format!("/proc/sys/net/ipv4/conf/{link}/route_localnet"), "1");
            netns::run_in(&path, move || async move {
                let handle = netns::connect()?;
                let index = link_index(&handle, "mesh0").await?.ok_or("the mesh link vanished")?;
                netns::address_up(&handle, index, MESH_SBOX_ADDR, 30, "the mesh link").await?;
                let br = link_index(&handle, "br0").await?.ok_or("the ingress bridge is gone")?;
                match handle.address().add(br, IpAddr::V4(address), prefix).execute().await {
                    Ok(()) => {}
                    Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EEXIST => {}
                    Err(e) => return Err(format!("addressing the ingress bridge: {e}")),
                }
                std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").map_err(io("enabling forwarding"))
            })
            .await?;
            net.users.insert(MESH_USER.to_string());
        }
        if old != peers {
            let new = peers.clone();
            netns::run_in(&path, move || async move {
                let handle = netns::connect()?;
                sync_peers(&handle, &old, &new).await
            })
            .await?;
            net.peers = peers;
        }
        let rules = mesh_rules(&self.mesh_table(), &link, &ingress.ports);
        if state.mesh.as_ref() != Some(&rules) {
            nft(None, &rules.0)
                .await
                .map_err(|e| format!("installing the routing mesh: {e}"))?;
            nft(Some(&path), &rules.1)
                .await
                .map_err(|e| format!("installing the routing mesh: {e}"))?;
            state.mesh = Some(rules);
        }
        Ok(())
    }

    /// Takes the routing mesh off this node (no port published any more).
    async fn stop_mesh(&self, state: &mut State) {
        if state.mesh.take().is_none() && !state.nets.values().any(|n| n.users.contains(MESH_USER)) {
            return;
        }
        let _ = nft(None, &format!("delete table ip {}\n", self.mesh_table())).await;
        if let Ok(handle) = netns::connect()
            && let Ok(Some(index)) = link_index(&handle, &self.mesh_link()).await
        {
            let _ = handle.link().del(index).execute().await;
        }
        let idle: Vec<String> = state
            .nets
            .iter_mut()
            .filter_map(|(id, n)| (n.users.remove(MESH_USER) && n.users.is_empty()).then(|| id.clone()))
            .collect();
        for id in idle {
            if let Some(net) = state.nets.remove(&id) {
                netns::remove(&net.path);
            }
        }
        tracing::info!("routing mesh removed from this node");
    }
}

/// The routing mesh's nftables scripts: the node's (published ports to the
/// ingress namespace over the link) and the ingress namespace's (to the
/// services' tasks, in turn).
fn mesh_rules(table: &str, link: &str, ports: &[swarmkeep_api::dispatcher::IngressPort]) -> (String, String) {
    let mut node = String::new();
    let mut sbox = String::new();
    for p in ports {
        let proto = if p.protocol.is_empty() {
            "tcp"
        } else {
            p.protocol.as_str()
        };
        let published = p.published_port;
        node.push_str(&format!(
            "    fib daddr type local {proto} dport {published} dnat to {MESH_SBOX_ADDR}\n"
        ));
        if p.backends.is_empty() {
            continue;
        }
        let map: Vec<String> = p
            .backends
            .iter()
            .enumerate()
            .map(|(i, b)| format!("{i} : {b}"))
            .collect();
        sbox.push_str(&format!(
            "    iifname \"mesh0\" {proto} dport {published} dnat to numgen inc mod {} map {{ {} }} : {}\n",
            map.len(),
            map.join(", "),
            p.target_port
        ));
    }
    let node = format!(
        "add table ip {table}\ndelete table ip {table}\ntable ip {table} {{\n  \
         chain prerouting {{ type nat hook prerouting priority dstnat; policy accept;\n{node}  }}\n  \
         chain output {{ type nat hook output priority -100; policy accept;\n{node}  }}\n  \
         chain postrouting {{ type nat hook postrouting priority srcnat; policy accept;\n    \
           oifname \"{link}\" masquerade\n  }}\n}}\n"
    );
    let t = "swarmkeep_ingress";
    let sbox = format!(
        "add table ip {t}\ndelete table ip {t}\ntable ip {t} {{\n  \
         chain prerouting {{ type nat hook prerouting priority dstnat; policy accept;\n{sbox}  }}\n  \
         chain postrouting {{ type nat hook postrouting priority srcnat; policy accept;\n    \
           ip saddr {MESH_NODE_ADDR} masquerade\n  }}\n  \
         chain forward {{ type filter hook forward priority filter; policy accept;\n    \
           iifname \"br0\" oifname \"mesh0\" ct state != {{ established, related }} drop\n  }}\n}}\n"
    );
    (node, sbox)
}

/// The nftables ruleset that balances the VIPs of `networks` over their
/// services' running tasks, in a task's own namespace.
pub(crate) fn balancing_rules(view: &NetworkView, networks: &[String]) -> String {
    let mut rules = String::new();
    for network in view.networks.iter().filter(|n| networks.contains(&n.id)) {
        for service in &network.services {
            if service.vip.is_empty() || service.tasks.is_empty() {
                continue;
            }
            let backends: Vec<String> = service
                .tasks
                .iter()
                .enumerate()
                .map(|(i, t)| format!("{i} : {}", t.addr))
                .collect();
            rules.push_str(&format!(
                "    ip daddr {} dnat to numgen inc mod {} map {{ {} }}\n",
                service.vip,
                backends.len(),
                backends.join(", ")
            ));
        }
    }
    rules
}

const LB_TABLE: &str = "swarmkeep_vip";

async fn apply_balancing(ns: &Path, rules: &str) -> Result<(), String> {
    let script = format!(
        "add table ip {LB_TABLE}\ndelete table ip {LB_TABLE}\ntable ip {LB_TABLE} {{\n  \
         chain output {{\n    type nat hook output priority -100; policy accept;\n{rules}  }}\n}}\n"
    );
    nft(Some(ns), &script)
        .await
        .map_err(|e| format!("installing the VIP rules: {e}"))
}

/// The guard's table name for the agent with this exec root.
fn guard_table(exec_root: &Path) -> String {
    format!("swarmkeep_vxlan_{}", short(&exec_root.to_string_lossy()))
}

/// Runs `nft -f -` with `script`, in the network namespace `ns` (the node's
/// own when `None`).
async fn nft(ns: Option<&Path>, script: &str) -> Result<(), String> {
    let file = match ns {
        Some(ns) => Some(std::fs::File::open(ns).map_err(io("opening the network namespace"))?),
        None => None,
    };
    let mut cmd = tokio::process::Command::new("nft");
    cmd.args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    if let Some(fd) = file.as_ref().map(|f| f.as_raw_fd()) {
        // SAFETY: setns is async-signal-safe; the fd is open in the child.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = cmd.spawn().map_err(io("running nft (install nftables)"))?;
    if let Some(mut stdin) = child.stdin.take() {
        tokio::io::AsyncWriteExt::write_all(&mut stdin, script.as_bytes())
            .await
            .map_err(io("nft"))?;
    }
    let out = child.wait_with_output().await.map_err(io("nft"))?;
    drop(file);
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use swarmkeep_api::dispatcher::{OverlayNetwork, ServiceRecord, TaskRecord};

    use super::*;

    #[test]
    fn vips_are_balanced_over_running_tasks_of_the_tasks_networks_only() {
        let record = |addr: &str| TaskRecord {
            addr: addr.into(),
            ..Default::default()
        };
        let view = NetworkView {
            data_path_port: 4789,
            networks: vec![
                OverlayNetwork {
                    id: "a".into(),
                    services: vec![
                        ServiceRecord {
                            name: "web".into(),
                            vip: "10.0.1.2".into(),
                            tasks: vec![record("10.0.1.3"), record("10.0.1.4")],
                            ..Default::default()
                        },
                        ServiceRecord {
                            name: "rr".into(),
                            tasks: vec![record("10.0.1.6")],
                            ..Default::default()
                        },
                        ServiceRecord {
                            name: "none".into(),
                            vip: "10.0.1.7".into(),
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                },
                OverlayNetwork {
                    id: "b".into(),
                    services: vec![ServiceRecord {
                        vip: "10.0.2.2".into(),
                        tasks: vec![record("10.0.2.3")],
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        assert_eq!(
            balancing_rules(&view, &["a".into()]),
            "    ip daddr 10.0.1.2 dnat to numgen inc mod 2 map { 0 : 10.0.1.3, 1 : 10.0.1.4 }\n"
        );
        assert_eq!(balancing_rules(&view, &[]), "");
    }
}
