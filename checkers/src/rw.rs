//! A history of reads and writes of registers, indexed for the session and
//! causal checkers ([`crate::session`], [`crate::causal`]), and the input
//! contract those checkers rely on.
//!
//! # The contract
//!
//! - every client operation is a `read` (or `get`) or a `write` (or `put`);
//! - each value is written at most once per key (counting every write, even
//!   one that failed), so that a read names the write it read from;
//! - no write writes the initial value, so that a read of it means "no write
//!   seen".
//!
//! [`RwHistory::new`] checks it and says which line breaks it.
//!
//! # What counts
//!
//! - An `ok` write happened. A `fail` write never happened: a read of its
//!   value is an *aborted read*. A write of unknown outcome (`info`, or never
//!   completed) happened if some read returned its value, and is ignored
//!   otherwise; it may have taken effect at any time after its invocation,
//!   so it precedes nothing else of its session.
//! - An `ok` read with a value constrains; a read that failed, timed out, or
//!   returned `nil` where `nil` means "no information" (Knossos's EDN)
//!   constrains nothing and is left out.
//! - A read of the initial value read "no write". A read of a value nobody
//!   wrote is a *thin-air read*.
//! - A session is a client process; its operations are in invocation order.

use std::collections::HashMap;
use std::fmt;

use serde_json::Value;

use crate::history::{History, NilRead, Operation, Outcome, compact};
use crate::model::Interner;

/// What a history must satisfy for the session and causal checks, and the
/// first place where it does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractError {
    /// Source line of the operation that breaks the contract.
    pub line: usize,
    /// Short form, for notes such as "skipped: values written more than once".
    pub short: &'static str,
    /// The full reason, naming the operations.
    pub reason: String,
}

impl fmt::Display for ContractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for ContractError {}

/// The outcome of a write, as far as the checkers are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteStatus {
    /// Completed `ok`.
    Ok,
    /// Unknown outcome (`info` or never completed), and some read returned
    /// its value: it happened, at some time after its invocation.
    InfoRead,
    /// Unknown outcome and never read: ignored.
    InfoUnread,
    /// Completed `fail`: it never happened.
    Fail,
}

impl WriteStatus {
    /// True for writes that took effect (`ok`, or `info` and read).
    pub fn happened(self) -> bool {
        matches!(self, WriteStatus::Ok | WriteStatus::InfoRead)
    }
}

/// A write.
#[derive(Clone, Debug)]
pub struct RwWrite {
    /// Index in [`History::ops`].
    pub op: usize,
    /// Dense session id (see [`RwHistory::sessions`]).
    pub session: u32,
    /// Interned key.
    pub key: u32,
    /// Its status.
    pub status: WriteStatus,
}

/// What a read returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ret {
    /// The initial value: no write.
    Init,
    /// The value of this write (an index in [`RwHistory::writes`]) that
    /// happened.
    Write(u32),
    /// The value of a write that failed (an aborted read).
    Aborted(u32),
    /// A value that no write wrote.
    ThinAir,
}

/// An `ok` read that returned a value.
#[derive(Clone, Debug)]
pub struct RwRead {
    /// Index in [`History::ops`].
    pub op: usize,
    /// Dense session id.
    pub session: u32,
    /// Interned key.
    pub key: u32,
    /// What it returned.
    pub ret: Ret,
}

/// One step of a session: a read or a write, by index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Index in [`RwHistory::reads`].
    Read(u32),
    /// Index in [`RwHistory::writes`] (every write, whatever its status).
    Write(u32),
}

/// A session: one client process.
#[derive(Clone, Debug)]
pub struct RwSession {
    /// The process id.
    pub process: i64,
    /// Its reads (those that constrain) and writes, in session order.
    pub steps: Vec<Step>,
}

/// A read/write history, indexed.
#[derive(Debug)]
pub struct RwHistory<'h> {
    /// The history it was built from.
    pub history: &'h History,
    /// Every write, in invocation order.
    pub writes: Vec<RwWrite>,
    /// Every read that constrains, in invocation order.
    pub reads: Vec<RwRead>,
    /// The sessions, in order of first appearance.
    pub sessions: Vec<RwSession>,
    /// The keys, by interned id.
    pub keys: Vec<Value>,
    /// The initial value of every key.
    pub initial: Value,
}

pub use crate::history::{is_read, is_write};

/// The value a write wrote: the invocation's, or the completion's when the
/// invocation carried none.
fn written_value(op: &Operation) -> &Value {
    if op.invoke_value.is_null() {
        &op.value
    } else {
        &op.invoke_value
    }
}

fn key_of(op: &Operation) -> &Value {
    op.key.as_deref().unwrap_or(&Value::Null)
}

fn line_of(op: &Operation) -> usize {
    op.complete_line().unwrap_or(op.invoke_line())
}

fn key_text(k: &Value) -> String {
    if k.is_null() {
        String::new()
    } else {
        format!(" to key {}", compact(k))
    }
}

impl<'h> RwHistory<'h> {
    /// Indexes `history` whose registers start at `initial`, checking the
    /// contract (see the module documentation).
    pub fn new(history: &'h History, initial: &Value) -> Result<Self, ContractError> {
        let nil_unknown = history.semantics.nil_read == NilRead::Unknown;
        let mut keys = Interner::new();
        // Interner ids are dense from 0, and 0 is null.
        let mut key_values: Vec<Value> = vec![Value::Null];
        let mut values = Interner::new();
        let initial_id = values.intern(initial);
        let mut writes: Vec<RwWrite> = Vec::new();
        let mut by_value: HashMap<(u32, u32), u32> = HashMap::new();
        let mut session_of: HashMap<i64, u32> = HashMap::new();
        let mut sessions: Vec<RwSession> = Vec::new();
        // Pending reads: (op, session, key, value id).
        let mut raw_reads: Vec<(usize, u32, u32, u32)> = Vec::new();
        let mut steps: Vec<(u32, bool, u32)> = Vec::new(); // (session, is_read, index)
        for op in &history.ops {
            let f = &*op.f;
            let read = is_read(f);
            if !read && !is_write(f) {
                return Err(ContractError {
                    line: op.invoke_line(),
                    short: "functions other than read and write",
                    reason: format!(
                        "`{f}` is neither a read nor a write; the session and causal checks \
                         understand only read (get) and write (put)"
                    ),
                });
            }
            let session = *session_of.entry(op.process).or_insert_with(|| {
                sessions.push(RwSession {
                    process: op.process,
                    steps: Vec::new(),
                });
                (sessions.len() - 1) as u32
            });
            let key = keys.intern(key_of(op));
            if key as usize == key_values.len() {
                key_values.push(key_of(op).clone());
            }
            if read {
                if op.outcome != Outcome::Ok || (nil_unknown && op.value.is_null()) {
                    continue;
                }
                let v = values.intern(&op.value);
                steps.push((session, true, raw_reads.len() as u32));
                raw_reads.push((op.id, session, key, v));
            } else {
                let v = written_value(op);
                let vid = values.intern(v);
                if vid == initial_id {
                    return Err(ContractError {
                        line: op.invoke_line(),
                        short: "the initial value is written",
                        reason: format!(
                            "process {} writes the initial value {}{}, so a read of it cannot \
                             tell that write from no write (pass --initial with a value that is \
                             never written)",
                            op.process,
                            compact(v),
                            key_text(key_of(op)),
                        ),
                    });
                }
                let idx = writes.len() as u32;
                if let Some(&prev) = by_value.get(&(key, vid)) {
                    let p = &history.ops[writes[prev as usize].op];
                    return Err(ContractError {
                        line: op.invoke_line(),
                        short: "values written more than once",
                        reason: format!(
                            "value {} is written{} twice (lines {} and {}); the session and \
                             causal checks need each written value to be unique per key",
                            compact(v),
                            key_text(key_of(op)),
                            p.invoke_line(),
                            op.invoke_line()
                        ),
                    });
                }
                by_value.insert((key, vid), idx);
                let status = match op.outcome {
                    Outcome::Ok => WriteStatus::Ok,
                    Outcome::Fail => WriteStatus::Fail,
                    Outcome::Info | Outcome::Pending => WriteStatus::InfoUnread,
                };
                steps.push((session, false, idx));
                writes.push(RwWrite {
                    op: op.id,
                    session,
                    key,
                    status,
                });
            }
        }
        let mut reads = Vec::with_capacity(raw_reads.len());
        for &(op, session, key, v) in &raw_reads {
            let ret = if v == initial_id {
                Ret::Init
            } else {
                match by_value.get(&(key, v)) {
                    Some(&w) => {
                        let wr = &mut writes[w as usize];
                        match wr.status {
                            WriteStatus::Fail => Ret::Aborted(w),
                            WriteStatus::InfoUnread => {
                                wr.status = WriteStatus::InfoRead;
                                Ret::Write(w)
                            }
                            _ => Ret::Write(w),
                        }
                    }
                    None => Ret::ThinAir,
                }
            };
            reads.push(RwRead {
                op,
                session,
                key,
                ret,
            });
        }
        for (session, is_read, idx) in steps {
            sessions[session as usize].steps.push(if is_read {
                Step::Read(idx)
            } else {
                Step::Write(idx)
            });
        }
        let keys = key_values;
        Ok(RwHistory {
            history,
            writes,
            reads,
            sessions,
            keys,
            initial: initial.clone(),
        })
    }

    /// The history operation of a write.
    pub fn write_op(&self, w: u32) -> &'h Operation {
        &self.history.ops[self.writes[w as usize].op]
    }

    /// The history operation of a read.
    pub fn read_op(&self, r: u32) -> &'h Operation {
        &self.history.ops[self.reads[r as usize].op]
    }

    /// The key of a write or read, as JSON (`None` for unkeyed histories).
    pub fn key_value(&self, key: u32) -> Option<Value> {
        match self.keys.get(key as usize) {
            Some(Value::Null) | None => None,
            Some(k) => Some(k.clone()),
        }
    }

    /// "x" or "key 4" style name of a key for explanations ("the register"
    /// when unkeyed).
    pub fn key_name(&self, key: u32) -> String {
        match self.key_value(key) {
            None => "the register".to_string(),
            Some(Value::String(s)) => s,
            Some(k) => format!("key {}", compact(&k)),
        }
    }

    /// `x=3` style text of a write's value.
    pub fn write_text(&self, w: u32) -> String {
        let op = self.write_op(w);
        self.kv_text(self.writes[w as usize].key, written_value(op))
    }

    /// `x=3` style text of what a read returned.
    pub fn read_text(&self, r: u32) -> String {
        let rd = &self.reads[r as usize];
        let op = self.read_op(r);
        match rd.ret {
            Ret::Init => format!("{} (initial)", self.kv_text(rd.key, &op.value)),
            _ => self.kv_text(rd.key, &op.value),
        }
    }

    fn kv_text(&self, key: u32, v: &Value) -> String {
        match self.key_value(key) {
            None => compact(v),
            Some(Value::String(s)) => format!("{s}={}", compact(v)),
            Some(k) => format!("{}={}", compact(&k), compact(v)),
        }
    }

    /// Line of a write (its invocation).
    pub fn write_line(&self, w: u32) -> usize {
        self.write_op(w).invoke_line()
    }

    /// Line of a read (its completion).
    pub fn read_line(&self, r: u32) -> usize {
        line_of(self.read_op(r))
    }

    /// The process of a session.
    pub fn process(&self, session: u32) -> i64 {
        self.sessions[session as usize].process
    }

    /// Thin-air and aborted reads: each an anomaly of every check, since no
    /// model lets a read return a value that was never (successfully)
    /// written.
    pub fn impossible_reads(&self) -> Vec<crate::anomaly::Anomaly> {
        use crate::linear::OpView;
        let mut out = Vec::new();
        for (i, rd) in self.reads.iter().enumerate() {
            let r = i as u32;
            let op = self.read_op(r);
            match rd.ret {
                Ret::ThinAir => {
                    let hint = if self.initial.is_null() && !op.value.is_null() {
                        format!(
                            " (if every key starts as {}, pass --initial {})",
                            compact(&op.value),
                            shell_quote(&compact(&op.value))
                        )
                    } else {
                        String::new()
                    };
                    out.push(crate::anomaly::Anomaly {
                        kind: "thin-air-read",
                        key: self.key_value(rd.key),
                        ops: vec![OpView::of(op)],
                        explanation: format!(
                            "process {} read {} (line {}), a value that no operation wrote{hint}.",
                            op.process,
                            self.read_text(r),
                            line_of(op)
                        ),
                    })
                }
                Ret::Aborted(w) => {
                    let wop = self.write_op(w);
                    out.push(crate::anomaly::Anomaly {
                        kind: "aborted-read",
                        key: self.key_value(rd.key),
                        ops: vec![OpView::of(wop), OpView::of(op)],
                        explanation: format!(
                            "process {} read {} (line {}), which only process {}'s failed write \
                             (line {}) wrote: a failed write never happened, so nothing can \
                             read it.",
                            op.process,
                            self.read_text(r),
                            line_of(op),
                            wop.process,
                            wop.invoke_line()
                        ),
                    })
                }
                _ => {}
            }
        }
        out
    }
}

fn shell_quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}
