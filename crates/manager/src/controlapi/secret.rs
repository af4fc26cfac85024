//! Secrets: validated at the door, sealed under the cluster data key before
//! they are proposed, and never returned with their data.

use swarmkeep_api::control;
use swarmkeep_api::errors::rpc;
use swarmkeep_crypto::{SecretBytes, new_id};
use swarmkeep_store::Command;
use swarmkeep_store::objects::Secret;
use tonic::{Code, Status};

use super::common::{
    annotations_from_proto, annotations_to_proto, label_update, meta_to_proto, new_meta, validate_name,
};
use crate::lookup::{matches_filters, resolve};
use crate::state::ManagerState;

/// swarmkit's `MaxSecretSize`: the payload must be shorter than this.
pub const MAX_SECRET_SIZE: usize = 500 * 1024;

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

/// `data` is the payload, taken out of `spec` (whose `data` is ignored)
/// into a zeroizing buffer by the caller.
pub(super) async fn create_secret(
    swarm: &ManagerState,
    spec: Option<control::SecretSpec>,
    data: SecretBytes,
) -> Result<control::Secret, Status> {
    let spec = spec.ok_or_else(|| rpc(Code::InvalidArgument, "invalid argument"))?;
    let annotations = spec.annotations;
    validate_name(annotations.as_ref())?;
    validate_payload(&data)?;

    let id = new_id();
    let sealed_data = swarm.data_key.seal(&id, &data);
    drop(data);
    let secret = Secret {
        id: id.clone(),
        meta: new_meta(),
        annotations: annotations_from_proto(annotations),
        sealed_data,
    };
    let name = secret.annotations.name.clone();
    let index = swarm.write(Command::CreateSecret(secret)).await?;
    tracing::info!(%id, %name, index, "secret created");
    get_secret(swarm, &id).await
}

pub(super) async fn get_secret(swarm: &ManagerState, input: &str) -> Result<control::Secret, Status> {
    swarm
        .store
        .read(|st| resolve("secret", input, &st.secrets, |n| st.secret_by_name(n)).map(to_proto))
}

pub(super) async fn list_secrets(swarm: &ManagerState, filters: Option<&control::ListFilters>) -> Vec<control::Secret> {
    swarm.store.read(|st| {
        st.secrets
            .values()
            .filter(|s| matches_filters(*s, filters))
            .map(to_proto)
            .collect()
    })
}

/// Only labels may change, as in swarmkit; the data, if given, must be the
/// current data (compared in constant time).
pub(super) async fn update_secret(
    swarm: &ManagerState,
    input: &str,
    version: Option<control::Version>,
    spec: Option<control::SecretSpec>,
    data: SecretBytes,
) -> Result<control::Secret, Status> {
    let (Some(version), Some(spec)) = (version, spec) else {
        return Err(rpc(Code::InvalidArgument, "invalid argument"));
    };
    let current = swarm
        .store
        .read(|st| resolve("secret", input, &st.secrets, |n| st.secret_by_name(n)).cloned())?;
    let name = spec.annotations.as_ref().map(|a| a.name.as_str()).unwrap_or("");
    let same_data = data.is_empty() || {
        let opened = swarm.data_key.open(&current.id, &current.sealed_data).map_err(|_| {
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
    swarm.write(Command::UpdateSecretLabels(update)).await?;
    tracing::info!(id = %current.id, "secret labels updated");
    get_secret(swarm, &current.id).await
}

pub(super) async fn remove_secret(swarm: &ManagerState, input: &str) -> Result<(), Status> {
    let id = swarm
        .store
        .read(|st| resolve("secret", input, &st.secrets, |n| st.secret_by_name(n)).map(|s| s.id.clone()))?;
    swarm.write(Command::RemoveSecret { id: id.clone() }).await?;
    tracing::info!(%id, "secret removed");
    Ok(())
}
