//! The search for a linearization of one partition (one key).
//!
//! Wing & Gong's depth-first search with Lowe's memoisation, as in Knossos
//! and Porcupine, with these differences (each measured on the corpus):
//!
//! * **Operations of unknown outcome are apart.** An `info` (or pending)
//!   operation has no return, so it never blocks anything; it lives in its
//!   own candidate lists and the search ends as soon as every *completed*
//!   operation is placed (the rest never took effect). Porcupine gives them a
//!   return at the end of the history and must place all of them.
//! * **Dominance instead of equality in the cache.** A configuration is the
//!   set of completed operations placed, the state, and the set of unknown
//!   operations placed. One that has placed *more* unknown operations than a
//!   configuration already seen, with the same completed set and state, can
//!   do nothing the other could not, so it is pruned.
//! * **An unknown operation is placed only when it is useful right away**:
//!   when it lets a completed candidate step, or changes what another
//!   state-dependent unknown operation would do. Any linearization can be
//!   rewritten so that every unknown operation it uses is useful in this
//!   sense (drop the others: they "never happened"), so this loses nothing.
//!   Blind writes of unknown outcome no longer multiply the search.
//! * **Compact configurations.** Completed operations are numbered in
//!   invocation order, so the placed set is a run of full words plus a short
//!   window; the cache stores only the window, hashed incrementally
//!   (Zobrist), in arenas instead of one allocation per entry.
//! * **Budgets.** A deadline and a memory bound shared by all partitions end
//!   the search with "unknown", never with "valid".

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use crate::model::{Entry, Model};

/// Limits shared by every partition of one check.
#[derive(Debug)]
pub struct Budget {
    /// Give up after this instant.
    pub deadline: Option<Instant>,
    /// Give up when the caches of all partitions together exceed this many
    /// bytes.
    pub memory_limit: usize,
    /// Bytes in use by all partitions' caches.
    pub memory_used: AtomicUsize,
    /// Set when a partition ran out of budget, so the others stop early.
    pub exhausted: AtomicBool,
    /// When the check started.
    pub started: Instant,
    /// Stop the other partitions once one is proven not linearizable.
    pub stop_after_violation: bool,
    /// Nanoseconds from `started` to the first violation (0: none yet).
    pub violation_at: AtomicU64,
}

impl Budget {
    /// A budget of `seconds` (None: unlimited) and `memory_limit` bytes.
    pub fn new(seconds: Option<f64>, memory_limit: usize) -> Self {
        Budget {
            deadline: seconds.map(|s| Instant::now() + std::time::Duration::from_secs_f64(s)),
            memory_limit,
            memory_used: AtomicUsize::new(0),
            exhausted: AtomicBool::new(false),
            started: Instant::now(),
            stop_after_violation: false,
            violation_at: AtomicU64::new(0),
        }
    }

    /// Records that a partition was proven not linearizable (the first
    /// time only).
    pub fn record_violation(&self) {
        let at = u64::try_from(self.started.elapsed().as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        let _ = self
            .violation_at
            .compare_exchange(0, at, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// True when the other partitions should stop: a violation was found
    /// and they have had as much extra time as the check took to find it.
    pub fn past_violation_grace(&self) -> bool {
        if !self.stop_after_violation {
            return false;
        }
        let at = self.violation_at.load(Ordering::Relaxed);
        at != 0
            && u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX)
                >= at.saturating_mul(2)
    }
}

/// Why a search gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GaveUp {
    /// The deadline passed.
    Time,
    /// The memory bound was reached.
    Memory,
    /// Another partition gave up, so this one stopped.
    Elsewhere,
    /// Another partition was proven not linearizable and this one had its
    /// extra time: not decided.
    AfterViolation,
}

/// What the search found.
#[derive(Debug)]
pub enum SearchResult<S> {
    /// A linearization exists.
    Linearizable,
    /// No linearization exists.
    NotLinearizable(Stuck<S>),
    /// The budget ran out first.
    GaveUp(GaveUp),
}

/// Where every search path got stuck: the evidence for a witness.
#[derive(Debug)]
pub struct Stuck<S> {
    /// Entry index of the operation that cannot be placed: the completed
    /// operation whose return no configuration got past.
    pub op: usize,
    /// Entry indices of one longest sequence placed before it, in order.
    pub prefix: Vec<usize>,
    /// Distinct states of the configurations that got that far (at most
    /// [`MAX_STATES`]).
    pub states: Vec<S>,
    /// Whether there were more distinct states than kept.
    pub more_states: bool,
    /// True when `states` are all the states every search path reached;
    /// false when they are those of one longest linearizable prefix (the
    /// polynomial decision of unique values).
    pub exhaustive: bool,
}

/// How many distinct states a witness keeps.
pub const MAX_STATES: usize = 16;

/// Counters of one search.
#[derive(Debug, Default, Clone, Copy)]
pub struct SearchStats {
    /// Configurations visited (cache entries made).
    pub configs: u64,
    /// Steps of the model tried.
    pub steps: u64,
    /// Peak bytes of the cache.
    pub cache_bytes: usize,
    /// Decided in polynomial time, without the search.
    pub polynomial: bool,
}

const NIL: u32 = u32::MAX;

/// A hasher for keys that are already well-mixed 64-bit hashes.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// FxHash-style hasher for states (shared with the transactional checker).
use crate::txn::hash::FastHasher as Fx;

fn hash_state<S: Hash>(s: &S) -> u64 {
    let mut h = Fx::default();
    s.hash(&mut h);
    // Final mix so that nearby states spread.
    let mut x = h.finish();
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^ (x >> 33)
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One memoised configuration.
struct CacheEntry<S> {
    /// Next entry with the same hash bucket.
    next: u32,
    hash: u64,
    /// Index of the first word not known to be full.
    first_word: u32,
    words_at: u32,
    words_len: u32,
    info_at: u32,
    info_len: u32,
    state: S,
    /// The configuration this one was reached from (for the witness).
    parent: u32,
    /// The entry (operation) placed to get here.
    op: u32,
}

struct Cache<S> {
    buckets: HashMap<u64, u32, BuildHasherDefault<PassThrough>>,
    entries: Vec<CacheEntry<S>>,
    words: Vec<u64>,
    infos: Vec<u32>,
    /// Heap bytes the cached states own (appended text).
    state_heap: usize,
}

/// Bytes per element of the table's capacity (a 12-byte slot padded to 16,
/// a control byte, and the 1/8 the table keeps free).
const BUCKET_BYTES: usize = 24;

impl<S: Eq> Cache<S> {
    fn bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<CacheEntry<S>>()
            + self.words.capacity() * 8
            + self.infos.capacity() * 4
            + self.buckets.capacity() * BUCKET_BYTES
            + self.state_heap
    }

    /// Bytes the next insert would newly allocate (each store doubles when
    /// full; the old buffer lives until the new one is filled), 0 when it
    /// fits.
    fn growth(&self, window: usize, info: usize) -> usize {
        fn grow(len: usize, cap: usize, add: usize, elem: usize) -> usize {
            if len + add > cap {
                (cap + cap.max(add).max(4)) * elem
            } else {
                0
            }
        }
        grow(
            self.entries.len(),
            self.entries.capacity(),
            1,
            std::mem::size_of::<CacheEntry<S>>(),
        ) + grow(self.words.len(), self.words.capacity(), window, 8)
            + grow(self.infos.len(), self.infos.capacity(), info, 4)
            + grow(self.buckets.len(), self.buckets.capacity(), 1, BUCKET_BYTES)
    }

    /// Makes room for the next insert, as [`Cache::growth`] counted.
    fn reserve(&mut self, window: usize, info: usize) {
        fn room<T>(v: &mut Vec<T>, add: usize) {
            if v.len() + add > v.capacity() {
                v.reserve_exact(v.capacity().max(add).max(4));
            }
        }
        room(&mut self.entries, 1);
        room(&mut self.words, window);
        room(&mut self.infos, info);
        if self.buckets.len() + 1 > self.buckets.capacity() {
            self.buckets.reserve(self.buckets.capacity().max(4));
        }
    }

    /// True when a configuration with this placed set and state, and a
    /// subset of these unknown operations, was seen.
    fn dominated(
        &self,
        hash: u64,
        first_word: u32,
        window: &[u64],
        info: &[u32],
        state: &S,
    ) -> bool {
        let mut i = match self.buckets.get(&hash) {
            Some(&i) => i,
            None => return false,
        };
        while i != NIL {
            let e = &self.entries[i as usize];
            if e.hash == hash
                && e.first_word == first_word
                && e.words_len as usize == window.len()
                && &e.state == state
                && self.words[e.words_at as usize..(e.words_at + e.words_len) as usize] == *window
                && is_subset(
                    &self.infos[e.info_at as usize..(e.info_at + e.info_len) as usize],
                    info,
                )
            {
                return true;
            }
            i = e.next;
        }
        false
    }

    #[allow(clippy::too_many_arguments)]
    fn insert(
        &mut self,
        hash: u64,
        first_word: u32,
        window: &[u64],
        info: &[u32],
        state: S,
        parent: u32,
        op: u32,
    ) -> u32 {
        let idx = self.entries.len() as u32;
        let next = self.buckets.insert(hash, idx).unwrap_or(NIL);
        let words_at = self.words.len() as u32;
        self.words.extend_from_slice(window);
        let info_at = self.infos.len() as u32;
        self.infos.extend_from_slice(info);
        self.entries.push(CacheEntry {
            next,
            hash,
            first_word,
            words_at,
            words_len: window.len() as u32,
            info_at,
            info_len: info.len() as u32,
            state,
            parent,
            op,
        });
        idx
    }
}

/// Both sorted.
fn is_subset(small: &[u32], big: &[u32]) -> bool {
    if small.len() > big.len() {
        return false;
    }
    let mut j = 0;
    for &x in small {
        while j < big.len() && big[j] < x {
            j += 1;
        }
        if j == big.len() || big[j] != x {
            return false;
        }
        j += 1;
    }
    true
}

/// A doubly linked list over `0..n` with a sentinel `n`, supporting O(1)
/// removal and re-insertion in LIFO order (dancing links).
struct Links {
    next: Vec<u32>,
    prev: Vec<u32>,
}

impl Links {
    /// A list holding `order` (element ids in list order), over ids `0..n`.
    fn new(n: usize, order: impl Iterator<Item = u32>) -> Self {
        let mut next = vec![NIL; n + 1];
        let mut prev = vec![NIL; n + 1];
        let head = n as u32;
        let mut last = head;
        for id in order {
            next[last as usize] = id;
            prev[id as usize] = last;
            last = id;
        }
        next[last as usize] = head;
        prev[head as usize] = last;
        Links { next, prev }
    }
    fn head(&self) -> u32 {
        (self.next.len() - 1) as u32
    }
    fn first(&self) -> u32 {
        self.next[self.next.len() - 1]
    }
    fn unlink(&mut self, i: u32) {
        let (p, n) = (self.prev[i as usize], self.next[i as usize]);
        self.next[p as usize] = n;
        self.prev[n as usize] = p;
    }
    fn relink(&mut self, i: u32) {
        let (p, n) = (self.prev[i as usize], self.next[i as usize]);
        self.next[p as usize] = i;
        self.prev[n as usize] = i;
    }
}

/// Which list a candidate comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cursor {
    /// Completed operations, by definite id.
    Def(u32),
    /// Unknown-outcome operations whose effect depends on the state.
    Dep(u32),
    /// Unknown-outcome blind operations (their result ignores the state).
    Blind(u32),
    /// No candidate left.
    Done,
}

struct Frame<S> {
    /// The candidate placed to reach the child.
    placed: Cursor,
    /// State before it.
    state: S,
    /// Where to resume among the parent's candidates.
    resume: Cursor,
    /// The parent's cache entry.
    entry: u32,
}

/// What is placed: the completed operations (a bitset, Zobrist-hashed, and
/// unlinked from the candidate lists) and the unknown-outcome ones (a sorted
/// id list). `place` and `unplace` undo each other in LIFO order.
struct Placed {
    calls: Links,
    rets: Links,
    deps: Links,
    blinds: Links,
    bits: Vec<u64>,
    zobrist: Vec<u64>,
    zhash: u64,
    /// Sorted ids (dep ids as-is, blind ids offset by `blind_base`).
    info: Vec<u32>,
    blind_base: u32,
}

impl Placed {
    fn place(&mut self, c: Cursor) {
        match c {
            Cursor::Def(d) => {
                self.bits[d as usize / 64] |= 1u64 << (d % 64);
                self.zhash ^= self.zobrist[d as usize];
                self.calls.unlink(d);
                self.rets.unlink(d);
            }
            Cursor::Dep(i) => {
                self.deps.unlink(i);
                insert_sorted(&mut self.info, i);
            }
            Cursor::Blind(i) => {
                self.blinds.unlink(i);
                insert_sorted(&mut self.info, self.blind_base + i);
            }
            Cursor::Done => {}
        }
    }

    fn unplace(&mut self, c: Cursor) {
        match c {
            Cursor::Def(d) => {
                self.rets.relink(d);
                self.calls.relink(d);
                self.bits[d as usize / 64] &= !(1u64 << (d % 64));
                self.zhash ^= self.zobrist[d as usize];
            }
            Cursor::Dep(i) => {
                self.deps.relink(i);
                remove_sorted(&mut self.info, i);
            }
            Cursor::Blind(i) => {
                self.blinds.relink(i);
                remove_sorted(&mut self.info, self.blind_base + i);
            }
            Cursor::Done => {}
        }
    }

    /// Every completed operation is placed.
    fn complete(&self) -> bool {
        self.rets.first() == self.rets.head()
    }
}

/// Searches for a linearization of `entries` (sorted by invocation).
pub fn search<M: Model>(
    model: &M,
    entries: &[Entry<M::Op>],
    budget: &Budget,
    stats: &mut SearchStats,
) -> SearchResult<M::State> {
    // Number the completed (definite) and unknown (indefinite) operations.
    let mut def: Vec<u32> = Vec::new(); // definite id -> entry index
    let mut dep: Vec<u32> = Vec::new(); // state-dependent indefinite id -> entry index
    let mut blind: Vec<u32> = Vec::new(); // blind indefinite id -> entry index
    for (i, e) in entries.iter().enumerate() {
        if e.ret.is_some() {
            def.push(i as u32);
        } else if model.is_blind(&e.op) {
            blind.push(i as u32);
        } else {
            dep.push(i as u32);
        }
    }
    if def.is_empty() {
        return SearchResult::Linearizable;
    }
    let n = def.len();
    let call_of = |i: u32| entries[i as usize].call as usize;
    let call_d: Vec<usize> = def.iter().map(|&i| call_of(i)).collect();
    let ret_d: Vec<usize> = def
        .iter()
        .map(|&i| entries[i as usize].ret.map_or(usize::MAX, |r| r as usize))
        .collect();
    let call_dep: Vec<usize> = dep.iter().map(|&i| call_of(i)).collect();
    let call_blind: Vec<usize> = blind.iter().map(|&i| call_of(i)).collect();
    let mut by_ret: Vec<u32> = (0..n as u32).collect();
    by_ret.sort_by_key(|&d| ret_d[d as usize]);

    let mut seed = 0x5eed_u64;
    let mut p = Placed {
        calls: Links::new(n, 0..n as u32),
        rets: Links::new(n, by_ret.iter().copied()),
        deps: Links::new(dep.len(), 0..dep.len() as u32),
        blinds: Links::new(blind.len(), 0..blind.len() as u32),
        bits: vec![0u64; n.div_ceil(64)],
        zobrist: (0..n).map(|_| splitmix(&mut seed)).collect(),
        zhash: 0,
        info: Vec::new(),
        blind_base: dep.len() as u32,
    };

    let mut cache: Cache<M::State> = Cache {
        buckets: HashMap::default(),
        entries: Vec::new(),
        words: Vec::new(),
        infos: Vec::new(),
        state_heap: 0,
    };
    // Bytes of this cache counted in the shared budget.
    let mut counted_bytes = 0usize;
    // Counts the cache's growth in the budget, and gives up before a growth
    // that would pass the memory bound.
    let account = |cache: &Cache<M::State>,
                   counted: &mut usize,
                   stats: &mut SearchStats,
                   need: usize|
     -> Option<GaveUp> {
        let bytes = cache.bytes();
        if bytes > *counted {
            budget
                .memory_used
                .fetch_add(bytes - *counted, Ordering::Relaxed);
            *counted = bytes;
            stats.cache_bytes = stats.cache_bytes.max(bytes);
        }
        (budget.memory_used.load(Ordering::Relaxed) + need > budget.memory_limit)
            .then_some(GaveUp::Memory)
    };
    let give_up = |counted: usize, g: GaveUp| -> SearchResult<M::State> {
        if g != GaveUp::AfterViolation {
            budget.exhausted.store(true, Ordering::Relaxed);
        }
        budget.memory_used.fetch_sub(counted, Ordering::Relaxed);
        SearchResult::GaveUp(g)
    };

    // The window of the placed set that is not all ones.
    let window = |p: &Placed, min_ret: usize| -> (u32, usize, usize) {
        let bits = &p.bits;
        let first_unplaced = p.calls.first();
        let first_word = if first_unplaced == p.calls.head() {
            bits.len()
        } else {
            first_unplaced as usize / 64
        };
        // Every placed operation was invoked before min_ret (or is it).
        let bound = call_d.partition_point(|&c| c <= min_ret);
        let mut end = bound.div_ceil(64).min(bits.len());
        while end > first_word && bits[end - 1] == 0 {
            end -= 1;
        }
        (first_word as u32, first_word, end.max(first_word))
    };

    let mut state = model.init();
    let min_ret0 = ret_d[p.rets.first() as usize];
    let (fw, a, b) = window(&p, min_ret0);
    let h0 = p.zhash ^ hash_state(&state);
    let mut cur_entry = cache.insert(h0, fw, &p.bits[a..b], &p.info, state.clone(), NIL, NIL);
    stats.configs += 1;

    // Witness: the furthest return reached.
    let mut best_ret = min_ret0;
    let mut best_entry = cur_entry;
    let mut best_states: Vec<M::State> = vec![state.clone()];
    let mut more_states = false;

    let mut stack: Vec<Frame<M::State>> = Vec::new();
    let mut cursor = Cursor::Def(p.calls.first());
    let mut iterations: u64 = 0;

    loop {
        iterations += 1;
        if iterations & 0x3ff == 0 {
            let over = account(&cache, &mut counted_bytes, stats, 0);
            let gave_up = if budget.exhausted.load(Ordering::Relaxed) {
                Some(GaveUp::Elsewhere)
            } else if budget.past_violation_grace() {
                Some(GaveUp::AfterViolation)
            } else if over.is_some() {
                over
            } else if budget.deadline.is_some_and(|d| Instant::now() >= d) {
                Some(GaveUp::Time)
            } else {
                None
            };
            if let Some(g) = gave_up {
                return give_up(counted_bytes, g);
            }
        }

        let min_ret = ret_d[p.rets.first() as usize];
        // Next candidate from the cursor.
        let cand = loop {
            match cursor {
                Cursor::Def(d) => {
                    if d != p.calls.head() && call_d[d as usize] <= min_ret {
                        break cursor;
                    }
                    cursor = Cursor::Dep(p.deps.first());
                }
                Cursor::Dep(i) => {
                    if i != p.deps.head() && call_dep[i as usize] <= min_ret {
                        break cursor;
                    }
                    cursor = Cursor::Blind(p.blinds.first());
                }
                Cursor::Blind(i) => {
                    if i != p.blinds.head() && call_blind[i as usize] <= min_ret {
                        break cursor;
                    }
                    cursor = Cursor::Done;
                }
                Cursor::Done => break Cursor::Done,
            }
        };
        // Advance the cursor past the candidate.
        cursor = match cand {
            Cursor::Def(d) => Cursor::Def(p.calls.next[d as usize]),
            Cursor::Dep(i) => Cursor::Dep(p.deps.next[i as usize]),
            Cursor::Blind(i) => Cursor::Blind(p.blinds.next[i as usize]),
            Cursor::Done => Cursor::Done,
        };

        if cand == Cursor::Done {
            // Dead end: backtrack.
            let Some(frame) = stack.pop() else {
                budget
                    .memory_used
                    .fetch_sub(counted_bytes, Ordering::Relaxed);
                stats.cache_bytes = stats.cache_bytes.max(cache.bytes());
                let mut prefix = Vec::new();
                let mut e = best_entry;
                while e != NIL && cache.entries[e as usize].op != NIL {
                    prefix.push(cache.entries[e as usize].op as usize);
                    e = cache.entries[e as usize].parent;
                }
                prefix.reverse();
                return SearchResult::NotLinearizable(Stuck {
                    op: def[best_ret_op(&by_ret, &ret_d, best_ret)] as usize,
                    prefix,
                    states: best_states,
                    more_states,
                    exhaustive: true,
                });
            };
            p.unplace(frame.placed);
            state = frame.state;
            cursor = frame.resume;
            cur_entry = frame.entry;
            continue;
        }

        let entry_idx = match cand {
            Cursor::Def(d) => def[d as usize],
            Cursor::Dep(i) => dep[i as usize],
            Cursor::Blind(i) => blind[i as usize],
            Cursor::Done => unreachable!("handled above"),
        };
        let op = &entries[entry_idx as usize].op;
        stats.steps += 1;
        let Some(next_state) = model.step(&state, op) else {
            continue;
        };

        // Unknown-outcome operations must be useful at once.
        if !matches!(cand, Cursor::Def(_)) {
            // Not if it only overrides the unknown operation placed just
            // before (the sibling without that one reaches the same state).
            if let Some(top) = stack.last() {
                if !matches!(top.placed, Cursor::Def(_))
                    && model.step(&top.state, op).as_ref() == Some(&next_state)
                {
                    continue;
                }
            }
            let mut useful = false;
            let mut d = p.calls.first();
            while d != p.calls.head() && call_d[d as usize] <= min_ret {
                stats.steps += 1;
                if model
                    .step(&next_state, &entries[def[d as usize] as usize].op)
                    .is_some()
                {
                    useful = true;
                    break;
                }
                d = p.calls.next[d as usize];
            }
            if !useful {
                let mut j = p.deps.first();
                while j != p.deps.head() && call_dep[j as usize] <= min_ret {
                    if Cursor::Dep(j) != cand {
                        let other = &entries[dep[j as usize] as usize].op;
                        stats.steps += 2;
                        if let Some(after) = model.step(&next_state, other) {
                            if model.step(&state, other).as_ref() != Some(&after) {
                                useful = true;
                                break;
                            }
                        }
                    }
                    j = p.deps.next[j as usize];
                }
            }
            if !useful {
                continue;
            }
        }

        // Place it.
        p.place(cand);
        if matches!(cand, Cursor::Def(_)) && p.complete() {
            budget
                .memory_used
                .fetch_sub(counted_bytes, Ordering::Relaxed);
            stats.cache_bytes = stats.cache_bytes.max(cache.bytes());
            return SearchResult::Linearizable;
        }
        let child_min_ret = ret_d[p.rets.first() as usize];
        let (fw, a, b) = window(&p, child_min_ret);
        let h = p.zhash ^ hash_state(&next_state);
        if cache.dominated(h, fw, &p.bits[a..b], &p.info, &next_state) {
            // Undo.
            p.unplace(cand);
            continue;
        }
        let need = cache.growth(b - a, p.info.len());
        if need > 0 {
            if let Some(g) = account(&cache, &mut counted_bytes, stats, need) {
                return give_up(counted_bytes, g);
            }
            cache.reserve(b - a, p.info.len());
            account(&cache, &mut counted_bytes, stats, 0);
        }
        cache.state_heap += model.state_heap_bytes(&next_state);
        let child = cache.insert(
            h,
            fw,
            &p.bits[a..b],
            &p.info,
            next_state.clone(),
            cur_entry,
            entry_idx,
        );
        stats.configs += 1;
        if child_min_ret > best_ret {
            best_ret = child_min_ret;
            best_entry = child;
            best_states.clear();
            best_states.push(next_state.clone());
            more_states = false;
        } else if child_min_ret == best_ret && !best_states.contains(&next_state) {
            if best_states.len() < MAX_STATES {
                best_states.push(next_state.clone());
            } else {
                more_states = true;
            }
        }
        stack.push(Frame {
            placed: cand,
            state: std::mem::replace(&mut state, next_state),
            resume: cursor,
            entry: cur_entry,
        });
        cur_entry = child;
        cursor = Cursor::Def(p.calls.first());
    }
}

/// The definite id whose return is at `ret` position.
fn best_ret_op(by_ret: &[u32], ret_d: &[usize], ret: usize) -> usize {
    let k = by_ret.partition_point(|&d| ret_d[d as usize] < ret);
    by_ret[k.min(by_ret.len() - 1)] as usize
}

fn insert_sorted(v: &mut Vec<u32>, x: u32) {
    let at = v.partition_point(|&y| y < x);
    v.insert(at, x);
}

fn remove_sorted(v: &mut Vec<u32>, x: u32) {
    let at = v.partition_point(|&y| y < x);
    if at < v.len() && v[at] == x {
        v.remove(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subset() {
        assert!(is_subset(&[], &[1, 2]));
        assert!(is_subset(&[2], &[1, 2]));
        assert!(is_subset(&[1, 2], &[1, 2, 3]));
        assert!(!is_subset(&[4], &[1, 2, 3]));
        assert!(!is_subset(&[1, 2], &[2]));
    }

    #[test]
    fn links_unlink_relink() {
        let mut l = Links::new(4, 0..4);
        l.unlink(1);
        l.unlink(2);
        assert_eq!(l.first(), 0);
        assert_eq!(l.next[0], 3);
        l.relink(2);
        l.relink(1);
        assert_eq!(l.next[0], 1);
        assert_eq!(l.next[1], 2);
    }
}
