//! `swarmkeep swarm init`.

use swarmkeep_api::control::InitRequest;

use super::Output;
use crate::client::{CliError, Client};

pub async fn init(client: &mut Client, advertise_addr: Option<&str>, listen_addr: Option<&str>) -> Output {
    let req = InitRequest {
        advertise_addr: advertise_addr.unwrap_or("").to_string(),
        listen_addr: listen_addr.unwrap_or("").to_string(),
    };
    match client.init(req).await {
        Ok(resp) => Output::ok(format!(
            "Swarm initialized: current node ({}) is now a manager.\n",
            resp.into_inner().node_id
        )),
        Err(status) => CliError::from(status).into(),
    }
}
