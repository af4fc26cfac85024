//! `/services`: list (filters, `status=true`), create, inspect, update
//! (against `version`, or `rollback=previous`), remove.

use swarmkeep_api::control::control_server::Control;
use swarmkeep_api::control::{
    CreateServiceRequest, GetServiceRequest, ListServicesRequest, RemoveServiceRequest, UpdateServiceRequest, Version,
};
use swarmkeep_api::engine;

use super::{Api, call, json_body, version_param};
use crate::error::{ApiError, ApiResult};
use crate::exchange::{Reply, Req};
use crate::filters::Filters;
use crate::spec::ServiceSpec;

impl<C: Control> Api<C> {
    pub async fn services_list(&self, req: &Req) -> ApiResult<Reply> {
        let filters = Filters::parse(req.query("filters"))?;
        filters.allow(&["id", "label", "mode", "name"])?;
        let resp = call!(
            self,
            list_services,
            ListServicesRequest {
                filters: filters.list_filters()
            }
        )?;
        let modes = filters.get("mode");
        let counts: std::collections::HashMap<&str, &swarmkeep_api::control::ServiceCounts> =
            resp.counts.iter().map(|c| (c.service_id.as_str(), c)).collect();
        let status = req.flag("status");
        let out: Vec<serde_json::Value> = resp
            .services
            .iter()
            .filter(|s| {
                let mode = s.spec.as_ref().map(|sp| sp.mode.as_str()).unwrap_or("replicated");
                modes.is_empty() || modes.iter().any(|m| m == mode)
            })
            .map(|s| {
                // dockerd's list shows specs as stored (no insertDefaults).
                let mut v = engine::service_json_with(s, false);
                if status {
                    let counts = counts.get(s.id.as_str());
                    v["ServiceStatus"] = serde_json::json!({
                        "RunningTasks": counts.map(|c| c.running).unwrap_or(0),
                        "DesiredTasks": counts.map(|c| c.desired).unwrap_or(0),
                        "CompletedTasks": counts.map(|c| c.completed).unwrap_or(0),
                    });
                }
                v
            })
            .collect();
        Ok(Reply::Json(200, out.into()))
    }

    pub async fn service_create(&self, req: &Req) -> ApiResult<Reply> {
        let spec: ServiceSpec = json_body(req)?;
        let service = call!(
            self,
            create_service,
            CreateServiceRequest {
                spec: Some(spec.into_control()?),
                registry_auth: registry_auth(req),
            }
        )?
        .service
        .unwrap_or_default();
        Ok(Reply::Json(201, serde_json::json!({ "ID": service.id })))
    }

    pub async fn service_inspect(&self, id: &str, req: &Req) -> ApiResult<Reply> {
        let service = call!(self, get_service, GetServiceRequest { id: id.into() })?
            .service
            .unwrap_or_default();
        Ok(Reply::Json(
            200,
            engine::service_json_with(&service, req.flag("insertDefaults")),
        ))
    }

    pub async fn service_update(&self, id: &str, req: &Req) -> ApiResult<Reply> {
        let version = version_param(req, "service")?;
        let rollback = match req.query("rollback") {
            None | Some("") => false,
            Some("previous") => true,
            Some(other) => {
                return Err(ApiError::bad_request(format!("unrecognized rollback option {other}")));
            }
        };
        // Where the update's registry credential comes from: the one sent
        // (or, none sent, the service's own) — `spec`; a rollback's is the
        // previous spec's — `previous-spec`, which is all a rollback does.
        match (req.query("registryAuthFrom"), rollback) {
            (None | Some("") | Some("spec"), _) | (Some("previous-spec"), true) => {}
            (Some("previous-spec"), false) => {
                return Err(ApiError::bad_request(
                    "registryAuthFrom=previous-spec is supported only with rollback=previous",
                ));
            }
            (Some(other), _) => {
                return Err(ApiError::bad_request(format!(
                    "unsupported registryAuthFrom value {other:?}"
                )));
            }
        }
        let spec: ServiceSpec = json_body(req)?;
        call!(
            self,
            update_service,
            UpdateServiceRequest {
                id: id.into(),
                version: Some(Version { index: version }),
                // A rollback ignores the spec sent (it is the current one).
                spec: if rollback { None } else { Some(spec.into_control()?) },
                rollback,
                registry_auth: registry_auth(req),
            }
        )?;
        Ok(Reply::Json(200, serde_json::json!({ "Warnings": null })))
    }

    pub async fn service_remove(&self, id: &str) -> ApiResult<Reply> {
        call!(self, remove_service, RemoveServiceRequest { id: id.into() })?;
        Ok(Reply::Empty(200))
    }
}

/// The request's X-Registry-Auth value, for the control API (which seals
/// it before storing it).
fn registry_auth(req: &Req) -> Vec<u8> {
    req.registry_auth.to_vec()
}
