//! Configs: stored plain (shown base64 by inspect), otherwise like secrets.

use std::collections::BTreeMap;

use swarmkeep_api::control;
use swarmkeep_api::errors::rpc;
use swarmkeep_crypto::new_id;
use swarmkeep_store::Command;
use swarmkeep_store::objects::Config;
use tonic::{Code, Status};

use super::common::{
    annotations_from_proto, annotations_to_proto, label_update, meta_to_proto, new_meta, validate_name,
};
use crate::lookup::{Listed, matches_filters, resolve};
use crate::state::ManagerState;

/// swarmkit's `MaxConfigSize`: the payload must be shorter than this.
pub const MAX_CONFIG_SIZE: usize = 1000 * 1024;

impl Listed for Config {
    fn id(&self) -> &str {
        &self.id
    }
    fn name(&self) -> &str {
        &self.annotations.name
    }
    fn labels(&self) -> &BTreeMap<String, String> {
        &self.annotations.labels
    }
}

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

impl ManagerState {
    pub async fn create_config(&self, spec: Option<control::ConfigSpec>) -> Result<control::Config, Status> {
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
        let index = self.write(Command::CreateConfig(config)).await?;
        tracing::info!(%id, %name, index, "config created");
        self.get_config(&id).await
    }

    pub async fn get_config(&self, input: &str) -> Result<control::Config, Status> {
        self.store
            .read(|st| resolve("config", input, &st.configs, |n| st.config_by_name(n)).map(to_proto))
    }

    pub async fn list_configs(&self, filters: Option<&control::ListFilters>) -> Vec<control::Config> {
        self.store.read(|st| {
            st.configs
                .values()
                .filter(|c| matches_filters(*c, filters))
                .map(to_proto)
                .collect()
        })
    }

    pub async fn update_config(
        &self,
        input: &str,
        version: Option<control::Version>,
        spec: Option<control::ConfigSpec>,
    ) -> Result<control::Config, Status> {
        let (Some(version), Some(spec)) = (version, spec) else {
            return Err(rpc(Code::InvalidArgument, "invalid argument"));
        };
        let current = self
            .store
            .read(|st| resolve("config", input, &st.configs, |n| st.config_by_name(n)).cloned())?;
        let name = spec.annotations.as_ref().map(|a| a.name.as_str()).unwrap_or("");
        if name != current.annotations.name || (!spec.data.is_empty() && spec.data != current.data) {
            return Err(rpc(Code::InvalidArgument, "only updates to Labels are allowed"));
        }
        let update = label_update(&current.id, version, spec.annotations);
        self.write(Command::UpdateConfigLabels(update)).await?;
        tracing::info!(id = %current.id, "config labels updated");
        self.get_config(&current.id).await
    }

    pub async fn remove_config(&self, input: &str) -> Result<(), Status> {
        let id = self
            .store
            .read(|st| resolve("config", input, &st.configs, |n| st.config_by_name(n)).map(|c| c.id.clone()))?;
        self.write(Command::RemoveConfig { id: id.clone() }).await?;
        tracing::info!(%id, "config removed");
        Ok(())
    }
}
