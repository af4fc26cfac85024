//! `swarmkeep ps|logs|exec`: the task containers of the node the CLI talks
//! to, as `docker ps|logs|exec` show them on a Swarm node (the node's
//! Containers service, beside the control API).

use std::io::Write;

use swarmkeep_api::containers::containers_client::ContainersClient;
use swarmkeep_api::containers::{
    ExecInput, ExecStart, ListRequest, LogsRequest, Resize, exec_input::Input, exec_output::Output as ExecOut,
};
use tonic::transport::Channel;

use super::Output;
use crate::client::CliError;

pub type Containers = ContainersClient<Channel>;

const PS_FORMAT: &str = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";

/// The docker CLI's `Ellipsis`: at most `n` characters, the last one `…`.
fn ellipsis(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    s.chars().take(n - 1).chain(['…']).collect()
}

/// `swarmkeep ps [-a] [-q] [--no-trunc] [--filter name=|label=|status=|id=|health=] [--format]`.
pub async fn ps(
    client: &mut Containers,
    all: bool,
    quiet: bool,
    no_trunc: bool,
    filters: &[String],
    format: Option<&str>,
) -> Output {
    let filters = match super::parse_filters(filters, &["name", "label", "status", "id", "health"]) {
        Ok(f) => f,
        Err(e) => return e.into(),
    };
    let all = all || filters.iter().any(|(k, _)| k == "status");
    let list = match client.list(ListRequest { all }).await {
        Ok(r) => r.into_inner().containers,
        Err(s) => return CliError::from(s).into(),
    };
    let now = time::OffsetDateTime::now_utc();
    let wanted = |c: &swarmkeep_api::containers::Container| {
        let health = c.health.as_ref().map(|h| h.status.as_str()).unwrap_or("none");
        ["name", "label", "status", "id", "health"].iter().all(|key| {
            let mut values = filters
                .iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
                .peekable();
            values.peek().is_none()
                || values.any(|v| match *key {
                    "name" => c.name.contains(v),
                    "status" => c.state == v,
                    "id" => c.id.starts_with(v),
                    "health" => health == v,
                    _ => match v.split_once('=') {
                        Some((k, want)) => c.labels.get(k).is_some_and(|have| have == want),
                        None => c.labels.contains_key(v),
                    },
                })
        })
    };
    let rows: Vec<serde_json::Value> = list
        .iter()
        .filter(|c| wanted(c))
        .map(|c| {
            let command = format!("\"{}\"", c.command.join(" "));
            serde_json::json!({
                "ID": if no_trunc { c.id.clone() } else { c.id.chars().take(12).collect() },
                "Image": c.image,
                "Command": if no_trunc { command } else { ellipsis(&command, 20) },
                "RunningFor": swarmkeep_api::timefmt::ago(c.created.as_ref(), now),
                "CreatedAt": swarmkeep_api::timefmt::pretty(c.created.as_ref()),
                "Status": swarmkeep_api::containers::status_text(c, now),
                "State": c.state,
                "Ports": "",
                "Names": c.name,
                "Labels": c.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
            })
        })
        .collect();
    let headers = serde_json::json!({
        "ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "RunningFor": "CREATED",
        "CreatedAt": "CREATED AT", "Status": "STATUS", "State": "STATE", "Ports": "PORTS", "Names": "NAMES",
        "Labels": "LABELS",
    });
    match crate::format::render_list(super::list_format(quiet, format, PS_FORMAT), &headers, &rows) {
        Ok(s) => Output::ok(s),
        Err(e) => e.into(),
    }
}

/// `swarmkeep logs [-f] [-t] [--tail N] CONTAINER`: the task's stdout on
/// stdout, its stderr on stderr, as they come.
pub async fn logs(client: &mut Containers, id: &str, follow: bool, timestamps: bool, tail: Option<&str>) -> Output {
    let tail = match swarmkeep_api::timefmt::parse_tail(tail) {
        Ok(t) => t.map(|n| i64::try_from(n).unwrap_or(i64::MAX)).unwrap_or(-1),
        Err(e) => return CliError(e).into(),
    };
    let req = LogsRequest {
        id: id.to_string(),
        stdout: true,
        stderr: true,
        follow,
        timestamps,
        tail,
    };
    let mut stream = match client.logs(req).await {
        Ok(r) => r.into_inner(),
        Err(s) => return CliError::from(s).into(),
    };
    loop {
        match stream.message().await {
            Ok(Some(chunk)) => {
                let mut line = Vec::new();
                if timestamps {
                    line.extend_from_slice(swarmkeep_api::timefmt::rfc3339_nano(chunk.time.as_ref()).as_bytes());
                    line.push(b' ');
                }
                line.extend_from_slice(&chunk.data);
                let _ = if chunk.stream == 2 {
                    std::io::stderr().write_all(&line)
                } else {
                    std::io::stdout()
                        .write_all(&line)
                        .and_then(|_| std::io::stdout().flush())
                };
            }
            Ok(None) => return Output::default(),
            Err(s) => return CliError::from(s).into(),
        }
    }
}

/// What `swarmkeep exec` runs.
pub struct ExecArgs<'a> {
    pub container: &'a str,
    pub cmd: &'a [String],
    pub interactive: bool,
    pub tty: bool,
    pub user: Option<&'a str>,
    pub workdir: Option<&'a str>,
    pub env: &'a [String],
    pub detach: bool,
}

/// The terminal's size (rows, columns), if stdin is one.
fn terminal_size() -> Option<(u32, u32)> {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ fills a winsize; fd 0 is ours to query.
    let ok = unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut size) } == 0;
    ok.then_some((u32::from(size.ws_row), u32::from(size.ws_col)))
}

/// Puts the terminal on stdin in raw mode until dropped (with `-t` on a
/// terminal, as the docker CLI does).
struct RawMode(Option<nix::sys::termios::Termios>);

impl RawMode {
    fn enter(tty: bool) -> Self {
        use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
        if !tty {
            return Self(None);
        }
        let stdin = std::io::stdin();
        let Ok(saved) = tcgetattr(&stdin) else {
            return Self(None);
        };
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &raw);
        Self(Some(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(std::io::stdin(), nix::sys::termios::SetArg::TCSANOW, saved);
        }
    }
}

/// `swarmkeep exec [-i] [-t] [-d] [-u] [-w] [-e] CONTAINER CMD…`: exits
/// with the command's code (126: could not be run, 127: not found).
pub async fn exec(client: &mut Containers, a: ExecArgs<'_>) -> Output {
    let size = if a.tty { terminal_size() } else { None };
    let (tx, rx) = tokio::sync::mpsc::channel::<ExecInput>(16);
    let start = ExecStart {
        container: a.container.to_string(),
        cmd: a.cmd.to_vec(),
        env: a.env.to_vec(),
        user: a.user.unwrap_or_default().to_string(),
        working_dir: a.workdir.unwrap_or_default().to_string(),
        tty: a.tty,
        attach_stdin: a.interactive && !a.detach,
        height: size.map(|s| s.0).unwrap_or(0),
        width: size.map(|s| s.1).unwrap_or(0),
        privileged: false,
    };
    let _ = tx
        .send(ExecInput {
            input: Some(Input::Start(start)),
        })
        .await;
    let mut stream = match client.exec(tokio_stream::wrappers::ReceiverStream::new(rx)).await {
        Ok(r) => r.into_inner(),
        Err(s) => return CliError::from(s).into(),
    };
    if a.detach {
        // Started (or refused): the command runs on without us.
        return match stream.message().await {
            Ok(Some(m)) => match m.output {
                Some(ExecOut::ExitCode(code)) if code != 0 => Output {
                    code: Some(u8::try_from(code).unwrap_or(1)),
                    ..Default::default()
                },
                _ => Output::default(),
            },
            Ok(None) => Output::default(),
            Err(s) => CliError::from(s).into(),
        };
    }
    let raw = RawMode::enter(a.tty && size.is_some());
    if a.interactive {
        let input = tx.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match std::io::Read::read(&mut std::io::stdin(), &mut buf) {
                    Ok(0) | Err(_) => {
                        let _ = input.blocking_send(ExecInput {
                            input: Some(Input::CloseStdin(true)),
                        });
                        return;
                    }
                    Ok(n) => {
                        let msg = ExecInput {
                            input: Some(Input::Stdin(buf[..n].to_vec())),
                        };
                        if input.blocking_send(msg).is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
    if a.tty {
        let resize = tx.clone();
        tokio::spawn(async move {
            let Ok(mut winch) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()) else {
                return;
            };
            while winch.recv().await.is_some() {
                if let Some((height, width)) = terminal_size() {
                    let msg = ExecInput {
                        input: Some(Input::Resize(Resize { height, width })),
                    };
                    if resize.send(msg).await.is_err() {
                        return;
                    }
                }
            }
        });
    }
    let code = loop {
        match stream.message().await {
            Ok(Some(m)) => match m.output {
                Some(ExecOut::Stdout(d)) => {
                    let mut out = std::io::stdout();
                    let _ = out.write_all(&d).and_then(|_| out.flush());
                }
                Some(ExecOut::Stderr(d)) => {
                    let _ = std::io::stderr().write_all(&d);
                }
                Some(ExecOut::ExitCode(code)) => break code,
                _ => {}
            },
            Ok(None) => break 0,
            Err(s) => {
                drop(raw);
                return CliError::from(s).into();
            }
        }
    };
    drop(raw);
    Output {
        code: Some(u8::try_from(code).unwrap_or(1)),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_cut_as_the_docker_cli_cuts_them() {
        assert_eq!(ellipsis("\"sleep 1000000\"", 20), "\"sleep 1000000\"");
        assert_eq!(
            ellipsis("\"sh -c echo started; exec sleep\"", 20),
            "\"sh -c echo started…"
        );
    }
}
