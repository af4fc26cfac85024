//! `/networks`: the swarm's networks — `host`, `ingress` and the overlay
//! networks operators create — and the node-local rows a swarm node shows
//! beside them (`bridge`, `docker_gwbridge`, `none`: predefined, never
//! removed, not for services). The docker CLI looks a service's network up
//! with `?scope=swarm` first.

use std::collections::HashMap;

use serde::Deserialize;
use swarmkeep_api::control::control_server::Control;
use swarmkeep_api::control::{
    self, Annotations, CreateNetworkRequest, GetNetworkRequest, InfoRequest, ListNetworksRequest, NetworkSpec,
    RemoveNetworkRequest,
};
use swarmkeep_api::engine::{self, network_json, network_name as name};

use super::{Api, call, json_body};
use crate::error::{ApiError, ApiResult};
use crate::exchange::{Reply, Req};
use crate::filters::Filters;

/// Docker's `NetworkCreateRequest`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    name: String,
    check_duplicate: bool,
    driver: String,
    scope: String,
    #[serde(rename = "EnableIPv6")]
    enable_ipv6: bool,
    #[serde(rename = "IPAM")]
    ipam: Option<Ipam>,
    internal: bool,
    attachable: bool,
    ingress: bool,
    config_only: bool,
    config_from: Option<ConfigFrom>,
    options: Option<HashMap<String, String>>,
    labels: Option<HashMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct Ipam {
    driver: String,
    config: Option<Vec<IpamConfig>>,
    options: Option<HashMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct IpamConfig {
    subnet: String,
    #[serde(rename = "IPRange")]
    ip_range: String,
    gateway: String,
    aux_address: Option<HashMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ConfigFrom {
    network: String,
}

/// The node-local networks Docker lists on a swarm node: (name, driver).
const LOCAL: [(&str, &str); 3] = [("bridge", "bridge"), ("docker_gwbridge", "bridge"), ("none", "null")];

impl<C: Control> Api<C> {
    /// This node's local rows: IDs of 64 hex digits as dockerd's, stable
    /// for the node.
    async fn local_networks(&self) -> Vec<control::Network> {
        let node = call!(self, info, InfoRequest {}).map(|i| i.node_id).unwrap_or_default();
        LOCAL
            .iter()
            .map(|(n, driver)| {
                let digest = swarmkeep_api::naming::container_id(&format!("network:{node}:{n}"));
                control::Network {
                    id: digest,
                    meta: None,
                    spec: Some(NetworkSpec {
                        annotations: Some(Annotations {
                            name: n.to_string(),
                            labels: [("com.docker.swarm.predefined".to_string(), "true".to_string())]
                                .into_iter()
                                .collect(),
                        }),
                        driver: driver.to_string(),
                        ..Default::default()
                    }),
                    allocation: None,
                }
            })
            .collect()
    }

    pub async fn networks_list(&self, req: &Req) -> ApiResult<Reply> {
        let filters = Filters::parse(req.query("filters"))?;
        filters.allow(&["dangling", "driver", "id", "label", "name", "scope", "type"])?;
        let mut networks = call!(self, list_networks, ListNetworksRequest { filters: None })?.networks;
        networks.extend(self.local_networks().await);
        let pairs = filters.pairs();
        networks.retain(|n| engine::network_matches(n, &pairs));
        // Local labels are the node's own: they are not shown.
        networks.sort_by(|a, b| name(a).cmp(name(b)));
        Ok(Reply::Json(200, networks.iter().map(shown).collect()))
    }

    pub async fn network_inspect(&self, id: &str, req: &Req) -> ApiResult<Reply> {
        let scope = req.query("scope").unwrap_or("");
        if !matches!(scope, "" | "swarm" | "local") {
            return Err(ApiError::bad_request(format!("invalid scope {scope:?}")));
        }
        if scope != "swarm"
            && let Some(local) = self
                .local_networks()
                .await
                .into_iter()
                .find(|n| name(n) == id || n.id == id || (id.len() >= 12 && n.id.starts_with(id)))
        {
            return Ok(Reply::Json(200, shown(&local)));
        }
        let network = call!(self, get_network, GetNetworkRequest { id: id.into() })?
            .network
            .unwrap_or_default();
        Ok(Reply::Json(200, shown(&network)))
    }

    pub async fn network_create(&self, req: &Req) -> ApiResult<Reply> {
        let body: CreateBody = json_body(req)?;
        let _ = body.check_duplicate; // a swarm network's name is always unique (409)
        if body.name.is_empty() {
            return Err(ApiError::bad_request("network name must be provided"));
        }
        if LOCAL.iter().any(|(n, _)| *n == body.name) || body.name == "host" {
            return Err(ApiError::new(
                403,
                format!("{} is a pre-defined network and cannot be created", body.name),
            ));
        }
        if !matches!(body.scope.as_str(), "" | "swarm") {
            return Err(ApiError::bad_request(format!(
                "network scope {:?} is not supported: swarmkeep's networks are swarm-scoped overlays",
                body.scope
            )));
        }
        if body.config_only || body.config_from.as_ref().is_some_and(|c| !c.network.is_empty()) {
            return Err(ApiError::bad_request(
                "ConfigOnly and ConfigFrom networks are not supported",
            ));
        }
        let ipam = body.ipam.unwrap_or_default();
        if ipam.options.as_ref().is_some_and(|o| !o.is_empty()) {
            return Err(ApiError::bad_request("IPAM.Options are not supported"));
        }
        let mut configs = Vec::new();
        for c in ipam.config.unwrap_or_default() {
            if c.aux_address.as_ref().is_some_and(|a| !a.is_empty()) {
                return Err(ApiError::bad_request(
                    "IPAM.Config.AuxiliaryAddresses are not supported",
                ));
            }
            configs.push(control::IpamConfig {
                subnet: c.subnet,
                range: c.ip_range,
                gateway: c.gateway,
            });
        }
        let spec = NetworkSpec {
            annotations: Some(Annotations {
                name: body.name,
                labels: body.labels.unwrap_or_default(),
            }),
            // Docker's default driver is the local bridge, which is not a
            // swarm network: said so by the control API.
            driver: if body.driver.is_empty() {
                "bridge".into()
            } else {
                body.driver
            },
            driver_options: body.options.unwrap_or_default(),
            ipam: configs,
            internal: body.internal,
            attachable: body.attachable,
            ingress: body.ingress,
            ipv6: body.enable_ipv6,
            ipam_driver: ipam.driver,
        };
        let network = call!(self, create_network, CreateNetworkRequest { spec: Some(spec) })?
            .network
            .unwrap_or_default();
        Ok(Reply::Json(201, serde_json::json!({"Id": network.id, "Warning": ""})))
    }

    pub async fn network_remove(&self, id: &str) -> ApiResult<Reply> {
        if let Some(local) = self
            .local_networks()
            .await
            .into_iter()
            .find(|n| name(n) == id || n.id == id)
        {
            return Err(ApiError::new(
                403,
                format!("{} is a pre-defined network and cannot be removed", name(&local)),
            ));
        }
        call!(self, remove_network, RemoveNetworkRequest { id: id.into() })?;
        Ok(Reply::Empty(204))
    }
}

/// A network as dockerd answers: a predefined one's internal label is not
/// shown.
fn shown(n: &control::Network) -> serde_json::Value {
    let mut json = network_json(n);
    if let Some(labels) = json.get_mut("Labels").and_then(|l| l.as_object_mut()) {
        labels.remove("com.docker.swarm.predefined");
    }
    json
}
