//! `rebootctl rollout`: the current round across the fleet on one screen
//! (text, grouped so 50 nodes fit 80 columns) or as one JSON document that
//! lists every node. The view itself is [`crate::cluster::rollout`].

use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::cluster::rollout::{self, Rollout, Stage};
use crate::time::{human_duration, when};

/// The width the text fits in.
pub const TEXT_WIDTH: usize = 80;
/// Where node lists start (label and count before).
const LIST_COLUMN: usize = 25;
/// Lines of names shown per row before "+N more".
const MAX_LIST_LINES: usize = 2;

/// The `rollout --json` document.
pub fn json(r: &Rollout) -> serde_json::Value {
    serde_json::to_value(r).unwrap_or_default()
}

fn ago(secs: Option<u64>) -> String {
    human_duration(Duration::from_secs(secs.unwrap_or(0)))
}

/// Words wrapped from column [`LIST_COLUMN`] to [`TEXT_WIDTH`], at most
/// [`MAX_LIST_LINES`] lines, the rest counted ("+3 more").
fn wrap(words: &[String]) -> Vec<String> {
    let width = TEXT_WIDTH - LIST_COLUMN;
    let mut lines: Vec<String> = vec![String::new()];
    for (i, w) in words.iter().enumerate() {
        let left = words.len() - i;
        let more = format!("+{left} more");
        let count = lines.len();
        let line = lines.last_mut().expect("one line at least");
        let sep = usize::from(!line.is_empty());
        // The last line keeps room for "+N more" unless this is the last word.
        let need = line.len() + sep + w.chars().count();
        let reserve = if count == MAX_LIST_LINES && left > 1 {
            1 + more.len() + 4
        } else {
            0
        };
        if need + reserve <= width {
            if sep == 1 {
                line.push(' ');
            }
            line.push_str(w);
        } else if count < MAX_LIST_LINES && w.chars().count() <= width {
            lines.push(w.clone());
        } else {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(&more);
            break;
        }
    }
    lines
}

fn truncate(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(width - 1).collect();
        t.push('…');
        t
    }
}

/// One row: label, count, then the wrapped list.
fn row(out: &mut String, label: &str, count: usize, words: &[String]) {
    let head = format!("{label:<20}{count:>3}  ");
    let lines = if words.is_empty() {
        vec![String::new()]
    } else {
        wrap(words)
    };
    for (i, l) in lines.iter().enumerate() {
        let prefix = if i == 0 {
            head.clone()
        } else {
            " ".repeat(LIST_COLUMN)
        };
        out.push_str(format!("{prefix}{l}").trim_end());
        out.push('\n');
    }
}

/// The text for people, in time zone `tz`.
pub fn text(r: &Rollout, tz: &TimeZone) -> String {
    let now: Timestamp = r.now.parse().unwrap_or_else(|_| Timestamp::now());
    let mut out = String::new();
    let c = &r.counts;
    let slots = format!("{} slot{}", r.slots, if r.slots == 1 { "" } else { "s" });
    let round = match (&r.round_started_at, r.round_open) {
        (None, _) => "no round yet".to_string(),
        (Some(s), open) => {
            let at = s
                .parse::<Timestamp>()
                .map(|t| when(t, now, tz))
                .unwrap_or_else(|_| s.clone());
            if open {
                format!("round since {at}")
            } else {
                format!("last round {at}, complete")
            }
        }
    };
    out.push_str(&truncate(
        &format!("{} nodes, {slots}: {round}", c.nodes),
        TEXT_WIDTH,
    ));
    out.push('\n');
    if let Some(p) = &r.paused {
        let why = if p.reason.is_empty() {
            "no reason given"
        } else {
            &p.reason
        };
        out.push_str(&truncate(
            &format!("CLUSTER PAUSED: {why} (by {})", p.by),
            TEXT_WIDTH,
        ));
        out.push('\n');
    }
    let oldest = r.nodes.iter().filter_map(|n| n.needs_reboot_sec).max();
    let needs = match oldest {
        Some(s) => vec![format!("the oldest for {}", ago(Some(s)))],
        None => vec![],
    };
    row(&mut out, "needs a reboot", c.needs_reboot, &needs);
    let names = |stage: Stage, with_age: bool| -> Vec<String> {
        r.nodes
            .iter()
            .filter(|n| n.stage == stage)
            .map(|n| {
                if with_age {
                    format!("{} ({})", n.node, ago(n.slot_sec))
                } else {
                    n.node.clone()
                }
            })
            .collect()
    };
    row(
        &mut out,
        "rebooting",
        c.rebooting,
        &names(Stage::Rebooting, true),
    );
    row(
        &mut out,
        "checking",
        c.checking,
        &names(Stage::Checking, true),
    );
    row(&mut out, "blocked", c.blocked, &[]);
    for g in &r.blocked_by {
        row(
            &mut out,
            &format!("  {}", g.reason),
            g.nodes.len(),
            &g.nodes,
        );
        if !g.detail.is_empty() {
            out.push_str(&" ".repeat(LIST_COLUMN));
            out.push_str(&truncate(&g.detail, TEXT_WIDTH - LIST_COLUMN));
            out.push('\n');
        }
    }
    row(
        &mut out,
        "waiting",
        c.waiting,
        &names(Stage::Waiting, false),
    );
    row(
        &mut out,
        "finished this round",
        c.finished,
        &names(Stage::Finished, false),
    );
    row(&mut out, "up to date", c.up_to_date, &[]);
    let mut laggards: Vec<_> = r.nodes.iter().filter(|n| n.laggard).collect();
    laggards.sort_by_key(|n| std::cmp::Reverse(n.needs_reboot_sec));
    let laggards: Vec<String> = laggards
        .iter()
        .map(|n| format!("{} ({})", n.node, ago(n.needs_reboot_sec)))
        .collect();
    row(
        &mut out,
        &format!(
            "laggards (> {})",
            human_duration(Duration::from_secs(r.laggard_after_sec))
        ),
        c.laggards,
        &laggards,
    );
    out
}

/// Parses `--laggard-after` (humantime, greater than zero).
pub fn laggard_after(s: &str) -> std::result::Result<Duration, String> {
    super::parse_duration(s)
}

/// The default `--laggard-after`.
pub fn default_laggard_after() -> Duration {
    Duration::from_secs(rollout::DEFAULT_LAGGARD_AFTER_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::records::{LastBlock, NodeRecord};
    use crate::cluster::rollout::{Inputs, summarize};

    fn fleet_of_50() -> Rollout {
        let mut nodes = Vec::new();
        for i in 1..=50 {
            let mut n = NodeRecord {
                node: format!("web-{i:02}"),
                registered_at: "2026-11-01T00:00:00Z".into(),
                ..NodeRecord::default()
            };
            if i > 17 {
                n.needs_reboot_since = Some("2026-11-26T10:00:00Z".into());
            }
            if (18..40).contains(&i) {
                n.last_block = Some(LastBlock {
                    reason: if i < 30 { "window" } else { "health" }.into(),
                    detail: "maintenance window: outside every allow window (Europe/Berlin); opens Tue 22:00 CET, in 1d 6h".into(),
                    since: "2026-11-26T10:00:00Z".into(),
                });
            }
            nodes.push(n);
        }
        let input = Inputs {
            nodes,
            slot_count: 1,
            ..Inputs::default()
        };
        summarize(
            &input,
            "2026-11-27T12:00:00Z".parse().unwrap(),
            default_laggard_after(),
        )
    }

    #[test]
    fn fifty_nodes_fit_80_columns_on_one_screen() {
        let r = fleet_of_50();
        let shown = text(&r, &TimeZone::UTC);
        for line in shown.lines() {
            assert!(
                line.chars().count() <= TEXT_WIDTH,
                "{} columns: {line}\n{shown}",
                line.chars().count()
            );
        }
        assert!(shown.lines().count() <= 24, "{shown}");
        assert!(
            shown.contains("needs a reboot       33  the oldest for 1d 2h"),
            "{shown}"
        );
        assert!(
            shown.contains("  window             12  web-18 web-19"),
            "{shown}"
        );
        assert!(shown.contains(" more"), "{shown}");
        assert!(
            shown.contains("laggards (> 1d)      33  web-18 (1d 2h)"),
            "{shown}"
        );
        assert!(
            shown.contains("round since Thu 10:00 UTC, 1d 2h ago"),
            "{shown}"
        );
    }

    #[test]
    fn wrapping_counts_what_does_not_fit() {
        let words: Vec<String> = (0..40).map(|i| format!("node-{i}")).collect();
        let lines = wrap(&words);
        assert_eq!(lines.len(), MAX_LIST_LINES);
        let shown: usize = lines
            .iter()
            .flat_map(|l| l.split(' '))
            .filter(|w| w.starts_with("node-"))
            .count();
        let more: usize = lines[1]
            .rsplit_once('+')
            .and_then(|(_, m)| m.strip_suffix(" more"))
            .and_then(|m| m.parse().ok())
            .expect("a +N more");
        assert_eq!(shown + more, 40, "{lines:?}");
        assert!(lines.iter().all(|l| l.len() <= TEXT_WIDTH - LIST_COLUMN));
        assert_eq!(wrap(&["a".into(), "b".into()]), ["a b"]);
    }
}
