//! Pairing a file in pieces, on all cores.
//!
//! A reader that cuts a file into pieces of whole lines can pair each
//! piece's events into operations on its own thread
//! ([`HistoryBuilder::start_fragment`], then [`HistoryBuilder::push`] as
//! usual, then [`HistoryBuilder::finish_fragment`]) and join the pieces in
//! file order ([`HistoryBuilder::append`]).
//!
//! What a piece cannot decide alone is the first event of each process in
//! it: an invocation is an error if the process has an operation open from
//! an earlier piece; a completion completes that operation, and is an
//! error when there is none. The piece keeps those events, its *edge*, and
//! the join decides them against the pieces before, in file order. Every
//! other event is decided inside its piece: what it depends on is there.
//! So the history, and the first error (its line and its message), are
//! exactly those of pushing every event in file order into one builder.
//!
//! A piece must be given the position of its first event among all the
//! events of the file (JSON Lines: the number of non-blank lines before
//! it), and its events carry the file's line numbers.

use std::sync::Arc;

use super::process_set::ProcessSet;
use super::raw_event::{RawEvent, RawKey};
use super::{
    CompletionsMode, Event, EventType, History, HistoryBuilder, Operation, Outcome, reads_nothing,
    short, writes_another_value,
};
use crate::error::HistoryError;

/// What a piece leaves to the pieces before it.
#[derive(Default)]
pub(super) struct Edge {
    /// The position of the piece's first event among all events.
    first_event: usize,
    /// Processes with an event in the piece so far.
    seen: ProcessSet,
    /// The first event of each process, when it depends on the pieces
    /// before; in file order.
    events: Vec<EdgeEvent>,
}

/// The first event of a process in a piece.
enum EdgeEvent {
    /// An invocation: the process must have no operation open before.
    Invoke { process: i64, line: usize },
    /// A completion: it completes the operation the process has open
    /// before (`pos`: the event's position among all events).
    Complete {
        process: i64,
        outcome: Outcome,
        ev: Event,
        pos: usize,
    },
}

impl Edge {
    /// Notes an invocation by `process`, which has no operation open in
    /// the piece.
    pub(super) fn invoked(&mut self, process: i64, line: usize) {
        if self.seen.insert(process) {
            self.events.push(EdgeEvent::Invoke { process, line });
        }
    }

    /// Notes a completion by `process`, which has no operation open in the
    /// piece: kept for the join (`None`) when it is the process's first
    /// event in the piece; given back (an error: nothing to complete) when
    /// the process had an event before it in the piece.
    pub(super) fn completed(
        &mut self,
        process: i64,
        outcome: Outcome,
        ev: Event,
        pos: usize,
    ) -> Option<Event> {
        if !self.seen.insert(process) {
            return Some(ev);
        }
        self.events.push(EdgeEvent::Complete {
            process,
            outcome,
            ev,
            pos,
        });
        None
    }
}

/// One piece of a file, paired: its operations, and its edge for the join.
pub struct Fragment {
    ops: Vec<Operation>,
    faults: Vec<Event>,
    first_event: usize,
    end_event: usize,
    edge: Vec<EdgeEvent>,
    /// Processes with an operation open at the end of the piece, and the
    /// operation's place in `ops`.
    open: Vec<(i64, usize)>,
    /// The error that ended the piece early, if any.
    error: Option<HistoryError>,
}

impl Fragment {
    /// The position among all events of the piece's first event, as the
    /// reader gave it: [`HistoryBuilder::append`] takes the piece only
    /// when the history has that many events.
    pub fn first_event(&self) -> usize {
        self.first_event
    }
}

impl HistoryBuilder {
    /// True when the rest of the input may be paired in pieces and joined
    /// with [`HistoryBuilder::append`]: every completion needs its
    /// invocation (by the mode, or, in [`CompletionsMode::Auto`], because
    /// the history so far started with an invocation).
    pub fn takes_fragments(&self) -> bool {
        self.fragment.is_none()
            && match self.mode {
                CompletionsMode::Require => true,
                CompletionsMode::Auto => self.completions_only == Some(false),
                CompletionsMode::Allow => false,
            }
    }

    /// Starts pairing a piece of `source` whose first event is event
    /// `first_event` of the file, into `ops` (emptied; its memory is
    /// reused). The builder's tables (function names, keys) are kept from
    /// piece to piece; anything else is reset.
    pub fn start_fragment(&mut self, source: &str, first_event: usize, mut ops: Vec<Operation>) {
        if self.source != source {
            self.source = source.to_string();
        }
        ops.clear();
        self.history = History {
            events: first_event,
            ops,
            ..History::default()
        };
        self.open.clear();
        self.mode = CompletionsMode::Require;
        self.completions_only = None;
        self.first_orphan = None;
        self.last_extra = None;
        self.fragment = Some(Edge {
            first_event,
            ..Edge::default()
        });
    }

    /// Ends the piece begun with [`HistoryBuilder::start_fragment`];
    /// `error` is the error that ended it early, if any (a line that does
    /// not decode, or an error [`HistoryBuilder::push`] gave).
    pub fn finish_fragment(&mut self, error: Option<HistoryError>) -> Fragment {
        let edge = self.fragment.take().unwrap_or_default();
        let history = std::mem::take(&mut self.history);
        Fragment {
            ops: history.ops,
            faults: history.faults,
            first_event: edge.first_event,
            end_event: history.events,
            edge: edge.events,
            open: self.open.drain(),
            error,
        }
    }

    /// [`HistoryBuilder::push`] for an event whose name and key are the
    /// reader's (see [`super::raw_event`]), in a piece: an invocation, or
    /// a completion of an operation open in the piece that is not an
    /// error, is paired here and takes counted copies only for a new
    /// operation; any other event goes through `push` as usual.
    pub fn push_raw(&mut self, raw: RawEvent) -> Result<(), HistoryError> {
        let pos = self.history.events;
        let (Some(pos32), Some(line32), Some(edge)) =
            (short(pos), short(raw.line), self.fragment.as_mut())
        else {
            return self.push(raw.into_event());
        };
        let index = raw.index.unwrap_or(pos as u64);
        let process = raw.process;
        if raw.kind == EventType::Invoke {
            if self.open.contains(process) {
                return self.push(raw.into_event());
            }
            edge.invoked(process, raw.line);
            self.history.events += 1;
            let (f, key) = (raw.f.into_arc(), raw.key.map(RawKey::into_arc));
            let at = (pos32, index, line32, raw.time);
            let extra = raw.extra.and_then(|m| self.share(m));
            self.invoke(process, f, key, raw.value, extra, at);
            return Ok(());
        }
        let outcome = raw.kind.outcome();
        let Some(id) = self.open.get(process) else {
            return self.push(raw.into_event());
        };
        let op = &self.history.ops[id];
        let plain = Arc::ptr_eq(&op.f, raw.f.arc())
            && (op.key.is_some() || raw.key.is_none())
            && !reads_nothing(outcome, raw.has_value, raw.f.arc())
            && !writes_another_value(op, outcome, &raw.value);
        if !plain {
            return self.push(raw.into_event());
        }
        self.history.events += 1;
        self.open.remove(process);
        self.history.ops[id].complete(outcome, raw.value, pos32, index, line32, raw.time);
        if let Some(extra) = raw.extra {
            self.add_extra(id, extra);
        }
        Ok(())
    }

    /// Joins the next piece, in file order: decides its edge against what
    /// came before, then takes its operations. The first error in file
    /// order is returned, as [`HistoryBuilder::push`] would have returned
    /// it. Gives back the piece's emptied operation vector, for reuse.
    pub fn append(&mut self, piece: Fragment) -> Result<Vec<Operation>, HistoryError> {
        // The reader counts the events before each piece; a mismatch would
        // misplace every event in real time.
        assert_eq!(
            self.history.events, piece.first_event,
            "a piece joined out of place"
        );
        let base = self.history.ops.len();
        for e in piece.edge {
            match e {
                EdgeEvent::Invoke { process, line } => {
                    if let Some(open) = self.open.get(process) {
                        return Err(self.double_invoke(process, open, line));
                    }
                }
                EdgeEvent::Complete {
                    process,
                    outcome,
                    ev,
                    pos,
                } => {
                    // Both fit: the piece's push checked them.
                    let (Some(pos32), Some(line32)) = (short(pos), short(ev.line)) else {
                        return Err(self.error(ev.line, crate::error::HistoryErrorKind::TooLong));
                    };
                    let index = ev.index.unwrap_or(pos as u64);
                    match self.open.remove(process) {
                        Some(id) => {
                            self.complete(id, process, outcome, ev, pos32, index, line32)?
                        }
                        None => {
                            return Err(self.completion_without_invoke(process, ev.kind, ev.line));
                        }
                    }
                }
            }
        }
        if let Some(e) = piece.error {
            return Err(e);
        }
        let mut ops = piece.ops;
        self.history.ops.extend(ops.drain(..).map(|mut op| {
            op.id += base;
            op
        }));
        for (process, id) in piece.open {
            self.open.insert(process, base + id);
        }
        self.history.faults.extend(piece.faults);
        self.history.events = piece.end_event;
        Ok(ops)
    }
}
