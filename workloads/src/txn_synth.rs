//! `faultline synth --model list-append|rw-register`: seeded histories of
//! transactions run by a simulated store at a chosen isolation level, with
//! an optional injected anomaly.
//!
//! The store keeps, per key, its committed versions with their commit
//! times. Processes run transactions of 2–6 micro-ops (half reads, half
//! appends or writes) over `keys` keys chosen uniformly; a key is retired
//! after 32 appends/writes and a fresh one takes its place (as Elle's
//! generator does, so lists stay short). A loop picks a process at random:
//! an idle one invokes a transaction, a busy one runs its next step.
//!
//! - `serializable`: the whole transaction runs atomically when it
//!   completes (so the history is strict serializable);
//! - `snapshot-isolation`: reads see the snapshot taken at the first step
//!   plus the transaction's own writes; at commit, a transaction that wrote
//!   a key another committed since its snapshot aborts (first committer
//!   wins). Write skew (G2-item) happens; G-single does not;
//! - `read-committed`: each read sees the latest committed state; writes
//!   are applied at commit without any check (and no transaction reads a
//!   key after writing it). Lost updates and read skew (G-single) happen.
//!
//! `--fail P` aborts a transaction at commit (completion `fail`, no effect);
//! `--info P` completes it `info` (it took effect or not, with probability
//! 1/2) and retires its process id (the next is id + processes).
//!
//! Injections (`g1c`, `g-single`, `write-skew`, `lost-update`) add, at the
//! end, a few concurrent transactions on fresh keys and fresh processes
//! that form exactly that anomaly; they are described on stderr as one JSON
//! line.

use std::io::Write;
use std::str::FromStr;

use serde_json::{Value, json};

use faultline_checkers::EventType;
use faultline_checkers::format::writer::EventLine;

use crate::rng::Rng;
use crate::synth::SynthError;

/// The data type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnKind {
    /// Append to lists, read whole lists.
    ListAppend,
    /// Write and read registers.
    RwRegister,
}

/// The isolation level the simulated store provides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    /// Atomic at completion: strict serializable.
    Serializable,
    /// Snapshot reads, first committer wins.
    SnapshotIsolation,
    /// Latest committed reads, no write checks.
    ReadCommitted,
}

impl FromStr for Isolation {
    type Err = SynthError;
    fn from_str(s: &str) -> Result<Self, SynthError> {
        match s {
            "serializable" | "strict-serializable" => Ok(Isolation::Serializable),
            "snapshot-isolation" | "si" => Ok(Isolation::SnapshotIsolation),
            "read-committed" | "rc" => Ok(Isolation::ReadCommitted),
            _ => Err(SynthError::invalid(
                "--isolation",
                format!("expected serializable, snapshot-isolation or read-committed, got {s:?}"),
            )),
        }
    }
}

/// An anomaly to inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnInject {
    /// Circular information flow (two transactions read each other's write).
    G1c,
    /// Read skew: one anti-dependency in the cycle.
    GSingle,
    /// Two transactions each read what the other overwrites (G2-item).
    WriteSkew,
    /// Two transactions read the same version and both write it.
    LostUpdate,
}

impl TxnInject {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            TxnInject::G1c => "g1c",
            TxnInject::GSingle => "g-single",
            TxnInject::WriteSkew => "write-skew",
            TxnInject::LostUpdate => "lost-update",
        }
    }

    /// Parses `--inject` (`none` is no injection).
    pub fn parse(s: &str) -> Result<Option<TxnInject>, SynthError> {
        Ok(Some(match s.to_ascii_lowercase().as_str() {
            "none" => return Ok(None),
            "g1c" => TxnInject::G1c,
            "g-single" | "read-skew" => TxnInject::GSingle,
            "write-skew" | "g2-item" => TxnInject::WriteSkew,
            "lost-update" => TxnInject::LostUpdate,
            _ => {
                return Err(SynthError::invalid(
                    "--inject",
                    format!(
                        "for transactions: none, g1c, g-single, write-skew or lost-update, got {s:?}"
                    ),
                ));
            }
        }))
    }
}

/// What to simulate.
#[derive(Clone, Debug)]
pub struct TxnSynthConfig {
    /// list-append or rw-register.
    pub kind: TxnKind,
    /// The store's isolation level.
    pub isolation: Isolation,
    /// Transactions to invoke.
    pub txns: u64,
    /// Concurrent processes.
    pub processes: u64,
    /// Keys in use at a time.
    pub keys: u64,
    /// Appends/writes a key receives before it is retired.
    pub writes_per_key: u64,
    /// Seed.
    pub seed: u64,
    /// Probability of `info`.
    pub info: f64,
    /// Probability of `fail`.
    pub fail: f64,
    /// An anomaly to add.
    pub inject: Option<TxnInject>,
}

impl TxnSynthConfig {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<(), SynthError> {
        if self.txns == 0 {
            return Err(SynthError::invalid("--ops", "must be at least 1"));
        }
        if self.processes == 0 {
            return Err(SynthError::invalid("--processes", "must be at least 1"));
        }
        if self.keys == 0 {
            return Err(SynthError::invalid("--keys", "must be at least 1"));
        }
        for (flag, p) in [("--info", self.info), ("--fail", self.fail)] {
            if !(0.0..=1.0).contains(&p) {
                return Err(SynthError::invalid(flag, "must be between 0 and 1"));
            }
        }
        Ok(())
    }
}

/// What was injected.
#[derive(Clone, Debug)]
pub struct TxnInjected {
    /// The anomaly.
    pub kind: TxnInject,
    /// The `index` of the invocation of each injected transaction.
    pub indices: Vec<u64>,
    /// The keys they use.
    pub keys: Vec<String>,
}

impl TxnInjected {
    /// One JSON line for stderr.
    pub fn to_json_line(&self) -> String {
        json!({"injected": self.kind.name(), "invoke_indices": self.indices, "keys": self.keys})
            .to_string()
    }
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Read(u64),
    Write(u64, u64),
}

/// Per key: committed versions as (commit time, value); for lists the
/// values appended in order.
#[derive(Default, Clone)]
struct KeyLog {
    versions: Vec<(u64, u64)>,
}

struct Running {
    process: u64,
    ops: Vec<Op>,
    next: usize,
    /// Snapshot time (SI), set at the first step.
    start: Option<u64>,
    /// Results of reads so far.
    done: Vec<Value>,
    /// Own writes so far (key, value), in order.
    own: Vec<(u64, u64)>,
    invoke_index: u64,
}

struct Sim<'a, W: Write> {
    cfg: &'a TxnSynthConfig,
    rng: Rng,
    out: W,
    index: u64,
    clock: u64,
    log: Vec<KeyLog>,
    /// Active key slots -> key id.
    slot_key: Vec<u64>,
    next_key: u64,
    writes: Vec<u64>,
    /// The history line being written.
    line: EventLine,
}

impl<W: Write> Sim<'_, W> {
    fn emit(&mut self, process: u64, kind: EventType, value: Value) -> Result<u64, SynthError> {
        let i = self.index;
        self.index += 1;
        self.clock += 1_000 + self.rng.below(1_000);
        // Fields in alphabetical order, as this generator always wrote them.
        self.line
            .start()
            .str("f", "txn")
            .u64("index", i)
            .u64("process", process)
            .u64("time", self.clock)
            .event_type(kind)
            .value("value", &value);
        self.out.write_all(self.line.finish())?;
        Ok(i)
    }

    fn key_name(k: u64) -> Value {
        json!(k)
    }

    fn new_txn(&mut self, process: u64) -> Result<Running, SynthError> {
        let n = self.rng.range_inclusive(2, 6) as usize;
        let mut ops = Vec::with_capacity(n);
        let rc = self.cfg.isolation == Isolation::ReadCommitted;
        for _ in 0..n {
            let slot = self.rng.below(self.cfg.keys) as usize;
            let key = self.slot_key[slot];
            // Under read committed, writes apply at commit: a read after
            // the transaction's own write of the key would show an order
            // that the commit does not keep, so there is none.
            let wrote = ops
                .iter()
                .any(|o| matches!(o, Op::Write(k, _) if *k == key));
            if self.rng.chance(0.5) {
                if rc && wrote {
                    continue;
                }
                ops.push(Op::Read(key));
            } else {
                self.writes[key as usize] += 1;
                let value = self.writes[key as usize];
                ops.push(Op::Write(key, value));
                if value >= self.cfg.writes_per_key {
                    self.slot_key[slot] = self.fresh_key();
                }
            }
        }
        let invoke: Vec<Value> = ops.iter().map(|o| self.mop(o, None)).collect();
        let invoke_index = self.emit(process, EventType::Invoke, Value::Array(invoke))?;
        Ok(Running {
            process,
            ops,
            next: 0,
            start: None,
            done: Vec::new(),
            own: Vec::new(),
            invoke_index,
        })
    }

    fn fresh_key(&mut self) -> u64 {
        let k = self.next_key;
        self.next_key += 1;
        self.log.push(KeyLog::default());
        self.writes.push(0);
        k
    }

    fn mop(&self, o: &Op, read: Option<Value>) -> Value {
        let (w, r) = match self.cfg.kind {
            TxnKind::ListAppend => ("append", "r"),
            TxnKind::RwRegister => ("w", "r"),
        };
        match *o {
            Op::Read(k) => json!([r, Self::key_name(k), read.unwrap_or(Value::Null)]),
            Op::Write(k, v) => json!([w, Self::key_name(k), v]),
        }
    }

    /// What a read of `k` returns when it sees versions committed at or
    /// before `at` (None: all), plus the transaction's own writes.
    fn read(&self, k: u64, at: Option<u64>, own: &[(u64, u64)]) -> Value {
        let visible = self.log[k as usize]
            .versions
            .iter()
            .filter(|(t, _)| at.is_none_or(|a| *t <= a))
            .map(|&(_, v)| v);
        let mine = own.iter().filter(|(ok, _)| *ok == k).map(|&(_, v)| v);
        match self.cfg.kind {
            TxnKind::ListAppend => {
                let all: Vec<u64> = visible.chain(mine).collect();
                if all.is_empty() {
                    Value::Null
                } else {
                    json!(all)
                }
            }
            TxnKind::RwRegister => match visible.chain(mine).last() {
                Some(v) => json!(v),
                None => Value::Null,
            },
        }
    }

    /// Runs one step of `r`; true when it is complete.
    fn step(&mut self, r: &mut Running) -> bool {
        let serial = self.cfg.isolation == Isolation::Serializable;
        if r.start.is_none() {
            r.start = Some(self.clock);
        }
        loop {
            let Some(&op) = r.ops.get(r.next) else {
                return true;
            };
            r.next += 1;
            let at = match self.cfg.isolation {
                Isolation::SnapshotIsolation => r.start,
                _ => None,
            };
            match op {
                Op::Read(k) => {
                    let v = self.read(k, at, &r.own);
                    r.done.push(self.mop(&op, Some(v)));
                }
                Op::Write(k, v) => {
                    r.own.push((k, v));
                    r.done.push(self.mop(&op, None));
                }
            }
            if !serial {
                return false;
            }
        }
    }

    fn commit(&mut self, r: Running) -> Result<Option<u64>, SynthError> {
        let conflict = self.cfg.isolation == Isolation::SnapshotIsolation
            && r.own.iter().any(|(k, _)| {
                self.log[*k as usize]
                    .versions
                    .last()
                    .is_some_and(|(t, _)| Some(*t) > r.start)
            });
        let retired = if conflict || self.rng.chance(self.cfg.fail) {
            self.emit(r.process, EventType::Fail, Value::Array(r.done))?;
            None
        } else if self.rng.chance(self.cfg.info) {
            if self.rng.chance(0.5) {
                self.apply(&r.own);
            }
            self.emit(r.process, EventType::Info, Value::Array(r.done))?;
            Some(r.process + self.cfg.processes)
        } else {
            self.apply(&r.own);
            self.emit(r.process, EventType::Ok, Value::Array(r.done))?;
            None
        };
        let _ = r.invoke_index;
        Ok(retired)
    }

    fn apply(&mut self, own: &[(u64, u64)]) {
        self.clock += 1;
        let t = self.clock;
        for &(k, v) in own {
            let log = &mut self.log[k as usize].versions;
            if self.cfg.kind == TxnKind::RwRegister {
                // Only the last write of a key is a version others see.
                if own.iter().rev().find(|(ok, _)| *ok == k).map(|x| x.1) != Some(v) {
                    continue;
                }
            }
            log.push((t, v));
        }
    }
}

/// Writes a synthetic transactional history as JSON Lines to `out`.
pub fn synthesize<W: Write>(
    cfg: &TxnSynthConfig,
    out: W,
) -> Result<Option<TxnInjected>, SynthError> {
    cfg.validate()?;
    let mut sim = Sim {
        cfg,
        rng: Rng::new(cfg.seed),
        out,
        index: 0,
        clock: 0,
        log: Vec::new(),
        slot_key: Vec::new(),
        next_key: 0,
        writes: Vec::new(),
        line: EventLine::new(),
    };
    for _ in 0..cfg.keys {
        let k = sim.fresh_key();
        sim.slot_key.push(k);
    }
    let mut procs: Vec<(u64, Option<Running>)> = (0..cfg.processes).map(|p| (p, None)).collect();
    let mut invoked = 0u64;
    let mut busy = 0usize;
    while invoked < cfg.txns || busy > 0 {
        let i = sim.rng.below(procs.len() as u64) as usize;
        match procs[i].1.take() {
            None if invoked < cfg.txns => {
                let p = procs[i].0;
                procs[i].1 = Some(sim.new_txn(p)?);
                invoked += 1;
                busy += 1;
            }
            None => {}
            Some(mut r) => {
                if sim.step(&mut r) {
                    if let Some(next) = sim.commit(r)? {
                        procs[i].0 = next;
                    }
                    busy -= 1;
                } else {
                    procs[i].1 = Some(r);
                }
            }
        }
    }
    let max_process = procs.iter().map(|p| p.0).max().unwrap_or(0);
    let injected = match cfg.inject {
        Some(kind) => Some(inject(&mut sim, kind, max_process + 1)?),
        None => None,
    };
    sim.out.flush()?;
    Ok(injected)
}

/// Adds the transactions of one anomaly, concurrent with each other, on
/// fresh keys and processes from `first_process`.
fn inject<W: Write>(
    sim: &mut Sim<'_, W>,
    kind: TxnInject,
    first_process: u64,
) -> Result<TxnInjected, SynthError> {
    let a = sim.fresh_key();
    let b = sim.fresh_key();
    let list = sim.cfg.kind == TxnKind::ListAppend;
    let w = |k: u64, v: u64| Op::Write(k, v);
    // The value a read returns: the list of values, or the last one.
    let seen = |vals: &[u64]| -> Value {
        match (list, vals.last()) {
            (_, None) => Value::Null,
            (true, _) => json!(vals),
            (false, Some(v)) => json!(v),
        }
    };
    let r = |k: u64| Op::Read(k);
    let txns: Vec<Vec<(Op, Value)>> = match kind {
        // Each reads the other's write.
        TxnInject::G1c => vec![
            vec![(w(a, 1), Value::Null), (r(b), seen(&[1]))],
            vec![(w(b, 1), Value::Null), (r(a), seen(&[1]))],
        ],
        // T2 sees T1's write of b but not of a; a later read orders a.
        TxnInject::GSingle => vec![
            vec![(w(a, 1), Value::Null), (w(b, 1), Value::Null)],
            vec![(r(a), seen(&[])), (r(b), seen(&[1]))],
            vec![(r(a), seen(&[1]))],
        ],
        TxnInject::WriteSkew => vec![
            vec![(r(a), seen(&[])), (w(b, 1), Value::Null)],
            vec![(r(b), seen(&[])), (w(a, 1), Value::Null)],
            vec![(r(a), seen(&[1])), (r(b), seen(&[1]))],
        ],
        TxnInject::LostUpdate => vec![
            vec![(r(a), seen(&[])), (w(a, 1), Value::Null)],
            vec![(r(a), seen(&[])), (w(a, 2), Value::Null)],
            vec![(r(a), seen(&[1, 2]))],
        ],
    };
    let mut indices = Vec::new();
    for (i, t) in txns.iter().enumerate() {
        let ops: Vec<Value> = t.iter().map(|(o, _)| sim.mop(o, None)).collect();
        indices.push(sim.emit(
            first_process + i as u64,
            EventType::Invoke,
            Value::Array(ops),
        )?);
    }
    for (i, t) in txns.iter().enumerate() {
        let ops: Vec<Value> = t.iter().map(|(o, v)| sim.mop(o, Some(v.clone()))).collect();
        sim.emit(first_process + i as u64, EventType::Ok, Value::Array(ops))?;
    }
    Ok(TxnInjected {
        kind,
        indices,
        keys: vec![a.to_string(), b.to_string()],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(isolation: Isolation, inject: Option<TxnInject>) -> TxnSynthConfig {
        TxnSynthConfig {
            kind: TxnKind::ListAppend,
            isolation,
            txns: 200,
            processes: 5,
            keys: 4,
            writes_per_key: 32,
            seed: 7,
            info: 0.0,
            fail: 0.0,
            inject,
        }
    }

    #[test]
    fn same_seed_same_bytes_and_injection_at_the_end() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        let c = cfg(Isolation::ReadCommitted, Some(TxnInject::WriteSkew));
        let ia = synthesize(&c, &mut a).unwrap().unwrap();
        synthesize(&c, &mut b).unwrap();
        assert_eq!(a, b);
        let text = String::from_utf8(a).unwrap();
        assert_eq!(text.lines().count(), 2 * 200 + 6);
        assert_eq!(ia.indices.len(), 3);
        assert!(ia.to_json_line().contains("write-skew"));
    }
}
