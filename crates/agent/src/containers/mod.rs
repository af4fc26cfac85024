//! This node's task containers as Docker shows them: a record per task the
//! agent started (running, or ended and still assigned). `containers_api.rs`
//! lists, inspects, execs into, tails and `top`s them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use swarmkeep_api::containers as pb;

/// A task container, kept in memory.
#[derive(Clone, Debug)]
pub struct Record {
    pub info: pb::Container,
    /// The full environment (exec inherits it).
    pub env: Vec<String>,
    /// The task's cgroup directories (exec joins them).
    pub cgroups: Vec<PathBuf>,
    /// The shim's start time, with `info.pid`: which process exec joins.
    pub start_time: u64,
    /// The task's user, groups and capabilities (an exec gets the same).
    pub creds: crate::executor::shim::Credentials,
}

impl Record {
    /// A command to run inside this container (`docker exec`, a health
    /// probe): the container's environment under `extra_env`, its
    /// credentials with `user` when given, its working directory unless
    /// `workdir` is given.
    pub fn exec_spec(
        &self,
        argv: Vec<String>,
        extra_env: &[String],
        user: &str,
        workdir: &str,
        tty: bool,
    ) -> crate::executor::exec::ExecSpec {
        let mut env = merge_env(&self.env, extra_env);
        if tty && !env.iter().any(|e| e.starts_with("TERM=")) {
            env.push("TERM=xterm".into());
        }
        crate::executor::exec::ExecSpec {
            pid: self.info.pid,
            start_time: self.start_time,
            cgroups: self.cgroups.clone(),
            argv,
            env,
            creds: crate::executor::shim::Credentials {
                user: if user.is_empty() {
                    self.info.user.clone()
                } else {
                    user.to_string()
                },
                ..self.creds.clone()
            },
            workdir: if workdir.is_empty() {
                self.info.working_dir.clone()
            } else {
                workdir.to_string()
            },
            tty,
        }
    }
}

/// Docker's environment merge: the exec's variables win over the
/// container's, by name.
fn merge_env(base: &[String], extra: &[String]) -> Vec<String> {
    let name = |e: &str| e.split_once('=').map(|(n, _)| n).unwrap_or(e).to_string();
    let overridden: std::collections::HashSet<String> = extra.iter().map(|e| name(e)).collect();
    base.iter()
        .filter(|e| !overridden.contains(&name(e)))
        .chain(extra.iter())
        .cloned()
        .collect()
}

/// Containers whose task ended are kept this many at most.
const KEEP_EXITED: usize = 100;

#[derive(Default)]
pub struct Registry {
    by_id: Mutex<HashMap<String, Record>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now() -> prost_types::Timestamp {
    let t = time::OffsetDateTime::now_utc();
    prost_types::Timestamp {
        seconds: t.unix_timestamp(),
        nanos: i32::try_from(t.nanosecond()).unwrap_or(0),
    }
}

impl Registry {
    pub fn started(&self, mut record: Record) {
        record.info.state = "running".into();
        record.info.started_at = Some(now());
        lock(&self.by_id).insert(record.info.id.clone(), record);
    }

    pub fn ended(&self, id: &str, exit_code: i32, oom_killed: bool) {
        let mut all = lock(&self.by_id);
        if let Some(r) = all.get_mut(id) {
            r.info.state = "exited".into();
            r.info.finished_at = Some(now());
            r.info.exit_code = exit_code;
            r.info.oom_killed = oom_killed;
            r.info.pid = 0;
        }
        let mut exited: Vec<(i64, String)> = all
            .values()
            .filter(|r| r.info.state == "exited")
            .map(|r| (r.info.finished_at.map(|t| t.seconds).unwrap_or(0), r.info.id.clone()))
            .collect();
        if exited.len() > KEEP_EXITED {
            exited.sort();
            for (_, old) in exited.iter().take(exited.len() - KEEP_EXITED) {
                all.remove(old);
            }
        }
    }

    /// The container's health as its last probe left it.
    pub fn set_health(&self, id: &str, health: pb::Health) {
        if let Some(r) = lock(&self.by_id).get_mut(id) {
            r.info.health = Some(health);
        }
    }

    /// Forgets the ended containers of tasks no longer assigned here.
    pub fn retain(&self, assigned: impl Fn(&str) -> bool) {
        lock(&self.by_id).retain(|_, r| r.info.state == "running" || assigned(&r.info.task_id));
    }

    pub fn list(&self, all: bool) -> Vec<pb::Container> {
        let mut out: Vec<pb::Container> = lock(&self.by_id)
            .values()
            .filter(|r| all || r.info.state == "running")
            .map(|r| r.info.clone())
            .collect();
        // Newest first, as Docker lists them.
        out.sort_by_key(|c| std::cmp::Reverse(c.created.map(|t| (t.seconds, t.nanos)).unwrap_or_default()));
        out
    }

    /// By full ID, unique ID prefix, or name (with or without Docker's
    /// leading slash): Docker's lookup.
    pub fn find(&self, key: &str) -> Result<Record, String> {
        let all = lock(&self.by_id);
        let key = key.strip_prefix('/').unwrap_or(key);
        if let Some(r) = all.get(key) {
            return Ok(r.clone());
        }
        if let Some(r) = all.values().find(|r| r.info.name == key) {
            return Ok(r.clone());
        }
        let matches: Vec<&Record> = if key.is_empty() {
            Vec::new()
        } else {
            all.values().filter(|r| r.info.id.starts_with(key)).collect()
        };
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(format!("No such container: {key}")),
            _ => Err(format!("Multiple IDs found with provided prefix: {key}")),
        }
    }
}
