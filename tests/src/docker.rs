//! Driving swarmkeepd through the unmodified docker CLI (and raw HTTP on the
//! same socket), and comparing with the outputs real Docker recorded in
//! `tests/golden/`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::Run;

/// The docker CLI on this machine, if any.
pub fn cli() -> Option<&'static Path> {
    static DOCKER: OnceLock<Option<PathBuf>> = OnceLock::new();
    DOCKER
        .get_or_init(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join("docker"))
                    .find(|p| p.is_file())
            })
        })
        .as_deref()
}

/// `true` (after saying why on stderr) when there is no docker CLI to test with.
///
/// With `SWARMKEEP_REQUIRE_DOCKER=1` (CI sets it where the CLI is installed)
/// a missing CLI fails the test instead, so the suite cannot pass by skipping.
pub fn skip() -> bool {
    if cli().is_none() {
        assert!(
            std::env::var_os("SWARMKEEP_REQUIRE_DOCKER").is_none(),
            "SWARMKEEP_REQUIRE_DOCKER is set but there is no docker CLI on PATH"
        );
        eprintln!("skipped: no docker CLI on PATH (the Docker API tests run the real docker binary)");
        return true;
    }
    false
}

/// Runs `docker ARGS` with DOCKER_HOST on `socket` and a config dir of its
/// own (no contexts, no credentials of the machine's user).
pub fn run(socket: &Path, dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Run {
    let mut cmd = command(socket, dir, args);
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = cmd.spawn().expect("starting docker");
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(bytes).expect("writing stdin");
    }
    let out = child.wait_with_output().expect("docker output");
    Run {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code().unwrap_or(-1),
    }
}

/// Starts `docker ARGS` without waiting (e.g. `service logs -f`), stdout piped.
pub fn spawn(socket: &Path, dir: &Path, args: &[&str]) -> std::process::Child {
    command(socket, dir, args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting docker")
}

/// `docker ARGS` with DOCKER_HOST on `socket` and a config dir of its own
/// (no contexts, no credentials of the machine's user).
fn command(socket: &Path, dir: &Path, args: &[&str]) -> Command {
    let docker = cli().expect("docker CLI (call docker::skip() first)");
    let config = dir.join("docker-config");
    let _ = std::fs::create_dir_all(&config);
    let mut cmd = Command::new(docker);
    cmd.args(args)
        .env("DOCKER_HOST", format!("unix://{}", socket.display()))
        .env("DOCKER_CONFIG", &config)
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_API_VERSION")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH")
        .current_dir(dir);
    cmd
}

/// One HTTP/1.1 exchange on the Docker API socket: (status, headers, body).
pub fn http(socket: &Path, method: &str, path: &str, body: Option<&[u8]>) -> (u16, String, Vec<u8>) {
    let mut s = UnixStream::connect(socket).expect("connecting to the Docker API");
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let body = body.unwrap_or(b"");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("request");
    s.write_all(body).expect("body");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("response");
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    let mut rest = raw[split + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        rest = dechunk(&rest);
    }
    (status, head, rest)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[eol + 2 + size + 2..];
    }
    out
}

/// The output recorded under `$ <command>…` in `tests/golden/<file>` (up to
/// the next `$ ` line).
pub fn golden(file: &str, command: &str) -> String {
    golden_at(file, command, 0)
}

/// The `nth` (from 0) recording of `command` in `file`.
pub fn golden_at(file: &str, command: &str, nth: usize) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("golden").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let wanted = format!("$ {command}");
    // A command matches its recorded line exactly, or as the start of it
    // before a note (`$ docker node ls   (on a worker)`).
    let matches = |l: &str| l == wanted || l.starts_with(&format!("{wanted} ")) || l.starts_with(&format!("{wanted};"));
    for _ in 0..=nth {
        lines
            .by_ref()
            .find(|l| matches(l))
            .unwrap_or_else(|| panic!("{file} has no `{wanted}` (#{nth})"));
    }
    let mut out = String::new();
    for l in lines.take_while(|l| !l.starts_with("$ ")) {
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// What may differ between two runs of the same commands: IDs (full and
/// 12-character), join tokens, times (RFC 3339, Go's pretty form, humanized),
/// version indexes, the engine version and column padding.
pub fn normalize(text: &str) -> String {
    let rules: [(&str, &str); 11] = [
        (
            r"SWMTKN-1-<50 base36 chars: CA digest>-<25 base36 chars: secret>",
            "<token>",
        ),
        (r"SWMTKN-1-\S+", "<token>"),
        (r"\b[0-9a-z]{25}\b", "<id>"),
        (r"(?m)^[0-9a-z]{12}\b", "<id>"),
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "<time>"),
        (r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? \+0000 utc", "<time>"),
        (
            r"(?i)(less than a second|about a minute|about an hour|an? (second|minute|hour)|\d+ (seconds?|minutes?|hours?)) ago",
            "<when>",
        ),
        (r#""Index": \d+"#, r#""Index": <n>"#),
        (r"20\.10\.24\+dfsg1", "<engine>"),
        (concat!(r"\b", env!("CARGO_PKG_VERSION"), r"\b"), "<engine>"),
        (r"127\.0\.0\.1:\d+", "127.0.0.1:<port>"),
    ];
    let mut text = text.to_string();
    for (re, with) in rules {
        text = regex::Regex::new(re)
            .expect("regex")
            .replace_all(&text, with)
            .into_owned();
    }
    let pad = regex::Regex::new(r" {2,}").expect("regex");
    text.lines()
        .map(|l| pad.replace_all(l, "  ").trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
        .trim_end_matches('\n')
        .to_string()
}

/// Asserts that `ours` is what Docker printed for `command` in `file`, both normalized.
#[track_caller]
pub fn assert_golden(file: &str, command: &str, ours: &str) {
    let theirs = normalize(&golden(file, command));
    let ours = normalize(ours);
    assert_eq!(
        ours, theirs,
        "`{command}` differs from golden/{file}\nours:\n{ours}\ngolden:\n{theirs}"
    );
}
