//! `faultline check` on transactional histories (`--model list-append` or
//! `rw-register`, or inferred from `append`/`r`/`w` micro-ops): the
//! isolation checker of [`faultline_checkers::txn`], its summary line, its
//! witnesses and its JSON.

use std::time::Instant;

use faultline_checkers::checker::Budget;
use faultline_checkers::checks::Check;
use faultline_checkers::format::Format;
use faultline_checkers::history::History;
use faultline_checkers::plan::Plan;
use faultline_checkers::txn::stream::StreamedTxns;
use faultline_checkers::txn::{self, Model, TxnModel, TxnOptions, TxnReport};
use faultline_checkers::{ModelKind, Validity};
use serde_json::{Value, json};

/// What `--model` names: a single-object model or a transactional one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelChoice {
    /// register, cas-register, kv, multi-register, mutex.
    Single(ModelKind),
    /// list-append, rw-register.
    Txn(TxnModel),
}

impl std::str::FromStr for ModelChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(m) = s.parse::<TxnModel>() {
            return Ok(ModelChoice::Txn(m));
        }
        s.parse::<ModelKind>()
            .map(ModelChoice::Single)
            .map_err(|e| format!("{e}; transactional histories: list-append, rw-register"))
    }
}

/// The consistency models named by `--consistency-models`.
#[derive(Clone, Debug)]
pub struct ModelList(pub Vec<Model>);

/// Parses `--consistency-models`.
pub fn parse_models(s: &str) -> Result<ModelList, String> {
    txn::models::parse_list(s).map(ModelList)
}

/// The transactional model to check `history` with, if any: the one named,
/// or the one its micro-ops imply when no model is named.
pub fn txn_model(choice: Option<ModelChoice>, history: &History) -> Option<TxnModel> {
    match choice {
        Some(ModelChoice::Txn(m)) => Some(m),
        Some(ModelChoice::Single(_)) => None,
        None => TxnModel::infer(history),
    }
}

/// What the transactional check of one file reads: the history of the
/// general reader, or the transactions of the fast path (a JSON Lines file
/// of `txn` operations read straight into them, see
/// `faultline_checkers::format::json_txn`). Both give the same verdicts and
/// witnesses.
#[derive(Clone, Copy)]
pub enum TxnInput<'a> {
    /// A history.
    History(&'a History),
    /// Transactions streamed from the file.
    Streamed(&'a StreamedTxns),
}

impl TxnInput<'_> {
    /// Client operations.
    fn ops(&self) -> usize {
        match self {
            TxnInput::History(h) => h.len(),
            TxnInput::Streamed(s) => s.txns.txns.len(),
        }
    }

    /// Events read.
    fn events(&self) -> usize {
        match self {
            TxnInput::History(h) => h.events,
            TxnInput::Streamed(s) => s.events,
        }
    }

    /// Fault events.
    fn faults(&self) -> usize {
        match self {
            TxnInput::History(h) => h.faults.len(),
            TxnInput::Streamed(s) => s.faults,
        }
    }
}

/// Everything the transactional check of one file needs from the command
/// line.
pub struct TxnRun<'a> {
    /// The file's name.
    pub name: &'a str,
    /// Its format.
    pub format: Format,
    /// list-append or rw-register.
    pub model: TxnModel,
    /// `--consistency-models`, if given.
    pub models: Option<&'a [Model]>,
    /// `--time-limit`.
    pub time_limit: Option<f64>,
    /// `--memory-limit` in bytes.
    pub memory_limit: usize,
    /// `--json`.
    pub json: bool,
    /// Milliseconds spent reading.
    pub parse_ms: f64,
}

/// Checks one history; prints the verdict; returns it with the JSON line
/// (for the report, JUnit and Markdown outputs), or a one-line error.
pub fn check(input: TxnInput<'_>, run: &TxnRun<'_>) -> Result<(Validity, Value), String> {
    let name = run.name;
    // Histories without real-time order (the Plume format: committed
    // transactions by session) cannot be checked for strict
    // serializability.
    let realtime = run.format != Format::Plume;
    let models = match run.models {
        Some(m) => {
            if !realtime {
                if let Some(bad) = m.iter().find(|m| m.edges() & txn::graph::REALTIME != 0) {
                    return Err(format!(
                        "{name}: {bad} needs the real-time order of transactions, which the {} format does not record",
                        run.format.name()
                    ));
                }
            }
            m.to_vec()
        }
        None => txn::default_models(realtime),
    };
    let budget = Budget {
        time_limit: run.time_limit,
        memory_limit: run.memory_limit,
        ..Budget::new()
    };
    let t = Instant::now();
    let (judged, streamed);
    let report = match input {
        TxnInput::History(history) => {
            judged = Plan::for_txn(run.model, models)
                .run(history, &budget)
                .map_err(|e| e.message(name))?;
            judged
                .get(Check::Isolation)
                .and_then(|r| r.report_as::<TxnReport>())
                .ok_or_else(|| format!("{name}: the isolation check gave no result"))?
        }
        // No history to run a plan on: the isolation check itself, with the
        // same budget.
        TxnInput::Streamed(s) => {
            let opts = TxnOptions {
                model: run.model,
                models,
                deadline: budget.deadline(),
                memory_limit: budget.memory_limit,
            };
            streamed = txn::check_txns(&s.txns, None, &opts, t)
                .map_err(|e| format!("{name}:{}: {} (model {})", e.line, e.reason, run.model))?;
            &streamed
        }
    };
    let check_ms = t.elapsed().as_secs_f64() * 1e3;
    let line = json_line(input, run, report, check_ms);
    if run.json {
        crate::outln!("{line}");
    } else {
        print_text(input, run, report, check_ms);
    }
    Ok((report.valid, line))
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn json_line(input: TxnInput<'_>, run: &TxnRun<'_>, r: &TxnReport, check_ms: f64) -> Value {
    let requested: Vec<&str> = r.requested.iter().map(|m| m.name()).collect();
    let mut anomalies: Vec<Value> = r
        .anomalies
        .iter()
        .map(|a| serde_json::to_value(a).unwrap_or(Value::Null))
        .collect();
    txn::svg::attach_cycles(&r.anomalies, &mut anomalies);
    let count: usize = r.anomaly_counts.values().sum();
    json!({
        "file": run.name,
        "format": run.format.name(),
        "model": r.model.name(),
        "valid": r.valid,
        "ops": input.ops(),
        "events": input.events(),
        "faults": input.faults(),
        "parse_ms": round3(run.parse_ms),
        "check_ms": round3(check_ms),
        "anomalies": anomalies,
        "anomaly_counts": r.anomaly_counts,
        "unknown_reason": r.unknown_reason,
        "stats": r.stats,
        "consistency_models": requested,
        "models": r.models,
        "strongest": r.strongest,
        "checks": {
            requested.join(","): {
                "valid": r.valid,
                "anomalies": anomalies,
                "anomaly_count": count,
                "unknown_reason": r.unknown_reason,
                "stats": r.stats,
            }
        },
    })
}

fn print_text(input: TxnInput<'_>, run: &TxnRun<'_>, r: &TxnReport, check_ms: f64) {
    let verdict = match r.valid {
        Validity::Valid => "holds",
        Validity::Invalid => "VIOLATED",
        Validity::Unknown => "UNKNOWN",
    };
    let named: Vec<&str> = r.requested.iter().map(|m| m.name()).collect();
    crate::outln!(
        "{}: {verdict}: {} ({}, {} txns; parse {:.1} ms, check {:.1} ms)",
        run.name,
        named.join(", "),
        r.model,
        input.ops(),
        run.parse_ms,
        check_ms
    );
    if let Some(u) = &r.unknown_reason {
        crate::outln!("  could not decide: {u}");
    }
    if r.strongest.is_empty() {
        crate::outln!("  no checked model holds");
    } else {
        let s: Vec<&str> = r.strongest.iter().map(|m| m.name()).collect();
        crate::outln!("  strongest model that holds: {}", s.join(" and "));
    }
    let bad = r.weakest_violated();
    if !bad.is_empty() {
        let v: Vec<String> = bad
            .iter()
            .map(|v| format!("{} ({})", v.model, v.violated_by.join(", ")))
            .collect();
        crate::outln!("  violates: {} and every stronger model", v.join(", "));
    }
    // One witness per anomaly type.
    let mut shown: Vec<String> = Vec::new();
    for a in &r.anomalies {
        let kind = a.kind.name();
        if shown.contains(&kind) {
            continue;
        }
        crate::outln!("  {kind}: {}", a.explanation);
        for e in &a.cycle {
            crate::outln!("    {} -> {} ({}): {}", e.from, e.to, e.kind, e.why);
        }
        shown.push(kind);
    }
    let total: usize = r.anomaly_counts.values().sum();
    if total > shown.len() {
        let counts: Vec<String> = r
            .anomaly_counts
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        crate::outln!(
            "  anomalies found: {} (witnesses in --json)",
            counts.join(", ")
        );
    }
}
