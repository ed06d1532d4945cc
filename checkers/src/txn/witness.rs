//! Cycles as anomalies a person can read: each edge of the cycle with the
//! sentence that says why it is there.

use super::anomaly::{Anomaly, AnomalyType, WitnessEdge};
use super::context::{Ctx, KEEP_PER_TYPE};
use super::cycles::FoundCycle;
use super::graph::{ExplainEdge, kind_name};

/// Counts the cycles found and keeps the shortest few of each type, with
/// their explained edges.
pub fn report_cycles(ctx: &mut Ctx<'_>, facts: &dyn ExplainEdge, found: &[FoundCycle]) {
    let mut order: Vec<&FoundCycle> = found.iter().collect();
    order.sort_by_key(|c| (c.class, c.variant, c.steps.len()));
    for c in order {
        let kind = AnomalyType::Cycle(c.class, c.variant);
        let n = ctx.counts.entry(kind).or_insert(0);
        *n += 1;
        if *n > KEEP_PER_TYPE {
            continue;
        }
        let anomaly = explain(ctx, facts, c);
        ctx.anomalies.push(anomaly);
    }
}

/// One cycle as an anomaly.
pub fn explain(ctx: &Ctx<'_>, facts: &dyn ExplainEdge, c: &FoundCycle) -> Anomaly {
    let kind = AnomalyType::Cycle(c.class, c.variant);
    let cycle: Vec<WitnessEdge> = c
        .steps
        .iter()
        .map(|&(a, b, k)| WitnessEdge {
            from: ctx.name(a),
            to: ctx.name(b),
            kind: kind_name(k),
            why: facts.why(ctx, a, b, k),
        })
        .collect();
    let path: Vec<String> = c
        .steps
        .iter()
        .map(|&(a, _, k)| format!("{} -{}->", ctx.name(a), kind_name(k)))
        .collect();
    let first = c.steps.first().map_or(String::new(), |s| ctx.name(s.0));
    let explanation = format!(
        "a cycle of {} transactions: {} {first}",
        c.steps.len(),
        path.join(" ")
    );
    Anomaly {
        kind,
        explanation,
        txns: c.steps.iter().map(|s| ctx.txn_ref(s.0)).collect(),
        cycle,
        shortest: Some(c.shortest),
    }
}
