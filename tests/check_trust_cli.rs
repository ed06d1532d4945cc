//! `faultline check` on hostile input and hostile surroundings (issue 10):
//! wrong verdicts refused through the command line, no panic on a closed
//! pipe, a full disk or huge limits, bounded one-line errors, bounded
//! witnesses, outputs that would overwrite an input.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("runs faultline")
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn write(dir: &Path, name: &str, text: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write test file");
    p
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A register history of `n` writes and reads, linearizable.
fn history(n: usize) -> String {
    let mut out = String::new();
    for i in 0..n {
        out.push_str(&format!(
            "{{\"process\":0,\"type\":\"invoke\",\"f\":\"write\",\"value\":{i}}}\n\
             {{\"process\":0,\"type\":\"ok\",\"f\":\"write\",\"value\":{i}}}\n\
             {{\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"value\":null}}\n\
             {{\"process\":1,\"type\":\"ok\",\"f\":\"read\",\"value\":{i}}}\n"
        ));
    }
    out
}

/// The error is one line on stderr, naming the file (and line), bounded,
/// without raw control characters.
#[track_caller]
fn one_line_error(o: &Output, starts: &str) -> String {
    assert_eq!(code(o), 2, "{}", stderr(o));
    let err = stderr(o);
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(err.ends_with('\n'));
    let line = err.trim_end_matches('\n');
    assert!(
        !line.chars().any(char::is_control),
        "raw control character: {line:?}"
    );
    assert!(line.len() < 600, "{} bytes: {}", line.len(), &line[..200]);
    assert!(line.starts_with(starts), "{line}");
    line.to_string()
}

#[test]
fn big_integers_give_exit_2_in_edn_and_etcd() {
    let dir = tempfile::tempdir().expect("tempdir");
    let edn = write(
        dir.path(),
        "h.edn",
        b"{:process 0, :type :invoke, :f :write, :value 18446744073709551616}\n\
          {:process 0, :type :ok, :f :write, :value 18446744073709551616}\n\
          {:process 1, :type :invoke, :f :read, :value nil}\n\
          {:process 1, :type :ok, :f :read, :value 18446744073709551617}\n",
    );
    let msg = one_line_error(&run(&["check", s(&edn)]), "faultline: error: ");
    assert!(
        msg.ends_with(
            "h.edn:1: integer 18446744073709551616 is out of range (faultline compares values exactly, within 64 bits)"
        ),
        "{msg}"
    );
    let etcd = write(
        dir.path(),
        "h.log",
        b"INFO  jepsen.util - 0\t:invoke\t:write\t18446744073709551616\n",
    );
    one_line_error(&run(&["check", s(&etcd)]), "faultline: error: ");
}

#[test]
fn broken_pipe_exits_quietly_with_the_verdict() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = write(dir.path(), "h.jsonl", history(3000).as_bytes());
    for json in [false, true] {
        let mut cmd = bin();
        cmd.arg("check").arg(&h);
        if json {
            cmd.arg("--json");
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        // Close the pipe before faultline writes anything.
        drop(child.stdout.take());
        let o = child.wait_with_output().expect("wait");
        assert_eq!(code(&o), 0, "json {json}: {}", stderr(&o));
        assert!(stderr(&o).is_empty(), "json {json}: {}", stderr(&o));
    }
}

#[test]
fn write_error_on_stdout_or_stderr_exits_2() {
    if !Path::new("/dev/full").exists() {
        panic!("/dev/full is missing: this test needs it");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let h = write(dir.path(), "h.jsonl", history(10).as_bytes());
    for json in [false, true] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full");
        let mut cmd = bin();
        cmd.arg("check").arg(&h);
        if json {
            cmd.arg("--json");
        }
        let o = cmd.stdout(full).output().expect("runs");
        assert_eq!(code(&o), 2, "json {json}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("writing to standard output: No space left on device"),
            "{}",
            stderr(&o)
        );
    }
    // An error message to a full stderr: still exit 2, no panic (101).
    let bad = write(dir.path(), "bad.jsonl", b"{oops\n");
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let o = bin()
        .arg("check")
        .arg(&bad)
        .stderr(full)
        .output()
        .expect("runs");
    assert_eq!(code(&o), 2);
}

#[test]
fn huge_time_limits_are_clamped_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = write(dir.path(), "h.jsonl", history(5).as_bytes());
    for limit in ["1e19", "18446744073709551616", "1e300", "inf"] {
        let o = run(&["check", "--time-limit", limit, s(&h)]);
        assert_eq!(code(&o), 0, "--time-limit {limit}: {}", stderr(&o));
    }
    let o = run(&["check", "--memory-limit", "18446744073709551615", s(&h)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    for bad in ["0", "-1", "nan", "x"] {
        let o = run(&["check", &format!("--time-limit={bad}"), s(&h)]);
        assert_eq!(code(&o), 2, "--time-limit {bad}");
        assert!(
            stderr(&o).contains("is not a positive number of seconds"),
            "{}",
            stderr(&o)
        );
    }
}

#[test]
fn echoed_input_is_escaped_and_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A 1 MB unknown type.
    let long = format!(
        "{{\"process\":0,\"type\":\"{}\",\"f\":\"read\"}}\n",
        "x".repeat(1 << 20)
    );
    let p = write(dir.path(), "long.jsonl", long.as_bytes());
    one_line_error(&run(&["check", s(&p)]), "faultline: error: ");
    // A newline and a NUL inside an EDN string that is echoed.
    let p = write(
        dir.path(),
        "nl.edn",
        b"{:process 0, :type \"a\\nb\\u0000c\", :f :read}\n",
    );
    let msg = one_line_error(&run(&["check", s(&p)]), "faultline: error: ");
    assert!(msg.contains("unknown type `a\\nb\\u{0}c`"), "{msg}");
    // Raw NULs and a 1 MB line of garbage in a Porcupine log.
    let mut text = b"INFO  jepsen.util - 0\t:invoke\t:read\tnil\n".to_vec();
    text.extend_from_slice(b"\0\0\0");
    text.extend(std::iter::repeat_n(b'y', 1 << 20));
    text.push(b'\n');
    let p = write(dir.path(), "nul.log", &text);
    let msg = one_line_error(
        &run(&["check", "--format", "porcupine-etcd", s(&p)]),
        "faultline: error: ",
    );
    assert!(msg.contains("nul.log:2: "), "{msg}");
    // --json gives the same bounded message.
    let o = run(&["check", "--json", "--format", "porcupine-etcd", s(&p)]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(out.len() < 1000 && out.lines().count() == 1, "{out}");
}

#[test]
fn long_values_are_shortened_in_witnesses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = "a".repeat(1 << 20);
    let b = "b".repeat(1 << 20);
    let text = format!(
        "{{\"process\":0,\"type\":\"invoke\",\"f\":\"write\",\"value\":\"{a}\"}}\n\
         {{\"process\":0,\"type\":\"ok\",\"f\":\"write\",\"value\":\"{a}\"}}\n\
         {{\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"value\":null}}\n\
         {{\"process\":1,\"type\":\"ok\",\"f\":\"read\",\"value\":\"{b}\"}}\n"
    );
    let p = write(dir.path(), "long.jsonl", text.as_bytes());
    let o = run(&["check", s(&p)]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(out.len() < 8000, "{} bytes of text", out.len());
    assert!(out.contains("(1048578 bytes in all)"), "{out}");
    assert!(out.contains("lines 3-4"), "{out}");
    let o = run(&["check", "--json", s(&p)]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(o.stdout.len() < 20_000, "{} bytes of JSON", o.stdout.len());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let op = &v["anomalies"][0]["op"];
    assert_eq!(op["result"]["bytes"], 1048578, "{op}");
    assert_eq!(op["result"]["line"], 4, "{op}");
    assert!(
        op["result"]["shortened"]
            .as_str()
            .is_some_and(|s| s.starts_with("\"bbbb")),
        "{op}"
    );
    // Short values stay as they are.
    assert_eq!(v["anomalies"][0]["op"]["process"], 1);
}

#[test]
fn comments_before_the_first_op_are_read_past() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut text = ";; comment\n".repeat(600_000).into_bytes();
    text.extend_from_slice(
        b"{:process 0, :type :invoke, :f :write, :value 1}\n{:process 0, :type :ok, :f :write, :value 1}\n",
    );
    let p = write(dir.path(), "c.edn", &text);
    let o = run(&["check", s(&p)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // Through standard input too.
    let mut child = bin()
        .args(["check", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&text);
    });
    let o = child.wait_with_output().expect("wait");
    writer.join().expect("writer");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

#[test]
fn an_output_that_is_an_input_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = history(2);
    let h = write(dir.path(), "h.jsonl", text.as_bytes());
    for flag in ["--html", "--junit", "--summary-md"] {
        let o = run(&["check", flag, s(&h), s(&h)]);
        let msg = one_line_error(&o, "faultline: error: ");
        assert!(msg.contains("is the input history"), "{msg}");
        assert_eq!(std::fs::read_to_string(&h).expect("read"), text, "{flag}");
    }
    // Another path to the same file (a hard link) is the same file.
    let link = dir.path().join("link.jsonl");
    std::fs::hard_link(&h, &link).expect("link");
    let o = run(&["check", "--junit", s(&link), s(&h)]);
    one_line_error(&o, "faultline: error: ");
    // Two outputs on one file.
    let out = dir.path().join("out");
    let o = run(&["check", "--junit", s(&out), "--summary-md", s(&out), s(&h)]);
    let msg = one_line_error(&o, "faultline: error: ");
    assert!(msg.contains("--junit writes the same file"), "{msg}");
    // Distinct files are fine.
    let o = run(&["check", "--junit", s(&out), s(&h)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&h).expect("read"), text);
}

#[test]
fn hostile_inputs_give_an_exit_code_and_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inputs: Vec<(&str, Vec<u8>)> = vec![
        ("deep.edn", "[".repeat(100_000).into_bytes()),
        ("deep.json", "[".repeat(100_000).into_bytes()),
        ("nul.jsonl", b"\0\0\0\n".to_vec()),
        (
            "ff.edn",
            b"{:process 0 :type :invoke :f :read :value \xff}\n".to_vec(),
        ),
        ("bom.jsonl", b"\xef\xbb\xbf".to_vec()),
        ("x.log", "x\n".repeat(100_000).into_bytes()),
        (
            "num.edn",
            format!(
                "{{:process 0 :type :invoke :f :read :value {}}}\n",
                "9".repeat(100_000)
            )
            .into_bytes(),
        ),
        ("empty", Vec::new()),
    ];
    for (name, bytes) in inputs {
        let p = write(dir.path(), name, &bytes);
        for json in [false, true] {
            let mut args = vec!["check", s(&p)];
            if json {
                args.push("--json");
            }
            let o = run(&args);
            let c = code(&o);
            assert!((0..=3).contains(&c), "{name}: exit {c}: {}", stderr(&o));
            if c == 2 {
                one_line_error(&o, "faultline: error: ");
            }
        }
    }
}
