//! `etcd/` — the client of etcd's v3 JSON gateway. It knows nothing of
//! rebootctl: it may import only the top-level leaves (`config`, `error`,
//! `backoff`), and `cluster/` is its only user inside the agent.
//!
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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::config::EtcdConfig;
use crate::error::{Error, Result};

mod transport;
mod txn;
mod watch;
mod wire;

pub use txn::{CmpResult, Compare, Op, OpResponse, Txn, TxnResponse};
pub use watch::WatchEvent;

use transport::{Failure, build_tls, failure_to_error, normalize_endpoint, read_password};
use txn::{put_body, range_body};
use wire::*;

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
            // An idle agent keeps one request connection (beside its watch
            // stream); a second one opened by concurrent requests (heartbeat
            // and pass) is closed after use instead of lingering.
            .max_idle_connections_per_host(1)
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn client_is_send_sync_and_clone() {
        fn check<T: Send + Sync + Clone>() {}
        check::<Client>();
    }
}
