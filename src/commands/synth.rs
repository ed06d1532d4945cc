//! `faultline synth`: writes a seeded synthetic history of a linearizable
//! store, optionally with one injected anomaly.
//!
//! The simulation lives in [`faultline_workloads::synth`]; this module parses
//! the flags (every value is parsed here so that a bad one gives a one-line
//! error naming the flag, exit code 2), opens the output, and reports the
//! injection as one JSON line on stderr.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::str::FromStr;

use faultline_workloads::synth::{self, Mix, Model, SynthConfig, SynthError};

use crate::Exit;
use crate::cli::fail;

/// Arguments of `faultline synth`.
///
/// Values are kept as text and parsed by [`config`], so that a bad one gives
/// a one-line error naming its flag (clap's own errors span several lines).
/// They are `Box<str>` rather than `String` to keep the struct small: it is a
/// variant of [`crate::cli::Command`].
#[derive(Debug, clap::Args)]
pub struct SynthArgs {
    /// Number of operations (invocations); each gets exactly one completion.
    #[arg(
        long,
        value_name = "N",
        allow_hyphen_values = true,
        default_value = "1000"
    )]
    pub ops: Box<str>,
    /// Number of concurrent client processes (each has at most one operation
    /// in flight).
    #[arg(
        long,
        visible_alias = "clients",
        value_name = "P",
        allow_hyphen_values = true,
        default_value = "10"
    )]
    pub processes: Box<str>,
    /// Number of keys, named k0..k{K-1}, chosen uniformly. With one key the
    /// `key` field is omitted.
    #[arg(
        long,
        value_name = "K",
        allow_hyphen_values = true,
        default_value = "1"
    )]
    pub keys: Box<str>,
    /// Seed of every random choice: the same flags give the same bytes.
    #[arg(
        long,
        value_name = "S",
        allow_hyphen_values = true,
        default_value = "0"
    )]
    pub seed: Box<str>,
    /// Model: `register` (read, write), `cas-register` (read, write, cas),
    /// `kv` (Porcupine's string store: get, put, append of unique strings);
    /// or transactions: `list-append`, `rw-register` (then `--ops` counts
    /// transactions, `--isolation` applies, and `--inject` takes g1c,
    /// g-single, write-skew or lost-update).
    #[arg(long, value_name = "MODEL", default_value = "cas-register")]
    pub model: Box<str>,
    /// Transactions only: the simulated store's isolation level,
    /// serializable, snapshot-isolation or read-committed.
    #[arg(long, value_name = "LEVEL", default_value = "serializable")]
    pub isolation: Box<str>,
    /// Operation mix (read, write, cas, append), normalized; kinds not named
    /// get weight 0, `cas` counts only for `cas-register` and `append` only
    /// for `kv` (where read is `get` and write is `put`). Default:
    /// read=0.5,write=0.3,cas=0.2, for kv read=0.5,write=0.1,append=0.4.
    #[arg(long, value_name = "MIX")]
    pub mix: Option<Box<str>>,
    /// Probability that an operation completes `info` (error timeout); it
    /// then takes effect with probability 1/2, and its process id is retired.
    #[arg(
        long,
        value_name = "PROB",
        allow_hyphen_values = true,
        default_value = "0.0"
    )]
    pub info: Box<str>,
    /// Probability that a write or cas completes `fail` without effect.
    #[arg(
        long,
        value_name = "PROB",
        allow_hyphen_values = true,
        default_value = "0.0"
    )]
    pub fail: Box<str>,
    /// Corrupt one ok read so the history is certainly not linearizable:
    /// `stale-read`, `lost-write` or `none`. The change is described on
    /// stderr as one JSON line.
    #[arg(long, value_name = "ANOMALY", default_value = "none")]
    pub inject: Box<str>,
    /// Draw written values from 1..=N instead of writing every value once:
    /// the checker then cannot use the unique-value decision and searches.
    /// Cannot be combined with --inject.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub values: Option<Box<str>>,
    /// Output file (`-` or absent: standard output).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Parses a number given to `flag`, with a one-line error naming it.
fn number<T: FromStr>(flag: &'static str, text: &str, what: &str) -> Result<T, SynthError> {
    text.trim()
        .parse()
        .map_err(|_| SynthError::invalid(flag, format!("expected {what}, got {text:?}")))
}

/// Builds the library configuration from the flags.
pub fn config(args: &SynthArgs) -> Result<SynthConfig, SynthError> {
    let cfg = SynthConfig {
        ops: number("--ops", &args.ops, "a positive integer")?,
        processes: number("--processes", &args.processes, "a positive integer")?,
        keys: number("--keys", &args.keys, "a positive integer")?,
        seed: number("--seed", &args.seed, "an integer between 0 and 2^64-1")?,
        model: Model::from_str(&args.model)?,
        mix: match &args.mix {
            Some(m) => Mix::from_str(m)?,
            None => Mix::default_for(Model::from_str(&args.model)?),
        },
        info: number("--info", &args.info, "a probability between 0 and 1")?,
        fail: number("--fail", &args.fail, "a probability between 0 and 1")?,
        inject: synth::parse_inject(&args.inject)?,
        values: match &args.values {
            Some(v) => Some(number("--values", v, "a positive integer")?),
            None => None,
        },
    };
    cfg.validate()?;
    Ok(cfg)
}

/// Runs `faultline synth`.
pub fn run(args: SynthArgs) -> Exit {
    if let Some(exit) = super::synth_txn::run_if_txn(&args) {
        return exit;
    }
    let cfg = match config(&args) {
        Ok(cfg) => cfg,
        Err(e) => return fail(e),
    };
    let path = args
        .output
        .filter(|p| p.as_os_str() != std::ffi::OsStr::new("-"));
    let result = match &path {
        Some(path) => {
            // Only what this run created is removed again: never a device
            // such as /dev/null, a link, or a file that was there before.
            let existed = std::fs::symlink_metadata(path).is_ok();
            let file = match File::create(path) {
                Ok(f) => f,
                Err(e) => return fail(format!("-o: cannot create {}: {e}", path.display())),
            };
            let result = synth::synthesize(&cfg, file);
            if result.is_err() && !existed {
                // Leave no empty or truncated history behind.
                let _ = std::fs::remove_file(path);
            }
            result
        }
        None => synth::synthesize(&cfg, std::io::stdout().lock()),
    };
    match result {
        Ok(report) => {
            if let Some(injected) = &report.injected {
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "{}", injected.to_json_line());
            }
            Exit::Valid
        }
        Err(SynthError::Io(e)) => match &path {
            Some(p) => fail(format!("-o: writing {}: {e}", p.display())),
            None => fail(format!("writing the history to stdout: {e}")),
        },
        Err(e) => fail(e),
    }
}
