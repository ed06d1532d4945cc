//! The anomalies the transactional checker reports, named as Elle names
//! them.

use std::fmt;

use serde::{Serialize, Serializer};

/// Which extra order a dependency cycle needed, besides ww/wr/rw.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Variant {
    /// Dependencies only.
    Plain,
    /// With process (session) order: `-process`.
    Process,
    /// With real-time order: `-realtime`.
    Realtime,
}

/// The shape of a dependency cycle (Adya's phenomena, Elle's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CycleClass {
    /// Write cycle: ww edges only.
    G0,
    /// Circular information flow: ww and wr edges, at least one wr.
    G1c,
    /// Exactly one anti-dependency (rw) edge: read skew, lost update...
    GSingle,
    /// Two or more rw edges, no two of them adjacent.
    GNonadjacent,
    /// Anti-dependency cycle with adjacent rw edges: write skew.
    G2Item,
}

impl CycleClass {
    /// Elle's name.
    pub fn name(self) -> &'static str {
        match self {
            CycleClass::G0 => "G0",
            CycleClass::G1c => "G1c",
            CycleClass::GSingle => "G-single",
            CycleClass::GNonadjacent => "G-nonadjacent",
            CycleClass::G2Item => "G2-item",
        }
    }
}

/// An anomaly type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AnomalyType {
    /// A dependency cycle.
    Cycle(CycleClass, Variant),
    /// G1a: a committed transaction read a value written by an aborted one.
    AbortedRead,
    /// G1b: a committed transaction read a value that its writer later
    /// overwrote (or appended after) within the same transaction.
    IntermediateRead,
    /// A transaction's read disagrees with its own earlier reads and writes.
    Internal,
    /// A committed write follows an aborted one in a key's version order.
    DirtyUpdate,
    /// A list read holds the same value twice.
    DuplicateElements,
    /// Two reads of a key that neither is a prefix of the other.
    IncompatibleOrder,
    /// The version order of a register, inferred from reads and writes,
    /// has a cycle.
    CyclicVersions,
    /// Two committed transactions read the same version of a key and both
    /// wrote it.
    LostUpdate,
    /// A transaction saw some of another's writes but missed others
    /// (violates read atomicity).
    FracturedRead,
    /// A read returned a value that no transaction wrote.
    GarbageRead,
}

impl AnomalyType {
    /// Elle's name (`G-single-process`, `G1a`, `lost-update`...).
    pub fn name(self) -> String {
        match self {
            AnomalyType::Cycle(c, Variant::Plain) => c.name().to_string(),
            AnomalyType::Cycle(c, Variant::Process) => format!("{}-process", c.name()),
            AnomalyType::Cycle(c, Variant::Realtime) => format!("{}-realtime", c.name()),
            AnomalyType::AbortedRead => "G1a".into(),
            AnomalyType::IntermediateRead => "G1b".into(),
            AnomalyType::Internal => "internal".into(),
            AnomalyType::DirtyUpdate => "dirty-update".into(),
            AnomalyType::DuplicateElements => "duplicate-elements".into(),
            AnomalyType::IncompatibleOrder => "incompatible-order".into(),
            AnomalyType::CyclicVersions => "cyclic-versions".into(),
            AnomalyType::LostUpdate => "lost-update".into(),
            AnomalyType::FracturedRead => "fractured-read".into(),
            AnomalyType::GarbageRead => "garbage-read".into(),
        }
    }
}

impl fmt::Display for AnomalyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl Serialize for AnomalyType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

/// A transaction named in a witness.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TxnRef {
    /// `T` followed by the invocation's index (`T12`).
    pub name: String,
    /// Index of the operation in the history.
    pub op: usize,
    /// The invocation's `index`.
    pub index: u64,
    /// Always `txn` (so that reports link it like any operation).
    pub f: &'static str,
    /// Its client process.
    pub process: i64,
    /// Source line of its completion (or invocation).
    pub line: usize,
    /// The micro-ops as completed, as JSON.
    pub value: serde_json::Value,
}

/// One edge of a cycle, explained.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WitnessEdge {
    /// Name of the source transaction.
    pub from: String,
    /// Name of the target transaction.
    pub to: String,
    /// `ww`, `wr`, `rw`, `process` or `realtime`.
    pub kind: &'static str,
    /// Why the edge exists, in one sentence.
    pub why: String,
}

/// One anomaly, with its witness.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Anomaly {
    /// Its type.
    #[serde(rename = "type")]
    pub kind: AnomalyType,
    /// What happened, in a sentence or a few.
    pub explanation: String,
    /// The transactions involved.
    pub txns: Vec<TxnRef>,
    /// For cycles: the edges, in order, back to the first transaction.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cycle: Vec<WitnessEdge>,
    /// For cycles: true when the search proved no shorter cycle of this
    /// type exists in its strongly connected component.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shortest: Option<bool>,
}
