//! Where the control API and the Docker API are served: unix sockets that
//! only the daemon's user and group can use, loopback, or any address with
//! mutual TLS (`--tlsverify`); never plaintext where another host can reach.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::time::Duration;

use swarmkeep_tests::{Daemon, daemon_binary, daemon_refuses, free_addr};

/// What the daemon says when it refuses to start with `args`.
fn refused_start(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut all: Vec<&std::ffi::OsStr> = vec!["--data-dir".as_ref(), data.as_os_str()];
    all.extend(args.iter().map(|a| std::ffi::OsStr::new(*a)));
    daemon_refuses(&all)
}

#[test]
fn no_api_listens_where_another_host_can_reach_it() {
    let port = free_addr("127.0.0.1").rsplit(':').next().unwrap().to_string();
    let sock = tempfile::tempdir().unwrap();
    let unix = format!("unix://{}", sock.path().join("s.sock").display());
    for (flag, addr) in [
        ("-H", format!("tcp://0.0.0.0:{port}")),
        ("--docker-api", format!("tcp://0.0.0.0:{port}")),
        ("--docker-api", format!("tcp://[::]:{port}")),
    ] {
        let mut args = vec![flag, addr.as_str()];
        if flag != "-H" {
            args.extend(["-H", unix.as_str()]);
        }
        let stderr = refused_start(&args);
        assert!(
            stderr.contains("without --tlsverify this API is served only on a unix socket or a loopback address"),
            "{stderr}"
        );
    }
}

#[test]
fn unix_sockets_are_for_the_daemons_user_and_group_only() {
    let group = nix::unistd::Group::from_name("nogroup")
        .unwrap()
        .or_else(|| nix::unistd::Group::from_name("daemon").unwrap())
        .expect("a nogroup or daemon group");
    // The widest umask: the sockets are 0660 all the same.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    let d = Daemon::start_with(&["--group", &group.name], "info");
    nix::sys::stat::umask(old);
    for sock in [d.socket(), d.docker_socket()] {
        let meta = std::fs::metadata(&sock).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o660, "{}", sock.display());
        assert_eq!(meta.gid(), group.gid.as_raw(), "{}", sock.display());
    }
    // And they work.
    d.init();
    // A user outside the sockets' group is refused, in docker's words.
    let out = std::process::Command::new(swarmkeep_tests::cli_binary())
        .args([
            "-H",
            &format!("unix://{}", d.socket().display()),
            "swarm",
            "ca",
            "--rotate",
        ])
        .uid(65534)
        // `bin`: neither root's group nor the sockets'.
        .gid(2)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "Got permission denied while trying to connect to the swarmkeep daemon socket at unix://{}: connect: permission denied\n",
            d.socket().display()
        )
    );
    assert!(!d.cli(&["swarm", "inspect"]).ok().contains("ForceRotate"));
}

#[test]
fn a_loopback_tcp_api_is_served_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let mut child = std::process::Command::new(daemon_binary())
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--no-agent")
        .arg("-H")
        .arg(format!("unix://{}", dir.path().join("s.sock").display()))
        .arg("--docker-api")
        .arg(format!("tcp://{}", free_addr("127.0.0.1")))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let warned = swarmkeep_tests::eventually(Duration::from_secs(20), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("a loopback TCP listener has no authentication")
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(warned, "{}", std::fs::read_to_string(&log).unwrap_or_default());
}

/// A CA, and certificates it signs: the daemon's (for 127.0.0.1) and a
/// client's, written as `ca.pem`, `cert.pem`, `key.pem` in `dir` (the docker
/// CLI's DOCKER_CERT_PATH layout); the server's as `server-*.pem`.
fn make_certs(dir: &std::path::Path, ca_name: &str) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    std::fs::create_dir_all(dir).unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.distinguished_name.push(DnType::CommonName, ca_name);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf = |names: Vec<String>, purpose: rcgen::ExtendedKeyUsagePurpose| {
        let mut params = CertificateParams::new(names).unwrap();
        params.extended_key_usages = vec![purpose];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (server, server_key) = leaf(vec!["127.0.0.1".into()], rcgen::ExtendedKeyUsagePurpose::ServerAuth);
    let (client, client_key) = leaf(vec!["client".into()], rcgen::ExtendedKeyUsagePurpose::ClientAuth);
    for (name, pem) in [
        ("ca.pem", ca_cert.pem()),
        ("server-cert.pem", server),
        ("server-key.pem", server_key),
        ("cert.pem", client),
        ("key.pem", client_key),
    ] {
        std::fs::write(dir.join(name), pem).unwrap();
    }
}

/// With `--tlsverify` both APIs listen on every address, and serve only
/// clients whose certificate the CA signed: not a plaintext client, not a TLS
/// client without a certificate, not one whose certificate another CA signed.
#[test]
fn tcp_apis_with_tlsverify_serve_only_clients_with_a_certificate_from_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good");
    let foreign = dir.path().join("foreign");
    make_certs(&good, "api CA");
    make_certs(&foreign, "another CA");
    let port = |a: String| a.rsplit(':').next().unwrap().to_string();
    let (control_port, docker_port) = (port(free_addr("0.0.0.0")), port(free_addr("0.0.0.0")));
    let log = dir.path().join("log");
    let mut child = std::process::Command::new(daemon_binary())
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--no-agent")
        .args(["-H", &format!("tcp://0.0.0.0:{control_port}")])
        .args(["--docker-api", &format!("tcp://0.0.0.0:{docker_port}")])
        .arg("--tlsverify")
        .arg("--tlscacert")
        .arg(good.join("ca.pem"))
        .arg("--tlscert")
        .arg(good.join("server-cert.pem"))
        .arg("--tlskey")
        .arg(good.join("server-key.pem"))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let control = format!("tcp://127.0.0.1:{control_port}");
    let docker_host = format!("tcp://127.0.0.1:{docker_port}");
    let swarmkeep = |certs: Option<&std::path::Path>, args: &[&str]| {
        let mut cmd = std::process::Command::new(swarmkeep_tests::cli_binary());
        cmd.args(["-H", &control]).args(args).env_remove("SWARMKEEP_TLS_VERIFY");
        if let Some(certs) = certs {
            cmd.env("SWARMKEEP_TLS_VERIFY", "1").env("SWARMKEEP_CERT_PATH", certs);
        }
        cmd.output().unwrap()
    };
    let served = swarmkeep_tests::eventually(Duration::from_secs(30), || {
        swarmkeep(Some(&good), &["swarm", "init", "--advertise-addr", "127.0.0.1"])
            .status
            .success()
    });
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(served, "{}", log_text());
    let ok = swarmkeep(Some(&good), &["node", "ls", "-q"]);
    assert!(ok.status.success(), "{ok:?}");
    assert_eq!(String::from_utf8_lossy(&ok.stdout).lines().count(), 1);
    // The files named by flags alone mean TLS (never a plaintext fallback).
    let flags = std::process::Command::new(swarmkeep_tests::cli_binary())
        .args(["-H", &control, "--tlscacert"])
        .arg(good.join("ca.pem"))
        .arg("--tlscert")
        .arg(good.join("cert.pem"))
        .arg("--tlskey")
        .arg(good.join("key.pem"))
        .args(["node", "ls", "-q"])
        .env_remove("SWARMKEEP_TLS_VERIFY")
        .output()
        .unwrap();
    assert!(flags.status.success(), "{flags:?}");
    // Plaintext, and a certificate from another CA: refused.
    let plain = swarmkeep(None, &["node", "ls"]);
    assert!(!plain.status.success(), "{plain:?}");
    let other = swarmkeep(Some(&foreign), &["node", "ls"]);
    assert!(!other.status.success(), "{other:?}");
    assert!(
        String::from_utf8_lossy(&other.stderr).contains("error during connect"),
        "{other:?}"
    );

    // The Docker API: a TLS client without a certificate, and plaintext.
    let docker_addr = format!("127.0.0.1:{docker_port}");
    let no_cert = tls_ping(&docker_addr, &good, false);
    assert!(no_cert.is_err(), "served without a client certificate: {no_cert:?}");
    let with_cert = tls_ping(&docker_addr, &good, true).unwrap();
    assert!(
        with_cert.starts_with("HTTP/1.1 200") && with_cert.ends_with("OK"),
        "{with_cert}"
    );
    let mut plain = std::net::TcpStream::connect(format!("127.0.0.1:{docker_port}")).unwrap();
    plain.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    use std::io::{Read, Write};
    plain.write_all(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(!String::from_utf8_lossy(&answer).contains("OK"), "plaintext served");
    // The docker CLI, as DOCKER_TLS_VERIFY users run it.
    if !swarmkeep_tests::docker::skip() {
        let docker = |certs: &std::path::Path| {
            std::process::Command::new(swarmkeep_tests::docker::cli().unwrap())
                .env("DOCKER_HOST", &docker_host)
                .env("DOCKER_TLS_VERIFY", "1")
                .env("DOCKER_CERT_PATH", certs)
                .env("DOCKER_CONFIG", dir.path().join("docker-config"))
                .args(["node", "ls", "-q"])
                .output()
                .unwrap()
        };
        let ok = docker(&good);
        assert!(ok.status.success(), "{ok:?}");
        assert_eq!(String::from_utf8_lossy(&ok.stdout).lines().count(), 1);
        let refused = docker(&foreign);
        assert!(!refused.status.success(), "{refused:?}");
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// `GET /_ping` over TLS to `addr`, trusting `certs/ca.pem`, presenting
/// `certs/cert.pem` or no client certificate.
fn tls_ping(addr: &str, certs: &std::path::Path, present: bool) -> std::io::Result<String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use std::io::{Read, Write};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(certs.join("ca.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let config =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
    let config = if present {
        let chain = CertificateDer::pem_file_iter(certs.join("cert.pem"))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(certs.join("key.pem")).unwrap();
        config.with_client_auth_cert(chain, key).unwrap()
    } else {
        config.with_no_client_auth()
    };
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).map_err(std::io::Error::other)?;
    let tcp = std::net::TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
    let mut answer = String::new();
    tls.read_to_string(&mut answer)?;
    Ok(answer)
}

#[test]
fn a_stopping_daemon_leaves_a_newer_daemons_socket_alone() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    let host = format!("unix://{}", sock.display());
    let start = |name: &str| {
        let log = dir.path().join(format!("{name}.log"));
        let child = std::process::Command::new(daemon_binary())
            .arg("--data-dir")
            .arg(dir.path().join(name))
            .args(["--no-agent", "-H", &host])
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let up = swarmkeep_tests::eventually(Duration::from_secs(20), || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("swarmkeepd listening")
        });
        assert!(up, "{}", std::fs::read_to_string(&log).unwrap_or_default());
        child
    };
    let mut old = start("old");
    let mut new = start("new");
    // The old daemon stops: the socket it bound is no longer its own.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(old.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let _ = old.wait();
    let out = swarmkeep_tests::run_cli(&host, &["secret", "ls"], None, None);
    let _ = new.kill();
    let _ = new.wait();
    assert!(sock.exists(), "the old daemon removed the new one's socket");
    assert!(!out.stderr.contains("Cannot connect"), "{out:?}");
}

/// A socket is bound under a name of its own beside its path, then renamed
/// into place. A local user who plants a link at that name (in a shared,
/// sticky directory such as /tmp; the name is predictable from the daemon's
/// PID) gets it replaced by the socket — the daemon starts all the same, the
/// file the link points to keeps its owner, group and mode, and the socket has
/// the daemon's group.
#[test]
fn a_link_planted_at_the_sockets_staging_name_changes_nothing_it_points_to() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let target = dir.path().join("target");
    std::fs::write(&target, b"root's file").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
    let group = nix::unistd::Group::from_name("nogroup")
        .unwrap()
        .or_else(|| nix::unistd::Group::from_name("daemon").unwrap())
        .expect("a nogroup or daemon group");
    let sock = shared.join("s.sock");
    let log = dir.path().join("log");
    // `nobody` plants the link at the name the daemon, exec'd by this very
    // shell (so with its PID), will bind first.
    let script = format!(
        "su nobody -s /bin/sh -c \"ln -s {target} {shared}/.s.sock.$$\" && exec {daemon} --data-dir {data} \
         --no-agent -H unix://{sock} --group {group}",
        target = target.display(),
        shared = shared.display(),
        daemon = daemon_binary().display(),
        data = dir.path().join("data").display(),
        sock = sock.display(),
        group = group.name,
    );
    let mut child = std::process::Command::new("sh")
        .args(["-c", &script])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let planted = shared.join(format!(".s.sock.{}", child.id()));
    let up = swarmkeep_tests::eventually(Duration::from_secs(20), || sock.exists());
    let out = swarmkeep_tests::run_cli(&format!("unix://{}", sock.display()), &["secret", "ls"], None, None);
    let _ = child.kill();
    let _ = child.wait();
    assert!(up, "{}", std::fs::read_to_string(&log).unwrap_or_default());
    assert!(!out.stderr.contains("Cannot connect"), "{out:?}");
    let meta = std::fs::metadata(&target).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.permissions().mode() & 0o7777),
        (0, 0, 0o600),
        "the link's target was changed"
    );
    assert_eq!(std::fs::read(&target).unwrap(), b"root's file");
    assert!(std::fs::symlink_metadata(&planted).is_err(), "the planted link is gone");
    // Killed, the daemon left its socket behind.
    assert_eq!(std::fs::metadata(&sock).unwrap().gid(), group.gid.as_raw());
}
