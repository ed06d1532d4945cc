//! The fast path of the JSON event reader: a direct scan of the common
//! shape of an event line, without building a tape.
//!
//! It accepts only a strict subset of JSON whose meaning is unambiguous:
//! one flat object whose field names and string values are printable ASCII
//! without escapes, whose numbers are integers of at most 18 digits (no
//! leading zero, no `-0`, no fraction or exponent), and whose values are
//! `null`, `true`, `false`, such integers, such strings, or flat arrays of
//! at most 4 of those. `index` must be a non-negative integer, `time` an integer or
//! null, `process` a non-negative integer, `type` one of the event types,
//! `f` a string, and no field may appear twice.
//!
//! Anything else (including every malformed line) makes [`scan`] answer
//! `None`, and the caller decodes the line with the general decoder
//! ([`super::json_event`]), which gives the same [`Event`] for the lines
//! this path accepts and the exact error for the lines it refuses. The
//! subset is chosen so that "accepted here" implies "valid and decoded the
//! same way there": a differential test checks it on many generated lines.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::json_event::{F, INDEX, KEY, PROCESS, TIME, TYPE, VALUE, field_bit};
use crate::history::{Event, EventType, Process};

/// At most this many digits in an integer: always within `i64`.
const MAX_DIGITS: usize = 18;

/// How many keys a parser remembers (beyond, a key gets its own copy).
const MAX_KEYS: usize = 1 << 16;

/// The string keys a parser has seen, each with the one copy its events
/// share: no allocation per event for the key.
#[derive(Default)]
pub(super) struct KeyCache(crate::txn::hash::FastMap<Box<str>, Arc<Value>>);

impl KeyCache {
    fn get(&mut self, key: &str) -> Arc<Value> {
        if let Some(k) = self.0.get(key) {
            return k.clone();
        }
        let k = Arc::new(Value::String(key.to_string()));
        if self.0.len() < MAX_KEYS {
            self.0.insert(key.into(), k.clone());
        }
        k
    }
}

/// A cursor over one line (valid UTF-8).
struct Scan<'a> {
    line: &'a str,
    text: &'a [u8],
    at: usize,
}

impl<'a> Scan<'a> {
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\r' | b'\n') = self.text.get(self.at) {
            self.at += 1;
        }
    }

    /// Skips whitespace, then consumes `c` if it is next.
    fn eat(&mut self, c: u8) -> bool {
        self.skip_ws();
        if self.text.get(self.at) == Some(&c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.text.get(self.at).copied()
    }

    /// A string without escapes or control characters (the opening quote
    /// is next).
    fn string(&mut self) -> Option<&'a str> {
        if !self.eat(b'"') {
            return None;
        }
        let start = self.at;
        // One pass (the strings of an event are short): the closing quote,
        // refusing escapes and control characters on the way.
        let len = self.text[start..]
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        if self.text[start + len] != b'"' {
            return None;
        }
        self.at = start + len + 1;
        // Quotes are ASCII: both ends are character boundaries.
        self.line.get(start..start + len)
    }

    /// An integer of at most [`MAX_DIGITS`] digits, without leading zero
    /// and not `-0`, not followed by a fraction or an exponent.
    fn integer(&mut self) -> Option<i64> {
        self.skip_ws();
        let neg = self.text.get(self.at) == Some(&b'-');
        let start = self.at + usize::from(neg);
        let digits = self.text[start.min(self.text.len())..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits == 0 || digits > MAX_DIGITS {
            return None;
        }
        let d = &self.text[start..start + digits];
        if d[0] == b'0' && (digits > 1 || neg) {
            return None;
        }
        if let Some(b'.' | b'e' | b'E') = self.text.get(start + digits) {
            return None;
        }
        let mut n: i64 = 0;
        for &b in d {
            n = n * 10 + i64::from(b - b'0');
        }
        self.at = start + digits;
        Some(if neg { -n } else { n })
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        self.skip_ws();
        if self.text[self.at..].starts_with(word) {
            self.at += word.len();
            true
        } else {
            false
        }
    }

    /// `null`, `true`, `false`, an integer or a string.
    fn scalar(&mut self) -> Option<Value> {
        match self.peek()? {
            b'"' => self.string().map(|s| Value::String(s.to_string())),
            b'n' => self.literal(b"null").then_some(Value::Null),
            b't' => self.literal(b"true").then_some(Value::Bool(true)),
            b'f' => self.literal(b"false").then_some(Value::Bool(false)),
            b'-' | b'0'..=b'9' => self.integer().map(Value::from),
            _ => None,
        }
    }

    /// A scalar, or a flat array of scalars.
    fn value(&mut self) -> Option<Value> {
        if self.peek()? != b'[' {
            return self.scalar();
        }
        self.at += 1;
        // The items go to a small buffer first, so that the array is
        // allocated at its exact size, as the general decoder makes it (the
        // `[from, to]` of each cas stays in the history).
        let mut items: [Value; 4] = Default::default();
        let mut n = 0;
        if !self.eat(b']') {
            loop {
                *items.get_mut(n)? = self.scalar()?;
                n += 1;
                if self.eat(b']') {
                    break;
                }
                if !self.eat(b',') {
                    return None;
                }
            }
        }
        let mut array = Vec::with_capacity(n);
        array.extend(items.into_iter().take(n));
        Some(Value::Array(array))
    }
}

/// The event on `text` (one line, trimmed) when it is in the fast path's
/// subset; `None` sends it to the general decoder. `names` shares function
/// names as the general decoder does, `keys` string keys.
pub(super) fn scan(
    text: &[u8],
    line: usize,
    names: &mut Vec<Arc<str>>,
    keys: &mut KeyCache,
) -> Option<Event> {
    let mut s = Scan {
        line: std::str::from_utf8(text).ok()?,
        text,
        at: 0,
    };
    if !s.eat(b'{') {
        return None;
    }
    let mut seen = 0u8;
    let (mut index, mut time, mut process, mut kind, mut f) = (None, None, None, None, None);
    let (mut key, mut value) = (None, None);
    let mut extra = Map::new();
    if !s.eat(b'}') {
        loop {
            let name = s.string()?;
            if !s.eat(b':') {
                return None;
            }
            let bit = field_bit(name);
            if seen & bit != 0 {
                return None;
            }
            seen |= bit;
            match bit {
                INDEX => index = Some(u64::try_from(s.integer()?).ok()?),
                TIME => {
                    time = if s.peek()? == b'n' {
                        s.literal(b"null").then_some(None)?
                    } else {
                        Some(s.integer()?)
                    }
                }
                PROCESS => process = Some(Process::Client(s.integer().filter(|&p| p >= 0)?)),
                TYPE => kind = Some(EventType::parse(s.string()?)?),
                F => f = Some(super::json_event::shared_name(names, s.string()?)),
                KEY => {
                    key = Some(match s.peek()? {
                        b'"' => keys.get(s.string()?),
                        _ => Arc::new(s.value()?),
                    })
                }
                VALUE => value = Some(s.value()?),
                _ => {
                    let v = s.value()?;
                    if extra.insert(name.to_string(), v).is_some() {
                        return None;
                    }
                }
            }
            if s.eat(b'}') {
                break;
            }
            if !s.eat(b',') {
                return None;
            }
        }
    }
    s.skip_ws();
    if s.at != text.len() {
        return None;
    }
    Some(Event {
        line,
        index,
        time,
        process: process?,
        kind: kind?,
        f: f?,
        key,
        has_value: value.is_some(),
        value: value.unwrap_or(Value::Null),
        extra,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::json_event::EventParser;

    /// Lines the fast path accepts are decoded exactly as the general
    /// decoder decodes them; lines it refuses go to the general decoder.
    fn agrees(text: &str) -> bool {
        let fast = scan(
            text.trim_ascii().as_bytes(),
            7,
            &mut Vec::new(),
            &mut KeyCache::default(),
        );
        let slow = EventParser::new().parse_general(text.trim_ascii().as_bytes(), 7);
        match fast {
            Some(ev) => {
                assert_eq!(Ok(ev), slow, "fast and general decoders differ on {text}");
                true
            }
            None => false,
        }
    }

    #[test]
    fn the_common_shapes_take_the_fast_path() {
        for line in [
            r#"{"index":0,"time":520916,"process":35,"type":"invoke","f":"write","key":"k391","value":1}"#,
            r#"{"index":2,"time":1217502,"process":43,"type":"invoke","f":"cas","key":"k957","value":[1,2]}"#,
            r#"{"process":0,"type":"ok","f":"read","value":null}"#,
            r#"{"process":0,"type":"ok","f":"read"}"#,
            r#" { "process" : 0 , "type" : ":info" , "f" : "read" , "error" : "timeout" , "time" : null } "#,
            r#"{"process":3,"type":"fail","f":"add","value":[],"node":"n1","ok":true,"k":-12}"#,
            r#"{"process":0,"type":"ok","f":"read","key":"é","value":"日本"}"#,
        ] {
            assert!(agrees(line), "{line} should take the fast path");
        }
    }

    #[test]
    fn everything_else_goes_to_the_general_decoder() {
        for line in [
            // Integers beyond 64 bits, at the edges, -0, floats.
            r#"{"process":0,"type":"ok","f":"read","value":18446744073709551616}"#,
            r#"{"process":0,"type":"ok","f":"read","value":9223372036854775807}"#,
            r#"{"process":0,"type":"ok","f":"read","value":-0}"#,
            r#"{"process":0,"type":"ok","f":"read","value":01}"#,
            r#"{"process":0,"type":"ok","f":"read","value":1.5}"#,
            r#"{"process":0,"type":"ok","f":"read","value":1e3}"#,
            // Duplicates, of known and of other fields.
            r#"{"process":0,"type":"ok","f":"read","f":"write"}"#,
            r#"{"process":0,"type":"ok","f":"read","x":1,"x":2}"#,
            // Escapes, control characters, nesting, the nemesis, bad types.
            r#"{"process":0,"type":"ok","f":"re\"ad"}"#,
            "{\"process\":0,\"type\":\"ok\",\"f\":\"re\tad\"}",
            r#"{"process":0,"type":"ok","f":"read","value":[[1]]}"#,
            r#"{"process":0,"type":"ok","f":"read","value":[1,2,3,4,5]}"#,
            r#"{"process":0,"type":"ok","f":"read","value":{"a":1}}"#,
            r#"{"process":"nemesis","type":"info","f":"start"}"#,
            r#"{"process":-1,"type":"ok","f":"read"}"#,
            r#"{"process":0,"type":"done","f":"read"}"#,
            r#"{"index":-1,"process":0,"type":"ok","f":"read"}"#,
            // Malformed.
            r#"{"process":0,"type":"ok","f":"read",}"#,
            r#"{"process":0,"type":"ok","f":"read"} x"#,
            r#"{"process":0,"type":"ok","f":"read""#,
            r#"{"process":0,"type":"ok"}"#,
            r#"[1]"#,
            r#"{"process":0,"type":"ok","f":"read","value":nul}"#,
        ] {
            assert!(!agrees(line), "{line} should go to the general decoder");
        }
    }

    /// Many lines made by cutting, doubling and replacing pieces of valid
    /// ones: wherever the fast path answers, it answers as the general
    /// decoder does.
    #[test]
    fn generated_lines_agree_with_the_general_decoder() {
        let bases = [
            r#"{"index":12,"time":-5,"process":35,"type":"invoke","f":"cas","key":"k1","value":[1,-2]}"#,
            r#"{"process":7,"type":"ok","f":"read","key":17,"value":null,"error":"x"}"#,
            r#"{ "time" : null , "process" : 0 , "type" : "fail" , "f" : "w" , "value" : [ ] }"#,
        ];
        let pieces = [
            "",
            " ",
            ",",
            ":",
            "\"",
            "-",
            "0",
            "00",
            "-0",
            "1",
            "[",
            "]",
            "{",
            "}",
            "\\",
            "null",
            "true",
            "e5",
            ".5",
            "\"f\":\"x\"",
            "\"value\":1",
            "\"k\"",
            "99999999999999999999",
            "é",
        ];
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let (mut fast, mut total) = (0, 0);
        for _ in 0..20_000 {
            let base = bases[next(bases.len())];
            let chars: Vec<char> = base.chars().collect();
            let mut text: String = chars.iter().collect();
            for _ in 0..1 + next(3) {
                let cs: Vec<char> = text.chars().collect();
                let a = next(cs.len() + 1);
                let b = (a + next(4)).min(cs.len());
                let mut t: String = cs[..a].iter().collect();
                t.push_str(pieces[next(pieces.len())]);
                t.extend(&cs[b..]);
                text = t;
            }
            total += 1;
            if agrees(&text) {
                fast += 1;
            }
        }
        assert!(
            fast > 1000 && fast < total,
            "{fast} of {total} took the fast path"
        );
    }
}
