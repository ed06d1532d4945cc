//! An anomaly of the session and causal checks: its guarantee or pattern,
//! the operations that form it, a plain explanation; and how a list of
//! them makes a verdict. Shared by [`crate::session`], [`crate::causal`]
//! and [`crate::rw`], which is why it is not in their dispatcher.

use serde::Serialize;
use serde_json::Value;

use crate::linear::OpView;
use crate::verdict::{CheckResult, Validity};

/// Most anomalies listed per check and pattern (the stats count them all).
pub const MAX_ANOMALIES: usize = 20;

/// One violation of a session or causal check: its guarantee or pattern,
/// the few operations that form it, and a plain explanation.
#[derive(Debug, Clone, Serialize)]
pub struct Anomaly {
    /// The guarantee (`read-your-writes`...) or bad pattern (`CyclicCF`...).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The key, when the anomaly concerns one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<Value>,
    /// The operations that form it (session, key, value, position).
    pub ops: Vec<OpView>,
    /// One or two plain sentences.
    pub explanation: String,
}

/// A result from anomalies: invalid when there is one.
pub(crate) fn finish(anomalies: Vec<Anomaly>, stats: Value) -> CheckResult {
    let anomalies: Vec<Anomaly> = anomalies
        .into_iter()
        .filter(|a| !a.kind.is_empty())
        .collect();
    CheckResult {
        valid: if anomalies.is_empty() {
            Validity::Valid
        } else {
            Validity::Invalid
        },
        anomalies: anomalies
            .iter()
            .map(|a| serde_json::to_value(a).unwrap_or(Value::Null))
            .collect(),
        stats,
        unknown_reason: None,
    }
}
