//! Transactions as stores perform them: an [`Operation`](super::Operation)
//! with `f` = `txn` carries a list of micro-ops (`docs/transactions.md`,
//! "Running transactions"); a store runs them in order in one transaction
//! and answers `ok` with the same list, each read's value filled in.
//!
//! This file is store-neutral: it parses the micro-ops once, into
//! [`MicroOp`]s, and builds the completed list. Each store turns the
//! micro-ops into its own statements (PostgreSQL: `postgres_txn.rs`,
//! Galera: `galera_txn.rs`).

use serde_json::Value;

use super::Completion;
use super::options::Choice;

/// `isolation=read-committed|repeatable-read|serializable`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    /// READ COMMITTED: every statement sees what committed before it.
    ReadCommitted,
    /// REPEATABLE READ (PostgreSQL: snapshot isolation; InnoDB: snapshot
    /// reads, but writes act on the latest version).
    RepeatableRead,
    /// SERIALIZABLE (PostgreSQL: SSI; InnoDB: reads take shared locks).
    Serializable,
}

impl Choice for Isolation {
    const CHOICES: &'static [(&'static str, Isolation)] = &[
        ("read-committed", Isolation::ReadCommitted),
        ("repeatable-read", Isolation::RepeatableRead),
        ("serializable", Isolation::Serializable),
    ];
}

impl Isolation {
    /// The level as SQL says it (`SET TRANSACTION ISOLATION LEVEL ..`).
    pub fn sql(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "READ COMMITTED",
            Isolation::RepeatableRead => "REPEATABLE READ",
            Isolation::Serializable => "SERIALIZABLE",
        }
    }
}

/// One micro-op of a transaction.
#[derive(Clone, Debug, PartialEq)]
pub enum MicroOp {
    /// `["r", k, null]`: read `k` (null when absent).
    Read(Value),
    /// `["append", k, v]`: append `v` to the list at `k` (absent: empty).
    Append(Value, Value),
    /// `["w", k, v]`: write `v` to `k`.
    Write(Value, Value),
    /// `["add", k, d]`: add the integer `d` to the number at `k` (absent:
    /// 0); a store that forbids negative numbers fails the transaction
    /// instead of going below 0.
    Add(Value, i64),
    /// `["book", k, c]`: if `k` is absent or null, write `c`; otherwise the
    /// transaction fails with the error `taken`.
    Book(Value, Value),
}

impl MicroOp {
    /// The key.
    pub fn key(&self) -> &Value {
        match self {
            MicroOp::Read(k)
            | MicroOp::Append(k, _)
            | MicroOp::Write(k, _)
            | MicroOp::Add(k, _)
            | MicroOp::Book(k, _) => k,
        }
    }
}

/// The key as a store keeps it: a string as itself, anything else as its
/// JSON text (key 3 is `"3"`).
pub fn key_text(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Parses a transaction's value; the error says which micro-op is wrong.
pub fn parse(value: &Value) -> Result<Vec<MicroOp>, String> {
    let list = value
        .as_array()
        .ok_or_else(|| format!("a txn's value is a list of micro-ops, not {value}"))?;
    list.iter()
        .enumerate()
        .map(|(i, m)| {
            let bad = || {
                format!(
                    "micro-op {i} {m}: expected [f, key, value] with f r, append, w, add or book"
                )
            };
            let [f, k, v] = m.as_array().map(|a| a.as_slice()).ok_or_else(bad)? else {
                return Err(bad());
            };
            if !(k.is_string() || k.is_i64() || k.is_u64()) {
                return Err(bad());
            }
            let k = k.clone();
            Ok(match f.as_str() {
                Some("r") => MicroOp::Read(k),
                Some("append") => MicroOp::Append(k, v.clone()),
                Some("w") => MicroOp::Write(k, v.clone()),
                Some("add") => MicroOp::Add(k, v.as_i64().ok_or_else(bad)?),
                Some("book") => MicroOp::Book(k, v.clone()),
                _ => return Err(bad()),
            })
        })
        .collect()
}

/// The `ok` completion of the transaction `sent`: its micro-ops with the
/// values read (`reads[i]` for micro-op `i`; `None` keeps what was sent).
pub fn completed(sent: &Value, reads: &[Option<Value>]) -> Completion {
    let mut out = sent.clone();
    if let Some(list) = out.as_array_mut() {
        for (m, r) in list.iter_mut().zip(reads) {
            if let (Some(r), Some(m)) = (r, m.as_array_mut())
                && let Some(slot) = m.get_mut(2)
            {
                *slot = r.clone();
            }
        }
    }
    Completion::Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_the_micro_ops_and_fills_in_reads() {
        let t = json!([
            ["r", 1, null],
            ["append", "x", 2],
            ["w", 3, 4],
            ["add", 0, -5],
            ["book", 7, 9]
        ]);
        let m = parse(&t).expect("valid");
        assert_eq!(
            m,
            vec![
                MicroOp::Read(json!(1)),
                MicroOp::Append(json!("x"), json!(2)),
                MicroOp::Write(json!(3), json!(4)),
                MicroOp::Add(json!(0), -5),
                MicroOp::Book(json!(7), json!(9)),
            ]
        );
        assert_eq!(key_text(m[1].key()), "x");
        assert_eq!(key_text(m[0].key()), "1");
        let c = completed(&t, &[Some(json!([1, 2])), None, None, None, None]);
        assert_eq!(
            c,
            Completion::Ok(json!([
                ["r", 1, [1, 2]],
                ["append", "x", 2],
                ["w", 3, 4],
                ["add", 0, -5],
                ["book", 7, 9]
            ]))
        );
        for bad in [
            json!("x"),
            json!([["cas", 1, 2]]),
            json!([["r", 1]]),
            json!([["add", 1, "x"]]),
            json!([["r", [1], null]]),
        ] {
            assert!(parse(&bad).is_err(), "{bad}");
        }
    }
}
