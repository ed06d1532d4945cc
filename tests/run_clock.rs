//! Clock faults in `faultline run`: the built-in store's quorum mode with
//! wall-clock timestamps (last write wins by the coordinator's clock, as in
//! Cassandra) is linearizable while the clocks agree and loses writes when
//! one node's clock is set back; the clock faults are in the history and
//! `results.json` like the other faults. A store that reads the clock
//! without libc (etcd, a Go binary) is refused, not pretended.

mod lab_common;
mod stores_common;

use std::path::Path;
use std::process::Output;

use lab_common::{assert_clean, err2, guard};
use stores_common::{count, history, results, text};

/// [`stores_common::WALL_CLOCK_RUN`] with `extra` arguments.
fn wall_clock_run(store: &Path, extra: &[&str]) -> Output {
    let mut args = stores_common::WALL_CLOCK_RUN.to_vec();
    args.extend_from_slice(extra);
    stores_common::run(store, &args)
}

#[test]
fn wall_clock_last_write_wins_breaks_under_clock_faults_only() {
    let Some(_g) = guard("wall_clock_last_write_wins_breaks_under_clock_faults_only") else {
        return;
    };
    // Without faults: linearizable (the nodes share one real clock).
    let calm = tempfile::tempdir().expect("tempdir");
    let o = wall_clock_run(calm.path(), &["--nemesis", "none"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(results(calm.path())["valid"], true);

    // n1's clock 5 s behind for most of the run, then a strobe on n2: the
    // writes n1 coordinates lose to older ones, and the checker sees it.
    let store = tempfile::tempdir().expect("tempdir");
    let timeline = store.path().join("clock.json");
    std::fs::write(
        &timeline,
        r#"[{"at": 0, "for": 4, "fault": {"fault": "clock", "mode": "skew", "ms": -5000, "target": {"nodes": ["n1"]}}},
            {"at": 4.5, "for": 1, "fault": {"fault": "clock", "mode": "strobe", "ms": 3000, "period_ms": 20, "target": {"nodes": ["n2"]}}}]"#,
    )
    .expect("timeline");
    let o = wall_clock_run(
        store.path(),
        &["--nemesis-schedule", timeline.to_str().expect("utf-8")],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let r = results(store.path());
    assert_eq!(r["valid"], false);
    assert_eq!(r["checks"]["linearizable"]["valid"], false, "{r}");
    assert_eq!(r["stats"]["faults"], 2, "{r}");
    assert_eq!(r["faults"][0]["fault"]["f"], "clock", "{r}");
    let h = history(store.path());
    let clock = |phase: &str, mode: &str| {
        count(&h, |e| {
            e["process"] == "nemesis"
                && e["f"] == "clock"
                && e["phase"] == phase
                && e["value"]["mode"] == mode
        })
    };
    assert_eq!((clock("start", "skew"), clock("end", "skew")), (1, 1));
    assert_eq!((clock("start", "strobe"), clock("end", "strobe")), (1, 1));
    let skew = h
        .iter()
        .find(|e| e["f"] == "clock" && e["value"]["mode"] == "skew")
        .expect("skew event");
    assert_eq!(skew["value"]["ms"], -5000);
    assert_eq!(skew["value"]["nodes"][0], "n1");
    assert!(skew.get("error").is_none(), "the fault was applied: {skew}");
    let report = std::fs::read_to_string(stores_common::latest(store.path()).join("report.html"))
        .expect("report.html");
    assert!(
        report.contains(r#""f":"clock""#),
        "the report shows the clock faults"
    );
    assert_clean();
}

#[test]
fn clock_faults_on_a_store_that_ignores_libfaketime_are_refused() {
    let Some(_g) = guard("clock_faults_on_a_store_that_ignores_libfaketime_are_refused") else {
        return;
    };
    let store = tempfile::tempdir().expect("tempdir");
    let path = store.path().to_str().expect("utf-8");
    err2(
        &[
            "run",
            "--store",
            path,
            "--db",
            "etcd",
            "--nemesis",
            "clock",
            "--time-limit",
            "5",
        ],
        &["not applicable", "/etcd", "libfaketime"],
    );
    assert_clean();
}
