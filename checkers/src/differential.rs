//! The session and causal checkers against brute force on small random
//! histories: each definition is enumerated directly (every order of the
//! writes, every linear extension of the causal order), without the
//! polynomial characterisations the checkers use.

use std::collections::HashSet;

use crate::checks::Check;
use crate::rw_checks::testing::{history, run};
use crate::verdict::Validity;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Op {
    session: usize,
    write: bool,
    key: usize,
    /// Written value, or value read (0: initial).
    value: u32,
}

/// The write a read returned (None: the initial value).
fn source(ops: &[Op], r: usize) -> Option<usize> {
    let o = ops[r];
    if o.value == 0 {
        return None;
    }
    ops.iter()
        .position(|w| w.write && w.key == o.key && w.value == o.value)
}

/// splitmix64.
fn rng(seed: &mut u64) -> u64 {
    *seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *seed;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn generate(seed: &mut u64) -> Vec<Op> {
    let n = 3 + (rng(seed) % 4) as usize;
    let sessions = 2 + (rng(seed) % 2) as usize;
    let keys = 1 + (rng(seed) % 2) as usize;
    let mut ops = Vec::new();
    let mut next = 1u32;
    for _ in 0..n {
        let session = (rng(seed) % sessions as u64) as usize;
        let key = (rng(seed) % keys as u64) as usize;
        if rng(seed) % 2 == 0 {
            ops.push(Op {
                session,
                write: true,
                key,
                value: next,
            });
            next += 1;
        } else {
            ops.push(Op {
                session,
                write: false,
                key,
                value: 0,
            });
        }
    }
    // Reads return the initial value or any value written to their key.
    for i in 0..ops.len() {
        if ops[i].write {
            continue;
        }
        let cands: Vec<u32> = ops
            .iter()
            .filter(|w| w.write && w.key == ops[i].key)
            .map(|w| w.value)
            .collect();
        let k = (rng(seed) % (cands.len() as u64 + 1)) as usize;
        ops[i].value = if k == cands.len() { 0 } else { cands[k] };
    }
    ops
}

fn text(ops: &[Op]) -> String {
    ops.iter()
        .map(|o| {
            format!(
                "{} {} k{} {}",
                o.session,
                if o.write { "w" } else { "r" },
                o.key,
                o.value
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Session order: `a` before `b` in one session.
fn so(ops: &[Op], a: usize, b: usize) -> bool {
    a < b && ops[a].session == ops[b].session
}

/// The causal order (PO ∪ RF)+ as a reachability matrix, or None if cyclic.
#[allow(clippy::needless_range_loop)]
fn causal_order(ops: &[Op]) -> Option<Vec<Vec<bool>>> {
    let n = ops.len();
    let mut m = vec![vec![false; n]; n];
    for a in 0..n {
        for b in 0..n {
            if so(ops, a, b) {
                m[a][b] = true;
            }
        }
        if !ops[a].write {
            if let Some(w) = source(ops, a) {
                m[w][a] = true;
            }
        }
    }
    for k in 0..n {
        for a in 0..n {
            for b in 0..n {
                if m[a][k] && m[k][b] {
                    m[a][b] = true;
                }
            }
        }
    }
    (0..n).all(|a| !m[a][a]).then_some(m)
}

fn permutations(items: &[usize]) -> Vec<Vec<usize>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut out = Vec::new();
    for i in 0..items.len() {
        let mut rest = items.to_vec();
        let x = rest.remove(i);
        for mut p in permutations(&rest) {
            p.insert(0, x);
            out.push(p);
        }
    }
    out
}

/// Orders of `set` that extend `co`.
fn extensions(set: &[usize], co: &[Vec<bool>]) -> Vec<Vec<usize>> {
    permutations(set)
        .into_iter()
        .filter(|p| (0..p.len()).all(|i| (i + 1..p.len()).all(|j| !co[p[j]][p[i]])))
        .collect()
}

/// Whether read `r` is legal at the end of `seq` (the writes before it).
fn legal(ops: &[Op], seq: &[usize], r: usize) -> bool {
    let last = seq
        .iter()
        .rev()
        .find(|&&w| ops[w].write && ops[w].key == ops[r].key);
    match last {
        None => ops[r].value == 0,
        Some(&w) => ops[w].value == ops[r].value,
    }
}

fn thin_air(ops: &[Op]) -> bool {
    ops.iter()
        .enumerate()
        .any(|(i, o)| !o.write && o.value != 0 && source(ops, i).is_none())
}

fn brute_cc(ops: &[Op]) -> bool {
    let Some(co) = causal_order(ops) else {
        return false;
    };
    (0..ops.len()).filter(|&r| !ops[r].write).all(|r| {
        let past: Vec<usize> = (0..ops.len()).filter(|&o| co[o][r]).collect();
        extensions(&past, &co).iter().any(|seq| legal(ops, seq, r))
    })
}

fn brute_ccv(ops: &[Op]) -> bool {
    let Some(co) = causal_order(ops) else {
        return false;
    };
    let all: Vec<usize> = (0..ops.len()).collect();
    extensions(&all, &co).iter().any(|arb| {
        (0..ops.len()).filter(|&r| !ops[r].write).all(|r| {
            let seq: Vec<usize> = arb.iter().copied().filter(|&o| co[o][r]).collect();
            legal(ops, &seq, r)
        })
    })
}

fn brute_cm(ops: &[Op]) -> bool {
    let Some(co) = causal_order(ops) else {
        return false;
    };
    let sessions: HashSet<usize> = ops.iter().map(|o| o.session).collect();
    sessions.into_iter().all(|s| {
        let Some(last) = (0..ops.len()).rev().find(|&i| ops[i].session == s) else {
            return true;
        };
        let past: Vec<usize> = (0..ops.len())
            .filter(|&o| o == last || co[o][last])
            .collect();
        extensions(&past, &co).iter().any(|seq| {
            seq.iter()
                .enumerate()
                .all(|(i, &o)| ops[o].write || ops[o].session != s || legal(ops, &seq[..i], o))
        })
    })
}

/// The session guarantees from their definitions: minimal visible sets,
/// then every order of the writes.
fn brute_session(ops: &[Op], g: Check) -> bool {
    let n = ops.len();
    let reads: Vec<usize> = (0..n).filter(|&i| !ops[i].write).collect();
    let writes: Vec<usize> = (0..n).filter(|&i| ops[i].write).collect();
    // Minimal visible sets V(r) (writes), by fixpoint.
    let mut vis: Vec<HashSet<usize>> = vec![HashSet::new(); n];
    for &r in &reads {
        if let Some(w) = source(ops, r) {
            vis[r].insert(w);
        }
    }
    // Extra order constraints a < b.
    let mut before: Vec<(usize, usize)> = Vec::new();
    loop {
        let old = vis.clone();
        for &r in &reads {
            let k = ops[r].key;
            match g {
                Check::Ryw => {
                    for &w in &writes {
                        if so(ops, w, r) {
                            vis[r].insert(w);
                        }
                    }
                }
                Check::Mr | Check::Mw => {
                    for &r2 in &reads {
                        if so(ops, r2, r) && ops[r2].key == k {
                            let add: Vec<usize> = old[r2]
                                .iter()
                                .copied()
                                .filter(|&w| ops[w].key == k)
                                .collect();
                            vis[r].extend(add);
                        }
                    }
                    if g == Check::Mw {
                        let add: Vec<usize> = old[r]
                            .iter()
                            .flat_map(|&w2| {
                                writes.iter().copied().filter(move |&w1| so(ops, w1, w2))
                            })
                            .collect();
                        vis[r].extend(add);
                    }
                }
                Check::Wfr => {
                    // Seeing W2 means seeing what W2's session's earlier
                    // reads saw on their keys.
                    let add: Vec<usize> = old[r]
                        .iter()
                        .flat_map(|&w2| reads.iter().copied().filter(move |&r1| so(ops, r1, w2)))
                        .flat_map(|r1| {
                            old[r1]
                                .iter()
                                .copied()
                                .filter(move |&w| ops[w].key == ops[r1].key)
                                .collect::<Vec<_>>()
                        })
                        .collect();
                    vis[r].extend(add);
                }
                _ => unreachable!(),
            }
        }
        if vis == old {
            break;
        }
    }
    match g {
        Check::Mw => {
            for &a in &writes {
                for &b in &writes {
                    if so(ops, a, b) {
                        before.push((a, b));
                    }
                }
            }
        }
        Check::Wfr => {
            for &r1 in &reads {
                for &w2 in &writes {
                    if so(ops, r1, w2) {
                        for &w in &vis[r1] {
                            if ops[w].key == ops[r1].key {
                                before.push((w, w2));
                            }
                        }
                    }
                }
            }
        }
        _ => {}
    }
    permutations(&writes).into_iter().any(|ar| {
        let pos = |w: usize| ar.iter().position(|&x| x == w).unwrap_or(usize::MAX);
        before.iter().all(|&(a, b)| pos(a) < pos(b))
            && reads.iter().all(|&r| {
                let seen: Vec<usize> = vis[r]
                    .iter()
                    .copied()
                    .filter(|&w| ops[w].key == ops[r].key)
                    .collect();
                match source(ops, r) {
                    None => seen.is_empty(),
                    Some(t) => seen.iter().all(|&w| pos(w) <= pos(t)),
                }
            })
    })
}

#[test]
fn against_brute_force() {
    let mut seed = 7u64;
    let mut counts = std::collections::HashMap::new();
    for _ in 0..3000 {
        let ops = generate(&mut seed);
        let t = text(&ops);
        let h = history(&t);
        let checks: Vec<Check> = Check::ALL.into_iter().filter(|c| c.needs_rw()).collect();
        let got = run(&h, &checks).unwrap();
        let air = thin_air(&ops);
        let mr_ok = brute_session(&ops, Check::Mr);
        for r in got {
            let expect = if air {
                false
            } else {
                match r.check {
                    Check::Cc => brute_cc(&ops),
                    Check::Ccv => brute_ccv(&ops),
                    Check::Cm => brute_cm(&ops),
                    // mw reports the cycles through a session's writes; when
                    // the reads alone are not monotonic the definitions
                    // differ, so compare only when they are.
                    Check::Mw if !mr_ok => continue,
                    g => brute_session(&ops, g),
                }
            };
            let valid = r.result.valid == Validity::Valid;
            assert_eq!(
                valid,
                expect,
                "{}: {t}\n{:?}",
                r.check.name(),
                r.result.anomalies
            );
            *counts.entry((r.check.name(), valid)).or_insert(0) += 1;
        }
    }
    // Both verdicts were exercised for every check.
    for c in ["ryw", "mr", "mw", "wfr", "cc", "ccv", "cm"] {
        for v in [true, false] {
            assert!(
                counts.get(&(c, v)).copied().unwrap_or(0) > 20,
                "{c} {v}: {counts:?}"
            );
        }
    }
}
