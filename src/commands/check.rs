//! `faultline check`: read history files, check them, print a verdict per
//! file, exit with the worst.
//!
//! The checks are linearizability, the session guarantees and the three
//! variants of causal consistency (`--checks`, see
//! [`faultline_checkers::checks`]). By default every check that applies to
//! the model runs; the session and causal checks are then skipped, with a
//! note, on histories that break their contract (a value written twice, a
//! function other than read and write), so that such histories keep their
//! linearizability verdict. Named explicitly in `--checks`, a check whose
//! contract the history breaks is an error (exit 2), like a history that
//! does not fit its model: no budget would let the check decide, and
//! "unknown" means "ran out of budget" here.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Instant;

use faultline_checkers::checker::Budget;
use faultline_checkers::checks::{self, Check};
use faultline_checkers::format::{self, Format};
use faultline_checkers::history::{CompletionsMode, History};
use faultline_checkers::linear::{self, LinearReport};
use faultline_checkers::plan::{Plan, Ran, Skipped};
use faultline_checkers::tuples::{self, KeyInValue};
use faultline_checkers::verdict::CheckResult;
use faultline_checkers::{EventType, ModelKind, Validity};
use serde_json::{Map, Value, json};

use super::check_txn::{self, ModelChoice};
use crate::Exit;
use crate::commands::witness_size::{shorten_json, shorten_text, shortened_witness};
use crate::report::ClassifyInput;
use crate::runner::results::StoredRun;
use faultline_checkers::error::{echo, one_line};

/// Arguments of `faultline check`.
#[derive(Clone, Debug, clap::Args)]
pub struct CheckArgs {
    /// History files (`-` for standard input), or stored run directories
    /// (`store/latest`: its history, checked as its workload implies).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// The model: register, cas-register, kv, multi-register, mutex;
    /// list-append, rw-register (transactions, see docs/transactions.md).
    /// Default: inferred from the functions the history uses.
    #[arg(long, short = 'm', value_name = "M", value_parser = parse_model)]
    pub model: Option<ModelChoice>,

    /// Transactional histories: the consistency models to check,
    /// comma-separated (read-uncommitted, read-committed, read-atomic,
    /// causal, snapshot-isolation, repeatable-read, serializable,
    /// strong-session-serializable, strict-serializable). Default:
    /// strict-serializable, or strong-session-serializable when the format
    /// has no real-time order.
    #[arg(long, value_name = "LIST", value_parser = check_txn::parse_models)]
    pub consistency_models: Option<check_txn::ModelList>,

    /// The file format: auto, json, edn, porcupine-etcd, porcupine-kv.
    #[arg(long, default_value = "auto", value_name = "F", value_parser = parse_format)]
    pub format: Format,

    /// Initial value of every register, as JSON (default: null, or the
    /// format's own default).
    #[arg(long, value_name = "JSON", value_parser = parse_json)]
    pub initial: Option<Value>,

    /// Give up after this many seconds per file; the verdict is then
    /// "unknown", never "valid".
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    pub time_limit: Option<f64>,

    /// Give up when the search caches would exceed this many MiB
    /// ("unknown"). Default: a quarter of physical memory, at most 4096.
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..))]
    pub memory_limit: Option<u64>,

    /// Decide every key even after one is proven not linearizable. By
    /// default the other keys then get as much extra time as the check has
    /// taken so far, and those still open are reported as not decided (the
    /// verdict and exit code are the same).
    #[arg(long)]
    pub all_keys: bool,

    /// One JSON object per file per line on stdout.
    #[arg(long)]
    pub json: bool,

    /// The checks, comma-separated: linearizable, ryw, mr, mw, wfr, session
    /// (the four), cc, ccv, cm, causal (the three), all. Default: every
    /// check that applies to the model (session and causal checks are then
    /// skipped, with a note, on histories that break their contract).
    #[arg(long, value_name = "LIST", value_parser = parse_checks)]
    pub checks: Option<CheckList>,

    /// Take keys from `[key value]` values (Jepsen's independent tuples):
    /// auto (when no operation has a `key` field, every one is a read or a
    /// write and every value is such a pair), yes, no.
    #[arg(long, default_value = "auto", value_name = "WHEN", value_parser = parse_key_in_value)]
    pub key_in_value: KeyInValue,

    /// Write a self-contained HTML report of the (one) history file: the
    /// verdicts, the witnesses, a timeline, latency and throughput plots.
    #[arg(long, value_name = "OUT")]
    pub html: Option<PathBuf>,

    /// Write JUnit XML: one test suite per file, one test case per check.
    #[arg(long, value_name = "OUT")]
    pub junit: Option<PathBuf>,

    /// Write a short Markdown summary (for a CI step summary).
    #[arg(long, value_name = "FILE")]
    pub summary_md: Option<PathBuf>,
}

/// The checks named by `--checks`.
#[derive(Clone, Debug)]
pub struct CheckList(pub Vec<Check>);

fn parse_checks(s: &str) -> Result<CheckList, String> {
    Check::parse_list(s).map(CheckList)
}

fn parse_key_in_value(s: &str) -> Result<KeyInValue, String> {
    s.parse()
}

fn parse_model(s: &str) -> Result<ModelChoice, String> {
    s.parse()
}

fn parse_format(s: &str) -> Result<Format, String> {
    s.parse()
}

fn parse_json(s: &str) -> Result<Value, String> {
    serde_json::from_str(s)
        .map_err(|e| format!("not valid JSON ({e}); a string needs quotes, e.g. --initial '\"\"'"))
}

/// The longest time limit: about 31 years. Longer limits (`1e19`, `1e300`,
/// `inf`) mean "no limit" and are clamped to it, so that no deadline
/// overflows.
pub const MAX_SECONDS: f64 = 1e9;

fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && !v.is_nan() => Ok(v.min(MAX_SECONDS)),
        _ => Err(format!("`{}` is not a positive number of seconds", echo(s))),
    }
}

/// Which file a path names: device and inode.
type FileId = (u64, u64);

/// The file `p` is, when it exists.
fn file_id(p: &std::path::Path) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()))
}

/// Refuses an output (`--html`, `--junit`, `--summary-md`) that is one of
/// the inputs (a history file, or the history of a run directory), or that
/// another output names too: writing it would destroy the input.
fn outputs_are_not_inputs(args: &CheckArgs) -> Result<(), String> {
    let outputs = [
        ("--html", &args.html),
        ("--junit", &args.junit),
        ("--summary-md", &args.summary_md),
    ];
    let mut inputs: Vec<(PathBuf, FileId)> = Vec::new();
    for f in &args.files {
        let history = if f.is_dir() {
            f.join("history.jsonl")
        } else {
            f.clone()
        };
        if let Some(id) = file_id(&history) {
            inputs.push((history, id));
        }
    }
    let mut seen: Vec<(&str, PathBuf, Option<FileId>)> = Vec::new();
    for (flag, out) in outputs {
        let Some(out) = out else { continue };
        let id = file_id(out);
        if let Some((input, _)) = inputs.iter().find(|(_, i)| Some(*i) == id) {
            return Err(format!(
                "{flag} {}: is the input history {} (it would be overwritten); choose another file",
                echo(&out.display().to_string()),
                echo(&input.display().to_string())
            ));
        }
        if let Some((other, _, _)) = seen
            .iter()
            .find(|(_, p, i)| p == out || (id.is_some() && *i == id))
        {
            return Err(format!(
                "{flag} {}: {other} writes the same file; choose another file",
                echo(&out.display().to_string())
            ));
        }
        seen.push((flag, out.clone(), id));
    }
    Ok(())
}

/// What happened to one file.
enum FileOutcome {
    Checked(Validity),
    Error,
}

/// The memory budget of one file's checks, in bytes: `--memory-limit` MiB,
/// or by default a quarter of physical memory, at most 4 GiB.
fn memory_limit_bytes(args: &CheckArgs) -> usize {
    match args.memory_limit {
        Some(mib) => usize::try_from(mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX),
        None => linear::default_memory_limit(),
    }
}

/// Runs `faultline check`.
pub fn run(args: CheckArgs) -> Exit {
    let mut worst_error = false;
    let mut any_invalid = false;
    let mut any_unknown = false;
    if let Err(e) =
        crate::report::check_args(&args.files, &args.html, &args.junit, &args.summary_md)
    {
        return crate::cli::fail(e);
    }
    if let Err(e) = outputs_are_not_inputs(&args) {
        return crate::cli::fail(e);
    }
    let mut collected = Vec::new();
    for file in &args.files {
        match check_file(file, &args, &mut collected) {
            FileOutcome::Checked(Validity::Valid) => {}
            FileOutcome::Checked(Validity::Invalid) => any_invalid = true,
            FileOutcome::Checked(Validity::Unknown) => any_unknown = true,
            FileOutcome::Error => worst_error = true,
        }
    }
    if let Err(e) = crate::report::write_check_outputs(
        args.junit.as_deref(),
        args.summary_md.as_deref(),
        args.html.as_deref(),
        &collected,
    ) {
        return crate::cli::fail(e);
    }
    if worst_error {
        Exit::Error
    } else if any_invalid {
        Exit::Invalid
    } else if any_unknown {
        Exit::Unknown
    } else {
        Exit::Valid
    }
}

fn report_error(args: &CheckArgs, file: &str, msg: &str) -> FileOutcome {
    // What the message echoes of the input is escaped and cut: one line.
    let msg = &one_line(msg);
    crate::errln!("faultline: error: {msg}");
    if args.json {
        crate::outln!(
            "{}",
            json!({"file": file, "valid": Value::Null, "error": msg})
        );
    }
    FileOutcome::Error
}

/// Operations from which a history is freed on a thread of its own.
const FREE_BEHIND: usize = 100_000;

/// A history freed on a thread of its own once its file is checked:
/// freeing a million operations takes a tenth of a second that the verdict
/// (and the next file of a directory) need not wait for.
struct FreedBehind(History);

impl std::ops::Deref for FreedBehind {
    type Target = History;
    fn deref(&self) -> &History {
        &self.0
    }
}

impl std::ops::DerefMut for FreedBehind {
    fn deref_mut(&mut self) -> &mut History {
        &mut self.0
    }
}

impl Drop for FreedBehind {
    fn drop(&mut self) {
        let history = std::mem::take(&mut self.0);
        if history.ops.len() >= FREE_BEHIND {
            // When no thread can be started, the closure and the history
            // in it are freed here.
            let _ = std::thread::Builder::new()
                .name("free-history".into())
                .spawn(move || drop(history));
        }
    }
}

/// True when every operation of a non-empty history is a completion
/// without invocation.
fn completions_only(h: &History) -> bool {
    !h.ops.is_empty()
        && h.ops
            .iter()
            .all(|o| o.complete_pos() == Some(o.invoke_pos()))
}

/// A stored run's directory (`store/latest`): its history, checked with the
/// model its workload implies; set and counter runs get their own checks.
fn check_run_dir(
    dir: &std::path::Path,
    args: &CheckArgs,
    collected: &mut Vec<Value>,
) -> FileOutcome {
    let history = dir.join("history.jsonl");
    if !history.is_file() {
        let name = dir.display().to_string();
        return report_error(
            args,
            &name,
            &format!(
                "{name}: is a directory without history.jsonl (expected a file, or a run directory such as store/latest)"
            ),
        );
    }
    let workload = StoredRun::read(dir).and_then(|s| s.workload());
    // The run's model, when its plan checks linearizability.
    let model = workload.and_then(|w| Plan::for_workload(w).model());
    match workload {
        Some(w) if model.is_none() => {
            let name = history.display().to_string();
            let v = match crate::runner::checks::check_history(&history, w, args.time_limit) {
                Ok(v) => v,
                Err(e) => return report_error(args, &name, &e),
            };
            if args.json {
                crate::outln!(
                    "{}",
                    json!({"file": name, "workload": w.name(), "valid": v.valid, "ops": v.ops,
                           "check_ms": round3(v.check_ms), "checks": v.checks.to_json()})
                );
            } else {
                crate::outln!("{name}: {} workload, {} ops", w.name(), v.ops);
                for line in crate::runner::checks::summary_lines(&v) {
                    crate::outln!("{line}");
                }
            }
            FileOutcome::Checked(v.valid)
        }
        _ => {
            let mut args2 = args.clone();
            if args2.model.is_none() {
                args2.model = model.map(ModelChoice::Single);
            }
            check_file(&history, &args2, collected)
        }
    }
}

fn check_file(path: &std::path::Path, args: &CheckArgs, collected: &mut Vec<Value>) -> FileOutcome {
    if path.is_dir() {
        return check_run_dir(path, args, collected);
    }
    let name = path.display().to_string();
    let explicit = args.checks.as_ref().map(|c| c.0.as_slice());
    let wants_rw = explicit.is_some_and(|c| c.iter().any(|c| c.needs_rw()));
    if let Some(outcome) = check_txn_streamed(path, &name, args, collected) {
        return outcome;
    }
    let t0 = Instant::now();
    let (history, fmt) = match format::read_path_with(path, args.format, CompletionsMode::Auto) {
        Ok(x) => x,
        Err(e) => return report_error(args, &name, &e.to_string()),
    };
    let mut history = FreedBehind(history);
    crate::runner::checks::warn_torn(&name, &history);
    if let Some(m) = check_txn::txn_model(args.model, &history) {
        let input = check_txn::TxnInput::History(&history);
        return check_txn_file(&name, input, fmt, m, args, t0, collected);
    }
    let only_completions = completions_only(&history);
    if only_completions && !wants_rw {
        let first = &history.ops[0];
        return report_error(
            args,
            &name,
            &format!(
                "{name}:{}: `{}` completion for process {}, which has no invocation in flight \
                 (the history has no invocations at all: a history of completions only is \
                 checked by the session and causal checks, --checks session, causal or all)",
                first.invoke_line(),
                EventType::completion(first.outcome),
                first.process
            ),
        );
    }
    let keys_from_values = match tuples::apply(&mut history, args.key_in_value) {
        Ok(applied) => applied,
        Err(e) => return report_error(args, &name, &format!("{name}:{}: {}", e.line, e.reason)),
    };
    let parse_ms = t0.elapsed().as_secs_f64() * 1e3;
    let model = match args.model {
        Some(ModelChoice::Single(m)) => m,
        _ => ModelKind::infer(&history),
    };
    let plan = match Plan::for_model(model, explicit) {
        Ok(p) => p,
        Err(e) => return report_error(args, &name, &e.message(&name)),
    };
    let budget = Budget {
        initial: args.initial.clone(),
        time_limit: args.time_limit,
        memory_limit: memory_limit_bytes(args),
        all_keys: args.all_keys,
        ..Budget::new()
    };
    let t1 = Instant::now();
    let judged = match plan.run(&history, &budget) {
        Ok(v) => v,
        Err(e) => return report_error(args, &name, &e.message(&name)),
    };
    let check_ms = t1.elapsed().as_secs_f64() * 1e3;
    let lin = judged
        .get(Check::Linearizable)
        .and_then(|r| r.report_as::<LinearReport>());
    let ran: Vec<&Ran> = judged
        .ran
        .iter()
        .filter(|r| r.check != Check::Linearizable)
        .collect();
    let verdicts = judged.verdicts();
    let valid = judged.valid;
    let shown = Shown {
        name: &name,
        history: &history,
        model,
        lin,
        ran: &ran,
        skipped: &judged.skipped,
        verdicts: &verdicts,
        valid,
        parse_ms,
        check_ms,
        keys_from_values,
        only_completions,
    };
    if args.json {
        crate::outln!("{}", json_line(&shown, fmt));
    } else {
        print_all(&shown);
    }
    if args.html.is_some() || args.junit.is_some() || args.summary_md.is_some() {
        let line = json_line(&shown, fmt);
        let input = ClassifyInput {
            valid,
            model: Some(model),
            time_limit: None,
        };
        if let Err(e) = crate::report::check_file_outputs(
            args.html.as_deref(),
            &history,
            &input,
            &line,
            collected,
        ) {
            return report_error(args, &name, &e);
        }
    }
    FileOutcome::Checked(valid)
}

/// The fast path for transactional JSON Lines: the file read straight into
/// transactions (no history), when it can be read exactly so and no output
/// needs the history (`--html`, `--junit`, `--summary-md`). `None`: read it
/// with the general reader.
fn check_txn_streamed(
    path: &std::path::Path,
    name: &str,
    args: &CheckArgs,
    collected: &mut Vec<Value>,
) -> Option<FileOutcome> {
    let model = match args.model {
        Some(ModelChoice::Single(_)) => return None,
        Some(ModelChoice::Txn(m)) => Some(m),
        None => None,
    };
    if name == "-" || args.html.is_some() || args.junit.is_some() || args.summary_md.is_some() {
        return None;
    }
    let t0 = Instant::now();
    let txns = format::json_txn::read_txn_path(path, args.format, model).ok()?;
    let model = model.unwrap_or(txns.inferred);
    let input = check_txn::TxnInput::Streamed(&txns);
    Some(check_txn_file(
        name,
        input,
        Format::Json,
        model,
        args,
        t0,
        collected,
    ))
}

/// A transactional history: the isolation checker instead of the others.
fn check_txn_file(
    name: &str,
    input: check_txn::TxnInput<'_>,
    format: Format,
    model: faultline_checkers::txn::TxnModel,
    args: &CheckArgs,
    t0: Instant,
    collected: &mut Vec<Value>,
) -> FileOutcome {
    let run = check_txn::TxnRun {
        name,
        format,
        model,
        models: args.consistency_models.as_ref().map(|m| m.0.as_slice()),
        time_limit: args.time_limit,
        memory_limit: memory_limit_bytes(args),
        json: args.json,
        parse_ms: t0.elapsed().as_secs_f64() * 1e3,
    };
    match check_txn::check(input, &run) {
        Ok((valid, line)) => {
            if let (true, check_txn::TxnInput::History(history)) = (
                args.html.is_some() || args.junit.is_some() || args.summary_md.is_some(),
                input,
            ) {
                let input = ClassifyInput {
                    valid,
                    model: None,
                    time_limit: None,
                };
                if let Err(e) = crate::report::check_file_outputs(
                    args.html.as_deref(),
                    history,
                    &input,
                    &line,
                    collected,
                ) {
                    return report_error(args, name, &e);
                }
            }
            FileOutcome::Checked(valid)
        }
        Err(e) => report_error(args, name, &e),
    }
}

/// Everything the output of one file needs.
struct Shown<'a> {
    name: &'a str,
    history: &'a History,
    model: ModelKind,
    lin: Option<&'a LinearReport>,
    ran: &'a [&'a Ran],
    skipped: &'a [Skipped],
    verdicts: &'a [(Check, Validity)],
    valid: Validity,
    parse_ms: f64,
    check_ms: f64,
    keys_from_values: bool,
    only_completions: bool,
}

/// A check's result as in `results.json`, with its time.
fn check_json(r: &Ran) -> Value {
    let mut v = r.report.to_json();
    if let Value::Object(m) = &mut v {
        m.insert("check_ms".into(), json!(round3(r.ms)));
    }
    v
}

fn json_line(s: &Shown<'_>, fmt: Format) -> Value {
    let mut checks = Map::new();
    if let Some(r) = s.lin {
        checks.insert(
            "linearizable".into(),
            json!({
                "valid": r.valid,
                "anomalies": r.anomalies,
                "unknown_reason": r.unknown_reason,
                "not_decided": r.not_decided,
                "stats": r.stats,
            }),
        );
    }
    for r in s.ran {
        checks.insert(r.check.name().into(), check_json(r));
    }
    for k in s.skipped {
        checks.insert(
            k.check.name().into(),
            json!({"valid": Value::Null, "skipped": k.reason}),
        );
    }
    // Without linearizability, the top-level fields gather the other
    // checks'.
    let (anomalies, unknown_reason, stats) = match s.lin {
        Some(r) => (
            serde_json::to_value(&r.anomalies).unwrap_or(Value::Null),
            r.unknown_reason.clone(),
            serde_json::to_value(&r.stats).unwrap_or(Value::Null),
        ),
        None => (
            Value::Array(
                s.ran
                    .iter()
                    .filter_map(|r| Some((r.check, r.report_as::<CheckResult>()?)))
                    .flat_map(|(check, r)| {
                        r.anomalies.iter().map(move |a| {
                            let mut a = a.clone();
                            if let Value::Object(m) = &mut a {
                                m.insert("check".into(), json!(check.name()));
                            }
                            a
                        })
                    })
                    .collect(),
            ),
            s.ran
                .iter()
                .find_map(|r| r.report.unknown_reason().map(str::to_string)),
            json!({}),
        ),
    };
    let summary = checks::summarize(s.verdicts);
    let (mut anomalies, mut checks) = (anomalies, Value::Object(checks));
    shorten_json(&mut anomalies);
    shorten_json(&mut checks);
    json!({
        "file": s.name,
        "format": fmt.name(),
        "model": s.model.name(),
        "valid": s.valid,
        "ops": s.history.len(),
        "events": s.history.events,
        "faults": s.history.faults.len(),
        "parse_ms": round3(s.parse_ms),
        "check_ms": round3(s.check_ms),
        "anomalies": anomalies,
        "unknown_reason": unknown_reason,
        "not_decided": s.lin.map(|r| r.not_decided.as_slice()).unwrap_or_default(),
        "stats": stats,
        "checks": checks,
        "strongest": summary.strongest,
        "keys_from_values": s.keys_from_values,
        "completions_only": s.only_completions,
        "torn_last_line": s.history.torn_last_line,
    })
}

fn print_all(s: &Shown<'_>) {
    match s.lin {
        Some(r) => print_text(s.name, s.history, r, s.parse_ms, s.check_ms),
        None => {
            // "holds: ...", "VIOLATED: ..." or "UNKNOWN: ...", naming the
            // checks in that state.
            let (verdict, state) = match s.valid {
                Validity::Valid => ("holds", Validity::Valid),
                Validity::Invalid => ("VIOLATED", Validity::Invalid),
                Validity::Unknown => ("UNKNOWN", Validity::Unknown),
            };
            let named: Vec<&str> = s
                .verdicts
                .iter()
                .filter(|v| v.1 == state)
                .map(|v| v.0.name())
                .collect();
            crate::outln!(
                "{}: {verdict}: {} ({}, {} ops; parse {:.1} ms, check {:.1} ms)",
                s.name,
                if named.is_empty() {
                    "nothing checked".to_string()
                } else {
                    named.join(", ")
                },
                s.model.name(),
                s.history.len(),
                s.parse_ms,
                s.check_ms
            );
        }
    }
    let mut notes: Vec<&str> = Vec::new();
    if s.keys_from_values {
        notes.push("keys taken from [key value] values");
    }
    if s.only_completions {
        notes.push(if s.lin.is_some() {
            "completions only: for linearizability each operation is instantaneous at its position"
        } else {
            "completions only"
        });
    }
    if !notes.is_empty() {
        crate::outln!("  ({})", notes.join("; "));
    }
    if !s.skipped.is_empty() {
        let names: Vec<&str> = s.skipped.iter().map(|k| k.check.name()).collect();
        let reasons: BTreeSet<&str> = s.skipped.iter().map(|k| k.reason.as_str()).collect();
        crate::outln!(
            "  skipped {}: {} (name them in --checks to see where)",
            names.join(", "),
            reasons.into_iter().collect::<Vec<_>>().join("; ")
        );
    }
    if s.ran.is_empty() {
        return;
    }
    let summary = checks::summarize(s.verdicts);
    let describe = |c: Check| -> String {
        let types: BTreeSet<String> = s
            .ran
            .iter()
            .filter(|r| r.check == c)
            .flat_map(|r| r.report.anomalies())
            .map(|(kind, _)| kind)
            .filter(|kind| !kind.is_empty())
            .collect();
        if types.is_empty() {
            c.name().to_string()
        } else {
            format!(
                "{} ({})",
                c.name(),
                types.into_iter().collect::<Vec<_>>().join(", ")
            )
        }
    };
    match summary.strongest {
        Some(m) => crate::outln!("  strongest model that holds: {m}"),
        None => crate::outln!("  no checked model holds"),
    }
    if !summary.holds.is_empty() {
        let h: Vec<&str> = summary.holds.iter().map(|c| c.name()).collect();
        crate::outln!("  holds: {}", h.join(", "));
    }
    if !summary.violated.is_empty() {
        let v: Vec<String> = summary.violated.iter().map(|&c| describe(c)).collect();
        crate::outln!("  violates: {}", v.join(", "));
    }
    for r in s.ran {
        if let Some(u) = r.report.unknown_reason() {
            crate::outln!("  {}: could not decide: {u}", r.check.name());
        }
    }
    // Witnesses: a few per check, an anomaly shared by several checks once.
    let mut printed: BTreeSet<String> = BTreeSet::new();
    for r in s.ran {
        let mut shown = 0;
        let anomalies = r.report.anomalies();
        let total = anomalies.len();
        for (kind, text) in &anomalies {
            if !printed.insert(format!("{kind}\u{0}{text}")) {
                continue;
            }
            if shown == 3 {
                crate::outln!(
                    "  {}: ... and more anomalies ({} in all, see --json)",
                    r.check.name(),
                    total
                );
                break;
            }
            crate::outln!("  {}: {kind}: {}", r.check.name(), shorten_text(text));
            shown += 1;
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn print_text(
    name: &str,
    history: &faultline_checkers::History,
    report: &LinearReport,
    parse_ms: f64,
    check_ms: f64,
) {
    let verdict = match report.valid {
        Validity::Valid => "linearizable",
        Validity::Invalid => "NOT linearizable",
        Validity::Unknown => "UNKNOWN",
    };
    let keys = if report.stats.partitions > 1 {
        format!(", {} keys", report.stats.partitions)
    } else {
        String::new()
    };
    crate::outln!(
        "{name}: {verdict} ({}, {} ops{keys}; parse {:.1} ms, check {:.1} ms)",
        report.model,
        history.len(),
        parse_ms,
        check_ms
    );
    if let Some(reason) = &report.unknown_reason {
        crate::outln!("  could not decide: {reason}");
    }
    print_not_decided(report);
    for (i, w) in report.anomalies.iter().enumerate() {
        if i == 3 {
            crate::outln!(
                "  ... and {} more keys that are not linearizable (see --json)",
                report.anomalies.len() - 3
            );
            break;
        }
        crate::outln!(
            "{}",
            linear::render_text(&shortened_witness(w)).trim_end_matches('\n')
        );
    }
}

/// The keys left open after the first violation, on one line.
fn print_not_decided(report: &LinearReport) {
    let Some(first) = report.not_decided.first() else {
        return;
    };
    let keys: Vec<String> = report
        .not_decided
        .iter()
        .take(10)
        .map(|n| {
            n.key
                .as_ref()
                .map(faultline_checkers::history::compact)
                .unwrap_or_default()
        })
        .collect();
    let more = report.not_decided.len().saturating_sub(keys.len());
    println!(
        "  not decided: {}: {} key{} ({}{}; --all-keys decides every key)",
        first.reason,
        report.not_decided.len(),
        if report.not_decided.len() == 1 {
            ""
        } else {
            "s"
        },
        keys.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        },
    );
}
