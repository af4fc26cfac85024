//! `--update-*` and `--rollback-*`: how `service create|update` roll a spec
//! change out, with the docker CLI's flag names. Each flag given replaces
//! that one setting; the others keep what the service has (Swarm's defaults
//! for a new one).

use swarmkeep_api::control;

use super::service::parse_duration;
use crate::client::CliError;

#[derive(clap::Args, Default, Debug)]
pub struct RolloutFlags {
    /// Maximum number of tasks updated simultaneously (0 to update all at once)
    #[arg(long)]
    pub update_parallelism: Option<u64>,
    /// Delay between updates (ns|us|ms|s|m|h)
    #[arg(long)]
    pub update_delay: Option<String>,
    /// Action on update failure ("pause", "continue", "rollback")
    #[arg(long)]
    pub update_failure_action: Option<String>,
    /// Duration after each task update to monitor for failure (ns|us|ms|s|m|h)
    #[arg(long)]
    pub update_monitor: Option<String>,
    /// Failure rate to tolerate during an update
    #[arg(long)]
    pub update_max_failure_ratio: Option<f32>,
    /// Update order ("start-first", "stop-first")
    #[arg(long)]
    pub update_order: Option<String>,
    /// Maximum number of tasks rolled back simultaneously (0 to roll back all at once)
    #[arg(long)]
    pub rollback_parallelism: Option<u64>,
    /// Delay between task rollbacks (ns|us|ms|s|m|h)
    #[arg(long)]
    pub rollback_delay: Option<String>,
    /// Action on rollback failure ("pause", "continue")
    #[arg(long)]
    pub rollback_failure_action: Option<String>,
    /// Duration after each task rollback to monitor for failure (ns|us|ms|s|m|h)
    #[arg(long)]
    pub rollback_monitor: Option<String>,
    /// Failure rate to tolerate during a rollback
    #[arg(long)]
    pub rollback_max_failure_ratio: Option<f32>,
    /// Rollback order ("start-first", "stop-first")
    #[arg(long)]
    pub rollback_order: Option<String>,
}

struct One<'a> {
    parallelism: Option<u64>,
    delay: Option<&'a str>,
    failure_action: Option<&'a str>,
    monitor: Option<&'a str>,
    max_failure_ratio: Option<f32>,
    order: Option<&'a str>,
}

impl One<'_> {
    fn is_set(&self) -> bool {
        self.parallelism.is_some()
            || self.delay.is_some()
            || self.failure_action.is_some()
            || self.monitor.is_some()
            || self.max_failure_ratio.is_some()
            || self.order.is_some()
    }

    /// `config` (or Swarm's defaults) with the flags given; unchanged when
    /// none is.
    fn apply(&self, config: &mut Option<control::UpdateConfig>) -> Result<(), CliError> {
        if !self.is_set() {
            return Ok(());
        }
        let c = config.get_or_insert_with(swarmkeep_api::engine::default_update_config);
        if let Some(p) = self.parallelism {
            c.parallelism = p;
        }
        if let Some(d) = self.delay {
            c.delay_ns = parse_duration(d)?;
        }
        if let Some(a) = self.failure_action {
            c.failure_action = a.to_string();
        }
        if let Some(m) = self.monitor {
            c.monitor_ns = parse_duration(m)?;
        }
        if let Some(r) = self.max_failure_ratio {
            c.max_failure_ratio = r;
        }
        if let Some(o) = self.order {
            c.order = o.to_string();
        }
        Ok(())
    }
}

impl RolloutFlags {
    /// Whether any `--update-*` or `--rollback-*` flag is given.
    pub fn is_set(&self) -> bool {
        self.update_parallelism.is_some()
            || self.update_delay.is_some()
            || self.update_failure_action.is_some()
            || self.update_monitor.is_some()
            || self.update_max_failure_ratio.is_some()
            || self.update_order.is_some()
            || self.rollback_parallelism.is_some()
            || self.rollback_delay.is_some()
            || self.rollback_failure_action.is_some()
            || self.rollback_monitor.is_some()
            || self.rollback_max_failure_ratio.is_some()
            || self.rollback_order.is_some()
    }

    pub fn apply(&self, spec: &mut control::ServiceSpec) -> Result<(), CliError> {
        One {
            parallelism: self.update_parallelism,
            delay: self.update_delay.as_deref(),
            failure_action: self.update_failure_action.as_deref(),
            monitor: self.update_monitor.as_deref(),
            max_failure_ratio: self.update_max_failure_ratio,
            order: self.update_order.as_deref(),
        }
        .apply(&mut spec.update_config)?;
        One {
            parallelism: self.rollback_parallelism,
            delay: self.rollback_delay.as_deref(),
            failure_action: self.rollback_failure_action.as_deref(),
            monitor: self.rollback_monitor.as_deref(),
            max_failure_ratio: self.rollback_max_failure_ratio,
            order: self.rollback_order.as_deref(),
        }
        .apply(&mut spec.rollback_config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_replaces_its_setting_and_keeps_the_others() {
        let mut spec = control::ServiceSpec::default();
        RolloutFlags::default().apply(&mut spec).unwrap();
        assert_eq!(spec.update_config, None);
        let flags = RolloutFlags {
            update_parallelism: Some(2),
            update_delay: Some("1s".into()),
            rollback_order: Some("start-first".into()),
            ..Default::default()
        };
        flags.apply(&mut spec).unwrap();
        let u = spec.update_config.clone().unwrap();
        assert_eq!(
            (u.parallelism, u.delay_ns, u.monitor_ns),
            (2, 1_000_000_000, 5_000_000_000)
        );
        assert_eq!(u.failure_action, "pause");
        assert_eq!(spec.rollback_config.clone().unwrap().order, "start-first");
        let again = RolloutFlags {
            update_failure_action: Some("rollback".into()),
            ..Default::default()
        };
        again.apply(&mut spec).unwrap();
        let u = spec.update_config.unwrap();
        assert_eq!((u.parallelism, u.failure_action.as_str()), (2, "rollback"));
    }
}
