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
//! file order while the next block is decoded and the one after it read.
//! The first error in file order is the one reported, as when reading line
//! by line; memory stays bounded by a few blocks plus the history itself. A UTF-8 byte order mark at the start is skipped.

use std::io::{BufRead, Read};

use rayon::prelude::*;

use super::json_event::{EventParser, string_end};
use crate::error::{HistoryError, HistoryErrorKind};
use crate::history::fragment::Fragment;
use crate::history::{
    CompletionsMode, Event, EventType, History, HistoryBuilder, Operation, Process, Semantics,
};

/// How many bytes of JSON Lines are decoded together.
pub const BLOCK: usize = 4 << 20;

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
    read_in_blocks(source, reader, mode, BLOCK)
}

/// [`read_with`], in blocks of about `block` bytes (the tests cut small
/// inputs into many blocks and pieces).
fn read_in_blocks<R: BufRead>(
    source: &str,
    mut reader: R,
    mode: CompletionsMode,
    block: usize,
) -> Result<History, HistoryError> {
    let mut b = HistoryBuilder::new(source, Semantics::default()).completions_mode(mode);
    let io = |e: std::io::Error| HistoryError {
        file: source.to_string(),
        line: 0,
        kind: HistoryErrorKind::Io(e.to_string()),
    };
    let mut carry = Vec::new();
    let mut next_line = 1;
    let mut torn = None;
    let mut first = read_block(
        &mut reader,
        &mut carry,
        next_line,
        &mut torn,
        Vec::new(),
        block,
    )
    .map_err(io)?;
    if let Some(block) = &mut first {
        if block.data.starts_with(BOM) {
            block.data.drain(..BOM.len());
        }
        // One JSON array: its `[` is the first thing in the file.
        let start = block.data.iter().position(|c| !c.is_ascii_whitespace());
        if let Some(start) = start.filter(|&s| block.data[s] == b'[') {
            let line = block.first_line + count_newlines(&block.data[..start]);
            let mut data = block.data.split_off(start);
            data.extend_from_slice(&carry);
            reader.read_to_end(&mut data).map_err(io)?;
            return read_array(b, &data, line);
        }
    }
    // Buffers go round: a block's bytes and its pieces' event vectors are
    // reused for the next block (fresh memory costs a page fault per 4 KiB).
    let mut spare_events: Vec<Vec<Event>> = Vec::new();
    let mut spare_ops: Vec<Vec<Operation>> = Vec::new();
    let mut decoded: Option<Decoded> = None;
    // Events in the blocks decoded so far (one per non-blank line): the
    // position of the next block's first event.
    let mut events_before = 0;
    // Whether the first client event of the history is an invocation,
    // once it is decoded.
    let mut starts_with_invoke = None;
    let mut pending = first;
    // The buffer the block after `pending` is read into, while `pending`
    // is decoded.
    let mut spare_data = Vec::new();
    loop {
        let to_push = decoded.take();
        let spare = std::mem::take(&mut spare_events);
        let ops = std::mem::take(&mut spare_ops);
        // What the builder says after the block before the one being
        // joined (once it takes pieces, it always does), or, in
        // `CompletionsMode::Auto`, what it will say once that block is
        // joined: a history whose first client event is an invocation is
        // read as with `Require`.
        if let (None, Some(Decoded::Events(pieces, _))) = (starts_with_invoke, &to_push) {
            starts_with_invoke = pieces
                .iter()
                .flat_map(|p| &p.events)
                .find(|ev| matches!(ev.process, Process::Client(_)))
                .map(|ev| ev.kind == EventType::Invoke);
        }
        let in_pieces = b.takes_fragments()
            || (mode == CompletionsMode::Auto && starts_with_invoke == Some(true));
        let Some(bl) = pending.take() else {
            if let Some(d) = to_push {
                push_decoded(&mut b, d)?;
            }
            break;
        };
        // Three things at once: the pool decodes this block and joins the
        // one before; this thread reads the next (the reader need not be
        // `Send`). The next block's first line is known once this one is
        // decoded: it is read as if it started at line 1, and moved after.
        let (mut next, mut pushed) = (None, None);
        let read = rayon::in_place_scope(|s| {
            s.spawn(|_| {
                let fits = [events_before, bl.first_line]
                    .iter()
                    .all(|&n| n + bl.data.len() < u32::MAX as usize);
                let (d, events, lines) = if in_pieces && fits {
                    pair_lines(source, &bl.data, bl.first_line, events_before, ops)
                } else {
                    let pieces = decode_lines(&bl.data, spare);
                    let events = pieces.iter().map(|p| p.events.len()).sum();
                    let lines = pieces.iter().map(|p| p.lines).sum();
                    (Decoded::Events(pieces, bl.first_line), events, lines)
                };
                next = Some((d, events, lines));
            });
            if let Some(d) = to_push {
                let (b, pushed) = (&mut b, &mut pushed);
                s.spawn(move |_| *pushed = Some(push_decoded(b, d)));
            }
            let mut torn_at = None;
            let data = std::mem::take(&mut spare_data);
            read_block(&mut reader, &mut carry, 1, &mut torn_at, data, block)
                .map(|bl| (bl, torn_at))
        });
        if let Some(pushed) = pushed {
            (spare_events, spare_ops) = pushed?;
        }
        let (read, torn_at) = read.map_err(io)?;
        let Some((d, events, lines)) = next else {
            unreachable!("the scope ran the decoding");
        };
        events_before += events;
        next_line += lines;
        decoded = Some(d);
        spare_data = bl.data;
        if let Some(t) = torn_at {
            torn = Some(t + next_line - 1);
        }
        pending = read.map(|mut r| {
            r.first_line = next_line;
            r
        });
    }
    if let Some(line) = torn {
        // The last line of a file whose writer died (or ran out of space)
        // mid-write: left out, and said so.
        b.torn_last_line(line);
    }
    if b.events() == 0 {
        return Err(b.error(0, HistoryErrorKind::Empty));
    }
    Ok(b.finish())
}

/// The emptied vectors of a joined block (its pieces' events, or their
/// operations), for the next block.
type Spare = (Vec<Vec<Event>>, Vec<Vec<Operation>>);

/// Joins a decoded block to the history. Gives back its emptied vectors.
fn push_decoded(b: &mut HistoryBuilder, decoded: Decoded) -> Result<Spare, HistoryError> {
    match decoded {
        Decoded::Events(pieces, first_line) => {
            Ok((push_pieces(b, pieces, first_line)?, Vec::new()))
        }
        Decoded::Fragments(fragments) => {
            let ops = fragments
                .into_iter()
                .map(|f| b.append(f))
                .collect::<Result<_, _>>()?;
            Ok((Vec::new(), ops))
        }
    }
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

/// A block decoded: events to push in order (the first blocks, and any
/// block the builder cannot take in pieces), or pieces paired apart.
enum Decoded {
    /// Pieces of events, and the block's first line.
    Events(Vec<Piece>, usize),
    /// Pieces paired into operations, for [`HistoryBuilder::append`].
    Fragments(Vec<Fragment>),
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

/// Decodes a block of whole lines and pairs its events, in pieces, in
/// parallel (see [`crate::history::fragment`]); `first_line` and
/// `first_event` are the line and position of the block's first event.
/// Returns the pieces, the number of events and the number of newlines.
fn pair_lines(
    source: &str,
    data: &[u8],
    first_line: usize,
    first_event: usize,
    spare: Vec<Vec<Operation>>,
) -> (Decoded, usize, usize) {
    #[cfg(test)]
    tests::PAIRED_BLOCKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let bounds = piece_bounds(data);
    let start = (first_line, first_event);
    // Each piece's lines and events, for where the next one starts: first
    // as if every line were an event, which it is but for blank lines.
    let counts: Vec<(usize, usize)> = bounds
        .par_windows(2)
        .map(|w| count_lines_as_events(&data[w[0]..w[1]]))
        .collect();
    let (fragments, events, lines) = pair_counted(source, data, &bounds, &counts, start, spare);
    // A piece that took fewer events than it had lines had blank lines,
    // and the pieces after it started at the wrong event (those after a
    // piece that failed do not count): paired again, counted one by one.
    let exact = fragments
        .iter()
        .zip(&counts)
        .take_while(|(f, _)| !f.failed())
        .all(|(f, &(_, events))| f.events() == events);
    if exact {
        return (Decoded::Fragments(fragments), events, lines);
    }
    let counts: Vec<(usize, usize)> = bounds
        .par_windows(2)
        .map(|w| count_lines(&data[w[0]..w[1]]))
        .collect();
    let (fragments, events, lines) =
        pair_counted(source, data, &bounds, &counts, start, Vec::new());
    (Decoded::Fragments(fragments), events, lines)
}

/// Pairs the pieces of `data` cut at `bounds`, in parallel, given the
/// lines and events of each (`counts`) and the line and position of the
/// first event of the first (`first`). Returns the pieces and the numbers
/// of events and of lines.
fn pair_counted(
    source: &str,
    data: &[u8],
    bounds: &[usize],
    counts: &[(usize, usize)],
    first: (usize, usize),
    mut spare: Vec<Vec<Operation>>,
) -> (Vec<Fragment>, usize, usize) {
    let mut starts = Vec::with_capacity(counts.len());
    let (mut line, mut event) = first;
    for &(lines, events) in counts {
        starts.push((line, event, events));
        line += lines;
        event += events;
    }
    spare.resize_with(starts.len(), Vec::new);
    let fragments = bounds
        .par_windows(2)
        .zip(starts)
        .zip(spare)
        .map(|((w, (line, event, events)), mut ops)| {
            let piece = &data[w[0]..w[1]];
            // An operation is two events, in most histories.
            ops.reserve(events / 2 + 1);
            let first = (line, event, ops);
            with_worker(|worker| pair_piece(worker, source, piece, first))
        })
        .collect();
    (fragments, event - first.1, line - first.0)
}

/// The newlines and the non-blank lines of `data`, as [`pair_piece`] and
/// [`decode_piece`] count them.
fn count_lines(data: &[u8]) -> (usize, usize) {
    let (mut newlines, mut events) = (0, 0);
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', data) {
        newlines += 1;
        events += usize::from(!data[start..end].trim_ascii().is_empty());
        start = end + 1;
    }
    events += usize::from(!data[start..].trim_ascii().is_empty());
    (newlines, events)
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
                let whole = read_in_blocks("t.jsonl", text.as_bytes(), mode, BLOCK);
                match &whole {
                    Ok(_) => valid += 1,
                    Err(_) => errors += 1,
                }
                let whole = format!("{whole:?}");
                for block in [90, 301, 2000] {
                    let pieces = read_in_blocks("t.jsonl", text.as_bytes(), mode, block);
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
                let h = read_in_blocks("t", text.as_bytes(), CompletionsMode::Require, block)
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
