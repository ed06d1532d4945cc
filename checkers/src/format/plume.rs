//! The text format of Plume, PolySI and IsoVista: one micro-operation a
//! line, committed transactions only.
//!
//! ```text
//! w(4283,1,0,0)
//! r(9119,0,0,0)
//! ```
//!
//! `r(KEY,VALUE,SESSION,TXN)` reads `VALUE` from register `KEY`;
//! `w(KEY,VALUE,SESSION,TXN)` writes it. The lines of a transaction share
//! its `SESSION` and `TXN` ids; a transaction's micro-ops are in file order,
//! and a session's transactions too (the process order). Value `0` is the
//! initial state of every key, so `r(k,0,..)` reads the initial state
//! (`null`), and writing `0` is an error. Every transaction committed; the
//! format records no real-time order.
//!
//! Each transaction becomes an `invoke` and an `ok` event of process
//! `SESSION`, function `txn`, with `["r", k, v]` / `["w", k, v]` micro-ops
//! (rw-register), at the line of its first micro-op.

use serde_json::{Map, Value, json};

use crate::error::{HistoryError, HistoryErrorKind};
use crate::history::{Event, EventType, History, HistoryBuilder, Process, Semantics};

/// True when `line` looks like a Plume micro-op (`r(` or `w(`).
pub fn looks_like(line: &str) -> bool {
    let l = line.trim_start();
    (l.starts_with("r(") || l.starts_with("w(")) && l.trim_end().ends_with(')')
}

fn number(field: &str) -> Option<i64> {
    field.trim().parse().ok()
}

struct PendingTxn {
    line: usize,
    session: i64,
    id: i64,
    invoke: Vec<Value>,
    done: Vec<Value>,
}

/// Reads a Plume-format history.
pub fn read(source: &str, text: &str) -> Result<History, HistoryError> {
    let mut b = HistoryBuilder::new(source, Semantics::default());
    let err = |line: usize, msg: String| HistoryError {
        file: source.to_string(),
        line,
        kind: HistoryErrorKind::Syntax(msg),
    };
    let mut txns: Vec<PendingTxn> = Vec::new();
    let mut index: std::collections::HashMap<(i64, i64), usize> = Default::default();
    let mut last: Option<(i64, i64)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim();
        if l.is_empty() {
            continue;
        }
        let (f, rest) = match l.split_at_checked(2) {
            Some(("r(", rest)) => ("r", rest),
            Some(("w(", rest)) => ("w", rest),
            _ => {
                return Err(err(
                    line,
                    format!("expected r(KEY,VALUE,SESSION,TXN) or w(...), got `{l}`"),
                ));
            }
        };
        let inner = rest
            .strip_suffix(')')
            .ok_or_else(|| err(line, format!("`{l}` does not end with `)`")))?;
        let fields: Vec<&str> = inner.split(',').collect();
        let nums: Vec<Option<i64>> = fields.iter().map(|x| number(x)).collect();
        let [Some(key), Some(value), Some(session), Some(id)] = nums[..] else {
            return Err(err(
                line,
                format!("expected four integers KEY,VALUE,SESSION,TXN in `{l}`"),
            ));
        };
        if f == "w" && value == 0 {
            return Err(err(
                line,
                format!("`{l}` writes 0, which is the initial value of every key in this format"),
            ));
        }
        let shown = if value == 0 {
            Value::Null
        } else {
            json!(value)
        };
        let slot = match index.get(&(session, id)) {
            Some(&s) => {
                if last != Some((session, id)) {
                    return Err(err(
                        line,
                        format!(
                            "transaction {id} of session {session} continues here after other \
                             transactions (it started at line {}): a transaction's lines must be together",
                            txns[s].line
                        ),
                    ));
                }
                s
            }
            None => {
                index.insert((session, id), txns.len());
                txns.push(PendingTxn {
                    line,
                    session,
                    id,
                    invoke: Vec::new(),
                    done: Vec::new(),
                });
                txns.len() - 1
            }
        };
        last = Some((session, id));
        let t = &mut txns[slot];
        t.invoke.push(json!([
            f,
            key,
            if f == "r" { Value::Null } else { shown.clone() }
        ]));
        t.done.push(json!([f, key, shown]));
    }
    for t in txns {
        let mut extra = Map::new();
        extra.insert("txn".into(), json!(t.id));
        for (kind, value) in [(EventType::Invoke, t.invoke), (EventType::Ok, t.done)] {
            b.push(Event {
                line: t.line,
                index: None,
                time: None,
                process: Process::Client(t.session),
                kind,
                f: "txn".into(),
                key: None,
                value: Value::Array(value),
                has_value: true,
                extra: extra.clone(),
            })?;
        }
    }
    if b.events() == 0 {
        return Err(HistoryError {
            file: source.to_string(),
            line: 0,
            kind: HistoryErrorKind::Empty,
        });
    }
    Ok(b.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Outcome;

    #[test]
    fn reads_transactions_by_session() {
        let h = read("t", "w(1,5,0,0)\nr(2,0,0,0)\n\nr(1,5,1,1)\nw(2,7,1,1)\n").unwrap();
        assert_eq!(h.ops.len(), 2);
        assert_eq!(h.ops[0].process, 0);
        assert_eq!(h.ops[0].outcome, Outcome::Ok);
        assert_eq!(h.ops[0].value, json!([["w", 1, 5], ["r", 2, null]]));
        assert_eq!(h.ops[1].invoke_value, json!([["r", 1, null], ["w", 2, 7]]));
        assert_eq!(h.ops[1].invoke_line(), 4);
    }

    #[test]
    fn errors_name_the_line() {
        for (text, line, what) in [
            ("w(1,5,0,0)\nx(1,2,3,4)\n", 2, "expected r(KEY"),
            ("w(1,5,0,0)\nr(1,a,0,0)\n", 2, "four integers"),
            ("w(1,0,0,0)\n", 1, "writes 0"),
            (
                "w(1,5,0,0)\nw(2,5,1,1)\nw(3,5,0,0)\n",
                3,
                "must be together",
            ),
            ("r(1,5,0,0\n", 1, "does not end"),
        ] {
            let e = read("f.txt", text).unwrap_err();
            assert_eq!(e.line, line, "{text}");
            assert!(e.to_string().contains(what), "{e}");
        }
    }
}
