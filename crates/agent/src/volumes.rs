//! Local volumes on this node: `<data dir>/volumes/<name>/_data`, made the
//! first time a task uses the name and kept after (as Docker's local
//! driver); an anonymous volume (no source) is one task's and removed with
//! it, as Swarm's. Anonymous volumes are named `.anon-<hex>` (a name no
//! named volume can have), so that the ones an agent that crashed left are
//! found and removed when the agent starts again.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use swarmkeep_api::control;

use crate::executor::volumes::VolumeMount;

/// The anonymous volumes of one task, removed on drop.
#[derive(Default)]
pub struct Anonymous(Vec<PathBuf>);

impl Drop for Anonymous {
    fn drop(&mut self) {
        for dir in &self.0 {
            if let Err(e) = std::fs::remove_dir_all(dir) {
                tracing::warn!(volume = %dir.display(), error = %e, "removing an anonymous volume failed");
            }
        }
    }
}

/// What an anonymous volume's directory name starts with.
const ANONYMOUS: &str = ".anon-";

/// Removes the anonymous volumes an earlier run of the agent left (it
/// crashed, or was killed): their tasks were stopped with it.
pub fn remove_orphans(data_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(data_dir.join("volumes")) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(ANONYMOUS) && e.file_type().is_ok_and(|t| t.is_dir()) {
            match std::fs::remove_dir_all(e.path()) {
                Ok(()) => {
                    tracing::info!(volume = %e.path().display(), "removed an anonymous volume an earlier run left")
                }
                Err(err) => {
                    tracing::warn!(volume = %e.path().display(), error = %err, "removing an orphaned anonymous volume failed")
                }
            }
        }
    }
}

/// A local volume's name as Docker's local driver takes it (the manager
/// checked it too: this is what keeps a name from being a path here).
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() >= 2
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// The host directories of the task's volume mounts, made where missing
/// (owned by `owner`, the task's root with `--userns-remap`, when made).
pub fn prepare(
    data_dir: &Path,
    mounts: &[control::Mount],
    anonymous: &mut Anonymous,
    owner: Option<(u32, u32)>,
) -> Result<Vec<VolumeMount>, String> {
    let root = data_dir.join("volumes");
    let mut out = Vec::new();
    for m in mounts.iter().filter(|m| m.r#type == "volume") {
        let name = if m.source.is_empty() {
            let mut b = [0u8; 32];
            swarmkeep_crypto::random_bytes(&mut b);
            let name: String = std::iter::once(ANONYMOUS.to_string())
                .chain(b.iter().map(|x| format!("{x:02x}")))
                .collect();
            anonymous.0.push(root.join(&name));
            name
        } else if valid_name(&m.source) {
            m.source.clone()
        } else {
            return Err(format!("invalid volume name {:?}", m.source));
        };
        let data = root.join(&name).join("_data");
        let made = !data.exists();
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&data)
            .map_err(|e| format!("creating volume {name}: {e}"))?;
        if let (true, Some((uid, gid))) = (made, owner) {
            std::os::unix::fs::chown(&data, Some(uid), Some(gid))
                .map_err(|e| format!("creating volume {name}: {e}"))?;
        }
        out.push(VolumeMount {
            source: data,
            target: PathBuf::from(&m.target),
            read_only: m.read_only,
            copy_up: !m.volume_options.as_ref().is_some_and(|o| o.no_copy),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dockers() {
        assert!(valid_name("db-data_1.x"));
        assert!(!valid_name("a"));
        assert!(!valid_name("../etc"));
        assert!(!valid_name("-x"));
        assert!(!valid_name("a/b"));
        assert!(!valid_name(".anon-00"), "no named volume looks anonymous");
    }

    #[test]
    fn an_earlier_runs_anonymous_volumes_go_and_named_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let mut anonymous = Anonymous::default();
        let mounts = [
            control::Mount {
                r#type: "volume".into(),
                target: "/scratch".into(),
                ..Default::default()
            },
            control::Mount {
                r#type: "volume".into(),
                source: "db-data".into(),
                target: "/db".into(),
                ..Default::default()
            },
        ];
        let made = prepare(dir.path(), &mounts, &mut anonymous, None).unwrap();
        std::fs::write(made[0].source.join("left"), b"x").unwrap();
        // The agent dies: its guard never runs.
        std::mem::forget(anonymous);
        remove_orphans(dir.path());
        assert!(!made[0].source.exists(), "the orphaned anonymous volume stayed");
        assert!(made[1].source.exists(), "a named volume was removed");
    }
}
