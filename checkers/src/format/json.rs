//! faultline's own format: JSON Lines, one event per line, or one JSON array
//! of events. Field names and meanings follow Jepsen:
//! `index`, `time`, `process`, `type`, `f`, `key`, `value`; any other field
//! is preserved in [`Event::extra`]. Each event is decoded by
//! [`json_event`](super::json_event) (simd-json), which states the rules.
//!
//! JSON Lines are read in blocks of whole lines ([`BLOCK`] bytes): a block is
//! cut into pieces at line ends, the pieces are decoded (and, once the
//! history is known to start with an invocation, paired into operations:
//! [`crate::history::fragment`]) in parallel on all cores, and joined in
//! file order by the reading thread while the pool pairs the pieces of the
//! block after (no thread waits at the end of a block).
//! The first error in file order is the one reported, as when reading line
//! by line; memory stays bounded by a few blocks plus the history itself. A UTF-8 byte order mark at the start is skipped.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, Read};
use std::ops::Range;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use rayon::prelude::*;

use super::io_error;
use super::json_event::{EventParser, string_end};
use crate::error::{HistoryError, HistoryErrorKind};
use crate::history::fragment::Fragment;
use crate::history::{CompletionsMode, Event, History, HistoryBuilder, Operation, Semantics};

/// How many bytes of JSON Lines are decoded together.
pub const BLOCK: usize = 4 << 20;

/// At most how many bytes the first block of JSON Lines has.
const FIRST_BLOCK: usize = 256 << 10;

/// The UTF-8 byte order mark.
pub(super) const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Parses one JSON event (the text of one line).
pub fn parse_event(text: &[u8], line: usize) -> Result<Event, HistoryErrorKind> {
    EventParser::new().parse(text, line)
}

/// Reads JSON Lines (or one JSON array) from `reader`, streaming block by
/// block.
pub fn read<R: BufRead>(source: &str, reader: R) -> Result<History, HistoryError> {
    read_with(source, reader, CompletionsMode::Require)
}

/// Events decoded from consecutive lines, in order, and the first error
/// among them (decoding stops there). Lines are counted from the piece's
/// first line, which is line 1.
struct Piece {
    events: Vec<Event>,
    error: Option<(usize, HistoryErrorKind)>,
    /// Number of lines in the piece.
    lines: usize,
}

/// A block of whole lines and the line number of its first line.
pub(super) struct Block {
    pub(super) data: Vec<u8>,
    pub(super) first_line: usize,
}

/// [`read`], with the given treatment of completions without invocation.
pub fn read_with<R: BufRead>(
    source: &str,
    reader: R,
    mode: CompletionsMode,
) -> Result<History, HistoryError> {
    read_sized(source, reader, mode, None)
}

/// [`read_with`], given the input's length in bytes when it is known: the
/// history's operations are given room once, as the first block tells
/// how many bytes an event takes (a vector that grows by doubling costs a
/// move of its operations and, where huge pages serve large allocations,
/// their loss).
pub fn read_sized<R: BufRead>(
    source: &str,
    reader: R,
    mode: CompletionsMode,
    size: Option<u64>,
) -> Result<History, HistoryError> {
    read_in_blocks(source, reader, mode, BLOCK, size)
}

/// [`read_sized`], in blocks of about `block` bytes (the tests cut small
/// inputs into many blocks and pieces).
fn read_in_blocks<R: BufRead>(
    source: &str,
    reader: R,
    mode: CompletionsMode,
    block: usize,
    size: Option<u64>,
) -> Result<History, HistoryError> {
    let mut b = HistoryBuilder::new(source, Semantics::default()).completions_mode(mode);
    let mut input = Input {
        source,
        reader,
        carry: Vec::new(),
        torn: None,
        block,
        spare: Vec::new(),
    };
    // The first block is pushed one event at a time (the builder learns
    // from it whether it takes pieces): a small one.
    input.block = block.min(FIRST_BLOCK);
    let mut first = input.next(1)?;
    input.block = block;
    if let (Some(first), Some(size)) = (&first, size) {
        b.reserve(expected_ops(&first.data, size));
    }
    if let Some(block) = &mut first {
        if block.data.starts_with(BOM) {
            block.data.drain(..BOM.len());
        }
        // One JSON array: its `[` is the first thing in the file.
        let start = block.data.iter().position(|c| !c.is_ascii_whitespace());
        if let Some(start) = start.filter(|&s| block.data[s] == b'[') {
            let line = block.first_line + count_newlines(&block.data[..start]);
            let mut data = block.data.split_off(start);
            data.extend_from_slice(&input.carry);
            input
                .reader
                .read_to_end(&mut data)
                .map_err(|e| io_error(source, e))?;
            return read_array(b, &data, line);
        }
    }
    // Events one by one until the builder takes pieces (once it does, it
    // always does, but for histories of more than 2^32 events or lines).
    let mut events_before = 0;
    let mut pending = first;
    while pending.is_some() {
        pending = push_blocks(&mut b, &mut input, pending, &mut events_before)?;
        if let Some(bl) = pending.take() {
            pending = pair_blocks(&mut b, &mut input, bl, &mut events_before)?;
        }
    }
    if let Some(line) = input.torn {
        // The last line of a file whose writer died (or ran out of space)
        // mid-write: left out, and said so.
        b.torn_last_line(line);
    }
    if b.events() == 0 {
        return Err(b.error(0, HistoryErrorKind::Empty));
    }
    Ok(b.finish())
}

/// How many operations a file of `size` bytes holds, going by its first
/// block (`first`): two events an operation, a little more for safety.
/// At most one per 32 bytes (no event line is shorter): a first block of
/// blank lines promises nothing.
fn expected_ops(first: &[u8], size: u64) -> usize {
    let lines = count_newlines(first).max(1) as u64;
    let per_line = (first.len() as u64 / lines).max(32);
    let ops = size / per_line / 2;
    usize::try_from(ops + ops / 32).unwrap_or(0)
}

/// The input of [`read_in_blocks`]: the reader, cut into blocks of whole
/// lines.
struct Input<'a, R> {
    source: &'a str,
    reader: R,
    /// The start of the next block's first line.
    carry: Vec<u8>,
    /// The line left out at the end because it was cut short.
    torn: Option<usize>,
    /// About how many bytes a block has.
    block: usize,
    /// Buffers of blocks already read, for the next blocks (fresh memory
    /// costs a page fault per 4 KiB).
    spare: Vec<Vec<u8>>,
}

impl<R: BufRead> Input<'_, R> {
    /// The next block, whose first line is line `first_line`; `None` at
    /// the end.
    fn next(&mut self, first_line: usize) -> Result<Option<Block>, HistoryError> {
        let data = self.spare.pop().unwrap_or_default();
        read_block(
            &mut self.reader,
            &mut self.carry,
            first_line,
            &mut self.torn,
            data,
            self.block,
        )
        .map_err(|e| io_error(self.source, e))
    }
}

/// True when the builder takes `block` in pieces: it takes pieces, and the
/// block's events and lines are numbered in 32 bits (see
/// [`crate::history::Operation`]).
fn takes_pieces(b: &HistoryBuilder, events_before: usize, block: &Block) -> bool {
    b.takes_fragments()
        && [events_before, block.first_line]
            .iter()
            .all(|&n| n + block.data.len() < u32::MAX as usize)
}

/// Pushes the events of `pending` and of the blocks after it one by one,
/// in file order (each block is decoded in pieces, in parallel, while the
/// next is read), until the builder takes a block in pieces: that block is
/// returned. `events_before` counts the events pushed.
fn push_blocks<R: BufRead>(
    b: &mut HistoryBuilder,
    input: &mut Input<R>,
    mut pending: Option<Block>,
    events_before: &mut usize,
) -> Result<Option<Block>, HistoryError> {
    let mut spare_events = Vec::new();
    while let Some(bl) = pending.take() {
        if takes_pieces(b, *events_before, &bl) {
            return Ok(Some(bl));
        }
        let next_line = bl.first_line + count_newlines(&bl.data);
        let mut decoded = None;
        let next = rayon::in_place_scope(|s| {
            let (slot, data, spare) = (&mut decoded, &bl.data, std::mem::take(&mut spare_events));
            s.spawn(move |_| *slot = Some(decode_lines(data, spare)));
            input.next(next_line)
        });
        let Some(pieces) = decoded else {
            unreachable!("the scope ran the decoding");
        };
        *events_before += pieces.iter().map(|p| p.events.len()).sum::<usize>();
        // This block's errors come before a read error after it.
        spare_events = push_pieces(b, pieces, bl.first_line)?;
        input.spare.push(bl.data);
        pending = next?;
    }
    Ok(None)
}

/// Blocks paired at once by [`pair_blocks`]: the pool pairs the pieces of
/// the next block while the pieces of one are joined, so that no thread
/// waits at the end of a block.
const IN_FLIGHT: usize = 2;

/// A piece's operations, paired on a pool thread (or its panic, passed on).
type Paired = std::thread::Result<Fragment>;

/// A piece of a block in flight: its number (pieces are numbered as they
/// are handed to the pool), its bytes in the block and its first line.
struct PieceAt {
    number: usize,
    bytes: Range<usize>,
    line: usize,
}

/// The pieces paired by the pool, taken in order of number whatever the
/// order they come in.
struct PairedPieces {
    rx: std::sync::mpsc::Receiver<(usize, Paired)>,
    /// Pieces paired before the pieces ahead of them.
    early: BTreeMap<usize, Paired>,
}

impl PairedPieces {
    /// Waits for piece `number`. Each piece sends once, even when it
    /// panics, and the caller holds a sender: this returns.
    fn take(&mut self, number: usize) -> Paired {
        loop {
            if let Some(p) = self.early.remove(&number) {
                return p;
            }
            let Ok((k, p)) = self.rx.recv() else {
                unreachable!("a sender lives while pieces are awaited");
            };
            self.early.insert(k, p);
        }
    }
}

/// Pairs `first` and the blocks after it in pieces, on all cores, and
/// joins the pieces in file order ([`HistoryBuilder::append`]), until the
/// input ends or a block is too far into the file to be taken in pieces
/// (it is returned).
///
/// This thread reads each block, counts the lines of its pieces (each
/// piece's first line and first event are then known) and hands the
/// pieces to the pool; it then joins the pieces of the block before as
/// they come. The pool never waits for a join: the next block's pieces are
/// queued behind the ones being paired.
///
/// Every line is first taken for an event, as a vector search counts them
/// fast. A blank line makes its piece take one event fewer, and the pieces
/// after it start at the wrong event: when the join finds one, those
/// pieces are paired again with their events counted one by one, and so
/// are the pieces of the rest of the input.
fn pair_blocks<R: BufRead>(
    b: &mut HistoryBuilder,
    input: &mut Input<R>,
    first: Block,
    events_before: &mut usize,
) -> Result<Option<Block>, HistoryError> {
    let source = input.source;
    let (tx, rx) = std::sync::mpsc::channel::<(usize, Paired)>();
    let mut paired = PairedPieces {
        rx,
        early: BTreeMap::new(),
    };
    rayon::in_place_scope(|s| {
        let mut spare_ops: Vec<Vec<Operation>> = Vec::new();
        let mut pieces = 0;
        let mut exact = false;
        // Hands a piece to the pool; gives its number and its events.
        let mut spawn = |data: &Arc<Vec<u8>>,
                         bytes: Range<usize>,
                         first: (usize, usize),
                         exact: bool,
                         ops: Option<Vec<Operation>>| {
            let piece = &data[bytes.clone()];
            let (lines, events) = if exact {
                count_lines(piece)
            } else {
                count_lines_as_events(piece)
            };
            let mut ops = ops.unwrap_or_default();
            // An operation is two events, in most histories.
            ops.reserve(events / 2 + 1);
            let (data, tx, number) = (Arc::clone(data), tx.clone(), pieces);
            pieces += 1;
            s.spawn(move |_| {
                let first = (first.0, first.1, ops);
                let paired = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    with_worker(|w| pair_piece(w, source, &data[bytes], first))
                }));
                // The block's buffer goes back once its last piece is joined.
                drop(data);
                // The receiver outlives the scope.
                let _ = tx.send((number, paired));
            });
            (number, lines, events)
        };
        let mut flight: VecDeque<(Arc<Vec<u8>>, VecDeque<PieceAt>)> = VecDeque::new();
        let (mut pending, mut left, mut read_error) = (Some(first), None, None);
        loop {
            while flight.len() < IN_FLIGHT && left.is_none() && read_error.is_none() {
                let Some(bl) = pending.take() else {
                    break;
                };
                if !takes_pieces(b, *events_before, &bl) {
                    left = Some(bl);
                    break;
                }
                #[cfg(test)]
                tests::PAIRED_BLOCKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let bounds = piece_bounds(&bl.data);
                let data = Arc::new(bl.data);
                let mut line = bl.first_line;
                let mut at = VecDeque::with_capacity(bounds.len());
                for w in bounds.windows(2) {
                    let first = (line, *events_before);
                    let (number, lines, events) =
                        spawn(&data, w[0]..w[1], first, exact, spare_ops.pop());
                    at.push_back(PieceAt {
                        number,
                        bytes: w[0]..w[1],
                        line,
                    });
                    line += lines;
                    *events_before += events;
                }
                flight.push_back((data, at));
                // The earlier blocks' errors come before a read error.
                match input.next(line) {
                    Ok(next) => pending = next,
                    Err(e) => read_error = Some(e),
                }
            }
            let Some((_, at)) = flight.front_mut() else {
                break;
            };
            let Some(piece) = at.pop_front() else {
                if let Some((data, _)) = flight.pop_front() {
                    if let Ok(data) = Arc::try_unwrap(data) {
                        input.spare.push(data);
                    }
                }
                continue;
            };
            let fragment = paired
                .take(piece.number)
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            if fragment.first_event() == b.events() {
                spare_ops.push(b.append(fragment)?);
                continue;
            }
            // A blank line before: this piece and every piece after it
            // (all handed out) are paired again, counted one by one.
            exact = true;
            #[cfg(test)]
            tests::RECOUNTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            for (_, at) in &flight {
                for p in at {
                    let _ = paired.take(p.number);
                }
            }
            if let Some((_, at)) = flight.front_mut() {
                at.push_front(piece);
            }
            *events_before = b.events();
            for (data, at) in &mut flight {
                for p in at {
                    let first = (p.line, *events_before);
                    let (number, _, events) = spawn(data, p.bytes.clone(), first, exact, None);
                    p.number = number;
                    *events_before += events;
                }
            }
        }
        match read_error {
            Some(e) => Err(e),
            None => Ok(left.or(pending)),
        }
    })
}

/// Reads about `block` bytes ([`BLOCK`] but in tests) of whole lines, the
/// first of which is line `first_line` (the partial last line waits in
/// `carry` for the next block; at the end of the input it is the last
/// line). `None` at the end. A last line without a newline that is a JSON
/// text cut short is left out, and its number put in `torn`.
pub(super) fn read_block<R: BufRead>(
    reader: &mut R,
    carry: &mut Vec<u8>,
    first_line: usize,
    torn: &mut Option<usize>,
    mut data: Vec<u8>,
    block: usize,
) -> std::io::Result<Option<Block>> {
    data.clear();
    data.reserve(block + block / 8);
    data.append(carry);
    // Read straight into the block (a buffered reader with nothing
    // buffered hands large reads to the file, without copying).
    let want = block.saturating_sub(data.len());
    let eof = want > 0 && reader.take(want as u64).read_to_end(&mut data)? < want;
    if !eof {
        match memchr::memrchr(b'\n', &data) {
            Some(end) => *carry = data.split_off(end + 1),
            // One line longer than a block: read on to its end.
            None => {
                reader.read_until(b'\n', &mut data)?;
            }
        }
    }
    if eof && !data.ends_with(b"\n") {
        let start = memchr::memrchr(b'\n', &data).map_or(0, |i| i + 1);
        if is_cut_short(&data[start..]) {
            *torn = Some(first_line + count_newlines(&data[..start]));
            data.truncate(start);
        }
    }
    if data.is_empty() {
        return Ok(None);
    }
    Ok(Some(Block { data, first_line }))
}

/// True if `text` is the beginning of a JSON text that ends too early (and
/// nothing else is wrong with it so far).
fn is_cut_short(text: &[u8]) -> bool {
    let text = text.trim_ascii();
    !text.is_empty()
        && serde_json::from_slice::<serde::de::IgnoredAny>(text)
            .err()
            .is_some_and(|e| e.is_eof())
}

/// Where a block of whole lines is cut into pieces: the start of each and
/// the end of the last, at line ends.
fn piece_bounds(data: &[u8]) -> Vec<usize> {
    let n = (rayon::current_num_threads() * 4).max(1);
    let mut bounds = vec![0];
    for k in 1..n {
        let at = (data.len() * k / n).max(*bounds.last().unwrap_or(&0));
        let end = memchr::memchr(b'\n', &data[at..]).map_or(data.len(), |e| at + e + 1);
        bounds.push(end);
    }
    bounds.push(data.len());
    bounds.dedup();
    bounds
}

/// Decodes a block of whole lines in pieces, in parallel, into the `spare`
/// event vectors (emptied) when there are enough.
fn decode_lines(data: &[u8], mut spare: Vec<Vec<Event>>) -> Vec<Piece> {
    let bounds = piece_bounds(data);
    spare.resize_with(bounds.len() - 1, Vec::new);
    bounds
        .par_windows(2)
        .zip(spare)
        .map(|(w, events)| {
            with_worker(|worker| decode_piece(&mut worker.parser, &data[w[0]..w[1]], events))
        })
        .collect()
}

/// A thread's parser and the builder that pairs its pieces, kept from
/// piece to piece (names and keys are learnt once per thread, and the
/// operations of a thread share its copies).
struct Worker {
    parser: EventParser,
    builder: HistoryBuilder,
}

impl Worker {
    fn new() -> Self {
        Worker {
            parser: EventParser::new(),
            builder: HistoryBuilder::new("", Semantics::default()),
        }
    }
}

thread_local! {
    static WORKER: std::cell::RefCell<Worker> = std::cell::RefCell::new(Worker::new());
}

/// Runs `f` with this thread's worker (a new one if it is in use).
fn with_worker<T>(f: impl FnOnce(&mut Worker) -> T) -> T {
    WORKER.with(|cell| match cell.try_borrow_mut() {
        Ok(mut worker) => f(&mut worker),
        Err(_) => f(&mut Worker::new()),
    })
}

/// The newlines and the non-blank lines of `data`, as [`pair_piece`] and
/// [`decode_piece`] count them (the text after the last newline is a line
/// too). A blank line starts with whitespace: only those are looked at.
fn count_lines(data: &[u8]) -> (usize, usize) {
    let (mut newlines, mut blank) = (0, 0);
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', data) {
        newlines += 1;
        // An empty line starts with its own newline.
        if data[start].is_ascii_whitespace() && data[start..end].trim_ascii().is_empty() {
            blank += 1;
        }
        start = end + 1;
    }
    let last = usize::from(!data[start..].trim_ascii().is_empty());
    (newlines, newlines - blank + last)
}

/// The newlines of `data`, and as many events as lines (the text after
/// the last newline is a line when it is not blank): [`count_lines`] but
/// for blank lines, found by a vector search alone.
fn count_lines_as_events(data: &[u8]) -> (usize, usize) {
    let newlines = count_newlines(data);
    let last = memchr::memrchr(b'\n', data).map_or(0, |i| i + 1);
    let tail = usize::from(!data[last..].trim_ascii().is_empty());
    (newlines, newlines + tail)
}

/// Decodes and pairs one piece; `first` is its first line, the position
/// of its first event, and the vector for its operations.
fn pair_piece(
    worker: &mut Worker,
    source: &str,
    data: &[u8],
    first: (usize, usize, Vec<Operation>),
) -> Fragment {
    let Worker { parser, builder } = worker;
    let (mut line, event, ops) = first;
    builder.start_fragment(source, event, ops);
    // Each round takes one line: a line as the writer writes it is scanned
    // from where it starts (the scan finds its end); any other is cut at
    // its newline and decoded in full.
    let mut start = 0;
    while start < data.len() {
        let rest = &data[start..];
        let (result, end) = match parser.parse_raw(rest, line) {
            Some((raw, len)) => (builder.push_raw(raw), start + len),
            None => {
                let end = memchr::memchr(b'\n', rest).map_or(data.len(), |e| start + e);
                let text = data[start..end].trim_ascii();
                let result = if text.is_empty() {
                    Ok(())
                } else {
                    match parser.parse(text, line) {
                        Ok(ev) => builder.push(ev),
                        Err(k) => Err(builder.error(line, k)),
                    }
                };
                (result, end)
            }
        };
        if let Err(e) = result {
            return builder.finish_fragment(Some(e));
        }
        start = end + 1;
        line += 1;
    }
    builder.finish_fragment(None)
}

fn decode_piece(parser: &mut EventParser, data: &[u8], mut events: Vec<Event>) -> Piece {
    events.clear();
    events.reserve(data.len() / 96 + 1);
    let mut piece = Piece {
        events,
        error: None,
        lines: 0,
    };
    let mut line = 0;
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', data).chain(std::iter::once(data.len()));
    for end in ends {
        line += 1;
        let text = data[start..end].trim_ascii();
        start = end + 1;
        if text.is_empty() {
            continue;
        }
        match parser.parse(text, line) {
            Ok(ev) => piece.events.push(ev),
            Err(k) => {
                piece.error = Some((line, k));
                return piece;
            }
        }
    }
    // `line` counted the text after the last newline too (empty when the
    // piece ends with one): the newlines are one fewer.
    piece.lines = line - 1;
    piece
}

/// Pairs decoded pieces in order; `first_line` is the line of the first
/// piece's first line. Returns the pieces' emptied event vectors, for reuse.
fn push_pieces(
    b: &mut HistoryBuilder,
    pieces: Vec<Piece>,
    first_line: usize,
) -> Result<Vec<Vec<Event>>, HistoryError> {
    let mut base = first_line - 1;
    let mut spare = Vec::with_capacity(pieces.len());
    for mut piece in pieces {
        for mut ev in piece.events.drain(..) {
            ev.line += base;
            b.push(ev)?;
        }
        if let Some((line, k)) = piece.error {
            return Err(b.error(base + line, k));
        }
        base += piece.lines;
        spare.push(piece.events);
    }
    Ok(spare)
}

/// Parses a JSON array of events; `first_line` is the line where the array
/// starts. Each element's line is reported in errors.
fn read_array(
    mut b: HistoryBuilder,
    data: &[u8],
    first_line: usize,
) -> Result<History, HistoryError> {
    let mut pos = data.iter().position(|&c| c == b'[').unwrap_or(0) + 1;
    let mut line = first_line + count_newlines(&data[..pos]);
    let mut expect_value = true;
    // Elements: (line, text), cut here and decoded in parallel below; an
    // error in the array's punctuation ends the list at its line.
    let mut elements: Vec<(usize, &[u8])> = Vec::new();
    let mut framing: Option<(usize, HistoryErrorKind)> = None;
    loop {
        // Skip whitespace, then a comma or the closing bracket.
        while pos < data.len() && data[pos].is_ascii_whitespace() {
            if data[pos] == b'\n' {
                line += 1;
            }
            pos += 1;
        }
        let syntax = |m: &str| HistoryErrorKind::Syntax(format!("invalid JSON: {m}"));
        if pos >= data.len() {
            framing = Some((line, syntax("unterminated array")));
            break;
        }
        match data[pos] {
            b']' => {
                if !data[pos + 1..].trim_ascii().is_empty() {
                    framing = Some((line, syntax("trailing characters after the array")));
                }
                break;
            }
            b',' if !expect_value => {
                pos += 1;
                expect_value = true;
                continue;
            }
            _ if !expect_value => {
                framing = Some((line, syntax("expected `,` or `]`")));
                break;
            }
            _ => {}
        }
        let Some(end) = value_end(data, pos) else {
            framing = Some((line, syntax("unterminated array")));
            break;
        };
        elements.push((line, &data[pos..end]));
        line += count_newlines(&data[pos..end]);
        pos = end;
        expect_value = false;
    }
    let chunk = (elements.len() / (rayon::current_num_threads() * 4)).max(1024);
    let decoded: Vec<Vec<Result<Event, (usize, HistoryErrorKind)>>> = elements
        .par_chunks(chunk)
        .map_init(EventParser::new, |parser, els| {
            let mut out = Vec::with_capacity(els.len());
            for &(line, text) in els {
                let r = parser.parse(text, line).map_err(|k| (line, k));
                let stop = r.is_err();
                out.push(r);
                if stop {
                    break;
                }
            }
            out
        })
        .collect();
    drop(elements);
    for r in decoded.into_iter().flatten() {
        match r {
            Ok(ev) => b.push(ev)?,
            Err((line, k)) => return Err(b.error(line, k)),
        }
    }
    if let Some((line, k)) = framing {
        return Err(b.error(line, k));
    }
    if b.events() == 0 {
        return Err(b.error(0, HistoryErrorKind::Empty));
    }
    Ok(b.finish())
}

/// The end (exclusive) of the JSON value that starts at `start`: after its
/// closing bracket, or at the `,` or `]` that follows a scalar. `None` when
/// the data ends first. Brackets inside strings do not count; the value
/// itself is validated when it is decoded.
fn value_end(data: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = start;
    while i < data.len() {
        match data[i] {
            b'"' => {
                i = string_end(data, i + 1);
                if i >= data.len() {
                    return None;
                }
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' if depth == 0 => return Some(i),
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            b',' if depth == 0 => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// The newlines of `b` (a vector search).
pub(super) fn count_newlines(b: &[u8]) -> usize {
    memchr::memchr_iter(b'\n', b).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Outcome;

    /// Blocks paired in pieces so far, by any test: the differential test
    /// below checks that it made some.
    pub(super) static PAIRED_BLOCKS: std::sync::atomic::AtomicUsize =
        std::sync::atomic::AtomicUsize::new(0);

    /// Times a blank line made the pieces after it be paired again.
    pub(super) static RECOUNTS: std::sync::atomic::AtomicUsize =
        std::sync::atomic::AtomicUsize::new(0);

    /// A random history in JSON Lines of `n` lines by `procs` clients, in
    /// the shapes a file may take (the writer's lines, other spellings,
    /// extra fields, keys of all kinds, no index, blank lines, nemesis
    /// events) and, at rate `1/mistakes` (never when 0), each mistake
    /// pairing must find: a second invocation, a completion without
    /// invocation, another function, an ok read without value, an ok
    /// write of another value, a line that is not JSON, a negative process.
    fn random_history(seed: u64, n: usize, procs: u64, mistakes: u64) -> String {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = move |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m.max(1)
        };
        let mut open: Vec<Option<(&str, String, String)>> = vec![None; procs as usize];
        let mut out = String::new();
        for index in 0..n {
            let oops = |next: &mut dyn FnMut(u64) -> u64| mistakes > 0 && next(mistakes) == 0;
            let p = next(procs);
            let mut line = String::new();
            match next(40) {
                0 => line.push_str("{\"process\":\"nemesis\",\"type\":\"info\",\"f\":\"start\",\"value\":[\"n1\"]}"),
                1 => line.push_str("   "),
                2 if oops(&mut next) => line.push_str("{\"process\":1,"),
                3 if oops(&mut next) => line.push_str("{\"process\":-2,\"type\":\"invoke\",\"f\":\"read\"}"),
                _ => {
                    let slot = &mut open[p as usize];
                    let completing = slot.is_some() != oops(&mut next);
                    let (f, key, value) = match slot.take() {
                        Some(o) => o,
                        None => {
                            let f = ["read", "write", "cas", "append"][next(4) as usize];
                            let key = match next(6) {
                                0 => String::new(),
                                1 => format!(",\"key\":{}", next(3)),
                                2 => ",\"key\":\"é\"".to_string(),
                                _ => format!(",\"key\":\"k{}\"", next(5)),
                            };
                            let value = match f {
                                "read" => "null".to_string(),
                                "cas" => format!("[{},{}]", next(3), next(3)),
                                _ => next(1000).to_string(),
                            };
                            (f, key, value)
                        }
                    };
                    let (kind, f, value) = if completing {
                        let kind = ["ok", "ok", "ok", "fail", "info"][next(5) as usize];
                        let f = if oops(&mut next) { "write" } else { f };
                        let value = match f {
                            "read" if oops(&mut next) => None,
                            "read" => Some(next(1000).to_string()),
                            "write" if oops(&mut next) => Some("7777".to_string()),
                            _ => Some(value.clone()),
                        };
                        (kind, f, value)
                    } else {
                        *slot = Some((f, key.clone(), value.clone()));
                        ("invoke", f, Some(value.clone()))
                    };
                    let time = index * 10;
                    let index = match next(50) {
                        0 => String::new(),
                        _ => format!("\"index\":{index},"),
                    };
                    let value = value.map(|v| format!(",\"value\":{v}")).unwrap_or_default();
                    let extra = if kind == "info" { ",\"error\":\"timeout\"" } else { "" };
                    line = match next(8) {
                        0 => format!(
                            "{{ \"type\": \"{kind}\", \"process\": {p}, \"f\": \"{f}\"{key}{value} }}"
                        ),
                        _ => format!(
                            "{{{index}\"time\":{time},\"process\":{p},\"type\":\"{kind}\",\"f\":\"{f}\"{key}{value}{extra}}}"
                        ),
                    };
                }
            }
            out.push_str(&line);
            // Line ends as other writers leave them.
            out.push_str(["\n", "\n", "\n", "\n", "\n", "\r\n", " \n"][next(7) as usize]);
        }
        out
    }

    /// Pairing in pieces (blocks of a few lines, pieces of one) gives the
    /// history, or the first error, of pairing every event in order, on
    /// many random histories, valid and not, in both modes that take
    /// pieces and the one that does not.
    #[test]
    fn pieces_pair_as_one_file_does() {
        let before = PAIRED_BLOCKS.load(std::sync::atomic::Ordering::Relaxed);
        let recounts = RECOUNTS.load(std::sync::atomic::Ordering::Relaxed);
        let (mut errors, mut valid) = (0, 0);
        for seed in 0..400 {
            let mistakes = [0, 0, 300, 60][seed as usize % 4];
            let mut text = random_history(seed, 400, 2 + seed % 9, mistakes);
            // Histories that start with completions (of their own
            // processes), or with the nemesis: `Auto` reads the first as
            // completions only, the second as `Require`.
            let start = match seed % 5 {
                0 => {
                    "{\"process\":100,\"type\":\"ok\",\"f\":\"read\",\"value\":1}\n\
                      {\"process\":101,\"type\":\"fail\",\"f\":\"write\",\"value\":2}\n"
                }
                1 => "{\"process\":\"nemesis\",\"type\":\"info\",\"f\":\"start\"}\n\n",
                _ => "",
            };
            text.insert_str(0, start);
            for mode in [
                CompletionsMode::Require,
                CompletionsMode::Auto,
                CompletionsMode::Allow,
            ] {
                let whole = read_in_blocks("t.jsonl", text.as_bytes(), mode, BLOCK, None);
                match &whole {
                    Ok(_) => valid += 1,
                    Err(_) => errors += 1,
                }
                let whole = format!("{whole:?}");
                for block in [90, 301, 2000] {
                    let pieces = read_in_blocks(
                        "t.jsonl",
                        text.as_bytes(),
                        mode,
                        block,
                        Some(text.len() as u64),
                    );
                    assert_eq!(
                        whole,
                        format!("{pieces:?}"),
                        "seed {seed}, mode {mode:?}, blocks of {block} bytes:\n{text}"
                    );
                }
            }
        }
        let paired = PAIRED_BLOCKS.load(std::sync::atomic::Ordering::Relaxed) - before;
        assert!(
            paired > 10_000,
            "only {paired} blocks were paired in pieces"
        );
        let recounts = RECOUNTS.load(std::sync::atomic::Ordering::Relaxed) - recounts;
        assert!(
            recounts > 1_000,
            "blank lines made pieces be paired again only {recounts} times"
        );
        assert!(
            errors > 300 && valid > 300,
            "{errors} errors, {valid} valid"
        );
    }

    fn read_str(s: &str) -> Result<History, HistoryError> {
        read("t.jsonl", s.as_bytes())
    }

    #[test]
    fn a_torn_last_line_is_left_out_and_said() {
        let whole = "{\"process\":0,\"type\":\"invoke\",\"f\":\"read\"}\n\
                     {\"process\":0,\"type\":\"ok\",\"f\":\"read\",\"value\":1}\n";
        // A writer that died mid-line (issue 15: `{"ind` at the end).
        let h = read_str(&format!("{whole}{{\"ind")).expect("torn last line");
        assert_eq!(h.torn_last_line, Some(3));
        assert_eq!(h.len(), 1);
        assert_eq!(read_str(whole).expect("whole").torn_last_line, None);
        // Only a JSON text cut short, and only on the last line.
        let e = read_str(&format!("{whole}oops")).unwrap_err();
        assert_eq!(e.line, 3);
        let e = read_str(&format!("{{\"ind\n{whole}")).unwrap_err();
        assert_eq!(e.line, 1);
        let e = read_str(&format!("{whole}{{\"ind\n")).unwrap_err();
        assert_eq!(
            e.line, 3,
            "a cut line with its newline was not torn by a dying writer"
        );
        // Torn in a later block than the first, and in its own block.
        let long = whole.repeat(40);
        for block in [60, 301, 2000] {
            for tail in ["{\"ind", "{\"process\":0,\"type\":\"invoke\",\"f"] {
                let text = format!("{long}{tail}");
                let h = read_in_blocks("t", text.as_bytes(), CompletionsMode::Require, block, None)
                    .expect("torn last line");
                assert_eq!(h.torn_last_line, Some(81), "block {block}");
                assert_eq!(h.len(), 40);
            }
        }
    }

    #[test]
    fn reads_lines_and_pairs() {
        let h = read_str(
            r#"{"index":0,"time":10,"process":3,"type":"invoke","f":"write","key":"x","value":4}
{"index":1,"time":20,"process":3,"type":"ok","f":"write","key":"x","value":4,"node":"n2"}
{"index":2,"time":30,"process":"nemesis","type":"info","f":"partition","value":{"n1":["n2"]}}
{"index":3,"time":40,"process":1,"type":"invoke","f":"read","value":null}
"#,
        )
        .unwrap();
        assert_eq!(h.ops.len(), 2);
        assert_eq!(h.faults.len(), 1);
        assert_eq!(h.ops[0].outcome, Outcome::Ok);
        assert_eq!(h.ops[0].extra.as_ref().unwrap()["node"], "n2");
        assert_eq!(h.ops[1].outcome, Outcome::Pending);
        assert_eq!(h.ops[1].invoke_line(), 4);
    }

    #[test]
    fn reads_an_array_with_lines() {
        let h = read_str(
            "[\n{\"process\":0,\"type\":\"invoke\",\"f\":\"read\"},\n{\"process\":0,\"type\":\"ok\",\"f\":\"read\",\"value\":1}\n]\n",
        )
        .unwrap();
        assert_eq!(h.ops.len(), 1);
        assert_eq!(h.ops[0].complete_line(), Some(3));
        let e = read_str("[\n{\"process\":0,\"type\":\"invoke\",\"f\":\"read\"},\n{\"process\":0,\"type\":\"bogus\",\"f\":\"read\"}\n]\n")
            .unwrap_err();
        assert_eq!(e.line, 3);
        assert!(matches!(e.kind, HistoryErrorKind::UnknownType(ref t) if t == "bogus"));
    }

    #[test]
    fn completions_only_histories_in_auto_mode() {
        let auto = |s: &str| read_with("c.jsonl", s.as_bytes(), CompletionsMode::Auto);
        let w = r#"{"process":0,"type":"ok","f":"write","value":1}"#;
        let r = r#"{"process":1,"type":"ok","f":"read","value":1}"#;
        let inv = r#"{"process":2,"type":"invoke","f":"read"}"#;
        let nem = r#"{"process":"nemesis","type":"info","f":"kill"}"#;
        // The first client event decides; faults do not count.
        let h = auto(&format!("{nem}\n{w}\n{r}\n")).unwrap();
        assert_eq!(h.ops.len(), 2);
        assert!(
            h.ops
                .iter()
                .all(|o| Some(o.invoke_pos()) == o.complete_pos() && o.outcome == Outcome::Ok)
        );
        assert_eq!(
            (h.ops[1].invoke_line(), h.ops[1].complete_line()),
            (3, Some(3))
        );
        // Mixing: an invocation after completions names the first completion
        // and the invocation.
        let e = auto(&format!("{w}\n{r}\n{inv}\n")).unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.to_string().contains("no invocation in flight"), "{e}");
        assert!(e.to_string().contains("has invocations (line 3)"), "{e}");
        // A history that starts with an invocation needs them everywhere.
        let e = auto(&format!("{inv}\n{w}\n")).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.to_string().contains("no invocation in flight"), "{e}");
        // The default stays strict.
        assert!(read_str(&format!("{w}\n")).is_err());
    }

    #[test]
    fn malformed_lines_name_the_line() {
        let e =
            read_str("{\"process\":0,\"type\":\"invoke\",\"f\":\"read\"}\n{oops}\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.to_string().starts_with("t.jsonl:2: invalid JSON"), "{e}");
        let e = read_str("{\"process\":0,\"type\":\"done\",\"f\":\"read\"}\n").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.to_string().contains("unknown type `done`"), "{e}");
        let e = read_str("{\"process\":0,\"type\":\"ok\",\"f\":\"read\"}\n").unwrap_err();
        assert!(
            e.to_string()
                .contains("`ok` completion for process 0, which has no invocation"),
            "{e}"
        );
        let e = read_str(
            "{\"process\":0,\"type\":\"invoke\",\"f\":\"read\"}\n\n{\"process\":0,\"type\":\"invoke\",\"f\":\"read\"}\n",
        )
        .unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.to_string().contains("line 1 is still in flight"), "{e}");
        let e = read_str("{\"type\":\"invoke\",\"f\":\"read\"}\n").unwrap_err();
        assert!(e.to_string().contains("missing field `process`"), "{e}");
    }
}

/// The rules of issue 10 for the JSON formats, each checked in JSON Lines
/// and in the JSON array form.
#[cfg(test)]
mod rules {
    use super::super::json_event;
    use super::*;
    use crate::linear::{self, LinearOptions};
    use crate::{ModelKind, Validity};

    /// The lines as JSON Lines and as one JSON array (one element per line,
    /// after the `[` line), with the line numbers each form gives them.
    fn both(lines: &[&str]) -> [(String, Result<History, HistoryError>, usize); 2] {
        let jsonl = lines.join("\n") + "\n";
        let array = format!("[\n{}\n]\n", lines.join(",\n"));
        [
            (jsonl.clone(), read("t.jsonl", jsonl.as_bytes()), 0),
            (array.clone(), read("t.json", array.as_bytes()), 1),
        ]
    }

    /// Both forms fail on `line` (of the JSON Lines form) with a message
    /// containing `what`.
    fn fails(lines: &[&str], line: usize, what: &str) {
        for (text, r, shift) in both(lines) {
            let e = r.expect_err(&text);
            assert_eq!(e.line, line + shift, "{e} in\n{text}");
            assert!(
                e.to_string().contains(what),
                "{e} lacks {what:?} in\n{text}"
            );
        }
    }

    fn holds(lines: &[&str]) -> Vec<History> {
        both(lines)
            .into_iter()
            .map(|(text, r, _)| r.unwrap_or_else(|e| panic!("{e} in\n{text}")))
            .collect()
    }

    const W: &str = r#"{"process":0,"type":"invoke","f":"write","value":1}"#;
    const WOK: &str = r#"{"process":0,"type":"ok","f":"write","value":1}"#;

    #[test]
    fn integers_beyond_64_bits_are_errors_not_floats() {
        let big = "18446744073709551616";
        let reason = format!(
            "integer {big} is out of range (faultline compares values exactly, within 64 bits)"
        );
        // The reproducer: 2^64 written, 2^64+1 read (was "linearizable").
        fails(
            &[
                r#"{"process":0,"type":"invoke","f":"write","value":18446744073709551616}"#,
                r#"{"process":0,"type":"ok","f":"write","value":18446744073709551616}"#,
            ],
            1,
            &reason,
        );
        // Anywhere in an event: key, cas arguments, nested, process, index,
        // time, an extra field; and below -2^63.
        for (field, text) in [
            ("key", format!(r#""key":{big}"#)),
            ("cas", format!(r#""value":[1,{big}]"#)),
            ("nested", format!(r#""value":{{"a":[[{big}]]}}"#)),
            ("index", format!(r#""index":{big}"#)),
            ("time", format!(r#""time":{big}"#)),
            ("extra", format!(r#""node":{big}"#)),
        ] {
            let line = format!(r#"{{"process":0,"type":"invoke","f":"cas",{text}}}"#);
            fails(&[W, WOK, &line], 3, &reason);
            let _ = field;
        }
        fails(
            &[&format!(
                r#"{{"process":{big},"type":"invoke","f":"read"}}"#
            )],
            1,
            &reason,
        );
        fails(
            &[r#"{"process":0,"type":"invoke","f":"write","value":-9223372036854775809}"#],
            1,
            "integer -9223372036854775809 is out of range",
        );
        // A huge number is cut in the message.
        let huge = format!(
            r#"{{"process":0,"type":"invoke","f":"write","value":{}}}"#,
            "9".repeat(5000)
        );
        for (_, r, _) in both(&[&huge]) {
            let msg = r.unwrap_err().to_string();
            assert!(msg.len() < 300, "{msg}");
            assert!(msg.contains("(5000 bytes)"), "{msg}");
        }
        // Floats stay floats, even beyond 2^64.
        let h =
            holds(&[r#"{"process":0,"type":"invoke","f":"write","value":1.8446744073709552e19}"#]);
        assert!(h[0].ops[0].invoke_value.is_f64());
    }

    #[test]
    fn integers_at_the_64_bit_edges_are_exact() {
        let lines = [
            r#"{"process":0,"type":"invoke","f":"write","value":18446744073709551615}"#,
            r#"{"process":0,"type":"ok","f":"write","value":18446744073709551615}"#,
            r#"{"process":1,"type":"invoke","f":"read","value":null}"#,
            r#"{"process":1,"type":"ok","f":"read","value":18446744073709551614}"#,
            r#"{"process":2,"type":"invoke","f":"cas","value":[-9223372036854775808,0]}"#,
        ];
        for h in holds(&lines) {
            assert_eq!(h.ops[0].value, serde_json::json!(u64::MAX));
            assert_eq!(h.ops[1].value, serde_json::json!(u64::MAX - 1));
            assert_eq!(h.ops[2].invoke_value, serde_json::json!([i64::MIN, 0]));
            // 2^64-1 written, 2^64-2 read: not linearizable (floats would
            // have made them equal).
            let r = linear::check(&h, &LinearOptions::new(ModelKind::CasRegister)).unwrap();
            assert_eq!(r.valid, Validity::Invalid);
        }
    }

    #[test]
    fn minus_zero_is_the_integer_zero() {
        let lines = [
            r#"{"process":0,"type":"invoke","f":"write","value":-0}"#,
            r#"{"process":0,"type":"ok","f":"write","value":-0}"#,
            r#"{"process":1,"type":"invoke","f":"read","value":null}"#,
            r#"{"process":1,"type":"ok","f":"read","value":0}"#,
        ];
        for h in holds(&lines) {
            assert!(h.ops[0].value.is_u64(), "{:?}", h.ops[0].value);
            let r = linear::check(&h, &LinearOptions::new(ModelKind::Register)).unwrap();
            assert_eq!(r.valid, Validity::Valid);
        }
        // A read of 1 after it stays a violation.
        let mut bad = lines;
        bad[3] = r#"{"process":1,"type":"ok","f":"read","value":1}"#;
        for h in holds(&bad) {
            let r = linear::check(&h, &LinearOptions::new(ModelKind::Register)).unwrap();
            assert_eq!(r.valid, Validity::Invalid);
        }
    }

    #[test]
    fn process_beyond_63_bits_is_an_error_not_the_nemesis() {
        // The reproducer: a process of 2^64 was taken for the nemesis and
        // its stale read dropped.
        fails(
            &[
                W,
                WOK,
                r#"{"process":18446744073709551616,"type":"invoke","f":"read","value":null}"#,
            ],
            3,
            "integer 18446744073709551616 is out of range",
        );
        for p in ["9223372036854775808", "18446744073709551615", "-1"] {
            fails(
                &[&format!(r#"{{"process":{p},"type":"invoke","f":"read"}}"#)],
                1,
                &format!("process out of range: {p}"),
            );
        }
        fails(
            &[r#"{"process":true,"type":"invoke","f":"read"}"#],
            1,
            "field `process`",
        );
        // The edges of the range, and a string process: the nemesis.
        let h = holds(&[
            r#"{"process":9223372036854775807,"type":"invoke","f":"read"}"#,
            r#"{"process":0,"type":"invoke","f":"read"}"#,
            r#"{"process":"nemesis","type":"info","f":"kill"}"#,
        ]);
        for h in h {
            assert_eq!(h.ops[0].process, i64::MAX);
            assert_eq!(h.ops[1].process, 0);
            assert_eq!(h.faults.len(), 1);
        }
    }

    #[test]
    fn index_must_be_an_integer_from_0_to_2_63_minus_1() {
        for i in ["-1", "9223372036854775808", "1.5", "\"3\"", "null"] {
            fails(
                &[&format!(
                    r#"{{"index":{i},"process":0,"type":"invoke","f":"read"}}"#
                )],
                1,
                "field `index`: expected an integer from 0 to 2^63-1",
            );
        }
        fails(
            &[r#"{"index":1180591620717411303424,"process":0,"type":"invoke","f":"read"}"#],
            1,
            "integer 1180591620717411303424 is out of range",
        );
        for h in holds(&[r#"{"index":9223372036854775807,"process":0,"type":"invoke","f":"read"}"#])
        {
            assert_eq!(h.ops[0].invoke_index, i64::MAX as u64);
        }
    }

    #[test]
    fn duplicate_keys_are_errors_naming_the_key() {
        for (text, key) in [
            (
                r#"{"process":0,"process":1,"type":"invoke","f":"read"}"#,
                "process",
            ),
            (
                r#"{"process":0,"type":"invoke","f":"write","value":1,"value":2}"#,
                "value",
            ),
            (
                r#"{"process":0,"type":"invoke","type":"ok","f":"read"}"#,
                "type",
            ),
            (
                r#"{"process":0,"type":"invoke","f":"read","node":"n1","node":"n2"}"#,
                "node",
            ),
            (
                r#"{"process":0,"type":"invoke","f":"write","value":{"a":1,"a":2}}"#,
                "a",
            ),
        ] {
            fails(
                &[W, WOK, text],
                3,
                &format!("duplicate key `{key}` in one map"),
            );
        }
    }

    #[test]
    fn byte_order_mark_at_the_start_is_accepted() {
        let jsonl = format!("\u{feff}{W}\n{WOK}\n");
        let array = format!("\u{feff}[{W},\n{WOK}]\n");
        for text in [jsonl, array] {
            let h = read("t.jsonl", text.as_bytes()).unwrap();
            assert_eq!(h.ops.len(), 1);
            assert_eq!(h.ops[0].complete_line(), Some(2));
            let (h, _) =
                crate::format::read_from("t", text.as_bytes(), crate::format::Format::Json)
                    .unwrap();
            assert_eq!(h.ops.len(), 1);
        }
        // Elsewhere it is no whitespace.
        fails(&[W, &format!("\u{feff}{WOK}")], 2, "invalid JSON");
    }

    #[test]
    fn invalid_utf8_is_an_error_naming_the_line() {
        let mut jsonl = format!("{W}\n{WOK}\n").into_bytes();
        jsonl.extend_from_slice(
            b"{\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"node\":\"\xff\"}\n",
        );
        let mut array = format!("[{W},\n{WOK},\n").into_bytes();
        array.extend_from_slice(
            b"{\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"node\":\"\xff\"}]\n",
        );
        for text in [jsonl, array] {
            let e = read("t.jsonl", &text[..]).unwrap_err();
            assert_eq!(e.line, 3, "{e}");
            assert!(
                e.to_string()
                    .contains("invalid UTF-8 (byte 0xFF at column 49)"),
                "{e}"
            );
        }
    }

    #[test]
    fn has_value_tells_an_absent_value_from_null() {
        for h in holds(&[
            r#"{"process":0,"type":"invoke","f":"read"}"#,
            r#"{"process":0,"type":"ok","f":"read","value":null}"#,
        ]) {
            assert_eq!(h.ops.len(), 1);
        }
        let mut p = json_event::EventParser::new();
        let absent = p
            .parse(br#"{"process":0,"type":"ok","f":"read"}"#, 1)
            .unwrap();
        let null = p
            .parse(br#"{"process":0,"type":"ok","f":"read","value":null}"#, 1)
            .unwrap();
        assert!(!absent.has_value);
        assert!(null.has_value);
        assert_eq!(absent.value, null.value);
    }

    /// A history over several blocks with a syntax error late in it and a
    /// pairing error earlier: the earlier one is reported, with its line.
    #[test]
    fn the_first_error_in_file_order_is_reported_across_blocks() {
        let mut lines = Vec::new();
        let n = 60_000;
        for i in 0..n {
            let p = i % 7;
            lines.push(format!(
                r#"{{"index":{},"process":{p},"type":"invoke","f":"write","value":{i}}}"#,
                2 * i
            ));
            lines.push(format!(
                r#"{{"index":{},"process":{p},"type":"ok","f":"write","value":{i},"node":"n{p}"}}"#,
                2 * i + 1
            ));
        }
        let text = lines.join("\n");
        assert!(text.len() > 2 * BLOCK);
        let h = read("t.jsonl", text.as_bytes()).unwrap();
        assert_eq!(h.ops.len(), n);
        assert_eq!(h.ops[n - 1].complete_line(), Some(2 * n));
        assert_eq!(
            h.ops[n - 1].extra.as_ref().unwrap()["node"],
            format!("n{}", (n - 1) % 7)
        );
        let mut bad = lines.clone();
        bad[100_000] = "{oops".into();
        let e = read("t.jsonl", bad.join("\n").as_bytes()).unwrap_err();
        assert_eq!(e.line, 100_001, "{e}");
        assert!(e.to_string().contains("invalid JSON"), "{e}");
        bad[70_000] = lines[70_001].clone();
        let e = read("t.jsonl", bad.join("\n").as_bytes()).unwrap_err();
        assert_eq!(e.line, 70_001, "{e}");
        assert!(e.to_string().contains("has no invocation in flight"), "{e}");
        // And as one array.
        let array = format!("[{}]", lines.join(",\n"));
        let h = read("t.json", array.as_bytes()).unwrap();
        assert_eq!(h.ops[n - 1].complete_line(), Some(2 * n));
    }
}
