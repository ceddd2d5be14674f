//! The HTTP client of the alert gate: one ureq agent with the configured
//! timeout, CA file and credentials, shared by the Alertmanager and
//! Prometheus clients.
//!
//! Every failure is a `String` that says what was asked and what went
//! wrong, ready for an operator. Credentials are read from their files when
//! the client is built (so a rotated token is picked up on the next pass)
//! and never appear in a message: errors name the file, never its content,
//! and redirects are not followed (the `Authorization` header must not go
//! anywhere but the configured URL).

use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;
use ureq::tls::{PemItem, RootCerts};

use crate::config::{AlertsAuth, AlertsConfig};

/// Largest answer read (an Alertmanager with very many alerts).
const MAX_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;
/// Characters of an error answer's body quoted in a message.
const BODY_EXCERPT_CHARS: usize = 200;
/// ureq's buffers per connection and direction (its default is 128 KiB).
const IO_BUFFER_BYTES: usize = 16 * 1024;

/// A configured client; the credentials it holds are never printed.
pub struct Http {
    agent: ureq::Agent,
    authorization: Option<String>,
    timeout: Duration,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("timeout", &self.timeout)
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "<set>"),
            )
            .finish()
    }
}

impl Http {
    /// Builds the client: reads the CA file and the credential file.
    pub fn new(cfg: &AlertsConfig) -> Result<Http, String> {
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(ca) = &cfg.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| format!("cannot read alerts.ca_file {}: {e}", ca.display()))?;
            let mut certs = Vec::new();
            for item in ureq::tls::parse_pem(&pem) {
                match item {
                    Ok(PemItem::Certificate(c)) => certs.push(c),
                    Ok(_) => {}
                    Err(e) => return Err(format!("alerts.ca_file {}: {e}", ca.display())),
                }
            }
            if certs.is_empty() {
                return Err(format!(
                    "alerts.ca_file {} holds no PEM certificate",
                    ca.display()
                ));
            }
            tls = tls.root_certs(RootCerts::new_with_certs(&certs));
        }
        let authorization = match &cfg.auth {
            None => None,
            Some(AlertsAuth::Bearer { token_file }) => Some(format!(
                "Bearer {}",
                read_secret("alerts.bearer_token_file", token_file)?
            )),
            Some(AlertsAuth::Basic {
                username,
                password_file,
            }) => {
                let password = read_secret("alerts.basic_auth_password_file", password_file)?;
                let pair = format!("{username}:{password}");
                Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                ))
            }
        };
        let agent = ureq::Agent::config_builder()
            // Non-2xx answers are read and described here.
            .http_status_as_error(false)
            .max_redirects(0)
            .tls_config(tls.build())
            .timeout_global(Some(cfg.timeout))
            .user_agent(concat!("rebootctl/", env!("CARGO_PKG_VERSION")))
            .input_buffer_size(IO_BUFFER_BYTES)
            .output_buffer_size(IO_BUFFER_BYTES)
            .build()
            .new_agent();
        Ok(Http {
            agent,
            authorization,
            timeout: cfg.timeout,
        })
    }

    /// GET `url` with `query` parameters; the answer must be 2xx JSON.
    pub fn get_json(&self, url: &str, query: &[(&str, String)]) -> Result<Value, String> {
        let mut req = self.agent.get(url);
        for (k, v) in query {
            req = req.query(k, v);
        }
        if let Some(a) = &self.authorization {
            req = req.header("Authorization", a);
        }
        self.answer("GET", url, req.call(), true)
    }

    /// POST `body` as JSON to `url`; the answer must be 2xx JSON.
    pub fn post_json(&self, url: &str, body: &Value) -> Result<Value, String> {
        let mut req = self.agent.post(url);
        if let Some(a) = &self.authorization {
            req = req.header("Authorization", a);
        }
        self.answer("POST", url, req.send_json(body), true)
    }

    /// DELETE `url`; the answer must be 2xx (its body is not read as JSON).
    pub fn delete(&self, url: &str) -> Result<(), String> {
        let mut req = self.agent.delete(url);
        if let Some(a) = &self.authorization {
            req = req.header("Authorization", a);
        }
        self.answer("DELETE", url, req.call(), false).map(|_| ())
    }

    fn answer(
        &self,
        method: &str,
        url: &str,
        sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
        json: bool,
    ) -> Result<Value, String> {
        let mut response =
            sent.map_err(|e| format!("{method} {url}: {}", self.describe_error(&e)))?;
        let status = response.status();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_string()
            .map_err(|e| {
                format!(
                    "{method} {url}: HTTP {}, then reading the answer failed: {}",
                    status.as_u16(),
                    self.describe_error(&e)
                )
            })?;
        if !status.is_success() {
            let hint = if status.is_redirection() {
                " (redirects are not followed: configure the final URL)"
            } else {
                ""
            };
            return Err(format!(
                "{method} {url}: HTTP {}{hint}{}",
                status.as_u16(),
                error_detail(&body)
            ));
        }
        if !json {
            return Ok(Value::Null);
        }
        serde_json::from_str(&body).map_err(|e| {
            format!(
                "{method} {url}: HTTP {} but the answer is not JSON ({e}): {}",
                status.as_u16(),
                excerpt(&body)
            )
        })
    }

    fn describe_error(&self, e: &ureq::Error) -> String {
        match e {
            ureq::Error::Timeout(_) => format!(
                "no complete answer within {} (alerts.timeout_sec)",
                crate::time::human_duration(self.timeout)
            ),
            ureq::Error::Io(io) if io.to_string().contains("certificate") => format!(
                "TLS handshake failed: {io} (is alerts.ca_file the CA that signed the server certificate?)"
            ),
            ureq::Error::Io(io) => format!("connection failed: {io}"),
            ureq::Error::ConnectionFailed => "connection failed".into(),
            ureq::Error::HostNotFound => "host not found".into(),
            other => other.to_string(),
        }
    }
}

/// Reads a credential file: trimmed, not empty, fit for an HTTP header.
/// Messages name `key` and the file, never what it holds.
fn read_secret(key: &str, path: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {key} {}: {e}", path.display()))?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(format!("{key} {} is empty", path.display()));
    }
    if !secret.chars().all(|c| c == ' ' || c.is_ascii_graphic()) {
        return Err(format!(
            "{key} {} holds characters an HTTP header cannot carry (one line of printable ASCII expected)",
            path.display()
        ));
    }
    Ok(secret.to_string())
}

/// What an error answer says: Alertmanager answers a JSON string,
/// Prometheus `{"errorType": …, "error": …}`, proxies some text.
fn error_detail(body: &str) -> String {
    let text = match serde_json::from_str::<Value>(body) {
        Ok(Value::String(s)) => s,
        Ok(Value::Object(m)) => match (m.get("errorType"), m.get("error")) {
            (Some(Value::String(t)), Some(Value::String(e))) => format!("{t}: {e}"),
            (_, Some(Value::String(e))) => e.clone(),
            _ => body.to_string(),
        },
        _ => body.to_string(),
    };
    let text = excerpt(&text);
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

/// One line of at most [`BODY_EXCERPT_CHARS`] characters.
pub fn excerpt(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= BODY_EXCERPT_CHARS {
        return one_line;
    }
    let cut: String = one_line.chars().take(BODY_EXCERPT_CHARS).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_answers_are_quoted_briefly() {
        assert_eq!(
            error_detail("\"bad matcher format\""),
            ": bad matcher format"
        );
        assert_eq!(
            error_detail(r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#),
            ": bad_data: parse error"
        );
        assert_eq!(error_detail("  \n"), "");
        assert_eq!(
            error_detail("<html>\n<b>502</b>\n</html>"),
            ": <html> <b>502</b> </html>"
        );
        assert!(excerpt(&"x".repeat(500)).ends_with('…'));
    }

    #[test]
    fn secrets_are_checked_but_never_quoted() {
        let dir =
            std::env::temp_dir().join(format!("rebootctl-alerts-http-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("token");
        std::fs::write(&f, "s3cret\n").unwrap();
        assert_eq!(read_secret("k", &f).unwrap(), "s3cret");
        std::fs::write(&f, "s3cret\nline2").unwrap();
        let e = read_secret("k", &f).unwrap_err();
        assert!(e.contains("one line") && !e.contains("s3cret"), "{e}");
        std::fs::write(&f, "\n").unwrap();
        assert!(read_secret("k", &f).unwrap_err().contains("is empty"));
        let e = read_secret("k", &dir.join("missing")).unwrap_err();
        assert!(e.starts_with("cannot read k "), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
