//! Where the control API and the Docker API are served: unix sockets that
//! only the daemon's user and group can use, or loopback; never an address
//! another host can reach (neither API has TLS of its own yet).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
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
            stderr.contains("is served only on a unix socket or a loopback address"),
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
