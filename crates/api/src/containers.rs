//! The node-local containers contract (`proto/containers.proto`): the
//! generated gRPC code, the Rust trait the agent implements
//! ([`NodeContainers`], called in process by the Docker API facade), and the
//! adapter that serves such an implementation over gRPC ([`Grpc`]) for the
//! `swarmkeep ps|exec|logs|top` commands.

use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

tonic::include_proto!("swarmkeep.containers");

/// `docker ps`'s STATUS: `Up 5 seconds (healthy)`, `Exited (0) 3 seconds ago`.
pub fn status_text(c: &Container, now: time::OffsetDateTime) -> String {
    use crate::timefmt::{ago, human_duration, to_datetime};
    match c.state.as_str() {
        "running" => {
            let up = human_duration(now - to_datetime(c.started_at.as_ref()));
            match c.health.as_ref().map(|h| h.status.as_str()) {
                Some("starting") => format!("Up {up} (health: starting)"),
                Some(status) => format!("Up {up} ({status})"),
                None => format!("Up {up}"),
            }
        }
        "exited" => format!("Exited ({}) {}", c.exit_code, ago(c.finished_at.as_ref(), now)),
        other => other.to_string(),
    }
}

/// This node's task containers. Streams are channels, so callers in the
/// same process (the Docker API) and the gRPC adapter use the same code.
#[tonic::async_trait]
pub trait NodeContainers: Send + Sync + 'static {
    async fn list(&self, all: bool) -> Vec<Container>;
    async fn inspect(&self, id: &str) -> Result<Container, Status>;
    async fn top(&self, id: &str, ps_args: &str) -> Result<TopResponse, Status>;
    async fn logs(&self, req: LogsRequest) -> Result<mpsc::Receiver<LogChunk>, Status>;
    /// Starts `start`; `input` carries stdin, resizes and the end of stdin.
    async fn exec(
        &self,
        start: ExecStart,
        input: mpsc::Receiver<exec_input::Input>,
    ) -> Result<mpsc::Receiver<exec_output::Output>, Status>;
    async fn list_images(&self) -> Vec<ImageSummary>;
    /// Pulls for an operator: the image is kept until removed.
    /// `registry_auth`: an X-Registry-Auth value (empty: anonymous).
    async fn pull_image(&self, reference: &str, registry_auth: &[u8]) -> Result<Vec<String>, Status>;
    /// Loads the `docker save` archive `chunks` carries.
    async fn load_image(&self, chunks: mpsc::Receiver<Vec<u8>>) -> Result<Vec<String>, Status>;
    async fn remove_image(&self, name: &str) -> Result<Vec<String>, Status>;
    /// `registry_auth`: an X-Registry-Auth value (empty: anonymous).
    async fn resolve_image(&self, reference: &str, registry_auth: &[u8]) -> Result<ResolvedImage, Status>;
}

/// Serves a [`NodeContainers`] as the `Containers` gRPC service.
pub struct Grpc(pub Arc<dyn NodeContainers>);

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

fn forward<T: Send + 'static, U: Send + 'static>(
    mut rx: mpsc::Receiver<T>,
    wrap: impl Fn(T) -> U + Send + 'static,
) -> BoxStream<U> {
    let (tx, out) = mpsc::channel(64);
    tokio::spawn(async move {
        while let Some(item) = rx.recv().await {
            if tx.send(Ok(wrap(item))).await.is_err() {
                break;
            }
        }
    });
    Box::pin(ReceiverStream::new(out))
}

#[tonic::async_trait]
impl containers_server::Containers for Grpc {
    async fn list(&self, req: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        Ok(Response::new(ListResponse {
            containers: self.0.list(req.into_inner().all).await,
        }))
    }

    async fn inspect(&self, req: Request<InspectRequest>) -> Result<Response<Container>, Status> {
        self.0.inspect(&req.into_inner().id).await.map(Response::new)
    }

    async fn top(&self, req: Request<TopRequest>) -> Result<Response<TopResponse>, Status> {
        let req = req.into_inner();
        self.0.top(&req.id, &req.ps_args).await.map(Response::new)
    }

    type LogsStream = BoxStream<LogChunk>;

    async fn logs(&self, req: Request<LogsRequest>) -> Result<Response<Self::LogsStream>, Status> {
        let rx = self.0.logs(req.into_inner()).await?;
        Ok(Response::new(forward(rx, |c| c)))
    }

    type ExecStream = BoxStream<ExecOutput>;

    async fn exec(&self, req: Request<Streaming<ExecInput>>) -> Result<Response<Self::ExecStream>, Status> {
        let mut input = req.into_inner();
        let Some(ExecInput {
            input: Some(exec_input::Input::Start(start)),
        }) = input.message().await?
        else {
            return Err(Status::invalid_argument("an exec starts with its command"));
        };
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            while let Ok(Some(msg)) = input.message().await {
                if let Some(i) = msg.input
                    && tx.send(i).await.is_err()
                {
                    break;
                }
            }
        });
        let out = self.0.exec(start, rx).await?;
        Ok(Response::new(forward(out, |o| ExecOutput { output: Some(o) })))
    }

    async fn list_images(&self, _: Request<ListImagesRequest>) -> Result<Response<ListImagesResponse>, Status> {
        Ok(Response::new(ListImagesResponse {
            images: self.0.list_images().await,
        }))
    }

    async fn pull_image(&self, req: Request<PullImageRequest>) -> Result<Response<ImageLines>, Status> {
        let req = req.into_inner();
        let auth = zeroize::Zeroizing::new(req.registry_auth);
        let lines = self.0.pull_image(&req.reference, &auth).await?;
        Ok(Response::new(ImageLines { lines }))
    }

    async fn load_image(&self, req: Request<Streaming<LoadChunk>>) -> Result<Response<ImageLines>, Status> {
        let mut input = req.into_inner();
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            while let Ok(Some(chunk)) = input.message().await {
                if tx.send(chunk.data).await.is_err() {
                    break;
                }
            }
        });
        let lines = self.0.load_image(rx).await?;
        Ok(Response::new(ImageLines { lines }))
    }

    async fn resolve_image(&self, req: Request<ResolveImageRequest>) -> Result<Response<ResolvedImage>, Status> {
        let req = req.into_inner();
        let auth = zeroize::Zeroizing::new(req.registry_auth);
        self.0.resolve_image(&req.reference, &auth).await.map(Response::new)
    }

    async fn remove_image(&self, req: Request<RemoveImageRequest>) -> Result<Response<ImageLines>, Status> {
        let lines = self.0.remove_image(&req.into_inner().name).await?;
        Ok(Response::new(ImageLines { lines }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_reads_as_docker_ps_shows_it() {
        let now = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let at = |secs: i64| {
            Some(prost_types::Timestamp {
                seconds: 1_800_000_000 - secs,
                nanos: 0,
            })
        };
        let mut c = Container {
            state: "running".into(),
            started_at: at(5),
            ..Default::default()
        };
        assert_eq!(status_text(&c, now), "Up 5 seconds");
        c.health = Some(Health {
            status: "starting".into(),
            ..Default::default()
        });
        assert_eq!(status_text(&c, now), "Up 5 seconds (health: starting)");
        c.health = Some(Health {
            status: "healthy".into(),
            ..Default::default()
        });
        assert_eq!(status_text(&c, now), "Up 5 seconds (healthy)");
        c.state = "exited".into();
        c.exit_code = 137;
        c.finished_at = at(120);
        assert_eq!(status_text(&c, now), "Exited (137) 2 minutes ago");
    }
}
