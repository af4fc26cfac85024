//! `/networks`: swarmkeep has no networks yet (no overlay, no ingress), so the
//! list is empty and lookups are "not found", as they would be on a daemon
//! without them; creating one is refused plainly.

use swarmkeep_api::control::control_server::Control;

use super::Api;
use crate::error::{ApiError, ApiResult};
use crate::exchange::{Reply, Req};
use crate::filters::Filters;

impl<C: Control> Api<C> {
    pub async fn networks_list(&self, req: &Req) -> ApiResult<Reply> {
        let filters = Filters::parse(req.query("filters"))?;
        filters.allow(&["dangling", "driver", "id", "label", "name", "scope", "type"])?;
        Ok(Reply::Json(200, serde_json::json!([])))
    }
}

pub fn inspect(id: &str) -> ApiResult<Reply> {
    Err(ApiError::not_found(format!("network {id} not found")))
}

pub fn remove(id: &str) -> ApiResult<Reply> {
    Err(ApiError::not_found(format!("network {id} not found")))
}

pub fn unsupported() -> ApiError {
    ApiError::new(501, "swarmkeep does not support networks yet")
}
