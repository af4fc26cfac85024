//! The node's task containers, as dockerd serves its own: `GET
//! /containers/json` (`docker ps`), `/containers/{id}/json` (`inspect`),
//! `/containers/{id}/top`, `/containers/{id}/logs`, and exec (`POST
//! /containers/{id}/exec`, `/exec/{id}/start` on a hijacked connection,
//! `/exec/{id}/resize`, `GET /exec/{id}/json`). Answered from this daemon's
//! agent ([`NodeContainers`]): only the containers of this node, as dockerd.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use serde::Deserialize;
use swarmkeep_api::containers::{Container, ExecStart, LogsRequest, NodeContainers, exec_input, exec_output};
use swarmkeep_api::control::control_server::Control;
use swarmkeep_api::timefmt::{parse_tail, rfc3339_nano_ns};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::{Api, json_body};
use crate::error::{ApiError, ApiResult};
use crate::exchange::{Reply, Req};
use crate::filters::Filters;

/// An exec instance (`POST /containers/{id}/exec`), until the daemon stops.
pub struct ExecEntry {
    container_id: String,
    config: ExecConfig,
    running: bool,
    exit_code: Option<i32>,
    pid: u32,
    input: Option<mpsc::Sender<exec_input::Input>>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecConfig {
    attach_stdin: bool,
    attach_stdout: bool,
    attach_stderr: bool,
    detach_keys: String,
    tty: bool,
    env: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    user: String,
    working_dir: String,
    privileged: bool,
    console_size: Option<[u32; 2]>,
}

#[derive(Default)]
pub struct Execs(Mutex<HashMap<String, ExecEntry>>);

impl Execs {
    /// Records exec `id`'s PID once it runs, its code once it ended.
    pub fn event(&self, id: &str, pid: u32, code: Option<i32>) {
        if let Some(e) = lock(&self.0).get_mut(id) {
            if pid != 0 {
                e.pid = pid;
            }
            if let Some(code) = code {
                e.running = false;
                e.exit_code = Some(code);
                e.input = None;
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn ts_ns(t: Option<&prost_types::Timestamp>) -> i64 {
    t.map(|t| t.seconds * 1_000_000_000 + i64::from(t.nanos)).unwrap_or(0)
}

fn rfc3339(t: Option<&prost_types::Timestamp>) -> String {
    match t {
        Some(_) => rfc3339_nano_ns(ts_ns(t)),
        None => "0001-01-01T00:00:00Z".into(),
    }
}

fn status_text(c: &Container) -> String {
    swarmkeep_api::containers::status_text(c, time::OffsetDateTime::now_utc())
}

fn network_mode(c: &Container) -> &str {
    if c.network_mode == "host" { "host" } else { "default" }
}

fn networks(c: &Container) -> serde_json::Value {
    if c.network_mode == "host" {
        return serde_json::json!({});
    }
    serde_json::json!({
        "bridge": {
            "IPAMConfig": null,
            "Links": null,
            "Aliases": null,
            "NetworkID": "",
            "EndpointID": "",
            "Gateway": c.gateway,
            "IPAddress": c.ip_address,
            "IPPrefixLen": c.ip_prefix_len,
            "IPv6Gateway": "",
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "MacAddress": c.mac_address,
            "DriverOpts": null
        }
    })
}

fn mounts(c: &Container) -> serde_json::Value {
    c.mounts
        .iter()
        .map(|m| {
            serde_json::json!({
                "Type": m.r#type,
                "Source": m.source,
                "Destination": m.destination,
                "Mode": "",
                "RW": !m.read_only,
                "Propagation": "rprivate"
            })
        })
        .collect()
}

/// `GET /containers/json`'s summary of one container.
fn summary(c: &Container) -> serde_json::Value {
    serde_json::json!({
        "Id": c.id,
        "Names": [format!("/{}", c.name)],
        "Image": c.image,
        "ImageID": c.image_id,
        "Command": c.command.join(" "),
        "Created": c.created.map(|t| t.seconds).unwrap_or(0),
        "Ports": [],
        "Labels": c.labels,
        "State": c.state,
        "Status": status_text(c),
        "HostConfig": {"NetworkMode": network_mode(c)},
        "NetworkSettings": {"Networks": networks(c)},
        "Mounts": mounts(c),
    })
}

/// Docker's `State.Health` (omitted without a healthcheck).
fn health_json(c: &Container) -> Option<serde_json::Value> {
    let h = c.health.as_ref()?;
    Some(serde_json::json!({
        "Status": h.status,
        "FailingStreak": h.failing_streak,
        "Log": h.log.iter().map(|p| serde_json::json!({
            "Start": rfc3339(p.start.as_ref()),
            "End": rfc3339(p.end.as_ref()),
            "ExitCode": p.exit_code,
            "Output": p.output,
        })).collect::<Vec<_>>(),
    }))
}

/// `docker inspect` of a container.
fn inspect_json(c: &Container) -> serde_json::Value {
    let running = c.state == "running";
    let mut v = serde_json::json!({
        "Id": c.id,
        "Created": rfc3339(c.created.as_ref()),
        "Path": c.command.first().cloned().unwrap_or_default(),
        "Args": c.command.iter().skip(1).collect::<Vec<_>>(),
        "State": {
            "Status": c.state,
            "Running": running,
            "Paused": false,
            "Restarting": false,
            "OOMKilled": c.oom_killed,
            "Dead": false,
            "Pid": c.pid,
            "ExitCode": c.exit_code,
            "Error": "",
            "StartedAt": rfc3339(c.started_at.as_ref()),
            "FinishedAt": rfc3339(c.finished_at.as_ref()),
        },
        "Image": c.image_id,
        "ResolvConfPath": "",
        "HostnamePath": "",
        "HostsPath": "",
        "LogPath": "",
        "Name": format!("/{}", c.name),
        "RestartCount": 0,
        "Driver": "overlay",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": null,
        "HostConfig": {
            "NetworkMode": network_mode(c),
            "ReadonlyRootfs": c.read_only,
            "NanoCpus": c.nano_cpus,
            "Memory": c.memory_bytes,
            "PidsLimit": if c.pids_limit > 0 { serde_json::Value::from(c.pids_limit) } else { serde_json::Value::Null },
            "Mounts": null,
            "Init": false,
        },
        "Mounts": mounts(c),
        "Config": {
            "Hostname": c.hostname,
            "Domainname": "",
            "User": c.user,
            "AttachStdin": false,
            "AttachStdout": false,
            "AttachStderr": false,
            "Tty": c.tty,
            "OpenStdin": false,
            "StdinOnce": false,
            "Env": c.env,
            "Cmd": c.command,
            "Image": c.image,
            "Volumes": null,
            "WorkingDir": c.working_dir,
            "Entrypoint": null,
            "OnBuild": null,
            "Labels": c.labels,
        },
        "NetworkSettings": {
            "Bridge": "",
            "SandboxID": "",
            "Gateway": c.gateway,
            "IPAddress": c.ip_address,
            "IPPrefixLen": c.ip_prefix_len,
            "MacAddress": c.mac_address,
            "Networks": networks(c),
        },
    });
    if let Some(h) = health_json(c) {
        v["State"]["Health"] = h;
    }
    v
}

/// The agent's answer as dockerd words its own container errors (the
/// message as it is, not as a relayed rpc error).
pub(super) fn agent_error(s: tonic::Status) -> ApiError {
    let status = match s.code() {
        tonic::Code::NotFound => 404,
        tonic::Code::FailedPrecondition => 409,
        tonic::Code::InvalidArgument => 400,
        _ => 500,
    };
    ApiError::new(status, s.message())
}

fn no_agent() -> ApiError {
    ApiError::not_found("this daemon runs no agent (--no-agent): it has no containers")
}

/// Docker's 8-byte stream header: `[stream, 0, 0, 0, len_be32]`.
fn mux(stream: u8, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 8);
    out.extend_from_slice(&[stream, 0, 0, 0]);
    out.extend_from_slice(&u32::try_from(data.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(data);
    out
}

impl<C: Control> Api<C> {
    pub(super) fn node(&self) -> ApiResult<&dyn NodeContainers> {
        self.containers.as_deref().ok_or_else(no_agent)
    }

    async fn find(&self, id: &str) -> ApiResult<Container> {
        self.node()?.inspect(id).await.map_err(agent_error)
    }

    pub async fn containers_list(&self, req: &Req) -> ApiResult<Reply> {
        let filters = Filters::parse(req.query("filters"))?;
        filters.allow(&["name", "label", "status", "id", "health"])?;
        let all = req.flag("all") || filters.contains("status");
        let any = |key: &str, f: &dyn Fn(&str) -> bool| {
            let wanted = filters.get(key);
            wanted.is_empty() || wanted.iter().any(|v| f(v))
        };
        let list = match self.containers.as_deref() {
            Some(n) => n.list(all).await,
            None => Vec::new(),
        };
        let shown: Vec<serde_json::Value> = list
            .iter()
            .filter(|c| {
                any("name", &|v| c.name.contains(v))
                    && any("id", &|v| c.id.starts_with(v))
                    && any("status", &|v| v == c.state)
                    && any("health", &|v| {
                        v == c.health.as_ref().map(|h| h.status.as_str()).unwrap_or("none")
                    })
                    && filters.get("label").iter().all(|v| match v.split_once('=') {
                        Some((k, val)) => c.labels.get(k).is_some_and(|x| x == val),
                        None => c.labels.contains_key(v.as_str()),
                    })
            })
            .map(summary)
            .collect();
        Ok(Reply::Json(200, shown.into()))
    }

    pub async fn container_inspect(&self, id: &str) -> ApiResult<Reply> {
        Ok(Reply::Json(200, inspect_json(&self.find(id).await?)))
    }

    pub async fn container_top(&self, id: &str, req: &Req) -> ApiResult<Reply> {
        let top = self
            .node()?
            .top(id, req.query("ps_args").unwrap_or(""))
            .await
            .map_err(agent_error)?;
        let processes: Vec<Vec<String>> = top.processes.into_iter().map(|r| r.columns).collect();
        Ok(Reply::Json(
            200,
            serde_json::json!({"Titles": top.titles, "Processes": processes}),
        ))
    }

    pub async fn container_logs(&self, id: &str, req: &Req) -> ApiResult<Reply> {
        let (stdout, stderr) = (req.flag("stdout"), req.flag("stderr"));
        if !stdout && !stderr {
            return Err(ApiError::bad_request(
                "Bad parameters: you must choose at least one stream",
            ));
        }
        let tail = parse_tail(req.query("tail")).map_err(ApiError::bad_request)?;
        let timestamps = req.flag("timestamps");
        let mut rx = self
            .node()?
            .logs(LogsRequest {
                id: id.to_string(),
                stdout,
                stderr,
                follow: req.flag("follow"),
                timestamps,
                tail: tail.map(|t| i64::try_from(t).unwrap_or(i64::MAX)).unwrap_or(-1),
            })
            .await
            .map_err(agent_error)?;
        let stream = async_stream(move |tx: mpsc::Sender<Bytes>| async move {
            while let Some(chunk) = rx.recv().await {
                let mut payload = Vec::with_capacity(chunk.data.len() + 40);
                if timestamps {
                    payload.extend_from_slice(rfc3339_nano_ns(ts_ns(chunk.time.as_ref())).as_bytes());
                    payload.push(b' ');
                }
                payload.extend_from_slice(&chunk.data);
                if !payload.ends_with(b"\n") {
                    payload.push(b'\n');
                }
                let stream = if chunk.stream == 2 { 2 } else { 1 };
                if tx.send(Bytes::from(mux(stream, &payload))).await.is_err() {
                    break;
                }
            }
        });
        Ok(Reply::Stream("application/vnd.docker.multiplexed-stream", stream))
    }

    pub async fn exec_create(&self, id: &str, req: &Req) -> ApiResult<Reply> {
        let config: ExecConfig = json_body(req)?;
        if config.cmd.as_ref().is_none_or(|c| c.is_empty()) {
            return Err(ApiError::bad_request("No exec command specified"));
        }
        if config.privileged {
            return Err(ApiError::bad_request(
                "swarmkeep does not support privileged exec (Privileged)",
            ));
        }
        if !config.detach_keys.is_empty() {
            return Err(ApiError::bad_request("swarmkeep does not support DetachKeys yet"));
        }
        let c = self.find(id).await?;
        if c.state != "running" {
            return Err(ApiError::new(409, format!("Container {} is not running", c.id)));
        }
        let exec_id = random_id();
        lock(&self.execs.0).insert(
            exec_id.clone(),
            ExecEntry {
                container_id: c.id,
                config,
                running: false,
                exit_code: None,
                pid: 0,
                input: None,
            },
        );
        Ok(Reply::Json(201, serde_json::json!({ "Id": exec_id })))
    }

    pub async fn exec_inspect(&self, id: &str) -> ApiResult<Reply> {
        let execs = lock(&self.execs.0);
        let e = execs
            .get(id)
            .ok_or_else(|| ApiError::not_found(format!("No such exec instance: {id}")))?;
        let cmd = e.config.cmd.clone().unwrap_or_default();
        Ok(Reply::Json(
            200,
            serde_json::json!({
                "ID": id,
                "Running": e.running,
                "ExitCode": e.exit_code,
                "ProcessConfig": {
                    "tty": e.config.tty,
                    "entrypoint": cmd.first(),
                    "arguments": cmd.iter().skip(1).collect::<Vec<_>>(),
                    "privileged": false,
                    "user": e.config.user,
                },
                "OpenStdin": e.config.attach_stdin,
                "OpenStderr": e.config.attach_stderr,
                "OpenStdout": e.config.attach_stdout,
                "CanRemove": false,
                "ContainerID": e.container_id,
                "DetachKeys": "",
                "Pid": e.pid,
            }),
        ))
    }

    pub async fn exec_resize(&self, id: &str, req: &Req) -> ApiResult<Reply> {
        let parse = |k: &str| -> ApiResult<u32> {
            req.query(k)
                .unwrap_or("")
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid {k} value")))
        };
        let (height, width) = (parse("h")?, parse("w")?);
        let input = lock(&self.execs.0)
            .get(id)
            .ok_or_else(|| ApiError::not_found(format!("No such exec instance: {id}")))?
            .input
            .clone();
        if let Some(tx) = input {
            let _ = tx
                .send(exec_input::Input::Resize(swarmkeep_api::containers::Resize {
                    height,
                    width,
                }))
                .await;
        }
        Ok(Reply::Empty(200))
    }

    /// Starts exec `id`: its output and input channels, for the connection
    /// the caller hijacked (or, without an upgrade, for a streamed body).
    pub async fn exec_start(&self, id: &str, req: &Req) -> ApiResult<ExecSession> {
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "PascalCase", default)]
        struct Start {
            detach: bool,
            tty: bool,
            console_size: Option<[u32; 2]>,
        }
        let start: Start = json_body(req)?;
        let (container, config) = {
            let mut execs = lock(&self.execs.0);
            let e = execs
                .get_mut(id)
                .ok_or_else(|| ApiError::not_found(format!("No such exec instance: {id}")))?;
            if e.running || e.exit_code.is_some() {
                return Err(ApiError::new(409, format!("Exec {id} has already been started")));
            }
            e.running = true;
            (e.container_id.clone(), e.config.clone())
        };
        let size = start.console_size.or(config.console_size).unwrap_or([0, 0]);
        let tty = config.tty || start.tty;
        let (in_tx, in_rx) = mpsc::channel(64);
        let started = self
            .node()?
            .exec(
                ExecStart {
                    container: container.clone(),
                    cmd: config.cmd.clone().unwrap_or_default(),
                    env: config.env.clone().unwrap_or_default(),
                    user: config.user.clone(),
                    working_dir: config.working_dir.clone(),
                    tty,
                    attach_stdin: config.attach_stdin && !start.detach,
                    height: size[0],
                    width: size[1],
                    privileged: false,
                },
                in_rx,
            )
            .await;
        let output = match started {
            Ok(rx) => rx,
            Err(e) => {
                if let Some(entry) = lock(&self.execs.0).get_mut(id) {
                    entry.running = false;
                    entry.exit_code = Some(126);
                }
                return Err(agent_error(e));
            }
        };
        if let Some(entry) = lock(&self.execs.0).get_mut(id) {
            entry.input = Some(in_tx.clone());
        }
        Ok(ExecSession {
            tty,
            detach: start.detach,
            stdin: config.attach_stdin,
            stdout: config.attach_stdout,
            stderr: config.attach_stderr,
            output,
            input: in_tx,
        })
    }

    /// A callback that records exec events (for a session outliving the request).
    pub fn exec_events(&self) -> impl Fn(&str, u32, Option<i32>) + Send + Sync + 'static {
        let execs = self.execs.clone();
        move |id, pid, code| execs.event(id, pid, code)
    }
}

/// A started exec, to be pumped over a connection.
pub struct ExecSession {
    pub tty: bool,
    pub detach: bool,
    stdin: bool,
    /// `AttachStdout`/`AttachStderr`: a stream not attached is not sent
    /// (the command's writes to it go nowhere, as dockerd's).
    stdout: bool,
    stderr: bool,
    output: mpsc::Receiver<exec_output::Output>,
    input: mpsc::Sender<exec_input::Input>,
}

impl ExecSession {
    /// Copies the command's output to `conn` (raw with a TTY, Docker's
    /// multiplexed frames without) and `conn`'s bytes to its stdin; returns
    /// the command's exit code when it ends.
    pub async fn pump<T, F>(mut self, conn: T, mut on_event: F) -> Option<i32>
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
        F: FnMut(u32, Option<i32>),
    {
        let (mut rd, mut wr) = tokio::io::split(conn);
        let input = self.input.clone();
        let reader = if self.stdin && !self.detach {
            Some(tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    match rd.read(&mut buf).await {
                        Ok(0) | Err(_) => {
                            let _ = input.send(exec_input::Input::CloseStdin(true)).await;
                            break;
                        }
                        Ok(n) => {
                            if input.send(exec_input::Input::Stdin(buf[..n].to_vec())).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            }))
        } else {
            None
        };
        let mut code = None;
        while let Some(o) = self.output.recv().await {
            let bytes = match o {
                exec_output::Output::Started(pid) => {
                    on_event(pid, None);
                    continue;
                }
                exec_output::Output::ExitCode(c) => {
                    code = Some(c);
                    break;
                }
                exec_output::Output::Stdout(_) if !self.stdout => continue,
                exec_output::Output::Stderr(_) if !self.stderr => continue,
                exec_output::Output::Stdout(d) if self.tty => d,
                exec_output::Output::Stdout(d) => mux(1, &d),
                exec_output::Output::Stderr(d) if self.tty => d,
                exec_output::Output::Stderr(d) => mux(2, &d),
            };
            if self.detach {
                continue;
            }
            if wr.write_all(&bytes).await.is_err() {
                break;
            }
            let _ = wr.flush().await;
        }
        on_event(0, Some(code.unwrap_or(-1)));
        if let Some(r) = reader {
            r.abort();
        }
        let _ = wr.shutdown().await;
        code
    }

    /// Without a hijack: the output as a streamed body (no stdin).
    pub fn into_stream<F>(self, on_event: F) -> crate::exchange::ByteStream
    where
        F: FnMut(u32, Option<i32>) + Send + 'static,
    {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let session = ExecSession { stdin: false, ..self };
        tokio::spawn(session.pump(server, on_event));
        async_stream(move |tx: mpsc::Sender<Bytes>| async move {
            let mut client = client;
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match client.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                            break;
                        }
                    }
                }
            }
        })
    }
}

/// A byte stream fed by `produce` on its own task.
fn async_stream<F, Fut>(produce: F) -> crate::exchange::ByteStream
where
    F: FnOnce(mpsc::Sender<Bytes>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(produce(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// A 64-hex-digit ID, as Docker's exec IDs.
fn random_id() -> String {
    let mut bytes = [0u8; 32];
    let _ = getrandom::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_dockers() {
        assert_eq!(mux(1, b"hi"), vec![1, 0, 0, 0, 0, 0, 0, 2, b'h', b'i']);
    }
}
