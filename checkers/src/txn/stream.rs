//! Transactions built straight from a stream of events, without a
//! [`History`](crate::history::History): the fast path of `faultline check`
//! for large transactional histories (see `format::json_txn`).
//!
//! A reader decodes each event's micro-ops into [`TxnStream`] (keys and
//! values as 64-bit integers, anything else kept aside), then hands it the
//! event; the stream pairs invocations with completions as the history
//! builder does, and [`TxnStream::finish`] interns keys and values in the
//! order [`Txns::read`] would have, so that the transactions, and so every
//! verdict and witness, are the same as through the general reader.
//!
//! The stream accepts only histories it can read exactly like the general
//! path: `txn` operations whose micro-ops are `[f key value]` with an
//! integer or string key and scalar values, invocations before completions,
//! reads `null` in invocations. Anything else (another function, a
//! completion without invocation, a key that is a list, a malformed line)
//! is [`Unsupported`]: the caller then reads the file with the general
//! reader, which gives the same verdict or the error, naming the line.

use serde_json::Value;

use super::hash::FastMap;
use super::micro::{Mop, NEVER, Status, Txn, TxnModel, Txns, Val};
use crate::history::EventType;

/// Why a stream cannot be read on the fast path (the general reader then
/// reads it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unsupported(pub &'static str);

/// Integers at or above this stand for themselves in a raw key or value;
/// below it, `i64::MIN + n` is the `n`th value kept aside (a string, a
/// float, a boolean, an integer beyond `i64` or below this bound). The
/// same bound as the interning of [`Values`](super::micro::Values).
const OWN_BELOW: i64 = i64::MIN / 2;

/// What a micro-op does, before interning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawKind {
    /// `["append", k, v]`.
    Append,
    /// `["w", k, v]`.
    Write,
    /// `["r", k, null]`.
    ReadNull,
    /// `["r", k, v]` with a scalar `v`.
    ReadScalar,
    /// `["r", k, [v ...]]`.
    ReadList,
}

/// A micro-op before interning: `key` and `value` are raw (see
/// [`OWN_BELOW`]); a list read's `value` is where its elements start in the
/// stream's lists, `len` their number.
#[derive(Clone, Copy, Debug)]
struct RawMop {
    kind: RawKind,
    len: u32,
    key: i64,
    value: i64,
}

/// The shape of an event's `value`, as the reader decoded it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// No value, or `null`.
    Null,
    /// A list of micro-ops, decoded into the stream.
    Mops,
}

/// An invocation in flight.
struct Open {
    txn: u32,
    /// Its micro-ops, `None` when its value was `null`.
    mops: Option<Vec<RawMop>>,
}

/// Transactions read from a stream, ready to check.
#[derive(Debug)]
pub struct StreamedTxns {
    /// The transactions, as [`Txns::read`] reads them from the history.
    pub txns: Txns,
    /// The model their micro-ops imply (as [`TxnModel::infer`]).
    pub inferred: TxnModel,
    /// Events read (faults included).
    pub events: usize,
    /// Events of non-client processes (faults).
    pub faults: usize,
}

/// Transactions being read from a stream of events.
#[derive(Default)]
pub struct TxnStream {
    txns: Vec<Txn>,
    /// The micro-ops of every transaction (its `start..end`).
    mops: Vec<RawMop>,
    /// The micro-ops of the value being decoded.
    cur: Vec<RawMop>,
    /// Elements of list reads, raw.
    lists: Vec<i64>,
    /// Keys and values that are not integers in range, kept aside.
    others: Vec<Value>,
    /// Lengths of `lists` and `others` when the current value began.
    marks: (usize, usize),
    open: FastMap<i64, Open>,
    /// Spare vectors for invocations' micro-ops.
    pool: Vec<Vec<RawMop>>,
    events: usize,
    faults: usize,
    appends: bool,
    writes: bool,
}

impl TxnStream {
    /// An empty stream.
    pub fn new() -> Self {
        TxnStream::default()
    }

    /// Starts decoding an event's value.
    pub fn begin_value(&mut self) {
        self.cur.clear();
        self.marks = (self.lists.len(), self.others.len());
    }

    /// A raw integer key or value.
    pub fn int(&mut self, n: i64) -> i64 {
        if n >= OWN_BELOW {
            n
        } else {
            self.other(Value::from(n))
        }
    }

    /// A raw key or value that is not an integer in range: kept aside.
    pub fn other(&mut self, v: Value) -> i64 {
        self.others.push(v);
        i64::MIN + (self.others.len() as i64 - 1)
    }

    /// Adds a micro-op of the value being decoded; `value` is raw, or
    /// unused for [`RawKind::ReadNull`], or for [`RawKind::ReadList`] the
    /// start returned by [`TxnStream::list_start`].
    pub fn mop(&mut self, kind: RawKind, key: i64, value: i64) {
        let len = match kind {
            RawKind::ReadList => (self.lists.len() as i64 - value) as u32,
            _ => 0,
        };
        match kind {
            RawKind::Append => self.appends = true,
            RawKind::Write => self.writes = true,
            _ => {}
        }
        self.cur.push(RawMop {
            kind,
            len,
            key,
            value,
        });
    }

    /// Where the next list read's elements start.
    pub fn list_start(&self) -> i64 {
        self.lists.len() as i64
    }

    /// An element of the list read being decoded (raw).
    pub fn list_push(&mut self, v: i64) {
        self.lists.push(v);
    }

    /// An event of a non-client process (a fault), already validated.
    pub fn fault(&mut self) {
        self.events += 1;
        self.faults += 1;
    }

    /// A `txn` event of client `process` whose value was decoded since
    /// [`TxnStream::begin_value`] (`shape`).
    pub fn event(
        &mut self,
        process: i64,
        kind: EventType,
        index: Option<u64>,
        line: usize,
        shape: Shape,
    ) -> Result<(), Unsupported> {
        let pos = self.events;
        self.events += 1;
        if kind == EventType::Invoke {
            if self.open.contains_key(&process) {
                return Err(Unsupported("two invocations in flight"));
            }
            let mops = match shape {
                Shape::Mops => {
                    let mut v = self.pool.pop().unwrap_or_default();
                    std::mem::swap(&mut v, &mut self.cur);
                    Some(v)
                }
                Shape::Null => None,
            };
            let txn = self.txns.len() as u32;
            self.txns.push(Txn {
                op: txn,
                process,
                status: Status::Indefinite,
                start: 0,
                end: 0,
                index: index.unwrap_or(pos as u64),
                invoke_line: line,
                line,
                invoke_pos: pos,
                complete_pos: NEVER,
            });
            self.open.insert(process, Open { txn, mops });
            return Ok(());
        }
        let open = self
            .open
            .remove(&process)
            .ok_or(Unsupported("a completion without invocation"))?;
        let t = &mut self.txns[open.txn as usize];
        t.line = line;
        t.complete_pos = pos;
        if kind == EventType::Ok {
            if shape != Shape::Mops {
                return Err(Unsupported("an ok transaction without micro-ops"));
            }
            if open
                .mops
                .as_ref()
                .is_some_and(|m| m.len() != self.cur.len())
            {
                return Err(Unsupported("as many micro-ops completed as invoked"));
            }
            t.status = Status::Committed;
            t.start = self.mops.len() as u32;
            self.mops.extend_from_slice(&self.cur);
            t.end = self.mops.len() as u32;
            self.cur.clear();
        } else {
            t.status = if kind == EventType::Fail {
                Status::Aborted
            } else {
                Status::Indefinite
            };
            // Only the invocation counts: what the completion said goes.
            self.lists.truncate(self.marks.0);
            self.others.truncate(self.marks.1);
            self.cur.clear();
            self.keep_invocation(open)?;
            return Ok(());
        }
        if let Some(mut v) = open.mops {
            v.clear();
            self.pool.push(v);
        }
        Ok(())
    }

    /// Keeps an invocation's micro-ops as its transaction's (it did not
    /// commit: its reads are unknown).
    fn keep_invocation(&mut self, open: Open) -> Result<(), Unsupported> {
        let mut mops = open.mops.ok_or(Unsupported(
            "a transaction that did not commit without micro-ops",
        ))?;
        if mops.iter().any(|m| {
            m.kind != RawKind::Append && m.kind != RawKind::Write && m.kind != RawKind::ReadNull
        }) {
            return Err(Unsupported("an invocation's reads are null"));
        }
        let t = &mut self.txns[open.txn as usize];
        t.start = self.mops.len() as u32;
        self.mops.extend_from_slice(&mops);
        t.end = self.mops.len() as u32;
        mops.clear();
        self.pool.push(mops);
        Ok(())
    }

    /// The transactions for `model` (the inferred one when `None`), with
    /// keys and values interned in the order of [`Txns::read`].
    pub fn finish(mut self, model: Option<TxnModel>) -> Result<StreamedTxns, Unsupported> {
        let mut open: Vec<Open> = self.open.drain().map(|(_, o)| o).collect();
        open.sort_unstable_by_key(|o| o.txn);
        for o in open {
            self.keep_invocation(o)?;
        }
        if self.txns.is_empty() {
            return Err(Unsupported("no transaction"));
        }
        let inferred = if self.appends || !self.writes {
            TxnModel::ListAppend
        } else {
            TxnModel::RwRegister
        };
        let model = model.unwrap_or(inferred);
        let mut out = Txns {
            txns: Vec::new(),
            mops: Vec::with_capacity(self.mops.len()),
            lists: Vec::new(),
            values: Default::default(),
        };
        let mut lists = std::mem::take(&mut self.lists);
        for t in &mut self.txns {
            let start = out.mops.len() as u32;
            let committed = t.status == Status::Committed;
            for m in &self.mops[t.start as usize..t.end as usize] {
                let key = if m.key >= OWN_BELOW {
                    out.values.key(&Value::from(m.key))
                } else {
                    out.values.key(&self.others[raw_index(m.key)])
                };
                let mop = match (m.kind, model) {
                    (RawKind::Append, TxnModel::ListAppend) => Mop::Append {
                        key,
                        value: value(&mut out, &self.others, m.value),
                    },
                    (RawKind::Write, TxnModel::RwRegister) => Mop::Write {
                        key,
                        value: value(&mut out, &self.others, m.value),
                    },
                    (RawKind::Append | RawKind::Write, _) => {
                        return Err(Unsupported("a micro-op of another model"));
                    }
                    (_, _) if !committed => Mop::ReadUnknown { key },
                    (RawKind::ReadNull, TxnModel::ListAppend) => Mop::ReadList {
                        key,
                        start: 0,
                        len: 0,
                        null: true,
                    },
                    (RawKind::ReadList, TxnModel::ListAppend) => {
                        let start = m.value as usize;
                        for x in &mut lists[start..start + m.len as usize] {
                            *x = value(&mut out, &self.others, *x);
                        }
                        Mop::ReadList {
                            key,
                            start: start as u32,
                            len: m.len,
                            null: false,
                        }
                    }
                    (RawKind::ReadNull, TxnModel::RwRegister) => {
                        Mop::ReadRegister { key, value: None }
                    }
                    (RawKind::ReadScalar, TxnModel::RwRegister) => Mop::ReadRegister {
                        key,
                        value: Some(value(&mut out, &self.others, m.value)),
                    },
                    (RawKind::ReadScalar | RawKind::ReadList, _) => {
                        return Err(Unsupported("a read of another model"));
                    }
                };
                out.mops.push(mop);
            }
            t.start = start;
            t.end = out.mops.len() as u32;
        }
        if lists.len() > u32::MAX as usize || out.mops.len() > u32::MAX as usize {
            return Err(Unsupported("more than 2^32 micro-ops or list elements"));
        }
        out.lists = lists;
        out.txns = self.txns;
        Ok(StreamedTxns {
            txns: out,
            inferred,
            events: self.events,
            faults: self.faults,
        })
    }
}

/// The position in `others` of a raw value below [`OWN_BELOW`].
fn raw_index(raw: i64) -> usize {
    raw.wrapping_sub(i64::MIN) as usize
}

/// A raw value as a [`Val`], interned as [`Txns::read`] interns it.
fn value(out: &mut Txns, others: &[Value], raw: i64) -> Val {
    if raw >= OWN_BELOW {
        raw
    } else {
        out.values.value(&others[raw_index(raw)])
    }
}
