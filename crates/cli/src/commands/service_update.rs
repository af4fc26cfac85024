//! `swarmkeep service update` and `service rollback`: the service's spec as
//! it is now, changed by the flags as the docker CLI's `updateService` does,
//! sent with the version read (a concurrent change makes it fail, not lose
//! either one).

use swarmkeep_api::control::{self, GetServiceRequest, UpdateServiceRequest};

use super::Output;
use super::rollout::RolloutFlags;
use super::service::{parse_duration, parse_mount, resolve_refs, set_resources};
use crate::client::{CliError, Client, daemon_error};

#[derive(clap::Args, Default, Debug)]
pub struct UpdateArgs {
    /// Service image tag
    #[arg(long)]
    pub image: Option<String>,
    /// Service command args
    #[arg(long)]
    pub args: Option<String>,
    /// Add or update an environment variable
    #[arg(long)]
    pub env_add: Vec<String>,
    /// Remove an environment variable
    #[arg(long)]
    pub env_rm: Vec<String>,
    /// Add or update a secret on a service
    #[arg(long)]
    pub secret_add: Vec<String>,
    /// Remove a secret
    #[arg(long)]
    pub secret_rm: Vec<String>,
    /// Add or update a config file on a service
    #[arg(long)]
    pub config_add: Vec<String>,
    /// Remove a configuration file
    #[arg(long)]
    pub config_rm: Vec<String>,
    /// Add a network
    #[arg(long)]
    pub network_add: Vec<String>,
    /// Remove a network
    #[arg(long)]
    pub network_rm: Vec<String>,
    /// Add or update a published port
    #[arg(long)]
    pub publish_add: Vec<String>,
    /// Remove a published port by its target port
    #[arg(long)]
    pub publish_rm: Vec<String>,
    /// Number of tasks
    #[arg(long)]
    pub replicas: Option<u64>,
    /// Force update even if no changes require it
    #[arg(long)]
    pub force: bool,
    /// Add or update a service label
    #[arg(long)]
    pub label_add: Vec<String>,
    /// Remove a label by its key
    #[arg(long)]
    pub label_rm: Vec<String>,
    /// Add or update a mount on a service
    #[arg(long)]
    pub mount_add: Vec<String>,
    /// Remove a mount by its target path
    #[arg(long)]
    pub mount_rm: Vec<String>,
    /// Limit CPUs
    #[arg(long)]
    pub limit_cpu: Option<String>,
    /// Limit Memory
    #[arg(long)]
    pub limit_memory: Option<String>,
    /// Limit maximum number of processes (0 = unlimited)
    #[arg(long)]
    pub limit_pids: Option<i64>,
    /// Restart when condition is met ("none", "on-failure", "any")
    #[arg(long)]
    pub restart_condition: Option<String>,
    /// Delay between restart attempts (ns|us|ms|s|m|h)
    #[arg(long)]
    pub restart_delay: Option<String>,
    /// Maximum number of restarts before giving up
    #[arg(long)]
    pub restart_max_attempts: Option<u64>,
    /// Window used to evaluate the restart policy (ns|us|ms|s|m|h)
    #[arg(long)]
    pub restart_window: Option<String>,
    /// Time to wait before force killing a task (ns|us|ms|s|m|h)
    #[arg(long)]
    pub stop_grace_period: Option<String>,
    /// Username or UID (format: <uid>[:<gid>])
    #[arg(short, long)]
    pub user: Option<String>,
    /// Working directory inside the task
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// Add or update a placement constraint
    #[arg(long)]
    pub constraint_add: Vec<String>,
    /// Remove a constraint
    #[arg(long)]
    pub constraint_rm: Vec<String>,
    /// Add a placement preference
    #[arg(long)]
    pub placement_pref_add: Vec<String>,
    /// Remove a placement preference
    #[arg(long)]
    pub placement_pref_rm: Vec<String>,
    /// Maximum number of tasks per node (0 = unlimited)
    #[arg(long, visible_alias = "max-replicas")]
    pub replicas_max_per_node: Option<u64>,
    /// Reserve CPUs
    #[arg(long)]
    pub reserve_cpu: Option<String>,
    /// Reserve Memory
    #[arg(long)]
    pub reserve_memory: Option<String>,
    #[command(flatten)]
    pub rollout: RolloutFlags,
    /// Rollback to previous specification
    #[arg(long)]
    pub rollback: bool,
    /// Exit immediately instead of waiting for the service to converge
    #[arg(short, long)]
    pub detach: bool,
    /// Suppress progress output
    #[arg(short, long)]
    pub quiet: bool,
    /// Send registry authentication details to swarm agents
    #[arg(long)]
    pub with_registry_auth: bool,
    /// Do not query the registry to resolve image digest and supported platforms
    #[arg(long)]
    pub no_resolve_image: bool,
    pub service: String,
}

impl UpdateArgs {
    /// Whether any flag but `--rollback`, `--detach` and `--quiet` is given:
    /// the docker CLI refuses them with `--rollback`.
    fn changes_anything(&self) -> bool {
        let plain = UpdateArgs {
            service: self.service.clone(),
            rollback: self.rollback,
            detach: self.detach,
            quiet: self.quiet,
            ..Default::default()
        };
        format!("{self:?}") != format!("{plain:?}")
    }
}

/// The network's ID (a name, ID or ID prefix given).
async fn network_id(client: &mut Client, name: &str) -> Result<String, CliError> {
    let network = client
        .get_network(control::GetNetworkRequest { id: name.to_string() })
        .await
        .map_err(|s| CliError(daemon_error(&s)))?
        .into_inner()
        .network
        .unwrap_or_default();
    Ok(network.id)
}

/// `--network-rm` then `--network-add`, as the docker CLI's
/// `updateNetworks`: an attachment already there is refused with its words.
async fn update_networks(
    client: &mut Client,
    spec: &mut control::ServiceSpec,
    add: &[String],
    rm: &[String],
) -> Result<(), CliError> {
    if add.is_empty() && rm.is_empty() {
        return Ok(());
    }
    let task = spec.task.get_or_insert_default();
    for name in rm {
        let id = network_id(client, name).await?;
        task.networks.retain(|n| n.target != id && n.target != *name);
    }
    for value in add {
        let mut attachment = super::service::parse_network(value)?;
        let id = network_id(client, &attachment.target).await?;
        if task.networks.iter().any(|n| n.target == id) {
            return Err(CliError(format!(
                "service is already attached to network {}",
                attachment.target
            )));
        }
        attachment.target = id;
        task.networks.push(attachment);
    }
    Ok(())
}

/// `--publish-rm` (by target port, and protocol when given) then
/// `--publish-add` (replacing a port published on the same number), as the
/// docker CLI's `updatePorts`.
fn update_ports(spec: &mut control::ServiceSpec, add: &[String], rm: &[String]) -> Result<(), CliError> {
    if add.is_empty() && rm.is_empty() {
        return Ok(());
    }
    let endpoint = spec.endpoint.get_or_insert_default();
    for value in rm {
        let (port, protocol) = value.split_once('/').unwrap_or((value.as_str(), ""));
        let target: u32 = port.parse().map_err(|_| {
            CliError(format!(
                "invalid argument \"{value}\" for \"--publish-rm\" flag: invalid port"
            ))
        })?;
        endpoint.ports.retain(|p| {
            let proto = if p.protocol.is_empty() {
                "tcp"
            } else {
                p.protocol.as_str()
            };
            !(p.target_port == target && (protocol.is_empty() || protocol == proto))
        });
    }
    for value in add {
        for port in super::ports::parse(value)? {
            endpoint.ports.retain(|p| {
                !(p.published_port != 0 && p.published_port == port.published_port && p.protocol == port.protocol)
            });
            endpoint.ports.push(port);
        }
    }
    Ok(())
}

/// Replaces `KEY=…` entries (and bare `KEY`) by key, as the docker CLI's
/// `--env-add`/`--env-rm`.
fn update_env(env: &mut Vec<String>, add: &[String], rm: &[String]) {
    let key = |e: &str| e.split_once('=').map_or(e, |(k, _)| k).to_string();
    env.retain(|e| !rm.contains(&key(e)));
    for a in add {
        let k = key(a);
        match env.iter_mut().find(|e| key(e) == k) {
            Some(e) => *e = a.clone(),
            None => env.push(a.clone()),
        }
    }
}

/// The spec with the flags applied; what the service is sent.
async fn updated_spec(
    client: &mut Client,
    resolver: Option<&mut super::image::Images>,
    a: &UpdateArgs,
    mut spec: control::ServiceSpec,
    registry_auth: &[u8],
    warnings: &mut String,
) -> Result<control::ServiceSpec, CliError> {
    if let Some(replicas) = a.replicas {
        if spec.mode == "global" {
            return Err(CliError("replicas can only be used with replicated mode".into()));
        }
        spec.replicas = replicas;
    }
    let labels = &mut spec.annotations.get_or_insert_default().labels;
    for k in &a.label_rm {
        labels.remove(k);
    }
    labels.extend(super::parse_labels(&a.label_add));
    a.rollout.apply(&mut spec)?;
    let task = spec.task.get_or_insert_default();
    if let Some(image) = &a.image {
        task.image = match resolver {
            Some(r) => super::service::pin_image(r, image, registry_auth, warnings).await,
            None => image.clone(),
        };
    }
    if let Some(args) = &a.args {
        task.args = shlex::split(args).ok_or_else(|| {
            CliError(format!(
                "invalid argument \"{args}\" for \"--args\" flag: EOF found when expecting closing quote"
            ))
        })?;
    }
    update_env(&mut task.env, &a.env_add, &a.env_rm);
    task.secrets
        .retain(|r| !a.secret_rm.contains(&r.name) && !a.secret_rm.contains(&r.id));
    task.configs
        .retain(|r| !a.config_rm.contains(&r.name) && !a.config_rm.contains(&r.id));
    task.mounts.retain(|m| !a.mount_rm.contains(&m.target));
    for m in &a.mount_add {
        let m = parse_mount(m)?;
        task.mounts.retain(|old| old.target != m.target);
        task.mounts.push(m);
    }
    if a.force {
        task.force_update += 1;
    }
    super::placement::update(
        task,
        &a.constraint_add,
        &a.constraint_rm,
        &a.placement_pref_add,
        &a.placement_pref_rm,
        a.replicas_max_per_node,
    )?;
    super::placement::reserve(task, a.reserve_cpu.as_deref(), a.reserve_memory.as_deref())?;
    set_resources(
        &mut task.limits,
        a.limit_cpu.as_deref(),
        a.limit_memory.as_deref(),
        a.limit_pids,
    )?;
    let restart = task.restart.get_or_insert_with(|| control::RestartPolicy {
        condition: "any".into(),
        delay_ns: 5_000_000_000,
        ..Default::default()
    });
    if let Some(c) = &a.restart_condition {
        restart.condition = c.clone();
    }
    if let Some(d) = &a.restart_delay {
        restart.delay_ns = parse_duration(d)?;
    }
    if let Some(n) = a.restart_max_attempts {
        restart.max_attempts = n;
    }
    if let Some(w) = &a.restart_window {
        restart.window_ns = parse_duration(w)?;
    }
    if let Some(d) = &a.stop_grace_period {
        task.stop_grace_period_ns = parse_duration(d)?;
    }
    if let Some(u) = &a.user {
        task.user = u.clone();
    }
    if let Some(w) = &a.workdir {
        task.workdir = w.clone();
    }
    update_networks(client, &mut spec, &a.network_add, &a.network_rm).await?;
    update_ports(&mut spec, &a.publish_add, &a.publish_rm)?;
    // Added references replace the ones with the same source.
    let secrets = resolve_refs(client, &a.secret_add, true).await?;
    let configs = resolve_refs(client, &a.config_add, false).await?;
    let task = spec.task.get_or_insert_default();
    for r in secrets {
        task.secrets.retain(|old| old.name != r.name);
        task.secrets.push(r);
    }
    for r in configs {
        task.configs.retain(|old| old.name != r.name);
        task.configs.push(r);
    }
    Ok(spec)
}

/// `swarmkeep service update [flags] SERVICE`.
pub async fn update(client: &mut Client, resolver: Option<&mut super::image::Images>, a: &UpdateArgs) -> Output {
    if a.rollback && a.changes_anything() {
        return CliError("other flags may not be combined with --rollback".into()).into();
    }
    let mut warnings = String::new();
    let result = async {
        let service = client
            .get_service(GetServiceRequest { id: a.service.clone() })
            .await
            .map_err(|s| CliError(daemon_error(&s)))?
            .into_inner()
            .service
            .unwrap_or_default();
        let registry_auth = match (&a.with_registry_auth, &a.image) {
            (true, Some(image)) => super::registry_auth::for_image(image)?,
            (true, None) => {
                let image = service
                    .spec
                    .as_ref()
                    .and_then(|s| s.task.as_ref())
                    .map(|t| t.image.clone());
                super::registry_auth::for_image(&image.unwrap_or_default())?
            }
            (false, _) => Vec::new(),
        };
        let spec = if a.rollback {
            None
        } else {
            let current = service.spec.clone().unwrap_or_default();
            let resolver = resolver.filter(|_| !a.no_resolve_image);
            Some(updated_spec(client, resolver, a, current, &registry_auth, &mut warnings).await?)
        };
        client
            .update_service(UpdateServiceRequest {
                id: service.id.clone(),
                version: service.meta.and_then(|m| m.version),
                spec,
                rollback: a.rollback,
                registry_auth,
            })
            .await
            .map_err(|s| CliError(daemon_error(&s)))?;
        Ok::<_, CliError>(())
    }
    .await;
    match result {
        Ok(()) => Output {
            warnings,
            ..Output::ok(format!("{}\n", a.service))
        },
        Err(e) => Output { warnings, ..e.into() },
    }
}

/// `swarmkeep service rollback SERVICE`: the previous spec under the
/// service's RollbackConfig.
pub async fn rollback(client: &mut Client, service: &str) -> Output {
    update(
        client,
        None,
        &UpdateArgs {
            service: service.to_string(),
            rollback: true,
            ..Default::default()
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_add_replaces_by_key_and_env_rm_removes_by_key() {
        let mut env = vec!["A=1".to_string(), "B=2".into(), "C".into()];
        update_env(&mut env, &["B=3".into(), "D=4".into()], &["A".into(), "C".into()]);
        assert_eq!(env, ["B=3", "D=4"]);
    }

    #[test]
    fn rollback_refuses_other_flags() {
        let mut a = UpdateArgs {
            service: "s".into(),
            rollback: true,
            detach: true,
            quiet: true,
            ..Default::default()
        };
        assert!(!a.changes_anything());
        a.image = Some("bb".into());
        assert!(a.changes_anything());
        a.image = None;
        a.rollout.update_parallelism = Some(1);
        assert!(a.changes_anything());
    }
}
