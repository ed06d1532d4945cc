//! `faultline synth` end to end: runs the built binary.

mod cli_common;

use cli_common::{faultline, stderr};

#[test]
fn writes_a_well_formed_history_to_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.jsonl");
    let p = path.to_str().unwrap();
    let out = faultline(&[
        "synth", "--ops", "1000", "--keys", "3", "--seed", "7", "-o", p,
    ]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert!(out.stdout.is_empty(), "nothing on stdout with -o");
    assert!(out.stderr.is_empty(), "nothing on stderr without --inject");
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2000);
    let mut last_time = -1i64;
    let mut invokes = 0;
    for (i, line) in lines.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let obj = v.as_object().expect("an object per line");
        for field in ["index", "time", "process", "type", "f", "key", "value"] {
            assert!(obj.contains_key(field), "line {i} lacks {field}: {line}");
        }
        assert_eq!(v["index"].as_u64(), Some(i as u64));
        let t = v["time"].as_i64().unwrap();
        assert!(t > last_time);
        last_time = t;
        assert!(v["process"].is_u64());
        let kind = v["type"].as_str().unwrap();
        assert!(["invoke", "ok", "fail", "info"].contains(&kind), "{line}");
        invokes += usize::from(kind == "invoke");
        assert!(["read", "write", "cas"].contains(&v["f"].as_str().unwrap()));
        assert!(["k0", "k1", "k2"].contains(&v["key"].as_str().unwrap()));
    }
    assert_eq!(invokes, 1000);

    // Same flags, same bytes, on stdout this time.
    let again = faultline(&["synth", "--ops", "1000", "--keys", "3", "--seed", "7"]);
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(again.stdout, text.as_bytes());
}

#[test]
fn injection_is_reported_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.jsonl");
    let p = path.to_str().unwrap();
    let args = [
        "synth",
        "--ops",
        "2000",
        "--keys",
        "20",
        "--inject",
        "stale-read",
        "-o",
        p,
    ];
    let out = faultline(&args);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert!(out.stdout.is_empty());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    let report: serde_json::Value = serde_json::from_str(err.trim()).unwrap();
    assert_eq!(report["injected"], "stale-read");
    let index = report["index"].as_u64().unwrap() as usize;
    let text = std::fs::read_to_string(&path).unwrap();
    let line: serde_json::Value = serde_json::from_str(text.lines().nth(index).unwrap()).unwrap();
    assert_eq!(line["type"], "ok");
    assert_eq!(line["f"], "read");
    assert_eq!(line["value"], report["value"]);
    assert_eq!(line["key"], report["key"]);
    assert_eq!(line["process"], report["process"]);
}

#[test]
fn bad_flags_exit_2_with_one_line_naming_the_flag() {
    let cases: &[(&[&str], &str)] = &[
        (&["--info", "1.5"], "--info"),
        (&["--fail", "nope"], "--fail"),
        (&["--processes", "0"], "--processes"),
        (&["--keys", "-3"], "--keys"),
        (&["--ops", "0"], "--ops"),
        (&["--model", "queue"], "--model"),
        (&["--mix", "read=0.5,delete=0.5"], "--mix"),
        (&["--inject", "dirty-read"], "--inject"),
        (&["--mix", "read=1", "--inject", "lost-write"], "--inject"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("never.jsonl");
    for (flags, flag) in cases {
        let mut args = vec!["synth", "-o", path.to_str().unwrap()];
        args.extend_from_slice(flags);
        let out = faultline(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {err}");
        assert_eq!(
            err.lines().count(),
            1,
            "{flags:?}: one line expected, got {err}"
        );
        assert!(err.contains(flag), "{flags:?}: {err} does not name {flag}");
        assert!(out.stdout.is_empty());
        assert!(!path.exists(), "{flags:?}: no file left behind");
    }
}

/// A failed write removes only what synth created: here `-o` names a link
/// to /dev/full (as `-o /dev/null` names a device), which must survive,
/// for the plain and the transactional generator alike.
#[test]
fn a_failed_write_never_removes_what_was_there() {
    assert!(
        std::path::Path::new("/dev/full").exists(),
        "/dev/full is missing: this test needs it"
    );
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("out");
    std::os::unix::fs::symlink("/dev/full", &link).unwrap();
    let p = link.to_str().unwrap();
    for model in ["cas-register", "list-append"] {
        let out = faultline(&["synth", "--model", model, "--ops", "20000", "-o", p]);
        assert_eq!(out.status.code(), Some(2), "{model}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("No space left on device"),
            "{model}: {}",
            stderr(&out)
        );
        assert!(
            std::fs::symlink_metadata(&link).is_ok(),
            "{model}: synth removed {}",
            link.display()
        );
    }
}
