//! Durability: 1000 secrets and 1000 configs, `kill -9`, restart — every
//! object is back with the same ID and version; the daemon takes writes again.

use std::collections::BTreeMap;

use swarmkeep_tests::Daemon;
use swarmkeep_tests::control::{
    Annotations, ConfigSpec, CreateConfigRequest, CreateSecretRequest, ListConfigsRequest, ListSecretsRequest,
    SecretSpec,
};

async fn snapshot(d: &Daemon) -> BTreeMap<String, (String, u64)> {
    let mut c = d.client().await;
    let mut all = BTreeMap::new();
    for s in c
        .list_secrets(ListSecretsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .secrets
    {
        let name = s.spec.unwrap().annotations.unwrap().name;
        all.insert(
            format!("secret/{}", s.id),
            (name, s.meta.unwrap().version.unwrap().index),
        );
    }
    for cfg in c
        .list_configs(ListConfigsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .configs
    {
        let name = cfg.spec.unwrap().annotations.unwrap().name;
        all.insert(
            format!("config/{}", cfg.id),
            (name, cfg.meta.unwrap().version.unwrap().index),
        );
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_survive_kill_9_with_ids_and_versions() {
    // A small snapshot interval, so recovery goes through snapshot + log.
    let mut d = Daemon::start_with(&["--snapshot-interval", "300"], "info");
    d.init();
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let mut c = d.client().await;
        tasks.push(tokio::spawn(async move {
            for i in (worker..1000).step_by(8) {
                let ann = |n: String| {
                    Some(Annotations {
                        name: n,
                        labels: Default::default(),
                    })
                };
                let spec = SecretSpec {
                    annotations: ann(format!("s{i}")),
                    data: format!("value-{i}").into_bytes(),
                };
                c.create_secret(CreateSecretRequest { spec: Some(spec) }).await.unwrap();
                let spec = ConfigSpec {
                    annotations: ann(format!("c{i}")),
                    data: format!("cfg-{i}").into_bytes(),
                };
                c.create_config(CreateConfigRequest { spec: Some(spec) }).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let before = snapshot(&d).await;
    assert_eq!(before.len(), 2000);

    d.kill9();
    d.restart();
    let after = snapshot(&d).await;
    assert_eq!(after, before, "same objects, IDs and versions after kill -9");

    // The restarted manager leads again and accepts writes.
    let out = d.cli_stdin(&["secret", "create", "after_restart", "-"], Some(b"x"));
    out.ok();
    assert_eq!(snapshot(&d).await.len(), 2001);
}
