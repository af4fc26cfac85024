//! `swarmkeep node ls|inspect`.

use swarmkeep_api::control::{self, GetClusterRequest, GetNodeRequest, InfoRequest, ListNodesRequest};
use swarmkeep_api::engine;
use swarmkeep_api::timefmt::pretty;

use super::objects::sort_by_name;
use super::{Output, fetch_each, inspect_output, parse_filters, remove_each};
use crate::client::{CliError, Client, daemon_error};

const DEFAULT_FORMAT: &str = "table {{.ID}} {{if .Self}}*{{else}} {{ end }}\t{{.Hostname}}\t{{.Status}}\t{{.Availability}}\t{{.ManagerStatus}}\t{{.EngineVersion}}";

/// Go's `strings.Title(strings.ToLower(s))` for one word.
fn title(s: &str) -> String {
    let lower = s.to_lowercase();
    let mut chars = lower.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn manager_status(n: &control::Node) -> String {
    match &n.manager_status {
        Some(m) if m.leader => "Leader".into(),
        Some(m) => title(&m.reachability),
        None => String::new(),
    }
}

fn ls_row(n: &control::Node, self_id: &str) -> serde_json::Value {
    let spec = n.spec.clone().unwrap_or_default();
    let desc = n.description.clone().unwrap_or_default();
    serde_json::json!({
        "Availability": title(&spec.availability),
        "EngineVersion": desc.engine_version,
        "Hostname": desc.hostname,
        "ID": n.id,
        "ManagerStatus": manager_status(n),
        "Self": n.id == self_id,
        "Status": title(&n.status.clone().unwrap_or_default().state),
        "TLSStatus": "Ready",
    })
}

fn ls_headers() -> serde_json::Value {
    serde_json::json!({
        "Availability": "AVAILABILITY", "EngineVersion": "ENGINE VERSION", "Hostname": "HOSTNAME", "ID": "ID",
        "ManagerStatus": "MANAGER STATUS", "Self": "", "Status": "STATUS", "TLSStatus": "TLS STATUS",
    })
}

async fn self_id(client: &mut Client) -> Result<String, CliError> {
    Ok(client.info(InfoRequest {}).await?.into_inner().node_id)
}

pub async fn ls(client: &mut Client, quiet: bool, filters: &[String], format: Option<&str>) -> Output {
    let result = async {
        let mut lf = control::ListFilters::default();
        let mut roles = Vec::new();
        for (k, v) in parse_filters(filters, &["id", "label", "name", "role", "node.label", "membership"])? {
            match k.as_str() {
                "id" => lf.id_prefixes.push(v),
                "name" => lf.name_prefixes.push(v),
                "label" | "node.label" => {
                    let (lk, lv) = v.split_once('=').unwrap_or((v.as_str(), ""));
                    lf.labels.insert(lk.to_string(), lv.to_string());
                }
                "role" => roles.push(v),
                _ => {}
            }
        }
        let me = self_id(client).await?;
        let mut nodes = client
            .list_nodes(ListNodesRequest { filters: Some(lf) })
            .await?
            .into_inner()
            .nodes;
        nodes.retain(|n| roles.is_empty() || roles.iter().any(|r| n.spec.as_ref().is_some_and(|s| &s.role == r)));
        sort_by_name(&mut nodes, |n| {
            n.description.as_ref().map(|d| d.hostname.as_str()).unwrap_or("")
        });
        let rows: Vec<_> = nodes.iter().map(|n| ls_row(n, &me)).collect();
        let format = super::list_format(quiet, format, DEFAULT_FORMAT);
        crate::format::render_list(format, &ls_headers(), &rows)
    };
    match result.await {
        Ok(s) => Output::ok(s),
        Err(e) => e.into(),
    }
}

/// go-units' `BytesSize`: binary units, four significant digits.
fn bytes_size(bytes: i64) -> String {
    const UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let mut size = bytes as f64;
    let mut i = 0;
    while size >= 1024.0 && i < UNITS.len() - 1 {
        size /= 1024.0;
        i += 1;
    }
    let text = format!("{size:.4}");
    // %.4g: four significant digits, trailing zeros dropped.
    let digits_before = text.split('.').next().map(str::len).unwrap_or(1);
    let decimals = 4usize.saturating_sub(digits_before);
    let rounded = format!("{size:.decimals$}");
    let trimmed = if rounded.contains('.') {
        rounded.trim_end_matches('0').trim_end_matches('.')
    } else {
        &rounded
    };
    format!("{trimmed}{}", UNITS[i])
}

fn pretty_node(n: &control::Node) -> String {
    let spec = n.spec.clone().unwrap_or_default();
    let desc = n.description.clone().unwrap_or_default();
    let status = n.status.clone().unwrap_or_default();
    let mut out = format!(
        "ID:\t\t\t{}\nHostname:              \t{}\nJoined at:             \t{}\nStatus:\n State:\t\t\t{}\n Availability:         \t{}\n Address:\t\t{}",
        n.id,
        desc.hostname,
        pretty(n.meta.as_ref().and_then(|m| m.created_at.as_ref())),
        title(&status.state),
        title(&spec.availability),
        status.addr
    );
    if let Some(m) = &n.manager_status {
        out.push_str(&format!(
            "\nManager Status:\n Address:\t\t{}\n Raft Status:\t\t{}\n Leader:\t\t{}",
            m.addr,
            title(&m.reachability),
            if m.leader { "Yes" } else { "No" }
        ));
    }
    out.push_str(&format!(
        "\nPlatform:\n Operating System:\t{}\n Architecture:\t\t{}\nResources:\n CPUs:\t\t\t{}\n Memory:\t\t{}\nEngine Version:\t\t{}",
        desc.os,
        desc.architecture,
        desc.nano_cpus / 1_000_000_000,
        bytes_size(desc.memory_bytes),
        desc.engine_version
    ));
    out
}

pub async fn inspect(client: &mut Client, names: &[String], is_pretty: bool, format: Option<&str>) -> Output {
    let defaults = ["self".to_string()];
    let names = if names.is_empty() { &defaults[..] } else { names };
    let (found, errors) = fetch_each(names, async |id| {
        Ok(client.get_node(GetNodeRequest { id }).await?.into_inner().node)
    })
    .await;
    let texts = is_pretty.then(|| found.iter().map(pretty_node).collect());
    // Every node's certificate is issued by the cluster's root.
    let tls = match client.get_cluster(GetClusterRequest {}).await {
        Ok(c) => engine::tls_info(&c.into_inner().ca_cert_pem),
        Err(s) => return CliError::from(s).into(),
    };
    let json = found.iter().map(|n| engine::node_json(n, &tls)).collect();
    inspect_output(json, texts, format, errors)
}

async fn update(client: &mut Client, req: control::UpdateNodeRequest) -> Result<control::Node, CliError> {
    Ok(client.update_node(req).await?.into_inner().node.unwrap_or_default())
}

/// `node promote` / `node demote`.
pub async fn set_role(client: &mut Client, nodes: &[String], role: &str) -> Output {
    let mut out = Output::default();
    let mut errors = Vec::new();
    for name in nodes {
        let current = match client.get_node(GetNodeRequest { id: name.clone() }).await {
            Ok(r) => r.into_inner().node.unwrap_or_default(),
            Err(s) => {
                errors.push(daemon_error(&s));
                continue;
            }
        };
        let id = current.id.clone();
        if current.spec.as_ref().is_some_and(|s| s.role == role) {
            out.stdout.push_str(&if role == "manager" {
                format!("Node {id} is already a manager.\n")
            } else {
                format!("Node {id} is already a worker.\n")
            });
            continue;
        }
        let req = control::UpdateNodeRequest {
            id: id.clone(),
            role: role.into(),
            ..Default::default()
        };
        match update(client, req).await {
            Ok(_) if role == "manager" => out
                .stdout
                .push_str(&format!("Node {id} promoted to a manager in the swarm.\n")),
            Ok(_) => out.stdout.push_str(&format!("Manager {id} demoted in the swarm.\n")),
            Err(e) => errors.push(e.0),
        }
    }
    if !errors.is_empty() {
        out.error = Some(CliError(errors.join("\n")));
    }
    out
}

/// `node update [--availability] [--label-add k=v] [--label-rm k] [--role] NODE`.
pub async fn update_cmd(
    client: &mut Client,
    node: &str,
    availability: Option<&str>,
    role: Option<&str>,
    label_add: &[String],
    label_rm: &[String],
) -> Output {
    let req = control::UpdateNodeRequest {
        id: node.into(),
        role: role.unwrap_or("").into(),
        availability: availability.unwrap_or("").into(),
        label_add: super::parse_labels(label_add),
        label_rm: label_rm.to_vec(),
        version: None,
    };
    match update(client, req).await {
        Ok(_) => Output::ok(format!("{node}\n")),
        Err(e) => e.into(),
    }
}

pub async fn rm(client: &mut Client, nodes: &[String], force: bool) -> Output {
    remove_each(nodes, async |id| {
        client
            .remove_node(control::RemoveNodeRequest { id, force })
            .await
            .map(drop)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_go_units() {
        assert_eq!(bytes_size(25276510208), "23.54GiB");
        assert_eq!(bytes_size(1024), "1KiB");
        assert_eq!(bytes_size(1536), "1.5KiB");
        assert_eq!(bytes_size(512), "512B");
    }
}
