//! `faultline run`: flags and a TOML config file (flags win) become a
//! [`RunConfig`]; the runner does the rest.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use faultline_checkers::Validity;
use faultline_workloads::workload::{KeyDist, OpMix, WorkloadConfig, WorkloadKind};
use serde::Deserialize;

use crate::Exit;
use crate::cli::fail;
use crate::commands::run_hosts::{self, FileHosts, HostArgs};
use crate::runner::{self, FaultKind, RunConfig};
use crate::stores::registry;

/// Arguments of `faultline run`. Every setting can also come from
/// `--config FILE` (TOML, the same names); flags override the file.
#[derive(Debug, Default, clap::Args)]
pub struct RunArgs {
    /// A TOML file with the same settings as the flags (see `examples/`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The store (the list `--help` shows comes from the registry).
    #[arg(long, value_name = "D")]
    pub db: Option<String>,
    /// A store option, KEY=VALUE; repeat it. Each store's options are in
    /// docs/real-stores.md; an option the store does not have is an error
    /// that lists the ones it has.
    #[arg(long = "db-opt", value_name = "KEY=VALUE")]
    pub db_opt: Vec<String>,
    /// Number of nodes (1-9).
    #[arg(long, value_name = "N")]
    pub nodes: Option<usize>,
    /// The workload (the list `--help` shows comes from the workloads).
    #[arg(long, value_name = "W")]
    pub workload: Option<String>,
    /// Faults, comma-separated: partition, loss, delay, kill, pause, clock
    /// (not part of all: it needs servers libfaketime can fake), none, all.
    #[arg(long, value_name = "FAULTS")]
    pub nemesis: Option<String>,
    /// Seconds between the starts of two faults.
    #[arg(long, value_name = "S")]
    pub nemesis_interval: Option<f64>,
    /// Seconds each fault lasts (default: half the interval).
    #[arg(long, value_name = "S")]
    pub fault_duration: Option<f64>,
    /// An explicit fault timeline (JSON: `[{"at": 4, "for": 3, "fault":
    /// {"fault": "kill", "target": "primaries"}}]`) instead of `--nemesis`.
    #[arg(long, value_name = "FILE")]
    pub nemesis_schedule: Option<PathBuf>,
    /// Seconds of workload under faults.
    #[arg(long, value_name = "S")]
    pub time_limit: Option<f64>,
    /// Concurrent client processes.
    #[arg(long, value_name = "C")]
    pub concurrency: Option<u32>,
    /// Operations per second, all clients together (default: unlimited).
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
    /// Seed of the operation generators and the nemesis (default: from the
    /// clock; printed and stored).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// The store directory.
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// Number of keys (kv workload).
    #[arg(long, value_name = "K")]
    pub keys: Option<u32>,
    /// Key distribution: uniform, zipf, zipf:EXPONENT.
    #[arg(long, value_name = "DIST")]
    pub key_dist: Option<String>,
    /// Operation mix, e.g. read=0.5,write=0.4,cas=0.1.
    #[arg(long, value_name = "MIX")]
    pub mix: Option<String>,
    /// Client-side timeout of one operation, in milliseconds (then `info`).
    #[arg(long, value_name = "MS")]
    pub op_timeout: Option<u64>,
    /// Seconds of quiet after healing, before the final reads.
    #[arg(long, value_name = "S")]
    pub quiet: Option<f64>,
    /// Time budget of the linearizability check, in seconds.
    #[arg(long, value_name = "S")]
    pub check_time_limit: Option<f64>,
    /// Test name (the store directory's first level).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Also write a short Markdown summary of the run (for a CI step
    /// summary).
    #[arg(long, value_name = "FILE")]
    pub summary_md: Option<PathBuf>,
    /// Remote hosts (docs/remote.md).
    #[command(flatten)]
    pub remote: HostArgs,
}

/// The config file: the flags' names, in kebab-case.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct FileConfig {
    db: Option<String>,
    db_opt: Option<BTreeMap<String, toml::Value>>,
    nodes: Option<usize>,
    workload: Option<String>,
    nemesis: Option<NemesisField>,
    nemesis_interval: Option<f64>,
    fault_duration: Option<f64>,
    nemesis_schedule: Option<PathBuf>,
    time_limit: Option<f64>,
    concurrency: Option<u32>,
    rate: Option<f64>,
    seed: Option<u64>,
    store: Option<PathBuf>,
    keys: Option<u32>,
    key_dist: Option<String>,
    mix: Option<String>,
    op_timeout: Option<u64>,
    quiet: Option<f64>,
    check_time_limit: Option<f64>,
    name: Option<String>,
    hosts: Option<PathBuf>,
    ssh: Option<NemesisField>,
    ssh_identity: Option<PathBuf>,
    ssh_known_hosts: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum NemesisField {
    One(String),
    Many(Vec<String>),
}

fn positive(name: &str, v: f64) -> Result<f64, String> {
    if v > 0.0 && v.is_finite() {
        Ok(v)
    } else {
        Err(format!("--{name}: must be a positive number, got {v}"))
    }
}

/// The longest duration a flag may give: about 116 days.
const MAX_SECONDS: f64 = 1e7;

/// A positive number of seconds, at most [`MAX_SECONDS`].
fn seconds(name: &str, v: f64) -> Result<f64, String> {
    let v = positive(name, v)?;
    if v > MAX_SECONDS {
        return Err(format!(
            "--{name}: {v} s is too long (at most {MAX_SECONDS} s)"
        ));
    }
    Ok(v)
}

/// The largest config or schedule file read (they are a few lines).
const MAX_FILE_BYTES: u64 = 1 << 20;

/// Reads a small text file named by `flag`: at most [`MAX_FILE_BYTES`], so
/// that `/dev/zero` or a huge file is an error rather than a memory hog.
fn read_small(flag: &str, p: &Path) -> Result<String, String> {
    use std::io::Read;
    let f =
        std::fs::File::open(p).map_err(|e| format!("{flag} {}: cannot read: {e}", p.display()))?;
    let mut text = String::new();
    f.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("{flag} {}: cannot read: {e}", p.display()))?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "{flag} {}: larger than {MAX_FILE_BYTES} bytes; not a config file",
            p.display()
        ));
    }
    Ok(text)
}

fn toml_str(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A path named in the config file: relative to that file, like every path
/// in it (`store` and `nemesis-schedule` alike).
fn relative_to_config(args: &RunArgs, p: PathBuf) -> PathBuf {
    match &args.config {
        Some(c) if p.is_relative() => c.parent().unwrap_or(Path::new(".")).join(p),
        _ => p,
    }
}

/// Builds the run's configuration from the file and the flags.
fn build(args: &RunArgs) -> Result<RunConfig, String> {
    let file: FileConfig = match &args.config {
        Some(p) => {
            let text = read_small("--config", p)?;
            toml::from_str(&text).map_err(|e| {
                format!(
                    "--config {}: {}",
                    p.display(),
                    e.to_string().replace('\n', " ")
                )
            })?
        }
        None => FileConfig::default(),
    };
    let db = args
        .db
        .clone()
        .or(file.db)
        .unwrap_or_else(|| "builtin".into());
    let mut opts: BTreeMap<String, String> = file
        .db_opt
        .unwrap_or_default()
        .iter()
        .map(|(k, v)| (k.clone(), toml_str(v)))
        .collect();
    for kv in &args.db_opt {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("--db-opt {kv:?}: expected KEY=VALUE"))?;
        opts.insert(k.trim().to_string(), v.trim().to_string());
    }
    let file_hosts = FileHosts {
        hosts: file.hosts.map(|p| relative_to_config(args, p)),
        ssh: file.ssh.map(|s| match s {
            NemesisField::One(s) => s,
            NemesisField::Many(v) => v.join(","),
        }),
        ssh_identity: file.ssh_identity.map(|p| relative_to_config(args, p)),
        ssh_known_hosts: file.ssh_known_hosts.map(|p| relative_to_config(args, p)),
    };
    let hosts = run_hosts::hosts(&args.remote, file_hosts)?;
    let remote = run_hosts::remote_run(hosts, &mut opts)?;
    let db = registry::parse(&db, opts)?;
    let nodes = match &remote {
        Some(r) => {
            let n = r.hosts.hosts.len();
            if let Some(given) = args.nodes.or(file.nodes).filter(|g| *g != n) {
                return Err(format!(
                    "--nodes: {given} given, but the remote hosts are {n} nodes"
                ));
            }
            n
        }
        None => args.nodes.or(file.nodes).unwrap_or(3),
    };
    if !(1..=9).contains(&nodes) {
        return Err(format!("--nodes: expected 1 to 9, got {nodes}"));
    }
    let kind: WorkloadKind = args
        .workload
        .clone()
        .or(file.workload)
        .unwrap_or_else(|| "kv".into())
        .parse()
        .map_err(|e| format!("--workload: {e}"))?;
    db.check_workload(kind)?;
    let nemesis = match (&args.nemesis, file.nemesis) {
        (Some(s), _) => s.clone(),
        (None, Some(NemesisField::One(s))) => s,
        (None, Some(NemesisField::Many(v))) => v.join(","),
        (None, None) => "partition".into(),
    };
    let faults = FaultKind::parse_list(&nemesis).map_err(|e| format!("--nemesis: {e}"))?;
    let interval = seconds(
        "nemesis-interval",
        args.nemesis_interval
            .or(file.nemesis_interval)
            .unwrap_or(5.0),
    )?;
    let duration = seconds(
        "fault-duration",
        args.fault_duration
            .or(file.fault_duration)
            .unwrap_or(interval / 2.0),
    )?;
    if duration >= interval {
        return Err(format!(
            "--fault-duration: {duration} s must be shorter than --nemesis-interval {interval} s"
        ));
    }
    let file_schedule = file.nemesis_schedule.map(|p| relative_to_config(args, p));
    let timeline = match args.nemesis_schedule.clone().or(file_schedule) {
        Some(p) => {
            let text = read_small("--nemesis-schedule", &p)?;
            let entries: Vec<crate::nemesis::schedule::TimelineEntry> = serde_json::from_str(&text)
                .map_err(|e| format!("--nemesis-schedule {}: {e}", p.display()))?;
            Some(entries)
        }
        None => None,
    };
    let time_limit = seconds(
        "time-limit",
        args.time_limit.or(file.time_limit).unwrap_or(30.0),
    )?;
    let concurrency = args.concurrency.or(file.concurrency).unwrap_or(10);
    if concurrency == 0 || concurrency > 10_000 {
        return Err(format!(
            "--concurrency: expected 1 to 10000, got {concurrency}"
        ));
    }
    let rate = match args.rate.or(file.rate) {
        Some(r) if (0.001..=1e9).contains(&r) => Some(r),
        Some(r) => {
            return Err(format!(
                "--rate: expected 0.001 to 1e9 operations per second, got {r}"
            ));
        }
        None => None,
    };
    let seed = args.seed.or(file.seed).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64 % 1_000_000)
            .unwrap_or(0)
    });
    let mut workload = WorkloadConfig::new(kind, seed, concurrency);
    if let Some(k) = args.keys.or(file.keys) {
        if k == 0 || k > 1_000_000 {
            return Err(format!("--keys: expected 1 to 1000000, got {k}"));
        }
        workload.keys = k;
    }
    if let Some(d) = args.key_dist.clone().or(file.key_dist) {
        workload.key_dist = d
            .parse::<KeyDist>()
            .map_err(|e| format!("--key-dist: {e}"))?;
    }
    if let Some(m) = args.mix.clone().or(file.mix) {
        workload.mix = OpMix::parse(&m).map_err(|e| format!("--mix: {e}"))?;
    }
    workload.cas = db.supports_cas();
    let op_timeout = args.op_timeout.or(file.op_timeout).unwrap_or(1000);
    if op_timeout == 0 {
        return Err("--op-timeout: must be at least 1 ms".into());
    }
    let quiet = args.quiet.or(file.quiet).unwrap_or(3.0);
    if !(0.0..=600.0).contains(&quiet) {
        return Err(format!("--quiet: expected 0 to 600 seconds, got {quiet}"));
    }
    let check_time_limit = match args.check_time_limit.or(file.check_time_limit) {
        Some(s) => seconds("check-time-limit", s)?,
        None => 300.0,
    };
    let name = args
        .name
        .clone()
        .or(file.name)
        .unwrap_or_else(|| format!("{}-{}", db.label(), kind.name()));
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        || name.starts_with('.')
    {
        return Err(format!(
            "--name {name:?}: use letters, digits, '-', '_' and '.' (not first)"
        ));
    }
    Ok(RunConfig {
        name,
        db,
        nodes,
        workload,
        faults,
        nemesis_interval: interval,
        fault_duration: duration,
        timeline,
        time_limit,
        concurrency,
        rate,
        seed,
        store: args
            .store
            .clone()
            .or_else(|| file.store.map(|p| relative_to_config(args, p)))
            .unwrap_or_else(|| "store".into()),
        op_timeout: Duration::from_millis(op_timeout),
        quiet: Duration::from_secs_f64(quiet),
        check_time_limit: Some(check_time_limit),
        progress: !args.no_progress && std::io::stderr().is_terminal(),
        remote,
    })
}

fn describe(cfg: &RunConfig) -> String {
    let db = cfg.db.describe();
    let faults = if let Some(t) = &cfg.timeline {
        format!("a timeline of {} faults", t.len())
    } else if cfg.faults.is_empty() {
        "no faults".to_string()
    } else {
        let names: Vec<String> = cfg
            .faults
            .iter()
            .map(|f| {
                serde_json::to_value(f)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            })
            .collect();
        format!(
            "{} every {} s for {} s",
            names.join("+"),
            cfg.nemesis_interval,
            cfg.fault_duration
        )
    };
    format!(
        "{db}, {} nodes, {} workload, {} clients, {} s, {faults}, seed {}",
        cfg.nodes, cfg.workload.kind, cfg.concurrency, cfg.time_limit, cfg.seed
    )
}

/// Runs `faultline run`.
pub fn run(args: RunArgs) -> Exit {
    // Signals are taken from here on: none can end the run half-way.
    runner::interrupt::Interrupt::install();
    let cfg = match build(&args) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    if let Some(p) = &args.summary_md {
        if let Err(e) = crate::report::check_output_path("summary-md", p) {
            return fail(e);
        }
    }
    // A missing binary is a one-line error before anything starts (on
    // remote hosts the binaries are the hosts' own).
    let programs = match &cfg.remote {
        Some(_) => Default::default(),
        None => match cfg.db.check_install() {
            Ok(p) => p,
            Err(e) => return fail(e),
        },
    };
    // So is a clock fault the store's servers would ignore.
    if let Err(e) = runner::check_clock(&cfg, &programs) {
        return fail(e);
    }
    eprintln!("faultline run: {}", describe(&cfg));
    let outcome = match runner::run(cfg, programs) {
        Ok(o) => o,
        Err(e) => return fail(e),
    };
    print_summary(&outcome.dir, &outcome.verdicts);
    crate::report::after_run(&outcome.dir, args.summary_md.as_deref());
    match outcome.verdicts.valid {
        Validity::Valid => Exit::Valid,
        Validity::Invalid => Exit::Invalid,
        Validity::Unknown => Exit::Unknown,
    }
}

fn print_summary(dir: &Path, v: &runner::checks::Verdicts) {
    let (mut ok, mut failed, mut info) = (0u64, 0u64, 0u64);
    for op in &v.history.ops {
        match op.outcome {
            faultline_checkers::Outcome::Ok => ok += 1,
            faultline_checkers::Outcome::Fail => failed += 1,
            _ => info += 1,
        }
    }
    let mut faults: BTreeMap<&str, u64> = BTreeMap::new();
    for f in &v.history.faults {
        if f.extra.get("phase").is_some_and(|p| p == "start") {
            *faults.entry(&*f.f).or_default() += 1;
        }
    }
    let faults: Vec<String> = faults.iter().map(|(k, n)| format!("{n} {k}")).collect();
    println!(
        "history: {} ({} ops: {ok} ok, {failed} fail, {info} info/pending; faults: {})",
        dir.join("history.jsonl").display(),
        v.ops,
        if faults.is_empty() {
            "none".to_string()
        } else {
            faults.join(", ")
        }
    );
    println!("checks:");
    for line in runner::checks::summary_lines(v) {
        println!("{line}");
    }
    let verdict = match v.valid {
        Validity::Valid => "VALID: every check passed (exit 0)",
        Validity::Invalid => "INVALID: a consistency violation was found (exit 1)",
        Validity::Unknown => "UNKNOWN: a check could not decide (exit 3)",
    };
    println!("verdict: {verdict}");
    println!("results: {}", dir.join("results.json").display());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let cfg = build(&RunArgs::default()).expect("defaults");
        assert_eq!(cfg.nodes, 3);
        assert_eq!(cfg.workload.kind, WorkloadKind::Kv);
        assert_eq!(cfg.faults, vec![FaultKind::Partition]);
        assert_eq!(cfg.time_limit, 30.0);
        assert_eq!(cfg.name, "builtin-primary-kv");

        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "nodes = 5\nworkload = \"set\"\nnemesis = [\"kill\", \"pause\"]\nseed = 7\n[db-opt]\nmode = \"async\"\n",
        )
        .expect("write");
        let args = RunArgs {
            config: Some(file.clone()),
            nodes: Some(3),
            ..RunArgs::default()
        };
        let cfg = build(&args).expect("file");
        assert_eq!(cfg.nodes, 3, "the flag wins");
        assert_eq!(cfg.workload.kind, WorkloadKind::Set);
        assert_eq!(cfg.faults, vec![FaultKind::Kill, FaultKind::Pause]);
        assert_eq!(cfg.seed, 7);
        assert_eq!(cfg.db.label(), "builtin-async");
    }

    #[test]
    fn example_configs_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).expect("configs/") {
            let p = e.expect("entry").path();
            if p.extension().is_some_and(|x| x == "toml") {
                let args = RunArgs {
                    config: Some(p.clone()),
                    ..RunArgs::default()
                };
                let cfg = build(&args).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                assert!(cfg.time_limit > 0.0);
                n += 1;
            }
        }
        assert!(n >= 5, "{n} example configs");
    }

    #[test]
    fn bad_settings_name_the_flag() {
        let cases: Vec<(RunArgs, &str)> = vec![
            (
                RunArgs {
                    nodes: Some(0),
                    ..RunArgs::default()
                },
                "--nodes",
            ),
            (
                RunArgs {
                    workload: Some("queue".into()),
                    ..RunArgs::default()
                },
                "--workload",
            ),
            (
                RunArgs {
                    nemesis: Some("flood".into()),
                    ..RunArgs::default()
                },
                "--nemesis",
            ),
            (
                RunArgs {
                    db: Some("mongo".into()),
                    ..RunArgs::default()
                },
                "--db mongo",
            ),
            (
                RunArgs {
                    db_opt: vec!["mode=paxos".into()],
                    ..RunArgs::default()
                },
                "--db-opt mode",
            ),
            (
                RunArgs {
                    db_opt: vec!["color=red".into()],
                    ..RunArgs::default()
                },
                "--db-opt color",
            ),
            (
                RunArgs {
                    time_limit: Some(-1.0),
                    ..RunArgs::default()
                },
                "--time-limit",
            ),
            (
                RunArgs {
                    fault_duration: Some(9.0),
                    ..RunArgs::default()
                },
                "--fault-duration",
            ),
            (
                RunArgs {
                    config: Some("/nonexistent.toml".into()),
                    ..RunArgs::default()
                },
                "--config",
            ),
        ];
        for (args, flag) in cases {
            let e = build(&args).expect_err(flag);
            assert!(e.starts_with(flag), "{e:?} should name {flag}");
        }
        // Transactions only where the store does them, with a typed level.
        for (db, w) in [
            ("builtin", "bank"),
            ("redis", "list-append"),
            ("etcd", "seats"),
            ("nats", "rw-register"),
        ] {
            let e = build(&RunArgs {
                db: Some(db.into()),
                workload: Some(w.into()),
                ..RunArgs::default()
            })
            .expect_err(db);
            assert!(e.starts_with(&format!("--workload {w}: --db {db}")), "{e}");
        }
        let txn = |opt: &str| {
            build(&RunArgs {
                db: Some("postgres".into()),
                db_opt: vec![opt.into()],
                workload: Some("list-append".into()),
                ..RunArgs::default()
            })
        };
        let cfg = txn("isolation=repeatable-read").expect("postgres does transactions");
        assert_eq!(cfg.db.options()["isolation"], "repeatable-read");
        assert_eq!(cfg.workload.keys, 3);
        assert!(
            txn("isolation=snapshot")
                .expect_err("typed")
                .starts_with("--db-opt isolation")
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("typo.toml");
        std::fs::write(&file, "nodez = 3\n").expect("write");
        let e = build(&RunArgs {
            config: Some(file),
            ..RunArgs::default()
        })
        .expect_err("typo");
        assert!(e.contains("nodez"), "{e}");
    }
}
