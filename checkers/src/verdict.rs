//! Verdicts: valid, invalid or unknown, and how they compose.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

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

impl<'de> Deserialize<'de> for Validity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Bool(true) => Ok(Validity::Valid),
            serde_json::Value::Bool(false) => Ok(Validity::Invalid),
            serde_json::Value::String(s) if s == "unknown" => Ok(Validity::Unknown),
            other => Err(serde::de::Error::custom(format!(
                "a verdict is true, false or \"unknown\", not {other}"
            ))),
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

/// A check's typed result (a [`CheckResult`], a
/// [`crate::linear::LinearReport`], a [`crate::txn::TxnReport`]...): what
/// the pipeline and the summaries need of every result; the concrete type,
/// for the outputs that show more, and the JSON, made only when it is
/// written, come with [`Written`].
pub trait Report: std::fmt::Debug + Send + Sync + Written {
    /// The verdict.
    fn valid(&self) -> Validity;
    /// Why the verdict is unknown, when it is.
    fn unknown_reason(&self) -> Option<&str>;
    /// The anomalies as `(type, explanation)`, in order.
    fn anomalies(&self) -> Vec<(String, String)>;
}

/// What every serialisable result gives a [`Report`] for free.
pub trait Written {
    /// The result as written in `results.json` and `--json` lines.
    fn to_json(&self) -> serde_json::Value;
    /// The concrete result, for outputs that show more of it (downcast).
    fn as_any(&self) -> &dyn std::any::Any;
}

impl<T: Serialize + std::any::Any> Written for T {
    fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl Report for CheckResult {
    fn valid(&self) -> Validity {
        self.valid
    }
    fn unknown_reason(&self) -> Option<&str> {
        self.unknown_reason.as_deref()
    }
    fn anomalies(&self) -> Vec<(String, String)> {
        self.anomalies
            .iter()
            .map(|a| {
                let s = |k: &str| a[k].as_str().unwrap_or_default().to_string();
                (s("type"), s("explanation"))
            })
            .collect()
    }
}
