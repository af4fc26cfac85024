//! Swarm-wide calls: join tokens.

use swarmkeep_api::control;
use swarmkeep_api::errors::rpc;
use swarmkeep_store::Command;
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
        for _ in 0..10 {
            let mut cluster = swarm
                .store
                .read(|st| st.cluster.clone())
                .ok_or_else(|| Status::unavailable("no cluster"))?;
            let digest = cert_digest(&cluster.ca_cert_pem).map_err(|e| Status::internal(e.to_string()))?;
            let sealed = swarm.seal_token(role, &tokens::generate(&digest));
            if role == "worker" {
                cluster.sealed_worker_token = sealed;
            } else {
                cluster.sealed_manager_token = sealed;
            }
            cluster.meta.updated_at = OffsetDateTime::now_utc();
            let expected = cluster.meta.version;
            // Only replace the cluster object we read (no lost update).
            let current = swarm.store.read(|st| st.cluster.as_ref().map(|c| c.meta.version));
            if current != Some(expected) {
                continue;
            }
            swarm.write(Command::PutCluster(Box::new(cluster))).await?;
            tracing::info!(%role, "join token rotated");
            break;
        }
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
            heartbeat_period_ms: c.heartbeat_period_ms,
            node_cert_expiry_ms: c.node_cert_expiry_ms,
            autolock: c.autolock,
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
    let mut cluster = swarm
        .store
        .read(|st| st.cluster.clone())
        .ok_or_else(|| Status::unavailable("no cluster"))?;
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
    if let Some(v) = req.heartbeat_period_ms {
        if v == 0 {
            return Err(rpc(Code::InvalidArgument, "heartbeat period must be greater than 0"));
        }
        if v > MAX_DURATION_MS {
            return Err(rpc(Code::InvalidArgument, "heartbeat period is out of range"));
        }
        cluster.heartbeat_period_ms = v;
    }
    if let Some(v) = req.node_cert_expiry_ms {
        if v < 3600 * 1000 {
            return Err(rpc(Code::InvalidArgument, "minimum certificate expiry time is: 1h0m0s"));
        }
        if v > MAX_DURATION_MS {
            return Err(rpc(Code::InvalidArgument, "certificate expiry is out of range"));
        }
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
    cluster.meta.updated_at = OffsetDateTime::now_utc();
    let command = match req.version {
        Some(v) => Command::UpdateCluster {
            cluster: Box::new(cluster),
            expected_version: v.index,
        },
        None => Command::PutCluster(Box::new(cluster)),
    };
    swarm.write(command).await?;
    tracing::info!("cluster settings updated");
    Ok(control::UpdateClusterResponse { unlock_key })
}

/// `swarm unlock-key [--rotate]`.
pub(super) async fn unlock_key(swarm: &ManagerState, rotate: bool) -> Result<control::GetUnlockKeyResponse, Status> {
    let mut cluster = swarm
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
        let (text, sealed) = new_unlock_key(swarm);
        cluster.sealed_unlock_key = sealed;
        cluster.meta.updated_at = OffsetDateTime::now_utc();
        swarm.write(Command::PutCluster(Box::new(cluster))).await?;
        tracing::info!("unlock key rotated");
        return Ok(control::GetUnlockKeyResponse { unlock_key: text });
    }
    let kek = swarm.open_unlock_key(&cluster.sealed_unlock_key)?;
    Ok(control::GetUnlockKeyResponse {
        unlock_key: String::from_utf8_lossy(kek.to_unlock_key().expose()).into_owned(),
    })
}
