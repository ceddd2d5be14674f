//! Alertmanager's v2 API, the three calls the gate needs: list the alerts
//! that match a [`MatcherSet`] (`GET /api/v2/alerts`), create a silence
//! (`POST /api/v2/silences`) and expire one (`DELETE /api/v2/silence/{id}`).
//!
//! Matching happens in Alertmanager: each matcher goes out as one `filter`
//! parameter (they are ANDed there), so regular expressions are Alertmanager's
//! own. An answer that is not a list of alerts with labels and a
//! fingerprint is an error, never an empty list.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::http::Http;
use crate::matcher::MatcherSet;

/// One alert as Alertmanager lists it (the fields the gate uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Alertmanager's fingerprint of the label set.
    pub fingerprint: String,
    /// `active`, `suppressed` (silenced or inhibited) or `unprocessed`.
    pub state: String,
}

/// Which alerts a query counts besides the active ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counting {
    /// Count silenced alerts.
    pub silenced: bool,
    /// Count inhibited alerts.
    pub inhibited: bool,
}

/// The alerts at `base` (the Alertmanager URL) that match every matcher of
/// `filter` (an empty set: every alert). Unprocessed alerts (just received)
/// always count: they may turn out silenced, but not knowing yet is no
/// reason to reboot.
pub fn alerts(
    http: &Http,
    base: &str,
    filter: &MatcherSet,
    counting: Counting,
) -> Result<Vec<Alert>, String> {
    let url = format!("{base}/api/v2/alerts");
    let mut query = vec![
        ("active", "true".to_string()),
        ("silenced", counting.silenced.to_string()),
        ("inhibited", counting.inhibited.to_string()),
        ("unprocessed", "true".to_string()),
    ];
    query.extend(filter.0.iter().map(|m| ("filter", m.to_string())));
    let answer = http.get_json(&url, &query)?;
    parse_alerts(&answer).map_err(|e| format!("GET {url}: {e}"))
}

/// Reads the answer of `GET /api/v2/alerts`.
fn parse_alerts(answer: &Value) -> Result<Vec<Alert>, String> {
    let Value::Array(items) = answer else {
        return Err(format!(
            "the answer is not a list of alerts but {}",
            kind(answer)
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let labels = match item.get("labels") {
                Some(Value::Object(m)) => m
                    .iter()
                    .map(|(k, v)| match v {
                        Value::String(s) => Ok((k.clone(), s.clone())),
                        other => Err(format!(
                            "alert {i}: label {k} is {} instead of a string",
                            kind(other)
                        )),
                    })
                    .collect::<Result<BTreeMap<_, _>, _>>()?,
                _ => return Err(format!("alert {i} has no labels object")),
            };
            let Some(Value::String(fingerprint)) = item.get("fingerprint") else {
                return Err(format!("alert {i} has no fingerprint"));
            };
            let state = item
                .pointer("/status/state")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_string();
            Ok(Alert {
                labels,
                fingerprint: fingerprint.clone(),
                state,
            })
        })
        .collect()
}

/// Creates a silence of `matchers` from now until `ends`; returns its id.
pub fn create_silence(
    http: &Http,
    base: &str,
    matchers: &MatcherSet,
    ends: Timestamp,
    comment: &str,
) -> Result<String, String> {
    let url = format!("{base}/api/v2/silences");
    let body = json!({
        "matchers": matchers.0.iter().map(|m| m.api_json()).collect::<Vec<_>>(),
        "startsAt": Timestamp::now().to_string(),
        "endsAt": ends.to_string(),
        "createdBy": "rebootctl",
        "comment": comment,
    });
    let answer = http.post_json(&url, &body)?;
    match answer.get("silenceID") {
        Some(Value::String(id)) if !id.is_empty() => Ok(id.clone()),
        _ => Err(format!(
            "POST {url}: the answer has no silenceID: {}",
            super::http::excerpt(&answer.to_string())
        )),
    }
}

/// Expires the silence `id`.
pub fn expire_silence(http: &Http, base: &str, id: &str) -> Result<(), String> {
    // Silence ids are UUIDs; anything else would change the path.
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!("{id:?} is not a silence id"));
    }
    http.delete(&format!("{base}/api/v2/silence/{id}"))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_alert_list() {
        let answer = json!([{
            "labels": {"alertname": "DiskFull", "severity": "critical"},
            "annotations": {},
            "fingerprint": "abc",
            "status": {"state": "active", "silencedBy": [], "inhibitedBy": []},
            "receivers": [{"name": "null"}],
        }]);
        let alerts = parse_alerts(&answer).unwrap();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].labels["alertname"], "DiskFull");
        assert_eq!(alerts[0].fingerprint, "abc");
        assert_eq!(alerts[0].state, "active");
        assert_eq!(parse_alerts(&json!([])).unwrap(), []);
    }

    #[test]
    fn nonsense_is_an_error_not_an_empty_list() {
        for (answer, want) in [
            (json!({"data": []}), "not a list of alerts but an object"),
            (json!(null), "but null"),
            (json!([{"fingerprint": "x"}]), "alert 0 has no labels"),
            (json!([{"labels": {}}]), "alert 0 has no fingerprint"),
            (
                json!([{"labels": {"a": 1}, "fingerprint": "x"}]),
                "label a is a number",
            ),
        ] {
            let e = parse_alerts(&answer).unwrap_err();
            assert!(e.contains(want), "{answer}: {e}");
        }
    }
}
