//! Errors of the history readers and checkers. Every message names the input
//! (file and line) and the reason.

use std::fmt;

/// Why a history could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HistoryErrorKind {
    /// The text is not valid in the format being read.
    #[error("{0}")]
    Syntax(String),
    /// A required field is missing.
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// A field has the wrong type or value.
    #[error("field `{field}`: {reason}")]
    BadField {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// `type` is none of invoke, ok, fail, info.
    #[error("unknown type `{0}` (expected invoke, ok, fail or info)")]
    UnknownType(String),
    /// A completion arrived for a process with no open invocation.
    #[error("`{kind}` completion for process {process}, which has no invocation in flight")]
    CompletionWithoutInvoke {
        /// The process.
        process: i64,
        /// The completion's type.
        kind: &'static str,
    },
    /// A history that began with a completion without invocation (a history
    /// of completions only) has an invocation later.
    #[error(
        "`{kind}` completion for process {process}, which has no invocation in flight, in a \
         history that has invocations (line {invoke_line}): a history is made either of \
         completions only or of invocations and their completions"
    )]
    CompletionsThenInvoke {
        /// The process of the first completion.
        process: i64,
        /// That completion's type.
        kind: &'static str,
        /// Line of the first invocation.
        invoke_line: usize,
    },
    /// A process invoked while an earlier invocation was still in flight.
    #[error(
        "process {process} invokes again while its invocation on line {previous_line} is still in flight"
    )]
    DoubleInvoke {
        /// The process.
        process: i64,
        /// Line of the open invocation.
        previous_line: usize,
    },
    /// A completion names another function than its invocation.
    #[error(
        "process {process} completes `{completed}` but invoked `{invoked}` on line {invoke_line}"
    )]
    MismatchedCompletion {
        /// The process.
        process: i64,
        /// The invoked function.
        invoked: String,
        /// Line of the invocation.
        invoke_line: usize,
        /// The completed function.
        completed: String,
    },
    /// The file could not be read.
    #[error("cannot read: {0}")]
    Io(String),
    /// The format could not be recognised.
    #[error("cannot tell the format: {0}")]
    UnknownFormat(String),
    /// The file holds no event.
    #[error("no events")]
    Empty,
    /// More events or lines than a history keeps (positions and lines are
    /// 32-bit).
    #[error("the history is too long: more than 4294967294 events or lines")]
    TooLong,
    /// An integer outside what faultline keeps exactly (`[-2^63, 2^64-1]`).
    /// The number is given as [`echo`] shows it.
    #[error("integer {0} is out of range (faultline compares values exactly, within 64 bits)")]
    IntegerOutOfRange(String),
    /// A key appears twice in one map. The key is given as [`echo`] shows it.
    #[error("duplicate key `{0}` in one map")]
    DuplicateKey(String),
    /// An `ok` read without a `value` field: what it read is unknown.
    #[error(
        "`ok` {f} without a `value` field: an ok read must say what it read \
         (`null` when it read nothing)"
    )]
    ReadWithoutValue {
        /// The read function (`read`, `get`...), as [`echo`] shows it.
        f: String,
    },
    /// A write completed with another value than the one it was invoked
    /// with: which one was written is ambiguous.
    #[error(
        "process {process} completes `{completed}` but invoked `{invoked}` on line \
         {invoke_line} (a write completes with the value it was invoked with, or none)"
    )]
    MismatchedWriteValue {
        /// The process.
        process: i64,
        /// The invocation: function and value, shortened.
        invoked: String,
        /// Line of the invocation.
        invoke_line: usize,
        /// The completion: function and value, shortened.
        completed: String,
    },
}

/// How many characters of input an error message echoes at most.
pub const ECHO_CHARS: usize = 80;

/// How long a whole error message may be (input echoed in it is already cut
/// by [`echo`]; this bounds what other layers, such as a JSON parser's own
/// message, put in it).
pub const MESSAGE_CHARS: usize = 400;

/// Input text as an error message echoes it: control characters escaped
/// (`\n`, `\0`, `\u{1b}`: the message stays on one line) and cut to
/// [`ECHO_CHARS`] characters, saying how long it was when cut.
pub fn echo(s: &str) -> String {
    cut_escaped(s, ECHO_CHARS)
}

/// `s` with control characters escaped, cut to `max` characters (escapes
/// count), with `… (N bytes)` when cut.
pub fn cut_escaped(s: &str, max: usize) -> String {
    let mut out = String::new();
    let mut shown = 0;
    for c in s.chars() {
        if shown >= max {
            out.push_str(&format!("… ({} bytes)", s.len()));
            return out;
        }
        if c.is_control() || c == '\u{feff}' || c == '\u{2028}' || c == '\u{2029}' {
            let e: String = c.escape_default().collect();
            shown += e.chars().count();
            out.push_str(&e);
        } else {
            shown += 1;
            out.push(c);
        }
    }
    out
}

/// A message made safe to print as one line: control characters escaped and
/// the whole cut to [`MESSAGE_CHARS`] characters.
pub fn one_line(msg: &str) -> String {
    cut_escaped(msg, MESSAGE_CHARS)
}

/// A history that could not be read: where and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct HistoryError {
    /// The file (or `-` for standard input).
    pub file: String,
    /// 1-based line; 0 when the error concerns the whole file.
    pub line: usize,
    /// The reason.
    pub kind: HistoryErrorKind,
}

impl fmt::Display for HistoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The reason may quote input (and a parser's own message may quote
        // a lot of it): one line, bounded.
        let reason = one_line(&self.kind.to_string());
        let file = cut_escaped(&self.file, MESSAGE_CHARS);
        if self.line == 0 {
            write!(f, "{file}: {reason}")
        } else {
            write!(f, "{file}:{}: {reason}", self.line)
        }
    }
}

/// Why a model cannot check an operation of a history (the history does not
/// fit the model: a `cas` on a plain register, a value of the wrong shape).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ModelError {
    /// Source line of the operation.
    pub line: usize,
    /// What does not fit.
    pub reason: String,
}
