//! Images from a real registry on loopback: pulled by tag and by digest,
//! every layer checked, a corrupted blob refused.

use swarmkeep_image::{ImageError, ImageStore};
use swarmkeep_tests::registry::{Registry, busybox_image};

fn pull(store: &ImageStore, reference: &str) -> Result<swarmkeep_image::Image, ImageError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(store.pull(reference, &oci_client::secrets::RegistryAuth::Anonymous))
}

#[test]
fn images_are_pulled_by_tag_and_by_digest_into_unpacked_layers() {
    let registry = Registry::start();
    let (digest, _) = registry.push("test/busybox:1", busybox_image());
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path(), Vec::new(), &[]).unwrap();

    let by_tag = format!("{}/test/busybox:1", registry.addr);
    let image = pull(&store, &by_tag).unwrap();
    assert_eq!(image.config.cmd, ["sh"]);
    assert_eq!(image.manifest_digest, digest);
    let layers = store.layer_dirs(&image);
    assert_eq!(layers.len(), 1);
    assert!(layers[0].join("bin/busybox").is_file());
    assert_eq!(
        std::fs::read_link(layers[0].join("bin/sh")).unwrap(),
        std::path::Path::new("busybox")
    );
    // Here now: found locally, by tag and by digest.
    assert!(store.get(&by_tag).is_some());
    let by_digest = format!("{}/test/busybox@{digest}", registry.addr);
    assert_eq!(store.get(&by_digest).unwrap().id, image.id);
    // A second store pulls by digest from the registry.
    let other = tempfile::tempdir().unwrap();
    let store2 = ImageStore::open(other.path(), Vec::new(), &[]).unwrap();
    assert_eq!(pull(&store2, &by_digest).unwrap().id, image.id);
    // And a name the registry does not have.
    let missing = pull(&store2, &format!("{}/test/nothing:1", registry.addr)).unwrap_err();
    assert!(matches!(missing, ImageError::Pull { .. }), "{missing}");
}

#[test]
fn a_corrupted_layer_is_refused_and_nothing_of_it_is_kept() {
    let registry = Registry::start();
    let (_, layer) = registry.push("test/busybox:1", busybox_image());
    // The registry's copy of the layer is damaged (same length, one byte).
    let path = registry.blob_path(&layer);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path(), Vec::new(), &[]).unwrap();
    let refused = pull(&store, &format!("{}/test/busybox:1", registry.addr)).unwrap_err();
    assert!(matches!(refused, ImageError::Digest { .. }), "{refused}");
    assert!(store.list().is_empty());
    let left: Vec<_> = std::fs::read_dir(dir.path().join("layers")).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
    let tmp: Vec<_> = std::fs::read_dir(dir.path().join("tmp")).unwrap().collect();
    assert!(tmp.is_empty(), "{tmp:?}");
}

#[test]
fn swarmkeep_image_load_ls_rm_and_pull() {
    let d = swarmkeep_tests::Daemon::start();
    d.init();
    let archive = d.path().join("saved.tar");
    std::fs::write(&archive, swarmkeep_tests::registry::save_archive("loaded:v1", false)).unwrap();
    let out = d.cli(&["image", "load", "-i", archive.to_str().unwrap()]);
    assert_eq!(out.ok().trim(), "Loaded image: loaded:v1");
    // An archive cannot claim what a registry's digest names.
    let forged = d.path().join("forged.tar");
    let pinned = format!("registry.corp/app@sha256:{}", "ab".repeat(32));
    std::fs::write(&forged, swarmkeep_tests::registry::save_archive(&pinned, false)).unwrap();
    let out = d.cli(&["image", "load", "-i", forged.to_str().unwrap()]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("a digest reference cannot be loaded"), "{out:?}");
    let ls = d.cli(&["image", "ls"]);
    let mut lines = ls.ok().lines();
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(&row[..2], ["loaded", "v1"], "{ls:?}");
    assert_eq!(ls.stdout.matches(" ago").count(), 1, "{ls:?}");
    assert_eq!(lines.next(), None, "the forged archive left an image: {ls:?}");
    assert_eq!(row[2].len(), 12);
    assert!(row.last().unwrap().ends_with("MB"), "{row:?}");
    let out = d.cli(&["image", "rm", "loaded:v1", "nosuch:v1"]);
    assert!(
        out.stdout.starts_with("Untagged: loaded:v1\nDeleted: sha256:"),
        "{out:?}"
    );
    assert!(out.stderr.contains("No such image: nosuch:v1"), "{out:?}");
    assert_eq!(d.cli(&["image", "ls", "-q"]).ok().trim(), "");
    let out = d.cli(&["image", "pull", "busybox"]);
    assert!(out.ok().starts_with("Digest: sha256:"), "{out:?}");
    assert_eq!(d.cli(&["image", "ls", "-q"]).ok().trim().len(), 12);
}

#[test]
fn swarmkeep_service_create_with_registry_auth_pulls_a_private_image() {
    use base64::Engine;
    let registry = swarmkeep_tests::registry::Registry::start_with_login("ci", "cli-login-marker-5r8");
    registry.push("team/tool:v2", swarmkeep_tests::registry::busybox_image());
    let image = format!("{}/team/tool:v2", registry.addr);
    let d = swarmkeep_tests::Daemon::start();
    d.init();
    let config = d.path().join("docker-config");
    std::fs::create_dir_all(&config).unwrap();
    // A credential helper only: refused by name, nothing created.
    std::fs::write(config.join("config.json"), r#"{"credsStore":"desktop"}"#).unwrap();
    let out = d.cli(&[
        "service",
        "create",
        "-d",
        "--name",
        "tool",
        "--with-registry-auth",
        &image,
        "sleep",
        "1000000",
    ]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("credential helpers (credsStore"), "{out:?}");
    assert_eq!(d.cli(&["service", "ls", "-q"]).ok().trim(), "");
    let auth = base64::engine::general_purpose::STANDARD.encode("ci:cli-login-marker-5r8");
    std::fs::write(
        config.join("config.json"),
        serde_json::json!({"auths": {format!("http://{}", registry.addr): {"auth": auth}}}).to_string(),
    )
    .unwrap();
    d.cli(&[
        "service",
        "create",
        "-d",
        "--name",
        "tool",
        "--with-registry-auth",
        &image,
        "sleep",
        "1000000",
    ])
    .ok();
    assert!(
        swarmkeep_tests::eventually(std::time::Duration::from_secs(30), || d
            .cli(&["service", "ps", "tool", "--format", "{{.CurrentState}}"])
            .stdout
            .starts_with("Running")),
        "{}",
        d.cli(&["service", "ps", "tool", "--no-trunc"]).stdout
    );
    // `image pull` sends the same login (the registry answers nobody else).
    let pulled = d.cli(&["image", "pull", &image]);
    assert!(pulled.ok().starts_with("Digest: sha256:"), "{pulled:?}");
    let inspect = d.cli(&["service", "inspect", "tool"]);
    assert!(!swarmkeep_tests::leaks(
        inspect.ok().as_bytes(),
        b"cli-login-marker-5r8"
    ));
}

/// `swarmkeep service create` pins the image to the digest its tag names at
/// the registry now, as the docker CLI does (asked through a node: the
/// Containers API's ResolveImage); `--no-resolve-image` keeps the tag; an
/// image no registry answers for keeps it too, with the docker CLI's warning.
#[test]
fn swarmkeep_service_create_pins_the_image_to_its_digest() {
    let registry = Registry::start();
    let (digest, _) = registry.push("app/pin:v1", busybox_image());
    let image = format!("{}/app/pin:v1", registry.addr);
    let d = swarmkeep_tests::Daemon::start();
    d.init();
    let spec_image = |name: &str| {
        let v: serde_json::Value = serde_json::from_str(d.cli(&["service", "inspect", name]).ok()).unwrap();
        v[0]["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let out = d.cli(&[
        "service", "create", "-d", "--name", "pinned", &image, "sleep", "1000000",
    ]);
    out.ok();
    assert_eq!(out.stderr, "", "{out:?}");
    assert_eq!(spec_image("pinned"), format!("{image}@{digest}"));
    // `service ls` shows the tag, as the docker CLI does; the task runs it.
    let ls = d.cli(&["service", "ls", "--format", "{{.Image}}"]);
    assert_eq!(ls.ok().trim(), image);
    assert!(
        swarmkeep_tests::eventually(std::time::Duration::from_secs(30), || d
            .cli(&["service", "ps", "pinned", "--format", "{{.CurrentState}}"])
            .stdout
            .starts_with("Running")),
        "{}",
        d.cli(&["service", "ps", "pinned", "--no-trunc"]).stdout
    );
    let ps = d.cli(&["service", "ps", "pinned", "--no-trunc", "--format", "{{.Image}}"]);
    assert_eq!(ps.ok().trim(), format!("{image}@{digest}"));

    let out = d.cli(&[
        "service",
        "create",
        "-d",
        "--name",
        "tagged",
        "--no-resolve-image",
        &image,
        "sleep",
        "1000000",
    ]);
    out.ok();
    assert_eq!(out.stderr, "");
    assert_eq!(spec_image("tagged"), image);

    let missing = format!("{}/app/missing", registry.addr);
    let out = d.cli(&["service", "create", "-d", "--name", "missing", &missing, "true"]);
    out.ok();
    assert_eq!(
        out.stderr,
        format!(
            "image {missing}:latest could not be accessed on a registry to record\n\
             its digest. Each node will access {missing}:latest independently,\n\
             possibly leading to different nodes running different\n\
             versions of the image.\n"
        )
    );
    assert_eq!(spec_image("missing"), missing);
}
