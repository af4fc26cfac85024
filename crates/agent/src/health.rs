//! A task's healthcheck, run as dockerd runs one (its `daemon/health.go`)
//! and acted on as swarmkit's container controller does:
//! - the probe is the service's `Healthcheck` laid over the image's
//!   HEALTHCHECK field by field; `["NONE"]` (or neither) means no probe;
//! - it runs inside the task (as `docker exec` does, with the task's user,
//!   environment and directory) one interval after the start and then every
//!   interval, each run bounded by the timeout (`Health check exceeded
//!   timeout (…)`, exit code -1);
//! - exit code 0 is healthy; other failures count, except while the task has
//!   never been healthy and is still within its start period; `retries`
//!   failures in a row make it unhealthy;
//! - the last five results are kept, each output cut at 4096 bytes.
//!
//! The controller keeps a task with a probe in `starting` until it is first
//! healthy, and stops an unhealthy one, which then fails with swarmkit's
//! `task: non-zero exit (N): dockerexec: unhealthy container`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use swarmkeep_api::containers as pb;
use swarmkeep_api::control;
use swarmkeep_image::Healthcheck;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use crate::state::AgentState;

/// dockerd's defaults and bounds.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_RETRIES: u32 = 3;
const MAX_LOG: usize = 5;
const MAX_OUTPUT: usize = 4096;

/// The error a task that turned unhealthy fails with (swarmkit's).
pub const UNHEALTHY: &str = "dockerexec: unhealthy container";

/// What to run and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    pub argv: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub start_period: Duration,
    pub retries: u32,
}

impl Probe {
    /// The service's healthcheck over the image's (Docker's merge: each
    /// unset field of the service's is the image's).
    pub fn of(service: Option<&control::HealthConfig>, image: Option<&Healthcheck>) -> Option<Probe> {
        if service.is_none() && image.is_none() {
            return None;
        }
        let s = service.cloned().unwrap_or_default();
        let i = image.cloned().unwrap_or_default();
        let pick = |mine: i64, theirs: i64| if mine != 0 { mine } else { theirs };
        let test = if s.test.is_empty() { i.test } else { s.test };
        let argv: Vec<String> = match test.first().map(String::as_str) {
            Some("CMD") => test[1..].to_vec(),
            Some("CMD-SHELL") => ["/bin/sh", "-c"]
                .iter()
                .map(|a| a.to_string())
                .chain(test[1..].iter().cloned())
                .collect(),
            // "NONE", nothing, or a kind dockerd runs no probe for (the
            // manager refuses those in a service).
            _ => return None,
        };
        if argv.first().is_none_or(|a| a.is_empty()) || argv.len() == 2 && argv[0] == "/bin/sh" {
            return None;
        }
        let duration = |ns: i64, default: Duration| match u64::try_from(ns) {
            Ok(n) if n > 0 => Duration::from_nanos(n),
            _ => default,
        };
        let retries = pick(i64::from(s.retries), i64::from(i.retries));
        Some(Probe {
            argv,
            interval: duration(pick(s.interval_ns, i.interval), DEFAULT_INTERVAL),
            timeout: duration(pick(s.timeout_ns, i.timeout), DEFAULT_TIMEOUT),
            start_period: duration(pick(s.start_period_ns, i.start_period), Duration::ZERO),
            retries: u32::try_from(retries)
                .ok()
                .filter(|r| *r > 0)
                .unwrap_or(DEFAULT_RETRIES),
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Starting,
    Healthy,
    Unhealthy,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Starting => "starting",
            Status::Healthy => "healthy",
            Status::Unhealthy => "unhealthy",
        }
    }
}

/// One probe's result.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub start: SystemTime,
    pub end: SystemTime,
    pub exit_code: i32,
    pub output: String,
}

/// The health state machine (pure: the tests drive it with results).
#[derive(Debug)]
pub struct Tracker {
    started: SystemTime,
    status: Status,
    failing_streak: u32,
    log: VecDeque<Outcome>,
}

impl Tracker {
    pub fn new(started: SystemTime) -> Self {
        Self {
            started,
            status: Status::Starting,
            failing_streak: 0,
            log: VecDeque::new(),
        }
    }

    pub fn record(&mut self, outcome: Outcome, probe: &Probe) -> Status {
        if outcome.exit_code == 0 {
            self.failing_streak = 0;
            self.status = Status::Healthy;
        } else {
            let in_start_period = self.status == Status::Starting
                && outcome.start.duration_since(self.started).unwrap_or_default() < probe.start_period;
            if !in_start_period {
                self.failing_streak += 1;
                if self.failing_streak >= probe.retries {
                    self.status = Status::Unhealthy;
                }
            }
        }
        if self.log.len() == MAX_LOG {
            self.log.pop_front();
        }
        self.log.push_back(outcome);
        self.status
    }

    /// Docker's `State.Health`.
    pub fn to_pb(&self) -> pb::Health {
        let ts = |t: SystemTime| prost_types::Timestamp::from(t);
        pb::Health {
            status: self.status.as_str().into(),
            failing_streak: i32::try_from(self.failing_streak).unwrap_or(i32::MAX),
            log: self
                .log
                .iter()
                .map(|o| pb::HealthProbe {
                    start: Some(ts(o.start)),
                    end: Some(ts(o.end)),
                    exit_code: o.exit_code,
                    output: o.output.clone(),
                })
                .collect(),
        }
    }
}

/// Runs the probe against the container until the task ends (the caller
/// aborts this), publishing each status on `status` and in the container's
/// record.
pub(crate) async fn monitor(agent: Arc<AgentState>, container_id: String, probe: Probe, status: watch::Sender<Status>) {
    let mut tracker = Tracker::new(SystemTime::now());
    agent.containers.set_health(&container_id, tracker.to_pb());
    loop {
        tokio::time::sleep(probe.interval).await;
        let outcome = run_once(&agent, &container_id, &probe).await;
        if outcome.exit_code != 0 {
            tracing::debug!(container = %container_id, code = outcome.exit_code, "health probe failed");
        }
        let now = tracker.record(outcome, &probe);
        agent.containers.set_health(&container_id, tracker.to_pb());
        status.send_replace(now);
    }
}

async fn run_once(agent: &AgentState, container_id: &str, probe: &Probe) -> Outcome {
    let start = SystemTime::now();
    let done = |exit_code: i32, output: String| Outcome {
        start,
        end: SystemTime::now(),
        exit_code,
        output,
    };
    let record = match agent.containers.find(container_id) {
        Ok(r) if r.info.state == "running" => r,
        _ => return done(-1, "the container is not running".into()),
    };
    let spec = record.exec_spec(probe.argv.clone(), &[], "", "", false);
    let mut proc = match agent.executor.exec(spec, false).await {
        Ok(p) => p,
        Err((text, code)) => return done(code, text),
    };
    // stdout and stderr into one buffer, as dockerd's probe captures them,
    // cut at MAX_OUTPUT (the rest is read and dropped).
    let output = Arc::new(std::sync::Mutex::new(Vec::new()));
    let pump = |reader: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>| {
        let output = output.clone();
        tokio::spawn(async move {
            let Some(mut reader) = reader else { return };
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let mut out = output.lock().unwrap_or_else(|p| p.into_inner());
                let room = MAX_OUTPUT.saturating_sub(out.len());
                out.extend_from_slice(&buf[..n.min(room)]);
            }
        })
    };
    let pumps = [
        pump(proc.stdout.take().map(|r| Box::new(r) as _)),
        pump(proc.stderr.take().map(|r| Box::new(r) as _)),
    ];
    match tokio::time::timeout(probe.timeout, proc.wait()).await {
        Ok(code) => {
            for p in pumps {
                let _ = tokio::time::timeout(Duration::from_secs(1), p).await;
            }
            let text = String::from_utf8_lossy(&output.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
            done(code, text)
        }
        Err(_) => {
            proc.kill();
            let _ = proc.wait().await;
            for p in pumps {
                p.abort();
            }
            let limit = u64::try_from(probe.timeout.as_nanos()).unwrap_or(u64::MAX);
            done(
                -1,
                format!(
                    "Health check exceeded timeout ({})",
                    swarmkeep_api::timefmt::go_duration(limit)
                ),
            )
        }
    }
}

/// The next status the monitor publishes (never, without a probe).
pub(crate) async fn next(status: &mut Option<watch::Receiver<Status>>) -> Status {
    match status {
        Some(rx) => match rx.changed().await {
            Ok(()) => *rx.borrow_and_update(),
            Err(_) => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(retries: u32, start_period: u64) -> Probe {
        Probe {
            argv: vec!["true".into()],
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            start_period: Duration::from_secs(start_period),
            retries,
        }
    }

    fn at(t0: SystemTime, secs: u64, exit_code: i32) -> Outcome {
        let t = t0 + Duration::from_secs(secs);
        Outcome {
            start: t,
            end: t,
            exit_code,
            output: format!("probe at {secs}"),
        }
    }

    #[test]
    fn the_services_fields_win_over_the_images_one_by_one() {
        let image = Healthcheck {
            test: vec!["CMD".into(), "/bin/check".into(), "--fast".into()],
            interval: 5_000_000_000,
            timeout: 0,
            start_period: 0,
            retries: 7,
        };
        let service = control::HealthConfig {
            interval_ns: 2_000_000_000,
            ..Default::default()
        };
        let p = Probe::of(Some(&service), Some(&image)).unwrap();
        assert_eq!(p.argv, ["/bin/check", "--fast"]);
        assert_eq!(p.interval, Duration::from_secs(2));
        assert_eq!(p.timeout, DEFAULT_TIMEOUT);
        assert_eq!(p.retries, 7);
        let shell = control::HealthConfig {
            test: vec!["CMD-SHELL".into(), "test -e /ok".into()],
            ..Default::default()
        };
        let p = Probe::of(Some(&shell), None).unwrap();
        assert_eq!(p.argv, ["/bin/sh", "-c", "test -e /ok"]);
        assert_eq!((p.interval, p.retries), (DEFAULT_INTERVAL, DEFAULT_RETRIES));
        let none = control::HealthConfig {
            test: vec!["NONE".into()],
            ..Default::default()
        };
        assert_eq!(
            Probe::of(Some(&none), Some(&image)),
            None,
            "--no-healthcheck turns the image's off"
        );
        assert_eq!(Probe::of(None, None), None);
    }

    #[test]
    fn retries_failures_in_a_row_make_it_unhealthy_and_a_success_resets_them() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let p = probe(2, 0);
        let mut t = Tracker::new(t0);
        assert_eq!(t.record(at(t0, 1, 1), &p), Status::Starting);
        assert_eq!(t.record(at(t0, 2, 0), &p), Status::Healthy);
        assert_eq!(t.record(at(t0, 3, 1), &p), Status::Healthy);
        assert_eq!(t.to_pb().failing_streak, 1);
        assert_eq!(t.record(at(t0, 4, -1), &p), Status::Unhealthy);
        for s in 5..10 {
            t.record(at(t0, s, 1), &p);
        }
        let shown = t.to_pb();
        assert_eq!(shown.status, "unhealthy");
        assert_eq!(shown.log.len(), MAX_LOG);
        assert_eq!(shown.log[0].output, "probe at 5", "the oldest results go first");
    }

    #[test]
    fn failures_in_the_start_period_do_not_count_until_first_healthy() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let p = probe(1, 10);
        let mut t = Tracker::new(t0);
        assert_eq!(t.record(at(t0, 3, 1), &p), Status::Starting);
        assert_eq!(t.to_pb().failing_streak, 0);
        assert_eq!(
            t.record(at(t0, 11, 1), &p),
            Status::Unhealthy,
            "after the start period a failure counts"
        );
        let mut t = Tracker::new(t0);
        t.record(at(t0, 1, 0), &p);
        assert_eq!(
            t.record(at(t0, 2, 1), &p),
            Status::Unhealthy,
            "once healthy, the start period no longer shields a failure"
        );
    }
}
