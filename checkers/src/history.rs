//! The history model: events as read from a file, and client operations
//! paired from them.
//!
//! A history is a sequence of events in real-time order (the order of the
//! file). Client events come in pairs: an `invoke`, then exactly one
//! completion (`ok`, `fail` or `info`) from the same process. Events of
//! non-integer processes (such as `"nemesis"`) are faults: they are kept for
//! reports and ignored by the consistency checkers.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{HistoryError, HistoryErrorKind};

pub mod fragment;
mod open_ops;
mod process_set;
pub mod raw_event;

/// The type of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// The operation was invoked.
    Invoke,
    /// The operation completed and took effect.
    Ok,
    /// The operation completed and certainly did not take effect.
    Fail,
    /// The outcome is unknown: the operation may take effect at any later
    /// time, or never.
    Info,
}

impl EventType {
    /// Parses `invoke`, `ok`, `fail` or `info` (with or without a leading `:`).
    pub fn parse(s: &str) -> Option<EventType> {
        match s.strip_prefix(':').unwrap_or(s) {
            "invoke" => Some(EventType::Invoke),
            "ok" => Some(EventType::Ok),
            "fail" => Some(EventType::Fail),
            "info" => Some(EventType::Info),
            _ => None,
        }
    }

    /// The outcome a completion of this type records (`info` for anything
    /// but `ok` and `fail`).
    fn outcome(self) -> Outcome {
        match self {
            EventType::Ok => Outcome::Ok,
            EventType::Fail => Outcome::Fail,
            _ => Outcome::Info,
        }
    }

    /// The completion that records `outcome` (`info` for an operation
    /// that never completed).
    pub fn completion(outcome: Outcome) -> EventType {
        match outcome {
            Outcome::Ok => EventType::Ok,
            Outcome::Fail => EventType::Fail,
            Outcome::Info | Outcome::Pending => EventType::Info,
        }
    }

    /// The lowercase name used in histories.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Invoke => "invoke",
            EventType::Ok => "ok",
            EventType::Fail => "fail",
            EventType::Info => "info",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who performed an event: a client process (an integer) or anything else
/// (`"nemesis"`, a checker's own process...), which is a fault or annotation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Process {
    /// A client process.
    Client(i64),
    /// A non-client process, such as the nemesis.
    Other(String),
}

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Process::Client(p) => write!(f, "{p}"),
            Process::Other(s) => f.write_str(s),
        }
    }
}

impl Serialize for Process {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Process::Client(p) => s.serialize_i64(*p),
            Process::Other(o) => s.serialize_str(o),
        }
    }
}

/// One event of a history, as read from a file.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// 1-based line of the file where the event starts.
    pub line: usize,
    /// The event's `index` field, if it had one.
    pub index: Option<u64>,
    /// Nanoseconds since the start of the run, if known.
    pub time: Option<i64>,
    /// Who performed it.
    pub process: Process,
    /// invoke, ok, fail or info.
    pub kind: EventType,
    /// The function (`read`, `write`, `cas`, `partition`...), shared: a
    /// reader gives the same name to many events without copying it.
    pub f: Arc<str>,
    /// The key, for multi-key histories (shared: readers give one copy to
    /// the events on the same key).
    pub key: Option<Arc<Value>>,
    /// The value (argument on invoke, result on completion).
    pub value: Value,
    /// The event carried a value field, even if null (an `ok` read without
    /// one is an error: what it read is unknown).
    pub has_value: bool,
    /// Any other fields (`node`, `error`...), preserved.
    pub extra: Map<String, Value>,
}

/// True when `f` is a read for the models and checkers (`read`, `get`, `r`).
pub fn is_read(f: &str) -> bool {
    matches!(f, "read" | "get" | "r")
}

/// True when `f` is a write for the models and checkers (`write`, `put`,
/// `w`).
pub fn is_write(f: &str) -> bool {
    matches!(f, "write" | "put" | "w")
}

/// True when `f` writes its invocation's value: a write, or a kv `append`.
fn writes_its_value(f: &str) -> bool {
    is_write(f) || f == "append"
}

/// True when an `ok` read completes without a value: what it read is
/// unknown (an error).
fn reads_nothing(outcome: Outcome, has_value: bool, f: &str) -> bool {
    outcome == Outcome::Ok && !has_value && is_read(f)
}

/// True when an `ok` write (or append) of `op` completes with a value other
/// than the one it was invoked with (an error).
fn writes_another_value(op: &Operation, outcome: Outcome, value: &Value) -> bool {
    // The function's name last: most completions stop before it.
    outcome == Outcome::Ok
        && !op.invoke_value.is_null()
        && !value.is_null()
        && op.invoke_value != *value
        && writes_its_value(&op.f)
}

/// How the outcome of a client operation is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Completed with `ok`: it took effect.
    Ok,
    /// Completed with `fail`: it did not take effect (but see
    /// [`FailMeaning`]).
    Fail,
    /// Completed with `info`: unknown.
    Info,
    /// Never completed: treated as `info`.
    Pending,
}

impl Outcome {
    /// `ok`, `fail`, `info` or `pending`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Info => "info",
            Outcome::Pending => "pending",
        }
    }

    /// True for `info` and never-completed operations, whose effect is unknown.
    pub fn is_indefinite(self) -> bool {
        matches!(self, Outcome::Info | Outcome::Pending)
    }
}

/// What a `nil`/`null` value read by an `ok` read means. The tools that
/// produce histories disagree, so each reader records its source's meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NilRead {
    /// The register holds nothing (null): faultline's and Porcupine's reading.
    Absent,
    /// The read returned no information: Knossos's reading.
    Unknown,
}

/// What a `fail` completion means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailMeaning {
    /// The operation did not happen (Jepsen, Knossos, faultline).
    NotApplied,
    /// Porcupine's etcd logs: a failed `cas` happened and found a value other
    /// than the expected one; other failed operations did not happen.
    CasCompareFailed,
}

/// The semantics a reader attaches to its source's histories.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Semantics {
    /// Meaning of a `null` read.
    pub nil_read: NilRead,
    /// Meaning of a `fail`.
    pub fail: FailMeaning,
    /// Initial value of every register when the user gives none (Porcupine's
    /// kv store starts every key as `""`).
    pub default_initial: Option<Value>,
}

impl Default for Semantics {
    fn default() -> Self {
        Semantics {
            nil_read: NilRead::Absent,
            fail: FailMeaning::NotApplied,
            default_initial: None,
        }
    }
}

/// A client operation: an invocation paired with its completion.
///
/// Kept compact (a 1M-operation history holds a million of them): event
/// positions and lines are 32-bit, and the completion's fields that may be
/// absent use a sentinel instead of an `Option`; read them through the
/// accessor methods. A history with more than 2^32-1 events or lines is
/// refused by the reader ([`HistoryErrorKind::TooLong`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Operation {
    /// Position in [`History::ops`] (operations are ordered by invocation).
    pub id: usize,
    /// The client process.
    pub process: i64,
    /// The function, shared between operations.
    pub f: Arc<str>,
    /// The key, for multi-key histories, shared between the operations on
    /// the same key (a history has far fewer keys than operations).
    pub key: Option<Arc<Value>>,
    /// The value given at invocation.
    pub invoke_value: Value,
    /// The value given at completion (`Null` when pending).
    pub value: Value,
    /// Extra fields of the completion (or of the invocation when pending).
    /// Shared between operations whose extra fields are the same (as every
    /// `{"error": "timeout"}` of a history): a map costs hundreds of bytes.
    pub extra: Option<Arc<Map<String, Value>>>,
    /// The `index` of the invocation event (its position when the file had none).
    pub invoke_index: u64,
    /// The `index` of the completion event; [`NONE64`] when pending.
    complete_index: u64,
    /// Time of the invocation (meaningful when `INVOKE_TIME` is in `flags`).
    invoke_time: i64,
    /// Time of the completion (meaningful when `COMPLETE_TIME` is in `flags`).
    complete_time: i64,
    invoke_pos: u32,
    /// [`NONE32`] when pending.
    complete_pos: u32,
    invoke_line: u32,
    /// [`NONE32`] when pending.
    complete_line: u32,
    /// How it completed.
    pub outcome: Outcome,
    /// Which times are known.
    flags: u8,
}

/// The sentinel of an absent 32-bit position or line.
const NONE32: u32 = u32::MAX;
/// The sentinel of an absent index (an index is at most 2^63-1).
const NONE64: u64 = u64::MAX;
/// `flags`: the invocation's time is known.
const INVOKE_TIME: u8 = 1;
/// `flags`: the completion's time is known.
const COMPLETE_TIME: u8 = 2;

fn some32(x: u32) -> Option<usize> {
    (x != NONE32).then_some(x as usize)
}

impl Operation {
    /// Position of the invocation among all events (real-time order).
    pub fn invoke_pos(&self) -> usize {
        self.invoke_pos as usize
    }

    /// Position of the completion among all events (None when pending).
    pub fn complete_pos(&self) -> Option<usize> {
        some32(self.complete_pos)
    }

    /// Source line of the invocation.
    pub fn invoke_line(&self) -> usize {
        self.invoke_line as usize
    }

    /// Source line of the completion (None when pending).
    pub fn complete_line(&self) -> Option<usize> {
        some32(self.complete_line)
    }

    /// The `index` of the completion event (None when pending).
    pub fn complete_index(&self) -> Option<u64> {
        (self.complete_index != NONE64).then_some(self.complete_index)
    }

    /// Time of the invocation, if known.
    pub fn invoke_time(&self) -> Option<i64> {
        (self.flags & INVOKE_TIME != 0).then_some(self.invoke_time)
    }

    /// Time of the completion, if known.
    pub fn complete_time(&self) -> Option<i64> {
        (self.flags & COMPLETE_TIME != 0).then_some(self.complete_time)
    }

    /// An operation invoked by event `pos` at `line`, not completed yet.
    #[allow(clippy::too_many_arguments)]
    fn invoked(
        id: usize,
        process: i64,
        f: Arc<str>,
        key: Option<Arc<Value>>,
        value: Value,
        pos: u32,
        index: u64,
        line: u32,
        time: Option<i64>,
        extra: Option<Arc<Map<String, Value>>>,
    ) -> Operation {
        Operation {
            id,
            process,
            f,
            key,
            invoke_value: value,
            value: Value::Null,
            extra,
            invoke_index: index,
            complete_index: NONE64,
            invoke_time: time.unwrap_or(0),
            complete_time: 0,
            invoke_pos: pos,
            complete_pos: NONE32,
            invoke_line: line,
            complete_line: NONE32,
            outcome: Outcome::Pending,
            flags: if time.is_some() { INVOKE_TIME } else { 0 },
        }
    }

    /// Records the completion: event `pos` at `line`.
    fn complete(
        &mut self,
        outcome: Outcome,
        value: Value,
        pos: u32,
        index: u64,
        line: u32,
        time: Option<i64>,
    ) {
        self.outcome = outcome;
        self.value = value;
        self.complete_pos = pos;
        self.complete_index = index;
        self.complete_line = line;
        self.complete_time = time.unwrap_or(0);
        self.flags = (self.flags & !COMPLETE_TIME) | if time.is_some() { COMPLETE_TIME } else { 0 };
    }
    /// The value that describes the operation best: the completion's value for
    /// `ok` operations, the invocation's otherwise.
    pub fn effective_value(&self) -> &Value {
        match self.outcome {
            Outcome::Ok => &self.value,
            _ => &self.invoke_value,
        }
    }

    /// A short description such as `process 3: write 4 -> ok` (with the key
    /// when there is one).
    pub fn describe(&self) -> String {
        let key = match &self.key {
            Some(k) => format!(" [key {}]", shown(k)),
            None => String::new(),
        };
        let outcome = match self.outcome {
            Outcome::Ok => "ok".to_string(),
            Outcome::Fail => "fail".to_string(),
            Outcome::Info => "info (unknown)".to_string(),
            Outcome::Pending => "never completed".to_string(),
        };
        let shown = if self.outcome == Outcome::Ok && self.value != self.invoke_value {
            if self.invoke_value.is_null() {
                shown(&self.value)
            } else {
                format!("{} -> {}", shown(&self.invoke_value), shown(&self.value))
            }
        } else {
            shown(self.effective_value())
        };
        let lines = match self.complete_line() {
            Some(c) if c != self.invoke_line() => format!("lines {}-{}", self.invoke_line(), c),
            _ => format!("line {}", self.invoke_line()),
        };
        format!(
            "process {} {}{} {} ({}, {})",
            self.process, self.f, key, shown, outcome, lines
        )
    }
}

/// A compact one-line rendering of a JSON value.
pub fn compact(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "?".into())
}

/// How many characters of a value [`shown`] keeps.
pub const SHOWN_CHARS: usize = 80;

/// A value as messages and witnesses show it: [`compact`], cut to
/// [`SHOWN_CHARS`] characters with its full length when longer (the full
/// value is in the history, at the line the message names).
pub fn shown(v: &Value) -> String {
    shorten(&compact(v))
}

/// `text` cut to [`SHOWN_CHARS`] characters, with `… (N bytes in all)` when
/// cut.
pub fn shorten(text: &str) -> String {
    match text.char_indices().nth(SHOWN_CHARS) {
        Some((at, _)) => format!("{}… ({} bytes in all)", &text[..at], text.len()),
        None => text.to_string(),
    }
}

/// A parsed, validated history.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// Client operations, in order of invocation.
    pub ops: Vec<Operation>,
    /// Events of non-client processes (faults), in file order.
    pub faults: Vec<Event>,
    /// Semantics of the source format.
    pub semantics: Semantics,
    /// Number of events read.
    pub events: usize,
    /// The line number of a last line that was cut short (a torn write:
    /// no newline, a JSON text that ends early), which was left out.
    pub torn_last_line: Option<usize>,
}

impl History {
    /// Number of client operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when the history has no client operation.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Whether a completion may stand for an operation without an invocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CompletionsMode {
    /// Every completion needs an invocation in flight (the default).
    #[default]
    Require,
    /// A completion without an invocation is an operation on its own,
    /// invoked just before it completed.
    Allow,
    /// The first client event decides: a history whose first client event is
    /// a completion is made of completions only (as the causal corpus's
    /// "paper" histories), and an invocation later in it is an error naming
    /// that first completion's line; a history whose first client event is
    /// an invocation is read as with [`CompletionsMode::Require`].
    Auto,
}

/// The builder's hash for its small keys (process ids, function names),
/// looked up once per event: a multiply per word instead of SipHash.
type FastHash = BuildHasherDefault<MulHasher>;

/// A multiplicative hasher (as FxHash). Not resistant to chosen keys, which
/// only slows a lookup down: the builder's keys come from the history.
#[derive(Default, Clone, Copy)]
struct MulHasher(u64);

impl MulHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for MulHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        for &b in chunks.remainder() {
            self.add(u64::from(b));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    fn write_i64(&mut self, i: i64) {
        self.add(i as u64);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// `n` as a 32-bit position or line, `None` when it does not fit (or is the
/// sentinel).
fn short(n: usize) -> Option<u32> {
    u32::try_from(n).ok().filter(|&n| n != NONE32)
}

/// The keys a [`HistoryBuilder`] has seen: string and integer keys are
/// shared (one allocation per key instead of one per operation); other keys
/// (rare: arrays, objects, floats) get their own.
#[derive(Default)]
struct KeyTable {
    strings: HashMap<Box<str>, Arc<Value>, FastHash>,
    integers: HashMap<i64, Arc<Value>, FastHash>,
    /// Keys a reader shares (its parsers give the same copy to every event
    /// on a key), by address: the table's copy for each. The table holds
    /// the reader's copy too, so that no other value can take its address
    /// while the table lives.
    by_address: HashMap<usize, (Arc<Value>, Arc<Value>), FastHash>,
}

/// At most this many keys are remembered by address.
const MAX_BY_ADDRESS: usize = 1 << 20;

impl KeyTable {
    fn intern(&mut self, key: Arc<Value>) -> Arc<Value> {
        // Held elsewhere too: a reader's shared copy, looked up by address
        // (no hash of the text, no comparison).
        let shared = Arc::strong_count(&key) > 1;
        let address = Arc::as_ptr(&key) as usize;
        if shared {
            if let Some((_, k)) = self.by_address.get(&address) {
                // The reader's copy is the table's own: kept as it is.
                return if Arc::ptr_eq(k, &key) { key } else { k.clone() };
            }
        }
        let own = match &*key {
            Value::String(s) => match self.strings.get(s.as_str()) {
                Some(k) => k.clone(),
                None => {
                    self.strings.insert(s.as_str().into(), key.clone());
                    key.clone()
                }
            },
            Value::Number(n) => match n.as_i64() {
                Some(i) => self.integers.entry(i).or_insert(key.clone()).clone(),
                None => key.clone(),
            },
            _ => key.clone(),
        };
        if shared && self.by_address.len() < MAX_BY_ADDRESS {
            self.by_address.insert(address, (key, own.clone()));
        }
        own
    }
}

/// How many functions [`HistoryBuilder`] looks at before its table.
const RECENT_F: usize = 8;

/// Pairs a stream of events into operations, checking the history's shape.
///
/// Readers push events in file order; [`HistoryBuilder::finish`] returns the
/// history. Errors name the source and line.
pub struct HistoryBuilder {
    source: String,
    history: History,
    /// Open invocation per process: index into `history.ops`.
    open: open_ops::OpenOps,
    f_names: HashMap<String, Arc<str>, FastHash>,
    /// The last functions interned, looked at first.
    recent_f: Vec<Arc<str>>,
    /// Whether an `ok`/`fail`/`info` without an invocation is an operation
    /// on its own (histories made of completions only, as in the causal
    /// corpus).
    mode: CompletionsMode,
    /// In [`CompletionsMode::Auto`]: `Some(true)` once the first client event
    /// was a completion, `Some(false)` once it was an invocation.
    completions_only: Option<bool>,
    /// The first completion without invocation: line, process, type.
    first_orphan: Option<(usize, i64, &'static str)>,
    /// The last extra fields given to an operation, shared with the next
    /// operation whose extra fields are the same.
    last_extra: Option<Arc<Map<String, Value>>>,
    /// Keys seen so far (strings and integers), shared by their operations.
    keys: KeyTable,
    /// When this builder pairs one piece of a file (see [`fragment`]):
    /// what the piece leaves to the pieces before it.
    fragment: Option<fragment::Edge>,
}

impl HistoryBuilder {
    /// A builder for the file or stream named `source`.
    pub fn new(source: impl Into<String>, semantics: Semantics) -> Self {
        HistoryBuilder {
            source: source.into(),
            history: History {
                semantics,
                ..History::default()
            },
            open: open_ops::OpenOps::default(),
            f_names: HashMap::default(),
            recent_f: Vec::with_capacity(RECENT_F),
            mode: CompletionsMode::Require,
            completions_only: None,
            first_orphan: None,
            last_extra: None,
            keys: KeyTable::default(),
            fragment: None,
        }
    }

    /// Gives room for `ops` more operations, when memory allows (a
    /// guess too large is left out: the history grows as it goes).
    pub fn reserve(&mut self, ops: usize) {
        let _ = self.history.ops.try_reserve_exact(ops);
    }

    /// Accept completions that have no invocation: each stands for an
    /// operation that was invoked just before it completed.
    pub fn allow_completions_only(self, allow: bool) -> Self {
        self.completions_mode(if allow {
            CompletionsMode::Allow
        } else {
            CompletionsMode::Require
        })
    }

    /// Sets how completions without an invocation are treated.
    pub fn completions_mode(mut self, mode: CompletionsMode) -> Self {
        self.mode = mode;
        self
    }

    /// The source name given to [`HistoryBuilder::new`].
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Number of events pushed so far.
    pub fn events(&self) -> usize {
        self.history.events
    }

    /// Changes the semantics (a reader may learn them from the content).
    pub fn semantics_mut(&mut self) -> &mut Semantics {
        &mut self.history.semantics
    }

    fn intern(&mut self, f: Arc<str>) -> Arc<str> {
        // Most histories have a handful of functions: a look at the last
        // few before the table. A reader that shares its names gives the
        // table's own copy back: kept as it is, no count touched.
        if let Some(a) = self
            .recent_f
            .iter()
            .find(|a| Arc::ptr_eq(a, &f) || ***a == *f)
        {
            return if Arc::ptr_eq(a, &f) { f } else { a.clone() };
        }
        let a = match self.f_names.get(&*f) {
            Some(a) => a.clone(),
            None => {
                self.f_names.insert(f.to_string(), f.clone());
                f.clone()
            }
        };
        if self.recent_f.len() == RECENT_F {
            self.recent_f.remove(0);
        }
        self.recent_f.push(a.clone());
        a
    }

    /// `key` shared with the operations before it on the same key.
    fn key(&mut self, key: Option<Arc<Value>>) -> Option<Arc<Value>> {
        key.map(|k| {
            // A piece's keys come from its thread's reader, which shares
            // them already: one copy per key and thread is enough.
            if self.fragment.is_some() && Arc::strong_count(&k) > 1 {
                k
            } else {
                self.keys.intern(k)
            }
        })
    }

    /// `extra` as an operation keeps it: `None` when empty, else shared with
    /// the previous operation's when they are the same.
    fn share(&mut self, extra: Map<String, Value>) -> Option<Arc<Map<String, Value>>> {
        if extra.is_empty() {
            return None;
        }
        match &self.last_extra {
            Some(last) if **last == extra => Some(last.clone()),
            _ => {
                let shared = Arc::new(extra);
                self.last_extra = Some(shared.clone());
                Some(shared)
            }
        }
    }

    /// An error at `line` of this builder's source.
    pub fn error(&self, line: usize, kind: HistoryErrorKind) -> HistoryError {
        HistoryError {
            file: self.source.clone(),
            line,
            kind,
        }
    }

    fn read_without_value(&self, ev: &Event) -> HistoryError {
        self.error(
            ev.line,
            HistoryErrorKind::ReadWithoutValue {
                f: crate::error::echo(&ev.f),
            },
        )
    }

    /// Adds the next event in file order.
    pub fn push(&mut self, ev: Event) -> Result<(), HistoryError> {
        let pos = self.history.events;
        let (Some(pos32), Some(line32)) = (short(pos), short(ev.line)) else {
            return Err(self.error(ev.line, HistoryErrorKind::TooLong));
        };
        self.history.events += 1;
        let index = ev.index.unwrap_or(pos as u64);
        let process = match ev.process {
            Process::Client(p) if p >= 0 => p,
            Process::Client(p) => {
                return Err(self.error(
                    ev.line,
                    HistoryErrorKind::BadField {
                        field: "process",
                        reason: format!(
                            "process out of range: {p} (a client process is an integer from 0 to 2^63-1)"
                        ),
                    },
                ));
            }
            Process::Other(_) => {
                self.history.faults.push(ev);
                return Ok(());
            }
        };

        match ev.kind {
            EventType::Invoke => {
                if self.mode == CompletionsMode::Auto {
                    if let (Some(true), Some((line, process, kind))) =
                        (self.completions_only, self.first_orphan)
                    {
                        return Err(self.error(
                            line,
                            HistoryErrorKind::CompletionsThenInvoke {
                                process,
                                kind,
                                invoke_line: ev.line,
                            },
                        ));
                    }
                    self.completions_only = Some(false);
                }
                if let Some(open) = self.open.get(process) {
                    return Err(self.double_invoke(process, open, ev.line));
                }
                if let Some(edge) = &mut self.fragment {
                    edge.invoked(process, ev.line);
                }
                let at = (pos32, index, line32, ev.time);
                let extra = self.share(ev.extra);
                self.invoke(process, ev.f, ev.key, ev.value, extra, at);
            }
            kind => {
                let outcome = kind.outcome();
                match self.open.remove(process) {
                    Some(id) => self.complete(id, process, outcome, ev, pos32, index, line32)?,
                    None => {
                        if let Some(edge) = &mut self.fragment {
                            // The first event of the process in this piece:
                            // its invocation is in a piece before.
                            if let Some(ev) = edge.completed(process, outcome, ev, pos) {
                                return Err(self.completion_without_invoke(process, kind, ev.line));
                            }
                            return Ok(());
                        }
                        if self.mode == CompletionsMode::Require
                            || (self.mode == CompletionsMode::Auto
                                && self.completions_only == Some(false))
                        {
                            return Err(self.completion_without_invoke(process, kind, ev.line));
                        }
                        self.orphan(process, outcome, ev, pos32, index, line32)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Opens an operation of `process`, invoked by the event at `at`
    /// (position, index, line, time).
    fn invoke(
        &mut self,
        process: i64,
        f: Arc<str>,
        key: Option<Arc<Value>>,
        value: Value,
        extra: Option<Arc<Map<String, Value>>>,
        at: (u32, u64, u32, Option<i64>),
    ) {
        let (pos32, index, line32, time) = at;
        let id = self.history.ops.len();
        let f = self.intern(f);
        let key = self.key(key);
        self.history.ops.push(Operation::invoked(
            id, process, f, key, value, pos32, index, line32, time, extra,
        ));
        self.open.insert(process, id);
    }

    fn double_invoke(&self, process: i64, open: usize, line: usize) -> HistoryError {
        let prev = self.history.ops[open].invoke_line();
        self.error(
            line,
            HistoryErrorKind::DoubleInvoke {
                process,
                previous_line: prev,
            },
        )
    }

    fn completion_without_invoke(
        &self,
        process: i64,
        kind: EventType,
        line: usize,
    ) -> HistoryError {
        self.error(
            line,
            HistoryErrorKind::CompletionWithoutInvoke {
                process,
                kind: kind.as_str(),
            },
        )
    }

    /// Completes operation `id`, open for `process`, with `ev`.
    #[allow(clippy::too_many_arguments)]
    fn complete(
        &mut self,
        id: usize,
        process: i64,
        outcome: Outcome,
        ev: Event,
        pos32: u32,
        index: u64,
        line32: u32,
    ) -> Result<(), HistoryError> {
        let op = &mut self.history.ops[id];
        if !Arc::ptr_eq(&op.f, &ev.f) && *op.f != *ev.f {
            let (f, line) = (op.f.to_string(), op.invoke_line());
            return Err(self.error(
                ev.line,
                HistoryErrorKind::MismatchedCompletion {
                    process,
                    invoked: crate::error::echo(&f),
                    invoke_line: line,
                    completed: crate::error::echo(&ev.f),
                },
            ));
        }
        if reads_nothing(outcome, ev.has_value, &ev.f) {
            return Err(self.read_without_value(&ev));
        }
        if writes_another_value(op, outcome, &ev.value) {
            let f = crate::error::echo(&ev.f);
            let invoked = format!("{f} {}", shown(&op.invoke_value));
            let line = op.invoke_line();
            return Err(self.error(
                ev.line,
                HistoryErrorKind::MismatchedWriteValue {
                    process,
                    invoked,
                    invoke_line: line,
                    completed: format!("{f} {}", shown(&ev.value)),
                },
            ));
        }
        op.complete(outcome, ev.value, pos32, index, line32, ev.time);
        let keyless = op.key.is_none();
        if keyless && ev.key.is_some() {
            let key = self.key(ev.key);
            self.history.ops[id].key = key;
        }
        if !ev.extra.is_empty() {
            self.add_extra(id, ev.extra);
        }
        Ok(())
    }

    /// Adds a completion's extra fields to operation `id`'s (they win over
    /// the invocation's of the same name).
    pub(super) fn add_extra(&mut self, id: usize, extra: Map<String, Value>) {
        match self.history.ops[id].extra.take() {
            Some(mut m) => {
                Arc::make_mut(&mut m).extend(extra);
                self.history.ops[id].extra = Some(m);
            }
            None => self.history.ops[id].extra = self.share(extra),
        }
    }

    /// A completion without invocation, as an operation of its own (when
    /// the mode allows it).
    fn orphan(
        &mut self,
        process: i64,
        outcome: Outcome,
        ev: Event,
        pos32: u32,
        index: u64,
        line32: u32,
    ) -> Result<(), HistoryError> {
        if reads_nothing(outcome, ev.has_value, &ev.f) {
            return Err(self.read_without_value(&ev));
        }
        if self.mode == CompletionsMode::Auto {
            self.completions_only = Some(true);
        }
        if self.first_orphan.is_none() {
            self.first_orphan = Some((ev.line, process, ev.kind.as_str()));
        }
        let id = self.history.ops.len();
        let f = self.intern(ev.f);
        let extra = self.share(ev.extra);
        let key = self.key(ev.key);
        let mut op = Operation::invoked(
            id,
            process,
            f,
            key,
            ev.value.clone(),
            pos32,
            index,
            line32,
            ev.time,
            extra,
        );
        op.complete(outcome, ev.value, pos32, index, line32, ev.time);
        self.history.ops.push(op);
        Ok(())
    }

    /// True when the history read so far is made of completions without
    /// invocations only (and has at least one).
    pub fn is_completions_only(&self) -> bool {
        self.first_orphan.is_some() && self.completions_only != Some(false)
    }

    /// The history read so far. Invocations still open are `Pending`.
    pub fn finish(mut self) -> History {
        // The vector grew by doubling: give back what is not used (a
        // reallocation in place for a large block).
        self.history.ops.shrink_to_fit();
        self.history
    }

    /// Notes that the last line, `line`, was cut short and left out.
    pub fn torn_last_line(&mut self, line: usize) {
        self.history.torn_last_line = Some(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A 1M-operation history holds a million operations: their size is
    /// most of a check's memory (issue 11: 248 bytes before).
    #[test]
    fn operations_stay_compact() {
        assert!(std::mem::size_of::<Operation>() <= 168);
    }

    /// Operations on one key share its value (one allocation per key, not
    /// per operation); different keys stay apart, and a key given only at
    /// completion is kept.
    #[test]
    fn keys_are_shared_between_operations() {
        let mut b = HistoryBuilder::new("t", Semantics::default());
        let ev = |line, kind, key: Option<Value>| Event {
            key: key.map(Arc::new),
            line,
            index: None,
            time: None,
            process: Process::Client(line as i64 / 2),
            kind,
            f: "read".into(),
            value: Value::Null,
            has_value: true,
            extra: Map::new(),
        };
        let keys = [
            json!("a"),
            json!("b"),
            json!("a"),
            json!(7),
            json!(7),
            json!([1]),
        ];
        for (i, k) in keys.iter().enumerate() {
            b.push(ev(2 * i, EventType::Invoke, Some(k.clone())))
                .unwrap();
            b.push(ev(2 * i + 1, EventType::Ok, None)).unwrap();
        }
        b.push(ev(40, EventType::Invoke, None)).unwrap();
        b.push(ev(41, EventType::Ok, Some(json!("a")))).unwrap();
        let h = b.finish();
        let key = |i: usize| h.ops[i].key.clone().unwrap();
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(*key(i), *k);
        }
        assert!(Arc::ptr_eq(&key(0), &key(2)));
        assert!(Arc::ptr_eq(&key(0), &key(6)));
        assert!(Arc::ptr_eq(&key(3), &key(4)));
        assert!(!Arc::ptr_eq(&key(0), &key(1)));
    }

    /// A key a reader shares (the same copy on many events, as the JSON
    /// parsers give) is found by address, and still maps to the table's
    /// copy; a different value never gets another's copy.
    #[test]
    fn keys_shared_by_a_reader_map_to_one_copy() {
        let mut t = KeyTable::default();
        let first = t.intern(Arc::new(json!("a")));
        let reader_a = Arc::new(json!("a"));
        let reader_b = Arc::new(json!("b"));
        for _ in 0..3 {
            assert!(Arc::ptr_eq(&t.intern(reader_a.clone()), &first));
            let b = t.intern(reader_b.clone());
            assert_eq!(*b, json!("b"));
            assert!(!Arc::ptr_eq(&b, &first));
        }
        // The reader's copies stay alive in the table: their addresses
        // cannot be reused by another value.
        assert!(Arc::strong_count(&reader_a) > 1);
        drop(reader_a);
        let c = t.intern(Arc::new(json!("c")));
        assert_eq!(*c, json!("c"));
    }

    #[test]
    fn accessors_give_back_what_the_events_said() {
        let mut b = HistoryBuilder::new("t", Semantics::default());
        let ev = |line, kind, time| Event {
            line,
            index: None,
            time,
            process: Process::Client(1),
            kind,
            f: "write".into(),
            key: None,
            value: Value::from(3),
            has_value: true,
            extra: Map::new(),
        };
        b.push(ev(4, EventType::Invoke, Some(i64::MIN))).unwrap();
        let pending = b.history.ops[0].clone();
        assert_eq!(pending.complete_pos(), None);
        assert_eq!(pending.complete_line(), None);
        assert_eq!(pending.complete_index(), None);
        assert_eq!(pending.complete_time(), None);
        assert_eq!(pending.invoke_time(), Some(i64::MIN));
        b.push(ev(9, EventType::Ok, None)).unwrap();
        let op = &b.finish().ops[0];
        assert_eq!((op.invoke_pos(), op.complete_pos()), (0, Some(1)));
        assert_eq!((op.invoke_line(), op.complete_line()), (4, Some(9)));
        assert_eq!((op.invoke_index, op.complete_index()), (0, Some(1)));
        assert_eq!(
            (op.invoke_time(), op.complete_time()),
            (Some(i64::MIN), None)
        );
        assert_eq!(op.outcome, Outcome::Ok);
    }
}
