//! The layers stay true (issue 11, DESIGN §1): every `crate::` path in
//! `src/**.rs` is mapped to the unit it names (a folder or a top-level
//! leaf), and the test fails on an import that is not allowed below (an
//! upward or sideways import, or a unit missing from the map) and on any
//! cycle, between units or between the modules of one folder.
//!
//! ```text
//! cli → agent → pass → { cluster → etcd, host }
//! ```
//!
//! The leaves (`config`, `error`, `time`, `window`, `backoff`, `logging`,
//! `matcher`, `exposition`) may be used by every layer and may use each
//! other, without a cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// The top-level files every layer may use.
const LEAVES: [&str; 8] = [
    "backoff",
    "config",
    "error",
    "exposition",
    "logging",
    "matcher",
    "time",
    "window",
];

/// Each folder and the folders it may import (leaves are always allowed).
const FOLDERS: [(&str, &[&str]); 9] = [
    ("etcd", &[]),
    ("host", &[]),
    // Clients of Alertmanager and Prometheus: beside host/, used by pass/.
    ("alerts", &[]),
    ("cluster", &["etcd"]),
    // Issue 13: the server uses cluster/ (and host/ for notifications),
    // the client is used by pass/.
    ("fleetlock", &["cluster", "etcd", "host"]),
    ("pass", &["alerts", "cluster", "host", "fleetlock"]),
    ("agent", &["pass", "alerts", "cluster", "host", "etcd"]),
    (
        "cli",
        &[
            "agent",
            "pass",
            "alerts",
            "cluster",
            "host",
            "etcd",
            "fleetlock",
        ],
    ),
    // The test harness shared by tests/ and examples/; nothing imports it.
    ("testing", &["etcd"]),
];

/// `src/a/b.rs` → `a::b`, `src/a/mod.rs` → `a`; `lib.rs` and `main.rs`
/// (the crate root and the binary) are not modules of a layer.
fn module_of(rel: &Path) -> Option<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let file = parts.pop()?;
    let stem = file.strip_suffix(".rs")?;
    if parts.is_empty() && (stem == "lib" || stem == "main") {
        return None;
    }
    if stem != "mod" {
        parts.push(stem.to_string());
    }
    Some(parts.join("::"))
}

/// Every `crate::a::b::…` path in the code of `text`, as its segments.
/// Comment lines are skipped: a doc link to a higher layer documents, it
/// does not import.
fn crate_paths(text: &str) -> Vec<Vec<String>> {
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .flat_map(|l| [l, "\n"])
        .collect();
    let mut out = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        // `rebootctl::` or `some_crate::` are not ours: the match must
        // start a path.
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let mut segs = Vec::new();
        let mut tail = rest;
        loop {
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            if end == 0 {
                break;
            }
            segs.push(tail[..end].to_string());
            tail = &tail[end..];
            match tail.strip_prefix("::") {
                Some(t) => tail = t,
                None => break,
            }
        }
        if !segs.is_empty() {
            out.push(segs);
        }
    }
    out
}

/// The longest known module that `path` starts with.
fn resolve(path: &[String], modules: &BTreeSet<String>) -> Option<String> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|m| modules.contains(m))
}

fn unit(module: &str) -> &str {
    module.split("::").next().unwrap_or(module)
}

/// Whether unit `from` may import unit `to`; `None` when `from` is unknown.
fn may_import(from: &str, to: &str) -> Option<bool> {
    let allowed: &[&str] = if LEAVES.contains(&from) {
        &[]
    } else {
        FOLDERS.iter().find(|(f, _)| *f == from)?.1
    };
    Some(from == to || LEAVES.contains(&to) || allowed.contains(&to))
}

/// The problems in a tree given as (path relative to `src/`, text).
fn violations(files: &[(String, String)]) -> Vec<String> {
    let modules: BTreeSet<String> = files
        .iter()
        .filter_map(|(rel, _)| module_of(Path::new(rel)))
        .collect();
    let mut problems = Vec::new();
    // Module-level edges (both ends known modules, different modules).
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (rel, text) in files {
        let Some(from) = module_of(Path::new(rel)) else {
            continue;
        };
        for path in crate_paths(text) {
            let Some(to) = resolve(&path, &modules) else {
                problems.push(format!(
                    "src/{rel}: crate::{} names no module",
                    path.join("::")
                ));
                continue;
            };
            match may_import(unit(&from), unit(&to)) {
                None => problems.push(format!(
                    "src/{rel}: `{}` is not in the layer map of tests/layering.rs",
                    unit(&from)
                )),
                Some(false) => problems.push(format!(
                    "src/{rel}: {} may not import {} (crate::{})",
                    unit(&from),
                    unit(&to),
                    path.join("::")
                )),
                Some(true) => {}
            }
            if from != to {
                edges.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    // Unit-level graph, then cycles in both graphs.
    let mut unit_edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, tos) in &edges {
        for to in tos {
            if unit(from) != unit(to) {
                unit_edges
                    .entry(unit(from).to_string())
                    .or_default()
                    .insert(unit(to).to_string());
            }
        }
    }
    for (what, graph) in [("units", &unit_edges), ("modules", &edges)] {
        if let Some(cycle) = find_cycle(graph) {
            problems.push(format!("a cycle between {what}: {}", cycle.join(" → ")));
        }
    }
    problems
}

/// One cycle of `graph`, if any, as the nodes around it.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, done, stack) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut done, &mut Vec::new()))
}

fn read_tree(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            read_tree(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).expect("under src/");
            let text = fs::read_to_string(&path).expect("readable source");
            out.push((rel.to_string_lossy().into_owned(), text));
        }
    }
}

fn tree(files: &[(&str, &str)]) -> Vec<(String, String)> {
    files
        .iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect()
}

#[test]
fn src_imports_only_point_down_and_form_no_cycle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    read_tree(&root, &root, &mut files);
    assert!(files.len() > 20, "read {} files", files.len());
    let problems = violations(&files);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_folder_says_what_lives_there_and_what_it_may_import() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for (folder, _) in FOLDERS {
        let text = fs::read_to_string(root.join(folder).join("mod.rs")).expect("mod.rs");
        assert!(
            text.starts_with("//! `"),
            "src/{folder}/mod.rs: no //! paragraph"
        );
        assert!(
            text.contains("import"),
            "src/{folder}/mod.rs: says nothing of imports"
        );
    }
}

#[test]
fn an_upward_import_is_reported() {
    let files = tree(&[
        ("host/mod.rs", "pub mod process;"),
        ("host/process.rs", "use crate::pass::Outcome;"),
        ("pass/mod.rs", "use crate::host::process;"),
    ]);
    let problems = violations(&files);
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(
        problems[0].contains("host may not import pass"),
        "{problems:?}"
    );
    assert!(
        problems[1].contains("a cycle between units: host → pass → host"),
        "{problems:?}"
    );
    assert!(
        problems[2].contains("a cycle between modules"),
        "{problems:?}"
    );
}

#[test]
fn a_sideways_import_an_unknown_folder_and_a_leaf_going_up_are_reported() {
    let files = tree(&[
        ("cluster/mod.rs", "use crate::host::state;"),
        ("host/state.rs", ""),
        ("config.rs", "use crate::host::state::read_boot_id;"),
        ("fleet/mod.rs", "use crate::config;"),
    ]);
    let problems = violations(&files).join("\n");
    assert!(
        problems.contains("cluster may not import host"),
        "{problems}"
    );
    assert!(
        problems.contains("config may not import host"),
        "{problems}"
    );
    assert!(
        problems.contains("`fleet` is not in the layer map"),
        "{problems}"
    );
}

#[test]
fn a_cycle_inside_a_folder_is_reported() {
    let files = tree(&[
        (
            "cluster/mod.rs",
            "pub mod lock; use crate::cluster::lock::Slot;",
        ),
        (
            "cluster/lock.rs",
            "use crate::cluster::records::same_machine;",
        ),
        ("cluster/records.rs", "use crate::cluster::Cluster;"),
    ]);
    let problems = violations(&files);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains(
            "a cycle between modules: cluster → cluster::lock → cluster::records → cluster"
        ),
        "{problems:?}"
    );
}

#[test]
fn paths_are_read_from_use_lists_and_code_but_not_comments_or_other_crates() {
    let text = "use crate::cluster::{lock, records};\n/// See [`crate::time::human_age`].\nlet x = rebootctl::cli::main; crate::error::Error::Usage";
    let paths: Vec<String> = crate_paths(text).iter().map(|p| p.join("::")).collect();
    assert_eq!(paths, ["cluster", "error::Error::Usage"]);
}
