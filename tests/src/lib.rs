//! Test support: builds the real `swarmkeepd` and `swarmkeep` binaries once,
//! starts daemons on temporary data dirs, and drives the CLI against them.
//! Every end-to-end test goes through here, so no test writes its own fixture.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub use swarmkeep_api::control;

pub mod docker;
pub mod netns;
pub mod registry;

struct Binaries {
    daemon: PathBuf,
    cli: PathBuf,
}

/// Builds (or finds up to date) the two binaries with cargo, once per test process.
fn binaries() -> &'static Binaries {
    static BINS: OnceLock<Binaries> = OnceLock::new();
    BINS.get_or_init(|| {
        // `--workspace` resolves features as `cargo test --workspace` does, and
        // no `--target`, so this reuses the test build's artifacts.
        let build = |bin: &str| {
            escargot::CargoBuild::new()
                .arg("--workspace")
                .bin(bin)
                .current_release()
                .run()
                .unwrap_or_else(|e| panic!("building {bin}: {e}"))
                .path()
                .to_path_buf()
        };
        Binaries {
            daemon: build("swarmkeepd"),
            cli: build("swarmkeep"),
        }
    })
}

/// The `swarmkeepd` binary under test.
pub fn daemon_binary() -> PathBuf {
    binaries().daemon.clone()
}

/// The data key record in a manager's data dir, if there is one.
pub fn stored_data_key(data_dir: &Path) -> Option<swarmkeep_crypto::StoredDataKey> {
    let bytes = std::fs::read(data_dir.join("keys/data-key")).ok()?;
    swarmkeep_crypto::StoredDataKey::decode(&bytes).ok()
}

/// Whether a key-encryption key is on the manager's disk (none with autolock).
pub fn kek_on_disk(data_dir: &Path) -> bool {
    matches!(
        stored_data_key(data_dir),
        Some(swarmkeep_crypto::StoredDataKey::WithKek { .. })
    )
}

/// The `swarmkeep` CLI binary under test.
pub fn cli_binary() -> PathBuf {
    binaries().cli.clone()
}

/// What one CLI run printed and its exit status.
#[derive(Debug, Clone)]
pub struct Run {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

impl Run {
    /// Asserts success and returns stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "command failed: {self:?}");
        &self.stdout
    }
}

/// A running `swarmkeepd` on its own data dir and control socket.
pub struct Daemon {
    dir: TempDir,
    child: Option<Child>,
    extra_args: Vec<String>,
    env: Vec<(String, String)>,
    log_level: String,
    starts: u32,
    /// A directory the daemon inherits as fd 7 (see [`Daemon::start_inheriting`]).
    inherit_fd7: Option<PathBuf>,
    /// The network namespace it runs in (a test host's), and that host's
    /// registry mirror.
    netns: Option<(PathBuf, String)>,
}

impl Daemon {
    pub fn start() -> Self {
        Self::start_with(&[], "info")
    }

    /// Starts a daemon with extra flags and a log filter (e.g. "trace").
    pub fn start_with(extra_args: &[&str], log_level: &str) -> Self {
        Self::start_with_env(extra_args, log_level, &[])
    }

    /// A daemon on a fresh temporary directory, not started yet.
    fn unstarted(extra_args: &[&str], log_level: &str, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("swarmkeep-test")
            .tempdir()
            .expect("temp dir");
        Daemon {
            dir,
            child: None,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            log_level: log_level.into(),
            starts: 0,
            inherit_fd7: None,
            netns: None,
        }
    }

    /// [`Daemon::start_with`], with variables added to its environment.
    pub fn start_with_env(extra_args: &[&str], log_level: &str, env: &[(&str, &str)]) -> Self {
        let mut d = Self::unstarted(extra_args, log_level, env);
        d.spawn();
        d
    }

    /// A daemon in the network namespace `netns` (a test host of
    /// [`netns::TestHosts`]), pulling from `mirror`.
    pub fn start_in_netns(netns: &Path, mirror: &str, extra_args: &[&str], log_level: &str) -> Self {
        let mut d = Self::unstarted(extra_args, log_level, &[]);
        d.netns = Some((netns.to_path_buf(), mirror.to_string()));
        d.spawn();
        d
    }

    /// A daemon started with `dir` open as its fd 7 (not close-on-exec), as a
    /// careless parent would leave one.
    pub fn start_inheriting(dir: &Path) -> Self {
        let mut d = Self::unstarted(&[], "info", &[]);
        d.inherit_fd7 = Some(dir.to_path_buf());
        d.spawn();
        d
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Where this daemon's agent makes task mounts.
    pub fn exec_root(&self) -> PathBuf {
        self.dir.path().join("exec")
    }

    /// The PID of task `task_id`'s shim, from the file its agent writes once
    /// the task runs (waited for up to 10 s).
    pub fn task_pid(&self, task_id: &str) -> u32 {
        let pid_file = self.exec_root().join("tasks").join(task_id).join("pid");
        assert!(
            eventually(std::time::Duration::from_secs(10), || pid_file.exists()),
            "task {task_id} has no pid file"
        );
        std::fs::read_to_string(&pid_file)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// The daemon's process ID, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Mount points under this daemon's exec root.
    pub fn mounts(&self) -> Vec<String> {
        mounts_under(&self.exec_root())
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("swarmkeep.sock")
    }

    /// Where this daemon serves the Docker Engine API.
    pub fn docker_socket(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }

    /// Runs the real `docker ARGS` against this daemon's Docker API (see
    /// [`docker::cli`]); call [`docker::skip`] first: it panics without one.
    pub fn docker(&self, args: &[&str]) -> Run {
        docker::run(&self.docker_socket(), self.dir.path(), args, None)
    }

    pub fn docker_stdin(&self, args: &[&str], stdin: &[u8]) -> Run {
        docker::run(&self.docker_socket(), self.dir.path(), args, Some(stdin))
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// All the daemon's stderr so far, across restarts.
    pub fn log(&self) -> String {
        let mut all = String::new();
        for i in 1..=self.starts {
            all.push_str(&std::fs::read_to_string(self.log_path(i)).unwrap_or_default());
        }
        all
    }

    fn log_path(&self, start: u32) -> PathBuf {
        self.dir.path().join(format!("daemon-{start}.log"))
    }

    fn spawn(&mut self) {
        self.starts += 1;
        let log = std::fs::File::create(self.log_path(self.starts)).expect("log file");
        let mut cmd = Command::new(&binaries().daemon);
        cmd.arg("--data-dir")
            .arg(self.data_dir())
            .arg("-H")
            .arg(self.host())
            .arg("--exec-root")
            .arg(self.exec_root())
            .arg("--docker-api")
            .arg(format!("unix://{}", self.docker_socket().display()))
            .arg("--registry-mirror")
            .arg(match &self.netns {
                Some((_, mirror)) => mirror.clone(),
                None => registry::mirror(),
            })
            .args(&self.extra_args)
            .env("SWARMKEEP_LOG", &self.log_level)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(dir) = &self.inherit_fd7 {
            // A directory fd the daemon inherits, as from a careless parent.
            let fd = nix::fcntl::open(
                dir.as_path(),
                nix::fcntl::OFlag::O_DIRECTORY,
                nix::sys::stat::Mode::empty(),
            )
            .expect("opening the inherited directory");
            let raw = std::os::fd::IntoRawFd::into_raw_fd(fd);
            // SAFETY: dup2 between fork and exec.
            unsafe {
                std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                    if libc::dup2(raw, 7) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let ns_file = self
            .netns
            .as_ref()
            .map(|(netns, _)| std::fs::File::open(netns).expect("opening the test host's namespace"));
        if let Some(ns) = &ns_file {
            let raw = std::os::fd::AsRawFd::as_raw_fd(ns);
            // SAFETY: setns between fork and exec.
            unsafe {
                std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                    if libc::setns(raw, libc::CLONE_NEWNET) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let child = cmd.spawn().expect("starting swarmkeepd");
        drop(ns_file);
        self.child = Some(child);
        // Both its sockets: the control API's and the Docker API's (opened
        // a moment later; a loaded machine once lost that race).
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.socket().exists() || !self.docker_socket().exists() {
            assert!(
                Instant::now() < deadline,
                "swarmkeepd did not open its sockets:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `kill -9`: no chance to flush or clean up.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then wait for a clean exit; returns the exit status code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(c.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        c.wait().ok().and_then(|s| s.code())
    }

    /// Starts the daemon again on the same data dir and socket.
    pub fn restart(&mut self) {
        self.kill9();
        let _ = std::fs::remove_file(self.socket());
        self.spawn();
    }

    /// Runs `swarmkeep ARGS` against this daemon.
    pub fn cli(&self, args: &[&str]) -> Run {
        self.cli_stdin(args, None)
    }

    /// Runs `swarmkeep ARGS` with `stdin` as standard input.
    pub fn cli_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Run {
        run_cli(&self.host(), args, stdin, Some(self.dir.path()))
    }

    /// `swarm init` on 127.0.0.1 and a free port; returns the node ID.
    pub fn init(&self) -> String {
        let addr = free_addr("127.0.0.1");
        let out = self.cli(&["swarm", "init", "--advertise-addr", &addr, "--listen-addr", &addr]);
        let text = out.ok();
        let start = text.find('(').expect("node id") + 1;
        text[start..start + 25].to_string()
    }

    /// A gRPC client of this daemon's control API.
    pub async fn client(&self) -> swarmkeep_cli::client::Client {
        swarmkeep_cli::client::connect(&self.host()).await.expect("connect")
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // A failing test shows what its daemons said last.
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(80).collect();
            eprintln!("--- daemon {} (last lines) ---", self.dir.path().display());
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
        self.kill9();
        // What a killed agent leaves: its tasks' processes and mounts.
        if let Ok(entries) = std::fs::read_dir(self.exec_root().join("tasks")) {
            for e in entries.flatten() {
                let record = std::fs::read_to_string(e.path().join("pid")).unwrap_or_default();
                let mut fields = record.split_whitespace();
                let (Some(pid), Some(start)) = (fields.next().and_then(|p| p.parse::<i32>().ok()), fields.next())
                else {
                    continue;
                };
                // Only the process recorded, not another that took its pid
                // since (a busy suite wraps pid_max): its start time (field
                // 22 of /proc/PID/stat) must be the one recorded.
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let started = stat
                    .rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(19));
                if pid > 0 && started == Some(start) {
                    let _ =
                        nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
                }
            }
        }
        for m in self.mounts() {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// Mount points under `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = format!("{}/", dir.display());
    let mut found: Vec<String> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| p.starts_with(&prefix))
        .map(str::to_string)
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.matches('/').count()));
    found
}

/// `IP:PORT` with a port that was free a moment ago on `ip`.
pub fn free_addr(ip: &str) -> String {
    let listener = std::net::TcpListener::bind((ip, 0)).expect("a free port");
    let port = listener.local_addr().expect("local addr").port();
    format!("{ip}:{port}")
}

/// Runs the CLI against any host (e.g. one where nothing listens).
pub fn run_cli(host: &str, args: &[&str], stdin: Option<&[u8]>, cwd: Option<&Path>) -> Run {
    let mut cmd = Command::new(&binaries().cli);
    cmd.args(["-H", host])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    if let Some(dir) = cwd {
        // The registry logins `--with-registry-auth` reads: the test's own.
        cmd.current_dir(dir).env("DOCKER_CONFIG", dir.join("docker-config"));
    }
    let mut child = cmd.spawn().expect("starting swarmkeep");
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(bytes).expect("writing stdin");
    }
    let out = child.wait_with_output().expect("swarmkeep output");
    Run {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code().unwrap_or(-1),
    }
}

/// Replaces IDs, times and version indexes with the placeholders the golden
/// files use, so outputs can be compared with them.
pub fn mask(text: &str) -> String {
    let id = regex::Regex::new(r"\b[0-9a-z]{25}\b").expect("regex");
    let rfc = regex::Regex::new(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z").expect("regex");
    let pretty = regex::Regex::new(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? \+0000 utc").expect("regex");
    let index = regex::Regex::new(r#""Index": \d+"#).expect("regex");
    let text = id.replace_all(text, "<id>");
    let text = rfc.replace_all(&text, "<time>");
    let text = pretty.replace_all(&text, "<time>");
    index.replace_all(&text, "\"Index\": <n>").into_owned()
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    files_under_except(dir, &[])
}

/// Every file under `dir`, not descending into the directories `skip`
/// (mount points whose contents are allowed to hold a value).
pub fn files_under_except(dir: &Path, skip: &[String]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if skip.iter().any(|m| Path::new(m) == d) {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Whether `haystack` contains `needle` anywhere.
pub fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

/// The ways a value could be written down by accident: raw, base64 in both
/// alphabets (at each of the three alignments it can start at inside a longer
/// buffer, so also inside the base64 of a JSON that holds it), hex, and
/// Rust's `Debug` of a byte slice. A leak scan looks for all of them.
pub fn leak_forms(value: &[u8]) -> Vec<Vec<u8>> {
    use base64::Engine;
    let mut forms = vec![value.to_vec()];
    for offset in 0..3 {
        // Encode as if `offset` bytes came before; keep only the characters
        // that do not depend on the neighbouring bytes.
        let mut padded = vec![0u8; offset];
        padded.extend_from_slice(value);
        // Both alphabets: Docker's headers (X-Registry-Auth) use the URL one.
        for engine in [
            base64::engine::general_purpose::STANDARD,
            base64::engine::general_purpose::URL_SAFE,
        ] {
            let text = engine.encode(&padded);
            let skip = if offset == 0 { 0 } else { 4 };
            let inner = &text[skip..text.len().saturating_sub(4)];
            forms.push(inner.as_bytes().to_vec());
        }
    }
    forms.push(
        value
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
            .into_bytes(),
    );
    let debug = format!("{value:?}");
    forms.push(debug.trim_start_matches('[').trim_end_matches(']').as_bytes().to_vec());
    forms
}

/// Whether any leak form of `value` is in `haystack`.
pub fn leaks(haystack: &[u8], value: &[u8]) -> bool {
    leak_forms(value).iter().any(|form| contains_bytes(haystack, form))
}

/// Polls `check` until it returns true or `timeout` passes; returns whether it did.
/// Runs `swarmkeepd` with `args` (and `--no-agent`) and returns what it
/// printed on stderr, asserting that it refused to start: it must exit, with
/// a failure, within 20 s.
pub fn daemon_refuses(args: &[&std::ffi::OsStr]) -> String {
    let mut child = Command::new(daemon_binary())
        .arg("--no-agent")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting swarmkeepd");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for swarmkeepd") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("swarmkeepd started with {args:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut err, &mut stderr);
    }
    assert!(!status.success(), "swarmkeepd exited successfully: {stderr}");
    stderr
}

/// A memory figure of process `pid` from `/proc/PID/status`, in KiB:
/// `"VmRSS:"` now, or `"VmHWM:"`, the peak so far.
pub fn memory_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("the process's status")
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("a memory figure")
}

/// `GET path` at `addr` (HOST:PORT) over HTTP/1.0 from this process's
/// namespace: the body as sent (a CGI's bare-newline header ending taken
/// too), or None if nothing answers within 5 s.
pub fn http_body(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let addr: std::net::SocketAddr = addr.parse().ok()?;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes()).ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    let at = answer
        .find("\r\n\r\n")
        .map(|i| i + 4)
        .or_else(|| answer.find("\r\n\n").map(|i| i + 3))?;
    Some(answer[at..].to_string())
}

pub fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Seconds into the day of a UTC time as the docker CLI or the Docker API
/// prints it (`…THH:MM:SS.fffZ`, or Go's `YYYY-MM-DD HH:MM:SS.fff +0000 UTC`).
pub fn day_seconds(time: &str) -> f64 {
    let clock = time
        .split(['T', ' '])
        .find(|p| p.matches(':').count() == 2)
        .unwrap_or("")
        .trim_end_matches('Z');
    let f: Vec<f64> = clock.split(':').map(|p| p.parse().unwrap_or(0.0)).collect();
    f.first().unwrap_or(&0.0) * 3600.0 + f.get(1).unwrap_or(&0.0) * 60.0 + f.get(2).unwrap_or(&0.0)
}

/// A node of a test swarm: a daemon and its own 127.0.0.x cluster address.
pub struct SwarmNode {
    pub daemon: Daemon,
    pub addr: String,
    pub name: String,
}

impl SwarmNode {
    pub fn cli(&self, args: &[&str]) -> Run {
        self.daemon.cli(args)
    }

    pub fn node_id(&self) -> String {
        self.cli(&["node", "inspect", "self", "--format", "{{.ID}}"])
            .stdout
            .trim()
            .to_string()
    }
}

/// Starts a daemon for a swarm node named `name` on its own loopback address.
pub fn swarm_node(index: usize, name: &str) -> SwarmNode {
    swarm_node_logging(index, name, "info")
}

pub fn swarm_node_logging(index: usize, name: &str, log_level: &str) -> SwarmNode {
    swarm_node_with_env(index, name, log_level, &[])
}

/// [`swarm_node`] with variables added to the daemon's environment.
pub fn swarm_node_with_env(index: usize, name: &str, log_level: &str, env: &[(&str, &str)]) -> SwarmNode {
    let daemon = Daemon::start_with_env(&["--hostname", name], log_level, env);
    let addr = free_addr(&format!("127.0.0.{}", index + 2));
    SwarmNode {
        daemon,
        addr,
        name: name.to_string(),
    }
}

/// A swarm of `managers` managers and `workers` workers (each its own
/// daemon, data dir and 127.0.0.x address), heartbeats every 500 ms.
/// Node 0 is the first manager (`m1`); workers are named `w1`, `w2`, ….
pub fn swarm(managers: usize, workers: usize) -> Vec<SwarmNode> {
    swarm_logging(managers, workers, "info")
}

/// [`swarm`] with every daemon logging at `log_level`.
pub fn swarm_logging(managers: usize, workers: usize, log_level: &str) -> Vec<SwarmNode> {
    let mut nodes = Vec::new();
    let first = swarm_node_logging(0, "m1", log_level);
    first
        .cli(&[
            "swarm",
            "init",
            "--advertise-addr",
            &first.addr,
            "--listen-addr",
            &first.addr,
            "--dispatcher-heartbeat",
            "500ms",
        ])
        .ok();
    let manager_token = first
        .cli(&["swarm", "join-token", "-q", "manager"])
        .ok()
        .trim()
        .to_string();
    let worker_token = first
        .cli(&["swarm", "join-token", "-q", "worker"])
        .ok()
        .trim()
        .to_string();
    let remote = first.addr.clone();
    nodes.push(first);
    for i in 1..managers + workers {
        let is_manager = i < managers;
        let name = if is_manager {
            format!("m{}", i + 1)
        } else {
            format!("w{}", i + 1 - managers)
        };
        let node = swarm_node_logging(i, &name, log_level);
        let token = if is_manager { &manager_token } else { &worker_token };
        let out = node.cli(&[
            "swarm",
            "join",
            "--token",
            token,
            "--advertise-addr",
            &node.addr,
            "--listen-addr",
            &node.addr,
            &remote,
        ]);
        let role = if is_manager { "manager" } else { "worker" };
        assert_eq!(out.ok(), format!("This node joined a swarm as a {role}.\n"));
        nodes.push(node);
    }
    nodes
}

/// `node ls` rows as (hostname, status, availability, manager status).
pub fn node_rows(node: &SwarmNode) -> Vec<(String, String, String, String)> {
    let out = node.cli(&[
        "node",
        "ls",
        "--format",
        "{{.Hostname}}|{{.Status}}|{{.Availability}}|{{.ManagerStatus}}",
    ]);
    out.ok()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            (f[0].to_string(), f[1].to_string(), f[2].to_string(), f[3].to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    #[test]
    fn leak_scan_finds_every_encoding() {
        let marker = b"MARKER-do-not-leak";
        for prefix in ["", "x", "xy", "xyz"] {
            let mut buf = prefix.as_bytes().to_vec();
            buf.extend_from_slice(marker);
            buf.extend_from_slice(b"tail");
            let b64 = base64::engine::general_purpose::STANDARD.encode(&buf);
            assert!(leaks(b64.as_bytes(), marker), "base64 after {prefix:?}");
            assert!(leaks(format!("{buf:?}").as_bytes(), marker));
        }
        assert!(leaks(b"..4d41524b45522d646f2d6e6f742d6c65616b..", marker));
        assert!(!leaks(b"nothing here", marker));
    }
}
