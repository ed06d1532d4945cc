//! faultline's own format: JSON Lines, one event per line, or one JSON array
//! of events. Field names and meanings follow Jepsen:
//! `index`, `time`, `process`, `type`, `f`, `key`, `value`; any other field
//! is preserved in [`Event::extra`].

use std::fmt;
use std::io::BufRead;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::{HistoryError, HistoryErrorKind};
use crate::history::{
    CompletionsMode, Event, EventType, History, HistoryBuilder, Process, Semantics,
};

/// An event as decoded from JSON, before its required fields are checked.
#[derive(Default)]
struct RawEvent {
    index: Option<u64>,
    time: Option<i64>,
    process: Option<Process>,
    kind: Option<EventType>,
    f: Option<String>,
    key: Option<Value>,
    value: Option<Value>,
    extra: Map<String, Value>,
}

/// Error text for a bad `type`, kept apart so it can become
/// [`HistoryErrorKind::UnknownType`].
const UNKNOWN_TYPE: &str = "\u{1}unknown-type:";

struct TypeSeed;

impl<'de> DeserializeSeed<'de> for TypeSeed {
    type Value = EventType;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<EventType, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = EventType;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string: invoke, ok, fail or info")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<EventType, E> {
                EventType::parse(s).ok_or_else(|| E::custom(format!("{UNKNOWN_TYPE}{s}")))
            }
        }
        d.deserialize_str(V)
    }
}

struct ProcessSeed;

impl<'de> DeserializeSeed<'de> for ProcessSeed {
    type Value = Process;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Process, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Process;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an integer (client) or a string such as \"nemesis\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Process, E> {
                Ok(Process::Client(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Process, E> {
                i64::try_from(v)
                    .map(Process::Client)
                    .map_err(|_| E::custom("process out of range"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Process, E> {
                if v.fract() == 0.0 && v.abs() < 9.0e15 {
                    Ok(Process::Client(v as i64))
                } else {
                    Ok(Process::Other(v.to_string()))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Process, E> {
                Ok(Process::Other(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Process, E> {
                Ok(Process::Other("null".into()))
            }
        }
        d.deserialize_any(V)
    }
}

struct IntSeed;

impl<'de> DeserializeSeed<'de> for IntSeed {
    type Value = Option<i64>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<i64>, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Option<i64>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<i64>, E> {
                Ok(Some(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<i64>, E> {
                Ok(Some(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Option<i64>, E> {
                Ok(Some(v as i64))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Option<i64>, E> {
                Ok(None)
            }
        }
        d.deserialize_any(V)
    }
}

struct RawEventVisitor;

impl<'de> Visitor<'de> for RawEventVisitor {
    type Value = RawEvent;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an event object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawEvent, A::Error> {
        let mut ev = RawEvent::default();
        while let Some(k) = map.next_key::<KeyName>()? {
            match k.as_str() {
                "index" => {
                    ev.index = map
                        .next_value_seed(IntSeed)?
                        .map(|v| u64::try_from(v).unwrap_or(0))
                }
                "time" => ev.time = map.next_value_seed(IntSeed)?,
                "process" => ev.process = Some(map.next_value_seed(ProcessSeed)?),
                "type" => ev.kind = Some(map.next_value_seed(TypeSeed)?),
                "f" => {
                    let v: Value = map.next_value()?;
                    ev.f = Some(match v {
                        Value::String(s) => s,
                        other => other.to_string(),
                    });
                }
                "key" => ev.key = Some(map.next_value()?),
                "value" => ev.value = Some(map.next_value()?),
                _ => {
                    let v: Value = map.next_value()?;
                    ev.extra.insert(k.into_string(), v);
                }
            }
        }
        Ok(ev)
    }
}

/// A field name, borrowed when possible.
enum KeyName {
    Known(&'static str),
    Other(String),
}

impl KeyName {
    fn as_str(&self) -> &str {
        match self {
            KeyName::Known(s) => s,
            KeyName::Other(s) => s,
        }
    }
    fn into_string(self) -> String {
        match self {
            KeyName::Known(s) => s.to_string(),
            KeyName::Other(s) => s,
        }
    }
}

impl<'de> de::Deserialize<'de> for KeyName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = KeyName;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<KeyName, E> {
                Ok(match s {
                    "index" => KeyName::Known("index"),
                    "time" => KeyName::Known("time"),
                    "process" => KeyName::Known("process"),
                    "type" => KeyName::Known("type"),
                    "f" => KeyName::Known("f"),
                    "key" => KeyName::Known("key"),
                    "value" => KeyName::Known("value"),
                    other => KeyName::Other(other.to_string()),
                })
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> de::Deserialize<'de> for RawEvent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(RawEventVisitor)
    }
}

fn syntax_kind(e: serde_json::Error) -> HistoryErrorKind {
    let msg = e.to_string();
    if let Some(pos) = msg.find(UNKNOWN_TYPE) {
        let rest = &msg[pos + UNKNOWN_TYPE.len()..];
        let name = rest.split(" at line").next().unwrap_or(rest);
        return HistoryErrorKind::UnknownType(name.to_string());
    }
    // serde_json appends " at line L column C" about the text it was given;
    // keep the column, the line is ours.
    let msg = match msg.rfind(" at line ") {
        Some(i) => {
            let col = msg[i..].split("column ").nth(1).unwrap_or("");
            format!("{} (column {})", &msg[..i], col)
        }
        None => msg,
    };
    HistoryErrorKind::Syntax(format!("invalid JSON: {msg}"))
}

fn to_event(raw: RawEvent, line: usize) -> Result<Event, HistoryErrorKind> {
    let process = raw
        .process
        .ok_or(HistoryErrorKind::MissingField("process"))?;
    let kind = raw.kind.ok_or(HistoryErrorKind::MissingField("type"))?;
    let f = match raw.f {
        Some(f) => f,
        None if matches!(process, Process::Other(_)) => String::new(),
        None => return Err(HistoryErrorKind::MissingField("f")),
    };
    Ok(Event {
        line,
        index: raw.index,
        time: raw.time,
        process,
        kind,
        f,
        key: raw.key,
        has_value: raw.value.is_some(),
        value: raw.value.unwrap_or(Value::Null),
        extra: raw.extra,
    })
}

/// True if `text` is the beginning of a JSON text that ends too early (and
/// nothing else is wrong with it so far).
fn is_cut_short(text: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(text)
        .err()
        .is_some_and(|e| e.is_eof())
}

/// Parses one JSON event (the text of one line).
pub fn parse_event(text: &[u8], line: usize) -> Result<Event, HistoryErrorKind> {
    let raw: RawEvent = serde_json::from_slice(text).map_err(syntax_kind)?;
    to_event(raw, line)
}

/// Reads JSON Lines (or one JSON array) from `reader`, streaming line by line.
pub fn read<R: BufRead>(source: &str, reader: R) -> Result<History, HistoryError> {
    read_with(source, reader, CompletionsMode::Require)
}

/// [`read`], with the given treatment of completions without invocation.
pub fn read_with<R: BufRead>(
    source: &str,
    mut reader: R,
    mode: CompletionsMode,
) -> Result<History, HistoryError> {
    let mut b = HistoryBuilder::new(source, Semantics::default()).completions_mode(mode);
    let io = |e: std::io::Error| HistoryError {
        file: source.to_string(),
        line: 0,
        kind: HistoryErrorKind::Io(e.to_string()),
    };
    let mut buf = Vec::with_capacity(256);
    let mut line = 0usize;
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        line += 1;
        let text = trim_ascii(&buf);
        if text.is_empty() {
            continue;
        }
        if text[0] == b'[' && b.events() == 0 {
            // One JSON array: read the rest and parse element by element.
            let mut rest = buf.clone();
            reader.read_to_end(&mut rest).map_err(io)?;
            return read_array(b, &rest, line);
        }
        let ev = match parse_event(text, line) {
            Ok(ev) => ev,
            Err(_) if !buf.ends_with(b"\n") && is_cut_short(text) => {
                // The last line of a file whose writer died (or ran out of
                // space) mid-write: left out, and said so.
                b.torn_last_line(line);
                break;
            }
            Err(k) => return Err(b.error(line, k)),
        };
        b.push(ev)?;
    }
    if b.events() == 0 {
        return Err(b.error(0, HistoryErrorKind::Empty));
    }
    Ok(b.finish())
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end]
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
    loop {
        // Skip whitespace, then a comma or the closing bracket.
        while pos < data.len() && data[pos].is_ascii_whitespace() {
            if data[pos] == b'\n' {
                line += 1;
            }
            pos += 1;
        }
        if pos >= data.len() {
            return Err(b.error(
                line,
                HistoryErrorKind::Syntax("invalid JSON: unterminated array".into()),
            ));
        }
        match data[pos] {
            b']' => {
                let rest = trim_ascii(&data[pos + 1..]);
                if !rest.is_empty() {
                    return Err(b.error(
                        line,
                        HistoryErrorKind::Syntax(
                            "invalid JSON: trailing characters after the array".into(),
                        ),
                    ));
                }
                break;
            }
            b',' if !expect_value => {
                pos += 1;
                expect_value = true;
                continue;
            }
            _ if !expect_value => {
                return Err(b.error(
                    line,
                    HistoryErrorKind::Syntax("invalid JSON: expected `,` or `]`".into()),
                ));
            }
            _ => {}
        }
        let mut stream = serde_json::Deserializer::from_slice(&data[pos..]).into_iter::<RawEvent>();
        let raw = match stream.next() {
            Some(Ok(raw)) => raw,
            Some(Err(e)) => return Err(b.error(line, syntax_kind(e))),
            None => {
                return Err(b.error(
                    line,
                    HistoryErrorKind::Syntax("invalid JSON: unterminated array".into()),
                ));
            }
        };
        let used = stream.byte_offset();
        let ev = to_event(raw, line).map_err(|k| b.error(line, k))?;
        b.push(ev)?;
        line += count_newlines(&data[pos..pos + used]);
        pos += used;
        expect_value = false;
    }
    if b.events() == 0 {
        return Err(b.error(0, HistoryErrorKind::Empty));
    }
    Ok(b.finish())
}

fn count_newlines(b: &[u8]) -> usize {
    b.iter().filter(|&&c| c == b'\n').count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Outcome;

    fn read_str(s: &str) -> Result<History, HistoryError> {
        read("t.jsonl", s.as_bytes())
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
        assert_eq!(h.ops[1].invoke_line, 4);
    }

    #[test]
    fn reads_an_array_with_lines() {
        let h = read_str(
            "[\n{\"process\":0,\"type\":\"invoke\",\"f\":\"read\"},\n{\"process\":0,\"type\":\"ok\",\"f\":\"read\",\"value\":1}\n]\n",
        )
        .unwrap();
        assert_eq!(h.ops.len(), 1);
        assert_eq!(h.ops[0].complete_line, Some(3));
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
                .all(|o| Some(o.invoke_pos) == o.complete_pos && o.outcome == Outcome::Ok)
        );
        assert_eq!((h.ops[1].invoke_line, h.ops[1].complete_line), (3, Some(3)));
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
