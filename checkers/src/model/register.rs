//! Registers: `register` (read, write), `cas-register` (plus compare-and-set)
//! and `kv` (a register per key, plus Porcupine's string `append`).

use std::sync::Arc;

use serde_json::Value;

use super::{EncodeOptions, Encoded, Interner, Model, ModelKind, model_error};
use crate::error::ModelError;
use crate::history::{FailMeaning, NilRead, Operation, Outcome};

/// A register's state: an interned value, or a string built by appends that
/// no operation of the history mentions (and that no read can match).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RegState {
    /// An interned value.
    Known(u32),
    /// A string built by appends, not interned.
    Text(Arc<str>),
}

/// A register operation with its observed result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegOp {
    /// A read that returned the value.
    Read(u32),
    /// A write of the value.
    Write(u32),
    /// A compare-and-set that succeeded (or, when its outcome is unknown,
    /// that succeeds if it takes effect).
    Cas(u32, u32),
    /// A compare-and-set that completed and found another value than
    /// expected (Porcupine's etcd logs): it has no effect.
    CasFailed(u32),
    /// Appends a string (behind one pointer, so that an operation stays 16
    /// bytes: a partition holds one per operation).
    Append(Arc<String>),
}

/// The register family of models.
#[derive(Debug)]
pub struct RegisterModel {
    kind: ModelKind,
    interner: Interner,
    init: RegState,
}

impl RegisterModel {
    /// The model for `kind` (register, cas-register or kv); ops are encoded
    /// with [`RegisterModel::encoder`] before the search.
    pub fn new(kind: ModelKind) -> Self {
        RegisterModel {
            kind,
            interner: Interner::new(),
            init: RegState::Known(0),
        }
    }

    /// Sets the initial value.
    pub fn set_initial(&mut self, v: &Value) {
        self.init = RegState::Known(self.interner.intern(v));
    }

    fn allows_cas(&self) -> bool {
        matches!(self.kind, ModelKind::CasRegister | ModelKind::Kv)
    }

    /// Encodes one operation of the history.
    pub fn encode(
        &mut self,
        op: &Operation,
        opts: &EncodeOptions,
    ) -> Result<Encoded<RegOp>, ModelError> {
        let f = &*op.f;
        let definite = op.outcome == Outcome::Ok;
        match f {
            "read" | "get" | "r" => {
                if !definite {
                    // No result: a read constrains nothing and changes nothing.
                    return Ok(Encoded::Skip);
                }
                if op.value.is_null() && opts.nil_read == NilRead::Unknown {
                    return Ok(Encoded::Skip);
                }
                Ok(Encoded::Op(RegOp::Read(self.interner.intern(&op.value))))
            }
            "write" | "put" | "w" => {
                if op.outcome == Outcome::Fail {
                    return Ok(Encoded::Skip);
                }
                let v = if definite && !op.value.is_null() {
                    &op.value
                } else {
                    &op.invoke_value
                };
                Ok(Encoded::Op(RegOp::Write(self.interner.intern(v))))
            }
            "cas" | "compare-and-set" if self.allows_cas() => {
                let pair = match &op.invoke_value {
                    Value::Array(a) if a.len() == 2 => a,
                    other => {
                        return Err(model_error(
                            op,
                            format!(
                                "cas needs a value [expected, new], got {}",
                                crate::history::compact(other)
                            ),
                        ));
                    }
                };
                let from = self.interner.intern(&pair[0]);
                let to = self.interner.intern(&pair[1]);
                match op.outcome {
                    Outcome::Fail => match opts.fail {
                        FailMeaning::NotApplied => Ok(Encoded::Skip),
                        FailMeaning::CasCompareFailed => Ok(Encoded::Op(RegOp::CasFailed(from))),
                    },
                    _ => Ok(Encoded::Op(RegOp::Cas(from, to))),
                }
            }
            "append" if self.kind == ModelKind::Kv => {
                if op.outcome == Outcome::Fail {
                    return Ok(Encoded::Skip);
                }
                match &op.invoke_value {
                    Value::String(s) => {
                        // Intern it so that a read of exactly this string
                        // after an append to an empty key is recognised.
                        self.interner.intern(&op.invoke_value);
                        Ok(Encoded::Op(RegOp::Append(Arc::new(s.clone()))))
                    }
                    other => Err(model_error(
                        op,
                        format!(
                            "append needs a string, got {}",
                            crate::history::compact(other)
                        ),
                    )),
                }
            }
            other => {
                let expected = match self.kind {
                    ModelKind::Register => "read, write",
                    ModelKind::CasRegister => "read, write, cas",
                    _ => "read/get, write/put, cas, append",
                };
                let hint = if other == "cas" {
                    " (use --model cas-register)"
                } else if other == "append" {
                    " (use --model kv)"
                } else {
                    ""
                };
                Err(model_error(
                    op,
                    format!(
                        "the {} model has no function `{other}` (expected {expected}){hint}",
                        self.kind.name()
                    ),
                ))
            }
        }
    }

    /// The value of an interned id.
    pub fn value(&self, id: u32) -> &Value {
        self.interner.value(id)
    }

    /// The initial value's id.
    pub fn initial_id(&self) -> u32 {
        match self.init {
            RegState::Known(id) => id,
            // `set_initial` always interns.
            RegState::Text(_) => 0,
        }
    }

    /// The text an interned value stands for when appended to.
    pub fn text_of_id(&self, id: u32) -> Option<&str> {
        if id == 0 {
            Some("")
        } else {
            self.interner.value(id).as_str()
        }
    }

    /// The text a state stands for when appended to: `""` for null, the
    /// string itself, or `None` when appends cannot apply (a number...).
    pub fn text_of<'a>(&'a self, s: &'a RegState) -> Option<&'a str> {
        match s {
            RegState::Known(id) => self.text_of_id(*id),
            RegState::Text(t) => Some(t),
        }
    }
}

impl Model for RegisterModel {
    type State = RegState;
    type Op = RegOp;

    fn init(&self) -> RegState {
        self.init.clone()
    }

    #[inline]
    fn step(&self, s: &RegState, op: &RegOp) -> Option<RegState> {
        match op {
            RegOp::Read(v) => match s {
                RegState::Known(x) if x == v => Some(s.clone()),
                _ => None,
            },
            RegOp::Write(v) => Some(RegState::Known(*v)),
            RegOp::Cas(from, to) => match s {
                RegState::Known(x) if x == from => Some(RegState::Known(*to)),
                _ => None,
            },
            RegOp::CasFailed(from) => match s {
                RegState::Known(x) if x == from => None,
                _ => Some(s.clone()),
            },
            RegOp::Append(piece) => {
                let base = self.text_of(s)?;
                let mut joined = String::with_capacity(base.len() + piece.len());
                joined.push_str(base);
                joined.push_str(piece);
                Some(match self.interner.lookup_str(&joined) {
                    Some(id) => RegState::Known(id),
                    None => RegState::Text(Arc::from(joined)),
                })
            }
        }
    }

    fn is_blind(&self, op: &RegOp) -> bool {
        matches!(op, RegOp::Write(_))
    }

    fn state_heap_bytes(&self, s: &RegState) -> usize {
        match s {
            RegState::Known(_) => 0,
            // The text and the Arc's two counters.
            RegState::Text(t) => t.len() + 16,
        }
    }

    fn render(&self, s: &RegState) -> Value {
        match s {
            RegState::Known(id) => self.interner.value(*id).clone(),
            RegState::Text(t) => Value::String(t.to_string()),
        }
    }
}

#[cfg(test)]
mod size_tests {
    use super::RegOp;
    use crate::model::Entry;

    /// A partition holds one entry per operation: 56 bytes before issue 11's
    /// compaction, 32 now.
    #[test]
    fn entries_stay_compact() {
        assert!(std::mem::size_of::<RegOp>() <= 16);
        assert!(std::mem::size_of::<Entry<RegOp>>() <= 32);
    }
}
