//! The history synthesizer behind `faultline synth`.
//!
//! [`synthesize`] simulates a linearizable key-value store of registers
//! (`register`: read/write, or `cas-register`: read/write/compare-and-set)
//! driven by a fixed number of client processes, and writes the history in
//! faultline's JSON Lines format (see `DESIGN.md`, "The history"):
//!
//! ```text
//! {"index":0,"time":1043000,"process":3,"type":"invoke","f":"write","key":"k1","value":4}
//! {"index":1,"time":1990000,"process":3,"type":"ok","f":"write","key":"k1","value":4}
//! ```
//!
//! # Simulation
//!
//! Each of the `processes` workers has at most one operation in flight. The
//! event loop repeatedly picks a worker uniformly at random: an idle worker
//! invokes a new operation (while invocations remain); a busy worker whose
//! operation has not yet taken effect reaches its *linearization point*; a
//! busy worker whose operation has taken effect completes it. Effects are
//! applied atomically at the linearization point against the per-key state,
//! strictly between the invocation and the completion, so the history is
//! linearizable by construction. Every event advances the simulated clock by
//! 1 µs to 1 ms, so `index` and `time` are strictly increasing.
//!
//! Outcomes are decided at the linearization point: with probability
//! [`SynthConfig::info`] the completion is `info` (with `"error":"timeout"`)
//! and the operation takes effect with probability 1/2, or never; otherwise,
//! with probability [`SynthConfig::fail`] a write or cas completes `fail`
//! without effect; otherwise the operation takes effect and completes `ok`,
//! except a cas whose expected value does not match, which completes `fail`
//! (Jepsen semantics: a `fail` did not take effect). After an `info`, the
//! worker's process id is retired and the worker continues as
//! `id + processes`, as in Jepsen.
//!
//! Written values (of writes and of the new value of a cas) come from one
//! counter starting at 1, so each value is written by exactly one operation
//! of the whole history; 0 is never written. A cas expects the key's current
//! value 70% of the time (when the key has one) and otherwise a uniformly
//! chosen value in `0..new` (usually a mismatch).
//!
//! # Anomaly injection
//!
//! With [`SynthConfig::inject`], one `ok` read is corrupted after the
//! simulation so that the history is certainly not linearizable, and nothing
//! else changes (the injection uses its own random stream). See [`Anomaly`]
//! for the exact rules.

use std::fmt;
use std::io::{BufWriter, Write};
use std::str::FromStr;

use faultline_checkers::format::writer::{EventLine, push_u64};
use faultline_checkers::{EventType, Outcome};

use crate::rng::{Rng, splitmix64};

/// Largest accepted `--ops` (operations are numbered with 32-bit ids).
pub const MAX_OPS: u64 = (1 << 31) - 1;
/// Largest accepted `--processes`.
pub const MAX_PROCESSES: u32 = 1 << 20;
/// Largest accepted `--keys`.
pub const MAX_KEYS: u32 = 1 << 30;
/// Probability that a cas expects the key's current value (when it has one).
pub const CAS_EXPECTS_CURRENT: f64 = 0.7;

/// The register model simulated by the store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Model {
    /// Read and write.
    Register,
    /// Read, write and compare-and-set.
    #[default]
    CasRegister,
    /// Porcupine's string key-value store: `get`, `put` and `append` of
    /// strings (each written string unique, `"x N y"`).
    Kv,
}

impl Model {
    /// The name used on the command line (`register`, `cas-register`).
    pub fn name(self) -> &'static str {
        match self {
            Model::Register => "register",
            Model::CasRegister => "cas-register",
            Model::Kv => "kv",
        }
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Model {
    type Err = SynthError;
    fn from_str(s: &str) -> Result<Model, SynthError> {
        match s.trim() {
            "register" => Ok(Model::Register),
            "cas-register" => Ok(Model::CasRegister),
            "kv" => Ok(Model::Kv),
            other => Err(SynthError::invalid(
                "--model",
                format!("unknown model {other:?} (expected register, cas-register or kv)"),
            )),
        }
    }
}

/// Relative weights of the operation kinds. They need not sum to 1: they
/// are normalized. `cas` is ignored for [`Model::Register`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mix {
    /// Weight of reads.
    pub read: f64,
    /// Weight of writes.
    pub write: f64,
    /// Weight of compare-and-set operations.
    pub cas: f64,
    /// Weight of appends (kv only).
    pub append: f64,
}

impl Default for Mix {
    /// `read=0.5,write=0.3,cas=0.2`.
    fn default() -> Mix {
        Mix {
            read: 0.5,
            write: 0.3,
            cas: 0.2,
            append: 0.0,
        }
    }
}

impl Mix {
    /// The default mix of `model`: [`Mix::default`] for registers,
    /// `read=0.5,write=0.1,append=0.4` for kv (like Porcupine's kv tests).
    pub fn default_for(model: Model) -> Mix {
        match model {
            Model::Kv => Mix {
                read: 0.5,
                write: 0.1,
                cas: 0.0,
                append: 0.4,
            },
            _ => Mix::default(),
        }
    }

    /// The weight of cas and of append that `model` uses.
    fn extra(&self, model: Model) -> (f64, f64) {
        match model {
            Model::Register => (0.0, 0.0),
            Model::CasRegister => (self.cas, 0.0),
            Model::Kv => (0.0, self.append),
        }
    }
}

impl FromStr for Mix {
    type Err = SynthError;
    /// Parses `read=0.5,write=0.3,cas=0.2`. Kinds not named get weight 0;
    /// naming a kind twice, an unknown kind, or a weight that is negative or
    /// not a number is an error naming `--mix`.
    fn from_str(s: &str) -> Result<Mix, SynthError> {
        let bad = |reason: String| SynthError::invalid("--mix", reason);
        let mut mix = Mix {
            read: 0.0,
            write: 0.0,
            cas: 0.0,
            append: 0.0,
        };
        let mut seen = [false; 4];
        for part in s.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let Some((name, weight)) = part.split_once('=') else {
                return Err(bad(format!("expected kind=weight, got {part:?}")));
            };
            let (name, weight) = (name.trim(), weight.trim());
            let slot = match name {
                "read" => 0,
                "write" => 1,
                "cas" => 2,
                "append" => 3,
                _ => {
                    return Err(bad(format!(
                        "unknown operation {name:?} (expected read, write, cas or append)"
                    )));
                }
            };
            if seen[slot] {
                return Err(bad(format!("{name} is given twice")));
            }
            seen[slot] = true;
            let w: f64 = weight
                .parse()
                .map_err(|_| bad(format!("weight of {name} is not a number: {weight:?}")))?;
            if !w.is_finite() || w < 0.0 {
                return Err(bad(format!(
                    "weight of {name} must be a finite number >= 0, got {weight}"
                )));
            }
            match slot {
                0 => mix.read = w,
                1 => mix.write = w,
                2 => mix.cas = w,
                _ => mix.append = w,
            }
        }
        if !seen.iter().any(|&s| s) {
            return Err(bad(
                "no weights given (expected e.g. read=0.5,write=0.3,cas=0.2)".into(),
            ));
        }
        Ok(mix)
    }
}

/// An anomaly [`synthesize`] can inject into an otherwise linearizable
/// history, by changing the value returned by one `ok` read `R` on key `k`.
///
/// Values are unique (each is produced by exactly one write or cas), no
/// operation ever writes `null`, and an `ok` write or cas certainly took
/// effect. Both rules rely on this.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Anomaly {
    /// `R` returns a value that was certainly overwritten before `R` began.
    ///
    /// Rule: there are `ok` writes (write or cas) `W1` of value `a` and `W2`
    /// of value `b` on `k` with `W1` completed before `W2` was invoked and
    /// `W2` completed before `R` was invoked; `R` is made to return `a`. In
    /// every linearization `W1 < W2 < R`, and only `W1` ever produces `a`,
    /// so `R` cannot read `a`. Among the candidates for a given `R`, `W2` is
    /// the `ok` write of `k` completed before `R`'s invocation with the
    /// latest invocation, and `W1` the last `ok` write of `k` completed
    /// before `W2`'s invocation.
    StaleRead,
    /// `R` misses a write that certainly happened before it: it returns the
    /// value the key had before that write.
    ///
    /// Rule: `R` returned `w`, written by an `ok` write (write or cas) `W`
    /// that completed before `R` was invoked; no other write or cas of `k`
    /// that is `ok`, `info` or pending has an interval (`info` and pending
    /// ones extend forever) meeting `[W's completion, R's completion]`; the
    /// value `p` the key had just before `W` took effect is `null` (no
    /// operation writes `null`) or was written by an `ok` operation that
    /// completed before `W` was invoked (so it precedes `W` in every
    /// linearization and is its only producer). `R` is made to return `p`.
    LostWrite,
}

impl Anomaly {
    /// The name used on the command line (`stale-read`, `lost-write`).
    pub fn name(self) -> &'static str {
        match self {
            Anomaly::StaleRead => "stale-read",
            Anomaly::LostWrite => "lost-write",
        }
    }
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Anomaly {
    type Err = SynthError;
    fn from_str(s: &str) -> Result<Anomaly, SynthError> {
        match s.trim() {
            "stale-read" => Ok(Anomaly::StaleRead),
            "lost-write" => Ok(Anomaly::LostWrite),
            other => Err(SynthError::invalid(
                "--inject",
                format!("unknown anomaly {other:?} (expected stale-read, lost-write or none)"),
            )),
        }
    }
}

/// Parses the `--inject` argument: `none` gives `None`.
pub fn parse_inject(s: &str) -> Result<Option<Anomaly>, SynthError> {
    if s.trim() == "none" {
        Ok(None)
    } else {
        s.parse().map(Some)
    }
}

/// What to synthesize.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthConfig {
    /// Number of operations (invocations); each gets exactly one completion.
    pub ops: u64,
    /// Number of concurrent client workers.
    pub processes: u32,
    /// Number of keys, named `k0`..`k{keys-1}`; with one key the `key` field
    /// is omitted.
    pub keys: u32,
    /// Seed of every random choice.
    pub seed: u64,
    /// The register model.
    pub model: Model,
    /// Operation mix.
    pub mix: Mix,
    /// Probability that an operation completes `info`.
    pub info: f64,
    /// Probability that a write or cas (not already `info`) completes `fail`.
    pub fail: f64,
    /// Anomaly to inject, if any.
    pub inject: Option<Anomaly>,
    /// Draw written values from `1..=N` instead of writing each value once
    /// (so the checker must search; no injection then).
    pub values: Option<u64>,
}

impl Default for SynthConfig {
    /// 1000 operations, 10 processes, 1 key, seed 0, cas-register, the
    /// default [`Mix`], no info, no fail, no injection.
    fn default() -> SynthConfig {
        SynthConfig {
            ops: 1000,
            processes: 10,
            keys: 1,
            seed: 0,
            model: Model::default(),
            mix: Mix::default(),
            info: 0.0,
            fail: 0.0,
            inject: None,
            values: None,
        }
    }
}

impl SynthConfig {
    /// Checks every field; errors name the command-line option.
    pub fn validate(&self) -> Result<(), SynthError> {
        if self.ops == 0 || self.ops > MAX_OPS {
            return Err(SynthError::invalid(
                "--ops",
                format!("must be between 1 and {MAX_OPS}, got {}", self.ops),
            ));
        }
        if self.processes == 0 || self.processes > MAX_PROCESSES {
            return Err(SynthError::invalid(
                "--processes",
                format!(
                    "must be between 1 and {MAX_PROCESSES}, got {}",
                    self.processes
                ),
            ));
        }
        if self.keys == 0 || self.keys > MAX_KEYS {
            return Err(SynthError::invalid(
                "--keys",
                format!("must be between 1 and {MAX_KEYS}, got {}", self.keys),
            ));
        }
        for (name, p) in [("--info", self.info), ("--fail", self.fail)] {
            if !(0.0..=1.0).contains(&p) {
                return Err(SynthError::invalid(
                    name,
                    format!("must be a probability between 0 and 1, got {p}"),
                ));
            }
        }
        let Mix {
            read,
            write,
            cas,
            append,
        } = self.mix;
        for (name, w) in [
            ("read", read),
            ("write", write),
            ("cas", cas),
            ("append", append),
        ] {
            if !w.is_finite() || w < 0.0 {
                return Err(SynthError::invalid(
                    "--mix",
                    format!("weight of {name} must be a finite number >= 0, got {w}"),
                ));
            }
        }
        if self.values == Some(0) {
            return Err(SynthError::invalid("--values", "must be at least 1"));
        }
        if self.values.is_some() && self.inject.is_some() {
            return Err(SynthError::invalid(
                "--values",
                "cannot be combined with --inject (the injections need unique values)",
            ));
        }
        let (cas, append) = self.mix.extra(self.model);
        let total = read + write + cas + append;
        if total <= 0.0 || !total.is_finite() {
            return Err(SynthError::invalid(
                "--mix",
                format!("no operation of model {} has a positive weight", self.model),
            ));
        }
        Ok(())
    }
}

/// The injected anomaly: which read was changed and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Injected {
    /// The anomaly.
    pub kind: Anomaly,
    /// Event index of the read's invocation.
    pub invoke_index: u64,
    /// Event index of the read's `ok` completion, the only event changed.
    pub complete_index: u64,
    /// The read's process.
    pub process: u64,
    /// The read's key (`None` for single-key histories, which omit it).
    pub key: Option<String>,
    /// The value the read now returns.
    pub value: serde_json::Value,
    /// The value the read returned in the simulation.
    pub original: serde_json::Value,
}

impl Injected {
    /// One line of JSON describing the injection:
    /// `{"injected":"stale-read","index":..,"invoke_index":..,"process":..,"key":..,"value":..,"original":..}`
    /// where `index` is the event index of the changed completion.
    pub fn to_json_line(&self) -> String {
        let key = match &self.key {
            Some(k) => serde_json::Value::from(k.as_str()).to_string(),
            None => "null".to_string(),
        };
        format!(
            "{{\"injected\":\"{}\",\"index\":{},\"invoke_index\":{},\"process\":{},\"key\":{},\"value\":{},\"original\":{}}}",
            self.kind.name(),
            self.complete_index,
            self.invoke_index,
            self.process,
            key,
            self.value,
            self.original,
        )
    }
}

/// What [`synthesize`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SynthReport {
    /// Number of events (lines) written.
    pub events: u64,
    /// Number of operations (invocations) written.
    pub ops: u64,
    /// The injected anomaly, when one was requested.
    pub injected: Option<Injected>,
}

/// Why [`synthesize`] failed.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// A configuration value is out of range or unparsable.
    #[error("{option}: {reason}")]
    InvalidOption {
        /// The command-line option, such as `--info`.
        option: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The requested anomaly has no suitable read in this history.
    #[error("--inject: cannot inject {kind}: {reason}")]
    CannotInject {
        /// The requested anomaly.
        kind: Anomaly,
        /// Why no read qualifies.
        reason: &'static str,
    },
    /// Writing the history failed.
    #[error("writing the history: {0}")]
    Io(#[from] std::io::Error),
}

impl SynthError {
    /// An [`SynthError::InvalidOption`] for `option`.
    pub fn invalid(option: &'static str, reason: impl Into<String>) -> SynthError {
        SynthError::InvalidOption {
            option,
            reason: reason.into(),
        }
    }

    /// The command-line option the error is about, if any.
    pub fn option(&self) -> Option<&'static str> {
        match self {
            SynthError::InvalidOption { option, .. } => Some(option),
            SynthError::CannotInject { .. } => Some("--inject"),
            SynthError::Io(_) => None,
        }
    }
}

// ---------------------------------------------------------------------------
// Simulation

/// `null` in the compact value representation (values start at 1).
const NIL: u64 = u64::MAX;
/// "No operation" in 32-bit operation references.
const NONE: u32 = u32::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum F {
    Read,
    Write,
    Cas,
    Append,
}

impl F {
    fn name(self, model: Model) -> &'static [u8] {
        match (self, model) {
            (F::Read, Model::Kv) => b"get",
            (F::Write, Model::Kv) => b"put",
            (F::Read, _) => b"read",
            (F::Write, _) => b"write",
            (F::Cas, _) => b"cas",
            (F::Append, _) => b"append",
        }
    }
}

/// One simulated operation (values use [`NIL`] for `null`).
#[derive(Clone, Debug)]
struct Op {
    invoke_time: u64,
    complete_time: u64,
    invoke_index: u64,
    complete_index: u64,
    process: u64,
    key: u32,
    f: F,
    outcome: Outcome,
    /// Took effect (write/cas).
    applied: bool,
    /// Write: the value; cas: the new value.
    arg: u64,
    /// Cas: the expected value.
    from: u64,
    /// Read: the value read (kv: `segment << 32 | length`, see
    /// [`Sim::segments`]); write/cas that took effect: the key's value just
    /// before.
    result: u64,
}

impl Op {
    fn is_write(&self) -> bool {
        self.f != F::Read
    }
}

struct Worker {
    process: u64,
    op: u32,
    linearized: bool,
}

/// The simulated history: operations in invocation order, and events as
/// `op << 1 | is_completion`.
struct Sim {
    ops: Vec<Op>,
    events: Vec<u32>,
    /// `producer[v]`: the operation that wrote value `v` (index 0 unused).
    producer: Vec<u32>,
    /// Kv only: every list a key held since its last put: the put's value
    /// (or [`NIL`] for the initial value) then the appended values. A get
    /// saw a prefix of one of them.
    segments: Vec<Vec<u64>>,
}

fn simulate(cfg: &SynthConfig) -> Sim {
    let mut rng = Rng::new(cfg.seed);
    let n = cfg.ops;
    let p = u64::from(cfg.processes);
    let (cas_w, append_w) = cfg.mix.extra(cfg.model);
    let total = cfg.mix.read + cfg.mix.write + cas_w + append_w;
    let read_cut = cfg.mix.read / total;
    let write_cut = (cfg.mix.read + cfg.mix.write) / total;

    let cap = usize::try_from(n).unwrap_or(0);
    let mut ops: Vec<Op> = Vec::with_capacity(cap);
    let mut events: Vec<u32> = Vec::with_capacity(cap.saturating_mul(2));
    let mut producer: Vec<u32> = vec![NONE];
    let mut state: Vec<u64> = vec![NIL; cfg.keys as usize];
    let kv = cfg.model == Model::Kv;
    // Kv: each key's current segment (they start as `[NIL]`).
    let mut segments: Vec<Vec<u64>> = Vec::new();
    if kv {
        segments = vec![vec![NIL]; cfg.keys as usize];
        state = (0..u64::from(cfg.keys)).collect();
    }
    let mut workers: Vec<Worker> = (0..p)
        .map(|i| Worker {
            process: i,
            op: NONE,
            linearized: false,
        })
        .collect();
    let mut next_value: u64 = 1;
    let mut invoked: u64 = 0;
    let mut busy: u64 = 0;
    let mut time: u64 = 0;

    while invoked < n || busy > 0 {
        let w = &mut workers[rng.below(p) as usize];
        if w.op == NONE {
            if invoked == n {
                continue;
            }
            // Invoke.
            time += rng.range_inclusive(1_000, 1_000_000);
            let x = rng.f64();
            let f = if x < read_cut {
                F::Read
            } else if x < write_cut || (cas_w <= 0.0 && append_w <= 0.0) {
                F::Write
            } else if append_w > 0.0 {
                F::Append
            } else {
                F::Cas
            };
            let key = rng.below(u64::from(cfg.keys)) as u32;
            let (mut arg, mut from) = (NIL, NIL);
            if f != F::Read {
                arg = match cfg.values {
                    Some(n) => 1 + rng.below(n),
                    None => next_value,
                };
                next_value += 1;
                producer.push(ops.len() as u32);
            }
            if f == F::Cas {
                let current = state[key as usize];
                from = if rng.chance(CAS_EXPECTS_CURRENT) && current != NIL {
                    current
                } else {
                    // 0 is never written: such a cas certainly mismatches.
                    rng.below(arg)
                };
            }
            let id = ops.len() as u32;
            events.push(id << 1);
            ops.push(Op {
                invoke_time: time,
                complete_time: 0,
                invoke_index: events.len() as u64 - 1,
                complete_index: 0,
                process: w.process,
                key,
                f,
                outcome: Outcome::Ok,
                applied: false,
                arg,
                from,
                result: NIL,
            });
            w.op = id;
            w.linearized = false;
            invoked += 1;
            busy += 1;
        } else if !w.linearized {
            // Linearization point: decide the outcome, apply the effect.
            let op = &mut ops[w.op as usize];
            let slot = &mut state[op.key as usize];
            w.linearized = true;
            let info = rng.chance(cfg.info);
            let (outcome, effect) = if info {
                (Outcome::Info, op.is_write() && rng.chance(0.5))
            } else if op.is_write() && rng.chance(cfg.fail) {
                (Outcome::Fail, false)
            } else {
                (Outcome::Ok, true)
            };
            op.outcome = outcome;
            if kv {
                // `*slot` is the key's current segment.
                match op.f {
                    F::Read => {
                        op.result = *slot << 32 | segments[*slot as usize].len() as u64;
                    }
                    F::Write if effect => {
                        op.applied = true;
                        *slot = segments.len() as u64;
                        segments.push(vec![op.arg]);
                    }
                    F::Append if effect => {
                        op.applied = true;
                        segments[*slot as usize].push(op.arg);
                    }
                    _ => {}
                }
                continue;
            }
            match op.f {
                F::Read => op.result = *slot,
                F::Write => {
                    if effect {
                        op.applied = true;
                        op.result = *slot;
                        *slot = op.arg;
                    }
                }
                F::Cas => {
                    if effect {
                        if *slot == op.from {
                            op.applied = true;
                            op.result = *slot;
                            *slot = op.arg;
                        } else if outcome == Outcome::Ok {
                            op.outcome = Outcome::Fail;
                        }
                    }
                }
                F::Append => {}
            }
        } else {
            // Completion.
            time += rng.range_inclusive(1_000, 1_000_000);
            let op = &mut ops[w.op as usize];
            events.push(w.op << 1 | 1);
            op.complete_time = time;
            op.complete_index = events.len() as u64 - 1;
            if op.outcome == Outcome::Info {
                w.process += p;
            }
            w.op = NONE;
            busy -= 1;
        }
    }
    Sim {
        ops,
        events,
        producer,
        segments,
    }
}

// ---------------------------------------------------------------------------
// Injection

/// Reservoir sampling of one candidate, uniformly, with its own stream.
struct Reservoir {
    rng: Rng,
    seen: u64,
    chosen: Option<(u32, u64)>,
}

impl Reservoir {
    fn new(seed: u64) -> Reservoir {
        let mut s = seed ^ 0x1D_1EC7_0000_0000;
        Reservoir {
            rng: Rng::new(splitmix64(&mut s)),
            seen: 0,
            chosen: None,
        }
    }

    fn offer(&mut self, read: u32, value: u64) {
        self.seen += 1;
        if self.rng.below(self.seen) == 0 {
            self.chosen = Some((read, value));
        }
    }
}

fn is_ok_read(op: &Op) -> bool {
    op.f == F::Read && op.outcome == Outcome::Ok
}

fn is_ok_write(op: &Op) -> bool {
    op.is_write() && op.outcome == Outcome::Ok
}

/// Candidates for [`Anomaly::StaleRead`]: `(read, stale value)`.
fn stale_read_candidates(sim: &Sim, keys: usize, pick: &mut Reservoir) {
    let ops = &sim.ops;
    // Per key: ok writes completed so far, in completion order (their
    // completion times increase), and the one among them invoked last.
    let mut done: Vec<Vec<u32>> = vec![Vec::new(); keys];
    let mut latest: Vec<u32> = vec![NONE; keys];
    for &e in &sim.events {
        let id = e >> 1;
        let op = &ops[id as usize];
        let k = op.key as usize;
        if e & 1 == 1 {
            if is_ok_write(op) {
                done[k].push(id);
                if latest[k] == NONE || op.invoke_time > ops[latest[k] as usize].invoke_time {
                    latest[k] = id;
                }
            }
        } else if is_ok_read(op) && latest[k] != NONE {
            let w2 = &ops[latest[k] as usize];
            let list = &done[k];
            let before = list.partition_point(|&w| ops[w as usize].complete_time < w2.invoke_time);
            if before == 0 {
                continue;
            }
            let w1 = &ops[list[before - 1] as usize];
            debug_assert_eq!(sim.producer[w1.arg as usize], list[before - 1]);
            if w1.arg != op.result && w1.arg != w2.arg {
                pick.offer(id, w1.arg);
            }
        }
    }
}

/// Candidates for [`Anomaly::LostWrite`]: `(read, previous value)`.
fn lost_write_candidates(sim: &Sim, keys: usize, pick: &mut Reservoir) {
    let ops = &sim.ops;
    // Per key: ok writes in completion order, and each one's position.
    let mut by_completion: Vec<Vec<u32>> = vec![Vec::new(); keys];
    let mut position: Vec<u32> = vec![NONE; ops.len()];
    // Per key: earliest invocation of an info (or pending) write.
    let mut first_info: Vec<u64> = vec![u64::MAX; keys];
    for &e in &sim.events {
        let id = e >> 1;
        let op = &ops[id as usize];
        let k = op.key as usize;
        if e & 1 == 1 && is_ok_write(op) {
            position[id as usize] = by_completion[k].len() as u32;
            by_completion[k].push(id);
        }
        if e & 1 == 0 && op.is_write() && op.outcome == Outcome::Info {
            first_info[k] = first_info[k].min(op.invoke_time);
        }
    }
    // Per key: suffix minima of invocation times over the completion order.
    let suffix_min: Vec<Vec<u64>> = by_completion
        .iter()
        .map(|list| {
            let mut m = vec![u64::MAX; list.len() + 1];
            for i in (0..list.len()).rev() {
                m[i] = m[i + 1].min(ops[list[i] as usize].invoke_time);
            }
            m
        })
        .collect();
    for (id, r) in ops.iter().enumerate() {
        if !is_ok_read(r) || r.result == NIL {
            continue;
        }
        let k = r.key as usize;
        let w_id = sim.producer[r.result as usize];
        let w = &ops[w_id as usize];
        if !is_ok_write(w) || w.complete_time >= r.invoke_time {
            continue;
        }
        // No other ok write of k meets [w.complete, r.complete]: those
        // completed after w must all be invoked after r completed.
        let pos = position[w_id as usize] as usize;
        if suffix_min[k][pos + 1] <= r.complete_time {
            continue;
        }
        // No info write of k can take effect in that window.
        if first_info[k] <= r.complete_time {
            continue;
        }
        // The previous value is null, or written by an ok operation that
        // completed before w was invoked.
        let prev = w.result;
        if prev != NIL {
            let p = &ops[sim.producer[prev as usize] as usize];
            if p.outcome != Outcome::Ok || p.complete_time >= w.invoke_time {
                continue;
            }
        }
        pick.offer(id as u32, prev);
    }
}

/// Candidates for either anomaly on a kv history: `(get, shorter list)`.
/// The get saw a list whose last append `A` is `ok` and completed before
/// the get was invoked; it is made to return the list without `A`. That
/// list only existed just before `A` took effect (values are unique), and
/// `A` precedes the get in every linearization.
fn missed_append_candidates(sim: &Sim, pick: &mut Reservoir) {
    for (id, r) in sim.ops.iter().enumerate() {
        if !is_ok_read(r) {
            continue;
        }
        let (seg, len) = (r.result >> 32, r.result & 0xffff_ffff);
        if len < 2 {
            continue;
        }
        let last = sim.segments[seg as usize][len as usize - 1];
        let a = &sim.ops[sim.producer[last as usize] as usize];
        if a.f == F::Append && a.outcome == Outcome::Ok && a.complete_time < r.invoke_time {
            pick.offer(id as u32, r.result - 1);
        }
    }
}

fn inject(sim: &mut Sim, cfg: &SynthConfig, kind: Anomaly) -> Result<Injected, SynthError> {
    let mut pick = Reservoir::new(cfg.seed);
    let keys = cfg.keys as usize;
    match kind {
        _ if cfg.model == Model::Kv => missed_append_candidates(sim, &mut pick),
        Anomaly::StaleRead => stale_read_candidates(sim, keys, &mut pick),
        Anomaly::LostWrite => lost_write_candidates(sim, keys, &mut pick),
    }
    let Some((read, value)) = pick.chosen else {
        return Err(SynthError::CannotInject {
            kind,
            reason: match kind {
                _ if cfg.model == Model::Kv => {
                    "no ok get that saw an ok append completed before it was invoked"
                }
                Anomaly::StaleRead => {
                    "no ok read invoked after two ok writes of its key that completed one \
                     after the other"
                }
                Anomaly::LostWrite => {
                    "no ok read that certainly observes an ok write with no other write of \
                     its key around it and a previous value that cannot come back"
                }
            },
        });
    };
    let original = read_value(sim, cfg.model, sim.ops[read as usize].result);
    let r = &mut sim.ops[read as usize];
    r.result = value;
    let (invoke_index, complete_index, process, key) =
        (r.invoke_index, r.complete_index, r.process, r.key);
    let json = |bytes: Vec<u8>| serde_json::from_slice(&bytes).unwrap_or_default();
    Ok(Injected {
        kind,
        invoke_index,
        complete_index,
        process,
        key: (cfg.keys > 1).then(|| format!("k{key}")),
        value: json(read_value(sim, cfg.model, value)),
        original: json(original),
    })
}

// ---------------------------------------------------------------------------
// Output

#[inline]
fn push_value(buf: &mut Vec<u8>, v: u64) {
    if v == NIL {
        buf.extend_from_slice(b"null");
    } else {
        push_u64(buf, v);
    }
}

/// A kv value: `"x N y"`.
fn push_piece(buf: &mut Vec<u8>, v: u64) {
    buf.extend_from_slice(b"x ");
    push_u64(buf, v);
    buf.extend_from_slice(b" y");
}

/// What a read returned, as JSON text.
fn read_value(sim: &Sim, model: Model, result: u64) -> Vec<u8> {
    let mut buf = Vec::new();
    push_read_value(&mut buf, sim, model, result);
    buf
}

fn push_read_value(buf: &mut Vec<u8>, sim: &Sim, model: Model, result: u64) {
    if model != Model::Kv {
        return push_value(buf, result);
    }
    let (seg, len) = (result >> 32, result & 0xffff_ffff);
    let pieces = &sim.segments[seg as usize][..len as usize];
    if pieces == [NIL] {
        return buf.extend_from_slice(b"null");
    }
    buf.push(b'"');
    for &p in pieces.iter().filter(|&&p| p != NIL) {
        push_piece(buf, p);
    }
    buf.push(b'"');
}

fn write_history<W: Write>(sim: &Sim, cfg: &SynthConfig, out: W) -> std::io::Result<()> {
    let mut out = BufWriter::with_capacity(1 << 16, out);
    let mut line = EventLine::new();
    let with_key = cfg.keys > 1;
    for (index, &e) in sim.events.iter().enumerate() {
        let op = &sim.ops[(e >> 1) as usize];
        let completion = e & 1 == 1;
        let (time, kind) = if completion {
            (op.complete_time, EventType::completion(op.outcome))
        } else {
            (op.invoke_time, EventType::Invoke)
        };
        line.start()
            .u64("index", index as u64)
            .u64("time", time)
            .u64("process", op.process)
            .event_type(kind)
            .raw("f", |b| {
                b.push(b'"');
                b.extend_from_slice(op.f.name(cfg.model));
                b.push(b'"');
            });
        if with_key {
            line.raw("key", |b| {
                b.extend_from_slice(b"\"k");
                push_u64(b, u64::from(op.key));
                b.push(b'"');
            });
        }
        line.raw("value", |b| match op.f {
            F::Read => {
                if completion && op.outcome == Outcome::Ok {
                    push_read_value(b, sim, cfg.model, op.result);
                } else {
                    b.extend_from_slice(b"null");
                }
            }
            F::Write | F::Append if cfg.model == Model::Kv => {
                b.push(b'"');
                push_piece(b, op.arg);
                b.push(b'"');
            }
            F::Write | F::Append => push_value(b, op.arg),
            F::Cas => {
                b.push(b'[');
                push_value(b, op.from);
                b.push(b',');
                push_value(b, op.arg);
                b.push(b']');
            }
        });
        if completion && op.outcome == Outcome::Info {
            line.str("error", "timeout");
        }
        out.write_all(line.finish())?;
    }
    out.flush()
}

/// Simulates the store described by `cfg`, injects the requested anomaly,
/// and writes the history to `out` as JSON Lines (buffered internally).
///
/// Nothing is written when the configuration is invalid or the anomaly
/// cannot be injected. The same configuration always gives the same bytes.
pub fn synthesize<W: Write>(cfg: &SynthConfig, out: W) -> Result<SynthReport, SynthError> {
    cfg.validate()?;
    let mut sim = simulate(cfg);
    let injected = match cfg.inject {
        Some(kind) => Some(inject(&mut sim, cfg, kind)?),
        None => None,
    };
    write_history(&sim, cfg, out)?;
    Ok(SynthReport {
        events: sim.events.len() as u64,
        ops: sim.ops.len() as u64,
        injected,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use faultline_checkers::{History, Outcome as HOutcome};
    use serde_json::Value;

    use super::*;

    fn run(cfg: &SynthConfig) -> (Vec<u8>, SynthReport) {
        let mut out = Vec::new();
        let report = synthesize(cfg, &mut out).expect("synthesize");
        (out, report)
    }

    fn parse(bytes: &[u8]) -> History {
        faultline_checkers::format::json::read("synth", bytes).expect("a well-formed history")
    }

    fn cfg(ops: u64, processes: u32, keys: u32, seed: u64) -> SynthConfig {
        SynthConfig {
            ops,
            processes,
            keys,
            seed,
            ..SynthConfig::default()
        }
    }

    fn num(v: &Value) -> Option<u64> {
        v.as_u64()
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let c = SynthConfig {
            info: 0.1,
            fail: 0.1,
            keys: 3,
            ..SynthConfig::default()
        };
        let (a, _) = run(&c);
        let (b, _) = run(&c);
        assert_eq!(a, b);
        let (d, _) = run(&SynthConfig {
            seed: 1,
            ..c.clone()
        });
        assert_ne!(a, d);
    }

    #[test]
    fn exact_line_format() {
        let (out, report) = run(&cfg(50, 3, 2, 5));
        let text = String::from_utf8(out).unwrap();
        let first = text.lines().next().unwrap();
        assert!(first.starts_with("{\"index\":0,\"time\":"), "{first}");
        assert!(first.contains(",\"type\":\"invoke\",\"f\":\""), "{first}");
        assert!(first.contains(",\"key\":\"k"), "{first}");
        assert_eq!(text.lines().count() as u64, report.events);
        assert_eq!(report.events, 2 * report.ops);
        assert_eq!(report.ops, 50);
        for l in text.lines() {
            let v: Value = serde_json::from_str(l).unwrap();
            let obj = v.as_object().unwrap();
            for field in ["index", "time", "process", "type", "f", "key", "value"] {
                assert!(obj.contains_key(field), "{field} missing in {l}");
            }
        }
        // One key: the key field is omitted.
        let (out, _) = run(&cfg(50, 3, 1, 5));
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("\"key\""));
    }

    /// The structural properties every synthesized history must have.
    fn check_shape(bytes: &[u8], cfg: &SynthConfig) -> History {
        let text = std::str::from_utf8(bytes).unwrap();
        let mut last_time = -1i64;
        let mut retired: HashSet<i64> = HashSet::new();
        let mut in_flight: HashSet<i64> = HashSet::new();
        for (i, l) in text.lines().enumerate() {
            let v: Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["index"].as_u64(), Some(i as u64), "index of line {i}");
            let t = v["time"].as_i64().unwrap();
            assert!(t > last_time, "time not increasing at line {i}");
            last_time = t;
            let p = v["process"].as_i64().unwrap();
            assert!(
                !retired.contains(&p),
                "retired process {p} reused at line {i}"
            );
            match v["type"].as_str().unwrap() {
                "invoke" => assert!(in_flight.insert(p), "two ops in flight on {p}"),
                kind => {
                    assert!(in_flight.remove(&p), "completion without invoke at {i}");
                    if kind == "info" {
                        assert_eq!(v["error"], "timeout");
                        retired.insert(p);
                    }
                }
            }
        }
        assert!(in_flight.is_empty());
        let h = parse(bytes);
        assert_eq!(h.ops.len() as u64, cfg.ops);
        let mut values = HashSet::new();
        for op in &h.ops {
            assert_ne!(op.outcome, HOutcome::Pending, "every invoke completes");
            assert!(op.process >= 0);
            let worker = op.process as u64 % u64::from(cfg.processes);
            assert!(worker < u64::from(cfg.processes));
            let written = match &*op.f {
                "write" => num(&op.invoke_value),
                "cas" => num(&op.invoke_value[1]),
                "read" => {
                    assert!(op.invoke_value.is_null());
                    assert_ne!(op.outcome, HOutcome::Fail, "a read never fails");
                    None
                }
                f => panic!("unexpected f {f}"),
            };
            if let Some(w) = written {
                assert!(values.insert(w), "value {w} written twice");
            }
            if op.outcome != HOutcome::Ok || &*op.f != "read" {
                assert_eq!(
                    op.value, op.invoke_value,
                    "completion echoes the invocation"
                );
            }
        }
        h
    }

    #[test]
    fn histories_are_well_formed() {
        for seed in 0..20 {
            for model in [Model::Register, Model::CasRegister] {
                let c = SynthConfig {
                    ops: 500,
                    processes: 1 + (seed as u32 % 7),
                    keys: 1 + (seed as u32 % 4),
                    seed,
                    model,
                    info: 0.1,
                    fail: 0.1,
                    ..SynthConfig::default()
                };
                let (out, _) = run(&c);
                let h = check_shape(&out, &c);
                if model == Model::Register {
                    assert!(h.ops.iter().all(|o| &*o.f != "cas"));
                }
            }
        }
    }

    #[test]
    fn info_processes_are_retired() {
        let c = SynthConfig {
            ops: 2000,
            processes: 4,
            info: 0.2,
            ..SynthConfig::default()
        };
        let (out, _) = run(&c);
        let h = check_shape(&out, &c);
        let infos: Vec<_> = h
            .ops
            .iter()
            .filter(|o| o.outcome == HOutcome::Info)
            .collect();
        assert!(!infos.is_empty());
        for o in &infos {
            // Every later op of the same worker runs under a larger id.
            let later: Vec<_> = h
                .ops
                .iter()
                .filter(|x| x.invoke_pos() > o.invoke_pos() && x.process % 4 == o.process % 4)
                .collect();
            assert!(later.iter().all(|x| x.process >= o.process + 4));
        }
        assert!(h.ops.iter().any(|o| o.process >= 4));
    }

    #[test]
    fn fail_and_info_shares_match() {
        let c = SynthConfig {
            ops: 40_000,
            processes: 8,
            keys: 5,
            model: Model::Register,
            info: 0.1,
            fail: 0.2,
            ..SynthConfig::default()
        };
        let (out, _) = run(&c);
        let h = parse(&out);
        let n = h.ops.len() as f64;
        let info = h.ops.iter().filter(|o| o.outcome == HOutcome::Info).count() as f64;
        assert!((info / n - 0.1).abs() < 0.01, "info share {}", info / n);
        let writes: Vec<_> = h.ops.iter().filter(|o| &*o.f == "write").collect();
        let fails = writes
            .iter()
            .filter(|o| o.outcome == HOutcome::Fail)
            .count() as f64;
        let share = fails / writes.len() as f64;
        // A write fails with probability (1 - info) * fail = 0.18.
        assert!((share - 0.18).abs() < 0.015, "fail share of writes {share}");
        let reads = h.ops.iter().filter(|o| &*o.f == "read").count() as f64;
        // cas is ignored for register: read = 0.5 / (0.5 + 0.3).
        assert!((reads / n - 0.625).abs() < 0.02, "read share {}", reads / n);

        // cas-register without --fail: many cas succeed, some fail.
        let (out, _) = run(&SynthConfig {
            ops: 20_000,
            ..SynthConfig::default()
        });
        let h = parse(&out);
        let cas: Vec<_> = h.ops.iter().filter(|o| &*o.f == "cas").collect();
        let ok = cas.iter().filter(|o| o.outcome == HOutcome::Ok).count() as f64;
        let share = ok / cas.len() as f64;
        assert!((0.3..0.9).contains(&share), "cas success share {share}");
        assert!((cas.len() as f64 / 20_000.0 - 0.2).abs() < 0.02);
    }

    // -- A brute-force linearizability oracle for small histories ----------

    struct KeyOp {
        f: u8, // 0 read, 1 write, 2 cas
        inv: usize,
        /// usize::MAX for info: it may take effect at any later time.
        comp: usize,
        must: bool,
        read: Option<u64>,
        from: Option<u64>,
        to: Option<u64>,
    }

    fn linearizable_key(ops: &[KeyOp]) -> bool {
        fn go(
            ops: &[KeyOp],
            done: &mut Vec<bool>,
            state: Option<u64>,
            left: usize,
            memo: &mut HashSet<(Vec<bool>, Option<u64>)>,
        ) -> bool {
            if left == 0 {
                return true;
            }
            if !memo.insert((done.clone(), state)) {
                return false;
            }
            let horizon = ops
                .iter()
                .zip(done.iter())
                .filter(|(o, d)| o.must && !**d)
                .map(|(o, _)| o.comp)
                .min()
                .unwrap_or(usize::MAX);
            for i in 0..ops.len() {
                let o = &ops[i];
                if done[i] || o.inv > horizon {
                    continue;
                }
                let next = match o.f {
                    0 if o.read == state => state,
                    0 => continue,
                    1 => o.to,
                    _ if o.from == state => o.to,
                    _ => continue,
                };
                done[i] = true;
                let found = go(ops, done, next, left - usize::from(o.must), memo);
                done[i] = false;
                if found {
                    return true;
                }
            }
            false
        }
        let left = ops.iter().filter(|o| o.must).count();
        go(
            ops,
            &mut vec![false; ops.len()],
            None,
            left,
            &mut HashSet::new(),
        )
    }

    fn linearizable(h: &History) -> bool {
        let mut per_key: HashMap<String, Vec<KeyOp>> = HashMap::new();
        for op in &h.ops {
            let f = match &*op.f {
                "read" => 0,
                "write" => 1,
                _ => 2,
            };
            let must = match op.outcome {
                HOutcome::Ok => true,
                HOutcome::Info | HOutcome::Pending => false,
                HOutcome::Fail => continue,
            };
            if f == 0 && !must {
                continue; // an info read constrains nothing
            }
            let key = op.key.as_ref().map(|k| k.to_string()).unwrap_or_default();
            let (from, to) = match f {
                1 => (None, num(&op.invoke_value)),
                2 => (num(&op.invoke_value[0]), num(&op.invoke_value[1])),
                _ => (None, None),
            };
            per_key.entry(key).or_default().push(KeyOp {
                f,
                inv: op.invoke_pos(),
                comp: if must {
                    op.complete_pos().unwrap()
                } else {
                    usize::MAX
                },
                must,
                read: if f == 0 { num(&op.value) } else { None },
                from,
                to,
            });
        }
        per_key.values().all(|ops| linearizable_key(ops))
    }

    fn small(seed: u64, model: Model, inject: Option<Anomaly>) -> SynthConfig {
        SynthConfig {
            ops: 60,
            processes: 4,
            keys: 2,
            seed,
            model,
            info: 0.08,
            fail: 0.05,
            inject,
            ..SynthConfig::default()
        }
    }

    #[test]
    fn synthesized_histories_are_linearizable() {
        for seed in 0..60 {
            for model in [Model::Register, Model::CasRegister] {
                let (out, _) = run(&small(seed, model, None));
                assert!(linearizable(&parse(&out)), "seed {seed} {model}");
            }
        }
    }

    fn check_injection(kind: Anomaly) {
        let mut injected = 0;
        for seed in 0..80 {
            for model in [Model::Register, Model::CasRegister] {
                let (clean, _) = run(&small(seed, model, None));
                let c = small(seed, model, Some(kind));
                let mut dirty = Vec::new();
                let report = match synthesize(&c, &mut dirty) {
                    Ok(r) => r,
                    Err(SynthError::CannotInject { kind: k, .. }) => {
                        assert_eq!(k, kind);
                        assert!(dirty.is_empty(), "nothing written on error");
                        continue;
                    }
                    Err(e) => panic!("{e}"),
                };
                injected += 1;
                let inj = report.injected.expect("report names the injection");
                assert_eq!(inj.kind, kind);
                let clean_s = String::from_utf8(clean).unwrap();
                let dirty_s = String::from_utf8(dirty.clone()).unwrap();
                let diffs: Vec<usize> = clean_s
                    .lines()
                    .zip(dirty_s.lines())
                    .enumerate()
                    .filter(|(_, (a, b))| a != b)
                    .map(|(i, _)| i)
                    .collect();
                assert_eq!(clean_s.lines().count(), dirty_s.lines().count());
                assert_eq!(diffs, vec![inj.complete_index as usize], "seed {seed}");
                let line: Value =
                    serde_json::from_str(dirty_s.lines().nth(inj.complete_index as usize).unwrap())
                        .unwrap();
                assert_eq!(line["type"], "ok");
                assert_eq!(line["f"], "read");
                assert_eq!(line["value"], inj.value);
                assert_eq!(line["process"].as_u64(), Some(inj.process));
                assert_eq!(line["key"].as_str(), inj.key.as_deref());
                assert_ne!(inj.value, inj.original);
                let inv: Value =
                    serde_json::from_str(dirty_s.lines().nth(inj.invoke_index as usize).unwrap())
                        .unwrap();
                assert_eq!(inv["type"], "invoke");
                assert_eq!(inv["process"], line["process"]);
                assert!(
                    !linearizable(&parse(&dirty)),
                    "seed {seed} {model}: {kind} injection left the history linearizable"
                );
                let text = inj.to_json_line();
                let prefix = format!(
                    "{{\"injected\":\"{kind}\",\"index\":{},",
                    inj.complete_index
                );
                assert!(text.starts_with(&prefix), "{text}");
                let json: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(json["injected"], kind.name());
                assert_eq!(json["index"].as_u64(), Some(inj.complete_index));
            }
        }
        assert!(
            injected >= 40,
            "only {injected} of 160 histories had a {kind} candidate"
        );
    }

    #[test]
    fn stale_read_injection_breaks_linearizability() {
        check_injection(Anomaly::StaleRead);
    }

    #[test]
    fn lost_write_injection_breaks_linearizability() {
        check_injection(Anomaly::LostWrite);
    }

    #[test]
    fn injection_on_large_history() {
        for kind in [Anomaly::StaleRead, Anomaly::LostWrite] {
            let c = SynthConfig {
                ops: 20_000,
                processes: 20,
                keys: 100,
                info: 0.05,
                inject: Some(kind),
                ..SynthConfig::default()
            };
            let (a, ra) = run(&c);
            let (b, rb) = run(&c);
            assert_eq!(a, b);
            assert_eq!(ra, rb);
            assert!(ra.injected.is_some());
        }
    }

    #[test]
    fn impossible_injection_is_an_error() {
        let c = SynthConfig {
            mix: "read=1".parse().unwrap(),
            inject: Some(Anomaly::StaleRead),
            ..SynthConfig::default()
        };
        let err = synthesize(&c, Vec::new()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("cannot inject stale-read: no ok read"),
            "{msg}"
        );
        let c = SynthConfig {
            inject: Some(Anomaly::LostWrite),
            ..c
        };
        let msg = synthesize(&c, Vec::new()).unwrap_err().to_string();
        assert!(msg.contains("cannot inject lost-write"), "{msg}");
    }

    #[test]
    fn bad_options_name_the_flag() {
        let bad = |c: SynthConfig, flag: &str| {
            let e = synthesize(&c, Vec::new()).unwrap_err();
            assert_eq!(e.option(), Some(flag), "{e}");
            assert!(e.to_string().starts_with(flag), "{e}");
        };
        let d = SynthConfig::default;
        bad(SynthConfig { info: 1.5, ..d() }, "--info");
        bad(SynthConfig { fail: -0.1, ..d() }, "--fail");
        bad(
            SynthConfig {
                fail: f64::NAN,
                ..d()
            },
            "--fail",
        );
        bad(
            SynthConfig {
                processes: 0,
                ..d()
            },
            "--processes",
        );
        bad(SynthConfig { keys: 0, ..d() }, "--keys");
        bad(SynthConfig { ops: 0, ..d() }, "--ops");
        bad(
            SynthConfig {
                model: Model::Register,
                mix: "cas=1".parse().unwrap(),
                ..d()
            },
            "--mix",
        );
        for s in [
            "read=0.5,foo=1",
            "read",
            "read=x",
            "read=-1",
            "read=1,read=2",
            "",
        ] {
            let e = s.parse::<Mix>().unwrap_err();
            assert_eq!(e.option(), Some("--mix"), "{s}: {e}");
        }
        assert_eq!(
            " read=2 , cas=1".parse::<Mix>().unwrap(),
            Mix {
                read: 2.0,
                write: 0.0,
                cas: 1.0,
                append: 0.0,
            }
        );
        assert_eq!("register".parse::<Model>().unwrap(), Model::Register);
        assert_eq!(
            "bogus".parse::<Model>().unwrap_err().option(),
            Some("--model")
        );
        assert_eq!(parse_inject("none").unwrap(), None);
        assert_eq!(
            parse_inject("lost-write").unwrap(),
            Some(Anomaly::LostWrite)
        );
        assert_eq!(parse_inject("x").unwrap_err().option(), Some("--inject"));
    }

    #[test]
    fn one_process_is_sequential() {
        let c = cfg(200, 1, 1, 3);
        let (out, _) = run(&c);
        let h = check_shape(&out, &c);
        for (i, op) in h.ops.iter().enumerate() {
            assert_eq!(op.invoke_pos(), 2 * i);
            assert_eq!(op.complete_pos(), Some(2 * i + 1));
        }
        assert!(linearizable(&h));
    }

    #[test]
    fn kv_histories_are_unique_linearizable_and_injections_are_caught() {
        use faultline_checkers::linear::{self, LinearOptions};
        use faultline_checkers::{ModelKind, Validity};
        let mut injected = 0;
        for seed in 0..30 {
            let c = SynthConfig {
                ops: 300,
                processes: 20,
                keys: 1 + seed as u32 % 3,
                seed,
                model: Model::Kv,
                mix: Mix::default_for(Model::Kv),
                info: 0.05,
                fail: 0.05,
                ..SynthConfig::default()
            };
            let (out, _) = run(&c);
            let h = parse(&out);
            let mut written = HashSet::new();
            for op in &h.ops {
                match &*op.f {
                    "put" | "append" => {
                        let v = op.invoke_value.as_str().expect("a string").to_string();
                        assert!(written.insert(v), "seed {seed}: a value written twice");
                    }
                    f => assert_eq!(f, "get"),
                }
            }
            let opts = LinearOptions::new(ModelKind::Kv);
            let r = linear::check(&h, &opts).expect("fits kv");
            assert_eq!(r.valid, Validity::Valid, "seed {seed}");
            assert_eq!(r.stats.polynomial, r.stats.partitions, "seed {seed}");
            let mut dirty = Vec::new();
            let Ok(report) = synthesize(
                &SynthConfig {
                    inject: Some(Anomaly::StaleRead),
                    ..c.clone()
                },
                &mut dirty,
            ) else {
                continue;
            };
            injected += 1;
            let inj = report.injected.expect("named");
            let r = linear::check(&parse(&dirty), &opts).expect("fits kv");
            assert_eq!(r.valid, Validity::Invalid, "seed {seed}");
            let w = &r.anomalies[0];
            assert_eq!(w.op.complete_index, Some(inj.complete_index), "seed {seed}");
            assert_eq!(w.op.result, inj.value, "seed {seed}");
        }
        assert!(injected > 20, "{injected} injections");
    }
}
