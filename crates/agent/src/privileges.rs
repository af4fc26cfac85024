//! What the agent needs from its host, checked once at daemon start.

use crate::config::Backend;

/// Says what is missing when this host cannot run the chosen backend, so
/// the daemon refuses at start instead of failing each task with EPERM.
pub fn check_privileges(backend: Backend) -> Result<(), String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    const CAP_SYS_ADMIN: u64 = 1 << 21;
    if cap_eff & CAP_SYS_ADMIN == 0 {
        return Err(
            "the agent needs CAP_SYS_ADMIN (run swarmkeepd as root): tasks get their own mount namespace, and the \
             tmpfs secrets backend mounts a tmpfs per task"
                .into(),
        );
    }
    if backend == Backend::Fuse
        && let Err(e) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/fuse")
    {
        return Err(format!(
            "--secrets-backend fuse needs /dev/fuse, which cannot be opened: {e} (load the fuse module, or pass \
             /dev/fuse into the container)"
        ));
    }
    Ok(())
}
