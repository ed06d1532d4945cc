//! The bank workload's checker. Accounts are opened by one transaction of
//! `["w", account, balance]` micro-ops (their sum is the total); transfers
//! are transactions of `["add", account, delta]` micro-ops whose deltas add
//! up to 0; reads are transactions of `["r", account, balance]`. Checked:
//!
//! - every `ok` read of every account sums to the total (`wrong-total`:
//!   money created or destroyed, or a read that saw half a transfer);
//! - no `ok` read shows a negative balance (`negative-balance`), unless
//!   the store allows them.
//!
//! Anything else in the history (another micro-op, a transfer that does not
//! keep the total, a balance that is not an integer, no opening
//! transaction) is an error naming the line: the checker never guesses.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::checker::{Budget, CheckError, Checker, Judged};
use crate::checks::Check;
use crate::history::{History, Operation, Outcome};
use crate::linear::OpView;
use crate::verdict::{CheckResult, Validity};

/// Anomalies kept with their details per type (all are counted).
const KEPT_PER_TYPE: usize = 8;

/// What a bank transaction is.
enum BankTxn {
    Open(Vec<(Value, i64)>),
    Transfer,
    Read(Vec<(Value, Option<i64>)>),
}

fn micro_ops(v: &Value) -> Result<Vec<(&str, &Value, &Value)>, String> {
    let list = v
        .as_array()
        .filter(|l| !l.is_empty())
        .ok_or_else(|| format!("a bank txn is a non-empty list of micro-ops, not {v}"))?;
    list.iter()
        .map(|m| match m.as_array().map(Vec::as_slice) {
            Some([Value::String(f), k, v]) => Ok((f.as_str(), k, v)),
            _ => Err(format!("micro-op {m} is not [f, account, value]")),
        })
        .collect()
}

fn classify(op: &Operation) -> Result<BankTxn, String> {
    let v = if op.outcome == Outcome::Ok {
        &op.value
    } else {
        &op.invoke_value
    };
    let mops = micro_ops(v)?;
    let int = |x: &Value, what: &str| {
        x.as_i64()
            .ok_or_else(|| format!("{what} {x} is not an integer"))
    };
    match mops[0].0 {
        "w" if mops.iter().all(|m| m.0 == "w") => Ok(BankTxn::Open(
            mops.iter()
                .map(|m| Ok((m.1.clone(), int(m.2, "opening balance")?)))
                .collect::<Result<_, String>>()?,
        )),
        "add" if mops.iter().all(|m| m.0 == "add") => {
            let mut sum = 0i64;
            for m in &mops {
                sum = sum
                    .checked_add(int(m.2, "amount")?)
                    .ok_or_else(|| "amounts overflow".to_string())?;
            }
            if sum != 0 {
                return Err(format!(
                    "a transfer's amounts add up to {sum}, not 0 (it would change the total)"
                ));
            }
            Ok(BankTxn::Transfer)
        }
        "r" if mops.iter().all(|m| m.0 == "r") => Ok(BankTxn::Read(
            mops.iter()
                .map(|m| {
                    let b = match (op.outcome, m.2) {
                        (Outcome::Ok, Value::Null) => Some(0),
                        (Outcome::Ok, b) => Some(int(b, "balance")?),
                        _ => None,
                    };
                    Ok((m.1.clone(), b))
                })
                .collect::<Result<_, String>>()?,
        )),
        _ => Err(format!(
            "a bank txn is all w (opening), all add (transfer) or all r (read): {v}"
        )),
    }
}

fn key_of(k: &Value) -> String {
    k.to_string()
}

/// The bank check for the plan (balances may not go negative).
pub struct Bank;

impl Checker for Bank {
    fn check(&self, history: &History, _: &Budget) -> Result<Vec<Judged>, CheckError> {
        Ok(vec![Judged::new(Check::Bank, check(history, false)?)])
    }
    fn checks(&self) -> Vec<Check> {
        vec![Check::Bank]
    }
}

/// A history that is not a bank history, at `line`.
fn bad(line: usize, reason: String) -> CheckError {
    CheckError::Model {
        line,
        reason,
        model: "bank".into(),
    }
}

/// Checks a bank history; `negative_allowed` when the store lets balances
/// go below 0. An error (the history is not a bank history) names the line.
pub fn check(history: &History, negative_allowed: bool) -> Result<CheckResult, CheckError> {
    let mut opening: Option<BTreeMap<String, i64>> = None;
    let mut reads = Vec::new();
    let (mut transfers, mut transfers_ok) = (0u64, 0u64);
    for op in history.ops.iter().filter(|o| &*o.f == "txn") {
        let line = op.complete_line().unwrap_or(op.invoke_line());
        match classify(op).map_err(|reason| bad(line, reason))? {
            BankTxn::Open(balances) => match op.outcome {
                Outcome::Ok if opening.is_none() => {
                    opening = Some(balances.iter().map(|(k, b)| (key_of(k), *b)).collect());
                }
                Outcome::Ok => {
                    return Err(bad(
                        op.invoke_line(),
                        "a second opening transaction (accounts are opened once)".into(),
                    ));
                }
                Outcome::Fail => {}
                _ => {
                    return Err(bad(
                        op.invoke_line(),
                        "the opening transaction's outcome is unknown, so is the total".into(),
                    ));
                }
            },
            BankTxn::Transfer => {
                transfers += 1;
                transfers_ok += u64::from(op.outcome == Outcome::Ok);
            }
            BankTxn::Read(b) if op.outcome == Outcome::Ok => reads.push((op, b)),
            BankTxn::Read(_) => {}
        }
    }
    let Some(opening) = opening else {
        return Err(bad(
            0,
            "no opening transaction (an ok txn of [\"w\", account, balance] micro-ops): the total is unknown"
                .into(),
        ));
    };
    let total: i64 = opening.values().sum();
    let mut anomalies = Vec::new();
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    let mut partial = 0u64;
    let mut keep = |kind: &'static str, a: Value| {
        let n = counts.entry(kind).or_default();
        *n += 1;
        if *n as usize <= KEPT_PER_TYPE {
            anomalies.push(a);
        }
    };
    for (op, balances) in &reads {
        let seen: BTreeMap<String, i64> = balances
            .iter()
            .map(|(k, b)| (key_of(k), b.unwrap_or(0)))
            .collect();
        if !negative_allowed && let Some((k, b)) = seen.iter().find(|(_, b)| **b < 0) {
            keep(
                "negative-balance",
                json!({
                    "type": "negative-balance",
                    "op": OpView::of(op),
                    "explanation": format!("{} read account {k} as {b}: below 0", op.describe()),
                }),
            );
        }
        if !opening.keys().all(|k| seen.contains_key(k)) {
            partial += 1;
            continue;
        }
        let sum: i64 = seen.values().sum();
        if sum != total {
            let shown: Vec<String> = seen.iter().map(|(k, b)| format!("{k}: {b}")).collect();
            keep(
                "wrong-total",
                json!({
                    "type": "wrong-total",
                    "op": OpView::of(op),
                    "total": sum,
                    "expected": total,
                    "explanation": format!(
                        "{} read balances {{{}}} that add up to {sum}, not the bank's total {total}",
                        op.describe(),
                        shown.join(", ")
                    ),
                }),
            );
        }
    }
    let valid = if counts.is_empty() {
        Validity::Valid
    } else {
        Validity::Invalid
    };
    Ok(CheckResult {
        valid,
        anomalies,
        stats: json!({
            "accounts": opening.len(),
            "total": total,
            "reads": reads.len(),
            "partial_reads": partial,
            "transfers": transfers,
            "transfers_ok": transfers_ok,
            "anomaly_counts": counts,
        }),
        unknown_reason: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload_tests::h as history;

    const OPEN: [&str; 2] = [
        r#"{"process":0,"type":"invoke","f":"txn","value":[["w",0,10],["w",1,10]]}"#,
        r#"{"process":0,"type":"ok","f":"txn","value":[["w",0,10],["w",1,10]]}"#,
    ];

    fn with(rest: &[&str]) -> History {
        let mut l = OPEN.to_vec();
        l.extend_from_slice(rest);
        history(&l)
    }

    #[test]
    fn reads_that_keep_the_total_are_valid() {
        let h = with(&[
            r#"{"process":1,"type":"invoke","f":"txn","value":[["add",0,-3],["add",1,3]]}"#,
            r#"{"process":2,"type":"invoke","f":"txn","value":[["r",0,null],["r",1,null]]}"#,
            r#"{"process":1,"type":"ok","f":"txn","value":[["add",0,-3],["add",1,3]]}"#,
            r#"{"process":2,"type":"ok","f":"txn","value":[["r",0,7],["r",1,13]]}"#,
        ]);
        let r = check(&h, false).expect("bank history");
        assert_eq!(r.valid, Validity::Valid, "{:?}", r.anomalies);
        assert_eq!(r.stats["total"], 20);
        assert_eq!(r.stats["reads"], 1);
    }

    #[test]
    fn a_read_of_half_a_transfer_and_a_negative_balance_are_found() {
        let h = with(&[
            r#"{"process":1,"type":"invoke","f":"txn","value":[["add",0,-3],["add",1,3]]}"#,
            r#"{"process":2,"type":"invoke","f":"txn","value":[["r",0,null],["r",1,null]]}"#,
            r#"{"process":1,"type":"ok","f":"txn","value":[["add",0,-3],["add",1,3]]}"#,
            r#"{"process":2,"type":"ok","f":"txn","value":[["r",0,7],["r",1,10]]}"#,
            r#"{"process":2,"type":"invoke","f":"txn","value":[["r",0,null],["r",1,null]]}"#,
            r#"{"process":2,"type":"ok","f":"txn","value":[["r",0,-1],["r",1,21]]}"#,
        ]);
        let r = check(&h, false).expect("bank history");
        assert_eq!(r.valid, Validity::Invalid);
        assert_eq!(r.anomalies[0]["type"], "wrong-total");
        assert!(
            r.anomalies[0]["explanation"]
                .as_str()
                .expect("text")
                .contains("add up to 17, not the bank's total 20"),
            "{}",
            r.anomalies[0]
        );
        assert_eq!(r.anomalies[1]["type"], "negative-balance");
        assert_eq!(r.stats["anomaly_counts"]["wrong-total"], 1);
        // Where the store allows negative balances, only the total counts.
        let r = check(&h, true).expect("bank history");
        assert_eq!(r.anomalies.len(), 1);
    }

    #[test]
    fn histories_that_are_not_bank_histories_are_errors() {
        let no_open = history(&[
            r#"{"process":2,"type":"invoke","f":"txn","value":[["r",0,null]]}"#,
            r#"{"process":2,"type":"ok","f":"txn","value":[["r",0,7]]}"#,
        ]);
        assert!(
            check(&no_open, false)
                .expect_err("no total")
                .message("h")
                .contains("opening")
        );
        let minting = with(&[
            r#"{"process":1,"type":"invoke","f":"txn","value":[["add",0,3],["add",1,3]]}"#,
            r#"{"process":1,"type":"fail","f":"txn","value":[["add",0,3],["add",1,3]]}"#,
        ]);
        let e = check(&minting, false)
            .expect_err("not a transfer")
            .message("h");
        assert!(
            e.starts_with("h:4: ") && e.contains("add up to 6") && e.ends_with("(model bank)"),
            "{e}"
        );
        let mixed = with(&[
            r#"{"process":1,"type":"invoke","f":"txn","value":[["r",0,null],["add",1,3]]}"#,
            r#"{"process":1,"type":"fail","f":"txn","value":[["r",0,null],["add",1,3]]}"#,
        ]);
        assert!(check(&mixed, false).is_err());
        let text_balance = with(&[
            r#"{"process":2,"type":"invoke","f":"txn","value":[["r",0,null]]}"#,
            r#"{"process":2,"type":"ok","f":"txn","value":[["r",0,"ten"]]}"#,
        ]);
        assert!(
            check(&text_balance, false)
                .expect_err("bad")
                .message("h")
                .contains("not an integer")
        );
    }
}
