//! An event whose function name and key are still the reader's: borrowed
//! from the reader's tables instead of counted copies.
//!
//! A reader that shares one copy of each name and key among its events
//! pays two atomic counts per event to hand them out, and two more when a
//! completion's copies are dropped after pairing. Given as borrows, only
//! the operation an invocation starts takes its own counted copies
//! ([`HistoryBuilder::push_raw`](super::HistoryBuilder::push_raw)).

use std::sync::Arc;

use serde_json::{Map, Value};

use super::{Event, EventType, Process};

/// A value shared through an [`Arc`]: the reader's copy, borrowed, or one of
/// its own (when the reader's table was full).
pub enum Held<'a, T: ?Sized> {
    /// The reader's copy.
    Shared(&'a Arc<T>),
    /// A copy of the event's own.
    Own(Arc<T>),
}

impl<T: ?Sized> Held<'_, T> {
    /// The value's [`Arc`].
    pub fn arc(&self) -> &Arc<T> {
        match self {
            Held::Shared(a) => a,
            Held::Own(a) => a,
        }
    }

    /// A counted copy (the one it holds, when its own).
    pub fn into_arc(self) -> Arc<T> {
        match self {
            Held::Shared(a) => a.clone(),
            Held::Own(a) => a,
        }
    }
}

/// An event's key, as a reader gives it.
pub enum RawKey<'a> {
    /// The reader's shared copy (or one of its own).
    Held(Held<'a, Value>),
    /// A string key not looked up in the reader's table: a completion's,
    /// which only counts when its invocation had no key (then it gets a
    /// copy of its own). Its bytes are printable ASCII (the reader checked
    /// each), so they are its text; they are not checked again per event.
    Text(&'a [u8]),
}

impl RawKey<'_> {
    /// A counted copy of the key.
    pub fn into_arc(self) -> Arc<Value> {
        match self {
            RawKey::Held(h) => h.into_arc(),
            // ASCII: the conversion is exact (never lossy).
            RawKey::Text(t) => Arc::new(Value::String(String::from_utf8_lossy(t).into_owned())),
        }
    }
}

/// An event of a client process, as [`Event`], with the function name and
/// the key borrowed from the reader.
pub struct RawEvent<'a> {
    /// 1-based line of the file.
    pub line: usize,
    /// The `index` field, if any.
    pub index: Option<u64>,
    /// The `time` field, if known.
    pub time: Option<i64>,
    /// The client process (non-negative).
    pub process: i64,
    /// invoke, ok, fail or info.
    pub kind: EventType,
    /// The function.
    pub f: Held<'a, str>,
    /// The key, if any.
    pub key: Option<RawKey<'a>>,
    /// The value (Null when absent: see `has_value`).
    pub value: Value,
    /// The event carried a value field.
    pub has_value: bool,
    /// Any other fields.
    pub extra: Option<Map<String, Value>>,
}

impl RawEvent<'_> {
    /// The same event with counted copies of its name and key.
    pub fn into_event(self) -> Event {
        Event {
            line: self.line,
            index: self.index,
            time: self.time,
            process: Process::Client(self.process),
            kind: self.kind,
            f: self.f.into_arc(),
            key: self.key.map(RawKey::into_arc),
            value: self.value,
            has_value: self.has_value,
            extra: self.extra.unwrap_or_default(),
        }
    }
}
