//! Read-write registers with unique writes: a read names its writer (wr
//! edges); the version order of a key is known only where a transaction read
//! a version and then wrote the next, and from the initial state (every
//! written version follows it). Those version edges give ww edges between
//! writers and rw edges from the readers of a version to the writer of the
//! next. Also: aborted, intermediate and garbage reads, internal
//! inconsistencies, lost updates, fractured reads, cyclic versions.

use super::anomaly::AnomalyType;
use super::context::Ctx;
use super::graph::{Edges, ExplainEdge, Kinds, RW, WR, WW, why_order};
use super::hash::FastMap;
use super::micro::{Mop, Status, TxnInputError, Val};

/// Who caused a version edge.
const INITIAL: u32 = u32::MAX;

/// A key and one of its versions (`None`: the initial state).
pub type Version = (u32, Option<Val>);

/// Per key within a transaction: its external read (when the first access
/// was a read), the value it last knew, whether it wrote the key.
type KeyState = (u32, Option<Option<Val>>, Option<Val>, bool);

/// One written value.
#[derive(Clone, Copy, Debug)]
pub struct Written {
    /// The transaction that wrote it.
    pub writer: u32,
    /// True when it is the writer's last write to the key.
    pub last_of_writer: bool,
    /// True when the writer aborted.
    pub aborted: bool,
}

/// What the rw-register analysis learnt, kept to explain edges.
#[derive(Debug, Default)]
pub struct RegisterFacts {
    /// Every written value, by (key, value).
    pub writes: FastMap<(u32, Val), Written>,
    /// Version edges: (key, version or initial) -> (next version, the
    /// transaction that read the first and wrote the next, or `INITIAL`).
    pub next: FastMap<Version, Vec<(Val, u32)>>,
    /// Committed transactions that read a version before writing the key
    /// themselves.
    pub readers: FastMap<Version, Vec<u32>>,
}

/// Runs the analysis: returns the facts and the dependency edges, and
/// reports the anomalies that need no cycle into `ctx`.
pub fn analyze(ctx: &mut Ctx<'_>) -> Result<(RegisterFacts, Edges), TxnInputError> {
    let txns = ctx.txns;
    let mut facts = RegisterFacts::default();
    for (t, txn) in txns.txns.iter().enumerate() {
        let mops = txns.mops(t);
        for (i, m) in mops.iter().enumerate() {
            let Mop::Write { key, value } = *m else {
                continue;
            };
            let last = !mops[i + 1..]
                .iter()
                .any(|n| matches!(n, Mop::Write { key: k2, .. } if *k2 == key));
            let w = Written {
                writer: t as u32,
                last_of_writer: last,
                aborted: txn.status == Status::Aborted,
            };
            if let Some(prev) = facts.writes.insert((key, value), w) {
                let other = &txns.txns[prev.writer as usize];
                return Err(TxnInputError {
                    line: txn.invoke_line,
                    reason: format!(
                        "value {} is written to key {} twice (also at line {}): rw-register \
                         needs unique written values",
                        ctx.val(value),
                        ctx.key(key),
                        other.invoke_line
                    ),
                });
            }
        }
    }
    let mut edges = Edges::default();
    for (t, txn) in txns.txns.iter().enumerate() {
        if txn.status == Status::Committed {
            reads(ctx, &mut facts, &mut edges, t as u32);
        }
    }
    // The initial state precedes every version that has no other known
    // predecessor.
    let mut has_pred: super::hash::FastSet<(u32, Val)> = Default::default();
    for ((k, _), nexts) in &facts.next {
        for &(v, _) in nexts {
            has_pred.insert((*k, v));
        }
    }
    let mut firsts: Vec<(u32, Val)> = facts
        .writes
        .iter()
        .filter(|(kv, w)| !w.aborted && !has_pred.contains(kv))
        .map(|(kv, _)| *kv)
        .collect();
    firsts.sort_unstable();
    for (k, v) in firsts {
        facts.next.entry((k, None)).or_default().push((v, INITIAL));
    }
    cyclic_versions(ctx, &facts);
    version_edges(ctx, &facts, &mut edges);
    lost_updates(ctx, &facts);
    Ok((facts, edges))
}

/// One committed transaction's reads: internal consistency, wr edges,
/// aborted/intermediate/garbage reads, version edges, fractured reads.
fn reads(ctx: &mut Ctx<'_>, facts: &mut RegisterFacts, edges: &mut Edges, t: u32) {
    let txns = ctx.txns;
    let mops = txns.mops(t as usize);
    // key -> (external read, if the first access was a read; last known value)
    let mut state: Vec<KeyState> = Vec::new();
    for m in mops {
        match *m {
            Mop::Write { key, value } => match state.iter_mut().find(|s| s.0 == key) {
                Some(s) => {
                    s.2 = Some(value);
                    s.3 = true;
                }
                None => state.push((key, None, Some(value), true)),
            },
            Mop::ReadRegister { key, value } => match state.iter_mut().find(|s| s.0 == key) {
                Some(s) => {
                    let known = s.2;
                    if (s.3 || s.1.is_some()) && value != known {
                        ctx.report(AnomalyType::Internal, |c| {
                            let show = |v: Option<Val>| v.map_or("nil".into(), |v| c.val(v));
                            (
                                format!(
                                    "{} read key {} as {}, but its own earlier {} was {}",
                                    c.name(t),
                                    c.key(key),
                                    show(value),
                                    if s.3 { "write" } else { "read" },
                                    show(known)
                                ),
                                vec![t],
                            )
                        });
                    }
                }
                None => {
                    state.push((key, Some(value), value, false));
                    external_read(ctx, facts, edges, t, key, value);
                }
            },
            _ => {}
        }
    }
    for &(key, read, _, wrote) in &state {
        let Some(read) = read else { continue };
        if !wrote {
            continue;
        }
        let last = mops.iter().rev().find_map(|m| match *m {
            Mop::Write { key: k, value } if k == key => Some(value),
            _ => None,
        });
        if let Some(w) = last {
            facts.next.entry((key, read)).or_default().push((w, t));
        }
    }
    fractured(ctx, facts, t, &state);
}

fn external_read(
    ctx: &mut Ctx<'_>,
    facts: &mut RegisterFacts,
    edges: &mut Edges,
    t: u32,
    key: u32,
    value: Option<Val>,
) {
    facts.readers.entry((key, value)).or_default().push(t);
    let Some(v) = value else { return };
    let Some(&w) = facts.writes.get(&(key, v)) else {
        ctx.report(AnomalyType::GarbageRead, |c| {
            (
                format!(
                    "{} read key {} as {}, which no transaction wrote",
                    c.name(t),
                    c.key(key),
                    c.val(v)
                ),
                vec![t],
            )
        });
        return;
    };
    if w.writer == t {
        return;
    }
    if w.aborted {
        ctx.report(AnomalyType::AbortedRead, |c| {
            (
                format!(
                    "{} read key {} as {}, written by {}, which aborted",
                    c.name(t),
                    c.key(key),
                    c.val(v),
                    c.name(w.writer)
                ),
                vec![t, w.writer],
            )
        });
        return;
    }
    if !w.last_of_writer {
        ctx.report(AnomalyType::IntermediateRead, |c| {
            (
                format!(
                    "{} read key {} as {}, which {} overwrote later in the same transaction",
                    c.name(t),
                    c.key(key),
                    c.val(v),
                    c.name(w.writer)
                ),
                vec![t, w.writer],
            )
        });
    }
    edges.add(w.writer, t, WR);
}

/// `t` read a key written by `w` but an older version of another key `w`
/// wrote (the initial state, or a version `w`'s write directly follows).
fn fractured(ctx: &mut Ctx<'_>, facts: &RegisterFacts, t: u32, state: &[KeyState]) {
    let txns = ctx.txns;
    for &(key, read, _, _) in state {
        let Some(Some(v)) = read else { continue };
        let Some(w) = facts.writes.get(&(key, v)) else {
            continue;
        };
        if w.aborted || w.writer == t {
            continue;
        }
        let w = w.writer;
        for m in txns.mops(w as usize) {
            let Mop::Write { key: y, value } = *m else {
                continue;
            };
            if y == key
                || !facts
                    .writes
                    .get(&(y, value))
                    .is_some_and(|x| x.last_of_writer)
            {
                continue;
            }
            let Some(&(_, Some(seen), _, _)) = state.iter().find(|s| s.0 == y) else {
                continue;
            };
            let older = match seen {
                None => true,
                Some(s) => facts
                    .next
                    .get(&(y, Some(s)))
                    .is_some_and(|n| n.iter().any(|x| x.0 == value)),
            };
            if older {
                ctx.report(AnomalyType::FracturedRead, |c| {
                    (
                        format!(
                            "{} read {}'s write of {} to key {} but read key {} as {}, older than {}'s write of {}",
                            c.name(t),
                            c.name(w),
                            c.val(v),
                            c.key(key),
                            c.key(y),
                            seen.map_or("nil".into(), |s| c.val(s)),
                            c.name(w),
                            c.val(value)
                        ),
                        vec![w, t],
                    )
                });
                return;
            }
        }
    }
}

/// ww edges between the writers of consecutive versions, rw edges from the
/// readers of a version to the writer of the next.
fn version_edges(ctx: &Ctx<'_>, facts: &RegisterFacts, edges: &mut Edges) {
    let _ = ctx;
    for (&(k, from), nexts) in &facts.next {
        let from_writer = from
            .and_then(|v| facts.writes.get(&(k, v)))
            .filter(|w| !w.aborted)
            .map(|w| w.writer);
        let readers = facts.readers.get(&(k, from));
        for &(to, _) in nexts {
            let Some(w) = facts.writes.get(&(k, to)).filter(|w| !w.aborted) else {
                continue;
            };
            if let Some(fw) = from_writer {
                edges.add(fw, w.writer, WW);
            }
            for &r in readers.into_iter().flatten() {
                edges.add(r, w.writer, RW);
            }
        }
    }
}

/// A cycle in a key's version order.
fn cyclic_versions(ctx: &mut Ctx<'_>, facts: &RegisterFacts) {
    // Kahn's algorithm per key over the non-initial versions.
    let mut by_key: FastMap<u32, Vec<(Val, Val)>> = FastMap::default();
    for (&(k, from), nexts) in &facts.next {
        if let Some(f) = from {
            for &(to, _) in nexts {
                by_key.entry(k).or_default().push((f, to));
            }
        }
    }
    let mut keys: Vec<u32> = by_key.keys().copied().collect();
    keys.sort_unstable();
    for k in keys {
        let es = &by_key[&k];
        let mut indeg: FastMap<Val, usize> = FastMap::default();
        for &(a, b) in es {
            indeg.entry(a).or_insert(0);
            *indeg.entry(b).or_insert(0) += 1;
        }
        let mut ready: Vec<Val> = indeg.iter().filter(|e| *e.1 == 0).map(|e| *e.0).collect();
        let mut done = 0;
        while let Some(v) = ready.pop() {
            done += 1;
            for &(a, b) in es {
                if a == v {
                    let d = indeg.entry(b).or_insert(1);
                    *d -= 1;
                    if *d == 0 {
                        ready.push(b);
                    }
                }
            }
        }
        if done < indeg.len() {
            let mut stuck: Vec<Val> = indeg.iter().filter(|e| *e.1 > 0).map(|e| *e.0).collect();
            stuck.sort_unstable();
            let who: Vec<u32> = stuck
                .iter()
                .filter_map(|v| facts.writes.get(&(k, *v)).map(|w| w.writer))
                .collect();
            ctx.report(AnomalyType::CyclicVersions, |c| {
                (
                    format!(
                        "the versions {} of key {} each follow another of them (a transaction read one and wrote the next)",
                        c.list(&stuck),
                        c.key(k)
                    ),
                    who,
                )
            });
        }
    }
}

/// Two committed transactions that read the same version of a key and
/// both wrote it.
fn lost_updates(ctx: &mut Ctx<'_>, facts: &RegisterFacts) {
    let mut found: Vec<(Version, Vec<u32>)> = Vec::new();
    for (&kv, nexts) in &facts.next {
        let who: Vec<u32> = nexts
            .iter()
            .filter(|x| x.1 != INITIAL)
            .map(|x| x.1)
            .collect();
        if who.len() > 1 {
            found.push((kv, who));
        }
    }
    found.sort_unstable();
    for ((k, v), who) in found {
        ctx.report(AnomalyType::LostUpdate, |c| {
            let names: Vec<String> = who.iter().map(|&t| c.name(t)).collect();
            (
                format!(
                    "{} all read key {} as {} and then wrote it: all but one write is lost",
                    names.join(", "),
                    c.key(k),
                    v.map_or("nil".into(), |v| c.val(v))
                ),
                who,
            )
        });
    }
}

impl ExplainEdge for RegisterFacts {
    fn why(&self, ctx: &Ctx<'_>, from: u32, to: u32, kind: Kinds) -> String {
        let (a, b) = (ctx.name(from), ctx.name(to));
        let txns = ctx.txns;
        let show = |v: Option<Val>| v.map_or("nil (its initial state)".into(), |v| ctx.val(v));
        let because = |r: u32, v: Option<Val>, w: Val| {
            if r == INITIAL {
                "every written version follows the initial state".to_string()
            } else {
                format!(
                    "{} read {} and then wrote {}",
                    ctx.name(r),
                    show(v),
                    ctx.val(w)
                )
            }
        };
        // The version edges from what `from` wrote (ww) or read (rw) to
        // what `to` wrote.
        let find = |versions: Vec<(u32, Option<Val>)>| {
            for (k, v) in versions {
                for &(w, r) in self.next.get(&(k, v)).into_iter().flatten() {
                    if self.writes.get(&(k, w)).map(|x| x.writer) == Some(to) {
                        return Some((k, v, w, r));
                    }
                }
            }
            None
        };
        match kind {
            WW => {
                let written: Vec<(u32, Option<Val>)> = txns
                    .mops(from as usize)
                    .iter()
                    .filter_map(|m| match *m {
                        Mop::Write { key, value } => Some((key, Some(value))),
                        _ => None,
                    })
                    .collect();
                match find(written) {
                    Some((k, v, w, r)) => format!(
                        "{a} wrote {} to key {} before {b} wrote {}, because {}",
                        show(v),
                        ctx.key(k),
                        ctx.val(w),
                        because(r, v, w)
                    ),
                    None => format!("{a} wrote before {b}"),
                }
            }
            WR => {
                for m in txns.mops(to as usize) {
                    if let Mop::ReadRegister {
                        key,
                        value: Some(v),
                    } = *m
                    {
                        if self.writes.get(&(key, v)).map(|x| x.writer) == Some(from) {
                            return format!(
                                "{b} read key {} as {}, written by {a}",
                                ctx.key(key),
                                ctx.val(v)
                            );
                        }
                    }
                }
                format!("{b} read {a}'s write")
            }
            RW => {
                let read: Vec<(u32, Option<Val>)> = txns
                    .mops(from as usize)
                    .iter()
                    .filter_map(|m| match *m {
                        Mop::ReadRegister { key, value } => Some((key, value)),
                        _ => None,
                    })
                    .collect();
                match find(read) {
                    Some((k, v, w, r)) => format!(
                        "{a} read key {} as {}, and {b} wrote {}, a later version, because {}",
                        ctx.key(k),
                        show(v),
                        ctx.val(w),
                        because(r, v, w)
                    ),
                    None => format!("{a} read a version that {b} overwrote"),
                }
            }
            other => why_order(ctx, from, to, other),
        }
    }
}
