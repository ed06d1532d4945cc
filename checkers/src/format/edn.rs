//! Jepsen and Knossos histories in EDN, and Porcupine's kv logs (which are
//! EDN too).
//!
//! Two layouts are read, and may be mixed:
//! - one op map per line, or several top-level op maps spread over any
//!   number of lines (Jepsen's `history.edn`, Porcupine's kv logs);
//! - one vector `[...]` or list `(...)` of op maps over many lines (Knossos).
//!
//! The EDN parser is written by hand and turns EDN values into JSON values:
//! keywords and symbols become strings (`:ok` is `"ok"`, `:a/b` is `"a/b"`),
//! sets and lists become arrays, `nil` is `null`, characters become
//! one-character strings, tagged literals (`#inst "..."`,
//! `#jepsen.history.Op{...}`) become the tagged value. See [`parse_value`]
//! for the details of odd constructs.
//!
//! Each op map becomes an [`Event`]: `:process`, `:type`, `:f`, `:key`,
//! `:value`, `:time` and `:index` are read into their fields, every other
//! field goes to [`Event::extra`].

use std::borrow::Cow;

use serde_json::{Map, Number, Value};

use crate::error::{HistoryError, HistoryErrorKind, cut_escaped, echo};
use crate::history::{
    CompletionsMode, Event, EventType, FailMeaning, History, HistoryBuilder, NilRead, Process,
    Semantics,
};

/// Deepest nesting of collections, tags and discards accepted (deeper input
/// is an error rather than a stack overflow).
const MAX_DEPTH: usize = 256;

/// An error at a line of the text being parsed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LineError {
    /// 1-based line.
    pub(crate) line: usize,
    /// The reason.
    pub(crate) kind: HistoryErrorKind,
}

impl LineError {
    /// Names `source` to make a [`HistoryError`].
    pub(crate) fn into_history_error(self, source: &str) -> HistoryError {
        HistoryError {
            file: source.to_string(),
            line: self.line,
            kind: self.kind,
        }
    }
}

type PResult<T> = Result<T, LineError>;

fn syntax<T>(line: usize, msg: impl Into<String>) -> PResult<T> {
    Err(LineError {
        line,
        kind: HistoryErrorKind::Syntax(msg.into()),
    })
}

/// Bytes that end a token (a symbol, keyword or number), as in Clojure's
/// reader: whitespace, commas and the terminating macro characters.
fn is_terminator(c: u8) -> bool {
    c.is_ascii_whitespace()
        || matches!(
            c,
            b',' | b'"'
                | b';'
                | b'@'
                | b'^'
                | b'`'
                | b'~'
                | b'('
                | b')'
                | b'['
                | b']'
                | b'{'
                | b'}'
                | b'\\'
        )
}

/// Bytes that may start a tag after `#`: a letter (EDN tags start with an
/// alphabetic character), ASCII or not.
fn is_tag_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c >= 0x80
}

/// The first `max` characters of `s`, control characters escaped, with an
/// ellipsis and the length when cut (see [`cut_escaped`]).
fn snippet(s: &str, max: usize) -> String {
    cut_escaped(s, max)
}

/// A hand-written EDN reader over a string, tracking lines.
///
/// Positions only ever stop on ASCII bytes or at the end of whole
/// characters, so every slice of `src` it takes is on a character boundary.
pub(crate) struct Parser<'a> {
    src: &'a str,
    b: &'a [u8],
    pos: usize,
    line: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    /// A parser of `src`, whose first line is line `first_line` of the input.
    pub(crate) fn new(src: &'a str, first_line: usize) -> Self {
        Parser {
            src,
            b: src.as_bytes(),
            pos: 0,
            line: first_line,
            depth: 0,
        }
    }

    /// The current line.
    pub(crate) fn line(&self) -> usize {
        self.line
    }

    /// The text not read yet.
    pub(crate) fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    /// Skips whitespace, comments and discarded forms, then tells whether
    /// the input is exhausted.
    pub(crate) fn at_end(&mut self) -> PResult<bool> {
        self.skip_ws()?;
        Ok(self.pos >= self.b.len())
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn peek_at(&self, off: usize) -> Option<u8> {
        self.b.get(self.pos + off).copied()
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return syntax(
                self.line,
                format!("EDN nested deeper than {MAX_DEPTH} levels"),
            );
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// Skips to the end of the line (not past the newline).
    fn skip_line(&mut self) {
        match self.b[self.pos..].iter().position(|&c| c == b'\n') {
            Some(n) => self.pos += n,
            None => self.pos = self.b.len(),
        }
    }

    /// Skips whitespace, commas, `;` comments, `#!` comments and `#_`
    /// discarded forms.
    pub(crate) fn skip_ws(&mut self) -> PResult<()> {
        loop {
            match self.peek() {
                Some(b'\n') => {
                    self.line += 1;
                    self.pos += 1;
                }
                Some(c) if c == b',' || c.is_ascii_whitespace() => self.pos += 1,
                Some(b';') => self.skip_line(),
                Some(b'#') => match self.peek_at(1) {
                    Some(b'!') => self.skip_line(),
                    Some(b'_') => {
                        let line = self.line;
                        self.pos += 2;
                        self.enter()?;
                        self.skip_ws()?;
                        if self.pos >= self.b.len() {
                            return syntax(line, "`#_` with nothing to discard");
                        }
                        self.parse_form()?;
                        self.leave();
                    }
                    _ => return Ok(()),
                },
                _ => return Ok(()),
            }
        }
    }

    /// Reads a token: up to the next whitespace, comma or terminating
    /// character.
    fn token(&mut self) -> &'a str {
        let start = self.pos;
        while self.pos < self.b.len() && !is_terminator(self.b[self.pos]) {
            self.pos += 1;
        }
        &self.src[start..self.pos]
    }

    /// The character at the current position (the input is `&str`, so the
    /// position is on a boundary).
    fn current_char(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    /// Reads one EDN form (after skipping whitespace and comments).
    pub(crate) fn parse_form(&mut self) -> PResult<Value> {
        self.skip_ws()?;
        let line = self.line;
        let Some(c) = self.peek() else {
            return syntax(line, "unexpected end of input");
        };
        match c {
            b'{' => {
                self.pos += 1;
                self.enter()?;
                let m = self.parse_map_body(line, None)?;
                self.leave();
                Ok(Value::Object(m))
            }
            b'[' | b'(' => {
                self.pos += 1;
                self.enter()?;
                let (close, what) = if c == b'[' {
                    (b']', "vector")
                } else {
                    (b')', "list")
                };
                let items = self.parse_seq(close, what, line)?;
                self.leave();
                Ok(Value::Array(items))
            }
            b'"' => self.parse_string().map(Value::String),
            b'\\' => self.parse_char().map(Value::String),
            b':' => {
                self.pos += 1;
                let name = self.token();
                if name.is_empty() {
                    return syntax(line, "`:` without a keyword name");
                }
                Ok(Value::String(name.to_string()))
            }
            b'#' => self.parse_dispatch(),
            b'^' => {
                // Metadata: read and drop it, keep the form it annotates.
                self.pos += 1;
                self.enter()?;
                self.parse_form()?;
                if self.at_end()? {
                    return syntax(line, "metadata `^` without a form to annotate");
                }
                let v = self.parse_form()?;
                self.leave();
                Ok(v)
            }
            b')' | b']' | b'}' => syntax(line, format!("unexpected `{}`", c as char)),
            b'0'..=b'9' => self.parse_number(),
            b'+' | b'-' if matches!(self.peek_at(1), Some(b'0'..=b'9')) => self.parse_number(),
            _ if is_terminator(c) => syntax(
                line,
                format!(
                    "unexpected character `{}`",
                    self.current_char().unwrap_or('?')
                ),
            ),
            _ => Ok(match self.token() {
                "nil" => Value::Null,
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                sym => Value::String(sym.to_string()),
            }),
        }
    }

    /// Reads the elements of a vector, list or set up to `close`; the
    /// opening bracket has been read on `open_line`.
    fn parse_seq(&mut self, close: u8, what: &str, open_line: usize) -> PResult<Vec<Value>> {
        let mut items = Vec::new();
        loop {
            self.skip_ws()?;
            match self.peek() {
                None => {
                    return syntax(
                        open_line,
                        format!("unterminated {what} (no closing `{}`)", close as char),
                    );
                }
                Some(c) if c == close => {
                    self.pos += 1;
                    return Ok(items);
                }
                Some(c @ (b')' | b']' | b'}')) => {
                    return syntax(
                        self.line,
                        format!(
                            "expected `{}` to close the {what} opened on line {open_line}, found `{}`",
                            close as char, c as char
                        ),
                    );
                }
                Some(_) => items.push(self.parse_form()?),
            }
        }
    }

    /// True when `c`, the current byte, starts a symbol (not a number, not
    /// a dispatch, not a keyword).
    fn at_symbol(&self, c: u8) -> bool {
        let number = c.is_ascii_digit()
            || (matches!(c, b'+' | b'-') && matches!(self.peek_at(1), Some(b'0'..=b'9')));
        !(is_terminator(c) || number || c == b'#' || c == b':')
    }

    /// Reads a map key (whitespace already skipped). Keywords, strings and
    /// symbols give their name; any other form gives its EDN text. The flag
    /// tells whether the key was a keyword.
    fn parse_key(&mut self) -> PResult<(Cow<'a, str>, bool)> {
        let start = self.pos;
        let line = self.line;
        match self.peek() {
            Some(b':') => {
                self.pos += 1;
                let name = self.token();
                if name.is_empty() {
                    return syntax(line, "`:` without a keyword name");
                }
                Ok((Cow::Borrowed(name), true))
            }
            Some(b'"') => Ok((Cow::Owned(self.parse_string()?), false)),
            Some(c) if self.at_symbol(c) => Ok((Cow::Borrowed(self.token()), false)),
            _ => {
                self.parse_form()?;
                Ok((Cow::Borrowed(&self.src[start..self.pos]), false))
            }
        }
    }

    /// Reads the pairs of a map up to `}`; `{` has been read on `open_line`.
    /// `ns` is the namespace of a `#:ns{...}` map.
    fn parse_map_body(
        &mut self,
        open_line: usize,
        ns: Option<&str>,
    ) -> PResult<Map<String, Value>> {
        let mut m = Map::new();
        loop {
            let key_line = match self.map_next(open_line)? {
                Some(line) => line,
                None => return Ok(m),
            };
            let (key, keyword) = self.parse_key()?;
            self.map_value_ahead(open_line, key_line, &key)?;
            let v = self.parse_form()?;
            let key = match ns {
                Some(ns) if keyword && !ns.is_empty() => match key.strip_prefix("_/") {
                    Some(bare) => bare.to_string(),
                    None if key.contains('/') => key.into_owned(),
                    None => format!("{ns}/{key}"),
                },
                _ => key.into_owned(),
            };
            if m.contains_key(&key) {
                return Err(LineError {
                    line: key_line,
                    kind: HistoryErrorKind::DuplicateKey(echo(&key)),
                });
            }
            m.insert(key, v);
        }
    }

    /// Inside a map: skips whitespace, consumes `}` and returns `None` at the
    /// end of the map, or returns the line of the next key.
    fn map_next(&mut self, open_line: usize) -> PResult<Option<usize>> {
        self.skip_ws()?;
        match self.peek() {
            None => syntax(open_line, "unterminated map (no closing `}`)"),
            Some(b'}') => {
                self.pos += 1;
                Ok(None)
            }
            Some(c @ (b')' | b']')) => syntax(
                self.line,
                format!(
                    "expected `}}` to close the map opened on line {open_line}, found `{}`",
                    c as char
                ),
            ),
            Some(_) => Ok(Some(self.line)),
        }
    }

    /// Inside a map, after a key: checks that a value follows.
    fn map_value_ahead(&mut self, open_line: usize, key_line: usize, key: &str) -> PResult<()> {
        self.skip_ws()?;
        match self.peek() {
            None => syntax(open_line, "unterminated map (no closing `}`)"),
            Some(b'}') => syntax(
                key_line,
                format!("map key `{}` has no value", snippet(key, 40)),
            ),
            Some(_) => Ok(()),
        }
    }

    /// Reads a string literal (at its opening quote).
    fn parse_string(&mut self) -> PResult<String> {
        let start_line = self.line;
        self.pos += 1;
        let mut out = String::new();
        let mut seg = self.pos;
        loop {
            let Some(off) = self.b[self.pos..]
                .iter()
                .position(|&c| c == b'"' || c == b'\\' || c == b'\n')
            else {
                return syntax(start_line, "unterminated string");
            };
            self.pos += off;
            match self.b[self.pos] {
                b'\n' => {
                    self.line += 1;
                    self.pos += 1;
                }
                b'"' => {
                    out.push_str(&self.src[seg..self.pos]);
                    self.pos += 1;
                    return Ok(out);
                }
                _ => {
                    out.push_str(&self.src[seg..self.pos]);
                    self.pos += 1;
                    self.parse_escape(start_line, &mut out)?;
                    seg = self.pos;
                }
            }
        }
    }

    /// Reads the escape after a backslash inside a string.
    fn parse_escape(&mut self, start_line: usize, out: &mut String) -> PResult<()> {
        let line = self.line;
        let Some(c) = self.peek() else {
            return syntax(start_line, "unterminated string");
        };
        self.pos += 1;
        match c {
            b'n' => out.push('\n'),
            b't' => out.push('\t'),
            b'r' => out.push('\r'),
            b'b' => out.push('\u{8}'),
            b'f' => out.push('\u{c}'),
            b'"' => out.push('"'),
            b'\\' => out.push('\\'),
            b'u' => {
                let Some(hi) = self.hex4() else {
                    return syntax(
                        line,
                        "invalid `\\u` escape in string (expected 4 hex digits)",
                    );
                };
                if (0xD800..0xDC00).contains(&hi)
                    && self.peek() == Some(b'\\')
                    && self.peek_at(1) == Some(b'u')
                {
                    let save = self.pos;
                    self.pos += 2;
                    match self.hex4() {
                        Some(lo) if (0xDC00..0xE000).contains(&lo) => {
                            let cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                            out.push(char::from_u32(cp).unwrap_or('\u{FFFD}'));
                            return Ok(());
                        }
                        _ => self.pos = save,
                    }
                }
                out.push(char::from_u32(hi).unwrap_or('\u{FFFD}'));
            }
            b'0'..=b'7' => {
                // Clojure's octal escape: up to three digits, at most \377.
                let mut v = u32::from(c - b'0');
                for _ in 0..2 {
                    match self.peek() {
                        Some(d @ b'0'..=b'7') if v * 8 + u32::from(d - b'0') <= 0o377 => {
                            v = v * 8 + u32::from(d - b'0');
                            self.pos += 1;
                        }
                        _ => break,
                    }
                }
                out.push(char::from_u32(v).unwrap_or('\u{FFFD}'));
            }
            b'\n' => {
                return syntax(line, "invalid escape `\\` at the end of a line in string");
            }
            _ => {
                self.pos -= 1;
                let ch = self.current_char().unwrap_or('?');
                return syntax(line, format!("invalid escape `\\{ch}` in string"));
            }
        }
        Ok(())
    }

    /// Reads four hex digits.
    fn hex4(&mut self) -> Option<u32> {
        let digits = self.b.get(self.pos..self.pos + 4)?;
        let mut v = 0u32;
        for &d in digits {
            v = v * 16 + char::from(d).to_digit(16)?;
        }
        self.pos += 4;
        Some(v)
    }

    /// Reads a character literal (at its backslash).
    fn parse_char(&mut self) -> PResult<String> {
        let line = self.line;
        self.pos += 1;
        let Some(c) = self.current_char() else {
            return syntax(line, "`\\` at the end of input (character literal)");
        };
        if c == '\n' {
            self.line += 1;
        }
        let start = self.pos;
        self.pos += c.len_utf8();
        if !c.is_ascii_alphanumeric() {
            return Ok(c.to_string());
        }
        while self.pos < self.b.len() && !is_terminator(self.b[self.pos]) {
            self.pos += 1;
        }
        let name = &self.src[start..self.pos];
        if name.len() == 1 {
            return Ok(name.to_string());
        }
        let named = match name {
            "newline" => Some('\n'),
            "space" => Some(' '),
            "tab" => Some('\t'),
            "return" => Some('\r'),
            "backspace" => Some('\u{8}'),
            "formfeed" => Some('\u{c}'),
            _ => {
                if let Some(hex) = name.strip_prefix('u').filter(|h| h.len() == 4) {
                    u32::from_str_radix(hex, 16).ok().and_then(char::from_u32)
                } else if let Some(oct) = name
                    .strip_prefix('o')
                    .filter(|o| (1..=3).contains(&o.len()))
                {
                    u32::from_str_radix(oct, 8)
                        .ok()
                        .filter(|&v| v <= 0o377)
                        .and_then(char::from_u32)
                } else {
                    None
                }
            }
        };
        match named {
            Some(ch) => Ok(ch.to_string()),
            None => syntax(
                line,
                format!("unknown character literal `\\{}`", snippet(name, 40)),
            ),
        }
    }

    /// Reads a number token.
    fn parse_number(&mut self) -> PResult<Value> {
        let line = self.line;
        let tok = self.token();
        match number_value(tok) {
            Ok(v) => Ok(v),
            Err(NumberError::OutOfRange) => Err(LineError {
                line,
                kind: HistoryErrorKind::IntegerOutOfRange(echo(tok)),
            }),
            Err(NumberError::Invalid) => {
                syntax(line, format!("invalid number `{}`", snippet(tok, 40)))
            }
        }
    }

    /// Reads a `#` dispatch: set, tagged literal, symbolic value, regex or
    /// namespaced map (`#_` and `#!` are handled by [`Parser::skip_ws`]).
    fn parse_dispatch(&mut self) -> PResult<Value> {
        let line = self.line;
        match self.peek_at(1) {
            Some(b'{') => {
                self.pos += 2;
                self.enter()?;
                let items = self.parse_seq(b'}', "set", line)?;
                self.leave();
                Ok(Value::Array(items))
            }
            Some(b'#') => {
                self.pos += 2;
                let tok = self.token();
                match tok {
                    "Inf" | "-Inf" | "NaN" => Ok(Value::String(format!("##{tok}"))),
                    _ => syntax(
                        line,
                        format!("unknown symbolic value `##{}`", snippet(tok, 40)),
                    ),
                }
            }
            Some(b'"') => {
                // A regex literal: its text, backslashes kept.
                self.pos += 2;
                let start = self.pos;
                loop {
                    match self.peek() {
                        None => return syntax(line, "unterminated regex literal"),
                        Some(b'"') => break,
                        Some(b'\\') => {
                            self.pos += 1;
                            if self.peek() == Some(b'\n') {
                                self.line += 1;
                            }
                            if self.peek().is_some() {
                                self.pos += 1;
                            }
                        }
                        Some(b'\n') => {
                            self.line += 1;
                            self.pos += 1;
                        }
                        Some(_) => self.pos += 1,
                    }
                }
                // Stepping byte by byte may stop inside a multi-byte
                // character only between the quotes; the closing quote is
                // ASCII, so this slice is on boundaries.
                let text = &self.src[start..self.pos];
                self.pos += 1;
                Ok(Value::String(text.to_string()))
            }
            Some(b':') => {
                self.pos += 2;
                let ns = self.token();
                self.skip_ws()?;
                if self.peek() != Some(b'{') {
                    return syntax(line, format!("expected `{{` after `#:{}`", snippet(ns, 40)));
                }
                let open_line = self.line;
                self.pos += 1;
                self.enter()?;
                let ns = ns.strip_prefix(':').unwrap_or(ns);
                let m = self.parse_map_body(open_line, Some(ns))?;
                self.leave();
                Ok(Value::Object(m))
            }
            Some(c) if is_tag_start(c) => {
                self.pos += 1;
                let tag = self.token();
                self.enter()?;
                if self.at_end()? {
                    return syntax(line, format!("tag `#{}` without a value", snippet(tag, 40)));
                }
                let v = self.parse_form()?;
                self.leave();
                Ok(v)
            }
            None => syntax(line, "`#` at the end of input"),
            Some(_) => {
                self.pos += 1;
                let ch = self.current_char().unwrap_or('?');
                syntax(line, format!("invalid dispatch `#{ch}`"))
            }
        }
    }

    /// Reads one op (an op map, possibly tagged as in
    /// `#jepsen.history.Op{...}`) into an event. Whitespace must have been
    /// skipped.
    fn parse_op(&mut self) -> PResult<Event> {
        let line = self.line;
        // Tags before the map (`#jepsen.history.Op{...}`) are dropped.
        while self.peek() == Some(b'#') && self.peek_at(1).is_some_and(is_tag_start) {
            self.pos += 1;
            self.token();
            self.skip_ws()?;
        }
        match self.peek() {
            Some(b'{') => self.parse_op_map(),
            None => syntax(line, "a tag without an op map after it"),
            Some(c @ (b')' | b']' | b'}')) => {
                syntax(self.line, format!("unexpected `{}`", c as char))
            }
            Some(b'#') if self.peek_at(1) == Some(b'{') => syntax(
                self.line,
                "expected an op map `{...}`, found a set `#{...}`",
            ),
            Some(_) => {
                let start = self.pos;
                let line = self.line;
                self.parse_form()?;
                let text = self.src[start..self.pos].trim();
                syntax(
                    line,
                    format!(
                        "expected an op map `{{...}}`, found `{}`",
                        snippet(text, 40)
                    ),
                )
            }
        }
    }

    /// Reads an op map (at its `{`) into an event whose line is the line of
    /// the `{`.
    pub(crate) fn parse_op_map(&mut self) -> PResult<Event> {
        let line = self.line;
        self.pos += 1;
        self.enter()?;
        let mut process: Option<(Value, &'a str)> = None;
        let mut kind: Option<(Value, &'a str)> = None;
        let mut f: Option<(Value, &'a str)> = None;
        let mut time: Option<(Value, &'a str)> = None;
        let mut index: Option<(Value, &'a str)> = None;
        let mut key = None;
        let mut value = None;
        let mut extra = Map::new();
        while let Some(key_line) = self.map_next(line)? {
            let (name, _) = self.parse_key()?;
            self.map_value_ahead(line, key_line, &name)?;
            let start = self.pos;
            let v = self.parse_form()?;
            let text = &self.src[start..self.pos];
            let seen = match &*name {
                "process" => process.replace((v, text)).is_some(),
                "type" => kind.replace((v, text)).is_some(),
                "f" => f.replace((v, text)).is_some(),
                "time" => time.replace((v, text)).is_some(),
                "index" => index.replace((v, text)).is_some(),
                "key" => key.replace(v).is_some(),
                "value" => value.replace(v).is_some(),
                _ => extra.insert(name.to_string(), v).is_some(),
            };
            if seen {
                return Err(LineError {
                    line: key_line,
                    kind: HistoryErrorKind::DuplicateKey(echo(&name)),
                });
            }
        }
        self.leave();
        let field_err = |kind| LineError { line, kind };
        let process = match process {
            Some((v, text)) => to_process(v, text).map_err(field_err)?,
            None => return Err(field_err(HistoryErrorKind::MissingField("process"))),
        };
        let kind = match kind {
            Some((v, text)) => to_type(v, text).map_err(field_err)?,
            None => return Err(field_err(HistoryErrorKind::MissingField("type"))),
        };
        let f = match f {
            Some((Value::Null, _)) | None => match process {
                Process::Other(_) => String::new(),
                Process::Client(_) => return Err(field_err(HistoryErrorKind::MissingField("f"))),
            },
            Some((v, text)) => to_name(v, text),
        };
        let time = match time {
            None | Some((Value::Null, _)) => None,
            Some((Value::Number(n), _)) => match n.as_i64() {
                Some(t) => Some(t),
                // Saturating: a float time is truncated, out-of-range clamps.
                None => n.as_f64().map(|t| t as i64),
            },
            Some((_, text)) => {
                return Err(field_err(HistoryErrorKind::BadField {
                    field: "time",
                    reason: format!("expected an integer, found `{}`", snippet(text.trim(), 40)),
                }));
            }
        };
        let index = match index {
            None | Some((Value::Null, _)) => None,
            Some((v, text)) => Some(to_index(&v, text).map_err(field_err)?),
        };
        Ok(Event {
            line,
            index,
            time,
            process,
            kind,
            f: f.into(),
            key: key.map(std::sync::Arc::new),
            has_value: value.is_some(),
            value: value.unwrap_or(Value::Null),
            extra,
        })
    }
}

/// The process of an op: an integer is a client (from 0 to 2^63-1, else an
/// error); anything else (`:nemesis`, a string...) is another process named
/// by its text.
pub(crate) fn to_process(v: Value, text: &str) -> Result<Process, HistoryErrorKind> {
    match v {
        Value::Number(n) if n.is_f64() => Ok(Process::Other(text.trim().to_string())),
        Value::Number(n) => match n.as_i64().filter(|&p| p >= 0) {
            Some(p) => Ok(Process::Client(p)),
            None => Err(HistoryErrorKind::BadField {
                field: "process",
                reason: format!(
                    "process out of range: {} (a client process is an integer from 0 to 2^63-1)",
                    echo(text.trim())
                ),
            }),
        },
        Value::String(s) => Ok(Process::Other(s)),
        _ => Ok(Process::Other(text.trim().to_string())),
    }
}

/// The `index` of an op: an integer from 0 to 2^63-1.
pub(crate) fn to_index(v: &Value, text: &str) -> Result<u64, HistoryErrorKind> {
    match v.as_i64() {
        Some(i) if i >= 0 => Ok(i as u64),
        _ => Err(HistoryErrorKind::BadField {
            field: "index",
            reason: format!(
                "expected an integer from 0 to 2^63-1, found `{}`",
                echo(text.trim())
            ),
        }),
    }
}

/// The type of an op: a keyword, symbol or string naming invoke, ok, fail or
/// info.
pub(crate) fn to_type(v: Value, text: &str) -> Result<EventType, HistoryErrorKind> {
    match v {
        Value::String(s) => EventType::parse(&s).ok_or(HistoryErrorKind::UnknownType(s)),
        _ => Err(HistoryErrorKind::UnknownType(snippet(text.trim(), 40))),
    }
}

/// A name (such as `:f`): a keyword, symbol or string gives its name, any
/// other value its EDN text.
pub(crate) fn to_name(v: Value, text: &str) -> String {
    match v {
        Value::String(s) => s,
        _ => text.trim().to_string(),
    }
}

/// Why a token is not a number faultline keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NumberError {
    /// Not a number.
    Invalid,
    /// An integer outside `[-2^63, 2^64-1]`.
    OutOfRange,
}

/// The JSON value of an EDN number token.
///
/// Integers from -2^63 to 2^64-1 are kept exactly (`i64`, or `u64` above
/// `i64::MAX`), as in the JSON reader; `-0` is the integer 0; an integer
/// outside that range is an error ([`NumberError::OutOfRange`]): values are
/// compared exactly, and a float would make distinct integers equal. A
/// float too large for `f64` is kept as its text (a string).
fn number_value(tok: &str) -> Result<Value, NumberError> {
    use NumberError::{Invalid, OutOfRange};
    let (neg, body) = match tok.as_bytes().first() {
        Some(b'-') => (true, &tok[1..]),
        Some(b'+') => (false, &tok[1..]),
        _ => (false, tok),
    };
    let as_value = |v: f64| match Number::from_f64(v) {
        Some(n) => Value::Number(n),
        None => Value::String(tok.to_string()),
    };
    let float = |s: &str| -> Result<Value, NumberError> {
        if s.is_empty()
            || !s.as_bytes()[0].is_ascii_digit()
            || !s
                .bytes()
                .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
        {
            return Err(Invalid);
        }
        let v: f64 = s.parse().map_err(|_| Invalid)?;
        Ok(as_value(if neg { -v } else { v }))
    };
    let int = |s: &str, radix: u32| -> Result<Value, NumberError> {
        if s.is_empty() || !s.bytes().all(|c| char::from(c).is_digit(radix)) {
            return Err(Invalid);
        }
        // The digits are valid: the only failure left is overflow.
        match u64::from_str_radix(s, radix) {
            Ok(v) if !neg && v <= i64::MAX as u64 => Ok(Value::from(v as i64)),
            Ok(v) if !neg => Ok(Value::from(v)),
            Ok(v) if v <= 1u64 << 63 => Ok(Value::from((-i128::from(v)) as i64)),
            _ => Err(OutOfRange),
        }
    };
    if let Some(hex) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        return int(hex.strip_suffix('N').unwrap_or(hex), 16);
    }
    if let Some(big) = body.strip_suffix('N') {
        return int(big, 10);
    }
    if let Some(dec) = body.strip_suffix('M') {
        return float(dec);
    }
    if let Some((n, d)) = body.split_once('/') {
        // A Clojure ratio, as a float.
        let digits = |s: &str| -> Result<f64, NumberError> {
            if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
                return Err(Invalid);
            }
            s.parse().map_err(|_| Invalid)
        };
        let r = digits(n)? / digits(d)?;
        return Ok(as_value(if neg { -r } else { r }));
    }
    if body.contains(['.', 'e', 'E']) {
        return float(body);
    }
    int(body, 10)
}

/// Parses `text` as exactly one EDN value (see the module documentation for
/// how EDN maps onto JSON). `source` names the input in errors.
///
/// Odd constructs: sets and lists are arrays; characters are one-character
/// strings (`\newline` is `"\n"`); `#_` discards the next form; a tagged
/// literal is its value; metadata `^...` is dropped; `##Inf` is the string
/// `"##Inf"`; a regex `#"..."` is its text; `123N` is an integer and `1.5M`
/// a float; ratios `1/3` are floats; map keys that are not keywords, strings
/// or symbols are rendered as their EDN text (`{[1 2] :a}` has the key
/// `"[1 2]"`); a key that repeats in one map is an error; an integer
/// outside `[-2^63, 2^64-1]` is an error.
pub fn parse_value(source: &str, text: &str) -> Result<Value, HistoryError> {
    let mut p = Parser::new(text, 1);
    let run = |p: &mut Parser<'_>| -> PResult<Value> {
        if p.at_end()? {
            return syntax(p.line(), "no EDN value");
        }
        let v = p.parse_form()?;
        if !p.at_end()? {
            let rest = p.rest();
            return syntax(
                p.line(),
                format!("unexpected `{}` after the value", snippet(rest, 20)),
            );
        }
        Ok(v)
    };
    run(&mut p).map_err(|e| e.into_history_error(source))
}

/// Calls `sink` with each op of an EDN history, in file order.
fn for_each_event(
    source: &str,
    text: &str,
    mut sink: impl FnMut(Event) -> Result<(), HistoryError>,
) -> Result<(), HistoryError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut p = Parser::new(text, 1);
    let err = |e: LineError| e.into_history_error(source);
    loop {
        p.skip_ws().map_err(err)?;
        match p.peek() {
            None => return Ok(()),
            Some(open @ (b'[' | b'(')) => {
                let (close, what) = if open == b'[' {
                    (b']', "vector")
                } else {
                    (b')', "list")
                };
                let open_line = p.line;
                p.pos += 1;
                loop {
                    p.skip_ws().map_err(err)?;
                    match p.peek() {
                        None => {
                            return Err(err(LineError {
                                line: open_line,
                                kind: HistoryErrorKind::Syntax(format!(
                                    "unterminated {what} of ops (no closing `{}`)",
                                    close as char
                                )),
                            }));
                        }
                        Some(c) if c == close => {
                            p.pos += 1;
                            break;
                        }
                        Some(c @ (b')' | b']' | b'}')) => {
                            return Err(err(LineError {
                                line: p.line,
                                kind: HistoryErrorKind::Syntax(format!(
                                    "expected `{}` to close the {what} opened on line {open_line}, found `{}`",
                                    close as char, c as char
                                )),
                            }));
                        }
                        Some(_) => sink(p.parse_op().map_err(err)?)?,
                    }
                }
            }
            Some(_) => sink(p.parse_op().map_err(err)?)?,
        }
    }
}

/// Parses an EDN history into its events, in file order, without pairing
/// them (for checkers that read histories of completions only). An input
/// without any op gives an empty vector.
pub fn events(source: &str, text: &str) -> Result<Vec<Event>, HistoryError> {
    let mut out = Vec::new();
    for_each_event(source, text, |ev| {
        out.push(ev);
        Ok(())
    })?;
    Ok(out)
}

/// The semantics of EDN histories: Knossos's (a `nil` read is unknown), or
/// Porcupine's kv store's (a `nil` read is absent, every key starts as `""`).
pub fn semantics(porcupine_kv: bool) -> Semantics {
    if porcupine_kv {
        Semantics {
            nil_read: NilRead::Absent,
            fail: FailMeaning::NotApplied,
            default_initial: Some(Value::String(String::new())),
        }
    } else {
        Semantics {
            nil_read: NilRead::Unknown,
            fail: FailMeaning::NotApplied,
            default_initial: None,
        }
    }
}

/// True when the first op map of `text` (within its first lines) looks like
/// Porcupine's kv logs: it has a `:key` and its `:f` is get, put or append.
/// Only one line is parsed, so this is cheap.
pub fn looks_like_porcupine_kv(text: &str) -> bool {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for line in text.lines().take(20) {
        let l = line
            .trim_start()
            .trim_start_matches(['[', '('])
            .trim_start();
        if l.is_empty() || l.starts_with(';') {
            continue;
        }
        if !l.starts_with('{') {
            return false;
        }
        let mut p = Parser::new(l, 1);
        return match p.parse_op_map() {
            Ok(ev) => ev.key.is_some() && matches!(&*ev.f, "get" | "put" | "append"),
            Err(_) => false,
        };
    }
    false
}

/// Reads an EDN history: Jepsen/Knossos (`porcupine_kv == false`) or
/// Porcupine's kv logs (`true`), which differ only in their
/// [`semantics`].
pub fn read(source: &str, text: &str, porcupine_kv: bool) -> Result<History, HistoryError> {
    read_with(source, text, porcupine_kv, CompletionsMode::Require)
}

/// [`read`], with the given treatment of completions without invocation.
pub fn read_with(
    source: &str,
    text: &str,
    porcupine_kv: bool,
    mode: CompletionsMode,
) -> Result<History, HistoryError> {
    let mut b = HistoryBuilder::new(source, semantics(porcupine_kv)).completions_mode(mode);
    for_each_event(source, text, |ev| b.push(ev))?;
    if b.events() == 0 {
        return Err(b.error(0, HistoryErrorKind::Empty));
    }
    Ok(b.finish())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::format::{Format, read_path};
    use crate::history::Outcome;
    use serde_json::json;
    use std::path::{Path, PathBuf};

    fn v(s: &str) -> Value {
        match parse_value("t.edn", s) {
            Ok(v) => v,
            Err(e) => panic!("{s:?}: {e}"),
        }
    }

    fn verr(s: &str) -> HistoryError {
        match parse_value("t.edn", s) {
            Ok(v) => panic!("{s:?} parsed as {v}"),
            Err(e) => e,
        }
    }

    fn read_str(s: &str) -> Result<History, HistoryError> {
        read("t.edn", s, false)
    }

    /// Asserts that `text` fails at `line` with a message containing `what`.
    #[track_caller]
    fn fails_at(text: &str, line: usize, what: &str) -> HistoryError {
        let e = match read_str(text) {
            Ok(h) => panic!("{text:?} was read: {} ops", h.len()),
            Err(e) => e,
        };
        assert_eq!(e.line, line, "{text:?}: {e}");
        let msg = e.to_string();
        assert!(msg.starts_with(&format!("t.edn:{line}: ")), "{msg}");
        assert!(msg.contains(what), "{text:?}: {msg}");
        e
    }

    #[test]
    fn scalars() {
        assert_eq!(v("nil"), Value::Null);
        assert_eq!(v("true"), json!(true));
        assert_eq!(v("false"), json!(false));
        assert_eq!(v(":ok"), json!("ok"));
        assert_eq!(v(":a/b"), json!("a/b"));
        assert_eq!(v(":timed-out"), json!("timed-out"));
        assert_eq!(v("::auto"), json!(":auto"));
        assert_eq!(v("x"), json!("x"));
        assert_eq!(v("com.mongodb.Foo"), json!("com.mongodb.Foo"));
        assert_eq!(v("a/b"), json!("a/b"));
        assert_eq!(v("-"), json!("-"));
        assert_eq!(v("+"), json!("+"));
        assert_eq!(v("foo'"), json!("foo'"));
        assert_eq!(v("nil?"), json!("nil?"));
        assert_eq!(v("é"), json!("é"));
    }

    #[test]
    fn numbers() {
        assert_eq!(v("0"), json!(0));
        assert_eq!(v("123"), json!(123));
        assert_eq!(v("-7"), json!(-7));
        assert_eq!(v("+5"), json!(5));
        assert_eq!(v("123N"), json!(123));
        assert_eq!(v("-4N"), json!(-4));
        assert_eq!(v("9223372036854775807"), json!(i64::MAX));
        assert_eq!(v("-9223372036854775808"), json!(i64::MIN));
        assert_eq!(v("18446744073709551615"), json!(u64::MAX));
        assert_eq!(v("-0"), json!(0));
        assert_eq!(v("-0N"), json!(0));
        assert_eq!(v("0xFFFFFFFFFFFFFFFF"), json!(u64::MAX));
        // Beyond 64 bits: an error, never a float that equals its neighbours.
        for big in [
            "-9223372036854775809",
            "18446744073709551616",
            "100000000000000000000000N",
            "0x10000000000000000",
        ] {
            let e = verr(big);
            assert_eq!(
                e.to_string(),
                format!(
                    "t.edn:1: integer {big} is out of range (faultline compares values exactly, \
                     within 64 bits)"
                )
            );
        }
        let e = verr(&format!("[1\n{}]", "9".repeat(400)));
        assert_eq!(e.line, 2);
        assert!(e.to_string().contains("… (400 bytes)"), "{e}");
        assert!(e.to_string().len() < 250, "{e}");
        assert_eq!(v("1.5"), json!(1.5));
        assert_eq!(v("-2.5e3"), json!(-2500.0));
        assert_eq!(v("1E2"), json!(100.0));
        assert_eq!(v("1.5M"), json!(1.5));
        assert_eq!(v("3M"), json!(3.0));
        assert_eq!(v("1e999"), json!("1e999"));
        assert_eq!(v("1/2"), json!(0.5));
        assert_eq!(v("-1/4"), json!(-0.25));
        assert_eq!(v("1/0"), json!("1/0"));
        assert_eq!(v("0x1F"), json!(31));
        assert_eq!(v("-0x10"), json!(-16));
        assert_eq!(v("[1 -2 3.0]"), json!([1, -2, 3.0]));
        for bad in ["12abc", "1.2.3x", "1e", "0x", "1/x", "5NN", "1-2"] {
            let e = verr(bad);
            assert!(e.to_string().contains("invalid number"), "{bad}: {e}");
        }
    }

    #[test]
    fn strings_and_chars() {
        assert_eq!(v(r#""plain""#), json!("plain"));
        assert_eq!(
            v(r#""a\"b\\c\nd\te\r\u00e9\b\f""#),
            json!("a\"b\\c\nd\te\ré\u{8}\u{c}")
        );
        assert_eq!(v(r#""\ud83d\ude00""#), json!("😀"));
        assert_eq!(v(r#""\ud83d""#), json!("\u{FFFD}"));
        assert_eq!(v(r#""\101\0""#), json!("A\u{0}"));
        assert_eq!(v("\"two\nlines\""), json!("two\nlines"));
        assert_eq!(v("\"ünï\""), json!("ünï"));
        assert_eq!(v(r"\a"), json!("a"));
        assert_eq!(v(r"\Z"), json!("Z"));
        assert_eq!(v(r"\7"), json!("7"));
        assert_eq!(v(r"\newline"), json!("\n"));
        assert_eq!(v(r"\space"), json!(" "));
        assert_eq!(v(r"\tab"), json!("\t"));
        assert_eq!(v(r"\return"), json!("\r"));
        assert_eq!(v(r"\u00e9"), json!("é"));
        assert_eq!(v(r"\o101"), json!("A"));
        assert_eq!(v(r"\("), json!("("));
        assert_eq!(v(r"\\"), json!("\\"));
        assert_eq!(v(r"\é"), json!("é"));
        assert_eq!(v(r"[\a \b,\c]"), json!(["a", "b", "c"]));
        assert_eq!(v(r#"[\" "x"]"#), json!(["\"", "x"]));
        assert!(
            verr(r"\foo")
                .to_string()
                .contains("unknown character literal `\\foo`")
        );
        assert!(
            verr(r#""bad \q""#)
                .to_string()
                .contains("invalid escape `\\q`")
        );
        assert!(verr(r#""bad \u12""#).to_string().contains("\\u"));
    }

    #[test]
    fn collections() {
        assert_eq!(v("[]"), json!([]));
        assert_eq!(v("()"), json!([]));
        assert_eq!(v("{}"), json!({}));
        assert_eq!(v("#{}"), json!([]));
        assert_eq!(v("[1 [2 (3)] #{4}]"), json!([1, [2, [3]], [4]]));
        assert_eq!(v("(:a, :b,,, :c)"), json!(["a", "b", "c"]));
        assert_eq!(
            v(r#"{:a 1, "b" 2, c 3, :d/e {:f [nil]}}"#),
            json!({"a": 1, "b": 2, "c": 3, "d/e": {"f": [null]}})
        );
        // Keys that are neither keywords, strings nor symbols: their EDN text.
        assert_eq!(
            v(r#"{[1 2] :v, 5 :i, nil :n, #{:x} :s, \c :ch, {:k 1} :m}"#),
            json!({"[1 2]": "v", "5": "i", "nil": "n", "#{:x}": "s", "\\c": "ch", "{:k 1}": "m"})
        );
        // A repeated key is an error naming it and its line.
        let e = verr("{:a 1\n :a 2}");
        assert_eq!(e.to_string(), "t.edn:2: duplicate key `a` in one map");
        assert_eq!(
            v(r#"[:isolated {"n1" #{"n2" "n3"}}]"#),
            json!(["isolated", {"n1": ["n2", "n3"]}])
        );
    }

    #[test]
    fn comments_discards_tags_and_odd_forms() {
        assert_eq!(v("[1 ; a comment\n 2]"), json!([1, 2]));
        assert_eq!(v("; lead\n:x ; trail"), json!("x"));
        assert_eq!(v("#! shebang\n[1]"), json!([1]));
        assert_eq!(v("[1 #_2 3]"), json!([1, 3]));
        assert_eq!(v("[1 #_ #_ 2 3 4]"), json!([1, 4]));
        assert_eq!(v("[1 #_[2 {:x 3}] 4]"), json!([1, 4]));
        assert_eq!(v("{:a #_:b 1}"), json!({"a": 1}));
        assert_eq!(v("#_ :gone :kept"), json!("kept"));
        assert_eq!(
            v(r#"#inst "2015-01-01T00:00:00Z""#),
            json!("2015-01-01T00:00:00Z")
        );
        assert_eq!(
            v(r#"#uuid "f81d4fae-7dec-11d0-a765-00a0c91e6bf6""#),
            json!("f81d4fae-7dec-11d0-a765-00a0c91e6bf6")
        );
        assert_eq!(
            v("#jepsen.history.Op{:index 0, :type :invoke}"),
            json!({"index": 0, "type": "invoke"})
        );
        assert_eq!(v("#my/tag [1 2]"), json!([1, 2]));
        assert_eq!(v("#a #b 5"), json!(5));
        assert_eq!(
            v("[##Inf ##-Inf ##NaN]"),
            json!(["##Inf", "##-Inf", "##NaN"])
        );
        assert_eq!(v(r#"#"\d+\"x""#), json!(r#"\d+\"x"#));
        assert_eq!(v("^:private [1]"), json!([1]));
        assert_eq!(v("^{:tag String} x"), json!("x"));
        assert_eq!(
            v("#:node{:a 1, :b/c 2, :_/d 3, \"s\" 4}"),
            json!({"node/a": 1, "b/c": 2, "d": 3, "s": 4})
        );
        assert!(verr("#_").to_string().contains("nothing to discard"));
        assert!(
            verr("#tag")
                .to_string()
                .contains("tag `#tag` without a value")
        );
        assert!(
            verr("#=(+ 1 2)")
                .to_string()
                .contains("invalid dispatch `#=`")
        );
        assert!(verr("##Foo").to_string().contains("unknown symbolic value"));
        assert!(verr("@x").to_string().contains("unexpected character `@`"));
        assert!(
            verr("1 2")
                .to_string()
                .contains("unexpected `2` after the value")
        );
        assert!(
            verr("  ; only a comment")
                .to_string()
                .contains("no EDN value")
        );
    }

    #[test]
    fn value_errors_name_lines() {
        let e = verr("[1\n2\n\"open\n");
        assert_eq!(e.line, 3, "{e}");
        assert!(
            e.to_string().starts_with("t.edn:3: unterminated string"),
            "{e}"
        );
        let e = verr("{:a 1\n :b 2");
        assert_eq!(e.line, 1);
        assert!(
            e.to_string().starts_with("t.edn:1: unterminated map"),
            "{e}"
        );
        let e = verr("[1\n 2}");
        assert_eq!(e.line, 2);
        assert!(
            e.to_string().starts_with(
                "t.edn:2: expected `]` to close the vector opened on line 1, found `}`"
            ),
            "{e}"
        );
        let e = verr("{:a 1\n :b}");
        assert_eq!(e.line, 2);
        assert!(
            e.to_string()
                .starts_with("t.edn:2: map key `b` has no value"),
            "{e}"
        );
        let e = verr("\n\n}");
        assert_eq!(e.line, 3);
        assert!(e.to_string().starts_with("t.edn:3: unexpected `}`"), "{e}");
        let e = verr("(1 2");
        assert!(
            e.to_string().starts_with("t.edn:1: unterminated list"),
            "{e}"
        );
        let e = verr("#{1 2");
        assert!(
            e.to_string().starts_with("t.edn:1: unterminated set"),
            "{e}"
        );
        let e = verr("\"multi\nline\" \"x\\q\"");
        assert_eq!(e.line, 2);
        let deep = "[".repeat(100_000);
        let e = verr(&deep);
        assert!(e.to_string().contains("nested deeper than"), "{e}");
        let e = verr(&"#_".repeat(100_000));
        assert!(e.to_string().contains("nested deeper than"), "{e}");
        let e = verr(&"^".repeat(100_000));
        assert!(e.to_string().contains("nested deeper than"), "{e}");
        let e = verr(&"#t ".repeat(100_000));
        assert!(e.to_string().contains("nested deeper than"), "{e}");
    }

    #[test]
    fn one_op_per_line() {
        let h = read_str(
            "{:type :invoke, :f :write, :value 3, :process 4, :time 10, :index 0}\n\
             {:type :ok, :f :write, :value 3, :process 4, :time 20, :index 1, :node \"n1\"}\n\
             \n\
             ; a comment line\n\
             {:type :info, :f :start, :process :nemesis, :time 30, :index 2, :value [:isolated {\"n1\" #{\"n2\"}}]}\n\
             {:type :invoke, :f :cas, :value [1 2], :process 1, :key :x, :index 3}\n\
             {:type :fail, :f :cas, :value [1 2], :process 1, :key :x, :error :mismatch, :index 4}\n\
             {:type :invoke, :f :read, :value nil, :process 2}\n",
        )
        .unwrap();
        assert_eq!(h.events, 6);
        assert_eq!(h.len(), 3);
        assert_eq!(h.faults.len(), 1);
        let nem = &h.faults[0];
        assert_eq!(nem.process, Process::Other("nemesis".into()));
        assert_eq!(nem.line, 5);
        assert_eq!(&*nem.f, "start");
        assert_eq!(nem.value, json!(["isolated", {"n1": ["n2"]}]));
        let w = &h.ops[0];
        assert_eq!((w.process, &*w.f, w.outcome), (4, "write", Outcome::Ok));
        assert_eq!(w.invoke_value, json!(3));
        assert_eq!((w.invoke_time(), w.complete_time()), (Some(10), Some(20)));
        assert_eq!((w.invoke_index, w.complete_index()), (0, Some(1)));
        assert_eq!((w.invoke_line(), w.complete_line()), (1, Some(2)));
        assert_eq!(w.extra.as_ref().unwrap()["node"], "n1");
        let c = &h.ops[1];
        assert_eq!(c.key.as_deref(), Some(&json!("x")));
        assert_eq!(c.outcome, Outcome::Fail);
        assert_eq!(c.extra.as_ref().unwrap()["error"], "mismatch");
        let r = &h.ops[2];
        assert_eq!(r.outcome, Outcome::Pending);
        assert_eq!(r.invoke_line(), 8);
        assert_eq!(r.invoke_index, 5, "position when the file has no index");
        assert_eq!(h.semantics.nil_read, NilRead::Unknown);
        assert_eq!(h.semantics.fail, FailMeaning::NotApplied);
        assert_eq!(h.semantics.default_initial, None);
    }

    #[test]
    fn one_vector_or_list_of_maps() {
        let text = "; header\n[{:process 0, :type :invoke, :f :read, :value nil}\n {:process 0,\n  :type :ok,\n  :f :read,\n  :value 3}\n ; between\n {:process :nemesis :type :info :f :stop :value \"fully connected\"}]\n";
        let h = read_str(text).unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!(h.ops[0].complete_line(), Some(3));
        assert_eq!(h.ops[0].value, json!(3));
        assert_eq!(h.faults[0].line, 8);
        let list = text.replace('[', "(").replace("}]", "})");
        let h = read_str(&list).unwrap();
        assert_eq!((h.len(), h.faults.len()), (1, 1));
        // An empty vector has no ops.
        let e = read_str("[]").unwrap_err();
        assert_eq!((e.line, e.kind), (0, HistoryErrorKind::Empty));
    }

    #[test]
    fn several_top_level_maps_over_lines_and_tagged_ops() {
        let h = read_str(
            "{:process 1\n :type :invoke\n :f :write\n :value 1}\n\n{:process 1\n :type :ok\n :f :write\n :value 1} {:process 2, :type :invoke, :f :read}\n#jepsen.history.Op{:process 2, :type :ok, :f :read, :value 1}\n#jepsen.history.Op\n{:process 3, :type :invoke, :f :read}",
        )
        .unwrap();
        assert_eq!(h.len(), 3);
        assert_eq!(
            (h.ops[0].invoke_line(), h.ops[0].complete_line()),
            (1, Some(6))
        );
        assert_eq!(
            (h.ops[1].invoke_line(), h.ops[1].complete_line()),
            (9, Some(10))
        );
        assert_eq!(h.ops[1].value, json!(1));
        assert_eq!(h.ops[2].invoke_line(), 12);
        // Commas, discards and string keys inside op maps.
        let h = read_str("{\"process\" 0,,, :type :invoke #_ :f :f :read :value #_nil 2}").unwrap();
        assert_eq!((&*h.ops[0].f, &h.ops[0].invoke_value), ("read", &json!(2)));
    }

    #[test]
    fn events_only_for_completion_histories() {
        let text = "{:type :ok, :f :write, :value [x 1], :process 0, :time 0, :position 0, :link nil, :index 0}\n{:type :ok, :f :read, :value [x 1], :process 1, :time 1, :position 1, :link nil, :index 1}\n;{:type :ok, :f :read, :value [x 2], :process 1, :index 2}\n";
        let evs = events("c.edn", text).unwrap();
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[1].line, 2);
        assert_eq!(evs[0].value, json!(["x", 1]));
        assert_eq!(evs[0].extra["link"], Value::Null);
        assert_eq!(evs[0].extra["position"], json!(0));
        assert!(evs.iter().all(|e| e.kind == EventType::Ok));
        // read() insists on invocations.
        let e = read("c.edn", text, false).unwrap_err();
        assert!(e.to_string().starts_with("c.edn:1: `ok` completion"), "{e}");
        assert_eq!(events("c.edn", "; nothing\n").unwrap(), vec![]);
    }

    #[test]
    fn porcupine_kv_detection_and_semantics() {
        let kv = "{:process 0, :type :invoke, :f :get, :key \"5\", :value nil}\n{:process 0, :type :ok, :f :get, :key \"5\", :value \"\"}\n";
        assert!(looks_like_porcupine_kv(kv));
        assert!(looks_like_porcupine_kv(
            "\n; c\n{:process 9, :type :invoke, :f :append, :key \"0\", :value \"x 9 0 y\"}"
        ));
        assert!(looks_like_porcupine_kv(
            "{:process 9, :type :invoke, :f :put, :key 3, :value \"a\"}"
        ));
        assert!(!looks_like_porcupine_kv(
            "{:process 0, :type :invoke, :f :get, :value nil}"
        ));
        assert!(!looks_like_porcupine_kv(
            "{:process 0, :type :invoke, :f :read, :key \"5\"}"
        ));
        assert!(!looks_like_porcupine_kv(
            "{:process 0, :type :invoke,\n :f :get, :key \"5\"}"
        ));
        assert!(!looks_like_porcupine_kv(
            "[{:process 4, :type :invoke, :f :write, :value 2}"
        ));
        assert!(!looks_like_porcupine_kv("{\"process\": 0}"));
        assert!(!looks_like_porcupine_kv(""));
        assert!(!looks_like_porcupine_kv(
            "{:process 0, :type :invoke, :f :get, :key \"5\""
        ));
        let h = read("kv.txt", kv, true).unwrap();
        assert_eq!(h.ops[0].key.as_deref(), Some(&json!("5")));
        assert_eq!(h.ops[0].value, json!(""));
        assert_eq!(h.semantics.nil_read, NilRead::Absent);
        assert_eq!(h.semantics.fail, FailMeaning::NotApplied);
        assert_eq!(h.semantics.default_initial, Some(json!("")));
    }

    #[test]
    fn malformed_histories_name_the_line() {
        let ok = "{:process 0, :type :invoke, :f :read}\n";
        fails_at(
            &format!("{ok}{{:process 0, :type :ok, :f :read, :value \"open}}\n"),
            2,
            "unterminated string",
        );
        fails_at(
            &format!("{ok}\n{{:process 0, :type :ok,\n :f :read"),
            3,
            "unterminated map",
        );
        fails_at(&format!("{ok}}}\n"), 2, "unexpected `}`");
        fails_at(
            &format!("{ok}{{:process 0, :type :ok, :f :read, :value [1 2}}}}\n"),
            2,
            "expected `]`",
        );
        fails_at(
            &format!("{ok}{{:process 0, :type :ok, :f}}\n"),
            2,
            "map key `f` has no value",
        );
        fails_at("{:process 0, :f :read}\n", 1, "missing field `type`");
        fails_at(
            "\n{:type :invoke, :f :read}\n",
            2,
            "missing field `process`",
        );
        fails_at("{:process 0, :type :invoke}\n", 1, "missing field `f`");
        fails_at(
            &format!("{ok}{{:process 0, :type :done, :f :read}}\n"),
            2,
            "unknown type `done`",
        );
        fails_at("{:process 0, :type 5, :f :read}\n", 1, "unknown type `5`");
        fails_at(
            "{:process 0, :type :invoke, :f :read, :time \"x\"}",
            1,
            "field `time`",
        );
        fails_at(
            "{:process 0, :type :invoke, :f :read, :index -1}",
            1,
            "field `index`",
        );
        fails_at(
            "{:process 0, :type :invoke, :f :read, :value 12ab}",
            1,
            "invalid number `12ab`",
        );
        fails_at(
            "{:process 0, :type :invoke, :f :read, :value \"\\x\"}",
            1,
            "invalid escape",
        );
        fails_at(
            "[{:process 0, :type :invoke, :f :read}\n {:process 0, :type :ok, :f :read, :value 1}\n",
            1,
            "unterminated vector of ops",
        );
        fails_at(
            "(\n{:process 0, :type :invoke, :f :read}\n]",
            3,
            "expected `)` to close the list opened on line 1",
        );
        fails_at(
            "[{:process 0, :type :invoke, :f :read}\n 42]",
            2,
            "expected an op map `{...}`, found `42`",
        );
        fails_at(
            "[{:process 0, :type :invoke, :f :read}\n #{1}]",
            2,
            "found a set",
        );
        fails_at(":keyword\n", 1, "expected an op map");
        fails_at("#jepsen.history.Op", 1, "a tag without an op map");
        fails_at(
            "[[{:process 0, :type :invoke, :f :read}]]",
            1,
            "expected an op map",
        );
        fails_at(
            "{:process 0, :type :invoke, :f :read, :value \\bogus}",
            1,
            "unknown character literal",
        );
        fails_at(
            &format!("{ok}{ok}"),
            2,
            "process 0 invokes again while its invocation on line 1",
        );
        fails_at(
            "{:process 3, :type :ok, :f :read}\n",
            1,
            "`ok` completion for process 3",
        );
        let e = read_str(" ; only comments\n\n").unwrap_err();
        assert_eq!((e.line, e.to_string()), (0, "t.edn: no events".to_string()));
    }

    /// A tiny deterministic generator (xorshift), for fuzzing without a
    /// dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Runs every entry point on `text`; only panics matter.
    pub(crate) fn run_all(text: &str) {
        let _ = parse_value("f", text);
        let _ = events("f", text);
        let _ = read("f", text, false);
        let _ = read("f", text, true);
        let _ = looks_like_porcupine_kv(text);
        let _ = crate::format::porcupine::read_etcd("f", text);
        let _ = crate::format::read_from("f", text.as_bytes(), Format::Auto);
    }

    #[test]
    fn fuzz_never_panics() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        // Random bytes.
        for _ in 0..3000 {
            let n = rng.below(64);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            run_all(&String::from_utf8_lossy(&bytes));
        }
        // Random sequences of EDN-significant pieces.
        let pieces = [
            "{",
            "}",
            "[",
            "]",
            "(",
            ")",
            "#{",
            "#_",
            "#",
            "##",
            "#\"",
            "#:",
            "^",
            "\"",
            "\\",
            "\\u",
            "\\u12",
            "\\o",
            "\\newline",
            ":",
            "::",
            ";",
            "\n",
            " ",
            ",",
            "1",
            "-",
            "+",
            "N",
            "M",
            ".",
            "e",
            "/",
            "0x",
            "9999999999999999999999",
            ":process",
            " 0",
            " :nemesis",
            ":type",
            " :invoke",
            " :ok",
            ":f",
            " :read",
            ":value",
            ":key",
            ":time",
            ":index",
            "nil",
            "é",
            "😀",
            "\\é",
            "INFO  jepsen.util - ",
            "\t",
            ":timed-out",
            "x",
            "#inst",
            "'",
            "@",
            "~",
            "`",
            "\r",
        ];
        for _ in 0..20_000 {
            let n = 1 + rng.below(24);
            let text: String = (0..n).map(|_| pieces[rng.below(pieces.len())]).collect();
            run_all(&text);
        }
        // Mutations of a valid history.
        let good = "[{:process 0, :type :invoke, :f :cas, :value [1 2], :time 5N}\n {:process 0, :type :ok, :f :cas, :value [1 2], :error \"a\\nb\"}\n {:process :nemesis, :type :info, :f :start, :value #{\"n1\"}}]\n";
        let chars: Vec<char> = good.chars().collect();
        for _ in 0..5000 {
            let mut c = chars.clone();
            for _ in 0..1 + rng.below(3) {
                let i = rng.below(c.len());
                match rng.below(3) {
                    0 => {
                        c.remove(i);
                    }
                    1 => c.insert(
                        i,
                        pieces[rng.below(pieces.len())]
                            .chars()
                            .next()
                            .unwrap_or('x'),
                    ),
                    _ => c.truncate(i),
                }
                if c.is_empty() {
                    break;
                }
            }
            run_all(&c.iter().collect::<String>());
        }
    }

    /// The external corpus (`../shared/corpus` from the project root, or
    /// `$FAULTLINE_CORPUS_DIR`), or `None` when it is absent and
    /// `FAULTLINE_SKIP_CORPUS=1`. Panics when it is absent otherwise: a
    /// missing corpus must not look like a pass.
    pub(crate) fn corpus_dir(test: &str) -> Option<PathBuf> {
        let dir = match std::env::var_os("FAULTLINE_CORPUS_DIR") {
            Some(d) => PathBuf::from(d),
            None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus")),
        };
        if dir.is_dir() {
            return Some(dir);
        }
        if std::env::var("FAULTLINE_SKIP_CORPUS").as_deref() == Ok("1") {
            eprintln!(
                "{test}: SKIPPED: corpus not found at {} (FAULTLINE_SKIP_CORPUS=1)",
                dir.display()
            );
            return None;
        }
        panic!(
            "{test}: the external corpus is missing at {}; these tests need it \
             (set FAULTLINE_SKIP_CORPUS=1 to skip them)",
            dir.display()
        );
    }

    /// Files under `dir` (recursively) whose name ends with `ext`, sorted.
    pub(crate) fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            let entries = std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
            for entry in entries {
                let p = entry.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.to_string_lossy().ends_with(ext) {
                    out.push(p);
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn corpus_knossos() {
        let Some(corpus) = corpus_dir("corpus_knossos") else {
            return;
        };
        let dir = corpus.join("knossos");
        let all = files(&dir, ".edn");
        assert_eq!(all.len(), 63, "knossos files");
        for path in &all {
            let (h, fmt) = read_path(path, Format::Auto).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(fmt, Format::Edn, "{}", path.display());
            assert!(!h.is_empty(), "{}", path.display());
            assert_eq!(h.semantics, semantics(false));
        }
        // Counts made with grep: `:type` = events, `:type :invoke` = client
        // ops, `:process :nemesis` = faults.
        for (file, events, ops, faults) in [
            ("mutex/bad/etcd.edn", 1135, 563, 12),
            ("cas-register/bad/cas-failure.edn", 590, 291, 8),
            ("cas-register/bad/rethink-fail.edn", 500, 250, 0),
            ("cas-register/good/memstress3-1.edn", 610, 305, 0),
            ("multi-register/good/multi-register.edn", 250, 123, 4),
        ] {
            let (h, _) = read_path(&dir.join(file), Format::Auto).unwrap();
            assert_eq!(
                (h.events, h.len(), h.faults.len()),
                (events, ops, faults),
                "{file}"
            );
            assert!(
                h.faults
                    .iter()
                    .all(|e| e.process == Process::Other("nemesis".into())),
                "{file}"
            );
            let client_events: usize = h
                .ops
                .iter()
                .map(|o| 1 + usize::from(o.complete_pos().is_some()))
                .sum();
            assert_eq!(
                client_events + faults,
                events,
                "{file}: nemesis events are not ops"
            );
        }
        // A multi-line nemesis map keeps the line where it starts.
        let (h, _) =
            read_path(&dir.join("cas-register/bad/cas-failure.edn"), Format::Auto).unwrap();
        let lines: Vec<usize> = h.faults.iter().map(|e| e.line).collect();
        assert_eq!(lines, [401, 475, 596, 597, 598, 599, 604, 605]);
        assert!(
            h.faults[1]
                .value
                .as_str()
                .unwrap()
                .starts_with("Cut off [:n3 #[:n4")
        );
        // Extra fields, including a vector `:error`.
        let (h, _) = read_path(&dir.join("mutex/bad/etcd.edn"), Format::Auto).unwrap();
        let err = h
            .ops
            .iter()
            .find(|o| o.extra.as_ref().is_some_and(|x| x.contains_key("error")));
        assert_eq!(err.unwrap().extra.as_ref().unwrap()["error"], "not-held");
        let last = h.ops.iter().max_by_key(|o| o.complete_index()).unwrap();
        assert_eq!(
            last.extra.as_ref().unwrap()["error"],
            json!(["not-found", "etcdserver: requested lease not found"])
        );
    }

    #[test]
    fn corpus_porcupine_kv() {
        let Some(corpus) = corpus_dir("corpus_porcupine_kv") else {
            return;
        };
        let all = files(&corpus.join("porcupine/kv"), ".txt");
        assert_eq!(all.len(), 4);
        for path in &all {
            let (h, fmt) = read_path(path, Format::Auto).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(fmt, Format::PorcupineKv, "{}", path.display());
            assert_eq!(h.semantics, semantics(true));
            assert!(
                h.ops
                    .iter()
                    .all(|o| o.key.is_some() && o.outcome == Outcome::Ok)
            );
        }
        for (file, ops) in [
            ("c01-ok.txt", 58),
            ("c10-ok.txt", 337),
            ("c10-bad.txt", 405),
        ] {
            let (h, _) = read_path(&corpus.join("porcupine/kv").join(file), Format::Auto).unwrap();
            assert_eq!((h.len(), h.events), (ops, 2 * ops), "{file}");
        }
    }

    #[test]
    fn corpus_causal_events() {
        let Some(corpus) = corpus_dir("corpus_causal_events") else {
            return;
        };
        let all = files(&corpus.join("causal"), ".edn");
        assert_eq!(all.len(), 12);
        for path in &all {
            let text = std::fs::read_to_string(path).unwrap();
            let evs = events(&path.display().to_string(), &text).unwrap_or_else(|e| panic!("{e}"));
            assert!(!evs.is_empty(), "{}", path.display());
            let mut b = HistoryBuilder::new("c", semantics(false)).allow_completions_only(true);
            for ev in evs {
                b.push(ev).unwrap();
            }
        }
        let text = std::fs::read_to_string(corpus.join("causal/trz_history.edn")).unwrap();
        let evs = events("trz", &text).unwrap();
        assert_eq!(evs.len(), 7, "one line is commented out");
        assert_eq!(evs[6].line, 8);
        let text = std::fs::read_to_string(corpus.join("causal/history.edn")).unwrap();
        let evs = events("history", &text).unwrap();
        assert_eq!(evs.len(), 1692);
        // Big MongoDB cluster times stay exact integers.
        assert!(
            evs.iter()
                .any(|e| e.extra.get("position") == Some(&json!(6811491250085036033i64)))
        );
    }

    #[test]
    fn parse_speed_is_linear() {
        fn generate(n: usize) -> String {
            let mut s = String::with_capacity(n * 96);
            for i in 0..n {
                let p = i / 2 % 10;
                let ty = if i % 2 == 0 { "invoke" } else { "ok" };
                s.push_str(&format!(
                    "{{:type :{ty}, :f :cas, :value [{} {}], :process {p}, :time {}, :index {i}}}\n",
                    i % 5,
                    i % 7,
                    i * 1000
                ));
            }
            s
        }
        let mut per_line = Vec::new();
        for n in [10_000, 100_000] {
            // Generated so each process completes before invoking again.
            let text = generate(n);
            let t = std::time::Instant::now();
            let evs = events("gen", &text).unwrap();
            let t_events = t.elapsed();
            let t = std::time::Instant::now();
            let h = read("gen", &text, false).unwrap();
            let t_read = t.elapsed();
            assert_eq!((evs.len(), h.len()), (n, n / 2));
            println!(
                "EDN: {n} op lines ({} KB): events() {:.1} ms, read() {:.1} ms ({:.0} ns/line){}",
                text.len() / 1024,
                t_events.as_secs_f64() * 1e3,
                t_read.as_secs_f64() * 1e3,
                t_read.as_secs_f64() * 1e9 / n as f64,
                if cfg!(debug_assertions) {
                    " [debug build]"
                } else {
                    ""
                }
            );
            per_line.push(t_read.as_secs_f64() / n as f64);
            if !cfg!(debug_assertions) {
                // Loose: a quadratic parser would take minutes here.
                assert!(t_read.as_secs_f64() < 5.0, "{n} lines took {t_read:?}");
            }
        }
        println!(
            "EDN: time per line at 100k / at 10k = {:.2}",
            per_line[1] / per_line[0]
        );
    }
}
