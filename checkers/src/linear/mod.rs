//! The linearizability checker: splits a history into independent
//! partitions (one per key, where the model allows it), searches each for a
//! linearization in parallel, and explains the first operation that cannot
//! be placed when there is none.

use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;
use serde_json::{Value, json};

use crate::error::ModelError;
use crate::history::{History, Operation, Outcome, compact};
use crate::model::multi_register::MultiRegisterModel;
use crate::model::mutex::MutexModel;
use crate::model::register::{RegOp, RegisterModel};
use crate::model::{EncodeOptions, Entry, Model, ModelKind, Partition, partition};
use crate::verdict::Validity;

mod checker;
pub mod search;
#[cfg(test)]
mod tests;
pub mod unique;
#[cfg(test)]
mod unique_tests;

pub use checker::Linearizable;
use search::{Budget, GaveUp, SearchResult, SearchStats};

/// Options of a linearizability check.
#[derive(Debug, Clone)]
pub struct LinearOptions {
    /// The model.
    pub model: ModelKind,
    /// Initial value of every register (None: the format's default, else null).
    pub initial: Option<Value>,
    /// Time budget in seconds (None: unlimited).
    pub time_limit: Option<f64>,
    /// Memory bound in bytes for all search caches together.
    pub memory_limit: usize,
    /// Always search, even where the written values are unique (for
    /// benchmarks and tests of the search itself).
    pub search_only: bool,
    /// Decide every key even after one is proven not linearizable (by
    /// default the others then get as much extra time as the check took so
    /// far, and those still open are reported as not decided).
    pub all_keys: bool,
}

impl LinearOptions {
    /// Defaults: no time limit, [`default_memory_limit`].
    pub fn new(model: ModelKind) -> Self {
        LinearOptions {
            model,
            initial: None,
            time_limit: None,
            memory_limit: default_memory_limit(),
            all_keys: false,
            search_only: false,
        }
    }
}

/// The default memory bound of the search: a quarter of the machine's
/// physical memory, at most 4 GiB (1 GiB when the amount is unknown).
pub fn default_memory_limit() -> usize {
    const MAX: usize = 4 << 30;
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib.saturating_mul(1024))
    });
    total.map_or(1 << 30, |t| (t / 4).min(MAX))
}

/// An operation as shown in a witness.
#[derive(Debug, Clone, Serialize)]
pub struct OpView {
    /// Index of the invocation event.
    pub index: u64,
    /// Index of the completion event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub complete_index: Option<u64>,
    /// The client process.
    pub process: i64,
    /// ok, fail, info or pending.
    #[serde(rename = "type")]
    pub outcome: Outcome,
    /// The function.
    pub f: String,
    /// The key, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<Value>,
    /// The invocation's value.
    pub value: Value,
    /// The completion's value.
    pub result: Value,
    /// Line of the invocation in the source.
    pub line: usize,
    /// Line of the completion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub complete_line: Option<usize>,
    /// A human description.
    pub text: String,
}

impl OpView {
    /// The view of a history operation.
    pub fn of(op: &Operation) -> Self {
        OpView {
            index: op.invoke_index,
            complete_index: op.complete_index(),
            process: op.process,
            outcome: op.outcome,
            f: op.f.to_string(),
            key: op.key.as_deref().cloned(),
            value: op.invoke_value.clone(),
            result: op.value.clone(),
            line: op.invoke_line(),
            complete_line: op.complete_line(),
            text: op.describe(),
        }
    }
}

/// Why a history is not linearizable, for one partition.
#[derive(Debug, Clone, Serialize)]
pub struct Witness {
    /// The anomaly type.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The key, for keyed models.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<Value>,
    /// The completed operation that no order of the history can place.
    pub op: OpView,
    /// Operations whose intervals overlap it.
    pub concurrent: Vec<OpView>,
    /// Length of the longest linearizable prefix found before it.
    pub prefix_len: usize,
    /// The last operations of that prefix, in linearization order (at most
    /// [`PREFIX_SHOWN`]).
    pub prefix: Vec<OpView>,
    /// The states the object could be in just before the operation (after
    /// every operation that completed before it).
    pub states: Vec<Value>,
    /// True when there were more states than listed.
    pub more_states: bool,
    /// One or two plain sentences.
    pub explanation: String,
}

/// How many operations of the prefix a witness lists.
pub const PREFIX_SHOWN: usize = 50;

/// Counters of a check.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LinearStats {
    /// Independent partitions checked.
    pub partitions: usize,
    /// Operations given to the search (those that constrain something).
    pub searched_ops: usize,
    /// Configurations visited, all partitions.
    pub configs: u64,
    /// Model steps tried.
    pub steps: u64,
    /// Largest cache of one partition, in bytes.
    pub peak_cache_bytes: usize,
    /// Partitions decided in polynomial time (unique written values),
    /// without the search.
    pub polynomial: usize,
}

/// A key whose verdict was not decided because another key was already
/// proven not linearizable (the verdict of the whole check stands).
#[derive(Debug, Clone, Serialize)]
pub struct NotDecided {
    /// The key.
    pub key: Option<Value>,
    /// Why: "stopped after the first violation", or the budget that ran out.
    pub reason: String,
}

/// What [`NotDecided::reason`] says for a key stopped after the first
/// violation.
pub const STOPPED_AFTER_VIOLATION: &str = "stopped after the first violation";

/// The result of a linearizability check.
#[derive(Debug, Clone, Serialize)]
pub struct LinearReport {
    /// true, false or "unknown".
    pub valid: Validity,
    /// The model checked against.
    pub model: &'static str,
    /// Witnesses, one per partition that is not linearizable.
    pub anomalies: Vec<Witness>,
    /// Why the verdict is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown_reason: Option<String>,
    /// Keys left open once another key was proven not linearizable.
    pub not_decided: Vec<NotDecided>,
    /// Counters.
    pub stats: LinearStats,
}

/// Checks `history` for linearizability against `opts.model`.
pub fn check(history: &History, opts: &LinearOptions) -> Result<LinearReport, ModelError> {
    let enc = EncodeOptions::new(history, opts.initial.as_ref());
    match opts.model {
        kind @ (ModelKind::Register | ModelKind::CasRegister | ModelKind::Kv) => {
            let mut m = RegisterModel::new(kind);
            m.set_initial(&enc.initial);
            let parts = partition(history, true, |op| m.encode(op, &enc))?;
            let decide = |e: &[Entry<RegOp>]| {
                if opts.search_only {
                    None
                } else {
                    unique::decide(&m, e)
                }
            };
            Ok(run(&m, history, parts, opts, &decide))
        }
        ModelKind::MultiRegister => {
            let mut m = MultiRegisterModel::new();
            m.set_initial(&enc.initial);
            let parts = partition(history, false, |op| m.encode(op, &enc))?;
            Ok(run(&m, history, parts, opts, &|_| None))
        }
        ModelKind::Mutex => {
            let m = MutexModel;
            let parts = partition(history, false, |op| m.encode(op))?;
            Ok(run(&m, history, parts, opts, &|_| None))
        }
    }
}

/// A decision procedure tried before the search: `None` when it does not
/// apply to the partition.
type Decider<'a, M> =
    dyn Fn(&[Entry<<M as Model>::Op>]) -> Option<SearchResult<<M as Model>::State>> + Sync + 'a;

enum PartOutcome<M: Model> {
    Valid,
    Invalid(search::Stuck<M::State>),
    GaveUp(GaveUp),
}

fn run<M: Model>(
    model: &M,
    history: &History,
    mut parts: Vec<Partition<M::Op>>,
    opts: &LinearOptions,
    decide: &Decider<'_, M>,
) -> LinearReport {
    let mut budget = Budget::new(opts.time_limit, opts.memory_limit);
    budget.stop_after_violation = !opts.all_keys;
    // Largest first, so that the parallel tail is short.
    parts.sort_by_key(|p| std::cmp::Reverse(p.entries.len()));
    let started = Instant::now();
    let results: Vec<(PartOutcome<M>, SearchStats)> = parts
        .par_iter()
        .with_max_len(1)
        .map(|p| {
            let mut stats = SearchStats::default();
            // The polynomial decision is always made (it is quick); the
            // search only while no violation has been found for long.
            let result = match decide(&p.entries) {
                Some(r) => {
                    stats.polynomial = true;
                    r
                }
                None if budget.past_violation_grace() => {
                    return (PartOutcome::GaveUp(GaveUp::AfterViolation), stats);
                }
                None => search::search(model, &p.entries, &budget, &mut stats),
            };
            let r = match result {
                SearchResult::Linearizable => PartOutcome::Valid,
                SearchResult::NotLinearizable(s) => {
                    budget.record_violation();
                    PartOutcome::Invalid(s)
                }
                SearchResult::GaveUp(g) => PartOutcome::GaveUp(g),
            };
            (r, stats)
        })
        .collect();
    let elapsed = started.elapsed().as_secs_f64();

    let mut stats = LinearStats {
        partitions: parts.len(),
        searched_ops: parts.iter().map(|p| p.entries.len()).sum(),
        ..LinearStats::default()
    };
    let mut anomalies = Vec::new();
    let mut gave_up: Option<(GaveUp, Option<Value>)> = None;
    let mut open: Vec<(GaveUp, Option<Value>)> = Vec::new();
    for (part, (outcome, s)) in parts.iter().zip(results) {
        stats.configs += s.configs;
        stats.steps += s.steps;
        stats.polynomial += usize::from(s.polynomial);
        stats.peak_cache_bytes = stats.peak_cache_bytes.max(s.cache_bytes);
        match outcome {
            PartOutcome::Valid => {}
            PartOutcome::Invalid(stuck) => anomalies.push(witness(model, history, part, stuck)),
            PartOutcome::GaveUp(g) => {
                open.push((g.clone(), part.key.clone()));
                // Report the partition that ran out, not those stopped for it.
                if gave_up
                    .as_ref()
                    .is_none_or(|(prev, _)| *prev == GaveUp::Elsewhere)
                {
                    gave_up = Some((g, part.key.clone()));
                }
            }
        }
    }
    // Keys in a stable order for the reader.
    anomalies.sort_by_key(|w| w.op.index);
    let not_decided = if anomalies.is_empty() {
        Vec::new()
    } else {
        open.into_iter()
            .map(|(g, key)| NotDecided {
                key,
                reason: match g {
                    GaveUp::AfterViolation => STOPPED_AFTER_VIOLATION.to_string(),
                    GaveUp::Time => "time limit reached".to_string(),
                    GaveUp::Memory | GaveUp::Elsewhere => "memory bound reached".to_string(),
                },
            })
            .collect()
    };
    let (valid, unknown_reason) = if !anomalies.is_empty() {
        (Validity::Invalid, None)
    } else if let Some((g, key)) = gave_up {
        let at = match key {
            Some(k) => format!(" while checking key {}", compact(&k)),
            None => String::new(),
        };
        let reason = match g {
            GaveUp::Time => format!(
                "time limit of {} s reached{at} after {:.1} s and {} configurations",
                opts.time_limit.unwrap_or(0.0),
                elapsed,
                stats.configs
            ),
            // Only with a violation, which is handled above.
            GaveUp::Memory | GaveUp::Elsewhere | GaveUp::AfterViolation => format!(
                "memory bound of {} MiB reached{at} after {} configurations",
                opts.memory_limit >> 20,
                stats.configs
            ),
        };
        (Validity::Unknown, Some(reason))
    } else {
        (Validity::Valid, None)
    };
    LinearReport {
        valid,
        model: opts.model.name(),
        anomalies,
        unknown_reason,
        not_decided,
        stats,
    }
}

fn witness<M: Model>(
    model: &M,
    history: &History,
    part: &Partition<M::Op>,
    stuck: search::Stuck<M::State>,
) -> Witness {
    let entries: &[Entry<M::Op>] = &part.entries;
    let bad = &entries[stuck.op];
    let bad_op = &history.ops[bad.id as usize];
    let bad_ret = bad.ret.unwrap_or(u32::MAX);
    let concurrent: Vec<OpView> = entries
        .iter()
        .filter(|e| e.id != bad.id && e.call < bad_ret && e.ret.is_none_or(|r| r > bad.call))
        .map(|e| OpView::of(&history.ops[e.id as usize]))
        .collect();
    let prefix_len = stuck.prefix.len();
    let prefix: Vec<OpView> = stuck.prefix[prefix_len.saturating_sub(PREFIX_SHOWN)..]
        .iter()
        .map(|&i| OpView::of(&history.ops[entries[i].id as usize]))
        .collect();
    let states: Vec<Value> = stuck.states.iter().map(|s| model.render(s)).collect();
    let shown: Vec<String> = states.iter().map(compact).collect();
    let states_text = match shown.len() {
        0 => "no state".to_string(),
        1 => shown[0].clone(),
        _ => format!(
            "one of {}{}",
            shown.join(", "),
            if stuck.more_states { ", ..." } else { "" }
        ),
    };
    let what = if bad_op.outcome == Outcome::Ok && bad_op.value != bad_op.invoke_value {
        format!("{} returned {}", bad_op.f, compact(&bad_op.value))
    } else {
        format!("{} {}", bad_op.f, compact(bad_op.effective_value()))
    };
    let others = match concurrent.len() {
        0 => "no operation was concurrent with it".to_string(),
        1 => "the one operation concurrent with it does not help".to_string(),
        n => format!("no order of the {n} operations concurrent with it helps"),
    };
    let object = if part.key.is_some() { "key" } else { "object" };
    let before = if stuck.exhaustive {
        format!("after every operation that completed before it, the {object} could only be")
    } else {
        format!(
            "the written values are unique, which fixes the order of the writes; after one \
             longest linearizable prefix the {object} is"
        )
    };
    let explanation = format!(
        "process {}'s {} (line {}) cannot be placed in any order: {before} {}, where it cannot \
         happen, and {others}.",
        bad_op.process,
        what,
        bad_op.complete_line().unwrap_or(bad_op.invoke_line()),
        states_text,
    );
    Witness {
        kind: "not-linearizable",
        key: part.key.clone(),
        op: OpView::of(bad_op),
        concurrent,
        prefix_len,
        prefix,
        states,
        more_states: stuck.more_states,
        explanation,
    }
}

/// A short multi-line text for the terminal.
pub fn render_text(w: &Witness) -> String {
    let mut s = String::new();
    if let Some(k) = &w.key {
        s.push_str(&format!("  key {}:\n", compact(k)));
    }
    s.push_str(&format!("  cannot place: {}\n", w.op.text));
    s.push_str(&format!("  {}\n", w.explanation));
    let states: Vec<String> = w.states.iter().map(compact).collect();
    s.push_str(&format!(
        "  states just before: {}{}\n",
        states.join(", "),
        if w.more_states { ", ..." } else { "" }
    ));
    if !w.concurrent.is_empty() {
        s.push_str("  concurrent with:\n");
        for op in w.concurrent.iter().take(8) {
            s.push_str(&format!("    {}\n", op.text));
        }
        if w.concurrent.len() > 8 {
            s.push_str(&format!("    ... and {} more\n", w.concurrent.len() - 8));
        }
    }
    s.push_str(&format!(
        "  longest linearizable prefix: {} operations",
        w.prefix_len
    ));
    if let Some(last) = w.prefix.last() {
        s.push_str(&format!(", the last: {}", last.text));
    }
    s.push('\n');
    s
}

/// The witness as JSON.
pub fn witness_json(w: &Witness) -> Value {
    serde_json::to_value(w).unwrap_or_else(|e| json!({"error": e.to_string()}))
}
