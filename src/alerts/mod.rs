//! `alerts/` — alert gating (issue 14), beside `host/` and used by `pass/`;
//! it may import only the top-level leaves (`config`, `matcher`, `error`,
//! `time`, …). No reboot while Alertmanager has a matching
//! alert or a PromQL expression returns something, and a silence of this
//! node's alerts while it reboots.
//!
//! [`check`] is the gate the pass runs before the lock and again under it.
//! It fails closed: an Alertmanager or Prometheus that cannot be reached,
//! answers too slowly, answers non-2xx or answers nonsense blocks with a
//! message that says so; it never counts as "no alerts". The verdict is a
//! plain value ([`AlertsVerdict`]) that `status` prints and `--json` shows.
//!
//! `block_on` and `ignore` entries are [`crate::matcher::MatcherSet`]s: an alert
//! blocks when it matches any `block_on` entry (every matcher of that
//! entry) and no `ignore` entry. Alertmanager does the matching: one
//! `GET /api/v2/alerts` per `block_on` entry with its matchers as `filter`,
//! and, when that finds alerts, one per `ignore` entry with both entries'
//! matchers; what the latter finds is left out. Races between the calls can
//! only leave an alert in, never out.
//!
//! [`silence_for_reboot`] and [`expire_silences`] are the silence around the
//! reboot: created before the `pre_reboot` hook (the drain's alerts are the
//! reboot's alerts too), its id kept in the reboot record, expired once the
//! node is back and healthy.

pub mod alertmanager;
mod http;
pub mod prometheus;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;

use self::alertmanager::{Alert, Counting};
use self::http::Http;
use self::prometheus::QueryReport;
use crate::config::{AlertsConfig, SilenceFailure};
use crate::matcher::{MatcherSet, expand_placeholders};

/// How many matching alerts a verdict keeps for `status` (all are counted).
pub const MAX_ALERTS_SHOWN: usize = 10;

/// Alert names quoted in the one-line summary.
const NAMES_IN_SUMMARY: usize = 3;

/// Width of the alert-name column in `status`.
const NAME_COLUMNS: usize = 24;

/// What the alert gate found.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[must_use]
pub struct AlertsVerdict {
    /// The Alertmanager side, when `alertmanager_url` is set.
    pub alertmanager: Option<AlertmanagerReport>,
    /// One report per `block_if` expression.
    pub prometheus: Vec<QueryReport>,
}

/// What Alertmanager said.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertmanagerReport {
    /// The Alertmanager asked.
    pub url: String,
    /// Alerts that block (matching `block_on`, not `ignore`).
    pub total: usize,
    /// The first [`MAX_ALERTS_SHOWN`] of them, sorted by name.
    pub alerts: Vec<MatchedAlert>,
    /// Alerts that matched `block_on` but also `ignore`.
    pub ignored: usize,
    /// Why Alertmanager could not be asked (the gate then blocks).
    pub error: Option<String>,
}

/// An alert that blocks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MatchedAlert {
    /// Its `alertname` label.
    pub name: String,
    /// The labels named by the `block_on` entry it matched, with its values.
    pub matched: BTreeMap<String, String>,
    /// Alertmanager's state: `active`, `suppressed` or `unprocessed`.
    pub state: String,
}

impl AlertmanagerReport {
    fn failed(url: &str, error: String) -> AlertmanagerReport {
        AlertmanagerReport {
            url: url.to_string(),
            total: 0,
            alerts: Vec::new(),
            ignored: 0,
            error: Some(error),
        }
    }

    fn blocks(&self) -> bool {
        self.error.is_some() || self.total > 0
    }
}

impl MatchedAlert {
    /// `severity="critical" instance="web-1"`, plus the state when the
    /// alert is not simply active (empty when `block_on` is empty).
    fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .matched
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        if self.state != "active" {
            parts.push(format!("({})", self.state));
        }
        parts.join(" ")
    }
}

impl AlertsVerdict {
    /// Whether the gate is closed.
    pub fn blocked(&self) -> bool {
        self.alertmanager.as_ref().is_some_and(|a| a.blocks())
            || self.prometheus.iter().any(|q| q.blocks)
    }

    /// One line for the step, the log and the block reason.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let Some(am) = &self.alertmanager {
            parts.push(match &am.error {
                Some(e) => format!("cannot ask Alertmanager, so not rebooting: {e}"),
                None if am.total > 0 => {
                    let mut names: Vec<&str> = am.alerts.iter().map(|a| a.name.as_str()).collect();
                    names.dedup();
                    let more = if names.len() > NAMES_IN_SUMMARY {
                        ", …"
                    } else {
                        ""
                    };
                    names.truncate(NAMES_IN_SUMMARY);
                    format!(
                        "{} matching alert{} at {} ({}{more})",
                        am.total,
                        plural(am.total),
                        am.url,
                        names.join(", ")
                    )
                }
                None => format!(
                    "no matching alert at {}{}",
                    am.url,
                    if am.ignored > 0 {
                        format!(" ({} ignored)", am.ignored)
                    } else {
                        String::new()
                    }
                ),
            });
        }
        let blocking: Vec<&QueryReport> = self.prometheus.iter().filter(|q| q.blocks).collect();
        for q in &blocking {
            parts.push(match &q.error {
                Some(e) => format!("cannot judge PromQL `{}`, so not rebooting: {e}", q.expr),
                None => format!("PromQL `{}` returned {} series", q.expr, q.total),
            });
        }
        let empty = self.prometheus.len() - blocking.len();
        if empty > 0 {
            parts.push(format!("{empty} PromQL expression{} empty", plural(empty)));
        }
        parts.join("; ")
    }

    /// The detail lines `status` prints under the step, as (label, text)
    /// pairs; the caller wraps the text to the width under its label.
    pub fn status_lines(&self) -> Vec<(String, String)> {
        let mut lines = Vec::new();
        if let Some(am) = &self.alertmanager {
            for a in &am.alerts {
                lines.push((
                    format!("    {:<w$} ", cut(&a.name, NAME_COLUMNS), w = NAME_COLUMNS),
                    a.describe(),
                ));
            }
            if am.total > am.alerts.len() {
                lines.push((
                    "    ".to_string(),
                    format!("… and {} more", am.total - am.alerts.len()),
                ));
            }
        }
        for q in &self.prometheus {
            let what = match (&q.error, q.blocks) {
                (Some(e), _) => format!("error: {e}"),
                (None, true) => format!(
                    "{} series ({})",
                    q.total,
                    q.result_type.as_deref().unwrap_or("?")
                ),
                (None, false) => "empty".to_string(),
            };
            lines.push(("    promql ".to_string(), format!("{} → {what}", q.expr)));
            for s in &q.series {
                lines.push(("      ".to_string(), s.describe()));
            }
            if q.total > q.series.len() {
                lines.push((
                    "      ".to_string(),
                    format!("… and {} more", q.total - q.series.len()),
                ));
            }
        }
        lines
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max - 1).collect();
    t.push('…');
    t
}

/// Runs the gate: asks Alertmanager (when configured) and every `block_if`
/// expression (when Prometheus is configured). `vars` fills the
/// placeholders ([`crate::matcher::GATE_PLACEHOLDERS`]). Never fails: what cannot be
/// asked is in the verdict, and blocks.
pub fn check(cfg: &AlertsConfig, vars: &[(String, String)]) -> AlertsVerdict {
    let http = Http::new(cfg);
    let alertmanager = cfg.alertmanager_url.as_deref().map(|url| match &http {
        Ok(h) => ask_alertmanager(h, url, cfg, vars),
        Err(e) => AlertmanagerReport::failed(url, e.clone()),
    });
    let prometheus = match cfg.prometheus_url.as_deref() {
        Some(url) => cfg
            .block_if
            .iter()
            .map(|expr| {
                let expr = expand_placeholders(expr, vars, false);
                match &http {
                    Ok(h) => prometheus::query(h, url, &expr),
                    Err(e) => QueryReport::failed(&expr, e.clone()),
                }
            })
            .collect(),
        None => Vec::new(),
    };
    let verdict = AlertsVerdict {
        alertmanager,
        prometheus,
    };
    log::debug!("alert gate: {}", verdict.summary());
    verdict
}

/// The Alertmanager half of [`check`] (see the module docs).
fn ask_alertmanager(
    http: &Http,
    url: &str,
    cfg: &AlertsConfig,
    vars: &[(String, String)],
) -> AlertmanagerReport {
    let counting = Counting {
        silenced: cfg.count_silenced,
        inhibited: cfg.count_inhibited,
    };
    let any = [MatcherSet::default()];
    let entries: &[MatcherSet] = if cfg.block_on.is_empty() {
        &any
    } else {
        &cfg.block_on
    };
    let mut found: Vec<(Alert, MatcherSet)> = Vec::new();
    let mut ignored: BTreeSet<String> = BTreeSet::new();
    for entry in entries {
        let entry = entry.expand(vars);
        let alerts = match alertmanager::alerts(http, url, &entry, counting) {
            Ok(a) => a,
            Err(e) => return AlertmanagerReport::failed(url, e),
        };
        if alerts.is_empty() {
            continue;
        }
        for ignore in &cfg.ignore {
            let mut both = entry.clone();
            both.0.extend(ignore.expand(vars).0);
            match alertmanager::alerts(http, url, &both, counting) {
                Ok(a) => ignored.extend(a.into_iter().map(|a| a.fingerprint)),
                Err(e) => return AlertmanagerReport::failed(url, e),
            }
        }
        for a in alerts {
            if !found.iter().any(|(f, _)| f.fingerprint == a.fingerprint) {
                found.push((a, entry.clone()));
            }
        }
    }
    let before = found.len();
    found.retain(|(a, _)| !ignored.contains(&a.fingerprint));
    let mut alerts: Vec<MatchedAlert> = found
        .into_iter()
        .map(|(a, entry)| MatchedAlert {
            name: a
                .labels
                .get("alertname")
                .cloned()
                .unwrap_or_else(|| "(no alertname)".to_string()),
            matched: entry
                .0
                .iter()
                .filter_map(|m| a.labels.get(&m.name).map(|v| (m.name.clone(), v.clone())))
                .collect(),
            state: a.state,
        })
        .collect();
    alerts.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.matched.cmp(&b.matched)));
    let total = alerts.len();
    alerts.truncate(MAX_ALERTS_SHOWN);
    AlertmanagerReport {
        url: url.to_string(),
        total,
        alerts,
        ignored: before - total,
        error: None,
    }
}

/// Creates one silence per `silence_during_reboot` entry (placeholders
/// from `vars`), lasting `duration`, just before this node goes down.
/// Returns their ids for the reboot record. A silence that cannot be
/// created is an `Err` (with the created ones expired again) under
/// `silence_failure: block`, and a warning under `continue`.
pub fn silence_for_reboot(
    cfg: &AlertsConfig,
    vars: &[(String, String)],
    duration: Duration,
) -> Result<Vec<String>, String> {
    let (Some(url), false) = (&cfg.alertmanager_url, cfg.silence_during_reboot.is_empty()) else {
        return Ok(Vec::new());
    };
    let var = |name: &str| {
        vars.iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    };
    let comment = format!(
        "rebootctl: {} is rebooting (required by {}); expired when it is back and healthy",
        var("RC_NODE_NAME"),
        var("RC_REASON")
    );
    let ends = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(
            i64::try_from(duration.as_secs()).unwrap_or(i64::MAX),
        ))
        .unwrap_or(jiff::Timestamp::MAX);
    let mut ids = Vec::new();
    let mut failure = None;
    match Http::new(cfg) {
        Err(e) => failure = Some(e),
        Ok(http) => {
            for entry in &cfg.silence_during_reboot {
                let entry = entry.expand(vars);
                match alertmanager::create_silence(&http, url, &entry, ends, &comment) {
                    Ok(id) => {
                        log::info!(event = "silence_created"; "created silence {id} of {entry} at {url} until {ends}");
                        ids.push(id);
                    }
                    Err(e) => {
                        failure = Some(format!("cannot create the silence {entry}: {e}"));
                        break;
                    }
                }
            }
        }
    }
    let Some(e) = failure else { return Ok(ids) };
    match cfg.silence_failure {
        SilenceFailure::Block => {
            expire_silences(Some(cfg), &ids);
            Err(e)
        }
        SilenceFailure::Continue => {
            log::warn!("{e}; rebooting anyway (alerts.silence_failure: continue)");
            Ok(ids)
        }
    }
}

/// Expires the silences `ids` (`cfg`: the current `alerts` section); one
/// that cannot be expired is logged and left to end by itself.
pub fn expire_silences(cfg: Option<&AlertsConfig>, ids: &[String]) {
    if ids.is_empty() {
        return;
    }
    let url = cfg.and_then(|c| c.alertmanager_url.as_deref().map(|u| (c, u)));
    let Some((cfg, url)) = url else {
        log::warn!(
            "silences {} are left to end by themselves: alerts.alertmanager_url is no longer set",
            ids.join(", ")
        );
        return;
    };
    let http = match Http::new(cfg) {
        Ok(h) => h,
        Err(e) => {
            log::warn!(
                "silences {} are left to end by themselves: {e}",
                ids.join(", ")
            );
            return;
        }
    };
    for id in ids {
        match alertmanager::expire_silence(&http, url, id) {
            Ok(()) => log::info!(event = "silence_expired"; "expired silence {id} at {url}"),
            Err(e) => log::warn!("cannot expire silence {id}, it is left to end by itself: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::prometheus::Series;

    fn config(alerts: &str) -> std::result::Result<crate::config::Config, Vec<String>> {
        let text = format!(
            "node_name: n1\nreboot_required_detectors:\n  - type: file\n    path: /run/reboot-required\nalerts:\n{alerts}"
        );
        match crate::config::parse(&text, std::path::Path::new("/t.yaml")) {
            Ok(c) => Ok(c),
            Err(crate::error::Error::ConfigInvalid { problems, .. }) => Err(problems),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn a_full_section_is_validated_with_defaults() {
        let c = config(
            "  alertmanager_url: http://127.0.0.1:9093/\n  block_on: ['severity=\"critical\"', '{alertname=~\"Disk.*\", instance=~\"${RC_NODE_NAME}:.*\"}']\n  prometheus_url: https://prom.example/prometheus\n  block_if: ['up{job=\"node\"} == 0']\n  silence_during_reboot: ['instance=~\"${RC_NODE_NAME}(:.*)?\"']\n",
        )
        .unwrap();
        let a = c.alerts.unwrap();
        assert_eq!(a.alertmanager_url.as_deref(), Some("http://127.0.0.1:9093"));
        assert_eq!(
            a.prometheus_url.as_deref(),
            Some("https://prom.example/prometheus")
        );
        assert_eq!(a.block_on.len(), 2);
        assert_eq!(a.block_on[1].0.len(), 2);
        assert_eq!(a.timeout, Duration::from_secs(10));
        assert!(!a.count_silenced && !a.count_inhibited);
        assert_eq!(a.silence_failure, SilenceFailure::Block);
        assert!(a.auth.is_none());
    }

    #[test]
    fn every_problem_of_the_section_names_its_key() {
        let p = config(
            "  alertmanager_url: ftp://x\n  prometheus_url: http://u:pw@prom:9090\n  block_on: ['severity', 'a=~\"(\"']\n  block_if: ['', 'up{i=\"${RC_REASON}\"}']\n  timeout_sec: 0\n  bearer_token_file: relative\n  basic_auth_username: u\n  silence_during_reboot: ['x=\"${NOPE}\"']\n  silence_failure: maybe\n  ca_fil: /x\n",
        )
        .unwrap_err();
        let want = "alerts.ca_fil: unknown key (did you mean `ca_file`?)";
        assert!(p.iter().any(|l| l == want), "missing {want:?} in {p:?}");
        // An unknown key makes the section unreadable: fix it, then see the rest.
        let p = config(
            "  alertmanager_url: ftp://x\n  prometheus_url: http://u:pw@prom:9090\n  block_on: ['severity', 'a=~\"(\"']\n  block_if: ['', 'up{i=\"${RC_REASON}\"}']\n  timeout_sec: 0\n  bearer_token_file: relative\n  basic_auth_username: u\n  silence_during_reboot: ['x=\"${NOPE}\"']\n  silence_failure: maybe\n",
        )
        .unwrap_err();
        for prefix in [
            "alerts.alertmanager_url: must be an http:// or https:// URL",
            "alerts.prometheus_url: must not carry credentials",
            "alerts.block_on[0]: expected =, !=, =~ or !~",
            "alerts.block_on[1]: regular expression",
            "alerts.block_if[0]: must not be empty",
            "alerts.block_if[1]: unknown placeholder ${RC_REASON} here",
            "alerts.timeout_sec: must be greater than 0",
            "alerts.bearer_token_file: must be an absolute path",
            "alerts.bearer_token_file: cannot be combined",
            "alerts.silence_during_reboot[0]: unknown placeholder ${NOPE}",
            "alerts.silence_failure: must be `block` or `continue`",
        ] {
            assert!(
                p.iter().any(|l| l.starts_with(prefix)),
                "missing {prefix:?} in {p:?}"
            );
        }
        assert!(!p.iter().any(|l| l.contains("pw@")), "{p:?}");
    }

    #[test]
    fn keys_need_the_server_they_are_about() {
        let p = config("  block_if: ['up == 0']\n").unwrap_err();
        assert!(
            p.iter()
                .any(|l| l.starts_with("alerts: set alertmanager_url")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|l| l == "alerts.block_if: needs alerts.prometheus_url"),
            "{p:?}"
        );
        let p = config("  prometheus_url: http://p:9090\n  silence_during_reboot: ['a=\"b\"']\n")
            .unwrap_err();
        assert!(
            p.iter()
                .any(|l| l == "alerts.silence_during_reboot: needs alerts.alertmanager_url"),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|l| l.starts_with("alerts.block_if: lists no expression")),
            "{p:?}"
        );
        let p =
            config("  alertmanager_url: http://a:9093\n  basic_auth_username: u\n").unwrap_err();
        assert!(
            p.iter()
                .any(|l| l.starts_with("alerts.basic_auth_username: basic authentication needs")),
            "{p:?}"
        );
    }

    fn verdict() -> AlertsVerdict {
        AlertsVerdict {
            alertmanager: Some(AlertmanagerReport {
                url: "http://am:9093".into(),
                total: 12,
                alerts: (0..MAX_ALERTS_SHOWN)
                    .map(|i| MatchedAlert {
                        name: if i == 0 {
                            "AVeryLongAlertNameThatDoesNotFitItsColumn".into()
                        } else {
                            format!("Alert{i}")
                        },
                        matched: [("severity".to_string(), "critical".to_string())].into(),
                        state: if i == 1 {
                            "suppressed".into()
                        } else {
                            "active".into()
                        },
                    })
                    .collect(),
                ignored: 1,
                error: None,
            }),
            prometheus: vec![
                QueryReport {
                    expr: "up == 0".into(),
                    result_type: Some("vector".into()),
                    total: 4,
                    series: vec![Series {
                        labels: [("instance".to_string(), "a:9100".to_string())].into(),
                        value: "0".into(),
                    }],
                    blocks: true,
                    error: None,
                },
                QueryReport {
                    expr: "x > 1".into(),
                    result_type: Some("vector".into()),
                    total: 0,
                    series: vec![],
                    blocks: false,
                    error: None,
                },
            ],
        }
    }

    #[test]
    fn the_summary_names_alerts_and_expressions() {
        let v = verdict();
        assert!(v.blocked());
        assert_eq!(
            v.summary(),
            "12 matching alerts at http://am:9093 (AVeryLongAlertNameThatDoesNotFitItsColumn, Alert1, Alert2, …); PromQL `up == 0` returned 4 series; 1 PromQL expression empty"
        );
        let open = AlertsVerdict {
            alertmanager: Some(AlertmanagerReport {
                url: "http://am:9093".into(),
                total: 0,
                alerts: vec![],
                ignored: 2,
                error: None,
            }),
            prometheus: vec![],
        };
        assert!(!open.blocked());
        assert_eq!(
            open.summary(),
            "no matching alert at http://am:9093 (2 ignored)"
        );
        let down = AlertsVerdict {
            alertmanager: Some(AlertmanagerReport::failed(
                "http://am:9093",
                "GET …: connection failed".into(),
            )),
            prometheus: vec![QueryReport::failed("up", "timed out".into())],
        };
        assert!(down.blocked());
        assert_eq!(
            down.summary(),
            "cannot ask Alertmanager, so not rebooting: GET …: connection failed; cannot judge PromQL `up`, so not rebooting: timed out"
        );
    }

    #[test]
    fn status_lines_name_alerts_labels_and_series() {
        let lines = verdict().status_lines();
        let text: Vec<String> = lines.iter().map(|(l, t)| format!("{l}{t}")).collect();
        assert!(
            text[0].starts_with("    AVeryLongAlertNameThatD… severity=\"critical\""),
            "{text:?}"
        );
        assert!(
            text[1].ends_with("severity=\"critical\" (suppressed)"),
            "{text:?}"
        );
        assert!(text.contains(&"    … and 2 more".to_string()), "{text:?}");
        assert!(
            text.contains(&"    promql up == 0 → 4 series (vector)".to_string()),
            "{text:?}"
        );
        assert!(
            text.contains(&"      {instance=\"a:9100\"} 0".to_string()),
            "{text:?}"
        );
        assert!(text.contains(&"      … and 3 more".to_string()), "{text:?}");
        assert!(
            text.contains(&"    promql x > 1 → empty".to_string()),
            "{text:?}"
        );
        for (label, _) in &lines {
            assert!(label.chars().count() <= 30, "{label:?}");
        }
    }

    #[test]
    fn environment_is_always_complete_and_never_carries_credentials() {
        let names: Vec<&str> = crate::config::alerts_environment(None)
            .iter()
            .map(|(k, _)| *k)
            .collect();
        let token = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        let c = config(&format!(
            "  alertmanager_url: http://a:9093\n  block_on: ['a=\"b\"', 'c=~\"d,e\"']\n  bearer_token_file: {token}\n"
        ))
        .unwrap();
        let env = crate::config::alerts_environment(c.alerts.as_ref());
        assert_eq!(names, env.iter().map(|(k, _)| *k).collect::<Vec<_>>());
        let get = |k: &str| env.iter().find(|(n, _)| *n == k).unwrap().1.clone();
        assert_eq!(get("RC_ALERTS_ENABLED"), "true");
        assert_eq!(get("RC_ALERTS_BLOCK_ON"), "{a=\"b\"}\n{c=~\"d,e\"}");
        assert_eq!(get("RC_ALERTS_SILENCE_FAILURE"), "block");
        assert!(!env.iter().any(|(_, v)| v.contains("Cargo.toml")));
        assert!(
            crate::config::alerts_environment(None)
                .iter()
                .all(|(k, v)| v.is_empty() || *k == "RC_ALERTS_ENABLED" || v == "false")
        );
    }
}
