//! HTTP/1.1 on a unix socket, loopback TCP or TCP with TLS (hyper): version prefixes
//! stripped, the request body read into a zeroizing buffer, Docker's headers on
//! every response.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use swarmkeep_api::containers::NodeContainers;
use swarmkeep_api::control::control_server::Control;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener};
use zeroize::Zeroizing;

use crate::API_VERSION;
use crate::error::ApiError;
use crate::exchange::{Reply, Req};
use crate::routes::Api;

/// The largest request body each kind of request may send: a secret or a
/// config of Swarm's maximum size (500 KiB, 1000 KiB), base64-encoded in its
/// JSON, fits; a spec of any sane size fits; nothing else is taken.
const SECRET_BODY_LIMIT: usize = 1024 * 1024;
const CONFIG_BODY_LIMIT: usize = 2 * 1024 * 1024;
const SPEC_BODY_LIMIT: usize = 4 * 1024 * 1024;
const OTHER_BODY_LIMIT: usize = 64 * 1024;
/// `docker load`'s archive, held in memory until the agent has read it.
const IMAGE_LOAD_BODY_LIMIT: usize = 512 * 1024 * 1024;
// Swarm's largest secret and config, base64 in their JSON, fit.
const _: () = assert!(500 * 1024 * 4 / 3 + 4096 < SECRET_BODY_LIMIT);
const _: () = assert!(1000 * 1024 * 4 / 3 + 4096 < CONFIG_BODY_LIMIT);
/// A body is read as it arrives, into a buffer that starts this small (never
/// sized from what Content-Length claims).
const INITIAL_BODY_BUFFER: usize = 16 * 1024;
/// How long a client may take to send a request's headers — also how long an
/// idle keep-alive connection stays open — and its body.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 512;

/// A response a client does not read for this long ends its connection (a
/// slot is not held by a reader that stalls). Long streams (logs, events) are
/// fine: only a write that makes no progress counts.
const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(30);

pub enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener),
    /// TCP with TLS; the configuration decides on client certificates.
    Tls(TcpListener, Arc<rustls::ServerConfig>),
}

/// Serves the API until `shutdown` completes. Each connection is served on
/// its own task; HTTP/1.1 keep-alive as the docker CLI uses it.
pub async fn serve<C: Control>(
    listener: Listener,
    control: Arc<C>,
    containers: Option<Arc<dyn NodeContainers>>,
    shutdown: impl Future<Output = ()>,
) {
    let api = Arc::new(Api::new(control, containers));
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        // A connection is accepted only when it can be served.
        let slot = tokio::select! {
            _ = &mut shutdown => return,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => return,
            },
        };
        tokio::select! {
            _ = &mut shutdown => return,
            accepted = accept(&listener) => match accepted {
                Ok(accepted) => {
                    let api = api.clone();
                    tokio::spawn(async move {
                        let _slot = slot;
                        let Some(io) = accepted.handshake().await else { return };
                        let svc = service_fn(move |req| {
                            let api = api.clone();
                            async move { Ok::<_, Infallible>(handle(&api, req).await) }
                        });
                        let served = hyper::server::conn::http1::Builder::new()
                            .timer(TokioTimer::new())
                            .header_read_timeout(HEADER_TIMEOUT)
                            .serve_connection(TokioIo::new(WriteStall::new(io)), svc)
                            .with_upgrades()
                            .await;
                        if let Err(e) = served {
                            tracing::debug!(error = %e, "docker API connection ended");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "docker API accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }
}

/// An accepted connection, before its TLS handshake if it has one (made on
/// the connection's own task, within the header timeout).
enum Accepted {
    Plain(Box<dyn Conn>),
    Tls(TcpStream, tokio_rustls::TlsAcceptor),
}

impl Accepted {
    async fn handshake(self) -> Option<Box<dyn Conn>> {
        match self {
            Accepted::Plain(io) => Some(io),
            Accepted::Tls(tcp, acceptor) => match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => Some(Box::new(tls)),
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "docker API: TLS handshake refused");
                    None
                }
                Err(_) => None,
            },
        }
    }
}

async fn accept(listener: &Listener) -> std::io::Result<Accepted> {
    Ok(match listener {
        Listener::Unix(l) => Accepted::Plain(Box::new(l.accept().await?.0)),
        Listener::Tcp(l) => {
            let (s, _) = l.accept().await?;
            s.set_nodelay(true)?;
            Accepted::Plain(Box::new(s))
        }
        Listener::Tls(l, config) => {
            let (s, _) = l.accept().await?;
            s.set_nodelay(true)?;
            Accepted::Tls(s, tokio_rustls::TlsAcceptor::from(config.clone()))
        }
    })
}

/// A connection whose writes fail once one has waited [`WRITE_STALL_TIMEOUT`]
/// without progress.
struct WriteStall<T> {
    io: T,
    stall: Pin<Box<tokio::time::Sleep>>,
    waiting: bool,
}

impl<T> WriteStall<T> {
    fn new(io: T) -> Self {
        Self {
            io,
            stall: Box::pin(tokio::time::sleep(WRITE_STALL_TIMEOUT)),
            waiting: false,
        }
    }

    fn progress<R>(&mut self, cx: &mut Context<'_>, poll: Poll<std::io::Result<R>>) -> Poll<std::io::Result<R>> {
        match poll {
            Poll::Ready(r) => {
                self.waiting = false;
                Poll::Ready(r)
            }
            Poll::Pending => {
                if !self.waiting {
                    self.waiting = true;
                    self.stall
                        .as_mut()
                        .reset(tokio::time::Instant::now() + WRITE_STALL_TIMEOUT);
                }
                match self.stall.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(std::io::ErrorKind::TimedOut.into())),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteStall<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteStall<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write(cx, buf);
        self.progress(cx, poll)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_flush(cx);
        self.progress(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

trait Conn: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Conn for T {}

/// `POST /exec/{id}/start` with `Upgrade: tcp`: Docker's hijacked
/// connection (101, then the exec's raw or multiplexed stream both ways).
async fn hijack_exec<C: Control>(
    api: &Api<C>,
    mut req: Request<Incoming>,
    id: String,
) -> Response<UnsyncBoxBody<Bytes, Infallible>> {
    let on_upgrade = hyper::upgrade::on(&mut req);
    let started = match read_request(req).await {
        Ok(r) => api.exec_start(&id, &r).await,
        Err(e) => Err(e),
    };
    let session = match started {
        Ok(s) => s,
        Err(e) => return error_response(e),
    };
    let content_type = if session.tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    let events = api.exec_events();
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                session
                    .pump(TokioIo::new(upgraded), move |pid, code| events(&id, pid, code))
                    .await;
            }
            Err(e) => tracing::debug!(error = %e, "docker API: exec upgrade failed"),
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("Connection", "Upgrade")
        .header("Upgrade", "tcp")
        .header("Content-Type", content_type)
        .header("Api-Version", API_VERSION)
        .body(Full::new(Bytes::new()).boxed_unsync())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed_unsync()))
}

fn error_response(e: ApiError) -> Response<UnsyncBoxBody<Bytes, Infallible>> {
    let mut body = serde_json::to_vec(&serde_json::json!({ "message": e.message })).unwrap_or_default();
    body.push(b'\n');
    Response::builder()
        .status(StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("Content-Type", "application/json")
        .header("Api-Version", API_VERSION)
        .body(Full::new(Bytes::from(body)).boxed_unsync())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed_unsync()))
}

/// The exec ID of `POST /exec/{id}/start`, when `req` is one asking for an upgrade.
fn exec_start_upgrade(req: &Request<Incoming>) -> Option<String> {
    if req.method() != Method::POST || !req.headers().contains_key(hyper::header::UPGRADE) {
        return None;
    }
    let segments = split_path(req.uri().path());
    match segments.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["exec", id, "start"] => Some(id.to_string()),
        _ => None,
    }
}

async fn handle<C: Control>(api: &Api<C>, req: Request<Incoming>) -> Response<UnsyncBoxBody<Bytes, Infallible>> {
    if let Some(id) = exec_start_upgrade(&req) {
        if let Err(e) = check_version(req.uri().path()) {
            return error_response(e);
        }
        return hijack_exec(api, req, id).await;
    }
    let head_only = req.method() == Method::HEAD;
    let reply = match read_request(req).await {
        Ok(req) => {
            tracing::debug!(method = %req.method, path = %req.segments.join("/"), "docker API request");
            api.route(&req).await
        }
        Err(e) => Err(e),
    };
    let reply = reply.unwrap_or_else(|e| Reply::Json(e.status, serde_json::json!({ "message": e.message })));
    let (status, content_type, body) = match reply {
        Reply::Json(status, value) => {
            let mut body = serde_json::to_vec(&value).unwrap_or_default();
            body.push(b'\n');
            (status, Some("application/json"), Ok(body))
        }
        Reply::Empty(status) => (status, None, Ok(Vec::new())),
        Reply::Raw(status, ct, body) => (status, Some(ct), Ok(body)),
        Reply::Stream(ct, stream) => (200, Some(ct), Err(stream)),
    };
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("Api-Version", API_VERSION)
        .header("Docker-Experimental", "false")
        .header("Ostype", "linux")
        .header("Server", concat!("swarmkeep/", env!("CARGO_PKG_VERSION"), " (linux)"));
    if let Some(ct) = content_type {
        builder = builder.header("Content-Type", ct);
    }
    let body = match body {
        Ok(body) => {
            if head_only {
                builder = builder.header("Content-Length", body.len());
            }
            let body = if head_only { Bytes::new() } else { Bytes::from(body) };
            Full::new(body).boxed_unsync()
        }
        Err(stream) => StreamBody::new(tokio_stream::StreamExt::map(stream, |b| {
            Ok::<_, Infallible>(hyper::body::Frame::data(b))
        }))
        .boxed_unsync(),
    };
    builder
        .body(body)
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed_unsync()))
}

async fn read_request(req: Request<Incoming>) -> Result<Req, ApiError> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    check_version(path)?;
    let segments = split_path(path);
    let query = parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let limit = body_limit(&segments);
    let declared = parts
        .headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    if declared > limit {
        // Refused before a byte of the body is read.
        return Err(too_large());
    }
    // Frames are copied into one zeroizing buffer as they arrive; it grows
    // with what arrived (never with what Content-Length claims), and when
    // it grows the old buffer is zeroized, never just freed by a reallocation.
    let mut buf = Zeroizing::new(Vec::with_capacity(INITIAL_BODY_BUFFER.min(limit)));
    let mut body = Limited::new(body, limit);
    let read = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    too_large()
                } else {
                    ApiError::bad_request(format!("reading the request body: {e}"))
                }
            })?;
            if let Some(data) = frame.data_ref() {
                let needed = buf.len() + data.len();
                if needed > buf.capacity() {
                    let mut bigger = Zeroizing::new(Vec::with_capacity(needed.max(buf.capacity() * 2).min(limit)));
                    bigger.extend_from_slice(&buf);
                    buf = bigger;
                }
                buf.extend_from_slice(data);
            }
        }
        Ok::<(), ApiError>(())
    };
    tokio::time::timeout(BODY_TIMEOUT, read)
        .await
        .map_err(|_| ApiError::new(408, "the request body was not sent in time"))??;
    // The credential the docker CLI sends for a registry (a secret: kept in
    // a zeroizing buffer, never logged).
    let registry_auth = parts
        .headers
        .get("X-Registry-Auth")
        .map(|v| Zeroizing::new(v.as_bytes().to_vec()))
        .unwrap_or_default();
    Ok(Req {
        method: parts.method,
        segments,
        query,
        body: buf,
        registry_auth,
    })
}

/// The most a request to `segments` may send.
fn body_limit(segments: &[String]) -> usize {
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    match s.as_slice() {
        ["secrets", "create"] | ["secrets", _, "update"] => SECRET_BODY_LIMIT,
        ["configs", "create"] | ["configs", _, "update"] => CONFIG_BODY_LIMIT,
        ["services", "create"] | ["services", _, "update"] | ["swarm", ..] | ["nodes", _, "update"] => SPEC_BODY_LIMIT,
        ["images", "load"] => IMAGE_LOAD_BODY_LIMIT,
        _ => OTHER_BODY_LIMIT,
    }
}

fn too_large() -> ApiError {
    ApiError::new(413, "request body too large")
}

/// Docker's answer to a versioned path outside what is served.
fn check_version(path: &str) -> Result<(), ApiError> {
    let Some(v) = path.split('/').find(|s| !s.is_empty()).filter(|s| is_version(s)) else {
        return Ok(());
    };
    let parse = |v: &str| -> (u32, u32) {
        let (a, b) = v.split_once('.').unwrap_or((v, "0"));
        (a.parse().unwrap_or(0), b.parse().unwrap_or(0))
    };
    let asked = parse(&v[1..]);
    if asked > parse(crate::API_VERSION) {
        return Err(ApiError::bad_request(format!(
            "client version {} is too new. Maximum supported API version is {}",
            &v[1..],
            crate::API_VERSION
        )));
    }
    if asked < parse(crate::MIN_API_VERSION) {
        return Err(ApiError::bad_request(format!(
            "client version {} is too old. Minimum supported API version is {}, please upgrade your client to a newer version",
            &v[1..],
            crate::MIN_API_VERSION
        )));
    }
    Ok(())
}

/// `/v1.41/secrets/x` → `["secrets", "x"]`; unversioned paths as they are.
fn split_path(path: &str) -> Vec<String> {
    let mut segments: Vec<String> = path.split('/').filter(|s| !s.is_empty()).map(percent_decode).collect();
    if segments.first().is_some_and(|s| is_version(s)) {
        segments.remove(0);
    }
    segments
}

fn is_version(s: &str) -> bool {
    s.strip_prefix('v')
        .and_then(|v| v.split_once('.'))
        .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty() && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit()))
}

fn percent_decode(s: &str) -> String {
    // form_urlencoded also turns `+` into a space, which a path does not mean.
    let protected = s.replace('+', "%2B");
    form_urlencoded::parse(format!("x={protected}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_beyond_the_served_range_are_refused() {
        assert!(check_version("/v1.41/info").is_ok());
        assert!(check_version("/v1.24/info").is_ok());
        assert!(check_version("/_ping").is_ok());
        assert_eq!(
            check_version("/v1.43/info").unwrap_err().message,
            "client version 1.43 is too new. Maximum supported API version is 1.41"
        );
        assert_eq!(check_version("/v1.9/info").unwrap_err().status, 400);
    }

    #[test]
    fn each_endpoint_takes_only_what_it_needs() {
        let limit = |path: &str| body_limit(&split_path(path));
        assert_eq!(limit("/v1.41/secrets/create"), SECRET_BODY_LIMIT);
        assert_eq!(limit("/v1.41/secrets/abc/update"), SECRET_BODY_LIMIT);
        assert_eq!(limit("/configs/create"), CONFIG_BODY_LIMIT);
        assert_eq!(limit("/v1.41/services/create"), SPEC_BODY_LIMIT);
        assert_eq!(limit("/v1.41/swarm/init"), SPEC_BODY_LIMIT);
        assert_eq!(limit("/v1.41/secrets"), OTHER_BODY_LIMIT);
        assert_eq!(limit("/v1.41/nodes/x"), OTHER_BODY_LIMIT);
    }

    #[test]
    fn version_prefix_is_stripped() {
        assert_eq!(split_path("/v1.41/secrets/a%20b"), ["secrets", "a b"]);
        assert_eq!(split_path("/_ping"), ["_ping"]);
        assert_eq!(
            split_path("/v1.24/distribution/a/b:c+d/json"),
            ["distribution", "a", "b:c+d", "json"]
        );
        assert_eq!(split_path("/vx/secrets"), ["vx", "secrets"]);
    }
}
