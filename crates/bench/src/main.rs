//! `swarmkeep-bench`: secret create throughput, inspect latency and leader
//! failover time through real `swarmkeepd` processes (fsync on, as always).
//!
//!   cargo build --release && target/release/swarmkeep-bench                 # one manager
//!   target/release/swarmkeep-bench --managers 3 --failover-kills 20         # three managers
//!   target/release/swarmkeep-bench --compare-swarm --failover-kills 20      # against Docker Swarm
//!   target/release/swarmkeep-bench --scale-out 50                           # 5 managers, 50 workers
//!
//! Starts its own daemons on temporary data dirs (the `swarmkeepd` beside this
//! binary unless `--daemon` says otherwise), each manager on its own
//! 127.0.0.x address. Measures creates/s with 1 and 8 concurrent clients
//! (1 KiB values) against the leader, `GetSecret` (inspect) latency, and —
//! with `--failover-kills` — the time from `kill -9` of the leader to the next
//! acknowledged write. Prints one JSON line.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use swarmkeep_api::control::{
    Annotations, CreateSecretRequest, GetJoinTokenRequest, GetSecretRequest, InitRequest, JoinRequest,
    ListNodesRequest, RemoveSecretRequest, SecretSpec,
};
use swarmkeep_cli::client::{Client, connect};

#[derive(Parser)]
struct Args {
    /// The daemon binary to benchmark.
    #[arg(long)]
    daemon: Option<PathBuf>,
    /// Secrets created by the 8-client run (the 1-client run makes a quarter).
    #[arg(long, default_value_t = 4000)]
    n: usize,
    /// Inspect calls for the latency figures.
    #[arg(long, default_value_t = 5000)]
    inspects: usize,
    /// Managers in the swarm.
    #[arg(long, default_value_t = 1)]
    managers: usize,
    /// Send the store figures' creates and inspects to a follower (writes
    /// forwarded to the leader) instead of the leader.
    #[arg(long)]
    at_follower: bool,
    /// Leader kills for the failover figures (needs at least 3 managers).
    #[arg(long, default_value_t = 0)]
    failover_kills: usize,
    /// Secret delivery instead of the store figures: services created one at
    /// a time, each timed until its task has read its secret (needs root).
    #[arg(long, default_value_t = 0)]
    services: usize,
    /// Secret delivery: simulated agents that each receive `--fanout-secrets`.
    #[arg(long, default_value_t = 0)]
    fanout_agents: usize,
    #[arg(long, default_value_t = 1000)]
    fanout_secrets: usize,
    /// Given to each daemon: where the `--services` tasks' `busybox` is
    /// pulled from (a registry on loopback; see scripts/runtime.sh).
    #[arg(long)]
    registry_mirror: Option<String>,
    /// Where each daemon writes its log (`DIR/daemon-N.log`, at `--daemon-log-level`);
    /// by default the daemons log errors to nowhere.
    #[arg(long)]
    daemon_log_dir: Option<PathBuf>,
    #[arg(long, default_value = "debug")]
    daemon_log_level: String,
    /// An extra argument for each daemon (repeatable), e.g.
    /// `--daemon-arg=--warm-sandboxes=0`.
    #[arg(long = "daemon-arg", allow_hyphen_values = true)]
    daemon_args: Vec<String>,
    /// Instead of the figures above: the shared Docker-API client
    /// (`--api-bench`) against a 3-manager swarmkeep and, where
    /// /usr/sbin/dockerd is, a 3-manager Docker Swarm of three extra dockerd
    /// (needs root); prints a table of both (see compare.rs).
    #[arg(long)]
    compare_swarm: bool,
    /// The shared Docker-API benchmark client.
    #[arg(long, default_value = "../shared/bench/api_bench.py")]
    api_bench: PathBuf,
    /// Load runs per side (alternating) for `--compare-swarm`.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Secrets per 8-client run of `--compare-swarm` (a quarter with 1).
    #[arg(long, default_value_t = 2000)]
    compare_n: usize,
    /// Instead of the figures above: 5 managers, the write load (`--n`
    /// creates, 8 clients) at the leader alone and then with this many
    /// workers holding dispatcher sessions (see scale.rs; needs root).
    #[arg(long, default_value_t = 0)]
    scale_out: usize,
    /// Leader kills of the Docker Swarm side (each takes Swarm 10 s or more).
    #[arg(long, default_value_t = 3)]
    swarm_kills: usize,
}

struct Daemon {
    binary: PathBuf,
    dir: tempfile::TempDir,
    addr: String,
    child: Option<Child>,
    agent: bool,
    extra: Vec<String>,
    log: Option<(PathBuf, String)>,
}

impl Daemon {
    fn start(
        binary: &std::path::Path,
        index: usize,
        agent: bool,
        extra: Vec<String>,
        log: Option<(PathBuf, String)>,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("swarmkeep-bench")
            .tempdir_in("/var/tmp")?;
        let ip = format!("127.0.0.{}", index + 2);
        let port = std::net::TcpListener::bind((ip.as_str(), 0))?.local_addr()?.port();
        let mut d = Self {
            binary: binary.to_path_buf(),
            dir,
            addr: format!("{ip}:{port}"),
            child: None,
            agent,
            extra,
            log,
        };
        d.spawn()?;
        Ok(d)
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    fn host(&self) -> String {
        format!("unix://{}", self.dir.path().join("sock").display())
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let sock = self.dir.path().join("sock");
        let _ = std::fs::remove_file(&sock);
        let (stderr, level) = match &self.log {
            Some((path, level)) => (
                Stdio::from(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                        .with_context(|| format!("opening {}", path.display()))?,
                ),
                level.as_str(),
            ),
            None => (Stdio::null(), "error"),
        };
        let child = Command::new(&self.binary)
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .args(["-H", &self.host(), "--log-level", level])
            .arg("--exec-root")
            .arg(self.dir.path().join("exec"))
            .args(if self.agent { &[][..] } else { &["--no-agent"][..] })
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !sock.exists() {
            if Instant::now() > deadline {
                bail!("the daemon did not start");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn spec(name: String) -> Option<SecretSpec> {
    Some(SecretSpec {
        annotations: Some(Annotations {
            name,
            labels: Default::default(),
        }),
        data: vec![b'v'; 1024],
    })
}

async fn create_all(clients: Vec<Client>, n: usize, prefix: &str) -> anyhow::Result<f64> {
    let start = Instant::now();
    on_all(clients, n, prefix, Op::Create).await?;
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Removes the secrets [`create_all`] made under `prefix`.
pub(crate) async fn remove_all(clients: Vec<Client>, n: usize, prefix: &str) -> anyhow::Result<()> {
    on_all(clients, n, prefix, Op::Remove).await
}

#[derive(Clone, Copy)]
enum Op {
    Create,
    Remove,
}

/// Creates or removes the secrets `{prefix}-0` … `{prefix}-{n-1}`, the
/// clients taking turns (client `w` takes `w`, `w + clients`, …) at once.
async fn on_all(clients: Vec<Client>, n: usize, prefix: &str, op: Op) -> anyhow::Result<()> {
    let conc = clients.len();
    let mut tasks = Vec::new();
    for (w, mut c) in clients.into_iter().enumerate() {
        let prefix = prefix.to_string();
        tasks.push(tokio::spawn(async move {
            for i in (w..n).step_by(conc) {
                let name = format!("{prefix}-{i}");
                match op {
                    Op::Create => c
                        .create_secret(CreateSecretRequest { spec: spec(name) })
                        .await
                        .map(drop)?,
                    Op::Remove => c.remove_secret(RemoveSecretRequest { id: name }).await.map(drop)?,
                }
            }
            Ok::<_, tonic::Status>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p) as usize).min(sorted.len() - 1);
    (sorted[i].as_secs_f64() * 1e6).round() / 1000.0
}

async fn leader_index(daemons: &[Daemon], ask: usize) -> anyhow::Result<usize> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut c) = connect(&daemons[ask].host()).await
            && let Ok(resp) = c.list_nodes(ListNodesRequest::default()).await
        {
            for n in resp.into_inner().nodes {
                if let Some(m) = n.manager_status
                    && m.leader
                    && let Some(i) = daemons.iter().position(|d| d.addr == m.addr)
                {
                    return Ok(i);
                }
            }
        }
        if Instant::now() > deadline {
            bail!("no leader elected");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `swarm init` on the first daemon and the others joined as managers;
/// returns the worker join token.
async fn form_swarm(daemons: &[Daemon]) -> anyhow::Result<String> {
    let addr = &daemons[0].addr;
    let mut first = connect(&daemons[0].host()).await?;
    first
        .init(InitRequest {
            advertise_addr: addr.clone(),
            listen_addr: addr.clone(),
            ..Default::default()
        })
        .await?;
    let token = |role: &str| GetJoinTokenRequest {
        role: role.into(),
        rotate: false,
    };
    let manager_token = first.get_join_token(token("manager")).await?.into_inner().token;
    let worker_token = first.get_join_token(token("worker")).await?.into_inner().token;
    for d in &daemons[1..] {
        join(d, addr, &manager_token).await?;
    }
    Ok(worker_token)
}

/// Joins `d` to the swarm whose manager is at `remote`, with `token`.
async fn join(d: &Daemon, remote: &str, token: &str) -> anyhow::Result<()> {
    let req = JoinRequest {
        token: token.to_string(),
        remote_addr: remote.to_string(),
        advertise_addr: d.addr.clone(),
        listen_addr: d.addr.clone(),
        ..Default::default()
    };
    connect(&d.host()).await?.join(req).await?;
    Ok(())
}

fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
    if let (Some(a), serde_json::Value::Object(b)) = (into.as_object_mut(), from) {
        a.extend(b);
    }
}

mod compare;
mod scale;
mod secrets;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let binary = match args.daemon {
        Some(p) => p,
        None => std::env::current_exe()?.with_file_name("swarmkeepd"),
    };
    if args.scale_out > 0 {
        let report = scale::run(&binary, args.scale_out, args.n, &args.daemon_args).await?;
        println!("{report}");
        return Ok(());
    }
    if args.compare_swarm {
        let plan = compare::Plan {
            daemon: binary,
            api_bench: args.api_bench,
            runs: args.runs.max(1),
            n: args.compare_n,
            swarmkeep_kills: args.failover_kills,
            swarm_kills: args.swarm_kills,
        };
        return tokio::task::spawn_blocking(move || compare::run(&plan)).await?;
    }
    let delivery = args.services > 0 || args.fanout_agents > 0;
    let mut daemons = Vec::new();
    for i in 0..args.managers.max(1) {
        let mut extra = match &args.registry_mirror {
            Some(m) => vec!["--registry-mirror".to_string(), m.clone()],
            None => Vec::new(),
        };
        extra.extend(args.daemon_args.iter().cloned());
        let log = match &args.daemon_log_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                Some((dir.join(format!("daemon-{i}.log")), args.daemon_log_level.clone()))
            }
            None => None,
        };
        daemons.push(Daemon::start(&binary, i, args.services > 0, extra, log)?);
    }
    form_swarm(&daemons).await?;

    let leader = leader_index(&daemons, 0).await?;
    if args.at_follower && daemons.len() < 2 {
        bail!("--at-follower needs at least 2 managers");
    }
    let target = if args.at_follower {
        (leader + 1) % daemons.len()
    } else {
        leader
    };
    let host = daemons[target].host();
    if delivery {
        let mut c = connect(&host).await?;
        let mut report = serde_json::json!({"managers": daemons.len()});
        if args.services > 0 {
            let out = daemons[leader].dir.path().join("reads");
            merge(&mut report, secrets::create_to_read(&mut c, &out, args.services).await?);
        }
        if args.fanout_agents > 0 {
            let d = &daemons[leader];
            let data = d.dir.path().join("data");
            let fan = secrets::fanout(&mut c, &d.addr, &data, args.fanout_agents, args.fanout_secrets).await?;
            merge(&mut report, fan);
        }
        println!("{report}");
        return Ok(());
    }
    let one = create_all(vec![connect(&host).await?], args.n / 4, "one").await?;
    let mut clients = Vec::new();
    for _ in 0..8 {
        clients.push(connect(&host).await?);
    }
    let eight = create_all(clients, args.n, "eight").await?;

    let mut c = connect(&host).await?;
    let mut lat = Vec::with_capacity(args.inspects);
    for i in 0..args.inspects {
        let t = Instant::now();
        c.get_secret(GetSecretRequest {
            id: format!("eight-{}", i % args.n),
        })
        .await?;
        lat.push(t.elapsed());
    }
    lat.sort();

    let mut failovers = Vec::new();
    for k in 0..args.failover_kills {
        let leader = leader_index(&daemons, 0).await.or(leader_index(&daemons, 1).await)?;
        let writer = (leader + 1) % daemons.len();
        let mut wc = connect(&daemons[writer].host()).await?;
        daemons[leader].kill9();
        let killed = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let req = CreateSecretRequest {
                spec: spec(format!("failover-{k}-{attempt}")),
            };
            if wc.create_secret(req).await.is_ok() {
                break;
            }
            if killed.elapsed() > Duration::from_secs(60) {
                bail!("no write acknowledged within 60s of killing the leader");
            }
        }
        failovers.push(killed.elapsed());
        daemons[leader].spawn()?;
        // Let the old leader rejoin before the next kill.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    failovers.sort();

    let mut report = serde_json::json!({
        "managers": daemons.len(),
        "at_follower": args.at_follower,
        "creates_per_s_1_client": one.round(),
        "creates_per_s_8_clients": eight.round(),
        "inspect_p50_ms": percentile(&lat, 0.5),
        "inspect_p99_ms": percentile(&lat, 0.99),
        "value_bytes": 1024,
    });
    if !failovers.is_empty() {
        report["failover_kills"] = failovers.len().into();
        report["failover_p50_ms"] = percentile(&failovers, 0.5).into();
        report["failover_max_ms"] = percentile(&failovers, 1.0).into();
    }
    println!("{report}");
    Ok(())
}
