//! What a FleetLock client and server agree on: the two operations and
//! their paths, the `fleet-lock-protocol` header, the request body, and the
//! error answer `{"kind", "value"}` whose `kind` comes from a small bounded
//! set ([`Kind`]) with one deliberate status code each.
//!
//! The status codes follow one rule, so an operator reading a proxy log
//! knows whether waiting helps (a client retries every failure anyway,
//! Zincati does): 400, 401, 404, 405, 411 and 413 never succeed as sent
//! (the request or the configuration is wrong); 409 and 423 succeed once
//! the cluster changes (a gate opens, a slot is freed); 503 succeeds once
//! the server can reach etcd again (and tells a load balancer to try
//! another instance). 409 is a gate of the cluster (pause, window,
//! cooldown, policies) and 423 the lock itself (every slot held), the code
//! poseidon/fleetlock uses for a held lock too.

use std::time::Duration;

use serde_json::{Value, json};

use crate::config::{fleetlock_id_problem, is_fleetlock_group};

/// The header every FleetLock request carries, with the value `true`.
pub const HEADER: &str = "fleet-lock-protocol";
/// The largest request body accepted, in bytes. A FleetLock body is two
/// short strings (under 200 bytes even pretty-printed, as Zincati sends
/// it), and tiny_http reads bodies up to 1024 bytes on its own connection
/// threads before it hands a request over: with this limit the decision
/// loop never waits for a slow client.
pub const MAX_BODY_BYTES: usize = 1024;

/// A FleetLock operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `v1/pre-reboot`: lock a slot (recursive: a holder gets it again).
    PreReboot,
    /// `v1/steady-state`: unlock the slot held, if any.
    SteadyState,
}

impl Operation {
    /// Both operations.
    pub const ALL: [Operation; 2] = [Operation::PreReboot, Operation::SteadyState];

    /// The name used in logs and as the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::PreReboot => "pre-reboot",
            Operation::SteadyState => "steady-state",
        }
    }

    /// The path relative to the base URL.
    pub fn path(self) -> &'static str {
        match self {
            Operation::PreReboot => "v1/pre-reboot",
            Operation::SteadyState => "v1/steady-state",
        }
    }

    /// The operation a request path names: any base path (a proxy may
    /// mount the server below one) followed by `/v1/pre-reboot` or
    /// `/v1/steady-state`; the query string is ignored.
    pub fn from_path(url: &str) -> Option<Operation> {
        let path = url.split(['?', '#']).next().unwrap_or("");
        Operation::ALL.into_iter().find(|op| {
            path.strip_suffix(op.path())
                .is_some_and(|base| base.ends_with('/'))
        })
    }
}

/// The kind of a refusal: the bounded set a server answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The `fleet-lock-protocol: true` header is missing (400).
    MissingHeader,
    /// The body is not JSON, or `client_params.id`/`group` is missing,
    /// empty or malformed (400).
    BadRequest,
    /// The group is not one the server serves (400: resending it never helps).
    UnknownGroup,
    /// The group needs HTTP basic auth and the credentials are missing or
    /// wrong (401).
    Unauthorized,
    /// The path is neither operation (404).
    NotFound,
    /// The method is not POST (405).
    MethodNotAllowed,
    /// The body has no Content-Length (chunked) (411).
    LengthRequired,
    /// The body is larger than [`MAX_BODY_BYTES`] (413).
    BodyTooLarge,
    /// The id is the node name of a rebootctl agent that holds a slot of
    /// the same lock (409).
    IdConflict,
    /// The cluster is paused (`rebootctl pause`) (409).
    Paused,
    /// The group's maintenance windows are closed (409, `Retry-After`).
    OutsideWindow,
    /// The cluster-wide cooldown is running (409, `Retry-After`).
    Cooldown,
    /// A cluster policy forbids another host going down (409).
    ClusterUnhealthy,
    /// Every slot of the group's lock is held (423).
    SemaphoreFull,
    /// The server cannot decide: etcd is unreachable or failing (503).
    /// Never a grant.
    Unavailable,
}

impl Kind {
    /// Every kind, in the order the man page lists them.
    pub const ALL: [Kind; 15] = [
        Kind::MissingHeader,
        Kind::BadRequest,
        Kind::UnknownGroup,
        Kind::Unauthorized,
        Kind::NotFound,
        Kind::MethodNotAllowed,
        Kind::LengthRequired,
        Kind::BodyTooLarge,
        Kind::IdConflict,
        Kind::Paused,
        Kind::OutsideWindow,
        Kind::Cooldown,
        Kind::ClusterUnhealthy,
        Kind::SemaphoreFull,
        Kind::Unavailable,
    ];

    /// The `kind` string of the answer body (and the metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::MissingHeader => "missing_header",
            Kind::BadRequest => "bad_request",
            Kind::UnknownGroup => "unknown_group",
            Kind::Unauthorized => "unauthorized",
            Kind::NotFound => "not_found",
            Kind::MethodNotAllowed => "method_not_allowed",
            Kind::LengthRequired => "length_required",
            Kind::BodyTooLarge => "body_too_large",
            Kind::IdConflict => "id_conflict",
            Kind::Paused => "paused",
            Kind::OutsideWindow => "outside_window",
            Kind::Cooldown => "cooldown",
            Kind::ClusterUnhealthy => "cluster_unhealthy",
            Kind::SemaphoreFull => "semaphore_full",
            Kind::Unavailable => "unavailable",
        }
    }

    /// The HTTP status code (see the module documentation for the rule).
    pub fn status(self) -> u16 {
        match self {
            Kind::MissingHeader | Kind::BadRequest | Kind::UnknownGroup => 400,
            Kind::Unauthorized => 401,
            Kind::NotFound => 404,
            Kind::MethodNotAllowed => 405,
            Kind::LengthRequired => 411,
            Kind::BodyTooLarge => 413,
            Kind::IdConflict
            | Kind::Paused
            | Kind::OutsideWindow
            | Kind::Cooldown
            | Kind::ClusterUnhealthy => 409,
            Kind::SemaphoreFull => 423,
            Kind::Unavailable => 503,
        }
    }

    /// The kind named `s`, if it is one of ours.
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A refusal: its kind, the human text, and when to ask again if known.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// What kind of refusal.
    pub kind: Kind,
    /// For people; never empty.
    pub value: String,
    /// Sent as `Retry-After` (whole seconds) when the wait is known.
    pub retry_after: Option<Duration>,
}

impl Refusal {
    /// A refusal of `kind` saying `value`.
    pub fn new(kind: Kind, value: impl Into<String>) -> Refusal {
        Refusal {
            kind,
            value: value.into(),
            retry_after: None,
        }
    }

    /// The same refusal with a `Retry-After`.
    pub fn retry_after(mut self, wait: Duration) -> Refusal {
        self.retry_after = Some(wait);
        self
    }

    /// The JSON answer body.
    pub fn body(&self) -> String {
        answer_body(self.kind.as_str(), &self.value)
    }
}

/// The JSON answer body `{"kind": …, "value": …}` (also of a 200, with kind `ok`).
pub fn answer_body(kind: &str, value: &str) -> String {
    json!({ "kind": kind, "value": value }).to_string()
}

/// True when the header's value says `true` (trimmed, any case).
pub fn header_ok(value: Option<&str>) -> bool {
    value.is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// The parameters of a request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientParams {
    /// The client id (case-sensitive, owns the lock).
    pub id: String,
    /// The reboot group.
    pub group: String,
}

/// Parses and validates a request body. Unknown fields are ignored, so a
/// client that sends more than the protocol asks for still works.
pub fn parse_body(bytes: &[u8]) -> Result<ClientParams, Refusal> {
    let bad = |msg: String| Refusal::new(Kind::BadRequest, msg);
    let v: Value = serde_json::from_slice(bytes).map_err(|e| {
        bad(format!(
            "the body is not JSON ({e}); expected {{\"client_params\": {{\"id\": …, \"group\": …}}}}"
        ))
    })?;
    let Some(params) = v.get("client_params").filter(|p| p.is_object()) else {
        return Err(bad("the body has no client_params object".into()));
    };
    let field = |name: &str| match params.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(bad(format!("client_params.{name} must be a string"))),
        None => Err(bad(format!("client_params.{name} is missing"))),
    };
    let id = field("id")?;
    if let Some(problem) = fleetlock_id_problem(&id) {
        return Err(bad(format!("client_params.id {problem}")));
    }
    let group = field("group")?;
    if !is_fleetlock_group(&group) {
        return Err(bad(format!(
            "client_params.group {:?} must match ^[a-zA-Z0-9.-]+$",
            truncate(&group, 64)
        )));
    }
    Ok(ClientParams { id, group })
}

/// The request body a client sends, pretty-printed as Zincati sends it.
pub fn request_body(id: &str, group: &str) -> String {
    serde_json::to_string_pretty(&json!({ "client_params": { "id": id, "group": group } }))
        .unwrap_or_default()
}

/// The `kind` and `value` of an answer body, when it is one.
pub fn parse_answer(bytes: &[u8]) -> Option<(String, String)> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    let kind = v.get("kind")?.as_str()?.to_string();
    let value = v
        .get("value")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    Some((kind, value))
}

/// At most `max` characters of `s` (a client's text in our messages).
fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_with_any_base_name_their_operation() {
        let cases = [
            ("/v1/pre-reboot", Some(Operation::PreReboot)),
            ("/v1/steady-state", Some(Operation::SteadyState)),
            ("/fleetlock/v1/pre-reboot", Some(Operation::PreReboot)),
            ("/a/b/v1/steady-state?x=1", Some(Operation::SteadyState)),
            ("/v1/pre-rebootx", None),
            ("/xv1/pre-reboot", None),
            ("v1/pre-reboot", None),
            ("/v2/pre-reboot", None),
            ("/metrics", None),
            ("/", None),
        ];
        for (path, want) in cases {
            assert_eq!(Operation::from_path(path), want, "{path}");
        }
    }

    #[test]
    fn every_kind_is_bounded_named_and_coded() {
        let mut names: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Kind::ALL.len());
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
            assert!((400..600).contains(&k.status()), "{k:?}");
            assert!(
                k.as_str()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_')
            );
        }
        assert_eq!(Kind::Unavailable.status(), 503);
        assert_eq!(Kind::SemaphoreFull.status(), 423);
        assert_eq!(Kind::Paused.status(), 409);
        assert_eq!(Kind::parse("failed_lock"), None);
    }

    #[test]
    fn bodies_are_validated() {
        let ok = parse_body(request_body("c988d2509fdf4cdcbed39037c56406fb", "workers").as_bytes());
        assert_eq!(
            ok,
            Ok(ClientParams {
                id: "c988d2509fdf4cdcbed39037c56406fb".into(),
                group: "workers".into()
            })
        );
        let extra = br#"{"client_params": {"id": "a", "group": "g", "x": 1}, "y": []}"#;
        assert!(parse_body(extra).is_ok());
        let cases: [(&[u8], &str); 9] = [
            (b"", "not JSON"),
            (b"id=a&group=b", "not JSON"),
            (b"[]", "no client_params"),
            (br#"{"client_params": "a"}"#, "no client_params"),
            (br#"{"client_params": {"group": "g"}}"#, "id is missing"),
            (
                br#"{"client_params": {"id": "", "group": "g"}}"#,
                "id must not be empty",
            ),
            (
                br#"{"client_params": {"id": 5, "group": "g"}}"#,
                "id must be a string",
            ),
            (
                br#"{"client_params": {"id": "a", "group": ""}}"#,
                "must match",
            ),
            (
                br#"{"client_params": {"id": "a", "group": "a/b"}}"#,
                "must match",
            ),
        ];
        for (body, want) in cases {
            let err = parse_body(body).expect_err(want);
            assert_eq!(err.kind, Kind::BadRequest);
            assert!(
                err.value.contains(want),
                "{:?}: {}",
                String::from_utf8_lossy(body),
                err.value
            );
        }
    }

    #[test]
    fn answers_round_trip() {
        let r = Refusal::new(Kind::SemaphoreFull, "all 2 slots held");
        assert_eq!(
            parse_answer(r.body().as_bytes()),
            Some(("semaphore_full".into(), "all 2 slots held".into()))
        );
        assert_eq!(parse_answer(b"<html>"), None);
        assert!(header_ok(Some(" True ")));
        assert!(!header_ok(Some("yes")));
        assert!(!header_ok(None));
    }
}
