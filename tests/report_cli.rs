//! Reports without a lab: a 100,000-operation synthesized history rendered
//! and timed in headless Chromium, `faultline check --html/--junit/
//! --summary-md`, and one-line errors for bad outputs and run directories.

mod report_common;

use std::path::Path;
use std::process::{Command, Output};

use report_common::{assert_clean_render, load, selftest, validate_junit};

fn fl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(args)
        .output()
        .expect("runs faultline")
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

#[test]
fn a_100k_operation_history_renders_in_under_3_seconds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hist = dir.path().join("h.jsonl");
    let o = fl(&[
        "synth",
        "--ops",
        "100000",
        "--keys",
        "8",
        "--info",
        "0.01",
        "--fail",
        "0.05",
        "--inject",
        "stale-read",
        "--seed",
        "3",
        "-o",
        p(&hist),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let html = dir.path().join("report.html");
    let junit = dir.path().join("junit.xml");
    let md = dir.path().join("summary.md");
    let o = fl(&[
        "check",
        p(&hist),
        "--html",
        p(&html),
        "--junit",
        p(&junit),
        "--summary-md",
        p(&md),
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let size = std::fs::metadata(&html).expect("report.html").len();

    let mut times = Vec::new();
    let mut page = None;
    for _ in 0..3 {
        let pg = load(&html);
        assert_clean_render(&pg, "100k report");
        times.push(pg.num("data-render-ms"));
        page = Some(pg);
    }
    let page = page.expect("a page");
    times.sort_by(f64::total_cmp);
    let median = times[1];
    println!(
        "100k ops: report.html {:.1} MB, rendered in {median} ms (median of {times:?}), browser wall {:.0} ms",
        size as f64 / 1e6,
        page.wall_ms
    );
    assert!(median < 3000.0, "rendering took {median} ms");
    assert_eq!(page.num("data-ops"), 100_000.0);
    assert!(
        page.num("data-drawn-ops") >= 100_000.0,
        "every op is drawn at the full view"
    );
    assert!(
        page.num("data-witness-ops") >= 1.0,
        "the witness is highlighted"
    );
    assert!(page.dom.contains("id=\"timeline-canvas\""));
    assert!(page.dom.contains("class=\"op\""), "links from the witness");
    assert!(
        page.dom.contains("id=\"plin-linearizable-0\""),
        "the partial linearization"
    );

    let st = selftest(&html);
    assert!(st.num("data-selftest-steps") >= 5.0);

    let j = validate_junit(&junit);
    assert_eq!(j.failures, 1, "{j:?}");
    let text = std::fs::read_to_string(&junit).expect("junit");
    assert!(
        text.contains("cannot place: process"),
        "the failure carries the witness"
    );
    let md = std::fs::read_to_string(&md).expect("summary");
    assert!(
        md.contains("INVALID") && md.contains("| linearizable | **violated** |"),
        "{md}"
    );
}

#[test]
fn a_valid_history_has_no_failing_case() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hist = dir.path().join("h.jsonl");
    assert!(
        fl(&["synth", "--ops", "2000", "--seed", "1", "-o", p(&hist)])
            .status
            .success()
    );
    let junit = dir.path().join("j.xml");
    let html = dir.path().join("r.html");
    let o = fl(&["check", p(&hist), "--junit", p(&junit), "--html", p(&html)]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let j = validate_junit(&junit);
    assert_eq!(j.failures, 0);
    assert!(j.tests >= 1);
    let page = load(&html);
    assert_clean_render(&page, "valid history");
    assert_eq!(page.num("data-ops"), 2000.0);
}

#[test]
fn bad_outputs_and_directories_are_one_line_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hist = dir.path().join("h.jsonl");
    assert!(
        fl(&["synth", "--ops", "100", "-o", p(&hist)])
            .status
            .success()
    );
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["report".into(), "/nonexistent/run".into()],
            "/nonexistent/run",
        ),
        (vec!["report".into(), p(dir.path()).into()], "results.json"),
        (
            vec![
                "check".into(),
                p(&hist).into(),
                "--html".into(),
                "/nonexistent/dir/r.html".into(),
            ],
            "--html /nonexistent/dir/r.html",
        ),
        (
            vec![
                "check".into(),
                p(&hist).into(),
                p(&hist).into(),
                "--html".into(),
                p(&dir.path().join("r.html")).into(),
            ],
            "one history file",
        ),
        (
            vec![
                "check".into(),
                p(&hist).into(),
                "--junit".into(),
                p(dir.path()).into(),
            ],
            "is a directory",
        ),
        (
            vec![
                "run".into(),
                "--summary-md".into(),
                "/nonexistent/s.md".into(),
            ],
            "--summary-md /nonexistent/s.md",
        ),
    ];
    for (args, needle) in cases {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = fl(&a);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{a:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{a:?}: one line: {err}");
        assert!(err.contains(needle), "{a:?}: {err} should name {needle}");
    }
}
