//! `faultline check --checks` with the session guarantees and causal
//! consistency: the causal corpus's verdicts, histories made of completions
//! only, keys in values, the input contract, and the summary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(args)
        .output()
        .expect("runs faultline")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn json_lines(o: &Output) -> Vec<Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

/// The shared corpus. Missing corpus fails loudly unless
/// FAULTLINE_SKIP_CORPUS=1 says to skip.
fn corpus() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    if p.is_dir() {
        return Some(p);
    }
    if std::env::var("FAULTLINE_SKIP_CORPUS").as_deref() == Ok("1") {
        eprintln!("corpus test skipped: {} not found", p.display());
        return None;
    }
    panic!(
        "the shared corpus is missing at {}; set FAULTLINE_SKIP_CORPUS=1 to skip",
        p.display()
    );
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p.display().to_string()
}

/// The anomaly types of one check of one file's JSON line.
fn types(line: &Value, check: &str) -> Vec<String> {
    let mut t: Vec<String> = line["checks"][check]["anomalies"]
        .as_array()
        .unwrap_or_else(|| panic!("{check} in {line}"))
        .iter()
        .map(|a| a["type"].as_str().expect("type").to_string())
        .collect();
    t.sort();
    t.dedup();
    t
}

#[test]
fn causal_corpus_gets_the_readme_verdicts_and_patterns() {
    let Some(c) = corpus() else { return };
    let dir = c.join("causal");
    // file, CC, CCv, CM, the patterns the README names (each must be among
    // the anomalies of a violated variant).
    let table: &[(&str, bool, bool, bool, &[&str])] = &[
        ("paper_history_a.edn", true, false, true, &["CyclicCF"]),
        (
            "paper_history_b.edn",
            true,
            true,
            false,
            &["WriteHBInitRead"],
        ),
        (
            "paper_history_2.edn",
            true,
            true,
            false,
            &["WriteHBInitRead"],
        ),
        (
            "paper_history_c.edn",
            true,
            false,
            false,
            &["CyclicCF", "CyclicHB"],
        ),
        ("paper_history_d.edn", true, true, true, &[]),
        (
            "paper_history_e.edn",
            false,
            false,
            false,
            &["WriteCORead", "CyclicCF", "CyclicHB"],
        ),
        ("bad_history_a.edn", true, true, true, &[]),
        ("hy_history.edn", true, true, true, &[]),
        ("trz_history.edn", true, true, true, &[]),
        ("tiny_history.edn", true, true, true, &[]),
        ("small_history.edn", true, true, true, &[]),
        ("history.edn", true, true, true, &[]),
    ];
    let mut listed: Vec<String> = std::fs::read_dir(&dir)
        .expect("causal corpus")
        .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".edn"))
        .collect();
    listed.sort();
    let mut expected: Vec<String> = table.iter().map(|t| t.0.to_string()).collect();
    expected.sort();
    assert_eq!(
        listed, expected,
        "every file of the causal corpus is in the table"
    );
    for &(file, cc, ccv, cm, patterns) in table {
        let path = dir.join(file).display().to_string();
        let o = run(&[
            "check",
            "--json",
            "--checks",
            "causal",
            "--initial",
            "0",
            &path,
        ]);
        let l = &json_lines(&o)[0];
        let got = [("cc", cc), ("ccv", ccv), ("cm", cm)];
        for (check, want) in got {
            assert_eq!(
                l["checks"][check]["valid"],
                Value::Bool(want),
                "{file} {check}: {}",
                l["checks"][check]
            );
            if want {
                assert!(types(l, check).is_empty(), "{file} {check}");
            } else {
                assert!(!types(l, check).is_empty(), "{file} {check}");
            }
        }
        // Each named pattern is reported by a variant that is violated, and
        // CC's own patterns by CC.
        for p in patterns {
            let by: Vec<&str> = ["cc", "ccv", "cm"]
                .into_iter()
                .filter(|c| types(l, c).iter().any(|t| t == p))
                .collect();
            assert!(!by.is_empty(), "{file}: {p} reported nowhere");
        }
        if file == "paper_history_e.edn" {
            assert_eq!(types(l, "cc"), vec!["WriteCORead"]);
        }
        let all_ok = cc && ccv && cm;
        assert_eq!(l["valid"], Value::Bool(all_ok), "{file}");
        assert_eq!(o.status.code(), Some(if all_ok { 0 } else { 1 }), "{file}");
        assert_eq!(l["keys_from_values"], true, "{file}");
        // The session guarantees hold on every corpus file but history a
        // (read-your-writes: each process reads the other's write after its
        // own).
        let o = run(&[
            "check",
            "--json",
            "--checks",
            "session",
            "--initial",
            "0",
            &path,
        ]);
        let l = &json_lines(&o)[0];
        for g in ["ryw", "mr", "mw", "wfr"] {
            let want = !(file == "paper_history_a.edn" && g == "ryw");
            assert_eq!(l["checks"][g]["valid"], Value::Bool(want), "{file} {g}");
        }
    }
}

#[test]
fn corpus_witnesses_read_well() {
    let Some(c) = corpus() else { return };
    let path = c.join("causal/paper_history_b.edn").display().to_string();
    let o = run(&["check", "--checks", "all", "--initial", "0", &path]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("NOT linearizable"), "{out}");
    assert!(
        out.contains("strongest model that holds: causal convergence (CCv)"),
        "{out}"
    );
    assert!(
        out.contains("violates: linearizable, cm (WriteHBInitRead)"),
        "{out}"
    );
    assert!(
        out.contains("cm: WriteHBInitRead: process 1 read z=0 (initial) (line 5)"),
        "{out}"
    );
    assert!(out.contains("completions only"), "{out}");
    // Without --initial 0, the reads of 0 are thin-air reads, and the
    // witness says how to fix that.
    let o = run(&["check", "--checks", "cc", &path]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("pass --initial 0"), "{}", stdout(&o));
    // The MongoDB runs: invocations, completions, info writes that were
    // read; every check holds.
    let path = c.join("causal/history.edn").display().to_string();
    let o = run(&[
        "check",
        "--json",
        "--checks",
        "all",
        "--initial",
        "0",
        &path,
    ]);
    let l = &json_lines(&o)[0];
    for check in ["ryw", "mr", "mw", "wfr", "cc", "ccv", "cm"] {
        assert_eq!(l["checks"][check]["valid"], true, "{check}");
    }
    assert_eq!(l["completions_only"], false);
}

#[test]
fn completions_only_histories_need_the_causal_or_session_checks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        dir.path(),
        "c.edn",
        "{:type :ok, :f :write, :value [x 1], :process 0}\n\
         {:type :ok, :f :read, :value [x 1], :process 1}\n",
    );
    // Default checks: the old error, with a hint.
    let o = run(&["check", &path]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains(&format!("{path}:1: ")), "{e}");
    assert!(e.contains("no invocation in flight"), "{e}");
    assert!(e.contains("--checks session, causal or all"), "{e}");
    // Named checks read it; linearizability too when asked (each op is
    // instantaneous at its position).
    let o = run(&["check", "--json", "--checks", "all", &path]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let l = &json_lines(&o)[0];
    assert_eq!(l["completions_only"], true);
    assert_eq!(l["checks"]["linearizable"]["valid"], true);
    assert_eq!(l["strongest"], "linearizability");
    // Mixing completions without invocation and invocations is an error
    // naming the first completion and the invocation.
    let path = write(
        dir.path(),
        "mixed.edn",
        "{:type :ok, :f :write, :value [x 1], :process 0}\n\
         {:type :invoke, :f :read, :value [x nil], :process 1}\n\
         {:type :ok, :f :read, :value [x 1], :process 1}\n",
    );
    let o = run(&["check", "--checks", "causal", &path]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains(&format!("{path}:1: ")), "{e}");
    assert!(e.contains("has invocations (line 2)"), "{e}");
}

/// An operation: process, function, key, value, outcome.
type Op = (i64, &'static str, &'static str, Value, &'static str);

/// A JSON Lines history: each op is invoked and completed at once, in
/// order.
fn jsonl(ops: &[Op]) -> String {
    let mut out = String::new();
    for (p, f, k, v, outcome) in ops {
        let inv = if *f == "read" { Value::Null } else { v.clone() };
        out.push_str(&format!(
            "{{\"process\":{p},\"type\":\"invoke\",\"f\":\"{f}\",\"key\":\"{k}\",\"value\":{inv}}}\n"
        ));
        out.push_str(&format!(
            "{{\"process\":{p},\"type\":\"{outcome}\",\"f\":\"{f}\",\"key\":\"{k}\",\"value\":{v}}}\n"
        ));
    }
    out
}

#[test]
fn session_guarantees_through_the_command_line() {
    use serde_json::json;
    let dir = tempfile::tempdir().expect("tempdir");
    // One history violating each guarantee only (among the four).
    let cases: Vec<(&str, Vec<Op>)> = vec![
        (
            "ryw",
            vec![
                (0, "write", "x", json!(1), "ok"),
                (0, "read", "x", json!(null), "ok"),
            ],
        ),
        (
            "mr",
            vec![
                (0, "write", "x", json!(1), "ok"),
                (1, "write", "x", json!(2), "ok"),
                (2, "read", "x", json!(1), "ok"),
                (2, "read", "x", json!(2), "ok"),
                (3, "read", "x", json!(2), "ok"),
                (3, "read", "x", json!(1), "ok"),
            ],
        ),
        (
            "mw",
            vec![
                (0, "write", "x", json!(1), "ok"),
                (0, "write", "x", json!(2), "ok"),
                (1, "read", "x", json!(2), "ok"),
                (1, "read", "x", json!(1), "ok"),
            ],
        ),
        (
            "wfr",
            vec![
                (0, "write", "y", json!(5), "ok"),
                (1, "read", "x", json!(2), "ok"),
                (1, "write", "x", json!(1), "ok"),
                (2, "read", "x", json!(1), "ok"),
                (2, "write", "x", json!(2), "ok"),
            ],
        ),
    ];
    for (bad, ops) in cases {
        let path = write(dir.path(), &format!("{bad}.jsonl"), &jsonl(&ops));
        let o = run(&["check", "--json", "--checks", "session", &path]);
        assert_eq!(o.status.code(), Some(1), "{bad}: {}", stderr(&o));
        let l = &json_lines(&o)[0];
        for g in ["ryw", "mr", "mw", "wfr"] {
            assert_eq!(l["checks"][g]["valid"], Value::Bool(g != bad), "{bad}: {g}");
        }
        let a = &l["checks"][bad]["anomalies"][0];
        assert!(a["explanation"].as_str().expect("text").len() > 40, "{a}");
        assert!(a["ops"].as_array().expect("ops").len() >= 2, "{a}");
        // Without linearizability, the top-level anomalies are the checks'.
        assert_eq!(l["anomalies"][0]["check"], bad);
        let o = run(&["check", "--checks", bad, &path]);
        let out = stdout(&o);
        assert!(out.contains(&format!(": VIOLATED: {bad} (")), "{out}");
        assert!(out.contains(&format!("  {bad}: ")), "{out}");
    }
    // The ryw witness in words.
    let path = dir.path().join("ryw.jsonl").display().to_string();
    let out = stdout(&run(&["check", "--checks", "ryw", &path]));
    assert!(
        out.contains("process 0 wrote x=1 (line 1), then read x=null (initial) (line 4): it did not see its own write"),
        "{out}"
    );
}

#[test]
fn info_and_fail_writes() {
    use serde_json::json;
    let dir = tempfile::tempdir().expect("tempdir");
    // An info write whose value is read counts as a write.
    let ops = vec![
        (0, "write", "x", json!(1), "info"),
        (1, "read", "x", json!(1), "ok"),
    ];
    let path = write(dir.path(), "info.jsonl", &jsonl(&ops));
    let o = run(&["check", "--json", "--checks", "all", &path]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    // A failed write whose value is read: an aborted read, reported by
    // every check.
    let ops = vec![
        (0, "write", "x", json!(1), "fail"),
        (1, "read", "x", json!(1), "ok"),
    ];
    let path = write(dir.path(), "fail.jsonl", &jsonl(&ops));
    let o = run(&["check", "--json", "--checks", "all", &path]);
    assert_eq!(o.status.code(), Some(1));
    let l = &json_lines(&o)[0];
    for g in ["ryw", "mr", "mw", "wfr"] {
        assert_eq!(types(l, g), vec!["aborted-read"], "{g}");
    }
    for c in ["cc", "ccv", "cm"] {
        assert_eq!(types(l, c), vec!["ThinAirRead"], "{c}");
    }
    let text = l["checks"]["cc"]["anomalies"][0]["explanation"]
        .as_str()
        .expect("text");
    assert!(text.contains("failed write (line 1)"), "{text}");
}

#[test]
fn the_contract_skips_by_default_and_fails_when_asked() {
    use serde_json::json;
    let dir = tempfile::tempdir().expect("tempdir");
    let ops = vec![
        (0, "write", "x", json!(1), "ok"),
        (1, "write", "x", json!(1), "ok"),
        (2, "read", "x", json!(1), "ok"),
    ];
    let path = write(dir.path(), "twice.jsonl", &jsonl(&ops));
    // Default: linearizability decides, the others are skipped with a note.
    let o = run(&["check", "--json", &path]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let l = &json_lines(&o)[0];
    assert_eq!(l["valid"], true);
    for c in ["ryw", "mr", "mw", "wfr", "cc", "ccv", "cm"] {
        assert_eq!(l["checks"][c]["valid"], Value::Null, "{c}");
        assert_eq!(
            l["checks"][c]["skipped"], "values written more than once",
            "{c}"
        );
    }
    let out = stdout(&run(&["check", &path]));
    assert!(
        out.contains("skipped ryw, mr, mw, wfr, cc, ccv, cm: values written more than once"),
        "{out}"
    );
    // Named: an error naming the file and the lines.
    let o = run(&["check", "--checks", "causal", &path]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains(&format!("{path}:3: ")), "{e}");
    assert!(
        e.contains("value 1 is written to key \"x\" twice (lines 1 and 3)"),
        "{e}"
    );
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    // Models without registers: the causal checks do not apply.
    let mutex = write(
        dir.path(),
        "mutex.jsonl",
        "{\"process\":0,\"type\":\"invoke\",\"f\":\"acquire\"}\n{\"process\":0,\"type\":\"ok\",\"f\":\"acquire\"}\n",
    );
    let o = run(&["check", "--json", &mutex]);
    assert_eq!(o.status.code(), Some(0));
    let l = &json_lines(&o)[0];
    assert!(l["checks"].get("cc").is_none(), "{l}");
    let o = run(&["check", "--checks", "cc", &mutex]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("not to the mutex model"),
        "{}",
        stderr(&o)
    );
    // Bad lists and --key-in-value misuse.
    let o = run(&["check", "--checks", "ryw,serializable", &path]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown check `serializable`"));
    let o = run(&["check", "--key-in-value", "yes", &path]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("it has a `key` field"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn default_checks_summarize_across_models() {
    use serde_json::json;
    let dir = tempfile::tempdir().expect("tempdir");
    // Linearizable: every check holds, and the summary says so.
    let ops = vec![
        (0, "write", "x", json!(1), "ok"),
        (1, "read", "x", json!(1), "ok"),
        (1, "write", "y", json!(2), "ok"),
        (0, "read", "y", json!(2), "ok"),
    ];
    let path = write(dir.path(), "good.jsonl", &jsonl(&ops));
    let o = run(&["check", "--json", &path]);
    assert_eq!(o.status.code(), Some(0));
    let l = &json_lines(&o)[0];
    let names: Vec<&String> = l["checks"].as_object().expect("checks").keys().collect();
    assert_eq!(names.len(), 8, "{names:?}");
    assert_eq!(l["strongest"], "linearizability");
    // A stale read: not linearizable, but causally consistent.
    let ops = vec![
        (0, "write", "x", json!(1), "ok"),
        (0, "write", "x", json!(2), "ok"),
        (1, "read", "x", json!(1), "ok"),
    ];
    let path = write(dir.path(), "stale.jsonl", &jsonl(&ops));
    let o = run(&["check", &path]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("NOT linearizable"), "{out}");
    assert!(
        out.contains("strongest model that holds: causal convergence and causal memory (CCv, CM)"),
        "{out}"
    );
    assert!(out.contains("violates: linearizable\n"), "{out}");
}

#[test]
fn too_many_sessions_for_the_memory_bound() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 600 sessions, each writing and reading its own key: the vector clocks
    // of the causal checks need 600 x 600 x 4 bytes, more than 1 MiB.
    let mut text = String::new();
    for i in 0..600 {
        let v = i + 1;
        text.push_str(&format!(
            "{{\"process\":{i},\"type\":\"invoke\",\"f\":\"write\",\"key\":{i},\"value\":{v}}}\n\
             {{\"process\":{i},\"type\":\"ok\",\"f\":\"write\",\"key\":{i},\"value\":{v}}}\n\
             {{\"process\":{i},\"type\":\"invoke\",\"f\":\"read\",\"key\":{i},\"value\":null}}\n\
             {{\"process\":{i},\"type\":\"ok\",\"f\":\"read\",\"key\":{i},\"value\":{v}}}\n"
        ));
    }
    let path = write(dir.path(), "wide.jsonl", &text);
    // The default set skips the causal checks with a note...
    let o = run(&["check", "--json", "--memory-limit", "1", &path]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let l = &json_lines(&o)[0];
    assert_eq!(l["checks"]["ryw"]["valid"], true);
    let skipped = l["checks"]["cc"]["skipped"].as_str().expect("skipped");
    assert!(skipped.contains("vector clocks"), "{skipped}");
    // ...named, they are unknown (exit 3), never valid.
    let o = run(&[
        "check",
        "--json",
        "--memory-limit",
        "1",
        "--checks",
        "cc",
        &path,
    ]);
    assert_eq!(o.status.code(), Some(3));
    let l = &json_lines(&o)[0];
    assert_eq!(l["valid"], "unknown");
    assert!(
        l["unknown_reason"]
            .as_str()
            .expect("reason")
            .contains("memory bound of 1 MiB")
    );
}
