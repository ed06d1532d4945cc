//! Property-based fuzzing of every history reader (issue 10), in stable
//! Rust with proptest.
//!
//! - `mutated_inputs_keep_the_contract`: structure-aware mutations of the
//!   shared corpus files (and of generated histories): numbers replaced by
//!   big ones, deep nesting, odd bytes, keywords swapped, keys duplicated,
//!   lines duplicated, swapped, cut. Each input is read in every format
//!   (auto-detected and named); the contract: a history (then checked for
//!   linearizability, which gives a verdict or a model error) or an error
//!   that is one line, without control characters, naming the file and the
//!   line, and bounded; never a panic.
//! - `same_history_same_verdict_in_every_format`: random register
//!   histories written as JSON Lines, a JSON array, EDN and a Porcupine etcd
//!   log give the same verdict, or the same error on the same event.
//!
//! The number of cases comes from `FAULTLINE_FUZZ_CASES` (default: a
//! bounded run for CI); `docs/fuzzing.md` gives the command for a long run.
//! Each property prints how many cases ran.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use faultline_checkers::format::{Format, read_from};
use faultline_checkers::linear::{self, LinearOptions};
use faultline_checkers::{History, HistoryError, ModelKind, Validity};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestRunner};

/// Cases per property: `FAULTLINE_FUZZ_CASES`, else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("FAULTLINE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

/// The shared corpus (missing: an error, unless FAULTLINE_SKIP_CORPUS=1).
fn corpus() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus");
    if p.is_dir() {
        return Some(p);
    }
    if std::env::var("FAULTLINE_SKIP_CORPUS").as_deref() == Ok("1") {
        return None;
    }
    panic!("the shared corpus is missing at {}", p.display());
}

/// Seed inputs: the first lines of corpus files of every format, and
/// generated JSON histories.
fn seeds() -> &'static Vec<(String, Vec<u8>)> {
    static SEEDS: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let mut out = Vec::new();
        if let Some(c) = corpus() {
            for (dir, take) in [
                ("knossos/cas-register/good", 3),
                ("knossos/cas-register/bad", 4),
                ("knossos/multi-register/good", 1),
                ("knossos/mutex/bad", 1),
                ("porcupine/etcd", 3),
                ("porcupine/kv", 4),
                ("causal", 12),
                ("txn", 3),
            ] {
                let mut files: Vec<PathBuf> = std::fs::read_dir(c.join(dir))
                    .unwrap_or_else(|e| panic!("{dir}: {e}"))
                    .map(|e| e.expect("entry").path())
                    .filter(|p| p.extension().is_some_and(|x| x != "md"))
                    .collect();
                files.sort();
                for f in files.into_iter().take(take) {
                    let text = std::fs::read(&f).expect("corpus file");
                    // The first 40 lines: small enough to check quickly.
                    let cut: Vec<u8> = text
                        .split_inclusive(|&b| b == b'\n')
                        .take(40)
                        .flatten()
                        .copied()
                        .collect();
                    out.push((f.display().to_string(), cut));
                }
            }
        }
        let quick = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/quickstart.jsonl");
        if let Ok(t) = std::fs::read(&quick) {
            out.push((quick.display().to_string(), t));
        }
        let h = sample_history();
        out.push((
            "gen.jsonl".into(),
            render(Layout::JsonLines, &h).into_bytes(),
        ));
        out.push((
            "gen.json".into(),
            render(Layout::JsonArray, &h).into_bytes(),
        ));
        out
    })
}

/// Big and odd numbers.
const NUMBERS: &[&str] = &[
    "18446744073709551616",
    "18446744073709551615",
    "9223372036854775808",
    "-9223372036854775809",
    "-9223372036854775808",
    "-0",
    "1e400",
    "-0.0",
    "0x1F",
    "1180591620717411303424N",
    "99999999999999999999999999999999999999999999999999999999999999999999999999999999999999",
    "1/0",
    "1.5M",
];

/// Odd bytes to insert.
const ODD: &[&[u8]] = &[
    b"\0",
    b"\xff",
    b"\xef\xbb\xbf",
    b"\r",
    b"\n",
    b"\xc3",
    b"\\ud800",
    "\u{2028}".as_bytes(),
    b"\"",
    b"#_",
    b"\\",
    b"}",
    b"]",
    b"#{",
    b";",
    b"\t",
];

/// Words to put in place of another.
const WORDS: &[&str] = &[
    ":ok",
    ":info",
    ":fail",
    ":invoke",
    ":read",
    ":write",
    ":cas",
    ":value",
    ":valu",
    "nil",
    "null",
    ":nemesis",
    "\"nemesis\"",
    "\"ok\"",
    "\"value\"",
    "jepsen.utll",
    ":process",
    "[1 2]",
    "{}",
];

#[derive(Clone, Debug)]
enum Mutation {
    Number(Index, usize),
    Odd(Index, usize),
    Nest(Index, usize, usize),
    Delete(Index, usize),
    DuplicateLine(Index),
    SwapLines(Index, Index),
    Truncate(Index),
    Word(Index, usize),
    DuplicateKey(Index, bool),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 0..NUMBERS.len()).prop_map(|(i, n)| Mutation::Number(i, n)),
        (any::<Index>(), 0..ODD.len()).prop_map(|(i, n)| Mutation::Odd(i, n)),
        (
            any::<Index>(),
            0..4usize,
            prop_oneof![1..20usize, 200..400usize, 5000..20000usize]
        )
            .prop_map(|(i, k, d)| Mutation::Nest(i, k, d)),
        (any::<Index>(), 1..60usize).prop_map(|(i, n)| Mutation::Delete(i, n)),
        any::<Index>().prop_map(Mutation::DuplicateLine),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), 0..WORDS.len()).prop_map(|(i, n)| Mutation::Word(i, n)),
        (any::<Index>(), any::<bool>()).prop_map(|(i, j)| Mutation::DuplicateKey(i, j)),
    ]
}

/// Spans of `b` where `pred` holds on every byte.
fn spans(b: &[u8], pred: impl Fn(u8) -> bool) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if pred(b[i]) {
            let s = i;
            while i < b.len() && pred(b[i]) {
                i += 1;
            }
            out.push((s, i));
        } else {
            i += 1;
        }
    }
    out
}

fn line_starts(b: &[u8]) -> Vec<usize> {
    std::iter::once(0)
        .chain(
            b.iter()
                .enumerate()
                .filter(|(_, c)| **c == b'\n')
                .map(|(i, _)| i + 1),
        )
        .filter(|&i| i <= b.len())
        .collect()
}

fn line_range(b: &[u8], starts: &[usize], i: usize) -> (usize, usize) {
    let s = starts[i];
    let e = starts.get(i + 1).copied().unwrap_or(b.len());
    (s, e)
}

fn apply(b: &mut Vec<u8>, m: &Mutation) {
    let at = |i: &Index, len: usize| if len == 0 { 0 } else { i.index(len) };
    match m {
        Mutation::Number(i, n) => {
            let nums = spans(b, |c| c.is_ascii_digit());
            if nums.is_empty() {
                return;
            }
            let (s, e) = nums[at(i, nums.len())];
            b.splice(s..e, NUMBERS[*n].bytes());
        }
        Mutation::Odd(i, n) => {
            let p = at(i, b.len() + 1);
            b.splice(p..p, ODD[*n].iter().copied());
        }
        Mutation::Nest(i, kind, depth) => {
            let p = at(i, b.len() + 1);
            let unit: &[u8] = [b"[".as_slice(), b"{:a ", b"#_", b"(#{"][*kind];
            let ins: Vec<u8> = unit.repeat(*depth);
            b.splice(p..p, ins);
        }
        Mutation::Delete(i, n) => {
            let p = at(i, b.len());
            let e = (p + n).min(b.len());
            b.drain(p..e);
        }
        Mutation::DuplicateLine(i) => {
            let starts = line_starts(b);
            let (s, e) = line_range(b, &starts, at(i, starts.len()));
            let line = b[s..e].to_vec();
            b.splice(s..s, line);
        }
        Mutation::SwapLines(x, y) => {
            let starts = line_starts(b);
            let (mut l1, mut l2) = (at(x, starts.len()), at(y, starts.len()));
            if l1 == l2 {
                return;
            }
            if l1 > l2 {
                std::mem::swap(&mut l1, &mut l2);
            }
            let (s1, e1) = line_range(b, &starts, l1);
            let (s2, e2) = line_range(b, &starts, l2);
            let mut out = b[..s1].to_vec();
            out.extend_from_slice(&b[s2..e2]);
            out.extend_from_slice(&b[e1..s2]);
            out.extend_from_slice(&b[s1..e1]);
            out.extend_from_slice(&b[e2..]);
            *b = out;
        }
        Mutation::Truncate(i) => {
            let p = at(i, b.len() + 1);
            b.truncate(p);
        }
        Mutation::Word(i, n) => {
            let words = spans(b, |c| c == b':' || c == b'.' || c.is_ascii_alphabetic());
            if words.is_empty() {
                return;
            }
            let (s, e) = words[at(i, words.len())];
            b.splice(s..e, WORDS[*n].bytes());
        }
        Mutation::DuplicateKey(i, json) => {
            let opens: Vec<usize> = b
                .iter()
                .enumerate()
                .filter(|(_, c)| **c == b'{')
                .map(|(i, _)| i + 1)
                .collect();
            if opens.is_empty() {
                return;
            }
            let p = opens[at(i, opens.len())];
            let ins: &[u8] = if *json {
                b"\"value\":1,\"value\":1,"
            } else {
                b":value 1 :value 1 "
            };
            b.splice(p..p, ins.iter().copied());
        }
    }
}

/// The error contract: one line naming the file (and the line), no control
/// characters, bounded.
fn error_contract(name: &str, bytes: &[u8], e: &HistoryError) -> Result<(), TestCaseError> {
    let msg = e.to_string();
    prop_assert!(
        !msg.chars().any(char::is_control),
        "control character in {msg:?}"
    );
    prop_assert!(msg.len() < 1200, "{} bytes: {}", msg.len(), &msg[..200]);
    let prefix = if e.line == 0 {
        format!("{name}: ")
    } else {
        format!("{name}:{}: ", e.line)
    };
    prop_assert!(msg.starts_with(&prefix), "{msg}");
    let lines = bytes.iter().filter(|&&c| c == b'\n').count() + 1;
    prop_assert!(e.line <= lines, "line {} of {lines}: {msg}", e.line);
    Ok(())
}

/// Reads `bytes` in every format and checks the contract.
fn contract(name: &str, bytes: &[u8]) -> Result<(), TestCaseError> {
    for format in [
        Format::Auto,
        Format::Json,
        Format::Edn,
        Format::PorcupineEtcd,
        Format::PorcupineKv,
    ] {
        match read_from(name, bytes, format) {
            Ok((h, _)) => {
                let mut opts = LinearOptions::new(ModelKind::infer(&h));
                opts.time_limit = Some(0.05);
                opts.memory_limit = 64 << 20;
                if let Err(e) = linear::check(&h, &opts) {
                    let msg = e.to_string();
                    prop_assert!(!msg.contains('\n'), "{msg:?}");
                }
            }
            Err(e) => error_contract(name, bytes, &e)?,
        }
    }
    Ok(())
}

#[test]
fn mutated_inputs_keep_the_contract() {
    let seeds = seeds();
    assert!(seeds.len() > 20, "only {} seeds", seeds.len());
    // The unmutated seeds first.
    for (name, bytes) in seeds {
        contract(name, bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let ran = AtomicUsize::new(0);
    let n = cases(2000);
    let strategy = (0..seeds.len(), prop::collection::vec(mutation(), 1..5));
    runner(n)
        .run(&strategy, |(seed, muts)| {
            ran.fetch_add(1, Ordering::Relaxed);
            let (name, bytes) = &seeds[seed];
            let mut b = bytes.clone();
            for m in &muts {
                apply(&mut b, m);
            }
            contract(name, &b)
        })
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "mutated_inputs_keep_the_contract: {} cases ({} seeds)",
        ran.load(Ordering::Relaxed),
        seeds.len()
    );
}

// ---- the same history in every format ----

/// The formats a plain register history can be written in.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Layout {
    JsonLines,
    JsonArray,
    Edn,
    Etcd,
}

const LAYOUTS: [Layout; 4] = [
    Layout::JsonLines,
    Layout::JsonArray,
    Layout::Edn,
    Layout::Etcd,
];

/// One event: process (as text), type, f, value text (`None`: no value).
type Ev = (String, &'static str, &'static str, Option<String>);

fn render(layout: Layout, evs: &[Ev]) -> String {
    let edn = |v: &str| v.replace(',', " ");
    match layout {
        Layout::JsonLines | Layout::JsonArray => {
            let lines: Vec<String> = evs
                .iter()
                .map(|(p, t, f, v)| match v {
                    Some(v) => format!(r#"{{"process":{p},"type":"{t}","f":"{f}","value":{v}}}"#),
                    None => format!(r#"{{"process":{p},"type":"{t}","f":"{f}"}}"#),
                })
                .collect();
            if layout == Layout::JsonLines {
                lines.iter().map(|l| format!("{l}\n")).collect()
            } else {
                format!("[\n{}\n]\n", lines.join(",\n"))
            }
        }
        Layout::Edn => evs
            .iter()
            .map(|(p, t, f, v)| match v {
                Some(v) => format!("{{:process {p}, :type :{t}, :f :{f}, :value {}}}\n", edn(v)),
                None => format!("{{:process {p}, :type :{t}, :f :{f}}}\n"),
            })
            .collect(),
        Layout::Etcd => evs
            .iter()
            .map(|(p, t, f, v)| match v {
                Some(v) => format!("INFO  jepsen.util - {p}\t:{t}\t:{f}\t{}\n", edn(v)),
                None => format!("INFO  jepsen.util - {p}\t:{t}\t:{f}\n"),
            })
            .collect(),
    }
}

/// Values within 64 bits, small ones often (so that reads hit writes).
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (0..4i64).prop_map(|v| v.to_string()),
        1 => prop::sample::select(vec![
            "9223372036854775807",
            "9223372036854775808",
            "18446744073709551615",
            "-9223372036854775808",
        ])
        .prop_map(str::to_string),
    ]
}

/// What a client does: f, invocation value, and how it ends.
#[derive(Clone, Debug)]
struct Op {
    f: &'static str,
    arg: String,
    cas_to: String,
    read: String,
    /// 0 ok, 1 info, 2 fail (writes only), 3 pending.
    end: u8,
    /// A malformation: 0 none, 1 ok read without value, 2 write completed
    /// with another value, 3 process out of range.
    bad: u8,
}

fn op() -> impl Strategy<Value = Op> {
    (
        prop::sample::select(vec!["read", "write", "cas"]),
        value(),
        value(),
        value(),
        prop_oneof![8 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8), 1 => Just(3u8)],
        prop_oneof![30 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8), 1 => Just(3u8)],
    )
        .prop_map(|(f, arg, cas_to, read, end, bad)| Op {
            f,
            arg,
            cas_to,
            read,
            end,
            bad,
        })
}

/// Events of `ops` run by `procs` processes: each process invokes its next
/// op, and completions come in a random interleaving.
fn events(ops: &[Op], order: &[Index]) -> Vec<Ev> {
    let procs = 3;
    let mut evs: Vec<Ev> = Vec::new();
    let mut open: Vec<Option<(usize, &Op)>> = vec![None; procs];
    let mut next = 0;
    let mut k = 0;
    let mut proc_id: Vec<u64> = (0..procs as u64).collect();
    loop {
        let choice = order.get(k).map_or(0, |i| i.index(procs * 2));
        k += 1;
        if k > order.len() + ops.len() * 4 + 8 {
            break;
        }
        let p = choice % procs;
        let pid = |p: usize, o: &Op| {
            if o.bad == 3 {
                "9223372036854775808".to_string()
            } else {
                proc_id[p].to_string()
            }
        };
        match open[p] {
            None if next < ops.len() => {
                let o = &ops[next];
                next += 1;
                let v = match o.f {
                    "read" => "null".to_string(),
                    "cas" => format!("[{},{}]", o.arg, o.cas_to),
                    _ => o.arg.clone(),
                };
                evs.push((pid(p, o), "invoke", o.f, Some(v)));
                open[p] = Some((evs.len() - 1, o));
            }
            None => {
                if open.iter().all(Option::is_none) {
                    break;
                }
            }
            Some((_, o)) => {
                if o.end == 3 && choice >= procs {
                    // Left pending: this process is done.
                    proc_id[p] += 100;
                    open[p] = None;
                    continue;
                }
                let kind = match (o.end, o.f) {
                    (1, _) => "info",
                    (2, "write") => "fail",
                    _ => "ok",
                };
                let v = match (o.f, kind) {
                    ("read", "ok") if o.bad == 1 => None,
                    ("read", "ok") => Some(o.read.clone()),
                    ("read", _) => Some("null".to_string()),
                    ("write", "ok") if o.bad == 2 => {
                        Some(format!("{}1", o.arg.trim_start_matches('-')))
                    }
                    ("cas", _) => Some(format!("[{},{}]", o.arg, o.cas_to)),
                    _ => Some(o.arg.clone()),
                };
                evs.push((pid(p, o), kind, o.f, v));
                open[p] = None;
                if kind == "info" {
                    // Jepsen retires a process whose outcome is unknown.
                    proc_id[p] += 100;
                }
            }
        }
    }
    evs
}

fn sample_history() -> Vec<Ev> {
    let w = |p: &str, t: &'static str, f: &'static str, v: &str| {
        (p.to_string(), t, f, Some(v.to_string()))
    };
    vec![
        w("0", "invoke", "write", "1"),
        w("1", "invoke", "read", "null"),
        w("0", "ok", "write", "1"),
        w("1", "ok", "read", "1"),
        w("2", "invoke", "cas", "[1,2]"),
        w("2", "ok", "cas", "[1,2]"),
    ]
}

/// The outcome of one layout: a verdict, or the line of an error (as the
/// index of the event).
#[derive(Debug, PartialEq)]
enum Seen {
    Verdict(Validity),
    Error(usize),
}

fn outcome(layout: Layout, evs: &[Ev]) -> Seen {
    let text = render(layout, evs);
    let read: Result<History, HistoryError> =
        read_from("h", text.as_bytes(), Format::Auto).map(|(h, _)| h);
    match read {
        Ok(h) => {
            let mut opts = LinearOptions::new(ModelKind::CasRegister);
            opts.time_limit = Some(5.0);
            match linear::check(&h, &opts) {
                Ok(r) => Seen::Verdict(r.valid),
                Err(e) => Seen::Error(e.line),
            }
        }
        Err(e) if layout == Layout::JsonArray && e.line >= 2 => Seen::Error(e.line - 1),
        Err(e) => Seen::Error(e.line),
    }
}

#[test]
fn same_history_same_verdict_in_every_format() {
    let ran = AtomicUsize::new(0);
    let verdicts = [
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    ];
    let n = cases(1000);
    let strategy = (
        prop::collection::vec(op(), 1..9),
        prop::collection::vec(any::<Index>(), 0..40),
    );
    runner(n)
        .run(&strategy, |(ops, order)| {
            let evs = events(&ops, &order);
            if evs.is_empty() {
                return Ok(());
            }
            ran.fetch_add(1, Ordering::Relaxed);
            let first = outcome(LAYOUTS[0], &evs);
            for l in &LAYOUTS[1..] {
                let other = outcome(*l, &evs);
                prop_assert_eq!(
                    &first,
                    &other,
                    "{:?} vs {:?}:\n{}",
                    LAYOUTS[0],
                    l,
                    render(*l, &evs)
                );
            }
            let slot = match first {
                Seen::Verdict(Validity::Valid) => 0,
                Seen::Verdict(_) => 1,
                Seen::Error(_) => 2,
            };
            verdicts[slot].fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let [v, i, e] = verdicts.map(|a| a.load(Ordering::Relaxed));
    eprintln!(
        "same_history_same_verdict_in_every_format: {} cases x 4 formats: {v} valid, {i} not valid, {e} errors",
        ran.load(Ordering::Relaxed)
    );
    assert!(
        v > 0 && i > 0 && e > 0,
        "{v} valid, {i} invalid, {e} errors"
    );
}
