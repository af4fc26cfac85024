//! Swarm-wide calls: join tokens.

use swarmkeep_api::control;
use swarmkeep_api::errors::rpc;
use swarmkeep_store::Command;
use time::OffsetDateTime;
use tonic::{Code, Status};

use crate::ActiveSwarm;
use crate::ca::cert_digest;
use crate::tokens;

impl ActiveSwarm {
    /// The join token for `role`, rotated first if asked: a rotated token is
    /// refused from the moment the new one is committed.
    pub async fn join_token(&self, role: &str, rotate: bool) -> Result<control::GetJoinTokenResponse, Status> {
        if role != "worker" && role != "manager" {
            return Err(rpc(Code::InvalidArgument, format!("unknown role {role}")));
        }
        if rotate {
            for _ in 0..10 {
                let mut cluster = self
                    .store
                    .read(|st| st.cluster.clone())
                    .ok_or_else(|| Status::unavailable("no cluster"))?;
                let digest = cert_digest(&cluster.ca_cert_pem).map_err(|e| Status::internal(e.to_string()))?;
                let sealed = self.seal_token(role, &tokens::generate(&digest));
                if role == "worker" {
                    cluster.sealed_worker_token = sealed;
                } else {
                    cluster.sealed_manager_token = sealed;
                }
                cluster.meta.updated_at = OffsetDateTime::now_utc();
                let expected = cluster.meta.version;
                // Only replace the cluster object we read (no lost update).
                let current = self.store.read(|st| st.cluster.as_ref().map(|c| c.meta.version));
                if current != Some(expected) {
                    continue;
                }
                self.write(Command::PutCluster(cluster)).await?;
                tracing::info!(%role, "join token rotated");
                break;
            }
        }
        let cluster = self
            .store
            .read(|st| st.cluster.clone())
            .ok_or_else(|| Status::unavailable("no cluster"))?;
        let sealed = if role == "worker" {
            &cluster.sealed_worker_token
        } else {
            &cluster.sealed_manager_token
        };
        Ok(control::GetJoinTokenResponse {
            token: self.open_token(role, sealed)?,
            manager_addr: self.local.advertise_addr.clone(),
        })
    }
}
