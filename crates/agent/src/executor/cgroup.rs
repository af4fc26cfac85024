//! A cgroup per task: Docker's limits (`--limit-cpu`, `--limit-memory`,
//! `--limit-pids`) and its device rules, on cgroup v1 (one directory per
//! controller, `/sys/fs/cgroup/<controller>/swarmkeep/<container id>`) or
//! v2 (`/sys/fs/cgroup/swarmkeep/<container id>`). The shim joins the
//! directories before it makes the task's namespaces; the agent removes them
//! when the task has ended, after reading whether the kernel OOM-killed it.

use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";
const PARENT: &str = "swarmkeep";
/// v1 controllers a task gets a directory in (those mounted are used).
const V1_CONTROLLERS: [&str; 6] = ["cpu", "cpuacct", "memory", "pids", "devices", "freezer"];
/// Docker's CFS period.
const CFS_PERIOD_US: u64 = 100_000;

/// What a task may use; zero means unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    pub nano_cpus: u64,
    pub memory_bytes: u64,
    pub pids: i64,
}

/// The task's cgroup directories.
#[derive(Debug, Default)]
pub struct TaskCgroup {
    dirs: Vec<PathBuf>,
    v2: bool,
}

fn io<E: std::fmt::Display>(what: impl std::fmt::Display) -> impl FnOnce(E) -> String {
    move |e| format!("{what}: {e}")
}

fn write(dir: &Path, file: &str, value: &str) -> Result<(), String> {
    std::fs::write(dir.join(file), value).map_err(io(format!("setting {file} to {value}")))
}

fn is_v2() -> bool {
    Path::new(ROOT).join("cgroup.controllers").exists()
}

impl TaskCgroup {
    /// Makes the task's cgroup with its limits.
    pub fn create(container_id: &str, limits: Limits) -> Result<Self, String> {
        if is_v2() {
            Self::create_v2(container_id, limits)
        } else {
            Self::create_v1(container_id, limits)
        }
    }

    fn create_v1(container_id: &str, limits: Limits) -> Result<Self, String> {
        let mut cg = TaskCgroup::default();
        for controller in V1_CONTROLLERS {
            let hierarchy = Path::new(ROOT).join(controller);
            if !hierarchy.join("cgroup.procs").exists() {
                continue;
            }
            let dir = hierarchy.join(PARENT).join(container_id);
            std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
            cg.dirs.push(dir.clone());
            if controller == "devices" {
                device_rules(&dir)?;
            }
        }
        Self::apply_limits(&cg.dirs, limits)?;
        Ok(cg)
    }

    fn create_v2(container_id: &str, limits: Limits) -> Result<Self, String> {
        let parent = Path::new(ROOT).join(PARENT);
        std::fs::create_dir_all(&parent).map_err(io(format!("creating {}", parent.display())))?;
        // Delegate the controllers down to the task's cgroup (best effort:
        // one the kernel lacks is left out, and a limit on it fails below).
        for (dir, ctl) in [(Path::new(ROOT), "+cpu +memory +pids"), (&parent, "+cpu +memory +pids")] {
            for c in ctl.split(' ') {
                let _ = std::fs::write(dir.join("cgroup.subtree_control"), c);
            }
        }
        let dir = parent.join(container_id);
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        let cg = TaskCgroup {
            dirs: vec![dir.clone()],
            v2: true,
        };
        Self::apply_limits(&cg.dirs, limits)?;
        Ok(cg)
    }

    /// Sets `limits` on a task's cgroup directories (made by [`Self::create`],
    /// possibly ahead of the task, with none).
    pub fn apply_limits(dirs: &[PathBuf], limits: Limits) -> Result<(), String> {
        for dir in dirs {
            // v1: `<root>/<controller>/swarmkeep/<id>`; v2: `<root>/swarmkeep/<id>`.
            let controller = dir
                .parent()
                .and_then(Path::parent)
                .filter(|h| *h != Path::new(ROOT))
                .and_then(Path::file_name)
                .and_then(|c| c.to_str());
            match controller {
                Some(c) => Self::limit_v1(dir, c, limits)?,
                None => Self::limit_v2(dir, limits)?,
            }
        }
        Ok(())
    }

    fn limit_v1(dir: &Path, controller: &str, limits: Limits) -> Result<(), String> {
        match controller {
            "memory" if limits.memory_bytes > 0 => {
                let m = limits.memory_bytes.to_string();
                write(dir, "memory.limit_in_bytes", &m)?;
                // Docker's default swap: as much again.
                if dir.join("memory.memsw.limit_in_bytes").exists() {
                    write(
                        dir,
                        "memory.memsw.limit_in_bytes",
                        &(limits.memory_bytes * 2).to_string(),
                    )?;
                }
            }
            "cpu" if limits.nano_cpus > 0 => {
                write(dir, "cpu.cfs_period_us", &CFS_PERIOD_US.to_string())?;
                write(dir, "cpu.cfs_quota_us", &quota(limits.nano_cpus).to_string())?;
            }
            "pids" if limits.pids > 0 => write(dir, "pids.max", &limits.pids.to_string())?,
            _ => {}
        }
        Ok(())
    }

    fn limit_v2(dir: &Path, limits: Limits) -> Result<(), String> {
        if limits.memory_bytes > 0 {
            write(dir, "memory.max", &limits.memory_bytes.to_string())?;
            if dir.join("memory.swap.max").exists() {
                write(dir, "memory.swap.max", &limits.memory_bytes.to_string())?;
            }
        }
        if limits.nano_cpus > 0 {
            write(dir, "cpu.max", &format!("{} {CFS_PERIOD_US}", quota(limits.nano_cpus)))?;
        }
        if limits.pids > 0 {
            write(dir, "pids.max", &limits.pids.to_string())?;
        }
        Ok(())
    }

    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Whether the kernel's OOM killer killed a process of the task.
    pub fn oom_killed(&self) -> bool {
        let (file, key) = if self.v2 {
            ("memory.events", "oom_kill")
        } else {
            ("memory.oom_control", "oom_kill")
        };
        self.dirs.iter().any(|d| {
            std::fs::read_to_string(d.join(file)).is_ok_and(|text| {
                text.lines().any(|l| {
                    l.split_once(' ')
                        .is_some_and(|(k, v)| k == key && v.trim().parse::<u64>().is_ok_and(|n| n > 0))
                })
            })
        })
    }

    /// Removes the directories (the task's processes have exited; the
    /// kernel may take a moment to let go of them).
    pub async fn remove(&self) {
        for dir in &self.dirs {
            for _ in 0..50 {
                match std::fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                }
            }
        }
    }
}

/// The CFS quota for `nano_cpus` over Docker's 100 ms period.
fn quota(nano_cpus: u64) -> u64 {
    (nano_cpus * CFS_PERIOD_US / 1_000_000_000).max(1000)
}

/// Docker's device rules: no device but null, zero, full, random, urandom,
/// tty, the console, ptmx and the pseudo-terminals, tun (mknod of any, as
/// Docker's; the task lacks CAP_MKNOD anyway).
fn device_rules(dir: &Path) -> Result<(), String> {
    write(dir, "devices.deny", "a")?;
    for rule in [
        "c *:* m",
        "b *:* m",
        "c 1:3 rwm",
        "c 1:5 rwm",
        "c 1:7 rwm",
        "c 1:8 rwm",
        "c 1:9 rwm",
        "c 5:0 rwm",
        "c 5:1 rwm",
        "c 5:2 rwm",
        "c 136:* rwm",
        "c 10:200 rwm",
    ] {
        write(dir, "devices.allow", rule)?;
    }
    Ok(())
}

/// Removes the cgroups a previous run of the agent left (its tasks are gone).
pub fn cleanup_stale(container_ids: &[String]) {
    for id in container_ids {
        let cg = if is_v2() {
            vec![Path::new(ROOT).join(PARENT).join(id)]
        } else {
            V1_CONTROLLERS
                .iter()
                .map(|c| Path::new(ROOT).join(c).join(PARENT).join(id))
                .collect()
        };
        for dir in cg {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_is_dockers() {
        assert_eq!(quota(500_000_000), 50_000);
        assert_eq!(quota(2_000_000_000), 200_000);
    }
}
