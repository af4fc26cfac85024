//! A service's registry credential (`--with-registry-auth`): checked, then
//! sealed under the cluster data key before it enters the raft log, bound
//! to its service (AAD `registry-auth:<service id>`); copied into the
//! service's tasks still sealed; opened only by the dispatcher, to seal it
//! again to the session key of a node that runs one of those tasks. No
//! response type has a field that shows it.

use swarmkeep_api::errors::rpc;
use swarmkeep_crypto::{DataKey, SecretBytes};
use tonic::{Code, Status};

use crate::state::ManagerState;

/// What the credential of service `service_id` is sealed under.
pub(crate) fn aad(service_id: &str) -> String {
    format!("registry-auth:{service_id}")
}

fn check(encoded: &SecretBytes) -> Result<(), Status> {
    swarmkeep_api::registry_auth::decode(encoded.expose())
        .map(|_| ())
        .map_err(|e| rpc(Code::InvalidArgument, e))
}

/// The sealed credential for a new service (None without one).
pub(super) fn seal_new(
    swarm: &ManagerState,
    service_id: &str,
    encoded: SecretBytes,
) -> Result<Option<Vec<u8>>, Status> {
    if encoded.expose().is_empty() {
        return Ok(None);
    }
    check(&encoded)?;
    Ok(Some(swarm.data_key.seal(&aad(service_id), &encoded)))
}

/// The sealed credential after an update: the one sent, or (none sent) the
/// current one, as dockerd keeps it. The same credential sent again keeps
/// its sealed bytes, so that it does not count as a change of the spec.
pub(super) fn seal_update(
    swarm: &ManagerState,
    service_id: &str,
    current: Option<&Vec<u8>>,
    encoded: SecretBytes,
) -> Result<Option<Vec<u8>>, Status> {
    if encoded.expose().is_empty() {
        return Ok(current.cloned());
    }
    check(&encoded)?;
    if let Some(sealed) = current
        && open(&swarm.data_key, service_id, sealed).is_ok_and(|old| old.expose() == encoded.expose())
    {
        return Ok(Some(sealed.clone()));
    }
    Ok(Some(swarm.data_key.seal(&aad(service_id), &encoded)))
}

pub(crate) fn open(key: &DataKey, service_id: &str, sealed: &[u8]) -> Result<SecretBytes, Status> {
    key.open(&aad(service_id), sealed)
        .map_err(|_| Status::internal("a stored registry credential cannot be opened with this manager's data key"))
}
