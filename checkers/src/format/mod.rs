//! Readers for the history formats faultline understands, and detection of
//! which one a file is in.
//!
//! | format | what it reads |
//! |---|---|
//! | `json` | faultline's JSON Lines (one event per line) or one JSON array of events |
//! | `edn` | Jepsen/Knossos EDN: one op map per line, or one vector/list of maps |
//! | `porcupine-etcd` | Porcupine's copies of Jepsen etcd logs (`INFO  jepsen.util - ...`) |
//! | `porcupine-kv` | Porcupine's kv logs: one EDN map per line with `:key` (get/put/append) |

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::str::FromStr;

use crate::error::{HistoryError, HistoryErrorKind};
use crate::history::{CompletionsMode, History};

pub mod edn;
pub mod json;
pub mod json_event;
pub mod porcupine;

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
        }
    }

    /// All names accepted by [`Format::from_str`].
    pub const NAMES: &'static [&'static str] =
        &["auto", "json", "edn", "porcupine-etcd", "porcupine-kv"];
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
            _ => {
                return Err(format!(
                    "unknown format `{s}` (expected one of: {})",
                    Format::NAMES.join(", ")
                ));
            }
        })
    }
}

/// Guesses the format from the first bytes of a file (a few kilobytes are
/// enough). Returns `None` when nothing fits.
pub fn detect(head: &[u8]) -> Option<Format> {
    let text = String::from_utf8_lossy(head);
    // The meaningful text: without blank lines and EDN comments.
    let body: String = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with(';'))
        .collect::<Vec<_>>()
        .join("\n");
    let first = body.lines().next()?;
    if first.contains("jepsen.util") {
        return Some(Format::PorcupineEtcd);
    }
    // Look inside the first map, possibly after an opening bracket, possibly
    // on the next line: JSON objects have quoted keys, EDN maps keywords.
    let (outer, rest) = match body.as_bytes()[0] {
        b'[' => (b'[', body[1..].trim_start()),
        b'(' | b'#' => return Some(Format::Edn),
        _ => (b'{', body.as_str()),
    };
    let inner = rest.strip_prefix('{')?.trim_start();
    match inner.as_bytes().first() {
        Some(b'"') | Some(b'}') => Some(Format::Json),
        Some(b':') if outer == b'{' && edn::looks_like_porcupine_kv(&text) => {
            Some(Format::PorcupineKv)
        }
        Some(b':') => Some(Format::Edn),
        // A lone `{` at the end of what we have: JSON is the likelier.
        None => Some(Format::Json),
        _ => None,
    }
}

fn io_error(source: &str, e: std::io::Error) -> HistoryError {
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
    read_from_with(
        &source,
        BufReader::with_capacity(1 << 20, file),
        format,
        mode,
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
pub fn read_from_with<R: BufRead>(
    source: &str,
    mut reader: R,
    format: Format,
    mode: CompletionsMode,
) -> Result<(History, Format), HistoryError> {
    let format = match format {
        Format::Auto => {
            let head = reader.fill_buf().map_err(|e| io_error(source, e))?;
            if head.is_empty() {
                return Err(HistoryError {
                    file: source.to_string(),
                    line: 0,
                    kind: HistoryErrorKind::Empty,
                });
            }
            // fill_buf gives at least what one read returned; peek further
            // only when the first read was short and had no full line.
            match detect(head) {
                Some(f) => f,
                None => {
                    return Err(HistoryError {
                        file: source.to_string(),
                        line: 0,
                        kind: HistoryErrorKind::UnknownFormat(
                            "expected JSON Lines, a JSON array, EDN, or Porcupine's etcd log; \
                             pass --format"
                                .into(),
                        ),
                    });
                }
            }
        }
        f => f,
    };
    let history = match format {
        Format::Json => json::read_with(source, reader, mode)?,
        other => {
            let mut text = String::new();
            reader
                .read_to_string(&mut text)
                .map_err(|e| io_error(source, e))?;
            match other {
                Format::Edn => edn::read_with(source, &text, false, mode)?,
                Format::PorcupineKv => edn::read_with(source, &text, true, mode)?,
                Format::PorcupineEtcd => porcupine::read_etcd(source, &text)?,
                Format::Json | Format::Auto => unreachable!("handled above"),
            }
        }
    };
    Ok((history, format))
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
        assert_eq!(detect(b"hello world"), None);
        assert_eq!(detect(b"{\n  \"process\": 1}"), Some(Format::Json));
        assert_eq!(detect(b"{\n"), Some(Format::Json));
        assert_eq!(detect(b"[\n{:type :invoke,\n :f :txn}"), Some(Format::Edn));
    }
}
