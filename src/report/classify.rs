//! The measured CAP/PACELC classification of a store, from a run's own
//! history.
//!
//! - **P** (what the store does during a partition): the share of client
//!   operations that succeeded (`ok`) on each side of every partition. A
//!   node is on the *majority* side when it is in a connected group of more
//!   than half of the nodes under the nemesis's grudge, on the *minority*
//!   side otherwise; an operation belongs to the side of the node it talked
//!   to (`node`) and to the partition during which it was invoked.
//!   `PA` when reads or writes on the minority side kept succeeding (at least
//!   half of them `ok`); otherwise `PC` when the consistency checks hold,
//!   `P-` (neither available nor consistent) when they are violated, and
//!   `P?` when there was no partition, no operation on a minority side, or
//!   the checks could not decide.
//! - **E** (else, with no fault active): `EC` when the operations performed
//!   with no fault active are consistent, `EL` when they are not. The whole
//!   run being valid settles it; otherwise the linearizability checker runs
//!   again on the history with every read and compare-and-set that was
//!   invoked while a fault was active taken out (a successful
//!   compare-and-set stays as the write it did), which keeps every write's
//!   effect: if that history is still not linearizable, the store gave up
//!   consistency with nothing wrong in the network. The latency
//!   percentiles of reads and writes outside every fault window are the
//!   price of that choice, measured and shown next to the letter; an
//!   absolute latency has no store-independent threshold, so the letter
//!   does not rest on it.

use std::collections::{BTreeMap, BTreeSet};

use faultline_checkers::history::{History, Outcome};
use faultline_checkers::linear::{self, LinearOptions};
use faultline_checkers::{ModelKind, Validity};
use serde::Serialize;
use serde_json::Value;

/// The share of `ok` operations below which a side counts as unavailable.
pub const AVAILABLE: f64 = 0.5;

/// One fault interval, as the history's nemesis events show it.
#[derive(Clone, Debug, Serialize)]
pub struct FaultWindow {
    /// The fault's function (`partition`, `kill`...).
    pub f: String,
    /// Nanoseconds since the start of the run.
    pub start: i64,
    /// Nanoseconds (the end of the history when it never ended).
    pub end: i64,
    /// The fault's value (the grudge for partitions).
    pub value: Value,
    /// The history line of the start event.
    pub line: usize,
}

/// Pairs the nemesis's start and end events into intervals. A fault with
/// no end lasts to the end of the history; events without a phase are
/// instants.
pub fn fault_windows(history: &History) -> Vec<FaultWindow> {
    let end_of_history = history_end(history);
    let mut out = Vec::new();
    let mut used = vec![false; history.faults.len()];
    for (i, e) in history.faults.iter().enumerate() {
        let phase = e.extra.get("phase").and_then(Value::as_str);
        let Some(t0) = e.time else { continue };
        match phase {
            Some("start") => {
                let end = history
                    .faults
                    .iter()
                    .enumerate()
                    .skip(i + 1)
                    .find(|(j, x)| {
                        !used[*j]
                            && x.f == e.f
                            && x.value == e.value
                            && x.extra.get("phase").and_then(Value::as_str) == Some("end")
                    })
                    .map(|(j, x)| (j, x.time.unwrap_or(end_of_history)));
                let end = match end {
                    Some((j, t)) => {
                        used[j] = true;
                        t
                    }
                    None => end_of_history,
                };
                out.push(FaultWindow {
                    f: e.f.to_string(),
                    start: t0,
                    end: end.max(t0),
                    value: e.value.clone(),
                    line: e.line,
                });
            }
            Some("end") => {}
            _ => out.push(FaultWindow {
                f: e.f.to_string(),
                start: t0,
                end: t0,
                value: e.value.clone(),
                line: e.line,
            }),
        }
    }
    out
}

/// The last time in the history (nanoseconds).
pub fn history_end(history: &History) -> i64 {
    let ops = history
        .ops
        .iter()
        .filter_map(|o| o.complete_time().or(o.invoke_time()))
        .max()
        .unwrap_or(0);
    let faults = history
        .faults
        .iter()
        .filter_map(|e| e.time)
        .max()
        .unwrap_or(0);
    ops.max(faults)
}

/// Successes of one kind of operation.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Tally {
    /// Operations invoked.
    pub ops: u64,
    /// Of which `ok`.
    pub ok: u64,
    /// Of which `fail`.
    pub fail: u64,
    /// Of which `info` or never completed.
    pub info: u64,
    /// `ok / ops` (0 when there were none).
    pub availability: f64,
}

impl Tally {
    fn add(&mut self, o: Outcome) {
        self.ops += 1;
        match o {
            Outcome::Ok => self.ok += 1,
            Outcome::Fail => self.fail += 1,
            _ => self.info += 1,
        }
        self.availability = self.ok as f64 / self.ops as f64;
    }
}

/// One side of the partitions.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Side {
    /// Nodes that were on this side in some partition.
    pub nodes: BTreeSet<String>,
    /// Every operation.
    pub all: Tally,
    /// Reads.
    pub read: Tally,
    /// Everything else (writes, compare-and-set, adds).
    pub write: Tally,
}

/// Behaviour during partitions.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PartitionStats {
    /// Partition windows.
    pub windows: usize,
    /// Seconds of partition.
    pub seconds: f64,
    /// The majority side.
    pub majority: Side,
    /// The minority side.
    pub minority: Side,
}

/// Latency percentiles, milliseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Percentiles {
    /// Successful operations measured.
    pub n: u64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
}

/// Behaviour with no fault active.
#[derive(Clone, Debug, Serialize)]
pub struct NormalStats {
    /// Seconds of the run with no fault active.
    pub seconds: f64,
    /// Reads.
    pub read: Percentiles,
    /// Writes (and every other function).
    pub write: Percentiles,
    /// Whether the operations outside fault windows are consistent.
    pub consistent: Validity,
    /// How that was decided.
    pub consistency_basis: String,
}

/// The classification and the numbers it rests on.
#[derive(Clone, Debug, Serialize)]
pub struct Classification {
    /// `PC/EC`, `PA/EL`, ... .
    pub label: String,
    /// `PA`, `PC`, `P-` or `P?`.
    pub p: String,
    /// `EC`, `EL` or `E?`.
    pub e: String,
    /// The run's consistency verdict (every check).
    pub valid: Validity,
    /// During partitions.
    pub partition: PartitionStats,
    /// With no fault active.
    pub normal: NormalStats,
    /// The rule, in words.
    pub rule: String,
    /// Why each letter, with the numbers.
    pub reasons: Vec<String>,
}

/// The rule that [`classify`] applies, as shown to users.
pub const RULE: &str = "P: PA if reads or writes on the minority side of the partitions \
    succeeded at least half of the time; else PC if the consistency checks hold, P- if they \
    are violated (neither available nor consistent), P? if undecided or never partitioned. \
    E: EC if the operations performed with no fault active are consistent (the whole run is \
    valid, or the history with every read and cas invoked during a fault taken out is still \
    linearizable), EL if not, E? if undecided; the p50/p99 latency outside fault windows is \
    the price shown.";

/// What [`classify`] needs besides the history.
#[derive(Clone, Debug)]
pub struct ClassifyInput {
    /// The verdict of every check together.
    pub valid: Validity,
    /// The linearizability model, when the run was checked for it (for the
    /// E letter of an invalid run).
    pub model: Option<ModelKind>,
    /// Time budget of that re-check, seconds.
    pub time_limit: Option<f64>,
}

fn is_final(o: &faultline_checkers::history::Operation) -> bool {
    o.extra
        .as_ref()
        .and_then(|m| m.get("phase"))
        .is_some_and(|p| p == "final")
}

fn node_of(o: &faultline_checkers::history::Operation) -> Option<&str> {
    o.extra
        .as_ref()
        .and_then(|m| m.get("node"))
        .and_then(Value::as_str)
}

/// The nodes in a connected group of more than half of `nodes` under the
/// grudge (`node -> nodes it drops`; two nodes talk when neither drops the
/// other). Empty when there is no such group.
pub fn majority(grudge: &Value, nodes: &BTreeSet<String>) -> BTreeSet<String> {
    let drops = |a: &str, b: &str| -> bool {
        grudge
            .get(a)
            .and_then(Value::as_array)
            .is_some_and(|l| l.iter().any(|x| x.as_str() == Some(b)))
    };
    let all: Vec<&String> = nodes.iter().collect();
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for start in &all {
        if seen.contains(start.as_str()) {
            continue;
        }
        let mut group: BTreeSet<&str> = BTreeSet::new();
        let mut stack = vec![start.as_str()];
        while let Some(a) = stack.pop() {
            if !group.insert(a) {
                continue;
            }
            for b in &all {
                if !group.contains(b.as_str()) && !drops(a, b) && !drops(b, a) {
                    stack.push(b.as_str());
                }
            }
        }
        seen.extend(group.iter().copied());
        if group.len() * 2 > nodes.len() {
            return group.into_iter().map(str::to_string).collect();
        }
    }
    BTreeSet::new()
}

fn percentiles(mut v: Vec<i64>) -> Percentiles {
    if v.is_empty() {
        return Percentiles::default();
    }
    v.sort_unstable();
    let q = |p: f64| -> f64 {
        let i = ((v.len() as f64 - 1.0) * p).round() as usize;
        (v[i.min(v.len() - 1)] as f64 / 1e6 * 1000.0).round() / 1000.0
    };
    Percentiles {
        n: v.len() as u64,
        p50_ms: q(0.5),
        p99_ms: q(0.99),
    }
}

/// The history with every read and compare-and-set invoked during a fault
/// taken out (a cas that may have taken effect stays, as the write it
/// did). Removing reads from a linearizable history keeps it linearizable,
/// so a violation left in this history happened with no fault active.
pub fn outside_faults(history: &History, windows: &[FaultWindow]) -> History {
    let during = |t: Option<i64>| {
        t.is_some_and(|t| {
            windows
                .iter()
                .any(|w| w.end > w.start && t >= w.start && t < w.end)
        })
    };
    let mut h = History {
        ops: Vec::with_capacity(history.ops.len()),
        faults: Vec::new(),
        semantics: history.semantics.clone(),
        events: history.events,
        torn_last_line: history.torn_last_line,
    };
    for o in &history.ops {
        let mut o = o.clone();
        if during(o.invoke_time()) {
            match &*o.f {
                "read" => continue,
                "cas" | "compare-and-set" => {
                    if o.outcome == Outcome::Fail {
                        continue;
                    }
                    let Some(new) = o.invoke_value.as_array().and_then(|a| a.get(1)).cloned()
                    else {
                        continue;
                    };
                    o.f = "write".into();
                    o.invoke_value = new.clone();
                    if o.outcome == Outcome::Ok {
                        o.value = new;
                    }
                }
                _ => {}
            }
        }
        o.id = h.ops.len();
        h.ops.push(o);
    }
    h
}

/// Classifies the store from the history of a run and its verdict.
pub fn classify(history: &History, input: &ClassifyInput) -> Classification {
    let windows = fault_windows(history);
    let end = history_end(history);
    let mut nodes: BTreeSet<String> = history
        .ops
        .iter()
        .filter_map(node_of)
        .map(str::to_string)
        .collect();
    let partitions: Vec<(&FaultWindow, BTreeSet<String>)> = windows
        .iter()
        .filter(|w| w.f == "partition" && w.value.is_object())
        .map(|w| {
            if let Some(m) = w.value.as_object() {
                for (k, v) in m {
                    nodes.insert(k.clone());
                    for x in v.as_array().into_iter().flatten() {
                        if let Some(s) = x.as_str() {
                            nodes.insert(s.to_string());
                        }
                    }
                }
            }
            (w, BTreeSet::new())
        })
        .collect();
    let partitions: Vec<(&FaultWindow, BTreeSet<String>)> = partitions
        .into_iter()
        .map(|(w, _)| (w, majority(&w.value, &nodes)))
        .collect();

    let mut part = PartitionStats {
        windows: partitions.len(),
        seconds: partitions
            .iter()
            .map(|(w, _)| (w.end - w.start) as f64 / 1e9)
            .sum(),
        ..PartitionStats::default()
    };
    for (_, maj) in &partitions {
        for n in &nodes {
            if maj.contains(n) {
                part.majority.nodes.insert(n.clone());
            } else {
                part.minority.nodes.insert(n.clone());
            }
        }
    }
    let mut reads = Vec::new();
    let mut writes = Vec::new();
    for o in history.ops.iter().filter(|o| !is_final(o)) {
        let Some(t0) = o.invoke_time() else { continue };
        if let Some((_, maj)) = partitions.iter().find(|(w, _)| t0 >= w.start && t0 < w.end) {
            let Some(node) = node_of(o) else { continue };
            let side = if maj.contains(node) {
                &mut part.majority
            } else {
                &mut part.minority
            };
            side.all.add(o.outcome);
            if &*o.f == "read" {
                side.read.add(o.outcome);
            } else {
                side.write.add(o.outcome);
            }
        }
        if o.outcome != Outcome::Ok {
            continue;
        }
        let Some(t1) = o.complete_time() else {
            continue;
        };
        if windows.iter().any(|w| t0 <= w.end && t1 >= w.start) {
            continue;
        }
        if &*o.f == "read" {
            reads.push(t1 - t0);
        } else {
            writes.push(t1 - t0);
        }
    }
    // Time with no fault active.
    let mut spans: Vec<(i64, i64)> = windows.iter().map(|w| (w.start, w.end)).collect();
    spans.sort_unstable();
    let (mut covered, mut cur): (i64, Option<(i64, i64)>) = (0, None);
    for (a, b) in spans {
        cur = match cur {
            Some((s, e)) if a <= e => Some((s, e.max(b))),
            Some((s, e)) => {
                covered += e - s;
                Some((a, b))
            }
            None => Some((a, b)),
        };
    }
    if let Some((s, e)) = cur {
        covered += e - s;
    }

    let mut reasons = Vec::new();
    let min = &part.minority;
    let best = min.read.availability.max(min.write.availability);
    let p = if part.windows == 0 {
        reasons.push("P?: the run had no partition.".to_string());
        "P?"
    } else if min.all.ops == 0 {
        reasons.push(
            "P?: no operation was invoked on a minority-side node during a partition.".to_string(),
        );
        "P?"
    } else {
        let desc = format!(
            "on the minority side ({}) {:.0}% of reads ({} of {}) and {:.0}% of writes ({} of {}) \
             succeeded; on the majority side {:.0}% of all operations",
            min.nodes.iter().cloned().collect::<Vec<_>>().join(", "),
            min.read.availability * 100.0,
            min.read.ok,
            min.read.ops,
            min.write.availability * 100.0,
            min.write.ok,
            min.write.ops,
            part.majority.all.availability * 100.0
        );
        if best >= AVAILABLE {
            reasons.push(format!(
                "PA: during {} partition(s), {desc}: the minority side stayed available.",
                part.windows
            ));
            "PA"
        } else {
            match input.valid {
                Validity::Valid => {
                    reasons.push(format!("PC: during {} partition(s), {desc}: the minority side refused, and the consistency checks hold.", part.windows));
                    "PC"
                }
                Validity::Invalid => {
                    reasons.push(format!("P-: during {} partition(s), {desc}: the minority side refused, yet the consistency checks are violated.", part.windows));
                    "P-"
                }
                Validity::Unknown => {
                    reasons.push(format!("P?: during {} partition(s), {desc}: the minority side refused, but the consistency checks could not decide.", part.windows));
                    "P?"
                }
            }
        }
    };

    let (consistent, basis) = match (input.valid, input.model) {
        (Validity::Valid, _) => (
            Validity::Valid,
            "the whole run is consistent, so is every part of it".to_string(),
        ),
        (Validity::Unknown, _) => (
            Validity::Unknown,
            "the consistency checks could not decide".to_string(),
        ),
        (Validity::Invalid, Some(model))
            if matches!(
                model,
                ModelKind::Register | ModelKind::CasRegister | ModelKind::Kv
            ) =>
        {
            let sub = outside_faults(history, &windows);
            let opts = LinearOptions {
                time_limit: input.time_limit.or(Some(60.0)),
                ..LinearOptions::new(model)
            };
            match linear::check(&sub, &opts) {
                Ok(r) => {
                    let basis = match (r.valid, r.anomalies.first()) {
                        (Validity::Invalid, Some(w)) => format!(
                            "not linearizable even with every read and cas invoked during a fault taken out: {}",
                            w.explanation.trim_end_matches('.')
                        ),
                        (Validity::Valid, _) => "linearizable with every read and cas invoked during a fault taken out: the violations happened during faults".to_string(),
                        _ => format!(
                            "the re-check without the reads and cas during faults could not decide: {}",
                            r.unknown_reason.unwrap_or_default()
                        ),
                    };
                    (r.valid, basis)
                }
                Err(e) => (
                    Validity::Unknown,
                    format!("the re-check failed: {}", e.reason),
                ),
            }
        }
        (Validity::Invalid, _) => (
            Validity::Unknown,
            "the violations cannot be placed in or out of the fault windows for this workload"
                .to_string(),
        ),
    };
    let normal = NormalStats {
        seconds: ((end - covered).max(0)) as f64 / 1e9,
        read: percentiles(reads),
        write: percentiles(writes),
        consistent,
        consistency_basis: basis.clone(),
    };
    let lat = format!(
        "outside faults ({:.1} s) reads p50 {} ms, p99 {} ms ({} ops), writes p50 {} ms, p99 {} ms ({} ops)",
        normal.seconds,
        normal.read.p50_ms,
        normal.read.p99_ms,
        normal.read.n,
        normal.write.p50_ms,
        normal.write.p99_ms,
        normal.write.n
    );
    let e = match consistent {
        Validity::Valid => {
            reasons.push(format!("EC: {basis}; the price: {lat}."));
            "EC"
        }
        Validity::Invalid => {
            reasons.push(format!("EL: {basis}; what it buys: {lat}."));
            "EL"
        }
        Validity::Unknown => {
            reasons.push(format!("E?: {basis}; {lat}."));
            "E?"
        }
    };
    Classification {
        label: format!("{p}/{e}"),
        p: p.to_string(),
        e: e.to_string(),
        valid: input.valid,
        partition: part,
        normal,
        rule: RULE.to_string(),
        reasons,
    }
}

/// Per-node counts of operations, for the report (unused nodes omitted).
pub fn node_counts(history: &History) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for o in &history.ops {
        if let Some(n) = node_of(o) {
            *m.entry(n.to_string()).or_insert(0) += 1;
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn majority_of_grudges() {
        let nodes: BTreeSet<String> = ["n1", "n2", "n3"].iter().map(|s| s.to_string()).collect();
        let g = json!({"n1": ["n2", "n3"], "n2": ["n1"], "n3": ["n1"]});
        let m = majority(&g, &nodes);
        assert_eq!(m.into_iter().collect::<Vec<_>>(), vec!["n2", "n3"]);
        // A bridge: n2 talks to both, n1 and n3 do not talk: one group of 3.
        let g = json!({"n1": ["n3"], "n3": ["n1"]});
        assert_eq!(majority(&g, &nodes).len(), 3);
        // Everyone isolated: no majority.
        let g = json!({"n1": ["n2", "n3"], "n2": ["n1", "n3"], "n3": ["n1", "n2"]});
        assert!(majority(&g, &nodes).is_empty());
    }

    #[test]
    fn percentiles_of_small_sets() {
        let p = percentiles(vec![1_000_000, 2_000_000, 3_000_000]);
        assert_eq!(p.n, 3);
        assert_eq!(p.p50_ms, 2.0);
        assert_eq!(p.p99_ms, 3.0);
        assert_eq!(percentiles(Vec::new()).n, 0);
    }
}
