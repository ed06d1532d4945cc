//! Porcupine's etcd logs: its copies of Jepsen (2015) etcd runs, where each
//! operation is a log line of `jepsen.util`:
//!
//! ```text
//! INFO  jepsen.util - 3  :invoke  :cas    [3 0]
//! INFO  jepsen.util - 3  :ok      :read   nil
//! INFO  jepsen.util - 4  :info    :write  :timed-out
//! ```
//!
//! The fields are separated by tabs. After the literal prefix come the
//! process, the type, the function and the value, each an EDN form
//! (`[3 0]` is one form). Blank lines and the log lines of other loggers
//! are skipped, unless they look like an operation; any other line is an
//! error. There are no timestamps: the order is the
//! file's.
//!
//! Semantics: a `nil` read means the register is absent; a failed `cas`
//! means the compare failed ([`FailMeaning::CasCompareFailed`]). The value
//! `:timed-out` of an `info` or `fail` completion is the string
//! `"timed-out"`: an `info` result is unknown anyway, and a
//! `:fail :read :timed-out` is a failed read that constrains nothing.

use serde_json::Value;

use crate::error::{HistoryError, HistoryErrorKind, echo};
use crate::format::edn::{LineError, Parser, to_name, to_process, to_type};
use crate::history::{Event, FailMeaning, History, HistoryBuilder, NilRead, Process, Semantics};

/// The marker of operation lines.
const MARKER: &str = "jepsen.util";

/// The semantics of Porcupine's etcd logs.
pub fn etcd_semantics() -> Semantics {
    Semantics {
        nil_read: NilRead::Absent,
        fail: FailMeaning::CasCompareFailed,
        default_initial: None,
    }
}

fn syntax(line: usize, msg: impl Into<String>) -> LineError {
    LineError {
        line,
        kind: HistoryErrorKind::Syntax(msg.into()),
    }
}

/// Reads the next form of an operation line, with its text.
fn field<'a>(p: &mut Parser<'a>, line: usize, name: &str) -> Result<(Value, &'a str), LineError> {
    if p.at_end()? {
        return Err(syntax(
            line,
            format!("expected `jepsen.util - process type f value`: no {name}"),
        ));
    }
    let before = p.rest();
    let v = p.parse_form()?;
    let used = before.len() - p.rest().len();
    Ok((v, &before[..used]))
}

/// Parses what follows `jepsen.util` on line `line`: ` - process type f value`.
fn parse_line(after_marker: &str, line: usize) -> Result<Event, LineError> {
    let rest = after_marker.trim_start();
    let Some(rest) = rest
        .strip_prefix('-')
        .filter(|r| r.is_empty() || r.starts_with(|c: char| c.is_whitespace()))
    else {
        return Err(syntax(
            line,
            "expected `jepsen.util - process type f value`",
        ));
    };
    let mut p = Parser::new(rest, line);
    let (pv, ptext) = field(&mut p, line, "process")?;
    let (tv, ttext) = field(&mut p, line, "type")?;
    let (fv, ftext) = field(&mut p, line, "f")?;
    let process = to_process(pv, ptext).map_err(|kind| LineError { line, kind })?;
    if let Process::Other(name) = &process {
        if name.starts_with(['[', '{', '(', '#']) || name == "nil" {
            return Err(syntax(line, format!("invalid process `{}`", echo(name))));
        }
    }
    let kind = to_type(tv, ttext).map_err(|kind| LineError { line, kind })?;
    let f = to_name(fv, ftext);
    let raw_value = p.rest();
    let has_value = !p.at_end()?;
    let value = if !has_value {
        Value::Null
    } else {
        let parsed = p.parse_form().and_then(|v| {
            if p.at_end()? {
                Ok(v)
            } else {
                Err(syntax(
                    line,
                    format!("unexpected `{}` after the value", echo(p.rest().trim())),
                ))
            }
        });
        match (parsed, &process) {
            (Ok(v), _) => v,
            // Nemesis messages are free text: keep them as they are.
            (Err(_), Process::Other(_)) => Value::String(raw_value.trim().to_string()),
            (Err(e), Process::Client(_)) => return Err(e),
        }
    };
    Ok(Event {
        line,
        index: None,
        time: None,
        process,
        kind,
        f: f.into(),
        key: None,
        value,
        has_value,
        extra: serde_json::Map::new(),
    })
}

/// Log levels of the lines of other loggers.
const LEVELS: &[&str] = &[
    "TRACE", "DEBUG", "INFO", "WARN", "WARNING", "ERROR", "FATAL",
];

/// Checks a line without `jepsen.util`: it must be a log line of another
/// logger (`[timestamp] LEVEL logger - message`) whose message is not an
/// operation. Anything else is an error: a line the reader does not
/// understand is never skipped.
fn other_log_line(raw: &str, line: usize) -> Result<(), LineError> {
    let tokens: Vec<&str> = raw.split_whitespace().take(12).collect();
    let level = tokens.iter().take(6).position(|t| LEVELS.contains(t));
    let dash = level.and_then(|l| {
        tokens[l + 1..]
            .iter()
            .take(4)
            .position(|t| *t == "-")
            .map(|d| l + 1 + d)
    });
    let (Some(level), Some(dash)) = (level, dash) else {
        return Err(syntax(
            line,
            format!(
                "`{}` is not a log line (expected `LEVEL jepsen.util - process type f value`, \
                 or `LEVEL logger - message` of another logger)",
                echo(raw.trim())
            ),
        ));
    };
    let logger = tokens[level + 1..dash].join(" ");
    // `process type f ...`: an operation whatever its logger says.
    let message = &tokens[dash + 1..];
    if message.len() >= 3
        && matches!(message[1], ":invoke" | ":ok" | ":fail" | ":info")
        && message[2].starts_with(':')
    {
        return Err(syntax(
            line,
            format!(
                "an operation logged by `{}`, not `{MARKER}`: `{}`",
                echo(&logger),
                echo(raw.trim())
            ),
        ));
    }
    Ok(())
}

/// Reads a Porcupine etcd log. Blank lines are skipped, and so are the
/// lines of other loggers that are not operations; a `jepsen.util` line
/// that does not parse, an operation of another logger (`jepsen.utll`) and
/// a line that is not a log line are errors naming their line. A log with
/// no operation is an error.
pub fn read_etcd(source: &str, text: &str) -> Result<History, HistoryError> {
    let mut b = HistoryBuilder::new(source, etcd_semantics());
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let Some(at) = raw.find(MARKER) else {
            if !raw.trim().is_empty() {
                other_log_line(raw, line).map_err(|e| e.into_history_error(source))?;
            }
            continue;
        };
        let ev = parse_line(&raw[at + MARKER.len()..], line)
            .map_err(|e| e.into_history_error(source))?;
        b.push(ev)?;
    }
    if b.events() == 0 {
        return Err(b.error(0, HistoryErrorKind::Empty));
    }
    Ok(b.finish())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use serde_json::json;

    use super::*;
    use crate::format::edn::tests::{corpus_dir, files, run_all};
    use crate::format::{Format, read_path};
    use crate::history::{EventType, Outcome};

    fn read_str(s: &str) -> Result<History, HistoryError> {
        read_etcd("e.log", s)
    }

    #[track_caller]
    fn fails_at(text: &str, line: usize, what: &str) {
        let e = match read_str(text) {
            Ok(h) => panic!("{text:?} was read: {} ops", h.len()),
            Err(e) => e,
        };
        assert_eq!(e.line, line, "{e}");
        let msg = e.to_string();
        assert!(msg.starts_with(&format!("e.log:{line}: ")), "{msg}");
        assert!(msg.contains(what), "{msg}");
    }

    #[test]
    fn reads_values_and_pairs() {
        let h = read_str(
            "INFO  jepsen.util - 0\t:invoke\t:read\tnil\n\
             INFO  jepsen.util - 3\t:invoke\t:cas\t[3 0]\n\
             INFO  jepsen.util - 0\t:ok\t:read\tnil\n\
             \n\
             INFO  jepsen.core - some other log line\n\
             INFO  jepsen.util - 3\t:fail\t:cas\t[3 0]\n\
             INFO  jepsen.util - 4\t:invoke\t:write\t2\n\
             INFO  jepsen.util - 4\t:info\t:write\t:timed-out\n\
             INFO  jepsen.util - 1  :invoke  :read  nil\r\n\
             INFO  jepsen.util - 1\t:fail\t:read\t:timed-out\n\
             2015-05-01 12:00:00 INFO  jepsen.util - :nemesis\t:info\t:start\tCut off {:n1 #{:n2}}\n\
             INFO  jepsen.util - 2\t:invoke\t:read\tnil\n",
        )
        .unwrap();
        assert_eq!(h.events, 10);
        assert_eq!(h.len(), 5);
        let r = &h.ops[0];
        assert_eq!((r.process, &*r.f, r.outcome), (0, "read", Outcome::Ok));
        assert_eq!(
            (r.invoke_value.clone(), r.value.clone()),
            (Value::Null, Value::Null)
        );
        assert_eq!((r.invoke_line(), r.complete_line()), (1, Some(3)));
        assert_eq!(
            (r.invoke_time(), r.invoke_index, r.key.clone()),
            (None, 0, None)
        );
        let c = &h.ops[1];
        assert_eq!(
            (c.outcome, &c.invoke_value),
            (Outcome::Fail, &json!([3, 0]))
        );
        assert_eq!(c.complete_line(), Some(6));
        let w = &h.ops[2];
        assert_eq!((w.outcome, &w.invoke_value), (Outcome::Info, &json!(2)));
        assert_eq!(w.value, json!("timed-out"));
        let fr = &h.ops[3];
        assert_eq!(
            (fr.outcome, &fr.value),
            (Outcome::Fail, &json!("timed-out"))
        );
        assert_eq!(h.ops[4].outcome, Outcome::Pending);
        assert_eq!(h.faults.len(), 1);
        let nem = &h.faults[0];
        assert_eq!(nem.process, Process::Other("nemesis".into()));
        assert_eq!((nem.kind, &*nem.f), (EventType::Info, "start"));
        assert_eq!(nem.value, json!("Cut off {:n1 #{:n2}}"), "free text kept");
        assert_eq!(nem.line, 11);
        assert_eq!(h.semantics.nil_read, NilRead::Absent);
        assert_eq!(h.semantics.fail, FailMeaning::CasCompareFailed);
        assert_eq!(h.semantics.default_initial, None);
        // A value may be missing (nil) and nemesis values may be EDN.
        let h = read_str("INFO jepsen.util - :nemesis :info :stop\nINFO jepsen.util - :nemesis :info :start [:isolated {\"n1\" #{\"n2\"}}]\n").unwrap();
        assert_eq!(h.faults[0].value, Value::Null);
        assert_eq!(h.faults[1].value, json!(["isolated", {"n1": ["n2"]}]));
    }

    #[test]
    fn malformed_lines_name_the_line() {
        let ok = "INFO  jepsen.util - 0\t:invoke\t:read\tnil\n";
        fails_at(
            &format!("{ok}INFO  jepsen.util - 0\t:ok\t:read\t[1 2\n"),
            2,
            "unterminated vector",
        );
        fails_at(
            &format!("{ok}INFO  jepsen.util - 0\t:ok\t:read\t1 2\n"),
            2,
            "unexpected `2` after the value",
        );
        fails_at(
            &format!("{ok}INFO  jepsen.util - 0\t:ok\t:read\t\"x\n"),
            2,
            "unterminated string",
        );
        fails_at(
            &format!("\n{ok}INFO  jepsen.util - 0\t:done\t:read\tnil\n"),
            3,
            "unknown type `done`",
        );
        fails_at(&format!("{ok}INFO  jepsen.util - 0\t:ok\n"), 2, "no f");
        fails_at("INFO  jepsen.util - 0\n", 1, "no type");
        fails_at("INFO  jepsen.util -\n", 1, "no process");
        fails_at(
            "INFO  jepsen.util 0 :invoke :read nil\n",
            1,
            "expected `jepsen.util - process type f value`",
        );
        fails_at(
            "INFO  jepsen.util - [1] :invoke :read nil\n",
            1,
            "invalid process `[1]`",
        );
        fails_at(
            "INFO  jepsen.util - 0 :invoke :read 12x\n",
            1,
            "invalid number",
        );
        fails_at(
            &format!("{ok}{ok}"),
            2,
            "process 0 invokes again while its invocation on line 1",
        );
        fails_at(
            "INFO  jepsen.util - 2\t:ok\t:read\t1\n",
            1,
            "`ok` completion for process 2",
        );
        let e = read_str("INFO  jepsen.core - no ops here\n\n").unwrap_err();
        assert_eq!((e.line, e.kind), (0, HistoryErrorKind::Empty));
    }

    #[test]
    fn etcd_lines_that_look_like_events_must_parse() {
        let ok = "INFO  jepsen.util - 1\t:invoke\t:read\tnil\n";
        // A misspelt logger does not hide an operation.
        fails_at(
            &format!("{ok}INFO  jepsen.utll - 1\t:ok\t:read\t2\n"),
            2,
            "an operation logged by `jepsen.utll`, not `jepsen.util`",
        );
        // Text that is not a log line is an error, not skipped.
        fails_at(&format!("{ok}x\nx\n"), 2, "`x` is not a log line");
        fails_at(&"x\n".repeat(1000), 1, "`x` is not a log line");
        // The error echoes at most ~80 characters, escaped.
        let e = read_str(&format!("{}\u{0}\n", "y".repeat(100_000))).unwrap_err();
        let msg = e.to_string();
        assert!(msg.len() < 400 && !msg.contains('\u{0}'), "{msg}");
        assert!(msg.contains("(100001 bytes)"), "{msg}");
        // Other loggers' lines are skipped; a log without operations is an
        // error.
        let h = read_str(&format!(
            "2015-05-01 12:00:00,001 INFO  jepsen.core - Running test\n{ok}"
        ))
        .unwrap();
        assert_eq!(h.len(), 1);
        let e = read_str("WARN  jepsen.core - nothing\n").unwrap_err();
        assert_eq!((e.line, e.kind), (0, HistoryErrorKind::Empty));
    }

    #[test]
    fn etcd_rules_shared_with_every_format() {
        let inv = "INFO  jepsen.util - 1\t:invoke\t:read\tnil\n";
        // Integers beyond 64 bits are refused, never rounded to a float.
        fails_at(
            &format!("{inv}INFO  jepsen.util - 1\t:ok\t:read\t18446744073709551617\n"),
            2,
            "integer 18446744073709551617 is out of range (faultline compares values exactly",
        );
        // Process ids beyond 2^63-1, or negative, are refused.
        for p in ["9223372036854775808", "-1"] {
            fails_at(
                &format!("INFO  jepsen.util - {p}\t:invoke\t:read\tnil\n"),
                1,
                "process out of range",
            );
        }
        fails_at(
            "INFO  jepsen.util - 18446744073709551616\t:invoke\t:read\tnil\n",
            1,
            "integer 18446744073709551616 is out of range",
        );
        // An ok read needs a value.
        fails_at(
            &format!("{inv}INFO  jepsen.util - 1\t:ok\t:read\n"),
            2,
            "`ok` read without a `value` field",
        );
        // A write completes with the value it was invoked with.
        fails_at(
            "INFO  jepsen.util - 1\t:invoke\t:write\t1\nINFO  jepsen.util - 1\t:ok\t:write\t2\n",
            2,
            "process 1 completes `write 2` but invoked `write 1` on line 1",
        );
        // A byte order mark is accepted.
        let h = read_path_str(&format!("\u{feff}{inv}"));
        assert_eq!(h.len(), 1);
    }

    fn read_path_str(text: &str) -> History {
        crate::format::read_from("e.log", text.as_bytes(), Format::Auto)
            .unwrap_or_else(|e| panic!("{e}"))
            .0
    }

    #[test]
    fn fuzz_never_panics() {
        let base = "INFO  jepsen.util - 3\t:invoke\t:cas\t[3 0]\nINFO  jepsen.util - 3\t:ok\t:cas\t[3 0]\n";
        for i in 0..base.len() {
            if base.is_char_boundary(i) {
                run_all(&base[..i]);
                run_all(&format!("{}{}", &base[..i], &base[i + 1..]));
            }
        }
        for junk in [
            "jepsen.util",
            "jepsen.util -",
            "jepsen.util - \\",
            "jepsen.util - 1 :ok :read #_",
            "jepsen.util - é ü",
        ] {
            run_all(junk);
        }
    }

    #[test]
    fn corpus_etcd() {
        let Some(corpus) = corpus_dir("corpus_etcd") else {
            return;
        };
        let all = files(&corpus.join("porcupine/etcd"), ".log");
        assert_eq!(all.len(), 50);
        for path in &all {
            let (h, fmt) = read_path(path, Format::Auto).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(fmt, Format::PorcupineEtcd, "{}", path.display());
            assert_eq!(h.semantics, etcd_semantics());
            // README: 73-90 operations each.
            assert!(
                (73..=90).contains(&h.len()),
                "{}: {} ops",
                path.display(),
                h.len()
            );
            assert!(h.faults.is_empty());
        }
        // Counted with grep: one event per line, one op per `:invoke`.
        let dir = corpus.join("porcupine/etcd");
        for (file, events, ops) in [
            ("etcd_000.log", 170, 85),
            ("etcd_002.log", 154, 77),
            ("etcd_049.log", 168, 84),
        ] {
            let (h, _) = read_path(&dir.join(file), Format::Auto).unwrap();
            assert_eq!((h.events, h.len()), (events, ops), "{file}");
        }
        // Five client processes. Jepsen gives a process that timed out a
        // new id (id + 5), so etcd_000 has 19 distinct ids, but only five
        // slots (id mod 5), and never more than five operations in flight.
        let (h, _) = read_path(&dir.join("etcd_000.log"), Format::Auto).unwrap();
        let ids: HashSet<i64> = h.ops.iter().map(|o| o.process).collect();
        assert_eq!(ids.len(), 19);
        let slots: HashSet<i64> = ids.iter().map(|p| p.rem_euclid(5)).collect();
        assert_eq!(slots.len(), 5);
        let mut in_flight = 0i64;
        let mut most = 0;
        let mut marks: Vec<(usize, i64)> = Vec::new();
        for o in &h.ops {
            marks.push((o.invoke_pos(), 1));
            if let Some(c) = o.complete_pos() {
                marks.push((c, -1));
            }
        }
        marks.sort();
        for (_, d) in marks {
            in_flight += d;
            most = most.max(in_flight);
        }
        assert_eq!(most, 5);
        let first = &h.ops[0];
        assert_eq!(
            (first.process, &*first.f, first.invoke_line()),
            (0, "read", 1)
        );
        let timed_out = h
            .ops
            .iter()
            .filter(|o| o.value == json!("timed-out"))
            .count();
        assert!(timed_out > 0);
        assert!(
            h.ops
                .iter()
                .all(|o| o.value != json!("timed-out") || o.outcome != Outcome::Ok)
        );
    }
}
