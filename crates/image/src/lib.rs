//! Images on a node: pulled from OCI/Docker registries (every blob verified
//! by its digest, every layer by its diff ID), each layer unpacked once into
//! a directory of its own under the data dir (`unpack.rs`), ready to be an
//! overlay lower directory; the image's config kept for the task's
//! command, environment, working directory and user.
//!
//! Layout under `<data dir>/images`: `index.json` (images by ID — the
//! config's digest — and the references that name them), `layers/<hex>` (one
//! unpacked layer per blob digest), `tmp/` (downloads in progress).

mod archive;
mod limit;
pub mod reference;
pub mod unpack;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use oci_client::client::{ClientConfig, ClientProtocol};
pub use oci_client::secrets::RegistryAuth;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{0}")]
    InvalidReference(String),
    #[error("Error response from daemon: pull access denied or manifest unknown for {reference}: {detail}")]
    Pull { reference: String, detail: String },
    #[error("image layer is invalid: {0}")]
    InvalidLayer(String),
    #[error("{what}: digest mismatch (expected {expected}, got {actual})")]
    Digest {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("not supported: {0}")]
    Unsupported(String),
    #[error("No such image: {0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{what}: {source}")]
    Io { what: &'static str, source: std::io::Error },
}

impl ImageError {
    fn io(what: &'static str, source: std::io::Error) -> Self {
        Self::Io { what, source }
    }
}

/// The largest layer blob a manifest may declare.
const MAX_LAYER_BYTES: i64 = 16 << 30;

/// `sha256:` and 64 lowercase hex digits: what a digest from a registry or
/// an archive must be before it names a file.
pub(crate) fn check_digest(digest: &str) -> Result<(), ImageError> {
    match digest.strip_prefix("sha256:") {
        Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) => Ok(()),
        _ => Err(ImageError::Unsupported(format!("digest {digest:?}"))),
    }
}

/// What a task takes from its image (Docker's precedence rules apply them
/// against the service's own settings).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ImageConfig {
    #[serde(default)]
    pub entrypoint: Vec<String>,
    #[serde(default)]
    pub cmd: Vec<String>,
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub working_dir: String,
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub stop_signal: String,
    /// The image's HEALTHCHECK, when it has one.
    #[serde(default)]
    pub healthcheck: Option<Healthcheck>,
}

/// An image's HEALTHCHECK as its config holds it (durations in ns; zero:
/// not set).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Healthcheck {
    pub test: Vec<String>,
    pub interval: i64,
    pub timeout: i64,
    pub start_period: i64,
    pub retries: i32,
}

/// An image on this node.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Image {
    /// `sha256:…` of its config.
    pub id: String,
    /// The manifest's digest (what `repo@sha256:…` names).
    pub manifest_digest: String,
    /// Layer blob digests, bottom first.
    pub layers: Vec<String>,
    pub config: ImageConfig,
    /// The compressed size of its layers.
    pub size: u64,
    /// Pulled or loaded by an operator (`image pull|load`): kept until
    /// `image rm`. Otherwise it was pulled for a task and goes once no task
    /// has used it for a while (see [`ImageStore::gc`]).
    #[serde(default)]
    pub pinned: bool,
    /// The config's `created` (RFC 3339), as the image's author set it.
    #[serde(default)]
    pub created: String,
}

#[derive(Default, Serialize, Deserialize)]
struct Index {
    images: BTreeMap<String, Image>,
    /// Normalised reference (`registry/repo:tag` or `registry/repo@digest`) → image ID.
    refs: BTreeMap<String, String>,
}

pub struct ImageStore {
    root: PathBuf,
    insecure: Vec<String>,
    /// Docker Hub mirrors (`--registry-mirror`), tried before Docker Hub:
    /// (host[:port], plain HTTP).
    mirrors: Vec<(String, bool)>,
    index: Mutex<Index>,
    /// One pull at a time: two tasks of one image pull it once.
    pulling: tokio::sync::Mutex<()>,
    /// When a task last asked for each image (by ID).
    last_used: Mutex<HashMap<String, Instant>>,
}

impl ImageStore {
    /// Opens (or makes) the store under `root`; `insecure` registries are
    /// spoken to over plain HTTP (loopback ones always are).
    pub fn open(root: &Path, insecure: Vec<String>, mirrors: &[String]) -> Result<Self, ImageError> {
        let mirrors = mirrors
            .iter()
            .map(|m| {
                let (plain, rest) = match (m.strip_prefix("http://"), m.strip_prefix("https://")) {
                    (Some(rest), _) => (true, rest),
                    (_, Some(rest)) => (false, rest),
                    _ => {
                        return Err(ImageError::InvalidReference(format!(
                            "invalid mirror: {m}: it must be an http:// or https:// URL"
                        )));
                    }
                };
                Ok((rest.trim_end_matches('/').to_string(), plain))
            })
            .collect::<Result<Vec<_>, _>>()?;
        // Downloads and unpacks a previous run left unfinished.
        let _ = std::fs::remove_dir_all(root.join("tmp"));
        // 0700 whatever the umask: only the daemon walks its layers.
        for dir in [root.to_path_buf(), root.join("layers"), root.join("tmp")] {
            swarmkeep_disk::private_dir(&dir).map_err(|e| ImageError::io("creating the image store", e))?;
        }
        let index = match std::fs::read(root.join("index.json")) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| ImageError::io("reading the image index", std::io::Error::other(e)))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Index::default(),
            Err(e) => return Err(ImageError::io("reading the image index", e)),
        };
        Ok(Self {
            root: root.to_path_buf(),
            insecure,
            mirrors,
            index: Mutex::new(index),
            pulling: tokio::sync::Mutex::new(()),
            last_used: Mutex::new(HashMap::new()),
        })
    }

    fn index(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save(&self, index: &Index) -> Result<(), ImageError> {
        let bytes = serde_json::to_vec_pretty(index)
            .map_err(|e| ImageError::io("writing the image index", std::io::Error::other(e)))?;
        swarmkeep_disk::write_private(&self.root.join("index.json"), &bytes)
            .map_err(|e| ImageError::io("writing the image index", e))
    }

    /// The image `reference` names on this node, if it is here.
    pub fn get(&self, reference: &str) -> Option<Image> {
        let r = reference::parse(reference).ok()?;
        let index = self.index();
        let id = index.refs.get(&r.whole())?;
        index.images.get(id).cloned()
    }

    /// Every image here, with the references that name it.
    pub fn list(&self) -> Vec<(Image, Vec<String>)> {
        let index = self.index();
        index
            .images
            .values()
            .map(|img| {
                let names = index
                    .refs
                    .iter()
                    .filter(|(_, id)| **id == img.id)
                    .map(|(r, _)| r.clone())
                    .collect();
                (img.clone(), names)
            })
            .collect()
    }

    /// The directory of each of an image's layers, bottom first.
    pub fn layer_dirs(&self, image: &Image) -> Vec<PathBuf> {
        image.layers.iter().map(|d| self.layer_dir(d)).collect()
    }

    /// A layer's directory; a digest that is not `sha256:` and 64 hex
    /// digits (every way in checks it) names a path that is never a layer.
    fn layer_dir(&self, digest: &str) -> PathBuf {
        match check_digest(digest) {
            Ok(()) => self.root.join("layers").join(digest.trim_start_matches("sha256:")),
            Err(_) => self.root.join("layers").join("invalid-digest"),
        }
    }

    /// The image, from this node if it is here, else pulled.
    pub async fn ensure(&self, reference: &str, auth: &RegistryAuth) -> Result<Image, ImageError> {
        let image = match self.get(reference) {
            Some(image) => image,
            None => self.pull(reference, auth).await?,
        };
        self.touch(&image.id);
        Ok(image)
    }

    fn touch(&self, id: &str) {
        self.last_used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), Instant::now());
    }

    /// Pulls `reference` for an operator (`image pull`): kept until removed.
    pub async fn pull_pinned(&self, reference: &str, auth: &RegistryAuth) -> Result<Image, ImageError> {
        let image = self.pull(reference, auth).await?;
        let mut index = self.index();
        if let Some(i) = index.images.get_mut(&image.id) {
            i.pinned = true;
        }
        self.save(&index)?;
        Ok(image)
    }

    /// Loads a `docker save` archive (blocking: call it off the runtime);
    /// returns Docker's lines (`Loaded image: NAME`, or `Loaded image ID:
    /// ID` for an untagged one).
    pub fn load(&self, archive: impl std::io::Read) -> Result<Vec<String>, ImageError> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = self.root.join("tmp").join(format!("load-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        swarmkeep_disk::private_dir(&tmp).map_err(|e| ImageError::io("reading the archive", e))?;
        // The archive arrives at its sender's pace: it is read whole before
        // the store is locked, so a slow sender holds up no task's pull.
        let result = archive::read(archive, &tmp).and_then(|images| {
            let _one = self.pulling.blocking_lock();
            self.store_loaded(images, &tmp)
        });
        let _ = std::fs::remove_dir_all(&tmp);
        result
    }

    fn store_loaded(&self, images: Vec<archive::Loaded>, tmp: &Path) -> Result<Vec<String>, ImageError> {
        let mut lines = Vec::new();
        for loaded in images {
            let mut size = 0u64;
            for (path, digest) in &loaded.layers {
                size += std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
                let dst = self.layer_dir(digest);
                if dst.exists() {
                    continue;
                }
                let partial = tmp.join(format!("{}.layer", digest.trim_start_matches("sha256:")));
                let diff_id = unpack::unpack_layer(path, "application/vnd.docker.image.rootfs.diff.tar", &partial)?;
                if &diff_id != digest {
                    return Err(ImageError::Digest {
                        what: "layer".into(),
                        expected: digest.clone(),
                        actual: diff_id,
                    });
                }
                std::fs::rename(&partial, &dst).map_err(|e| ImageError::io("storing a layer", e))?;
            }
            let image = Image {
                id: loaded.config_digest.clone(),
                manifest_digest: String::new(),
                layers: loaded.layers.iter().map(|(_, d)| d.clone()).collect(),
                config: image_config(loaded.config.config),
                size,
                pinned: true,
                created: loaded.config.created.unwrap_or_default(),
            };
            let mut index = self.index();
            index.images.insert(image.id.clone(), image.clone());
            if loaded.tags.is_empty() {
                lines.push(format!("Loaded image ID: {}", image.id));
            }
            for tag in &loaded.tags {
                let r = reference::parse(tag)?;
                index.refs.insert(r.whole(), image.id.clone());
                lines.push(format!("Loaded image: {tag}"));
            }
            self.save(&index)?;
            tracing::info!(id = %image.id, tags = ?loaded.tags, "image loaded");
        }
        Ok(lines)
    }

    /// The image a reference, an ID or an ID prefix (12+ hex digits) names.
    fn find_id(index: &Index, name: &str) -> Option<String> {
        if let Ok(r) = reference::parse(name)
            && let Some(id) = index.refs.get(&r.whole())
        {
            return Some(id.clone());
        }
        let hex = name.trim_start_matches("sha256:");
        if hex.len() >= 12 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            let mut found = index
                .images
                .keys()
                .filter(|id| id.trim_start_matches("sha256:").starts_with(hex));
            if let (Some(id), None) = (found.next(), found.next()) {
                return Some(id.clone());
            }
        }
        None
    }

    /// `image rm NAME`: a reference is untagged (the image goes with its
    /// last one); an ID removes the image and every name of it. Refused
    /// while a task of this node uses it (`in_use`: image IDs). Returns
    /// Docker's `Untagged:`/`Deleted:` lines.
    pub fn remove(&self, name: &str, in_use: &HashSet<String>) -> Result<Vec<String>, ImageError> {
        let mut index = self.index();
        let id = Self::find_id(&index, name).ok_or_else(|| ImageError::NotFound(name.to_string()))?;
        if in_use.contains(&id) {
            return Err(ImageError::Conflict(format!(
                "conflict: unable to remove repository reference \"{name}\" (must force) - a task of this node is using its referenced image {}",
                &id.trim_start_matches("sha256:")[..12]
            )));
        }
        let by_ref = reference::parse(name)
            .ok()
            .map(|r| r.whole())
            .filter(|w| index.refs.contains_key(w));
        let untag: Vec<String> = match by_ref {
            Some(whole) => vec![whole],
            None => index
                .refs
                .iter()
                .filter(|(_, i)| **i == id)
                .map(|(r, _)| r.clone())
                .collect(),
        };
        let mut lines = Vec::new();
        for r in &untag {
            index.refs.remove(r);
            lines.push(format!("Untagged: {}", familiar_name(r)));
        }
        // A digest reference alone does not keep an image an operator named
        // by tag; once no tag is left, its digest names go too.
        let tags_left = index.refs.iter().any(|(r, i)| *i == id && !r.contains('@'));
        if !tags_left {
            let digests: Vec<String> = index
                .refs
                .iter()
                .filter(|(_, i)| **i == id)
                .map(|(r, _)| r.clone())
                .collect();
            for r in digests {
                index.refs.remove(&r);
                lines.push(format!("Untagged: {}", familiar_name(&r)));
            }
            index.images.remove(&id);
            lines.push(format!("Deleted: {id}"));
            self.remove_unused_layers(&index);
        }
        self.save(&index)?;
        Ok(lines)
    }

    /// Removes the images pulled for tasks that no task of this node has
    /// asked for in `idle` and none uses now (`in_use`: image IDs), then
    /// every layer no image holds. Images an operator pulled or loaded stay.
    pub fn gc(&self, in_use: &HashSet<String>, idle: Duration) -> Vec<String> {
        let Ok(_one) = self.pulling.try_lock() else {
            return Vec::new();
        };
        let mut index = self.index();
        // An image found here at start (or loaded) counts as used now.
        let last_used = {
            let mut used = self.last_used.lock().unwrap_or_else(|p| p.into_inner());
            for id in index.images.keys() {
                used.entry(id.clone()).or_insert_with(Instant::now);
            }
            used.clone()
        };
        let gone: Vec<String> = index
            .images
            .values()
            .filter(|i| !i.pinned && !in_use.contains(&i.id))
            .filter(|i| last_used.get(&i.id).is_some_and(|t| t.elapsed() >= idle))
            .map(|i| i.id.clone())
            .collect();
        if gone.is_empty() {
            return gone;
        }
        for id in &gone {
            index.images.remove(id);
            index.refs.retain(|_, i| i != id);
            tracing::info!(%id, "image removed: no task on this node uses it");
        }
        self.remove_unused_layers(&index);
        if let Err(e) = self.save(&index) {
            tracing::warn!(error = %e, "saving the image index failed");
        }
        gone
    }

    fn remove_unused_layers(&self, index: &Index) {
        let kept: HashSet<String> = index
            .images
            .values()
            .flat_map(|i| i.layers.iter().map(|d| d.trim_start_matches("sha256:").to_string()))
            .collect();
        let Ok(entries) = std::fs::read_dir(self.root.join("layers")) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !kept.contains(&name)
                && let Err(err) = std::fs::remove_dir_all(e.path())
            {
                tracing::warn!(layer = %name, error = %err, "removing an unused layer failed");
            }
        }
    }

    /// Pulls `reference` (manifest, config, the layers not here yet) and
    /// records it. A Docker Hub image is tried at the mirrors first.
    pub async fn pull(&self, reference: &str, auth: &RegistryAuth) -> Result<Image, ImageError> {
        let r = reference::parse(reference)?;
        let _one = self.pulling.lock().await;
        let mut sources = self.sources(&r);
        // The last source is the image's own registry; the ones before, mirrors.
        let (origin, plain) = sources.pop().unwrap_or_else(|| (r.clone(), false));
        // A credential is for the image's own registry: never sent to a mirror.
        for (mirror, plain) in sources {
            match self.fetch(&mirror, plain, &RegistryAuth::Anonymous).await {
                Ok(image) => return self.record(&r, image),
                Err(e) => tracing::warn!(mirror = %mirror.registry(), error = %e, "pull from the mirror failed"),
            }
        }
        let image = self.fetch(&origin, plain, auth).await?;
        self.record(&r, image)
    }

    /// Records `image` under `r` (and `r`'s repository at its digest).
    fn record(&self, r: &oci_client::Reference, mut image: Image) -> Result<Image, ImageError> {
        let mut index = self.index();
        image.pinned = index.images.get(&image.id).is_some_and(|i| i.pinned);
        index.images.insert(image.id.clone(), image.clone());
        index.refs.insert(r.whole(), image.id.clone());
        let by_digest = format!("{}/{}@{}", r.registry(), r.repository(), image.manifest_digest);
        index.refs.insert(by_digest, image.id.clone());
        self.save(&index)?;
        tracing::info!(image = %reference::familiar(r), id = %image.id, "image pulled");
        Ok(image)
    }

    /// A registry client for `r` (over plain HTTP if `plain`).
    fn client(r: &oci_client::Reference, plain: bool) -> Result<oci_client::Client, ImageError> {
        let protocol = if plain {
            ClientProtocol::HttpsExcept(vec![r.resolve_registry().to_string()])
        } else {
            ClientProtocol::Https
        };
        // reqwest's rustls needs a process-wide provider: ring, as everywhere here.
        let _ = rustls::crypto::ring::default_provider().install_default();
        oci_client::Client::try_from(ClientConfig {
            protocol,
            ..Default::default()
        })
        .map_err(|e| pull_error(r, e))
    }

    /// Where `r` can be fetched from: a Docker Hub image at the mirrors
    /// first; (reference, plain HTTP).
    fn sources(&self, r: &oci_client::Reference) -> Vec<(oci_client::Reference, bool)> {
        let mut out = Vec::new();
        if r.registry() == "docker.io" {
            for (mirror, plain) in &self.mirrors {
                let at_mirror = match r.digest() {
                    Some(d) => oci_client::Reference::with_digest(mirror.clone(), r.repository().into(), d.into()),
                    None => oci_client::Reference::with_tag(
                        mirror.clone(),
                        r.repository().into(),
                        r.tag().unwrap_or("latest").into(),
                    ),
                };
                out.push((at_mirror, *plain));
            }
        }
        out.push((r.clone(), reference::plain_http(r.resolve_registry(), &self.insecure)));
        out
    }

    /// The digest `reference` names at its registry now (Docker's
    /// `/distribution/{name}/json`, which `docker service create` pins a
    /// service's image with): (digest, media type, size of the manifest).
    pub async fn resolve(&self, reference: &str, auth: &RegistryAuth) -> Result<(String, String, usize), ImageError> {
        use oci_client::manifest::{
            IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE,
        };
        let r = reference::parse(reference)?;
        let mut last = None;
        let sources = self.sources(&r);
        let origin = sources.len() - 1;
        for (i, (at, plain)) in sources.into_iter().enumerate() {
            let client = Self::client(&at, plain)?;
            // A credential is for the image's own registry: never sent to a mirror.
            let auth = if i == origin { auth } else { &RegistryAuth::Anonymous };
            let accepted = [
                IMAGE_MANIFEST_MEDIA_TYPE,
                IMAGE_MANIFEST_LIST_MEDIA_TYPE,
                OCI_IMAGE_MEDIA_TYPE,
                OCI_IMAGE_INDEX_MEDIA_TYPE,
            ];
            match client.pull_manifest_raw(&at, auth, &accepted).await {
                Ok((bytes, digest)) => {
                    let media_type = serde_json::from_slice::<serde_json::Value>(&bytes)
                        .ok()
                        .and_then(|v| v.get("mediaType").and_then(|m| m.as_str()).map(str::to_string))
                        .unwrap_or_else(|| OCI_IMAGE_MEDIA_TYPE.to_string());
                    return Ok((digest, media_type, bytes.len()));
                }
                Err(e) => last = Some(pull_error(&r, e)),
            }
        }
        Err(last.unwrap_or_else(|| ImageError::NotFound(reference.to_string())))
    }

    /// Downloads `r` from its registry (over plain HTTP if `plain`).
    async fn fetch(&self, r: &oci_client::Reference, plain: bool, auth: &RegistryAuth) -> Result<Image, ImageError> {
        let r = r.clone();
        let client = Self::client(&r, plain)?;
        let (manifest, manifest_digest, config_json) = client
            .pull_manifest_and_config(&r, auth)
            .await
            .map_err(|e| pull_error(&r, e))?;
        let config_digest = sha256_digest(config_json.as_bytes());
        if config_digest != manifest.config.digest {
            return Err(ImageError::Digest {
                what: "image config".into(),
                expected: manifest.config.digest.clone(),
                actual: config_digest,
            });
        }
        let config: ConfigFile =
            serde_json::from_str(&config_json).map_err(|e| ImageError::InvalidLayer(format!("image config: {e}")))?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(ImageError::InvalidLayer(
                "the config's diff IDs do not match the manifest's layers".into(),
            ));
        }
        // What the registry says is checked before any of it names a path
        // or a fetch: digests are sha256 of 64 hex digits, sizes bounded, no
        // foreign-layer URLs (oci-client would fetch them from anywhere).
        for layer in &manifest.layers {
            check_digest(&layer.digest)?;
            if layer.urls.as_ref().is_some_and(|u| !u.is_empty()) {
                return Err(ImageError::Unsupported(format!(
                    "layer {} with foreign URLs (non-distributable layers are not fetched)",
                    layer.digest
                )));
            }
            if !(0..=MAX_LAYER_BYTES).contains(&layer.size) {
                return Err(ImageError::InvalidLayer(format!(
                    "layer {} declares {} bytes (at most {MAX_LAYER_BYTES})",
                    layer.digest, layer.size
                )));
            }
        }
        let mut size = 0u64;
        for (layer, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
            size += u64::try_from(layer.size).unwrap_or(0);
            let dst = self.layer_dir(&layer.digest);
            if dst.exists() {
                continue;
            }
            let hex = layer.digest.trim_start_matches("sha256:").to_string();
            let blob = self.root.join("tmp").join(format!("{hex}.blob"));
            let mut file = tokio::fs::File::create(&blob)
                .await
                .map_err(|e| ImageError::io("writing a layer", e))?;
            // oci-client checks the blob against its digest as it streams;
            // no more than the manifest declared is written.
            let mut bounded = limit::Bounded::new(&mut file, u64::try_from(layer.size).unwrap_or(0));
            let pulled = client.pull_blob(&r, layer, &mut bounded).await;
            drop(file);
            if let Err(e) = pulled {
                let _ = std::fs::remove_file(&blob);
                return Err(match e {
                    oci_client::errors::OciDistributionError::DigestError(d) => ImageError::Digest {
                        what: format!("layer {}", layer.digest),
                        expected: layer.digest.clone(),
                        actual: d.to_string(),
                    },
                    e => pull_error(&r, e),
                });
            }
            let partial = self.root.join("tmp").join(format!("{hex}.layer"));
            let media_type = layer.media_type.clone();
            let (b, p) = (blob.clone(), partial.clone());
            let unpacked = tokio::task::spawn_blocking(move || unpack::unpack_layer(&b, &media_type, &p))
                .await
                .map_err(|e| ImageError::io("unpacking a layer", std::io::Error::other(e.to_string())))?;
            let _ = std::fs::remove_file(&blob);
            let actual = match unpacked {
                Ok(d) => d,
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&partial);
                    return Err(e);
                }
            };
            if &actual != diff_id {
                let _ = std::fs::remove_dir_all(&partial);
                return Err(ImageError::Digest {
                    what: format!("layer {}", layer.digest),
                    expected: diff_id.clone(),
                    actual,
                });
            }
            std::fs::rename(&partial, &dst).map_err(|e| ImageError::io("storing a layer", e))?;
        }
        let image = Image {
            id: config_digest.clone(),
            manifest_digest: manifest_digest.clone(),
            layers: manifest.layers.iter().map(|l| l.digest.clone()).collect(),
            config: image_config(config.config),
            size,
            pinned: false,
            created: config.created.unwrap_or_default(),
        };
        Ok(image)
    }
}

fn image_config(c: Option<ContainerConfig>) -> ImageConfig {
    let c = c.unwrap_or_default();
    ImageConfig {
        entrypoint: c.entrypoint.unwrap_or_default(),
        cmd: c.cmd.unwrap_or_default(),
        env: c.env.unwrap_or_default(),
        working_dir: c.working_dir.unwrap_or_default(),
        user: c.user.unwrap_or_default(),
        stop_signal: c.stop_signal.unwrap_or_default(),
        healthcheck: c.healthcheck,
    }
}

/// `docker.io/library/busybox:latest` → `busybox:latest`, as Docker shows it.
pub fn familiar_name(whole: &str) -> String {
    reference::parse(whole)
        .map(|r| reference::familiar(&r))
        .unwrap_or_else(|_| whole.to_string())
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    hex_digest(&Sha256::digest(bytes))
}

pub(crate) fn hex_digest(hash: &[u8]) -> String {
    let mut out = String::with_capacity(7 + hash.len() * 2);
    out.push_str("sha256:");
    for b in hash {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn pull_error(r: &oci_client::Reference, e: oci_client::errors::OciDistributionError) -> ImageError {
    ImageError::Pull {
        reference: reference::familiar(r),
        detail: e.to_string(),
    }
}

/// The parts of an image config read here (Docker's and OCI's names).
#[derive(Deserialize)]
pub(crate) struct ConfigFile {
    #[serde(default)]
    pub(crate) config: Option<ContainerConfig>,
    pub(crate) rootfs: RootFs,
    #[serde(default)]
    pub(crate) created: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct RootFs {
    #[serde(default)]
    pub(crate) diff_ids: Vec<String>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ContainerConfig {
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    env: Option<Vec<String>>,
    working_dir: Option<String>,
    user: Option<String>,
    stop_signal: Option<String>,
    healthcheck: Option<Healthcheck>,
}
