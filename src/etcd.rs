//! A small blocking client for etcd v3 over its JSON gRPC gateway (`/v3/...`).
//!
//! It owns everything that touches the wire: the ureq agents (timeouts, TLS),
//! the JSON encoding of the gateway (standard padded base64 for bytes, int64s
//! as strings, omitted zero values), error bodies of every etcd version we
//! know of, endpoint failover, user/password tokens, and the watch stream on
//! its own thread. Callers see plain Rust values and [`Error::Etcd`] naming
//! the endpoint and the operation. The lock logic lives in `lock`, not here.
//!
//! See `ETCD-GATEWAY.md` for the observed behaviour this code relies on.

use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts};

use crate::backoff;
use crate::config::{EtcdConfig, TlsConfig};
use crate::error::{Error, Result};

/// Budget for establishing a connection (TCP and TLS handshake).
pub const CONNECT_TIMEOUT_SECS: u64 = 5;
/// Read and write buffer of each connection (etcd's replies stream through it).
pub const IO_BUFFER_BYTES: usize = 16 * 1024;
/// Budget for a whole unary request, from connecting to reading the reply.
pub const REQUEST_TIMEOUT_SECS: u64 = 10;
/// Budget for the response headers of a watch (its body has no overall
/// deadline, only the idle timeout of [`EtcdConfig::watch_idle_timeout`]).
pub const WATCH_HEADERS_TIMEOUT_SECS: u64 = 10;
/// First delay before the watch reconnects after a stream error.
pub const WATCH_BACKOFF_MIN_MILLIS: u64 = 200;
/// Upper bound of the watch reconnect delay.
pub const WATCH_BACKOFF_MAX_MILLIS: u64 = 30_000;
/// A stream that stayed up this long proved itself even if it delivered
/// nothing: its end resets the reconnect backoff.
pub const WATCH_STABLE_AFTER_MILLIS: u64 = WATCH_BACKOFF_MAX_MILLIS;

/// Largest error body quoted in an error message, in bytes.
const MAX_QUOTED_BODY_BYTES: usize = 200;

// ---------------------------------------------------------------------------
// Public values

/// One key as stored in etcd.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyValue {
    /// The key (non-UTF-8 bytes are replaced with U+FFFD).
    pub key: String,
    /// The value (empty when etcd omitted it).
    pub value: Vec<u8>,
    /// Revision at which the key was created (0 for a DELETE event).
    pub create_revision: i64,
    /// Revision of the last change.
    pub mod_revision: i64,
    /// Number of changes since creation.
    pub version: i64,
    /// Lease attached to the key, 0 when none.
    pub lease: i64,
}

/// A lease granted by etcd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// The lease id (echo it back exactly).
    pub id: i64,
    /// The TTL etcd granted, which may be higher than asked (minimum TTL).
    pub ttl_secs: i64,
}

/// How a [`Compare`] relates the stored field to the given operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpResult {
    /// Stored == operand.
    Equal,
    /// Stored > operand.
    Greater,
    /// Stored < operand.
    Less,
    /// Stored != operand (false for a missing key with a VALUE compare).
    NotEqual,
}

impl CmpResult {
    fn as_str(self) -> &'static str {
        match self {
            CmpResult::Equal => "EQUAL",
            CmpResult::Greater => "GREATER",
            CmpResult::Less => "LESS",
            CmpResult::NotEqual => "NOT_EQUAL",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum CmpTarget {
    Version(i64),
    CreateRevision(i64),
    ModRevision(i64),
    Value(Vec<u8>),
    Lease(i64),
}

/// One condition of a [`Txn`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compare {
    key: Vec<u8>,
    range_end: Option<Vec<u8>>,
    result: CmpResult,
    target: CmpTarget,
}

impl Compare {
    fn new(key: &str, result: CmpResult, target: CmpTarget) -> Compare {
        Compare {
            key: key.as_bytes().to_vec(),
            range_end: None,
            result,
            target,
        }
    }

    /// Compares the key's version (0 when the key is absent).
    pub fn version(key: &str, result: CmpResult, version: i64) -> Compare {
        Compare::new(key, result, CmpTarget::Version(version))
    }

    /// Compares the key's create revision; `Equal, 0` means "key absent".
    pub fn create_revision(key: &str, result: CmpResult, revision: i64) -> Compare {
        Compare::new(key, result, CmpTarget::CreateRevision(revision))
    }

    /// Compares the key's last modification revision.
    pub fn mod_revision(key: &str, result: CmpResult, revision: i64) -> Compare {
        Compare::new(key, result, CmpTarget::ModRevision(revision))
    }

    /// Compares the key's value (always false when the key is absent).
    pub fn value(key: &str, result: CmpResult, value: &[u8]) -> Compare {
        Compare::new(key, result, CmpTarget::Value(value.to_vec()))
    }

    /// Compares the lease attached to the key (0 = no lease).
    pub fn lease(key: &str, result: CmpResult, lease: i64) -> Compare {
        Compare::new(key, result, CmpTarget::Lease(lease))
    }

    /// Applies the compare to every key under `key` taken as a prefix.
    #[must_use]
    pub fn with_prefix(mut self) -> Compare {
        self.range_end = Some(prefix_end(&self.key));
        self
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("key".into(), b64(&self.key));
        if let Some(end) = &self.range_end {
            m.insert("range_end".into(), b64(end));
        }
        m.insert("result".into(), self.result.as_str().into());
        let (target, field, operand) = match &self.target {
            CmpTarget::Version(v) => ("VERSION", "version", int(*v)),
            CmpTarget::CreateRevision(v) => ("CREATE", "create_revision", int(*v)),
            CmpTarget::ModRevision(v) => ("MOD", "mod_revision", int(*v)),
            CmpTarget::Value(v) => ("VALUE", "value", b64(v)),
            CmpTarget::Lease(v) => ("LEASE", "lease", int(*v)),
        };
        m.insert("target".into(), target.into());
        m.insert(field.into(), operand);
        Value::Object(m)
    }
}

/// One operation inside a [`Txn`] branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Write a key, optionally attached to a lease.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: Vec<u8>,
        /// The lease, if any.
        lease: Option<i64>,
    },
    /// Read one key, or a whole prefix.
    Get {
        /// The key or prefix.
        key: String,
        /// Whether `key` is a prefix.
        prefix: bool,
    },
    /// Delete one key, or a whole prefix.
    Delete {
        /// The key or prefix.
        key: String,
        /// Whether `key` is a prefix.
        prefix: bool,
    },
}

impl Op {
    /// Writes `key` = `value`, attached to `lease` when given.
    pub fn put(key: &str, value: &[u8], lease: Option<i64>) -> Op {
        Op::Put {
            key: key.to_owned(),
            value: value.to_vec(),
            lease,
        }
    }

    /// Reads one key.
    pub fn get(key: &str) -> Op {
        Op::Get {
            key: key.to_owned(),
            prefix: false,
        }
    }

    /// Reads every key under `prefix`.
    pub fn get_prefix(prefix: &str) -> Op {
        Op::Get {
            key: prefix.to_owned(),
            prefix: true,
        }
    }

    /// Deletes one key.
    pub fn delete(key: &str) -> Op {
        Op::Delete {
            key: key.to_owned(),
            prefix: false,
        }
    }

    /// Deletes every key under `prefix`.
    pub fn delete_prefix(prefix: &str) -> Op {
        Op::Delete {
            key: prefix.to_owned(),
            prefix: true,
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Op::Put { key, value, lease } => json!({ "request_put": put_body(key, value, *lease) }),
            Op::Get { key, prefix } => json!({ "request_range": range_body(key, *prefix) }),
            Op::Delete { key, prefix } => {
                json!({ "request_delete_range": range_body(key, *prefix) })
            }
        }
    }
}

/// A transaction: if every compare holds, run `success`, else `failure`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    /// Conditions, all of which must hold.
    pub compare: Vec<Compare>,
    /// Operations run when every compare holds.
    pub success: Vec<Op>,
    /// Operations run otherwise.
    pub failure: Vec<Op>,
}

impl Txn {
    fn to_json(&self) -> Value {
        json!({
            "compare": self.compare.iter().map(Compare::to_json).collect::<Vec<_>>(),
            "success": self.success.iter().map(Op::to_json).collect::<Vec<_>>(),
            "failure": self.failure.iter().map(Op::to_json).collect::<Vec<_>>(),
        })
    }
}

/// The result of one [`Op`], in the order of the branch that ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResponse {
    /// A put was applied at `revision`.
    Put {
        /// The revision of the write.
        revision: i64,
    },
    /// A read returned these keys.
    Range {
        /// The keys found (empty when none).
        kvs: Vec<KeyValue>,
        /// How many keys the range holds.
        count: i64,
    },
    /// A delete removed `deleted` keys.
    Delete {
        /// How many keys were removed.
        deleted: u64,
    },
}

/// What a [`Txn`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnResponse {
    /// Whether every compare held (the success branch ran).
    pub succeeded: bool,
    /// The store revision after the transaction.
    pub revision: i64,
    /// One response per op of the branch that ran.
    pub responses: Vec<OpResponse>,
}

/// Something a watch saw; the callback returns `false` to stop the watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// A key was written.
    Put(KeyValue),
    /// A key was deleted (or its lease ended) at `revision`.
    Delete {
        /// The key.
        key: String,
        /// The revision of the delete.
        revision: i64,
    },
    /// History was compacted past the watch position: events may have been
    /// lost, re-read the state. The watch continues from `compact_revision`.
    Compacted {
        /// The oldest revision still available.
        compact_revision: i64,
    },
    /// The stream broke and was re-established from the last seen revision + 1.
    Reconnected,
    /// The stream broke or was cancelled; the watch will reconnect.
    Error(String),
}

/// The smallest key greater than every key that starts with `prefix`
/// (the gateway's `range_end` for a prefix). An empty or all-0xff prefix
/// gives `[0]`, which means "to the end of the keyspace".
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

// ---------------------------------------------------------------------------
// The client

/// A blocking etcd v3 client over the JSON gateway; cheap to clone, `Send + Sync`.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    endpoints: Vec<String>,
    current: AtomicUsize,
    unary: ureq::Agent,
    stream: ureq::Agent,
    /// How long a watch stream may stay silent before it is re-opened.
    watch_idle: Duration,
    credentials: Option<Credentials>,
    token: Mutex<TokenState>,
}

/// User name and password; `Debug` never shows the password.
struct Credentials {
    username: String,
    password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

#[derive(Clone, PartialEq, Eq)]
enum TokenState {
    /// Not authenticated yet (or the token was rejected).
    Unknown,
    /// A simple token to send as `Authorization`.
    Token(String),
    /// The server said auth is not enabled: send no token.
    NotEnabled,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("endpoints", &self.inner.endpoints)
            .field("current", &self.endpoint())
            .field("credentials", &self.inner.credentials)
            .finish_non_exhaustive()
    }
}

/// Why one attempt against one endpoint failed.
#[derive(Debug)]
enum Failure {
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
struct ApiError {
    status: u16,
    code: Option<i64>,
    message: String,
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
    fn is_unavailable(&self) -> bool {
        self.status == 503
            || self.code == Some(14)
            || (self.code == Some(2) && self.message.contains("context deadline exceeded"))
    }

    /// The token is missing, invalid, expired or from an old auth revision.
    fn is_auth(&self) -> bool {
        self.status == 401
            || self.code == Some(16)
            || self.message.contains("auth store is old")
            || self.message.contains("invalid auth token")
            || self.message.contains("user name is empty")
    }

    /// etcd code 5 (NotFound): an unknown lease, for example.
    fn is_not_found(&self) -> bool {
        self.code == Some(5) || (self.code.is_none() && self.status == 404)
    }

    fn classify(self) -> Failure {
        if self.is_auth() {
            Failure::Auth(self)
        } else if self.is_unavailable() {
            Failure::Unavailable(self.to_string())
        } else {
            Failure::Api(self)
        }
    }
}

fn failure_to_error(endpoint: &str, op: &str, failure: Failure) -> Error {
    let detail = match failure {
        Failure::Unavailable(d) | Failure::Fatal(d) => d,
        Failure::Auth(e) | Failure::Api(e) => e.to_string(),
    };
    Error::etcd(endpoint, op, detail)
}

impl Client {
    /// Builds the client: HTTP agents with timeouts and TLS, and the password
    /// read from its file (never logged). Does not contact etcd.
    pub fn new(cfg: &EtcdConfig) -> Result<Client> {
        let default_scheme = if cfg.tls.is_some() { "https" } else { "http" };
        let endpoints: Vec<String> = cfg
            .endpoints
            .iter()
            .map(|e| normalize_endpoint(e, default_scheme))
            .collect();
        if endpoints.is_empty() {
            return Err(Error::etcd(
                "(none)",
                "connect",
                "no etcd endpoints configured",
            ));
        }
        let all = endpoints.join(",");
        let tls = match &cfg.tls {
            Some(t) => build_tls(t, &all)?,
            None => ureq::tls::TlsConfig::default(),
        };
        let base = || {
            ureq::Agent::config_builder()
                // Read the JSON error body of 4xx/5xx replies ourselves.
                .http_status_as_error(false)
                .tls_config(tls.clone())
                .timeout_connect(Some(Duration::from_secs(CONNECT_TIMEOUT_SECS)))
                .user_agent(concat!("rebootctl/", env!("CARGO_PKG_VERSION")))
                // ureq's 128 KiB default per connection and direction is
                // most of an idle agent's memory (one connection per watch).
                .input_buffer_size(IO_BUFFER_BYTES)
                .output_buffer_size(IO_BUFFER_BYTES)
        };
        let unary = base()
            .timeout_global(Some(Duration::from_secs(REQUEST_TIMEOUT_SECS)))
            .build()
            .new_agent();
        // A watch body never ends: the headers get a deadline, and each read
        // the idle timeout, so a stream that a proxy or a NAT dropped without
        // a word (half-open) is noticed; etcd's progress notifications keep
        // a healthy idle stream talking.
        let stream = base()
            .timeout_recv_response(Some(Duration::from_secs(WATCH_HEADERS_TIMEOUT_SECS)))
            .timeout_per_read(Some(cfg.watch_idle_timeout))
            .build()
            .new_agent();
        let credentials = match &cfg.auth {
            Some(auth) => Some(Credentials {
                username: auth.username.clone(),
                password: read_password(&auth.password_file, &all)?,
            }),
            None => None,
        };
        Ok(Client {
            inner: Arc::new(Inner {
                endpoints,
                current: AtomicUsize::new(0),
                unary,
                stream,
                watch_idle: cfg.watch_idle_timeout,
                credentials,
                token: Mutex::new(TokenState::Unknown),
            }),
        })
    }

    /// The endpoint currently in use (the last one that answered).
    pub fn endpoint(&self) -> String {
        let i = self.inner.current.load(Ordering::Relaxed) % self.inner.endpoints.len();
        self.inner.endpoints[i].clone()
    }

    /// Reads one key; `None` when it does not exist.
    pub fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let op = "get";
        let body = range_body(key, false);
        let (ep, raw): (String, RawRange) = self.unary_call(op, "/v3/kv/range", &body)?;
        match raw.kvs.into_iter().next() {
            Some(kv) => Ok(Some(kv.decode().map_err(|d| Error::etcd(&ep, op, d))?)),
            None => Ok(None),
        }
    }

    /// Reads every key under `prefix`, with the store revision of the read.
    pub fn get_prefix(&self, prefix: &str) -> Result<(Vec<KeyValue>, i64)> {
        let op = "get prefix";
        let body = range_body(prefix, true);
        let (ep, raw): (String, RawRange) = self.unary_call(op, "/v3/kv/range", &body)?;
        let kvs = decode_kvs(raw.kvs).map_err(|d| Error::etcd(&ep, op, d))?;
        Ok((kvs, raw.header.revision))
    }

    /// Writes `key` = `value` (attached to `lease` when given); returns the revision.
    pub fn put(&self, key: &str, value: &[u8], lease: Option<i64>) -> Result<i64> {
        let body = put_body(key, value, lease);
        let (_, raw): (String, RawPut) = self.unary_call("put", "/v3/kv/put", &body)?;
        Ok(raw.header.revision)
    }

    /// Deletes one key; returns how many keys were removed (0 or 1).
    pub fn delete(&self, key: &str) -> Result<u64> {
        let body = range_body(key, false);
        let (_, raw): (String, RawDelete) =
            self.unary_call("delete", "/v3/kv/deleterange", &body)?;
        Ok(raw.deleted)
    }

    /// Runs a transaction.
    pub fn txn(&self, txn: &Txn) -> Result<TxnResponse> {
        let op = "txn";
        let (ep, raw): (String, RawTxn) = self.unary_call(op, "/v3/kv/txn", &txn.to_json())?;
        raw.decode().map_err(|d| Error::etcd(&ep, op, d))
    }

    /// Grants a lease of `ttl` (whole seconds; etcd raises it to its minimum).
    pub fn lease_grant(&self, ttl: Duration) -> Result<Lease> {
        let op = "lease grant";
        let body = json!({ "TTL": ttl.as_secs().to_string() });
        let (ep, raw): (String, RawLeaseGrant) = self.unary_call(op, "/v3/lease/grant", &body)?;
        if !raw.error.is_empty() {
            return Err(Error::etcd(&ep, op, raw.error));
        }
        if raw.id == 0 {
            return Err(Error::etcd(&ep, op, "reply carries no lease ID"));
        }
        Ok(Lease {
            id: raw.id,
            ttl_secs: raw.ttl,
        })
    }

    /// Refreshes a lease once; returns its granted TTL, or `None` when the
    /// lease is gone (expired, revoked or unknown).
    pub fn lease_keepalive(&self, id: i64) -> Result<Option<i64>> {
        let op = "lease keepalive";
        let body = json!({ "ID": id.to_string() });
        let (_, raw) = self
            .run(op, |ep, token| {
                self.post_and_parse(ep, "/v3/lease/keepalive", &body, token, parse_stream_reply)
            })
            .map_err(|(ep, f)| failure_to_error(&ep, op, f))?;
        let raw: RawKeepAlive = raw;
        Ok((raw.ttl > 0).then_some(raw.ttl))
    }

    /// Revokes a lease, deleting its keys; a lease that is already gone is fine.
    pub fn lease_revoke(&self, id: i64) -> Result<()> {
        let op = "lease revoke";
        let body = json!({ "ID": id.to_string() });
        let res: std::result::Result<(String, RawHeaderOnly), _> = self.run(op, |ep, token| {
            self.post_and_parse(ep, "/v3/lease/revoke", &body, token, parse_json)
        });
        match res {
            Ok(_) => Ok(()),
            Err((_, Failure::Api(e))) if e.is_not_found() => Ok(()),
            Err((ep, f)) => Err(failure_to_error(&ep, op, f)),
        }
    }

    /// The remaining TTL of a lease in seconds, or `None` when it is gone.
    pub fn lease_time_to_live(&self, id: i64) -> Result<Option<i64>> {
        let body = json!({ "ID": id.to_string() });
        let (_, raw): (String, RawTimeToLive) =
            self.unary_call("lease time-to-live", "/v3/lease/timetolive", &body)?;
        // A dead lease reports TTL -1 and no grantedTTL.
        Ok((raw.ttl >= 0 && raw.granted_ttl > 0).then_some(raw.ttl))
    }

    /// Watches every key under `prefix` from `start_revision` (0 = from now).
    ///
    /// The watch is established before this returns (so a write made after
    /// it is seen); a thread then calls `on_event` for each event until it
    /// returns `false`. On stream errors the thread reconnects from the last
    /// seen revision + 1 and reports [`WatchEvent::Error`] then
    /// [`WatchEvent::Reconnected`], after a jittered exponential backoff
    /// that only a stream that delivered something (or stayed up for
    /// [`WATCH_STABLE_AFTER_MILLIS`]) resets, so a stream that is cut right
    /// after it opened backs off too. A stream silent for the idle timeout
    /// (no event, no progress notification) is re-opened from the same
    /// revision without a report: a dropped stream is replaced, nothing is
    /// lost. An idle stream blocks in a read, so the thread notices `false`
    /// only at the next message or idle timeout.
    pub fn watch_prefix(
        &self,
        prefix: &str,
        start_revision: i64,
        on_event: impl FnMut(WatchEvent) -> bool + Send + 'static,
    ) -> Result<JoinHandle<()>> {
        let key = prefix.as_bytes().to_vec();
        let opened = self
            .open_watch(&key, start_revision)
            .map_err(|(ep, f)| failure_to_error(&ep, "watch", f))?;
        let client = self.clone();
        thread::Builder::new()
            .name("etcd-watch".into())
            .spawn(move || client.watch_loop(key, start_revision, opened, on_event))
            .map_err(|e| {
                Error::etcd(
                    self.endpoint(),
                    "watch",
                    format!("cannot start thread: {e}"),
                )
            })
    }

    // -----------------------------------------------------------------------
    // Transport

    /// A unary call with failover and auth; returns the endpoint that answered.
    fn unary_call<T: DeserializeOwned>(
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
    fn run<T>(
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
    fn attempt_with_auth<T>(
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
    fn token(&self, ep: &str) -> std::result::Result<Option<String>, Failure> {
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

    fn forget_token(&self, rejected: Option<&str>) {
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

    fn lock_token(&self) -> std::sync::MutexGuard<'_, TokenState> {
        // The state is a plain value: a panic elsewhere cannot leave it torn.
        self.inner
            .token
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `POST /v3/auth/authenticate`; the password goes in the body only.
    fn authenticate(
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
    fn send(
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
    fn post_and_parse<T>(
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

    // -----------------------------------------------------------------------
    // Watch

    /// Opens a watch stream and reads its first message.
    fn open_watch(
        &self,
        key: &[u8],
        start_revision: i64,
    ) -> std::result::Result<OpenedWatch, (String, Failure)> {
        let mut create = Map::new();
        create.insert("key".into(), b64(key));
        create.insert("range_end".into(), b64(&prefix_end(key)));
        if start_revision > 0 {
            create.insert("start_revision".into(), int(start_revision));
        }
        create.insert("progress_notify".into(), true.into());
        let body = json!({ "create_request": create });
        let (_, opened) = self.run("watch", |ep, token| {
            let resp = self.send(&self.inner.stream, ep, "/v3/watch", &body, token)?;
            let status = resp.status().as_u16();
            let (_, body) = resp.into_parts();
            let mut reader = BufReader::new(body.into_reader());
            if !(200..300).contains(&status) {
                let mut text = String::new();
                // Error replies end; a bounded read is enough to quote them.
                let _ = std::io::Read::read_to_string(
                    &mut std::io::Read::take(&mut reader, 64 * 1024),
                    &mut text,
                );
                return Err(parse_error_body(status, &text).classify());
            }
            let first = read_watch_message(&mut reader)?;
            if first.canceled && first.compact_revision == 0 {
                return Err(cancel_failure(&first.cancel_reason));
            }
            Ok(OpenedWatch {
                endpoint: ep.to_owned(),
                reader,
                first,
            })
        })?;
        Ok(opened)
    }

    fn watch_loop(
        &self,
        key: Vec<u8>,
        start_revision: i64,
        opened: OpenedWatch,
        mut on_event: impl FnMut(WatchEvent) -> bool,
    ) {
        let mut next_rev = start_revision.max(0);
        // Failures since a stream last proved itself; drives the backoff.
        let mut failures: u32 = 0;
        // Whether the next successful open is reported as `Reconnected`.
        let mut report_open = false;
        let mut current = Some(opened);
        loop {
            let mut stream = match current.take() {
                Some(s) => s,
                None => match self.open_watch(&key, next_rev) {
                    Ok(s) => {
                        if report_open && !on_event(WatchEvent::Reconnected) {
                            return;
                        }
                        s
                    }
                    Err((ep, f)) => {
                        let err = failure_to_error(&ep, "watch", f);
                        log::warn!("{err}");
                        if !on_event(WatchEvent::Error(err.to_string())) {
                            return;
                        }
                        report_open = true;
                        failures = failures.saturating_add(1);
                        thread::sleep(watch_backoff(failures));
                        continue;
                    }
                },
            };
            let opened_at = Instant::now();
            let mut delivered = false;
            let mut message = Ok(stream.first.clone());
            let outcome = loop {
                let msg = match message {
                    Ok(m) => m,
                    Err(StreamRead::Quiet) => break Flow::Quiet,
                    Err(StreamRead::Failed(f)) => {
                        break Flow::Reconnect(Some(
                            failure_to_error(&stream.endpoint, "watch", f).to_string(),
                        ));
                    }
                };
                // Anything but the creation acknowledgement (an event, a
                // progress notification) proves the stream carries data.
                delivered |= !msg.created;
                match handle_watch_message(msg, &mut next_rev, &mut on_event) {
                    Flow::Continue => {}
                    other => break other,
                }
                message = read_stream_message(&mut stream.reader);
            };
            // Not merely opened: a stream that delivered or stayed up long
            // enough ends the run of failures.
            if delivered || opened_at.elapsed() >= Duration::from_millis(WATCH_STABLE_AFTER_MILLIS)
            {
                failures = 0;
            }
            match outcome {
                Flow::Stop => return,
                Flow::Quiet => {
                    log::debug!(
                        "watch at {}: nothing for {} (no event, no progress notification); \
                         re-opening it from revision {next_rev}",
                        stream.endpoint,
                        humantime::format_duration(self.inner.watch_idle)
                    );
                    report_open = false;
                }
                Flow::Continue | Flow::Reconnect(None) => report_open = true,
                Flow::Reconnect(Some(detail)) => {
                    failures = failures.saturating_add(1);
                    let delay = watch_backoff(failures);
                    log::warn!(
                        "{detail}; reconnecting from revision {next_rev} in {} ms",
                        delay.as_millis()
                    );
                    if !on_event(WatchEvent::Error(detail)) {
                        return;
                    }
                    report_open = true;
                    thread::sleep(delay);
                    // Another endpoint may be healthier: start the next try there.
                    let n = self.inner.endpoints.len();
                    if n > 1 {
                        let cur = self.inner.current.load(Ordering::Relaxed);
                        self.inner.current.store((cur + 1) % n, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}

/// The delay before reconnect attempt number `failures` (1-based).
fn watch_backoff(failures: u32) -> Duration {
    backoff::delay(
        failures,
        Duration::from_millis(WATCH_BACKOFF_MIN_MILLIS),
        Duration::from_millis(WATCH_BACKOFF_MAX_MILLIS),
        backoff::jitter(),
    )
}

struct OpenedWatch {
    endpoint: String,
    reader: BufReader<ureq::BodyReader<'static>>,
    first: RawWatchResponse,
}

enum Flow {
    Continue,
    Stop,
    /// Nothing arrived within the idle timeout: re-open quietly.
    Quiet,
    /// Re-open the stream; with a detail, after reporting it and a backoff.
    Reconnect(Option<String>),
}

/// Why reading the next message of a watch stream failed.
enum StreamRead {
    /// Nothing arrived within the idle timeout (a half-open stream, or an
    /// idle one on a server whose progress notifications are rarer).
    Quiet,
    /// The stream broke or carried an error.
    Failed(Failure),
}

/// Reads the next `{"result":…}` / `{"error":…}` line of a stream.
fn read_stream_message(
    reader: &mut impl BufRead,
) -> std::result::Result<RawWatchResponse, StreamRead> {
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) => {
                return Err(StreamRead::Failed(Failure::Unavailable(
                    "watch stream ended".into(),
                )));
            }
            Ok(_) if line.trim().is_empty() => continue,
            Ok(_) => return parse_stream_reply(&line).map_err(StreamRead::Failed),
            Err(e) if is_timeout(&e) => return Err(StreamRead::Quiet),
            Err(e) => {
                return Err(StreamRead::Failed(Failure::Unavailable(format!(
                    "reading the watch stream: {e}"
                ))));
            }
        }
    }
}

/// Reads the first message of a fresh stream: silence is a failure there.
fn read_watch_message(reader: &mut impl BufRead) -> std::result::Result<RawWatchResponse, Failure> {
    read_stream_message(reader).map_err(|e| match e {
        StreamRead::Quiet => {
            Failure::Unavailable("no reply on the watch stream within its idle timeout".into())
        }
        StreamRead::Failed(f) => f,
    })
}

/// A read that ended because a deadline passed (ureq wraps its own timeout
/// errors in an `io::Error`).
fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
    ) || e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<ureq::Error>())
        .is_some_and(|u| matches!(u, ureq::Error::Timeout(_)))
}

/// Maps the `cancel_reason` of a watch cancelled at creation to a failure.
fn cancel_failure(reason: &str) -> Failure {
    let code = if reason.contains("code = Unauthenticated") {
        Some(16)
    } else if reason.contains("code = PermissionDenied") {
        Some(7)
    } else if reason.contains("code = InvalidArgument") {
        Some(3)
    } else {
        None
    };
    let message = if reason.is_empty() {
        "watch canceled by the server".to_owned()
    } else {
        format!("watch canceled: {reason}")
    };
    ApiError {
        status: 0,
        code,
        message,
    }
    .classify()
}

/// Applies one watch message: reports events and advances `next_rev`.
fn handle_watch_message(
    msg: RawWatchResponse,
    next_rev: &mut i64,
    on_event: &mut impl FnMut(WatchEvent) -> bool,
) -> Flow {
    if msg.canceled {
        if msg.compact_revision > 0 {
            *next_rev = msg.compact_revision;
            let ev = WatchEvent::Compacted {
                compact_revision: msg.compact_revision,
            };
            return if on_event(ev) {
                Flow::Reconnect(None)
            } else {
                Flow::Stop
            };
        }
        return Flow::Reconnect(Some(match msg.cancel_reason.as_str() {
            "" => "watch canceled by the server".to_owned(),
            reason => format!("watch canceled by the server: {reason}"),
        }));
    }
    if msg.created && *next_rev == 0 {
        // "From now" means from the revision after the one at creation.
        *next_rev = msg.header.revision + 1;
    }
    let had_events = !msg.events.is_empty();
    for ev in msg.events {
        let revision = ev.kv.mod_revision;
        let event = if ev.is_delete() {
            match decode_key(&ev.kv.key) {
                Ok(key) => WatchEvent::Delete { key, revision },
                Err(d) => WatchEvent::Error(format!("watch event: {d}")),
            }
        } else {
            match ev.kv.decode() {
                Ok(kv) => WatchEvent::Put(kv),
                Err(d) => WatchEvent::Error(format!("watch event: {d}")),
            }
        };
        *next_rev = (*next_rev).max(revision + 1);
        if !on_event(event) {
            return Flow::Stop;
        }
    }
    if !had_events && !msg.created && msg.header.revision > 0 {
        // A progress notification: everything up to this revision was sent.
        *next_rev = (*next_rev).max(msg.header.revision + 1);
    }
    Flow::Continue
}

// ---------------------------------------------------------------------------
// Setup helpers

fn normalize_endpoint(e: &str, default_scheme: &str) -> String {
    let e = e.trim().trim_end_matches('/');
    if e.contains("://") {
        e.to_owned()
    } else {
        format!("{default_scheme}://{e}")
    }
}

fn read_password(path: &Path, endpoints: &str) -> Result<String> {
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

fn build_tls(t: &TlsConfig, endpoints: &str) -> Result<ureq::tls::TlsConfig> {
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
fn describe_transport_error(ep: &str, e: &ureq::Error) -> String {
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

// ---------------------------------------------------------------------------
// Encoding

fn b64(bytes: &[u8]) -> Value {
    Value::String(B64.encode(bytes))
}

/// int64 fields are sent as strings, as etcd emits them.
fn int(v: i64) -> Value {
    Value::String(v.to_string())
}

fn put_body(key: &str, value: &[u8], lease: Option<i64>) -> Value {
    let mut m = Map::new();
    m.insert("key".into(), b64(key.as_bytes()));
    m.insert("value".into(), b64(value));
    if let Some(lease) = lease.filter(|l| *l != 0) {
        m.insert("lease".into(), int(lease));
    }
    Value::Object(m)
}

fn range_body(key: &str, prefix: bool) -> Value {
    let mut m = Map::new();
    m.insert("key".into(), b64(key.as_bytes()));
    if prefix {
        m.insert("range_end".into(), b64(&prefix_end(key.as_bytes())));
    }
    Value::Object(m)
}

// ---------------------------------------------------------------------------
// Decoding

fn quote(text: &str) -> String {
    let t = text.trim();
    if t.len() <= MAX_QUOTED_BODY_BYTES {
        return t.to_owned();
    }
    let mut end = MAX_QUOTED_BODY_BYTES;
    while !t.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &t[..end])
}

fn parse_json<T: DeserializeOwned>(text: &str) -> std::result::Result<T, Failure> {
    serde_json::from_str(text)
        .map_err(|e| Failure::Fatal(format!("unexpected reply ({e}): {}", quote(text))))
}

/// Parses the first line of a streamed reply (`{"result":…}` or `{"error":…}`).
fn parse_stream_reply<T: DeserializeOwned>(text: &str) -> std::result::Result<T, Failure> {
    let Some(line) = text.lines().find(|l| !l.trim().is_empty()) else {
        return Err(Failure::Fatal("empty reply".into()));
    };
    let parsed: StreamLine = parse_json(line)?;
    if let Some(err) = parsed.error {
        return Err(api_error_from_value(0, &json!({ "error": err })).classify());
    }
    match parsed.result {
        Some(result) => serde_json::from_value(result)
            .map_err(|e| Failure::Fatal(format!("unexpected reply ({e}): {}", quote(line)))),
        None => Err(Failure::Fatal(format!("unexpected reply: {}", quote(line)))),
    }
}

/// Parses an error body of any known shape:
/// 3.4/3.5 unary `{"error","message","code"}`, 3.6 `{"code","message"}`,
/// streams `{"error":{"grpc_code"|"code","message",...}}`, or plain text.
fn parse_error_body(status: u16, text: &str) -> ApiError {
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => api_error_from_value(status, &v),
        _ => ApiError {
            status,
            code: None,
            message: match quote(text) {
                t if t.is_empty() => "empty reply".to_owned(),
                t => t,
            },
        },
    }
}

fn api_error_from_value(status: u16, v: &Value) -> ApiError {
    let obj = match v.get("error") {
        Some(inner @ Value::Object(_)) => inner,
        _ => v,
    };
    let code = ["code", "grpc_code"]
        .iter()
        .find_map(|k| obj.get(*k).and_then(value_as_i64));
    let message = ["message", "error"]
        .iter()
        .find_map(|k| {
            obj.get(*k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        })
        .map(str::to_owned)
        .unwrap_or_else(|| format!("unexpected error reply: {}", quote(&v.to_string())));
    ApiError {
        status,
        code,
        message,
    }
}

fn value_as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn decode_key(b64_key: &str) -> std::result::Result<String, String> {
    let bytes = B64
        .decode(b64_key)
        .map_err(|e| format!("invalid base64 in key {b64_key:?}: {e}"))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn decode_kvs(raw: Vec<RawKv>) -> std::result::Result<Vec<KeyValue>, String> {
    raw.into_iter().map(RawKv::decode).collect()
}

/// Serde helpers: etcd sends 64-bit integers as JSON strings; accept numbers too.
mod int64 {
    use serde::de::{self, Deserializer, Visitor};
    use std::fmt;
    use std::marker::PhantomData;
    use std::str::FromStr;

    struct StrOrNum<T>(PhantomData<T>);

    impl<T> Visitor<'_> for StrOrNum<T>
    where
        T: FromStr + TryFrom<i64> + TryFrom<u64>,
    {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an integer or a string holding one")
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
            T::try_from(v).map_err(|_| E::custom(format!("integer {v} out of range")))
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
            T::try_from(v).map_err(|_| E::custom(format!("integer {v} out of range")))
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            v.parse()
                .map_err(|_| E::custom(format!("invalid integer string {v:?}")))
        }
    }

    pub fn i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        d.deserialize_any(StrOrNum::<i64>(PhantomData))
    }

    pub fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        d.deserialize_any(StrOrNum::<u64>(PhantomData))
    }
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
struct RawHeader {
    #[serde(deserialize_with = "int64::u64")]
    cluster_id: u64,
    #[serde(deserialize_with = "int64::u64")]
    member_id: u64,
    #[serde(deserialize_with = "int64::i64")]
    revision: i64,
    #[serde(deserialize_with = "int64::u64")]
    raft_term: u64,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
struct RawKv {
    key: String,
    #[serde(deserialize_with = "int64::i64")]
    create_revision: i64,
    #[serde(deserialize_with = "int64::i64")]
    mod_revision: i64,
    #[serde(deserialize_with = "int64::i64")]
    version: i64,
    value: String,
    #[serde(deserialize_with = "int64::i64")]
    lease: i64,
}

impl RawKv {
    fn decode(self) -> std::result::Result<KeyValue, String> {
        let key = decode_key(&self.key)?;
        let value = B64
            .decode(&self.value)
            .map_err(|e| format!("invalid base64 in the value of {key:?}: {e}"))?;
        Ok(KeyValue {
            key,
            value,
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
            lease: self.lease,
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawHeaderOnly {
    #[allow(dead_code)]
    header: RawHeader,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawRange {
    header: RawHeader,
    kvs: Vec<RawKv>,
    #[serde(deserialize_with = "int64::i64")]
    count: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawPut {
    header: RawHeader,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawDelete {
    #[allow(dead_code)]
    header: RawHeader,
    #[serde(deserialize_with = "int64::u64")]
    deleted: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawResponseOp {
    response_put: Option<RawPut>,
    response_range: Option<RawRange>,
    response_delete_range: Option<RawDelete>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawTxn {
    header: RawHeader,
    succeeded: bool,
    responses: Vec<RawResponseOp>,
}

impl RawTxn {
    fn decode(self) -> std::result::Result<TxnResponse, String> {
        let mut responses = Vec::with_capacity(self.responses.len());
        for r in self.responses {
            let resp = if let Some(p) = r.response_put {
                OpResponse::Put {
                    revision: p.header.revision,
                }
            } else if let Some(rr) = r.response_range {
                OpResponse::Range {
                    kvs: decode_kvs(rr.kvs)?,
                    count: rr.count,
                }
            } else if let Some(d) = r.response_delete_range {
                OpResponse::Delete { deleted: d.deleted }
            } else {
                return Err("txn reply holds a response of an unknown kind".into());
            };
            responses.push(resp);
        }
        Ok(TxnResponse {
            succeeded: self.succeeded,
            revision: self.header.revision,
            responses,
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawLeaseGrant {
    #[serde(rename = "ID", deserialize_with = "int64::i64")]
    id: i64,
    #[serde(rename = "TTL", deserialize_with = "int64::i64")]
    ttl: i64,
    error: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawKeepAlive {
    #[serde(rename = "TTL", deserialize_with = "int64::i64")]
    ttl: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawTimeToLive {
    #[serde(rename = "TTL", deserialize_with = "int64::i64")]
    ttl: i64,
    #[serde(rename = "grantedTTL", deserialize_with = "int64::i64")]
    granted_ttl: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawAuth {
    token: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StreamLine {
    result: Option<Value>,
    error: Option<Value>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
struct RawWatchResponse {
    header: RawHeader,
    created: bool,
    canceled: bool,
    #[serde(deserialize_with = "int64::i64")]
    compact_revision: i64,
    cancel_reason: String,
    events: Vec<RawEvent>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
struct RawEvent {
    /// Absent for PUT (enum value 0); `"DELETE"` (or 1) for deletes.
    #[serde(rename = "type")]
    kind: Value,
    kv: RawKv,
}

impl RawEvent {
    fn is_delete(&self) -> bool {
        matches!(&self.kind, Value::String(s) if s == "DELETE") || self.kind.as_i64() == Some(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = r#"{"cluster_id":"15090821050269081923","member_id":"10915101499388906730","revision":"3","raft_term":"2"}"#;

    #[test]
    fn prefix_end_increments_the_last_byte_below_0xff() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"locks/", b"locks0"),
            (b"a\xff", b"b"),
            (b"a\xff\xff", b"b"),
            (b"\xff\xff", b"\0"),
            (b"", b"\0"),
            (b"/rebootctl/", b"/rebootctl0"),
        ];
        for (prefix, end) in cases {
            assert_eq!(prefix_end(prefix), end.to_vec(), "prefix {prefix:?}");
        }
    }

    #[test]
    fn bytes_are_standard_padded_base64() {
        assert_eq!(b64(b"lockz"), json!("bG9ja3o="));
        // The standard alphabet (`+/`), not the URL-safe one (`-_`).
        assert_eq!(b64(&[0xfb, 0xff]), json!("+/8="));
        assert_eq!(b64(&[0xff, 0xff]), json!("//8="));
        assert_eq!(
            range_body("locks/", true),
            json!({"key": "bG9ja3Mv", "range_end": "bG9ja3Mw"})
        );
        assert_eq!(range_body("foo", false), json!({"key": "Zm9v"}));
    }

    #[test]
    fn put_body_sends_the_lease_as_a_string_and_omits_no_lease() {
        assert_eq!(
            put_body("leased/key", b"host-a", Some(2324035649314686015)),
            json!({"key": "bGVhc2VkL2tleQ==", "value": "aG9zdC1h", "lease": "2324035649314686015"})
        );
        assert_eq!(
            put_body("foo", b"bar", None),
            json!({"key": "Zm9v", "value": "YmFy"})
        );
        assert_eq!(
            put_body("foo", b"", Some(0)),
            json!({"key": "Zm9v", "value": ""})
        );
    }

    #[test]
    fn acquire_txn_encodes_like_the_gateway_sample() {
        let key = "reboot-lock/owner";
        let txn = Txn {
            compare: vec![Compare::create_revision(key, CmpResult::Equal, 0)],
            success: vec![Op::put(key, b"host-a", None)],
            failure: vec![Op::get(key)],
        };
        let expected: Value = serde_json::from_str(
            r#"{"compare":[{"key":"cmVib290LWxvY2svb3duZXI=","target":"CREATE","result":"EQUAL","create_revision":"0"}],
                "success":[{"request_put":{"key":"cmVib290LWxvY2svb3duZXI=","value":"aG9zdC1h"}}],
                "failure":[{"request_range":{"key":"cmVib290LWxvY2svb3duZXI="}}]}"#,
        )
        .unwrap();
        assert_eq!(txn.to_json(), expected);
    }

    #[test]
    fn every_compare_target_uses_its_own_operand_field() {
        let cases = [
            (
                Compare::version("k", CmpResult::Greater, 1),
                json!({"key":"aw==","target":"VERSION","result":"GREATER","version":"1"}),
            ),
            (
                Compare::mod_revision("k", CmpResult::Less, 15),
                json!({"key":"aw==","target":"MOD","result":"LESS","mod_revision":"15"}),
            ),
            (
                Compare::value("k", CmpResult::NotEqual, b"host-b"),
                json!({"key":"aw==","target":"VALUE","result":"NOT_EQUAL","value":"aG9zdC1i"}),
            ),
            (
                Compare::lease("k", CmpResult::Equal, 2324035649365081881),
                json!({"key":"aw==","target":"LEASE","result":"EQUAL","lease":"2324035649365081881"}),
            ),
            (
                Compare::version("reboot/", CmpResult::Equal, 0).with_prefix(),
                json!({"key":"cmVib290Lw==","range_end":"cmVib290MA==","target":"VERSION","result":"EQUAL","version":"0"}),
            ),
        ];
        for (cmp, expected) in cases {
            assert_eq!(cmp.to_json(), expected);
        }
    }

    #[test]
    fn ops_encode_prefixes_with_range_end() {
        assert_eq!(
            Op::delete_prefix("locks/").to_json(),
            json!({"request_delete_range": {"key":"bG9ja3Mv","range_end":"bG9ja3Mw"}})
        );
        assert_eq!(
            Op::get_prefix("locks/").to_json(),
            json!({"request_range": {"key":"bG9ja3Mv","range_end":"bG9ja3Mw"}})
        );
        assert_eq!(
            Op::delete("foo").to_json(),
            json!({"request_delete_range": {"key":"Zm9v"}})
        );
    }

    #[test]
    fn header_ids_are_u64_and_int64s_accept_strings_and_numbers() {
        let h: RawHeader = serde_json::from_str(HEADER).unwrap();
        assert_eq!(h.cluster_id, 15090821050269081923);
        assert_eq!(h.member_id, 10915101499388906730);
        assert_eq!(h.revision, 3);
        assert_eq!(h.raft_term, 2);
        let h: RawHeader = serde_json::from_str(r#"{"revision":7,"member_id":1}"#).unwrap();
        assert_eq!((h.revision, h.member_id, h.cluster_id), (7, 1, 0));
        // member/list omits the revision.
        let h: RawHeader = serde_json::from_str(r#"{"cluster_id":"1","raft_term":"2"}"#).unwrap();
        assert_eq!(h.revision, 0);
        assert!(serde_json::from_str::<RawHeader>(r#"{"revision":"x"}"#).is_err());
        assert!(
            serde_json::from_str::<RawHeader>(r#"{"revision":"9223372036854775808"}"#).is_err()
        );
    }

    #[test]
    fn range_with_kvs_decodes_keys_values_and_revisions() {
        let body = format!(
            r#"{{"header":{HEADER},"kvs":[{{"key":"Zm9v","create_revision":"2","mod_revision":"3","version":"2","value":"YmF6"}},
               {{"key":"bGVhc2VkL2tleQ==","create_revision":"19","mod_revision":"19","version":"1","value":"aG9zdC1h","lease":"2324035649314686015"}}],"count":"2"}}"#
        );
        let raw: RawRange = parse_json(&body).unwrap();
        assert_eq!(raw.count, 2);
        assert_eq!(raw.header.revision, 3);
        let kvs = decode_kvs(raw.kvs).unwrap();
        assert_eq!(
            kvs[0],
            KeyValue {
                key: "foo".into(),
                value: b"baz".to_vec(),
                create_revision: 2,
                mod_revision: 3,
                version: 2,
                lease: 0,
            }
        );
        assert_eq!(kvs[1].key, "leased/key");
        assert_eq!(kvs[1].lease, 2324035649314686015);
    }

    #[test]
    fn omitted_fields_decode_as_zero_values() {
        // Range that matched nothing: no kvs, no count.
        let raw: RawRange = parse_json(&format!(r#"{{"header":{HEADER}}}"#)).unwrap();
        assert!(raw.kvs.is_empty());
        assert_eq!(raw.count, 0);
        // Empty value and no lease.
        let kv: RawKv = parse_json(
            r#"{"key":"ZW1wdHl2YWw=","create_revision":"11","mod_revision":"11","version":"1"}"#,
        )
        .unwrap();
        let kv = kv.decode().unwrap();
        assert_eq!(
            (kv.key.as_str(), kv.value.len(), kv.lease),
            ("emptyval", 0, 0)
        );
        // Delete of a missing key: no deleted.
        let d: RawDelete = parse_json(&format!(r#"{{"header":{HEADER}}}"#)).unwrap();
        assert_eq!(d.deleted, 0);
        // Alarm GET on 3.4: literally {}.
        let h: RawHeaderOnly = parse_json("{}").unwrap();
        assert_eq!(h.header.revision, 0);
    }

    #[test]
    fn failed_txn_has_no_succeeded_and_returns_the_holder() {
        let body = r#"{"header":{"cluster_id":"324952591200643719","member_id":"3319814642761637952","revision":"15","raft_term":"2"},
            "responses":[{"response_range":{"header":{"revision":"15"},"kvs":[{"key":"cmVib290LWxvY2svb3duZXI=","create_revision":"15","mod_revision":"15","version":"1","value":"aG9zdC1h"}],"count":"1"}}]}"#;
        let txn = parse_json::<RawTxn>(body).unwrap().decode().unwrap();
        assert!(!txn.succeeded);
        assert_eq!(txn.revision, 15);
        match &txn.responses[..] {
            [OpResponse::Range { kvs, count: 1 }] => {
                assert_eq!(kvs[0].key, "reboot-lock/owner");
                assert_eq!(kvs[0].value, b"host-a");
            }
            other => panic!("unexpected responses {other:?}"),
        }
    }

    #[test]
    fn successful_txn_decodes_every_response_kind() {
        let body = r#"{"header":{"revision":"17"},"succeeded":true,"responses":[
            {"response_put":{"header":{"revision":"17"}}},
            {"response_range":{"header":{"revision":"17"}}},
            {"response_delete_range":{"header":{"revision":"17"},"deleted":"1","prev_kvs":[{"key":"aw=="}]}}]}"#;
        let txn = parse_json::<RawTxn>(body).unwrap().decode().unwrap();
        assert!(txn.succeeded);
        assert_eq!(
            txn.responses,
            vec![
                OpResponse::Put { revision: 17 },
                OpResponse::Range {
                    kvs: vec![],
                    count: 0
                },
                OpResponse::Delete { deleted: 1 },
            ]
        );
        // A compare that fails with no failure ops: header only.
        let txn = parse_json::<RawTxn>(r#"{"header":{"revision":"3"}}"#)
            .unwrap()
            .decode()
            .unwrap();
        assert!(!txn.succeeded && txn.responses.is_empty());
    }

    #[test]
    fn lease_replies_decode() {
        let g: RawLeaseGrant = parse_json(&format!(
            r#"{{"header":{HEADER},"ID":"2324035649314686003","TTL":"10"}}"#
        ))
        .unwrap();
        assert_eq!((g.id, g.ttl), (2324035649314686003, 10));
        let alive: RawKeepAlive = parse_stream_reply(&format!(
            "{{\"result\":{{\"header\":{HEADER},\"ID\":\"2324035649314686010\",\"TTL\":\"20\"}}}}\n"
        ))
        .unwrap();
        assert_eq!(alive.ttl, 20);
        // Expired or unknown lease: 200 with TTL absent.
        let gone: RawKeepAlive =
            parse_stream_reply(r#"{"result":{"header":{"revision":"20"},"ID":"999999"}}"#).unwrap();
        assert_eq!(gone.ttl, 0);
        let ttl: RawTimeToLive = parse_json(
            r#"{"header":{},"ID":"2324035649314686015","TTL":"4","grantedTTL":"5","keys":["bGVhc2VkL2tleQ=="]}"#,
        )
        .unwrap();
        assert_eq!((ttl.ttl, ttl.granted_ttl), (4, 5));
        let dead: RawTimeToLive =
            parse_json(r#"{"header":{"revision":"20"},"ID":"2324035649314686015","TTL":"-1"}"#)
                .unwrap();
        assert_eq!((dead.ttl, dead.granted_ttl), (-1, 0));
    }

    #[test]
    fn empty_stream_reply_is_an_error_not_a_panic() {
        assert!(matches!(
            parse_stream_reply::<RawKeepAlive>(""),
            Err(Failure::Fatal(_))
        ));
        assert!(matches!(
            parse_stream_reply::<RawKeepAlive>("{\"neither\":1}\n"),
            Err(Failure::Fatal(_))
        ));
        assert!(matches!(
            parse_stream_reply::<RawKeepAlive>("not json"),
            Err(Failure::Fatal(_))
        ));
    }

    #[test]
    fn unary_error_bodies_of_every_version_parse() {
        let v34 = parse_error_body(
            412,
            r#"{"error":"etcdserver: lease already exists","message":"etcdserver: lease already exists","code":9}"#,
        );
        assert_eq!(
            v34,
            ApiError {
                status: 412,
                code: Some(9),
                message: "etcdserver: lease already exists".into()
            }
        );
        // 3.5.1 order differs; same keys.
        let v35 = parse_error_body(
            500,
            r#"{"error":"mutex: session is expired","code":2,"message":"mutex: session is expired"}"#,
        );
        assert_eq!(v35.code, Some(2));
        assert_eq!(v35.message, "mutex: session is expired");
        // 3.6: no "error" key, maybe "details".
        let v36 = parse_error_body(
            400,
            r#"{"code":9,"message":"etcdserver: authentication is not enabled","details":[]}"#,
        );
        assert_eq!(v36.code, Some(9));
        assert_eq!(v36.message, "etcdserver: authentication is not enabled");
        // Only "error" (fallback).
        let only_error = parse_error_body(400, r#"{"error":"boom","code":"3"}"#);
        assert_eq!(
            (only_error.code, only_error.message.as_str()),
            (Some(3), "boom")
        );
        // Plain-text replies.
        let text = parse_error_body(404, "Not Found");
        assert_eq!((text.code, text.message.as_str()), (None, "Not Found"));
        assert_eq!(parse_error_body(502, "").message, "empty reply");
        let long = parse_error_body(500, &"x".repeat(1000));
        assert!(long.message.len() < 250);
    }

    #[test]
    fn stream_error_bodies_of_every_version_parse() {
        let v34 = parse_error_body(
            503,
            r#"{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader","http_status":"Service Unavailable"}}"#,
        );
        assert_eq!(v34.code, Some(14));
        assert_eq!(v34.message, "etcdserver: no leader");
        let v36 = parse_error_body(
            503,
            r#"{"error":{"code":14,"message":"etcdserver: no leader"}}"#,
        );
        assert_eq!(v36.code, Some(14));
        // An error line after 200 in a keepalive stream.
        let f = parse_stream_reply::<RawKeepAlive>(
            r#"{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader","http_status":"Service Unavailable"}}"#,
        );
        assert!(matches!(f, Err(Failure::Unavailable(m)) if m.contains("no leader")));
    }

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

    fn watch_line(line: &str) -> RawWatchResponse {
        read_watch_message(&mut line.as_bytes()).unwrap()
    }

    fn collect(msgs: &[&str], next_rev: &mut i64) -> (Vec<WatchEvent>, Vec<&'static str>) {
        let mut events = Vec::new();
        let mut flows = Vec::new();
        for m in msgs {
            let flow = handle_watch_message(watch_line(m), next_rev, &mut |e| {
                events.push(e);
                true
            });
            flows.push(match flow {
                Flow::Continue => "continue",
                Flow::Stop => "stop",
                Flow::Quiet => "quiet",
                Flow::Reconnect(None) => "reconnect",
                Flow::Reconnect(Some(_)) => "reconnect-after-error",
            });
        }
        (events, flows)
    }

    #[test]
    fn watch_stream_lines_become_events_and_advance_the_revision() {
        let mut next = 0;
        let (events, flows) = collect(
            &[
                r#"{"result":{"header":{"cluster_id":"324952591200643719","member_id":"3319814642761637952","revision":"18","raft_term":"2"},"created":true}}"#,
                r#"{"result":{"header":{"revision":"19"},"events":[{"kv":{"key":"bGVhc2VkL2tleQ==","create_revision":"19","mod_revision":"19","version":"1","value":"aG9zdC1h","lease":"2324035649314686015"}}]}}"#,
                r#"{"result":{"header":{"revision":"20"},"events":[{"type":"DELETE","kv":{"key":"bGVhc2VkL2tleQ==","mod_revision":"20"},"prev_kv":{"key":"bGVhc2VkL2tleQ==","create_revision":"19","mod_revision":"19","version":"1","value":"aG9zdC1h","lease":"2324035649314686015"}}]}}"#,
            ],
            &mut next,
        );
        assert_eq!(flows, ["continue"; 3]);
        assert_eq!(next, 21);
        assert_eq!(events.len(), 2);
        match &events[0] {
            WatchEvent::Put(kv) => {
                assert_eq!(kv.key, "leased/key");
                assert_eq!(kv.value, b"host-a");
                assert_eq!(kv.lease, 2324035649314686015);
            }
            other => panic!("expected a put, got {other:?}"),
        }
        assert_eq!(
            events[1],
            WatchEvent::Delete {
                key: "leased/key".into(),
                revision: 20
            }
        );
    }

    #[test]
    fn watch_created_from_now_resumes_after_the_creation_revision() {
        let mut next = 0;
        collect(
            &[r#"{"result":{"header":{"revision":"18"},"created":true}}"#],
            &mut next,
        );
        assert_eq!(next, 19);
        // A progress notification moves the resume point forward.
        collect(&[r#"{"result":{"header":{"revision":"58"}}}"#], &mut next);
        assert_eq!(next, 59);
        // A replay from an explicit revision keeps it.
        let mut next = 23;
        collect(
            &[r#"{"result":{"header":{"revision":"24"},"created":true}}"#],
            &mut next,
        );
        assert_eq!(next, 23);
    }

    #[test]
    fn watch_cancellations_are_reported() {
        let mut next = 5;
        let (events, flows) = collect(
            &[
                r#"{"result":{"header":{"revision":"25"},"created":true}}"#,
                r#"{"result":{"header":{"cluster_id":"324952591200643719","member_id":"3319814642761637952","raft_term":"2"},"canceled":true,"compact_revision":"20"}}"#,
            ],
            &mut next,
        );
        assert_eq!(flows, ["continue", "reconnect"]);
        assert_eq!(
            events,
            vec![WatchEvent::Compacted {
                compact_revision: 20
            }]
        );
        assert_eq!(next, 20);
        let (_, flows) = collect(
            &[
                r#"{"result":{"header":{},"watch_id":"-1","created":true,"canceled":true,"cancel_reason":"rpc error: code = PermissionDenied desc = etcdserver: permission denied"}}"#,
            ],
            &mut next,
        );
        assert_eq!(flows, ["reconnect-after-error"]);
        assert!(matches!(
            cancel_failure(
                "rpc error: code = Unauthenticated desc = etcdserver: invalid auth token"
            ),
            Failure::Auth(_)
        ));
        assert!(matches!(
            cancel_failure(
                "rpc error: code = PermissionDenied desc = etcdserver: permission denied"
            ),
            Failure::Api(ApiError { code: Some(7), .. })
        ));
    }

    #[test]
    fn a_silent_stream_is_quiet_not_failed() {
        /// A reader whose every read times out, as ureq reports it.
        struct Silent;
        impl std::io::Read for Silent {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(ureq::Error::Timeout(ureq::Timeout::PerRead).into_io())
            }
        }
        let mut reader = BufReader::new(Silent);
        assert!(matches!(
            read_stream_message(&mut reader),
            Err(StreamRead::Quiet)
        ));
        // On a fresh stream, silence is a failure (try another endpoint).
        assert!(matches!(
            read_watch_message(&mut reader),
            Err(Failure::Unavailable(d)) if d.contains("idle timeout")
        ));
        let timed_out = std::io::Error::from(std::io::ErrorKind::TimedOut);
        assert!(is_timeout(&timed_out));
        assert!(!is_timeout(&std::io::Error::from(
            std::io::ErrorKind::ConnectionReset
        )));
    }

    #[test]
    fn watch_stream_errors_and_eof_are_failures() {
        let err = read_watch_message(
            &mut r#"{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader","http_status":"Service Unavailable"}}"#
                .as_bytes(),
        );
        assert!(matches!(err, Err(Failure::Unavailable(_))));
        assert!(matches!(
            read_watch_message(&mut "\n\n".as_bytes()),
            Err(Failure::Unavailable(_))
        ));
        let multi = "\n{\"result\":{\"header\":{\"revision\":\"2\"},\"created\":true}}\n";
        assert!(read_watch_message(&mut multi.as_bytes()).unwrap().created);
    }

    #[test]
    fn stopping_the_callback_stops_the_watch() {
        let mut next = 0;
        let flow = handle_watch_message(
            watch_line(
                r#"{"result":{"header":{"revision":"3"},"events":[{"kv":{"key":"YQ==","mod_revision":"2"}},{"kv":{"key":"Yg==","mod_revision":"3"}}]}}"#,
            ),
            &mut next,
            &mut |_| false,
        );
        assert!(matches!(flow, Flow::Stop));
        assert_eq!(next, 3);
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

    #[test]
    fn client_is_send_sync_and_clone() {
        fn check<T: Send + Sync + Clone>() {}
        check::<Client>();
    }
}
