//! `swarmkeep service create|ls|ps|inspect|scale|rm`.

use std::collections::HashMap;

use swarmkeep_api::control::{
    self, GetServiceRequest, ListConfigsRequest, ListNodesRequest, ListSecretsRequest, ListServicesRequest,
    ListTasksRequest, RemoveServiceRequest, UpdateServiceRequest,
};
use swarmkeep_api::engine;
use swarmkeep_api::timefmt::{ago, go_duration};
use time::OffsetDateTime;

use super::objects::sort_by_name;
use super::{Output, inspect_output, parse_labels, remove_each};
use crate::client::{CliError, Client, daemon_error};

const LS_FORMAT: &str = "table {{.ID}}\t{{.Name}}\t{{.Mode}}\t{{.Replicas}}\t{{.Image}}\t{{.Ports}}";
const PS_FORMAT: &str =
    "table {{.ID}}\t{{.Name}}\t{{.Image}}\t{{.Node}}\t{{.DesiredState}}\t{{.CurrentState}}\t{{.Error}}\t{{.Ports}}";

/// What `service create` takes besides the image and its arguments.
#[derive(Default)]
pub struct CreateFlags<'a> {
    pub name: Option<&'a str>,
    pub mode: Option<&'a str>,
    pub replicas: Option<u64>,
    pub secrets: &'a [String],
    /// `--network`: a name or ID, or `name=…,alias=…`.
    pub networks: &'a [String],
    pub configs: &'a [String],
    pub env: &'a [String],
    pub mounts: &'a [String],
    pub labels: &'a [String],
    pub user: Option<&'a str>,
    pub workdir: Option<&'a str>,
    pub restart_condition: Option<&'a str>,
    pub restart_delay: Option<&'a str>,
    pub restart_max_attempts: Option<u64>,
    pub restart_window: Option<&'a str>,
    pub stop_grace_period: Option<&'a str>,
    pub hostname: Option<&'a str>,
    pub read_only: bool,
    pub tty: bool,
    pub limit_cpu: Option<&'a str>,
    pub limit_memory: Option<&'a str>,
    pub limit_pids: Option<i64>,
    pub container: Option<&'a super::container_flags::ContainerFlags>,
    pub rollout: Option<&'a super::rollout::RolloutFlags>,
    /// `--constraint`.
    pub constraints: &'a [String],
    /// `--placement-pref`.
    pub placement_prefs: &'a [String],
    /// `--replicas-max-per-node`.
    pub max_replicas: Option<u64>,
    /// `--max-concurrent` (replicated jobs).
    pub max_concurrent: Option<u64>,
    pub reserve_cpu: Option<&'a str>,
    pub reserve_memory: Option<&'a str>,
    /// `--with-registry-auth`.
    pub with_registry_auth: bool,
    /// `-p/--publish`.
    pub publish: &'a [String],
    /// `--endpoint-mode`.
    pub endpoint_mode: Option<&'a str>,
}

/// `--network` as the docker CLI's NetworkOpt reads it: a bare name or ID,
/// or `name=…[,alias=…]…`; driver options are refused by name.
pub fn parse_network(value: &str) -> Result<control::NetworkAttachmentConfig, CliError> {
    let mut out = control::NetworkAttachmentConfig::default();
    if !value.contains('=') {
        out.target = value.to_string();
        return Ok(out);
    }
    for field in value.split(',') {
        let (key, v) = field.split_once('=').ok_or_else(|| {
            CliError(format!(
                "invalid argument \"{value}\" for \"--network\" flag: invalid field '{field}' must be a key=value pair"
            ))
        })?;
        match key.trim().to_lowercase().as_str() {
            "name" => out.target = v.to_string(),
            "alias" => out.aliases.push(v.to_string()),
            "driver-opt" => return Err(CliError("swarmkeep does not support network driver-opt yet".into())),
            other => {
                return Err(CliError(format!(
                    "invalid argument \"{value}\" for \"--network\" flag: invalid field key {other}"
                )));
            }
        }
    }
    if out.target.is_empty() {
        return Err(CliError(format!(
            "invalid argument \"{value}\" for \"--network\" flag: network name/id is not specified"
        )));
    }
    Ok(out)
}

/// `--limit-cpu 0.5` → NanoCPUs, as the docker CLI parses it (a decimal,
/// at most 9 fractional digits).
pub fn parse_cpus(s: &str) -> Result<i64, CliError> {
    let bad = || {
        CliError(format!(
            "invalid argument \"{s}\" for \"--limit-cpu\" flag: failed to parse {s} as a rational number"
        ))
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if (int.is_empty() && frac.is_empty()) || !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    if frac.len() > 9 {
        return Err(CliError(format!(
            "invalid argument \"{s}\" for \"--limit-cpu\" flag: value is too precise"
        )));
    }
    let int: i64 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| bad())?
    };
    let frac: i64 = format!("{frac:0<9}").parse().map_err(|_| bad())?;
    int.checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(frac))
        .ok_or_else(bad)
}

/// `--limit-memory 512m` → bytes, as go-units' RAMInBytes (binary units).
pub fn parse_memory(s: &str) -> Result<i64, CliError> {
    let bad = || {
        CliError(format!(
            "invalid argument \"{s}\" for \"--limit-memory\" flag: invalid size: '{s}'"
        ))
    };
    let lower = s.trim().to_ascii_lowercase();
    let split = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(split);
    let num: f64 = num.parse().map_err(|_| bad())?;
    let mult: f64 = match unit.trim_end_matches('b').trim_end_matches('i') {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return Err(bad()),
    };
    if unit.len() > 3 || num < 0.0 {
        return Err(bad());
    }
    Ok((num * mult) as i64)
}

/// A `--secret`/`--config` value before its source is looked up.
#[derive(Debug, PartialEq)]
struct RefOpt {
    source: String,
    target: String,
    uid: String,
    gid: String,
    mode: u32,
}

/// Go's `strconv.ParseUint(s, 0, 32)`: `0x` hex, `0o` or a leading `0` octal.
fn parse_mode(s: &str) -> Option<u32> {
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u32::from_str_radix(h, 16).ok()
    } else if let Some(o) = s.strip_prefix("0o").or_else(|| s.strip_prefix("0O")) {
        u32::from_str_radix(o, 8).ok()
    } else if s.len() > 1 && s.starts_with('0') {
        u32::from_str_radix(&s[1..], 8).ok()
    } else {
        s.parse().ok()
    }
}

/// Docker's `--secret`/`--config` syntax: `NAME`, or
/// `source=NAME[,target=T][,uid=U][,gid=G][,mode=M]`.
fn parse_ref(value: &str) -> Result<RefOpt, CliError> {
    let mut opt = RefOpt {
        source: String::new(),
        target: String::new(),
        uid: "0".into(),
        gid: "0".into(),
        mode: 0o444,
    };
    for field in value.split(',') {
        let Some((k, v)) = field.split_once('=') else {
            if !value.contains('=') && !value.contains(',') {
                opt.source = value.to_string();
                opt.target = value.to_string();
                return Ok(opt);
            }
            return Err(CliError(format!("invalid field '{field}' must be a key=value pair")));
        };
        match k.trim().to_lowercase().as_str() {
            "source" | "src" => opt.source = v.to_string(),
            "target" => opt.target = v.to_string(),
            "uid" => opt.uid = v.to_string(),
            "gid" => opt.gid = v.to_string(),
            "mode" => {
                opt.mode = parse_mode(v).ok_or_else(|| CliError(format!("invalid mode specified: {v:?}")))?;
            }
            other => return Err(CliError(format!("invalid field key {other}"))),
        }
    }
    if opt.source.is_empty() {
        return Err(CliError("source is required".into()));
    }
    if opt.target.is_empty() {
        opt.target = opt.source.clone();
    }
    Ok(opt)
}

/// Docker's `--mount` syntax: `type=bind,source=/a,target=/b[,readonly]`
/// (`src`, `destination`/`dst`, `ro` as aliases).
pub(crate) fn parse_mount(value: &str) -> Result<control::Mount, CliError> {
    let mut m = control::Mount {
        r#type: "volume".into(),
        ..Default::default()
    };
    for field in value.split(',') {
        let (k, v) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_lowercase(), Some(v)),
            None => (field.trim().to_lowercase(), None),
        };
        match (k.as_str(), v) {
            ("type", Some(v)) => m.r#type = v.to_string(),
            ("source" | "src", Some(v)) => m.source = v.to_string(),
            ("target" | "destination" | "dst", Some(v)) => m.target = v.to_string(),
            ("readonly" | "ro", None) => m.read_only = true,
            ("readonly" | "ro", Some(v)) => {
                m.read_only = match v.to_lowercase().as_str() {
                    "1" | "true" => true,
                    "0" | "false" => false,
                    _ => return Err(CliError(format!("invalid value for {k}: {v}"))),
                }
            }
            ("volume-nocopy", v) => {
                m.volume_options.get_or_insert_default().no_copy = match v.map(str::to_lowercase).as_deref() {
                    None | Some("1" | "true") => true,
                    Some("0" | "false") => false,
                    Some(other) => return Err(CliError(format!("invalid value for volume-nocopy: {other}"))),
                }
            }
            ("volume-label", Some(v)) => {
                let (lk, lv) = v.split_once('=').unwrap_or((v, ""));
                m.volume_options
                    .get_or_insert_default()
                    .labels
                    .insert(lk.to_string(), lv.to_string());
            }
            ("volume-driver", Some(v)) => m.volume_options.get_or_insert_default().driver = v.to_string(),
            ("tmpfs-size", Some(v)) => {
                m.tmpfs_options.get_or_insert_default().size_bytes =
                    parse_memory(v).map_err(|_| CliError(format!("invalid value for tmpfs-size: {v}")))?
            }
            ("tmpfs-mode", Some(v)) => {
                m.tmpfs_options.get_or_insert_default().mode =
                    u32::from_str_radix(v, 8).map_err(|_| CliError(format!("invalid value for tmpfs-mode: {v}")))?
            }
            (_, None) => return Err(CliError(format!("invalid field '{field}' must be a key=value pair"))),
            (other, Some(_)) => return Err(CliError(format!("unexpected key '{other}' in '{value}'"))),
        }
    }
    if m.target.is_empty() {
        return Err(CliError("target is required".into()));
    }
    if m.volume_options.is_some() && m.r#type != "volume" {
        return Err(CliError(format!(
            "cannot mix 'volume-*' options with mount type '{}'",
            m.r#type
        )));
    }
    if m.tmpfs_options.is_some() && m.r#type != "tmpfs" {
        return Err(CliError(format!(
            "cannot mix 'tmpfs-*' options with mount type '{}'",
            m.r#type
        )));
    }
    Ok(m)
}

/// Go's `time.ParseDuration` for the forms operators type (`5s`, `1m30s`, `250ms`).
pub fn parse_duration(s: &str) -> Result<u64, CliError> {
    let bad = || CliError(format!("invalid duration {s:?}"));
    if s == "0" {
        return Ok(0);
    }
    let mut total: f64 = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        let (num, tail) = rest.split_at(num_len);
        let value: f64 = num.parse().map_err(|_| bad())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += value * scale;
        rest = tail;
    }
    Ok(total as u64)
}

/// Looks the references' sources up by name, as the docker CLI does before
/// it sends the spec.
pub(crate) async fn resolve_refs(
    client: &mut Client,
    values: &[String],
    secret: bool,
) -> Result<Vec<control::FileReference>, CliError> {
    if values.is_empty() {
        return Ok(Vec::new());
    }
    let opts: Vec<RefOpt> = values.iter().map(|v| parse_ref(v)).collect::<Result<_, _>>()?;
    let filters = control::ListFilters {
        names: opts.iter().map(|o| o.source.clone()).collect(),
        ..Default::default()
    };
    let ids: HashMap<String, String> = if secret {
        client
            .list_secrets(ListSecretsRequest { filters: Some(filters) })
            .await
            .map_err(CliError::from)?
            .into_inner()
            .secrets
            .into_iter()
            .map(|s| {
                (
                    s.spec.and_then(|sp| sp.annotations).map(|a| a.name).unwrap_or_default(),
                    s.id,
                )
            })
            .collect()
    } else {
        client
            .list_configs(ListConfigsRequest { filters: Some(filters) })
            .await
            .map_err(CliError::from)?
            .into_inner()
            .configs
            .into_iter()
            .map(|c| {
                (
                    c.spec.and_then(|sp| sp.annotations).map(|a| a.name).unwrap_or_default(),
                    c.id,
                )
            })
            .collect()
    };
    let kind = if secret { "secret" } else { "config" };
    opts.into_iter()
        .map(|o| {
            let id = ids
                .get(&o.source)
                .cloned()
                .ok_or_else(|| CliError(format!("{kind} not found: {}", o.source)))?;
            Ok(control::FileReference {
                id,
                name: o.source,
                file: Some(control::FileTarget {
                    name: o.target,
                    uid: o.uid,
                    gid: o.gid,
                    mode: o.mode,
                }),
            })
        })
        .collect()
}

/// `image` with its tag (`:latest` when it has none) and `digest`, as the
/// docker CLI pins a service's image; an image given by digest stays as is.
pub fn pinned_image(image: &str, digest: &str) -> String {
    if image.contains('@') {
        return image.to_string();
    }
    format!("{}@{digest}", with_tag(image))
}

/// `image` with `:latest` when it names no tag (a registry's port is not one).
fn with_tag(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') || last.contains(':') {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}

/// How the docker CLI shows a service's image in `service ls` (and `ps`
/// unless `--no-trunc`): a pinned `name:tag@digest` as `name:tag`; one pinned
/// without a tag stays whole.
pub fn display_image(image: &str) -> String {
    match image.split_once('@') {
        Some((named, _)) if named.rsplit('/').next().is_some_and(|last| last.contains(':')) => named.to_string(),
        _ => image.to_string(),
    }
}

/// The docker CLI's words when the registry could not be asked.
pub fn digest_warning(image: &str) -> String {
    let image = with_tag(image);
    format!(
        "image {image} could not be accessed on a registry to record\n\
         its digest. Each node will access {image} independently,\n\
         possibly leading to different nodes running different\n\
         versions of the image.\n"
    )
}

pub async fn create(
    client: &mut Client,
    resolver: Option<&mut super::image::Images>,
    flags: CreateFlags<'_>,
    image: &str,
    args: &[String],
) -> Output {
    let mut warnings = String::new();
    let result = async {
        let secrets = resolve_refs(client, flags.secrets, true).await?;
        let configs = resolve_refs(client, flags.configs, false).await?;
        let restart = control::RestartPolicy {
            // Jobs default to on-failure, as with the docker CLI.
            condition: flags
                .restart_condition
                .unwrap_or(if flags.mode.is_some_and(|m| m.ends_with("-job")) {
                    "on-failure"
                } else {
                    "any"
                })
                .to_string(),
            delay_ns: match flags.restart_delay {
                Some(d) => parse_duration(d)?,
                None => 5_000_000_000,
            },
            max_attempts: flags.restart_max_attempts.unwrap_or(0),
            window_ns: flags.restart_window.map(parse_duration).transpose()?.unwrap_or(0),
        };
        let mode = flags.mode.unwrap_or("replicated");
        if !["replicated", "global", "replicated-job", "global-job"].contains(&mode) {
            return Err(CliError(format!(
                "invalid mode {mode:?}: replicated, global, replicated-job or global-job"
            )));
        }
        if mode.starts_with("global") && flags.replicas.is_some() {
            return Err(CliError(
                "replicas can only be used with replicated or replicated-job mode".into(),
            ));
        }
        if mode != "replicated-job" && flags.max_concurrent.is_some() {
            return Err(CliError(
                "max-concurrent can only be used with replicated-job mode".into(),
            ));
        }
        // A job runs again on a spec change, all at once: it has no rollout.
        if mode.ends_with("-job") && flags.rollout.is_some_and(|r| r.is_set()) {
            return Err(CliError(
                "update and rollback settings (--update-*, --rollback-*) cannot be used with jobs".into(),
            ));
        }
        let mut spec = control::ServiceSpec {
            // Made here, the spec is whole: nothing is left for defaults.
            omitted: None,
            endpoint: super::ports::endpoint(flags.publish, flags.endpoint_mode)?,
            annotations: Some(control::Annotations {
                name: flags.name.unwrap_or("").to_string(),
                labels: parse_labels(flags.labels),
            }),
            task: Some(control::TaskSpec {
                image: image.to_string(),
                command: Vec::new(),
                args: args.to_vec(),
                env: flags.env.to_vec(),
                workdir: flags.workdir.unwrap_or("").to_string(),
                user: flags.user.unwrap_or("").to_string(),
                secrets,
                configs,
                restart: Some(restart),
                stop_grace_period_ns: match flags.stop_grace_period {
                    Some(d) => parse_duration(d)?,
                    None => 10_000_000_000,
                },
                force_update: 0,
                mounts: flags.mounts.iter().map(|m| parse_mount(m)).collect::<Result<_, _>>()?,
                hostname: flags.hostname.unwrap_or("").to_string(),
                read_only: flags.read_only,
                tty: flags.tty,
                networks: flags
                    .networks
                    .iter()
                    .map(|n| parse_network(n))
                    .collect::<Result<_, _>>()?,
                ..Default::default()
            }),
            mode: mode.to_string(),
            // A job's replicas are its total completions (default: as many
            // as run at once, as the docker CLI sends it).
            replicas: flags.replicas.unwrap_or(if mode == "replicated-job" { 0 } else { 1 }),
            update_config: None,
            rollback_config: None,
            max_concurrent: flags.max_concurrent.or(flags.replicas).unwrap_or(0),
        };
        if let Some(rollout) = flags.rollout {
            rollout.apply(&mut spec)?;
        }
        if mode.starts_with("global") && flags.max_replicas.is_some_and(|n| n > 0) {
            return Err(CliError(
                "replicas-max-per-node can only be used with replicated mode".into(),
            ));
        }
        if let Some(task) = spec.task.as_mut() {
            set_resources(&mut task.limits, flags.limit_cpu, flags.limit_memory, flags.limit_pids)?;
            super::placement::update(
                task,
                flags.constraints,
                &[],
                flags.placement_prefs,
                &[],
                flags.max_replicas,
            )?;
            super::placement::reserve(task, flags.reserve_cpu, flags.reserve_memory)?;
        }
        if let (Some(container), Some(task)) = (flags.container, spec.task.as_mut()) {
            container.apply(task)?;
        }
        let registry_auth = if flags.with_registry_auth {
            super::registry_auth::for_image(image)?
        } else {
            Vec::new()
        };
        if let (Some(resolver), Some(task)) = (resolver, spec.task.as_mut()) {
            task.image = pin_image(resolver, image, &registry_auth, &mut warnings).await;
        }
        let resp = client
            .create_service(control::CreateServiceRequest {
                spec: Some(spec),
                registry_auth,
            })
            .await
            .map_err(CliError::from)?;
        Ok(resp.into_inner().service.map(|s| s.id).unwrap_or_default())
    }
    .await;
    match result {
        Ok(id) => Output {
            warnings,
            ..Output::ok(format!("{id}\n"))
        },
        Err(e) => e.into(),
    }
}

/// `image` pinned to the digest its tag names now (asked through a node of
/// the swarm), as the docker CLI does; unchanged, with Docker's warning,
/// when that cannot be known.
pub async fn pin_image(
    resolver: &mut super::image::Images,
    image: &str,
    registry_auth: &[u8],
    warnings: &mut String,
) -> String {
    if image.contains('@') {
        return image.to_string();
    }
    let resolved = resolver
        .resolve_image(swarmkeep_api::containers::ResolveImageRequest {
            reference: image.to_string(),
            registry_auth: registry_auth.to_vec(),
        })
        .await;
    match resolved {
        Ok(r) if r.get_ref().digest.starts_with("sha256:") => pinned_image(image, &r.into_inner().digest),
        _ => {
            warnings.push_str(&digest_warning(image));
            image.to_string()
        }
    }
}

/// `--limit-*` or `--reserve-*` on the task's limits or reservations: each
/// value given replaces its own, the others stay; untouched when none is.
pub fn set_resources(
    resources: &mut Option<control::ResourceLimits>,
    cpu: Option<&str>,
    memory: Option<&str>,
    pids: Option<i64>,
) -> Result<(), CliError> {
    if cpu.is_none() && memory.is_none() && pids.is_none() {
        return Ok(());
    }
    let r = resources.get_or_insert_default();
    if let Some(c) = cpu {
        r.nano_cpus = parse_cpus(c)?;
    }
    if let Some(m) = memory {
        r.memory_bytes = parse_memory(m)?;
    }
    if let Some(p) = pids {
        r.pids = p;
    }
    Ok(())
}

#[cfg(test)]
mod image_tests {
    use super::*;

    #[test]
    fn images_are_pinned_and_shown_as_the_docker_cli_does() {
        let d = "sha256:0123";
        assert_eq!(pinned_image("busybox", d), "busybox:latest@sha256:0123");
        assert_eq!(pinned_image("busybox:1.36", d), "busybox:1.36@sha256:0123");
        assert_eq!(
            pinned_image("127.0.0.1:5000/app", d),
            "127.0.0.1:5000/app:latest@sha256:0123"
        );
        assert_eq!(pinned_image("app@sha256:9999", d), "app@sha256:9999");
        assert_eq!(display_image("busybox:latest@sha256:0123"), "busybox:latest");
        assert_eq!(
            display_image("127.0.0.1:5000/app:v1@sha256:0123"),
            "127.0.0.1:5000/app:v1"
        );
        assert_eq!(
            display_image("127.0.0.1:5000/app@sha256:0123"),
            "127.0.0.1:5000/app@sha256:0123"
        );
        assert_eq!(display_image("bb:latest"), "bb:latest");
        assert_eq!(
            digest_warning("bb"),
            "image bb:latest could not be accessed on a registry to record\n\
             its digest. Each node will access bb:latest independently,\n\
             possibly leading to different nodes running different\n\
             versions of the image.\n"
        );
    }
}

fn truncate_id(id: &str) -> &str {
    &id[..id.len().min(12)]
}

pub async fn ls(client: &mut Client, quiet: bool, format: Option<&str>) -> Output {
    let resp = match client.list_services(ListServicesRequest { filters: None }).await {
        Ok(r) => r.into_inner(),
        Err(s) => return CliError::from(s).into(),
    };
    let counts: HashMap<&str, &control::ServiceCounts> =
        resp.counts.iter().map(|c| (c.service_id.as_str(), c)).collect();
    let mut services: Vec<&control::Service> = resp.services.iter().collect();
    sort_by_name(&mut services, |s| {
        s.spec
            .as_ref()
            .and_then(|sp| sp.annotations.as_ref())
            .map(|a| a.name.as_str())
            .unwrap_or("")
    });
    let rows: Vec<serde_json::Value> = services
        .iter()
        .map(|s| {
            let spec = s.spec.clone().unwrap_or_default();
            let c = counts.get(s.id.as_str());
            let (running, desired) = (c.map(|c| c.running).unwrap_or(0), c.map(|c| c.desired).unwrap_or(0));
            let max_per_node = spec
                .task
                .as_ref()
                .and_then(|t| t.placement.as_ref())
                .map_or(0, |p| p.max_replicas);
            // As the docker CLI: jobs show their progress through the run.
            let replicas = match spec.mode.as_str() {
                "replicated-job" | "global-job" => format!(
                    "{running}/{desired} ({}/{} completed)",
                    c.map(|c| c.completed).unwrap_or(0),
                    c.map(|c| c.total).unwrap_or(0)
                ),
                "replicated" if max_per_node > 0 => format!("{running}/{desired} (max {max_per_node} per node)"),
                _ => format!("{running}/{desired}"),
            };
            serde_json::json!({
                "ID": if format.is_some() || quiet { s.id.as_str() } else { truncate_id(&s.id) },
                "Image": display_image(&spec.task.map(|t| t.image).unwrap_or_default()),
                "Mode": spec.mode.replace('-', " "),
                "Name": spec.annotations.map(|a| a.name).unwrap_or_default(),
                "Ports": super::ports::ls_column(s.endpoint.as_ref()),
                "Replicas": replicas,
            })
        })
        .collect();
    let headers = serde_json::json!({
        "ID": "ID", "Image": "IMAGE", "Mode": "MODE", "Name": "NAME", "Ports": "PORTS", "Replicas": "REPLICAS",
    });
    match crate::format::render_list(super::list_format(quiet, format, LS_FORMAT), &headers, &rows) {
        Ok(s) => Output::ok(s),
        Err(e) => e.into(),
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

pub async fn ps(
    client: &mut Client,
    services: &[String],
    quiet: bool,
    no_trunc: bool,
    filters: &[String],
    format: Option<&str>,
) -> Output {
    let filters = match super::parse_filters(filters, &["desired-state", "id", "name", "node"]) {
        Ok(f) => f,
        Err(e) => return e.into(),
    };
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for name in services {
        match client.get_service(GetServiceRequest { id: name.clone() }).await {
            Ok(r) => found.extend(r.into_inner().service),
            Err(s) if s.code() == tonic::Code::NotFound => errors.push(format!("no such service: {name}")),
            Err(s) => errors.push(daemon_error(&s)),
        }
    }
    if !errors.is_empty() {
        return CliError(errors.join("\n")).into();
    }
    let mut req = ListTasksRequest {
        service_ids: found.iter().map(|s| s.id.clone()).collect(),
        ..Default::default()
    };
    for (k, v) in &filters {
        match k.as_str() {
            "desired-state" => req.desired_states.push(v.to_lowercase()),
            "id" => req.id_prefixes.push(v.clone()),
            _ => {}
        }
    }
    let tasks = match client.list_tasks(req).await {
        Ok(r) => r.into_inner().tasks,
        Err(s) => return CliError::from(s).into(),
    };
    let hostnames: HashMap<String, String> = match client.list_nodes(ListNodesRequest { filters: None }).await {
        Ok(r) => r
            .into_inner()
            .nodes
            .into_iter()
            .map(|n| (n.id.clone(), n.description.map(|d| d.hostname).unwrap_or(n.id)))
            .collect(),
        Err(_) => HashMap::new(),
    };
    let rows = task_rows(tasks, &hostnames, no_trunc || quiet || format.is_some(), &filters);
    let headers = serde_json::json!({
        "ID": "ID", "Name": "NAME", "Image": "IMAGE", "Node": "NODE", "DesiredState": "DESIRED STATE",
        "CurrentState": "CURRENT STATE", "Error": "ERROR", "Ports": "PORTS",
    });
    match crate::format::render_list(super::list_format(quiet, format, PS_FORMAT), &headers, &rows) {
        Ok(s) => Output::ok(s),
        Err(e) => e.into(),
    }
}

/// The `service ps` rows: by service name and slot, the task that is meant
/// to run first, then the older ones as ` \_ name.slot`, newest first.
fn task_rows(
    mut tasks: Vec<control::Task>,
    hostnames: &HashMap<String, String>,
    full: bool,
    filters: &[(String, String)],
) -> Vec<serde_json::Value> {
    let now = OffsetDateTime::now_utc();
    let created = |t: &control::Task| {
        t.meta
            .as_ref()
            .and_then(|m| m.created_at.as_ref())
            .map(|c| (c.seconds, c.nanos))
            .unwrap_or_default()
    };
    tasks.sort_by(|a, b| {
        natord::compare(&a.service_name, &b.service_name)
            .then(a.slot.cmp(&b.slot))
            .then(a.node_id.cmp(&b.node_id))
            .then(created(b).cmp(&created(a)))
    });
    let mut rows = Vec::new();
    let mut prev: Option<(String, u64, String)> = None;
    for t in &tasks {
        let node = hostnames.get(&t.node_id).cloned().unwrap_or_default();
        if filters
            .iter()
            .any(|(k, v)| k == "node" && v != &node && v != &t.node_id)
        {
            continue;
        }
        let key = (
            t.service_name.clone(),
            t.slot,
            if t.slot == 0 { t.node_id.clone() } else { String::new() },
        );
        let base = if t.slot > 0 {
            format!("{}.{}", t.service_name, t.slot)
        } else {
            format!("{}.{}", t.service_name, t.node_id)
        };
        if filters
            .iter()
            .any(|(k, v)| k == "name" && !base.starts_with(v.as_str()))
        {
            continue;
        }
        let name = if prev.as_ref() == Some(&key) {
            format!(" \\_ {base}")
        } else {
            base
        };
        prev = Some(key);
        let status = t.status.clone().unwrap_or_default();
        let current = format!("{} {}", capitalize(&status.state), ago(status.timestamp.as_ref(), now));
        let error = if status.err.is_empty() {
            String::new()
        } else if full {
            format!("\"{}\"", status.err)
        } else {
            let e: String = status.err.chars().take(29).collect();
            format!("\"{e}{}\"", if status.err.chars().count() > 29 { "…" } else { "" })
        };
        rows.push(serde_json::json!({
            "ID": if full { t.id.as_str() } else { truncate_id(&t.id) },
            "Name": name,
            "Image": match t.spec.as_ref().map(|s| s.image.as_str()).unwrap_or_default() {
                image if full => image.to_string(),
                image => display_image(image),
            },
            "Node": node,
            "DesiredState": capitalize(&t.desired_state),
            "CurrentState": current,
            "Error": error,
            // The docker CLI's: the task's host-mode ports, joined by ",".
            "Ports": status
                .port_status
                .iter()
                .map(|p| format!("*:{}->{}/{}", p.published_port, p.target_port, p.protocol))
                .collect::<Vec<_>>()
                .join(","),
        }));
    }
    rows
}

fn pretty(s: &control::Service) -> String {
    let spec = s.spec.clone().unwrap_or_default();
    let task = spec.task.clone().unwrap_or_default();
    let name = spec.annotations.as_ref().map(|a| a.name.clone()).unwrap_or_default();
    let mut out = format!("\nID:\t\t{}\nName:\t\t{}\n", s.id, name);
    if let Some(a) = &spec.annotations
        && !a.labels.is_empty()
    {
        let mut labels: Vec<_> = a.labels.iter().collect();
        labels.sort();
        out.push_str("Labels:\n");
        for (k, v) in labels {
            out.push_str(&format!(" {k}={v}\n"));
        }
    }
    if spec.mode == "global" {
        out.push_str("Service Mode:\tGlobal\n");
    } else {
        out.push_str(&format!("Service Mode:\tReplicated\n Replicas:\t{}\n", spec.replicas));
    }
    if let Some(u) = &s.update_status {
        let now = OffsetDateTime::now_utc();
        out.push_str(&format!("UpdateStatus:\n State:\t\t{}\n", u.state));
        if u.started_at.is_some() {
            out.push_str(&format!(" Started:\t{}\n", ago(u.started_at.as_ref(), now)));
        }
        if u.state == "completed" && u.completed_at.is_some() {
            out.push_str(&format!(" Completed:\t{}\n", ago(u.completed_at.as_ref(), now)));
        }
        out.push_str(&format!(" Message:\t{}\n", u.message));
    }
    out.push_str("Placement:\n");
    if let Some(p) = &task.placement {
        if !p.constraints.is_empty() {
            out.push_str(&format!(" Constraints:\t[{}]\n", p.constraints.join(" ")));
        }
        if !p.spread.is_empty() {
            let prefs: Vec<String> = p.spread.iter().map(|d| format!("spread={d}")).collect();
            out.push_str(&format!(" Preferences:   [{}]\n", prefs.join(" ")));
        }
        if p.max_replicas > 0 {
            out.push_str(&format!(" Max Replicas Per Node:   {}\n", p.max_replicas));
        }
    }
    for (title, order, config) in [
        ("UpdateConfig", "Update order:     ", &spec.update_config),
        ("RollbackConfig", "Rollback order:   ", &spec.rollback_config),
    ] {
        let c = config.clone().unwrap_or_else(engine::default_update_config);
        out.push_str(&format!("{title}:\n Parallelism:\t{}\n", c.parallelism));
        if c.delay_ns > 0 {
            out.push_str(&format!(" Delay:\t\t{}\n", go_duration(c.delay_ns)));
        }
        out.push_str(&format!(" On failure:\t{}\n", c.failure_action));
        if c.monitor_ns > 0 {
            out.push_str(&format!(" Monitoring Period: {}\n", go_duration(c.monitor_ns)));
        }
        out.push_str(&format!(
            " Max failure ratio: {}\n {order} {}\n",
            c.max_failure_ratio, c.order
        ));
    }
    out.push_str(&format!("ContainerSpec:\n Image:\t\t{}\n", task.image));
    if !task.args.is_empty() {
        out.push_str(&format!(" Args:\t\t{} \n", task.args.join(" ")));
    }
    if !task.env.is_empty() {
        out.push_str(&format!(" Env:\t\t{} \n", task.env.join(" ")));
    }
    if !task.workdir.is_empty() {
        out.push_str(&format!(" Dir:\t\t{}\n", task.workdir));
    }
    if !task.user.is_empty() {
        out.push_str(&format!(" User: {}\n", task.user));
    }
    if let Some(init) = task.init {
        out.push_str(&format!(" Init:\t\t{init}\n"));
    }
    for (title, refs) in [("Secrets", &task.secrets), ("Configs", &task.configs)] {
        if refs.is_empty() {
            continue;
        }
        out.push_str(&format!("{title}:\n"));
        for r in refs {
            let target = r.file.as_ref().map(|f| f.name.as_str()).unwrap_or("");
            out.push_str(&format!(" Target:\t{target}\n  Source:\t{}\n", r.name));
        }
    }
    out.push_str("Resources:\nEndpoint Mode:\tvip\n");
    out
}

pub async fn inspect(client: &mut Client, names: &[String], is_pretty: bool, format: Option<&str>) -> Output {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for name in names {
        match client.get_service(GetServiceRequest { id: name.clone() }).await {
            Ok(r) => found.extend(r.into_inner().service),
            // The docker CLI's own words for a service it cannot find.
            Err(s) if s.code() == tonic::Code::NotFound => errors.push(format!("Error: no such service: {name}")),
            Err(s) => errors.push(daemon_error(&s)),
        }
    }
    let texts = is_pretty.then(|| found.iter().map(pretty).collect());
    let json = found.iter().map(engine::service_json).collect();
    inspect_output(json, texts, format, errors)
}

pub async fn scale(client: &mut Client, pairs: &[String]) -> Output {
    let mut out = Output::default();
    let mut errors = Vec::new();
    for pair in pairs {
        let Some((name, n)) = pair.split_once('=') else {
            errors.push(format!(
                "invalid scale specifier '{pair}'.\nSee 'swarmkeep service scale --help'."
            ));
            continue;
        };
        let Ok(replicas) = n.parse::<u64>() else {
            errors.push(format!("invalid replicas value {n}: invalid syntax"));
            continue;
        };
        let result = async {
            let service = client
                .get_service(GetServiceRequest { id: name.to_string() })
                .await?
                .into_inner()
                .service
                .unwrap_or_default();
            let mut spec = service.spec.clone().unwrap_or_default();
            if spec.mode == "global" {
                return Err(tonic::Status::failed_precondition(
                    "scale can only be used with replicated mode",
                ));
            }
            spec.replicas = replicas;
            client
                .update_service(UpdateServiceRequest {
                    id: service.id.clone(),
                    version: service.meta.and_then(|m| m.version),
                    spec: Some(spec),
                    rollback: false,
                    registry_auth: Vec::new(),
                })
                .await
                .map(drop)
        }
        .await;
        match result {
            Ok(()) => out.stdout.push_str(&format!("{name} scaled to {replicas}\n")),
            Err(s) => errors.push(daemon_error(&s)),
        }
    }
    if !errors.is_empty() {
        out.error = Some(CliError(errors.join("\n")));
    }
    out
}

pub async fn rm(client: &mut Client, names: &[String]) -> Output {
    remove_each(names, async |id| {
        client.remove_service(RemoveServiceRequest { id }).await.map(drop)
    })
    .await
}

/// `service logs`: the output of a service's tasks (or one task's), as the
/// docker CLI prints it: `name.slot.task@node    | line`, stderr lines on
/// stderr. Written as it arrives (so `-f` follows).
pub async fn logs(
    client: &mut Client,
    target: &str,
    follow: bool,
    tail: Option<&str>,
    timestamps: bool,
    raw: bool,
) -> Output {
    use std::io::Write;
    let (service, task) = match client.get_service(GetServiceRequest { id: target.into() }).await {
        Ok(r) => (r.into_inner().service, None),
        Err(s) if s.code() == tonic::Code::NotFound => match client
            .get_task(swarmkeep_api::control::GetTaskRequest { id: target.into() })
            .await
        {
            Ok(r) => (None, r.into_inner().task),
            Err(s) if s.code() == tonic::Code::NotFound => {
                return CliError(format!("no such task or service: {target}")).into();
            }
            Err(s) => return CliError(daemon_error(&s)).into(),
        },
        Err(s) => return CliError(daemon_error(&s)).into(),
    };
    let tail = match swarmkeep_api::timefmt::parse_tail(tail) {
        Ok(t) => t,
        Err(e) => return CliError(e).into(),
    };
    // Docker pads the prefix to the widest slot number.
    let width = match (&service, &task) {
        (Some(s), _) => s
            .spec
            .as_ref()
            .map(|sp| sp.replicas.max(1))
            .unwrap_or(1)
            .to_string()
            .len(),
        (None, Some(t)) => t.slot.to_string().len(),
        (None, None) => 1,
    };
    let req = swarmkeep_api::control::ServiceLogsRequest {
        service: service.as_ref().map(|s| s.id.clone()).unwrap_or_default(),
        task: task.as_ref().map(|t| t.id.clone()).unwrap_or_default(),
        follow,
        has_tail: tail.is_some(),
        tail: tail.unwrap_or(0),
        since_ns: 0,
    };
    let mut stream = match client.service_logs(req).await {
        Ok(r) => r.into_inner(),
        Err(s) => return CliError(daemon_error(&s)).into(),
    };
    let hosts: HashMap<String, String> = match client.list_nodes(ListNodesRequest { filters: None }).await {
        Ok(r) => r
            .into_inner()
            .nodes
            .into_iter()
            .map(|n| (n.id, n.description.map(|d| d.hostname).unwrap_or_default()))
            .collect(),
        Err(_) => HashMap::new(),
    };
    let mut prefixes: HashMap<String, String> = HashMap::new();
    loop {
        let msg = match stream.message().await {
            Ok(Some(m)) => m,
            Ok(None) => return Output::default(),
            Err(s) => return CliError(daemon_error(&s)).into(),
        };
        let mut line = Vec::new();
        if timestamps {
            line.extend_from_slice(swarmkeep_api::timefmt::rfc3339_nano_ns(msg.timestamp_ns).as_bytes());
            line.push(b' ');
        }
        if !raw {
            if !prefixes.contains_key(&msg.task_id) {
                let t = client
                    .get_task(swarmkeep_api::control::GetTaskRequest {
                        id: msg.task_id.clone(),
                    })
                    .await
                    .ok()
                    .and_then(|r| r.into_inner().task);
                let (name, slot) = t.map(|t| (t.service_name, t.slot)).unwrap_or_default();
                let pad = " ".repeat(width.saturating_sub(slot.to_string().len()));
                let host = hosts.get(&msg.node_id).map(String::as_str).unwrap_or(&msg.node_id);
                prefixes.insert(
                    msg.task_id.clone(),
                    format!("{name}.{slot}.{}@{host}{pad}    | ", truncate_id(&msg.task_id)),
                );
            }
            line.extend_from_slice(prefixes[&msg.task_id].as_bytes());
        }
        line.extend_from_slice(&msg.data);
        if !line.ends_with(b"\n") {
            line.push(b'\n');
        }
        let written = if msg.stream == 2 {
            std::io::stderr()
                .write_all(&line)
                .and_then(|()| std::io::stderr().flush())
        } else {
            std::io::stdout()
                .write_all(&line)
                .and_then(|()| std::io::stdout().flush())
        };
        if written.is_err() {
            // The reader went away (a closed pipe): stop quietly.
            return Output::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_syntax_is_dockers() {
        let short = parse_ref("db").unwrap();
        assert_eq!(
            (short.source.as_str(), short.target.as_str(), short.mode),
            ("db", "db", 0o444)
        );
        let long = parse_ref("source=db,target=/etc/db.pw,uid=1000,gid=50,mode=0400").unwrap();
        assert_eq!(
            long,
            RefOpt {
                source: "db".into(),
                target: "/etc/db.pw".into(),
                uid: "1000".into(),
                gid: "50".into(),
                mode: 0o400,
            }
        );
        assert_eq!(parse_ref("src=x,mode=292").unwrap().mode, 292);
        assert!(parse_ref("target=x").is_err());
        assert!(parse_ref("source=x,bogus=1").is_err());
    }

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("5s").unwrap(), 5_000_000_000);
        assert_eq!(parse_duration("1m30s").unwrap(), 90_000_000_000);
        assert_eq!(parse_duration("250ms").unwrap(), 250_000_000);
        assert!(parse_duration("5").is_err());
    }
}
