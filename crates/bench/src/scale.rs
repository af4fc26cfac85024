//! `--scale-out W`: 5 managers, then the same write load again with W
//! workers (real `swarmkeepd` processes with their agents, each on its own
//! 127.0.0.x) holding dispatcher sessions with the leader. Reports, for both
//! phases (each load run three times, after an idle window), the leader's
//! CPU time per 1000 writes, also net of its idle CPU over the same time,
//! every manager's CPU and RSS, and the leader dispatcher's open sessions
//! (from its log).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use swarmkeep_cli::client::connect;

use crate::{Daemon, create_all, form_swarm, join, leader_index, remove_all};

const MANAGERS: usize = 5;

/// CPU time (user + system) of a process so far, in milliseconds.
fn cpu_ms(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces), from field 3.
    let Some((_, rest)) = stat.rsplit_once(") ") else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // USER_HZ is 100 on Linux.
    ticks * 10.0
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

/// The leader dispatcher's open sessions, as its last session log line says.
fn open_sessions(log: &Path) -> u64 {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .rev()
        .find_map(|l| {
            let v = l.split("open_sessions=").nth(1)?;
            v.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
        })
        .unwrap_or(0)
}

/// Idle window before each load: the leader's standing CPU (heartbeats,
/// dispatcher sessions, raft ticks) is measured over it and taken out of
/// the load's, so the per-write figure is the writes' own.
const IDLE: Duration = Duration::from_secs(3);

/// Loads per phase (the figures' medians are reported).
const REPS: usize = 3;

/// One write load at the leader and what it cost each manager, after an
/// idle window of the same managers.
async fn phase(managers: &[Daemon], leader: usize, n: usize, tag: &str) -> anyhow::Result<serde_json::Value> {
    let pids: Vec<u32> = managers.iter().map(|d| d.pid().unwrap_or(0)).collect();
    let idle_from = cpu_ms(pids[leader]);
    let idle_started = Instant::now();
    tokio::time::sleep(IDLE).await;
    let idle_ms_per_s = (cpu_ms(pids[leader]) - idle_from) / idle_started.elapsed().as_secs_f64();
    let before: Vec<f64> = pids.iter().map(|p| cpu_ms(*p)).collect();
    let mut clients = Vec::new();
    for _ in 0..8 {
        clients.push(connect(&managers[leader].host()).await?);
    }
    let started = Instant::now();
    let rate = create_all(clients, n, tag).await?;
    let wall = started.elapsed().as_secs_f64();
    let cpu: Vec<f64> = pids.iter().zip(&before).map(|(p, b)| cpu_ms(*p) - b).collect();
    let writes_ms = (cpu[leader] - idle_ms_per_s * wall).max(0.0);
    // Each load starts from the same state: its secrets are removed again
    // (not measured), so a later load does not pay for a larger store.
    let mut clients = Vec::new();
    for _ in 0..8 {
        clients.push(connect(&managers[leader].host()).await?);
    }
    remove_all(clients, n, tag).await?;
    Ok(serde_json::json!({
        "creates_per_s_8_clients": rate.round(),
        "leader_cpu_ms_per_1000_writes": (cpu[leader] / n as f64 * 1000.0).round(),
        "leader_idle_cpu_ms_per_s": (idle_ms_per_s * 10.0).round() / 10.0,
        "leader_cpu_ms_per_1000_writes_above_idle": (writes_ms / n as f64 * 1000.0).round(),
        "manager_cpu_percent": cpu.iter().map(|c| (c / 10.0 / wall).round()).collect::<Vec<_>>(),
        "manager_rss_mib": pids.iter().map(|p| rss_mib(*p).round()).collect::<Vec<_>>(),
    }))
}

/// `REPS` loads, each figure's median and every load's figures.
async fn phases(managers: &[Daemon], leader: usize, n: usize, tag: &str) -> anyhow::Result<serde_json::Value> {
    let mut runs = Vec::new();
    for rep in 0..REPS {
        runs.push(phase(managers, leader, n, &format!("{tag}{rep}")).await?);
    }
    let median = |key: &str| {
        let mut v: Vec<f64> = runs.iter().filter_map(|r| r[key].as_f64()).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    };
    Ok(serde_json::json!({
        "median_leader_cpu_ms_per_1000_writes": median("leader_cpu_ms_per_1000_writes"),
        "median_leader_cpu_ms_per_1000_writes_above_idle": median("leader_cpu_ms_per_1000_writes_above_idle"),
        "median_leader_idle_cpu_ms_per_s": median("leader_idle_cpu_ms_per_s"),
        "median_creates_per_s_8_clients": median("creates_per_s_8_clients"),
        "runs": runs,
    }))
}

pub async fn run(binary: &Path, workers: usize, n: usize, extra: &[String]) -> anyhow::Result<serde_json::Value> {
    let logs = tempfile::Builder::new().prefix("scale-logs").tempdir_in("/var/tmp")?;
    let log = |i: usize| Some((logs.path().join(format!("daemon-{i}.log")), "info".to_string()));
    let mut managers = Vec::new();
    for i in 0..MANAGERS {
        managers.push(Daemon::start(binary, i, false, extra.to_vec(), log(i))?);
    }
    let worker_token = form_swarm(&managers).await?;
    let addr = managers[0].addr.clone();
    let leader = leader_index(&managers, 0).await?;
    let leader_log = logs.path().join(format!("daemon-{leader}.log"));
    let without = phases(&managers, leader, n, "alone").await?;

    // Workers with their agents (no warm sandboxes: nothing runs on them).
    let mut worker_args = extra.to_vec();
    worker_args.push("--warm-sandboxes=0".into());
    let mut nodes = Vec::new();
    for w in 0..workers {
        let i = MANAGERS + w;
        let d = Daemon::start(binary, i, true, worker_args.clone(), log(i))
            .with_context(|| format!("starting worker {w}"))?;
        join(&d, &addr, &worker_token).await?;
        nodes.push(d);
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while (open_sessions(&leader_log) as usize) < workers {
        if Instant::now() > deadline {
            bail!(
                "only {} of {workers} agents opened a session with the leader",
                open_sessions(&leader_log)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if leader_index(&managers, 0).await? != leader {
        bail!("the leader changed while the workers joined");
    }
    let with = phases(&managers, leader, n, "crowd").await?;
    let sessions = open_sessions(&leader_log);
    Ok(serde_json::json!({
        "managers": MANAGERS,
        "workers": workers,
        "writes_per_phase": n,
        "without_workers": without,
        "with_workers": with,
        "leader_open_sessions": sessions,
        "worker_rss_mib_mean": (nodes.iter().map(|d| rss_mib(d.pid().unwrap_or(0))).sum::<f64>()
            / workers.max(1) as f64)
            .round(),
    }))
}
