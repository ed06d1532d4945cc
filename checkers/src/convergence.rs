//! Convergence: after the faults are healed and the store has had a quiet
//! period, every node's final read of a key (operations with
//! `"phase": "final"` and a `node` field) must return the same value.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::history::{History, Outcome, compact};
use crate::linear::OpView;
use crate::set::is_final;
use crate::verdict::{CheckResult, Validity};

fn node_of(op: &crate::history::Operation) -> String {
    op.extra
        .as_ref()
        .and_then(|m| m.get("node"))
        .map(|n| n.as_str().map(str::to_string).unwrap_or_else(|| compact(n)))
        .unwrap_or_else(|| format!("process {}", op.process))
}

/// Checks that the final reads agree, key by key.
pub fn check(history: &History) -> CheckResult {
    // key -> node -> value (None when the final read did not succeed)
    let mut per_key: BTreeMap<String, BTreeMap<String, Option<Value>>> = BTreeMap::new();
    for op in history
        .ops
        .iter()
        .filter(|o| &*o.f == "read" && is_final(o))
    {
        let key = op.key.as_deref().map(compact).unwrap_or_default();
        let value = (op.outcome == Outcome::Ok).then(|| op.value.clone());
        let slot = per_key
            .entry(key)
            .or_default()
            .entry(node_of(op))
            .or_insert(None);
        if value.is_some() {
            *slot = value;
        }
    }
    let mut anomalies = Vec::new();
    let mut missing = Vec::new();
    for (key, nodes) in &per_key {
        let mut distinct: Vec<&Value> = Vec::new();
        for v in nodes.values().flatten() {
            if !distinct.contains(&v) {
                distinct.push(v);
            }
        }
        for (node, v) in nodes {
            if v.is_none() {
                missing.push(format!("{node} (key {key})"));
            }
        }
        if distinct.len() > 1 {
            let by_node: BTreeMap<&String, &Option<Value>> = nodes.iter().collect();
            let ops: Vec<OpView> = history
                .ops
                .iter()
                .filter(|o| is_final(o) && o.key.as_deref().map(compact).as_deref() == Some(key))
                .map(OpView::of)
                .collect();
            anomalies.push(json!({
                "type": "divergence",
                "key": key,
                "values": by_node,
                "ops": ops,
                "explanation": format!(
                    "after healing and a quiet period the nodes still disagree on key {key}: {}",
                    nodes.iter().map(|(n, v)| format!("{n} has {}", v.as_ref().map(compact).unwrap_or_else(|| "nothing".into()))).collect::<Vec<_>>().join(", ")
                ),
            }));
        }
    }
    let stats = json!({"keys": per_key.len(), "divergent_keys": anomalies.len(), "unanswered": missing.len()});
    let (valid, unknown_reason) = if !anomalies.is_empty() {
        (Validity::Invalid, None)
    } else if per_key.is_empty() {
        (
            Validity::Unknown,
            Some("the history has no final reads".to_string()),
        )
    } else if !missing.is_empty() {
        (
            Validity::Unknown,
            Some(format!(
                "no final read answered from {}",
                missing.join(", ")
            )),
        )
    } else {
        (Validity::Valid, None)
    };
    CheckResult {
        valid,
        anomalies,
        stats,
        unknown_reason,
    }
}
