//! `--compare-swarm`: one Docker-API client against a 3-manager swarmkeep and
//! a 3-manager Docker Swarm on the same machine, in the same run.
//!
//! Both sides are formed and driven through their Docker Engine API only
//! (`/swarm/init`, `/swarm/join`, `/nodes`, `/secrets`), the load by the
//! shared `api_bench.py`: swarmkeepd on 127.0.0.5–7 (`--docker-api` on a
//! unix socket each), three extra dockerd on 127.0.0.2–4, each with its own
//! data root, exec root and socket (the machine's own dockerd is not
//! touched). Runs alternate between the sides; the table shows medians.
//! Measured per side: creates/s with 8 and 1 clients at the leader and at a
//! follower, create/inspect/delete p50 with one client, the time from a
//! manager's join to `Ready`/`Reachable` in `GET /nodes` on the leader,
//! leader changes seen during the load, the managers' RSS, and the time from
//! `kill -9` of the leader to the next `201` on a survivor.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::percentile;

/// What the comparison runs.
pub struct Plan {
    pub daemon: PathBuf,
    pub api_bench: PathBuf,
    pub runs: usize,
    /// Secrets per load run with 8 clients (a quarter with 1).
    pub n: usize,
    pub swarmkeep_kills: usize,
    pub swarm_kills: usize,
}

/// One manager process: how to start it again, and its Docker API socket.
struct Member {
    ip: String,
    dir: PathBuf,
    program: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

impl Member {
    fn sock(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let _ = std::fs::remove_file(self.sock());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("log"))?;
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.program.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !matches!(http(&self.sock(), "GET", "/_ping", None), Ok((200, _))) {
            if Instant::now() > deadline {
                bail!("{} on {} did not answer /_ping", self.program.display(), self.ip);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn rss_kib(&self) -> u64 {
        let Some(c) = &self.child else { return 0 };
        std::fs::read_to_string(format!("/proc/{}/status", c.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// One side of the comparison: three managers in one swarm.
struct Side {
    name: &'static str,
    members: Vec<Member>,
    /// Milliseconds from each joining manager's join to Ready/Reachable.
    join_ready_ms: Vec<f64>,
    _dir: tempfile::TempDir,
}

impl Side {
    fn start(
        name: &'static str,
        ips: [&str; 3],
        program: &Path,
        args: impl Fn(&Path) -> Vec<String>,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("compare-{name}"))
            .tempdir_in("/var/tmp")?;
        let mut members = Vec::new();
        for ip in ips {
            let mdir = dir.path().join(ip);
            std::fs::create_dir_all(&mdir)?;
            let mut m = Member {
                ip: ip.to_string(),
                args: args(&mdir),
                dir: mdir,
                program: program.to_path_buf(),
                child: None,
            };
            m.spawn()?;
            members.push(m);
        }
        let mut side = Self {
            name,
            members,
            join_ready_ms: Vec::new(),
            _dir: dir,
        };
        side.form()?;
        Ok(side)
    }

    /// `swarm init` on the first, `swarm join` as managers for the others,
    /// each timed until the leader lists it Ready and Reachable.
    fn form(&mut self) -> anyhow::Result<()> {
        let first = &self.members[0];
        let body = format!(r#"{{"ListenAddr":"{0}:2377","AdvertiseAddr":"{0}"}}"#, first.ip);
        expect(
            http(&first.sock(), "POST", "/v1.41/swarm/init", Some(&body))?,
            200,
            "swarm init",
        )?;
        let swarm = expect(http(&first.sock(), "GET", "/v1.41/swarm", None)?, 200, "swarm inspect")?;
        let token = swarm["JoinTokens"]["Manager"]
            .as_str()
            .context("no manager join token")?
            .to_string();
        for i in 1..self.members.len() {
            let m = &self.members[i];
            let body = format!(
                r#"{{"ListenAddr":"{0}:2377","AdvertiseAddr":"{0}","RemoteAddrs":["{1}:2377"],"JoinToken":"{token}"}}"#,
                m.ip, self.members[0].ip
            );
            let status = http(&m.sock(), "POST", "/v1.41/swarm/join", Some(&body))?;
            if status.0 != 200 {
                bail!("{}: swarm join answered {}: {}", self.name, status.0, status.1);
            }
            let joined = Instant::now();
            let deadline = joined + Duration::from_secs(60);
            loop {
                let nodes = self.nodes(0).unwrap_or_default();
                let ready = nodes.iter().any(|n| {
                    n["ManagerStatus"]["Addr"].as_str() == Some(&format!("{}:2377", m.ip))
                        && n["Status"]["State"] == "ready"
                        && n["ManagerStatus"]["Reachability"] == "reachable"
                });
                if ready {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("{}: the manager on {} never showed Ready/Reachable", self.name, m.ip);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            self.join_ready_ms.push(joined.elapsed().as_secs_f64() * 1e3);
        }
        Ok(())
    }

    fn nodes(&self, ask: usize) -> anyhow::Result<Vec<serde_json::Value>> {
        let v = expect(
            http(&self.members[ask].sock(), "GET", "/v1.41/nodes", None)?,
            200,
            "node ls",
        )?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// The leader's index, asked of the live members in turn.
    fn leader(&self) -> anyhow::Result<usize> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            for (ask, m) in self.members.iter().enumerate() {
                if m.child.is_none() {
                    continue;
                }
                for n in self.nodes(ask).unwrap_or_default() {
                    if n["ManagerStatus"]["Leader"] == true
                        && let Some(addr) = n["ManagerStatus"]["Addr"].as_str()
                        && let Some(i) = self
                            .members
                            .iter()
                            .position(|m| addr.starts_with(&format!("{}:", m.ip)))
                    {
                        return Ok(i);
                    }
                }
            }
            if Instant::now() > deadline {
                bail!("{}: no leader", self.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until every member is listed Ready and Reachable (or Leader).
    fn settled(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let leader = self.leader()?;
            let nodes = self.nodes(leader).unwrap_or_default();
            let up = nodes
                .iter()
                .filter(|n| n["Status"]["State"] == "ready" && n["ManagerStatus"]["Reachability"] == "reachable")
                .count();
            if up == self.members.len() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{}: the managers did not all come back", self.name);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn rss_mib(&self) -> f64 {
        self.members.iter().map(Member::rss_kib).sum::<u64>() as f64 / 1024.0
    }

    /// `kill -9` of the leader, then creates at a survivor until one is
    /// acknowledged; the killed manager is started again and let back in.
    fn failovers(&mut self, kills: usize) -> anyhow::Result<Vec<Duration>> {
        let mut out = Vec::new();
        for k in 0..kills {
            self.settled()?;
            let leader = self.leader()?;
            let writer = (leader + 1) % self.members.len();
            let sock = self.members[writer].sock();
            self.members[leader].kill9();
            let killed = Instant::now();
            let mut attempt = 0;
            loop {
                attempt += 1;
                let body = format!(r#"{{"Name":"failover-{k}-{attempt}","Data":"eA=="}}"#);
                if let Ok((201, _)) = http(&sock, "POST", "/v1.41/secrets/create", Some(&body)) {
                    break;
                }
                if killed.elapsed() > Duration::from_secs(120) {
                    bail!(
                        "{}: no write acknowledged within 120 s of killing the leader",
                        self.name
                    );
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            out.push(killed.elapsed());
            self.members[leader].spawn()?;
            // Let it catch up before the next kill, as the store figures'
            // failover does (a member behind on the log waits longer before
            // it campaigns, on both sides).
            std::thread::sleep(Duration::from_secs(2));
        }
        self.settled()?;
        Ok(out)
    }
}

impl Drop for Side {
    /// Stops the managers (SIGTERM: dockerd leaves its mounts otherwise),
    /// then detaches what they left mounted under the side's directory (a
    /// dockerd bind-mounts its data root and its sandboxes' namespaces).
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(c) = &m.child {
                let _ = Command::new("kill").arg(c.id().to_string()).status();
            }
        }
        for m in &mut self.members {
            if let Some(mut c) = m.child.take() {
                let deadline = Instant::now() + Duration::from_secs(20);
                while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(100));
                }
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        let root = self._dir.path().display().to_string();
        let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_whitespace().nth(4).map(String::from))
            .filter(|p| p.starts_with(&root))
            .collect();
        mounts.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in mounts {
            let _ = Command::new("umount").args(["-l", &p]).status();
        }
    }
}

/// One api_bench.py run's figures.
fn api_bench(bench: &Path, sock: &Path, n: usize, conc: usize, prefix: &str) -> anyhow::Result<serde_json::Value> {
    let out = Command::new("python3")
        .arg(bench)
        .arg("--host")
        .arg(format!("unix://{}", sock.display()))
        .args(["--n", &n.to_string(), "--conc", &conc.to_string(), "--prefix", prefix])
        .output()
        .context("running api_bench.py")?;
    if !out.status.success() {
        bail!("api_bench.py failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("api_bench.py's output")?;
    if v["errors"].as_u64() != Some(0) {
        bail!("api_bench.py saw errors: {v}");
    }
    Ok(v)
}

/// Figures of one side over the runs, by name.
#[derive(Default)]
struct Figures(std::collections::BTreeMap<&'static str, Vec<f64>>);

impl Figures {
    fn add(&mut self, key: &'static str, v: &serde_json::Value) {
        if let Some(x) = v.as_f64() {
            self.0.entry(key).or_default().push(x);
        }
    }

    fn median(&self, key: &str) -> Option<f64> {
        let mut xs = self.0.get(key)?.clone();
        xs.sort_by(f64::total_cmp);
        xs.get(xs.len() / 2).copied()
    }
}

/// One run of the load on `side`: 8 and 1 clients at the leader and at a
/// follower.
fn load(plan: &Plan, side: &Side, run: usize, figures: &mut Figures) -> anyhow::Result<usize> {
    let leader = side.leader()?;
    let follower = (leader + 1) % side.members.len();
    let mut changes = 0;
    for (target, at) in [("leader", leader), ("follower", follower)] {
        let sock = side.members[at].sock();
        let eight = api_bench(&plan.api_bench, &sock, plan.n, 8, &format!("r{run}{target}8_"))?;
        let one = api_bench(&plan.api_bench, &sock, plan.n / 4, 1, &format!("r{run}{target}1_"))?;
        let (k8, k1, kc, ki, kd): (&'static str, &'static str, &'static str, &'static str, &'static str) =
            if target == "leader" {
                (
                    "leader_8",
                    "leader_1",
                    "leader_create_p50",
                    "leader_inspect_p50",
                    "leader_delete_p50",
                )
            } else {
                (
                    "follower_8",
                    "follower_1",
                    "follower_create_p50",
                    "follower_inspect_p50",
                    "follower_delete_p50",
                )
            };
        figures.add(k8, &eight["create_ops_s"]);
        figures.add(k1, &one["create_ops_s"]);
        figures.add(kc, &one["create_p50_ms"]);
        figures.add(ki, &one["inspect_p50_ms"]);
        figures.add(kd, &one["delete_p50_ms"]);
    }
    if side.leader()? != leader {
        changes += 1;
    }
    Ok(changes)
}

pub fn run(plan: &Plan) -> anyhow::Result<()> {
    if !plan.api_bench.exists() {
        bail!("no api_bench.py at {}", plan.api_bench.display());
    }
    let daemon = plan.daemon.clone();
    let ours = Side::start("swarmkeep", ["127.0.0.5", "127.0.0.6", "127.0.0.7"], &daemon, |dir| {
        vec![
            "--data-dir".into(),
            dir.join("data").display().to_string(),
            "-H".into(),
            format!("unix://{}", dir.join("ctl.sock").display()),
            "--docker-api".into(),
            format!("unix://{}", dir.join("docker.sock").display()),
            "--exec-root".into(),
            dir.join("exec").display().to_string(),
            "--no-agent".into(),
            "--log-level".into(),
            "warn".into(),
        ]
    })?;
    let dockerd = PathBuf::from("/usr/sbin/dockerd");
    let theirs = if dockerd.exists() {
        let empty = ours._dir.path().join("dockerd-empty.json");
        std::fs::write(&empty, "{}")?;
        Some(Side::start(
            "swarm",
            ["127.0.0.2", "127.0.0.3", "127.0.0.4"],
            &dockerd,
            |dir| {
                let mut a: Vec<String> = vec![
                    // The machine's /etc/docker/daemon.json names its own data root.
                    "--config-file".into(),
                    empty.display().to_string(),
                    "--data-root".into(),
                    dir.join("root").display().to_string(),
                    "--exec-root".into(),
                    dir.join("exec").display().to_string(),
                    "--pidfile".into(),
                    dir.join("pid").display().to_string(),
                    "-H".into(),
                    format!("unix://{}", dir.join("docker.sock").display()),
                ];
                a.extend(
                    [
                        "--bridge",
                        "none",
                        "--iptables=false",
                        "--ip6tables=false",
                        "--ip-masq=false",
                        "--userland-proxy=false",
                        "--log-level",
                        "warn",
                    ]
                    .map(String::from),
                );
                a
            },
        )?)
    } else {
        eprintln!("no /usr/sbin/dockerd: swarmkeep's figures only");
        None
    };

    let mut sides = vec![(ours, Figures::default(), 0usize)];
    if let Some(t) = theirs {
        sides.push((t, Figures::default(), 0));
    }
    for run in 0..plan.runs {
        // Alternate which side goes first.
        let order: Vec<usize> = if run % 2 == 0 {
            (0..sides.len()).collect()
        } else {
            (0..sides.len()).rev().collect()
        };
        for i in order {
            let (side, figures, changes) = &mut sides[i];
            eprintln!("run {} of {}: {}", run + 1, plan.runs, side.name);
            *changes += load(plan, side, run, figures)?;
        }
    }
    for (side, figures, changes) in &mut sides {
        figures.0.insert("rss_mib", vec![side.rss_mib()]);
        figures.0.insert("leader_changes", vec![*changes as f64]);
        let joins = side.join_ready_ms.clone();
        figures.0.insert("join_ready_ms", joins);
        let kills = if side.name == "swarm" {
            plan.swarm_kills
        } else {
            plan.swarmkeep_kills
        };
        eprintln!("{}: {kills} leader kills", side.name);
        let mut f = side.failovers(kills)?;
        f.sort();
        if !f.is_empty() {
            figures.0.insert("failover_p50_s", vec![percentile(&f, 0.5) / 1e3]);
            figures.0.insert("failover_max_s", vec![percentile(&f, 1.0) / 1e3]);
        }
    }
    print_table(plan, &sides.iter().map(|(s, f, _)| (s.name, f)).collect::<Vec<_>>());
    Ok(())
}

fn print_table(plan: &Plan, sides: &[(&str, &Figures)]) {
    let lines: [(&str, &str, bool); 15] = [
        ("creates/s, 8 clients, at the leader", "leader_8", true),
        ("creates/s, 1 client, at the leader", "leader_1", true),
        ("creates/s, 8 clients, at a follower", "follower_8", true),
        ("creates/s, 1 client, at a follower", "follower_1", true),
        ("create p50 ms, 1 client, at the leader", "leader_create_p50", false),
        ("create p50 ms, 1 client, at a follower", "follower_create_p50", false),
        ("inspect p50 ms at the leader", "leader_inspect_p50", false),
        ("inspect p50 ms at a follower", "follower_inspect_p50", false),
        ("delete p50 ms at the leader", "leader_delete_p50", false),
        ("delete p50 ms at a follower", "follower_delete_p50", false),
        (
            "leader kill -9 → next 201 on a survivor, p50 s",
            "failover_p50_s",
            false,
        ),
        ("the same, max s", "failover_max_s", false),
        ("join → Ready/Reachable on the leader, max ms", "join_ready_ms", false),
        ("leader changes during the load runs", "leader_changes", false),
        ("RSS of the three managers, MiB", "rss_mib", false),
    ];
    println!(
        "{} runs of api_bench.py ({} secrets with 8 clients, {} with 1; 1 KiB), medians; {} / {} leader kills",
        plan.runs,
        plan.n,
        plan.n / 4,
        plan.swarm_kills,
        plan.swarmkeep_kills
    );
    println!();
    println!("| | Swarm 20.10 | swarmkeep | swarmkeep ÷ Swarm |");
    println!("|---|---|---|---|");
    let get = |name: &str, key: &str| {
        let f = sides.iter().find(|(n, _)| *n == name)?.1;
        if key == "join_ready_ms" {
            f.0.get(key)?.iter().copied().reduce(f64::max)
        } else {
            f.median(key)
        }
    };
    let show = |v: Option<f64>| {
        v.map_or("—".to_string(), |x| {
            if x >= 100.0 {
                format!("{x:.0}")
            } else {
                format!("{x:.2}")
            }
        })
    };
    for (label, key, higher_is_better) in lines {
        let (theirs, ours) = (get("swarm", key), get("swarmkeep", key));
        let ratio = match (theirs, ours) {
            (Some(t), Some(o)) if t > 0.0 && o > 0.0 => {
                let better = if higher_is_better { o >= t } else { o <= t };
                format!("{:.2}{}", o / t, if better { "" } else { " (worse)" })
            }
            _ => "—".into(),
        };
        println!("| {label} | {} | {} | {ratio} |", show(theirs), show(ours));
    }
}

fn expect(r: (u16, String), want: u16, what: &str) -> anyhow::Result<serde_json::Value> {
    if r.0 != want {
        bail!("{what} answered {}: {}", r.0, r.1);
    }
    Ok(serde_json::from_str(&r.1).unwrap_or(serde_json::Value::Null))
}

/// One HTTP/1.1 request on a unix socket (`Connection: close`), with a 5 s
/// timeout; the status and the body (de-chunked).
fn http(sock: &Path, method: &str, path: &str, body: Option<&str>) -> std::io::Result<(u16, String)> {
    let mut s = UnixStream::connect(sock)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no HTTP header"))?;
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let rest = &raw[end + 4..];
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no HTTP status"))?;
    let chunked = head
        .lines()
        .any(|l| l.starts_with("transfer-encoding:") && l.contains("chunked"));
    let body = if chunked { dechunk(rest) } else { rest.to_vec() };
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

fn dechunk(mut s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = s.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&s[..eol]);
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        let rest = &s[eol + 2..];
        if n == 0 || rest.len() < n {
            break;
        }
        out.extend_from_slice(&rest[..n]);
        s = rest[n..].strip_prefix(b"\r\n").unwrap_or(&rest[n..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(dechunk(b"4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n"), b"Wikipedia");
        assert_eq!(dechunk(b"0\r\n\r\n"), b"");
    }

    #[test]
    fn medians_of_the_runs() {
        let mut f = Figures::default();
        for x in [3.0, 1.0, 2.0] {
            f.add("k", &serde_json::json!(x));
        }
        assert_eq!(f.median("k"), Some(2.0));
        assert_eq!(f.median("none"), None);
    }
}
