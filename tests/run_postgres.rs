//! `faultline run --db postgres` end to end against Debian's PostgreSQL 15
//! in a real lab (root; CI installs postgresql-15).

mod lab_common;
mod stores_common;

use std::process::Command;

use lab_common::{assert_clean, bin, guard};
use stores_common::*;

const INSTALL: &str = "apt-get install -y postgresql-15";

#[test]
fn postgres_standby_reads_miss_the_clients_own_writes() {
    let Some(_g) = guard("postgres_standby_reads_miss_the_clients_own_writes") else {
        return;
    };
    need("postgres", INSTALL);
    let store = tempfile::tempdir().expect("tempdir");
    // No faults at all: streaming replication is asynchronous.
    let o = run(
        store.path(),
        &[
            "--db",
            "postgres",
            "--db-opt",
            "reads=standby",
            "--workload",
            "kv",
            "--mix",
            "read=0.5,write=0.5",
            "--nemesis",
            "none",
            "--time-limit",
            "6",
            "--quiet",
            "1",
            "--seed",
            "3",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "not linearizable: {}", text(&o));
    let r = results(store.path());
    assert_eq!(r["checks"]["linearizable"]["valid"], false);
    // The session checkers name it: read-your-writes.
    let c = Command::new(bin())
        .args(["check", "--checks", "ryw"])
        .arg(latest(store.path()).join("history.jsonl"))
        .output()
        .expect("check");
    let out = String::from_utf8_lossy(&c.stdout);
    assert_eq!(c.status.code(), Some(1), "{}", text(&c));
    assert!(
        out.contains("read-your-writes") && out.contains("did not see its own write"),
        "{out}"
    );
    for n in ["n1", "n2", "n3"] {
        assert!(
            latest(store.path())
                .join("nodes")
                .join(n)
                .join("postgres.log")
                .is_file()
        );
    }
    assert_clean();
}

#[test]
fn postgres_primary_is_linearizable_under_partitions_pauses_and_kills() {
    let Some(_g) = guard("postgres_primary_is_linearizable_under_partitions_pauses_and_kills")
    else {
        return;
    };
    need("postgres", INSTALL);
    let store = tempfile::tempdir().expect("tempdir");
    let t = timeline(
        store.path(),
        r#"[{"at": 2, "for": 3, "fault": {"fault": "partition", "shape": "one"}},
            {"at": 7, "for": 3, "fault": {"fault": "pause", "target": "primaries"}},
            {"at": 12, "for": 3, "fault": {"fault": "kill", "target": "primaries"}}]"#,
    );
    let t = t.to_string_lossy();
    let o = run(
        store.path(),
        &[
            "--db",
            "postgres",
            "--db-opt",
            "sync=on",
            "--workload",
            "kv",
            "--nemesis-schedule",
            &t,
            "--time-limit",
            "17",
            "--rate",
            "300",
            "--quiet",
            "2",
            "--seed",
            "8",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let h = history(store.path());
    assert!(count(&h, |e| e["type"] == "ok") >= 1000);
    assert!(count(&h, |e| e["f"] == "kill" && e["phase"] == "start") == 1);
    assert_clean();
}

#[test]
fn postgres_failing_initdb_exits_2_and_leaves_nothing() {
    let Some(_g) = guard("postgres_failing_initdb_exits_2_and_leaves_nothing") else {
        return;
    };
    let store = tempfile::tempdir().expect("tempdir");
    let fake = failing_bindir(store.path(), &["postgres", "initdb", "pg_basebackup"]);
    // The postgres user must be able to reach the fake programs.
    let o = run(
        store.path(),
        &[
            "--db",
            "postgres",
            "--db-opt",
            &format!("bindir={}", fake.display()),
            "--time-limit",
            "5",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("initdb") && e.contains("fake initdb"), "{e}");
    assert_clean();
}
