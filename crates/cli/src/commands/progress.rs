//! Waiting for a service to converge after `service create|update|scale|
//! rollback` without `-d`, with the docker CLI's progress lines: `overall
//! progress: N out of M tasks` (`rolling back update: …` in a rollback), the
//! rollback's reason, `verify: Waiting N seconds to verify that tasks are
//! stable...`, then `verify: Service X converged`; a paused update ends it
//! with Docker's `service update paused: …`. Plain lines, one per change, as
//! the docker CLI prints them when stdout is not a terminal.

use std::io::{IsTerminal, Write};

use std::time::{Duration, Instant};
use time::OffsetDateTime;

use swarmkeep_api::control::{self, GetServiceRequest, ListTasksRequest};

use crate::client::{CliError, Client, daemon_error};

const POLL: Duration = Duration::from_millis(200);
/// The docker CLI's stability wait before `converged`.
const STABLE: Duration = Duration::from_secs(5);

/// What one look at the service shows.
#[derive(Debug, PartialEq)]
pub(crate) struct View {
    pub running: usize,
    pub wanted: usize,
    pub rolling_back: bool,
    /// `UpdateStatus` (state, message), if any.
    pub update: Option<(String, String)>,
}

/// The tasks that count: wanted running, of the service's current spec,
/// and running.
/// `since`: when the command began (Unix seconds); an `UpdateStatus` that
/// started before it belongs to an earlier command and is not this one's.
pub(crate) fn view(service: &control::Service, tasks: &[control::Task], since: i64) -> View {
    let spec = service.spec.clone().unwrap_or_default();
    let current: Vec<&control::Task> = tasks
        .iter()
        .filter(|t| t.desired_state == "running" && t.spec == spec.task)
        .collect();
    let running = current
        .iter()
        .filter(|t| t.status.as_ref().is_some_and(|s| s.state == "running"))
        .count();
    let wanted = if spec.mode == "global" {
        tasks.iter().filter(|t| t.desired_state == "running").count()
    } else {
        usize::try_from(spec.replicas).unwrap_or(usize::MAX)
    };
    let update = service
        .update_status
        .as_ref()
        .filter(|u| u.started_at.as_ref().is_none_or(|t| t.seconds >= since))
        .map(|u| (u.state.clone(), u.message.clone()));
    let rolling_back = update
        .as_ref()
        .is_some_and(|(s, _)| s == "rollback_started" || s == "rollback_completed");
    View {
        running,
        wanted,
        rolling_back,
        update,
    }
}

/// A job's run: its tasks of the current spec that completed, of how many,
/// and those still going.
pub(crate) struct JobView {
    pub completed: usize,
    pub total: usize,
    pub active: usize,
    /// How many may be going now.
    pub desired: usize,
}

pub(crate) fn job_view(service: &control::Service, tasks: &[control::Task]) -> Option<JobView> {
    let spec = service.spec.clone().unwrap_or_default();
    if !spec.mode.ends_with("-job") {
        return None;
    }
    let run: Vec<&control::Task> = tasks
        .iter()
        .filter(|t| t.spec == spec.task && t.desired_state == "complete")
        .collect();
    let state = |t: &&control::Task| t.status.as_ref().map(|s| s.state.clone()).unwrap_or_default();
    let completed = run.iter().filter(|t| state(t) == "complete").count();
    let active = run
        .iter()
        .filter(|t| {
            !matches!(
                state(t).as_str(),
                "complete" | "failed" | "rejected" | "shutdown" | "orphaned" | "remove"
            )
        })
        .count();
    let total = if spec.mode == "replicated-job" {
        usize::try_from(spec.replicas).unwrap_or(usize::MAX)
    } else {
        completed + active
    };
    let desired = if spec.mode == "replicated-job" {
        usize::try_from(spec.max_concurrent)
            .unwrap_or(usize::MAX)
            .min(total.saturating_sub(completed))
    } else {
        active
    };
    Some(JobView {
        completed,
        total,
        active,
        desired,
    })
}

/// Where progress goes: plain lines, or bars on a terminal.
pub(crate) trait Display {
    /// The line `key` (`overall`, `verify`, `rollback`, `job`, `active`) now reads `text`.
    fn line(&mut self, key: &'static str, text: String);
    /// Each slot's label (`1/4`, or a node ID), state word and Docker's
    /// number for it (1 new … 9 running).
    fn slots(&mut self, _slots: &[(String, String, u64)]) {}
}

/// The docker CLI's lines when stdout is not a terminal, each printed when
/// it changes (Docker repeats unchanged ones on every poll); no bars.
pub(crate) struct Plain<W: Write> {
    out: W,
    last: Vec<(&'static str, String)>,
}

impl<W: Write> Plain<W> {
    pub(crate) fn new(out: W) -> Self {
        Self { out, last: Vec::new() }
    }
}

impl<W: Write> Display for Plain<W> {
    fn line(&mut self, key: &'static str, text: String) {
        match self.last.iter_mut().find(|(k, _)| *k == key) {
            Some((_, last)) if *last == text => return,
            Some((_, last)) => *last = text.clone(),
            None => self.last.push((key, text.clone())),
        }
        let _ = writeln!(self.out, "{text}");
        let _ = self.out.flush();
    }
}

/// On a terminal: a bar per slot (`1/4: running   [=====>]`) and the
/// overall and verify lines beneath, redrawn in place (indicatif).
pub(crate) struct Bars {
    multi: indicatif::MultiProgress,
    slots: Vec<(String, indicatif::ProgressBar)>,
    lines: Vec<(&'static str, indicatif::ProgressBar)>,
}

impl Bars {
    pub(crate) fn new() -> Self {
        Self {
            multi: indicatif::MultiProgress::new(),
            slots: Vec::new(),
            lines: Vec::new(),
        }
    }
}

impl Display for Bars {
    fn line(&mut self, key: &'static str, text: String) {
        if let Some((_, bar)) = self.lines.iter().find(|(k, _)| *k == key) {
            bar.set_message(text);
            return;
        }
        let bar = self.multi.add(indicatif::ProgressBar::new(0));
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message(text);
        self.lines.push((key, bar));
    }

    fn slots(&mut self, slots: &[(String, String, u64)]) {
        for (label, state, n) in slots {
            let bar = match self.slots.iter().find(|(l, _)| l == label) {
                Some((_, bar)) => bar.clone(),
                None => {
                    let bar = indicatif::ProgressBar::new(MAX_STATE);
                    let bar = match self.lines.first() {
                        Some((_, first)) => self.multi.insert_before(first, bar),
                        None => self.multi.add(bar),
                    };
                    let style = indicatif::ProgressStyle::with_template("{prefix}: {msg:<9} [{bar:50}] ")
                        .map(|s| s.progress_chars("=> "))
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
                    bar.set_style(style);
                    bar.set_prefix(label.clone());
                    self.slots.push((label.clone(), bar.clone()));
                    bar
                }
            };
            bar.set_message(state.clone());
            bar.set_position(*n);
        }
    }
}

impl Drop for Bars {
    /// The bars stay on the terminal as they last were, as Docker's do.
    fn drop(&mut self) {
        for (_, bar) in &self.slots {
            bar.finish();
        }
        for (_, bar) in &self.lines {
            bar.finish();
        }
    }
}

/// Docker's numbers for the states a task goes through (running is the last
/// shown).
const MAX_STATE: u64 = 9;

fn state_number(state: &str) -> u64 {
    match state {
        "new" => 1,
        "allocated" => 2,
        "pending" => 3,
        "assigned" => 4,
        "accepted" => 5,
        "preparing" => 6,
        "ready" => 7,
        "starting" => 8,
        "running" => 9,
        _ => 0,
    }
}

/// Each slot's task of the current spec (replicated: `N/M`; global: its
/// node's short ID), as the docker CLI shows them.
pub(crate) fn slot_rows(service: &control::Service, tasks: &[control::Task]) -> Vec<(String, String, u64)> {
    let spec = service.spec.clone().unwrap_or_default();
    let current: Vec<&control::Task> = tasks
        .iter()
        .filter(|t| t.spec == spec.task && (t.desired_state == "running" || t.desired_state == "complete"))
        .collect();
    let state = |t: &control::Task| t.status.as_ref().map(|s| s.state.clone()).unwrap_or_default();
    let mut rows: Vec<(String, String, u64)> = Vec::new();
    if spec.mode == "replicated" {
        for slot in 1..=spec.replicas {
            if let Some(t) = current
                .iter()
                .filter(|t| t.slot == slot)
                .max_by_key(|t| t.meta.as_ref().and_then(|m| m.created_at).map(|c| (c.seconds, c.nanos)))
            {
                let st = state(t);
                rows.push((format!("{slot}/{}", spec.replicas), st.clone(), state_number(&st)));
            }
        }
    } else {
        for t in &current {
            let st = state(t);
            let node: String = t.node_id.chars().take(12).collect();
            rows.push((node, st.clone(), state_number(&st)));
        }
        rows.sort();
    }
    rows
}

/// Polls `service` until it converges, showing its progress on `display`.
pub(crate) async fn wait(client: &mut Client, service: &str, display: &mut dyn Display) -> Result<(), CliError> {
    // The command ran just before (a couple of seconds of clock skew allowed).
    let since = OffsetDateTime::now_utc().unix_timestamp() - 2;
    let mut rollback_said = false;
    let mut stable_since: Option<Instant> = None;
    loop {
        let s = client
            .get_service(GetServiceRequest {
                id: service.to_string(),
            })
            .await
            .map_err(|e| CliError(daemon_error(&e)))?
            .into_inner()
            .service
            .unwrap_or_default();
        let tasks = client
            .list_tasks(ListTasksRequest {
                service_ids: vec![s.id.clone()],
                ..Default::default()
            })
            .await
            .map_err(|e| CliError(daemon_error(&e)))?
            .into_inner()
            .tasks;
        if let Some(job) = job_view(&s, &tasks) {
            display.slots(&slot_rows(&s, &tasks));
            display.line(
                "job",
                format!("job progress: {} out of {} complete", job.completed, job.total),
            );
            display.line(
                "active",
                format!("active tasks: {} out of {} tasks", job.active, job.desired),
            );
            if job.completed >= job.total && job.active == 0 {
                display.line("verify", "job complete".into());
                return Ok(());
            }
            tokio::time::sleep(POLL).await;
            continue;
        }
        let v = view(&s, &tasks, since);
        match v.update.as_ref().map(|(s, m)| (s.as_str(), m.as_str())) {
            Some(("paused", m)) => return Err(CliError(format!("service update paused: {m}"))),
            Some(("rollback_paused", m)) => return Err(CliError(format!("service rollback paused: {m}"))),
            Some(("rollback_started", m)) if !rollback_said && m != "manually requested rollback" => {
                display.line("rollback", format!("rollback: {m}"));
                rollback_said = true;
            }
            _ => {}
        }
        let prefix = if v.rolling_back { "rolling back update: " } else { "" };
        display.slots(&slot_rows(&s, &tasks));
        display.line(
            "overall",
            format!("overall progress: {prefix}{} out of {} tasks", v.running, v.wanted),
        );
        let done = matches!(
            v.update.as_ref().map(|(s, _)| s.as_str()),
            None | Some("completed") | Some("rollback_completed")
        );
        if v.running == v.wanted {
            let since = *stable_since.get_or_insert_with(Instant::now);
            let left = STABLE.saturating_sub(since.elapsed());
            if left.is_zero() && done {
                display.line("verify", format!("verify: Service {service} converged"));
                return Ok(());
            }
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            display.line(
                "verify",
                format!(
                    "verify: Waiting {} seconds to verify that tasks are stable...",
                    secs.max(1)
                ),
            );
        } else {
            stable_since = None;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// After `service create|update|scale|rollback`: unless `detach` (or the
/// command failed), its output now, then each service's progress until it
/// converges (nothing shown with `quiet`), as the docker CLI does.
pub async fn after(
    client: &mut Client,
    out: super::Output,
    services: &[String],
    detach: bool,
    quiet: bool,
) -> super::Output {
    if detach || out.error.is_some() {
        return out;
    }
    let _ = std::io::stderr().write_all(out.warnings.as_bytes());
    let mut stdout = std::io::stdout();
    let _ = stdout.write_all(out.stdout.as_bytes());
    let _ = stdout.flush();
    for service in services {
        let result = if quiet {
            wait(client, service, &mut Plain::new(std::io::sink())).await
        } else if std::io::stdout().is_terminal() {
            wait(client, service, &mut Bars::new()).await
        } else {
            wait(client, service, &mut Plain::new(&mut stdout)).await
        };
        if let Err(e) = result {
            return e.into();
        }
    }
    super::Output::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_prints_each_line_when_it_changes() {
        let mut buf = Vec::new();
        {
            let mut p = Plain::new(&mut buf);
            p.line("overall", "a".into());
            p.line("verify", "v".into());
            p.line("overall", "a".into());
            p.line("verify", "v".into());
            p.line("overall", "b".into());
        }
        assert_eq!(String::from_utf8(buf).unwrap(), "a\nv\nb\n");
    }

    fn task(desired: &str, state: &str, image: &str) -> control::Task {
        control::Task {
            desired_state: desired.into(),
            status: Some(control::TaskStatus {
                state: state.into(),
                ..Default::default()
            }),
            spec: Some(control::TaskSpec {
                image: image.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn only_running_tasks_of_the_current_spec_count() {
        let service = control::Service {
            spec: Some(control::ServiceSpec {
                task: Some(control::TaskSpec {
                    image: "bb:v2".into(),
                    ..Default::default()
                }),
                mode: "replicated".into(),
                replicas: 3,
                ..Default::default()
            }),
            update_status: Some(control::UpdateStatus {
                state: "rollback_started".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let tasks = [
            task("running", "running", "bb:v2"),
            task("running", "starting", "bb:v2"),
            task("running", "running", "bb:latest"),
            task("shutdown", "running", "bb:v2"),
        ];
        let v = view(&service, &tasks, 0);
        assert_eq!((v.running, v.wanted, v.rolling_back), (1, 3, true));
    }
}
