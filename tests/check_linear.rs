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
