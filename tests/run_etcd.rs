//! `faultline run --db etcd` end to end against Debian's etcd 3.4 in a real
//! lab (root; CI runs as root and installs etcd-server).

mod lab_common;
mod stores_common;

use lab_common::{assert_clean, err2, guard};
use stores_common::*;

const INSTALL: &str = "apt-get install -y etcd-server etcd-client";

#[test]
fn etcd_kv_is_linearizable_under_partitions_kills_and_pauses() {
    let Some(_g) = guard("etcd_kv_is_linearizable_under_partitions_kills_and_pauses") else {
        return;
    };
    need("etcd", INSTALL);
    let store = tempfile::tempdir().expect("tempdir");
    // Partitions, kills and pauses, each of one member and of the leader.
    let t = timeline(
        store.path(),
        r#"[{"at": 3, "for": 4, "fault": {"fault": "partition", "shape": "one"}},
            {"at": 9, "for": 4, "fault": {"fault": "kill", "target": "one"}},
            {"at": 15, "for": 4, "fault": {"fault": "pause", "target": "one"}},
            {"at": 21, "for": 4, "fault": {"fault": "partition", "shape": "majority"}},
            {"at": 27, "for": 4, "fault": {"fault": "kill", "target": "primaries"}},
            {"at": 33, "for": 4, "fault": {"fault": "pause", "target": "primaries"}}]"#,
    );
    let t = t.to_string_lossy();
    let o = run(
        store.path(),
        &[
            "--db",
            "etcd",
            "--nodes",
            "3",
            "--workload",
            "kv",
            "--nemesis-schedule",
            &t,
            "--time-limit",
            "39",
            "--rate",
            "300",
            "--quiet",
            "3",
            "--seed",
            "11",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let r = results(store.path());
    assert_eq!(r["checks"]["linearizable"]["valid"], true, "{r}");
    let h = history(store.path());
    let ok = count(&h, |e| e["type"] == "ok");
    assert!(ok >= 1000, "at least 1,000 ok operations, got {ok}");
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
        let log = latest(store.path()).join("nodes").join(n).join("etcd.log");
        assert!(log.is_file(), "etcd's log {}", log.display());
    }
    assert_clean();
}

#[test]
fn etcd_serializable_reads_are_stale_when_a_member_is_isolated() {
    let Some(_g) = guard("etcd_serializable_reads_are_stale_when_a_member_is_isolated") else {
        return;
    };
    need("etcd", INSTALL);
    let store = tempfile::tempdir().expect("tempdir");
    let t = timeline(
        store.path(),
        r#"[{"at": 2, "for": 5, "fault": {"fault": "partition", "shape": "one"}},
            {"at": 9, "for": 5, "fault": {"fault": "partition", "shape": "one"}}]"#,
    );
    let t = t.to_string_lossy();
    let o = run(
        store.path(),
        &[
            "--db",
            "etcd",
            "--db-opt",
            "reads=serializable",
            "--workload",
            "kv",
            "--keys",
            "2",
            "--nemesis-schedule",
            &t,
            "--time-limit",
            "15",
            "--quiet",
            "3",
            "--seed",
            "4",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let r = results(store.path());
    let a = &r["checks"]["linearizable"]["anomalies"][0];
    assert_eq!(a["op"]["f"], "read", "the witness is a read: {a}");
    // Stale: it returned a value some write had put there before.
    let got = a["op"]["result"].clone();
    let h = history(store.path());
    assert!(
        got.is_null()
            || count(&h, |e| e["type"] == "invoke"
                && (e["value"] == got || e["value"][1] == got)
                && e["key"] == a["op"]["key"])
                > 0,
        "the read returned an earlier written value: {a}"
    );
    assert_clean();
}

#[test]
fn etcd_missing_or_failing_binary_exits_2_and_leaves_nothing() {
    let Some(_g) = guard("etcd_missing_or_failing_binary_exits_2_and_leaves_nothing") else {
        return;
    };
    let store = tempfile::tempdir().expect("tempdir");
    let s = store.path().to_string_lossy().to_string();
    err2(
        &[
            "run",
            "--store",
            &s,
            "--db",
            "etcd",
            "--db-opt",
            "bindir=/nonexistent",
        ],
        &["`etcd` not found", INSTALL],
    );
    assert!(!store.path().join("latest").exists(), "nothing was started");
    assert_clean();
    let fake = failing_bindir(store.path(), &["etcd"]);
    assert_server_exits_at_once(store.path(), "etcd", &fake, "etcd");
    err2(
        &[
            "run",
            "--store",
            &s,
            "--db",
            "etcd",
            "--db-opt",
            "reads=sometimes",
        ],
        &["--db-opt reads=sometimes"],
    );
    err2(
        &["run", "--store", &s, "--db", "etcd", "--workload", "set"],
        &["--workload set"],
    );
}
