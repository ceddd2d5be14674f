//! Transactions: compares, operations and their replies, and the JSON
//! encoding of requests (keys and values in base64, int64s as strings).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value, json};

use super::*;

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
    pub(super) fn as_str(self) -> &'static str {
        match self {
            CmpResult::Equal => "EQUAL",
            CmpResult::Greater => "GREATER",
            CmpResult::Less => "LESS",
            CmpResult::NotEqual => "NOT_EQUAL",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum CmpTarget {
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
    pub(super) fn new(key: &str, result: CmpResult, target: CmpTarget) -> Compare {
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

    pub(super) fn to_json(&self) -> Value {
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

    pub(super) fn to_json(&self) -> Value {
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
    pub(super) fn to_json(&self) -> Value {
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

pub(super) fn b64(bytes: &[u8]) -> Value {
    Value::String(B64.encode(bytes))
}

/// int64 fields are sent as strings, as etcd emits them.
pub(super) fn int(v: i64) -> Value {
    Value::String(v.to_string())
}

pub(super) fn put_body(key: &str, value: &[u8], lease: Option<i64>) -> Value {
    let mut m = Map::new();
    m.insert("key".into(), b64(key.as_bytes()));
    m.insert("value".into(), b64(value));
    if let Some(lease) = lease.filter(|l| *l != 0) {
        m.insert("lease".into(), int(lease));
    }
    Value::Object(m)
}

pub(super) fn range_body(key: &str, prefix: bool) -> Value {
    let mut m = Map::new();
    m.insert("key".into(), b64(key.as_bytes()));
    if prefix {
        m.insert("range_end".into(), b64(&prefix_end(key.as_bytes())));
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
