//! Verdicts: valid, invalid or unknown, and how they compose.

use serde::{Serialize, Serializer};

/// The outcome of a check. Serialises as `true`, `false` or `"unknown"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Validity {
    /// Every checked property holds.
    Valid,
    /// A violation was found.
    Invalid,
    /// The checker could not decide (time or memory ran out).
    Unknown,
}

impl Validity {
    /// Composes two verdicts: invalid beats unknown beats valid.
    pub fn merge(self, other: Validity) -> Validity {
        use Validity::*;
        match (self, other) {
            (Invalid, _) | (_, Invalid) => Invalid,
            (Unknown, _) | (_, Unknown) => Unknown,
            _ => Valid,
        }
    }

    /// `true`, `false` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Validity::Valid => "true",
            Validity::Invalid => "false",
            Validity::Unknown => "unknown",
        }
    }
}

impl Serialize for Validity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Validity::Valid => s.serialize_bool(true),
            Validity::Invalid => s.serialize_bool(false),
            Validity::Unknown => s.serialize_str("unknown"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Validity::*;

    #[test]
    fn merge_order() {
        assert_eq!(Valid.merge(Valid), Valid);
        assert_eq!(Valid.merge(Unknown), Unknown);
        assert_eq!(Unknown.merge(Invalid), Invalid);
        assert_eq!(Invalid.merge(Valid), Invalid);
        assert_eq!(serde_json::to_string(&Unknown).unwrap(), "\"unknown\"");
        assert_eq!(serde_json::to_string(&Invalid).unwrap(), "false");
    }
}

/// The result of one check (set, counter, convergence...): a verdict, the
/// anomalies that make it, counters, and why it is unknown when it is.
#[derive(Clone, Debug, Serialize)]
pub struct CheckResult {
    /// true, false or "unknown".
    pub valid: Validity,
    /// What is wrong, each a JSON object with at least `type` and
    /// `explanation`.
    pub anomalies: Vec<serde_json::Value>,
    /// Counters.
    pub stats: serde_json::Value,
    /// Why the verdict is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown_reason: Option<String>,
}
