//! `faultline run` end to end against the built-in store, in a real lab
//! (root; CI runs as root). Done-when items of the `faultline run` issue.

mod lab_common;
mod stores_common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use lab_common::{assert_clean, bin, guard};
use serde_json::Value;
use stores_common::{count, history, latest, results, text};

/// `faultline run` with a short quiet period.
fn run(store: &Path, args: &[&str]) -> Output {
    let mut all = vec!["--quiet", "1"];
    all.extend_from_slice(args);
    stores_common::run(store, &all)
}

#[test]
fn primary_mode_is_linearizable_under_partitions() {
    let Some(_g) = guard("primary_mode_is_linearizable_under_partitions") else {
        return;
    };
    let store = tempfile::tempdir().expect("tempdir");
    let o = run(
        store.path(),
        &[
            "--db-opt",
            "mode=primary",
            "--nodes",
            "3",
            "--workload",
            "kv",
            "--nemesis",
            "partition",
            "--nemesis-interval",
            "5",
            "--time-limit",
            "20",
            "--rate",
            "1000",
            "--seed",
            "1",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let r = results(store.path());
    assert_eq!(r["valid"], true);
    assert_eq!(r["checks"]["linearizable"]["valid"], true);
    assert_eq!(r["checks"]["convergence"]["valid"], true);
    let dir = latest(store.path());
    let h = history(store.path());
    let ok = count(&h, |e| e["type"] == "ok");
    assert!(ok >= 1000, "at least 1,000 ok operations, got {ok}");
    let partitions = count(&h, |e| e["f"] == "partition" && e["phase"] == "start");
    assert!(
        partitions >= 3,
        "at least 3 partition intervals, got {partitions}"
    );
    assert_eq!(
        partitions,
        count(&h, |e| e["f"] == "partition" && e["phase"] == "end"),
        "every partition is healed"
    );
    for n in ["n1", "n2", "n3"] {
        let log = dir.join("nodes").join(n).join("faultline-node.log");
        assert!(log.is_file(), "node log {}", log.display());
    }
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("verdict: VALID"), "{out}");
    // The stored run re-checks the same.
    let c = Command::new(bin())
        .args(["check", "--model", "kv"])
        .arg(dir.join("history.jsonl"))
        .output()
        .expect("check");
    assert_eq!(c.status.code(), Some(0), "{}", text(&c));
    assert_clean();
}

#[test]
fn async_mode_serves_stale_reads_and_loses_acknowledged_elements() {
    let Some(_g) = guard("async_mode_serves_stale_reads_and_loses_acknowledged_elements") else {
        return;
    };
    let store = tempfile::tempdir().expect("tempdir");
    let o = run(
        store.path(),
        &[
            "--db-opt",
            "mode=async",
            "--nodes",
            "3",
            "--workload",
            "kv",
            "--keys",
            "4",
            "--nemesis",
            "partition",
            "--nemesis-interval",
            "4",
            "--time-limit",
            "10",
            "--rate",
            "1000",
            "--seed",
            "2",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let r = results(store.path());
    let lin = &r["checks"]["linearizable"];
    assert_eq!(lin["valid"], false, "{lin}");
    let a = &lin["anomalies"][0];
    assert_eq!(a["op"]["f"], "read", "the witness is a stale read: {a}");

    // Set workload, the primary killed and restarted: the store keeps its
    // data in memory, so acknowledged elements are lost. The rates keep the
    // histories small: a set read returns the whole set, so checking them
    // grows with the square of the operations.
    let store = tempfile::tempdir().expect("tempdir");
    let timeline = store.path().join("kill-primary.json");
    std::fs::write(
        &timeline,
        r#"[{"at": 4, "for": 2, "fault": {"fault": "kill", "target": "primaries"}},
            {"at": 9, "for": 2, "fault": {"fault": "kill", "target": "primaries"}}]"#,
    )
    .expect("timeline");
    let cfg = store.path().join("kill.toml");
    std::fs::write(
        &cfg,
        format!(
            "workload = \"set\"\nnemesis-schedule = {:?}\ntime-limit = 14\nrate = 300\nseed = 3\n[db-opt]\nmode = \"async\"\n",
            timeline.display().to_string()
        ),
    )
    .expect("config");
    let o = run(store.path(), &["--config", cfg.to_str().expect("utf-8")]);
    let r = results(store.path());
    let set = &r["checks"]["set"];
    let lost = set["stats"]["lost"].as_u64().unwrap_or(0);
    assert!(
        lost > 0,
        "acknowledged elements lost after killing the primary: {set}\n{}",
        text(&o)
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let h = history(store.path());
    assert!(count(&h, |e| e["f"] == "kill" && e["phase"] == "start") >= 2);
    assert_clean();
}

#[test]
fn quorum_one_one_is_not_linearizable_under_partitions() {
    let Some(_g) = guard("quorum_one_one_is_not_linearizable_under_partitions") else {
        return;
    };
    let store = tempfile::tempdir().expect("tempdir");
    let o = run(
        store.path(),
        &[
            "--db-opt",
            "mode=quorum",
            "--db-opt",
            "r=1",
            "--db-opt",
            "w=1",
            "--nodes",
            "3",
            "--workload",
            "kv",
            "--keys",
            "4",
            "--nemesis",
            "partition",
            "--nemesis-interval",
            "4",
            "--time-limit",
            "10",
            "--rate",
            "1000",
            "--seed",
            "4",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(
        results(store.path())["checks"]["linearizable"]["valid"],
        false
    );
    assert_clean();
}

#[test]
fn a_sigkilled_run_leaves_a_readable_history_and_clean_removes_the_lab() {
    let Some(_g) = guard("a_sigkilled_run_leaves_a_readable_history_and_clean_removes_the_lab")
    else {
        return;
    };
    let store = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(bin())
        .arg("run")
        .arg("--store")
        .arg(store.path())
        .args([
            "--no-progress",
            "--nemesis",
            "partition,pause",
            "--nemesis-interval",
            "2",
        ])
        .args(["--time-limit", "30", "--seed", "5"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_secs(7));
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let dir = latest(store.path());
    let raw = std::fs::read_to_string(dir.join("history.jsonl")).expect("history");
    assert!(raw.ends_with('\n'), "the last line is complete");
    let h = history(store.path());
    assert!(h.len() > 100, "the history was streamed: {} lines", h.len());
    let c = Command::new(bin())
        .args(["check", "--model", "kv"])
        .arg(dir.join("history.jsonl"))
        .output()
        .expect("check");
    assert_ne!(
        c.status.code(),
        Some(2),
        "faultline check reads it: {}",
        text(&c)
    );
    let clean = Command::new(bin()).arg("clean").output().expect("clean");
    assert_eq!(clean.status.code(), Some(0), "{}", text(&clean));
    assert_clean();
}

/// Per worker slot, the invocations (f, key, value) in order.
fn invocations(h: &[Value], concurrency: u64) -> BTreeMap<u64, Vec<(String, String, String)>> {
    let mut out: BTreeMap<u64, Vec<_>> = BTreeMap::new();
    for e in h
        .iter()
        .filter(|e| e["type"] == "invoke" && e["phase"].is_null())
    {
        let p = e["process"].as_u64().expect("client process");
        out.entry(p % concurrency).or_default().push((
            e["f"].to_string(),
            e["key"].to_string(),
            e["value"].to_string(),
        ));
    }
    out
}

#[test]
fn the_same_seed_gives_the_same_operations_and_faults() {
    let Some(_g) = guard("the_same_seed_gives_the_same_operations_and_faults") else {
        return;
    };
    let mut runs = Vec::new();
    for _ in 0..2 {
        let store = tempfile::tempdir().expect("tempdir");
        let o = run(
            store.path(),
            &[
                "--nemesis",
                "partition,pause",
                "--nemesis-interval",
                "2",
                "--time-limit",
                "7",
                "--rate",
                "500",
                "--concurrency",
                "5",
                "--seed",
                "42",
            ],
        );
        assert_ne!(o.status.code(), Some(2), "{}", text(&o));
        runs.push(history(store.path()));
    }
    let (a, b) = (invocations(&runs[0], 5), invocations(&runs[1], 5));
    assert_eq!(a.len(), 5);
    for (slot, ops) in &a {
        let other = &b[slot];
        let n = ops.len().min(other.len());
        assert!(n > 20, "slot {slot}: {n} operations");
        assert_eq!(ops[..n], other[..n], "slot {slot}: same operations");
    }
    let faults = |h: &[Value]| -> Vec<String> {
        h.iter()
            .filter(|e| e["process"] == "nemesis")
            .map(|e| format!("{} {} {}", e["f"], e["phase"], e["value"]))
            .collect()
    };
    assert_eq!(faults(&runs[0]), faults(&runs[1]));
    assert!(!faults(&runs[0]).is_empty());
    assert_clean();
}

#[test]
fn bad_flags_exit_2_before_any_lab() {
    let store = tempfile::tempdir().expect("tempdir");
    for (args, needle) in [
        (vec!["--nodes", "0"], "--nodes"),
        (vec!["--db", "cassandra"], "--db cassandra"),
        (vec!["--db-opt", "mode=raft"], "--db-opt mode=raft"),
        (vec!["--nemesis", "meteor"], "--nemesis"),
        (vec!["--workload", "queue"], "--workload"),
    ] {
        let o = run(store.path(), &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
    assert!(!store.path().join("latest").exists(), "nothing was started");
}

#[test]
fn ctrl_c_stops_the_workload_and_still_heals_checks_and_tears_down() {
    let Some(_g) = guard("ctrl_c_stops_the_workload_and_still_heals_checks_and_tears_down") else {
        return;
    };
    let store = tempfile::tempdir().expect("tempdir");
    let child = Command::new(bin())
        .arg("run")
        .arg("--store")
        .arg(store.path())
        .args([
            "--no-progress",
            "--quiet",
            "1",
            "--nemesis",
            "partition,pause",
        ])
        .args([
            "--nemesis-interval",
            "2",
            "--time-limit",
            "60",
            "--seed",
            "6",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_secs(6));
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    let started = std::time::Instant::now();
    let o = child.wait_with_output().expect("wait");
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "stopped early, not after the 60 s time limit"
    );
    assert!(
        matches!(o.status.code(), Some(0 | 1 | 3)),
        "a verdict, not an error: {}",
        text(&o)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("interrupted"));
    let r = results(store.path());
    assert!(r["checks"]["linearizable"].is_object(), "checked: {r}");
    let h = history(store.path());
    assert_eq!(
        count(&h, |e| e["process"] == "nemesis" && e["phase"] == "start"),
        count(&h, |e| e["process"] == "nemesis" && e["phase"] == "end"),
        "every fault that started was healed"
    );
    assert!(count(&h, |e| e["phase"] == "final") > 0, "final reads ran");
    assert_clean();
}
