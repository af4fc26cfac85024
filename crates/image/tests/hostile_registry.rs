//! A registry that lies: a small HTTP server on loopback serving crafted
//! manifests. Whatever it says, a pull never names a path outside the
//! layer store, never fetches from elsewhere, never takes more than the
//! manifest declared.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

use swarmkeep_image::{ImageStore, RegistryAuth, sha256_digest as digest};

/// Serves `blobs` (by digest) and `manifest` for `/v2/evil/app/manifests/v1`
/// until the process ends; returns HOST:PORT.
fn serve(manifest: Vec<u8>, blobs: Vec<(String, Vec<u8>)>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut first = String::new();
            if reader.read_line(&mut first).is_err() {
                continue;
            }
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
            }
            let path = first.split_whitespace().nth(1).unwrap_or("").to_string();
            let head = first.starts_with("HEAD");
            let (status, ctype, body, dig) = if path == "/v2/" {
                ("200 OK", "application/json", b"{}".to_vec(), None)
            } else if path.ends_with("/manifests/v1") {
                let d = digest(&manifest);
                (
                    "200 OK",
                    "application/vnd.oci.image.manifest.v1+json",
                    manifest.clone(),
                    Some(d),
                )
            } else if let Some((d, b)) = blobs.iter().find(|(d, _)| path.ends_with(d.as_str())) {
                ("200 OK", "application/octet-stream", b.clone(), Some(d.clone()))
            } else {
                ("404 Not Found", "application/json", b"{}".to_vec(), None)
            };
            let mut out = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            if let Some(d) = dig {
                out.push_str(&format!("Docker-Content-Digest: {d}\r\n"));
            }
            out.push_str("\r\n");
            let _ = stream.write_all(out.as_bytes());
            if !head {
                let _ = stream.write_all(&body);
            }
        }
    });
    addr
}

fn image(layers: serde_json::Value, diff_ids: usize) -> (Vec<u8>, Vec<(String, Vec<u8>)>) {
    let ids: Vec<String> = (0..diff_ids).map(|i| digest(format!("diff{i}").as_bytes())).collect();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": ids},
    })
    .to_string()
    .into_bytes();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(&config), "size": config.len()},
        "layers": layers,
    })
    .to_string()
    .into_bytes();
    (manifest, vec![(digest(&config), config)])
}

async fn pull(manifest: Vec<u8>, blobs: Vec<(String, Vec<u8>)>) -> (tempfile::TempDir, Result<(), String>) {
    let addr = serve(manifest, blobs);
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&dir.path().join("images"), Vec::new(), &[]).unwrap();
    let result = store
        .pull(&format!("{addr}/evil/app:v1"), &RegistryAuth::Anonymous)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string());
    (dir, result)
}

#[tokio::test]
async fn a_layer_digest_that_is_a_path_is_refused() {
    for evil in ["sha256:../../..", "sha256:/etc", "../../../etc", "sha256:ABCDEF"] {
        let (manifest, blobs) = image(
            serde_json::json!([{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": evil, "size": 0}]),
            1,
        );
        let (dir, result) = pull(manifest, blobs).await;
        let e = result.expect_err(evil);
        assert!(e.contains("digest"), "{evil}: {e}");
        let index = std::fs::read_to_string(dir.path().join("images/index.json")).unwrap_or_default();
        assert!(!index.contains(".."), "{evil} was recorded: {index}");
    }
}

#[tokio::test]
async fn foreign_layer_urls_and_oversized_blobs_are_refused() {
    let layer = b"not really a tar, and longer than declared".to_vec();
    let (manifest, blobs) = image(
        serde_json::json!([{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": digest(&layer), "size": layer.len(),
            "urls": ["http://169.254.169.254/latest/meta-data"],
        }]),
        1,
    );
    let (_dir, result) = pull(manifest, blobs).await;
    assert!(result.expect_err("urls").contains("foreign URLs"));

    let (manifest, mut blobs) = image(
        serde_json::json!([{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": digest(&layer), "size": 8,
        }]),
        1,
    );
    blobs.push((digest(&layer), layer.clone()));
    let (dir, result) = pull(manifest, blobs).await;
    assert!(result.is_err(), "a blob longer than declared was taken");
    let kept: u64 = std::fs::read_dir(dir.path().join("images/tmp"))
        .map(|d| d.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
        .unwrap_or(0);
    assert!(kept <= 8, "{kept} bytes written");

    let (manifest, blobs) = image(
        serde_json::json!([{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": digest(&layer), "size": 1_i64 << 40,
        }]),
        1,
    );
    let (_dir, result) = pull(manifest, blobs).await;
    assert!(result.expect_err("huge").contains("declares"), "huge declared size");
}
