//! `faultline run --db zookeeper` end to end against Debian's ZooKeeper 3.8
//! (a 3-server ensemble, one JVM per node) in a real lab (root; CI runs as
//! root and installs zookeeper).

mod lab_common;
mod stores_common;

use lab_common::{assert_clean, err2, guard};
use serde_json::Value;
use stores_common::*;

const INSTALL: &str = "apt-get install -y zookeeper";

/// A partition of one server and of a majority, a kill and a pause of the
/// leader.
const FAULTS: &str = r#"[
    {"at": 1, "for": 3, "fault": {"fault": "partition", "shape": "one"}},
    {"at": 5, "for": 3, "fault": {"fault": "kill", "target": "primaries"}},
    {"at": 9, "for": 3, "fault": {"fault": "partition", "shape": "majority"}},
    {"at": 13, "for": 3, "fault": {"fault": "pause", "target": "primaries"}}]"#;

/// n1 alone for 7 s: long enough to notice it lost the leader (2.5 s),
/// start its read-only server (2 s more) and serve reads from it.
const ISOLATE_N1: &str = r#"[
    {"at": 1, "for": 7, "fault": {"fault": "partition", "shape": "[[\"n1\"],[\"n2\",\"n3\"]]"}}]"#;

#[test]
fn zookeeper_sync_reads_writes_and_cas_are_linearizable_under_partitions_kills_and_pauses() {
    let Some(_g) = guard(
        "zookeeper_sync_reads_writes_and_cas_are_linearizable_under_partitions_kills_and_pauses",
    ) else {
        return;
    };
    need("java", INSTALL);
    let store = tempfile::tempdir().expect("tempdir");
    let t = timeline(store.path(), FAULTS);
    let t = t.to_string_lossy();
    let o = run(
        store.path(),
        &[
            "--db",
            "zookeeper",
            "--nodes",
            "3",
            "--workload",
            "kv",
            "--keys",
            "3",
            "--nemesis-schedule",
            &t,
            "--time-limit",
            "17",
            "--seed",
            "5",
            "--quiet",
            "3",
        ],
    );
    let r = results(store.path());
    assert_eq!(o.status.code(), Some(0), "{}\n{r}", text(&o));
    assert_eq!(r["checks"]["linearizable"]["valid"], true, "{r}");
    assert_eq!(r["config"]["db"]["db"], "zookeeper", "{r}");
    assert_eq!(r["config"]["db"]["reads"], "sync", "{r}");
    assert_eq!(r["classification"]["e"], "EC", "{r}");
    let h = history(store.path());
    let ok = count(&h, |e| e["type"] == "ok");
    assert!(ok >= 1000, "at least 1,000 ok operations, got {ok}");
    // Most cas fail (the expected value is drawn at random), not all.
    for (f, least) in [("read", 100), ("write", 100), ("cas", 10)] {
        let n = count(&h, |e| e["type"] == "ok" && e["f"] == f);
        assert!(n >= least, "at least {least} ok {f}s, got {n}");
    }
    // Versioned setData refuses a cas whose version moved: definite fails.
    assert!(count(&h, |e| e["type"] == "fail" && e["error"] == "cas-mismatch") > 0);
    for f in ["partition", "kill", "pause"] {
        let n = count(&h, |e| e["f"] == f && e["phase"] == "start");
        assert!(n >= 1, "a {f} fault in the history");
        assert_eq!(
            n,
            count(&h, |e| e["f"] == f && e["phase"] == "end"),
            "every {f} ends"
        );
    }
    for n in ["n1", "n2", "n3"] {
        let log = latest(store.path())
            .join("nodes")
            .join(n)
            .join("zookeeper.log");
        assert!(log.is_file(), "the server's log {}", log.display());
    }
    assert!(processes_with("QuorumPeerMain").is_empty());
    assert_clean();
}

/// `(stale, all)`: the ok reads on n1 invoked during the partition, and
/// those of them that are certainly stale. Cut off, n1 holds only what was
/// proposed before the partition began, so a write invoked (100 ms) after
/// it is ordered after everything n1 can return: a read that returns
/// another value although such a write of its key was acknowledged before
/// the read began is stale.
fn stale_reads_on_n1_during_the_partition(h: &[Value]) -> (usize, usize) {
    let time = |e: &Value| e["time"].as_u64().unwrap_or_default();
    let at = |phase: &str| {
        h.iter()
            .find(|e| e["f"] == "partition" && e["phase"] == phase)
            .map(time)
            .expect("the partition")
    };
    let (start, end) = (at("start"), at("end"));
    let mut invoked = std::collections::HashMap::new();
    // (key, value, invoked, completed) of ok writes; (key, value, invoked)
    // of ok reads on n1 during the partition.
    let mut writes = Vec::new();
    let mut reads = Vec::new();
    for e in h.iter().filter(|e| e["process"] != "nemesis") {
        let p = e["process"].to_string();
        if e["type"] == "invoke" {
            invoked.insert(p, time(e));
            continue;
        }
        let Some(t0) = invoked.remove(&p) else {
            continue;
        };
        if e["type"] == "ok" && e["f"] == "write" {
            writes.push((e["key"].clone(), e["value"].clone(), t0, time(e)));
        } else if e["type"] == "ok"
            && e["f"] == "read"
            && e["node"] == "n1"
            && (start..end).contains(&t0)
        {
            reads.push((e["key"].clone(), e["value"].clone(), t0));
        }
    }
    let after = start + 100_000_000;
    let stale = reads
        .iter()
        .filter(|(k, v, t)| {
            writes
                .iter()
                .any(|(wk, wv, began, done)| wk == k && wv != v && *began >= after && done < t)
        })
        .count();
    (stale, reads.len())
}

#[test]
fn zookeeper_plain_reads_on_a_read_only_minority_follower_are_stale() {
    let Some(_g) = guard("zookeeper_plain_reads_on_a_read_only_minority_follower_are_stale") else {
        return;
    };
    need("java", INSTALL);
    let store = tempfile::tempdir().expect("tempdir");
    let t = timeline(store.path(), ISOLATE_N1);
    let t = t.to_string_lossy();
    let o = run(
        store.path(),
        &[
            "--db",
            "zookeeper",
            "--db-opt",
            "reads=plain",
            "--db-opt",
            "readonly=true",
            "--workload",
            "kv",
            "--keys",
            "2",
            "--mix",
            "read=0.5,write=0.5",
            "--nemesis-schedule",
            &t,
            "--time-limit",
            "10",
            "--seed",
            "4",
        ],
    );
    let r = results(store.path());
    assert_eq!(o.status.code(), Some(1), "{}\n{r}", text(&o));
    assert_eq!(r["checks"]["linearizable"]["valid"], false, "{r}");
    let a = &r["checks"]["linearizable"]["anomalies"][0];
    assert_eq!(a["op"]["f"], "read", "the witness is a read: {a}");
    // The minority side answered reads (from its read-only server) and
    // refused writes: available, and not consistent.
    assert_eq!(r["classification"]["p"], "PA", "{r}");
    assert_eq!(r["classification"]["e"], "EL", "{r}");
    let h = history(store.path());
    let (stale, reads) = stale_reads_on_n1_during_the_partition(&h);
    assert!(
        stale >= 100 && stale * 2 > reads,
        "most reads on n1 during the partition are stale: {stale} of {reads}"
    );
    assert!(
        count(&h, |e| e["type"] == "fail"
            && e["node"] == "n1"
            && e["f"] == "write"
            && e["error"]
                .as_str()
                .is_some_and(|m| m.contains("read only server")))
            > 0,
        "writes on the read-only server are refused (definite fails)"
    );
    assert!(processes_with("QuorumPeerMain").is_empty());
    assert_clean();
}

#[test]
fn zookeeper_missing_install_or_bad_option_exits_2_and_leaves_nothing() {
    let Some(_g) = guard("zookeeper_missing_install_or_bad_option_exits_2_and_leaves_nothing")
    else {
        return;
    };
    let store = tempfile::tempdir().expect("tempdir");
    let s = store.path().to_string_lossy().to_string();
    let refused = |opts: &[&str], needles: &[&str]| {
        let mut a = vec!["run", "--store", &s, "--db", "zookeeper"];
        a.extend_from_slice(opts);
        err2(&a, needles);
        assert!(!store.path().join("latest").exists(), "nothing was started");
        assert_clean();
    };
    refused(
        &["--db-opt", "bindir=/nonexistent"],
        &["`java` not found", INSTALL],
    );
    refused(
        &["--db-opt", "jar=/nonexistent/zookeeper.jar"],
        &["`/nonexistent/zookeeper.jar` not found", INSTALL],
    );
    refused(
        &["--db-opt", "reads=sometimes"],
        &["--db-opt reads=sometimes: expected sync or plain"],
    );
    refused(
        &["--db-opt", "readonly=maybe"],
        &["--db-opt readonly=maybe: expected true or false"],
    );
    refused(
        &["--db-opt", "fsync=always"],
        &["--db-opt fsync: --db zookeeper has no such option (reads, readonly, bindir, jar)"],
    );
    refused(&["--workload", "set"], &["--workload set"]);
    let fake = failing_bindir(store.path(), &["java"]);
    assert_server_exits_at_once(store.path(), "zookeeper", &fake, "java");
}
