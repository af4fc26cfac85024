//! `swarmkeep network create|ls|inspect|rm`: the swarm's networks, shown as
//! the docker CLI shows them.

use swarmkeep_api::control::{
    self, CreateNetworkRequest, GetNetworkRequest, IpamConfig, ListNetworksRequest, RemoveNetworkRequest,
};
use swarmkeep_api::engine;

use super::objects::sort_by_name;
use super::{Output, fetch_each, inspect_output, parse_filters, remove_each};
use crate::client::{CliError, Client};

/// `network create`'s flags, as the docker CLI's.
pub struct CreateFlags {
    pub driver: String,
    pub subnets: Vec<String>,
    pub gateways: Vec<String>,
    pub ranges: Vec<String>,
    pub attachable: bool,
    pub internal: bool,
    pub ingress: bool,
    pub options: Vec<String>,
    pub labels: Vec<String>,
}

/// The docker CLI's IPAM checks: one gateway and range per subnet.
fn ipam(flags: &CreateFlags) -> Result<Vec<IpamConfig>, CliError> {
    if flags.subnets.len() > 1 || flags.gateways.len() > 1 || flags.ranges.len() > 1 {
        return Err(CliError("swarmkeep supports one IPv4 subnet per network".into()));
    }
    if flags.subnets.is_empty() && !(flags.gateways.is_empty() && flags.ranges.is_empty()) {
        let flag = if flags.gateways.is_empty() {
            "ip-range"
        } else {
            "gateway"
        };
        return Err(CliError(format!("every {flag} must have a corresponding subnet")));
    }
    Ok(flags
        .subnets
        .first()
        .map(|subnet| IpamConfig {
            subnet: subnet.clone(),
            gateway: flags.gateways.first().cloned().unwrap_or_default(),
            range: flags.ranges.first().cloned().unwrap_or_default(),
        })
        .into_iter()
        .collect())
}

pub async fn create(client: &mut Client, name: &str, flags: CreateFlags) -> Output {
    let result: Result<String, CliError> = async {
        let ipam = ipam(&flags)?;
        let driver_options = flags
            .options
            .iter()
            .map(|o| match o.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (o.to_string(), String::new()),
            })
            .collect();
        let spec = control::NetworkSpec {
            annotations: Some(control::Annotations {
                name: name.to_string(),
                labels: super::parse_labels(&flags.labels),
            }),
            driver: flags.driver,
            driver_options,
            ipam,
            internal: flags.internal,
            attachable: flags.attachable,
            ingress: flags.ingress,
            ..Default::default()
        };
        let network = client
            .create_network(CreateNetworkRequest { spec: Some(spec) })
            .await?
            .into_inner()
            .network
            .unwrap_or_default();
        Ok(format!("{}\n", network.id))
    }
    .await;
    match result {
        Ok(s) => Output::ok(s),
        Err(e) => e.into(),
    }
}

const DEFAULT_FORMAT: &str = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}";

fn ls_row(n: &control::Network, no_trunc: bool) -> serde_json::Value {
    let id = if no_trunc {
        n.id.as_str()
    } else {
        &n.id[..n.id.len().min(12)]
    };
    serde_json::json!({
        "ID": id,
        "Name": engine::network_name(n),
        "Driver": n.spec.as_ref().map(|s| s.driver.as_str()).unwrap_or(""),
        "Scope": engine::network_scope(n),
        "Internal": "false",
        "IPv6": "false",
        "CreatedAt": swarmkeep_api::timefmt::pretty(n.meta.as_ref().and_then(|m| m.created_at.as_ref())),
    })
}

pub async fn ls(client: &mut Client, quiet: bool, no_trunc: bool, filters: &[String], format: Option<&str>) -> Output {
    let result: Result<String, CliError> = async {
        let filters = parse_filters(filters, &["dangling", "driver", "id", "label", "name", "scope", "type"])?;
        let mut networks = client
            .list_networks(ListNetworksRequest { filters: None })
            .await?
            .into_inner()
            .networks;
        networks.retain(|n| engine::network_matches(n, &filters));
        sort_by_name(&mut networks, |n| engine::network_name(n));
        let rows: Vec<_> = networks.iter().map(|n| ls_row(n, no_trunc)).collect();
        let headers = serde_json::json!({
            "ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
            "Internal": "INTERNAL", "IPv6": "IPV6", "CreatedAt": "CREATED AT",
        });
        crate::format::render_list(super::list_format(quiet, format, DEFAULT_FORMAT), &headers, &rows)
    }
    .await;
    match result {
        Ok(s) => Output::ok(s),
        Err(e) => e.into(),
    }
}

pub async fn inspect(client: &mut Client, names: &[String], format: Option<&str>) -> Output {
    let (found, errors) = fetch_each(names, async |id| {
        Ok(client.get_network(GetNetworkRequest { id }).await?.into_inner().network)
    })
    .await;
    let json = found.iter().map(engine::network_json).collect();
    inspect_output(json, None, format, errors)
}

pub async fn rm(client: &mut Client, names: &[String]) -> Output {
    remove_each(names, async |id| {
        client.remove_network(RemoveNetworkRequest { id }).await.map(drop)
    })
    .await
}
