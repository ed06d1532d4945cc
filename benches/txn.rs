//! `cargo bench --bench txn`: the transactional isolation checker, through
//! the whole `faultline check` command (wall time and peak RSS with
//! `/usr/bin/time`, medians of `FAULTLINE_BENCH_RUNS` runs, default 3).
//!
//! 1. 1M list-append transactions (2–6 micro-ops, 4 on average; 1,000 keys
//!    in use, each retired after 32 appends; 50 processes) from a simulated
//!    serializable store, checked for serializability, then for strict
//!    serializability (adds process and real-time edges), both through the
//!    streamed reader (`format/json_txn.rs`), then for serializability
//!    through the general reader (forced by `--junit`), for comparison;
//! 2. one strongly connected component of 20,000 transactions: each
//!    appends to its own key, reads the next transaction's key before that
//!    one appends (a ring of rw edges), and reads two random keys, before
//!    or after their append; searched to a verdict with its cycles.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use faultline_workloads::txn_synth::{Isolation, TxnKind, TxnSynthConfig, synthesize};
use serde_json::{Value, json};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn runs() -> usize {
    std::env::var("FAULTLINE_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
}

/// `faultline check --json ARGS FILE` under `/usr/bin/time`: median wall
/// seconds, median CPU seconds (user + system: on a loaded machine the wall
/// time mostly measures the others), median peak RSS in MiB, the last JSON
/// line.
fn cli(file: &Path, args: &[&str]) -> Option<(f64, f64, f64, Value)> {
    let bin = env!("CARGO_BIN_EXE_faultline");
    let mut walls = Vec::new();
    let mut rss = Vec::new();
    let mut cpu = Vec::new();
    let mut last = Value::Null;
    for _ in 0..runs() {
        let t = Instant::now();
        let o = match Command::new("/usr/bin/time")
            .args(["-f", "%U %S %M"])
            .arg(bin)
            .args(["check", "--json"])
            .args(args)
            .arg(file)
            .output()
        {
            Ok(o) => o,
            Err(e) => {
                println!("cannot run /usr/bin/time ({e}); install the `time` package");
                return None;
            }
        };
        walls.push(t.elapsed().as_secs_f64());
        let err = String::from_utf8_lossy(&o.stderr);
        if !o.status.success() && o.status.code() != Some(1) {
            println!(
                "  faultline check exited with {:?}: {}",
                o.status,
                err.trim()
            );
        }
        // user seconds, system seconds, peak RSS in KiB
        let fields: Vec<f64> = err
            .lines()
            .last()
            .map(|l| {
                l.split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        if let [user, sys, kb] = fields[..] {
            cpu.push(user + sys);
            rss.push(kb / 1024.0);
        }
        last = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    }
    Some((median(walls), median(cpu), median(rss), last))
}

fn show(label: &str, r: Option<(f64, f64, f64, Value)>) {
    let Some((wall, cpu, rss, v)) = r else { return };
    println!(
        "{label:<46} wall {wall:>6.2} s  cpu {cpu:>6.2} s  peak RSS {rss:>6.0} MiB  parse {} ms  check {} ms  valid {}  \
         components {} (largest {})  anomalies {}",
        v["parse_ms"],
        v["check_ms"],
        v["valid"],
        v["stats"]["components"],
        v["stats"]["largest_component"],
        v["anomaly_counts"]
    );
}

fn one_million(dir: &Path) {
    let path = dir.join("list-append-1m.jsonl");
    let cfg = TxnSynthConfig {
        kind: TxnKind::ListAppend,
        isolation: Isolation::Serializable,
        txns: 1_000_000,
        processes: 50,
        keys: 1000,
        writes_per_key: 32,
        seed: 1,
        info: 0.0,
        fail: 0.0,
        inject: None,
    };
    let t = Instant::now();
    let file = std::fs::File::create(&path).expect("temp file");
    synthesize(&cfg, std::io::BufWriter::new(file)).expect("synthesizes");
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "synthesized 1M list-append txns in {:.1} s ({} MB)",
        t.elapsed().as_secs_f64(),
        size >> 20
    );
    show(
        "1M txns, serializable",
        cli(&path, &["--consistency-models", "serializable"]),
    );
    show(
        "1M txns, strict-serializable",
        cli(&path, &["--consistency-models", "strict-serializable"]),
    );
    // `--junit` needs the history, so the file goes through the general
    // reader: the figure the streamed reader is compared with.
    let junit = dir.join("junit.xml");
    let junit = junit.to_str().unwrap_or("junit.xml");
    show(
        "1M txns, serializable, general reader",
        cli(
            &path,
            &["--junit", junit, "--consistency-models", "serializable"],
        ),
    );
}

/// A history whose dependency graph is one strongly connected component
/// of `n` transactions.
fn one_component(path: &Path, n: u64) {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("temp file"));
    let mut seed = 7u64;
    let mut rand = move |m: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % m
    };
    let mut index = 0;
    let mut emit = |out: &mut std::io::BufWriter<std::fs::File>, p: u64, kind: &str, v: Value| {
        let line = json!({"index": index, "process": p, "type": kind, "f": "txn", "value": v});
        index += 1;
        writeln!(out, "{line}").expect("writes");
    };
    // All concurrent: invocations first, then completions.
    let mut txns = Vec::new();
    for i in 0..n {
        let next = (i + 1) % n;
        let mut ops = vec![json!(["append", i, 1]), json!(["r", next, null])];
        for _ in 0..2 {
            let j = rand(n);
            if j != i && j != next {
                let seen = if rand(2) == 0 {
                    json!([1])
                } else {
                    Value::Null
                };
                ops.push(json!(["r", j, seen]));
            }
        }
        txns.push(ops);
    }
    for (i, ops) in txns.iter().enumerate() {
        let inv: Vec<Value> = ops
            .iter()
            .map(|m| {
                if m[0] == "r" {
                    json!(["r", m[1], null])
                } else {
                    m.clone()
                }
            })
            .collect();
        emit(&mut out, i as u64, "invoke", Value::Array(inv));
    }
    for (i, ops) in txns.iter().enumerate() {
        emit(&mut out, i as u64, "ok", Value::Array(ops.clone()));
    }
    // One more transaction reads every key, so every append is ordered.
    let all: Vec<Value> = (0..n).map(|k| json!(["r", k, [1]])).collect();
    let inv: Vec<Value> = (0..n).map(|k| json!(["r", k, null])).collect();
    emit(&mut out, n, "invoke", Value::Array(inv));
    emit(&mut out, n, "ok", Value::Array(all));
    out.flush().expect("writes");
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("faultline-bench-txn-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    println!("faultline check, transactions (medians of {} runs)", runs());
    let scc = dir.join("one-scc-20k.jsonl");
    one_component(&scc, 20_000);
    show(
        "one component of 20,000 txns, serializable",
        cli(&scc, &["--consistency-models", "serializable"]),
    );
    if std::env::var("FAULTLINE_BENCH_SKIP_1M").is_err() {
        one_million(&dir);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
