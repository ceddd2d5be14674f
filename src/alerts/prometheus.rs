//! The PromQL gate: an instant query (`GET /api/v1/query`) whose non-empty
//! result blocks the reboot.
//!
//! What "non-empty" means for each result type:
//! - `vector`: at least one sample, whatever its value (as for an alerting
//!   rule: write `errors > 0`, not `errors`, to compare);
//! - `matrix` (a range selector such as `up[5m]`): at least one series with
//!   at least one sample;
//! - `scalar` (`scalar(…)`, a number literal): a value other than zero;
//!   NaN blocks too (`scalar()` of zero or several series is NaN: unknown,
//!   and unknown is never "fine");
//! - `string`: cannot be judged, so an error, which blocks.
//!
//! An answer that is not Prometheus's `{"status": "success", "data":
//! {"resultType": …, "result": …}}` is an error, never an empty result.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::http::Http;

/// How many series of a result are kept for `status`.
pub const MAX_SERIES_SHOWN: usize = 3;

/// The verdict of one `block_if` expression.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueryReport {
    /// The expression as sent (placeholders expanded).
    pub expr: String,
    /// Prometheus's result type, when it answered.
    pub result_type: Option<String>,
    /// Series in the result (1 for a non-zero scalar).
    pub total: usize,
    /// The first [`MAX_SERIES_SHOWN`] of them.
    pub series: Vec<Series>,
    /// Whether this expression blocks the reboot.
    pub blocks: bool,
    /// Why it could not be judged (it then blocks).
    pub error: Option<String>,
}

/// One series of a result: its labels and its (last) value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    /// The labels, `__name__` included when present.
    pub labels: BTreeMap<String, String>,
    /// The value as Prometheus wrote it (the newest sample of a matrix).
    pub value: String,
}

impl Series {
    /// `name{a="b"} 3`, as Prometheus's console shows a sample.
    pub fn describe(&self) -> String {
        let name = self.labels.get("__name__").map_or("", String::as_str);
        let rest: Vec<String> = self
            .labels
            .iter()
            .filter(|(k, _)| *k != "__name__")
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        let labels = if rest.is_empty() && !name.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", rest.join(", "))
        };
        format!("{name}{labels} {}", self.value)
    }
}

/// Runs `expr` at `base` (the Prometheus URL) and judges the result.
pub fn query(http: &Http, base: &str, expr: &str) -> QueryReport {
    let url = format!("{base}/api/v1/query");
    let judged = http
        .get_json(&url, &[("query", expr.to_string())])
        .and_then(|answer| judge(&answer).map_err(|e| format!("GET {url}: {e}")));
    match judged {
        Ok(j) => QueryReport {
            expr: expr.to_string(),
            result_type: Some(j.result_type),
            total: j.total,
            series: j.series,
            blocks: j.blocks,
            error: None,
        },
        Err(e) => QueryReport::failed(expr, e),
    }
}

impl QueryReport {
    /// The report of an expression that could not be judged: it blocks.
    pub fn failed(expr: &str, error: String) -> QueryReport {
        QueryReport {
            expr: expr.to_string(),
            result_type: None,
            total: 0,
            series: Vec::new(),
            blocks: true,
            error: Some(error),
        }
    }
}

/// What a successful answer says.
#[derive(Debug, PartialEq)]
struct Judged {
    result_type: String,
    total: usize,
    series: Vec<Series>,
    blocks: bool,
}

/// Judges the answer of `/api/v1/query` (see the module docs).
fn judge(answer: &Value) -> Result<Judged, String> {
    match answer.get("status").and_then(Value::as_str) {
        Some("success") => {}
        Some("error") => {
            let t = answer
                .get("errorType")
                .and_then(Value::as_str)
                .unwrap_or("");
            let e = answer.get("error").and_then(Value::as_str).unwrap_or("");
            return Err(format!("Prometheus says {t}: {e}"));
        }
        _ => return Err("the answer is not a Prometheus query result (no status)".into()),
    }
    let data = answer
        .get("data")
        .ok_or("the answer has no data".to_string())?;
    let result_type = data
        .get("resultType")
        .and_then(Value::as_str)
        .ok_or("the answer has no resultType".to_string())?;
    let result = data
        .get("result")
        .ok_or("the answer has no result".to_string())?;
    let (total, series) = match result_type {
        "vector" => {
            let items = result.as_array().ok_or("a vector result is not a list")?;
            let mut series = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let value = sample_value(item.get("value"))
                    .ok_or(format!("sample {i} of the vector has no [time, value]"))?;
                series.push(Series {
                    labels: labels(item, i)?,
                    value,
                });
            }
            (items.len(), series)
        }
        "matrix" => {
            let items = result.as_array().ok_or("a matrix result is not a list")?;
            let mut series = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let samples = item
                    .get("values")
                    .and_then(Value::as_array)
                    .ok_or(format!("series {i} of the matrix has no values"))?;
                // A series without samples is no evidence of anything.
                let Some(last) = samples.last() else { continue };
                let value = sample_value(Some(last))
                    .ok_or(format!("series {i} of the matrix has a malformed sample"))?;
                series.push(Series {
                    labels: labels(item, i)?,
                    value,
                });
            }
            (series.len(), series)
        }
        "scalar" => {
            let value = sample_value(Some(result)).ok_or("a scalar result is not [time, value]")?;
            let number =
                parse_number(&value).ok_or(format!("the scalar {value:?} is not a number"))?;
            // NaN != 0.0, so NaN blocks.
            if number != 0.0 {
                let one = Series {
                    labels: BTreeMap::new(),
                    value,
                };
                (1, vec![one])
            } else {
                (0, Vec::new())
            }
        }
        "string" => {
            return Err(
                "the expression returns a string, which cannot be judged (return a vector)".into(),
            );
        }
        other => return Err(format!("unknown result type {other:?}")),
    };
    Ok(Judged {
        result_type: result_type.to_string(),
        total,
        blocks: total > 0,
        series: series.into_iter().take(MAX_SERIES_SHOWN).collect(),
    })
}

/// The value of a `[time, "value"]` pair.
fn sample_value(v: Option<&Value>) -> Option<String> {
    match v?.as_array()?.as_slice() {
        [Value::Number(_), Value::String(s)] => Some(s.clone()),
        _ => None,
    }
}

/// Prometheus writes `NaN`, `+Inf` and `-Inf` as Go does.
fn parse_number(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

fn labels(item: &Value, i: usize) -> Result<BTreeMap<String, String>, String> {
    let Some(Value::Object(m)) = item.get("metric") else {
        return Err(format!("series {i} has no metric labels"));
    };
    m.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            _ => Err(format!("series {i}: label {k} is not a string")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(result_type: &str, result: Value) -> Value {
        json!({"status": "success", "data": {"resultType": result_type, "result": result}})
    }

    #[test]
    fn a_vector_blocks_when_it_has_a_sample_whatever_its_value() {
        let empty = judge(&ok("vector", json!([]))).unwrap();
        assert!(!empty.blocks);
        let zero = judge(&ok(
            "vector",
            json!([{"metric": {"__name__": "up", "job": "node"}, "value": [1.5, "0"]}]),
        ))
        .unwrap();
        assert!(zero.blocks);
        assert_eq!(zero.total, 1);
        assert_eq!(zero.series[0].describe(), "up{job=\"node\"} 0");
    }

    #[test]
    fn only_the_first_series_are_kept_but_all_are_counted() {
        let items: Vec<Value> = (0..10)
            .map(|i| json!({"metric": {"i": i.to_string()}, "value": [1, "1"]}))
            .collect();
        let j = judge(&ok("vector", Value::Array(items))).unwrap();
        assert_eq!(j.total, 10);
        assert_eq!(j.series.len(), MAX_SERIES_SHOWN);
        assert_eq!(j.series[0].describe(), "{i=\"0\"} 1");
    }

    #[test]
    fn a_matrix_blocks_when_a_series_has_samples() {
        let j = judge(&ok(
            "matrix",
            json!([
                {"metric": {"a": "x"}, "values": []},
                {"metric": {"a": "y"}, "values": [[1, "3"], [2, "4"]]},
            ]),
        ))
        .unwrap();
        assert!(j.blocks);
        assert_eq!(j.total, 1);
        assert_eq!(j.series[0].value, "4");
        let none = judge(&ok("matrix", json!([{"metric": {}, "values": []}]))).unwrap();
        assert!(!none.blocks);
    }

    #[test]
    fn a_scalar_blocks_when_not_zero_and_when_nan() {
        for (v, blocks) in [
            ("0", false),
            ("-0", false),
            ("1", true),
            ("-2.5", true),
            ("NaN", true),
            ("+Inf", true),
        ] {
            let j = judge(&ok("scalar", json!([1, v]))).unwrap();
            assert_eq!(j.blocks, blocks, "{v}");
        }
    }

    #[test]
    fn strings_errors_and_nonsense_cannot_be_judged() {
        let cases = [
            (ok("string", json!([1, "x"])), "returns a string"),
            (
                json!({"status": "error", "errorType": "bad_data", "error": "parse error"}),
                "Prometheus says bad_data: parse error",
            ),
            (json!({"data": {}}), "no status"),
            (json!({"status": "success"}), "no data"),
            (ok("vector", json!({"x": 1})), "not a list"),
            (
                ok("vector", json!([{"metric": {}}])),
                "has no [time, value]",
            ),
            (
                ok("vector", json!([{"value": [1, "1"]}])),
                "no metric labels",
            ),
            (ok("scalar", json!([1, "abc"])), "not a number"),
            (ok("histogram", json!([])), "unknown result type"),
        ];
        for (answer, want) in cases {
            let e = judge(&answer).unwrap_err();
            assert!(e.contains(want), "{answer}: {e}");
        }
    }
}
