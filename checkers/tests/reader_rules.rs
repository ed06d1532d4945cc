//! The rules every history reader shares (issue 10), checked on the same
//! history written in each format: JSON Lines, one JSON array, EDN and
//! Porcupine's etcd log. A semantically identical file gives the same
//! history, the same verdict, or the same error on the same event.

use faultline_checkers::format::{Format, read_from};
use faultline_checkers::linear::{self, LinearOptions};
use faultline_checkers::{History, HistoryError, ModelKind, Validity};

/// One event: process, type, f, and the value's text (`None`: no value
/// field). Numbers are written as they are in every format.
type Ev<'a> = (&'a str, &'a str, &'a str, Option<&'a str>);

/// The formats a plain register history can be written in.
#[derive(Clone, Copy, Debug)]
enum Layout {
    JsonLines,
    JsonArray,
    Edn,
    Etcd,
}

const ALL: [Layout; 4] = [
    Layout::JsonLines,
    Layout::JsonArray,
    Layout::Edn,
    Layout::Etcd,
];

/// Layouts whose reader already follows the shared rules for the case at
/// hand (the JSON reader is being rewritten in parallel; see the report).
const NOT_JSON: [Layout; 2] = [Layout::Edn, Layout::Etcd];

fn render(layout: Layout, evs: &[Ev<'_>]) -> String {
    let json_ev = |&(p, t, f, v): &Ev<'_>| {
        let p = match p.strip_prefix(':') {
            Some(name) => format!("\"{name}\""),
            None => p.to_string(),
        };
        match v {
            Some(v) => format!(r#"{{"process":{p},"type":"{t}","f":"{f}","value":{v}}}"#),
            None => format!(r#"{{"process":{p},"type":"{t}","f":"{f}"}}"#),
        }
    };
    let edn_value = |v: &str| {
        if v == "null" {
            "nil".to_string()
        } else {
            v.to_string()
        }
    };
    match layout {
        Layout::JsonLines => evs.iter().map(|e| json_ev(e) + "\n").collect(),
        Layout::JsonArray => format!(
            "[\n{}\n]\n",
            evs.iter().map(json_ev).collect::<Vec<_>>().join(",\n")
        ),
        Layout::Edn => evs
            .iter()
            .map(|&(p, t, f, v)| match v {
                Some(v) => format!(
                    "{{:process {p}, :type :{t}, :f :{f}, :value {}}}\n",
                    edn_value(v)
                ),
                None => format!("{{:process {p}, :type :{t}, :f :{f}}}\n"),
            })
            .collect(),
        Layout::Etcd => evs
            .iter()
            .map(|&(p, t, f, v)| match v {
                Some(v) => format!("INFO  jepsen.util - {p}\t:{t}\t:{f}\t{}\n", edn_value(v)),
                None => format!("INFO  jepsen.util - {p}\t:{t}\t:{f}\n"),
            })
            .collect(),
    }
}

/// The line of event `i` (0-based) in `layout`.
fn line_of(layout: Layout, i: usize) -> usize {
    match layout {
        Layout::JsonArray => i + 2,
        _ => i + 1,
    }
}

fn read(layout: Layout, text: &str) -> Result<History, HistoryError> {
    read_from("h", text.as_bytes(), Format::Auto)
        .map(|(h, _)| h)
        .inspect_err(|e| {
            // Every error is one line naming the file.
            let msg = e.to_string();
            assert!(
                !msg.contains('\n') && msg.starts_with("h:"),
                "{layout:?}: {msg}"
            );
        })
}

/// Every layout refuses `evs` at event `at` with a message containing
/// `what`.
#[track_caller]
fn refused(layouts: &[Layout], evs: &[Ev<'_>], at: usize, what: &str) {
    for &l in layouts {
        let text = render(l, evs);
        match read(l, &text) {
            Ok(h) => panic!("{l:?} read {text:?}: {} ops", h.len()),
            Err(e) => {
                assert_eq!(e.line, line_of(l, at), "{l:?}: {e}");
                assert!(e.to_string().contains(what), "{l:?}: {e}");
            }
        }
    }
}

/// Every layout reads `evs`, and linearizability gives `expected`.
#[track_caller]
fn verdict(layouts: &[Layout], evs: &[Ev<'_>], expected: Validity) {
    for &l in layouts {
        let text = render(l, evs);
        let h = read(l, &text).unwrap_or_else(|e| panic!("{l:?}: {e}"));
        let r = linear::check(&h, &LinearOptions::new(ModelKind::Register))
            .unwrap_or_else(|e| panic!("{l:?}: {e}"));
        assert_eq!(r.valid, expected, "{l:?}: {text}");
    }
}

const TWO_64: &str = "18446744073709551616";

#[test]
fn integers_beyond_64_bits_are_refused_not_rounded() {
    let evs = [
        ("0", "invoke", "write", Some(TWO_64)),
        ("0", "ok", "write", Some(TWO_64)),
        ("1", "invoke", "read", Some("null")),
        ("1", "ok", "read", Some("18446744073709551617")),
    ];
    refused(
        &NOT_JSON,
        &evs,
        0,
        &format!(
            "integer {TWO_64} is out of range (faultline compares values exactly, within 64 bits)"
        ),
    );
    let neg = [("0", "invoke", "write", Some("-9223372036854775809"))];
    refused(
        &NOT_JSON,
        &neg,
        0,
        "integer -9223372036854775809 is out of range",
    );
}

#[test]
fn integers_within_64_bits_compare_exactly() {
    // u64::MAX written, u64::MAX - 1 read: a float would make them equal.
    let stale = [
        ("0", "invoke", "write", Some("18446744073709551615")),
        ("0", "ok", "write", Some("18446744073709551615")),
        ("1", "invoke", "read", Some("null")),
        ("1", "ok", "read", Some("18446744073709551614")),
    ];
    verdict(&ALL, &stale, Validity::Invalid);
    let fine = [
        ("0", "invoke", "write", Some("-9223372036854775808")),
        ("0", "ok", "write", Some("-9223372036854775808")),
        ("1", "invoke", "read", Some("null")),
        ("1", "ok", "read", Some("-9223372036854775808")),
    ];
    verdict(&ALL, &fine, Validity::Valid);
}

#[test]
fn process_ids_out_of_range_are_refused_not_taken_for_the_nemesis() {
    for p in ["9223372036854775808", "18446744073709551615", "-1"] {
        refused(
            &ALL,
            &[(p, "invoke", "read", Some("null"))],
            0,
            "process out of range",
        );
    }
    refused(
        &NOT_JSON,
        &[(TWO_64, "invoke", "read", Some("null"))],
        0,
        "is out of range",
    );
    // A keyword or string process is the nemesis, as before.
    let h = read(
        Layout::Edn,
        &render(Layout::Edn, &[(":nemesis", "info", "start", None)]),
    );
    assert_eq!(h.map(|h| h.faults.len()).ok(), Some(1));
}

#[test]
fn ok_read_without_value_is_malformed() {
    let evs = [
        ("0", "invoke", "write", Some("1")),
        ("0", "ok", "write", Some("1")),
        ("0", "invoke", "write", Some("2")),
        ("0", "ok", "write", Some("2")),
        ("1", "invoke", "read", Some("null")),
        ("1", "ok", "read", None),
    ];
    refused(&ALL, &evs, 5, "`ok` read without a `value` field");
    // A null value is a value: read nothing (JSON, etcd) or unknown (EDN).
    let mut with_null = evs;
    with_null[5].3 = Some("null");
    for l in ALL {
        assert!(read(l, &render(l, &with_null)).is_ok(), "{l:?}");
    }
}

#[test]
fn write_completed_with_another_value_is_malformed() {
    let evs = [
        ("0", "invoke", "write", Some("1")),
        ("0", "ok", "write", Some("2")),
        ("1", "invoke", "read", Some("null")),
        ("1", "ok", "read", Some("2")),
    ];
    refused(
        &ALL,
        &evs,
        1,
        "process 0 completes `write 2` but invoked `write 1` on line",
    );
    // The completion may repeat the value, or carry none.
    let mut same = evs;
    same[1].3 = Some("1");
    same[3].3 = Some("1");
    verdict(&ALL, &same, Validity::Valid);
    let mut none = same;
    none[1].3 = None;
    verdict(&ALL, &none, Validity::Valid);
}

#[test]
fn negative_zero_is_the_integer_zero() {
    let evs = [
        ("0", "invoke", "write", Some("-0")),
        ("0", "ok", "write", Some("-0")),
        ("1", "invoke", "read", Some("null")),
        ("1", "ok", "read", Some("0")),
    ];
    verdict(&NOT_JSON, &evs, Validity::Valid);
}

#[test]
fn byte_order_mark_is_accepted_everywhere() {
    let evs = [
        ("0", "invoke", "write", Some("1")),
        ("0", "ok", "write", Some("1")),
    ];
    for l in ALL {
        let text = format!("\u{feff}{}", render(l, &evs));
        let h = read(l, &text).unwrap_or_else(|e| panic!("{l:?}: {e}"));
        assert_eq!(h.len(), 1, "{l:?}");
        // And with the format named.
        let named = match l {
            Layout::JsonLines | Layout::JsonArray => Format::Json,
            Layout::Edn => Format::Edn,
            Layout::Etcd => Format::PorcupineEtcd,
        };
        read_from("h", text.as_bytes(), named).unwrap_or_else(|e| panic!("{l:?}: {e}"));
    }
}

#[test]
fn invalid_utf8_names_the_line() {
    let evs = [
        ("0", "invoke", "write", Some("\"a\"")),
        ("0", "ok", "write", Some("\"a\"")),
        ("1", "invoke", "read", Some("null")),
        ("1", "ok", "read", Some("\"\u{e9}\"")),
    ];
    for l in ALL {
        let text = render(l, &evs);
        // Cut the é in half: one invalid byte on the last event's line.
        let at = text.find('\u{e9}').expect("é");
        let mut bytes = text.as_bytes().to_vec();
        bytes.remove(at + 1);
        let e = read_from("h", &bytes[..], Format::Auto).expect_err("invalid UTF-8");
        assert_eq!(e.line, line_of(l, 3), "{l:?}: {e}");
        let msg = e.to_string();
        assert!(
            msg.contains("UTF-8") || msg.contains("unicode"),
            "{l:?}: {msg}"
        );
    }
}

#[test]
fn comments_before_the_first_edn_op_do_not_stop_detection() {
    let mut text = ";; a comment line, repeated\n".repeat(600_000);
    text.push_str(&render(
        Layout::Edn,
        &[
            ("0", "invoke", "write", Some("1")),
            ("0", "ok", "write", Some("1")),
        ],
    ));
    let (h, f) = read_from("h", text.as_bytes(), Format::Auto).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((f, h.len()), (Format::Edn, 1));
    assert_eq!(h.ops[0].invoke_line(), 600_001);
    // Only comments: no events (not "cannot tell the format").
    let e = read_from("h", ";; x\n".repeat(10).as_bytes(), Format::Auto).unwrap_err();
    assert_eq!(e.to_string(), "h: no events");
}

#[test]
fn duplicate_keys_are_refused() {
    let e = read_from(
        "h",
        "{:process 0, :type :invoke, :f :write, :value 1}\n{:process 0, :type :ok, :f :write,\n :value 1 :value 2}\n"
            .as_bytes(),
        Format::Auto,
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "h:3: duplicate key `value` in one map");
    let e = read_from(
        "h",
        "{:process 0, :type :invoke, :f :write, :value {:a 1, :a 2}}\n".as_bytes(),
        Format::Auto,
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "h:1: duplicate key `a` in one map");
}

#[test]
fn index_is_a_non_negative_64_bit_integer() {
    for (index, what) in [
        (
            "-1",
            "field `index`: expected an integer from 0 to 2^63-1, found `-1`",
        ),
        (
            "9223372036854775808",
            "field `index`: expected an integer from 0 to 2^63-1",
        ),
        (
            "1180591620717411303424",
            "integer 1180591620717411303424 is out of range",
        ),
    ] {
        let text = format!("{{:index {index}, :process 0, :type :invoke, :f :read}}\n");
        let e = read_from("h", text.as_bytes(), Format::Auto).unwrap_err();
        assert!(
            e.to_string().starts_with("h:1: ") && e.to_string().contains(what),
            "{e}"
        );
    }
}

/// The same rules in the JSON formats (JSON Lines and one array).
#[test]
fn json_follows_the_shared_rules() {
    const JSON: [Layout; 2] = [Layout::JsonLines, Layout::JsonArray];
    refused(
        &JSON,
        &[("0", "invoke", "write", Some(TWO_64))],
        0,
        &format!("integer {TWO_64} is out of range"),
    );
    refused(
        &JSON,
        &[(TWO_64, "invoke", "read", Some("null"))],
        0,
        "is out of range",
    );
    verdict(
        &JSON,
        &[
            ("0", "invoke", "write", Some("-0")),
            ("0", "ok", "write", Some("-0")),
            ("1", "invoke", "read", Some("null")),
            ("1", "ok", "read", Some("0")),
        ],
        Validity::Valid,
    );
    let e = read_from(
        "h",
        br#"{"process":0,"type":"invoke","f":"write","value":1,"value":2}"#.as_slice(),
        Format::Auto,
    )
    .unwrap_err();
    assert!(e.to_string().contains("duplicate key `value`"), "{e}");
    for index in ["-1", "1180591620717411303424"] {
        let text = format!(r#"{{"index":{index},"process":0,"type":"invoke","f":"read"}}"#);
        let e = read_from("h", text.as_bytes(), Format::Auto).unwrap_err();
        assert!(e.to_string().starts_with("h:1: "), "{e}");
    }
}
