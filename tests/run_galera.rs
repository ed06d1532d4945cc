//! `faultline run --db galera` end to end against Debian's MariaDB 10.11 and
//! galera-4 (a 3-node wsrep cluster, every node a primary) in a real lab
//! (root; CI runs as root and installs mariadb-server, galera-4 and rsync).

mod lab_common;
mod stores_common;

use lab_common::{assert_clean, err2, guard};
use stores_common::*;

const INSTALL: &str = "apt-get install -y mariadb-server galera-4 rsync";

/// A partition of one node, longer than Galera's 5 s suspect timeout so
/// that the cluster's view changes, then a kill. The killed node comes back
/// by a full state transfer once the others have evicted its old
/// incarnation (about 15 s here), so the final reads wait 15 s.
const FAULTS: &str = r#"[
    {"at": 1, "for": 7, "fault": {"fault": "partition", "shape": "one"}},
    {"at": 9, "for": 1, "fault": {"fault": "kill", "target": "one"}}]"#;

/// Runs `workload` on 3 nodes under [`FAULTS`] with `extra` flags; asserts
/// what every such run must show and returns the results.
fn faulty_run(store: &std::path::Path, workload: &str, extra: &[&str]) -> serde_json::Value {
    need("mariadbd", INSTALL);
    need("rsync", INSTALL);
    assert!(
        std::path::Path::new("/usr/lib/galera/libgalera_smm.so").is_file(),
        "galera-4 is not installed: {INSTALL}"
    );
    let t = timeline(store, FAULTS);
    let t = t.to_string_lossy();
    let mut args = vec![
        "--db",
        "galera",
        "--nodes",
        "3",
        "--workload",
        workload,
        "--nemesis-schedule",
        &t,
        "--time-limit",
        "12",
        "--quiet",
        "15",
    ];
    args.extend_from_slice(extra);
    let o = run(store, &args);
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "the run completed: {}",
        text(&o)
    );
    let r = results(store);
    let h = history(store);
    let ok = count(&h, |e| e["type"] == "ok");
    // About 1,500 on a quiet machine; 949 was seen once at load 8. The
    // anomalies asserted below need hundreds, not thousands.
    assert!(
        ok >= 500,
        "at least 500 ok operations, got {ok}: {}",
        text(&o)
    );
    for f in ["partition", "kill"] {
        let n = count(&h, |e| e["f"] == f && e["phase"] == "start");
        assert!(n >= 1, "a {f} fault in the history");
        assert_eq!(
            n,
            count(&h, |e| e["f"] == f && e["phase"] == "end"),
            "every {f} ends"
        );
    }
    // Conflicts between the nodes (certification failures, 1213) are
    // definite failures; a node cut off from the primary component refuses
    // (1047).
    assert!(
        count(&h, |e| e["type"] == "fail"
            && e["error"].as_str().is_some_and(|s| s.contains("(1213)")))
            > 0,
        "certification conflicts recorded as fail"
    );
    assert!(
        count(&h, |e| e["type"] == "fail"
            && e["error"].as_str().is_some_and(|s| s.contains("(1047)")))
            > 0,
        "the isolated node refused with 1047"
    );
    assert_eq!(r["config"]["db"]["db"], "galera", "{r}");
    for n in ["n1", "n2", "n3"] {
        let log = latest(store).join("nodes").join(n).join("galera.log");
        assert!(log.is_file(), "mariadbd's log {}", log.display());
    }
    assert!(processes_with("galera/my.cnf").is_empty(), "no server left");
    assert_clean();
    r
}

#[test]
fn galera_reads_without_sync_wait_are_stale() {
    let Some(_g) = guard("galera_reads_without_sync_wait_are_stale") else {
        return;
    };
    let store = tempfile::tempdir().expect("tempdir");
    // Reads are served from the node's own copy, which may not have applied
    // writes other nodes already acknowledged: stale, even with no fault.
    let r = faulty_run(store.path(), "register", &["--seed", "3"]);
    assert_eq!(r["valid"], false, "{r}");
    assert_eq!(r["checks"]["linearizable"]["valid"], false, "{r}");
    assert_eq!(r["classification"]["e"], "EL", "{r}");
    let a = &r["checks"]["linearizable"]["anomalies"][0];
    assert_eq!(a["op"]["f"], "read", "the witness is a read: {a}");
}

#[test]
fn galera_with_sync_wait_is_linearizable_under_partitions_and_kills() {
    let Some(_g) = guard("galera_with_sync_wait_is_linearizable_under_partitions_and_kills") else {
        return;
    };
    let store = tempfile::tempdir().expect("tempdir");
    let r = faulty_run(
        store.path(),
        "kv",
        &[
            "--db-opt",
            "wsrep_sync_wait=reads",
            "--keys",
            "3",
            "--seed",
            "5",
        ],
    );
    assert_eq!(r["config"]["db"]["wsrep_sync_wait"], 1, "{r}");
    assert_eq!(r["checks"]["linearizable"]["valid"], true, "{r}");
    assert_eq!(r["valid"], true, "{r}");
    // The node cut off from the primary component refuses reads and writes.
    assert_eq!(r["classification"]["label"], "PC/EC", "{r}");
}

#[test]
fn galera_repeatable_read_is_not_snapshot_isolation() {
    let Some(_g) = guard("galera_repeatable_read_is_not_snapshot_isolation") else {
        return;
    };
    let store = tempfile::tempdir().expect("tempdir");
    // Galera claims snapshot isolation at repeatable-read across nodes;
    // InnoDB's writes act on the latest version, not the snapshot, so
    // transactions lose each other's updates and read skew. In every run
    // measured (seeds 4, 5 and 6) read-committed held and lost updates and
    // G-single were found; their counts vary from run to run.
    let r = faulty_run(store.path(), "list-append", &["--seed", "4"]);
    let iso = &r["checks"]["isolation"];
    let model = |name: &str| {
        iso["models"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["model"] == name))
            .map_or(serde_json::Value::Null, |m| m["valid"].clone())
    };
    assert_eq!(r["config"]["db"]["isolation"], "repeatable-read", "{r}");
    assert_eq!(model("read-committed"), true, "{iso}");
    assert_eq!(model("snapshot-isolation"), false, "{iso}");
    for a in ["lost-update", "G-single"] {
        assert!(
            iso["anomaly_counts"][a].as_u64() > Some(0),
            "{a}: {}",
            iso["anomaly_counts"]
        );
    }
    assert_eq!(r["valid"], false, "{r}");
}

#[test]
fn galera_missing_binary_or_bad_option_exits_2_and_leaves_nothing() {
    let Some(_g) = guard("galera_missing_binary_or_bad_option_exits_2_and_leaves_nothing") else {
        return;
    };
    let store = tempfile::tempdir().expect("tempdir");
    let s = store.path().to_string_lossy().to_string();
    let refused = |opts: &[&str], needles: &[&str]| {
        let mut a = vec!["run", "--store", &s, "--db", "galera"];
        a.extend_from_slice(opts);
        err2(&a, needles);
        assert!(!store.path().join("latest").exists(), "nothing was started");
        assert_clean();
    };
    refused(
        &["--db-opt", "bindir=/nonexistent"],
        &["`mariadbd` not found", INSTALL],
    );
    refused(
        &["--db-opt", "wsrep_sync_wait=16"],
        &["--db-opt wsrep_sync_wait=16: expected a number, 0 to 15, or off, reads, writes or all"],
    );
    refused(
        &["--db-opt", "sync=on"],
        &["--db-opt sync: --db galera has no such option (wsrep_sync_wait, isolation, bindir)"],
    );
    refused(&["--workload", "set"], &["--workload set"]);
    refused(
        &["--db-opt", "isolation=snapshot"],
        &[
            "--db-opt isolation=snapshot: expected read-committed or repeatable-read or serializable",
        ],
    );
    // A server that exits at once: its status and last log line (beside
    // it, a mariadb-install-db that does nothing).
    let fake = failing_bindir(store.path(), &["mariadbd"]);
    let install = fake.join("mariadb-install-db");
    std::fs::write(&install, "#!/bin/sh\nexit 0\n").expect("write");
    std::fs::set_permissions(
        &install,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    assert_server_exits_at_once(store.path(), "galera", &fake, "mariadbd");
}
