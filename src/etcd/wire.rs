//! The gateway's reply shapes: raw serde structs, int64s sent as strings,
//! base64 keys and values, and error bodies of every etcd version.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::transport::*;
use super::txn::*;
use super::*;

pub(super) fn quote(text: &str) -> String {
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

pub(super) fn parse_json<T: DeserializeOwned>(text: &str) -> std::result::Result<T, Failure> {
    serde_json::from_str(text)
        .map_err(|e| Failure::Fatal(format!("unexpected reply ({e}): {}", quote(text))))
}

/// Parses the first line of a streamed reply (`{"result":…}` or `{"error":…}`).
pub(super) fn parse_stream_reply<T: DeserializeOwned>(
    text: &str,
) -> std::result::Result<T, Failure> {
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
pub(super) fn parse_error_body(status: u16, text: &str) -> ApiError {
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

pub(super) fn api_error_from_value(status: u16, v: &Value) -> ApiError {
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

pub(super) fn value_as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

pub(super) fn decode_key(b64_key: &str) -> std::result::Result<String, String> {
    let bytes = B64
        .decode(b64_key)
        .map_err(|e| format!("invalid base64 in key {b64_key:?}: {e}"))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

pub(super) fn decode_kvs(raw: Vec<RawKv>) -> std::result::Result<Vec<KeyValue>, String> {
    raw.into_iter().map(RawKv::decode).collect()
}

/// Serde helpers: etcd sends 64-bit integers as JSON strings; accept numbers too.
pub(super) mod int64 {
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
pub(super) struct RawHeader {
    #[serde(deserialize_with = "int64::u64")]
    pub(super) cluster_id: u64,
    #[serde(deserialize_with = "int64::u64")]
    pub(super) member_id: u64,
    #[serde(deserialize_with = "int64::i64")]
    pub(super) revision: i64,
    #[serde(deserialize_with = "int64::u64")]
    pub(super) raft_term: u64,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub(super) struct RawKv {
    pub(super) key: String,
    #[serde(deserialize_with = "int64::i64")]
    pub(super) create_revision: i64,
    #[serde(deserialize_with = "int64::i64")]
    pub(super) mod_revision: i64,
    #[serde(deserialize_with = "int64::i64")]
    pub(super) version: i64,
    pub(super) value: String,
    #[serde(deserialize_with = "int64::i64")]
    pub(super) lease: i64,
}

impl RawKv {
    pub(super) fn decode(self) -> std::result::Result<KeyValue, String> {
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
pub(super) struct RawHeaderOnly {
    #[allow(dead_code)]
    pub(super) header: RawHeader,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawRange {
    pub(super) header: RawHeader,
    pub(super) kvs: Vec<RawKv>,
    #[serde(deserialize_with = "int64::i64")]
    pub(super) count: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawPut {
    pub(super) header: RawHeader,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawDelete {
    #[allow(dead_code)]
    pub(super) header: RawHeader,
    #[serde(deserialize_with = "int64::u64")]
    pub(super) deleted: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawResponseOp {
    pub(super) response_put: Option<RawPut>,
    pub(super) response_range: Option<RawRange>,
    pub(super) response_delete_range: Option<RawDelete>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawTxn {
    pub(super) header: RawHeader,
    pub(super) succeeded: bool,
    pub(super) responses: Vec<RawResponseOp>,
}

impl RawTxn {
    pub(super) fn decode(self) -> std::result::Result<TxnResponse, String> {
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
pub(super) struct RawLeaseGrant {
    #[serde(rename = "ID", deserialize_with = "int64::i64")]
    pub(super) id: i64,
    #[serde(rename = "TTL", deserialize_with = "int64::i64")]
    pub(super) ttl: i64,
    pub(super) error: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawKeepAlive {
    #[serde(rename = "TTL", deserialize_with = "int64::i64")]
    pub(super) ttl: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawTimeToLive {
    #[serde(rename = "TTL", deserialize_with = "int64::i64")]
    pub(super) ttl: i64,
    #[serde(rename = "grantedTTL", deserialize_with = "int64::i64")]
    pub(super) granted_ttl: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawAuth {
    pub(super) token: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct StreamLine {
    pub(super) result: Option<Value>,
    pub(super) error: Option<Value>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub(super) struct RawWatchResponse {
    pub(super) header: RawHeader,
    pub(super) created: bool,
    pub(super) canceled: bool,
    #[serde(deserialize_with = "int64::i64")]
    pub(super) compact_revision: i64,
    pub(super) cancel_reason: String,
    pub(super) events: Vec<RawEvent>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub(super) struct RawEvent {
    /// Absent for PUT (enum value 0); `"DELETE"` (or 1) for deletes.
    #[serde(rename = "type")]
    pub(super) kind: Value,
    pub(super) kv: RawKv,
}

impl RawEvent {
    pub(super) fn is_delete(&self) -> bool {
        matches!(&self.kind, Value::String(s) if s == "DELETE") || self.kind.as_i64() == Some(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = r#"{"cluster_id":"15090821050269081923","member_id":"10915101499388906730","revision":"3","raft_term":"2"}"#;

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
}
