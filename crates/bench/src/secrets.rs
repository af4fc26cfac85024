//! The secret-delivery figures: how long from `service create` until the
//! task has read its secret file (real agent, process executor), and how
//! long 1000 secrets take to reach 100 agents (simulated agents holding real
//! dispatcher sessions with their own node certificates).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use swarmkeep_api::cluster::cluster_client::ClusterClient;
use swarmkeep_api::cluster::node_ca_client::NodeCaClient;
use swarmkeep_api::cluster::{HeartbeatRequest, IssueNodeCertificateRequest};
use swarmkeep_api::control::{
    Annotations, CreateSecretRequest, CreateServiceRequest, FileReference, FileTarget, GetJoinTokenRequest,
    ListNodesRequest, RemoveServiceRequest, RestartPolicy, SecretSpec, ServiceSpec, TaskSpec,
};
use swarmkeep_api::dispatcher::SessionRequest;
use swarmkeep_api::dispatcher::dispatcher_client::DispatcherClient;
use swarmkeep_cli::client::Client;
use swarmkeep_crypto::SessionKey;
use swarmkeep_transport::tls::{NodeTls, TlsCell, pinned_channel};

use crate::percentile;

async fn create_secret(c: &mut Client, name: &str, bytes: usize) -> anyhow::Result<(String, String)> {
    let resp = c
        .create_secret(CreateSecretRequest {
            spec: Some(SecretSpec {
                annotations: Some(Annotations {
                    name: name.into(),
                    labels: Default::default(),
                }),
                data: vec![b's'; bytes],
            }),
        })
        .await?
        .into_inner();
    Ok((resp.secret.map(|s| s.id).unwrap_or_default(), name.to_string()))
}

fn reference((id, name): &(String, String), target: &str) -> FileReference {
    FileReference {
        id: id.clone(),
        name: name.clone(),
        file: Some(FileTarget {
            name: target.into(),
            uid: "0".into(),
            gid: "0".into(),
            mode: 0o444,
        }),
    }
}

/// `service create` → the task has copied its secret file, one service at a
/// time; p50/p99 in ms.
pub async fn create_to_read(c: &mut Client, out: &Path, services: usize) -> anyhow::Result<serde_json::Value> {
    std::fs::create_dir_all(out)?;
    let secret = create_secret(c, "bench-read", 64).await?;
    let mut lat = Vec::with_capacity(services);
    for i in 0..services {
        let done = out.join(format!("{i}"));
        // The task sees the output directory only through a bind mount.
        let script = format!("cat /run/secrets/pw > /out/{i}.tmp && mv /out/{i}.tmp /out/{i}");
        let spec = ServiceSpec {
            annotations: Some(Annotations {
                name: format!("read-{i}"),
                labels: Default::default(),
            }),
            task: Some(TaskSpec {
                image: "busybox".into(),
                args: vec!["sh".into(), "-c".into(), script],
                secrets: vec![reference(&secret, "pw")],
                mounts: vec![swarmkeep_api::control::Mount {
                    r#type: "bind".into(),
                    source: out.display().to_string(),
                    target: "/out".into(),
                    ..Default::default()
                }],
                restart: Some(RestartPolicy {
                    condition: "none".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            mode: "replicated".into(),
            replicas: 1,
            ..Default::default()
        };
        let t = Instant::now();
        c.create_service(CreateServiceRequest {
            spec: Some(spec),
            registry_auth: Vec::new(),
        })
        .await?;
        while !done.exists() {
            if t.elapsed() > Duration::from_secs(30) {
                bail!("service read-{i}: the task did not read its secret within 30 s");
            }
            tokio::time::sleep(Duration::from_micros(250)).await;
        }
        lat.push(t.elapsed());
    }
    for i in 0..services {
        c.remove_service(RemoveServiceRequest {
            id: format!("read-{i}"),
        })
        .await?;
    }
    let first = lat.first().copied().unwrap_or_default();
    lat.sort();
    Ok(serde_json::json!({
        "services": services,
        "create_to_read_first_ms": (first.as_secs_f64() * 1e6).round() / 1000.0,
        "create_to_read_p50_ms": percentile(&lat, 0.5),
        "create_to_read_p90_ms": percentile(&lat, 0.9),
        "create_to_read_p99_ms": percentile(&lat, 0.99),
        "create_to_read_max_ms": percentile(&lat, 1.0),
    }))
}

/// One simulated agent: a real node certificate (joined with the worker
/// token), heartbeats, and a dispatcher session whose secrets it opens.
struct SimAgent {
    tls: std::sync::Arc<TlsCell>,
}

async fn join_agent(addr: &str, ca_pem: &str, token: &str, i: usize) -> anyhow::Result<SimAgent> {
    let (key_pem, csr_pem) = swarmkeep_manager::ca::node_key_and_csr().map_err(|e| anyhow::anyhow!("{e}"))?;
    let resp = NodeCaClient::new(pinned_channel(addr, ca_pem)?)
        .issue_node_certificate(IssueNodeCertificateRequest {
            token: token.into(),
            csr_pem,
            hostname: format!("sim-{i}"),
            advertise_addr: format!("127.0.1.{}:2377", i % 250 + 1),
            os: "linux".into(),
            architecture: "x86_64".into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let tls = NodeTls {
        ca_pem: ca_pem.into(),
        cert_pem: resp.certificate_pem,
        key_pem,
    };
    Ok(SimAgent {
        tls: TlsCell::new(std::sync::Arc::new(tls))?,
    })
}

/// `agents` simulated agents each receive `secrets` secrets through one
/// global service; returns when the last agent has opened all of them.
pub async fn fanout(
    c: &mut Client,
    addr: &str,
    data_dir: &Path,
    agents: usize,
    secrets: usize,
) -> anyhow::Result<serde_json::Value> {
    let ca_pem = std::fs::read_to_string(data_dir.join("tls/ca.crt")).context("reading the CA certificate")?;
    let token = c
        .get_join_token(GetJoinTokenRequest {
            role: "worker".into(),
            rotate: false,
        })
        .await?
        .into_inner()
        .token;
    let mut sims = Vec::new();
    for i in 0..agents {
        sims.push(join_agent(addr, &ca_pem, &token, i).await?);
    }
    // Heartbeats make the nodes Ready, so the global service places a task on each.
    for sim in &sims {
        let channel = sim.tls.channel(addr)?;
        tokio::spawn(async move {
            let mut client = ClusterClient::new(channel);
            loop {
                let _ = client.heartbeat(HeartbeatRequest {}).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let nodes = c
            .list_nodes(ListNodesRequest { filters: None })
            .await?
            .into_inner()
            .nodes;
        let ready = nodes
            .iter()
            .filter(|n| n.status.as_ref().is_some_and(|s| s.state == "ready"))
            .count();
        if ready > agents {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {ready} of {} nodes became Ready", agents + 1);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut refs = Vec::with_capacity(secrets);
    for i in 0..secrets {
        let s = create_secret(c, &format!("fan-{i}"), 64).await?;
        refs.push(reference(&s, &format!("s{i}")));
    }
    // Every agent holds its session before the service exists.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let mut ready_rx = Vec::new();
    for sim in &sims {
        let key = SessionKey::generate();
        let mut client = DispatcherClient::new(sim.tls.channel(addr)?);
        let mut stream = client
            .session(SessionRequest {
                public_key: key.public().to_vec(),
            })
            .await?
            .into_inner();
        let tx = tx.clone();
        let (first_tx, first_rx) = tokio::sync::oneshot::channel::<()>();
        ready_rx.push(first_rx);
        tokio::spawn(async move {
            let mut first = Some(first_tx);
            let mut held = 0usize;
            while let Ok(Some(msg)) = stream.message().await {
                if let Some(f) = first.take() {
                    let _ = f.send(());
                }
                if msg.secrets_updated.is_empty() {
                    continue;
                }
                let Ok(opener) = key.opener(&msg.ephemeral_public_key) else {
                    return;
                };
                for s in &msg.secrets_updated {
                    if opener.open(&s.id, &s.sealed).is_ok() {
                        held += 1;
                    }
                }
                if held >= secrets {
                    let _ = tx.send(Instant::now());
                    return;
                }
            }
        });
    }
    for r in ready_rx {
        let _ = r.await;
    }
    let spec = ServiceSpec {
        annotations: Some(Annotations {
            name: "fanout".into(),
            labels: Default::default(),
        }),
        task: Some(TaskSpec {
            image: "busybox".into(),
            args: vec!["sleep".into(), "1000".into()],
            secrets: refs,
            ..Default::default()
        }),
        mode: "global".into(),
        replicas: 0,
        ..Default::default()
    };
    let t = Instant::now();
    c.create_service(CreateServiceRequest {
        spec: Some(spec),
        registry_auth: Vec::new(),
    })
    .await?;
    let mut done = Vec::with_capacity(agents);
    while done.len() < agents {
        match tokio::time::timeout(Duration::from_secs(60), rx.recv()).await {
            Ok(Some(at)) => done.push(at.duration_since(t)),
            _ => bail!(
                "only {} of {agents} agents received every secret within 60 s",
                done.len()
            ),
        }
    }
    done.sort();
    Ok(serde_json::json!({
        "fanout_agents": agents,
        "fanout_secrets": secrets,
        "fanout_secret_bytes": 64,
        "fanout_first_agent_ms": percentile(&done, 0.0),
        "fanout_p50_ms": percentile(&done, 0.5),
        "fanout_all_ms": percentile(&done, 1.0),
    }))
}
