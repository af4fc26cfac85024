//! Executors run a task's command on its image's root with its secret mount
//! in place: the process executor (the task shim's namespaces and overlay).

mod cgroup;
pub mod exec;
pub mod exec_process;
pub mod process;
mod rootfs;
mod seccomp;
pub mod shim;
mod user;
pub mod userns;
pub mod volumes;

pub use cgroup::Limits;
pub use process::{ProcessExecutor, RunningTask};

use std::path::PathBuf;

/// Everything an executor needs to start one task. Holds paths, never data.
#[derive(Clone, Debug)]
pub struct TaskRun {
    pub task_id: String,
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub workdir: String,
    pub user: String,
    /// The image's layer directories, bottom first.
    pub layers: Vec<PathBuf>,
    /// `<mount>/secrets`, shown as the task's `/run/secrets`.
    pub secrets_dir: Option<PathBuf>,
    /// (file in the mount, absolute path in the task).
    pub files: Vec<(PathBuf, PathBuf)>,
    /// The service's bind mounts: (host path, path in the task, read-only).
    pub binds: Vec<(PathBuf, PathBuf, bool)>,
    pub volumes: Vec<volumes::VolumeMount>,
    pub tmpfs: Vec<volumes::TmpfsMount>,
    /// The task's container ID (64 hex digits, derived from the task ID).
    pub container_id: String,
    /// `--hostname`; the container ID's first 12 digits when empty.
    pub hostname: String,
    pub network: crate::network::NetworkMode,
    /// Its addresses on overlay networks (bridge mode only).
    pub overlays: Vec<crate::network::OverlayAttachment>,
    /// Its ports to publish on the node (host mode, bridge mode only).
    pub host_ports: Vec<swarmkeep_api::control::PortConfig>,
    /// `--read-only`: the task's root is mounted read-only.
    pub read_only: bool,
    /// `--tty`: the command runs on a pseudo-terminal.
    pub tty: bool,
    /// `--limit-cpu`, `--limit-memory`, `--limit-pids`.
    pub limits: Limits,
    pub sandbox: SandboxOptions,
}

/// The container options that shape the task's sandbox, numbered.
#[derive(Clone, Debug, Default)]
pub struct SandboxOptions {
    /// `--group`.
    pub groups: Vec<String>,
    /// The capabilities the command keeps (`--cap-add`/`--cap-drop` applied).
    pub caps: Vec<u32>,
    pub sysctls: Vec<(String, String)>,
    /// `--ulimit`: (RLIMIT_*, soft, hard).
    pub rlimits: Vec<(u32, u64, u64)>,
    /// `--host`: extra `/etc/hosts` lines.
    pub hosts: Vec<String>,
    pub dns: swarmkeep_api::control::DnsConfig,
    /// The signal that stops the task (`--stop-signal`, else the image's,
    /// else SIGTERM).
    pub stop_signal: i32,
}

impl SandboxOptions {
    /// From the task's spec (checked again: the manager already refused a
    /// bad one) and its image's stop signal.
    pub fn from_spec(spec: &swarmkeep_api::control::TaskSpec, image_stop_signal: &str) -> Result<Self, String> {
        use swarmkeep_api::sandbox;
        let caps = sandbox::effective_capabilities(&spec.capability_add, &spec.capability_drop)?;
        let mut sysctls: Vec<(String, String)> = spec.sysctls.clone().into_iter().collect();
        sysctls.sort();
        for (name, _) in &sysctls {
            sandbox::check_sysctl(name)?;
        }
        let rlimits = spec
            .ulimits
            .iter()
            .map(|u| {
                let resource = sandbox::ulimit_resource(&u.name, u.soft, u.hard)?;
                let as_limit = |v: i64| u64::try_from(v).unwrap_or(libc::RLIM_INFINITY);
                Ok((resource, as_limit(u.soft), as_limit(u.hard)))
            })
            .collect::<Result<_, String>>()?;
        let stop_signal = match (spec.stop_signal.as_str(), image_stop_signal) {
            ("", "") => libc::SIGTERM,
            ("", image) => sandbox::parse_signal(image).unwrap_or(libc::SIGTERM),
            (service, _) => sandbox::parse_signal(service)?,
        };
        Ok(Self {
            groups: spec.groups.clone(),
            caps,
            sysctls,
            rlimits,
            hosts: spec.hosts.clone(),
            dns: spec.dns_config.clone().unwrap_or_default(),
            stop_signal,
        })
    }
}

pub use swarmkeep_api::naming::container_id;
