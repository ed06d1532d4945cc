//! faultline's JSON Lines read straight into transactions: the fast path of
//! `faultline check` for transactional histories.
//!
//! Each line is parsed in place by simd-json into a tape, and a `txn`
//! event's micro-ops go from the tape into a [`TxnStream`] (integers as
//! themselves, strings and other scalars kept aside until interning): no
//! [`Event`](crate::history::Event), no `serde_json::Value` per event, no
//! [`History`](crate::history::History). Events of other processes (faults)
//! are decoded and validated as the general reader does, then counted.
//!
//! The fast path reads only what it reads exactly as the general reader
//! would (see [`crate::txn::stream`]); on anything else, including any
//! error, it answers `None` and the caller reads the file with the general
//! reader, which gives the same verdict, or the error with its file and
//! line. So every rule of the general reader holds here: integers beyond
//! 64 bits, duplicate fields, invalid UTF-8 and malformed lines all end on
//! the general path, which names them.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use simd_json::{Buffers, Node, StaticNode, Tape};

use super::Format;
use super::json::{BLOCK, BOM, count_newlines, read_block};
use super::json_event::{
    F, INDEX, KEY, PROCESS, TIME, TYPE, VALUE, decode, field_bit, index_of, process_of, span,
    static_value, time_of, to_value, type_of,
};
use crate::history::Process;
use crate::txn::TxnModel;
use crate::txn::stream::{RawKind, Shape, StreamedTxns, TxnStream, Unsupported};

/// Reads the JSON Lines history at `path` into transactions for `model`
/// (inferred when `None`), when the fast path can read it exactly: the
/// file is JSON Lines (named by `format` or detected), its client
/// operations are all `txn` operations of simple micro-ops, and it is well
/// formed. `Err` says why not: the caller then uses the general reader.
pub fn read_txn_path(
    path: &Path,
    format: Format,
    model: Option<TxnModel>,
) -> Result<StreamedTxns, Unsupported> {
    let io = |_| Unsupported("the file cannot be read here");
    let file = File::open(path).map_err(io)?;
    if !file.metadata().map_err(io)?.is_file() {
        return Err(Unsupported("not a regular file"));
    }
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let head = reader.fill_buf().map_err(io)?;
    if head.starts_with(BOM) {
        reader.consume(BOM.len());
    }
    match format {
        Format::Json => {}
        Format::Auto
            if super::peek(reader.fill_buf().map_err(io)?, false)
                == super::Peek::Format(Format::Json) => {}
        _ => {
            return Err(Unsupported(
                "not detected as JSON Lines from its first line",
            ));
        }
    }
    read_txn_lines(reader, model)
}

/// [`read_txn_path`] on a reader positioned after any byte order mark.
pub fn read_txn_lines<R: BufRead>(
    mut reader: R,
    model: Option<TxnModel>,
) -> Result<StreamedTxns, Unsupported> {
    let io = |_| Unsupported("the file cannot be read here");
    let mut stream = TxnStream::new();
    let mut lines = LineParser::default();
    let (mut carry, mut next_line, mut torn) = (Vec::new(), 1, None);
    let mut data = Vec::new();
    let mut first = true;
    while let Some(mut block) =
        read_block(&mut reader, &mut carry, next_line, &mut torn, data, BLOCK).map_err(io)?
    {
        if first && block.data.trim_ascii_start().starts_with(b"[") {
            return Err(Unsupported("one JSON array"));
        }
        first = false;
        next_line += count_newlines(&block.data);
        lines.block(&mut block.data, block.first_line, &mut stream)?;
        data = block.data;
    }
    if torn.is_some() {
        return Err(Unsupported("a torn last line"));
    }
    stream.finish(model)
}

/// simd-json's buffers, reused from line to line.
struct LineParser {
    buffers: Buffers,
    tape: Option<Tape<'static>>,
}

impl Default for LineParser {
    fn default() -> Self {
        LineParser {
            buffers: Buffers::new(512),
            tape: Some(Tape(Vec::with_capacity(256))),
        }
    }
}

impl LineParser {
    /// Reads the whole lines of `data` (parsed in place: the block is
    /// spoiled), the first of which is line `first_line`.
    fn block(
        &mut self,
        data: &mut [u8],
        first_line: usize,
        stream: &mut TxnStream,
    ) -> Result<(), Unsupported> {
        let mut line = first_line;
        let mut start = 0;
        while start < data.len() {
            let end = memchr::memchr(b'\n', &data[start..]).map_or(data.len(), |e| start + e);
            let text = &mut data[start..end];
            let lead = text.len() - text.trim_ascii_start().len();
            let trail = text.len() - text.trim_ascii_end().len();
            if lead < text.len() {
                let len = text.len();
                self.line(&mut text[lead..len - trail], line, stream)?;
            }
            line += 1;
            start = end + 1;
        }
        debug_assert_eq!(
            line - first_line,
            count_newlines(data) + usize::from(!data.ends_with(b"\n"))
        );
        Ok(())
    }

    fn line(
        &mut self,
        text: &mut [u8],
        line: usize,
        stream: &mut TxnStream,
    ) -> Result<(), Unsupported> {
        let mut tape = self.tape.take().unwrap_or_else(|| Tape(Vec::new())).reset();
        let r = match simd_json::fill_tape(text, &mut self.buffers, &mut tape) {
            Ok(()) => event(&tape.0, line, stream),
            Err(_) => Err(Unsupported("a line that is not JSON")),
        };
        self.tape = Some(tape.reset());
        r
    }
}

/// One event from its tape into the stream.
fn event(tape: &[Node], line: usize, stream: &mut TxnStream) -> Result<(), Unsupported> {
    let bad = |_| Unsupported("a malformed event");
    let Some(&Node::Object { len, .. }) = tape.first() else {
        return Err(Unsupported("an event that is not an object"));
    };
    // A fault (an event of a non-client process) is read as the general
    // reader reads it, and counted.
    let mut i = 1;
    for _ in 0..len {
        if let (Some(Node::String("process")), Some(node)) = (tape.get(i), tape.get(i + 1)) {
            if let Ok(Process::Other(_)) = process_of(node) {
                decode(tape, line, &mut Vec::new()).map_err(bad)?;
                stream.fault();
                return Ok(());
            }
        }
        i += 1 + tape.get(i + 1).map_or(1, span);
    }
    let mut seen = 0u8;
    let mut extra: Vec<&str> = Vec::new();
    let (mut index, mut process, mut kind, mut txn) = (None, None, None, false);
    let mut shape = Shape::Null;
    stream.begin_value();
    let mut i = 1;
    for _ in 0..len {
        let Some(Node::String(name)) = tape.get(i) else {
            return Err(Unsupported("a field name that is not a string"));
        };
        let name: &str = name;
        i += 1;
        let node = tape.get(i).ok_or(Unsupported("a cut tape"))?;
        let bit = field_bit(name);
        if bit == KEY {
            return Err(Unsupported("a txn event with a key"));
        }
        if bit == 0 {
            if extra.contains(&name) {
                return Err(Unsupported("a field twice"));
            }
            extra.push(name);
            to_value(tape, &mut i.clone(), 1).map_err(bad)?;
        } else if seen & bit != 0 {
            return Err(Unsupported("a field twice"));
        }
        seen |= bit;
        match bit {
            INDEX => index = Some(index_of(node).map_err(bad)?),
            TIME => {
                time_of(node).map_err(bad)?;
            }
            PROCESS => match process_of(node).map_err(bad)? {
                Process::Client(p) => process = Some(p),
                Process::Other(_) => return Err(Unsupported("a fault")),
            },
            TYPE => kind = Some(type_of(node).map_err(bad)?),
            F => txn = matches!(node, Node::String("txn")),
            VALUE => shape = micro_ops(tape, i, stream)?,
            _ => {}
        }
        i += span(node);
    }
    let (Some(process), Some(kind)) = (process, kind) else {
        return Err(Unsupported("an event without process or type"));
    };
    if !txn {
        return Err(Unsupported("an operation other than txn"));
    }
    stream.event(process, kind, index, line, shape)
}

/// The micro-ops of the value at `tape[i]` into the stream.
fn micro_ops(tape: &[Node], mut i: usize, stream: &mut TxnStream) -> Result<Shape, Unsupported> {
    let odd = Unsupported("micro-ops other than [f key scalar]");
    let n = match tape[i] {
        Node::Static(StaticNode::Null) => return Ok(Shape::Null),
        Node::Array { len, .. } => len,
        _ => return Err(Unsupported("a txn value that is not a list")),
    };
    i += 1;
    for _ in 0..n {
        let (Some(Node::Array { len: 3, .. }), Some(Node::String(f))) =
            (tape.get(i), tape.get(i + 1))
        else {
            return Err(odd);
        };
        let key = match tape.get(i + 2) {
            Some(Node::String(s)) => stream.other(s.to_string().into()),
            Some(&Node::Static(StaticNode::I64(n))) => stream.int(n),
            Some(&Node::Static(StaticNode::U64(n))) => {
                stream.int(i64::try_from(n).map_err(|_| odd)?)
            }
            _ => return Err(odd),
        };
        let v = tape.get(i + 3).ok_or(odd)?;
        i += 3;
        match (*f, v) {
            ("append", _) => {
                let v = scalar(v, stream).ok_or(odd)?;
                stream.mop(RawKind::Append, key, v);
            }
            ("w", _) => {
                let v = scalar(v, stream).ok_or(odd)?;
                stream.mop(RawKind::Write, key, v);
            }
            ("r", Node::Static(StaticNode::Null)) => stream.mop(RawKind::ReadNull, key, 0),
            ("r", &Node::Array { len, .. }) => {
                let start = stream.list_start();
                for k in 0..len {
                    let x = tape.get(i + 1 + k).ok_or(odd)?;
                    let x = scalar(x, stream).ok_or(odd)?;
                    stream.list_push(x);
                }
                stream.mop(RawKind::ReadList, key, start);
            }
            ("r", _) => {
                let v = scalar(v, stream).ok_or(odd)?;
                stream.mop(RawKind::ReadScalar, key, v);
            }
            _ => return Err(odd),
        }
        i += span(v);
    }
    Ok(Shape::Mops)
}

/// A written or read value: a number, a string or a boolean (as
/// [`Txns::read`](crate::txn::micro::Txns::read) takes them).
fn scalar(node: &Node, stream: &mut TxnStream) -> Option<i64> {
    match *node {
        Node::Static(StaticNode::I64(n)) => Some(stream.int(n)),
        Node::Static(StaticNode::U64(n)) if i64::try_from(n).is_ok() => Some(stream.int(n as i64)),
        Node::Static(StaticNode::Null) => None,
        Node::Static(s) => Some(stream.other(static_value(s))),
        Node::String(s) => Some(stream.other(s.to_string().into())),
        Node::Array { .. } | Node::Object { .. } => None,
    }
}
