//! The container options of a task spec that shape its sandbox —
//! capabilities, sysctls, ulimits, groups, stop signal, extra hosts, DNS —
//! checked at the door with Docker's words, so that an agent never gets a
//! spec it would have to refuse (or apply half of).

use swarmkeep_api::control;
use swarmkeep_api::errors::rpc;
use swarmkeep_api::sandbox;
use swarmkeep_store::objects::{DnsConfig, HealthConfig, TaskSpec, Ulimit};
use tonic::{Code, Status};

fn invalid(message: impl Into<String>) -> Status {
    rpc(Code::InvalidArgument, message.into())
}

/// A value that becomes a line of a task file (hosts, resolv.conf): one
/// line, no NUL.
fn one_line(what: &str, v: &str) -> Result<(), Status> {
    if v.contains(['\n', '\r', '\0']) {
        return Err(invalid(format!("invalid {what} {v:?}: must be a single line")));
    }
    Ok(())
}

/// Fills `out`'s sandbox fields from `task`, checking each.
pub(crate) fn options_from_proto(task: &mut control::TaskSpec, out: &mut TaskSpec) -> Result<(), Status> {
    let normalize = |list: &[String]| {
        list.iter()
            .map(|c| sandbox::normalize_capability(c))
            .collect::<Vec<_>>()
    };
    out.capability_add = normalize(&task.capability_add);
    out.capability_drop = normalize(&task.capability_drop);
    sandbox::effective_capabilities(&out.capability_add, &out.capability_drop).map_err(invalid)?;
    if !task.stop_signal.is_empty() {
        sandbox::parse_signal(&task.stop_signal).map_err(invalid)?;
    }
    out.stop_signal = std::mem::take(&mut task.stop_signal);
    for g in &task.groups {
        if g.is_empty() || g.contains([':', '\n', '\0', '/']) {
            return Err(invalid(format!("invalid group {g:?}")));
        }
    }
    out.groups = std::mem::take(&mut task.groups);
    for (name, value) in &task.sysctls {
        sandbox::check_sysctl(name).map_err(invalid)?;
        one_line("sysctl value", value)?;
    }
    out.sysctls = std::mem::take(&mut task.sysctls).into_iter().collect();
    out.ulimits = std::mem::take(&mut task.ulimits)
        .into_iter()
        .map(|u| {
            sandbox::ulimit_resource(&u.name, u.soft, u.hard).map_err(invalid)?;
            Ok(Ulimit {
                name: u.name,
                soft: u.soft,
                hard: u.hard,
            })
        })
        .collect::<Result<_, Status>>()?;
    if let Some(dup) = out
        .ulimits
        .iter()
        .enumerate()
        .find(|(i, u)| out.ulimits[..*i].iter().any(|o| o.name == u.name))
    {
        return Err(invalid(format!("ulimit {} given twice", dup.1.name)));
    }
    for line in &task.hosts {
        one_line("host", line)?;
        let mut fields = line.split_whitespace();
        let ip = fields.next().unwrap_or_default();
        if ip.parse::<std::net::IpAddr>().is_err() || fields.next().is_none() {
            return Err(invalid(format!("invalid IP address in add-host: {line:?}")));
        }
    }
    out.hosts = std::mem::take(&mut task.hosts);
    let dns = task.dns_config.take().unwrap_or_default();
    for ns in &dns.nameservers {
        if ns.parse::<std::net::IpAddr>().is_err() {
            return Err(invalid(format!("{ns} is not an ip address")));
        }
    }
    for domain in &dns.search {
        one_line("DNS search domain", domain)?;
        if domain.is_empty() || domain.contains(char::is_whitespace) || domain.len() > 255 {
            return Err(invalid(format!("{domain} is not a valid domain")));
        }
    }
    for opt in &dns.options {
        one_line("DNS option", opt)?;
        if opt.is_empty() || opt.contains(char::is_whitespace) {
            return Err(invalid(format!("invalid DNS option {opt:?}")));
        }
    }
    out.dns = DnsConfig {
        nameservers: dns.nameservers,
        search: dns.search,
        options: dns.options,
    };
    out.container_labels = std::mem::take(&mut task.container_labels).into_iter().collect();
    out.healthcheck = task.healthcheck.take().map(health_from_proto).transpose()?;
    out.init = task.init;
    Ok(())
}

/// Swarmkit's checks of a HealthConfig, with its words; a test of an
/// unknown kind is refused rather than ignored (dockerd would run no probe).
fn health_from_proto(h: control::HealthConfig) -> Result<HealthConfig, Status> {
    for (what, ns) in [
        ("Interval", h.interval_ns),
        ("Timeout", h.timeout_ns),
        ("StartPeriod", h.start_period_ns),
    ] {
        if ns != 0 && ns < 1_000_000 {
            return Err(invalid(format!(
                "ContainerSpec: {what} in HealthConfig cannot be less than 1ms"
            )));
        }
    }
    if h.retries < 0 {
        return Err(invalid("ContainerSpec: Retries in HealthConfig cannot be negative"));
    }
    match h.test.first().map(String::as_str) {
        None | Some("NONE") => {}
        Some("CMD") | Some("CMD-SHELL") if h.test.len() < 2 || h.test[1].is_empty() => {
            return Err(invalid(format!(
                "ContainerSpec: the {} healthcheck has no command",
                h.test[0]
            )));
        }
        Some("CMD") | Some("CMD-SHELL") => {}
        Some(other) => {
            return Err(invalid(format!(
                "ContainerSpec: unknown healthcheck type {other:?} (expected CMD, CMD-SHELL or NONE)"
            )));
        }
    }
    if h.test.iter().any(|a| a.contains('\0')) {
        return Err(invalid("ContainerSpec: a healthcheck argument contains a NUL byte"));
    }
    Ok(HealthConfig {
        test: h.test,
        interval_ns: h.interval_ns,
        timeout_ns: h.timeout_ns,
        start_period_ns: h.start_period_ns,
        retries: h.retries,
    })
}

/// The sandbox fields of `t` onto `out`.
pub(crate) fn options_to_proto(t: &TaskSpec, out: &mut control::TaskSpec) {
    out.container_labels = t.container_labels.clone().into_iter().collect();
    out.groups = t.groups.clone();
    out.stop_signal = t.stop_signal.clone();
    out.capability_add = t.capability_add.clone();
    out.capability_drop = t.capability_drop.clone();
    out.sysctls = t.sysctls.clone().into_iter().collect();
    out.ulimits = t
        .ulimits
        .iter()
        .map(|u| control::Ulimit {
            name: u.name.clone(),
            soft: u.soft,
            hard: u.hard,
        })
        .collect();
    out.hosts = t.hosts.clone();
    out.dns_config = (t.dns != DnsConfig::default()).then(|| control::DnsConfig {
        nameservers: t.dns.nameservers.clone(),
        search: t.dns.search.clone(),
        options: t.dns.options.clone(),
    });
    out.healthcheck = t.healthcheck.as_ref().map(|h| control::HealthConfig {
        test: h.test.clone(),
        interval_ns: h.interval_ns,
        timeout_ns: h.timeout_ns,
        start_period_ns: h.start_period_ns,
        retries: h.retries,
    });
    out.init = t.init;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(f: impl FnOnce(&mut control::TaskSpec)) -> Result<TaskSpec, String> {
        let mut task = control::TaskSpec::default();
        f(&mut task);
        let mut out = TaskSpec::default();
        options_from_proto(&mut task, &mut out).map_err(|s| s.message().to_string())?;
        Ok(out)
    }

    #[test]
    fn bad_options_get_dockers_words() {
        let e = check(|t| t.capability_add = vec!["CAP_NOPE".into()]).unwrap_err();
        assert_eq!(e, "unknown capability: \"CAP_NOPE\"");
        let e = check(|t| t.stop_signal = "SIGNOPE".into()).unwrap_err();
        assert_eq!(e, "Invalid signal: SIGNOPE");
        let e = check(|t| {
            t.sysctls.insert("kernel.core_pattern".into(), "|/tmp/x".into());
        })
        .unwrap_err();
        assert_eq!(e, "sysctl 'kernel.core_pattern' is not whitelisted");
        let e = check(|t| t.hosts = vec!["nothost 1.2.3.4".into()]).unwrap_err();
        assert!(e.starts_with("invalid IP address in add-host"), "{e}");
        let e = check(|t| t.hosts = vec!["1.2.3.4 a\n5.6.7.8 b".into()]).unwrap_err();
        assert!(e.contains("single line"), "{e}");
        let e = check(|t| {
            t.dns_config = Some(control::DnsConfig {
                nameservers: vec!["dns.example".into()],
                ..Default::default()
            })
        })
        .unwrap_err();
        assert_eq!(e, "dns.example is not an ip address");
        let e = check(|t| {
            t.ulimits = vec![control::Ulimit {
                name: "nofile".into(),
                soft: 10,
                hard: 5,
            }]
        })
        .unwrap_err();
        assert!(e.contains("10 > 5"), "{e}");
    }

    #[test]
    fn good_options_are_kept_normalised() {
        let out = check(|t| {
            t.capability_add = vec!["net_admin".into()];
            t.capability_drop = vec!["CAP_CHOWN".into()];
            t.stop_signal = "SIGUSR1".into();
            t.sysctls.insert("net.ipv4.ip_forward".into(), "1".into());
            t.hosts = vec!["10.0.0.9 db db.local".into()];
        })
        .unwrap();
        assert_eq!(out.capability_add, ["CAP_NET_ADMIN"]);
        assert_eq!(out.capability_drop, ["CAP_CHOWN"]);
        assert_eq!(out.stop_signal, "SIGUSR1");
        let mut back = control::TaskSpec::default();
        options_to_proto(&out, &mut back);
        assert_eq!(back.sysctls.get("net.ipv4.ip_forward").map(String::as_str), Some("1"));
        assert_eq!(back.hosts, ["10.0.0.9 db db.local"]);
        assert!(back.dns_config.is_none());
    }

    #[test]
    fn healthchecks_are_checked_with_swarmkits_words_and_kept() {
        let health = |f: fn(&mut control::HealthConfig)| {
            check(move |t| {
                let mut h = control::HealthConfig {
                    test: vec!["CMD-SHELL".into(), "true".into()],
                    ..Default::default()
                };
                f(&mut h);
                t.healthcheck = Some(h);
            })
        };
        let e = health(|h| h.interval_ns = 500_000).unwrap_err();
        assert_eq!(e, "ContainerSpec: Interval in HealthConfig cannot be less than 1ms");
        let e = health(|h| h.timeout_ns = 1).unwrap_err();
        assert_eq!(e, "ContainerSpec: Timeout in HealthConfig cannot be less than 1ms");
        let e = health(|h| h.start_period_ns = 999_999).unwrap_err();
        assert_eq!(e, "ContainerSpec: StartPeriod in HealthConfig cannot be less than 1ms");
        let e = health(|h| h.retries = -1).unwrap_err();
        assert_eq!(e, "ContainerSpec: Retries in HealthConfig cannot be negative");
        let e = health(|h| h.test = vec!["SHELL".into(), "true".into()]).unwrap_err();
        assert!(e.contains("unknown healthcheck type \"SHELL\""), "{e}");
        let e = health(|h| h.test = vec!["CMD".into()]).unwrap_err();
        assert!(e.contains("has no command"), "{e}");
        let out = health(|h| {
            h.interval_ns = 2_000_000_000;
            h.retries = 5;
        })
        .unwrap();
        let kept = out.healthcheck.clone().unwrap();
        assert_eq!((kept.interval_ns, kept.retries), (2_000_000_000, 5));
        let mut back = control::TaskSpec::default();
        options_to_proto(&out, &mut back);
        assert_eq!(back.healthcheck.unwrap().test, ["CMD-SHELL", "true"]);
        assert!(health(|h| h.test = vec!["NONE".into()]).is_ok());
        let out = check(|t| t.init = Some(false)).unwrap();
        assert_eq!(out.init, Some(false), "Init is kept as given, false included");
    }
}
