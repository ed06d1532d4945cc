//! The counter workload's checker: clients increment one counter and read
//! it. Every `ok` read must lie between the sum of the increments that were
//! acknowledged before the read began (nothing acknowledged may be missing)
//! and the sum of every increment invoked before the read ended, whatever
//! its outcome (`ok`, `info` or never completed; `fail` did not happen).

use serde_json::json;

use crate::history::{History, Outcome};
use crate::linear::OpView;
use crate::verdict::{CheckResult, Validity};

/// Checks a counter history.
pub fn check(history: &History) -> CheckResult {
    // (position, delta) of acknowledged increments by completion, and of
    // possibly applied increments by invocation.
    let mut acked: Vec<(usize, i64)> = Vec::new();
    let mut possible: Vec<(usize, i64)> = Vec::new();
    let mut anomalies = Vec::new();
    for op in history.ops.iter().filter(|o| &*o.f == "incr") {
        let Some(delta) = op.invoke_value.as_i64() else {
            anomalies.push(json!({
                "type": "bad-increment",
                "op": OpView::of(op),
                "explanation": format!("{} does not increment by an integer", op.describe()),
            }));
            continue;
        };
        match op.outcome {
            Outcome::Ok => {
                acked.push((op.complete_pos().unwrap_or(op.invoke_pos()), delta));
                possible.push((op.invoke_pos(), delta));
            }
            Outcome::Info | Outcome::Pending => possible.push((op.invoke_pos(), delta)),
            Outcome::Fail => {}
        }
    }
    acked.sort_unstable();
    possible.sort_unstable();
    let prefix = |v: &[(usize, i64)]| {
        let mut acc = 0i64;
        v.iter()
            .map(|&(p, d)| {
                acc += d;
                (p, acc)
            })
            .collect::<Vec<_>>()
    };
    let acked_sum = prefix(&acked);
    let possible_sum = prefix(&possible);
    // Negative increments make the bounds cross; then only the sums of the
    // two directions bound the read, which this checker does not attempt.
    let monotone = possible.iter().all(|&(_, d)| d >= 0);
    let sum_before = |v: &[(usize, i64)], pos: usize| {
        let k = v.partition_point(|&(p, _)| p < pos);
        if k == 0 { 0 } else { v[k - 1].1 }
    };
    let mut reads = 0u64;
    let mut bad = 0u64;
    for op in history
        .ops
        .iter()
        .filter(|o| &*o.f == "read" && o.outcome == Outcome::Ok)
    {
        reads += 1;
        let Some(v) = op
            .value
            .as_i64()
            .or_else(|| op.value.is_null().then_some(0))
        else {
            bad += 1;
            anomalies.push(json!({
                "type": "bad-read",
                "op": OpView::of(op),
                "explanation": format!("{} is not an integer", op.describe()),
            }));
            continue;
        };
        let lower = sum_before(&acked_sum, op.invoke_pos());
        let upper = sum_before(&possible_sum, op.complete_pos().unwrap_or(usize::MAX));
        if monotone && (v < lower || v > upper) {
            bad += 1;
            if anomalies.len() < 50 {
                let why = if v < lower {
                    format!("{lower} increments had been acknowledged before it began")
                } else {
                    format!("at most {upper} increments had been invoked before it ended")
                };
                anomalies.push(json!({
                    "type": if v < lower { "counter-read-too-low" } else { "counter-read-too-high" },
                    "op": OpView::of(op),
                    "lower": lower,
                    "upper": upper,
                    "explanation": format!("{} read {v}, but {why}", op.describe()),
                }));
            }
        }
    }
    let stats = json!({
        "reads": reads,
        "bad_reads": bad,
        "acknowledged_increments": acked.len(),
        "possible_increments": possible.len(),
    });
    CheckResult {
        valid: if anomalies.is_empty() {
            if monotone {
                Validity::Valid
            } else {
                Validity::Unknown
            }
        } else {
            Validity::Invalid
        },
        unknown_reason: (anomalies.is_empty() && !monotone)
            .then(|| "negative increments: bounds not checked".to_string()),
        anomalies,
        stats,
    }
}
