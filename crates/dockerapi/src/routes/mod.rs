//! The routes, one file per object as in moby's `api/server/router`; each
//! calls the control service and shapes the answer as dockerd does.

mod containers;
mod events;
mod images;
mod logs;
mod networks;
mod nodes;
mod objects;
mod services;
mod swarm;
mod system;
mod tasks;

use std::sync::Arc;

use hyper::Method;
use serde::de::DeserializeOwned;
use swarmkeep_api::control::control_server::Control;

use crate::error::{ApiError, ApiResult};
use crate::exchange::{Reply, Req};

pub struct Api<C> {
    control: Arc<C>,
    /// This daemon's agent's containers (none with `--no-agent`).
    containers: Option<Arc<dyn swarmkeep_api::containers::NodeContainers>>,
    execs: Arc<containers::Execs>,
}

/// Calls a control API method in process: `call!(self, get_secret, req)`.
macro_rules! call {
    ($api:expr, $method:ident, $req:expr) => {
        $api.control
            .$method(tonic::Request::new($req))
            .await
            .map(tonic::Response::into_inner)
            .map_err($crate::error::ApiError::from)
    };
}
pub(crate) use call;

impl<C: Control> Api<C> {
    pub fn new(control: Arc<C>, containers: Option<Arc<dyn swarmkeep_api::containers::NodeContainers>>) -> Self {
        Self {
            control,
            containers,
            execs: Default::default(),
        }
    }

    pub async fn route(&self, req: &Req) -> ApiResult<Reply> {
        let segs: Vec<&str> = req.segments.iter().map(String::as_str).collect();
        let m = &req.method;
        let get = *m == Method::GET || *m == Method::HEAD;
        let post = *m == Method::POST;
        let delete = *m == Method::DELETE;
        match segs.as_slice() {
            ["_ping"] if get => Ok(system::ping()),
            ["version"] if get => Ok(system::version()),
            ["info"] if get => self.info().await,
            ["events"] if get => self.events(req).await,

            ["swarm"] if get => self.swarm_inspect().await,
            ["swarm", "init"] if post => self.swarm_init(req).await,
            ["swarm", "join"] if post => self.swarm_join(req).await,
            ["swarm", "leave"] if post => self.swarm_leave(req).await,
            ["swarm", "update"] if post => self.swarm_update(req).await,
            ["swarm", "unlockkey"] if get => self.swarm_unlock_key().await,
            ["swarm", "unlock"] if post => self.swarm_unlock(req).await,

            ["nodes"] if get => self.nodes_list(req).await,
            ["nodes", id] if get => self.node_inspect(id).await,
            ["nodes", id, "update"] if post => self.node_update(id, req).await,
            ["nodes", id] if delete => self.node_remove(id, req).await,

            ["secrets"] if get => self.secrets_list(req).await,
            ["secrets", "create"] if post => self.secret_create(req).await,
            ["secrets", id] if get => self.secret_inspect(id).await,
            ["secrets", id, "update"] if post => self.secret_update(id, req).await,
            ["secrets", id] if delete => self.secret_remove(id).await,

            ["configs"] if get => self.configs_list(req).await,
            ["configs", "create"] if post => self.config_create(req).await,
            ["configs", id] if get => self.config_inspect(id).await,
            ["configs", id, "update"] if post => self.config_update(id, req).await,
            ["configs", id] if delete => self.config_remove(id).await,

            ["services"] if get => self.services_list(req).await,
            ["services", "create"] if post => self.service_create(req).await,
            ["services", id] if get => self.service_inspect(id, req).await,
            ["services", id, "update"] if post => self.service_update(id, req).await,
            ["services", id] if delete => self.service_remove(id).await,
            ["services", id, "logs"] if get => self.logs(id, "", req).await,

            ["tasks"] if get => self.tasks_list(req).await,
            ["tasks", id] if get => self.task_inspect(id).await,
            ["tasks", id, "logs"] if get => self.logs("", id, req).await,

            ["networks"] if get => self.networks_list(req).await,
            ["networks", "create"] if post => self.network_create(req).await,
            ["networks", id] if get => self.network_inspect(id, req).await,
            ["networks", id] if delete => self.network_remove(id).await,

            ["containers", "json"] if get => self.containers_list(req).await,
            ["containers", id, "json"] if get => self.container_inspect(id).await,
            ["containers", id, "top"] if get => self.container_top(id, req).await,
            ["containers", id, "logs"] if get => self.container_logs(id, req).await,
            ["containers", id, "exec"] if post => self.exec_create(id, req).await,
            ["exec", id, "json"] if get => self.exec_inspect(id).await,
            ["exec", id, "resize"] if post => self.exec_resize(id, req).await,
            ["exec", id, "start"] if post => {
                let session = self.exec_start(id, req).await?;
                let api_id = id.to_string();
                let execs = self.exec_events();
                if session.detach {
                    // `docker exec -d`: answered at once; the output is
                    // drained (and the end recorded) in the background.
                    let mut output = session.into_stream(move |pid, code| execs(&api_id, pid, code));
                    tokio::spawn(async move { while futures::StreamExt::next(&mut output).await.is_some() {} });
                    return Ok(Reply::Empty(200));
                }
                Ok(Reply::Stream(
                    if session.tty {
                        "application/vnd.docker.raw-stream"
                    } else {
                        "application/vnd.docker.multiplexed-stream"
                    },
                    session.into_stream(move |pid, code| execs(&api_id, pid, code)),
                ))
            }

            ["images", "json"] if get => self.images_list(req).await,
            ["images", "create"] if post => self.image_create(req).await,
            ["images", "load"] if post => self.images_load(req).await,
            ["images", name @ ..] if delete && !name.is_empty() => self.image_remove(&name.join("/")).await,

            ["distribution", name @ .., "json"] if get && !name.is_empty() => {
                self.distribution(&name.join("/"), req).await
            }

            _ => Err(ApiError::not_found("page not found")),
        }
    }
}

/// The request body as JSON; an empty body is `{}`.
pub fn json_body<T: DeserializeOwned>(req: &Req) -> ApiResult<T> {
    let body: &[u8] = if req.body.is_empty() { b"{}" } else { &req.body };
    // Keys as Go's decoder matches them (dockerd's), errors never quoting the body.
    crate::gojson::from_slice(body).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// Docker's `version` query of an update: the object's `Version.Index`.
pub fn version_param(req: &Req, kind: &str) -> ApiResult<u64> {
    let raw = req.query("version").unwrap_or("");
    raw.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "invalid {kind} version '{raw}': strconv.ParseUint: parsing {raw:?}: invalid syntax"
        ))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_errors_do_not_quote_the_input() {
        type Labels = std::collections::HashMap<String, String>;
        type Counts = std::collections::HashMap<String, u32>;
        let errors = [
            crate::gojson::from_slice::<Labels>(br#"{"a": 5, "b": "SECRET"}"#).unwrap_err(),
            crate::gojson::from_slice::<Counts>(br#"{"a": "SECRET"}"#).unwrap_err(),
            crate::gojson::from_slice::<Counts>(br#"{"a": "x\"SECRET\"y, expected u64 SECRET"}"#).unwrap_err(),
            crate::gojson::from_slice::<Counts>(br#"{"a": "SECRET"#).unwrap_err(),
        ];
        for e in errors {
            let text = e.to_string();
            assert!(!text.contains("SECRET"), "{text}");
        }
    }
}
