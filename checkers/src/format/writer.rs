//! The writer of faultline's history format (JSON Lines, see
//! `docs/history-format.md`): one event per line, an object whose fields
//! come in the order they are added. Every producer of histories (the
//! run's recorder, the synthesizers) writes through it, so the format's
//! field names, event types and encoding live here, next to its reader.
//!
//! ```
//! use faultline_checkers::EventType;
//! use faultline_checkers::format::writer::EventLine;
//! let mut line = EventLine::new();
//! line.start().u64("index", 0).u64("process", 1).event_type(EventType::Invoke).str("f", "read");
//! assert_eq!(line.finish(), b"{\"index\":0,\"process\":1,\"type\":\"invoke\",\"f\":\"read\"}\n");
//! ```

use serde_json::Value;

use crate::history::EventType;

/// One line being written (reused from line to line).
#[derive(Debug, Default)]
pub struct EventLine {
    buf: Vec<u8>,
    fields: usize,
}

impl EventLine {
    /// An empty line.
    pub fn new() -> EventLine {
        EventLine {
            buf: Vec::with_capacity(256),
            fields: 0,
        }
    }

    /// Starts a new line (forgetting the previous one).
    #[inline]
    pub fn start(&mut self) -> &mut Self {
        self.buf.clear();
        self.buf.push(b'{');
        self.fields = 0;
        self
    }

    #[inline]
    fn name(&mut self, name: &str) {
        if self.fields > 0 {
            self.buf.push(b',');
        }
        self.fields += 1;
        self.buf.push(b'"');
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(b"\":");
    }

    /// An unsigned integer field.
    #[inline]
    pub fn u64(&mut self, name: &str, v: u64) -> &mut Self {
        self.name(name);
        push_u64(&mut self.buf, v);
        self
    }

    /// A string field (escaped as JSON).
    #[inline]
    pub fn str(&mut self, name: &str, v: &str) -> &mut Self {
        self.name(name);
        // Writing a &str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.buf, v);
        self
    }

    /// The event's `type`: invoke, ok, fail or info.
    #[inline]
    pub fn event_type(&mut self, t: EventType) -> &mut Self {
        self.name("type");
        self.buf.push(b'"');
        self.buf.extend_from_slice(t.as_str().as_bytes());
        self.buf.push(b'"');
        self
    }

    /// A JSON field.
    #[inline]
    pub fn value(&mut self, name: &str, v: &Value) -> &mut Self {
        self.name(name);
        // Writing a Value into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.buf, v);
        self
    }

    /// A field whose JSON text `write` appends itself (for generators that
    /// encode their values without building a [`Value`]).
    #[inline]
    pub fn raw(&mut self, name: &str, write: impl FnOnce(&mut Vec<u8>)) -> &mut Self {
        self.name(name);
        write(&mut self.buf);
        self
    }

    /// Ends the line: its bytes, newline included.
    #[inline]
    pub fn finish(&mut self) -> &[u8] {
        self.buf.extend_from_slice(b"}\n");
        &self.buf
    }
}

/// Appends `n` in decimal.
#[inline]
pub fn push_u64(buf: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Outcome;
    use serde_json::json;

    #[test]
    fn written_lines_read_back() {
        let mut out = Vec::new();
        let mut line = EventLine::new();
        for (i, t) in [EventType::Invoke, EventType::Ok].into_iter().enumerate() {
            line.start()
                .u64("index", i as u64)
                .u64("process", 3)
                .event_type(t)
                .str("f", "write")
                .str("key", "a\"b\n")
                .value("value", &json!(18446744073709551615u64));
            out.extend_from_slice(line.finish());
        }
        assert_eq!(
            &out[..out.iter().position(|&b| b == b'\n').unwrap_or(0) + 1],
            b"{\"index\":0,\"process\":3,\"type\":\"invoke\",\"f\":\"write\",\"key\":\"a\\\"b\\n\",\"value\":18446744073709551615}\n"
        );
        let h = crate::format::json::read("w.jsonl", &out[..]).expect("reads back");
        assert_eq!(h.ops.len(), 1);
        let op = &h.ops[0];
        assert_eq!(op.outcome, Outcome::Ok);
        assert_eq!(op.key.as_deref(), Some(&json!("a\"b\n")));
        assert_eq!(op.value, json!(18446744073709551615u64));
    }
}
