//! The transport: endpoints and failover, authentication and its token,
//! TLS, and the classification of a failed attempt.

use std::fmt;
use std::path::Path;
use std::sync::atomic::Ordering;

use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts};

use crate::config::TlsConfig;
use crate::error::{Error, Result};

use super::wire::*;
use super::*;

/// Why one attempt against one endpoint failed.
#[derive(Debug)]
pub(super) enum Failure {
    /// The endpoint is unreachable or has no leader: try the next one.
    Unavailable(String),
    /// The token was rejected: authenticate again and retry once.
    Auth(ApiError),
    /// etcd answered with an error.
    Api(ApiError),
    /// Anything else (unexpected reply, authentication refused, ...).
    Fatal(String),
}

/// An error reported by etcd: gRPC code and message, plus the HTTP status
/// (0 for an error inside a streamed 200 reply).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ApiError {
    pub(super) status: u16,
    pub(super) code: Option<i64>,
    pub(super) message: String,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        // Status 0: the error came inside a 200 stream, its HTTP status says nothing.
        match (self.code, self.status) {
            (Some(code), 0) => write!(f, " (code {code})"),
            (Some(code), status) => write!(f, " (code {code}, HTTP {status})"),
            (None, 0) => Ok(()),
            (None, status) => write!(f, " (HTTP {status})"),
        }
    }
}

impl ApiError {
    /// The request reached etcd but it cannot serve it: no leader, timeout.
    pub(super) fn is_unavailable(&self) -> bool {
        self.status == 503
            || self.code == Some(14)
            || (self.code == Some(2) && self.message.contains("context deadline exceeded"))
    }

    /// The token is missing, invalid, expired or from an old auth revision.
    pub(super) fn is_auth(&self) -> bool {
        self.status == 401
            || self.code == Some(16)
            || self.message.contains("auth store is old")
            || self.message.contains("invalid auth token")
            || self.message.contains("user name is empty")
    }

    /// etcd code 5 (NotFound): an unknown lease, for example.
    pub(super) fn is_not_found(&self) -> bool {
        self.code == Some(5) || (self.code.is_none() && self.status == 404)
    }

    pub(super) fn classify(self) -> Failure {
        if self.is_auth() {
            Failure::Auth(self)
        } else if self.is_unavailable() {
            Failure::Unavailable(self.to_string())
        } else {
            Failure::Api(self)
        }
    }
}

pub(super) fn failure_to_error(endpoint: &str, op: &str, failure: Failure) -> Error {
    let detail = match failure {
        Failure::Unavailable(d) | Failure::Fatal(d) => d,
        Failure::Auth(e) | Failure::Api(e) => e.to_string(),
    };
    Error::etcd(endpoint, op, detail)
}

impl Client {
    /// A unary call with failover and auth; returns the endpoint that answered.
    pub(super) fn unary_call<T: DeserializeOwned>(
        &self,
        op: &str,
        path: &str,
        body: &Value,
    ) -> Result<(String, T)> {
        self.run(op, |ep, token| {
            self.post_and_parse(ep, path, body, token, parse_json)
        })
        .map_err(|(ep, f)| failure_to_error(&ep, op, f))
    }

    /// Tries `attempt` on each endpoint once, starting with the current one,
    /// moving on only when an endpoint is unavailable.
    pub(super) fn run<T>(
        &self,
        op: &str,
        mut attempt: impl FnMut(&str, Option<&str>) -> std::result::Result<T, Failure>,
    ) -> std::result::Result<(String, T), (String, Failure)> {
        let n = self.inner.endpoints.len();
        let start = self.inner.current.load(Ordering::Relaxed) % n;
        let mut unavailable = Vec::new();
        for i in 0..n {
            let idx = (start + i) % n;
            let ep = &self.inner.endpoints[idx];
            match self.attempt_with_auth(ep, &mut attempt) {
                Ok(v) => {
                    if idx != start {
                        log::info!("etcd: now using endpoint {ep}");
                        self.inner.current.store(idx, Ordering::Relaxed);
                    }
                    return Ok((ep.clone(), v));
                }
                Err(Failure::Unavailable(detail)) => {
                    log::warn!("etcd {op} at {ep}: {detail}");
                    unavailable.push((ep.clone(), detail));
                }
                Err(f) => return Err((ep.clone(), f)),
            }
        }
        let (last_ep, last_detail) = unavailable.pop().unwrap_or_default();
        let detail = if unavailable.is_empty() {
            last_detail
        } else {
            let mut d = format!("all {n} endpoints failed:");
            for (ep, detail) in &unavailable {
                d.push_str(&format!(" {ep}: {detail};"));
            }
            d.push_str(&format!(" {last_ep}: {last_detail}"));
            d
        };
        Err((last_ep, Failure::Unavailable(detail)))
    }

    /// One attempt on one endpoint; on a rejected token, authenticates again
    /// and retries once.
    pub(super) fn attempt_with_auth<T>(
        &self,
        ep: &str,
        attempt: &mut impl FnMut(&str, Option<&str>) -> std::result::Result<T, Failure>,
    ) -> std::result::Result<T, Failure> {
        let token = self.token(ep)?;
        match attempt(ep, token.as_deref()) {
            Err(Failure::Auth(e)) if self.inner.credentials.is_some() => {
                log::debug!("etcd at {ep}: token rejected ({e}); authenticating again");
                self.forget_token(token.as_deref());
                let token = self.token(ep)?;
                match attempt(ep, token.as_deref()) {
                    Err(Failure::Auth(e)) => Err(Failure::Api(e)),
                    other => other,
                }
            }
            Err(Failure::Auth(e)) => Err(Failure::Api(e)),
            other => other,
        }
    }

    /// The token to send, authenticating first when needed.
    pub(super) fn token(&self, ep: &str) -> std::result::Result<Option<String>, Failure> {
        let Some(creds) = &self.inner.credentials else {
            return Ok(None);
        };
        let state = self.lock_token().clone();
        let state = match state {
            TokenState::Unknown => {
                let fresh = self.authenticate(ep, creds)?;
                *self.lock_token() = fresh.clone();
                fresh
            }
            known => known,
        };
        Ok(match state {
            TokenState::Token(t) => Some(t),
            TokenState::Unknown | TokenState::NotEnabled => None,
        })
    }

    pub(super) fn forget_token(&self, rejected: Option<&str>) {
        let mut state = self.lock_token();
        let matches = match (&*state, rejected) {
            (TokenState::Token(t), Some(r)) => t == r,
            (TokenState::NotEnabled, None) => true,
            _ => false,
        };
        if matches {
            *state = TokenState::Unknown;
        }
    }

    pub(super) fn lock_token(&self) -> std::sync::MutexGuard<'_, TokenState> {
        // The state is a plain value: a panic elsewhere cannot leave it torn.
        self.inner
            .token
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `POST /v3/auth/authenticate`; the password goes in the body only.
    pub(super) fn authenticate(
        &self,
        ep: &str,
        creds: &Credentials,
    ) -> std::result::Result<TokenState, Failure> {
        let body = json!({ "name": creds.username, "password": creds.password });
        match self.post_and_parse::<RawAuth>(ep, "/v3/auth/authenticate", &body, None, parse_json) {
            Ok(raw) if raw.token.is_empty() => Err(Failure::Fatal(format!(
                "authentication as user '{}' returned no token",
                creds.username
            ))),
            Ok(raw) => {
                log::debug!("etcd at {ep}: authenticated as '{}'", creds.username);
                Ok(TokenState::Token(raw.token))
            }
            Err(Failure::Api(e) | Failure::Auth(e))
                if e.message.contains("authentication is not enabled") =>
            {
                log::warn!(
                    "etcd at {ep}: credentials are configured but auth is not enabled on the server; sending no token"
                );
                Ok(TokenState::NotEnabled)
            }
            Err(Failure::Api(e) | Failure::Auth(e)) => Err(Failure::Fatal(format!(
                "authentication as user '{}' failed: {e}",
                creds.username
            ))),
            Err(Failure::Unavailable(d)) => Err(Failure::Unavailable(d)),
            Err(Failure::Fatal(d)) => Err(Failure::Fatal(format!("authentication: {d}"))),
        }
    }

    /// Sends one request to one endpoint.
    pub(super) fn send(
        &self,
        agent: &ureq::Agent,
        ep: &str,
        path: &str,
        body: &Value,
        token: Option<&str>,
    ) -> std::result::Result<ureq::http::Response<ureq::Body>, Failure> {
        let mut req = agent
            .post(format!("{ep}{path}"))
            // Turns a 7 s hang without a leader into an immediate 503.
            .header("Grpc-Metadata-hasleader", "true")
            .content_type("application/json");
        if let Some(token) = token {
            req = req.header("Authorization", token);
        }
        req.send(body.to_string())
            .map_err(|e| Failure::Unavailable(describe_transport_error(ep, &e)))
    }

    /// Sends a unary request and parses the whole reply with `parse`.
    pub(super) fn post_and_parse<T>(
        &self,
        ep: &str,
        path: &str,
        body: &Value,
        token: Option<&str>,
        parse: fn(&str) -> std::result::Result<T, Failure>,
    ) -> std::result::Result<T, Failure> {
        let mut resp = self.send(&self.inner.unary, ep, path, body, token)?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| Failure::Unavailable(format!("reading the reply: {e}")))?;
        if (200..300).contains(&status) {
            parse(&text)
        } else {
            Err(parse_error_body(status, &text).classify())
        }
    }
}

pub(super) fn normalize_endpoint(e: &str, default_scheme: &str) -> String {
    let e = e.trim().trim_end_matches('/');
    if e.contains("://") {
        e.to_owned()
    } else {
        format!("{default_scheme}://{e}")
    }
}

pub(super) fn read_password(path: &Path, endpoints: &str) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io("reading the etcd password file", path, e))?;
    let password = text.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        return Err(Error::etcd(
            endpoints,
            "authenticate",
            format!("password file {} is empty", path.display()),
        ));
    }
    Ok(password)
}

pub(super) fn build_tls(t: &TlsConfig, endpoints: &str) -> Result<ureq::tls::TlsConfig> {
    let op = "tls setup";
    let mut builder = ureq::tls::TlsConfig::builder().disable_verification(t.insecure_skip_verify);
    if let Some(ca) = &t.ca_file {
        let pem = std::fs::read(ca).map_err(|e| Error::io("reading the etcd CA file", ca, e))?;
        let mut certs = Vec::new();
        for item in ureq::tls::parse_pem(&pem) {
            match item {
                Ok(PemItem::Certificate(c)) => certs.push(c),
                Ok(_) => {}
                Err(e) => {
                    return Err(Error::etcd(
                        endpoints,
                        op,
                        format!("CA file {}: {e}", ca.display()),
                    ));
                }
            }
        }
        if certs.is_empty() {
            return Err(Error::etcd(
                endpoints,
                op,
                format!("CA file {} holds no PEM certificate", ca.display()),
            ));
        }
        builder = builder.root_certs(RootCerts::new_with_certs(&certs));
    }
    match (&t.cert_file, &t.key_file) {
        (Some(cert), Some(key)) => {
            let cert_pem = std::fs::read(cert)
                .map_err(|e| Error::io("reading the etcd client certificate", cert, e))?;
            let chain: Vec<Certificate<'static>> = ureq::tls::parse_pem(&cert_pem)
                .filter_map(|i| match i {
                    Ok(PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if chain.is_empty() {
                return Err(Error::etcd(
                    endpoints,
                    op,
                    format!(
                        "client certificate {} holds no PEM certificate",
                        cert.display()
                    ),
                ));
            }
            let key_pem =
                std::fs::read(key).map_err(|e| Error::io("reading the etcd client key", key, e))?;
            let private = PrivateKey::from_pem(&key_pem).map_err(|e| {
                Error::etcd(endpoints, op, format!("client key {}: {e}", key.display()))
            })?;
            builder = builder.client_cert(Some(ClientCert::new_with_certs(&chain, private)));
        }
        (None, None) => {}
        _ => {
            return Err(Error::etcd(
                endpoints,
                op,
                "a client certificate needs both cert_file and key_file",
            ));
        }
    }
    Ok(builder.build())
}

/// Says what went wrong on the wire, with a hint for the usual TLS mistakes.
pub(super) fn describe_transport_error(ep: &str, e: &ureq::Error) -> String {
    use std::io::ErrorKind;
    match e {
        ureq::Error::Timeout(ureq::Timeout::Global) => {
            format!("no complete reply within {REQUEST_TIMEOUT_SECS} s (timed out)")
        }
        ureq::Error::Timeout(ureq::Timeout::Connect) => {
            format!("could not connect within {CONNECT_TIMEOUT_SECS} s (timed out)")
        }
        ureq::Error::Timeout(t) => format!("timed out ({t})"),
        ureq::Error::Io(io) if io.to_string().contains("certificate") => format!(
            "TLS handshake failed: {io} (is ca_file the CA that signed the server certificate?)"
        ),
        ureq::Error::Io(io)
            if ep.starts_with("https://")
                && matches!(
                    io.kind(),
                    ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::UnexpectedEof
                ) =>
        {
            format!(
                "connection failed: {io} (the server may have refused the TLS client certificate)"
            )
        }
        ureq::Error::Io(io) => format!("connection failed: {io}"),
        ureq::Error::ConnectionFailed => "connection failed".to_owned(),
        ureq::Error::HostNotFound => "host not found".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified_by_code_not_by_status() {
        let cases = [
            (503, Some(14), "etcdserver: no leader", "unavailable"),
            (500, Some(2), "context deadline exceeded", "unavailable"),
            (500, Some(2), "etcdserver: permission denied", "api"),
            (401, Some(16), "etcdserver: invalid auth token", "auth"),
            (
                400,
                Some(3),
                "etcdserver: revision of auth store is old",
                "auth",
            ),
            (400, Some(3), "etcdserver: user name is empty", "auth"),
            (403, Some(7), "etcdserver: permission denied", "api"),
            (412, Some(9), "etcdserver: lease already exists", "api"),
            (400, Some(9), "etcdserver: lease already exists", "api"),
            (404, Some(5), "etcdserver: requested lease not found", "api"),
        ];
        for (status, code, message, want) in cases {
            let e = ApiError {
                status,
                code,
                message: message.into(),
            };
            let got = match e.classify() {
                Failure::Unavailable(_) => "unavailable",
                Failure::Auth(_) => "auth",
                Failure::Api(_) => "api",
                Failure::Fatal(_) => "fatal",
            };
            assert_eq!(got, want, "{status} {code:?} {message}");
        }
        let not_found = ApiError {
            status: 404,
            code: Some(5),
            message: "etcdserver: requested lease not found".into(),
        };
        assert!(not_found.is_not_found());
    }

    #[test]
    fn password_file_is_read_trimmed_and_never_debug_printed() {
        let dir = std::env::temp_dir().join(format!("rebootctl-etcd-pw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pw");
        std::fs::write(&file, "s3cret-pw\n").unwrap();
        let pw = read_password(&file, "http://127.0.0.1:1").unwrap();
        assert_eq!(pw, "s3cret-pw");
        let creds = Credentials {
            username: "alice".into(),
            password: pw,
        };
        assert!(!format!("{creds:?}").contains("s3cret"));
        std::fs::write(&file, "\n").unwrap();
        assert!(read_password(&file, "e").is_err());
        let missing = read_password(&dir.join("absent"), "e").unwrap_err();
        assert!(matches!(missing, Error::Io { .. }));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn endpoints_get_a_scheme_and_lose_a_trailing_slash() {
        assert_eq!(
            normalize_endpoint("127.0.0.1:2379", "http"),
            "http://127.0.0.1:2379"
        );
        assert_eq!(
            normalize_endpoint("https://e:2379/", "http"),
            "https://e:2379"
        );
    }
}
