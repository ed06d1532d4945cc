//! The seats workload's checker: customers book seats with transactions of
//! one `["book", seat, customer]` micro-op (if the seat is free, it becomes
//! the customer's; else the booking fails), and the final reads
//! (`"phase": "final"`) read every seat with `["r", seat, owner]` micro-ops.
//! Checked:
//!
//! - no seat is acknowledged (`ok`) to two customers (`double-booking`);
//! - an acknowledged booking is never lost: a seat booked `ok` by `c` reads
//!   `c` in every final read (`lost-booking`);
//! - a seat's final owner is a customer who booked it and was not told it
//!   failed (`phantom-owner`).
//!
//! A seat with an acknowledged booking that no final read read makes the
//! verdict unknown (the run ended before the final reads). Anything else
//! (another micro-op, a booking of several seats) is an error naming the
//! line.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::checker::{Budget, CheckError, Checker, Judged};
use crate::checks::Check;
use crate::history::{History, Operation, Outcome};
use crate::linear::OpView;
use crate::set::is_final;
use crate::verdict::{CheckResult, Validity};

/// Anomalies kept with their details per type (all are counted).
const KEPT_PER_TYPE: usize = 8;

/// The seats check for the plan.
pub struct Seats;

impl Checker for Seats {
    fn check(&self, history: &History, _: &Budget) -> Result<Vec<Judged>, CheckError> {
        Ok(vec![Judged::new(Check::Seats, check(history)?)])
    }
    fn checks(&self) -> Vec<Check> {
        vec![Check::Seats]
    }
}

/// `op` is not what a seats history holds.
fn bad(op: &Operation, reason: String) -> CheckError {
    CheckError::Model {
        line: op.complete_line().unwrap_or(op.invoke_line()),
        reason,
        model: "seats".into(),
    }
}

/// The micro-ops `[f, seat, value]` of a txn (its completion's when ok).
fn micro_ops(op: &Operation) -> Result<Vec<(&str, String, &Value)>, CheckError> {
    let v = if op.outcome == Outcome::Ok {
        &op.value
    } else {
        &op.invoke_value
    };
    let list = v.as_array().filter(|l| !l.is_empty()).ok_or_else(|| {
        bad(
            op,
            format!("a seats txn is a non-empty list of micro-ops, not {v}"),
        )
    })?;
    list.iter()
        .map(|m| match m.as_array().map(Vec::as_slice) {
            Some([Value::String(f), k, v]) if f == "book" || f == "r" => {
                Ok((f.as_str(), k.to_string(), v))
            }
            _ => Err(bad(
                op,
                format!("micro-op {m} is not [\"book\", seat, customer] or [\"r\", seat, owner]"),
            )),
        })
        .collect()
}

/// Checks a seats history. An error (the history is not a seats history)
/// names the line.
pub fn check(history: &History) -> Result<CheckResult, CheckError> {
    // Seat -> customers whose booking was acknowledged / may have happened.
    let mut acked: BTreeMap<String, Vec<(&Operation, String)>> = BTreeMap::new();
    let mut possible: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut finals: Vec<(&Operation, String, String)> = Vec::new();
    let (mut bookings, mut bookings_ok) = (0u64, 0u64);
    for op in history.ops.iter().filter(|o| &*o.f == "txn") {
        let mops = micro_ops(op)?;
        if mops.iter().any(|m| m.0 == "book") {
            let [(_, seat, customer)] = mops.as_slice() else {
                return Err(bad(op, "a booking is a txn of one book micro-op".into()));
            };
            bookings += 1;
            let customer = customer.to_string();
            if op.outcome != Outcome::Fail {
                possible
                    .entry(seat.clone())
                    .or_default()
                    .insert(customer.clone());
            }
            if op.outcome == Outcome::Ok {
                bookings_ok += 1;
                acked.entry(seat.clone()).or_default().push((op, customer));
            }
        } else if op.outcome == Outcome::Ok && is_final(op) {
            for (_, seat, owner) in mops {
                finals.push((op, seat, owner.to_string()));
            }
        }
    }
    let mut anomalies = Vec::new();
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    let mut keep = |kind: &'static str, ops: Vec<OpView>, explanation: String| {
        let n = counts.entry(kind).or_default();
        *n += 1;
        if *n as usize <= KEPT_PER_TYPE {
            anomalies.push(json!({"type": kind, "ops": ops, "explanation": explanation}));
        }
    };
    for (seat, who) in &acked {
        let distinct: BTreeSet<&String> = who.iter().map(|(_, c)| c).collect();
        if distinct.len() > 1 {
            let names: Vec<&str> = distinct.iter().map(|c| c.as_str()).collect();
            keep(
                "double-booking",
                who.iter().map(|(o, _)| OpView::of(o)).collect(),
                format!(
                    "seat {seat} was acknowledged to {} customers: {}",
                    names.len(),
                    names.join(", ")
                ),
            );
        }
    }
    let mut read_seats = BTreeSet::new();
    for (op, seat, owner) in &finals {
        read_seats.insert(seat.clone());
        for (b, c) in acked.get(seat).into_iter().flatten() {
            if c != owner {
                keep(
                    "lost-booking",
                    vec![OpView::of(b), OpView::of(op)],
                    format!(
                        "customer {c}'s booking of seat {seat} was acknowledged, but the final read ({}) found the seat {}",
                        op.describe(),
                        if owner == "null" {
                            "free".to_string()
                        } else {
                            format!("held by {owner}")
                        }
                    ),
                );
            }
        }
        let booked = possible.get(seat).is_some_and(|p| p.contains(owner));
        if owner != "null" && !booked {
            keep(
                "phantom-owner",
                vec![OpView::of(op)],
                format!(
                    "the final read ({}) found seat {seat} held by {owner}, who never booked it or was told the booking failed",
                    op.describe()
                ),
            );
        }
    }
    let unread: Vec<&String> = acked.keys().filter(|s| !read_seats.contains(*s)).collect();
    let valid = if !counts.is_empty() {
        Validity::Invalid
    } else if unread.is_empty() {
        Validity::Valid
    } else {
        Validity::Unknown
    };
    let unknown_reason = (valid == Validity::Unknown).then(|| {
        format!(
            "{} booked seats (seat {} first) were never read by a final read",
            unread.len(),
            unread[0]
        )
    });
    Ok(CheckResult {
        valid,
        anomalies,
        stats: json!({
            "bookings": bookings,
            "bookings_ok": bookings_ok,
            "seats_booked": acked.len(),
            "final_reads": finals.len(),
            "anomaly_counts": counts,
        }),
        unknown_reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload_tests::h as history;

    const BOOKINGS: [&str; 6] = [
        r#"{"process":0,"type":"invoke","f":"txn","value":[["book",1,10]]}"#,
        r#"{"process":1,"type":"invoke","f":"txn","value":[["book",1,11]]}"#,
        r#"{"process":0,"type":"ok","f":"txn","value":[["book",1,10]]}"#,
        r#"{"process":1,"type":"fail","f":"txn","value":[["book",1,11]],"error":"taken"}"#,
        r#"{"process":2,"type":"invoke","f":"txn","value":[["book",2,12]]}"#,
        r#"{"process":2,"type":"info","f":"txn","value":[["book",2,12]]}"#,
    ];

    fn with_final(read: &str) -> History {
        let mut l = BOOKINGS.to_vec();
        let inv = r#"{"process":9,"type":"invoke","f":"txn","value":[["r",1,null],["r",2,null]],"phase":"final"}"#;
        let ok = format!(r#"{{"process":9,"type":"ok","f":"txn","value":{read},"phase":"final"}}"#);
        l.push(inv);
        l.push(&ok);
        history(&l)
    }

    #[test]
    fn kept_bookings_are_valid() {
        for read in [r#"[["r",1,10],["r",2,12]]"#, r#"[["r",1,10],["r",2,null]]"#] {
            let r = check(&with_final(read)).expect("seats history");
            assert_eq!(r.valid, Validity::Valid, "{read}: {:?}", r.anomalies);
            assert_eq!(r.stats["bookings_ok"], 1);
        }
    }

    #[test]
    fn lost_double_and_phantom_bookings_are_found() {
        // Customer 11 was told the seat was taken, yet holds it; 10 lost it.
        let r = check(&with_final(r#"[["r",1,11],["r",2,null]]"#)).expect("seats");
        assert_eq!(r.valid, Validity::Invalid);
        let kinds: Vec<&str> = r
            .anomalies
            .iter()
            .filter_map(|a| a["type"].as_str())
            .collect();
        assert_eq!(kinds, ["lost-booking", "phantom-owner"]);
        assert!(
            r.anomalies[0]["explanation"]
                .as_str()
                .expect("text")
                .contains("customer 10's booking of seat 1 was acknowledged")
        );
        // Two acknowledged bookings of one seat.
        let mut l = BOOKINGS.to_vec();
        l[3] = r#"{"process":1,"type":"ok","f":"txn","value":[["book",1,11]]}"#;
        l.push(r#"{"process":9,"type":"invoke","f":"txn","value":[["r",1,null]],"phase":"final"}"#);
        l.push(r#"{"process":9,"type":"ok","f":"txn","value":[["r",1,11]],"phase":"final"}"#);
        let r = check(&history(&l)).expect("seats");
        let kinds: Vec<&str> = r
            .anomalies
            .iter()
            .filter_map(|a| a["type"].as_str())
            .collect();
        assert_eq!(kinds, ["double-booking", "lost-booking"]);
    }

    #[test]
    fn no_final_read_is_unknown_and_bad_micro_ops_are_errors() {
        let r = check(&history(&BOOKINGS)).expect("seats");
        assert_eq!(r.valid, Validity::Unknown);
        assert!(r.unknown_reason.expect("reason").contains("seat 1"));
        let bad = history(&[
            r#"{"process":0,"type":"invoke","f":"txn","value":[["book",1,10],["book",2,10]]}"#,
            r#"{"process":0,"type":"ok","f":"txn","value":[["book",1,10],["book",2,10]]}"#,
        ]);
        assert!(
            check(&bad)
                .expect_err("two seats")
                .message("h")
                .contains("one book")
        );
        let bad = history(&[
            r#"{"process":0,"type":"invoke","f":"txn","value":[["append",1,10]]}"#,
            r#"{"process":0,"type":"ok","f":"txn","value":[["append",1,10]]}"#,
        ]);
        assert!(
            check(&bad)
                .expect_err("append")
                .message("h")
                .starts_with("h:2: ")
        );
    }
}
