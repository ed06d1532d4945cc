//! Whether a run tested anything: a run in which no workload operation
//! (final reads aside) succeeded proves nothing, so its verdict is unknown,
//! never valid.

use serde_json::json;

use crate::history::{History, Outcome};
use crate::set::is_final;
use crate::verdict::{CheckResult, Validity};

/// Counts the workload operations invoked and those that succeeded;
/// unknown when none succeeded.
pub fn check(history: &History) -> CheckResult {
    let workload = history.ops.iter().filter(|o| !is_final(o));
    let (mut invoked, mut ok) = (0u64, 0u64);
    for o in workload {
        invoked += 1;
        if o.outcome == Outcome::Ok {
            ok += 1;
        }
    }
    let mut r = CheckResult {
        valid: Validity::Valid,
        anomalies: Vec::new(),
        stats: json!({"invoked": invoked, "ok": ok}),
        unknown_reason: None,
    };
    if ok == 0 {
        r.valid = Validity::Unknown;
        r.unknown_reason = Some(format!(
            "no workload operation succeeded ({invoked} invoked): the run tested nothing"
        ));
    }
    r
}
