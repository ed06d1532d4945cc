//! `cargo bench --bench check`: the linearizability checker's hot paths.
//!
//! Medians of repeated runs, printed as a table (no timing assertions: this
//! machine is noisy). Reads the shared corpus in `../shared/corpus` when it
//! is there. Options (environment): `FAULTLINE_BENCH_RUNS` (default 21 for
//! the corpus, 5 for synthesized histories), `FAULTLINE_BENCH_SKIP_1M=1`,
//! `FAULTLINE_BENCH_ONLY=<group>` (runs only the groups whose name contains
//! it: `corpus`, `synth`, `kv`, `read`, `1m`, `causal`).
//!
//! What it measures:
//! 1. the 50 Porcupine etcd logs: check time per file (median), their sum,
//!    the largest; the Knossos and kv corpus likewise;
//! 2. reading faultline's JSON Lines: events per second;
//! 3. a synthesized 100k-operation, 10-key, 10-process history with 5% info:
//!    parse and check;
//! 4. a synthesized 1M-operation, 1000-key, 50-process history: the whole
//!    `faultline check` command, wall time and peak memory (RSS);
//! 5. a synthesized 1M-operation, 100-session, 10,000-key history of a
//!    causally consistent store with one injected read-your-writes
//!    violation: `faultline check --checks session,cc,ccv`, then
//!    `--checks cm`, wall time, peak memory and whether the injected read
//!    is found.
//! 6. Porcupine-style kv histories with 50 clients (`synth --model kv`,
//!    unique values): one 230-operation key, linearizable and with an
//!    injected stale get; 10 keys, 1,712 and 2,024 operations, linearizable
//!    and with a violation. Check time (median) decided from the unique
//!    values, and once with the search alone (`search_only`, 10 s limit)
//!    for comparison; likewise the 100k-operation cas-register history.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use faultline_checkers::format::{self, Format};
use faultline_checkers::history::CompletionsMode;
use faultline_checkers::linear::{self, LinearOptions};
use faultline_checkers::{ModelKind, Validity};
use faultline_workloads::synth::{SynthConfig, synthesize};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn runs(default: usize) -> usize {
    std::env::var("FAULTLINE_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The allocator of the `faultline` binary: what it measures is what the
/// command does.
#[global_allocator]
static ALLOCATOR: faultline::huge_pages::HugePages = faultline::huge_pages::HugePages;

/// True when the group `name` runs (see `FAULTLINE_BENCH_ONLY`).
fn wanted(name: &str) -> bool {
    std::env::var("FAULTLINE_BENCH_ONLY").map_or(true, |only| name.contains(only.as_str()))
}

fn corpus() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    p.is_dir().then_some(p)
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|e| e == ext));
    v.sort();
    v
}

/// Median check time (ms) of each file, and whether the verdicts were as
/// expected.
fn bench_files(
    label: &str,
    paths: &[PathBuf],
    model: ModelKind,
    initial: Option<serde_json::Value>,
    expect: impl Fn(&Path) -> bool,
) {
    if paths.is_empty() {
        println!("{label:<34} (no files)");
        return;
    }
    let n = runs(21);
    let mut per_file = Vec::new();
    let mut wrong = 0;
    for p in paths {
        let (h, _) = format::read_path(p, Format::Auto).expect("corpus file parses");
        let opts = LinearOptions {
            initial: initial.clone(),
            ..LinearOptions::new(model)
        };
        let mut times = Vec::with_capacity(n);
        let mut verdict = Validity::Unknown;
        for _ in 0..n {
            let t = Instant::now();
            let r = linear::check(&h, &opts).expect("corpus file fits the model");
            times.push(t.elapsed().as_secs_f64() * 1e3);
            verdict = r.valid;
        }
        if (verdict == Validity::Valid) != expect(p) {
            wrong += 1;
        }
        per_file.push((
            median(times),
            p.file_name().map(|f| f.to_string_lossy().to_string()),
        ));
    }
    let sum: f64 = per_file.iter().map(|x| x.0).sum();
    let max = per_file
        .iter()
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .cloned()
        .unwrap_or_default();
    println!(
        "{label:<34} {:>3} files  sum of medians {sum:>8.3} ms  max {:>7.3} ms ({})  wrong verdicts {wrong}",
        paths.len(),
        max.0,
        max.1.unwrap_or_default()
    );
}

fn synth_bytes(cfg: &SynthConfig) -> Vec<u8> {
    let mut out = Vec::new();
    synthesize(cfg, &mut out).expect("synthesizes");
    out
}

fn bench_synth(label: &str, cfg: &SynthConfig) {
    let data = synth_bytes(cfg);
    let n = runs(5);
    let mut parse = Vec::new();
    let mut check = Vec::new();
    let mut events = 0;
    let mut verdict = Validity::Unknown;
    for _ in 0..n {
        let t = Instant::now();
        let (h, _) = format::read_from("synth", &data[..], Format::Json).expect("parses");
        parse.push(t.elapsed().as_secs_f64());
        events = h.events;
        let t = Instant::now();
        let r = linear::check(&h, &LinearOptions::new(ModelKind::CasRegister)).expect("fits");
        check.push(t.elapsed().as_secs_f64());
        verdict = r.valid;
    }
    let p = median(parse);
    println!(
        "{label:<34} {events} events  parse {:>7.1} ms ({:.2} M events/s, {:.0} MB/s)  check {:>7.1} ms  valid {}",
        p * 1e3,
        events as f64 / p / 1e6,
        data.len() as f64 / p / 1e6,
        median(check) * 1e3,
        verdict.as_str()
    );
}

/// CPU time of this process (all threads), in seconds.
fn process_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Reading faultline's JSON formats in process: the 1M-operation, 1000-key,
/// 50-process, 5% info history (215 MB) as JSON Lines and as one JSON array,
/// from memory. Median MB/s of wall time (all cores), and MB per CPU-second
/// (what one core does, whatever else the machine is running).
fn bench_json_read() {
    let cfg = SynthConfig {
        ops: 1_000_000,
        keys: 1000,
        processes: 50,
        info: 0.05,
        seed: 1,
        ..SynthConfig::default()
    };
    let jsonl = synth_bytes(&cfg);
    let mut array = Vec::with_capacity(jsonl.len() + jsonl.len() / 50);
    array.push(b'[');
    for (i, line) in jsonl
        .split(|&c| c == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        if i > 0 {
            array.extend_from_slice(b",\n");
        }
        array.extend_from_slice(line);
    }
    array.extend_from_slice(b"]\n");
    let n = runs(5);
    for (label, data) in [
        ("read JSON Lines, 1M ops (215 MB)", &jsonl),
        ("read one JSON array, 1M ops", &array),
    ] {
        let mut wall = Vec::new();
        let mut cpu = Vec::new();
        let mut events = 0;
        for _ in 0..n {
            let (t, c) = (Instant::now(), process_cpu_seconds());
            // Sized, as `faultline check` reads a file.
            let size = Some(data.len() as u64);
            let (h, _) = format::read_from_sized(
                "synth",
                &data[..],
                Format::Json,
                CompletionsMode::Require,
                size,
            )
            .expect("parses");
            wall.push(t.elapsed().as_secs_f64());
            cpu.push(process_cpu_seconds() - c);
            events = h.events;
        }
        let mb = data.len() as f64 / 1e6;
        let (w, c) = (median(wall), median(cpu));
        println!(
            "{label:<34} {events} events  {:>7.1} ms  {:>5.0} MB/s  ({:.0} MB per CPU-second)",
            w * 1e3,
            mb / w,
            mb / c
        );
    }
}

fn bench_1m() {
    let dir = std::env::temp_dir().join(format!("faultline-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("synth-1m.jsonl");
    let cfg = SynthConfig {
        ops: 1_000_000,
        keys: 1000,
        processes: 50,
        info: 0.05,
        seed: 1,
        ..SynthConfig::default()
    };
    let file = std::fs::File::create(&path).expect("temp file");
    synthesize(&cfg, std::io::BufWriter::new(file)).expect("synthesizes");
    let bin = env!("CARGO_BIN_EXE_faultline");
    let n = runs(5);
    let mut walls = Vec::new();
    let mut rss = Vec::new();
    let mut last = String::new();
    for _ in 0..n {
        let t = Instant::now();
        let out = Command::new("/usr/bin/time")
            .args(["-f", "%M"])
            .arg(bin)
            .args(["check", "--json", "--model", "cas-register"])
            .arg(&path)
            .output();
        let wall = t.elapsed().as_secs_f64();
        match out {
            Ok(o) => {
                walls.push(wall);
                let err = String::from_utf8_lossy(&o.stderr);
                if let Some(kb) = err
                    .lines()
                    .last()
                    .and_then(|l| l.trim().parse::<f64>().ok())
                {
                    rss.push(kb / 1024.0);
                }
                last = String::from_utf8_lossy(&o.stdout).to_string();
            }
            Err(e) => {
                println!(
                    "1M-op history: cannot run /usr/bin/time ({e}); install the `time` package"
                );
                return;
            }
        }
    }
    let v: serde_json::Value = serde_json::from_str(last.trim()).unwrap_or_default();
    println!(
        "{:<34} wall {:>6.2} s  peak RSS {:>6.0} MiB  (parse {} ms, check {} ms, valid {})",
        "1M ops, 1000 keys, 50 procs (CLI)",
        median(walls),
        if rss.is_empty() {
            f64::NAN
        } else {
            median(rss)
        },
        v["parse_ms"],
        v["check_ms"],
        v["valid"]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `faultline check --json ARGS FILE` under `/usr/bin/time`: the median
/// wall time and peak RSS (MiB) over `n` runs, and the last JSON line.
fn cli_runs(file: &Path, args: &[&str], n: usize) -> Option<(f64, f64, serde_json::Value)> {
    let bin = env!("CARGO_BIN_EXE_faultline");
    let mut walls = Vec::new();
    let mut rss = Vec::new();
    let mut last = String::new();
    for _ in 0..n {
        let t = Instant::now();
        let o = Command::new("/usr/bin/time")
            .args(["-f", "%M"])
            .arg(bin)
            .args(["check", "--json"])
            .args(args)
            .arg(file)
            .output();
        let wall = t.elapsed().as_secs_f64();
        let o = match o {
            Ok(o) => o,
            Err(e) => {
                println!("cannot run /usr/bin/time ({e}); install the `time` package");
                return None;
            }
        };
        walls.push(wall);
        let err = String::from_utf8_lossy(&o.stderr);
        if let Some(kb) = err
            .lines()
            .last()
            .and_then(|l| l.trim().parse::<f64>().ok())
        {
            rss.push(kb / 1024.0);
        }
        last = String::from_utf8_lossy(&o.stdout).to_string();
    }
    let v: serde_json::Value = serde_json::from_str(last.trim()).unwrap_or_default();
    let rss = if rss.is_empty() {
        f64::NAN
    } else {
        median(rss)
    };
    Some((median(walls), rss, v))
}

/// The session and causal checks on a synthesized 1M-operation history of a
/// causally consistent store (100 sessions, 10,000 keys) with one injected
/// read-your-writes violation: the whole `faultline check` command, all
/// session checks with CC and CCv, then CM on its own.
fn bench_causal_1m() {
    use faultline_workloads::causal_synth::{CausalSynthConfig, synthesize_causal};
    let dir = std::env::temp_dir().join(format!("faultline-bench-causal-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("causal-1m.jsonl");
    let cfg = CausalSynthConfig {
        ops: 1_000_000,
        sessions: 100,
        keys: 10_000,
        replicas: 5,
        max_lag: 2000,
        seed: 1,
        inject: true,
        ..CausalSynthConfig::default()
    };
    let file = std::fs::File::create(&path).expect("temp file");
    let injected = synthesize_causal(&cfg, file).expect("synthesizes");
    let n = runs(3);
    let found = |v: &serde_json::Value, check: &str| -> String {
        let c = &v["checks"][check];
        let hit = injected.as_ref().is_some_and(|inj| {
            c["anomalies"].as_array().is_some_and(|a| {
                a.iter().any(|a| {
                    a["ops"]
                        .as_array()
                        .is_some_and(|ops| ops.iter().any(|o| o["complete_index"] == inj.index))
                })
            })
        });
        format!(
            "{check} {} ({} ms{})",
            c["valid"],
            c["check_ms"],
            if hit { ", finds the injected read" } else { "" }
        )
    };
    for (label, args) in [
        ("1M ops, session + cc + ccv (CLI)", "session,cc,ccv"),
        ("1M ops, cm (CLI)", "cm"),
    ] {
        let Some((wall, rss, v)) = cli_runs(&path, &["--checks", args], n) else {
            break;
        };
        let checks: Vec<String> = v["checks"]
            .as_object()
            .map(|m| m.keys().map(|k| found(&v, k)).collect())
            .unwrap_or_default();
        println!(
            "{label:<34} wall {wall:>6.2} s  peak RSS {rss:>6.0} MiB  (parse {} ms; {})",
            v["parse_ms"],
            checks.join(", ")
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Kv histories of 50 clients, as in Porcupine's kv tests (see the module
/// documentation, item 6).
fn bench_kv_50_clients() {
    use faultline_workloads::synth::{Anomaly, Mix, Model};
    let kv = |ops: u64, keys: u32, inject: Option<Anomaly>| SynthConfig {
        ops,
        keys,
        processes: 50,
        model: Model::Kv,
        mix: Mix::default_for(Model::Kv),
        inject,
        seed: 1,
        ..SynthConfig::default()
    };
    let cases = [
        ("kv 50 clients, 1 key, 230 ops", kv(230, 1, None)),
        (
            "kv 50 clients, 1 key, 230 ops, bad",
            kv(230, 1, Some(Anomaly::StaleRead)),
        ),
        ("kv 50 clients, 10 keys, 1712 ops", kv(1712, 10, None)),
        (
            "kv 50 clients, 10 keys, 2024 ops, bad",
            kv(2024, 10, Some(Anomaly::StaleRead)),
        ),
        (
            "cas-register 100k ops, 10 keys",
            SynthConfig {
                ops: 100_000,
                keys: 10,
                processes: 10,
                info: 0.05,
                seed: 1,
                ..SynthConfig::default()
            },
        ),
    ];
    for (label, cfg) in cases {
        let data = synth_bytes(&cfg);
        let (h, _) = format::read_from("synth", &data[..], Format::Json).expect("parses");
        let opts = LinearOptions::new(ModelKind::Kv);
        let mut times = Vec::new();
        let mut verdict = Validity::Unknown;
        for _ in 0..runs(21) {
            let t = Instant::now();
            let r = linear::check(&h, &opts).expect("fits kv");
            times.push(t.elapsed().as_secs_f64() * 1e3);
            verdict = r.valid;
        }
        let search = LinearOptions {
            search_only: true,
            time_limit: Some(10.0),
            ..LinearOptions::new(ModelKind::Kv)
        };
        let t = Instant::now();
        let r = linear::check(&h, &search).expect("fits kv");
        println!(
            "{label:<38} {:>5} ops  check {:>8.3} ms  valid {}  | search alone {:>8.1} ms  valid {}",
            h.ops.len(),
            median(times),
            verdict.as_str(),
            t.elapsed().as_secs_f64() * 1e3,
            r.valid.as_str()
        );
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not: run
    // nothing then, so that the test suite stays fast.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    println!("faultline check benchmarks (medians)");
    let corpus = corpus().filter(|_| wanted("corpus"));
    if let Some(c) = corpus {
        let good = [2, 5, 7, 18, 25, 31, 38, 45, 48, 49];
        bench_files(
            "porcupine etcd (cas-register)",
            &files(&c.join("porcupine/etcd"), "log"),
            ModelKind::CasRegister,
            None,
            |p| {
                let n: usize = p.to_string_lossy()[p.to_string_lossy().len() - 7..]
                    .trim_end_matches(".log")
                    .parse()
                    .unwrap_or(999);
                good.contains(&n)
            },
        );
        let mut knossos = files(&c.join("knossos/cas-register/good"), "edn");
        knossos.extend(files(&c.join("knossos/cas-register/bad"), "edn"));
        bench_files(
            "knossos cas-register (init 0)",
            &knossos,
            ModelKind::CasRegister,
            Some(serde_json::json!(0)),
            |p| p.to_string_lossy().contains("/good/"),
        );
        bench_files(
            "porcupine kv (split by key)",
            &files(&c.join("porcupine/kv"), "txt"),
            ModelKind::Kv,
            None,
            |p| p.to_string_lossy().ends_with("-ok.txt"),
        );
    } else {
        println!("(no ../shared/corpus, or not wanted: corpus benchmarks skipped)");
    }
    if wanted("synth") {
        bench_synth(
            "synth 100k ops, 10 keys, 10 procs",
            &SynthConfig {
                ops: 100_000,
                keys: 10,
                processes: 10,
                info: 0.05,
                seed: 1,
                ..SynthConfig::default()
            },
        );
        bench_synth(
            "synth 1M ops, 1000 keys (in process)",
            &SynthConfig {
                ops: 1_000_000,
                keys: 1000,
                processes: 50,
                info: 0.05,
                seed: 1,
                ..SynthConfig::default()
            },
        );
    }
    if wanted("kv") {
        bench_kv_50_clients();
    }
    if wanted("read") {
        bench_json_read();
    }
    if std::env::var("FAULTLINE_BENCH_SKIP_1M").is_err() {
        if wanted("1m") {
            bench_1m();
        }
        if wanted("causal") {
            bench_causal_1m();
        }
    }
}
