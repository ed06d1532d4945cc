//! Readers for the history formats faultline understands, and detection of
//! which one a file is in.
//!
//! | format | what it reads |
//! |---|---|
//! | `json` | faultline's JSON Lines (one event per line) or one JSON array of events |
//! | `edn` | Jepsen/Knossos EDN: one op map per line, or one vector/list of maps |
//! | `porcupine-etcd` | Porcupine's copies of Jepsen etcd logs (`INFO  jepsen.util - ...`) |
//! | `porcupine-kv` | Porcupine's kv logs: one EDN map per line with `:key` (get/put/append) |
//! | `plume` | Plume/PolySI/IsoVista text: `r(KEY,VALUE,SESSION,TXN)` / `w(...)` a line |

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::str::FromStr;

use crate::error::{HistoryError, HistoryErrorKind};
use crate::history::{CompletionsMode, History};

pub mod edn;
pub mod json;
pub mod json_event;
mod json_fast;
pub mod json_txn;
pub mod plume;
pub mod porcupine;
pub mod writer;

/// A history file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Detect from the content.
    Auto,
    /// faultline's JSON Lines, or one JSON array.
    Json,
    /// Jepsen/Knossos EDN.
    Edn,
    /// Porcupine's etcd logs (Jepsen 2015 `jepsen.util` lines).
    PorcupineEtcd,
    /// Porcupine's kv logs (EDN lines with get/put/append).
    PorcupineKv,
    /// Plume/PolySI/IsoVista transactions, one micro-op a line.
    Plume,
}

impl Format {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Format::Auto => "auto",
            Format::Json => "json",
            Format::Edn => "edn",
            Format::PorcupineEtcd => "porcupine-etcd",
            Format::PorcupineKv => "porcupine-kv",
            Format::Plume => "plume",
        }
    }

    /// All names accepted by [`Format::from_str`].
    pub const NAMES: &'static [&'static str] = &[
        "auto",
        "json",
        "edn",
        "porcupine-etcd",
        "porcupine-kv",
        "plume",
    ];
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "auto" => Format::Auto,
            "json" | "jsonl" => Format::Json,
            "edn" | "jepsen" | "knossos" => Format::Edn,
            "porcupine-etcd" => Format::PorcupineEtcd,
            "porcupine-kv" => Format::PorcupineKv,
            "plume" | "polysi" | "isovista" => Format::Plume,
            _ => {
                return Err(format!(
                    "unknown format `{s}` (expected one of: {})",
                    Format::NAMES.join(", ")
                ));
            }
        })
    }
}

/// The UTF-8 byte order mark, accepted (and dropped) at the start of a file
/// in every format.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// How much text of comments and blank lines detection reads, at most,
/// looking for the first event.
const DETECT_LIMIT: usize = 256 << 20;

/// Guesses the format from the first bytes of a file (a few kilobytes are
/// enough). Returns `None` when nothing fits.
pub fn detect(head: &[u8]) -> Option<Format> {
    match peek(head, true) {
        Peek::Format(f) => Some(f),
        Peek::Unknown | Peek::Nothing | Peek::NeedMore => None,
    }
}

/// What the first bytes of a file tell of its format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peek {
    /// The format.
    Format(Format),
    /// Nothing fits.
    Unknown,
    /// The whole input has only comments and blank lines.
    Nothing,
    /// Only comments and blank lines so far, or the first meaningful line is
    /// not complete: more text is needed.
    NeedMore,
}

/// [`detect`], telling apart "nothing fits" and "need more text";
/// `complete` says that `head` is the whole input.
fn peek(head: &[u8], complete: bool) -> Peek {
    let head = head.strip_prefix(BOM).unwrap_or(head);
    let text = String::from_utf8_lossy(head);
    // The meaningful text: without blank lines and EDN comments.
    let mut meaningful = text
        .split_inclusive('\n')
        .filter(|l| {
            let l = l.trim();
            !l.is_empty() && !l.starts_with(';')
        })
        .peekable();
    match meaningful.peek() {
        None if complete => return Peek::Nothing,
        None => return Peek::NeedMore,
        // A first line cut short: a few kilobytes of it are enough.
        Some(first) if !complete && !first.ends_with('\n') && first.len() < 4096 => {
            return Peek::NeedMore;
        }
        Some(_) => {}
    }
    let body: String = meaningful.map(str::trim).collect::<Vec<_>>().join("\n");
    let Some(first) = body.lines().next() else {
        return Peek::Unknown;
    };
    if first.contains("jepsen.util") {
        return Peek::Format(Format::PorcupineEtcd);
    }
    if plume::looks_like(first) {
        return Peek::Format(Format::Plume);
    }
    // Look inside the first map, possibly after an opening bracket, possibly
    // on the next line: JSON objects have quoted keys, EDN maps keywords.
    let (outer, rest) = match body.as_bytes()[0] {
        b'[' => (b'[', body[1..].trim_start()),
        b'(' | b'#' => return Peek::Format(Format::Edn),
        _ => (b'{', body.as_str()),
    };
    let Some(inner) = rest.strip_prefix('{').map(str::trim_start) else {
        return Peek::Unknown;
    };
    Peek::Format(match inner.as_bytes().first() {
        Some(b'"') | Some(b'}') => Format::Json,
        Some(b':') if outer == b'{' && edn::looks_like_porcupine_kv(&text) => Format::PorcupineKv,
        Some(b':') => Format::Edn,
        // A lone `{` at the end of what we have: JSON is the likelier.
        None => Format::Json,
        _ => return Peek::Unknown,
    })
}

/// A read error of `source`.
pub(super) fn io_error(source: &str, e: std::io::Error) -> HistoryError {
    HistoryError {
        file: source.to_string(),
        line: 0,
        kind: HistoryErrorKind::Io(e.to_string()),
    }
}

/// Reads a history from `path` (`-` is standard input) in `format`.
/// Returns the history and the format actually read.
pub fn read_path(path: &Path, format: Format) -> Result<(History, Format), HistoryError> {
    read_path_with(path, format, CompletionsMode::Require)
}

/// [`read_path`], with the given treatment of completions that have no
/// invocation (see [`CompletionsMode`]).
pub fn read_path_with(
    path: &Path,
    format: Format,
    mode: CompletionsMode,
) -> Result<(History, Format), HistoryError> {
    let source = path.display().to_string();
    if source == "-" {
        let stdin = std::io::stdin();
        return read_from_with(&source, stdin.lock(), format, mode);
    }
    let file = File::open(path).map_err(|e| io_error(&source, e))?;
    if file.metadata().map(|m| m.is_dir()).unwrap_or(false) {
        return Err(HistoryError {
            file: source,
            line: 0,
            kind: HistoryErrorKind::Io("is a directory".into()),
        });
    }
    let size = file.metadata().ok().map(|m| m.len());
    read_from_sized(
        &source,
        BufReader::with_capacity(1 << 20, file),
        format,
        mode,
        size,
    )
}

/// Reads a history from any buffered reader. `source` names it in errors.
pub fn read_from<R: BufRead>(
    source: &str,
    reader: R,
    format: Format,
) -> Result<(History, Format), HistoryError> {
    read_from_with(source, reader, format, CompletionsMode::Require)
}

/// [`read_from`], with the given treatment of completions that have no
/// invocation. Porcupine's etcd logs always require invocations.
///
/// A UTF-8 byte order mark at the start is dropped, in every format.
/// Detection reads past comments and blank lines (up to
/// [`DETECT_LIMIT`]) to the first event.
pub fn read_from_with<R: BufRead>(
    source: &str,
    reader: R,
    format: Format,
    mode: CompletionsMode,
) -> Result<(History, Format), HistoryError> {
    read_from_sized(source, reader, format, mode, None)
}

/// [`read_from_with`], given the input's length in bytes when it is known
/// (a file's, or a buffer's): the reader of JSON Lines then reserves room
/// for the history's operations once, as the first lines tell how many
/// there will be, instead of growing it as it goes.
pub fn read_from_sized<R: BufRead>(
    source: &str,
    mut reader: R,
    format: Format,
    mode: CompletionsMode,
    size: Option<u64>,
) -> Result<(History, Format), HistoryError> {
    let io = |e| io_error(source, e);
    let head = reader.fill_buf().map_err(io)?;
    if head.starts_with(BOM) {
        reader.consume(BOM.len());
    }
    if format != Format::Auto {
        return read_format(source, reader, format, mode, size);
    }
    let head = reader.fill_buf().map_err(io)?;
    if head.is_empty() {
        return Err(whole_file_error(source, HistoryErrorKind::Empty));
    }
    match peek(head, false) {
        Peek::Format(f) => return read_format(source, reader, f, mode, size),
        Peek::Unknown => return Err(unknown_format(source)),
        Peek::Nothing | Peek::NeedMore => {}
    }
    // Comments and blank lines, or a long first line: read on, keeping
    // what was read for the reader.
    let mut seen = Vec::new();
    // Where the lines not known to be comments or blank start: each chunk
    // is looked at once.
    let mut scanned = 0;
    let detected = loop {
        let chunk = reader.fill_buf().map_err(io)?;
        if chunk.is_empty() {
            break peek(&seen[scanned..], true);
        }
        let n = chunk.len();
        seen.extend_from_slice(chunk);
        reader.consume(n);
        while let Some(nl) = seen[scanned..].iter().position(|&c| c == b'\n') {
            let line = seen[scanned..scanned + nl].trim_ascii();
            if !line.is_empty() && line[0] != b';' {
                break;
            }
            scanned += nl + 1;
        }
        match peek(&seen[scanned..], false) {
            Peek::NeedMore if seen.len() > DETECT_LIMIT => {
                return Err(whole_file_error(
                    source,
                    HistoryErrorKind::UnknownFormat(format!(
                        "no complete event in the first {} MiB (only comments and blank \
                         lines, or a line longer than that); pass --format",
                        DETECT_LIMIT >> 20
                    )),
                ));
            }
            Peek::NeedMore => {}
            other => break other,
        }
    };
    let rest = std::io::Cursor::new(seen).chain(reader);
    match detected {
        Peek::Format(f) => read_format(source, rest, f, mode, size),
        Peek::Nothing => Err(whole_file_error(source, HistoryErrorKind::Empty)),
        Peek::NeedMore | Peek::Unknown => Err(unknown_format(source)),
    }
}

fn whole_file_error(source: &str, kind: HistoryErrorKind) -> HistoryError {
    HistoryError {
        file: source.to_string(),
        line: 0,
        kind,
    }
}

fn unknown_format(source: &str) -> HistoryError {
    whole_file_error(
        source,
        HistoryErrorKind::UnknownFormat(
            "expected JSON Lines, a JSON array, EDN, Porcupine's etcd log, or Plume's \
             r(...)/w(...) lines; pass --format"
                .into(),
        ),
    )
}

/// Reads a history in a known format.
fn read_format<R: BufRead>(
    source: &str,
    mut reader: R,
    format: Format,
    mode: CompletionsMode,
    size: Option<u64>,
) -> Result<(History, Format), HistoryError> {
    let history = match format {
        Format::Json => json::read_sized(source, reader, mode, size)?,
        other => {
            let mut bytes = Vec::new();
            reader
                .read_to_end(&mut bytes)
                .map_err(|e| io_error(source, e))?;
            let text = utf8(source, &bytes)?;
            match other {
                Format::Edn => edn::read_with(source, text, false, mode)?,
                Format::PorcupineKv => edn::read_with(source, text, true, mode)?,
                Format::PorcupineEtcd => porcupine::read_etcd(source, text)?,
                Format::Plume => plume::read(source, text)?,
                Format::Json | Format::Auto => unreachable!("handled above"),
            }
        }
    };
    Ok((history, format))
}

/// `bytes` as UTF-8, or an error naming the line and column of the first
/// invalid byte.
pub fn utf8<'a>(source: &str, bytes: &'a [u8]) -> Result<&'a str, HistoryError> {
    std::str::from_utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        let before = &bytes[..at];
        let line_start = before
            .iter()
            .rposition(|&c| c == b'\n')
            .map_or(0, |p| p + 1);
        HistoryError {
            file: source.to_string(),
            line: before.iter().filter(|&&c| c == b'\n').count() + 1,
            kind: HistoryErrorKind::Syntax(format!(
                "invalid UTF-8 (byte 0x{:02X} at column {})",
                bytes[at],
                at - line_start + 1
            )),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_each_format() {
        assert_eq!(
            detect(b"{\"index\":0,\"process\":1,\"type\":\"invoke\"}\n"),
            Some(Format::Json)
        );
        assert_eq!(
            detect(b"[{\"process\":1,\"type\":\"invoke\"}]"),
            Some(Format::Json)
        );
        assert_eq!(
            detect(b"[\n  {\"process\":1,\"type\":\"invoke\"}\n]"),
            Some(Format::Json)
        );
        assert_eq!(
            detect(b"INFO  jepsen.util - 0\t:invoke\t:read\tnil\n"),
            Some(Format::PorcupineEtcd)
        );
        assert_eq!(
            detect(b"; comment\n[{:process 4, :type :invoke, :f :write, :value 2}\n"),
            Some(Format::Edn)
        );
        assert_eq!(
            detect(b"{:process 0, :type :invoke, :f :get, :key \"5\", :value nil}\n"),
            Some(Format::PorcupineKv)
        );
        assert_eq!(
            detect(b"w(4283,1,0,0)\nr(9119,0,0,0)\n"),
            Some(Format::Plume)
        );
        assert_eq!(detect(b"hello world"), None);
        assert_eq!(detect(b"{\n  \"process\": 1}"), Some(Format::Json));
        assert_eq!(detect(b"{\n"), Some(Format::Json));
        assert_eq!(detect(b"[\n{:type :invoke,\n :f :txn}"), Some(Format::Edn));
    }
}
