//! This node's images for an operator (`docker images|pull|load|rmi`,
//! `swarmkeep image`), and the collector that removes images pulled for
//! tasks once no task here has used them for `--image-gc-idle`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use swarmkeep_api::containers as pb;
use swarmkeep_image::{ImageError, familiar_name};
use tokio::sync::mpsc;
use tonic::Status;

use crate::state::AgentState;

fn status(e: ImageError) -> Status {
    match e {
        ImageError::NotFound(_) => Status::not_found(e.to_string()),
        ImageError::Conflict(_) => Status::failed_precondition(e.to_string()),
        ImageError::InvalidReference(_) | ImageError::InvalidLayer(_) | ImageError::Digest { .. } => {
            Status::invalid_argument(e.to_string())
        }
        _ => Status::internal(e.to_string()),
    }
}

/// The image IDs the containers running here were started from.
fn in_use(state: &AgentState) -> HashSet<String> {
    state.containers.list(false).into_iter().map(|c| c.image_id).collect()
}

pub(crate) fn list(state: &AgentState) -> Vec<pb::ImageSummary> {
    state
        .images
        .list()
        .into_iter()
        .map(|(image, names)| {
            let (digests, tags): (Vec<String>, Vec<String>) = names.into_iter().partition(|n| n.contains('@'));
            pb::ImageSummary {
                id: image.id,
                repo_tags: tags.iter().map(|t| familiar_name(t)).collect(),
                repo_digests: digests.iter().map(|d| familiar_name(d)).collect(),
                size: i64::try_from(image.size).unwrap_or(i64::MAX),
                pinned: image.pinned,
                created: time::OffsetDateTime::parse(&image.created, &time::format_description::well_known::Rfc3339)
                    .map(|t| t.unix_timestamp())
                    .unwrap_or(0),
            }
        })
        .collect()
}

pub(crate) async fn pull(state: &AgentState, reference: &str, encoded_auth: &[u8]) -> Result<Vec<String>, Status> {
    let auth = registry_auth(encoded_auth, reference).map_err(Status::invalid_argument)?;
    let image = state.images.pull_pinned(reference, &auth).await.map_err(status)?;
    Ok(vec![format!("Digest: {}", image.manifest_digest)])
}

/// Reads chunks from a channel as a blocking reader (the archive is read
/// on a blocking thread).
struct ChannelReader {
    rx: mpsc::Receiver<Vec<u8>>,
    buf: Vec<u8>,
    at: usize,
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.at >= self.buf.len() {
            match self.rx.blocking_recv() {
                Some(chunk) => {
                    self.buf = chunk;
                    self.at = 0;
                }
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.at);
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

pub(crate) async fn load(state: &AgentState, rx: mpsc::Receiver<Vec<u8>>) -> Result<Vec<String>, Status> {
    let images = state.images.clone();
    let reader = ChannelReader {
        rx,
        buf: Vec::new(),
        at: 0,
    };
    tokio::task::spawn_blocking(move || images.load(reader))
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(status)
}

/// A registry credential for `image` from an X-Registry-Auth value (empty,
/// `{}`, or a login for another registry: anonymous — a login is only ever
/// sent to the registry it names).
pub(crate) fn registry_auth(encoded: &[u8], image: &str) -> Result<swarmkeep_image::RegistryAuth, String> {
    if encoded.is_empty() {
        return Ok(swarmkeep_image::RegistryAuth::Anonymous);
    }
    Ok(match swarmkeep_api::registry_auth::decode(encoded)? {
        Some(c) if c.is_for(image) => {
            swarmkeep_image::RegistryAuth::Basic(c.username.to_string(), c.password.to_string())
        }
        Some(_) => {
            tracing::warn!(%image, "the registry credential is for another registry: pulling anonymously");
            swarmkeep_image::RegistryAuth::Anonymous
        }
        None => swarmkeep_image::RegistryAuth::Anonymous,
    })
}

pub(crate) async fn resolve(
    state: &AgentState,
    reference: &str,
    encoded_auth: &[u8],
) -> Result<pb::ResolvedImage, Status> {
    let auth = registry_auth(encoded_auth, reference).map_err(Status::invalid_argument)?;
    let (digest, media_type, size) = state.images.resolve(reference, &auth).await.map_err(status)?;
    Ok(pb::ResolvedImage {
        digest,
        media_type,
        size: i64::try_from(size).unwrap_or(0),
    })
}

pub(crate) fn remove(state: &AgentState, name: &str) -> Result<Vec<String>, Status> {
    state.images.remove(name, &in_use(state)).map_err(status)
}

/// Every few seconds: the images pulled for tasks that none here has used
/// for `idle` go, with their layers.
pub(crate) async fn gc_loop(state: Arc<AgentState>, idle: Duration) {
    // Never less: a task that just got its image has not started yet.
    let idle = idle.max(Duration::from_secs(5));
    let mut tick = tokio::time::interval(Duration::from_secs(2).min(idle.max(Duration::from_millis(500))));
    loop {
        tick.tick().await;
        if state.stopping.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let used = in_use(&state);
        let images = state.images.clone();
        let _ = tokio::task::spawn_blocking(move || images.gc(&used, idle)).await;
    }
}
