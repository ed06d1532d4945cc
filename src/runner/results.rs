//! `results.json`: the verdicts, the config and seed, the fault windows
//! and the run's figures.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use faultline_checkers::plan::Plan;
use faultline_checkers::workload::WorkloadKind;
use faultline_checkers::{ModelKind, Validity};
use serde::Deserialize;
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
        *counts.entry(op.outcome.as_str()).or_default() += 1;
    }
    let results = json!({
        "faultline": env!("CARGO_PKG_VERSION"),
        "name": cfg.name,
        "dir": dir.display().to_string(),
        "valid": v.valid,
        "checks": v.checks.to_json(),
        "seed": cfg.seed,
        "config": cfg,
        "stats": {
            "ops": v.ops,
            "outcomes": counts,
            // What the nemesis did (the history's start events), and what
            // was scheduled; they differ when the nemesis fell behind (a
            // period shorter than applying a fault takes) or the run ended
            // early.
            "faults": v
                .history
                .faults
                .iter()
                .filter(|f| f.extra.get("phase").is_some_and(|p| p == "start"))
                .count(),
            "faults_scheduled": windows.len(),
            "duration_s": elapsed.as_secs_f64(),
            "ok_per_s": counts.get("ok").copied().unwrap_or(0) as f64 / cfg.time_limit.max(0.001),
            "check_ms": v.check_ms,
        },
        "faults": windows,
    });
    results
}

/// What is read back from a stored run's `results.json` (`faultline check
/// DIR`, `faultline report DIR`): its verdict, workload and check time
/// limit, each absent when the file does not say it.
#[derive(Debug, Default, Deserialize)]
pub struct StoredRun {
    /// The verdict.
    #[serde(default)]
    pub valid: Option<Validity>,
    #[serde(default)]
    config: StoredConfig,
}

#[derive(Debug, Default, Deserialize)]
struct StoredConfig {
    #[serde(default)]
    workload: Option<StoredWorkload>,
    #[serde(default)]
    check_time_limit: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct StoredWorkload {
    kind: WorkloadKind,
}

impl StoredRun {
    /// Reads the fields faultline needs from a `results.json` object; None
    /// when one of them is not what faultline writes (an unknown workload,
    /// a verdict that is not true, false or "unknown").
    pub fn from_json(results: &Value) -> Option<StoredRun> {
        StoredRun::deserialize(results).ok()
    }

    /// Reads `DIR/results.json`; None when it is missing or not understood.
    pub fn read(dir: &Path) -> Option<StoredRun> {
        let text = std::fs::read_to_string(dir.join("results.json")).ok()?;
        StoredRun::from_json(&serde_json::from_str(&text).ok()?)
    }

    /// The run's workload.
    pub fn workload(&self) -> Option<WorkloadKind> {
        self.config.workload.as_ref().map(|w| w.kind)
    }

    /// The linearizability model the run's plan checks against.
    pub fn model(&self) -> Option<ModelKind> {
        Plan::for_workload(self.workload()?).model()
    }

    /// The time limit of the run's checks, seconds.
    pub fn check_time_limit(&self) -> Option<f64> {
        self.config.check_time_limit
    }
}
