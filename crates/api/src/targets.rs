//! Where a secret or config reference's file appears in a task: one rule,
//! used when a service is created (to refuse bad targets) and by the agent
//! (to place the file).

/// Where relative secret targets live in a task.
pub const SECRETS_DIR: &str = "/run/secrets";

/// A target as the task sees it: relative secret targets are under
/// /run/secrets, relative config targets under /. Refuses `..` and NUL
/// (Docker accepts `../escape`; swarmkeep does not).
pub fn effective_target(target: &str, secret: bool) -> Result<String, String> {
    if target.contains('\0') {
        return Err(format!(
            "invalid target {target:?}: a target must not contain a NUL byte"
        ));
    }
    if target.split('/').any(|c| c == "..") {
        return Err(format!("invalid target {target:?}: a target must not contain \"..\""));
    }
    let base = if secret && !target.starts_with('/') {
        SECRETS_DIR
    } else {
        ""
    };
    let parts: Vec<&str> = target.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    if parts.is_empty() {
        return Err(format!("invalid target {target:?}: a target must name a file"));
    }
    Ok(format!("{base}/{}", parts.join("/")))
}

#[cfg(test)]
mod tests {
    use super::effective_target;

    #[test]
    fn targets_are_normalised_and_escapes_refused() {
        assert_eq!(effective_target("db", true).unwrap(), "/run/secrets/db");
        assert_eq!(effective_target("./a//b", true).unwrap(), "/run/secrets/a/b");
        assert_eq!(effective_target("app.conf", false).unwrap(), "/app.conf");
        assert_eq!(effective_target("/etc/app/key", true).unwrap(), "/etc/app/key");
        assert!(effective_target("../escape", true).is_err());
        assert!(effective_target("/etc/../shadow", false).is_err());
        assert!(effective_target("a\0b", true).is_err());
        assert!(effective_target("/", true).is_err());
    }
}
