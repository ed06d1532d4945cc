//! The measured classification of real stores (root, the lab, Debian's
//! etcd and redis, ~15 s each): etcd with linearizable reads is `PC/EC`,
//! Redis with reads from replicas is `PA/EL`. Their reports render in
//! headless Chromium with no console message.

mod lab_common;
mod report_common;
mod stores_common;

use lab_common::{assert_clean, guard};
use report_common::{assert_clean_render, load, validate_junit};
use stores_common::*;

fn classify(db: &str, opt: &str, expect_exit: i32) -> (String, serde_json::Value) {
    let store = tempfile::tempdir().expect("tempdir");
    let o = run(
        store.path(),
        &[
            "--db",
            db,
            "--db-opt",
            opt,
            "--workload",
            "kv",
            "--nemesis",
            "partition",
            "--nemesis-interval",
            "5",
            "--time-limit",
            "15",
            "--quiet",
            "1",
            "--seed",
            "5",
        ],
    );
    assert_eq!(o.status.code(), Some(expect_exit), "{}", text(&o));
    let r = results(store.path());
    let dir = latest(store.path());
    let page = load(&dir.join("report.html"));
    assert_clean_render(&page, db);
    let j = validate_junit(&dir.join("junit.xml"));
    assert_eq!(j.failures, u64::from(expect_exit == 1), "{j:?}");
    let label = r["classification"]["label"]
        .as_str()
        .unwrap_or_else(|| panic!("no classification: {}", text(&o)))
        .to_string();
    println!("{db} {opt}: {label}: {}", r["classification"]["reasons"]);
    (label, r["classification"].clone())
}

#[test]
fn etcd_linearizable_reads_are_pc_ec() {
    let Some(_g) = guard("etcd_linearizable_reads_are_pc_ec") else {
        return;
    };
    need("etcd", "apt-get install -y etcd-server etcd-client");
    let (label, c) = classify("etcd", "reads=linearizable", 0);
    assert_eq!(label, "PC/EC", "{c}");
    assert_clean();
}

#[test]
fn redis_replica_reads_are_pa_el() {
    let Some(_g) = guard("redis_replica_reads_are_pa_el") else {
        return;
    };
    need(
        "redis-server",
        "apt-get install -y redis-server redis-sentinel",
    );
    let (label, c) = classify("redis", "reads=replicas", 1);
    assert_eq!(label, "PA/EL", "{c}");
    assert_clean();
}
