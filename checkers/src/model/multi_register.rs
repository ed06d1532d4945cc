//! Knossos's multi-register: a `txn` of `[read k v]` and `[write k v]`
//! micro-operations over several registers, applied atomically.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::{EncodeOptions, Encoded, Interner, Model, model_error};
use crate::error::ModelError;
use crate::history::{NilRead, Operation, Outcome, compact};

/// One micro-operation of a transaction, on register `k`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Micro {
    /// Read register `.0`, which returned value `.1`.
    Read(u32, u32),
    /// Write value `.1` to register `.0`.
    Write(u32, u32),
}

/// The multi-register model. The state is one interned value per register.
#[derive(Debug)]
pub struct MultiRegisterModel {
    values: Interner,
    keys: HashMap<String, u32>,
    key_names: Vec<Value>,
    initial: u32,
    /// Initial values of named registers (from an object `--initial`).
    initial_map: HashMap<u32, u32>,
}

impl Default for MultiRegisterModel {
    fn default() -> Self {
        Self::new()
    }
}

impl MultiRegisterModel {
    /// A model with no registers yet; they are added as ops are encoded.
    pub fn new() -> Self {
        MultiRegisterModel {
            values: Interner::new(),
            keys: HashMap::new(),
            key_names: Vec::new(),
            initial: 0,
            initial_map: HashMap::new(),
        }
    }

    /// Sets the initial value of every register; an object gives the
    /// initial value of each named register (the others start as null).
    pub fn set_initial(&mut self, v: &Value) {
        match v {
            Value::Object(m) => {
                for (k, val) in m {
                    let key = self.key(&Value::String(k.clone()));
                    let id = self.values.intern(val);
                    self.initial_map.insert(key, id);
                }
            }
            other => self.initial = self.values.intern(other),
        }
    }

    fn key(&mut self, k: &Value) -> u32 {
        let name = match k {
            Value::String(s) => s.clone(),
            other => compact(other),
        };
        let next = self.keys.len() as u32;
        let id = *self.keys.entry(name).or_insert(next);
        if id == next {
            self.key_names.push(k.clone());
        }
        id
    }

    /// Encodes a `txn` operation.
    pub fn encode(
        &mut self,
        op: &Operation,
        opts: &EncodeOptions,
    ) -> Result<Encoded<Vec<Micro>>, ModelError> {
        if &*op.f != "txn" {
            return Err(model_error(
                op,
                format!(
                    "the multi-register model has no function `{}` (expected txn)",
                    op.f
                ),
            ));
        }
        if op.outcome == Outcome::Fail {
            return Ok(Encoded::Skip);
        }
        let definite = op.outcome == Outcome::Ok;
        let txn = if definite && !op.value.is_null() {
            &op.value
        } else {
            &op.invoke_value
        };
        let micros = txn.as_array().ok_or_else(|| {
            model_error(
                op,
                format!("txn needs a list of micro-ops, got {}", compact(txn)),
            )
        })?;
        let mut out = Vec::with_capacity(micros.len());
        for m in micros {
            let parts = match m.as_array() {
                Some(p) if p.len() == 3 => p,
                _ => {
                    return Err(model_error(
                        op,
                        format!("micro-op must be [f key value], got {}", compact(m)),
                    ));
                }
            };
            let k = self.key(&parts[1]);
            match parts[0].as_str() {
                Some("read" | "r") => {
                    // A read inside a transaction of unknown outcome, or a
                    // nil read under Knossos's semantics, constrains nothing.
                    if !definite || (parts[2].is_null() && opts.nil_read == NilRead::Unknown) {
                        continue;
                    }
                    out.push(Micro::Read(k, self.values.intern(&parts[2])));
                }
                Some("write" | "w") => out.push(Micro::Write(k, self.values.intern(&parts[2]))),
                _ => {
                    return Err(model_error(
                        op,
                        format!("unknown micro-op {} (expected read or write)", compact(m)),
                    ));
                }
            }
        }
        if out.is_empty() {
            return Ok(Encoded::Skip);
        }
        Ok(Encoded::Op(out))
    }
}

impl Model for MultiRegisterModel {
    type State = Box<[u32]>;
    type Op = Vec<Micro>;

    fn init(&self) -> Box<[u32]> {
        let mut s = vec![self.initial; self.keys.len()];
        for (&k, &v) in &self.initial_map {
            s[k as usize] = v;
        }
        s.into_boxed_slice()
    }

    fn step(&self, s: &Box<[u32]>, op: &Vec<Micro>) -> Option<Box<[u32]>> {
        let mut next: Option<Box<[u32]>> = None;
        for m in op {
            let cur = next.as_deref().unwrap_or(s);
            match *m {
                Micro::Read(k, v) => {
                    if cur[k as usize] != v {
                        return None;
                    }
                }
                Micro::Write(k, v) => {
                    next.get_or_insert_with(|| s.clone())[k as usize] = v;
                }
            }
        }
        Some(next.unwrap_or_else(|| s.clone()))
    }

    fn is_blind(&self, op: &Vec<Micro>) -> bool {
        // Blind only when it writes every register and reads none: then the
        // state after it does not depend on the state before.
        let mut written = vec![false; self.keys.len()];
        for m in op {
            match m {
                Micro::Write(k, _) => written[*k as usize] = true,
                Micro::Read(..) => return false,
            }
        }
        written.iter().all(|&w| w)
    }

    fn render(&self, s: &Box<[u32]>) -> Value {
        let mut m = Map::new();
        for (i, v) in s.iter().enumerate() {
            let name = match &self.key_names[i] {
                Value::String(k) => k.clone(),
                other => compact(other),
            };
            m.insert(name, self.values.value(*v).clone());
        }
        Value::Object(m)
    }
}
