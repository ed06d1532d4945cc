//! `faultline check` on linearizability: stopping after the first
//! violation, the polynomial decision of unique-value keys, and the memory
//! bound of the search.

mod cli_common;

use std::process::Output;

use cli_common::{faultline as run, stderr};
use serde_json::{Value, json};

fn json_line(o: &Output) -> Value {
    let out = String::from_utf8_lossy(&o.stdout);
    let line = out
        .lines()
        .next()
        .unwrap_or_else(|| panic!("no output: {}", stderr(o)));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON {line:?}: {e}"))
}

fn write_events(dir: &std::path::Path, name: &str, events: &[Value]) -> String {
    let path = dir.join(name);
    let text: String = events.iter().map(|e| format!("{e}\n")).collect();
    std::fs::write(&path, text).expect("write history");
    path.display().to_string()
}

fn ev(process: usize, kind: &str, f: &str, key: &str, value: Value) -> Value {
    json!({"process": process, "type": kind, "f": f, "key": key, "value": value})
}

/// A key the search cannot decide in reasonable time: `n` concurrent blind
/// writes of 1 or 2 and `n` concurrent reads of 1 or 2 (so many orders
/// work), then a read of 3 that no order allows.
fn hard_key(key: &str, n: usize) -> Vec<Value> {
    let f = |p: usize| if p < n { "write" } else { "read" };
    let mut events: Vec<Value> = (0..2 * n)
        .map(|p| {
            let v = if p < n { json!(p % 2 + 1) } else { Value::Null };
            ev(p, "invoke", f(p), key, v)
        })
        .collect();
    events.extend((0..2 * n).map(|p| ev(p, "ok", f(p), key, json!(p % 2 + 1))));
    events.push(ev(0, "invoke", "read", key, Value::Null));
    events.push(ev(0, "ok", "read", key, json!(3)));
    events
}

/// A key with an obvious stale read.
fn stale_key(key: &str) -> Vec<Value> {
    vec![
        ev(0, "invoke", "write", key, json!(1)),
        ev(0, "ok", "write", key, json!(1)),
        ev(0, "invoke", "read", key, Value::Null),
        ev(0, "ok", "read", key, json!(2)),
    ]
}

#[test]
fn stops_after_the_first_violation_unless_all_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut events = hard_key("a", 12);
    events.extend(stale_key("b"));
    let path = write_events(dir.path(), "two-keys.jsonl", &events);

    // Default: the violation on "b" decides; "a" is left open, named.
    let o = run(&["check", "--json", &path]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let l = json_line(&o);
    assert_eq!(l["valid"], false);
    assert_eq!(l["anomalies"][0]["key"], "b");
    assert_eq!(
        l["not_decided"],
        json!([{"key": "a", "reason": "stopped after the first violation"}])
    );
    let o = run(&["check", &path]);
    assert_eq!(o.status.code(), Some(1));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("not decided: stopped after the first violation: 1 key (\"a\""),
        "{text}"
    );

    // --all-keys tries to decide "a" too: same verdict and exit code, and
    // here the time limit leaves it open for that reason.
    let o = run(&["check", "--json", "--all-keys", "--time-limit", "1", &path]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let l = json_line(&o);
    assert_eq!(l["valid"], false);
    assert_eq!(
        l["not_decided"],
        json!([{"key": "a", "reason": "time limit reached"}])
    );

    // Without a violation nothing is "not decided": the hard key alone is
    // unknown.
    let path = write_events(dir.path(), "hard.jsonl", &hard_key("a", 12));
    let o = run(&["check", "--json", "--time-limit", "0.5", &path]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let l = json_line(&o);
    assert_eq!(l["not_decided"], json!([]));
}

/// `faultline synth` of 230 kv operations by 50 clients into `path`, with
/// `extra` flags; returns its standard error.
fn synth_kv(path: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "synth",
        "--model",
        "kv",
        "--clients",
        "50",
        "--ops",
        "230",
        "-o",
        path,
    ];
    args.extend_from_slice(extra);
    let o = run(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    stderr(&o)
}

/// Runs `faultline ARGS` under `/usr/bin/time -f %M`: the output and the
/// peak resident set size in KiB.
fn run_measured(args: &[&str]) -> (Output, u64) {
    let o = std::process::Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg(env!("CARGO_BIN_EXE_faultline"))
        .args(args)
        .output()
        .expect("/usr/bin/time runs (scripts/test-all installs the `time` package)");
    let err = stderr(&o);
    let kib = err
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS from /usr/bin/time: {err}"));
    (o, kib)
}

#[test]
fn memory_limit_bounds_the_peak_rss() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Two histories the search drowns in: a 230-operation kv key of puts,
    // gets and appends by 50 clients with values written many times (so
    // not decided from unique values), and 3 KB of all-concurrent
    // operations.
    let kv = dir.path().join("kv.jsonl").display().to_string();
    synth_kv(&kv, &["--values", "20", "--seed", "1"]);
    let concurrent = write_events(dir.path(), "concurrent.jsonl", &hard_key("a", 16));
    assert!(std::fs::metadata(&concurrent).expect("written").len() < 4096);
    // The binary and the history alone: a small decided check.
    let small = write_events(dir.path(), "small.jsonl", &stale_key("b"));
    let (_, base) = run_measured(&["check", &small]);
    // The kv case needs 32 MiB to show it: the search used to pass the
    // bound by the appended text it did not count and by doubling its
    // cache (54 MiB of RSS with a 32 MiB bound).
    for (path, limit) in [(&kv, 32u64), (&concurrent, 8)] {
        let mib = limit.to_string();
        let (o, peak) = run_measured(&[
            "check",
            "--json",
            "--memory-limit",
            &mib,
            "--time-limit",
            "300",
            path,
        ]);
        assert_eq!(o.status.code(), Some(3), "{path}: {}", stderr(&o));
        let l = json_line(&o);
        assert_eq!(l["valid"], "unknown");
        let reason = l["unknown_reason"].as_str().expect("a reason");
        assert!(
            reason.contains(&format!("memory bound of {limit} MiB")),
            "{reason}"
        );
        // Under the bound plus the fixed overhead (and 4 MiB of slack for
        // the allocator and the search's stack).
        assert!(
            peak < base + (limit + 4) * 1024,
            "{path}: peak RSS {peak} KiB with a {limit} MiB bound, {base} KiB without a search"
        );
    }
}

#[test]
fn unique_value_kv_keys_with_50_clients_are_decided_without_the_search() {
    let dir = tempfile::tempdir().expect("tempdir");
    for seed in ["1", "2", "8"] {
        let ok = dir
            .path()
            .join(format!("ok-{seed}.jsonl"))
            .display()
            .to_string();
        let bad = dir
            .path()
            .join(format!("bad-{seed}.jsonl"))
            .display()
            .to_string();
        synth_kv(&ok, &["--info", "0.05", "--seed", seed]);
        let injection = synth_kv(
            &bad,
            &["--info", "0.05", "--seed", seed, "--inject", "stale-read"],
        );
        let injected: Value = serde_json::from_str(injection.trim()).expect("injection line");

        let o = run(&["check", "--json", &ok]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let l = json_line(&o);
        assert_eq!(
            l["stats"]["polynomial"], 1,
            "decided from the unique values"
        );

        let o = run(&["check", "--json", &bad]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        let l = json_line(&o);
        assert_eq!(l["stats"]["polynomial"], 1);
        let w = &l["anomalies"][0];
        assert_eq!(w["op"]["complete_index"], injected["index"], "seed {seed}");
        assert_eq!(w["op"]["result"], injected["value"], "seed {seed}");
        assert!(w["prefix_len"].as_u64().expect("a prefix") > 0);
    }
}
