//! Without what a secrets backend needs, the daemon refuses to start and
//! names what is missing — never a bare EPERM when a task starts later.

use std::process::{Command, Stdio};

use swarmkeep_tests::daemon_binary;

fn start_refused(wrapper: &[&str], backend: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let daemon = daemon_binary();
    let data = dir.path().join("data");
    let sock = format!("unix://{}", dir.path().join("sock").display());
    let exec = dir.path().join("exec");
    let mut args: Vec<String> = wrapper.iter().map(|s| s.to_string()).collect();
    args.extend([
        daemon.display().to_string(),
        "--data-dir".into(),
        data.display().to_string(),
        "-H".into(),
        sock,
        "--exec-root".into(),
        exec.display().to_string(),
        "--secrets-backend".into(),
        backend.into(),
    ]);
    let out = Command::new(&args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn without_cap_sys_admin_the_daemon_says_so_at_start() {
    // setpriv (util-linux) drops CAP_SYS_ADMIN from every set before exec.
    let (code, stderr) = start_refused(
        &[
            "setpriv",
            "--inh-caps=-sys_admin",
            "--ambient-caps=-sys_admin",
            "--bounding-set=-sys_admin",
            "--",
        ],
        "tmpfs",
    );
    assert_ne!(code, Some(0));
    assert!(stderr.contains("needs CAP_SYS_ADMIN"), "{stderr}");
}

#[test]
fn without_dev_fuse_the_fuse_backend_says_so_at_start() {
    // A mount namespace whose /dev has no fuse device.
    let (code, stderr) = start_refused(
        &[
            "unshare",
            "-m",
            "sh",
            "-c",
            "mount -t tmpfs none /dev && exec \"$@\"",
            "sh",
        ],
        "fuse",
    );
    assert_ne!(code, Some(0));
    assert!(stderr.contains("--secrets-backend fuse needs /dev/fuse"), "{stderr}");
    // The same host with /dev/fuse starts that backend (checked by the
    // services tests); tmpfs needs no /dev/fuse.
}
