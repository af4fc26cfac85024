//! `swarmkeep swarm init|join|leave|join-token`.

use swarmkeep_api::control::{
    GetClusterRequest, GetJoinTokenRequest, GetUnlockKeyRequest, InfoRequest, InitRequest, JoinRequest, LeaveRequest,
    UnlockRequest, UpdateClusterRequest,
};

use super::Output;
use crate::client::{CliError, Client};

/// `5s`, `500ms`, `1m` as Go durations are written (the common forms).
pub fn parse_duration_ms(text: &str) -> Result<u64, CliError> {
    let bad = || CliError(format!("invalid argument {text:?}: time: invalid duration {text:?}"));
    let (num, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit() && c != '.').ok_or_else(bad)?);
    let n: f64 = num.parse().map_err(|_| bad())?;
    let ms = match unit {
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        "h" => n * 3_600_000.0,
        _ => return Err(bad()),
    };
    Ok(ms as u64)
}

async fn join_command(client: &mut Client, role: &str) -> Result<String, CliError> {
    let t = client
        .get_join_token(GetJoinTokenRequest {
            role: role.into(),
            rotate: false,
        })
        .await?
        .into_inner();
    Ok(format!(
        "To add a {role} to this swarm, run the following command:\n\n    swarmkeep swarm join --token {} {}\n\n",
        t.token, t.manager_addr
    ))
}

fn unlock_key_text(key: &str) -> String {
    format!(
        "To unlock a swarm manager after it restarts, run the `swarmkeep swarm unlock`\ncommand and provide the following key:\n\n    {key}\n\nPlease remember to store this key in a password manager, since without it you\nwill not be able to restart the manager.\n"
    )
}

/// `swarm init`'s settings of the new swarm.
pub struct InitSettings<'a> {
    pub heartbeat: Option<&'a str>,
    pub cert_expiry: Option<&'a str>,
    pub autolock: bool,
    /// `--default-addr-pool`, `--default-addr-pool-mask-length`, `--data-path-port`.
    pub default_addr_pool: &'a [String],
    pub default_addr_pool_mask_length: Option<u32>,
    pub data_path_port: Option<u32>,
    /// `--data-path-addr`.
    pub data_path_addr: Option<&'a str>,
}

pub async fn init(
    client: &mut Client,
    advertise_addr: Option<&str>,
    listen_addr: Option<&str>,
    settings: InitSettings<'_>,
) -> Output {
    let autolock = settings.autolock;
    let result = async {
        let heartbeat_period_ms = settings.heartbeat.map(parse_duration_ms).transpose()?.unwrap_or(0);
        let node_cert_expiry_ms = settings.cert_expiry.map(parse_duration_ms).transpose()?.unwrap_or(0);
        let req = InitRequest {
            advertise_addr: advertise_addr.unwrap_or("").to_string(),
            listen_addr: listen_addr.unwrap_or("").to_string(),
            heartbeat_period_ms,
            autolock,
            node_cert_expiry_ms,
            default_addr_pool: settings.default_addr_pool.to_vec(),
            subnet_size: settings.default_addr_pool_mask_length.unwrap_or(0),
            data_path_port: settings.data_path_port.unwrap_or(0),
            data_path_addr: settings.data_path_addr.unwrap_or("").to_string(),
            // docker swarm init has no flags for them: Swarm's defaults.
            election_tick: 0,
            heartbeat_tick: 0,
        };
        let node_id = client.init(req).await?.into_inner().node_id;
        let mut out = format!("Swarm initialized: current node ({node_id}) is now a manager.\n\n");
        out.push_str(&join_command(client, "worker").await?);
        out.push_str(
            "To add a manager to this swarm, run 'swarmkeep swarm join-token manager' and follow the instructions.\n\n",
        );
        if autolock {
            let key = client
                .get_unlock_key(GetUnlockKeyRequest { rotate: false })
                .await?
                .into_inner()
                .unlock_key;
            out.push_str(&unlock_key_text(&key));
        }
        Ok::<_, CliError>(out)
    };
    match result.await {
        Ok(s) => Output::ok(s),
        Err(e) => e.into(),
    }
}

pub async fn join(
    client: &mut Client,
    token: &str,
    remote: &str,
    advertise_addr: Option<&str>,
    listen_addr: Option<&str>,
    data_path_addr: Option<&str>,
) -> Output {
    let req = JoinRequest {
        token: token.into(),
        remote_addr: remote.into(),
        advertise_addr: advertise_addr.unwrap_or("").into(),
        listen_addr: listen_addr.unwrap_or("").into(),
        data_path_addr: data_path_addr.unwrap_or("").into(),
    };
    match client.join(req).await {
        Ok(r) => Output::ok(format!("This node joined a swarm as a {}.\n", r.into_inner().role)),
        Err(status) => CliError::from(status).into(),
    }
}

pub async fn leave(client: &mut Client, force: bool) -> Output {
    match client.leave(LeaveRequest { force }).await {
        Ok(_) => Output::ok("Node left the swarm.\n".into()),
        Err(status) => CliError::from(status).into(),
    }
}

pub async fn join_token(client: &mut Client, role: &str, quiet: bool, rotate: bool) -> Output {
    if role != "worker" && role != "manager" {
        return CliError(format!("unknown role {role}")).into();
    }
    let result = async {
        let t = client
            .get_join_token(GetJoinTokenRequest {
                role: role.into(),
                rotate,
            })
            .await?
            .into_inner();
        if quiet {
            return Ok(format!("{}\n", t.token));
        }
        let mut out = String::new();
        if rotate {
            out.push_str(&format!("Successfully rotated {role} join token.\n\n"));
        }
        out.push_str(&join_command(client, role).await?);
        Ok::<_, CliError>(out)
    };
    match result.await {
        Ok(s) => Output::ok(s),
        Err(e) => e.into(),
    }
}

/// The settings `swarm update` can change; None leaves one as it is.
#[derive(Default)]
pub struct UpdateFlags<'a> {
    pub autolock: Option<bool>,
    pub cert_expiry: Option<&'a str>,
    pub dispatcher_heartbeat: Option<&'a str>,
    pub snapshot_interval: Option<u64>,
    pub max_snapshots: Option<u64>,
    pub task_history_limit: Option<i64>,
}

pub async fn update(client: &mut Client, flags: UpdateFlags<'_>) -> Output {
    let result = async {
        let req = UpdateClusterRequest {
            task_history_retention_limit: flags.task_history_limit,
            snapshot_interval: flags.snapshot_interval,
            keep_old_snapshots: flags.max_snapshots,
            heartbeat_period_ms: flags.dispatcher_heartbeat.map(parse_duration_ms).transpose()?,
            node_cert_expiry_ms: flags.cert_expiry.map(parse_duration_ms).transpose()?,
            autolock: flags.autolock,
            ..Default::default()
        };
        let resp = client.update_cluster(req).await?.into_inner();
        let mut out = String::from("Swarm updated.\n");
        if !resp.unlock_key.is_empty() {
            out.push_str(&unlock_key_text(&resp.unlock_key));
        }
        Ok::<_, CliError>(out)
    };
    match result.await {
        Ok(s) => Output::ok(s),
        Err(e) => e.into(),
    }
}

/// `swarm inspect`: the cluster as the Engine API's `GET /swarm` shows it.
pub async fn inspect(client: &mut Client, format: Option<&str>) -> Output {
    let c = match client.get_cluster(GetClusterRequest {}).await {
        Ok(r) => r.into_inner(),
        Err(s) => return CliError::from(s).into(),
    };
    let settings = c.settings.unwrap_or_default();
    let meta = c.meta.as_ref();
    let mut ca_config = serde_json::json!({"NodeCertExpiry": settings.node_cert_expiry_ms * 1_000_000});
    if settings.ca_force_rotate != 0 {
        ca_config["ForceRotate"] = settings.ca_force_rotate.into();
    }
    let json = serde_json::json!({
        "ID": c.id,
        "Version": {"Index": meta.and_then(|m| m.version.as_ref()).map(|v| v.index).unwrap_or(0)},
        "CreatedAt": swarmkeep_api::timefmt::rfc3339_nano(meta.and_then(|m| m.created_at.as_ref())),
        "UpdatedAt": swarmkeep_api::timefmt::rfc3339_nano(meta.and_then(|m| m.updated_at.as_ref())),
        "Spec": {
            "Name": "default",
            "Labels": {},
            "Orchestration": {"TaskHistoryRetentionLimit": settings.task_history_retention_limit},
            "Raft": {
                "SnapshotInterval": settings.snapshot_interval,
                "KeepOldSnapshots": settings.keep_old_snapshots,
                "LogEntriesForSlowFollowers": settings.log_entries_for_slow_followers,
                "ElectionTick": settings.election_tick,
                "HeartbeatTick": settings.heartbeat_tick,
            },
            "Dispatcher": {"HeartbeatPeriod": settings.heartbeat_period_ms * 1_000_000},
            "CAConfig": ca_config,
            "TaskDefaults": {},
            "EncryptionConfig": {"AutoLockManagers": settings.autolock},
        },
        "TLSInfo": swarmkeep_api::engine::tls_info(&c.ca_cert_pem),
        "RootRotationInProgress": false,
        "DefaultAddrPool": settings.default_addr_pool,
        "SubnetSize": settings.subnet_size,
        "DataPathPort": settings.data_path_port,
        "JoinTokens": {"Worker": c.worker_token, "Manager": c.manager_token},
    });
    super::inspect_output(vec![json], None, format, Vec::new())
}

pub async fn unlock_key(client: &mut Client, quiet: bool, rotate: bool) -> Output {
    match client.get_unlock_key(GetUnlockKeyRequest { rotate }).await {
        Ok(r) => {
            let key = r.into_inner().unlock_key;
            if quiet {
                return Output::ok(format!("{key}\n"));
            }
            let prefix = if rotate {
                "Successfully rotated manager unlock key.\n\n"
            } else {
                ""
            };
            Output::ok(format!("{prefix}{}", unlock_key_text(&key)))
        }
        Err(s) => CliError::from(s).into(),
    }
}

/// `swarm ca [--rotate]`: the root CA certificate; `--rotate` first makes
/// every node take a new key and certificate from the CA (the root stays:
/// a root rotation is not supported yet).
pub async fn ca(client: &mut Client, rotate: bool) -> Output {
    let result = async {
        let mut cluster = client.get_cluster(GetClusterRequest {}).await?.into_inner();
        if rotate {
            let settings = cluster.settings.clone().unwrap_or_default();
            let req = UpdateClusterRequest {
                ca_force_rotate: Some(settings.ca_force_rotate.wrapping_add(1)),
                // Two rotations at once are two, not one.
                version: cluster.meta.as_ref().and_then(|m| m.version),
                ..Default::default()
            };
            client.update_cluster(req).await?;
            cluster = client.get_cluster(GetClusterRequest {}).await?.into_inner();
        }
        Ok::<_, CliError>(cluster.ca_cert_pem)
    };
    match result.await {
        Ok(pem) if pem.ends_with('\n') => Output::ok(pem),
        Ok(pem) => Output::ok(format!("{pem}\n")),
        Err(e) => e.into(),
    }
}

/// `swarm unlock`: the key is read from stdin (never from an argument, so it
/// stays out of shell history and `ps`).
pub async fn unlock(client: &mut Client) -> Output {
    let result = async {
        let state = client.info(InfoRequest {}).await?.into_inner().local_node_state;
        match state.as_str() {
            "locked" => {}
            "inactive" => return Err(CliError("Error: This node is not part of a swarm".into())),
            _ => return Err(CliError("Error: swarm is not locked".into())),
        }
        let mut key = String::new();
        std::io::stdin()
            .read_line(&mut key)
            .map_err(|e| CliError(format!("error reading the unlock key: {e}")))?;
        client
            .unlock(UnlockRequest {
                unlock_key: key.trim().to_string(),
            })
            .await?;
        Ok::<_, CliError>(String::new())
    };
    match result.await {
        Ok(s) => Output::ok(s),
        Err(e) => e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("5s").unwrap(), 5000);
        assert_eq!(parse_duration_ms("500ms").unwrap(), 500);
        assert_eq!(parse_duration_ms("1.5s").unwrap(), 1500);
        assert!(parse_duration_ms("5").is_err());
        assert!(parse_duration_ms("x5s").is_err());
    }
}
