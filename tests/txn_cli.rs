//! `faultline check` on transactional histories through the command line:
//! the shared corpus's samples in every format, synthesized histories with
//! injected anomalies, malformed input, exit codes, the HTML report.

mod cli_common;

use std::path::{Path, PathBuf};
use std::process::Output;

use cli_common::{faultline as run, stderr};
use serde_json::{Value, json};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("bad JSON {:?}: {e}", stdout(o)))
}

/// The shared corpus's transaction samples (missing: the test fails unless
/// FAULTLINE_SKIP_CORPUS=1).
fn corpus() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/txn");
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

fn anomaly_types(v: &Value) -> Vec<String> {
    v["anomaly_counts"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

fn model_valid(v: &Value, model: &str) -> Value {
    v["models"]
        .as_array()
        .and_then(|a| a.iter().find(|m| m["model"] == model))
        .map(|m| m["valid"].clone())
        .unwrap_or(Value::Null)
}

#[test]
fn plume_sample_in_plume_and_json() {
    let Some(dir) = corpus() else { return };
    let plume = dir.join("plume-sample-history.txt");
    let p = plume.to_str().unwrap();
    // Detected, and named.
    for args in [
        vec!["check", "--json", p],
        vec!["check", "--json", "--format", "plume", p],
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let v = json_of(&o);
        assert_eq!(v["format"], "plume");
        assert_eq!(v["model"], "rw-register");
        assert_eq!(
            v["consistency_models"],
            json!(["strong-session-serializable"])
        );
        assert_eq!(v["valid"], true);
        assert_eq!(v["ops"], 1000);
        assert_eq!(v["stats"]["mops"], 20000);
    }
    // The format has no real time: strict serializability is refused.
    let o = run(&["check", "--consistency-models", "strict-serializable", p]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("real-time order"), "{err}");
    // The same transactions as faultline JSON Lines (one process per
    // session), checked for the same models: the same verdict.
    let text = std::fs::read_to_string(&plume).unwrap();
    let mut txns: Vec<(i64, Vec<Value>)> = Vec::new();
    let mut last = None;
    for l in text.lines().filter(|l| !l.trim().is_empty()) {
        let f = &l[..1];
        let nums: Vec<i64> = l[2..l.len() - 1]
            .split(',')
            .map(|x| x.trim().parse().unwrap())
            .collect();
        let v = if nums[1] == 0 {
            Value::Null
        } else {
            json!(nums[1])
        };
        if last != Some((nums[2], nums[3])) {
            txns.push((nums[2], Vec::new()));
            last = Some((nums[2], nums[3]));
        }
        txns.last_mut().unwrap().1.push(json!([f, nums[0], v]));
    }
    let mut lines = String::new();
    for (session, mops) in &txns {
        let inv: Vec<Value> = mops
            .iter()
            .map(|m| {
                if m[0] == "r" {
                    json!(["r", m[1], null])
                } else {
                    m.clone()
                }
            })
            .collect();
        lines += &format!(
            "{}\n{}\n",
            json!({"process": session, "type": "invoke", "f": "txn", "value": inv}),
            json!({"process": session, "type": "ok", "f": "txn", "value": mops})
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let jl = tmp.path().join("plume.jsonl");
    std::fs::write(&jl, lines).unwrap();
    let o = run(&[
        "check",
        "--json",
        "--consistency-models",
        "strong-session-serializable",
        jl.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert_eq!(json_of(&o)["format"], "json");
}

/// The Elle paper's example, with the `:process` and `:f` it leaves out.
fn paper_with_processes(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("elle-paper-example.edn")).unwrap();
    text.lines()
        .map(|l| {
            let i: u64 = l
                .split(":index ")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .expect("an :index");
            l.replacen('{', &format!("{{:process {} :f :txn ", i / 2), 1) + "\n"
        })
        .collect()
}

#[test]
fn elle_paper_example_in_edn_and_json() {
    let Some(dir) = corpus() else { return };
    // As published it has no :process: a malformed history here, one line.
    let raw = dir.join("elle-paper-example.edn");
    let o = run(&["check", raw.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(":1: missing field `process`"),
        "{}",
        stderr(&o)
    );
    let tmp = tempfile::tempdir().unwrap();
    let edn = tmp.path().join("paper.edn");
    std::fs::write(&edn, paper_with_processes(&dir)).unwrap();
    let o = run(&["check", "--json", edn.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v = json_of(&o);
    assert_eq!(v["format"], "edn");
    assert_eq!(v["model"], "list-append");
    assert_eq!(anomaly_types(&v), ["G-single-realtime"]);
    assert_eq!(model_valid(&v, "serializable"), true);
    assert_eq!(model_valid(&v, "strong-session-serializable"), true);
    assert_eq!(model_valid(&v, "strict-serializable"), false);
    let cycle = &v["anomalies"][0]["cycle"];
    assert_eq!(cycle.as_array().unwrap().len(), 3);
    let rw = cycle
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "rw")
        .unwrap();
    assert_eq!(
        rw["why"],
        "T6 read key 255 as [2 3 4 5], which does not yet hold 8, appended next by T2"
    );
    // The same history as JSON Lines.
    let h = faultline_checkers::format::read_path(&edn, faultline_checkers::Format::Edn)
        .unwrap()
        .0;
    let mut lines = String::new();
    for op in &h.ops {
        lines += &format!(
            "{}\n{}\n",
            json!({"index": op.invoke_index, "process": op.process, "type": "invoke", "f": "txn", "value": op.invoke_value}),
            json!({"index": op.complete_index(), "process": op.process, "type": "ok", "f": "txn", "value": op.value})
        );
    }
    let jl = tmp.path().join("paper.jsonl");
    std::fs::write(&jl, lines).unwrap();
    let o = run(&["check", "--json", jl.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let w = json_of(&o);
    assert_eq!(w["format"], "json");
    assert_eq!(w["anomalies"][0]["cycle"], v["anomalies"][0]["cycle"]);
    // The text summary: the verdict, the strongest model, the witness.
    let o = run(&["check", edn.to_str().unwrap()]);
    let text = stdout(&o);
    assert!(
        text.contains(": VIOLATED: strict-serializable (list-append, 4 txns;"),
        "{text}"
    );
    assert!(
        text.contains("strongest model that holds: strong-session-serializable"),
        "{text}"
    );
    assert!(
        text.contains("violates: strict-serializable (G-single-realtime)"),
        "{text}"
    );
}

fn synth(tmp: &Path, model: &str, isolation: &str, inject: &str) -> (PathBuf, Value) {
    let path = tmp.join(format!("{model}-{isolation}-{inject}.jsonl"));
    let o = run(&[
        "synth",
        "--model",
        model,
        "--isolation",
        isolation,
        "--ops",
        "1500",
        "--processes",
        "8",
        "--keys",
        "10",
        "--seed",
        "3",
        "--inject",
        inject,
        "-o",
        path.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let injected = if inject == "none" {
        Value::Null
    } else {
        serde_json::from_str(stderr(&o).trim()).unwrap()
    };
    (path, injected)
}

#[test]
fn synthesized_histories_with_injected_anomalies() {
    let tmp = tempfile::tempdir().unwrap();
    for model in ["list-append", "rw-register"] {
        // A serializable store: strict serializable without injection.
        let (p, _) = synth(tmp.path(), model, "serializable", "none");
        let o = run(&["check", "--json", p.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{model}: {}", stdout(&o));
        assert_eq!(json_of(&o)["model"], model);
        for (inject, want, still_holds) in [
            ("g1c", "G1c", "read-uncommitted"),
            ("g-single", "G-single", "read-committed"),
            ("write-skew", "G2-item", "snapshot-isolation"),
            ("lost-update", "lost-update", "read-committed"),
        ] {
            let (p, injected) = synth(tmp.path(), model, "serializable", inject);
            let o = run(&["check", "--json", p.to_str().unwrap()]);
            assert_eq!(o.status.code(), Some(1), "{model} {inject}");
            let v = json_of(&o);
            let types = anomaly_types(&v);
            assert!(
                types.contains(&want.to_string()),
                "{model} {inject}: {types:?}"
            );
            assert_eq!(
                model_valid(&v, still_holds),
                true,
                "{model} {inject}: {types:?}"
            );
            // The witness names the injected transactions.
            let a = v["anomalies"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["type"] == want)
                .unwrap();
            let named: Vec<&Value> = a["txns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| &t["index"])
                .collect();
            let ids = injected["invoke_indices"].as_array().unwrap();
            assert!(named.iter().all(|i| ids.contains(i)), "{named:?} {ids:?}");
        }
    }
    // Snapshot isolation: write skew happens, G-single does not.
    let (p, _) = synth(tmp.path(), "list-append", "snapshot-isolation", "none");
    let o = run(&[
        "check",
        "--json",
        "--consistency-models",
        "snapshot-isolation,serializable",
        p.to_str().unwrap(),
    ]);
    let v = json_of(&o);
    assert_eq!(
        model_valid(&v, "snapshot-isolation"),
        true,
        "{:?}",
        anomaly_types(&v)
    );
    assert_eq!(model_valid(&v, "serializable"), false);
    assert!(anomaly_types(&v).contains(&"G2-item".to_string()));
    // Read committed: lost updates and read skew.
    let (p, _) = synth(tmp.path(), "rw-register", "read-committed", "none");
    let v = json_of(&run(&["check", "--json", p.to_str().unwrap()]));
    assert_eq!(
        model_valid(&v, "read-committed"),
        true,
        "{:?}",
        anomaly_types(&v)
    );
    assert_eq!(model_valid(&v, "snapshot-isolation"), false);
}

#[test]
fn malformed_transactions_and_flags_are_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        (
            "{\"process\":0,\"type\":\"invoke\",\"f\":\"txn\",\"value\":[[\"append\",\"x\",1]]}\n\
             {\"process\":0,\"type\":\"ok\",\"f\":\"txn\",\"value\":[[\"append\",\"x\",1]]}\n\
             {\"process\":1,\"type\":\"invoke\",\"f\":\"txn\",\"value\":[[\"append\",\"x\",1]]}\n\
             {\"process\":1,\"type\":\"ok\",\"f\":\"txn\",\"value\":[[\"append\",\"x\",1]]}\n",
            &["--model", "list-append"][..],
            ":3: value 1 is appended to key x twice",
        ),
        (
            "{\"process\":0,\"type\":\"invoke\",\"f\":\"txn\",\"value\":[[\"append\",\"x\",1]]}\n\
             {\"process\":0,\"type\":\"ok\",\"f\":\"txn\",\"value\":[[\"append\",\"x\",1],[\"r\",\"x\",[1]]]}\n",
            &[][..],
            ":2: the ok completion has 2 micro-ops but the invocation (line 1) had 1",
        ),
        (
            "{\"process\":0,\"type\":\"invoke\",\"f\":\"txn\",\"value\":[[\"w\",\"x\",1]]}\n\
             {\"process\":0,\"type\":\"ok\",\"f\":\"txn\",\"value\":[[\"w\",\"x\",1]]}\n",
            &["--model", "list-append"][..],
            ":2: micro-op `w` does not belong to the list-append model",
        ),
        (
            "w(1,5,0,0)\nw(1,5,1,1)\n",
            &[][..],
            ":2: value 5 is written to key 1 twice",
        ),
    ];
    for (i, (text, flags, want)) in cases.iter().enumerate() {
        let p = tmp.path().join(format!("bad{i}.txt"));
        std::fs::write(&p, text).unwrap();
        let mut args = vec!["check"];
        args.extend_from_slice(flags);
        args.push(p.to_str().unwrap());
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "case {i}: {}", stdout(&o));
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(want), "case {i}: {err}");
    }
    let o = run(&["check", "--consistency-models", "bogus", "x.jsonl"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("unknown consistency model `bogus`"),
        "{}",
        stderr(&o)
    );
    let o = run(&["synth", "--model", "list-append", "--inject", "stale-read"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--inject"), "{}", stderr(&o));
    let o = run(&["synth", "--model", "list-append", "--isolation", "chaos"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--isolation"), "{}", stderr(&o));
}

#[test]
fn out_of_time_is_unknown_and_html_draws_the_cycle() {
    let tmp = tempfile::tempdir().unwrap();
    let (p, _) = synth(tmp.path(), "list-append", "serializable", "write-skew");
    let o = run(&[
        "check",
        "--json",
        "--time-limit",
        "0.000001",
        p.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stdout(&o));
    let v = json_of(&o);
    assert_eq!(v["valid"], "unknown");
    assert!(v["unknown_reason"].as_str().unwrap().contains("time limit"));
    let html = tmp.path().join("report.html");
    let o = run(&[
        "check",
        "--html",
        html.to_str().unwrap(),
        p.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("G2-item"));
    // The drawing travels in the report's data (escaped for the script
    // element) and the report's script puts it under the witness.
    assert!(
        page.contains("\"svg\":\"\\u003csvg xmlns"),
        "the cycle's drawing is in the report"
    );
    assert!(page.contains("fig.innerHTML = a.svg"));
}

/// A reader that goes away (`faultline check h.jsonl | head -1`) ends the
/// output quietly: the verdict's exit code, no panic (it was exit 101).
#[test]
fn broken_pipe_keeps_the_verdict() {
    use std::process::{Command, Stdio};
    let dir = std::env::temp_dir().join(format!("faultline-txn-pipe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let h = dir.join("h.jsonl");
    let o = run(&[
        "synth",
        "--model",
        "list-append",
        "--inject",
        "write-skew",
        "-o",
        h.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut child = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["check", h.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs faultline");
    // Close the read end before faultline writes its verdict.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("waits");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
