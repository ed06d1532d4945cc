//! `faultline check`: read history files, check them, print a verdict per
//! file, exit with the worst.

use std::path::PathBuf;
use std::time::Instant;

use faultline_checkers::format::{self, Format};
use faultline_checkers::linear::{self, LinearOptions, LinearReport};
use faultline_checkers::{ModelKind, Validity};
use serde_json::{Value, json};

use crate::Exit;

/// Arguments of `faultline check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// History files (`-` for standard input).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// The model: register, cas-register, kv, multi-register, mutex.
    /// Default: inferred from the functions the history uses.
    #[arg(long, short = 'm', value_name = "M", value_parser = parse_model)]
    pub model: Option<ModelKind>,

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

    /// Give up when the search caches exceed this many MiB ("unknown").
    #[arg(long, value_name = "MIB", default_value_t = 4096,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub memory_limit: u64,

    /// One JSON object per file per line on stdout.
    #[arg(long)]
    pub json: bool,
}

fn parse_model(s: &str) -> Result<ModelKind, String> {
    s.parse()
}

fn parse_format(s: &str) -> Result<Format, String> {
    s.parse()
}

fn parse_json(s: &str) -> Result<Value, String> {
    serde_json::from_str(s)
        .map_err(|e| format!("not valid JSON ({e}); a string needs quotes, e.g. --initial '\"\"'"))
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("`{s}` is not a positive number of seconds")),
    }
}

/// What happened to one file.
enum FileOutcome {
    Checked(Validity),
    Error,
}

/// Runs `faultline check`.
pub fn run(args: CheckArgs) -> Exit {
    let mut worst_error = false;
    let mut any_invalid = false;
    let mut any_unknown = false;
    for file in &args.files {
        match check_file(file, &args) {
            FileOutcome::Checked(Validity::Valid) => {}
            FileOutcome::Checked(Validity::Invalid) => any_invalid = true,
            FileOutcome::Checked(Validity::Unknown) => any_unknown = true,
            FileOutcome::Error => worst_error = true,
        }
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
    eprintln!("faultline: error: {msg}");
    if args.json {
        println!(
            "{}",
            json!({"file": file, "valid": Value::Null, "error": msg})
        );
    }
    FileOutcome::Error
}

fn check_file(path: &std::path::Path, args: &CheckArgs) -> FileOutcome {
    let name = path.display().to_string();
    let t0 = Instant::now();
    let (history, fmt) = match format::read_path(path, args.format) {
        Ok(x) => x,
        Err(e) => return report_error(args, &name, &e.to_string()),
    };
    let parse_ms = t0.elapsed().as_secs_f64() * 1e3;
    let model = args.model.unwrap_or_else(|| ModelKind::infer(&history));
    let opts = LinearOptions {
        model,
        initial: args.initial.clone(),
        time_limit: args.time_limit,
        memory_limit: usize::try_from(args.memory_limit.saturating_mul(1 << 20))
            .unwrap_or(usize::MAX),
    };
    let t1 = Instant::now();
    let report = match linear::check(&history, &opts) {
        Ok(r) => r,
        Err(e) => {
            return report_error(
                args,
                &name,
                &format!("{name}:{}: {} (model {})", e.line, e.reason, model.name()),
            );
        }
    };
    let check_ms = t1.elapsed().as_secs_f64() * 1e3;
    if args.json {
        println!(
            "{}",
            json!({
                "file": name,
                "format": fmt.name(),
                "model": model.name(),
                "valid": report.valid,
                "ops": history.len(),
                "events": history.events,
                "faults": history.faults.len(),
                "parse_ms": round3(parse_ms),
                "check_ms": round3(check_ms),
                "anomalies": report.anomalies,
                "unknown_reason": report.unknown_reason,
                "stats": report.stats,
            })
        );
    } else {
        print_text(&name, &history, &report, parse_ms, check_ms);
    }
    FileOutcome::Checked(report.valid)
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
    println!(
        "{name}: {verdict} ({}, {} ops{keys}; parse {:.1} ms, check {:.1} ms)",
        report.model,
        history.len(),
        parse_ms,
        check_ms
    );
    if let Some(reason) = &report.unknown_reason {
        println!("  could not decide: {reason}");
    }
    for (i, w) in report.anomalies.iter().enumerate() {
        if i == 3 {
            println!(
                "  ... and {} more keys that are not linearizable (see --json)",
                report.anomalies.len() - 3
            );
            break;
        }
        print!("{}", linear::render_text(w));
    }
}
