//! Sequential specifications ("models") and the translation of a history's
//! operations into each model's compact operations.
//!
//! A model has a state, an operation type and a `step` function: `step(s, op)`
//! is the state after `op` when `op` can happen in state `s`, and `None` when
//! it cannot (a read that returned another value, a `cas` whose expected
//! value is not there, a release of a free mutex). Operations carry their
//! observed result, so `step` both checks and applies.
//!
//! | model | functions | state | split by key |
//! |---|---|---|---|
//! | `register` | read, write | one value | yes, when ops have a `key` |
//! | `cas-register` | read, write, cas `[from, to]` | one value | yes, when ops have a `key` |
//! | `kv` | read/get, write/put, cas, append | one value per key | yes |
//! | `multi-register` | txn of `[read k v]` / `[write k v]` micro-ops | a map | no |
//! | `mutex` | acquire, release | held or free | no |

use std::fmt::Debug;
use std::hash::Hash;
use std::str::FromStr;

use serde_json::Value;

use crate::error::ModelError;
use crate::history::{FailMeaning, History, NilRead, Operation, Outcome};
use crate::txn::hash::FastMap;

pub mod multi_register;
pub mod mutex;
pub mod register;

/// A sequential specification.
pub trait Model: Sync {
    /// The object's state. Small and cheap to clone.
    type State: Clone + Eq + Hash + Send + Sync + Debug;
    /// An operation with its observed result.
    type Op: Send + Sync + Debug;
    /// The initial state.
    fn init(&self) -> Self::State;
    /// The state after `op`, or `None` when `op` cannot happen in `s`.
    fn step(&self, s: &Self::State, op: &Self::Op) -> Option<Self::State>;
    /// The state as JSON, for witnesses.
    fn render(&self, s: &Self::State) -> Value;
    /// True when `op` ignores the state: it can happen in every state and
    /// always leads to the same one (a blind write). The search uses it to
    /// skip pointless placements of operations of unknown outcome.
    fn is_blind(&self, _op: &Self::Op) -> bool {
        false
    }
    /// Bytes a state owns on the heap (the search counts them against its
    /// memory bound).
    fn state_heap_bytes(&self, _s: &Self::State) -> usize {
        0
    }
}

/// Which model to check against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ModelKind {
    /// Read/write register.
    Register,
    /// Read/write/compare-and-set register.
    CasRegister,
    /// Independent keys, each a register (read/get, write/put, cas, append).
    Kv,
    /// Transactions of reads and writes over several registers.
    MultiRegister,
    /// A lock: acquire and release.
    Mutex,
}

impl ModelKind {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Register => "register",
            ModelKind::CasRegister => "cas-register",
            ModelKind::Kv => "kv",
            ModelKind::MultiRegister => "multi-register",
            ModelKind::Mutex => "mutex",
        }
    }

    /// All names accepted by [`ModelKind::from_str`].
    pub const NAMES: &'static [&'static str] =
        &["register", "cas-register", "kv", "multi-register", "mutex"];

    /// Guesses the model from the functions a history uses.
    pub fn infer(history: &History) -> ModelKind {
        let has = |names: &[&str]| history.ops.iter().any(|o| names.contains(&&*o.f));
        if has(&["txn"]) {
            ModelKind::MultiRegister
        } else if has(&["acquire", "release"]) {
            ModelKind::Mutex
        } else if has(&["append", "get", "put"]) || history.ops.iter().any(|o| o.key.is_some()) {
            ModelKind::Kv
        } else if has(&["cas"]) {
            ModelKind::CasRegister
        } else {
            ModelKind::Register
        }
    }
}

impl FromStr for ModelKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "register" => ModelKind::Register,
            "cas-register" | "cas" => ModelKind::CasRegister,
            "kv" => ModelKind::Kv,
            "multi-register" => ModelKind::MultiRegister,
            "mutex" => ModelKind::Mutex,
            _ => {
                return Err(format!(
                    "unknown model `{s}` (expected one of: {})",
                    ModelKind::NAMES.join(", ")
                ));
            }
        })
    }
}

/// One operation of a partition, ready for the search.
#[derive(Debug)]
pub struct Entry<O> {
    /// The model operation, with its observed result.
    pub op: O,
    /// Index of the operation in [`History::ops`] (32-bit, as the
    /// history's positions: a partition holds one entry per operation).
    pub id: u32,
    /// Event position of the invocation.
    pub call: u32,
    /// Event position of the completion; `None` when the outcome is unknown
    /// (`info` or never completed): it may take effect at any point after
    /// its invocation, or never.
    pub ret: Option<u32>,
}

/// An independent sub-history (one key, or the whole history).
#[derive(Debug)]
pub struct Partition<O> {
    /// The key, for keyed histories.
    pub key: Option<Value>,
    /// Its operations, in order of invocation.
    pub entries: Vec<Entry<O>>,
    /// Number of client operations of the history in this partition,
    /// including those that constrain nothing and were left out.
    pub ops: usize,
}

/// What an operation becomes for the model.
#[derive(Debug)]
pub enum Encoded<O> {
    /// The operation constrains nothing (a failed write, a read with no
    /// result): leave it out.
    Skip,
    /// The model operation.
    Op(O),
}

/// Turns a history's values into small integers, so that states compare and
/// hash cheaply. Built before the search, read-only during it.
#[derive(Debug, Default)]
pub struct Interner {
    ints: FastMap<i64, u32>,
    strs: FastMap<Box<str>, u32>,
    other: FastMap<String, u32>,
    values: Vec<Value>,
}

impl Interner {
    /// A new interner in which `null` is id 0.
    pub fn new() -> Self {
        let mut i = Interner::default();
        i.intern(&Value::Null);
        i
    }

    /// The id of `v`, adding it when new.
    pub fn intern(&mut self, v: &Value) -> u32 {
        let next = self.values.len() as u32;
        let id = match v {
            Value::Number(n) if n.is_i64() => {
                let k = n.as_i64().unwrap_or_default();
                *self.ints.entry(k).or_insert(next)
            }
            Value::String(s) => match self.strs.get(s.as_str()) {
                Some(&id) => id,
                None => {
                    self.strs.insert(s.as_str().into(), next);
                    next
                }
            },
            other => *self.other.entry(other.to_string()).or_insert(next),
        };
        if id == next {
            self.values.push(v.clone());
        }
        id
    }

    /// The id of a string, if it was interned.
    pub fn lookup_str(&self, s: &str) -> Option<u32> {
        self.strs.get(s).copied()
    }

    /// The value of an id.
    pub fn value(&self, id: u32) -> &Value {
        &self.values[id as usize]
    }
}

/// How the history's semantics and the user's options shape encoding.
#[derive(Debug, Clone)]
pub struct EncodeOptions {
    /// Meaning of a null read.
    pub nil_read: NilRead,
    /// Meaning of a `fail`.
    pub fail: FailMeaning,
    /// Initial value of every register (or key).
    pub initial: Value,
}

impl EncodeOptions {
    /// Options from a history's semantics and the user's `--initial`.
    pub fn new(history: &History, initial: Option<&Value>) -> Self {
        EncodeOptions {
            nil_read: history.semantics.nil_read,
            fail: history.semantics.fail,
            initial: initial
                .cloned()
                .or_else(|| history.semantics.default_initial.clone())
                .unwrap_or(Value::Null),
        }
    }
}

/// Splits a history into partitions, encoding each operation with `encode`.
/// `split` partitions by the operation's key.
pub fn partition<O>(
    history: &History,
    split: bool,
    mut encode: impl FnMut(&Operation) -> Result<Encoded<O>, ModelError>,
) -> Result<Vec<Partition<O>>, ModelError> {
    let mut index: FastMap<String, usize> = FastMap::default();
    let mut parts: Vec<Partition<O>> = Vec::new();
    for op in &history.ops {
        let slot = if split {
            // Looked up before any allocation: a key string is made only
            // for a key seen the first time.
            let found = match op.key.as_deref() {
                Some(Value::String(s)) => index.get(s.as_str()).copied(),
                _ => None,
            };
            match found {
                Some(slot) => slot,
                None => {
                    let k = match op.key.as_deref() {
                        Some(Value::String(s)) => s.clone(),
                        Some(k) => format!("\u{0}{k}"),
                        None => String::from("\u{0}none"),
                    };
                    let next = parts.len();
                    *index.entry(k).or_insert(next)
                }
            }
        } else {
            0
        };
        if slot == parts.len() {
            parts.push(Partition {
                key: if split {
                    op.key.as_deref().cloned()
                } else {
                    None
                },
                entries: Vec::new(),
                ops: 0,
            });
        }
        let part = &mut parts[slot];
        part.ops += 1;
        if let Encoded::Op(o) = encode(op)? {
            part.entries.push(Entry {
                op: o,
                // Positions fit in 32 bits (the reader refuses longer
                // histories), and so do operation ids.
                id: op.id as u32,
                call: op.invoke_pos() as u32,
                ret: if op.outcome.is_indefinite() {
                    None
                } else {
                    op.complete_pos().map(|p| p as u32)
                },
            });
        }
    }
    Ok(parts)
}

/// A model error about `op`.
pub fn model_error(op: &Operation, reason: impl Into<String>) -> ModelError {
    ModelError {
        line: if op.outcome == Outcome::Ok {
            op.complete_line().unwrap_or(op.invoke_line())
        } else {
            op.invoke_line()
        },
        reason: reason.into(),
    }
}
