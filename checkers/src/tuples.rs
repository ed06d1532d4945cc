//! Keys carried in values: Jepsen's *independent* histories write
//! `:value [key value]` (a read is invoked with `[key nil]` and completes
//! with `[key value]`) instead of a separate `key` field, as the causal
//! corpus does.
//!
//! # The rule
//!
//! With [`KeyInValue::Auto`] (the default of `faultline check`), a history is
//! read this way when **no operation has a `key` field, every operation is
//! a read or a write, and every value is a two-element array whose first
//! element is a string or an integer** (the invocation's, and the
//! completion's when it has one), with the same first element at invocation
//! and completion. An operation that did not complete `ok` and carries no
//! value at all (a truncated last line, as at the end of the corpus's
//! `tiny_history.edn`) is let through without a key: it constrains nothing.
//! Then the first element is the key and the second the value, for every
//! checker. A register whose values really are pairs never
//! has reads invoked with a pair, so the rule does not misfire on histories
//! with invocations; for a history of completions only that writes and
//! reads pairs as plain values, pass `--key-in-value no`.
//! [`KeyInValue::Yes`] requires the form and names the first line that does
//! not have it; [`KeyInValue::No`] never applies it.

use std::str::FromStr;

use serde_json::Value;

use crate::error::ModelError;
use crate::history::{History, Operation, Outcome};
use crate::rw::{is_read, is_write};

/// Whether keys are taken from `[key value]` values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeyInValue {
    /// When the whole history has that form (see the module documentation).
    #[default]
    Auto,
    /// Always: a history without that form is an error.
    Yes,
    /// Never.
    No,
}

impl FromStr for KeyInValue {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(KeyInValue::Auto),
            "yes" | "true" | "on" => Ok(KeyInValue::Yes),
            "no" | "false" | "off" => Ok(KeyInValue::No),
            _ => Err(format!("`{s}`: expected auto, yes or no")),
        }
    }
}

fn key_of_pair(v: &Value) -> Option<&Value> {
    match v {
        Value::Array(a) if a.len() == 2 && (a[0].is_string() || a[0].is_i64() || a[0].is_u64()) => {
            Some(&a[0])
        }
        _ => None,
    }
}

/// Why `op` does not have the `[key value]` form, if it does not.
fn misfit(op: &Operation) -> Option<String> {
    if op.key.is_some() {
        return Some("it has a `key` field".into());
    }
    if !is_read(&op.f) && !is_write(&op.f) {
        return Some(format!("`{}` is neither a read nor a write", op.f));
    }
    if op.outcome != Outcome::Ok && op.invoke_value.is_null() && op.value.is_null() {
        return None;
    }
    let Some(k) = key_of_pair(&op.invoke_value) else {
        return Some("its value is not a [key value] pair".into());
    };
    let completed = op.complete_pos().is_some() && op.complete_pos() != Some(op.invoke_pos());
    if completed && (op.outcome == Outcome::Ok || !op.value.is_null()) {
        match key_of_pair(&op.value) {
            None => return Some("its completion's value is not a [key value] pair".into()),
            Some(k2) if k2 != k => {
                return Some(format!(
                    "it is invoked on key {k} but completes on key {k2}"
                ));
            }
            Some(_) => {}
        }
    }
    None
}

/// Takes keys from `[key value]` values when `mode` says so. Returns
/// whether it did.
pub fn apply(history: &mut History, mode: KeyInValue) -> Result<bool, ModelError> {
    if mode == KeyInValue::No || history.ops.is_empty() {
        return Ok(false);
    }
    for op in &history.ops {
        if let Some(why) = misfit(op) {
            if mode == KeyInValue::Auto {
                return Ok(false);
            }
            return Err(ModelError {
                line: op.complete_line().unwrap_or(op.invoke_line()),
                reason: format!("--key-in-value yes: {why}"),
            });
        }
    }
    let second = |v: &mut Value| -> Option<Value> {
        match v {
            Value::Array(a) if a.len() == 2 => {
                let val = a.pop();
                let key = a.pop();
                *v = val.unwrap_or(Value::Null);
                key
            }
            _ => None,
        }
    };
    for op in &mut history.ops {
        let key = second(&mut op.invoke_value);
        second(&mut op.value);
        op.key = key.map(std::sync::Arc::new);
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::edn;
    use crate::history::CompletionsMode;

    fn edn_history(text: &str) -> History {
        edn::read_with("t.edn", text, false, CompletionsMode::Auto).unwrap()
    }

    #[test]
    fn independent_tuples_become_keys() {
        let mut h = edn_history(
            "{:type :invoke, :f :write, :value [x 1], :process 0}\n\
             {:type :ok, :f :write, :value [x 1], :process 0}\n\
             {:type :invoke, :f :read, :value [4 nil], :process 1}\n\
             {:type :ok, :f :read, :value [4 2], :process 1}\n",
        );
        assert!(apply(&mut h, KeyInValue::Auto).unwrap());
        assert_eq!(h.ops[0].key.as_deref(), Some(&Value::String("x".into())));
        assert_eq!(h.ops[0].invoke_value, serde_json::json!(1));
        assert_eq!(h.ops[1].key.as_deref(), Some(&serde_json::json!(4)));
        assert_eq!(h.ops[1].invoke_value, Value::Null);
        assert_eq!(h.ops[1].value, serde_json::json!(2));
        // A truncated last line: an invocation without value.
        let mut h = edn_history(
            "{:type :invoke, :f :write, :value [x 1], :process 0}\n\
             {:type :ok, :f :write, :value [x 1], :process 0}\n\
             {:type :invoke, :f :write, :vlue [x 2], :process 1}\n",
        );
        assert!(apply(&mut h, KeyInValue::Auto).unwrap());
        assert_eq!(
            (&h.ops[1].key, &h.ops[1].invoke_value),
            (&None, &Value::Null)
        );
        // Completions only.
        let mut h = edn_history(
            "{:type :ok, :f :write, :value [x 1], :process 0}\n\
             {:type :ok, :f :read, :value [x 1], :process 1}\n",
        );
        assert!(apply(&mut h, KeyInValue::Auto).unwrap());
        assert_eq!(h.ops[1].value, serde_json::json!(1));
    }

    #[test]
    fn other_histories_are_left_alone_or_rejected() {
        let text = "{:type :invoke, :f :cas, :value [1 2], :process 0}\n\
                    {:type :ok, :f :cas, :value [1 2], :process 0}\n";
        let mut h = edn_history(text);
        assert!(!apply(&mut h, KeyInValue::Auto).unwrap());
        assert_eq!(h.ops[0].key, None);
        let e = apply(&mut h, KeyInValue::Yes).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.reason.contains("`cas` is neither"), "{}", e.reason);
        // A plain register, and a mismatched key.
        let mut h = edn_history(
            "{:type :invoke, :f :read, :value nil, :process 0}\n\
             {:type :ok, :f :read, :value [1 2], :process 0}\n",
        );
        assert!(!apply(&mut h, KeyInValue::Auto).unwrap());
        let mut h = edn_history(
            "{:type :invoke, :f :read, :value [x nil], :process 0}\n\
             {:type :ok, :f :read, :value [y 2], :process 0}\n",
        );
        assert!(!apply(&mut h, KeyInValue::Auto).unwrap());
        assert!(
            apply(&mut h, KeyInValue::Yes)
                .unwrap_err()
                .reason
                .contains("completes on key")
        );
        assert!(!apply(&mut h, KeyInValue::No).unwrap());
    }
}
