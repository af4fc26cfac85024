//! `--constraint`, `--placement-pref`, `--replicas-max-per-node` and
//! `--reserve-cpu|memory`, with the docker CLI's parse errors; `service
//! update`'s `-add`/`-rm` forms change the service's own.

use swarmkeep_api::control;

use crate::client::CliError;

/// `spread=<descriptor>`, the one strategy Swarm has.
pub fn parse_pref(value: &str) -> Result<String, CliError> {
    match value.split_once('=') {
        Some(("spread", d)) if !d.contains('=') => Ok(d.to_string()),
        Some((strategy, d)) if !d.contains('=') => Err(CliError(format!(
            "unsupported placement preference {strategy} (only spread is supported)"
        ))),
        _ => Err(CliError(
            "placement preference must be of the format \"<strategy>=<arg>\"".into(),
        )),
    }
}

/// The task's reservations with `--reserve-cpu|memory` applied.
pub fn reserve(task: &mut control::TaskSpec, cpu: Option<&str>, memory: Option<&str>) -> Result<(), CliError> {
    super::service::set_resources(&mut task.reservations, cpu, memory, None)
}

/// `service update`'s placement flags on the task's placement.
pub fn update(
    task: &mut control::TaskSpec,
    constraint_add: &[String],
    constraint_rm: &[String],
    pref_add: &[String],
    pref_rm: &[String],
    max_replicas: Option<u64>,
) -> Result<(), CliError> {
    if constraint_add.is_empty()
        && constraint_rm.is_empty()
        && pref_add.is_empty()
        && pref_rm.is_empty()
        && max_replicas.is_none()
    {
        return Ok(());
    }
    let p = task.placement.get_or_insert_default();
    p.constraints.retain(|c| !constraint_rm.contains(c));
    for c in constraint_add {
        if !p.constraints.contains(c) {
            p.constraints.push(c.clone());
        }
    }
    let rm: Vec<String> = pref_rm.iter().map(|v| parse_pref(v)).collect::<Result<_, _>>()?;
    p.spread.retain(|d| !rm.contains(d));
    for v in pref_add {
        p.spread.push(parse_pref(v)?);
    }
    if let Some(n) = max_replicas {
        p.max_replicas = n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preferences_parse_as_the_docker_cli_does() {
        assert_eq!(parse_pref("spread=node.labels.zone").unwrap(), "node.labels.zone");
        assert_eq!(
            parse_pref("pack=x").unwrap_err().0,
            "unsupported placement preference pack (only spread is supported)"
        );
        assert!(parse_pref("spread").unwrap_err().0.contains("<strategy>=<arg>"));
    }
}
