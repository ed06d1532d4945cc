//! The checks that judge a run: its workload's [`Plan`], on the history as
//! written to disk (so a re-check of the stored run sees exactly what the
//! run saw).

use std::path::Path;
use std::time::Instant;

use faultline_checkers::checker::Budget;
use faultline_checkers::format::{self, Format};
use faultline_checkers::plan::{self, Plan};
use faultline_checkers::{History, ModelKind, Validity};
use faultline_workloads::workload::WorkloadKind;

/// Every check's result, and the verdict they make together.
#[derive(Debug)]
pub struct Verdicts {
    /// The worst of the checks: invalid > unknown > valid.
    pub valid: Validity,
    /// Every check's typed result.
    pub checks: plan::Verdicts,
    /// The linearizability model of the workload, if it has one.
    pub model: Option<ModelKind>,
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
        // final reads): unknown, by the workload check.
        Err(e) if matches!(e.kind, faultline_checkers::HistoryErrorKind::Empty) => {
            History::default()
        }
        Err(e) => return Err(e.to_string()),
    };
    warn_torn(&path.display().to_string(), &history);
    let plan = Plan::for_workload(workload);
    let budget = Budget {
        time_limit,
        ..Budget::new()
    };
    let checks = plan
        .run(&history, &budget)
        .map_err(|e| e.message(&path.display().to_string()))?;
    Ok(Verdicts {
        valid: checks.valid,
        checks,
        model: plan.model(),
        ops: history.len(),
        check_ms: t0.elapsed().as_secs_f64() * 1e3,
        history,
    })
}

/// One line per check for the terminal (by name), with the first anomaly
/// explained.
pub fn summary_lines(v: &Verdicts) -> Vec<String> {
    let mut ran: Vec<&plan::Ran> = v.checks.ran.iter().collect();
    ran.sort_by_key(|r| r.check.name());
    let mut out = Vec::new();
    for r in ran {
        let verdict = match r.report.valid() {
            Validity::Valid => "ok".to_string(),
            Validity::Invalid => "VIOLATED".to_string(),
            Validity::Unknown => format!(
                "unknown ({})",
                r.report.unknown_reason().unwrap_or("no reason given")
            ),
        };
        out.push(format!("  {:<13} {verdict}", r.check.name()));
        if let Some((_, e)) = r.report.anomalies().first() {
            out.push(format!("      {e}"));
        }
    }
    out
}

/// Says so on stderr when the history's last line was cut short (and left
/// out of the check).
pub fn warn_torn(name: &str, history: &History) {
    if let Some(line) = history.torn_last_line {
        eprintln!(
            "faultline: warning: {name}:{line}: the last line is cut short (a torn write); checked the {} events before it",
            history.events
        );
    }
}
