//! `faultline check` through the command line: corpus verdicts, witnesses,
//! malformed input, budgets, exit codes, and synthesized histories.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("runs faultline")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn json_lines(o: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&o.stdout)
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

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path().display().to_string())
        .collect();
    v.sort();
    v
}

fn check_json(extra: &[&str], files: &[String]) -> (Output, Vec<Value>) {
    let mut args = vec!["check", "--json"];
    args.extend_from_slice(extra);
    args.extend(files.iter().map(String::as_str));
    let o = run(&args);
    let lines = json_lines(&o);
    assert_eq!(
        lines.len(),
        files.len(),
        "one line per file: {}",
        stderr(&o)
    );
    (o, lines)
}

#[test]
fn porcupine_etcd_logs_get_their_verdicts() {
    let Some(c) = corpus() else { return };
    let files = files_in(&c.join("porcupine/etcd"));
    assert_eq!(files.len(), 50);
    let (o, lines) = check_json(&["--model", "cas-register"], &files);
    let good = [2, 5, 7, 18, 25, 31, 38, 45, 48, 49];
    for l in &lines {
        let file = l["file"].as_str().expect("file");
        let n: usize = file[file.len() - 7..file.len() - 4]
            .parse()
            .expect("number");
        assert_eq!(l["valid"], Value::Bool(good.contains(&n)), "{file}");
        assert_eq!(l["format"], "porcupine-etcd");
        assert!(l["ops"].as_u64().expect("ops") >= 73, "{file}");
        assert!(l["parse_ms"].is_number() && l["check_ms"].is_number());
        if !good.contains(&n) {
            let a = &l["anomalies"][0];
            assert_eq!(a["type"], "not-linearizable");
            assert_eq!(a["op"]["type"], "ok", "the stuck op completed: {file}");
            assert!(!a["states"].as_array().expect("states").is_empty());
        }
    }
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn knossos_cas_register_files_get_their_verdicts_and_witnesses() {
    let Some(c) = corpus() else { return };
    for init in ["0", "null"] {
        let good = files_in(&c.join("knossos/cas-register/good"));
        assert_eq!(good.len(), 57);
        let (o, lines) = check_json(&["--model", "cas-register", "--initial", init], &good);
        for l in &lines {
            assert_eq!(l["valid"], true, "{} (initial {init})", l["file"]);
        }
        assert_eq!(o.status.code(), Some(0));
        let bad = files_in(&c.join("knossos/cas-register/bad"));
        assert_eq!(bad.len(), 4);
        let (o, lines) = check_json(&["--model", "cas-register", "--initial", init], &bad);
        for l in &lines {
            assert_eq!(l["valid"], false, "{} (initial {init})", l["file"]);
        }
        assert_eq!(o.status.code(), Some(1));
    }
    // Knossos pins the failing operation of three files: the witness must
    // point at the same completion.
    for (file, process, value, index) in [
        ("bad-analysis.edn", 21, 2, 14),
        ("rethink-fail-minimal.edn", 1, 3, 4),
        ("cas-failure.edn", 70, 0, 491),
    ] {
        let path = c.join("knossos/cas-register/bad").join(file);
        let (_, lines) = check_json(
            &["--model", "cas-register", "--initial", "0"],
            &[path.display().to_string()],
        );
        let op = &lines[0]["anomalies"][0]["op"];
        assert_eq!(op["process"], process, "{file}");
        assert_eq!(op["f"], "read", "{file}");
        assert_eq!(op["result"], value, "{file}");
        assert_eq!(op["complete_index"], index, "{file}");
    }
}

#[test]
fn knossos_multi_register_mutex_and_porcupine_kv() {
    let Some(c) = corpus() else { return };
    let multi = vec![
        c.join("knossos/multi-register/good/multi-register.edn")
            .display()
            .to_string(),
    ];
    // Knossos's test starts both registers at 0: as one value or per key.
    for init in ["0", r#"{"x":0,"y":0}"#] {
        let (o, lines) = check_json(&["--model", "multi-register", "--initial", init], &multi);
        assert_eq!(lines[0]["valid"], true, "initial {init}");
        assert_eq!(o.status.code(), Some(0));
    }
    let mutex = vec![c.join("knossos/mutex/bad/etcd.edn").display().to_string()];
    let (o, lines) = check_json(&["--model", "mutex"], &mutex);
    assert_eq!(lines[0]["valid"], false);
    assert_eq!(lines[0]["anomalies"][0]["op"]["f"], "acquire");
    assert!(
        lines[0]["faults"].as_u64().expect("faults") > 0,
        "nemesis ops are faults"
    );
    assert_eq!(o.status.code(), Some(1));

    let kv = files_in(&c.join("porcupine/kv"));
    assert_eq!(kv.len(), 4);
    let (_, lines) = check_json(&["--model", "kv"], &kv);
    for l in &lines {
        let file = l["file"].as_str().expect("file");
        assert_eq!(l["valid"], Value::Bool(file.ends_with("-ok.txt")), "{file}");
        assert_eq!(l["format"], "porcupine-kv");
        if file.ends_with("-bad.txt") {
            assert!(l["anomalies"][0]["key"].is_string(), "witness per key");
        }
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p.display().to_string()
}

const INV: &str = r#"{"process":0,"type":"invoke","f":"write","value":1}"#;
const OK: &str = r#"{"process":0,"type":"ok","f":"write","value":1}"#;

#[test]
fn malformed_input_names_file_and_line_and_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases: Vec<(&str, String, usize, &str)> = vec![
        ("syntax.jsonl", format!("{INV}\n{{\"process\":0,\n"), 2, "invalid JSON"),
        (
            "orphan.jsonl",
            format!("{INV}\n{OK}\n{OK}\n"),
            3,
            "no invocation in flight",
        ),
        (
            "double.jsonl",
            format!("{INV}\n{INV}\n"),
            2,
            "still in flight",
        ),
        (
            "type.jsonl",
            format!("{INV}\n{{\"process\":0,\"type\":\"done\",\"f\":\"write\"}}\n"),
            2,
            "unknown type `done`",
        ),
        (
            "missing.jsonl",
            format!("{INV}\n{{\"process\":0,\"f\":\"write\"}}\n"),
            2,
            "missing field `type`",
        ),
        (
            "syntax.edn",
            "[{:process 0, :type :invoke, :f :read, :value nil}\n {:process 0, :type :ok, :f :read, :value [1 2}\n]\n".to_string(),
            2,
            "",
        ),
        (
            "orphan.edn",
            "{:process 0, :type :ok, :f :read, :value 1}\n".to_string(),
            1,
            "no invocation in flight",
        ),
        (
            "double.edn",
            "{:process 0, :type :invoke, :f :read, :value nil}\n{:process 0, :type :invoke, :f :read, :value nil}\n".to_string(),
            2,
            "still in flight",
        ),
        (
            "type.edn",
            "{:process 0, :type :invoke, :f :read, :value nil}\n{:process 0, :type :maybe, :f :read, :value nil}\n".to_string(),
            2,
            "unknown type",
        ),
        (
            "etcd.log",
            "INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - 0\t:ok\t:read\t[1\n".to_string(),
            2,
            "",
        ),
    ];
    for (name, text, line, reason) in cases {
        let path = write(dir.path(), name, &text);
        let o = run(&["check", &path]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{name}: {err}");
        assert!(
            err.contains(&format!("{path}:{line}: ")),
            "{name}: expected {path}:{line}: in {err:?}"
        );
        assert!(
            err.contains(reason),
            "{name}: expected {reason:?} in {err:?}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{name}: one line: {err:?}");
    }
    // A file that does not exist, and one that fits no format.
    let o = run(&["check", "/nonexistent/history.jsonl"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/nonexistent/history.jsonl: cannot read"));
    let path = write(dir.path(), "prose.txt", "hello world\n");
    let o = run(&["check", &path]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("cannot tell the format"),
        "{}",
        stderr(&o)
    );
    // A history that does not fit the model.
    let path = write(
        dir.path(),
        "cas.jsonl",
        "{\"process\":0,\"type\":\"invoke\",\"f\":\"cas\",\"value\":[1,2]}\n{\"process\":0,\"type\":\"ok\",\"f\":\"cas\",\"value\":[1,2]}\n",
    );
    let o = run(&["check", "--model", "register", &path]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(":2: the register model has no function `cas`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bad_flags_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "h.jsonl", &format!("{INV}\n{OK}\n"));
    for args in [
        vec!["check", "--model", "queue", &path],
        vec!["check", "--format", "yaml", &path],
        vec!["check", "--initial", "{oops", &path],
        vec!["check", "--time-limit", "-1", &path],
        vec!["check", "--memory-limit", "0", &path],
        vec!["check"],
        vec!["frobnicate"],
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
    let o = run(&["check", "--model", "queue", &path]);
    assert!(
        stderr(&o).contains("unknown model `queue`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn exit_codes_combine_over_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = write(
        dir.path(),
        "good.jsonl",
        &format!(
            "{INV}\n{OK}\n{{\"process\":1,\"type\":\"invoke\",\"f\":\"read\"}}\n{{\"process\":1,\"type\":\"ok\",\"f\":\"read\",\"value\":1}}\n"
        ),
    );
    let bad = write(
        dir.path(),
        "bad.jsonl",
        &format!(
            "{INV}\n{OK}\n{{\"process\":1,\"type\":\"invoke\",\"f\":\"read\"}}\n{{\"process\":1,\"type\":\"ok\",\"f\":\"read\",\"value\":7}}\n"
        ),
    );
    let broken = write(dir.path(), "broken.jsonl", "{\n");
    assert_eq!(run(&["check", &good]).status.code(), Some(0));
    assert_eq!(run(&["check", &bad]).status.code(), Some(1));
    assert_eq!(run(&["check", &good, &bad]).status.code(), Some(1));
    let o = run(&["check", "--json", &good, &broken, &bad]);
    assert_eq!(o.status.code(), Some(2));
    let lines = json_lines(&o);
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["valid"], true);
    assert!(
        lines[1]["error"]
            .as_str()
            .expect("error")
            .contains("broken.jsonl:1:")
    );
    assert_eq!(lines[2]["valid"], false);
    // Human output names the verdicts.
    let o = run(&["check", &good, &bad]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("good.jsonl: linearizable"), "{out}");
    assert!(out.contains("bad.jsonl: NOT linearizable"), "{out}");
    assert!(out.contains("cannot place: process 1 read 7"), "{out}");
}

fn synth(dir: &Path, name: &str, args: &[&str]) -> (String, Option<Value>) {
    let path = dir.join(name).display().to_string();
    let mut all = vec!["synth", "-o", &path];
    all.extend_from_slice(args);
    let o = run(&all);
    assert_eq!(o.status.code(), Some(0), "synth {args:?}: {}", stderr(&o));
    let injected = stderr(&o)
        .lines()
        .find_map(|l| serde_json::from_str::<Value>(l).ok());
    (path, injected)
}

#[test]
fn budgets_give_unknown_never_valid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = synth(
        dir.path(),
        "one-key.jsonl",
        // Values written more than once: the search decides, not the
        // unique-value procedure.
        &["--ops", "5000", "--seed", "3", "--values", "1000"],
    );
    let o = run(&["check", "--json", "--time-limit", "0.000001", &path]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let l = &json_lines(&o)[0];
    assert_eq!(l["valid"], "unknown");
    assert!(
        l["unknown_reason"]
            .as_str()
            .expect("reason")
            .contains("time limit")
    );

    let (path, _) = synth(
        dir.path(),
        "big.jsonl",
        &["--ops", "60000", "--seed", "4", "--values", "1000"],
    );
    let o = run(&["check", "--json", "--memory-limit", "1", &path]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let l = &json_lines(&o)[0];
    assert_eq!(l["valid"], "unknown");
    assert!(
        l["unknown_reason"]
            .as_str()
            .expect("reason")
            .contains("memory bound of 1 MiB")
    );
    // The same file with room to work is valid.
    assert_eq!(run(&["check", &path]).status.code(), Some(0));
}

#[test]
fn synthesized_histories_are_valid_and_injected_ones_point_at_the_op() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut checked = 0;
    for seed in 0..12u64 {
        let s = seed.to_string();
        let keys = ["1", "3", "20"][seed as usize % 3];
        let model = ["cas-register", "register"][seed as usize % 2];
        let common = [
            "--ops",
            "3000",
            "--keys",
            keys,
            "--processes",
            "8",
            "--info",
            "0.1",
            "--fail",
            "0.05",
            "--model",
            model,
            "--seed",
            &s,
        ];
        let (path, _) = synth(dir.path(), &format!("ok-{seed}.jsonl"), &common);
        let o = run(&["check", "--json", "--model", model, &path]);
        assert_eq!(
            json_lines(&o)[0]["valid"],
            true,
            "seed {seed}: {}",
            stderr(&o)
        );
        // A lost write needs a read with no write of unknown outcome around
        // it: fewer info ops and more keys.
        let for_lost = [
            "--ops",
            "3000",
            "--keys",
            "20",
            "--processes",
            "8",
            "--info",
            "0.02",
            "--fail",
            "0.05",
            "--model",
            model,
            "--seed",
            &s,
        ];
        for kind in ["stale-read", "lost-write"] {
            let mut args = if kind == "lost-write" {
                for_lost.to_vec()
            } else {
                common.to_vec()
            };
            args.extend_from_slice(&["--inject", kind]);
            let (path, injected) = synth(dir.path(), &format!("{kind}-{seed}.jsonl"), &args);
            let injected = injected.expect("synth reports the injection");
            let o = run(&["check", "--json", "--model", model, &path]);
            assert_eq!(o.status.code(), Some(1), "{kind} seed {seed}");
            let l = &json_lines(&o)[0];
            assert_eq!(l["valid"], false, "{kind} seed {seed}");
            let anomalies = l["anomalies"].as_array().expect("anomalies");
            assert_eq!(anomalies.len(), 1, "{kind} seed {seed}: one key is broken");
            let op = &anomalies[0]["op"];
            assert_eq!(
                op["complete_index"], injected["index"],
                "{kind} seed {seed}: {op}"
            );
            assert_eq!(op["index"], injected["invoke_index"], "{kind} seed {seed}");
            assert_eq!(op["result"], injected["value"], "{kind} seed {seed}");
            checked += 1;
        }
    }
    assert_eq!(checked, 24);
}

#[test]
fn quickstart_history_from_the_readme() {
    // The history a reader pastes in the README's quickstart.
    let text = include_str!("../docs/quickstart.jsonl");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "history.jsonl", text);
    let o = run(&["check", &path]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("NOT linearizable"), "{out}");
    assert!(out.contains("cannot place: process 2 read"), "{out}");
    // Standard input works too.
    let mut child = bin()
        .args(["check", "--json", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let o = child.wait_with_output().expect("wait");
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(json_lines(&o)[0]["file"], "-");
}

#[test]
fn json_schema_is_shipped_and_matches_the_reader() {
    let schema: Value =
        serde_json::from_str(include_str!("../docs/history.schema.json")).expect("schema is JSON");
    let required = schema["required"].as_array().expect("required");
    for f in ["process", "type", "f"] {
        assert!(required.contains(&Value::String(f.into())), "{f} required");
    }
    let types = &schema["properties"]["type"]["enum"];
    assert_eq!(types, &serde_json::json!(["invoke", "ok", "fail", "info"]));
}

#[test]
fn a_stored_run_directory_is_checked_as_its_workload() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run_dir = dir.path().join("run");
    std::fs::create_dir(&run_dir).expect("mkdir");
    // A set run that lost an acknowledged element.
    std::fs::write(
        run_dir.join("results.json"),
        r#"{"config": {"workload": {"kind": "set"}}}"#,
    )
    .expect("results");
    std::fs::write(
        run_dir.join("history.jsonl"),
        [
            r#"{"process":0,"type":"invoke","f":"add","key":"set","value":1}"#,
            r#"{"process":0,"type":"ok","f":"add","key":"set","value":1}"#,
            r#"{"process":9,"type":"invoke","f":"read","key":"set","phase":"final","node":"n1"}"#,
            r#"{"process":9,"type":"ok","f":"read","key":"set","value":[],"phase":"final","node":"n1"}"#,
        ]
        .join("\n"),
    )
    .expect("history");
    let d = run_dir.display().to_string();
    let o = run(&["check", &d]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("set workload") && out.contains("VIOLATED"),
        "{out}"
    );
    let o = run(&["check", "--json", &d]);
    assert_eq!(json_lines(&o)[0]["checks"]["set"]["stats"]["lost"], 1);

    // A kv run: checked with the kv model.
    std::fs::write(
        run_dir.join("results.json"),
        r#"{"config": {"workload": {"kind": "kv"}}}"#,
    )
    .expect("results");
    std::fs::write(
        run_dir.join("history.jsonl"),
        include_str!("../docs/quickstart.jsonl"),
    )
    .expect("history");
    let o = run(&["check", "--json", &d]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(json_lines(&o)[0]["model"], "kv");

    // A directory that is not a run.
    let o = run(&["check", &dir.path().display().to_string()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("without history.jsonl"),
        "{}",
        stderr(&o)
    );
}
