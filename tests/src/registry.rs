//! A real registry on loopback for the tests (Debian's `docker-registry`,
//! storage in a temp dir), and a busybox image built from the host's static
//! busybox and pushed to it: what the tasks of the tests run. No internet.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::secrets::RegistryAuth;

/// A registry: one this process runs (stopped when dropped), or one
/// already running at an address.
pub struct Registry {
    pub addr: String,
    dir: Option<tempfile::TempDir>,
    child: Option<Child>,
    /// What a push uses: a login, for a registry started with one.
    auth: RegistryAuth,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let Some(child) = &mut self.child else { return };
        // The watchdog shell and the registry are one process group.
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
        let _ = child.wait();
    }
}

/// The registry binary, or a panic that says what to install.
fn registry_binary() -> PathBuf {
    let bin = PathBuf::from("/usr/bin/docker-registry");
    assert!(
        bin.exists(),
        "the image tests need Debian's docker-registry package (apt-get install docker-registry busybox-static)"
    );
    bin
}

impl Registry {
    /// A registry already running at `addr` (HOST:PORT).
    pub fn at(addr: &str) -> Self {
        Self {
            addr: addr.to_string(),
            dir: None,
            child: None,
            auth: RegistryAuth::Anonymous,
        }
    }

    pub fn start() -> Self {
        Self::start_with(None, "127.0.0.1")
    }

    /// An anonymous registry listening on `ip` (an address of this host,
    /// such as the bridge of the test nodes' namespaces).
    pub fn start_on(ip: &str) -> Self {
        Self::start_with(None, ip)
    }

    /// The registry's HOST:PORT.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// A registry that answers only `user` with `password` (htpasswd, as a
    /// private registry does), over plain HTTP on loopback.
    pub fn start_with_login(user: &str, password: &str) -> Self {
        Self::start_with(Some((user, password)), "127.0.0.1")
    }

    fn start_with(login: Option<(&str, &str)>, ip: &str) -> Self {
        let dir = tempfile::Builder::new().prefix("swarmkeep-registry").tempdir().unwrap();
        let addr = crate::free_addr(ip);
        let config = dir.path().join("config.yml");
        let mut yaml = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n  secret: test-only\n",
            dir.path().join("data").display()
        );
        if let Some((user, password)) = login {
            let htpasswd = dir.path().join("htpasswd");
            let hash = bcrypt::hash(password, 4).unwrap();
            std::fs::write(&htpasswd, format!("{user}:{hash}\n")).unwrap();
            yaml.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: swarmkeep-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        std::fs::write(&config, yaml).unwrap();
        // A registry held in a static outlives no test process: a watchdog
        // stops it when this process is gone.
        use std::os::unix::process::CommandExt;
        let script = format!(
            "{} serve {} & r=$!; while kill -0 {} 2>/dev/null; do sleep 1; done; kill $r",
            registry_binary().display(),
            config.display(),
            std::process::id()
        );
        let child = Command::new("sh")
            .args(["-c", &script])
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("registry.log")).unwrap())
            .spawn()
            .expect("starting docker-registry");
        let registry = Self {
            addr,
            dir: Some(dir),
            child: Some(child),
            auth: match login {
                Some((u, p)) => RegistryAuth::Basic(u.into(), p.into()),
                None => RegistryAuth::Anonymous,
            },
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !registry.answers() {
            assert!(Instant::now() < deadline, "the registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }

    fn answers(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(&self.addr) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = s.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n");
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        // 401: up, and asking for the login it was started with.
        ["HTTP/1.1 200", "HTTP/1.0 200", "HTTP/1.1 401", "HTTP/1.0 401"]
            .iter()
            .any(|s| answer.starts_with(s))
    }

    /// Where the registry keeps blob `digest` (to corrupt it in a test).
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .as_ref()
            .expect("a registry this process runs")
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// Pushes `image` (a layer tar and a config) as `repo:tag`; returns the
    /// manifest digest and the layer's blob digest.
    pub fn push(&self, repo_tag: &str, image: &TestImage) -> (String, String) {
        let reference: oci_client::Reference = format!("{}/{repo_tag}", self.addr).parse().unwrap();
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = oci_client::Client::try_from(ClientConfig {
            protocol: ClientProtocol::HttpsExcept(vec![self.addr.clone()]),
            ..Default::default()
        })
        .unwrap();
        let layer = ImageLayer::oci_v1_gzip(image.layer_gz.clone(), None);
        let layer_digest = layer.sha256_digest();
        let config = Config::oci_v1(image.config.clone(), None);
        let auth = self.auth.clone();
        // On a thread of its own: a caller may be inside a runtime already.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                client
                    .push(&reference, &[layer], config, &auth, None)
                    .await
                    .expect("pushing the test image");
                let digest = client
                    .fetch_manifest_digest(&reference, &auth)
                    .await
                    .expect("the pushed image's digest");
                (digest, layer_digest)
            })
        })
        .join()
        .expect("pushing the test image")
    }
}

/// An image made here: one gzip layer and its config.
pub struct TestImage {
    pub layer_gz: Vec<u8>,
    pub config: Vec<u8>,
}

/// Busybox (the host's static binary) at /bin/busybox with a link per
/// applet, /etc/passwd and /etc/group with root and nobody, /tmp; Cmd `sh`.
pub fn busybox_image() -> &'static TestImage {
    static IMAGE: OnceLock<TestImage> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .map(Path::new)
            .find(|p| p.exists())
            .expect("the image tests need busybox-static (apt-get install busybox-static)");
        let applets = Command::new(busybox).arg("--list").output().unwrap();
        let mut tar = tar::Builder::new(Vec::new());
        let header = |kind: tar::EntryType, mode: u32, size: u64| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_mode(mode);
            h.set_size(size);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(1_700_000_000);
            h
        };
        let dir = |tar: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32| {
            let mut h = header(tar::EntryType::Directory, mode, 0);
            tar.append_data(&mut h, path, std::io::empty()).unwrap();
        };
        let file = |tar: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32, data: &[u8]| {
            let mut h = header(tar::EntryType::Regular, mode, data.len() as u64);
            tar.append_data(&mut h, path, data).unwrap();
        };
        for (d, mode) in [
            ("bin", 0o755),
            ("etc", 0o755),
            ("tmp", 0o1777),
            ("root", 0o700),
            ("var", 0o755),
        ] {
            dir(&mut tar, d, mode);
        }
        file(&mut tar, "bin/busybox", 0o755, &std::fs::read(busybox).unwrap());
        for applet in String::from_utf8_lossy(&applets.stdout).lines() {
            if applet == "busybox" || applet.contains('/') || applet.is_empty() {
                continue;
            }
            let mut h = header(tar::EntryType::Symlink, 0o777, 0);
            tar.append_link(&mut h, format!("bin/{applet}"), "busybox").unwrap();
        }
        // A symlink planted in the image to the host's /etc (were it resolved
        // on the host): a volume there must get the image's /etc.
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        tar.append_link(&mut h, "var/etc-link", "/etc").unwrap();
        // A device node planted in the image (1:3, a harmless null): a task
        // must not be able to open it.
        let mut h = header(tar::EntryType::Char, 0o666, 0);
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
        tar.append_data(&mut h, "planted-null", std::io::empty()).unwrap();
        file(
            &mut tar,
            "etc/passwd",
            0o644,
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        );
        file(&mut tar, "etc/group", 0o644, b"root:x:0:\nnogroup:x:65534:\n");
        let layer = tar.into_inner().unwrap();
        let diff_id = swarmkeep_image::sha256_digest(&layer);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &layer).unwrap();
        let config = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "created": "2023-11-14T22:13:20Z",
            "config": {
                "Cmd": ["sh"],
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "WorkingDir": "/",
            },
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        });
        TestImage {
            layer_gz: gz.finish().unwrap(),
            config: serde_json::to_vec(&config).unwrap(),
        }
    })
}

/// One registry per test process, serving as every test daemon's Docker Hub
/// mirror (`--registry-mirror`): it holds `busybox:latest`, `bb:latest` and `bb:v2`
/// (the name Docker's recorded outputs show), so services name images as
/// operators do. Returns the mirror's URL.
pub fn mirror() -> String {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    let registry = REGISTRY.get_or_init(|| {
        let r = Registry::start();
        for name in ["library/busybox:latest", "library/bb:latest", "library/bb:v2"] {
            r.push(name, busybox_image());
        }
        r
    });
    format!("http://{}", registry.addr)
}

/// A `docker save` archive of the test busybox image tagged `tag`; with
/// `corrupt`, its layer's bytes no longer match the config's diff ID.
pub fn save_archive(tag: &str, corrupt: bool) -> Vec<u8> {
    let image = busybox_image();
    let mut layer = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&image.layer_gz[..]), &mut layer).unwrap();
    if corrupt {
        let n = layer.len() / 2;
        layer[n] ^= 0xff;
    }
    let config_hex = swarmkeep_image::sha256_digest(&image.config)
        .trim_start_matches("sha256:")
        .to_string();
    let manifest = serde_json::json!([{
        "Config": format!("{config_hex}.json"),
        "RepoTags": [tag],
        "Layers": ["0123abcd/layer.tar"],
    }]);
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, path, data).unwrap();
    };
    add("0123abcd/layer.tar", &layer);
    add(&format!("{config_hex}.json"), &image.config);
    add("manifest.json", manifest.to_string().as_bytes());
    tar.into_inner().unwrap()
}
