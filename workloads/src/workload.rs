//! Workloads for `faultline run`: seeded, pure generators of client
//! operations (the checks that judge each workload are
//! `faultline_checkers::plan::Plan::for_workload`).
//!
//! Each client worker has its own generator, seeded from the run's seed and
//! the worker's slot, so the same seed gives every worker the same sequence
//! of operations whatever the timing. Written values (and set elements) are
//! unique across the run: `n * concurrency + slot + 1` for the worker's
//! `n`-th write.

use std::str::FromStr;

use serde::Serialize;
use serde_json::{Value, json};

use crate::rng::{Rng, splitmix64};
use crate::txn_workloads::{self, TxnGenerator};

pub use faultline_checkers::workload::WorkloadKind;

/// How keys are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyDist {
    /// Every key equally likely.
    Uniform,
    /// Key `i` with weight `1 / (i + 1)^s`: a few hot keys.
    Zipf(f64),
}

impl FromStr for KeyDist {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "uniform" {
            return Ok(KeyDist::Uniform);
        }
        let exp = match s {
            "zipf" => Some(1.0),
            _ => s.strip_prefix("zipf:").and_then(|e| e.parse::<f64>().ok()),
        };
        match exp {
            Some(e) if e > 0.0 && e.is_finite() => Ok(KeyDist::Zipf(e)),
            _ => Err(format!(
                "unknown key distribution `{s}` (expected uniform, zipf or zipf:EXPONENT)"
            )),
        }
    }
}

/// Relative weights of the operations (normalised).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct OpMix {
    /// Reads.
    pub read: f64,
    /// Writes (register, kv), adds (set) or increments (counter).
    pub write: f64,
    /// Compare-and-set (register, kv).
    pub cas: f64,
}

impl OpMix {
    /// The default mix of a workload.
    pub fn default_for(kind: WorkloadKind) -> OpMix {
        match kind {
            WorkloadKind::Register | WorkloadKind::Kv => OpMix {
                read: 0.5,
                write: 0.4,
                cas: 0.1,
            },
            WorkloadKind::Set | WorkloadKind::Counter => OpMix {
                read: 0.2,
                write: 0.8,
                cas: 0.0,
            },
            // Micro-ops of list-append and rw-register; transactions of the
            // bank (reads of every balance or transfers); seats only book.
            WorkloadKind::ListAppend
            | WorkloadKind::RwRegister
            | WorkloadKind::Bank
            | WorkloadKind::Seats => OpMix {
                read: 0.5,
                write: 0.5,
                cas: 0.0,
            },
        }
    }

    /// Parses `read=0.5,write=0.4,cas=0.1` (names not given get 0; `add`
    /// and `incr` are other names of `write`).
    pub fn parse(s: &str) -> Result<OpMix, String> {
        let mut m = OpMix {
            read: 0.0,
            write: 0.0,
            cas: 0.0,
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, w) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}` is not NAME=WEIGHT"))?;
            let w: f64 = w
                .trim()
                .parse()
                .ok()
                .filter(|w: &f64| *w >= 0.0 && w.is_finite())
                .ok_or_else(|| format!("weight of `{name}` is not a number >= 0"))?;
            match name.trim() {
                "read" => m.read = w,
                "write" | "add" | "incr" => m.write = w,
                "cas" => m.cas = w,
                other => return Err(format!("unknown operation `{other}` (read, write, cas)")),
            }
        }
        // Scaled by the largest weight first, so that huge weights (1e308)
        // cannot overflow the sum, then normalised to add up to 1.
        let max = m.read.max(m.write).max(m.cas);
        if max <= 0.0 {
            return Err("the weights add up to 0".into());
        }
        let (r, w, c) = (m.read / max, m.write / max, m.cas / max);
        let total = r + w + c;
        Ok(OpMix {
            read: r / total,
            write: w / total,
            cas: c / total,
        })
    }
}

/// What to generate.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WorkloadConfig {
    /// The workload.
    pub kind: WorkloadKind,
    /// Number of keys (kv; the keys in use at once for list-append and
    /// rw-register; accounts for bank; seats for seats); 1 for the others.
    pub keys: u32,
    /// Key distribution (kv).
    pub key_dist: KeyDist,
    /// Operation mix.
    pub mix: OpMix,
    /// Whether the store supports cas (else cas becomes write).
    pub cas: bool,
    /// The run's seed.
    pub seed: u64,
    /// Number of client workers.
    pub concurrency: u32,
}

impl WorkloadConfig {
    /// Defaults for `kind`.
    pub fn new(kind: WorkloadKind, seed: u64, concurrency: u32) -> Self {
        WorkloadConfig {
            kind,
            keys: match kind {
                WorkloadKind::Kv => 8,
                k if k.is_txn() => txn_workloads::default_keys(k),
                _ => 1,
            },
            key_dist: KeyDist::Uniform,
            mix: OpMix::default_for(kind),
            cas: true,
            seed,
            concurrency,
        }
    }

    /// The keys this workload uses, in order.
    pub fn key_names(&self) -> Vec<String> {
        match self.kind {
            WorkloadKind::Register => vec!["r".into()],
            WorkloadKind::Kv => (0..self.keys.max(1)).map(|i| format!("k{i}")).collect(),
            WorkloadKind::Set => vec!["set".into()],
            WorkloadKind::Counter => vec!["counter".into()],
            // Transactions name their keys in their micro-ops.
            _ => Vec::new(),
        }
    }
}

/// One operation to invoke.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OpSpec {
    /// read, write, cas, add or incr.
    pub f: &'static str,
    /// The key.
    pub key: String,
    /// The argument (null for reads).
    pub value: Value,
}

/// The generator of one worker.
#[derive(Debug)]
pub struct Generator {
    rng: Rng,
    slot: u64,
    concurrency: u64,
    writes: u64,
    keys: Vec<String>,
    /// Cumulative key weights (for zipf).
    cumulative: Vec<f64>,
    /// This worker's last written value per key (for cas).
    last_written: Vec<Option<u64>>,
    cfg: WorkloadConfig,
    /// The transactional workloads' generator.
    txn: Option<TxnGenerator>,
}

impl Generator {
    /// The generator of worker `slot` (0-based, < concurrency).
    pub fn new(cfg: &WorkloadConfig, slot: u32) -> Generator {
        let mut s = cfg.seed ^ 0x6a09_e667_f3bc_c908;
        for _ in 0..=slot {
            splitmix64(&mut s);
        }
        let keys = cfg.key_names();
        let cumulative = match cfg.key_dist {
            KeyDist::Uniform => Vec::new(),
            KeyDist::Zipf(e) => {
                let mut acc = 0.0;
                keys.iter()
                    .enumerate()
                    .map(|(i, _)| {
                        acc += 1.0 / ((i + 1) as f64).powf(e);
                        acc
                    })
                    .collect()
            }
        };
        Generator {
            rng: Rng::new(splitmix64(&mut s)),
            slot: u64::from(slot),
            concurrency: u64::from(cfg.concurrency.max(1)),
            writes: 0,
            last_written: vec![None; keys.len()],
            keys,
            cumulative,
            txn: cfg.kind.is_txn().then(|| TxnGenerator::new(cfg)),
            cfg: cfg.clone(),
        }
    }

    fn unique(&mut self) -> u64 {
        let v = self.writes * self.concurrency + self.slot + 1;
        self.writes += 1;
        v
    }

    fn pick_key(&mut self) -> usize {
        if self.keys.len() <= 1 {
            return 0;
        }
        if self.cumulative.is_empty() {
            return self.rng.below(self.keys.len() as u64) as usize;
        }
        let total = self.cumulative.last().copied().unwrap_or(1.0);
        let x = self.rng.f64() * total;
        self.cumulative
            .partition_point(|&c| c < x)
            .min(self.keys.len() - 1)
    }

    /// The next operation of this worker.
    pub fn next_op(&mut self) -> OpSpec {
        if let Some(mut t) = self.txn.take() {
            let mut rng = std::mem::replace(&mut self.rng, Rng::new(0));
            let op = t.next(&mut rng, &mut || self.unique());
            self.rng = rng;
            self.txn = Some(t);
            return op;
        }
        let k = self.pick_key();
        let key = self.keys[k].clone();
        let m = self.cfg.mix;
        let cas_w = if self.cfg.cas { m.cas } else { 0.0 };
        let x = self.rng.f64() * (m.read + m.write + cas_w);
        if x < m.read {
            return OpSpec {
                f: "read",
                key,
                value: Value::Null,
            };
        }
        let is_cas = x >= m.read + m.write;
        match self.cfg.kind {
            WorkloadKind::Set => {
                let v = self.unique();
                OpSpec {
                    f: "add",
                    key,
                    value: json!(v),
                }
            }
            WorkloadKind::Counter => OpSpec {
                f: "incr",
                key,
                value: json!(1),
            },
            _ => {
                let v = self.unique();
                let prev = self.last_written[k].replace(v);
                match prev {
                    Some(expected) if is_cas => OpSpec {
                        f: "cas",
                        key,
                        value: json!([expected, v]),
                    },
                    _ => OpSpec {
                        f: "write",
                        key,
                        value: json!(v),
                    },
                }
            }
        }
    }
}

/// The final reads: one read of every key (run on every node after healing).
pub fn final_reads(cfg: &WorkloadConfig) -> Vec<OpSpec> {
    if cfg.kind.is_txn() {
        return txn_workloads::final_reads(cfg);
    }
    cfg.key_names()
        .into_iter()
        .map(|key| OpSpec {
            f: "read",
            key,
            value: Value::Null,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_ops_and_unique_values() {
        let cfg = WorkloadConfig::new(WorkloadKind::Kv, 9, 4);
        let run = |slot| {
            let mut g = Generator::new(&cfg, slot);
            (0..500).map(|_| g.next_op()).collect::<Vec<_>>()
        };
        assert_eq!(run(0), run(0));
        assert_ne!(run(0), run(1));
        let mut seen = std::collections::HashSet::new();
        for slot in 0..4 {
            for op in run(slot) {
                match op.f {
                    "write" => assert!(seen.insert(op.value.as_u64().expect("int"))),
                    "cas" => assert!(seen.insert(op.value[1].as_u64().expect("int"))),
                    "read" => assert!(op.value.is_null()),
                    other => panic!("unexpected {other}"),
                }
            }
        }
        assert!(seen.len() > 500);
        let other = WorkloadConfig::new(WorkloadKind::Kv, 10, 4);
        let mut g = Generator::new(&other, 0);
        let ops: Vec<_> = (0..500).map(|_| g.next_op()).collect();
        assert_ne!(ops, run(0));
    }

    #[test]
    fn mixes_and_keys() {
        let mut cfg = WorkloadConfig::new(WorkloadKind::Kv, 1, 2);
        cfg.keys = 4;
        cfg.key_dist = KeyDist::Zipf(1.0);
        let mut g = Generator::new(&cfg, 0);
        let mut per_key = [0u32; 4];
        let mut cas = 0;
        for _ in 0..4000 {
            let op = g.next_op();
            per_key[op.key[1..].parse::<usize>().expect("k<i>")] += 1;
            cas += u32::from(op.f == "cas");
        }
        assert!(per_key[0] > per_key[3] * 2, "zipf favours k0: {per_key:?}");
        assert!(cas > 100, "some cas: {cas}");
        cfg.cas = false;
        let mut g = Generator::new(&cfg, 0);
        assert!((0..1000).all(|_| g.next_op().f != "cas"));

        let set = WorkloadConfig::new(WorkloadKind::Set, 1, 2);
        let mut g = Generator::new(&set, 1);
        let ops: Vec<_> = (0..100).map(|_| g.next_op()).collect();
        assert!(
            ops.iter()
                .all(|o| o.key == "set" && (o.f == "add" || o.f == "read"))
        );
        assert_eq!(final_reads(&set).len(), 1);
        assert_eq!(OpMix::parse("read=1,add=3").expect("mix").write, 0.75);
        // Huge weights keep their ratio (issue 15: 1e308 + 1e308 overflowed
        // to infinity and every operation became a cas).
        let huge = OpMix::parse("read=1e308,write=1e308").expect("mix");
        assert_eq!((huge.read, huge.write, huge.cas), (0.5, 0.5, 0.0));
        assert!(OpMix::parse("read=x").is_err());
        assert!(OpMix::parse("delete=1").is_err());
        assert!("zipf:0".parse::<KeyDist>().is_err());
    }
}
