//! List-append: the version order of each key is its longest read (every
//! other read must be a prefix of it), which gives ww edges between
//! consecutive appends, wr edges from the writer of a read's last element,
//! and rw edges from a read to the writer of the next element. Also the
//! anomalies that need no cycle: aborted and intermediate reads, dirty
//! updates, duplicate elements, incompatible orders, internal
//! inconsistencies, lost updates, fractured reads and garbage reads.

use super::anomaly::AnomalyType;
use super::context::Ctx;
use super::graph::{Edges, ExplainEdge, Kinds, RW, WR, WW, why_order};
use super::hash::{FastMap, FastSet};
use super::micro::{Mop, Status, TxnInputError, Txns, Val};

/// Not (yet) placed in a version order.
const UNPLACED: u32 = u32::MAX;

/// One appended value.
#[derive(Clone, Copy, Debug)]
pub struct Elem {
    /// The transaction that appended it.
    pub writer: u32,
    /// Its position in the key's version order, or `UNPLACED`.
    pub pos: u32,
    /// True when it is the writer's last append to the key.
    pub last_of_writer: bool,
    /// True when the writer aborted.
    pub aborted: bool,
}

/// What the list-append analysis learnt, kept to explain edges.
#[derive(Debug, Default)]
pub struct ListFacts {
    /// Per key: the longest read (start, len in the list arena) and who
    /// read it.
    pub orders: Vec<Option<(u32, u32, u32)>>,
    /// Every appended value, by (key, value).
    pub elems: FastMap<(u32, Val), Elem>,
}

impl ListFacts {
    fn order<'t>(&self, txns: &'t Txns, k: u32) -> &'t [Val] {
        match self.orders.get(k as usize).copied().flatten() {
            Some((s, l, _)) => txns.list(s, l),
            None => &[],
        }
    }
}

/// Runs the analysis: returns the facts and the dependency edges, and
/// reports the anomalies that need no cycle into `ctx`.
pub fn analyze(ctx: &mut Ctx<'_>) -> Result<(ListFacts, Edges), TxnInputError> {
    let txns = ctx.txns;
    let mut facts = ListFacts {
        orders: vec![None; txns.values.keys()],
        elems: FastMap::default(),
    };
    facts.elems.reserve(txns.mops.len() / 2);
    // Every append, and the longest read of each key.
    for (t, txn) in txns.txns.iter().enumerate() {
        let t = t as u32;
        let mops = txns.mops(t as usize);
        for (i, m) in mops.iter().enumerate() {
            match *m {
                Mop::Append { key, value } => {
                    let last = !mops[i + 1..]
                        .iter()
                        .any(|n| matches!(n, Mop::Append { key: k2, .. } if *k2 == key));
                    let e = Elem {
                        writer: t,
                        pos: UNPLACED,
                        last_of_writer: last,
                        aborted: txn.status == Status::Aborted,
                    };
                    if let Some(prev) = facts.elems.insert((key, value), e) {
                        let other_line = txns.txns[prev.writer as usize].invoke_line;
                        let line = txn.invoke_line;
                        return Err(TxnInputError {
                            line,
                            reason: format!(
                                "value {} is appended to key {} twice (also at line {}): \
                                 list-append needs unique appended values",
                                ctx.val(value),
                                ctx.key(key),
                                other_line
                            ),
                        });
                    }
                }
                Mop::ReadList {
                    key, start, len, ..
                } => {
                    let slot = &mut facts.orders[key as usize];
                    if slot.is_none_or(|(_, l, _)| len > l) {
                        *slot = Some((start, len, t));
                    }
                }
                _ => {}
            }
        }
    }
    place_orders(ctx, &mut facts);
    let mut edges = Edges::default();
    ww_edges(&facts, ctx, &mut edges);
    reads(ctx, &facts, &mut edges);
    Ok((facts, edges))
}

/// Positions every element of each key's longest read; reports duplicate
/// elements, garbage reads, aborted reads and dirty updates found there.
fn place_orders(ctx: &mut Ctx<'_>, facts: &mut ListFacts) {
    let txns = ctx.txns;
    for k in 0..facts.orders.len() {
        let Some((start, len, reader)) = facts.orders[k] else {
            continue;
        };
        let order = txns.list(start, len);
        let mut seen: FastSet<Val> = FastSet::default();
        let mut aborted_at: Option<(usize, u32)> = None;
        for (i, &v) in order.iter().enumerate() {
            if !seen.insert(v) {
                ctx.report(AnomalyType::DuplicateElements, |c| {
                    (
                        format!(
                            "{} read key {} as {}, which holds {} more than once",
                            c.name(reader),
                            c.key(k as u32),
                            c.list(order),
                            c.val(v)
                        ),
                        vec![reader],
                    )
                });
                continue;
            }
            match facts.elems.get_mut(&(k as u32, v)) {
                None => ctx.report(AnomalyType::GarbageRead, |c| {
                    (
                        format!(
                            "{} read key {} as {}, but no transaction appended {}",
                            c.name(reader),
                            c.key(k as u32),
                            c.list(order),
                            c.val(v)
                        ),
                        vec![reader],
                    )
                }),
                Some(e) => {
                    e.pos = i as u32;
                    let e = *e;
                    if e.aborted {
                        aborted_at.get_or_insert((i, e.writer));
                        ctx.report(AnomalyType::AbortedRead, |c| {
                            (
                                format!(
                                    "{} read key {} as {}, which holds {}, appended by {}, which aborted",
                                    c.name(reader),
                                    c.key(k as u32),
                                    c.list(order),
                                    c.val(v),
                                    c.name(e.writer)
                                ),
                                vec![reader, e.writer],
                            )
                        });
                    } else if let Some((ai, aw)) = aborted_at.take() {
                        ctx.report(AnomalyType::DirtyUpdate, |c| {
                            (
                                format!(
                                    "{} appended {} to key {} after {}, appended by {}, which aborted \
                                     ({} read {})",
                                    c.name(e.writer),
                                    c.val(v),
                                    c.key(k as u32),
                                    c.val(order[ai]),
                                    c.name(aw),
                                    c.name(reader),
                                    c.list(order)
                                ),
                                vec![aw, e.writer, reader],
                            )
                        });
                    }
                }
            }
        }
    }
}

/// ww edges between the writers of consecutive elements.
fn ww_edges(facts: &ListFacts, ctx: &Ctx<'_>, edges: &mut Edges) {
    for k in 0..facts.orders.len() {
        let order = facts.order(ctx.txns, k as u32);
        let mut prev: Option<u32> = None;
        for &v in order {
            let w = match facts.elems.get(&(k as u32, v)) {
                Some(e) if !e.aborted => e.writer,
                _ => {
                    prev = None;
                    continue;
                }
            };
            if let Some(p) = prev {
                edges.add(p, w, WW);
            }
            prev = Some(w);
        }
    }
}

/// Per read: incompatible orders, wr/rw edges, intermediate reads; per
/// transaction: internal consistency, lost updates, fractured reads.
fn reads(ctx: &mut Ctx<'_>, facts: &ListFacts, edges: &mut Edges) {
    let txns = ctx.txns;
    let mut incompatible: FastSet<u32> = FastSet::default();
    // (key, length read) -> committed transactions that read it before
    // appending to the key.
    let mut read_then_append: FastMap<(u32, u32), Vec<u32>> = FastMap::default();
    let mut external: Vec<(u32, u32)> = Vec::new();
    for (t, txn) in txns.txns.iter().enumerate() {
        if txn.status != Status::Committed {
            continue;
        }
        let t = t as u32;
        let mops = txns.mops(t as usize);
        internal(ctx, t, mops);
        external.clear();
        let mut appended: Vec<u32> = Vec::new();
        for m in mops {
            match *m {
                Mop::Append { key, .. } => appended.push(key),
                Mop::ReadList {
                    key, start, len, ..
                } => {
                    let list = txns.list(start, len);
                    let order = facts.order(txns, key);
                    if order.get(..list.len()) != Some(list) {
                        if incompatible.insert(key) {
                            let (_, _, r) = facts.orders[key as usize].unwrap_or((0, 0, t));
                            ctx.report(AnomalyType::IncompatibleOrder, |c| {
                                (
                                    format!(
                                        "{} read key {} as {} and {} read it as {}: neither is a prefix of the other",
                                        c.name(t),
                                        c.key(key),
                                        c.list(list),
                                        c.name(r),
                                        c.list(order)
                                    ),
                                    vec![t, r],
                                )
                            });
                        }
                        continue;
                    }
                    if !appended.contains(&key) && !external.iter().any(|e| e.0 == key) {
                        external.push((key, len));
                    }
                    read_edges(ctx, facts, edges, t, key, list, order);
                }
                _ => {}
            }
        }
        for &(key, len) in &external {
            if appended.contains(&key) {
                read_then_append.entry((key, len)).or_default().push(t);
            }
        }
        fractured(ctx, facts, t, &external);
    }
    let mut lost: Vec<(&(u32, u32), &Vec<u32>)> = read_then_append
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .collect();
    lost.sort_unstable_by_key(|(k, _)| **k);
    for (&(key, len), who) in lost {
        let order = facts.order(txns, key);
        let seen = &order[..(len as usize).min(order.len())];
        ctx.report(AnomalyType::LostUpdate, |c| {
            let names: Vec<String> = who.iter().map(|&t| c.name(t)).collect();
            (
                format!(
                    "{} all read key {} as {} and then appended to it: all but one of their appends \
                     should have seen another",
                    names.join(", "),
                    c.key(key),
                    c.list(seen)
                ),
                who.clone(),
            )
        });
    }
}

/// The wr and rw edges of one compatible read, and an intermediate read.
fn read_edges(
    ctx: &mut Ctx<'_>,
    facts: &ListFacts,
    edges: &mut Edges,
    t: u32,
    key: u32,
    list: &[Val],
    order: &[Val],
) {
    if let Some(&last) = list.last() {
        if let Some(e) = facts.elems.get(&(key, last)) {
            if !e.aborted && e.writer != t {
                edges.add(e.writer, t, WR);
                if !e.last_of_writer {
                    let w = e.writer;
                    ctx.report(AnomalyType::IntermediateRead, |c| {
                        (
                            format!(
                                "{} read key {} as {}, ending in {}, which {} followed with another append in the same transaction",
                                c.name(t),
                                c.key(key),
                                c.list(list),
                                c.val(last),
                                c.name(w)
                            ),
                            vec![t, w],
                        )
                    });
                }
            }
        }
    }
    if let Some(&next) = order.get(list.len()) {
        if let Some(e) = facts.elems.get(&(key, next)) {
            if !e.aborted {
                edges.add(t, e.writer, RW);
            }
        }
    }
}

/// Per key within a transaction: its last read, if any, and its appends
/// since.
type KeyState<'a> = (u32, Option<&'a [Val]>, Vec<Val>);

/// Internal consistency: a read after the transaction's own reads and
/// appends of a key returns what they imply.
fn internal(ctx: &mut Ctx<'_>, t: u32, mops: &[Mop]) {
    let txns = ctx.txns;
    // key -> (last read, if any; appends since)
    let mut state: Vec<KeyState<'_>> = Vec::new();
    for m in mops {
        match *m {
            Mop::Append { key, value } => match state.iter_mut().find(|s| s.0 == key) {
                Some(s) => s.2.push(value),
                None => state.push((key, None, vec![value])),
            },
            Mop::ReadList {
                key, start, len, ..
            } => {
                let list = txns.list(start, len);
                let slot = state.iter_mut().find(|s| s.0 == key);
                let bad = match &slot {
                    Some((_, Some(prev), since)) => {
                        list.len() != prev.len() + since.len()
                            || &list[..prev.len()] != *prev
                            || &list[prev.len()..] != since.as_slice()
                    }
                    Some((_, None, since)) => !list.ends_with(since),
                    None => false,
                };
                if bad {
                    let (prev, since) = match &slot {
                        Some((_, p, s)) => (*p, s.clone()),
                        None => (None, Vec::new()),
                    };
                    ctx.report(AnomalyType::Internal, |c| {
                        let expected = match prev {
                            Some(p) => format!(
                                "{} (its earlier read {} plus its appends since)",
                                c.list(&[p, since.as_slice()].concat()),
                                c.list(p)
                            ),
                            None => format!("a list ending in its own appends {}", c.list(&since)),
                        };
                        (
                            format!(
                                "{} read key {} as {}, but expected {}",
                                c.name(t),
                                c.key(key),
                                c.list(list),
                                expected
                            ),
                            vec![t],
                        )
                    });
                }
                match state.iter_mut().find(|s| s.0 == key) {
                    Some(s) => {
                        s.1 = Some(list);
                        s.2.clear();
                    }
                    None => state.push((key, Some(list), Vec::new())),
                }
            }
            _ => {}
        }
    }
}

/// Fractured reads: `t` read a key's element appended by `w`, but read
/// another key `w` appended to without `w`'s append.
fn fractured(ctx: &mut Ctx<'_>, facts: &ListFacts, t: u32, external: &[(u32, u32)]) {
    let txns = ctx.txns;
    for &(key, len) in external {
        if len == 0 {
            continue;
        }
        let order = facts.order(txns, key);
        let Some(e) = facts.elems.get(&(key, order[len as usize - 1])) else {
            continue;
        };
        if e.aborted || e.writer == t {
            continue;
        }
        let w = e.writer;
        for m in txns.mops(w as usize) {
            let Mop::Append { key: y, value } = *m else {
                continue;
            };
            if y == key {
                continue;
            }
            let Some(&(_, seen)) = external.iter().find(|x| x.0 == y) else {
                continue;
            };
            let pos = facts.elems.get(&(y, value)).map_or(UNPLACED, |e| e.pos);
            if pos == UNPLACED || pos >= seen {
                let missed = facts.order(txns, y);
                let missed = &missed[..(seen as usize).min(missed.len())];
                ctx.report(AnomalyType::FracturedRead, |c| {
                    (
                        format!(
                            "{} saw {}'s append to key {} but read key {} as {}, without {}'s append of {}",
                            c.name(t),
                            c.name(w),
                            c.key(key),
                            c.key(y),
                            c.list(missed),
                            c.name(w),
                            c.val(value)
                        ),
                        vec![w, t],
                    )
                });
                break;
            }
        }
    }
}

impl ExplainEdge for ListFacts {
    fn why(&self, ctx: &Ctx<'_>, from: u32, to: u32, kind: Kinds) -> String {
        let txns = ctx.txns;
        let (a, b) = (ctx.name(from), ctx.name(to));
        match kind {
            WW => {
                for m in txns.mops(from as usize) {
                    let Mop::Append { key, value } = *m else {
                        continue;
                    };
                    let Some(e) = self.elems.get(&(key, value)) else {
                        continue;
                    };
                    let order = self.order(txns, key);
                    let Some(&next) = order.get(e.pos.wrapping_add(1) as usize) else {
                        continue;
                    };
                    if e.pos != UNPLACED
                        && self.elems.get(&(key, next)).map(|n| n.writer) == Some(to)
                    {
                        let reader = self.orders[key as usize].map_or(to, |o| o.2);
                        let upto = &order[..e.pos as usize + 2];
                        let shown = if upto.len() > 3 {
                            &upto[upto.len() - 3..]
                        } else {
                            upto
                        };
                        let dots = if upto.len() > 3 { "... " } else { "" };
                        return format!(
                            "{a} appended {} to key {} before {b} appended {}, because {} read [{dots}{} ...]",
                            ctx.val(value),
                            ctx.key(key),
                            ctx.val(next),
                            ctx.name(reader),
                            shown
                                .iter()
                                .map(|&v| ctx.val(v))
                                .collect::<Vec<_>>()
                                .join(" ")
                        );
                    }
                }
                format!("{a} appended before {b}")
            }
            WR => {
                for m in txns.mops(to as usize) {
                    let Mop::ReadList {
                        key, start, len, ..
                    } = *m
                    else {
                        continue;
                    };
                    let list = txns.list(start, len);
                    if let Some(&last) = list.last() {
                        if self.elems.get(&(key, last)).map(|e| e.writer) == Some(from) {
                            return format!(
                                "{b} read key {} as {}, which ends with {a}'s append of {}",
                                ctx.key(key),
                                ctx.list(list),
                                ctx.val(last)
                            );
                        }
                    }
                }
                format!("{b} read {a}'s append")
            }
            RW => {
                for m in txns.mops(from as usize) {
                    let Mop::ReadList {
                        key, start, len, ..
                    } = *m
                    else {
                        continue;
                    };
                    let order = self.order(txns, key);
                    if let Some(&next) = order.get(len as usize) {
                        if self.elems.get(&(key, next)).map(|e| e.writer) == Some(to) {
                            return format!(
                                "{a} read key {} as {}, which does not yet hold {}, appended next by {b}",
                                ctx.key(key),
                                ctx.list(txns.list(start, len)),
                                ctx.val(next)
                            );
                        }
                    }
                }
                format!("{a} read a version that {b} later appended to")
            }
            other => why_order(ctx, from, to, other),
        }
    }
}
