//! Reports of a checked history: `report.html` (one self-contained file:
//! verdicts, witnesses, a timeline, latency and throughput plots, the
//! partial linearization), `junit.xml`, a Markdown summary for CI, and the
//! measured CAP/PACELC [`classify::Classification`].
//!
//! A run writes them all at its end ([`finish_run`]); `faultline report DIR`
//! rewrites them from a stored run ([`report_dir`]); `faultline check
//! --html/--junit/--summary-md` writes them for a history file.

pub mod classify;
pub mod html;
pub mod junit;

use std::path::{Path, PathBuf};

use faultline_checkers::Validity;
use faultline_checkers::format::{self, Format};
use faultline_checkers::history::History;
use serde_json::{Value, json};

pub use classify::ClassifyInput;
use classify::classify;

use crate::runner::results::StoredRun;

/// The run's verdict as a [`Validity`] (`true`, `false`, anything else is
/// unknown).
pub fn validity(v: &Value) -> Validity {
    match v {
        Value::Bool(true) => Validity::Valid,
        Value::Bool(false) => Validity::Invalid,
        _ => Validity::Unknown,
    }
}

/// Computes the classification of a checked history and stores it in
/// `results["classification"]`.
pub fn add_classification(history: &History, input: &ClassifyInput, results: &mut Value) {
    let c = classify(history, input);
    if let Value::Object(m) = results {
        m.insert(
            "classification".into(),
            serde_json::to_value(&c).unwrap_or(Value::Null),
        );
    }
}

/// What the classification of a stored run needs, from its
/// `results.json`.
fn stored_input(results: &Value) -> ClassifyInput {
    let stored = StoredRun::from_json(results).unwrap_or_default();
    ClassifyInput {
        valid: stored.valid.unwrap_or(Validity::Unknown),
        model: stored.model(),
        time_limit: stored.check_time_limit().map(|t| t.min(120.0)),
    }
}

/// The classification lines for the terminal (empty when there is none).
pub fn classification_lines(results: &Value) -> Vec<String> {
    let Some(c) = results.get("classification").filter(|c| c.is_object()) else {
        return Vec::new();
    };
    let mut out = vec![format!(
        "classification: {} (measured from this run; the rule is in docs/reports.md)",
        c["label"].as_str().unwrap_or("?")
    )];
    for r in c["reasons"].as_array().into_iter().flatten() {
        if let Some(s) = r.as_str() {
            out.push(format!("  {s}"));
        }
    }
    out
}

/// Where the outputs of one checked history go (None: not written).
#[derive(Clone, Debug, Default)]
pub struct Outputs {
    /// `report.html`.
    pub html: Option<PathBuf>,
    /// `junit.xml`.
    pub junit: Option<PathBuf>,
    /// The Markdown summary.
    pub summary_md: Option<PathBuf>,
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Writes the outputs asked for. `name` names the suite and the page.
pub fn write_outputs(
    name: &str,
    history: &History,
    results: &Value,
    out: &Outputs,
) -> Result<(), String> {
    if let Some(p) = &out.html {
        write(p, &html::render(name, history, results))?;
    }
    if let Some(p) = &out.junit {
        let time_s = results
            .pointer("/stats/duration_s")
            .and_then(Value::as_f64)
            .or_else(|| {
                results
                    .get("check_ms")
                    .and_then(Value::as_f64)
                    .map(|m| m / 1000.0)
            })
            .unwrap_or(0.0);
        write(
            p,
            &junit::render(&[junit::Suite {
                name: name.to_string(),
                results,
                time_s,
            }]),
        )?;
    }
    if let Some(p) = &out.summary_md {
        write(p, &summary_md(name, results, out.html.as_deref()))?;
    }
    Ok(())
}

/// A short Markdown summary for a CI step summary: the verdict, a table of
/// the checks, the first witness of each violated check, the
/// classification.
pub fn summary_md(name: &str, results: &Value, html: Option<&Path>) -> String {
    let verdict = match validity(&results["valid"]) {
        Validity::Valid => "✅ VALID",
        Validity::Invalid => "❌ INVALID",
        Validity::Unknown => "❔ UNKNOWN",
    };
    let mut s = format!("### faultline: {verdict} — `{name}`\n\n");
    if let Some(ops) = results
        .pointer("/stats/ops")
        .or_else(|| results.get("ops"))
        .and_then(Value::as_u64)
    {
        s.push_str(&format!("{ops} operations"));
        if let Some(seed) = results.get("seed") {
            s.push_str(&format!(", seed {seed}"));
        }
        s.push_str(".\n\n");
    }
    s.push_str("| check | verdict | first witness |\n|---|---|---|\n");
    for (check, c) in junit::checks(results) {
        let v = match c.get("valid") {
            Some(Value::Bool(true)) => "ok".to_string(),
            Some(Value::Bool(false)) => "**violated**".to_string(),
            Some(Value::Null) | None => "skipped".to_string(),
            Some(_) => format!(
                "unknown ({})",
                c["unknown_reason"].as_str().unwrap_or("no reason")
            ),
        };
        let w = c["anomalies"]
            .as_array()
            .and_then(|a| a.first())
            .and_then(|a| a["explanation"].as_str())
            .unwrap_or("")
            .replace('|', "\\|")
            .replace('\n', " ");
        s.push_str(&format!("| {check} | {v} | {w} |\n"));
    }
    if let Some(c) = results.get("classification").filter(|c| c.is_object()) {
        s.push_str(&format!(
            "\n**Classification: {}** (measured)\n\n",
            c["label"].as_str().unwrap_or("?")
        ));
        for r in c["reasons"].as_array().into_iter().flatten() {
            if let Some(r) = r.as_str() {
                s.push_str(&format!("- {r}\n"));
            }
        }
    }
    if let Some(h) = html {
        s.push_str(&format!("\nReport: `{}`\n", h.display()));
    }
    s
}

/// At the end of a run: writes `DIR/report.html` and `DIR/junit.xml` from
/// the history and the run's results (which carry the classification, see
/// [`add_classification`]).
pub fn finish_run(dir: &Path, history: &History, results: &Value) -> Result<(), String> {
    let name = results["name"].as_str().unwrap_or("run").to_string();
    write_outputs(
        &name,
        history,
        results,
        &Outputs {
            html: Some(dir.join("report.html")),
            junit: Some(dir.join("junit.xml")),
            summary_md: None,
        },
    )
}

/// `faultline report DIR`: re-creates `report.html` and `junit.xml` (and
/// the classification in `results.json` when it is missing) from
/// `DIR/history.jsonl` and `DIR/results.json`.
pub fn report_dir(dir: &Path, summary: Option<&Path>) -> Result<Value, String> {
    let hist = dir.join("history.jsonl");
    let res = dir.join("results.json");
    if !dir.is_dir() {
        return Err(format!("{}: not a run directory", dir.display()));
    }
    let text = std::fs::read_to_string(&res).map_err(|e| {
        format!(
            "{}: cannot read ({e}); is {} a run directory?",
            res.display(),
            dir.display()
        )
    })?;
    let mut results: Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", res.display()))?;
    if !results.is_object() {
        return Err(format!("{}: not a JSON object", res.display()));
    }
    let (history, _) = format::read_path(&hist, Format::Json).map_err(|e| e.to_string())?;
    if results.get("classification").is_none_or(|c| !c.is_object()) {
        add_classification(&history, &stored_input(&results), &mut results);
        let text = serde_json::to_string_pretty(&results).unwrap_or_default();
        write(&res, &(text + "\n"))?;
    }
    let name = results["name"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| dir.display().to_string());
    write_outputs(
        &name,
        &history,
        &results,
        &Outputs {
            html: Some(dir.join("report.html")),
            junit: Some(dir.join("junit.xml")),
            summary_md: summary.map(Path::to_path_buf),
        },
    )?;
    Ok(results)
}

/// A results object for `faultline check`'s outputs: its `--json` line,
/// with the classification added.
pub fn check_results(history: &History, input: &ClassifyInput, line: &Value) -> Value {
    let mut r = line.clone();
    if r.get("name").is_none() {
        if let Value::Object(m) = &mut r {
            m.insert(
                "name".into(),
                json!(line["file"].as_str().unwrap_or("history")),
            );
        }
    }
    add_classification(history, input, &mut r);
    r
}

/// After `faultline run` printed its summary: prints the classification
/// and where the report is, and writes the Markdown summary when asked.
/// A summary that cannot be written is a warning: the run's verdict stays
/// its exit code.
pub fn after_run(dir: &Path, summary: Option<&Path>) {
    let path = dir.join("results.json");
    let results: Value = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    for line in classification_lines(&results) {
        println!("{line}");
    }
    let html = dir.join("report.html");
    if html.is_file() {
        println!("report: {}", html.display());
    }
    if let Some(s) = summary {
        let name = results["name"].as_str().unwrap_or("run");
        if let Err(e) = write(s, &summary_md(name, &results, Some(&html))) {
            eprintln!("faultline: warning: --summary-md: {e}");
        }
    }
}

/// Checks that a file can be created at `path` (its directory exists), for
/// flags that name an output: `--FLAG PATH: ...` otherwise.
pub fn check_output_path(flag: &str, path: &Path) -> Result<(), String> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(format!(
            "--{flag} {}: the directory {} does not exist",
            path.display(),
            parent.display()
        ));
    }
    if path.is_dir() {
        return Err(format!("--{flag} {}: is a directory", path.display()));
    }
    Ok(())
}

/// `faultline check --html/--junit/--summary-md`, for one checked file:
/// adds the classification to the file's `--json` line, writes the HTML
/// report when asked, and keeps the results for [`write_check_outputs`].
pub fn check_file_outputs(
    html: Option<&Path>,
    history: &History,
    input: &ClassifyInput,
    line: &Value,
    collected: &mut Vec<Value>,
) -> Result<(), String> {
    let results = check_results(history, input, line);
    if let Some(p) = html {
        let name = results["file"].as_str().unwrap_or("history").to_string();
        write(p, &html::render(&name, history, &results))?;
    }
    collected.push(results);
    Ok(())
}

/// `faultline check --junit/--summary-md`: one suite (one summary section)
/// per checked file.
pub fn write_check_outputs(
    junit: Option<&Path>,
    summary: Option<&Path>,
    html: Option<&Path>,
    collected: &[Value],
) -> Result<(), String> {
    let name = |r: &Value| r["file"].as_str().unwrap_or("history").to_string();
    if let Some(p) = junit {
        let suites: Vec<junit::Suite<'_>> = collected
            .iter()
            .map(|r| junit::Suite {
                name: name(r),
                results: r,
                time_s: (r["parse_ms"].as_f64().unwrap_or(0.0)
                    + r["check_ms"].as_f64().unwrap_or(0.0))
                    / 1000.0,
            })
            .collect();
        write(p, &junit::render(&suites))?;
    }
    if let Some(p) = summary {
        let text: Vec<String> = collected
            .iter()
            .map(|r| summary_md(&name(r), r, html))
            .collect();
        write(p, &text.join("\n"))?;
    }
    Ok(())
}

/// Validates `faultline check`'s output flags before anything is checked:
/// `--html` takes one history file; every output's directory must exist.
pub fn check_args(
    files: &[PathBuf],
    html: &Option<PathBuf>,
    junit: &Option<PathBuf>,
    summary: &Option<PathBuf>,
) -> Result<(), String> {
    if let Some(h) = html {
        if files.len() != 1 {
            return Err(format!(
                "--html {}: one history file at a time (got {})",
                h.display(),
                files.len()
            ));
        }
    }
    for (flag, p) in [("html", html), ("junit", junit), ("summary-md", summary)] {
        if let Some(p) = p {
            check_output_path(flag, p)?;
        }
    }
    Ok(())
}
