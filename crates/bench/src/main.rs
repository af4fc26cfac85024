//! `swarmkeep-bench`: secret create throughput and inspect latency through a
//! real `swarmkeepd` (fsync on, as always), over its control socket.
//!
//!   cargo build --release && target/release/swarmkeep-bench
//!
//! Starts its own daemon on a temporary data dir (the `swarmkeepd` beside this
//! binary unless `--daemon` says otherwise), runs `swarm init`, then measures:
//! creates/s with 1 and with 8 concurrent clients (1 KiB values), and the
//! latency of `GetSecret` (what `secret inspect` calls). Prints one JSON line.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use swarmkeep_api::control::{Annotations, CreateSecretRequest, GetSecretRequest, InitRequest, SecretSpec};
use swarmkeep_cli::client::{Client, connect};

#[derive(Parser)]
struct Args {
    /// The daemon binary to benchmark.
    #[arg(long)]
    daemon: Option<PathBuf>,
    /// Secrets created per run.
    #[arg(long, default_value_t = 4000)]
    n: usize,
    /// Inspect calls for the latency figures.
    #[arg(long, default_value_t = 5000)]
    inspects: usize,
}

struct DaemonGuard(Child);

impl Drop for DaemonGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn create_all(clients: Vec<Client>, n: usize, prefix: &str) -> anyhow::Result<f64> {
    let conc = clients.len();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (w, mut c) in clients.into_iter().enumerate() {
        let prefix = prefix.to_string();
        tasks.push(tokio::spawn(async move {
            for i in (w..n).step_by(conc) {
                let spec = SecretSpec {
                    annotations: Some(Annotations {
                        name: format!("{prefix}-{i}"),
                        labels: Default::default(),
                    }),
                    data: vec![b'v'; 1024],
                };
                c.create_secret(CreateSecretRequest { spec: Some(spec) }).await?;
            }
            Ok::<_, tonic::Status>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p) as usize).min(sorted.len() - 1);
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let daemon = match args.daemon {
        Some(p) => p,
        None => std::env::current_exe()?.with_file_name("swarmkeepd"),
    };
    let dir = tempfile::Builder::new()
        .prefix("swarmkeep-bench")
        .tempdir_in("/var/tmp")?;
    let sock = dir.path().join("sock");
    let host = format!("unix://{}", sock.display());
    let child = Command::new(&daemon)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["-H", &host, "--log-level", "warn"])
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", daemon.display()))?;
    let _guard = DaemonGuard(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sock.exists() {
        if Instant::now() > deadline {
            bail!("the daemon did not start");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut c = connect(&host).await?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let addr = format!("127.0.0.1:{port}");
    c.init(InitRequest {
        advertise_addr: addr.clone(),
        listen_addr: addr,
        heartbeat_period_ms: 0,
        autolock: false,
    })
    .await?;

    let one = create_all(vec![connect(&host).await?], args.n / 4, "one").await?;
    let mut clients = Vec::new();
    for _ in 0..8 {
        clients.push(connect(&host).await?);
    }
    let eight = create_all(clients, args.n, "eight").await?;

    let mut lat = Vec::with_capacity(args.inspects);
    for i in 0..args.inspects {
        let name = format!("eight-{}", i % args.n);
        let t = Instant::now();
        c.get_secret(GetSecretRequest { id: name }).await?;
        lat.push(t.elapsed());
    }
    lat.sort();
    let report = serde_json::json!({
        "creates_per_s_1_client": one.round(),
        "creates_per_s_8_clients": eight.round(),
        "inspect_p50_ms": (percentile(&lat, 0.5) * 1000.0).round() / 1000.0,
        "inspect_p99_ms": (percentile(&lat, 0.99) * 1000.0).round() / 1000.0,
        "secrets": args.n + args.n / 4,
        "value_bytes": 1024,
    });
    println!("{report}");
    Ok(())
}
