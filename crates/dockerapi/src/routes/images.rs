//! The node's images, as dockerd serves its own: `GET /images/json`
//! (`docker images`), `POST /images/create` (`docker pull`), `POST
//! /images/load` (`docker load` of a `docker save` archive), `DELETE
//! /images/{name}` (`docker rmi`). Answered by this daemon's agent.

use serde_json::json;

use swarmkeep_api::control::control_server::Control;

use super::Api;
use super::containers::agent_error;
use crate::error::{ApiError, ApiResult};
use crate::exchange::{Reply, Req};

/// Docker's JSON message stream (what `docker pull|load` display).
fn json_lines(messages: &[serde_json::Value]) -> Reply {
    let mut body = Vec::new();
    for m in messages {
        body.extend_from_slice(m.to_string().as_bytes());
        body.push(b'\n');
    }
    Reply::Raw(200, "application/json", body)
}

impl<C: Control> Api<C> {
    pub async fn images_list(&self, _req: &Req) -> ApiResult<Reply> {
        let list = match self.containers.as_deref() {
            Some(n) => n.list_images().await,
            None => Vec::new(),
        };
        let shown: Vec<serde_json::Value> = list
            .into_iter()
            .map(|i| {
                let tags = if i.repo_tags.is_empty() {
                    vec!["<none>:<none>".to_string()]
                } else {
                    i.repo_tags
                };
                json!({
                    "Containers": -1,
                    "Created": i.created,
                    "Id": i.id,
                    "Labels": null,
                    "ParentId": "",
                    "RepoDigests": i.repo_digests,
                    "RepoTags": tags,
                    "SharedSize": -1,
                    "Size": i.size,
                    "VirtualSize": i.size,
                })
            })
            .collect();
        Ok(Reply::Json(200, shown.into()))
    }

    /// `docker pull`: `fromImage` and `tag` (a tag or a digest).
    pub async fn image_create(&self, req: &Req) -> ApiResult<Reply> {
        if req.query("fromSrc").is_some_and(|s| !s.is_empty()) {
            return Err(ApiError::bad_request(
                "swarmkeep does not support importing a root filesystem (fromSrc); use docker load",
            ));
        }
        let image = req.query("fromImage").unwrap_or_default();
        if image.is_empty() {
            return Err(ApiError::bad_request("fromImage is required"));
        }
        let reference = match req.query("tag").unwrap_or_default() {
            "" => image.to_string(),
            t if t.starts_with("sha256:") => format!("{image}@{t}"),
            t => format!("{image}:{t}"),
        };
        // `docker pull` sends the login `docker login` stored, as X-Registry-Auth.
        let lines = self
            .node()?
            .pull_image(&reference, &req.registry_auth)
            .await
            .map_err(agent_error)?;
        let mut messages =
            vec![json!({"status": format!("Pulling from {image}"), "id": req.query("tag").unwrap_or("latest")})];
        messages.extend(lines.iter().map(|l| json!({"status": l})));
        messages.push(json!({"status": format!("Status: Downloaded newer image for {reference}")}));
        Ok(json_lines(&messages))
    }

    /// `docker load`: the body is the archive.
    pub async fn images_load(&self, req: &Req) -> ApiResult<Reply> {
        let node = self.node()?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let data = req.body.to_vec();
        tokio::spawn(async move {
            for chunk in data.chunks(256 * 1024) {
                if tx.send(chunk.to_vec()).await.is_err() {
                    break;
                }
            }
        });
        let lines = node.load_image(rx).await.map_err(agent_error)?;
        let messages: Vec<serde_json::Value> = lines.iter().map(|l| json!({"stream": format!("{l}\n")})).collect();
        Ok(json_lines(&messages))
    }

    /// `GET /distribution/{name}/json`: the digest `docker service create`
    /// pins the service's image with (the lookup is the node's).
    pub async fn distribution(&self, name: &str, req: &Req) -> ApiResult<Reply> {
        let r = self
            .node()?
            .resolve_image(name, &req.registry_auth)
            .await
            .map_err(|e| {
                // dockerd's words; the CLI then warns and keeps the tag.
                ApiError::new(403, format!("error retrieving the digest of {name}: {}", e.message()))
            })?;
        Ok(Reply::Json(
            200,
            json!({
                "Descriptor": {"mediaType": r.media_type, "digest": r.digest, "size": r.size},
                // None: the CLI would make them placement constraints, which
                // the scheduler does not weigh yet (every node runs linux/amd64).
                "Platforms": [],
            }),
        ))
    }

    /// `docker rmi NAME` (a name may hold slashes: `host:port/repo:tag`).
    pub async fn image_remove(&self, name: &str) -> ApiResult<Reply> {
        let lines = self.node()?.remove_image(name).await.map_err(agent_error)?;
        let shown: Vec<serde_json::Value> = lines
            .iter()
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| json!({ k: v }))
            .collect();
        Ok(Reply::Json(200, shown.into()))
    }
}
