//! A mutex: `acquire` is legal when it is free, `release` when it is held.

use serde_json::Value;

use super::{Encoded, Model, model_error};
use crate::error::ModelError;
use crate::history::{Operation, Outcome};

/// A mutex operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MutexOp {
    /// Take the lock.
    Acquire,
    /// Give it back.
    Release,
}

/// The mutex model; the state is `true` when held.
#[derive(Debug, Default)]
pub struct MutexModel;

impl MutexModel {
    /// Encodes an acquire or release.
    pub fn encode(&self, op: &Operation) -> Result<Encoded<MutexOp>, ModelError> {
        if op.outcome == Outcome::Fail {
            return Ok(Encoded::Skip);
        }
        match &*op.f {
            "acquire" | "lock" => Ok(Encoded::Op(MutexOp::Acquire)),
            "release" | "unlock" => Ok(Encoded::Op(MutexOp::Release)),
            other => Err(model_error(
                op,
                format!("the mutex model has no function `{other}` (expected acquire, release)"),
            )),
        }
    }
}

impl Model for MutexModel {
    type State = bool;
    type Op = MutexOp;

    fn init(&self) -> bool {
        false
    }

    fn step(&self, held: &bool, op: &MutexOp) -> Option<bool> {
        match (op, held) {
            (MutexOp::Acquire, false) => Some(true),
            (MutexOp::Release, true) => Some(false),
            _ => None,
        }
    }

    fn render(&self, held: &bool) -> Value {
        Value::String(if *held { "held" } else { "free" }.into())
    }
}
