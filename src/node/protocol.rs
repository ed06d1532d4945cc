//! The client protocol of `faultline node`: TCP, one JSON object per line
//! each way, replies in request order per connection. See
//! `docs/node-protocol.md` for the full description.
//!
//! ```text
//! -> {"id":1,"f":"write","key":"x","value":4}
//! <- {"id":1,"type":"ok","value":4}
//! -> {"id":2,"f":"cas","key":"x","value":[3,5]}
//! <- {"id":2,"type":"fail","value":[3,5],"error":"cas-mismatch"}
//! ```

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One request, as sent by a client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Chosen by the client, echoed in the reply.
    pub id: u64,
    /// `read`, `write`, `cas`, `add`, `incr`, `ping` or `dump`.
    pub f: String,
    /// The key (absent for `ping` and `dump`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    /// `null` for reads; the value to write; `[expected, new]` for `cas`;
    /// the element for `add`; the integer delta for `incr`.
    #[serde(default)]
    pub value: Value,
}

/// The outcome class of a reply, as in a Jepsen history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplyType {
    /// Took effect (or, for a read, the value read).
    Ok,
    /// Certainly did not take effect.
    Fail,
    /// Unknown: it may take effect at any later time, or never.
    Info,
}

impl ReplyType {
    /// `"ok"`, `"fail"` or `"info"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplyType::Ok => "ok",
            ReplyType::Fail => "fail",
            ReplyType::Info => "info",
        }
    }
}

/// One reply, as sent by a node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// The request's id (0 when the request was so malformed that its id
    /// could not be read).
    pub id: u64,
    /// `ok`, `fail` or `info`.
    #[serde(rename = "type")]
    pub kind: ReplyType,
    /// The value read (`ok` read), the request's value (other `ok`s and most
    /// `fail`/`info` replies), the node name (`ping`), the map (`dump`).
    #[serde(default)]
    pub value: Value,
    /// Why it is not `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Reply {
    /// An `ok` reply.
    pub fn ok(id: u64, value: Value) -> Reply {
        Reply {
            id,
            kind: ReplyType::Ok,
            value,
            error: None,
        }
    }

    /// A `fail` reply (certainly not applied).
    pub fn fail(id: u64, value: Value, error: impl Into<String>) -> Reply {
        Reply {
            id,
            kind: ReplyType::Fail,
            value,
            error: Some(error.into()),
        }
    }

    /// An `info` reply (unknown outcome).
    pub fn info(id: u64, value: Value, error: impl Into<String>) -> Reply {
        Reply {
            id,
            kind: ReplyType::Info,
            value,
            error: Some(error.into()),
        }
    }

    /// `true` for `ok`.
    pub fn is_ok(&self) -> bool {
        self.kind == ReplyType::Ok
    }
}

/// The operations a request can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Func {
    Read,
    Write,
    Cas,
    Add,
    Incr,
    Ping,
    Dump,
}

impl Func {
    pub(crate) fn parse(f: &str) -> Option<Func> {
        Some(match f {
            "read" => Func::Read,
            "write" => Func::Write,
            "cas" => Func::Cas,
            "add" => Func::Add,
            "incr" => Func::Incr,
            "ping" => Func::Ping,
            "dump" => Func::Dump,
            _ => return None,
        })
    }
}

/// Parses one request line. On error, returns the `fail` reply to send
/// (with the id when it could be read).
pub(crate) fn parse_request(line: &[u8]) -> Result<(Request, Func), Box<Reply>> {
    let req: Request = match serde_json::from_slice(line) {
        Ok(r) => r,
        Err(e) => {
            let id = serde_json::from_slice::<Value>(line)
                .ok()
                .and_then(|v| v.get("id").and_then(Value::as_u64))
                .unwrap_or(0);
            return Err(Box::new(Reply::fail(
                id,
                Value::Null,
                format!("bad request: {e}"),
            )));
        }
    };
    let Some(func) = Func::parse(&req.f) else {
        return Err(Box::new(Reply::fail(
            req.id,
            req.value,
            format!(
                "bad request: unknown f {:?} (expected read, write, cas, add, incr, ping or dump)",
                req.f
            ),
        )));
    };
    if matches!(
        func,
        Func::Read | Func::Write | Func::Cas | Func::Add | Func::Incr
    ) && req.key.is_empty()
    {
        return Err(Box::new(Reply::fail(
            req.id,
            req.value,
            format!("bad request: {} needs a non-empty \"key\"", req.f),
        )));
    }
    let bad = match func {
        Func::Cas if !matches!(&req.value, Value::Array(a) if a.len() == 2) => {
            Some("bad request: cas needs \"value\": [expected, new]")
        }
        Func::Incr if req.value.as_i64().is_none() => {
            Some("bad request: incr needs an integer \"value\" (the delta)")
        }
        _ => None,
    };
    if let Some(msg) = bad {
        return Err(Box::new(Reply::fail(req.id, req.value, msg)));
    }
    Ok((req, func))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wire_shapes() {
        let r = Reply::ok(3, json!(4));
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"id":3,"type":"ok","value":4}"#
        );
        let r = Reply::fail(3, json!([1, 2]), "cas-mismatch");
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"id":3,"type":"fail","value":[1,2],"error":"cas-mismatch"}"#
        );
        let q: Request = serde_json::from_str(r#"{"id":1,"f":"ping"}"#).unwrap();
        assert_eq!(q.value, Value::Null);
        assert_eq!(
            serde_json::to_string(&q).unwrap(),
            r#"{"id":1,"f":"ping","value":null}"#
        );
    }

    #[test]
    fn bad_requests() {
        let e = parse_request(b"nonsense").unwrap_err();
        assert_eq!((e.id, e.kind), (0, ReplyType::Fail));
        let e = parse_request(br#"{"id":7,"f":"frob","key":"x"}"#).unwrap_err();
        assert_eq!(e.id, 7);
        assert!(e.error.unwrap().contains("unknown f"));
        let e = parse_request(br#"{"id":7,"f":"cas","key":"x","value":3}"#).unwrap_err();
        assert!(e.error.unwrap().contains("cas needs"));
        let e = parse_request(br#"{"id":7,"f":"incr","key":"x","value":"a"}"#).unwrap_err();
        assert!(e.error.unwrap().contains("integer"));
        let e = parse_request(br#"{"id":7,"f":"read"}"#).unwrap_err();
        assert!(e.error.unwrap().contains("key"));
        let e = parse_request(br#"{"id":"x","f":"read","key":"k"}"#).unwrap_err();
        assert_eq!(e.id, 0);
        assert!(parse_request(br#"{"id":1,"f":"read","key":"k","value":null}"#).is_ok());
    }
}
