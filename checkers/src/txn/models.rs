//! Consistency models and the anomalies that rule each out.
//!
//! The models form a hierarchy (each implies the ones it points to):
//!
//! ```text
//! strict-serializable -> strong-session-serializable -> serializable
//! strong-session-serializable -> causal -> read-atomic
//! serializable -> snapshot-isolation -> read-atomic -> read-committed
//! serializable -> repeatable-read -> read-committed -> read-uncommitted
//! ```
//!
//! An anomaly rules out the models listed for it in [`Model::ruled_out_by`]
//! and every model that implies one of them. As in Elle, "holds" means
//! that none of the anomalies faultline looks for and that rule the model
//! out was found.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

use super::anomaly::{AnomalyType, CycleClass, Variant};
use super::graph::{DEPS, Kinds, PROCESS, REALTIME};

/// A transactional consistency model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Model {
    /// Adya's PL-1: no G0.
    ReadUncommitted,
    /// Adya's PL-2: no G1 (G1a, G1b, G1c).
    ReadCommitted,
    /// Cerone et al.'s read atomic: committed reads, internal consistency,
    /// no fractured reads.
    ReadAtomic,
    /// Causal consistency (with sessions, as Cerone et al.).
    Causal,
    /// Snapshot isolation (Adya's PL-SI as Elle approximates it).
    SnapshotIsolation,
    /// Adya's PL-2.99: no G1, no G2-item.
    RepeatableRead,
    /// Adya's PL-3: no dependency cycle.
    Serializable,
    /// Serializable, and each process's transactions in its order.
    StrongSessionSerializable,
    /// Serializable in an order compatible with real time.
    StrictSerializable,
}

impl Model {
    /// Every model, weakest first.
    pub const ALL: [Model; 9] = [
        Model::ReadUncommitted,
        Model::ReadCommitted,
        Model::ReadAtomic,
        Model::Causal,
        Model::SnapshotIsolation,
        Model::RepeatableRead,
        Model::Serializable,
        Model::StrongSessionSerializable,
        Model::StrictSerializable,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Model::ReadUncommitted => "read-uncommitted",
            Model::ReadCommitted => "read-committed",
            Model::ReadAtomic => "read-atomic",
            Model::Causal => "causal",
            Model::SnapshotIsolation => "snapshot-isolation",
            Model::RepeatableRead => "repeatable-read",
            Model::Serializable => "serializable",
            Model::StrongSessionSerializable => "strong-session-serializable",
            Model::StrictSerializable => "strict-serializable",
        }
    }

    /// The models this one directly implies.
    pub fn implies(self) -> &'static [Model] {
        use Model::*;
        match self {
            ReadUncommitted => &[],
            ReadCommitted => &[ReadUncommitted],
            ReadAtomic => &[ReadCommitted],
            Causal => &[ReadAtomic],
            SnapshotIsolation => &[ReadAtomic],
            RepeatableRead => &[ReadCommitted],
            Serializable => &[SnapshotIsolation, RepeatableRead],
            StrongSessionSerializable => &[Serializable, Causal],
            StrictSerializable => &[StrongSessionSerializable],
        }
    }

    /// True when this model implies `other` (or is it).
    pub fn implies_model(self, other: Model) -> bool {
        self == other || self.implies().iter().any(|m| m.implies_model(other))
    }

    /// The edge kinds the checker needs to decide this model.
    pub fn edges(self) -> Kinds {
        match self {
            Model::StrictSerializable => DEPS | PROCESS | REALTIME,
            Model::StrongSessionSerializable | Model::Causal => DEPS | PROCESS,
            _ => DEPS,
        }
    }

    /// The weakest models an anomaly rules out directly.
    pub fn ruled_out_by(a: AnomalyType) -> &'static [Model] {
        use CycleClass::*;
        use Model::*;
        match a {
            AnomalyType::Cycle(G0, Variant::Plain)
            | AnomalyType::DuplicateElements
            | AnomalyType::IncompatibleOrder
            | AnomalyType::CyclicVersions
            | AnomalyType::GarbageRead => &[ReadUncommitted],
            AnomalyType::Cycle(G1c, Variant::Plain)
            | AnomalyType::AbortedRead
            | AnomalyType::IntermediateRead
            | AnomalyType::DirtyUpdate => &[ReadCommitted],
            AnomalyType::Internal | AnomalyType::FracturedRead => &[ReadAtomic],
            AnomalyType::Cycle(GSingle | GNonadjacent, Variant::Plain)
            | AnomalyType::LostUpdate => &[SnapshotIsolation, RepeatableRead],
            AnomalyType::Cycle(G2Item, Variant::Plain) => &[RepeatableRead],
            AnomalyType::Cycle(G0 | G1c, Variant::Process) => &[Causal],
            AnomalyType::Cycle(_, Variant::Process) => &[StrongSessionSerializable],
            AnomalyType::Cycle(_, Variant::Realtime) => &[StrictSerializable],
        }
    }

    /// True when anomaly `a` rules this model out.
    pub fn violated_by(self, a: AnomalyType) -> bool {
        Model::ruled_out_by(a)
            .iter()
            .any(|&m| self.implies_model(m))
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Model {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl FromStr for Model {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let alias = match s {
            "ru" | "pl-1" => "read-uncommitted",
            "rc" | "pl-2" => "read-committed",
            "ra" => "read-atomic",
            "causal-consistency" | "cc" => "causal",
            "si" | "snapshot" => "snapshot-isolation",
            "rr" | "pl-2.99" => "repeatable-read",
            "ser" | "pl-3" => "serializable",
            "strong-session" | "strong-session-serializability" => "strong-session-serializable",
            "strict" | "strict-serializability" | "strong-serializable" => "strict-serializable",
            other => other,
        };
        Model::ALL
            .into_iter()
            .find(|m| m.name() == alias)
            .ok_or_else(|| {
                format!(
                    "unknown consistency model `{s}` (expected one of: {})",
                    Model::ALL.map(Model::name).join(", ")
                )
            })
    }
}

/// Parses a comma-separated list of models.
pub fn parse_list(s: &str) -> Result<Vec<Model>, String> {
    let mut out = Vec::new();
    for part in s.split(',').filter(|p| !p.trim().is_empty()) {
        let m: Model = part.parse()?;
        if !out.contains(&m) {
            out.push(m);
        }
    }
    if out.is_empty() {
        return Err("no consistency model named".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hierarchy_and_mapping() {
        use Model::*;
        assert!(StrictSerializable.implies_model(ReadUncommitted));
        assert!(Serializable.implies_model(SnapshotIsolation));
        assert!(!SnapshotIsolation.implies_model(RepeatableRead));
        assert!(!Serializable.implies_model(Causal));
        let g2 = AnomalyType::Cycle(CycleClass::G2Item, Variant::Plain);
        assert!(Serializable.violated_by(g2));
        assert!(!SnapshotIsolation.violated_by(g2));
        let gs = AnomalyType::Cycle(CycleClass::GSingle, Variant::Plain);
        assert!(SnapshotIsolation.violated_by(gs) && !ReadAtomic.violated_by(gs));
        let g1p = AnomalyType::Cycle(CycleClass::G1c, Variant::Process);
        assert!(Causal.violated_by(g1p) && StrictSerializable.violated_by(g1p));
        assert!(!Serializable.violated_by(g1p));
        assert_eq!(
            parse_list("si,serializable,strict").unwrap(),
            vec![SnapshotIsolation, Serializable, StrictSerializable]
        );
        assert!(parse_list("bogus").is_err());
    }
}
