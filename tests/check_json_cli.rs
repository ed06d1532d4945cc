//! `faultline check` on faultline's JSON formats (JSON Lines and one JSON
//! array): the reproducers of issue 10 that used to give a wrong verdict now
//! exit 2 with one line naming the file, the line and the reason, and what
//! is exact stays exact.

use std::path::Path;
use std::process::{Command, Output};

fn check(file: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("check")
        .args(extra)
        .arg(file)
        .output()
        .expect("runs faultline")
}

/// The events as JSON Lines and as one JSON array (the `[` on its own line,
/// so that both forms give the events the same line numbers plus one).
fn write_both(dir: &Path, name: &str, lines: &[&str]) -> [(String, usize); 2] {
    let jsonl = dir.join(format!("{name}.jsonl"));
    std::fs::write(&jsonl, lines.join("\n") + "\n").expect("write");
    let array = dir.join(format!("{name}.json"));
    std::fs::write(&array, format!("[\n{}\n]\n", lines.join(",\n"))).expect("write");
    [
        (jsonl.display().to_string(), 0),
        (array.display().to_string(), 1),
    ]
}

fn fails_with(o: &Output, file: &str, line: usize, what: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&format!(": {file}:{line}: ")), "{err}");
    assert!(err.contains(what), "{err} lacks {what}");
}

#[test]
fn integers_beyond_64_bits_exit_2_instead_of_linearizable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lines = [
        r#"{"process":0,"type":"invoke","f":"write","value":18446744073709551616}"#,
        r#"{"process":0,"type":"ok","f":"write","value":18446744073709551616}"#,
        r#"{"process":1,"type":"invoke","f":"read","value":null}"#,
        r#"{"process":1,"type":"ok","f":"read","value":18446744073709551617}"#,
    ];
    for (file, shift) in write_both(dir.path(), "big", &lines) {
        let o = check(&file, &[]);
        fails_with(
            &o,
            &file,
            1 + shift,
            "integer 18446744073709551616 is out of range (faultline compares values exactly, within 64 bits)",
        );
    }
}

#[test]
fn process_of_2_64_exits_2_instead_of_dropping_its_stale_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lines = [
        r#"{"process":0,"type":"invoke","f":"write","value":1}"#,
        r#"{"process":0,"type":"ok","f":"write","value":1}"#,
        r#"{"process":18446744073709551616,"type":"invoke","f":"read","value":null}"#,
        r#"{"process":18446744073709551616,"type":"ok","f":"read","value":0}"#,
    ];
    for (file, shift) in write_both(dir.path(), "proc", &lines) {
        let o = check(&file, &[]);
        fails_with(
            &o,
            &file,
            3 + shift,
            "integer 18446744073709551616 is out of range",
        );
    }
}

#[test]
fn largest_integers_compare_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lines = [
        r#"{"process":0,"type":"invoke","f":"write","value":18446744073709551615}"#,
        r#"{"process":0,"type":"ok","f":"write","value":18446744073709551615}"#,
        r#"{"process":1,"type":"invoke","f":"read","value":null}"#,
        r#"{"process":1,"type":"ok","f":"read","value":18446744073709551614}"#,
    ];
    for (file, _) in write_both(dir.path(), "edge", &lines) {
        assert_eq!(check(&file, &[]).status.code(), Some(1), "{file}");
    }
    let mut same = lines;
    same[3] = r#"{"process":1,"type":"ok","f":"read","value":18446744073709551615}"#;
    for (file, _) in write_both(dir.path(), "same", &same) {
        assert_eq!(check(&file, &[]).status.code(), Some(0), "{file}");
    }
}

#[test]
fn minus_zero_written_and_zero_read_holds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lines = [
        r#"{"process":0,"type":"invoke","f":"write","value":-0}"#,
        r#"{"process":0,"type":"ok","f":"write","value":-0}"#,
        r#"{"process":1,"type":"invoke","f":"read","value":null}"#,
        r#"{"process":1,"type":"ok","f":"read","value":0}"#,
    ];
    for (file, _) in write_both(dir.path(), "zero", &lines) {
        let o = check(&file, &[]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
}

#[test]
fn duplicate_keys_and_bad_index_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let w = r#"{"process":0,"type":"invoke","f":"write","value":1}"#;
    for (name, line, what) in [
        (
            "dup",
            r#"{"process":0,"type":"ok","f":"write","value":1,"value":2}"#,
            "duplicate key `value` in one map",
        ),
        (
            "negindex",
            r#"{"index":-1,"process":0,"type":"ok","f":"write","value":1}"#,
            "field `index`: expected an integer from 0 to 2^63-1, found `-1`",
        ),
        (
            "bigindex",
            r#"{"index":1180591620717411303424,"process":0,"type":"ok","f":"write","value":1}"#,
            "integer 1180591620717411303424 is out of range",
        ),
    ] {
        for (file, shift) in write_both(dir.path(), name, &[w, line]) {
            fails_with(&check(&file, &[]), &file, 2 + shift, what);
        }
    }
}

#[test]
fn byte_order_mark_is_accepted_with_format_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bom.jsonl");
    std::fs::write(
        &file,
        "\u{feff}{\"process\":0,\"type\":\"invoke\",\"f\":\"write\",\"value\":1}\n\
         {\"process\":0,\"type\":\"ok\",\"f\":\"write\",\"value\":1}\n",
    )
    .expect("write");
    let file = file.display().to_string();
    let o = check(&file, &["--format", "json"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn invalid_utf8_names_the_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.jsonl");
    let mut text = b"{\"process\":0,\"type\":\"invoke\",\"f\":\"write\",\"value\":1}\n".to_vec();
    text.extend_from_slice(
        b"{\"process\":0,\"type\":\"ok\",\"f\":\"write\",\"value\":\"\xc3\x28\"}\n",
    );
    std::fs::write(&file, text).expect("write");
    let file = file.display().to_string();
    fails_with(
        &check(&file, &["--format", "json"]),
        &file,
        2,
        "invalid UTF-8",
    );
}
