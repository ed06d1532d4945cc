//! `faultline run --db redis` end to end against Debian's redis-server 7 and
//! redis-sentinel in a real lab (root; CI installs them).

mod lab_common;
mod stores_common;

use lab_common::{assert_clean, err2, guard};
use stores_common::*;

const INSTALL: &str = "apt-get install -y redis-server redis-sentinel";

#[test]
fn redis_replica_reads_are_not_linearizable_under_partitions() {
    let Some(_g) = guard("redis_replica_reads_are_not_linearizable_under_partitions") else {
        return;
    };
    need("redis-server", INSTALL);
    let store = tempfile::tempdir().expect("tempdir");
    let o = run(
        store.path(),
        &[
            "--db",
            "redis",
            "--db-opt",
            "reads=replicas",
            "--workload",
            "kv",
            "--keys",
            "4",
            "--nemesis",
            "partition",
            "--nemesis-interval",
            "3",
            "--time-limit",
            "12",
            "--rate",
            "1000",
            "--quiet",
            "1",
            "--seed",
            "5",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let r = results(store.path());
    assert_eq!(r["checks"]["linearizable"]["valid"], false, "{r}");
    assert_eq!(
        r["checks"]["linearizable"]["anomalies"][0]["op"]["f"],
        "read"
    );
    for n in ["n1", "n2", "n3"] {
        assert!(
            latest(store.path())
                .join("nodes")
                .join(n)
                .join("redis.log")
                .is_file()
        );
    }
    assert_clean();
}

#[test]
fn redis_sentinel_failover_loses_acknowledged_set_elements() {
    let Some(_g) = guard("redis_sentinel_failover_loses_acknowledged_set_elements") else {
        return;
    };
    need("redis-server", INSTALL);
    need("redis-sentinel", INSTALL);
    let store = tempfile::tempdir().expect("tempdir");
    // Isolate the primary long enough for the sentinels to fail over (about
    // 3 s); clients keep writing to the old primary, which is demoted after
    // the heal (up to ~10 s: the quiet period waits for it).
    let t = timeline(
        store.path(),
        r#"[{"at": 2, "for": 8, "fault": {"fault": "partition", "shape": "[[\"n1\"], [\"n2\", \"n3\"]]"}}]"#,
    );
    let t = t.to_string_lossy();
    let o = run(
        store.path(),
        &[
            "--db",
            "redis",
            "--db-opt",
            "failover=sentinel",
            "--workload",
            "set",
            "--nemesis-schedule",
            &t,
            "--time-limit",
            "12",
            "--rate",
            "200",
            "--quiet",
            "12",
            "--seed",
            "3",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let r = results(store.path());
    let set = &r["checks"]["set"];
    assert_eq!(set["valid"], false, "{set}");
    let why = set["anomalies"][0]["explanation"]
        .as_str()
        .unwrap_or_default();
    assert!(
        why.contains("acknowledged"),
        "lost acknowledged elements: {set}"
    );
    let logs: String = ["n1", "n2", "n3"]
        .iter()
        .map(|n| {
            std::fs::read_to_string(
                latest(store.path())
                    .join("nodes")
                    .join(n)
                    .join("sentinel.log"),
            )
            .unwrap_or_default()
        })
        .collect();
    assert!(logs.contains("+switch-master"), "the sentinels failed over");
    assert_clean();
}

#[test]
fn redis_bad_options_and_failing_binary_exit_2_and_leave_nothing() {
    let Some(_g) = guard("redis_bad_options_and_failing_binary_exit_2_and_leave_nothing") else {
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
            "redis",
            "--db-opt",
            "reads=sometimes",
        ],
        &["--db-opt reads=sometimes"],
    );
    err2(
        &["run", "--store", &s, "--db", "redis", "--db-opt", "wait=x"],
        &["--db-opt wait=x"],
    );
    err2(
        &[
            "run",
            "--store",
            &s,
            "--db",
            "redis",
            "--db-opt",
            "bindir=/nonexistent",
        ],
        &["`redis-server` not found", INSTALL],
    );
    assert!(!store.path().join("latest").exists(), "nothing was started");
    let fake = failing_bindir(store.path(), &["redis-server"]);
    assert_server_exits_at_once(store.path(), "redis", &fake, "redis-server");
}
