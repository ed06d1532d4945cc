//! The data a node holds and the deterministic operations on it.
//!
//! A mutation is first *evaluated* against the current state, which either
//! refuses it (cas mismatch, wrong type) or turns it into an [`Op`]; the op is
//! what is replicated, and applying the same ops in the same order gives the
//! same state on every node.

use std::cmp::Ordering;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::protocol::Func;

/// The key-value map of a node.
pub(crate) type Data = HashMap<String, Value>;

/// A replicated mutation, already checked against the state it applies to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum Op {
    /// Set the key to this value (`write`, and a successful `cas`).
    Set(Value),
    /// Insert the element into the sorted set at the key.
    Add(Value),
    /// Add the delta to the integer at the key.
    Incr(i64),
}

/// Why a mutation is refused (nothing was applied).
#[derive(Debug, PartialEq)]
pub(crate) enum Refusal {
    /// `cas` whose expected value is not the current one.
    CasMismatch,
    /// The key holds a value of the wrong type, or the counter would
    /// overflow.
    Type(String),
}

impl Refusal {
    pub(crate) fn message(&self) -> String {
        match self {
            Refusal::CasMismatch => "cas-mismatch".to_string(),
            Refusal::Type(m) => format!("bad request: {m}"),
        }
    }
}

/// Evaluates a mutation (`f` one of write, cas, add, incr; `value` already
/// checked by the parser) against the current value of `key`.
pub(crate) fn evaluate(
    current: Option<&Value>,
    key: &str,
    f: Func,
    value: &Value,
) -> Result<Op, Refusal> {
    match f {
        Func::Write => Ok(Op::Set(value.clone())),
        Func::Cas => {
            let (expected, new) = match value {
                Value::Array(a) if a.len() == 2 => (&a[0], &a[1]),
                _ => return Err(Refusal::Type("cas needs [expected, new]".into())),
            };
            let cur = current.unwrap_or(&Value::Null);
            if cur == expected {
                Ok(Op::Set(new.clone()))
            } else {
                Err(Refusal::CasMismatch)
            }
        }
        Func::Add => match current {
            None | Some(Value::Null) | Some(Value::Array(_)) => Ok(Op::Add(value.clone())),
            Some(_) => Err(Refusal::Type(format!(
                "add: key {key:?} holds a value that is not a set"
            ))),
        },
        Func::Incr => {
            let delta = value
                .as_i64()
                .ok_or_else(|| Refusal::Type("incr needs an integer delta".into()))?;
            let base = match current {
                None | Some(Value::Null) => 0,
                Some(v) => v.as_i64().ok_or_else(|| {
                    Refusal::Type(format!("incr: key {key:?} holds a non-integer value"))
                })?,
            };
            base.checked_add(delta)
                .ok_or_else(|| Refusal::Type(format!("incr: key {key:?} would overflow")))?;
            Ok(Op::Incr(delta))
        }
        Func::Read | Func::Ping | Func::Dump => Err(Refusal::Type("not a mutation".to_string())),
    }
}

/// Applies an op to a map (replicas apply the primary's ops blindly: the
/// primary evaluated them against the same state).
pub(crate) fn apply(data: &mut Data, key: &str, op: &Op) {
    match op {
        Op::Set(v) => {
            if let Some(slot) = data.get_mut(key) {
                *slot = v.clone();
            } else {
                data.insert(key.to_string(), v.clone());
            }
        }
        Op::Add(x) => {
            let slot = match data.get_mut(key) {
                Some(s) => s,
                None => data.entry(key.to_string()).or_insert(Value::Null),
            };
            set_insert(slot, x);
        }
        Op::Incr(d) => {
            let slot = match data.get_mut(key) {
                Some(s) => s,
                None => data.entry(key.to_string()).or_insert(Value::Null),
            };
            let base = slot.as_i64().unwrap_or(0);
            *slot = Value::from(base.saturating_add(*d));
        }
    }
}

/// Inserts `x` into the sorted, deduplicated array `slot` (null counts as
/// the empty set; any other non-array is replaced).
pub(crate) fn set_insert(slot: &mut Value, x: &Value) {
    if !slot.is_array() {
        *slot = Value::Array(Vec::new());
    }
    if let Value::Array(a) = slot {
        // Fast path: elements usually arrive in increasing order.
        match a.last() {
            None => a.push(x.clone()),
            Some(last) => match cmp_json(last, x) {
                Ordering::Less => a.push(x.clone()),
                Ordering::Equal => {}
                Ordering::Greater => {
                    if let Err(i) = a.binary_search_by(|e| cmp_json(e, x)) {
                        a.insert(i, x.clone());
                    }
                }
            },
        }
    }
}

fn rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

/// A total order on JSON values: null < booleans < numbers < strings <
/// arrays < objects; numbers by value, strings by bytes, arrays and objects
/// element by element.
pub(crate) fn cmp_json(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                x.cmp(&y)
            } else if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                x.cmp(&y)
            } else {
                let x = x.as_f64().unwrap_or(f64::NAN);
                let y = y.as_f64().unwrap_or(f64::NAN);
                x.total_cmp(&y)
            }
        }
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (p, q) in x.iter().zip(y) {
                let o = cmp_json(p, q);
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            for ((kp, p), (kq, q)) in x.iter().zip(y) {
                let o = kp.cmp(kq).then_with(|| cmp_json(p, q));
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        _ => rank(a).cmp(&rank(b)),
    }
}

/// The whole map as one JSON object (for `dump`), keys in sorted order.
pub(crate) fn to_json<'a>(entries: impl Iterator<Item = (&'a String, &'a Value)>) -> Value {
    let mut v: Vec<(&String, &Value)> = entries.collect();
    v.sort_by(|a, b| a.0.cmp(b.0));
    Value::Object(v.into_iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn set_add_sorts_and_dedups() {
        let mut d = Data::new();
        for x in [json!(3), json!(1), json!(2), json!(3), json!(1), json!(10)] {
            apply(&mut d, "s", &Op::Add(x));
        }
        assert_eq!(d["s"], json!([1, 2, 3, 10]));
        apply(&mut d, "t", &Op::Add(json!("b")));
        apply(&mut d, "t", &Op::Add(json!(1)));
        assert_eq!(d["t"], json!([1, "b"]));
    }

    #[test]
    fn incr_sums_and_checks_types() {
        let mut d = Data::new();
        let op = evaluate(None, "c", Func::Incr, &json!(5)).unwrap();
        apply(&mut d, "c", &op);
        let op = evaluate(d.get("c"), "c", Func::Incr, &json!(-2)).unwrap();
        apply(&mut d, "c", &op);
        assert_eq!(d["c"], json!(3));
        d.insert("s".into(), json!("x"));
        assert!(matches!(
            evaluate(d.get("s"), "s", Func::Incr, &json!(1)),
            Err(Refusal::Type(_))
        ));
        d.insert("m".into(), json!(i64::MAX));
        assert!(evaluate(d.get("m"), "m", Func::Incr, &json!(1)).is_err());
    }

    #[test]
    fn cas() {
        assert_eq!(
            evaluate(None, "x", Func::Cas, &json!([null, 1])),
            Ok(Op::Set(json!(1)))
        );
        assert_eq!(
            evaluate(Some(&json!(2)), "x", Func::Cas, &json!([1, 3])),
            Err(Refusal::CasMismatch)
        );
        assert_eq!(
            evaluate(Some(&json!(2)), "x", Func::Cas, &json!([2, 3])),
            Ok(Op::Set(json!(3)))
        );
    }

    #[test]
    fn order_is_total() {
        let vals = [
            json!(null),
            json!(false),
            json!(-1),
            json!(1.5),
            json!(u64::MAX),
            json!("a"),
            json!([1]),
            json!({"a": 1}),
        ];
        for (i, a) in vals.iter().enumerate() {
            for (j, b) in vals.iter().enumerate() {
                assert_eq!(cmp_json(a, b), i.cmp(&j), "{a} vs {b}");
            }
        }
    }
}
