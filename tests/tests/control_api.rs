//! Control API calls the CLI has no command for: label-only updates of
//! secrets and configs, with swarmkit's refusals and optimistic concurrency.

use swarmkeep_tests::Daemon;
use swarmkeep_tests::control::{
    Annotations, ConfigSpec, CreateConfigRequest, CreateSecretRequest, SecretSpec, UpdateConfigRequest,
    UpdateSecretRequest, Version,
};

fn ann(name: &str, labels: &[(&str, &str)]) -> Option<Annotations> {
    Some(Annotations {
        name: name.into(),
        labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    })
}

#[tokio::test]
async fn only_labels_change_and_stale_versions_are_refused() {
    let d = Daemon::start();
    d.init();
    let mut c = d.client().await;
    let spec = SecretSpec {
        annotations: ann("pw", &[]),
        data: b"hunter2".to_vec(),
    };
    let s = c
        .create_secret(CreateSecretRequest { spec: Some(spec) })
        .await
        .unwrap()
        .into_inner()
        .secret
        .unwrap();
    let v1 = s.meta.as_ref().unwrap().version.unwrap().index;
    let update = |name: &str, data: &[u8], labels: &[(&str, &str)], version: u64| UpdateSecretRequest {
        id: "pw".into(),
        version: Some(Version { index: version }),
        spec: Some(SecretSpec {
            annotations: ann(name, labels),
            data: data.to_vec(),
        }),
    };

    let err = c
        .update_secret(update("pw", b"other", &[("a", "b")], v1))
        .await
        .unwrap_err();
    assert_eq!(err.message(), "only updates to Labels are allowed");
    let err = c.update_secret(update("renamed", b"", &[], v1)).await.unwrap_err();
    assert_eq!(err.message(), "only updates to Labels are allowed");
    assert!(!err.message().contains("hunter2"));

    // The same data, or none, with new labels is accepted.
    let s2 = c
        .update_secret(update("pw", b"hunter2", &[("env", "prod")], v1))
        .await
        .unwrap()
        .into_inner();
    let s2 = s2.secret.unwrap();
    assert_eq!(
        s2.spec.as_ref().unwrap().annotations.as_ref().unwrap().labels["env"],
        "prod"
    );
    assert!(
        s2.spec.as_ref().unwrap().data.is_empty(),
        "responses never carry the payload"
    );
    let v2 = s2.meta.as_ref().unwrap().version.unwrap().index;
    assert!(v2 > v1);
    let stale = c
        .update_secret(update("pw", b"", &[("env", "dev")], v1))
        .await
        .unwrap_err();
    assert_eq!(stale.message(), "update out of sequence");
    let shown = d.cli(&["secret", "inspect", "--format", "{{json .Spec.Labels}}", "pw"]);
    assert_eq!(shown.ok(), "{\"env\":\"prod\"}\n");

    let spec = ConfigSpec {
        annotations: ann("cfg", &[]),
        data: b"a: 1".to_vec(),
    };
    let cfg = c
        .create_config(CreateConfigRequest { spec: Some(spec) })
        .await
        .unwrap()
        .into_inner()
        .config
        .unwrap();
    let cv = cfg.meta.unwrap().version.unwrap().index;
    let cfg_update = |data: &[u8]| UpdateConfigRequest {
        id: cfg.id.clone(),
        version: Some(Version { index: cv }),
        spec: Some(ConfigSpec {
            annotations: ann("cfg", &[("x", "y")]),
            data: data.to_vec(),
        }),
    };
    let err = c.update_config(cfg_update(b"a: 2")).await.unwrap_err();
    assert_eq!(err.message(), "only updates to Labels are allowed");
    c.update_config(cfg_update(b"a: 1")).await.unwrap();
    assert_eq!(
        d.cli(&["config", "ls", "--filter", "label=x=y", "--format", "{{.Name}}"])
            .ok(),
        "cfg\n"
    );
}
