//! The fast path for transactional JSON Lines (the file read straight into
//! compact transactions, `format::json_txn`) against the general path (the
//! file read into a `History`, then `Txns::read`): on synthesized histories
//! of every injected anomaly, both models and every isolation level, the
//! fast path must accept the file and give the same report, witnesses
//! included; on what it cannot read exactly it must decline (the general
//! reader then reads the file and names the error).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use faultline_checkers::format::{self, Format, json_txn};
use faultline_checkers::txn::{self, TxnModel, TxnOptions, TxnReport};
use faultline_workloads::txn_synth::{Isolation, TxnInject, TxnKind, TxnSynthConfig, synthesize};
use serde_json::Value;

/// A file in this test's own temporary directory (removed by [`clean`]).
fn temp(name: &str) -> PathBuf {
    let dir = test_dir();
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

fn test_dir() -> PathBuf {
    let test = std::thread::current()
        .name()
        .unwrap_or("main")
        .replace("::", "-");
    std::env::temp_dir().join(format!(
        "faultline-txn-stream-{}-{test}",
        std::process::id()
    ))
}

fn clean() {
    let _ = std::fs::remove_dir_all(test_dir());
}

fn options(model: TxnModel, models: &str) -> TxnOptions {
    TxnOptions {
        model,
        models: txn::models::parse_list(models).expect("models"),
        deadline: None,
        memory_limit: usize::MAX,
    }
}

/// A report as JSON, without its timings.
fn comparable(r: &TxnReport) -> Value {
    let mut v = serde_json::to_value(r).expect("report to JSON");
    for k in ["analysis_ms", "cycles_ms"] {
        v["stats"].as_object_mut().expect("stats").remove(k);
    }
    v
}

/// Checks `path` both ways; returns the (equal) report.
fn both_ways(path: &Path, models: &str) -> TxnReport {
    let (history, fmt) = format::read_path(path, Format::Auto).expect("general reader");
    assert_eq!(fmt, Format::Json);
    let model = TxnModel::infer(&history).expect("a txn history");
    let streamed = json_txn::read_txn_path(path, Format::Auto, None)
        .unwrap_or_else(|e| panic!("the fast path declined {}: {}", path.display(), e.0));
    assert_eq!(streamed.inferred, model, "{}", path.display());
    assert_eq!(streamed.events, history.events);
    assert_eq!(streamed.faults, history.faults.len());
    let opts = options(model, models);
    let general = txn::check(&history, &opts).expect("general check");
    let fast = txn::check_txns(&streamed.txns, None, &opts, Instant::now()).expect("fast check");
    assert_eq!(
        comparable(&general),
        comparable(&fast),
        "{}: the two paths disagree",
        path.display()
    );
    fast
}

#[test]
fn fast_and_general_paths_agree_on_every_injected_anomaly() {
    let injections = [
        None,
        Some(TxnInject::G1c),
        Some(TxnInject::GSingle),
        Some(TxnInject::WriteSkew),
        Some(TxnInject::LostUpdate),
    ];
    let mut invalid = 0;
    for kind in [TxnKind::ListAppend, TxnKind::RwRegister] {
        for isolation in [
            Isolation::Serializable,
            Isolation::SnapshotIsolation,
            Isolation::ReadCommitted,
        ] {
            for (seed, inject) in injections.iter().enumerate() {
                let cfg = TxnSynthConfig {
                    kind,
                    isolation,
                    txns: 300,
                    processes: 8,
                    keys: 6,
                    writes_per_key: 12,
                    seed: seed as u64 + 1,
                    info: 0.05,
                    fail: 0.05,
                    inject: *inject,
                };
                let path = temp(&format!("{kind:?}-{isolation:?}-{seed}.jsonl"));
                let file = std::fs::File::create(&path).expect("temp file");
                synthesize(&cfg, std::io::BufWriter::new(file)).expect("synthesizes");
                for models in ["strict-serializable", "serializable,read-committed"] {
                    let r = both_ways(&path, models);
                    if inject.is_some() {
                        assert_ne!(
                            r.valid,
                            faultline_checkers::Validity::Valid,
                            "{cfg:?}: the injected anomaly was not found"
                        );
                    }
                    if r.valid == faultline_checkers::Validity::Invalid {
                        invalid += 1;
                    }
                }
            }
        }
    }
    assert!(invalid >= 16, "only {invalid} invalid reports");
    clean();
}

fn write(name: &str, lines: &[&str]) -> PathBuf {
    let path = temp(name);
    let mut f = std::fs::File::create(&path).expect("temp file");
    for l in lines {
        writeln!(f, "{l}").expect("writes");
    }
    path
}

#[test]
fn string_keys_values_faults_and_null_reads_agree() {
    // G1a (an aborted append read), string keys and values, a null read,
    // a pending transaction, a fault event, extra fields.
    let path = write(
        "strings.jsonl",
        &[
            r#"{"process":0,"type":"invoke","f":"txn","value":[["append","x","a"],["r","y",null]]}"#,
            r#"{"process":0,"type":"fail","f":"txn","value":[["append","x","a"],["r","y",null]],"error":"aborted"}"#,
            r#"{"process":"nemesis","type":"info","f":"partition","value":{"n1":["n2"]}}"#,
            r#"{"process":1,"type":"invoke","f":"txn","value":[["r","x",null],["append","y",true],["r","z",null]]}"#,
            r#"{"process":1,"type":"ok","f":"txn","value":[["r","x",["a"]],["append","y",true],["r","z",null]],"node":"n1"}"#,
            r#"{"process":2,"type":"invoke","f":"txn","value":[["append","z",-5000000000000000000],["append","z",18446744073709551615]]}"#,
            r#"{"process":3,"type":"invoke","f":"txn","value":[["r","z",null],["append",7,1.5]]}"#,
            r#"{"process":3,"type":"ok","f":"txn","value":[["r","z",[-5000000000000000000,18446744073709551615]],["append",7,1.5]]}"#,
        ],
    );
    let r = both_ways(&path, "strict-serializable");
    assert!(
        r.anomaly_counts.contains_key("G1a"),
        "{:?}",
        r.anomaly_counts
    );
    let g1a = r
        .anomalies
        .iter()
        .find(|a| a.kind.name() == "G1a")
        .expect("G1a");
    let reader = g1a
        .txns
        .iter()
        .find(|t| t.process == 1)
        .expect("the reader");
    assert_eq!(
        reader.value,
        serde_json::json!([["r", "x", ["a"]], ["append", "y", true], ["r", "z", null]])
    );
    clean();
}

#[test]
fn the_fast_path_declines_what_it_cannot_read_exactly() {
    let inv = r#"{"process":0,"type":"invoke","f":"txn","value":[["append",1,1]]}"#;
    let ok = r#"{"process":0,"type":"ok","f":"txn","value":[["append",1,1]]}"#;
    let declined: &[(&str, Vec<&str>)] = &[
        (
            "another function",
            vec![inv, ok, r#"{"process":1,"type":"invoke","f":"read"}"#],
        ),
        (
            "beyond 64 bits",
            vec![
                inv,
                r#"{"process":0,"type":"ok","f":"txn","value":[["append",1,18446744073709551616]]}"#,
            ],
        ),
        (
            "a field twice",
            vec![
                inv,
                r#"{"process":0,"type":"ok","type":"ok","f":"txn","value":[["append",1,1]]}"#,
            ],
        ),
        ("not JSON", vec![inv, "{oops}"]),
        (
            "a list key",
            vec![r#"{"process":0,"type":"invoke","f":"txn","value":[["append",[1],1]]}"#],
        ),
        ("completion first", vec![ok]),
        ("two invocations", vec![inv, inv]),
        (
            "count",
            vec![
                inv,
                r#"{"process":0,"type":"ok","f":"txn","value":[["append",1,1],["r",1,[1]]]}"#,
            ],
        ),
        (
            "invoked read not null",
            vec![r#"{"process":0,"type":"invoke","f":"txn","value":[["r",1,[1]]]}"#],
        ),
        (
            "an append and a write",
            vec![
                inv,
                ok,
                r#"{"process":1,"type":"invoke","f":"txn","value":[["w",2,1]]}"#,
                r#"{"process":1,"type":"ok","f":"txn","value":[["w",2,1]]}"#,
            ],
        ),
    ];
    for (why, lines) in declined {
        let path = write("declined.jsonl", lines);
        assert!(
            json_txn::read_txn_path(&path, Format::Auto, None).is_err(),
            "{why}: accepted"
        );
    }
    // One JSON array and a torn last line: the general reader's forms.
    let path = write("array.json", &[&format!("[{inv},"), &format!("{ok}]")]);
    assert!(json_txn::read_txn_path(&path, Format::Auto, None).is_err());
    let path = temp("torn.jsonl");
    std::fs::write(&path, format!("{inv}\n{ok}\n{{\"proc")).expect("writes");
    assert!(json_txn::read_txn_path(&path, Format::Auto, None).is_err());
    // The same lines, well formed, are accepted.
    let path = write("fine.jsonl", &[inv, ok]);
    assert!(json_txn::read_txn_path(&path, Format::Auto, None).is_ok());
    clean();
}
