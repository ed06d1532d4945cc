//! Reports of real runs (root, the lab, ~15 s each): the built-in store in
//! primary mode (valid, `PC/EC`) and in async mode (invalid, `PA/EL`)
//! under partitions. report.html opens in headless Chromium with no console
//! message and shows the run's operations and fault intervals, a screenshot
//! is taken (into the run directory; with FAULTLINE_UPDATE_SCREENSHOT=1 also
//! into docs/report.png), junit.xml validates with one failing case for the
//! invalid run and none for the valid one, `faultline report` re-creates
//! the files.

mod lab_common;
mod report_common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use lab_common::{assert_clean, bin, guard};
use report_common::{assert_clean_render, load, screenshot, selftest, validate_junit};
use serde_json::Value;

fn run(store: &Path, mode: &str, seed: &str, summary: &Path) -> Output {
    Command::new(bin())
        .arg("run")
        .arg("--store")
        .arg(store)
        .args(["--no-progress", "--quiet", "1", "--db-opt"])
        .arg(format!("mode={mode}"))
        .args([
            "--nodes",
            "3",
            "--workload",
            "kv",
            "--nemesis",
            "partition",
            "--nemesis-interval",
            "5",
            "--time-limit",
            "15",
            "--seed",
            seed,
            "--summary-md",
        ])
        .arg(summary)
        .output()
        .expect("runs faultline")
}

fn text(o: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn latest(store: &Path) -> PathBuf {
    std::fs::canonicalize(store.join("latest")).expect("store/latest")
}

fn results(dir: &Path) -> Value {
    let p = dir.join("results.json");
    serde_json::from_str(&std::fs::read_to_string(&p).expect("results.json")).expect("JSON")
}

/// Checks the report of one run; returns the classification label.
fn check_run(o: &Output, dir: &Path, expect_valid: bool, summary: &Path) -> String {
    let out = text(o);
    let r = results(dir);
    let label = r["classification"]["label"]
        .as_str()
        .unwrap_or_else(|| panic!("no classification in results.json: {out}"))
        .to_string();
    assert!(
        out.contains(&format!("classification: {label}")),
        "the run prints its classification: {out}"
    );
    assert!(out.contains("report: "), "{out}");
    let md = std::fs::read_to_string(summary).expect("--summary-md");
    assert!(md.contains(&format!("Classification: {label}")), "{md}");

    // junit.xml: one case per check; one failure exactly when invalid.
    let j = validate_junit(&dir.join("junit.xml"));
    let checks = r["checks"].as_object().expect("checks").len() as u64;
    assert_eq!(j.tests, checks, "{j:?}");
    assert_eq!(j.failures, u64::from(!expect_valid), "{j:?}");

    // report.html in the browser.
    let html = dir.join("report.html");
    let page = load(&html);
    assert_clean_render(&page, &html.display().to_string());
    let ops = r["stats"]["ops"].as_u64().expect("ops");
    assert_eq!(
        page.num("data-ops"),
        ops as f64,
        "every operation is in the page"
    );
    assert!(
        page.num("data-drawn-ops") > 0.0,
        "the timeline drew operations"
    );
    let faults = r["faults"].as_array().expect("faults").len();
    assert!(faults >= 2, "{faults} faults");
    assert_eq!(
        page.num("data-faults"),
        faults as f64,
        "every fault interval"
    );
    assert_eq!(
        page.num("data-fault-bands"),
        faults as f64,
        "every fault interval is shaded in the timeline"
    );
    assert!(
        page.dom.contains(&format!("id=\"cls-label\">{label}<")),
        "the classification is shown"
    );
    if !expect_valid {
        assert!(
            page.num("data-witness-ops") >= 1.0,
            "the witness is highlighted"
        );
        assert!(
            page.dom.contains("class=\"anomaly\""),
            "the witness in words"
        );
        assert!(
            page.dom.contains("id=\"plin-linearizable-0\""),
            "the partial linearization"
        );
    }
    println!(
        "{}: {ops} ops, report.html {:.1} MB rendered in {} ms",
        dir.display(),
        std::fs::metadata(&html).map(|m| m.len()).unwrap_or(0) as f64 / 1e6,
        page.num("data-render-ms")
    );
    selftest(&html);
    let png = dir.join("report.png");
    screenshot(&html, &png);
    if !expect_valid && std::env::var("FAULTLINE_UPDATE_SCREENSHOT").as_deref() == Ok("1") {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/report.png");
        std::fs::copy(&png, &docs).expect("copying the screenshot into docs/");
    }

    // `faultline report DIR` re-creates the files from the stored run.
    std::fs::remove_file(&html).expect("rm report.html");
    std::fs::remove_file(dir.join("junit.xml")).expect("rm junit.xml");
    let o = Command::new(bin())
        .arg("report")
        .arg(dir)
        .output()
        .expect("faultline report");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(html.is_file() && dir.join("junit.xml").is_file());
    assert_eq!(
        validate_junit(&dir.join("junit.xml")).failures,
        u64::from(!expect_valid)
    );
    label
}

#[test]
fn reports_and_classification_of_primary_and_async_runs() {
    let Some(_g) = guard("reports_and_classification_of_primary_and_async_runs") else {
        return;
    };
    let store = tempfile::tempdir().expect("tempdir");
    let summary = store.path().join("summary.md");

    let o = run(store.path(), "primary", "11", &summary);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let label = check_run(&o, &latest(store.path()), true, &summary);
    assert_eq!(label, "PC/EC", "{}", text(&o));

    let o = run(store.path(), "async", "12", &summary);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let dir = latest(store.path());
    let label = check_run(&o, &dir, false, &summary);
    assert_eq!(label, "PA/EL", "{}", text(&o));
    let c = &results(&dir)["classification"];
    assert!(
        c["partition"]["minority"]["read"]["availability"].as_f64() >= Some(0.5),
        "{c}"
    );
    assert!(
        c["normal"]["read"]["n"].as_u64() > Some(100),
        "latency outside faults: {c}"
    );
    assert_clean();
}
