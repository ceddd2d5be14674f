//! The man pages document what the code does: every command, option, exit
//! code, configuration key, health script variable, placeholder, state file
//! and `--json` field, and nothing that is not there. Commands and options
//! are read from the real binary's argh help, not from a list kept here, so
//! a new flag without documentation fails this test. Both pages must also be
//! clean under `mandoc -T lint -W warning`.

use crate::common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::fixture::{Fixture, run_binary};
use rebootctl::cluster::NodeSummary;
use rebootctl::cluster::lock::{LockState, MUTEX_INDEX, Slot, SlotKind, SlotPhase, SlotValue};
use serde_json::Value;

const MAN8: &str = "man/rebootctl.8";
const MAN5: &str = "man/rebootctl.yaml.5";

fn page_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn page(rel: &str) -> String {
    std::fs::read_to_string(page_path(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
}

// ---------------------------------------------------------------------------
// A small mdoc reader: the items of `.Bl` lists with their section,
// subsection, nesting depth, head (the `.It` line) and body.

#[derive(Debug, Clone)]
struct Item {
    section: String,
    sub: String,
    depth: usize,
    /// The `.It` line without `.It `.
    head: String,
    /// Every line up to the next `.It` of the same list or its `.El`.
    body: String,
}

fn items(text: &str) -> Vec<Item> {
    let mut out: Vec<Item> = Vec::new();
    let (mut section, mut sub) = (String::new(), String::new());
    let mut depth = 0usize;
    // open[d] is the index of the current item of the list at depth d + 1.
    let mut open: Vec<usize> = Vec::new();
    for line in text.lines() {
        if let Some(t) = line.strip_prefix(".Sh ") {
            section = t.trim().to_string();
            sub.clear();
            open.clear();
            continue;
        }
        if let Some(t) = line.strip_prefix(".Ss ") {
            sub = t.trim().to_string();
            open.clear();
            continue;
        }
        if line.starts_with(".Bl ") {
            depth += 1;
        } else if line.starts_with(".El") {
            depth = depth.saturating_sub(1);
            open.truncate(depth);
        } else if let Some(head) = line.strip_prefix(".It") {
            open.truncate(depth.saturating_sub(1));
            out.push(Item {
                section: section.clone(),
                sub: sub.clone(),
                depth,
                head: head.trim().to_string(),
                body: String::new(),
            });
            open.push(out.len() - 1);
            continue;
        }
        for &i in &open {
            out[i].body.push_str(line);
            out[i].body.push('\n');
        }
    }
    out
}

/// The first argument of `mac` on an item head: `Ic node_name : Ar name`
/// with `mac = "Ic"` gives `node_name`.
fn head_arg<'a>(head: &'a str, mac: &str) -> Option<&'a str> {
    let mut words = head.split_whitespace();
    (words.next() == Some(mac)).then(|| words.next()).flatten()
}

/// The lines of section `name` (without the `.Sh` line).
fn section<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(t) = line.strip_prefix(".Sh ") {
            inside = t.trim() == name;
            continue;
        }
        if inside {
            out.push(line);
        }
    }
    assert!(!out.is_empty(), "no section {name:?}");
    out
}

/// Panics with every problem at once, so one run shows all the gaps.
fn report(what: &str, problems: Vec<String>) {
    assert!(problems.is_empty(), "{what}:\n  {}", problems.join("\n  "));
}

// ---------------------------------------------------------------------------
// The binary's argh help.

/// The entries of a help section ("Commands:", "Options:", "Positional
/// Arguments:"): the first column of each entry line, split on ", ".
fn help_entries(help: &str, heading: &str) -> Vec<String> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in help.lines() {
        if line.ends_with(':') && !line.starts_with(' ') {
            inside = line == heading;
            continue;
        }
        // Entries start two columns in; continuation lines much further.
        if inside && line.starts_with("  ") && !line.starts_with("   ") {
            let first = line.trim_start().split("  ").next().unwrap_or("");
            out.extend(first.split(", ").map(|s| s.trim().to_string()));
        }
    }
    out
}

fn help_of(args: &[&str]) -> String {
    let run = run_binary(args, &[]);
    assert_eq!(run.code, 0, "rebootctl {args:?}: {}", run.stderr);
    run.stdout
}

/// Every subcommand the binary has, `help` included (argh lists it as an
/// alternative to `--help`).
fn commands() -> Vec<String> {
    let help = help_of(&["help"]);
    let mut cmds = help_entries(&help, "Commands:");
    assert!(cmds.len() >= 10, "cannot parse `rebootctl help`:\n{help}");
    if help_entries(&help, "Options:").iter().any(|o| o == "help") {
        cmds.push("help".to_string());
    }
    cmds
}

/// `(options, positionals)` of a subcommand (`["fleetlock", "serve"]` for
/// a nested one), options with their dashes.
fn options_of(cmd: &[&str]) -> (Vec<String>, Vec<String>) {
    let mut args = cmd.to_vec();
    args.push("--help");
    let help = help_of(&args);
    let opts: Vec<String> = help_entries(&help, "Options:")
        .into_iter()
        .filter(|o| o.starts_with("--"))
        .collect();
    assert!(
        opts.iter().any(|o| o == "--help"),
        "cannot parse `rebootctl {} --help`:\n{help}",
        cmd.join(" ")
    );
    (opts, help_entries(&help, "Positional Arguments:"))
}

/// The subcommands of a command that has its own (`fleetlock serve`).
fn subcommands_of(cmd: &str) -> Vec<String> {
    help_entries(&help_of(&[cmd, "--help"]), "Commands:")
}

/// The command an item head names: the words after `Cm` up to the first
/// macro (`Cm fleetlock serve Op Fl -config` gives `fleetlock serve`).
fn cm_words(head: &str) -> Option<String> {
    let mut words = head.split_whitespace();
    if words.next() != Some("Cm") {
        return None;
    }
    let names: Vec<&str> = words
        .take_while(|w| w.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
        .collect();
    (!names.is_empty()).then(|| names.join(" "))
}

/// The SYNOPSIS of rebootctl(8) as `(command, lines of its block)`.
fn synopsis_blocks(man: &str) -> Vec<(String, Vec<String>)> {
    let mut blocks: Vec<(String, Vec<String>)> = Vec::new();
    for line in section(man, "SYNOPSIS") {
        if line == ".Nm" {
            blocks.push((String::new(), Vec::new()));
        } else if let Some(b) = blocks.last_mut() {
            if b.0.is_empty() {
                if let Some(c) = line.strip_prefix(".Cm ") {
                    b.0 = c.trim().to_string();
                    continue;
                }
            }
            b.1.push(line.to_string());
        }
    }
    blocks
}

/// `Fl -name` occurrences of a line, as `--name`.
fn flags_in(line: &str) -> Vec<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    words
        .windows(2)
        .filter(|w| w[0] == "Fl")
        .map(|w| format!("-{}", w[1]))
        .collect()
}

#[test]
fn every_command_and_option_is_in_rebootctl_8() {
    let man = page(MAN8);
    let all = items(&man);
    let mut problems = Vec::new();

    // OPTIONS describes the options every subcommand shares.
    let shared: BTreeSet<&str> = all
        .iter()
        .filter(|i| i.section == "OPTIONS")
        .filter_map(|i| head_arg(&i.head, "Fl"))
        .collect();
    for o in ["-config", "-help"] {
        if !shared.contains(o) {
            problems.push(format!("OPTIONS: no `.It Fl {o}`"));
        }
    }

    let synopsis = synopsis_blocks(&man);
    let documented: BTreeSet<&str> = all
        .iter()
        .filter(|i| i.section == "COMMANDS" && i.depth == 1)
        .filter_map(|i| head_arg(&i.head, "Cm"))
        .collect();
    let cmds = commands();
    // A command with subcommands of its own is documented per subcommand.
    let mut paths: Vec<Vec<String>> = Vec::new();
    for cmd in &cmds {
        if !documented.contains(cmd.as_str()) {
            problems.push(format!("COMMANDS: no `.It Cm {cmd}`"));
        }
        let subs = if cmd == "help" {
            Vec::new()
        } else {
            subcommands_of(cmd)
        };
        if subs.is_empty() {
            paths.push(vec![cmd.clone()]);
        }
        paths.extend(subs.into_iter().map(|s| vec![cmd.clone(), s]));
    }
    for path in &paths {
        let cmd = &path.join(" ");
        let Some((_, block)) = synopsis.iter().find(|(c, _)| c == cmd) else {
            problems.push(format!("SYNOPSIS: no `.Nm` / `.Cm {cmd}` block"));
            continue;
        };
        if cmd == "help" {
            continue;
        }
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        let (opts, positionals) = options_of(&path);
        let in_synopsis: BTreeSet<String> = block.iter().flat_map(|l| flags_in(l)).collect();
        for o in opts.iter().filter(|o| *o != "--help") {
            if !in_synopsis.contains(o) {
                problems.push(format!("SYNOPSIS of {cmd}: {o} is missing"));
            }
        }
        for o in &in_synopsis {
            if !opts.contains(o) {
                problems.push(format!(
                    "SYNOPSIS of {cmd}: {o} is documented but `rebootctl {cmd}` has no such option"
                ));
            }
        }
        for p in &positionals {
            if !block.iter().any(|l| l.split_whitespace().any(|w| w == p)) {
                problems.push(format!("SYNOPSIS of {cmd}: argument `Ar {p}` is missing"));
            }
        }
        // Options of their own are described under the command's item.
        let described: BTreeSet<String> = command_option_items(&all, cmd);
        for o in opts.iter().filter(|o| *o != "--help" && *o != "--config") {
            if !described.contains(o) {
                problems.push(format!("COMMANDS, {cmd}: no `.It Fl {}`", &o[1..]));
            }
        }
        for o in &described {
            if !opts.contains(o) {
                problems.push(format!(
                    "COMMANDS, {cmd}: `.It Fl {}` but `rebootctl {cmd}` has no such option",
                    &o[1..]
                ));
            }
        }
    }
    for d in &documented {
        if !cmds.iter().any(|c| c == d) {
            problems.push(format!(
                "COMMANDS: `{d}` is documented but the binary has no such command"
            ));
        }
    }
    report("rebootctl(8) and the binary disagree", problems);
}

/// The `.It Fl` items nested directly under the `.It Cm cmd` item of COMMANDS.
fn command_option_items(all: &[Item], cmd: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut current = None;
    for i in all.iter().filter(|i| i.section == "COMMANDS") {
        if i.depth == 1 {
            current = cm_words(&i.head);
        } else if i.depth == 2 && current.as_deref() == Some(cmd) {
            if let Some(f) = head_arg(&i.head, "Fl") {
                out.insert(format!("-{f}"));
            }
        }
    }
    out
}

#[test]
fn every_exit_code_is_in_rebootctl_8() {
    let man = page(MAN8);
    let documented: BTreeSet<String> = items(&man)
        .into_iter()
        .filter(|i| i.section == "EXIT STATUS" && i.depth == 1)
        .map(|i| i.head)
        .collect();
    let codes: BTreeSet<String> = rebootctl::error::EXIT_CODES
        .iter()
        .map(|(c, _)| c.to_string())
        .collect();
    let mut problems = Vec::new();
    for c in codes.difference(&documented) {
        problems.push(format!("EXIT STATUS: no `.It {c}`"));
    }
    for c in documented.difference(&codes) {
        problems.push(format!(
            "EXIT STATUS: `.It {c}` is not in error::EXIT_CODES"
        ));
    }
    report("exit codes", problems);
}

#[test]
fn state_files_are_in_files_of_rebootctl_8() {
    let man = page(MAN8);
    let files = section(&man, "FILES").join("\n");
    let mut problems = Vec::new();
    for f in [
        rebootctl::host::state::RECORD_FILE,
        rebootctl::host::state::INTENT_FILE,
        rebootctl::host::state::LAST_REBOOT_FILE,
        rebootctl::host::reboot_log::LOG_FILE,
        rebootctl::host::reboot_log::CLEARED_FILE,
    ] {
        if !files.contains(f) {
            problems.push(format!("FILES: {f} is missing"));
        }
    }
    report("state files", problems);
}

// ---------------------------------------------------------------------------
// The configuration page.

/// How rebootctl.yaml(5) names a key of `config::known_keys()`: the item
/// `.It Ic <key>` (nested keys in full, `etcd_tls.ca_file`), except detector
/// keys, which are items `.It Ic <key>` of the DETECTORS section.
fn documented_keys(man: &str) -> Vec<(String, Item)> {
    items(man)
        .into_iter()
        .filter_map(|i| {
            let key = head_arg(&i.head, "Ic")?.to_string();
            let key = if i.section == "DETECTORS" {
                format!("reboot_required_detectors[].{key}")
            } else {
                key
            };
            Some((key, i))
        })
        .collect()
}

#[test]
fn every_config_key_is_in_rebootctl_yaml_5_with_its_default() {
    let man = page(MAN5);
    let documented = documented_keys(&man);
    let known = rebootctl::config::known_keys();
    let mut problems = Vec::new();
    for k in &known {
        if !documented.iter().any(|(d, _)| d == k) {
            let hint = match k.strip_prefix("reboot_required_detectors[].") {
                Some(short) => format!("`.It Ic {short}` in DETECTORS"),
                None => format!("`.It Ic {k}`"),
            };
            problems.push(format!("{k}: not documented (expected {hint})"));
        }
    }
    for (i, (d, item)) in documented.iter().enumerate() {
        if !known.contains(d) {
            problems.push(format!(
                "{d}: documented in {} but not a key of config::known_keys()",
                item.section
            ));
            continue;
        }
        // Items grouped under one description (`backoff_min_sec`,
        // `backoff_max_sec`) share the body of the last of them.
        let body = documented[i..]
            .iter()
            .map(|(_, it)| it)
            .take_while(|it| it.section == item.section && it.depth == item.depth)
            .map(|it| it.body.trim())
            .find(|b| !b.is_empty())
            .unwrap_or("");
        let has_default = body
            .lines()
            .any(|l| l.starts_with('[') || l.starts_with(".Bq") || l.starts_with("[derived"))
            || body.contains("Required")
            || body.contains("required.");
        if !has_default {
            problems.push(format!(
                "{d}: no default (a `[...]` line) and not marked Required"
            ));
        }
    }
    report(
        "rebootctl.yaml(5) and config::known_keys() disagree",
        problems,
    );
}

fn cluster_config() -> rebootctl::config::Config {
    let text = "node_name: web-1\n\
        reboot_required_detectors:\n  - type: file\n    path: /run/reboot-required\n\
        etcd_endpoints: [\"http://127.0.0.1:2379\"]\n\
        cluster_policies:\n  min_healthy_fraction: 0.5\n  forbid_if_only_fallback_left: true\n  fallback_nodes: [lb-1]\n\
        windows:\n  allow: [\"* 03:00-05:00\"]\n\
        metrics:\n  enabled: true\n";
    rebootctl::config::parse(text, Path::new("/docs-test.yaml")).expect("valid test config")
}

#[test]
fn every_health_variable_and_placeholder_is_in_rebootctl_yaml_5() {
    let man = page(MAN5);
    let all = items(&man);
    let ev_items: BTreeSet<&str> = all
        .iter()
        .filter(|i| i.section == "HEALTH SCRIPT")
        .flat_map(|i| {
            let words: Vec<&str> = i.head.split_whitespace().collect();
            words
                .windows(2)
                .filter(|w| w[0] == "Ev")
                .map(|w| w[1])
                .collect::<Vec<_>>()
        })
        .collect();
    let ctx = rebootctl::host::health::Context::new(rebootctl::host::health::Phase::Status);
    let env = rebootctl::host::health::environment(&cluster_config(), &ctx);
    let mut problems = Vec::new();
    assert!(env.iter().any(|(k, _)| k == "RC_METRICS_ENDPOINT"));
    for (k, _) in &env {
        if !ev_items.contains(k.as_str()) {
            problems.push(format!("HEALTH SCRIPT: no `.It Ev {k}`"));
        }
    }
    for d in &ev_items {
        if !env.iter().any(|(k, _)| k == d) {
            problems.push(format!(
                "HEALTH SCRIPT: `Ev {d}` is documented but health::environment does not set it"
            ));
        }
    }
    let placeholder_items: BTreeSet<&str> = all
        .iter()
        .filter(|i| i.section == "PLACEHOLDERS")
        .filter_map(|i| head_arg(&i.head, "Li"))
        .collect();
    for p in rebootctl::config::PLACEHOLDERS {
        let written = format!("${{{p}}}");
        if !placeholder_items.contains(written.as_str()) {
            problems.push(format!("PLACEHOLDERS: no `.It Li {written}`"));
        }
    }
    for d in &placeholder_items {
        if !rebootctl::config::PLACEHOLDERS
            .iter()
            .any(|p| format!("${{{p}}}") == *d)
        {
            problems.push(format!(
                "PLACEHOLDERS: `{d}` is not in config::PLACEHOLDERS"
            ));
        }
    }
    report("health environment and placeholders", problems);
}

// ---------------------------------------------------------------------------
// `--json` documents.

/// Every field path of a JSON document: `outcome`, `outcome.result`,
/// `steps`, `steps[].name`, ...
fn json_paths(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.insert(path.clone());
                json_paths(v, &path, out);
            }
        }
        Value::Array(items) => {
            for v in items {
                json_paths(v, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

fn parse_json(text: &str, what: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{what} is not JSON ({e}):\n{text}"))
}

#[test]
fn every_json_field_is_in_rebootctl_8() {
    let fx = Fixture::new("docs-json");
    fx.need_reboot();
    let status = fx.rebootctl(&["status", "--json"]);
    assert_eq!(status.code, 0, "status --json: {}", status.stderr);
    let simulate = fx.rebootctl(&["simulate", "--json"]);
    assert_eq!(simulate.code, 0, "simulate --json: {}", simulate.stderr);

    // lock and nodes need etcd; their documents are built from the same
    // library functions the commands call.
    let slot = Slot {
        key: "/rebootctl/lock/slot-0".into(),
        index: 0,
        value: Some(SlotValue {
            kind: SlotKind::Agent,
            node: "web-1".into(),
            pid: 42,
            boot_id: "b".into(),
            machine_id: "m".into(),
            phase: SlotPhase::Rebooting,
            acquired_at: "2026-01-01T00:00:00Z".into(),
            limit: 1,
            group: String::new(),
        }),
        raw: String::new(),
        create_revision: 1,
        mod_revision: 1,
        lease: 1,
    };
    // A clusterrebootd mutex owner beside it, as `Lock::state` reads one.
    let owner = Slot {
        key: "/rebootctl/lock/694d7c8e8f3a2b04".into(),
        index: MUTEX_INDEX,
        value: Some(SlotValue {
            kind: SlotKind::Mutex,
            node: "legacy-1".into(),
            pid: 7,
            boot_id: String::new(),
            machine_id: String::new(),
            phase: SlotPhase::Rebooting,
            acquired_at: "2026-01-01T00:00:00Z".into(),
            limit: 0,
            group: String::new(),
        }),
        raw: String::new(),
        create_revision: 2,
        mod_revision: 2,
        lease: 0x694d7c8e8f3a2b04,
    };
    // A FleetLock client's slot in a group of its own.
    let fleetlock_slot = Slot {
        key: "/rebootctl/lock/workers/slot-0".into(),
        value: Some(SlotValue::fleetlock(
            "c988d2509fdf4cdcbed39037c56406fb",
            "workers",
            "2026-01-01T00:00:00Z",
            1,
        )),
        ..slot.clone()
    };
    let state = LockState {
        slots: vec![slot],
        mutex_owner: Some(owner),
        mutex_owner_waits: false,
        mutex_waiters: 0,
        revision: 2,
    };
    let lock = rebootctl::cli::render::lock_json(&rebootctl::cli::render::LockView {
        state,
        own: 2,
        expires_in: [(fleetlock_slot.key.clone(), 60)].into_iter().collect(),
        others: vec![fleetlock_slot],
    });
    let node = NodeSummary {
        node: "web-1".into(),
        registered_at: "2026-01-01T00:00:00Z".into(),
        version: "0.1.0".into(),
        max_concurrent_reboots: Some(1),
        healthy: Some(true),
        health_reason: Some("exited 0".into()),
        health_age_sec: Some(3),
        reboot_required: Some(false),
        holding_slot: false,
        slot_phase: None,
        last_reboot: None,
        kind: SlotKind::Agent,
        group: None,
    };
    // As `rebootctl nodes --json` prints it.
    let nodes = serde_json::json!({ "nodes": [node] });

    // As `rebootctl rollout --json` prints it, every optional field set.
    let rollout = {
        use rebootctl::cluster::records::{LastBlock, NodeRecord, PauseRecord, RebootDone};
        use rebootctl::cluster::rollout::{Inputs, summarize};
        let record = NodeRecord {
            node: "web-1".into(),
            registered_at: "2026-01-01T00:00:00Z".into(),
            needs_reboot_since: Some("2026-01-01T00:00:00Z".into()),
            last_block: Some(LastBlock {
                reason: "window".into(),
                detail: "outside every allow window".into(),
                since: "2026-01-01T00:00:00Z".into(),
            }),
            last_reboot: Some(RebootDone {
                needed_since: Some("2025-12-01T00:00:00Z".into()),
                completed_at: "2025-12-01T01:00:00Z".into(),
            }),
            ..NodeRecord::default()
        };
        let inputs = Inputs {
            nodes: vec![record],
            paused: Some(PauseRecord {
                reason: "r".into(),
                by: "ops@bastion".into(),
                at: "2026-01-01T00:00:00Z".into(),
            }),
            slot_count: 1,
            ..Inputs::default()
        };
        let r = summarize(
            &inputs,
            "2026-01-02T00:00:00Z".parse().expect("time"),
            std::time::Duration::from_secs(3600),
        );
        rebootctl::cli::rollout::json(&r)
    };

    let docs = [
        ("rollout", rollout),
        ("status", parse_json(&status.stdout, "status --json")),
        ("simulate", parse_json(&simulate.stdout, "simulate --json")),
        ("lock", lock),
        ("nodes", nodes),
    ];
    let man = page(MAN8);
    let all = items(&man);
    let mut problems = Vec::new();
    for (cmd, doc) in &docs {
        let mut paths = BTreeSet::new();
        json_paths(doc, "", &mut paths);
        let documented: BTreeSet<String> = all
            .iter()
            .filter(|i| i.section == "JSON OUTPUT" && i.sub == *cmd)
            .filter_map(|i| head_arg(&i.head, "Li"))
            .map(str::to_string)
            .collect();
        if documented.is_empty() {
            problems.push(format!("JSON OUTPUT: no `.Ss {cmd}` with `.It Li` fields"));
            continue;
        }
        for p in paths.difference(&documented) {
            problems.push(format!("JSON OUTPUT, {cmd}: field `{p}` is not documented"));
        }
        for p in documented.difference(&paths) {
            problems.push(format!(
                "JSON OUTPUT, {cmd}: `{p}` is documented but `{cmd} --json` has no such field"
            ));
        }
    }
    report("--json documents and rebootctl(8) disagree", problems);
}

// ---------------------------------------------------------------------------
// mandoc.

#[test]
fn man_pages_are_lint_clean() {
    let out = match Command::new("mandoc")
        .args(["-T", "lint", "-W", "warning"])
        .arg(page_path(MAN8))
        .arg(page_path(MAN5))
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("mandoc not found: install it (Debian package `mandoc`) to check the man pages")
        }
        Err(e) => panic!("cannot run mandoc: {e}"),
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.trim().is_empty(),
        "mandoc -T lint -W warning is not clean (exit {:?}):\n{text}",
        out.status.code()
    );
}
