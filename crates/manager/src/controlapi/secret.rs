//! Secrets: validated at the door, sealed under the cluster data key before
//! they are proposed, and never returned with their data.

use std::collections::BTreeMap;

use swarmkeep_api::control;
use swarmkeep_api::errors::rpc;
use swarmkeep_crypto::{SecretBytes, new_id};
use swarmkeep_store::Command;
use swarmkeep_store::objects::Secret;
use tonic::{Code, Status};

use super::common::{
    annotations_from_proto, annotations_to_proto, label_update, meta_to_proto, new_meta, validate_name,
};
use crate::lookup::{Listed, matches_filters, resolve};
use crate::state::ManagerState;

/// swarmkit's `MaxSecretSize`: the payload must be shorter than this.
pub const MAX_SECRET_SIZE: usize = 500 * 1024;

impl Listed for Secret {
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

/// The secret as the API shows it: metadata only.
fn to_proto(s: &Secret) -> control::Secret {
    control::Secret {
        id: s.id.clone(),
        meta: Some(meta_to_proto(&s.meta)),
        spec: Some(control::SecretSpec {
            annotations: Some(annotations_to_proto(&s.annotations)),
            data: Vec::new(),
        }),
    }
}

fn validate_payload(data: &SecretBytes) -> Result<(), Status> {
    if data.is_empty() || data.len() >= MAX_SECRET_SIZE {
        return Err(rpc(
            Code::InvalidArgument,
            format!("secret data must be larger than 0 and less than {MAX_SECRET_SIZE} bytes"),
        ));
    }
    Ok(())
}

impl ManagerState {
    /// `data` is the payload, taken out of `spec` (whose `data` is ignored)
    /// into a zeroizing buffer by the caller.
    pub async fn create_secret(
        &self,
        spec: Option<control::SecretSpec>,
        data: SecretBytes,
    ) -> Result<control::Secret, Status> {
        let spec = spec.ok_or_else(|| rpc(Code::InvalidArgument, "invalid argument"))?;
        let annotations = spec.annotations;
        validate_name(annotations.as_ref())?;
        validate_payload(&data)?;

        let id = new_id();
        let sealed_data = self.data_key.seal(&id, &data);
        drop(data);
        let secret = Secret {
            id: id.clone(),
            meta: new_meta(),
            annotations: annotations_from_proto(annotations),
            sealed_data,
        };
        let name = secret.annotations.name.clone();
        let index = self.write(Command::CreateSecret(secret)).await?;
        tracing::info!(%id, %name, index, "secret created");
        self.get_secret(&id).await
    }

    pub async fn get_secret(&self, input: &str) -> Result<control::Secret, Status> {
        self.store
            .read(|st| resolve("secret", input, &st.secrets, |n| st.secret_by_name(n)).map(to_proto))
    }

    pub async fn list_secrets(&self, filters: Option<&control::ListFilters>) -> Vec<control::Secret> {
        self.store.read(|st| {
            st.secrets
                .values()
                .filter(|s| matches_filters(*s, filters))
                .map(to_proto)
                .collect()
        })
    }

    /// Only labels may change, as in swarmkit; the data, if given, must be the
    /// current data (compared in constant time).
    pub async fn update_secret(
        &self,
        input: &str,
        version: Option<control::Version>,
        spec: Option<control::SecretSpec>,
        data: SecretBytes,
    ) -> Result<control::Secret, Status> {
        let (Some(version), Some(spec)) = (version, spec) else {
            return Err(rpc(Code::InvalidArgument, "invalid argument"));
        };
        let current = self
            .store
            .read(|st| resolve("secret", input, &st.secrets, |n| st.secret_by_name(n)).cloned())?;
        let name = spec.annotations.as_ref().map(|a| a.name.as_str()).unwrap_or("");
        let same_data = data.is_empty() || {
            let opened = self.data_key.open(&current.id, &current.sealed_data).map_err(|_| {
                rpc(
                    Code::Internal,
                    "the stored secret cannot be opened with this manager's data key",
                )
            })?;
            opened.ct_eq(data.expose())
        };
        if name != current.annotations.name || !same_data {
            return Err(rpc(Code::InvalidArgument, "only updates to Labels are allowed"));
        }
        let update = label_update(&current.id, version, spec.annotations);
        self.write(Command::UpdateSecretLabels(update)).await?;
        tracing::info!(id = %current.id, "secret labels updated");
        self.get_secret(&current.id).await
    }

    pub async fn remove_secret(&self, input: &str) -> Result<(), Status> {
        let id = self
            .store
            .read(|st| resolve("secret", input, &st.secrets, |n| st.secret_by_name(n)).map(|s| s.id.clone()))?;
        self.write(Command::RemoveSecret { id: id.clone() }).await?;
        tracing::info!(%id, "secret removed");
        Ok(())
    }
}
