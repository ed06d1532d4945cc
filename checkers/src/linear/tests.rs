//! Differential tests: the optimised search against a brute-force search
//! with no cache and no pruning, on many small random histories.

use serde_json::{Value, json};

use super::search::{Budget, SearchResult, SearchStats, search};
use crate::history::{Event, EventType, FailMeaning, HistoryBuilder, NilRead, Process, Semantics};
use crate::model::multi_register::MultiRegisterModel;
use crate::model::mutex::MutexModel;
use crate::model::register::RegisterModel;
use crate::model::{EncodeOptions, Entry, Model, ModelKind, partition};

pub(super) struct Rng(pub(super) u64);
impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn brute<M: Model>(m: &M, entries: &[Entry<M::Op>], placed: &mut Vec<bool>, s: &M::State) -> bool {
    let min_ret = entries
        .iter()
        .zip(placed.iter())
        .filter(|(e, p)| !**p && e.ret.is_some())
        .map(|(e, _)| e.ret.unwrap_or(u32::MAX))
        .min();
    let Some(min_ret) = min_ret else { return true };
    for i in 0..entries.len() {
        if placed[i] || entries[i].call > min_ret {
            continue;
        }
        if let Some(s2) = m.step(s, &entries[i].op) {
            placed[i] = true;
            let ok = brute(m, entries, placed, &s2);
            placed[i] = false;
            if ok {
                return true;
            }
        }
    }
    false
}

/// A random history: `procs` processes, `ops` operations, functions from
/// `fs`, values from `0..vals`.
fn random_events(
    rng: &mut Rng,
    procs: i64,
    ops: usize,
    gen_op: &mut dyn FnMut(&mut Rng) -> (String, Value, Value),
) -> Vec<Event> {
    let mut events = Vec::new();
    let mut open: Vec<Option<(String, Value, Value)>> = vec![None; procs as usize];
    let mut next_proc: Vec<i64> = (0..procs).collect();
    let mut started = 0;
    let mut line = 0;
    while started < ops || open.iter().any(|o| o.is_some()) {
        let p = rng.below(procs as u64) as usize;
        line += 1;
        match open[p].take() {
            None if started < ops => {
                let (f, inv, res) = gen_op(rng);
                events.push(Event {
                    line,
                    index: None,
                    time: None,
                    process: Process::Client(next_proc[p]),
                    kind: EventType::Invoke,
                    f: f.as_str().into(),
                    key: None,
                    value: inv.clone(),
                    has_value: true,
                    extra: Default::default(),
                });
                open[p] = Some((f, inv, res));
                started += 1;
            }
            None => {}
            Some((f, inv, res)) => {
                let kind = match rng.below(10) {
                    0 | 1 => EventType::Info,
                    2 => EventType::Fail,
                    _ => EventType::Ok,
                };
                // Some operations never complete.
                if kind == EventType::Info && rng.below(3) == 0 {
                    next_proc[p] += procs;
                    continue;
                }
                let value = if kind == EventType::Ok { res } else { inv };
                events.push(Event {
                    line,
                    index: None,
                    time: None,
                    process: Process::Client(next_proc[p]),
                    kind,
                    f: f.into(),
                    key: None,
                    value,
                    has_value: true,
                    extra: Default::default(),
                });
                if kind == EventType::Info {
                    next_proc[p] += procs;
                }
            }
        }
    }
    events
}

pub(super) fn build(events: Vec<Event>, sem: Semantics) -> crate::history::History {
    let mut b = HistoryBuilder::new("random", sem);
    for e in events {
        b.push(e).expect("generated history is well-formed");
    }
    b.finish()
}

fn compare<M: Model>(m: &M, entries: &[Entry<M::Op>], case: usize) -> bool {
    let budget = Budget::new(None, usize::MAX);
    let mut stats = SearchStats::default();
    let fast = search(m, entries, &budget, &mut stats);
    let slow = brute(m, entries, &mut vec![false; entries.len()], &m.init());
    match (&fast, slow) {
        (SearchResult::Linearizable, true) => true,
        (SearchResult::NotLinearizable(stuck), false) => {
            assert!(
                entries[stuck.op].ret.is_some(),
                "case {case}: the stuck op is a completed one"
            );
            false
        }
        _ => panic!(
            "case {case}: search says {fast:?}, brute force says {slow}; entries {entries:#?}"
        ),
    }
}

#[test]
fn register_search_matches_brute_force() {
    let mut rng = Rng(42);
    let (mut valid, mut invalid) = (0, 0);
    for case in 0..4000 {
        let vals = 1 + rng.below(3) as i64;
        let mut gen_op = |r: &mut Rng| -> (String, Value, Value) {
            match r.below(3) {
                0 => (
                    "read".into(),
                    Value::Null,
                    json!(r.below(vals as u64 + 1) as i64 - 1)
                        .as_i64()
                        .map(|v| if v < 0 { Value::Null } else { json!(v) })
                        .unwrap_or(Value::Null),
                ),
                1 => {
                    let v = json!(r.below(vals as u64));
                    ("write".into(), v.clone(), v)
                }
                _ => {
                    let v = json!([r.below(vals as u64), r.below(vals as u64)]);
                    ("cas".into(), v.clone(), v)
                }
            }
        };
        let procs = 2 + rng.below(3) as i64;
        let n = 2 + rng.below(7) as usize;
        let events = random_events(&mut rng, procs, n, &mut gen_op);
        let sem = Semantics {
            nil_read: if rng.below(2) == 0 {
                NilRead::Absent
            } else {
                NilRead::Unknown
            },
            fail: if rng.below(2) == 0 {
                FailMeaning::NotApplied
            } else {
                FailMeaning::CasCompareFailed
            },
            default_initial: None,
        };
        let h = build(events, sem);
        let enc = EncodeOptions::new(&h, None);
        let mut m = RegisterModel::new(ModelKind::CasRegister);
        m.set_initial(&enc.initial);
        let parts = partition(&h, true, |op| m.encode(op, &enc)).expect("encodes");
        for p in &parts {
            if compare(&m, &p.entries, case) {
                valid += 1
            } else {
                invalid += 1
            }
        }
    }
    // Both verdicts must be well represented for the comparison to mean much.
    assert!(
        valid > 500 && invalid > 500,
        "valid {valid}, invalid {invalid}"
    );
}

#[test]
fn mutex_and_multi_register_match_brute_force() {
    let mut rng = Rng(7);
    let (mut valid, mut invalid) = (0, 0);
    for case in 0..2000 {
        let mut gen_mutex = |r: &mut Rng| -> (String, Value, Value) {
            let f = if r.below(2) == 0 {
                "acquire"
            } else {
                "release"
            };
            (f.into(), Value::Null, Value::Null)
        };
        let n = 2 + rng.below(6) as usize;
        let events = random_events(&mut rng, 3, n, &mut gen_mutex);
        let h = build(events, Semantics::default());
        let m = MutexModel;
        let parts = partition(&h, false, |op| m.encode(op)).expect("encodes");
        if compare(&m, &parts[0].entries, case) {
            valid += 1
        } else {
            invalid += 1
        }

        let mut gen_txn = |r: &mut Rng| -> (String, Value, Value) {
            let mut inv = Vec::new();
            let mut res = Vec::new();
            for _ in 0..1 + r.below(2) {
                let k = if r.below(2) == 0 { "x" } else { "y" };
                if r.below(2) == 0 {
                    inv.push(json!(["read", k, null]));
                    res.push(json!(["read", k, r.below(3)]));
                } else {
                    let v = r.below(3);
                    inv.push(json!(["write", k, v]));
                    res.push(json!(["write", k, v]));
                }
            }
            ("txn".into(), Value::Array(inv), Value::Array(res))
        };
        let n = 2 + rng.below(6) as usize;
        let events = random_events(&mut rng, 3, n, &mut gen_txn);
        let h = build(events, Semantics::default());
        let enc = EncodeOptions::new(&h, Some(&json!(0)));
        let mut m = MultiRegisterModel::new();
        m.set_initial(&enc.initial);
        let parts = partition(&h, false, |op| m.encode(op, &enc)).expect("encodes");
        if compare(&m, &parts[0].entries, case) {
            valid += 1
        } else {
            invalid += 1
        }
    }
    assert!(
        valid > 300 && invalid > 300,
        "valid {valid}, invalid {invalid}"
    );
}
