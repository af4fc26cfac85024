//! `/nodes`: list (filters), inspect, update (the whole `NodeSpec` against a
//! version), remove.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use swarmkeep_api::control::control_server::Control;
use swarmkeep_api::control::{
    GetClusterRequest, GetNodeRequest, ListNodesRequest, RemoveNodeRequest, UpdateNodeRequest, Version,
};
use swarmkeep_api::engine;

use super::{Api, call, json_body, version_param};
use crate::error::{ApiError, ApiResult};
use crate::exchange::{Reply, Req};
use crate::filters::{Filters, labels_match};

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct NodeSpec {
    name: String,
    labels: Option<BTreeMap<String, String>>,
    role: String,
    availability: String,
}

/// The engine API has no `self` node (the CLI resolves it through `/info`);
/// the control API's own `self` shorthand is not exposed here.
fn not_self(id: &str) -> ApiResult<()> {
    if id == "self" {
        return Err(ApiError::not_found("node self not found"));
    }
    Ok(())
}

impl<C: Control> Api<C> {
    pub async fn nodes_list(&self, req: &Req) -> ApiResult<Reply> {
        let filters = Filters::parse(req.query("filters"))?;
        filters.allow(&["id", "label", "node.label", "membership", "name", "role"])?;
        // `label` is about engine labels, which swarmkeep nodes have none of;
        // node labels are `node.label`.
        if !filters.get("label").is_empty() {
            return Ok(Reply::Json(200, serde_json::json!([])));
        }
        let nodes = call!(
            self,
            list_nodes,
            ListNodesRequest {
                filters: filters.list_filters()
            }
        )?
        .nodes;
        let tls = self.node_tls_info().await?;
        let node_labels = filters.labels("node.label");
        let roles = filters.get("role");
        let membership = filters.get("membership");
        let out: Vec<serde_json::Value> = nodes
            .iter()
            .filter(|n| {
                let spec = n.spec.clone().unwrap_or_default();
                let labels: HashMap<String, String> = spec.annotations.clone().map(|a| a.labels).unwrap_or_default();
                labels_match(&labels, &node_labels)
                    && (roles.is_empty() || roles.contains(&spec.role))
                    // Every node swarmkeep lists is accepted (joins are admitted by token).
                    && (membership.is_empty() || membership.iter().any(|m| m == "accepted"))
            })
            .map(|n| engine::node_json(n, &tls))
            .collect();
        Ok(Reply::Json(200, out.into()))
    }

    /// A node's `Description.TLSInfo`: its certificate's issuer, which is
    /// the cluster's root CA for every node (swarmkeep has one root; `swarm
    /// ca --rotate` renews the nodes' certificates under it, and the docker
    /// CLI's progress compares these with `GET /swarm`'s).
    async fn node_tls_info(&self) -> ApiResult<serde_json::Value> {
        let cluster = call!(self, get_cluster, GetClusterRequest {})?;
        Ok(engine::tls_info(&cluster.ca_cert_pem))
    }

    pub async fn node_inspect(&self, id: &str) -> ApiResult<Reply> {
        not_self(id)?;
        let node = call!(self, get_node, GetNodeRequest { id: id.into() })?
            .node
            .unwrap_or_default();
        let tls = self.node_tls_info().await?;
        Ok(Reply::Json(200, engine::node_json(&node, &tls)))
    }

    /// Docker sends the whole spec; swarmkeep's update takes changes, so the
    /// difference to the node as it is at `version` is sent, and the store
    /// refuses it if the node has changed since.
    pub async fn node_update(&self, id: &str, req: &Req) -> ApiResult<Reply> {
        not_self(id)?;
        let version = version_param(req, "node")?;
        let spec: NodeSpec = json_body(req)?;
        if !spec.name.is_empty() {
            return Err(crate::spec::unsupported("a node name (NodeSpec.Name)"));
        }
        let node = call!(self, get_node, GetNodeRequest { id: id.into() })?
            .node
            .unwrap_or_default();
        let current = node.spec.clone().unwrap_or_default();
        let current_labels = current.annotations.map(|a| a.labels).unwrap_or_default();
        let wanted = spec.labels.unwrap_or_default();
        let label_rm = current_labels
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        let label_add = wanted
            .into_iter()
            .filter(|(k, v)| current_labels.get(k) != Some(v))
            .collect();
        call!(
            self,
            update_node,
            UpdateNodeRequest {
                id: node.id,
                role: if spec.role == current.role {
                    String::new()
                } else {
                    spec.role.to_ascii_lowercase()
                },
                availability: if spec.availability == current.availability {
                    String::new()
                } else {
                    spec.availability.to_ascii_lowercase()
                },
                label_add,
                label_rm,
                version: Some(Version { index: version }),
            }
        )?;
        Ok(Reply::Empty(200))
    }

    pub async fn node_remove(&self, id: &str, req: &Req) -> ApiResult<Reply> {
        not_self(id)?;
        call!(
            self,
            remove_node,
            RemoveNodeRequest {
                id: id.into(),
                force: req.flag("force"),
            }
        )?;
        Ok(Reply::Empty(200))
    }
}
