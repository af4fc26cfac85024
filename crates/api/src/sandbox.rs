//! The names a container spec uses for what a task's sandbox holds —
//! capabilities, signals, ulimits, sysctls — checked and numbered once, the
//! same for the manager (which refuses a bad spec at the door, with Docker's
//! words) and the agent (which applies it).

/// Linux capabilities by number (`CAP_` + the name).
const CAPABILITIES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// Docker's default capability set less CAP_MKNOD (a device node made in a
/// bind-mounted host directory would be usable by the host's users): CHOWN,
/// DAC_OVERRIDE, FOWNER, FSETID, KILL, SETGID, SETUID, SETPCAP,
/// NET_BIND_SERVICE, NET_RAW, SYS_CHROOT, AUDIT_WRITE, SETFCAP.
pub const DEFAULT_CAPABILITIES: [u32; 13] = [0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 29, 31];

/// `net_admin`, `NET_ADMIN` or `CAP_NET_ADMIN` → `CAP_NET_ADMIN` (and `ALL`),
/// as the docker CLI normalises them.
pub fn normalize_capability(name: &str) -> String {
    let upper = name.trim().to_ascii_uppercase();
    if upper == "ALL" || upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    }
}

/// A capability's number, from any of the spellings Docker takes.
pub fn capability(name: &str) -> Option<u32> {
    let normal = normalize_capability(name);
    let bare = normal.strip_prefix("CAP_")?;
    CAPABILITIES.iter().position(|c| *c == bare).map(|n| n as u32)
}

/// A capability's `CAP_` name.
pub fn capability_name(cap: u32) -> String {
    CAPABILITIES
        .get(cap as usize)
        .map(|c| format!("CAP_{c}"))
        .unwrap_or_else(|| format!("CAP_{cap}"))
}

/// The task's capabilities, as Docker computes them: `ALL` added gives
/// every one; `ALL` dropped starts from none; otherwise the defaults less
/// the dropped; then the added. Unknown names get Docker's error.
pub fn effective_capabilities(add: &[String], drop: &[String]) -> Result<Vec<u32>, String> {
    let check = |list: &[String]| -> Result<Vec<Option<u32>>, String> {
        list.iter()
            .map(|c| {
                let normal = normalize_capability(c);
                if normal == "ALL" {
                    Ok(None)
                } else {
                    capability(&normal)
                        .map(Some)
                        .ok_or_else(|| format!("unknown capability: {normal:?}"))
                }
            })
            .collect()
    };
    let (add, drop) = (check(add)?, check(drop)?);
    let mut caps: Vec<u32> = if add.contains(&None) {
        (0..CAPABILITIES.len() as u32).collect()
    } else if drop.contains(&None) {
        Vec::new()
    } else {
        DEFAULT_CAPABILITIES
            .iter()
            .copied()
            .filter(|c| !drop.contains(&Some(*c)))
            .collect()
    };
    for c in add.into_iter().flatten() {
        if !caps.contains(&c) {
            caps.push(c);
        }
    }
    caps.sort_unstable();
    Ok(caps)
}

/// Signals by their Linux number on x86_64 (and most architectures).
const SIGNALS: [(&str, i32); 34] = [
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("IOT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("POLL", 29),
    ("PWR", 30),
    ("SYS", 31),
];

/// A stop signal as Docker parses one (`SIGTERM`, `term`, `15`); errors are
/// Docker's `Invalid signal: X`.
pub fn parse_signal(s: &str) -> Result<i32, String> {
    let invalid = || format!("Invalid signal: {s}");
    if let Ok(n) = s.parse::<i32>() {
        return if (1..=64).contains(&n) { Ok(n) } else { Err(invalid()) };
    }
    let upper = s.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    SIGNALS
        .iter()
        .find(|(name, _)| *name == bare)
        .map(|(_, n)| *n)
        .ok_or_else(invalid)
}

/// Ulimit names (go-units') and their `RLIMIT_*` numbers on Linux.
const ULIMITS: [(&str, u32); 16] = [
    ("cpu", 0),
    ("fsize", 1),
    ("data", 2),
    ("stack", 3),
    ("core", 4),
    ("rss", 5),
    ("nproc", 6),
    ("nofile", 7),
    ("memlock", 8),
    ("as", 9),
    ("locks", 10),
    ("sigpending", 11),
    ("msgqueue", 12),
    ("nice", 13),
    ("rtprio", 14),
    ("rttime", 15),
];

/// A ulimit's `RLIMIT_*` resource number; errors are go-units'.
pub fn ulimit_resource(name: &str, soft: i64, hard: i64) -> Result<u32, String> {
    let resource = ULIMITS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, r)| *r)
        .ok_or_else(|| format!("invalid ulimit type: {name}"))?;
    if soft > hard {
        return Err(format!(
            "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
        ));
    }
    if soft < 0 {
        return Err(format!("invalid ulimit argument: {name}={soft}:{hard}"));
    }
    Ok(resource)
}

/// Whether a sysctl belongs to a namespace a task has to itself (IPC or
/// network), as Docker's whitelist: the `kernel.msg*`/`sem`/`shm*` ones,
/// `fs.mqueue.*` and `net.*`. Anything else would change the node's kernel.
/// The name must also be a plain dotted path (it becomes one under
/// `/proc/sys`).
pub fn check_sysctl(name: &str) -> Result<(), String> {
    const IPC: [&str; 8] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let plain = !name.is_empty()
        && name
            .split('.')
            .all(|c| !c.is_empty() && c.chars().all(|ch| ch.is_ascii_alphanumeric() || "_-".contains(ch)));
    let namespaced = IPC.contains(&name) || name.starts_with("net.") || name.starts_with("fs.mqueue.");
    if plain && namespaced {
        Ok(())
    } else {
        Err(format!("sysctl '{name}' is not whitelisted"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn capabilities_as_docker_computes_them() {
        assert_eq!(effective_capabilities(&[], &[]).unwrap(), DEFAULT_CAPABILITIES);
        let caps = effective_capabilities(&strings(&["net_admin", "CAP_SYS_PTRACE"]), &strings(&["NET_RAW"])).unwrap();
        assert!(caps.contains(&12) && caps.contains(&19) && !caps.contains(&13));
        assert_eq!(
            effective_capabilities(&strings(&["CHOWN"]), &strings(&["all"])).unwrap(),
            [0]
        );
        assert_eq!(effective_capabilities(&strings(&["ALL"]), &[]).unwrap().len(), 41);
        assert_eq!(
            effective_capabilities(&strings(&["CAP_FOO"]), &[]).unwrap_err(),
            "unknown capability: \"CAP_FOO\""
        );
        assert_eq!(capability_name(21), "CAP_SYS_ADMIN");
    }

    #[test]
    fn signals_ulimits_sysctls() {
        assert_eq!(parse_signal("SIGUSR1"), Ok(10));
        assert_eq!(parse_signal("quit"), Ok(3));
        assert_eq!(parse_signal("9"), Ok(9));
        assert_eq!(parse_signal("SIGFOO").unwrap_err(), "Invalid signal: SIGFOO");
        assert_eq!(parse_signal("0").unwrap_err(), "Invalid signal: 0");
        assert_eq!(ulimit_resource("nofile", 10, 20), Ok(7));
        assert_eq!(
            ulimit_resource("bogus", 1, 1).unwrap_err(),
            "invalid ulimit type: bogus"
        );
        assert!(ulimit_resource("nproc", 5, 2).unwrap_err().contains("5 > 2"));
        assert!(check_sysctl("net.ipv4.ip_forward").is_ok());
        assert!(check_sysctl("kernel.shmmax").is_ok());
        assert_eq!(
            check_sysctl("kernel.hostname").unwrap_err(),
            "sysctl 'kernel.hostname' is not whitelisted"
        );
        assert!(check_sysctl("net.ipv4/../../kernel/core_pattern").is_err());
        assert!(check_sysctl("net..x").is_err());
    }
}
