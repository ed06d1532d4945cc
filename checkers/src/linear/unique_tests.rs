//! Differential tests: the polynomial decision of unique-value keys against
//! the search, on thousands of random histories (registers with cas, lists
//! with put/append/get), valid and invalid, with `info`, `fail` and pending
//! operations.

use serde_json::{Value, json};

use super::search::{Budget, SearchResult, SearchStats, search};
use super::tests::{Rng, build};
use super::unique::decide;
use crate::history::{Event, EventType, Process, Semantics};
use crate::model::register::RegisterModel;
use crate::model::{EncodeOptions, ModelKind, partition};

#[derive(Clone, Copy, PartialEq)]
enum Family {
    /// read, write, cas on integers.
    Register,
    /// get, put, append on strings (Porcupine's kv).
    Lists,
    /// Lists whose pieces may run together ("a", "b", "ab"), so that some
    /// reads parse in two ways and the key falls back to the search.
    Ambiguous,
}

struct InFlight {
    f: &'static str,
    invoke: Value,
    /// The result once it took effect (`None` for a cas that found another
    /// value: it fails).
    applied: Option<Option<Value>>,
    process: i64,
}

fn event(line: usize, process: i64, kind: EventType, f: &str, value: Value) -> Event {
    Event {
        line,
        index: None,
        time: None,
        process: Process::Client(process),
        kind,
        f: f.into(),
        key: None,
        value,
        has_value: true,
        extra: Default::default(),
    }
}

/// A concurrent execution against a real object (so linearizable), then,
/// three times out of four, two ok reads (or one twice) changed to another value that occurred.
fn simulate(rng: &mut Rng, family: Family, procs: usize, ops: usize) -> Vec<Event> {
    let init = match family {
        Family::Register => Value::Null,
        _ => json!(""),
    };
    let mut state = init.clone();
    let mut fresh = 0u64;
    let mut seen: Vec<Value> = vec![init];
    let mut slots: Vec<Option<InFlight>> = (0..procs).map(|_| None).collect();
    let mut next_process: Vec<i64> = (0..procs as i64).collect();
    let mut events = Vec::new();
    let mut started = 0;
    while started < ops || slots.iter().any(Option::is_some) {
        let p = rng.below(procs as u64) as usize;
        let line = events.len() + 1;
        match slots[p].take() {
            None if started < ops => {
                fresh += 1;
                let piece = match family {
                    Family::Ambiguous => {
                        ["a", "b", "ab", "ba", "c"][rng.below(5) as usize].to_string()
                            + &"'".repeat(fresh as usize / 5)
                    }
                    _ => format!("x {fresh} y"),
                };
                let (f, invoke) = match (family, rng.below(3)) {
                    (_, 0) => (
                        if family == Family::Register {
                            "read"
                        } else {
                            "get"
                        },
                        Value::Null,
                    ),
                    (Family::Register, 1) => ("write", json!(fresh)),
                    (Family::Register, _) => {
                        let from = seen[rng.below(seen.len() as u64) as usize].clone();
                        ("cas", json!([from, fresh]))
                    }
                    (_, 1) if rng.below(3) == 0 => ("put", json!(piece)),
                    _ => ("append", json!(piece)),
                };
                events.push(event(
                    line,
                    next_process[p],
                    EventType::Invoke,
                    f,
                    invoke.clone(),
                ));
                slots[p] = Some(InFlight {
                    f,
                    invoke,
                    applied: None,
                    process: next_process[p],
                });
                started += 1;
            }
            None => {}
            Some(mut fl) if fl.applied.is_none() => {
                match rng.below(10) {
                    // Takes effect now.
                    0..=6 => {
                        let result = match fl.f {
                            "read" | "get" => Some(state.clone()),
                            "write" | "put" => {
                                state = fl.invoke.clone();
                                Some(state.clone())
                            }
                            "cas" => {
                                if state == fl.invoke[0] {
                                    state = fl.invoke[1].clone();
                                    Some(fl.invoke.clone())
                                } else {
                                    None
                                }
                            }
                            _ => {
                                let joined = format!(
                                    "{}{}",
                                    state.as_str().unwrap_or_default(),
                                    fl.invoke.as_str().unwrap_or_default()
                                );
                                state = json!(joined);
                                Some(fl.invoke.clone())
                            }
                        };
                        if !seen.contains(&state) {
                            seen.push(state.clone());
                        }
                        fl.applied = Some(result);
                        slots[p] = Some(fl);
                    }
                    // Ends without taking effect: fails, or is unknown.
                    7 => {
                        let kind = if rng.below(2) == 0 {
                            EventType::Fail
                        } else {
                            EventType::Info
                        };
                        events.push(event(line, fl.process, kind, fl.f, fl.invoke.clone()));
                        if kind == EventType::Info {
                            next_process[p] += procs as i64;
                        }
                    }
                    _ => slots[p] = Some(fl),
                }
            }
            Some(fl) => {
                let result = fl.applied.clone().flatten();
                let kind = match (result.is_some(), rng.below(20)) {
                    (false, _) => EventType::Fail,
                    (true, 0..=2) => EventType::Info,
                    (true, 3) => {
                        // Never completes.
                        next_process[p] += procs as i64;
                        continue;
                    }
                    _ => EventType::Ok,
                };
                let value = match kind {
                    EventType::Ok => result.unwrap_or(Value::Null),
                    _ => fl.invoke.clone(),
                };
                events.push(event(line, fl.process, kind, fl.f, value));
                if kind == EventType::Info {
                    next_process[p] += procs as i64;
                }
            }
        }
    }
    // Corrupt two ok reads three times out of four.
    if rng.below(4) != 0 {
        let reads: Vec<usize> = (0..events.len())
            .filter(|&i| events[i].kind == EventType::Ok && matches!(&*events[i].f, "read" | "get"))
            .collect();
        for _ in 0..2 {
            if !reads.is_empty() {
                let i = reads[rng.below(reads.len() as u64) as usize];
                // Often an old value: a stale read.
                let n = seen.len() as u64;
                let pick = if rng.below(2) == 0 {
                    rng.below(n.div_ceil(2))
                } else {
                    rng.below(n)
                };
                events[i].value = seen[pick as usize].clone();
            }
        }
    }
    events
}

/// Runs both on every partition of a random history; returns (valid,
/// invalid, fell back to the search).
fn compare(family: Family, cases: usize, seed: u64) -> (usize, usize, usize) {
    let mut rng = Rng(seed);
    let (mut valid, mut invalid, mut fallback) = (0, 0, 0);
    for case in 0..cases {
        let procs = 2 + rng.below(4) as usize;
        let ops = 4 + rng.below(if case % 10 == 0 { 13 } else { 7 }) as usize;
        let events = simulate(&mut rng, family, procs, ops);
        let sem = Semantics {
            default_initial: (family != Family::Register).then(|| json!("")),
            ..Semantics::default()
        };
        let h = build(events, sem);
        let enc = EncodeOptions::new(&h, None);
        let kind = match family {
            Family::Register => ModelKind::CasRegister,
            _ => ModelKind::Kv,
        };
        let mut m = RegisterModel::new(kind);
        m.set_initial(&enc.initial);
        let parts = partition(&h, true, |op| m.encode(op, &enc)).expect("encodes");
        for p in &parts {
            // No deadline: the cache's memory bound (counted in bytes, the same on
            // every machine and under any load) is what ends a search that
            // runs away, so the verdict of this test never depends on load.
            let budget = Budget::new(None, 256 << 20);
            let searched = search(&m, &p.entries, &budget, &mut SearchStats::default());
            if let SearchResult::GaveUp(why) = &searched {
                panic!(
                    "case {case}: the search gave up ({why:?}) on {:#?}",
                    p.entries
                );
            }
            let Some(decided) = decide(&m, &p.entries) else {
                fallback += 1;
                continue;
            };
            match (&searched, &decided) {
                (SearchResult::Linearizable, SearchResult::Linearizable) => valid += 1,
                (SearchResult::NotLinearizable(a), SearchResult::NotLinearizable(b)) => {
                    assert_eq!(
                        a.op, b.op,
                        "case {case}: both not linearizable, but the search stops at entry {} \
                         and the unique-value decision at {}: {:#?}",
                        a.op, b.op, p.entries
                    );
                    invalid += 1;
                }
                _ => panic!(
                    "case {case}: the search says {searched:?}, the unique-value decision \
                     {decided:?}; entries {:#?}",
                    p.entries
                ),
            }
        }
    }
    eprintln!(
        "{cases} histories: {valid} linearizable and {invalid} not, agreeing; {fallback} left to the search"
    );
    (valid, invalid, fallback)
}

/// Both verdicts well represented, and every key decided without the search.
fn all_unique_agree(family: Family, seed: u64) {
    let (valid, invalid, fallback) = compare(family, 4000, seed);
    assert!(
        valid > 1000 && invalid > 1000,
        "valid {valid}, invalid {invalid}"
    );
    assert_eq!(fallback, 0, "every key qualifies");
}

#[test]
fn unique_registers_match_the_search() {
    all_unique_agree(Family::Register, 11);
}

#[test]
fn unique_lists_match_the_search() {
    all_unique_agree(Family::Lists, 12);
}

#[test]
fn ambiguous_lists_fall_back_or_match_the_search() {
    let (valid, invalid, fallback) = compare(Family::Ambiguous, 1500, 13);
    assert!(
        valid > 100 && invalid > 100 && fallback > 100,
        "valid {valid}, invalid {invalid}, fell back {fallback}"
    );
}
