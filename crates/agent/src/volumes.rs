//! Local volumes on this node: `<data dir>/volumes/<name>/_data`, made the
//! first time a task uses the name and kept after (as Docker's local
//! driver); an anonymous volume (no source) is one task's and removed with
//! it, as Swarm's.

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

/// A local volume's name as Docker's local driver takes it (the manager
/// checked it too: this is what keeps a name from being a path here).
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() >= 2
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// The host directories of the task's volume mounts, made where missing.
pub fn prepare(
    data_dir: &Path,
    mounts: &[control::Mount],
    anonymous: &mut Anonymous,
) -> Result<Vec<VolumeMount>, String> {
    let root = data_dir.join("volumes");
    let mut out = Vec::new();
    for m in mounts.iter().filter(|m| m.r#type == "volume") {
        let name = if m.source.is_empty() {
            let mut b = [0u8; 32];
            swarmkeep_crypto::random_bytes(&mut b);
            let name: String = b.iter().map(|x| format!("{x:02x}")).collect();
            anonymous.0.push(root.join(&name));
            name
        } else if valid_name(&m.source) {
            m.source.clone()
        } else {
            return Err(format!("invalid volume name {:?}", m.source));
        };
        let data = root.join(&name).join("_data");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&data)
            .map_err(|e| format!("creating volume {name}: {e}"))?;
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
    }
}
