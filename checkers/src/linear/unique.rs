//! A polynomial-time decision for keys whose written values are unique.
//!
//! When every write (`write`/`put`, the new value of a `cas`, every
//! `append`) writes a value that no other operation writes, and differs
//! from the initial value, what each read saw names the writes before it:
//! a register read names the one write it reads from (Gibbons and Korach,
//! "Testing shared memories", 1997; Emmi and Enea, POPL 2018); a read of a
//! list built by appends names the last `put` (or the initial value) and the
//! exact sequence of appends after it (Porcupine's kv model). Then:
//!
//! * a read and the write it names are consecutive "writes then reads"
//!   *clusters*: the write, then every read of exactly that state;
//! * a `cas` and an observed append sequence chain clusters: the write a cas
//!   expects, or the append before another, is followed *immediately* by it
//!   (no other write in between). Chains are blocks that are contiguous in
//!   every linearization, and so is a write nobody observed (a block alone);
//! * inside a block the order is fixed (the writes in chain order, each
//!   followed by its reads in any order), so real time is checked once;
//! * between blocks, A must come before B exactly when an operation of A
//!   returns before one of B is invoked (`min ret(A) < max call(B)`).
//!   The history is linearizable if and only if that relation is acyclic,
//!   which a topological sort decides in O(n log n).
//!
//! Operations of unknown outcome (`info`, pending) are treated as the search
//! treats them: one that some completed operation depends on (a read saw
//! it, a cas expects its value, an observed append sequence contains it)
//! happened, at any time after its invocation; the others are left out
//! (they "never happened", which is always allowed).
//!
//! Keys that do not qualify (a value written twice, a read that can be
//! parsed as two different append sequences, a `cas` with `append`, a failed
//! cas that constrains the state) return `None`: the search decides them.
//!
//! A "linearizable" verdict is certified: the order found is replayed
//! through the model and against real time before it is believed. A "not
//! linearizable" verdict names the same operation the search names: the
//! completed operation with the earliest return such that the history cut
//! just after it (later completions made unknown) is not linearizable, found
//! by bisection; the witness's prefix is a linearization of the history cut
//! just before it.

use std::collections::HashMap;

use super::search::{SearchResult, Stuck};
use crate::model::register::{RegOp, RegState, RegisterModel};
use crate::model::{Entry, Model};

const NONE: u32 = u32::MAX;
/// A cas whose expected value nobody writes.
const NEVER: u32 = u32::MAX - 1;
/// Node 0 is the initial value, written before everything.
const INIT: u32 = 0;

/// Above this many bytes of appended text copied while replaying, the
/// certification of a valid verdict stops (the decision stands).
const REPLAY_BYTES: usize = 256 << 20;

/// What a read saw.
#[derive(Debug)]
enum Seen {
    /// A state no sequence of the history's writes produces.
    Impossible,
    /// The chain of writes that produced it: the last `put` (or the initial
    /// value), then the appends after it in order; for registers, one write.
    Chain(Vec<u32>),
}

/// The shape of a qualifying key, computed once.
struct Shape {
    /// The entry of each write node (`NONE` for the initial value).
    node_entry: Vec<u32>,
    /// For each node that is a cas, the node whose value it expects
    /// (`NEVER` when none); `NONE` for other nodes.
    cas_from: Vec<u32>,
    /// Read entries and what each saw.
    reads: Vec<(u32, Seen)>,
}

/// Decides the key in polynomial time, or returns `None` when its values
/// are not unique enough (the search must decide it).
pub fn decide(model: &RegisterModel, entries: &[Entry<RegOp>]) -> Option<SearchResult<RegState>> {
    let shape = Shape::of(model, entries)?;
    if let Some(order) = shape.attempt(entries, usize::MAX) {
        // Certify: every completed operation placed, real time respected,
        // every step allowed by the model.
        let completed = entries.iter().filter(|e| e.ret.is_some()).count();
        let placed = order
            .iter()
            .filter(|&&i| entries[i as usize].ret.is_some())
            .count();
        if placed != completed || !respects_real_time(entries, &order) {
            debug_assert!(false, "the unique-value order is not a linearization");
            return None;
        }
        return match replay(model, entries, &order) {
            Replay::Failed => {
                debug_assert!(false, "the unique-value order does not replay");
                None
            }
            Replay::State(_) | Replay::TooLong => Some(SearchResult::Linearizable),
        };
    }
    // The earliest completed operation the history cut after it cannot
    // linearize: bisection (cutting later only adds constraints).
    let mut rets: Vec<(usize, usize)> = entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| e.ret.map(|r| (r as usize, i)))
        .collect();
    rets.sort_unstable();
    if rets.is_empty() {
        debug_assert!(false, "nothing completed, yet not linearizable");
        return None;
    }
    let (mut lo, mut hi) = (0usize, rets.len() - 1);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if shape.attempt(entries, rets[mid].0).is_some() {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    let cut_before = if lo == 0 { 0 } else { rets[lo - 1].0 };
    let prefix = shape.attempt(entries, cut_before)?;
    let state = match replay(model, entries, &prefix) {
        Replay::State(s) => s,
        Replay::Failed | Replay::TooLong => return None,
    };
    Some(SearchResult::NotLinearizable(Stuck {
        op: rets[lo].1,
        prefix: prefix.iter().map(|&i| i as usize).collect(),
        states: vec![state],
        more_states: false,
        exhaustive: false,
    }))
}

impl Shape {
    fn of(model: &RegisterModel, entries: &[Entry<RegOp>]) -> Option<Shape> {
        let (mut has_cas, mut has_append) = (false, false);
        for e in entries {
            match &e.op {
                RegOp::CasFailed(_) => return None,
                RegOp::Cas(..) => has_cas = true,
                RegOp::Append(s) if s.is_empty() => return None,
                RegOp::Append(_) => has_append = true,
                RegOp::Read(_) | RegOp::Write(_) => {}
            }
        }
        if has_cas && has_append {
            return None;
        }
        let mut node_entry = vec![NONE];
        // Written value -> node, for writes, cas and the initial value.
        let mut by_value: HashMap<u32, u32> = HashMap::new();
        by_value.insert(model.initial_id(), INIT);
        let mut by_text: HashMap<&[u8], u32> = HashMap::new();
        let mut cas_expects: Vec<(u32, u32)> = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            let node = node_entry.len() as u32;
            match &e.op {
                RegOp::Write(v) | RegOp::Cas(_, v) => {
                    if by_value.insert(*v, node).is_some() {
                        return None;
                    }
                    if let RegOp::Cas(from, _) = &e.op {
                        cas_expects.push((node, *from));
                    }
                }
                RegOp::Append(s) => {
                    if by_text.insert(s.as_bytes(), node).is_some() {
                        return None;
                    }
                }
                RegOp::Read(_) | RegOp::CasFailed(_) => continue,
            }
            node_entry.push(i as u32);
        }
        let mut cas_from = vec![NONE; node_entry.len()];
        for (node, from) in cas_expects {
            cas_from[node as usize] = by_value.get(&from).copied().unwrap_or(NEVER);
        }
        let lists = has_append.then(|| Lists::new(model, &by_value, by_text));
        let mut reads = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            let RegOp::Read(v) = e.op else { continue };
            let seen = match &lists {
                None => match by_value.get(&v) {
                    Some(&n) => Seen::Chain(vec![n]),
                    None => Seen::Impossible,
                },
                Some(l) => l.parse(model, &by_value, v)?,
            };
            reads.push((i as u32, seen));
        }
        Some(Shape {
            node_entry,
            cas_from,
            reads,
        })
    }

    /// A linearization of the history cut at event position `cut` (an
    /// operation that completes after it has an unknown outcome; a read
    /// that completes after it is left out), or `None` when there is none.
    fn attempt(&self, entries: &[Entry<RegOp>], cut: usize) -> Option<Vec<u32>> {
        let done = |i: u32| entries[i as usize].ret.is_some_and(|r| r as usize <= cut);
        let nn = self.node_entry.len();
        let mut required = vec![false; nn];
        required[INIT as usize] = true;
        let mut stack: Vec<u32> = Vec::new();
        for (x, &e) in self.node_entry.iter().enumerate().skip(1) {
            if done(e) {
                required[x] = true;
                stack.push(x as u32);
            }
        }
        // (entry, node it saw) of the reads that count.
        let mut reads: Vec<(u32, u32)> = Vec::new();
        let mut chains: Vec<&[u32]> = Vec::new();
        for (i, seen) in &self.reads {
            if !done(*i) {
                continue;
            }
            let chain = match seen {
                Seen::Impossible => return None,
                Seen::Chain(c) => c,
            };
            for &x in chain {
                if !required[x as usize] {
                    required[x as usize] = true;
                    stack.push(x);
                }
            }
            reads.push((*i, *chain.last()?));
            if chain.len() > 1 {
                chains.push(chain);
            }
        }
        // A cas that happened needs the write it expects.
        while let Some(x) = stack.pop() {
            match self.cas_from[x as usize] {
                NONE => {}
                NEVER => return None,
                from => {
                    if !required[from as usize] {
                        required[from as usize] = true;
                        stack.push(from);
                    }
                }
            }
        }
        // "Immediately followed by" links.
        let mut next = vec![NONE; nn];
        let mut prev = vec![NONE; nn];
        let mut link = |a: u32, b: u32| -> bool {
            let (na, pb) = (next[a as usize], prev[b as usize]);
            if (na != NONE && na != b) || (pb != NONE && pb != a) {
                return false;
            }
            next[a as usize] = b;
            prev[b as usize] = a;
            true
        };
        for (x, (&from, &req)) in self.cas_from.iter().zip(&required).enumerate() {
            if req && from != NONE && !link(from, x as u32) {
                return None;
            }
        }
        for chain in chains {
            if !chain.windows(2).all(|w| link(w[0], w[1])) {
                return None;
            }
        }
        // Blocks: maximal chains of links; a cycle can never start.
        let mut block_of = vec![NONE; nn];
        let mut rank = vec![0u32; nn];
        let mut blocks = 0u32;
        let mut placed = 0usize;
        for x in 0..nn {
            if !required[x] || prev[x] != NONE {
                continue;
            }
            let mut y = x as u32;
            let mut r = 0;
            while y != NONE {
                block_of[y as usize] = blocks;
                rank[y as usize] = r;
                r += 2;
                placed += 1;
                y = next[y as usize];
            }
            blocks += 1;
        }
        if placed != required.iter().filter(|&&r| r).count() {
            return None;
        }
        // Every operation that counts, as (block, rank, call, ret, entry).
        let time = |e: u32| -> (i64, i64) {
            if e == NONE {
                return (-1, -1);
            }
            let en = &entries[e as usize];
            let ret = match en.ret {
                Some(r) if r as usize <= cut => i64::from(r),
                _ => i64::MAX,
            };
            (en.call as i64, ret)
        };
        let mut ops: Vec<(u32, u32, i64, i64, u32)> = Vec::with_capacity(placed + reads.len());
        for x in 0..nn {
            if required[x] {
                let e = self.node_entry[x];
                let (c, r) = time(e);
                ops.push((block_of[x], rank[x], c, r, e));
            }
        }
        for &(i, x) in &reads {
            let (c, r) = time(i);
            ops.push((block_of[x as usize], rank[x as usize] + 1, c, r, i));
        }
        ops.sort_unstable();
        // Inside each block, real time must agree with the fixed order;
        // between blocks, `min ret` and `max call` decide.
        let mut bounds: Vec<(i64, i64)> = vec![(i64::MAX, i64::MIN); blocks as usize];
        let mut start = 0;
        while start < ops.len() {
            let b = ops[start].0;
            let mut end = start;
            let mut before = i64::MIN; // latest call of a lower rank
            let mut group_call = i64::MIN;
            let mut group_rank = ops[start].1;
            while end < ops.len() && ops[end].0 == b {
                let (_, r, call, ret, _) = ops[end];
                if r != group_rank {
                    before = before.max(group_call);
                    group_rank = r;
                }
                if ret < before {
                    return None;
                }
                group_call = group_call.max(call);
                let bd = &mut bounds[b as usize];
                bd.0 = bd.0.min(ret);
                bd.1 = bd.1.max(call);
                end += 1;
            }
            start = end;
        }
        let order = topological(&bounds)?;
        // Where each block's operations start in `ops`.
        let mut first = vec![0usize; blocks as usize + 1];
        for op in &ops {
            first[op.0 as usize + 1] += 1;
        }
        for b in 0..blocks as usize {
            first[b + 1] += first[b];
        }
        let mut out = Vec::with_capacity(ops.len());
        for b in order {
            for op in &ops[first[b as usize]..first[b as usize + 1]] {
                if op.4 != NONE {
                    out.push(op.4);
                }
            }
        }
        Some(out)
    }
}

/// An order of blocks where no block comes after one that must follow it
/// (`min ret(B) < max call(A)` means B before A), or `None` when the
/// relation has a cycle. Kahn's algorithm: a block is a source when its
/// latest call is no later than the earliest return of every other block.
fn topological(bounds: &[(i64, i64)]) -> Option<Vec<u32>> {
    let n = bounds.len();
    let mut by_ret: Vec<u32> = (0..n as u32).collect();
    by_ret.sort_unstable_by_key(|&b| bounds[b as usize].0);
    let mut by_call: Vec<u32> = (0..n as u32).collect();
    by_call.sort_unstable_by_key(|&b| bounds[b as usize].1);
    let mut rets = Sorted::new(by_ret);
    let mut calls = Sorted::new(by_call);
    let mut order = Vec::with_capacity(n);
    while let Some(x) = rets.first() {
        let pick = match rets.after(x) {
            None => x,
            Some(y) if bounds[x as usize].1 <= bounds[y as usize].0 => x,
            Some(_) => {
                // Any other source is one whose latest call is no later
                // than x's earliest return: the earliest call, if any.
                let z = calls.first_other(x)?;
                if bounds[z as usize].1 <= bounds[x as usize].0 {
                    z
                } else {
                    return None;
                }
            }
        };
        rets.remove(pick);
        calls.remove(pick);
        order.push(pick);
    }
    Some(order)
}

/// Blocks in a fixed order, with O(1) removal.
struct Sorted {
    items: Vec<u32>,
    /// Position of each block in `items`.
    at: Vec<u32>,
    next: Vec<u32>,
    prev: Vec<u32>,
    head: u32,
}

impl Sorted {
    fn new(items: Vec<u32>) -> Self {
        let n = items.len();
        let mut at = vec![0u32; n];
        for (i, &b) in items.iter().enumerate() {
            at[b as usize] = i as u32;
        }
        Sorted {
            next: (1..=n as u32)
                .map(|i| if i as usize == n { NONE } else { i })
                .collect(),
            prev: (0..n as u32)
                .map(|i| if i == 0 { NONE } else { i - 1 })
                .collect(),
            head: if n == 0 { NONE } else { 0 },
            items,
            at,
        }
    }
    fn first(&self) -> Option<u32> {
        (self.head != NONE).then(|| self.items[self.head as usize])
    }
    fn after(&self, b: u32) -> Option<u32> {
        let n = self.next[self.at[b as usize] as usize];
        (n != NONE).then(|| self.items[n as usize])
    }
    fn first_other(&self, b: u32) -> Option<u32> {
        let f = self.first()?;
        if f == b { self.after(b) } else { Some(f) }
    }
    fn remove(&mut self, b: u32) {
        let i = self.at[b as usize] as usize;
        let (p, n) = (self.prev[i], self.next[i]);
        if p == NONE {
            self.head = n;
        } else {
            self.next[p as usize] = n;
        }
        if n != NONE {
            self.prev[n as usize] = p;
        }
    }
}

/// How a read of a list key is parsed into writes.
struct Lists<'a> {
    /// Heads (`put` values and the initial value) by the text they stand
    /// for when appended to.
    heads: HashMap<&'a [u8], Vec<u32>>,
    head_lens: Vec<usize>,
    appends: HashMap<&'a [u8], u32>,
    append_lens: Vec<usize>,
    /// Length of each append node's text.
    node_len: Vec<usize>,
}

impl<'a> Lists<'a> {
    fn new(
        model: &'a RegisterModel,
        by_value: &HashMap<u32, u32>,
        appends: HashMap<&'a [u8], u32>,
    ) -> Self {
        let mut heads: HashMap<&[u8], Vec<u32>> = HashMap::new();
        for (&v, &node) in by_value {
            if let Some(t) = model.text_of_id(v) {
                heads.entry(t.as_bytes()).or_default().push(node);
            }
        }
        let lens = |keys: &mut dyn Iterator<Item = usize>| {
            let mut v: Vec<usize> = keys.collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        let mut node_len = vec![0; appends.values().max().map_or(0, |&m| m as usize + 1)];
        for (k, &node) in &appends {
            node_len[node as usize] = k.len();
        }
        Lists {
            node_len,
            head_lens: lens(&mut heads.keys().map(|k| k.len())),
            append_lens: lens(&mut appends.keys().map(|k| k.len())),
            heads,
            appends,
        }
    }

    /// What a read of value `v` saw; `None` when it could be parsed in two
    /// ways (the key does not qualify).
    fn parse(&self, model: &RegisterModel, by_value: &HashMap<u32, u32>, v: u32) -> Option<Seen> {
        let mut found: Option<Vec<u32>> = None;
        let mut count = 0;
        // The value a put (or the initial value) wrote, unchanged.
        if let Some(&n) = by_value.get(&v) {
            count += 1;
            found = Some(vec![n]);
        }
        // A head's text followed by one or more appends.
        if let Some(s) = model.value(v).as_str().map(str::as_bytes) {
            for &l in self.head_lens.iter().take_while(|&&l| l < s.len()) {
                let Some(hs) = self.heads.get(&s[..l]) else {
                    continue;
                };
                let (ways, appends) = self.appends_in(&s[l..]);
                if ways == 0 {
                    continue;
                }
                count += ways * hs.len();
                if let Some(a) = appends {
                    let mut chain = Vec::with_capacity(a.len() + 1);
                    chain.push(hs[0]);
                    chain.extend(a);
                    found = Some(chain);
                }
            }
        }
        match (count, found) {
            (0, _) => Some(Seen::Impossible),
            (1, Some(chain)) => {
                // Each append happens once.
                let mut sorted = chain.clone();
                sorted.sort_unstable();
                sorted.dedup();
                Some(if sorted.len() == chain.len() {
                    Seen::Chain(chain)
                } else {
                    Seen::Impossible
                })
            }
            _ => None,
        }
    }

    /// In how many ways (0, 1, or 2 for "more than one") `s` is a
    /// concatenation of appended strings, and the appends when one.
    fn appends_in(&self, s: &[u8]) -> (usize, Option<Vec<u32>>) {
        let n = s.len();
        let mut ways = vec![0u8; n + 1];
        let mut via = vec![NONE; n + 1];
        ways[0] = 1;
        for i in 0..n {
            if ways[i] == 0 {
                continue;
            }
            for &l in self.append_lens.iter().take_while(|&&l| i + l <= n) {
                if let Some(&a) = self.appends.get(&s[i..i + l]) {
                    if ways[i + l] == 0 {
                        via[i + l] = a;
                    }
                    ways[i + l] = (ways[i + l] + ways[i]).min(2);
                }
            }
        }
        match ways[n] {
            0 => (0, None),
            1 => {
                let mut out = Vec::new();
                let mut at = n;
                while at > 0 {
                    let a = via[at];
                    out.push(a);
                    at -= self.node_len[a as usize];
                }
                out.reverse();
                (1, Some(out))
            }
            _ => (2, None),
        }
    }
}

/// True when no operation of `order` returned before an earlier one in
/// `order` was invoked.
fn respects_real_time(entries: &[Entry<RegOp>], order: &[u32]) -> bool {
    let mut latest_call = 0usize;
    for &i in order {
        let e = &entries[i as usize];
        if e.ret.is_some_and(|r| (r as usize) < latest_call) {
            return false;
        }
        latest_call = latest_call.max(e.call as usize);
    }
    true
}

enum Replay {
    State(RegState),
    Failed,
    TooLong,
}

/// Steps the model through `order`.
fn replay(model: &RegisterModel, entries: &[Entry<RegOp>], order: &[u32]) -> Replay {
    let mut state = model.init();
    let mut copied = 0usize;
    for &i in order {
        let op = &entries[i as usize].op;
        if matches!(op, RegOp::Append(_)) {
            copied += model.text_of(&state).map_or(0, str::len);
            if copied > REPLAY_BYTES {
                return Replay::TooLong;
            }
        }
        match model.step(&state, op) {
            Some(s) => state = s,
            None => return Replay::Failed,
        }
    }
    Replay::State(state)
}
