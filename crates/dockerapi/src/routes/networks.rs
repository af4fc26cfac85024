//! `/networks`: the swarm's networks — today the predefined `host`, which a
//! service joins with `docker service create --network host` (the docker CLI
//! looks it up with `?scope=swarm` first). Creating networks is refused
//! plainly; a predefined one cannot be removed (Docker's words).

use swarmkeep_api::control::control_server::Control;
use swarmkeep_api::control::{self, GetNetworkRequest, ListNetworksRequest, RemoveNetworkRequest};
use swarmkeep_api::engine::{
    network_is_predefined as predefined, network_json, network_name as name, network_scope as scope,
};

use super::{Api, call};
use crate::error::{ApiError, ApiResult};
use crate::exchange::{Reply, Req};
use crate::filters::{Filters, labels_match};

impl<C: Control> Api<C> {
    pub async fn networks_list(&self, req: &Req) -> ApiResult<Reply> {
        let filters = Filters::parse(req.query("filters"))?;
        filters.allow(&["dangling", "driver", "id", "label", "name", "scope", "type"])?;
        let mut networks = call!(self, list_networks, ListNetworksRequest { filters: None })?.networks;
        networks.retain(|n| matches(n, &filters));
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

/// dockerd's network filters: `name` and `id` match a part, `type` is
/// `builtin` or `custom`; a builtin network is never dangling.
fn matches(n: &control::Network, f: &Filters) -> bool {
    let spec = n.spec.clone().unwrap_or_default();
    let labels = spec.annotations.clone().unwrap_or_default().labels;
    let any = |key: &str, ok: &dyn Fn(&str) -> bool| f.get(key).is_empty() || f.get(key).iter().any(|v| ok(v));
    any("name", &|v| name(n).contains(v))
        && any("id", &|v| n.id.contains(v))
        && any("driver", &|v| spec.driver == v)
        && any("scope", &|v| scope(n) == v)
        && any("type", &|v| (v == "builtin") == predefined(n))
        && any("dangling", &|v| matches!(v, "false" | "0"))
        && labels_match(&labels, &f.labels("label"))
}
