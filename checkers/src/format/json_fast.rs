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

use std::ops::Range;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::json_event::{F, INDEX, KEY, PROCESS, TIME, TYPE, VALUE, field_bit};
use crate::history::raw_event::{Held, RawEvent, RawKey};
use crate::history::{Event, EventType, Process};

/// At most this many digits in an integer: always within `i64`.
const MAX_DIGITS: usize = 18;

/// How many keys a parser remembers (beyond, a key gets its own copy).
const MAX_KEYS: usize = 1 << 16;

/// The string keys a parser has seen, each with the one copy its events
/// share: no allocation per event for the key. Keys of at most
/// [`SHORT_KEY`] bytes (most keys: `k391`, `x`) are looked up by their
/// bytes packed in two words, without hashing or comparing a string.
/// The tables give each key's place in `copies` (a plain lookup, which
/// leaves the tables free to take a new key when it misses).
#[derive(Default)]
pub(super) struct KeyCache {
    short: crate::txn::hash::FastMap<(u64, u64), usize>,
    long: crate::txn::hash::FastMap<Box<str>, usize>,
    copies: Vec<Arc<Value>>,
}

/// The longest key packed by [`pack`].
const SHORT_KEY: usize = 15;

/// `key` (at most [`SHORT_KEY`] bytes) as two words: its bytes, then its
/// length in the last byte, so that different keys pack differently.
fn pack(key: &[u8]) -> (u64, u64) {
    let mut w = [0u8; 16];
    w[..key.len()].copy_from_slice(key);
    w[15] = key.len() as u8;
    let (lo, hi) = w.split_at(8);
    let word = |b: &[u8]| b.try_into().map_or(0, u64::from_le_bytes);
    (word(lo), word(hi))
}

/// [`pack`] of the key at `at` in `text`, read in one load of the 16
/// bytes that start there when `text` has them (no copy byte by byte, and
/// no stall reading back what was just stored).
fn pack_at(text: &[u8], at: Range<usize>) -> (u64, u64) {
    let len = at.len();
    let Some(window) = text[at.start..].first_chunk::<16>() else {
        return pack(&text[at]);
    };
    // The key's bytes, then zeros, then its length in the last byte.
    let mask = (1u128 << (8 * len)) - 1;
    let packed = (u128::from_le_bytes(*window) & mask) | ((len as u128) << 120);
    (packed as u64, (packed >> 64) as u64)
}

impl KeyCache {
    /// The copy of the key at `at` in `text`, borrowed (or a new one, when
    /// the cache is full); `None` when its bytes are not UTF-8. Short keys
    /// are found without looking at their text again.
    fn held(&mut self, text: &[u8], at: Range<usize>) -> Option<Held<'_, Value>> {
        let place = if at.len() <= SHORT_KEY {
            self.short.get(&pack_at(text, at.clone())).copied()
        } else {
            std::str::from_utf8(&text[at.clone()])
                .ok()
                .and_then(|k| self.long.get(k).copied())
        };
        let place = match place {
            Some(place) => place,
            None => match self.learn(std::str::from_utf8(&text[at]).ok()?) {
                Ok(place) => place,
                Err(own) => return Some(Held::Own(own)),
            },
        };
        // A place the tables give is in `copies`.
        Some(Held::Shared(&self.copies[place]))
    }

    /// Takes a new key: its place in `copies`, or a copy of its own when
    /// the cache is full.
    fn learn(&mut self, key: &str) -> Result<usize, Arc<Value>> {
        let copy = Arc::new(Value::String(key.to_string()));
        if self.copies.len() >= MAX_KEYS {
            return Err(copy);
        }
        let place = self.copies.len();
        self.copies.push(copy);
        if key.len() <= SHORT_KEY {
            self.short.insert(pack(key.as_bytes()), place);
        } else {
            self.long.insert(key.into(), place);
        }
        Ok(place)
    }

    fn get(&mut self, key: &str) -> Arc<Value> {
        let place = if key.len() <= SHORT_KEY {
            self.short.get(&pack(key.as_bytes())).copied()
        } else {
            self.long.get(key).copied()
        };
        let place = match place {
            Some(place) => place,
            None => match self.learn(key) {
                Ok(place) => place,
                Err(own) => return own,
            },
        };
        // A place the tables give is in `copies`.
        Arc::clone(&self.copies[place])
    }
}

/// The integer that starts at `at` in `text`, and where it ends: at most
/// [`MAX_DIGITS`] digits (always within `i64`), no leading zero, not `-0`,
/// no fraction or exponent after. `None` for anything else.
fn integer_at(text: &[u8], at: usize) -> Option<(i64, usize)> {
    let neg = text.get(at) == Some(&b'-');
    let start = at + usize::from(neg);
    let mut end = start;
    let mut n: i64 = 0;
    while let Some(&b) = text.get(end) {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            break;
        }
        // Exact up to MAX_DIGITS digits; longer numbers are refused below.
        n = n.wrapping_mul(10).wrapping_add(i64::from(digit));
        end += 1;
    }
    let digits = end - start;
    if digits == 0 || digits > MAX_DIGITS {
        return None;
    }
    if text[start] == b'0' && (digits > 1 || neg) {
        return None;
    }
    if let Some(b'.' | b'e' | b'E') = text.get(end) {
        return None;
    }
    Some((if neg { -n } else { n }, end))
}

/// The scalars and punctuation of a cursor, and the values made of them:
/// the same rules for both scans.
trait Scalars {
    /// `null`, `true`, `false`, an integer or a string.
    fn scalar(&mut self) -> Option<Value>;

    /// Consumes the punctuation `c` if it comes next.
    fn punct(&mut self, c: u8) -> bool;

    /// A scalar, or a flat array of at most 4 scalars, allocated at its
    /// size as the general decoder makes it (the `[from, to]` of each cas
    /// stays in the history).
    #[inline(always)]
    fn value(&mut self) -> Option<Value> {
        if !self.punct(b'[') {
            return self.scalar();
        }
        if self.punct(b']') {
            return Some(Value::Array(Vec::new()));
        }
        // Most arrays are a cas's `[from, to]`: room for two, and the
        // array is cut to its size when it has another.
        let mut array = Vec::with_capacity(2);
        loop {
            if array.len() == 4 {
                return None;
            }
            array.push(self.scalar()?);
            if self.punct(b']') {
                break;
            }
            if !self.punct(b',') {
                return None;
            }
        }
        array.shrink_to_fit();
        Some(Value::Array(array))
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
        let (n, end) = integer_at(self.text, self.at)?;
        self.at = end;
        Some(n)
    }

    /// The bit of a known field whose name comes next, written as
    /// `"name":` exactly (the common form), and moves past the colon.
    /// `None` (nothing consumed) otherwise: the caller reads the name as
    /// any other string.
    fn known_field(&mut self) -> Option<u8> {
        let rest = &self.text[self.at..];
        // Each pattern a constant, so that each comparison is a few loads.
        let (bit, len) = match rest.get(1)? {
            b'i' if rest.starts_with(b"\"index\":") => (INDEX, 8),
            b't' if rest.starts_with(b"\"time\":") => (TIME, 7),
            b't' if rest.starts_with(b"\"type\":") => (TYPE, 7),
            b'p' if rest.starts_with(b"\"process\":") => (PROCESS, 10),
            b'f' if rest.starts_with(b"\"f\":") => (F, 4),
            b'k' if rest.starts_with(b"\"key\":") => (KEY, 6),
            b'v' if rest.starts_with(b"\"value\":") => (VALUE, 8),
            _ => return None,
        };
        self.at += len;
        Some(bit)
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
}

impl Scalars for Scan<'_> {
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

    fn punct(&mut self, c: u8) -> bool {
        self.eat(c)
    }
}

/// A cursor over a line written the way faultline writes events: no
/// whitespace, the known fields in the writer's order, strings of printable
/// ASCII without escapes (so each string is exactly its bytes, and every
/// byte it accepts is ASCII).
struct Canonical<'a> {
    text: &'a [u8],
    at: usize,
}

/// A byte [`Canonical::string`] takes as it is: printable ASCII but the
/// quote and the backslash.
#[inline]
fn plain(b: u8) -> bool {
    (0x20..0x80).contains(&b) && b != b'"' && b != b'\\'
}

/// The high bit of each byte of `x` (eight bytes, the first lowest) that
/// is not [`plain`], and maybe of bytes after the first such: the lowest bit
/// set marks the first byte that is not plain. (A byte less than `n` makes
/// `x - n` borrow from the byte after it, hence the "maybe".)
#[inline]
fn not_plain(x: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = ONES * 0x80;
    let below = |v: u64, n: u8| v.wrapping_sub(ONES * u64::from(n)) & !v & HIGH;
    below(x ^ (ONES * u64::from(b'"')), 1)
        | below(x ^ (ONES * u64::from(b'\\')), 1)
        | below(x, 0x20)
        | (x & HIGH)
}

impl<'a> Canonical<'a> {
    /// Consumes `word` if it comes next (a constant: compared in a few
    /// loads, without a call).
    #[inline]
    fn eat<const N: usize>(&mut self, word: &[u8; N]) -> bool {
        let hit = self.text.get(self.at..self.at + N) == Some(word.as_slice());
        if hit {
            self.at += N;
        }
        hit
    }

    /// Consumes `sep` (the `{` before the first field, the `,` before the
    /// others) and the field name `name` (quoted, with its colon) if they
    /// come next; `sep` becomes `,`.
    #[inline]
    fn field<const N: usize>(&mut self, sep: &mut u8, name: &[u8; N]) -> bool {
        let hit = self.text.get(self.at) == Some(sep)
            && self.text.get(self.at + 1..self.at + 1 + N) == Some(name.as_slice());
        if hit {
            self.at += 1 + N;
            *sep = b',';
        }
        hit
    }

    /// A string (its opening quote next) of printable ASCII without a
    /// backslash: its bytes, which are its text. Anything else in it (an
    /// escape, a control character, a multi-byte character) ends the scan.
    fn string(&mut self) -> Option<&'a [u8]> {
        if !self.eat(b"\"") {
            return None;
        }
        // Strings of events are short: eight bytes at a time beats a
        // search call, and the last few are looked at one by one.
        let start = self.at;
        let mut end = start;
        loop {
            let Some(chunk) = self.text.get(end..end + 8) else {
                end += self.text[end..].iter().position(|&b| !plain(b))?;
                break;
            };
            let stops = not_plain(u64::from_le_bytes(chunk.try_into().ok()?));
            if stops != 0 {
                end += (stops.trailing_zeros() / 8) as usize;
                break;
            }
            end += 8;
        }
        if self.text[end] != b'"' {
            return None;
        }
        self.at = end + 1;
        Some(&self.text[start..end])
    }

    /// The place in `names` of the string that comes next (its opening
    /// quote next) when it is one of them, consumed; the names a reader
    /// has seen are few, and compared in place without a scan.
    ///
    /// Only a name that [`Canonical::string`] would take as written is
    /// taken (the general decoder's names may have had escapes).
    #[inline]
    fn known_name(&mut self, names: &[Arc<str>]) -> Option<usize> {
        if self.text.get(self.at) != Some(&b'"') {
            return None;
        }
        let rest = &self.text[self.at + 1..];
        let at = names.iter().position(|name| {
            let name = name.as_bytes();
            // Names are short: compared byte by byte, without a call.
            rest.get(name.len()) == Some(&b'"') && rest.iter().zip(name).all(|(a, b)| a == b)
        })?;
        let name = names[at].as_bytes();
        if !name.iter().all(|&b| plain(b)) {
            return None;
        }
        self.at += name.len() + 2;
        Some(at)
    }

    /// An integer, by the rules of [`integer_at`].
    fn integer(&mut self) -> Option<i64> {
        let (n, end) = integer_at(self.text, self.at)?;
        self.at = end;
        Some(n)
    }
}

impl Scalars for Canonical<'_> {
    #[inline(always)]
    fn scalar(&mut self) -> Option<Value> {
        match *self.text.get(self.at)? {
            b'"' => {
                let s = std::str::from_utf8(self.string()?).ok()?;
                Some(Value::String(s.to_string()))
            }
            b'n' => self.eat(b"null").then_some(Value::Null),
            b't' => self.eat(b"true").then_some(Value::Bool(true)),
            b'f' => self.eat(b"false").then_some(Value::Bool(false)),
            _ => self.integer().map(Value::from),
        }
    }

    fn punct(&mut self, c: u8) -> bool {
        self.eat(&[c])
    }
}

/// Which events' string keys [`scan_canonical`] looks up in the reader's
/// table (the others are given as [`RawKey::Text`]).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Lookup {
    /// Every event's.
    All,
    /// Invocations' only: a completion's key counts only when its
    /// invocation had none.
    Invocations,
}

/// The event on a line (see [`Canonical`]) written as faultline's
/// writer writes it: `{"index":..,"time":..,"process":..,"type":..,"f":..,
/// "key":..,"value":..}` with any of them left out, then fields of no
/// meaning to faultline whose values are scalars or flat arrays, no
/// whitespace. `None` for anything else: [`scan`] reads the line in full.
/// The same rules as [`scan`]; only the order and spelling are narrower.
///
/// `text` may go on after the line: the event and the length of its line
/// (up to the newline that ends it, or all of `text`) are returned, so that
/// a reader need not look for the line's end first.
pub(super) fn scan_canonical<'a>(
    text: &'a [u8],
    line: usize,
    names: &'a mut Vec<Arc<str>>,
    keys: &'a mut KeyCache,
    lookup: Lookup,
) -> Option<(RawEvent<'a>, usize)> {
    let mut c = Canonical { text, at: 0 };
    // The byte before the next field: `{` before the first, then `,`.
    let mut sep = b'{';
    let mut index = None;
    if c.field(&mut sep, b"\"index\":") {
        index = Some(u64::try_from(c.integer()?).ok()?);
    }
    let mut time = None;
    if c.field(&mut sep, b"\"time\":") && !c.eat(b"null") {
        time = Some(c.integer()?);
    }
    if !c.field(&mut sep, b"\"process\":") {
        return None;
    }
    let process = c.integer().filter(|&p| p >= 0)?;
    if !c.field(&mut sep, b"\"type\":") {
        return None;
    }
    // The four types, compared whole (quotes included) without a scan.
    let kind = if c.eat(b"\"invoke\"") {
        EventType::Invoke
    } else if c.eat(b"\"ok\"") {
        EventType::Ok
    } else if c.eat(b"\"fail\"") {
        EventType::Fail
    } else if c.eat(b"\"info\"") {
        EventType::Info
    } else {
        EventType::parse(std::str::from_utf8(c.string()?).ok()?)?
    };
    if !c.field(&mut sep, b"\"f\":") {
        return None;
    }
    let f = match c.known_name(names) {
        Some(at) => names.get(at).map(Held::Shared)?,
        None => shared_name_bytes(names, c.string()?)?,
    };
    let mut key = None;
    if c.field(&mut sep, b"\"key\":") {
        key = Some(if c.text.get(c.at) == Some(&b'"') {
            let text = c.string()?;
            match (lookup, kind) {
                (Lookup::Invocations, EventType::Ok | EventType::Fail | EventType::Info) => {
                    RawKey::Text(text)
                }
                _ => {
                    let end = c.at - 1;
                    RawKey::Held(keys.held(c.text, end - text.len()..end)?)
                }
            }
        } else {
            RawKey::Held(Held::Own(Arc::new(Value::from(c.integer()?))))
        });
    }
    let mut value = None;
    if c.field(&mut sep, b"\"value\":") {
        value = Some(c.value()?);
    }
    let mut extra: Option<Map<String, Value>> = None;
    while c.text.get(c.at) == Some(&b',') {
        c.at += 1;
        let name = std::str::from_utf8(c.string()?).ok()?;
        // A known field here is out of order or twice: the full scan
        // tells which.
        if field_bit(name) != 0 || !c.eat(b":") {
            return None;
        }
        let v = c.value()?;
        let extra = extra.get_or_insert_default();
        if extra.insert(name.to_string(), v).is_some() {
            return None;
        }
    }
    if !c.eat(b"}") || !matches!(text.get(c.at), None | Some(b'\n')) {
        return None;
    }
    let event = RawEvent {
        line,
        index,
        time,
        process,
        kind,
        f,
        key,
        has_value: value.is_some(),
        value: value.unwrap_or(Value::Null),
        extra,
    };
    Some((event, c.at))
}

/// The shared copy of the function name whose bytes are `name`, borrowed
/// (as [`super::json_event::shared_name`] shares it: a new copy when the
/// table is full); `None` when not UTF-8.
fn shared_name_bytes<'a>(names: &'a mut Vec<Arc<str>>, name: &[u8]) -> Option<Held<'a, str>> {
    let at = match names.iter().position(|a| a.as_bytes() == name) {
        Some(at) => at,
        None => {
            let own = super::json_event::shared_name(names, std::str::from_utf8(name).ok()?);
            match names.iter().position(|a| Arc::ptr_eq(a, &own)) {
                Some(at) => at,
                None => return Some(Held::Own(own)),
            }
        }
    };
    names.get(at).map(Held::Shared)
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
    // A line has no newline: the canonical scan takes all of it or none.
    if let Some((ev, _)) = scan_canonical(text, line, names, keys, Lookup::All) {
        return Some(ev.into_event());
    }
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
            s.skip_ws();
            let (name, bit) = match s.known_field() {
                Some(bit) => ("", bit),
                None => {
                    let name = s.string()?;
                    if !s.eat(b':') {
                        return None;
                    }
                    (name, field_bit(name))
                }
            };
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

    /// A key read in place packs as its bytes pack (the table is shared
    /// with keys given as text), at every length, with bytes after it or
    /// at the end of the text.
    #[test]
    fn keys_read_in_place_pack_as_their_bytes() {
        let text: Vec<u8> = (0..40u8).map(|i| b'a' + i % 26).collect();
        for start in 0..text.len() {
            for len in 0..=SHORT_KEY.min(text.len() - start) {
                let at = start..start + len;
                assert_eq!(pack_at(&text, at.clone()), pack(&text[at]), "{start} {len}");
            }
        }
        let a = pack_at(b"k1\",\"value\":1}", 0..2);
        assert_ne!(a, pack(b"k1\""), "the length is packed too");
        assert_ne!(pack(b"k1"), pack(b"k1\0"));
    }

    /// Lines the fast path accepts are decoded exactly as the general
    /// decoder decodes them; lines it refuses go to the general decoder.
    /// The canonical scan, where it answers, answers likewise.
    fn agrees(text: &str) -> bool {
        agrees_how(text).0
    }

    /// [`agrees`], and whether the canonical scan answered.
    fn agrees_how(text: &str) -> (bool, bool) {
        let text = text.trim_ascii().as_bytes();
        let (mut names, mut keys) = (Vec::new(), KeyCache::default());
        let fast = scan(text, 7, &mut names, &mut keys);
        let slow = EventParser::new().parse_general(text, 7);
        let canonical = scan_canonical(text, 7, &mut names, &mut keys, Lookup::Invocations)
            .map(|(ev, _)| ev.into_event());
        let shown = String::from_utf8_lossy(text);
        if let Some(ev) = &canonical {
            assert_eq!(
                Ok(ev),
                slow.as_ref(),
                "canonical and general decoders differ on {shown}"
            );
        }
        match fast {
            Some(ev) => {
                assert_eq!(Ok(ev), slow, "fast and general decoders differ on {shown}");
                (true, canonical.is_some())
            }
            None => {
                assert!(
                    canonical.is_none(),
                    "canonical answered, scan did not: {shown}"
                );
                (false, false)
            }
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
            // Names that start like the known fields are other fields.
            r#"{"process":0,"type":"ok","f":"read","indexx":1,"t":2,"ti":3,"types":"x","k":4,"keys":5,"v":6,"fx":7,"p":8}"#,
            // Integers of 18 digits, the most the fast path takes.
            r#"{"process":0,"type":"ok","f":"read","value":999999999999999999,"k":-100000000000000000}"#,
            // A known field written with spaces is still that field.
            r#"{"process" :0,"type":"ok", "f":"read","key" : "k1"}"#,
        ] {
            assert!(agrees(line), "{line} should take the fast path");
        }
    }

    /// Lines as faultline's writer writes them take the canonical scan;
    /// other spellings and orders of the same event do not, but still take
    /// the fast path.
    #[test]
    fn the_writer_s_lines_take_the_canonical_scan() {
        for line in [
            r#"{"index":0,"time":520916,"process":35,"type":"invoke","f":"write","key":"k391","value":1}"#,
            r#"{"index":2,"time":1217502,"process":43,"type":"invoke","f":"cas","key":"k957","value":[1,2]}"#,
            r#"{"index":222,"time":113870381,"process":0,"type":"info","f":"read","key":"k62","value":null,"error":"timeout"}"#,
            r#"{"process":0,"type":":ok","f":"read","key":-4,"value":[]}"#,
        ] {
            assert_eq!(agrees_how(line), (true, true), "{line}");
        }
        for line in [
            r#"{"process":35,"index":0,"type":"invoke","f":"write"}"#,
            r#"{"index":0, "process":35,"type":"invoke","f":"write"}"#,
            r#"{"process":35,"type":"invoke","f":"write","error":"x","value":1}"#,
            r#"{"process":0,"type":"ok","f":"read","key":"é","value":"日本"}"#,
        ] {
            assert_eq!(agrees_how(line), (true, false), "{line}");
        }
    }

    #[test]
    fn everything_else_goes_to_the_general_decoder() {
        for line in [
            // Integers beyond 64 bits, at the edges, -0, floats.
            r#"{"process":0,"type":"ok","f":"read","value":18446744073709551616}"#,
            r#"{"process":0,"type":"ok","f":"read","value":9223372036854775807}"#,
            r#"{"process":0,"type":"ok","f":"read","value":-0}"#,
            r#"{"process":0,"type":"ok","f":"read","value":1000000000000000000}"#,
            r#"{"process":0,"type":"ok","f":"read","value":-1000000000000000000}"#,
            r#"{"process":0,"type":"ok","f":"read","value":01}"#,
            r#"{"process":0,"type":"ok","f":"read","value":1.5}"#,
            r#"{"process":0,"type":"ok","f":"read","value":1e3}"#,
            // Duplicates, of known and of other fields.
            r#"{"process":0,"type":"ok","f":"read","f":"write"}"#,
            r#"{"process":0,"type":"ok","f":"read","x":1,"x":2}"#,
            r#"{"process":0,"type":"ok","f":"read","f" :"write"}"#,
            r#"{"process":0,"type":"ok","f":"read","key":1,"key":2}"#,
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

    /// Each key has one copy, whatever its length (packed or not), and
    /// keys that share a beginning stay apart.
    #[test]
    fn the_key_cache_gives_one_copy_per_key() {
        let mut c = KeyCache::default();
        let keys = [
            "",
            "k",
            "k1",
            "k10",
            "k1\u{1}",
            "é",
            "abcdefghijklmno",
            "abcdefghijklmnop",
            "abcdefghijklmnopq",
            "abcdefghijklmn",
        ];
        let first: Vec<Arc<Value>> = keys.iter().map(|k| c.get(k)).collect();
        for (k, v) in keys.iter().zip(&first) {
            assert_eq!(**v, Value::String(k.to_string()));
            assert!(Arc::ptr_eq(v, &c.get(k)), "{k:?} got a second copy");
        }
    }

    /// Function names are compared in place against the names seen so
    /// far; a name the general decoder learnt from escapes (or with bytes
    /// a plain string cannot hold) must not match its raw spelling.
    #[test]
    fn names_learnt_from_escapes_do_not_match_raw_text() {
        let mut names: Vec<Arc<str>> = ["a\"b", "a\\b", "x\u{1}y", "é", "cas"]
            .map(Arc::from)
            .into();
        let mut keys = KeyCache::default();
        for (line, takes) in [
            (r#"{"process":0,"type":"ok","f":"a"b"}"#, false),
            (r#"{"process":0,"type":"ok","f":"a\b"}"#, false),
            ("{\"process\":0,\"type\":\"ok\",\"f\":\"x\u{1}y\"}", false),
            (r#"{"process":0,"type":"ok","f":"é"}"#, false),
            (r#"{"process":0,"type":"ok","f":"cas"}"#, true),
            (r#"{"process":0,"type":"ok","f":"ca"}"#, true),
            (r#"{"process":0,"type":"ok","f":"cas"x"}"#, false),
            (r#"{"process":0,"type":"ok","f":xcas"}"#, false),
        ] {
            let got = scan_canonical(line.as_bytes(), 1, &mut names, &mut keys, Lookup::All);
            assert_eq!(got.is_some(), takes, "{line}");
            if let Some((ev, len)) = got {
                assert_eq!(len, line.len());
                let f = ev.f.arc().to_string();
                assert_eq!(format!("\"f\":\"{f}\"}}"), line[line.len() - f.len() - 7..]);
            }
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
            r#"{"index":3,"time":null,"process":7,"type":"info","f":"read","key":17,"value":null,"error":"timeout","node":[1,"n2",true]}"#,
            r#"{"process":70,"type":"ok","f":"write","key":"k12","value":-30}"#,
            // Strings longer than eight bytes, read eight at a time.
            r#"{"index":5,"process":3,"type":"invoke","f":"write-many","key":"key-of-twenty-1-bytes","value":"a value of twenty-five b","error":"timed out at last"}"#,
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
            "\"index\":",
            "\"ti\"",
            "\"type\"",
            "99999999999999999999",
            "é",
            // Control characters: never raw in a string.
            "\t",
            "\u{1f}",
            "\u{7f}",
        ];
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let (mut fast, mut canonical, mut total) = (0, 0, 0);
        for _ in 0..40_000 {
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
            let (f, c) = agrees_how(&text);
            fast += usize::from(f);
            canonical += usize::from(c);
        }
        assert!(
            fast > 1000 && fast < total,
            "{fast} of {total} took the fast path"
        );
        assert!(
            canonical > 1000 && canonical < fast,
            "{canonical} of {fast} fast ones took the canonical scan"
        );
    }
}
