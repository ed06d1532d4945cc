//! Reading an external adapter's replies without trusting it: lines are
//! read with a bound (a 100 MB line is consumed, never held or copied into
//! the history), bad replies are quoted only in part, and [`Health`] counts
//! what the adapters said, so that an adapter that speaks nothing but
//! garbage ends the run as an error instead of filling it with `info`.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// The longest adapter reply line read; a longer one is consumed and
/// reported by its size.
pub const MAX_REPLY_BYTES: usize = 1 << 20;

/// What an error may quote of a bad reply, in characters.
const EXCERPT_CHARS: usize = 200;

/// At most [`EXCERPT_CHARS`] characters of `text`, marked when cut.
pub fn excerpt(text: &str) -> String {
    match text.char_indices().nth(EXCERPT_CHARS) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// One line of an adapter's output.
pub enum Line {
    /// The adapter closed its stdout.
    Eof,
    /// A line (without its newline).
    Text(String),
    /// A line longer than the limit (consumed to its end): its length.
    TooLong(usize),
}

/// Reads one line of at most `max` bytes without ever holding more.
pub async fn read_line_bounded<R: AsyncBufRead + Unpin>(
    r: &mut R,
    max: usize,
) -> std::io::Result<Line> {
    let mut line = Vec::new();
    let mut seen = 0usize;
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(match seen {
                0 => Line::Eof,
                n if n > max => Line::TooLong(n),
                _ => Line::Text(String::from_utf8_lossy(&line).into_owned()),
            });
        }
        let newline = buf.iter().position(|&b| b == b'\n');
        let chunk = &buf[..newline.unwrap_or(buf.len())];
        seen += chunk.len();
        if seen <= max {
            line.extend_from_slice(chunk);
        } else {
            line = Vec::new();
        }
        let used = newline.map_or(buf.len(), |i| i + 1);
        r.consume(used);
        if newline.is_some() {
            return Ok(if seen > max {
                Line::TooLong(seen)
            } else {
                Line::Text(String::from_utf8_lossy(&line).into_owned())
            });
        }
    }
}

/// What the adapters of a run said: replies that parsed, and lines that
/// were not replies (not JSON, or too long).
#[derive(Debug, Default)]
pub struct Health {
    /// Replies that parsed.
    pub replies: AtomicU64,
    /// Lines that were not replies.
    pub garbage: AtomicU64,
}

impl Health {
    /// Counts a reply that parsed.
    pub fn reply(&self) {
        self.replies.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a line that was not a reply.
    pub fn garbage(&self) {
        self.garbage.fetch_add(1, Ordering::Relaxed);
    }

    /// True when the adapters have answered, and only with garbage (for a
    /// handshake, one answer is enough to know).
    pub fn only_garbage(&self) -> bool {
        self.replies.load(Ordering::Relaxed) == 0 && self.garbage.load(Ordering::Relaxed) > 0
    }

    /// True when the adapters have spoken nothing but garbage, often enough
    /// to be sure: the run can only be an error.
    pub fn hopeless(&self) -> bool {
        self.replies.load(Ordering::Relaxed) == 0 && self.garbage.load(Ordering::Relaxed) >= 20
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn long_lines_are_consumed_not_kept() {
        let mut input = vec![b'x'; 3 * MAX_REPLY_BYTES];
        input.extend_from_slice(b"\n{\"id\":1}\n");
        let mut r = tokio::io::BufReader::new(&input[..]);
        assert!(matches!(
            read_line_bounded(&mut r, MAX_REPLY_BYTES).await.expect("read"),
            Line::TooLong(n) if n == 3 * MAX_REPLY_BYTES
        ));
        assert!(matches!(
            read_line_bounded(&mut r, MAX_REPLY_BYTES).await.expect("read"),
            Line::Text(t) if t == "{\"id\":1}"
        ));
        assert!(matches!(
            read_line_bounded(&mut r, MAX_REPLY_BYTES)
                .await
                .expect("read"),
            Line::Eof
        ));
        assert_eq!(excerpt(&"é".repeat(300)).chars().count(), 201);
    }
}
