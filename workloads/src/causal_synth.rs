//! A seeded generator of large read/write histories of a *causally
//! consistent but not linearizable* store, for the benchmarks and tests of
//! the session and causal checkers ([`faultline_checkers::session`],
//! [`faultline_checkers::causal`]).
//!
//! # Simulation
//!
//! The store keeps one log of writes. Each of `replicas` replicas has
//! applied a prefix of the log, and serves reads from it; a replica lags
//! the end of the log by up to `max_lag` writes, so reads are often stale.
//! Each session (client process) carries a token, the length of the prefix
//! it has seen (its reads) or made (its writes): a replica catches up to the
//! session's token before serving it. A write is appended to the log when
//! it completes. Sessions mostly stick to a replica and sometimes move.
//!
//! Every read returns the last write of its key in a prefix of the log at
//! least as long as anything its session saw before, so the history is
//! sequentially consistent: it satisfies the four session guarantees and
//! CC, CCv and CM, while it is not linearizable (stale reads).
//!
//! Each session has at most one operation in flight; invocations and
//! completions interleave. Written values come from one counter starting at
//! 1 (unique); keys are `0..keys`; the initial value is `null` (absent).
//!
//! # Injection
//!
//! With [`CausalSynthConfig::inject`], once half of the operations are
//! done, the next read of a key its own session wrote before (and never
//! read a value of) returns the initial value instead: a read-your-writes
//! violation and a WriteCOInitRead (so not CC, CCv or CM), and nothing
//! else, reported as [`Injected`].

use std::io::{self, Write};

use faultline_checkers::EventType;
use faultline_checkers::format::writer::EventLine;

use crate::rng::Rng;

/// What to generate.
#[derive(Clone, Debug)]
pub struct CausalSynthConfig {
    /// Number of operations.
    pub ops: u64,
    /// Number of sessions (client processes).
    pub sessions: u32,
    /// Number of keys.
    pub keys: u32,
    /// Fraction of writes.
    pub writes: f64,
    /// Number of replicas.
    pub replicas: u32,
    /// Largest lag of a replica behind the log, in writes.
    pub max_lag: u64,
    /// Seed.
    pub seed: u64,
    /// Inject one read-your-writes violation.
    pub inject: bool,
}

impl Default for CausalSynthConfig {
    fn default() -> Self {
        CausalSynthConfig {
            ops: 10_000,
            sessions: 10,
            keys: 100,
            writes: 0.5,
            replicas: 3,
            max_lag: 200,
            seed: 1,
            inject: false,
        }
    }
}

/// The injected violation: the read that returned the initial value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Injected {
    /// `index` of the read's completion event.
    pub index: u64,
    /// `index` of its invocation.
    pub invoke_index: u64,
    /// Its process.
    pub process: u32,
    /// Its key.
    pub key: u32,
    /// The value the store would have returned.
    pub original: u64,
    /// `index` of the completion of the session's earlier write of the key.
    pub write_index: u64,
}

#[derive(Clone, Copy)]
enum Pending {
    Read { key: u32, invoke: u64 },
    Write { key: u32, value: u64 },
}

struct Replica {
    applied: usize,
    state: Vec<u64>,
}

impl Replica {
    fn catch_up(&mut self, log: &[(u32, u64)], to: usize) {
        let to = to.min(log.len());
        while self.applied < to {
            let (k, v) = log[self.applied];
            self.state[k as usize] = v;
            self.applied += 1;
        }
    }
}

/// Starts the line of an event: `[index, time, process, key]`, its type
/// and function (the value comes next).
fn event<'l>(line: &'l mut EventLine, at: [u64; 4], kind: EventType, f: &str) -> &'l mut EventLine {
    let [index, time, process, key] = at;
    line.start()
        .u64("index", index)
        .u64("time", time)
        .u64("process", process)
        .event_type(kind)
        .str("f", f)
        .u64("key", key)
}

/// Writes the history as faultline JSON Lines to `out`. Returns the
/// injected violation, if one was asked for and found a place.
pub fn synthesize_causal(cfg: &CausalSynthConfig, out: impl Write) -> io::Result<Option<Injected>> {
    let mut out = io::BufWriter::with_capacity(1 << 20, out);
    let mut line = EventLine::new();
    let sessions = cfg.sessions.max(1) as usize;
    let keys = cfg.keys.max(1);
    let mut rng = Rng::new(cfg.seed);
    let mut log: Vec<(u32, u64)> = Vec::with_capacity(cfg.ops as usize / 2 + 16);
    let mut replicas: Vec<Replica> = (0..cfg.replicas.max(1))
        .map(|_| Replica {
            applied: 0,
            state: vec![0; keys as usize],
        })
        .collect();
    let mut token = vec![0usize; sessions];
    let mut at = vec![0usize; sessions];
    for (s, a) in at.iter_mut().enumerate() {
        *a = s % replicas.len();
    }
    let mut pending: Vec<Option<Pending>> = vec![None; sessions];
    // Keys each session wrote, with the completion index of the write.
    let mut wrote: Vec<std::collections::HashMap<u32, u64>> =
        vec![std::collections::HashMap::new(); sessions];
    // Keys each session read a value of (an injection there would also
    // break monotonic reads).
    let mut read: Vec<std::collections::HashSet<u32>> =
        vec![std::collections::HashSet::new(); sessions];
    let mut invoked = 0u64;
    let mut completed = 0u64;
    let mut index = 0u64;
    let mut time = 0u64;
    let mut next_value = 1u64;
    let mut injected: Option<Injected> = None;
    while completed < cfg.ops {
        let s = rng.below(sessions as u64) as usize;
        time += 1 + rng.below(1000);
        match pending[s] {
            None => {
                if invoked >= cfg.ops {
                    continue;
                }
                let key = rng.below(keys as u64) as u32;
                if rng.chance(cfg.writes) {
                    let value = next_value;
                    next_value += 1;
                    let head = event(
                        &mut line,
                        [index, time, s as u64, u64::from(key)],
                        EventType::Invoke,
                        "write",
                    );
                    out.write_all(head.u64("value", value).finish())?;
                    pending[s] = Some(Pending::Write { key, value });
                } else {
                    let head = event(
                        &mut line,
                        [index, time, s as u64, u64::from(key)],
                        EventType::Invoke,
                        "read",
                    );
                    out.write_all(head.raw("value", |b| b.extend_from_slice(b"null")).finish())?;
                    pending[s] = Some(Pending::Read { key, invoke: index });
                }
                index += 1;
                invoked += 1;
            }
            Some(Pending::Write { key, value }) => {
                log.push((key, value));
                token[s] = log.len();
                wrote[s].insert(key, index);
                let head = event(
                    &mut line,
                    [index, time, s as u64, u64::from(key)],
                    EventType::Ok,
                    "write",
                );
                out.write_all(head.u64("value", value).finish())?;
                index += 1;
                completed += 1;
                pending[s] = None;
            }
            Some(Pending::Read { key, invoke }) => {
                if rng.chance(0.01) {
                    at[s] = rng.below(replicas.len() as u64) as usize;
                }
                let r = &mut replicas[at[s]];
                let lag = rng.below(cfg.max_lag + 1) as usize;
                let to = token[s].max(log.len().saturating_sub(lag)).max(r.applied);
                r.catch_up(&log, to);
                token[s] = r.applied;
                let mut v = r.state[key as usize];
                if cfg.inject
                    && injected.is_none()
                    && completed >= cfg.ops / 2
                    && v != 0
                    && !read[s].contains(&key)
                {
                    if let Some(&w) = wrote[s].get(&key) {
                        injected = Some(Injected {
                            index,
                            invoke_index: invoke,
                            process: s as u32,
                            key,
                            original: v,
                            write_index: w,
                        });
                        v = 0;
                    }
                }
                if v != 0 {
                    read[s].insert(key);
                }
                if v == 0 {
                    let head = event(
                        &mut line,
                        [index, time, s as u64, u64::from(key)],
                        EventType::Ok,
                        "read",
                    );
                    out.write_all(head.raw("value", |b| b.extend_from_slice(b"null")).finish())?;
                } else {
                    let head = event(
                        &mut line,
                        [index, time, s as u64, u64::from(key)],
                        EventType::Ok,
                        "read",
                    );
                    out.write_all(head.u64("value", v).finish())?;
                }
                index += 1;
                completed += 1;
                pending[s] = None;
            }
        }
    }
    out.flush()?;
    Ok(injected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes_and_an_injection() {
        let cfg = CausalSynthConfig {
            ops: 2000,
            inject: true,
            ..CausalSynthConfig::default()
        };
        let mut a = Vec::new();
        let inj = synthesize_causal(&cfg, &mut a).unwrap();
        let mut b = Vec::new();
        assert_eq!(synthesize_causal(&cfg, &mut b).unwrap(), inj);
        assert_eq!(a, b);
        let inj = inj.expect("an injection");
        let text = String::from_utf8(a).unwrap();
        assert_eq!(text.lines().count(), 4000);
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{{\"index\":{},", inj.index)))
            .unwrap();
        assert!(line.ends_with("\"value\":null}"), "{line}");
        assert!(line.contains("\"f\":\"read\""), "{line}");
    }

    #[test]
    fn the_checkers_agree() {
        use faultline_checkers::checks::Check;
        use faultline_checkers::format::{self, Format};
        use faultline_checkers::rw_checks::{RwOptions, run_rw};
        use faultline_checkers::verdict::Validity;
        let all: Vec<Check> = Check::ALL.into_iter().filter(|c| c.needs_rw()).collect();
        for seed in 1..4 {
            let cfg = CausalSynthConfig {
                ops: 20_000,
                sessions: 8,
                keys: 2000,
                seed,
                ..CausalSynthConfig::default()
            };
            let mut data = Vec::new();
            assert!(synthesize_causal(&cfg, &mut data).unwrap().is_none());
            let (h, _) = format::read_from("synth", &data[..], Format::Json).unwrap();
            let ran = run_rw(&h, &all, &RwOptions::default()).unwrap();
            for r in &ran {
                assert_eq!(
                    r.result.valid,
                    Validity::Valid,
                    "seed {seed} {}",
                    r.check.name()
                );
            }
            // The store is not linearizable: some read is stale.
            let lin = faultline_checkers::linear::check(
                &h,
                &faultline_checkers::linear::LinearOptions::new(faultline_checkers::ModelKind::Kv),
            )
            .unwrap();
            assert_eq!(lin.valid, Validity::Invalid, "seed {seed}");
            // With the injection: read-your-writes and the causal variants
            // fail, and the ryw witness is the injected read.
            let mut data = Vec::new();
            let inj = synthesize_causal(
                &CausalSynthConfig {
                    inject: true,
                    ..cfg
                },
                &mut data,
            )
            .unwrap()
            .expect("injected");
            let (h, _) = format::read_from("synth", &data[..], Format::Json).unwrap();
            let ran = run_rw(&h, &all, &RwOptions::default()).unwrap();
            for r in &ran {
                let want = if matches!(r.check, Check::Ryw | Check::Cc | Check::Ccv | Check::Cm) {
                    Validity::Invalid
                } else {
                    Validity::Valid
                };
                assert_eq!(r.result.valid, want, "seed {seed} {}", r.check.name());
            }
            let ryw = &ran[0].result.anomalies;
            assert_eq!(ryw.len(), 1, "seed {seed}");
            let ops = ryw[0]["ops"].as_array().unwrap();
            assert_eq!(
                ops.last().unwrap()["complete_index"],
                inj.index,
                "seed {seed}"
            );
            assert_eq!(ops[0]["complete_index"], inj.write_index, "seed {seed}");
        }
    }
}
