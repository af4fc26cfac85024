//! `-p/--publish` and `--endpoint-mode`, read as the docker CLI reads them:
//! `PUBLISHED:TARGET[/PROTO]`, `TARGET[/PROTO]` (a published port chosen by
//! the swarm), ranges of the same length (`8080-8081:80-81`), or the long
//! form `mode=host,target=80,published=8080,protocol=udp`.

use swarmkeep_api::control;

use crate::client::CliError;

/// The service's endpoint spec from its flags (None when neither is given).
pub fn endpoint(publish: &[String], mode: Option<&str>) -> Result<Option<control::EndpointSpec>, CliError> {
    if publish.is_empty() && mode.is_none() {
        return Ok(None);
    }
    let mut ports = Vec::new();
    for p in publish {
        ports.extend(parse(p)?);
    }
    Ok(Some(control::EndpointSpec {
        mode: mode.unwrap_or("vip").to_string(),
        ports,
    }))
}

fn invalid(value: &str, why: &str) -> CliError {
    CliError(format!(
        "invalid argument \"{value}\" for \"-p, --publish\" flag: {why}"
    ))
}

/// One `-p` value: one port, or several for a range.
pub fn parse(value: &str) -> Result<Vec<control::PortConfig>, CliError> {
    if value.contains('=') {
        return long(value).map(|p| vec![p]);
    }
    let (ports, proto) = match value.split_once('/') {
        Some((ports, proto)) => (ports, proto.to_lowercase()),
        None => (value, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(invalid(value, &format!("invalid proto: {proto}")));
    }
    let (published, target) = match ports.rsplit_once(':') {
        // `ip:published:target`: the host address is not a swarm's to bind.
        Some((left, target)) => {
            if left.contains(':') {
                return Err(invalid(value, "a host IP is not supported with swarm services"));
            }
            (Some(left), target)
        }
        None => (None, ports),
    };
    let targets = range(target).ok_or_else(|| invalid(value, &format!("invalid containerPort: {target}")))?;
    let published = match published {
        None | Some("") => None,
        Some(p) => Some(range(p).ok_or_else(|| invalid(value, &format!("invalid hostPort: {p}")))?),
    };
    if let Some(p) = &published
        && p.len() != targets.len()
        && p.len() != 1
    {
        return Err(invalid(
            value,
            &format!(
                "invalid ranges specified for container and host Ports: {target} and {}",
                ports
            ),
        ));
    }
    Ok(targets
        .iter()
        .enumerate()
        .map(|(i, t)| control::PortConfig {
            name: String::new(),
            protocol: proto.clone(),
            target_port: *t,
            published_port: published.as_ref().map_or(0, |p| if p.len() == 1 { p[0] } else { p[i] }),
            publish_mode: "ingress".into(),
        })
        .collect())
}

/// `80` or `80-82`.
fn range(text: &str) -> Option<Vec<u32>> {
    let (a, b) = text.split_once('-').unwrap_or((text, text));
    let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
    if a == 0 || b < a || b > 65535 {
        return None;
    }
    Some((a..=b).collect())
}

fn long(value: &str) -> Result<control::PortConfig, CliError> {
    let mut p = control::PortConfig {
        protocol: "tcp".into(),
        publish_mode: "ingress".into(),
        ..Default::default()
    };
    for field in value.split(',') {
        let (key, v) = field
            .split_once('=')
            .ok_or_else(|| invalid(value, &format!("invalid field {field}")))?;
        let number = || -> Result<u32, CliError> {
            v.parse::<u32>()
                .ok()
                .filter(|n| *n <= 65535)
                .ok_or_else(|| invalid(value, &format!("invalid {key} {v}")))
        };
        match key.to_lowercase().as_str() {
            "protocol" => {
                if !matches!(v, "tcp" | "udp" | "sctp") {
                    return Err(invalid(value, &format!("invalid protocol value '{v}'")));
                }
                p.protocol = v.into();
            }
            "mode" => {
                if !matches!(v, "ingress" | "host") {
                    return Err(invalid(
                        value,
                        &format!("invalid publish mode value ({v}): must be either 'ingress' or 'host'"),
                    ));
                }
                p.publish_mode = v.into();
            }
            "target" => p.target_port = number()?,
            "published" => p.published_port = number()?,
            other => return Err(invalid(value, &format!("invalid field key {other}"))),
        }
    }
    if p.target_port == 0 {
        return Err(invalid(value, "missing mandatory field \"target\""));
    }
    Ok(p)
}

/// `service ls`'s PORTS, as the docker CLI writes them: the ports published
/// through the routing mesh, `*:PUBLISHED->TARGET/PROTOCOL`, runs of
/// consecutive ports folded into ranges (`*:8080-8081->80-81/tcp`).
pub fn ls_column(endpoint: Option<&control::Endpoint>) -> String {
    let mut ports: Vec<&control::PortConfig> = endpoint
        .map(|e| e.ports.iter().filter(|p| p.publish_mode != "host").collect())
        .unwrap_or_default();
    ports.sort_by(|a, b| (&a.protocol, a.published_port).cmp(&(&b.protocol, b.published_port)));
    let mut out: Vec<String> = Vec::new();
    let mut run: Option<(&str, u32, u32, u32, u32)> = None;
    let show = |(proto, p0, p1, t0, t1): (&str, u32, u32, u32, u32)| {
        let proto = if proto.is_empty() { "tcp" } else { proto };
        if p0 == p1 {
            format!("*:{p0}->{t0}/{proto}")
        } else {
            format!("*:{p0}-{p1}->{t0}-{t1}/{proto}")
        }
    };
    for p in ports {
        run = match run {
            Some((proto, p0, p1, t0, t1))
                if proto == p.protocol && p.published_port == p1 + 1 && p.target_port == t1 + 1 =>
            {
                Some((proto, p0, p.published_port, t0, p.target_port))
            }
            other => {
                out.extend(other.map(show));
                Some((
                    p.protocol.as_str(),
                    p.published_port,
                    p.published_port,
                    p.target_port,
                    p.target_port,
                ))
            }
        };
    }
    out.extend(run.map(show));
    out.join(", ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_ports_column_is_the_docker_clis() {
        let port = |published: u32, target: u32, protocol: &str, mode: &str| control::PortConfig {
            protocol: protocol.into(),
            target_port: target,
            published_port: published,
            publish_mode: mode.into(),
            ..Default::default()
        };
        let endpoint = control::Endpoint {
            ports: vec![
                port(8081, 81, "tcp", "ingress"),
                port(8080, 80, "tcp", "ingress"),
                port(53, 53, "udp", "ingress"),
                port(9000, 90, "tcp", "host"),
                port(30000, 443, "tcp", "ingress"),
            ],
            ..Default::default()
        };
        assert_eq!(
            ls_column(Some(&endpoint)),
            "*:8080-8081->80-81/tcp, *:30000->443/tcp, *:53->53/udp"
        );
        assert_eq!(ls_column(None), "");
    }

    use super::*;

    #[test]
    fn short_and_long_forms() {
        let p = parse("8080:80").unwrap();
        assert_eq!(
            (p[0].published_port, p[0].target_port, p[0].protocol.as_str()),
            (8080, 80, "tcp")
        );
        let p = parse("53/udp").unwrap();
        assert_eq!(
            (p[0].published_port, p[0].target_port, p[0].protocol.as_str()),
            (0, 53, "udp")
        );
        let p = parse("8080-8081:80-81").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!((p[1].published_port, p[1].target_port), (8081, 81));
        let p = parse("mode=host,target=80,published=9000").unwrap();
        assert_eq!((p[0].publish_mode.as_str(), p[0].published_port), ("host", 9000));
        assert!(parse("x:80").unwrap_err().0.contains("invalid hostPort: x"));
        assert!(parse("80/icmp").unwrap_err().0.contains("invalid proto"));
        assert!(parse("mode=host").unwrap_err().0.contains("target"));
        assert!(parse("8080-8082:80-81").is_err());
    }
}
