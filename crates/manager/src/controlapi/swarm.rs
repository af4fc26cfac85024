//! Swarm-wide calls: join tokens.

use swarmkeep_api::control;
use swarmkeep_api::errors::rpc;
use swarmkeep_store::objects::Cluster;
use swarmkeep_store::{Command, RaftTicks};
use time::OffsetDateTime;
use tonic::{Code, Status};

use crate::ca::cert_digest;
use crate::state::ManagerState;
use crate::tokens;

/// The longest duration Docker can show: a Go `time.Duration` (int64 ns).
const MAX_DURATION_MS: u64 = i64::MAX as u64 / 1_000_000;

/// The join token for `role`, rotated first if asked: a rotated token is
/// refused from the moment the new one is committed.
pub(super) async fn join_token(
    swarm: &ManagerState,
    role: &str,
    rotate: bool,
) -> Result<control::GetJoinTokenResponse, Status> {
    if role != "worker" && role != "manager" {
        return Err(rpc(Code::InvalidArgument, format!("unknown role {role}")));
    }
    if rotate {
        update_cluster(
            swarm,
            control::UpdateClusterRequest {
                rotate_worker_token: role == "worker",
                rotate_manager_token: role == "manager",
                ..Default::default()
            },
        )
        .await?;
        tracing::info!(%role, "join token rotated");
    }
    let cluster = swarm
        .store
        .read(|st| st.cluster.clone())
        .ok_or_else(|| Status::unavailable("no cluster"))?;
    let sealed = if role == "worker" {
        &cluster.sealed_worker_token
    } else {
        &cluster.sealed_manager_token
    };
    Ok(control::GetJoinTokenResponse {
        token: swarm.open_token(role, sealed)?,
        manager_addr: swarm.identity.advertise_addr.clone(),
    })
}

pub(super) async fn cluster_info(swarm: &ManagerState) -> Result<control::GetClusterResponse, Status> {
    let c = swarm
        .store
        .read(|st| st.cluster.clone())
        .ok_or_else(|| Status::unavailable("no cluster"))?;
    Ok(control::GetClusterResponse {
        id: c.id.clone(),
        meta: Some(super::common::meta_to_proto(&c.meta)),
        settings: Some(control::ClusterSettings {
            task_history_retention_limit: c.task_history_retention_limit,
            snapshot_interval: c.snapshot_interval,
            keep_old_snapshots: c.keep_old_snapshots,
            log_entries_for_slow_followers: c.log_entries_for_slow_followers,
            election_tick: c.election_tick,
            heartbeat_tick: c.heartbeat_tick,
            ca_force_rotate: c.ca_force_rotate,
            heartbeat_period_ms: c.heartbeat_period_ms,
            node_cert_expiry_ms: c.node_cert_expiry_ms,
            autolock: c.autolock,
            default_addr_pool: if c.default_addr_pool.is_empty() {
                vec![swarmkeep_scheduler::ipam::DEFAULT_POOL.to_string()]
            } else {
                c.default_addr_pool.clone()
            },
            subnet_size: if c.subnet_size == 0 {
                swarmkeep_scheduler::ipam::DEFAULT_SUBNET_SIZE
            } else {
                c.subnet_size
            },
            data_path_port: if c.data_path_port == 0 {
                DEFAULT_DATA_PATH_PORT
            } else {
                c.data_path_port
            },
        }),
        ca_cert_pem: c.ca_cert_pem.clone(),
        worker_token: swarm.open_token("worker", &c.sealed_worker_token)?,
        manager_token: swarm.open_token("manager", &c.sealed_manager_token)?,
    })
}

pub(super) fn new_unlock_key(swarm: &ManagerState) -> (String, Vec<u8>) {
    let kek = swarmkeep_crypto::KeyEncryptionKey::generate();
    let text = kek.to_unlock_key();
    let sealed = swarm.data_key.seal(crate::state::UNLOCK_KEY_AAD, &text);
    (String::from_utf8_lossy(text.expose()).into_owned(), sealed)
}

/// `swarm update`: the settings Docker exposes. Turning autolock on
/// returns the new unlock key (shown once, as Docker does).
pub(super) async fn update_cluster(
    swarm: &ManagerState,
    req: control::UpdateClusterRequest,
) -> Result<control::UpdateClusterResponse, Status> {
    // One write against the version read (or the caller's): with no version
    // given, a concurrent change makes this read again instead of undoing it.
    for _ in 0..10 {
        let current = swarm
            .store
            .read(|st| st.cluster.clone())
            .ok_or_else(|| Status::unavailable("no cluster"))?;
        let expected_version = req.version.as_ref().map_or(current.meta.version, |v| v.index);
        let (cluster, unlock_key) = changed(swarm, current, &req)?;
        let command = Command::UpdateCluster {
            cluster: Box::new(cluster),
            expected_version,
        };
        match swarm.write(command).await {
            Ok(_) => {
                tracing::info!("cluster settings updated");
                return Ok(control::UpdateClusterResponse { unlock_key });
            }
            Err(e) if req.version.is_none() && crate::errors::is_version_conflict(&e) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(crate::errors::version_conflict())
}

/// `cluster` as `req` asks, and the new unlock key if there is one. Every
/// refusal comes before anything is written.
fn changed(
    swarm: &ManagerState,
    mut cluster: Cluster,
    req: &control::UpdateClusterRequest,
) -> Result<(Cluster, String), Status> {
    let mut unlock_key = String::new();
    if let Some(v) = req.task_history_retention_limit {
        cluster.task_history_retention_limit = v;
    }
    if let Some(v) = req.snapshot_interval {
        if v == 0 {
            return Err(rpc(Code::InvalidArgument, "snapshot interval must be greater than 0"));
        }
        cluster.snapshot_interval = v;
    }
    if let Some(v) = req.keep_old_snapshots {
        cluster.keep_old_snapshots = v;
    }
    if let Some(v) = req.log_entries_for_slow_followers {
        cluster.log_entries_for_slow_followers = v;
    }
    if req.election_tick.is_some() || req.heartbeat_tick.is_some() {
        let ticks = RaftTicks {
            election: req.election_tick.unwrap_or(cluster.election_tick),
            heartbeat: req.heartbeat_tick.unwrap_or(cluster.heartbeat_tick),
        };
        ticks.check().map_err(|e| rpc(Code::InvalidArgument, e))?;
        cluster.election_tick = ticks.election;
        cluster.heartbeat_tick = ticks.heartbeat;
    }
    if let Some(v) = req.heartbeat_period_ms {
        if v == 0 {
            return Err(rpc(Code::InvalidArgument, "heartbeat period must be greater than 0"));
        }
        if v > MAX_DURATION_MS {
            return Err(rpc(Code::InvalidArgument, "heartbeat period is out of range"));
        }
        cluster.heartbeat_period_ms = v;
    }
    if let Some(v) = req.ca_force_rotate {
        cluster.ca_force_rotate = v;
    }
    if let Some(v) = req.node_cert_expiry_ms {
        check_cert_expiry(v)?;
        cluster.node_cert_expiry_ms = v;
    }
    match req.autolock {
        Some(true) if !cluster.autolock => {
            let (text, sealed) = new_unlock_key(swarm);
            cluster.autolock = true;
            cluster.sealed_unlock_key = sealed;
            unlock_key = text;
        }
        Some(false) => {
            cluster.autolock = false;
            cluster.sealed_unlock_key = Vec::new();
        }
        _ => {}
    }
    // Rotations go in the same write: a refused one leaves the settings as
    // they were too.
    if req.rotate_unlock_key {
        if !cluster.autolock {
            return Err(swarmkeep_api::errors::plain(
                Code::FailedPrecondition,
                "cannot rotate because autolock is not turned on",
            ));
        }
        if unlock_key.is_empty() {
            let (text, sealed) = new_unlock_key(swarm);
            cluster.sealed_unlock_key = sealed;
            unlock_key = text;
        }
    }
    if req.rotate_worker_token || req.rotate_manager_token {
        let digest = cert_digest(&cluster.ca_cert_pem).map_err(|e| Status::internal(e.to_string()))?;
        if req.rotate_worker_token {
            cluster.sealed_worker_token = swarm.seal_token("worker", &tokens::generate(&digest));
        }
        if req.rotate_manager_token {
            cluster.sealed_manager_token = swarm.seal_token("manager", &tokens::generate(&digest));
        }
    }
    cluster.meta.updated_at = OffsetDateTime::now_utc();
    Ok((cluster, unlock_key))
}

/// `swarm unlock-key [--rotate]`.
pub(super) async fn unlock_key(swarm: &ManagerState, rotate: bool) -> Result<control::GetUnlockKeyResponse, Status> {
    let cluster = swarm
        .store
        .read(|st| st.cluster.clone())
        .ok_or_else(|| Status::unavailable("no cluster"))?;
    if !cluster.autolock {
        let msg = if rotate {
            "cannot rotate because autolock is not turned on"
        } else {
            "no unlock key is set"
        };
        return Err(swarmkeep_api::errors::plain(Code::FailedPrecondition, msg));
    }
    if rotate {
        let changed = update_cluster(
            swarm,
            control::UpdateClusterRequest {
                rotate_unlock_key: true,
                ..Default::default()
            },
        )
        .await?;
        tracing::info!("unlock key rotated");
        return Ok(control::GetUnlockKeyResponse {
            unlock_key: changed.unlock_key,
        });
    }
    let kek = swarm.open_unlock_key(&cluster.sealed_unlock_key)?;
    Ok(control::GetUnlockKeyResponse {
        unlock_key: String::from_utf8_lossy(kek.to_unlock_key().expose()).into_owned(),
    })
}

/// A node certificate lifetime Swarm accepts: at least an hour.
pub(crate) fn check_cert_expiry(v: u64) -> Result<(), Status> {
    match min_cert_expiry_ms() {
        None if v < 3600 * 1000 => {
            return Err(rpc(Code::InvalidArgument, "minimum certificate expiry time is: 1h0m0s"));
        }
        Some(min) if v < min => {
            return Err(rpc(
                Code::InvalidArgument,
                format!("minimum certificate expiry time is: {}s", min / 1000),
            ));
        }
        _ => {}
    }
    if v > MAX_DURATION_MS {
        return Err(rpc(Code::InvalidArgument, "certificate expiry is out of range"));
    }
    Ok(())
}

/// Swarm's minimum certificate lifetime is one hour. Tests of renewal set
/// `SWARMKEEP_TEST_MIN_CERT_EXPIRY_SECS` on the daemon to go lower (shorter
/// certificates weaken nothing).
fn min_cert_expiry_ms() -> Option<u64> {
    std::env::var("SWARMKEEP_TEST_MIN_CERT_EXPIRY_SECS")
        .ok()?
        .parse::<u64>()
        .ok()
        .map(|s| s.max(1) * 1000)
}

/// `swarm init`'s raft ticks (0: Swarm's defaults), checked.
pub(super) fn init_ticks(req: &control::InitRequest) -> Result<RaftTicks, Status> {
    let defaults = RaftTicks::default();
    let ticks = RaftTicks {
        election: if req.election_tick == 0 {
            defaults.election
        } else {
            req.election_tick
        },
        heartbeat: if req.heartbeat_tick == 0 {
            defaults.heartbeat
        } else {
            req.heartbeat_tick
        },
    };
    ticks.check().map_err(|e| rpc(Code::InvalidArgument, e))?;
    Ok(ticks)
}

/// The VXLAN port when `--data-path-port` is not given.
pub const DEFAULT_DATA_PATH_PORT: u32 = 4789;

/// `swarm init`'s networking options, checked as Docker checks them.
pub(super) fn network_defaults(req: &control::InitRequest) -> Result<crate::state::NetworkDefaults, Status> {
    if req.data_path_port != 0 && !(1024..=49151).contains(&req.data_path_port) {
        return Err(rpc(
            Code::InvalidArgument,
            format!(
                "Datapath port number is not in valid range (1024-49151) : {}",
                req.data_path_port
            ),
        ));
    }
    swarmkeep_scheduler::ipam::check_pool(&req.default_addr_pool, req.subnet_size)
        .map_err(|e| rpc(Code::InvalidArgument, e))?;
    Ok(crate::state::NetworkDefaults {
        default_addr_pool: req.default_addr_pool.clone(),
        subnet_size: req.subnet_size,
        data_path_port: req.data_path_port,
    })
}
