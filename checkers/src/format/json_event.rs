//! One event of faultline's JSON format, decoded from its text.
//!
//! The text is parsed by simd-json (SIMD structural indexing, validated
//! UTF-8, exact 64-bit integers) into a tape, and the event's fields are
//! read off the tape. simd-json was chosen over sonic-rs because it refuses
//! an integer beyond 64 bits instead of rounding it to a float, and reads
//! `-0` as the integer 0: both are faultline's rules (values compare
//! exactly), so the fast path needs no second look at the numbers.
//!
//! When simd-json rejects a text, [`diagnose`] explains why with the same
//! words as before: invalid UTF-8 (with its column), an integer out of range
//! (the number, cut), or serde_json's description of the syntax error (with
//! its column).
//!
//! Rules (shared with the other readers):
//! - integers are exact within `[-2^63, 2^64-1]`; any integer outside, at any
//!   depth, is an error; floats are kept as floats;
//! - `process`: an integer from 0 to 2^63-1 is a client; a string (or
//!   `null`, or a float that is not a whole number) names the nemesis or
//!   another annotation;
//! - `index`: an integer from 0 to 2^63-1;
//! - a key twice in one object is an error;
//! - nesting deeper than [`MAX_DEPTH`] is refused.

use serde_json::{Map, Number, Value};
use simd_json::{Buffers, Node, StaticNode, Tape};

use crate::error::{HistoryErrorKind, echo};
use crate::history::raw_event::RawEvent;
use crate::history::{Event, EventType, Process};

/// Deepest nesting of arrays and objects accepted in an event, the event
/// object included (serde_json's limit).
pub const MAX_DEPTH: usize = 128;

/// Decodes events, reusing its buffers from one to the next. One per thread.
pub struct EventParser {
    scratch: Vec<u8>,
    buffers: Buffers,
    tape: Option<Tape<'static>>,
    /// Function names already seen, shared by the events that name them.
    names: Vec<std::sync::Arc<str>>,
    /// String keys already seen, shared likewise.
    keys: super::json_fast::KeyCache,
}

impl Default for EventParser {
    fn default() -> Self {
        EventParser::new()
    }
}

impl EventParser {
    /// A parser with empty buffers.
    pub fn new() -> Self {
        EventParser {
            scratch: Vec::with_capacity(512),
            buffers: Buffers::new(512),
            tape: Some(Tape(Vec::with_capacity(64))),
            names: Vec::new(),
            keys: Default::default(),
        }
    }

    /// Decodes the event whose text (one JSON object, surrounding
    /// whitespace allowed) is `text`, found at `line`.
    pub fn parse(&mut self, text: &[u8], line: usize) -> Result<Event, HistoryErrorKind> {
        // The common shape first, without a tape; anything else (every
        // error included) is decoded by the general path.
        if let Some(ev) = super::json_fast::scan(text, line, &mut self.names, &mut self.keys) {
            return Ok(ev);
        }
        self.parse_general(text, line)
    }

    /// The event on the line that starts `text` (which may go on after
    /// it), with its function name and key borrowed from this parser (see
    /// [`crate::history::raw_event`]), and the length of the line, when the
    /// line is written as faultline's writer writes it; `None` otherwise
    /// (then [`EventParser::parse`] decodes the line).
    pub fn parse_raw<'a>(
        &'a mut self,
        text: &'a [u8],
        line: usize,
    ) -> Option<(RawEvent<'a>, usize)> {
        use super::json_fast::{Lookup, scan_canonical};
        scan_canonical(
            text,
            line,
            &mut self.names,
            &mut self.keys,
            Lookup::Invocations,
        )
    }

    /// [`EventParser::parse`] without the fast path (simd-json's tape).
    pub(super) fn parse_general(
        &mut self,
        text: &[u8],
        line: usize,
    ) -> Result<Event, HistoryErrorKind> {
        // simd-json parses in place: keep `text` intact for the diagnosis.
        self.scratch.clear();
        self.scratch.extend_from_slice(text);
        let mut tape = self.tape.take().unwrap_or_else(|| Tape(Vec::new())).reset();
        let result = match simd_json::fill_tape(&mut self.scratch, &mut self.buffers, &mut tape) {
            Ok(()) => decode(&tape.0, line, &mut self.names),
            Err(e) => Err(diagnose(text, &e.to_string())),
        };
        self.tape = Some(tape.reset());
        result
    }
}

/// Bits of the fields seen so far in an event, to refuse duplicates.
pub(super) const INDEX: u8 = 1;
pub(super) const TIME: u8 = 2;
pub(super) const PROCESS: u8 = 4;
pub(super) const TYPE: u8 = 8;
pub(super) const F: u8 = 16;
pub(super) const KEY: u8 = 32;
pub(super) const VALUE: u8 = 64;

/// The bit of an event's field, 0 for a field of no meaning to faultline
/// (kept in [`Event::extra`]).
pub(super) fn field_bit(name: &str) -> u8 {
    match name {
        "index" => INDEX,
        "time" => TIME,
        "process" => PROCESS,
        "type" => TYPE,
        "f" => F,
        "key" => KEY,
        "value" => VALUE,
        _ => 0,
    }
}

/// Number of tape nodes of the value starting at `node`, itself included.
pub(super) fn span(node: &Node) -> usize {
    match node {
        Node::Object { count, .. } | Node::Array { count, .. } => count + 1,
        _ => 1,
    }
}

/// How many function names a parser keeps for sharing.
const NAMES: usize = 32;

/// `name` shared: the copy in `names` when there is one.
pub(super) fn shared_name(names: &mut Vec<std::sync::Arc<str>>, name: &str) -> std::sync::Arc<str> {
    if let Some(a) = names.iter().find(|a| &***a == name) {
        return a.clone();
    }
    let a: std::sync::Arc<str> = name.into();
    if names.len() < NAMES {
        names.push(a.clone());
    }
    a
}

pub(super) fn decode(
    tape: &[Node],
    line: usize,
    names: &mut Vec<std::sync::Arc<str>>,
) -> Result<Event, HistoryErrorKind> {
    let len = match tape.first() {
        Some(Node::Object { len, .. }) => *len,
        _ => {
            let mut i = 0;
            let shown = to_value(tape, &mut i, 1).map(|v| crate::history::compact(&v));
            return Err(HistoryErrorKind::Syntax(format!(
                "invalid JSON: expected an event object, found {}",
                echo(&shown.unwrap_or_default())
            )));
        }
    };
    let mut seen = 0u8;
    let mut index = None;
    let mut time = None;
    let mut process = None;
    let mut kind = None;
    let mut f = None;
    let mut key = None;
    let mut value = None;
    let mut extra = Map::new();
    let mut i = 1;
    for _ in 0..len {
        let Some(Node::String(name)) = tape.get(i) else {
            return Err(HistoryErrorKind::Syntax(
                "invalid JSON: expected a field name".into(),
            ));
        };
        let name: &str = name;
        i += 1;
        let bit = field_bit(name);
        if bit != 0 {
            if seen & bit != 0 {
                return Err(HistoryErrorKind::DuplicateKey(echo(name)));
            }
            seen |= bit;
        }
        let node = &tape[i];
        match bit {
            INDEX => index = Some(index_of(node)?),
            TIME => time = time_of(node)?,
            PROCESS => process = Some(process_of(node)?),
            TYPE => kind = Some(type_of(node)?),
            F => {
                f = Some(match node {
                    Node::String(s) => shared_name(names, s),
                    _ => crate::history::compact(&to_value(tape, &mut i.clone(), 1)?).into(),
                })
            }
            KEY => key = Some(to_value(tape, &mut i.clone(), 1)?),
            VALUE => value = Some(to_value(tape, &mut i.clone(), 1)?),
            _ => {
                let v = to_value(tape, &mut i.clone(), 1)?;
                if extra.insert(name.to_string(), v).is_some() {
                    return Err(HistoryErrorKind::DuplicateKey(echo(name)));
                }
            }
        }
        i += span(node);
    }
    let process = process.ok_or(HistoryErrorKind::MissingField("process"))?;
    let kind = kind.ok_or(HistoryErrorKind::MissingField("type"))?;
    let f = match f {
        Some(f) => f,
        None if matches!(process, Process::Other(_)) => "".into(),
        None => return Err(HistoryErrorKind::MissingField("f")),
    };
    Ok(Event {
        line,
        index,
        time,
        process,
        kind,
        f,
        key: key.map(std::sync::Arc::new),
        has_value: value.is_some(),
        value: value.unwrap_or(Value::Null),
        extra,
    })
}

/// The JSON value of the tape's nodes from `*i`, advancing `*i` past them.
/// `depth` is the nesting depth of the value (the event object is 0).
pub(super) fn to_value(
    tape: &[Node],
    i: &mut usize,
    depth: usize,
) -> Result<Value, HistoryErrorKind> {
    let node = tape.get(*i).ok_or_else(|| {
        HistoryErrorKind::Syntax("invalid JSON: unexpected end of the value".into())
    })?;
    *i += 1;
    Ok(match node {
        Node::Static(s) => static_value(*s),
        Node::String(s) => Value::String(s.to_string()),
        Node::Array { len, .. } => {
            too_deep(depth)?;
            let mut items = Vec::with_capacity(*len);
            for _ in 0..*len {
                items.push(to_value(tape, i, depth + 1)?);
            }
            Value::Array(items)
        }
        Node::Object { len, .. } => {
            too_deep(depth)?;
            let mut map = Map::new();
            for _ in 0..*len {
                let Some(Node::String(k)) = tape.get(*i) else {
                    return Err(HistoryErrorKind::Syntax(
                        "invalid JSON: expected a field name".into(),
                    ));
                };
                *i += 1;
                let v = to_value(tape, i, depth + 1)?;
                if map.insert(k.to_string(), v).is_some() {
                    return Err(HistoryErrorKind::DuplicateKey(echo(k)));
                }
            }
            Value::Object(map)
        }
    })
}

fn too_deep(depth: usize) -> Result<(), HistoryErrorKind> {
    if depth >= MAX_DEPTH {
        return Err(HistoryErrorKind::Syntax(format!(
            "invalid JSON: recursion limit exceeded (more than {MAX_DEPTH} nested arrays and objects)"
        )));
    }
    Ok(())
}

pub(super) fn static_value(s: StaticNode) -> Value {
    match s {
        StaticNode::I64(n) => Value::from(n),
        StaticNode::U64(n) => Value::from(n),
        StaticNode::F64(x) => Number::from_f64(x).map_or(Value::Null, Value::Number),
        StaticNode::Bool(b) => Value::Bool(b),
        StaticNode::Null => Value::Null,
    }
}

/// A field's value for messages, cut.
fn shown(node: &Node) -> String {
    match node {
        Node::Static(s) => crate::history::compact(&static_value(*s)),
        Node::String(s) => echo(&format!("{s:?}")),
        Node::Array { .. } => "an array".into(),
        Node::Object { .. } => "an object".into(),
    }
}

pub(super) fn index_of(node: &Node) -> Result<u64, HistoryErrorKind> {
    match node {
        Node::Static(StaticNode::I64(n)) if *n >= 0 => Ok(*n as u64),
        Node::Static(StaticNode::U64(n)) if i64::try_from(*n).is_ok() => Ok(*n),
        _ => Err(HistoryErrorKind::BadField {
            field: "index",
            reason: format!(
                "expected an integer from 0 to 2^63-1, found `{}`",
                shown(node)
            ),
        }),
    }
}

pub(super) fn time_of(node: &Node) -> Result<Option<i64>, HistoryErrorKind> {
    match node {
        Node::Static(StaticNode::I64(n)) => Ok(Some(*n)),
        Node::Static(StaticNode::U64(n)) => {
            i64::try_from(*n)
                .map(Some)
                .map_err(|_| HistoryErrorKind::BadField {
                    field: "time",
                    reason: format!("{n} is out of range (at most 2^63-1 nanoseconds)"),
                })
        }
        Node::Static(StaticNode::F64(x)) => Ok(Some(*x as i64)),
        Node::Static(StaticNode::Null) => Ok(None),
        _ => Err(HistoryErrorKind::BadField {
            field: "time",
            reason: format!("expected a number, found `{}`", shown(node)),
        }),
    }
}

pub(super) fn process_of(node: &Node) -> Result<Process, HistoryErrorKind> {
    let out_of_range = |text: String| HistoryErrorKind::BadField {
        field: "process",
        reason: format!(
            "process out of range: {text} (a client process is an integer from 0 to 2^63-1)"
        ),
    };
    match node {
        Node::Static(StaticNode::I64(n)) if *n >= 0 => Ok(Process::Client(*n)),
        Node::Static(StaticNode::I64(n)) => Err(out_of_range(n.to_string())),
        Node::Static(StaticNode::U64(n)) => i64::try_from(*n)
            .map(Process::Client)
            .map_err(|_| out_of_range(n.to_string())),
        Node::Static(StaticNode::F64(x)) => {
            if x.fract() == 0.0 && (0.0..9.0e15).contains(x) {
                Ok(Process::Client(*x as i64))
            } else {
                Ok(Process::Other(x.to_string()))
            }
        }
        Node::String(s) => Ok(Process::Other(s.to_string())),
        Node::Static(StaticNode::Null) => Ok(Process::Other("null".into())),
        _ => Err(HistoryErrorKind::BadField {
            field: "process",
            reason: format!(
                "expected an integer (client) or a string such as \"nemesis\", found `{}`",
                shown(node)
            ),
        }),
    }
}

pub(super) fn type_of(node: &Node) -> Result<EventType, HistoryErrorKind> {
    match node {
        Node::String(s) => {
            EventType::parse(s).ok_or_else(|| HistoryErrorKind::UnknownType(echo(s)))
        }
        _ => Err(HistoryErrorKind::BadField {
            field: "type",
            reason: format!(
                "expected a string: invoke, ok, fail or info, found `{}`",
                shown(node)
            ),
        }),
    }
}

/// Why simd-json refused `text` (its own message is `simd`), in the words
/// of the previous reader: invalid UTF-8, an integer beyond 64 bits, or
/// serde_json's description of the syntax error.
pub fn diagnose(text: &[u8], simd: &str) -> HistoryErrorKind {
    if let Err(e) = std::str::from_utf8(text) {
        let at = e.valid_up_to();
        return HistoryErrorKind::Syntax(format!(
            "invalid UTF-8 (byte 0x{:02X} at column {})",
            text[at],
            at + 1
        ));
    }
    if let Some(n) = integer_out_of_range(text) {
        return HistoryErrorKind::IntegerOutOfRange(echo(n));
    }
    match serde_json::from_slice::<serde::de::IgnoredAny>(text) {
        Err(e) => syntax_kind(&e),
        Ok(_) => HistoryErrorKind::Syntax(format!("invalid JSON: {}", echo(simd))),
    }
}

/// serde_json's message, with the column it gives (the line is ours).
pub fn syntax_kind(e: &serde_json::Error) -> HistoryErrorKind {
    HistoryErrorKind::Syntax(format!("invalid JSON: {}", Column(e)))
}

/// serde_json's error message with " at line L column C" turned into
/// " (column C)".
struct Column<'a>(&'a serde_json::Error);

impl std::fmt::Display for Column<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let msg = self.0.to_string();
        match msg.rfind(" at line ") {
            Some(i) => write!(f, "{} (column {})", &msg[..i], self.0.column()),
            None => f.write_str(&msg),
        }
    }
}

/// Where the JSON string whose text starts at `i` (after its opening
/// quote) ends: the position of its closing quote, or past the end of
/// `data` when it has none.
pub(super) fn string_end(data: &[u8], mut i: usize) -> usize {
    while i < data.len() && data[i] != b'"' {
        i += if data[i] == b'\\' { 2 } else { 1 };
    }
    i
}

/// The first integer of the JSON `text` (outside strings) that is not in
/// `[-2^63, 2^64-1]`, as written.
pub fn integer_out_of_range(text: &[u8]) -> Option<&str> {
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'"' => i = string_end(text, i + 1) + 1,
            b'-' | b'0'..=b'9' => {
                let start = i;
                i += 1;
                while i < text.len()
                    && matches!(text[i], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                {
                    i += 1;
                }
                let token = std::str::from_utf8(&text[start..i]).ok()?;
                let integer = !token.contains(['.', 'e', 'E']);
                if integer
                    && token
                        .trim_start_matches('-')
                        .starts_with(|c: char| c.is_ascii_digit())
                    && token.parse::<i64>().is_err()
                    && token.parse::<u64>().is_err()
                {
                    return Some(token);
                }
            }
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Event, HistoryErrorKind> {
        EventParser::new().parse(s.as_bytes(), 1)
    }

    #[test]
    fn finds_integers_beyond_64_bits_outside_strings() {
        assert_eq!(
            integer_out_of_range(br#"{"a":"18446744073709551616","b":[1,18446744073709551616]}"#),
            Some("18446744073709551616")
        );
        assert_eq!(
            integer_out_of_range(br#"{"a":-9223372036854775809}"#),
            Some("-9223372036854775809")
        );
        assert_eq!(
            integer_out_of_range(
                br#"{"a":18446744073709551615,"b":-9223372036854775808,"c":1e300,"d":"\"1"}"#
            ),
            None
        );
    }

    #[test]
    fn fields_and_values_are_exact() {
        let e = parse(r#"{"process":3,"type":"ok","f":"cas","key":"k","value":[18446744073709551615,-9223372036854775808,-0,1.5],"node":"n1"}"#).unwrap();
        assert_eq!(e.process, Process::Client(3));
        assert_eq!(
            e.value,
            serde_json::json!([18446744073709551615u64, i64::MIN, 0, 1.5])
        );
        assert!(e.value[2].is_u64(), "-0 is the integer 0");
        assert_eq!(e.extra["node"], "n1");
        assert!(e.has_value);
        let e = parse(r#"{"process":"nemesis","type":"info"}"#).unwrap();
        assert_eq!(e.process, Process::Other("nemesis".into()));
        assert!(!e.has_value);
    }
}
