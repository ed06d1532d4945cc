//! The checks of the transactional workloads, as `faultline run` (and a
//! re-check of a stored run) applies them:
//!
//! - `txn` (list-append, rw-register): the isolation checker of
//!   [`faultline_checkers::txn`] for strict serializability, which also
//!   decides every weaker model (the result lists each, and the strongest
//!   that holds);
//! - `bank`: [`faultline_checkers::bank`] (balances may not go negative);
//! - `seats`: [`faultline_checkers::seats`].

use std::path::Path;
use std::time::{Duration, Instant};

use faultline_checkers::txn::{self, TxnModel, TxnOptions};
use faultline_checkers::{CheckResult, History, Validity};
use faultline_workloads::workload::WorkloadKind;
use serde_json::{Value, json};

/// Runs check `name` (`txn`, `bank` or `seats`) of `workload` on
/// `history`: the verdict and the result as JSON, or an error naming the
/// file (the history is not what the workload writes). `None`: `name` is
/// not a transactional check.
pub fn check(
    name: &str,
    path: &Path,
    history: &History,
    workload: WorkloadKind,
    time_limit: Option<f64>,
) -> Option<Result<(Validity, Value), String>> {
    let at = |e: String| format!("{}: {e} (workload {workload})", path.display());
    let r = match name {
        "txn" => isolation(history, workload, time_limit).map_err(at),
        "bank" => faultline_checkers::bank::check(history, false)
            .map(result)
            .map_err(at),
        "seats" => faultline_checkers::seats::check(history)
            .map(result)
            .map_err(at),
        _ => return None,
    };
    Some(r)
}

fn result(r: CheckResult) -> (Validity, Value) {
    let v = serde_json::to_value(&r).unwrap_or_else(|e| json!({"error": e.to_string()}));
    (r.valid, v)
}

/// The isolation check: strict serializability, every model decided.
fn isolation(
    history: &History,
    workload: WorkloadKind,
    time_limit: Option<f64>,
) -> Result<(Validity, Value), String> {
    let model = if workload == WorkloadKind::RwRegister {
        TxnModel::RwRegister
    } else {
        TxnModel::ListAppend
    };
    let t = Instant::now();
    let opts = TxnOptions {
        model,
        models: txn::default_models(true),
        deadline: time_limit.map(|s| t + Duration::from_secs_f64(s.min(1e9))),
        memory_limit: faultline_checkers::linear::default_memory_limit(),
    };
    let r = txn::check(history, &opts).map_err(|e| format!("line {}: {}", e.line, e.reason))?;
    let mut v = serde_json::to_value(&r).unwrap_or_else(|e| json!({"error": e.to_string()}));
    if let Value::Object(m) = &mut v {
        // Each cycle drawn, for report.html.
        if let Some(Value::Array(list)) = m.get_mut("anomalies") {
            for (a, json) in r.anomalies.iter().zip(list.iter_mut()) {
                if let (Some(svg), Value::Object(o)) = (txn::svg::cycle_svg(a), json) {
                    o.insert("svg".into(), json!(svg));
                }
            }
        }
        // The one-line summary every check has.
        let strongest: Vec<&str> = r.strongest.iter().map(|m| m.name()).collect();
        let violated: Vec<String> = r
            .weakest_violated()
            .iter()
            .map(|v| format!("{} ({})", v.model, v.violated_by.join(", ")))
            .collect();
        m.insert(
            "summary".into(),
            json!(format!(
                "strongest model that holds: {}; violated: {}",
                if strongest.is_empty() {
                    "none".to_string()
                } else {
                    strongest.join(" and ")
                },
                if violated.is_empty() {
                    "none".to_string()
                } else {
                    violated.join(", ")
                }
            )),
        );
    }
    Ok((r.valid, v))
}
