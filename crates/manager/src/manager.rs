//! A node's manager role: inactive until `swarm init`, then the holder of the
//! cluster data key and the raft store.

use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use swarmkeep_crypto::{DataKey, new_id, random_bytes};
use swarmkeep_store::objects::{Availability, Cluster, Meta, Node, NodeDescription, NodeRole};
use swarmkeep_store::{Command, Store, StoreSettings};
use time::OffsetDateTime;
use tonic::{Code, Status};

use crate::controlapi::common::{ALREADY_IN_SWARM, NOT_A_MANAGER, write_error};
use crate::keystore::KeyStore;
use crate::local_node::LocalNode;

/// Swarm's default cluster port.
pub const DEFAULT_PORT: u16 = 2377;

#[derive(Clone, Debug)]
pub struct ManagerConfig {
    pub data_dir: PathBuf,
    /// The hostname this node reports (`--hostname`), else the system's.
    pub hostname: Option<String>,
    pub store: StoreSettings,
}

/// A manager that is part of a swarm.
pub struct ActiveSwarm {
    pub store: Store,
    pub data_key: DataKey,
    pub local: LocalNodeInfo,
}

/// This node's identity, as the control API reports it.
#[derive(Clone, Debug)]
pub struct LocalNodeInfo {
    pub node_id: String,
    pub cluster_id: String,
    pub advertise_addr: String,
}

pub struct Manager {
    config: ManagerConfig,
    active: RwLock<Option<Arc<ActiveSwarm>>>,
    /// Serialises `swarm init` (and later join/leave).
    membership: tokio::sync::Mutex<()>,
}

impl Manager {
    /// Starts the manager role from the data dir: a node that was part of a
    /// swarm resumes it; any leftover of an interrupted init is removed.
    pub async fn start(config: ManagerConfig) -> Result<Arc<Self>, String> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&config.data_dir)
            .map_err(|e| format!("creating data dir {}: {e}", config.data_dir.display()))?;
        let manager = Arc::new(Self {
            config,
            active: RwLock::new(None),
            membership: Default::default(),
        });
        match LocalNode::load(&manager.config.data_dir).map_err(|e| format!("reading node state: {e}"))? {
            Some(local) => {
                let data_key = KeyStore::new(&manager.keys_dir()).load().map_err(|e| e.to_string())?;
                let store = Store::open(&manager.raft_dir(), local.raft_id, &manager.config.store)
                    .await
                    .map_err(|e| e.to_string())?;
                tracing::info!(node_id = %local.node_id, "resuming swarm membership");
                manager.set_active(ActiveSwarm {
                    store,
                    data_key,
                    local: LocalNodeInfo {
                        node_id: local.node_id,
                        cluster_id: local.cluster_id,
                        advertise_addr: local.advertise_addr,
                    },
                });
            }
            None => manager.remove_partial_init(),
        }
        Ok(manager)
    }

    fn keys_dir(&self) -> PathBuf {
        self.config.data_dir.join("keys")
    }

    fn raft_dir(&self) -> PathBuf {
        self.config.data_dir.join("raft")
    }

    fn remove_partial_init(&self) {
        for dir in [self.keys_dir(), self.raft_dir()] {
            if dir.exists() {
                tracing::warn!(dir = %dir.display(), "removing the remains of an interrupted swarm init");
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
    }

    fn set_active(&self, swarm: ActiveSwarm) {
        *self.active.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(swarm));
    }

    /// The swarm this node manages, or Docker's "not a swarm manager" error.
    pub fn active(&self) -> Result<Arc<ActiveSwarm>, Status> {
        self.active
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| swarmkeep_api::errors::plain(Code::Unavailable, NOT_A_MANAGER))
    }

    pub fn is_active(&self) -> bool {
        self.active.read().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// `swarm init`: makes a new one-manager swarm. Either every piece (keys,
    /// raft store, cluster and node objects, node state) is in place when it
    /// returns Ok, or none is.
    pub async fn init(&self, advertise_addr: &str, listen_addr: &str) -> Result<String, Status> {
        let _guard = self.membership.lock().await;
        if self.is_active() {
            return Err(swarmkeep_api::errors::plain(Code::Unavailable, ALREADY_IN_SWARM));
        }
        let listen = parse_addr(
            if listen_addr.is_empty() { "0.0.0.0" } else { listen_addr },
            DEFAULT_PORT,
        )
        .map_err(|_| {
            swarmkeep_api::errors::plain(Code::InvalidArgument, format!("invalid listen address {listen_addr}"))
        })?;
        let advertise = choose_advertise_addr(advertise_addr, listen)?;
        self.remove_partial_init();
        match self.create_swarm(advertise, listen).await {
            Ok(id) => Ok(id),
            Err(e) => {
                self.remove_partial_init();
                Err(e)
            }
        }
    }

    async fn create_swarm(&self, advertise: SocketAddr, listen: SocketAddr) -> Result<String, Status> {
        let internal = |what: &str, e: &dyn std::fmt::Display| {
            swarmkeep_api::errors::rpc(Code::Internal, format!("swarm init: {what}: {e}"))
        };
        let node_id = new_id();
        let cluster_id = new_id();
        let raft_id = random_raft_id();
        let data_key = DataKey::generate();
        KeyStore::new(&self.keys_dir())
            .create(&data_key)
            .map_err(|e| internal("writing keys", &e))?;

        let store = Store::open(&self.raft_dir(), raft_id, &self.config.store)
            .await
            .map_err(|e| internal("opening the raft store", &e))?;
        let created = async {
            store
                .bootstrap(&advertise.to_string())
                .await
                .map_err(|e| internal("starting raft", &e))?;
            let now = OffsetDateTime::now_utc();
            let meta = Meta {
                version: 0,
                created_at: now,
                updated_at: now,
            };
            let cluster = Cluster {
                id: cluster_id.clone(),
                meta: meta.clone(),
                name: "default".into(),
                snapshot_interval: self.config.store.snapshot_interval,
                task_history_retention_limit: 5,
            };
            let node = Node {
                id: node_id.clone(),
                meta,
                labels: Default::default(),
                role: NodeRole::Manager,
                availability: Availability::Active,
                description: describe_host(self.config.hostname.as_deref()),
                addr: advertise.ip().to_string(),
                raft_id: Some(raft_id),
                manager_addr: Some(advertise.to_string()),
            };
            store
                .write(Command::InitCluster { cluster, node })
                .await
                .map_err(write_error)?;
            let local = LocalNode {
                node_id: node_id.clone(),
                cluster_id: cluster_id.clone(),
                raft_id,
                advertise_addr: advertise.to_string(),
                listen_addr: listen.to_string(),
            };
            local
                .save(&self.config.data_dir)
                .map_err(|e| internal("writing node state", &e))?;
            Ok::<_, Status>(())
        }
        .await;
        if let Err(e) = created {
            store.shutdown().await;
            return Err(e);
        }
        tracing::info!(%node_id, %advertise, "swarm initialized");
        self.set_active(ActiveSwarm {
            store,
            data_key,
            local: LocalNodeInfo {
                node_id: node_id.clone(),
                cluster_id,
                advertise_addr: advertise.to_string(),
            },
        });
        Ok(node_id)
    }

    pub async fn shutdown(&self) {
        let active = self.active.write().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(swarm) = active {
            swarm.store.shutdown().await;
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.config.data_dir
    }
}

fn random_raft_id() -> u64 {
    let mut b = [0u8; 8];
    random_bytes(&mut b);
    u64::from_le_bytes(b).max(1)
}

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

fn choose_advertise_addr(advertise: &str, listen: SocketAddr) -> Result<SocketAddr, Status> {
    if !advertise.is_empty() {
        let addr = parse_addr(advertise, listen.port()).map_err(|_| {
            swarmkeep_api::errors::plain(
                Code::InvalidArgument,
                "advertise address must be a non-zero IP address or network interface (with optional port number)",
            )
        })?;
        if addr.ip().is_unspecified() {
            return Err(swarmkeep_api::errors::plain(
                Code::InvalidArgument,
                "advertise address must be a non-zero IP address or network interface (with optional port number)",
            ));
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

fn describe_host(hostname: Option<&str>) -> NodeDescription {
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
        assert_eq!(
            choose_advertise_addr("", parse_addr("127.0.0.5:3000", 1).unwrap())
                .unwrap()
                .to_string(),
            "127.0.0.5:3000"
        );
    }
}
