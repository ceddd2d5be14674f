//! The Prometheus text exposition format 0.0.4, written by hand: the
//! `# HELP`/`# TYPE` lines of a family and its sample lines. Shared by the
//! agent's `/metrics` (`agent::metrics`) and the FleetLock server's
//! (`fleetlock::server`); a leaf, so neither has to import the other.

use std::fmt::Write as _;

/// The Content-Type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// 1.0 for true, 0.0 for false (gauges that are flags).
pub fn bool_value(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// Writes the `# HELP` and `# TYPE` lines of a family.
pub fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    // HELP text escapes only backslash and newline.
    let help = help.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Writes one sample line.
pub fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(k);
            out.push_str("=\"");
            out.push_str(&escape_label_value(v));
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    out.push_str(&format_value(value));
    out.push('\n');
}

/// Escapes a label value: backslash, double quote and newline.
fn escape_label_value(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// Formats a sample value the way Prometheus parses it (Go float syntax).
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        // Rust's Display never uses an exponent and round-trips exactly.
        format!("{v}")
    }
}

/// Test helper: fails unless `promtool check metrics` (Debian's package
/// `prometheus`) accepts `text`.
#[cfg(test)]
pub fn assert_promtool_accepts(text: &str) {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!(
            "cannot run promtool ({e}); install the Debian package `prometheus` \
             (apt-get install prometheus) to provide /usr/bin/promtool"
        ),
    };
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool finishes");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_escape_label_values_and_format_values() {
        let mut out = String::new();
        family(&mut out, "x_total", "counter", "a\\b\nc");
        sample(&mut out, "x_total", &[("k", "a\"b\\c\nd"), ("o", "p")], 2.0);
        sample(&mut out, "x_total", &[], f64::INFINITY);
        assert_eq!(
            out,
            "# HELP x_total a\\\\b\\nc\n# TYPE x_total counter\nx_total{k=\"a\\\"b\\\\c\\nd\",o=\"p\"} 2\nx_total +Inf\n"
        );
        assert_eq!(format_value(0.25), "0.25");
        assert_eq!(bool_value(true), 1.0);
    }
}
