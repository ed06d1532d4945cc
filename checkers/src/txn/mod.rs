//! Transactional isolation checking, as Elle does it (Kingsbury and
//! Alvaro, VLDB 2020): infer version orders from what transactions read,
//! build the dependency graph of the transactions that may have committed
//! (ww, wr, rw edges, plus process and real-time order), find its cycles
//! and the anomalies that need none, and say which consistency models they
//! rule out.
//!
//! - [`micro`]: transactions and micro-ops read from a history;
//! - [`list_append`], [`rw_register`]: version orders, edges, and the
//!   anomalies found without cycles, per data type;
//! - [`graph`]: the dependency graph (petgraph);
//! - [`cycles`]: components and the shortest cycle of each class;
//! - [`models`]: which anomalies rule out which model;
//! - [`stream`]: transactions read straight from events, without a
//!   history (the fast path for large files);
//! - [`witness`]: cycles as explained anomalies; [`svg`]: a drawing.

pub mod anomaly;
mod checker;
pub mod context;
pub mod cycles;
#[cfg(test)]
mod differential;
pub mod graph;
pub mod hash;
pub mod list_append;
pub mod micro;
pub mod models;
pub mod rw_register;
pub mod stream;
pub mod svg;
#[cfg(test)]
mod tests;
pub mod witness;

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;

use crate::history::History;
use crate::verdict::Validity;
pub use anomaly::{Anomaly, AnomalyType};
pub use checker::Isolation;
pub use micro::{TxnInputError, TxnModel};
pub use models::Model;

use context::Ctx;
use graph::{ExplainEdge, Kinds};
use micro::{Status, Txns};

/// What to check.
#[derive(Clone, Debug)]
pub struct TxnOptions {
    /// list-append or rw-register.
    pub model: TxnModel,
    /// The consistency models to check (see [`default_models`]).
    pub models: Vec<Model>,
    /// Give up (unknown) at this instant.
    pub deadline: Option<Instant>,
    /// Give up (unknown) when the graph would need more bytes than this.
    pub memory_limit: usize,
}

/// The models checked when none are named: strict serializability when the
/// history's order is real time, strong session serializability when only
/// its sessions are known (the Plume format).
pub fn default_models(realtime: bool) -> Vec<Model> {
    if realtime {
        vec![Model::StrictSerializable]
    } else {
        vec![Model::StrongSessionSerializable]
    }
}

/// The verdict on one model.
#[derive(Clone, Debug, Serialize)]
pub struct ModelVerdict {
    /// The model.
    pub model: Model,
    /// Holds (true), violated (false) or unknown.
    pub valid: Validity,
    /// The anomaly types that rule it out.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub violated_by: Vec<String>,
}

/// Counters.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TxnStats {
    /// Transactions read.
    pub txns: usize,
    /// Committed (`ok`) transactions.
    pub committed: usize,
    /// Aborted (`fail`) transactions.
    pub aborted: usize,
    /// Indefinite (`info` or never completed) transactions.
    pub indefinite: usize,
    /// Micro-operations.
    pub mops: usize,
    /// Distinct keys.
    pub keys: usize,
    /// Edges of the dependency graph (before merging parallel edges).
    pub edges: usize,
    /// Strongly connected components of more than one transaction.
    pub components: usize,
    /// Transactions in the largest one.
    pub largest_component: usize,
    /// Milliseconds spent on version orders and edges.
    pub analysis_ms: f64,
    /// Milliseconds spent on components and cycles.
    pub cycles_ms: f64,
}

/// The result of a transactional check.
#[derive(Clone, Debug, Serialize)]
pub struct TxnReport {
    /// The data type.
    #[serde(serialize_with = "ser_model")]
    pub model: TxnModel,
    /// True when every requested model holds, false when one is violated,
    /// unknown when the budget ran out first.
    pub valid: Validity,
    /// The models requested.
    pub requested: Vec<Model>,
    /// Every model the graph built could decide, weakest first.
    pub models: Vec<ModelVerdict>,
    /// The strongest models that hold (several when none implies the
    /// others).
    pub strongest: Vec<Model>,
    /// The anomalies kept with witnesses (a few per type).
    pub anomalies: Vec<Anomaly>,
    /// How many anomalies of each type were found.
    pub anomaly_counts: BTreeMap<String, usize>,
    /// Why the verdict is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown_reason: Option<String>,
    /// Counters.
    pub stats: TxnStats,
}

fn ser_model<S: serde::Serializer>(m: &TxnModel, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(m.name())
}

/// Checks `history` (a history of `txn` operations).
pub fn check(history: &History, opts: &TxnOptions) -> Result<TxnReport, TxnInputError> {
    let t0 = Instant::now();
    let txns = Txns::read(history, opts.model)?;
    check_txns(&txns, Some(history), opts, t0)
}

/// Checks transactions already read (from `history` when there is one:
/// witnesses then quote its values; a streamed history has none). `t0` is
/// when the analysis started, for [`TxnStats::analysis_ms`].
pub fn check_txns(
    txns: &Txns,
    history: Option<&History>,
    opts: &TxnOptions,
    t0: Instant,
) -> Result<TxnReport, TxnInputError> {
    let mut ctx = Ctx::new(history, txns);
    let mask: Kinds = opts.models.iter().fold(0, |m, x| m | x.edges());
    let (facts, mut edges): (Box<dyn ExplainEdge>, graph::Edges) = match opts.model {
        TxnModel::ListAppend => {
            let (f, e) = list_append::analyze(&mut ctx)?;
            (Box::new(f), e)
        }
        TxnModel::RwRegister => {
            let (f, e) = rw_register::analyze(&mut ctx)?;
            (Box::new(f), e)
        }
    };
    if mask & graph::PROCESS != 0 {
        edges.add_process_order(txns);
    }
    let points = if mask & graph::REALTIME != 0 {
        edges.add_realtime_order(txns)
    } else {
        0
    };
    let mut stats = TxnStats {
        txns: txns.txns.len(),
        committed: txns
            .txns
            .iter()
            .filter(|t| t.status == Status::Committed)
            .count(),
        aborted: txns
            .txns
            .iter()
            .filter(|t| t.status == Status::Aborted)
            .count(),
        mops: txns.mops.len(),
        keys: txns.values.keys(),
        edges: edges.0.len(),
        ..TxnStats::default()
    };
    stats.indefinite = stats.txns - stats.committed - stats.aborted;
    let t1 = Instant::now();
    stats.analysis_ms = (t1 - t0).as_secs_f64() * 1e3;
    // petgraph: ~20 bytes an edge, ~8 a node, plus the search's arrays.
    let need = edges.0.len() * 40 + (txns.txns.len() + points) * 32;
    let mut unknown_reason = None;
    if need > opts.memory_limit {
        unknown_reason = Some(format!(
            "the dependency graph needs about {} MiB, over the memory limit of {} MiB",
            need >> 20,
            opts.memory_limit >> 20
        ));
    } else if opts.deadline.is_some_and(|d| Instant::now() >= d) {
        unknown_reason = Some("the time limit ran out before the cycle search".into());
    } else {
        let g = edges.build(txns.txns.len() + points);
        drop(edges);
        match cycles::find(&g, txns.txns.len(), mask, opts.deadline) {
            Ok((found, components)) => {
                stats.components = components.components;
                stats.largest_component = components.largest;
                witness::report_cycles(&mut ctx, facts.as_ref(), &found)
            }
            Err(cycles::OutOfTime) => {
                unknown_reason = Some("the time limit ran out during the cycle search".into())
            }
        }
    }
    stats.cycles_ms = t1.elapsed().as_secs_f64() * 1e3;
    Ok(verdicts(ctx, opts, mask, unknown_reason, stats))
}

fn verdicts(
    ctx: Ctx<'_>,
    opts: &TxnOptions,
    mask: Kinds,
    unknown_reason: Option<String>,
    stats: TxnStats,
) -> TxnReport {
    let mut models = Vec::new();
    for m in Model::ALL {
        if m.edges() & mask != m.edges() {
            continue;
        }
        let violated_by: Vec<String> = ctx
            .counts
            .keys()
            .filter(|&&a| m.violated_by(a))
            .map(|a| a.name())
            .collect();
        let valid = if !violated_by.is_empty() {
            Validity::Invalid
        } else if unknown_reason.is_some() {
            Validity::Unknown
        } else {
            Validity::Valid
        };
        models.push(ModelVerdict {
            model: m,
            valid,
            violated_by,
        });
    }
    let holding: Vec<Model> = models
        .iter()
        .filter(|v| v.valid == Validity::Valid)
        .map(|v| v.model)
        .collect();
    let strongest: Vec<Model> = holding
        .iter()
        .copied()
        .filter(|&m| !holding.iter().any(|&o| o != m && o.implies_model(m)))
        .collect();
    let valid = opts.models.iter().fold(Validity::Valid, |acc, m| {
        let v = models
            .iter()
            .find(|v| v.model == *m)
            .map_or(Validity::Unknown, |v| v.valid);
        acc.merge(v)
    });
    TxnReport {
        model: opts.model,
        valid,
        requested: opts.models.clone(),
        models,
        strongest,
        anomaly_counts: ctx.counts.iter().map(|(k, v)| (k.name(), *v)).collect(),
        anomalies: ctx.anomalies,
        unknown_reason,
        stats,
    }
}

impl TxnReport {
    /// The models violated, with the anomaly types that violate them: only
    /// the weakest violated ones (a violated model's stronger models are
    /// violated too).
    pub fn weakest_violated(&self) -> Vec<&ModelVerdict> {
        let bad: Vec<&ModelVerdict> = self
            .models
            .iter()
            .filter(|v| v.valid == Validity::Invalid)
            .collect();
        bad.iter()
            .copied()
            .filter(|v| {
                !bad.iter()
                    .any(|o| o.model != v.model && v.model.implies_model(o.model))
            })
            .collect()
    }
}
