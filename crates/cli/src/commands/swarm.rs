//! `swarmkeep swarm init|join|leave|join-token`.

use swarmkeep_api::control::{GetJoinTokenRequest, InitRequest, JoinRequest, LeaveRequest};

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

pub async fn init(
    client: &mut Client,
    advertise_addr: Option<&str>,
    listen_addr: Option<&str>,
    heartbeat: Option<&str>,
) -> Output {
    let result = async {
        let heartbeat_period_ms = heartbeat.map(parse_duration_ms).transpose()?.unwrap_or(0);
        let req = InitRequest {
            advertise_addr: advertise_addr.unwrap_or("").to_string(),
            listen_addr: listen_addr.unwrap_or("").to_string(),
            heartbeat_period_ms,
        };
        let node_id = client.init(req).await?.into_inner().node_id;
        let mut out = format!("Swarm initialized: current node ({node_id}) is now a manager.\n\n");
        out.push_str(&join_command(client, "worker").await?);
        out.push_str(
            "To add a manager to this swarm, run 'swarmkeep swarm join-token manager' and follow the instructions.\n\n",
        );
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
) -> Output {
    let req = JoinRequest {
        token: token.into(),
        remote_addr: remote.into(),
        advertise_addr: advertise_addr.unwrap_or("").into(),
        listen_addr: listen_addr.unwrap_or("").into(),
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
