//! [`NodeContainers`] for this node's agent: list, inspect, top, logs and
//! exec of its task containers.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use swarmkeep_api::containers::{self as pb, NodeContainers, exec_input::Input, exec_output::Output};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tonic::Status;

use crate::state::AgentState;

pub struct ContainersService {
    pub(crate) state: Arc<AgentState>,
}

fn not_found(e: String) -> Status {
    Status::not_found(e)
}

#[tonic::async_trait]
impl NodeContainers for ContainersService {
    async fn list_images(&self) -> Vec<pb::ImageSummary> {
        crate::images_api::list(&self.state)
    }

    async fn pull_image(&self, reference: &str, registry_auth: &[u8]) -> Result<Vec<String>, Status> {
        crate::images_api::pull(&self.state, reference, registry_auth).await
    }

    async fn load_image(&self, chunks: mpsc::Receiver<Vec<u8>>) -> Result<Vec<String>, Status> {
        crate::images_api::load(&self.state, chunks).await
    }

    async fn resolve_image(&self, reference: &str, registry_auth: &[u8]) -> Result<pb::ResolvedImage, Status> {
        crate::images_api::resolve(&self.state, reference, registry_auth).await
    }

    async fn remove_image(&self, name: &str) -> Result<Vec<String>, Status> {
        crate::images_api::remove(&self.state, name)
    }

    async fn list(&self, all: bool) -> Vec<pb::Container> {
        self.state.containers.list(all)
    }

    async fn inspect(&self, id: &str) -> Result<pb::Container, Status> {
        Ok(self.state.containers.find(id).map_err(not_found)?.info)
    }

    async fn top(&self, id: &str, ps_args: &str) -> Result<pb::TopResponse, Status> {
        let r = self.state.containers.find(id).map_err(not_found)?;
        if r.info.state != "running" {
            return Err(Status::failed_precondition(format!(
                "Container {} is not running",
                r.info.id
            )));
        }
        let pids: HashSet<String> = r
            .cgroups
            .iter()
            .filter_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
            .flat_map(|t| t.lines().map(str::to_string).collect::<Vec<_>>())
            // The task's own processes: not the shim or an exec helper.
            .filter(|pid| {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let second = cmdline.split(|b| *b == 0).nth(1).unwrap_or_default();
                second != b"task-shim" && second != b"task-exec"
            })
            .collect();
        let args = if ps_args.is_empty() { "-ef" } else { ps_args };
        let out = tokio::process::Command::new("ps")
            .args(args.split_whitespace())
            .output()
            .await
            .map_err(|e| Status::internal(format!("running ps: {e}")))?;
        if !out.status.success() {
            return Err(Status::invalid_argument(format!(
                "ps: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        let titles: Vec<String> = lines
            .next()
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let pid_col = titles
            .iter()
            .position(|t| t == "PID")
            .ok_or_else(|| Status::invalid_argument("Couldn't find PID field in ps output"))?;
        let processes = lines
            .filter_map(|line| {
                let mut cols: Vec<String> = Vec::new();
                let mut rest = line.trim_start();
                while cols.len() + 1 < titles.len() {
                    let (word, tail) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
                    cols.push(word.to_string());
                    rest = tail.trim_start();
                }
                cols.push(rest.to_string());
                pids.contains(cols.get(pid_col)?)
                    .then_some(pb::top_response::Row { columns: cols })
            })
            .collect();
        Ok(pb::TopResponse { titles, processes })
    }

    async fn logs(&self, req: pb::LogsRequest) -> Result<mpsc::Receiver<pb::LogChunk>, Status> {
        let r = self.state.containers.find(&req.id).map_err(not_found)?;
        let wanted = move |stream: u32| (stream == 1 && req.stdout) || (stream == 2 && req.stderr);
        let (tx, rx) = mpsc::channel(64);
        let Some(logs) = self.state.logs.get(&r.info.task_id) else {
            return Ok(rx);
        };
        let tail = u64::try_from(req.tail).ok();
        let (kept, mut feed) = logs.snapshot(tail, 0);
        let state = self.state.clone();
        let chunk = |l: crate::logs::Line| pb::LogChunk {
            stream: l.stream,
            data: l.data,
            time: Some(prost_types::Timestamp {
                seconds: l.timestamp_ns.div_euclid(1_000_000_000),
                nanos: i32::try_from(l.timestamp_ns.rem_euclid(1_000_000_000)).unwrap_or(0),
            }),
        };
        tokio::spawn(async move {
            for l in kept {
                if wanted(l.stream) && tx.send(chunk(l)).await.is_err() {
                    return;
                }
            }
            if !req.follow {
                return;
            }
            loop {
                tokio::select! {
                    line = feed.recv() => match line {
                        Ok(l) => {
                            if wanted(l.stream) && tx.send(chunk(l)).await.is_err() {
                                return;
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(_) => return,
                    },
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {
                        let running = state.containers.find(&r.info.id).is_ok_and(|c| c.info.state == "running");
                        if !running || tx.is_closed() {
                            return;
                        }
                    }
                }
            }
        });
        Ok(rx)
    }

    async fn exec(
        &self,
        start: pb::ExecStart,
        mut input: mpsc::Receiver<Input>,
    ) -> Result<mpsc::Receiver<Output>, Status> {
        if start.cmd.is_empty() {
            return Err(Status::invalid_argument("No exec command specified"));
        }
        if start.privileged {
            return Err(Status::invalid_argument(
                "swarmkeep does not support privileged exec (Privileged)",
            ));
        }
        let r = self.state.containers.find(&start.container).map_err(not_found)?;
        if r.info.state != "running" || r.info.pid == 0 {
            return Err(Status::failed_precondition(format!(
                "Container {} is not running",
                r.info.id
            )));
        }
        let spec = r.exec_spec(
            start.cmd.clone(),
            &start.env,
            &start.user,
            &start.working_dir,
            start.tty,
        );
        let (tx, rx) = mpsc::channel::<Output>(64);
        let mut proc = match self.state.executor.exec(spec, start.attach_stdin).await {
            Ok(p) => p,
            Err((text, code)) => {
                // Docker's shape: the reason on the error stream, then the code.
                let _ = tx.send(Output::Stderr(format!("{text}\r\n").into_bytes())).await;
                let _ = tx.send(Output::ExitCode(code)).await;
                return Ok(rx);
            }
        };
        let _ = tx.send(Output::Started(proc.pid)).await;
        if let Some(pty) = &proc.pty
            && start.height > 0
            && start.width > 0
        {
            crate::executor::exec_process::resize(pty, start.height, start.width);
        }
        let mut pumps = Vec::new();
        let pipe = |mut reader: Box<dyn tokio::io::AsyncRead + Send + Unpin>, stderr: bool| {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    match reader.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let data = buf[..n].to_vec();
                            let o = if stderr {
                                Output::Stderr(data)
                            } else {
                                Output::Stdout(data)
                            };
                            if tx.send(o).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            })
        };
        if let Some(stdout) = proc.stdout.take() {
            pumps.push(pipe(Box::new(stdout), false));
        }
        if let Some(stderr) = proc.stderr.take() {
            pumps.push(pipe(Box::new(stderr), true));
        }
        if let Some(reader) = proc.pty_reader() {
            pumps.push(pipe(Box::new(reader), false));
        }
        // Input: stdin bytes, resizes, the end of stdin.
        let mut stdin: Option<Box<dyn tokio::io::AsyncWrite + Send + Unpin>> = match proc.stdin.take() {
            Some(s) => Some(Box::new(s)),
            None if start.attach_stdin => proc.pty_writer().map(|w| Box::new(w) as _),
            None => None,
        };
        let pty = proc.pty.as_ref().and_then(|p| p.try_clone().ok());
        let input_task = tokio::spawn(async move {
            while let Some(msg) = input.recv().await {
                match msg {
                    Input::Stdin(data) => {
                        if let Some(w) = stdin.as_mut()
                            && (w.write_all(&data).await.is_err() || w.flush().await.is_err())
                        {
                            stdin = None;
                        }
                    }
                    Input::Resize(size) => {
                        if let Some(p) = &pty {
                            crate::executor::exec_process::resize(p, size.height, size.width);
                        }
                    }
                    Input::CloseStdin(_) => stdin = None,
                    _ => {}
                }
            }
        });
        tokio::spawn(async move {
            let code = proc.wait().await;
            for p in pumps {
                // A pty's reader ends with the last process holding the
                // terminal; bound the wait for the pipes' too.
                let _ = tokio::time::timeout(Duration::from_secs(2), p).await;
            }
            input_task.abort();
            let _ = tx.send(Output::ExitCode(code)).await;
        });
        Ok(rx)
    }
}
