//! `faultline synth --model list-append|rw-register`: the transactional
//! branch of `synth` (see [`faultline_workloads::txn_synth`]).

use std::fs::File;
use std::io::Write;

use faultline_workloads::synth::SynthError;
use faultline_workloads::txn_synth::{self, Isolation, TxnInject, TxnKind, TxnSynthConfig};

use super::synth::SynthArgs;
use crate::Exit;
use crate::cli::fail;

/// Writes a transactional history when `--model` names a transactional
/// model; `None` otherwise (the single-object synthesizer runs).
pub fn run_if_txn(args: &SynthArgs) -> Option<Exit> {
    let kind = match &*args.model {
        "list-append" => TxnKind::ListAppend,
        "rw-register" => TxnKind::RwRegister,
        _ => return None,
    };
    Some(match config(args, kind) {
        Ok(cfg) => write(args, &cfg),
        Err(e) => fail(e),
    })
}

fn number<T: std::str::FromStr>(flag: &'static str, text: &str) -> Result<T, SynthError> {
    text.trim()
        .parse()
        .map_err(|_| SynthError::invalid(flag, format!("expected a number, got {text:?}")))
}

fn config(args: &SynthArgs, kind: TxnKind) -> Result<TxnSynthConfig, SynthError> {
    let cfg = TxnSynthConfig {
        kind,
        isolation: args.isolation.parse::<Isolation>()?,
        txns: number("--ops", &args.ops)?,
        processes: number("--processes", &args.processes)?,
        keys: number("--keys", &args.keys)?,
        writes_per_key: 32,
        seed: number("--seed", &args.seed)?,
        info: number("--info", &args.info)?,
        fail: number("--fail", &args.fail)?,
        inject: TxnInject::parse(&args.inject)?,
    };
    cfg.validate()?;
    Ok(cfg)
}

fn write(args: &SynthArgs, cfg: &TxnSynthConfig) -> Exit {
    let path = args
        .output
        .as_ref()
        .filter(|p| p.as_os_str() != std::ffi::OsStr::new("-"));
    // Only what this run created is removed again (see synth.rs).
    let existed = path.is_some_and(|p| std::fs::symlink_metadata(p).is_ok());
    let result = match path {
        Some(p) => match File::create(p) {
            Ok(f) => {
                let r = txn_synth::synthesize(cfg, std::io::BufWriter::new(f));
                if r.is_err() && !existed {
                    let _ = std::fs::remove_file(p);
                }
                r
            }
            Err(e) => return fail(format!("-o: cannot create {}: {e}", p.display())),
        },
        None => txn_synth::synthesize(cfg, std::io::BufWriter::new(std::io::stdout().lock())),
    };
    match result {
        Ok(Some(injected)) => {
            let _ = writeln!(std::io::stderr().lock(), "{}", injected.to_json_line());
            Exit::Valid
        }
        Ok(None) => Exit::Valid,
        Err(e) => fail(e),
    }
}
