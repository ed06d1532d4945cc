//! Transactions as the transactional checkers see them: each `txn`
//! operation of a history becomes a [`Txn`] of micro-operations
//! (`append`, `r`, `w`) over interned keys and values.
//!
//! Elle's micro-ops: `[append k v]` appends `v` to the list at `k`; `[r k l]`
//! reads the list (list-append) or the value (rw-register) at `k`; `[w k v]`
//! writes `v` to the register `k`. An invocation carries `null` for what a
//! read will return; the `ok` completion carries what it returned. A `null`
//! read of a list is the empty list; of a register, its initial (never
//! written) state.

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use super::hash::FastMap;
use crate::history::{History, Operation, Outcome, compact};

/// The data type the transactions operate on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TxnModel {
    /// Lists that transactions append unique values to and read whole.
    ListAppend,
    /// Registers that transactions write unique values to and read.
    RwRegister,
}

impl TxnModel {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            TxnModel::ListAppend => "list-append",
            TxnModel::RwRegister => "rw-register",
        }
    }

    /// The model the history's micro-ops imply: list-append when a
    /// transaction appends, rw-register when one writes; `None` when the
    /// history is not made of `txn` operations with `append`/`r`/`w`
    /// micro-ops (Knossos's multi-register uses `read`/`write`).
    pub fn infer(history: &History) -> Option<TxnModel> {
        let mut appends = false;
        let mut writes = false;
        if history.ops.is_empty() {
            return None;
        }
        for op in &history.ops {
            if &*op.f != "txn" {
                return None;
            }
            for v in [&op.invoke_value, &op.value] {
                let Some(list) = v.as_array() else { continue };
                for m in list {
                    match m.as_array().and_then(|p| p.first()).and_then(Value::as_str) {
                        Some("append") => appends = true,
                        Some("w") => writes = true,
                        Some("r") => {}
                        _ => return None,
                    }
                }
            }
        }
        match (appends, writes) {
            (true, _) => Some(TxnModel::ListAppend),
            (false, true) => Some(TxnModel::RwRegister),
            // Reads only: either model gives the same verdicts.
            (false, false) => Some(TxnModel::ListAppend),
        }
    }
}

impl fmt::Display for TxnModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TxnModel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "list-append" | "append" => Ok(TxnModel::ListAppend),
            "rw-register" | "wr-register" => Ok(TxnModel::RwRegister),
            _ => Err(format!(
                "unknown transactional model `{s}` (expected list-append or rw-register)"
            )),
        }
    }
}

/// A value: integers as themselves, anything else interned (see
/// [`Values`]).
pub type Val = i64;

/// Integers below this are interned like strings, so that interned values
/// (numbered from `i64::MIN`) never collide with an integer.
const INTERNED_BELOW: i64 = i64::MIN / 2;

/// Interned keys and values, and the way back to JSON for witnesses.
#[derive(Debug, Default)]
pub struct Values {
    int_keys: FastMap<i64, u32>,
    other_keys: std::collections::HashMap<String, u32>,
    key_names: Vec<Value>,
    other_values: std::collections::HashMap<String, Val>,
    value_names: Vec<Value>,
}

impl Values {
    /// The id of key `k`.
    pub fn key(&mut self, k: &Value) -> u32 {
        let next = self.key_names.len() as u32;
        let id = match k.as_i64() {
            Some(i) => *self.int_keys.entry(i).or_insert(next),
            None => {
                let name = match k {
                    Value::String(s) => s.clone(),
                    other => compact(other),
                };
                *self.other_keys.entry(name).or_insert(next)
            }
        };
        if id == next {
            self.key_names.push(k.clone());
        }
        id
    }

    /// The value `v` as a [`Val`].
    pub fn value(&mut self, v: &Value) -> Val {
        if let Some(i) = v.as_i64() {
            if i >= INTERNED_BELOW {
                return i;
            }
        }
        let next = i64::MIN + self.value_names.len() as i64;
        let id = *self.other_values.entry(compact(v)).or_insert(next);
        if id == next {
            self.value_names.push(v.clone());
        }
        id
    }

    /// The JSON of key `k`.
    pub fn key_json(&self, k: u32) -> Value {
        self.key_names
            .get(k as usize)
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// The JSON of value `v`.
    pub fn value_json(&self, v: Val) -> Value {
        if v >= INTERNED_BELOW {
            Value::from(v)
        } else {
            self.value_names
                .get((v - i64::MIN) as usize)
                .cloned()
                .unwrap_or(Value::Null)
        }
    }

    /// Key `k` as text.
    pub fn key_text(&self, k: u32) -> String {
        match self.key_json(k) {
            Value::String(s) => s,
            other => compact(&other),
        }
    }

    /// Value `v` as text.
    pub fn value_text(&self, v: Val) -> String {
        match self.value_json(v) {
            Value::String(s) => s,
            other => compact(&other),
        }
    }

    /// Number of distinct keys.
    pub fn keys(&self) -> usize {
        self.key_names.len()
    }
}

/// One micro-operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mop {
    /// Append `value` to the list at `key`.
    Append {
        /// The key.
        key: u32,
        /// The value appended.
        value: Val,
    },
    /// Write `value` to the register `key`.
    Write {
        /// The key.
        key: u32,
        /// The value written.
        value: Val,
    },
    /// A list read: `len` values from `start` in [`Txns::lists`].
    ReadList {
        /// The key.
        key: u32,
        /// Where the list starts in the arena.
        start: u32,
        /// Its length.
        len: u32,
        /// The history said `null` (the empty list) rather than `[]`.
        null: bool,
    },
    /// A register read: `None` is the initial state.
    ReadRegister {
        /// The key.
        key: u32,
        /// The value read.
        value: Option<Val>,
    },
    /// A read whose result is unknown (the transaction did not complete).
    ReadUnknown {
        /// The key.
        key: u32,
    },
}

impl Mop {
    /// The key the micro-op touches.
    pub fn key(&self) -> u32 {
        match *self {
            Mop::Append { key, .. }
            | Mop::Write { key, .. }
            | Mop::ReadList { key, .. }
            | Mop::ReadRegister { key, .. }
            | Mop::ReadUnknown { key } => key,
        }
    }

    /// True for appends and writes.
    pub fn is_write(&self) -> bool {
        matches!(self, Mop::Append { .. } | Mop::Write { .. })
    }
}

/// What is known of a transaction's fate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// `ok`: committed, its reads are known.
    Committed,
    /// `info` or never completed: may have committed; its reads are unknown.
    Indefinite,
    /// `fail`: aborted, none of its writes happened.
    Aborted,
}

/// One transaction: its micro-ops and what witnesses and the real-time
/// order need of its operation.
#[derive(Clone, Debug)]
pub struct Txn {
    /// Its operation in [`History::ops`] (operations are numbered in order
    /// of invocation).
    pub op: u32,
    /// The client process (the session).
    pub process: i64,
    /// Committed, indefinite or aborted.
    pub status: Status,
    /// Its micro-ops: `mops[start..end]` of [`Txns::mops`].
    pub start: u32,
    /// See `start`.
    pub end: u32,
    /// The `index` of its invocation (its position when the file had none).
    pub index: u64,
    /// Source line of the invocation.
    pub invoke_line: usize,
    /// Source line of the completion, or of the invocation when it never
    /// completed.
    pub line: usize,
    /// Position of the invocation among all events (real-time order).
    pub invoke_pos: usize,
    /// Position of the completion among all events, [`NEVER`] when it never
    /// completed.
    pub complete_pos: usize,
}

/// [`Txn::complete_pos`] of a transaction that never completed.
pub const NEVER: usize = usize::MAX;

/// The transactions of a history.
#[derive(Debug, Default)]
pub struct Txns {
    /// One per `txn` operation, in order of invocation.
    pub txns: Vec<Txn>,
    /// Every micro-op, transaction after transaction.
    pub mops: Vec<Mop>,
    /// Every list read's values, one after the other.
    pub lists: Vec<Val>,
    /// Interned keys and values.
    pub values: Values,
}

/// A history that the transactional checkers cannot read: the operation's
/// source line and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnInputError {
    /// Source line.
    pub line: usize,
    /// Why.
    pub reason: String,
}

impl Txns {
    /// The micro-ops of transaction `t`.
    pub fn mops(&self, t: usize) -> &[Mop] {
        let x = &self.txns[t];
        &self.mops[x.start as usize..x.end as usize]
    }

    /// Transaction `t`'s micro-ops as JSON, as the history gave them: the
    /// completion's for a committed transaction, the invocation's (reads
    /// `null`) otherwise.
    pub fn value_json(&self, t: usize) -> Value {
        let v = &self.values;
        let mop = |f: &str, key: u32, x: Value| Value::Array(vec![f.into(), v.key_json(key), x]);
        Value::Array(
            self.mops(t)
                .iter()
                .map(|m| match *m {
                    Mop::Append { key, value } => mop("append", key, v.value_json(value)),
                    Mop::Write { key, value } => mop("w", key, v.value_json(value)),
                    Mop::ReadList {
                        key, null: true, ..
                    } => mop("r", key, Value::Null),
                    Mop::ReadList {
                        key, start, len, ..
                    } => mop(
                        "r",
                        key,
                        self.list(start, len)
                            .iter()
                            .map(|&x| v.value_json(x))
                            .collect(),
                    ),
                    Mop::ReadRegister { key, value } => {
                        mop("r", key, value.map_or(Value::Null, |x| v.value_json(x)))
                    }
                    Mop::ReadUnknown { key } => mop("r", key, Value::Null),
                })
                .collect(),
        )
    }

    /// The values of a list read.
    pub fn list(&self, start: u32, len: u32) -> &[Val] {
        &self.lists[start as usize..(start + len) as usize]
    }

    /// Reads the `txn` operations of `history` for `model`.
    pub fn read(history: &History, model: TxnModel) -> Result<Txns, TxnInputError> {
        let mut out = Txns::default();
        out.txns.reserve(history.ops.len());
        for op in &history.ops {
            out.push(op, model)?;
        }
        Ok(out)
    }

    fn push(&mut self, op: &Operation, model: TxnModel) -> Result<(), TxnInputError> {
        let line = match op.outcome {
            Outcome::Ok | Outcome::Fail | Outcome::Info => {
                op.complete_line().unwrap_or(op.invoke_line())
            }
            Outcome::Pending => op.invoke_line(),
        };
        let err = |reason: String| TxnInputError { line, reason };
        if &*op.f != "txn" {
            return Err(err(format!(
                "the {model} checker reads `txn` operations only, not `{}`",
                op.f
            )));
        }
        let status = match op.outcome {
            Outcome::Ok => Status::Committed,
            Outcome::Fail => Status::Aborted,
            Outcome::Info | Outcome::Pending => Status::Indefinite,
        };
        // The completion says what an ok transaction read; otherwise the
        // invocation says what it meant to do.
        let value = if status == Status::Committed {
            &op.value
        } else {
            &op.invoke_value
        };
        let micros = value.as_array().ok_or_else(|| {
            err(format!(
                "a txn's value must be a list of micro-ops such as [\"append\", \"x\", 1], got {}",
                compact(value)
            ))
        })?;
        if status == Status::Committed {
            if let Some(inv) = op.invoke_value.as_array() {
                if inv.len() != micros.len() {
                    return Err(err(format!(
                        "the ok completion has {} micro-ops but the invocation (line {}) had {}",
                        micros.len(),
                        op.invoke_line(),
                        inv.len()
                    )));
                }
            }
        }
        let start = self.mops.len() as u32;
        for m in micros {
            let parts = match m.as_array() {
                Some(p) if p.len() == 3 => p,
                _ => {
                    return Err(err(format!(
                        "a micro-op must be [f key value], got {}",
                        compact(m)
                    )));
                }
            };
            let key = self.values.key(&parts[1]);
            let v = &parts[2];
            let mop = match (parts[0].as_str(), model) {
                (Some("append"), TxnModel::ListAppend) => Mop::Append {
                    key,
                    value: self.plain_value(v, m, line)?,
                },
                (Some("w"), TxnModel::RwRegister) => Mop::Write {
                    key,
                    value: self.plain_value(v, m, line)?,
                },
                (Some("r"), _) if status != Status::Committed => Mop::ReadUnknown { key },
                (Some("r"), TxnModel::ListAppend) => match v {
                    Value::Null => Mop::ReadList {
                        key,
                        start: self.lists.len() as u32,
                        len: 0,
                        null: true,
                    },
                    Value::Array(items) => {
                        let start = self.lists.len() as u32;
                        for x in items {
                            let val = self.plain_value(x, m, line)?;
                            self.lists.push(val);
                        }
                        Mop::ReadList {
                            key,
                            start,
                            len: items.len() as u32,
                            null: false,
                        }
                    }
                    other => {
                        return Err(err(format!(
                            "a list-append read returns a list or null, got {} in {}",
                            compact(other),
                            compact(m)
                        )));
                    }
                },
                (Some("r"), TxnModel::RwRegister) => Mop::ReadRegister {
                    key,
                    value: match v {
                        Value::Null => None,
                        x => Some(self.plain_value(x, m, line)?),
                    },
                },
                (Some(f @ ("append" | "w")), model) => {
                    return Err(err(format!(
                        "micro-op `{f}` does not belong to the {model} model ({}); \
                         list-append uses append and r, rw-register w and r",
                        compact(m)
                    )));
                }
                _ => {
                    return Err(err(format!(
                        "unknown micro-op {} (expected append, r or w)",
                        compact(m)
                    )));
                }
            };
            self.mops.push(mop);
        }
        self.txns.push(Txn {
            op: op.id as u32,
            process: op.process,
            status,
            start,
            end: self.mops.len() as u32,
            index: op.invoke_index,
            invoke_line: op.invoke_line(),
            line: op.complete_line().unwrap_or(op.invoke_line()),
            invoke_pos: op.invoke_pos(),
            complete_pos: op.complete_pos().unwrap_or(NEVER),
        });
        Ok(())
    }

    /// A written or read value: a scalar (a list or object cannot be told
    /// apart from the list a read returns).
    fn plain_value(&mut self, v: &Value, m: &Value, line: usize) -> Result<Val, TxnInputError> {
        match v {
            Value::Number(_) | Value::String(_) | Value::Bool(_) => Ok(self.values.value(v)),
            other => Err(TxnInputError {
                line,
                reason: format!(
                    "written values must be numbers or strings, got {} in {}",
                    compact(other),
                    compact(m)
                ),
            }),
        }
    }
}
