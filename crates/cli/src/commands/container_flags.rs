//! `service create`'s container options that shape the task's sandbox, with
//! the docker CLI's flag names and parse errors.

use swarmkeep_api::control;

use super::parse_labels;
use crate::client::CliError;

#[derive(clap::Args, Default, Debug)]
pub struct ContainerFlags {
    /// Container labels
    #[arg(long = "container-label")]
    pub container_label: Vec<String>,
    /// Set one or more supplementary user groups for the container
    #[arg(long)]
    pub group: Vec<String>,
    /// Signal to stop the container
    #[arg(long)]
    pub stop_signal: Option<String>,
    /// Add Linux capabilities
    #[arg(long)]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long)]
    pub cap_drop: Vec<String>,
    /// Sysctl options
    #[arg(long)]
    pub sysctl: Vec<String>,
    /// Ulimit options (name=soft[:hard])
    #[arg(long)]
    pub ulimit: Vec<String>,
    /// Set one or more custom host-to-IP mappings (host:ip)
    #[arg(long)]
    pub host: Vec<String>,
    /// Set custom DNS servers
    #[arg(long)]
    pub dns: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long)]
    pub dns_search: Vec<String>,
    /// Set DNS options
    #[arg(long)]
    pub dns_option: Vec<String>,
    /// Use an init inside each service container to forward signals and reap processes
    #[arg(long)]
    pub init: bool,
    /// Command to run to check health
    #[arg(long)]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h)
    #[arg(long)]
    pub health_interval: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h)
    #[arg(long)]
    pub health_timeout: Option<String>,
    /// Consecutive failures needed to report unhealthy
    #[arg(long, default_value_t = 0)]
    pub health_retries: i32,
    /// Start period for the container to initialize before counting retries towards unstable (ms|s|m|h)
    #[arg(long)]
    pub health_start_period: Option<String>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long)]
    pub no_healthcheck: bool,
}

fn flag_error(value: &str, flag: &str, why: String) -> CliError {
    CliError(format!("invalid argument \"{value}\" for \"--{flag}\" flag: {why}"))
}

/// go-units' `ParseUlimit`: `name=soft[:hard]`.
pub fn parse_ulimit(value: &str) -> Result<control::Ulimit, CliError> {
    let bad = |why: String| flag_error(value, "ulimit", why);
    let (name, limits) = value
        .split_once('=')
        .ok_or_else(|| bad(format!("invalid ulimit argument: {value}")))?;
    let parts: Vec<&str> = limits.split(':').collect();
    if parts.len() > 2 {
        return Err(bad(format!(
            "too many limit value arguments - {limits}, can only have up to two, `soft[:hard]`"
        )));
    }
    let num = |s: &str| {
        s.parse::<i64>()
            .map_err(|_| bad(format!("strconv.ParseInt: parsing \"{s}\": invalid syntax")))
    };
    let soft = num(parts[0])?;
    let hard = match parts.get(1) {
        Some(h) => num(h)?,
        None => soft,
    };
    swarmkeep_api::sandbox::ulimit_resource(name, soft, hard).map_err(bad)?;
    Ok(control::Ulimit {
        name: name.to_string(),
        soft,
        hard,
    })
}

/// `--host name:ip` → swarmkit's `ip name`.
fn parse_host(value: &str) -> Result<String, CliError> {
    let (name, ip) = value
        .split_once(':')
        .ok_or_else(|| flag_error(value, "host", format!("bad format for add-host: {value:?}")))?;
    if ip.parse::<std::net::IpAddr>().is_err() {
        return Err(flag_error(
            value,
            "host",
            format!("invalid IP address in add-host: {ip:?}"),
        ));
    }
    Ok(format!("{ip} {name}"))
}

/// A health flag's duration (Go's, as the docker CLI parses it).
fn health_duration(flag: &str, value: Option<&String>) -> Result<i64, CliError> {
    match value {
        None => Ok(0),
        Some(v) => {
            let ns = super::service::parse_duration(v)
                .map_err(|_| flag_error(v, flag, format!("time: invalid duration \"{v}\"")))?;
            Ok(i64::try_from(ns).unwrap_or(i64::MAX))
        }
    }
}

impl ContainerFlags {
    /// The docker CLI's `toHealthConfig`: `--no-healthcheck` alone, or the
    /// `--health-*` settings (none: the image's HEALTHCHECK).
    fn healthcheck(&self) -> Result<Option<control::HealthConfig>, CliError> {
        let any = self.health_cmd.is_some()
            || self.health_interval.is_some()
            || self.health_timeout.is_some()
            || self.health_start_period.is_some()
            || self.health_retries != 0;
        if self.no_healthcheck {
            if any {
                return Err(CliError("--no-healthcheck conflicts with --health-* options".into()));
            }
            return Ok(Some(control::HealthConfig {
                test: vec!["NONE".into()],
                ..Default::default()
            }));
        }
        if !any {
            return Ok(None);
        }
        Ok(Some(control::HealthConfig {
            test: match self.health_cmd.as_deref() {
                Some(cmd) if !cmd.is_empty() => vec!["CMD-SHELL".into(), cmd.into()],
                _ => Vec::new(),
            },
            interval_ns: health_duration("health-interval", self.health_interval.as_ref())?,
            timeout_ns: health_duration("health-timeout", self.health_timeout.as_ref())?,
            start_period_ns: health_duration("health-start-period", self.health_start_period.as_ref())?,
            retries: self.health_retries,
        }))
    }

    /// The flags onto `task`.
    pub fn apply(&self, task: &mut control::TaskSpec) -> Result<(), CliError> {
        task.container_labels = parse_labels(&self.container_label);
        task.groups = self.group.clone();
        task.stop_signal = self.stop_signal.clone().unwrap_or_default();
        task.capability_add = self.cap_add.clone();
        task.capability_drop = self.cap_drop.clone();
        task.sysctls = parse_labels(&self.sysctl);
        task.ulimits = self.ulimit.iter().map(|u| parse_ulimit(u)).collect::<Result<_, _>>()?;
        task.hosts = self.host.iter().map(|h| parse_host(h)).collect::<Result<_, _>>()?;
        for ns in &self.dns {
            if ns.parse::<std::net::IpAddr>().is_err() {
                return Err(flag_error(ns, "dns", format!("{ns} is not an ip address")));
            }
        }
        if !(self.dns.is_empty() && self.dns_search.is_empty() && self.dns_option.is_empty()) {
            task.dns_config = Some(control::DnsConfig {
                nameservers: self.dns.clone(),
                search: self.dns_search.clone(),
                options: self.dns_option.clone(),
            });
        }
        task.healthcheck = self.healthcheck()?;
        // The docker CLI always sends Init, false included.
        task.init = Some(self.init);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_as_the_docker_cli_does() {
        let u = parse_ulimit("nofile=1024:2048").unwrap();
        assert_eq!((u.name.as_str(), u.soft, u.hard), ("nofile", 1024, 2048));
        assert_eq!(parse_ulimit("nproc=5").unwrap().hard, 5);
        assert_eq!(
            parse_ulimit("nofile").unwrap_err().0,
            "invalid argument \"nofile\" for \"--ulimit\" flag: invalid ulimit argument: nofile"
        );
        assert!(
            parse_ulimit("bogus=1")
                .unwrap_err()
                .0
                .ends_with("invalid ulimit type: bogus")
        );
        assert_eq!(parse_host("db:10.0.0.9").unwrap(), "10.0.0.9 db");
        assert!(parse_host("db").unwrap_err().0.contains("bad format for add-host"));
        let mut task = control::TaskSpec::default();
        let flags = ContainerFlags {
            dns: vec!["nope".into()],
            ..Default::default()
        };
        assert_eq!(
            flags.apply(&mut task).unwrap_err().0,
            "invalid argument \"nope\" for \"--dns\" flag: nope is not an ip address"
        );
        let flags = ContainerFlags {
            no_healthcheck: true,
            health_retries: 2,
            ..Default::default()
        };
        assert_eq!(
            flags.apply(&mut task).unwrap_err().0,
            "--no-healthcheck conflicts with --health-* options"
        );
        let flags = ContainerFlags {
            health_cmd: Some("test -e /ok".into()),
            health_interval: Some("250ms".into()),
            init: true,
            ..Default::default()
        };
        flags.apply(&mut task).unwrap();
        let h = task.healthcheck.clone().unwrap();
        assert_eq!(h.test, ["CMD-SHELL", "test -e /ok"]);
        assert_eq!((h.interval_ns, h.timeout_ns), (250_000_000, 0));
        assert_eq!(task.init, Some(true));
        let flags = ContainerFlags {
            health_timeout: Some("soon".into()),
            ..Default::default()
        };
        assert_eq!(
            flags.apply(&mut task).unwrap_err().0,
            "invalid argument \"soon\" for \"--health-timeout\" flag: time: invalid duration \"soon\""
        );
    }
}
