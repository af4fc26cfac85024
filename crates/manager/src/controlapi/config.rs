//! Configs: stored plain (shown base64 by inspect), otherwise like secrets.

use swarmkeep_api::control;
use swarmkeep_api::errors::rpc;
use swarmkeep_crypto::new_id;
use swarmkeep_store::Command;
use swarmkeep_store::objects::Config;
use tonic::{Code, Status};

use super::common::{
    annotations_from_proto, annotations_to_proto, label_update, meta_to_proto, new_meta, validate_name,
};
use crate::lookup::{matches_filters, resolve};
use crate::state::ManagerState;

/// swarmkit's `MaxConfigSize`: the payload must be shorter than this.
pub const MAX_CONFIG_SIZE: usize = 1000 * 1024;

fn to_proto(c: &Config) -> control::Config {
    control::Config {
        id: c.id.clone(),
        meta: Some(meta_to_proto(&c.meta)),
        spec: Some(control::ConfigSpec {
            annotations: Some(annotations_to_proto(&c.annotations)),
            data: c.data.clone(),
        }),
    }
}

pub(super) async fn create_config(
    swarm: &ManagerState,
    spec: Option<control::ConfigSpec>,
) -> Result<control::Config, Status> {
    let spec = spec.ok_or_else(|| rpc(Code::InvalidArgument, "invalid argument"))?;
    validate_name(spec.annotations.as_ref())?;
    if spec.data.is_empty() || spec.data.len() >= MAX_CONFIG_SIZE {
        return Err(rpc(
            Code::InvalidArgument,
            format!("config data must be larger than 0 and less than {MAX_CONFIG_SIZE} bytes"),
        ));
    }
    let annotations = spec.annotations;
    let id = new_id();
    let config = Config {
        id: id.clone(),
        meta: new_meta(),
        annotations: annotations_from_proto(annotations),
        data: spec.data,
    };
    let name = config.annotations.name.clone();
    let index = swarm.write(Command::CreateConfig(config)).await?;
    tracing::info!(%id, %name, index, "config created");
    get_config(swarm, &id).await
}

pub(super) async fn get_config(swarm: &ManagerState, input: &str) -> Result<control::Config, Status> {
    swarm
        .store
        .read(|st| resolve("config", input, &st.configs, |n| st.config_by_name(n)).map(to_proto))
}

pub(super) async fn list_configs(swarm: &ManagerState, filters: Option<&control::ListFilters>) -> Vec<control::Config> {
    swarm.store.read(|st| {
        st.configs
            .values()
            .filter(|c| matches_filters(*c, filters))
            .map(to_proto)
            .collect()
    })
}

pub(super) async fn update_config(
    swarm: &ManagerState,
    input: &str,
    version: Option<control::Version>,
    spec: Option<control::ConfigSpec>,
) -> Result<control::Config, Status> {
    let (Some(version), Some(spec)) = (version, spec) else {
        return Err(rpc(Code::InvalidArgument, "invalid argument"));
    };
    let current = swarm
        .store
        .read(|st| resolve("config", input, &st.configs, |n| st.config_by_name(n)).cloned())?;
    let name = spec.annotations.as_ref().map(|a| a.name.as_str()).unwrap_or("");
    if name != current.annotations.name || (!spec.data.is_empty() && spec.data != current.data) {
        return Err(rpc(Code::InvalidArgument, "only updates to Labels are allowed"));
    }
    let update = label_update(&current.id, version, spec.annotations);
    swarm.write(Command::UpdateConfigLabels(update)).await?;
    tracing::info!(id = %current.id, "config labels updated");
    get_config(swarm, &current.id).await
}

pub(super) async fn remove_config(swarm: &ManagerState, input: &str) -> Result<(), Status> {
    let id = swarm
        .store
        .read(|st| resolve("config", input, &st.configs, |n| st.config_by_name(n)).map(|c| c.id.clone()))?;
    swarm.write(Command::RemoveConfig { id: id.clone() }).await?;
    tracing::info!(%id, "config removed");
    Ok(())
}
