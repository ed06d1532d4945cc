//! The checks that judge a run: the ones that fit its workload, on the
//! history as written to disk (so a re-check of the stored run sees exactly
//! what the run saw).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use faultline_checkers::format::{self, Format};
use faultline_checkers::linear::{self, LinearOptions};
use faultline_checkers::{CheckResult, History, ModelKind, Validity};
use faultline_workloads::workload::WorkloadKind;
use serde_json::{Value, json};

/// Every check's result, and the verdict they make together.
#[derive(Debug)]
pub struct Verdicts {
    /// The worst of the checks: invalid > unknown > valid.
    pub valid: Validity,
    /// Check name to its result as JSON (`valid`, `anomalies`, ...).
    pub checks: BTreeMap<String, Value>,
    /// Client operations in the history.
    pub ops: usize,
    /// Milliseconds spent parsing and checking.
    pub check_ms: f64,
    /// The history, for the summary.
    pub history: History,
}

/// Reads `path` and runs the checks of `workload`. `time_limit` bounds the
/// linearizability search.
pub fn check_history(
    path: &Path,
    workload: WorkloadKind,
    time_limit: Option<f64>,
) -> Result<Verdicts, String> {
    let t0 = Instant::now();
    let history = match format::read_path(path, Format::Json) {
        Ok((h, _)) => h,
        // Nothing happened (no operation got going, and the workload has no
        // final reads): unknown, by the workload check below.
        Err(e) if matches!(e.kind, faultline_checkers::HistoryErrorKind::Empty) => {
            History::default()
        }
        Err(e) => return Err(e.to_string()),
    };
    crate::commands::check::warn_torn(&path.display().to_string(), &history);
    let mut checks = BTreeMap::new();
    let mut valid = Validity::Valid;
    for name in workload.checks() {
        let v = match *name {
            "linearizable" => {
                let model = match workload {
                    WorkloadKind::Kv => ModelKind::Kv,
                    _ => ModelKind::CasRegister,
                };
                let opts = LinearOptions {
                    time_limit,
                    ..LinearOptions::new(model)
                };
                let r = linear::check(&history, &opts).map_err(|e| {
                    format!(
                        "{}:{}: {} (model {})",
                        path.display(),
                        e.line,
                        e.reason,
                        model.name()
                    )
                })?;
                valid = valid.merge(r.valid);
                serde_json::to_value(&r).unwrap_or_default()
            }
            "set" => result(&mut valid, faultline_checkers::set::check(&history)),
            "counter" => result(&mut valid, faultline_checkers::counter::check(&history)),
            "convergence" => result(&mut valid, faultline_checkers::convergence::check(&history)),
            other => match super::txn_checks::check(other, path, &history, workload, time_limit) {
                Some(r) => {
                    let (v, json) = r?;
                    valid = valid.merge(v);
                    json
                }
                None => continue,
            },
        };
        checks.insert((*name).to_string(), v);
    }
    let (v, c) = workload_ran(&history);
    valid = valid.merge(v);
    checks.insert("workload".to_string(), c);
    Ok(Verdicts {
        valid,
        checks,
        ops: history.len(),
        check_ms: t0.elapsed().as_secs_f64() * 1e3,
        history,
    })
}

/// Whether the run tested anything: a run in which no workload operation
/// (final reads aside) succeeded proves nothing, so its verdict is unknown,
/// never valid.
pub fn workload_ran(history: &History) -> (Validity, Value) {
    let workload = history
        .ops
        .iter()
        .filter(|o| !faultline_checkers::set::is_final(o));
    let (mut invoked, mut ok) = (0u64, 0u64);
    for o in workload {
        invoked += 1;
        if o.outcome == faultline_checkers::Outcome::Ok {
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
    let mut valid = Validity::Valid;
    let v = result(&mut valid, r);
    (valid, v)
}

fn result(valid: &mut Validity, r: CheckResult) -> Value {
    *valid = valid.merge(r.valid);
    serde_json::to_value(&r).unwrap_or_else(|e| json!({"error": e.to_string()}))
}

/// One line per check for the terminal, with the first anomaly explained.
pub fn summary_lines(v: &Verdicts) -> Vec<String> {
    let mut out = Vec::new();
    for (name, c) in &v.checks {
        let verdict = match &c["valid"] {
            Value::Bool(true) => "ok".to_string(),
            Value::Bool(false) => "VIOLATED".to_string(),
            _ => format!(
                "unknown ({})",
                c["unknown_reason"].as_str().unwrap_or("no reason given")
            ),
        };
        out.push(format!("  {name:<13} {verdict}"));
        if let Some(s) = c["summary"].as_str() {
            out.push(format!("      {s}"));
        }
        if let Some(a) = c["anomalies"].as_array().and_then(|a| a.first()) {
            if let Some(e) = a["explanation"].as_str() {
                out.push(format!("      {e}"));
            }
        }
    }
    out
}
