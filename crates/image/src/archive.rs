//! `image load`: a `docker save` archive (its `manifest.json`, configs and
//! uncompressed layer tars; Docker 25's OCI layout carries the same file)
//! read as a stream. Entries are kept under numbered temporary names, never
//! at the archive's own paths, and a layer is taken only if its digest is
//! the diff ID its config names.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::{ConfigFile, ImageError, hex_digest};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ManifestEntry {
    pub config: String,
    #[serde(default)]
    pub repo_tags: Option<Vec<String>>,
    pub layers: Vec<String>,
}

/// One image of the archive: its config (parsed, and its digest), its tags and
/// its layer tars (paths in `tmp`, with their digests), bottom first.
pub(crate) struct Loaded {
    pub config_digest: String,
    pub config: ConfigFile,
    pub tags: Vec<String>,
    pub layers: Vec<(PathBuf, String)>,
}

/// Reads `archive` into `tmp`; returns each image it holds, checked.
pub(crate) fn read(archive: impl Read, tmp: &Path) -> Result<Vec<Loaded>, ImageError> {
    let bad = |why: String| ImageError::InvalidLayer(format!("invalid image archive: {why}"));
    let mut entries: HashMap<String, (PathBuf, String)> = HashMap::new();
    let mut links: HashMap<String, String> = HashMap::new();
    let mut tar = tar::Archive::new(archive);
    for (n, entry) in tar.entries().map_err(|e| bad(e.to_string()))?.enumerate() {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        let name = entry
            .path()
            .map_err(|e| bad(e.to_string()))?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        // `docker save` links a layer it already wrote (`../<id>/layer.tar`).
        if entry.header().entry_type() == tar::EntryType::Symlink {
            if let Ok(Some(link)) = entry.link_name() {
                let target = normalize(&Path::new(&name).parent().unwrap_or(Path::new("")).join(link));
                links.insert(name, target);
            }
            continue;
        }
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let path = tmp.join(format!("load-{n}"));
        let mut file = std::fs::File::create(&path).map_err(|e| ImageError::io("reading the archive", e))?;
        let mut hash = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let got = entry.read(&mut buf).map_err(|e| bad(e.to_string()))?;
            if got == 0 {
                break;
            }
            hash.update(&buf[..got]);
            std::io::Write::write_all(&mut file, &buf[..got]).map_err(|e| ImageError::io("reading the archive", e))?;
        }
        entries.insert(name, (path, hex_digest(&hash.finalize())));
    }
    let (manifest_path, _) = entries
        .get("manifest.json")
        .ok_or_else(|| bad("no manifest.json (is it a `docker save` archive?)".into()))?;
    let manifest: Vec<ManifestEntry> =
        serde_json::from_slice(&std::fs::read(manifest_path).map_err(|e| ImageError::io("reading the archive", e))?)
            .map_err(|e| bad(format!("manifest.json: {e}")))?;
    let mut out = Vec::new();
    for m in manifest {
        let file = |name: &str| {
            let name = name.trim_start_matches("./");
            let name = links.get(name).map(String::as_str).unwrap_or(name);
            entries
                .get(name)
                .cloned()
                .ok_or_else(|| bad(format!("{name} is missing")))
        };
        let (config_path, config_digest) = file(&m.config)?;
        let config_json = std::fs::read(&config_path).map_err(|e| ImageError::io("reading the archive", e))?;
        let config: ConfigFile = serde_json::from_slice(&config_json).map_err(|e| bad(format!("image config: {e}")))?;
        if config.rootfs.diff_ids.len() != m.layers.len() {
            return Err(bad("the config's diff IDs do not match the layers".into()));
        }
        let mut layers = Vec::new();
        for (name, diff_id) in m.layers.iter().zip(&config.rootfs.diff_ids) {
            let (path, digest) = file(name)?;
            if &digest != diff_id {
                return Err(ImageError::Digest {
                    what: format!("layer {name}"),
                    expected: diff_id.clone(),
                    actual: digest,
                });
            }
            layers.push((path, digest));
        }
        let tags = m.repo_tags.unwrap_or_default();
        for tag in &tags {
            // A digest names what a registry holds: an archive cannot claim
            // one (refused before anything of the archive is stored).
            if crate::reference::parse(tag)?.digest().is_some() {
                return Err(ImageError::InvalidReference(format!(
                    "invalid tag {tag:?} in the archive: a digest reference cannot be loaded"
                )));
            }
        }
        out.push(Loaded {
            config_digest,
            config,
            tags,
            layers,
        });
    }
    Ok(out)
}

/// A path inside the archive with `.` and `..` folded (never above its top).
fn normalize(path: &Path) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in path.components() {
        match c {
            std::path::Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            std::path::Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    parts.join("/")
}
