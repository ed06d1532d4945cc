//! `results.json`: the verdicts, the config and seed, the fault windows
//! and the run's figures.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use super::checks;
use super::config::RunConfig;
use crate::nemesis::schedule;

/// The run's `results.json` (without the classification).
pub(super) fn results_json(
    dir: &Path,
    cfg: &RunConfig,
    windows: &[schedule::Window],
    v: &checks::Verdicts,
    elapsed: Duration,
) -> Value {
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for op in &v.history.ops {
        let k = match op.outcome {
            faultline_checkers::Outcome::Ok => "ok",
            faultline_checkers::Outcome::Fail => "fail",
            faultline_checkers::Outcome::Info => "info",
            faultline_checkers::Outcome::Pending => "pending",
        };
        *counts.entry(k).or_default() += 1;
    }
    let results = json!({
        "faultline": env!("CARGO_PKG_VERSION"),
        "name": cfg.name,
        "dir": dir.display().to_string(),
        "valid": v.valid,
        "checks": v.checks,
        "seed": cfg.seed,
        "config": cfg,
        "stats": {
            "ops": v.ops,
            "outcomes": counts,
            "faults": windows.len(),
            "duration_s": elapsed.as_secs_f64(),
            "ok_per_s": counts.get("ok").copied().unwrap_or(0) as f64 / cfg.time_limit.max(0.001),
            "check_ms": v.check_ms,
        },
        "faults": windows,
    });
    results
}
