//! Waiting for a service to converge after `service create|update|scale|
//! rollback` without `-d`, with the docker CLI's progress lines: `overall
//! progress: N out of M tasks` (`rolling back update: …` in a rollback), the
//! rollback's reason, `verify: Waiting N seconds to verify that tasks are
//! stable...`, then `verify: Service X converged`; a paused update ends it
//! with Docker's `service update paused: …`. Plain lines, one per change, as
//! the docker CLI prints them when stdout is not a terminal.

use std::io::Write;
use std::time::{Duration, Instant};

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
pub(crate) fn view(service: &control::Service, tasks: &[control::Task]) -> View {
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

/// Polls `service` until it converges, writing progress lines to `out`.
pub async fn wait(client: &mut Client, service: &str, out: &mut dyn Write) -> Result<(), CliError> {
    let mut last_line = String::new();
    let mut rollback_said = false;
    let mut stable_since: Option<Instant> = None;
    let mut say = |line: String, out: &mut dyn Write| {
        if line != last_line {
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
            last_line = line;
        }
    };
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
            say(
                format!("job progress: {} out of {} complete", job.completed, job.total),
                out,
            );
            say(
                format!("active tasks: {} out of {} tasks", job.active, job.desired),
                out,
            );
            if job.completed >= job.total && job.active == 0 {
                say("job complete".into(), out);
                return Ok(());
            }
            tokio::time::sleep(POLL).await;
            continue;
        }
        let v = view(&s, &tasks);
        match v.update.as_ref().map(|(s, m)| (s.as_str(), m.as_str())) {
            Some(("paused", m)) => return Err(CliError(format!("service update paused: {m}"))),
            Some(("rollback_paused", m)) => return Err(CliError(format!("service rollback paused: {m}"))),
            Some(("rollback_started", m)) if !rollback_said && m != "manually requested rollback" => {
                say(format!("rollback: {m}"), out);
                rollback_said = true;
            }
            _ => {}
        }
        let prefix = if v.rolling_back { "rolling back update: " } else { "" };
        say(
            format!("overall progress: {prefix}{} out of {} tasks", v.running, v.wanted),
            out,
        );
        let done = matches!(
            v.update.as_ref().map(|(s, _)| s.as_str()),
            None | Some("completed") | Some("rollback_completed")
        );
        if v.running == v.wanted {
            let since = *stable_since.get_or_insert_with(Instant::now);
            let left = STABLE.saturating_sub(since.elapsed());
            if left.is_zero() && done {
                say(format!("verify: Service {service} converged"), out);
                return Ok(());
            }
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            say(
                format!(
                    "verify: Waiting {} seconds to verify that tasks are stable...",
                    secs.max(1)
                ),
                out,
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
            wait(client, service, &mut std::io::sink()).await
        } else {
            wait(client, service, &mut stdout).await
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
        let v = view(&service, &tasks);
        assert_eq!((v.running, v.wanted, v.rolling_back), (1, 3, true));
    }
}
