//! The set workload's checker, after Jepsen's set and set-full: clients add
//! unique elements to one set and read it; after healing, every node reads
//! it once more (the final reads, operations with `"phase": "final"`).
//!
//! - **lost**: an element whose `add` was acknowledged (`ok`) is in no final
//!   read. Invalid.
//! - **unexpected**: a read returned an element nobody tried to add. Invalid.
//! - **stale** (counted, not a failure of this check): a read that lacks an
//!   element whose `add` completed before the read began. A linearizable set
//!   never does that; the number says how stale reads were.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};

use crate::history::{History, Operation, Outcome};
use crate::verdict::{CheckResult, Validity};

/// True when the operation belongs to the final reads.
pub fn is_final(op: &Operation) -> bool {
    op.extra
        .as_ref()
        .and_then(|m| m.get("phase"))
        .is_some_and(|p| p == "final")
}

/// The elements a read returned; `null` (a set nobody has added to yet
/// reads as absent in most stores) is the empty set.
fn elements(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::Null => Some(Vec::new()),
        _ => v
            .as_array()
            .map(|a| a.iter().map(|e| e.to_string()).collect()),
    }
}

/// Checks a set history.
pub fn check(history: &History) -> CheckResult {
    // Element -> (event position of the ok completion, op id) for acked adds.
    let mut attempted: HashSet<String> = HashSet::new();
    let mut acked: HashMap<String, usize> = HashMap::new();
    let mut indefinite: HashSet<String> = HashSet::new();
    for op in history.ops.iter().filter(|o| &*o.f == "add") {
        let e = op.invoke_value.to_string();
        attempted.insert(e.clone());
        match op.outcome {
            Outcome::Ok => {
                acked.insert(e, op.complete_pos().unwrap_or(op.invoke_pos()));
            }
            Outcome::Info | Outcome::Pending => {
                indefinite.insert(e);
            }
            Outcome::Fail => {}
        }
    }
    let reads: Vec<&Operation> = history
        .ops
        .iter()
        .filter(|o| &*o.f == "read" && o.outcome == Outcome::Ok)
        .collect();
    let mut anomalies = Vec::new();
    let mut unexpected: Vec<String> = Vec::new();
    for r in &reads {
        let Some(els) = elements(&r.value) else {
            anomalies.push(json!({
                "type": "bad-read",
                "op": crate::linear::OpView::of(r),
                "explanation": format!("{} returned {}, which is not a list of elements", r.describe(), r.value),
            }));
            continue;
        };
        for e in els {
            if !attempted.contains(&e) && !unexpected.contains(&e) {
                unexpected.push(e);
            }
        }
    }
    // Stale reads: elements acked before the read began, missing from it.
    let mut ack_positions: Vec<usize> = acked.values().copied().collect();
    ack_positions.sort_unstable();
    let mut stale_reads = 0u64;
    let mut stale_elements = 0u64;
    for r in reads.iter().filter(|r| !is_final(r)) {
        let before = ack_positions.partition_point(|&p| p < r.invoke_pos()) as u64;
        let present = elements(&r.value)
            .unwrap_or_default()
            .iter()
            .filter(|e| acked.get(*e).is_some_and(|&p| p < r.invoke_pos()))
            .count() as u64;
        if present < before {
            stale_reads += 1;
            stale_elements += before - present;
        }
    }
    let finals: Vec<&&Operation> = reads.iter().filter(|r| is_final(r)).collect();
    let final_attempts = history
        .ops
        .iter()
        .filter(|o| &*o.f == "read" && is_final(o))
        .count();
    let mut seen_final: HashSet<String> = HashSet::new();
    for r in &finals {
        seen_final.extend(elements(&r.value).unwrap_or_default());
    }
    // Without a final read nothing can be called lost.
    let mut lost: Vec<String> = if finals.is_empty() {
        Vec::new()
    } else {
        acked
            .keys()
            .filter(|e| !seen_final.contains(*e))
            .cloned()
            .collect()
    };
    lost.sort_by_key(|e| acked.get(e).copied().unwrap_or(0));
    let recovered = indefinite
        .iter()
        .filter(|e| seen_final.contains(*e))
        .count();
    if !lost.is_empty() {
        let shown: Vec<Value> = lost
            .iter()
            .take(20)
            .map(|e| serde_json::from_str(e).unwrap_or(Value::String(e.clone())))
            .collect();
        anomalies.push(json!({
            "type": "lost",
            "count": lost.len(),
            "elements": shown,
            "explanation": format!(
                "{} element(s) whose add was acknowledged are in none of the {} final reads, \
                 e.g. {}: acknowledged writes were lost",
                lost.len(), finals.len(), shown.first().map(|v| v.to_string()).unwrap_or_default()
            ),
        }));
    }
    if !unexpected.is_empty() {
        anomalies.push(json!({
            "type": "unexpected",
            "count": unexpected.len(),
            "elements": unexpected.iter().take(20).collect::<Vec<_>>(),
            "explanation": format!("{} element(s) were read that no client ever added", unexpected.len()),
        }));
    }
    let stats = json!({
        "attempted": attempted.len(),
        "acknowledged": acked.len(),
        "indefinite": indefinite.len(),
        "recovered": recovered,
        "lost": lost.len(),
        "unexpected": unexpected.len(),
        "reads": reads.len(),
        "final_reads": finals.len(),
        "stale_reads": stale_reads,
        "stale_elements": stale_elements,
    });
    let (valid, unknown_reason) = if !anomalies.is_empty() {
        (Validity::Invalid, None)
    } else if finals.is_empty() {
        let why = if final_attempts == 0 {
            "the history has no final read (operations with \"phase\":\"final\")".to_string()
        } else {
            format!("none of the {final_attempts} final reads succeeded")
        };
        (Validity::Unknown, Some(why))
    } else {
        (Validity::Valid, None)
    };
    CheckResult {
        valid,
        anomalies,
        stats,
        unknown_reason,
    }
}
