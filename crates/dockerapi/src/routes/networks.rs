//! `/networks`: the swarm's networks — today the predefined `host`, which a
//! service joins with `docker service create --network host` (the docker CLI
//! looks it up with `?scope=swarm` first). Creating networks is refused
//! plainly; a predefined one cannot be removed (Docker's words).

use swarmkeep_api::control::control_server::Control;
use swarmkeep_api::control::{GetNetworkRequest, ListNetworksRequest, RemoveNetworkRequest};
use swarmkeep_api::engine::{self, network_json, network_name as name};

use super::{Api, call};
use crate::error::{ApiError, ApiResult};
use crate::exchange::{Reply, Req};
use crate::filters::Filters;

impl<C: Control> Api<C> {
    pub async fn networks_list(&self, req: &Req) -> ApiResult<Reply> {
        let filters = Filters::parse(req.query("filters"))?;
        filters.allow(&["dangling", "driver", "id", "label", "name", "scope", "type"])?;
        let mut networks = call!(self, list_networks, ListNetworksRequest { filters: None })?.networks;
        let pairs = filters.pairs();
        networks.retain(|n| engine::network_matches(n, &pairs));
        networks.sort_by(|a, b| name(a).cmp(name(b)));
        Ok(Reply::Json(200, networks.iter().map(network_json).collect()))
    }

    pub async fn network_inspect(&self, id: &str, req: &Req) -> ApiResult<Reply> {
        match req.query("scope") {
            None | Some("" | "swarm" | "local") => {}
            Some(other) => return Err(ApiError::bad_request(format!("invalid scope {other:?}"))),
        }
        let network = call!(self, get_network, GetNetworkRequest { id: id.into() })?
            .network
            .unwrap_or_default();
        Ok(Reply::Json(200, network_json(&network)))
    }

    pub async fn network_remove(&self, id: &str) -> ApiResult<Reply> {
        call!(self, remove_network, RemoveNetworkRequest { id: id.into() })?;
        Ok(Reply::Empty(204))
    }
}

pub fn unsupported() -> ApiError {
    ApiError::new(501, "swarmkeep does not support creating networks yet")
}
