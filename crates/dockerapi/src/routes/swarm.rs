//! `/swarm`: init, join, leave, inspect, update (settings, token and unlock
//! key rotation), unlockkey, unlock.

use std::collections::HashMap;

use serde::Deserialize;
use swarmkeep_api::control::control_server::Control;
use swarmkeep_api::control::{
    GetClusterRequest, GetClusterResponse, GetUnlockKeyRequest, InitRequest, JoinRequest, LeaveRequest, UnlockRequest,
    UpdateClusterRequest, UpdateNodeRequest, Version,
};
use swarmkeep_api::timefmt::rfc3339_nano;

use super::{Api, call, json_body, version_param};
use crate::error::{ApiError, ApiResult};
use crate::exchange::{Reply, Req};

const NS_PER_MS: u64 = 1_000_000;

/// Milliseconds as a Go `time.Duration` (int64 nanoseconds), saturating.
fn go_duration(ms: u64) -> u64 {
    ms.saturating_mul(NS_PER_MS).min(i64::MAX as u64)
}

/// A Go `time.Duration` sent by a client: int64 nanoseconds.
fn duration_ms(field: &str, ns: u64) -> ApiResult<u64> {
    if ns > i64::MAX as u64 {
        return Err(ApiError::bad_request(format!("{field} is out of range")));
    }
    Ok(ns / NS_PER_MS)
}

/// The `Swarm` object of `GET /swarm` (and, without `JoinTokens`, of
/// `/info`'s `Swarm.Cluster`).
pub fn cluster_json(c: &GetClusterResponse) -> serde_json::Value {
    let meta = c.meta.unwrap_or_default();
    let s = c.settings.clone().unwrap_or_default();
    let mut ca_config = serde_json::json!({"NodeCertExpiry": go_duration(s.node_cert_expiry_ms)});
    // `omitempty` in Docker's CAConfig.
    if s.ca_force_rotate != 0 {
        ca_config["ForceRotate"] = s.ca_force_rotate.into();
    }
    serde_json::json!({
        "ID": c.id,
        "Version": {"Index": meta.version.map(|v| v.index).unwrap_or(0)},
        "CreatedAt": rfc3339_nano(meta.created_at.as_ref()),
        "UpdatedAt": rfc3339_nano(meta.updated_at.as_ref()),
        "Spec": {
            "Name": "default",
            "Labels": {},
            "Orchestration": {"TaskHistoryRetentionLimit": s.task_history_retention_limit},
            "Raft": {
                "SnapshotInterval": s.snapshot_interval,
                "KeepOldSnapshots": s.keep_old_snapshots,
                "LogEntriesForSlowFollowers": s.log_entries_for_slow_followers,
                "ElectionTick": s.election_tick,
                "HeartbeatTick": s.heartbeat_tick,
            },
            "Dispatcher": {"HeartbeatPeriod": go_duration(s.heartbeat_period_ms)},
            "CAConfig": ca_config,
            "TaskDefaults": {},
            "EncryptionConfig": {"AutoLockManagers": s.autolock},
        },
        "TLSInfo": swarmkeep_api::engine::tls_info(&c.ca_cert_pem),
        "RootRotationInProgress": false,
        "DefaultAddrPool": s.default_addr_pool,
        "SubnetSize": s.subnet_size,
        "DataPathPort": s.data_path_port,
        "JoinTokens": {"Worker": c.worker_token, "Manager": c.manager_token},
    })
}

/// Docker's `SwarmSpec`, every field of API 1.41: what swarmkeep has a
/// setting for is taken, the rest is accepted at the value `GET /swarm`
/// shows (so a spec read and sent back goes through) and refused by name
/// otherwise ([`SwarmSpec::refused`]).
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct SwarmSpec {
    name: String,
    labels: Option<HashMap<String, String>>,
    orchestration: Orchestration,
    raft: Raft,
    dispatcher: Dispatcher,
    #[serde(rename = "CAConfig")]
    ca_config: CaConfig,
    encryption_config: EncryptionConfig,
    task_defaults: TaskDefaults,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct Orchestration {
    task_history_retention_limit: Option<i64>,
}

/// Swarm's raft settings, all the cluster's and honoured by every manager:
/// the snapshot interval, the older snapshots kept, the log entries kept
/// behind a snapshot, and the ticks (counted in swarmkeep's 30 ms raft tick
/// where Swarm's is one second; each manager takes new ticks at its next
/// start, as in Swarm). 0 leaves a tick as it is.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct Raft {
    snapshot_interval: u64,
    keep_old_snapshots: Option<u64>,
    log_entries_for_slow_followers: Option<u64>,
    election_tick: i64,
    heartbeat_tick: i64,
}

impl Raft {
    /// A tick as the control API takes it (0: unset), refused by name when
    /// it cannot be one.
    fn tick(field: &str, v: i64) -> ApiResult<u32> {
        u32::try_from(v).map_err(|_| ApiError::bad_request(format!("{field} must be between 0 and {}", u32::MAX)))
    }

    fn election_tick(&self) -> ApiResult<u32> {
        Self::tick("Raft.ElectionTick", self.election_tick)
    }

    fn heartbeat_tick(&self) -> ApiResult<u32> {
        Self::tick("Raft.HeartbeatTick", self.heartbeat_tick)
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct Dispatcher {
    heartbeat_period: u64,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct CaConfig {
    node_cert_expiry: u64,
    #[serde(rename = "ExternalCAs")]
    external_cas: Option<Vec<serde_json::Value>>,
    #[serde(rename = "SigningCACert")]
    signing_ca_cert: String,
    #[serde(rename = "SigningCAKey")]
    signing_ca_key: String,
    force_rotate: u64,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct EncryptionConfig {
    auto_lock_managers: bool,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct TaskDefaults {
    log_driver: Option<serde_json::Value>,
}

impl SwarmSpec {
    /// The first field set to what swarmkeep cannot honour, by its name.
    fn refused(&self) -> ApiResult<()> {
        let ca = &self.ca_config;
        let set = |v: &Option<serde_json::Value>| v.as_ref().is_some_and(|v| !v.is_null());
        let refused: [(&str, bool); 5] = [
            (
                "a swarm name other than default",
                !self.name.is_empty() && self.name != "default",
            ),
            (
                "swarm labels (Spec.Labels)",
                self.labels.as_ref().is_some_and(|l| !l.is_empty()),
            ),
            (
                "an external CA (CAConfig.ExternalCAs)",
                ca.external_cas.as_ref().is_some_and(|e| !e.is_empty()),
            ),
            (
                "a root CA rotation (CAConfig.SigningCACert, SigningCAKey)",
                !ca.signing_ca_cert.is_empty() || !ca.signing_ca_key.is_empty(),
            ),
            ("TaskDefaults.LogDriver", set(&self.task_defaults.log_driver)),
        ];
        match refused.iter().find(|(_, on)| *on) {
            Some((field, _)) => Err(crate::spec::unsupported(field)),
            None => Ok(()),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct InitBody {
    listen_addr: String,
    advertise_addr: String,
    force_new_cluster: bool,
    spec: SwarmSpec,
    auto_lock_managers: bool,
    availability: String,
    data_path_addr: String,
    data_path_port: u32,
    default_addr_pool: Vec<String>,
    subnet_size: u32,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct JoinBody {
    listen_addr: String,
    advertise_addr: String,
    remote_addrs: Vec<String>,
    join_token: String,
    availability: String,
    data_path_addr: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct UnlockBody {
    unlock_key: String,
}

/// What of `spec` differs from the current settings (zero means unset, as
/// in Docker's CLI, except the retention limit which may be 0).
fn settings_change(current: &GetClusterResponse, spec: &SwarmSpec) -> ApiResult<UpdateClusterRequest> {
    let s = current.settings.clone().unwrap_or_default();
    let mut req = UpdateClusterRequest::default();
    if let Some(v) = spec.orchestration.task_history_retention_limit
        && v != s.task_history_retention_limit
    {
        req.task_history_retention_limit = Some(v);
    }
    if spec.raft.snapshot_interval != 0 && spec.raft.snapshot_interval != s.snapshot_interval {
        req.snapshot_interval = Some(spec.raft.snapshot_interval);
    }
    if let Some(v) = spec.raft.keep_old_snapshots
        && v != s.keep_old_snapshots
    {
        req.keep_old_snapshots = Some(v);
    }
    if let Some(v) = spec.raft.log_entries_for_slow_followers
        && v != s.log_entries_for_slow_followers
    {
        req.log_entries_for_slow_followers = Some(v);
    }
    let election_tick = spec.raft.election_tick()?;
    if election_tick != 0 && election_tick != s.election_tick {
        req.election_tick = Some(election_tick);
    }
    let heartbeat_tick = spec.raft.heartbeat_tick()?;
    if heartbeat_tick != 0 && heartbeat_tick != s.heartbeat_tick {
        req.heartbeat_tick = Some(heartbeat_tick);
    }
    let heartbeat_ms = duration_ms("Dispatcher.HeartbeatPeriod", spec.dispatcher.heartbeat_period)?;
    if spec.dispatcher.heartbeat_period != 0 && heartbeat_ms != s.heartbeat_period_ms {
        req.heartbeat_period_ms = Some(heartbeat_ms.max(1));
    }
    let expiry_ms = duration_ms("CAConfig.NodeCertExpiry", spec.ca_config.node_cert_expiry)?;
    if spec.ca_config.node_cert_expiry != 0 && expiry_ms != s.node_cert_expiry_ms {
        req.node_cert_expiry_ms = Some(expiry_ms);
    }
    // Any other value than the cluster's is a rotation of every node's
    // certificate (the root CA stays).
    if spec.ca_config.force_rotate != s.ca_force_rotate {
        req.ca_force_rotate = Some(spec.ca_config.force_rotate);
    }
    if spec.encryption_config.auto_lock_managers != s.autolock {
        req.autolock = Some(spec.encryption_config.auto_lock_managers);
    }
    Ok(req)
}

fn is_empty(req: &UpdateClusterRequest) -> bool {
    *req == UpdateClusterRequest::default()
}

fn availability(value: &str) -> ApiResult<Option<String>> {
    match value.to_ascii_lowercase().as_str() {
        "" => Ok(None),
        v @ ("active" | "pause" | "drain") => Ok(Some(v.to_string())),
        other => Err(ApiError::bad_request(format!("invalid availability {other:?}"))),
    }
}

impl<C: Control> Api<C> {
    pub async fn swarm_inspect(&self) -> ApiResult<Reply> {
        let cluster = call!(self, get_cluster, GetClusterRequest {})?;
        Ok(Reply::Json(200, cluster_json(&cluster)))
    }

    pub async fn swarm_init(&self, req: &Req) -> ApiResult<Reply> {
        let body: InitBody = json_body(req)?;
        body.spec.refused()?;
        if body.force_new_cluster {
            return Err(ApiError::bad_request("swarmkeep does not support --force-new-cluster"));
        }
        let availability = availability(&body.availability)?;
        let heartbeat_period_ms = duration_ms("Dispatcher.HeartbeatPeriod", body.spec.dispatcher.heartbeat_period)?;
        let node_cert_expiry_ms = duration_ms("CAConfig.NodeCertExpiry", body.spec.ca_config.node_cert_expiry)?;
        let init = call!(
            self,
            init,
            InitRequest {
                advertise_addr: body.advertise_addr,
                listen_addr: body.listen_addr,
                heartbeat_period_ms,
                autolock: body.auto_lock_managers || body.spec.encryption_config.auto_lock_managers,
                node_cert_expiry_ms,
                default_addr_pool: body.default_addr_pool,
                subnet_size: body.subnet_size,
                data_path_port: body.data_path_port,
                data_path_addr: body.data_path_addr,
                election_tick: body.spec.raft.election_tick()?,
                heartbeat_tick: body.spec.raft.heartbeat_tick()?,
            }
        )?;
        // Settings of the init spec that Init itself does not take. If one is
        // refused, the swarm just made is left again: init is all or nothing.
        if let Err(e) = self.apply_init_settings(&init.node_id, &body.spec, availability).await {
            if let Err(undo) = call!(self, leave, LeaveRequest { force: true }) {
                tracing::warn!(error = %undo.message, "leaving the swarm after a refused init setting failed");
            }
            return Err(e);
        }
        Ok(Reply::Json(200, serde_json::Value::String(init.node_id)))
    }

    async fn apply_init_settings(
        &self,
        node_id: &str,
        spec: &SwarmSpec,
        availability: Option<String>,
    ) -> ApiResult<()> {
        let cluster = call!(self, get_cluster, GetClusterRequest {})?;
        let mut change = settings_change(&cluster, spec)?;
        change.autolock = None;
        change.heartbeat_period_ms = None;
        // Init itself started the raft with them.
        change.election_tick = None;
        change.heartbeat_tick = None;
        // At init 0 is unset, as dockerd takes it: Swarm's 500 stays.
        if change.log_entries_for_slow_followers == Some(0) {
            change.log_entries_for_slow_followers = None;
        }
        if !is_empty(&change) {
            call!(self, update_cluster, change)?;
        }
        if let Some(a) = availability {
            call!(
                self,
                update_node,
                UpdateNodeRequest {
                    id: node_id.to_string(),
                    availability: a,
                    ..Default::default()
                }
            )?;
        }
        Ok(())
    }

    pub async fn swarm_join(&self, req: &Req) -> ApiResult<Reply> {
        let body: JoinBody = json_body(req)?;
        let remote = body
            .remote_addrs
            .first()
            .cloned()
            .ok_or_else(|| ApiError::bad_request("at least 1 RemoteAddr is required to join"))?;
        // A joining node's availability would have to travel with the join;
        // swarmkeep's join does not carry it yet, so only the default is taken.
        if availability(&body.availability)?.is_some_and(|a| a != "active") {
            return Err(ApiError::bad_request(
                "swarmkeep does not support --availability on join yet: use docker node update after joining",
            ));
        }
        call!(
            self,
            join,
            JoinRequest {
                token: body.join_token,
                remote_addr: remote,
                advertise_addr: body.advertise_addr,
                listen_addr: body.listen_addr,
                data_path_addr: body.data_path_addr,
            }
        )?;
        Ok(Reply::Empty(200))
    }

    pub async fn swarm_leave(&self, req: &Req) -> ApiResult<Reply> {
        call!(
            self,
            leave,
            LeaveRequest {
                force: req.flag("force")
            }
        )
        .map_err(|e| {
            // dockerd answers a manager's leave without force with 503
            // (its notAvailableError), not 400.
            if e.status == 400 {
                ApiError::new(503, e.message)
            } else {
                e
            }
        })?;
        Ok(Reply::Empty(200))
    }

    /// `swarm update`, `join-token --rotate`, `unlock-key --rotate`: the
    /// whole spec comes back with the version it was read at.
    pub async fn swarm_update(&self, req: &Req) -> ApiResult<Reply> {
        let version = version_param(req, "swarm")?;
        let spec: SwarmSpec = json_body(req)?;
        spec.refused()?;
        let cluster = call!(self, get_cluster, GetClusterRequest {})?;
        let current = cluster
            .meta
            .as_ref()
            .and_then(|m| m.version)
            .map(|v| v.index)
            .unwrap_or(0);
        if current != version {
            return Err(ApiError::new(
                500,
                "rpc error: code = Unknown desc = update out of sequence",
            ));
        }
        let mut change = settings_change(&cluster, &spec)?;
        change.rotate_worker_token = req.flag("rotateWorkerToken");
        change.rotate_manager_token = req.flag("rotateManagerToken");
        change.rotate_unlock_key = req.flag("rotateManagerUnlockKey");
        if !is_empty(&change) {
            // The settings and the rotations in one write, applied only
            // against the version the caller read (atomically in the store).
            change.version = Some(Version { index: version });
            call!(self, update_cluster, change)?;
        }
        Ok(Reply::Empty(200))
    }

    /// An empty key when autolock is off: the CLI then says "no unlock key is set".
    pub async fn swarm_unlock_key(&self) -> ApiResult<Reply> {
        let cluster = call!(self, get_cluster, GetClusterRequest {})?;
        let key = if cluster.settings.is_some_and(|s| s.autolock) {
            call!(self, get_unlock_key, GetUnlockKeyRequest { rotate: false })?.unlock_key
        } else {
            String::new()
        };
        Ok(Reply::Json(200, serde_json::json!({ "UnlockKey": key })))
    }

    pub async fn swarm_unlock(&self, req: &Req) -> ApiResult<Reply> {
        let body: UnlockBody = json_body(req)?;
        call!(
            self,
            unlock,
            UnlockRequest {
                unlock_key: body.unlock_key,
            }
        )?;
        Ok(Reply::Empty(200))
    }
}
