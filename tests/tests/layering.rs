//! The crate graph, held as rust-analyzer's tidy tests hold its layering:
//! each library crate may depend only on the workspace crates listed here,
//! every dependency a crate declares is used by its code, and no crate's
//! top-level modules use each other in a cycle. Read from `cargo metadata`
//! and the sources, so an edge added to a Cargo.toml or a `use crate::…`
//! fails here before it can drift into ARCHITECTURE.md.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Which workspace crates each library crate may use (normal dependencies).
/// The binaries (`daemon`, `bench`) and the test crate wire everything and
/// are not listed.
const ALLOWED: &[(&str, &[&str])] = &[
    ("swarmkeep-api", &[]),
    ("swarmkeep-crypto", &[]),
    // Private, durable files: no workspace crate.
    ("swarmkeep-disk", &[]),
    (
        "swarmkeep-transport",
        &["swarmkeep-api", "swarmkeep-crypto", "swarmkeep-disk"],
    ),
    ("swarmkeep-store", &["swarmkeep-api", "swarmkeep-disk"]),
    // Decides from the cluster state alone: IDs, time and randomness are inputs.
    ("swarmkeep-scheduler", &["swarmkeep-store"]),
    (
        "swarmkeep-manager",
        &[
            "swarmkeep-api",
            "swarmkeep-crypto",
            "swarmkeep-disk",
            "swarmkeep-store",
            "swarmkeep-scheduler",
            "swarmkeep-transport",
        ],
    ),
    // The agent knows nothing of the manager: the wire contract, its keys and
    // the way to its upstream.
    (
        "swarmkeep-agent",
        &[
            "swarmkeep-api",
            "swarmkeep-crypto",
            "swarmkeep-transport",
            "swarmkeep-image",
        ],
    ),
    // Images: registries, layers on disk; nothing of the cluster.
    ("swarmkeep-image", &["swarmkeep-disk"]),
    // The Docker API facade speaks only the control API.
    ("swarmkeep-dockerapi", &["swarmkeep-api"]),
    ("swarmkeep-cli", &["swarmkeep-api", "swarmkeep-crypto"]),
];

struct Package {
    name: String,
    dir: PathBuf,
    /// (dependency name as the code spells it, is a normal dependency)
    deps: Vec<(String, bool)>,
}

fn workspace() -> Vec<Package> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(&root)
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("cargo metadata JSON");
    meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| Package {
            name: p["name"].as_str().unwrap_or_default().to_string(),
            dir: Path::new(p["manifest_path"].as_str().unwrap_or_default())
                .parent()
                .expect("manifest dir")
                .to_path_buf(),
            deps: p["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .map(|d| {
                    let name = d["rename"].as_str().or(d["name"].as_str()).unwrap_or_default();
                    (name.to_string(), d["kind"].is_null())
                })
                .collect(),
        })
        .collect()
}

#[test]
fn library_crates_depend_only_on_what_their_layer_allows() {
    let allowed: BTreeMap<&str, BTreeSet<&str>> = ALLOWED
        .iter()
        .map(|(name, deps)| (*name, deps.iter().copied().collect()))
        .collect();
    let packages = workspace();
    let mut problems = Vec::new();
    for (name, _) in ALLOWED {
        if !packages.iter().any(|p| p.name == *name) {
            problems.push(format!("{name} is listed here but is not in the workspace"));
        }
    }
    for p in &packages {
        let ours = p
            .deps
            .iter()
            .filter(|(d, normal)| *normal && d.starts_with("swarmkeep-"));
        match allowed.get(p.name.as_str()) {
            Some(ok) => {
                for (dep, _) in ours {
                    if !ok.contains(dep.as_str()) {
                        problems.push(format!("{} must not depend on {dep}", p.name));
                    }
                }
            }
            None if p.name.starts_with("swarmkeep-")
                && !["swarmkeep-daemon", "swarmkeep-bench", "swarmkeep-tests"].contains(&p.name.as_str()) =>
            {
                problems.push(format!("{} has no layer in tests/tests/layering.rs", p.name));
            }
            None => {}
        }
    }
    assert!(problems.is_empty(), "crate graph:\n{}", problems.join("\n"));
}

/// Every `.rs` file under `dir`, concatenated.
fn sources(dir: &Path) -> String {
    let mut text = String::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "target") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|x| x == "rs") {
                text.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
            }
        }
    }
    text
}

#[test]
fn every_declared_dependency_is_used() {
    // Used only through generated code or as a build helper.
    const INDIRECT: &[(&str, &str)] = &[("swarmkeep-api", "tonic-prost"), ("swarmkeep-api", "prost-types")];
    let mut unused = Vec::new();
    for p in workspace() {
        let code = sources(&p.dir);
        for (dep, _) in &p.deps {
            let ident = dep.replace('-', "_");
            let used = code.contains(&format!("{ident}::"))
                || code.contains(&format!("use {ident}"))
                || code.contains(&format!("extern crate {ident}"))
                || code.contains(&format!("{ident}!"))
                || code.contains(&format!("#[{ident}"))
                || INDIRECT.contains(&(p.name.as_str(), dep.as_str()));
            if !used {
                unused.push(format!("{} declares {dep} but its code never names it", p.name));
            }
        }
    }
    assert!(unused.is_empty(), "unused dependencies:\n{}", unused.join("\n"));
}

/// The top-level modules a file's non-test code names as `crate::<module>`.
fn crate_refs(code: &str) -> BTreeSet<String> {
    let code = code.split("#[cfg(test)]").next().unwrap_or(code);
    code.match_indices("crate::")
        .filter(|(i, _)| {
            // Not `swarmkeep_crate::` or the like: `crate` stands alone.
            !code[..*i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
        })
        .map(|(i, m)| {
            code[i + m.len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|m| !m.is_empty() && m.chars().next().is_some_and(|c| c.is_lowercase()))
        .collect()
}

/// Which top-level modules each top-level module of `src` uses.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).expect("under src");
            let first = rel.components().next().expect("a component");
            let top = first.as_os_str().to_string_lossy().trim_end_matches(".rs").to_string();
            if top == "lib" || top == "main" {
                continue;
            }
            let code = std::fs::read_to_string(&path).unwrap_or_default();
            let uses = graph.entry(top.clone()).or_default();
            uses.extend(crate_refs(&code).into_iter().filter(|m| *m != top));
        }
    }
    graph
}

/// A cycle through `start`, if there is one.
fn cycle_through(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![vec![start.to_string()]];
    let mut seen = BTreeSet::new();
    while let Some(path) = stack.pop() {
        let last = path.last().expect("non-empty");
        for next in graph.get(last).into_iter().flatten() {
            if next == start {
                let mut cycle = path.clone();
                cycle.push(next.clone());
                return Some(cycle);
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push(longer);
            }
        }
    }
    None
}

#[test]
fn no_crate_has_a_cycle_between_its_modules() {
    let mut cycles = Vec::new();
    for p in workspace() {
        let graph = module_graph(&p.dir.join("src"));
        for module in graph.keys() {
            if let Some(cycle) = cycle_through(&graph, module) {
                cycles.push(format!("{}: {}", p.name, cycle.join(" → ")));
                break;
            }
        }
    }
    assert!(cycles.is_empty(), "module cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_cycle_check_sees_a_cycle() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_string(), ["b".to_string()].into()),
        ("b".to_string(), ["c".to_string()].into()),
        ("c".to_string(), ["a".to_string()].into()),
        ("d".to_string(), ["a".to_string()].into()),
    ]
    .into();
    assert_eq!(
        cycle_through(&graph, "a").map(|c| c.join(" ")),
        Some("a b c a".to_string())
    );
    assert_eq!(cycle_through(&graph, "d"), None);
    assert_eq!(
        crate_refs(
            "use crate::state::X;\nuse swarmkeep_crate::y;\ncrate::leader::call();\n#[cfg(test)]\nuse crate::z;"
        ),
        ["leader".to_string(), "state".to_string()].into()
    );
}
