//! Causal consistency of key-value (read/write register) histories in the
//! three variants of Bouajjani, Enea, Guerraoui and Hamza ("On Verifying
//! Causal Consistency", POPL 2017), decided by their bad patterns on
//! histories where each value is written at most once per key (see
//! [`crate::rw`] for the input contract).
//!
//! # Definitions
//!
//! Program order (PO) is session order. A read *reads from* (RF) the write
//! of the value it returned. The causal order CO is the transitive closure
//! of PO ∪ RF.
//!
//! - **CC** (causal consistency): each read, alone, can be explained by some
//!   order of its causal past. Bad patterns: **CyclicCO** (CO has a cycle),
//!   **WriteCOInitRead** (a read returns the initial value of x although a
//!   write of x causally precedes it), **ThinAirRead** (a read returns a
//!   value nobody wrote; faultline also calls a read of a failed write's
//!   value an aborted read), **WriteCORead** (a read returns w1's value
//!   although another write of the key, causally after w1, causally precedes
//!   the read).
//! - **CCv** (causal convergence): one order of all writes, extending CO,
//!   explains every read. CC's patterns plus **CyclicCF**: with w1 CF w2
//!   when w1 is in the causal past of a read of w2 (same key), CF ∪ CO has a
//!   cycle.
//! - **CM** (causal memory): each session has its own order of its causal
//!   past, extending CO, that explains all its reads. CC's patterns plus, for
//!   some session p, with HBp the smallest transitive relation that contains
//!   CO (on the causal past of p) and w1 → w2 whenever w1 HBp r for a read r
//!   of p returning w2 (same key): **WriteHBInitRead** (a read of p returns
//!   the initial value of x although a write of x is HBp-before it), or
//!   **CyclicHB** (HBp has a cycle).
//!
//! # Algorithm
//!
//! Causal pasts are vector clocks over the sessions' chains (one entry per
//! session), computed in one topological pass (which also finds CyclicCO).
//! The writes of a key made by one session form a chain, so "the writes of x
//! in a read's causal past" are, per session, a prefix: the checks look at
//! the last one per session. WriteCOInitRead, WriteCORead and the CF edges
//! cost O(sessions writing the key) per read; CyclicCF is a strongly
//! connected components pass over PO ∪ RF ∪ CF.
//!
//! CM saturates HBp per session p with vector clocks: the extra edges
//! w1 → w2 only enter writes that p reads, so each such write t carries the
//! vector D(t) of what must precede it in p's view, and the HBp-past of a
//! set is its closure under "t in the set ⇒ D(t) in the set" (prefix joins
//! per session make that cheap). Passes over p's reads recompute the D(t)
//! until nothing changes. CyclicHB is then "t is in the closure of its own
//! strict past". Each pass is linear in p's reads times the number of
//! sessions; the number of passes is small in practice. A time limit makes
//! the verdict unknown, never valid.
//!
//! An operation of unknown outcome that someone read (an `info` write)
//! happened, at some time after its invocation: it follows the operations
//! before it in its session, and precedes none of its session's later ones.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

use serde_json::json;

use crate::anomaly::{Anomaly, MAX_ANOMALIES, finish};
use crate::graph::{Edge, GraphBuilder};
use crate::history::Operation;
use crate::linear::OpView;
use crate::rw::{Ret, RwHistory, Step, WriteStatus};
use crate::verdict::{CheckResult, Validity};

/// A variant of causal consistency.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// Causal consistency.
    Cc,
    /// Causal convergence.
    Ccv,
    /// Causal memory.
    Cm,
}

impl Variant {
    /// `cc`, `ccv` or `cm`.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Cc => "cc",
            Variant::Ccv => "ccv",
            Variant::Cm => "cm",
        }
    }

    /// All three.
    pub const ALL: [Variant; 3] = [Variant::Cc, Variant::Ccv, Variant::Cm];
}

/// Budgets of the causal checks.
#[derive(Clone, Debug)]
pub struct CausalOptions {
    /// Give up (unknown) after this instant.
    pub deadline: Option<Instant>,
    /// Give up (unknown) when the vector clocks would take more bytes.
    pub memory_limit: usize,
}

impl Default for CausalOptions {
    fn default() -> Self {
        CausalOptions {
            deadline: None,
            memory_limit: 4 << 30,
        }
    }
}

/// A node of the causal graph: reads are `0..reads`, writes follow.
type Node = u32;

/// The writes of one key: per chain that writes it, its (index in the
/// chain, write) pairs in chain order.
type KeyWrites = Vec<(u32, Vec<(u32, u32)>)>;

/// Why an edge of the explicit causal graph is there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
    /// Session order.
    Po,
    /// Reads-from.
    Rf,
    /// Conflict: the source write is in the causal past of this read, which
    /// returned the target.
    Cf(u32),
    /// CM: the source write is before this read of the session in its view,
    /// and the read returned the target.
    Hb(u32),
}

const NONE: u32 = u32::MAX;

/// The causal structure: chains (sessions, and one chain per `info` write
/// that has later operations in its session), vector clocks of the reads.
struct Causal<'a, 'h> {
    rw: &'a RwHistory<'h>,
    n_reads: u32,
    /// Chains: their nodes in order.
    chains: Vec<Vec<Node>>,
    /// Chain and index of every node (NONE for writes that did not happen).
    chain_of: Vec<u32>,
    idx_of: Vec<u32>,
    /// For writes: the chain of their session, the number of that chain's
    /// nodes up to and including them (before them when on their own chain),
    /// and the last read of that chain before them.
    write_session_chain: Vec<u32>,
    write_prefix: Vec<u32>,
    write_base: Vec<u32>,
    /// The node before a write on its own chain (for chains of one `info`
    /// write): its session predecessor, or NONE.
    pseudo_parent: Vec<Node>,
    /// Vector clocks of the reads: `n_reads * width`.
    vc: Vec<u32>,
    width: usize,
    /// Per key: per chain that writes it, the (index, write) pairs in order.
    by_key: Vec<KeyWrites>,
}

/// The results of the three variants.
pub struct CausalReport {
    /// `(variant, result, milliseconds)` for each variant asked for, in
    /// order. The time of each includes the shared part (vector clocks and
    /// CC's patterns).
    pub results: Vec<(Variant, CheckResult, f64)>,
}

/// Checks the `variants` of causal consistency on `rw`.
pub fn check(rw: &RwHistory<'_>, variants: &[Variant], opts: &CausalOptions) -> CausalReport {
    let t0 = Instant::now();
    let ms = |t: Instant| t.elapsed().as_secs_f64() * 1e3;
    let impossible = rw.impossible_reads();
    let n_impossible = impossible.len();
    let mut base: Vec<Anomaly> = impossible
        .into_iter()
        .take(MAX_ANOMALIES)
        .map(|mut a| {
            a.kind = "ThinAirRead";
            a
        })
        .collect();
    let c = match Causal::build(rw, opts) {
        Ok(c) => c,
        Err(Stop::Unknown(reason)) => {
            let results = variants
                .iter()
                .map(|&v| (v, unknown(reason.clone(), base.clone()), ms(t0)))
                .collect();
            return CausalReport { results };
        }
        Err(Stop::Cyclic(cycles)) => {
            let n = cycles.len();
            base.extend(cycles);
            let results = variants
                .iter()
                .map(|&v| {
                    (
                        v,
                        finish(base.clone(), json!({"pattern_counts": {"CyclicCO": n}})),
                        ms(t0),
                    )
                })
                .collect();
            return CausalReport { results };
        }
    };
    let mut counts: HashMap<&'static str, usize> = HashMap::new();
    counts.insert("ThinAirRead", n_impossible);
    let (init_reads, co_reads) = c.co_patterns();
    counts.insert("WriteCOInitRead", init_reads.len());
    counts.insert("WriteCORead", co_reads.len());
    base.extend(init_reads.into_iter().take(MAX_ANOMALIES));
    base.extend(co_reads.into_iter().take(MAX_ANOMALIES));
    let shared = ms(t0);
    let stats_of = |extra: &[(&'static str, usize)], counts: &HashMap<&'static str, usize>| {
        let mut m = serde_json::Map::new();
        for (k, v) in counts.iter().chain(extra.iter().map(|(k, v)| (k, v))) {
            m.insert(k.to_string(), json!(v));
        }
        json!({
            "sessions": rw.sessions.len(),
            "chains": c.chains.len(),
            "reads": c.n_reads,
            "writes": rw.writes.len(),
            "clocks_ms": (shared * 1000.0).round() / 1000.0,
            "pattern_counts": m,
        })
    };
    let mut results = Vec::new();
    for &v in variants {
        let t = Instant::now();
        let r = match v {
            Variant::Cc => finish(base.clone(), stats_of(&[], &counts)),
            Variant::Ccv => {
                let cf = c.cyclic_cf();
                let n = cf.len();
                let mut a = base.clone();
                a.extend(cf.into_iter().take(MAX_ANOMALIES));
                finish(a, stats_of(&[("CyclicCF", n)], &counts))
            }
            Variant::Cm => match c.causal_memory(opts) {
                Ok((init, cyc)) => {
                    let (ni, nc) = (init.len(), cyc.len());
                    let mut a = base.clone();
                    a.extend(init.into_iter().take(MAX_ANOMALIES));
                    a.extend(cyc.into_iter().take(MAX_ANOMALIES));
                    finish(
                        a,
                        stats_of(&[("WriteHBInitRead", ni), ("CyclicHB", nc)], &counts),
                    )
                }
                Err(reason) => {
                    if base.is_empty() {
                        unknown(reason, base.clone())
                    } else {
                        finish(base.clone(), stats_of(&[], &counts))
                    }
                }
            },
        };
        results.push((v, r, shared + ms(t)));
    }
    CausalReport { results }
}

fn unknown(reason: String, anomalies: Vec<Anomaly>) -> CheckResult {
    if !anomalies.is_empty() {
        // Invalid whatever the rest would say.
        return finish(anomalies, json!({}));
    }
    CheckResult {
        valid: Validity::Unknown,
        anomalies: Vec::new(),
        stats: json!({}),
        unknown_reason: Some(reason),
    }
}

enum Stop {
    Unknown(String),
    Cyclic(Vec<Anomaly>),
}

impl<'a, 'h> Causal<'a, 'h> {
    fn build(rw: &'a RwHistory<'h>, opts: &CausalOptions) -> Result<Self, Stop> {
        let n_reads = rw.reads.len() as u32;
        let n_nodes = rw.reads.len() + rw.writes.len();
        let wnode = |w: u32| n_reads + w;
        let mut chains: Vec<Vec<Node>> = Vec::new();
        let mut chain_of = vec![NONE; n_nodes];
        let mut idx_of = vec![NONE; n_nodes];
        let nw = rw.writes.len();
        let mut write_session_chain = vec![NONE; nw];
        let mut write_prefix = vec![0u32; nw];
        let mut write_base = vec![NONE; nw];
        let mut pseudo_parent = vec![NONE; nw];
        let mut pseudo: Vec<u32> = Vec::new();
        for session in &rw.sessions {
            let c = chains.len() as u32;
            let mut chain: Vec<Node> = Vec::new();
            let mut last_read = NONE;
            // Whether a later step is a read or a write that happened.
            let mut later = vec![false; session.steps.len()];
            let mut any = false;
            for (i, step) in session.steps.iter().enumerate().rev() {
                later[i] = any;
                any |= match *step {
                    Step::Read(_) => true,
                    Step::Write(w) => rw.writes[w as usize].status.happened(),
                };
            }
            for (i, step) in session.steps.iter().enumerate() {
                match *step {
                    Step::Read(r) => {
                        chain_of[r as usize] = c;
                        idx_of[r as usize] = chain.len() as u32;
                        chain.push(r);
                        last_read = r;
                    }
                    Step::Write(w) => {
                        let status = rw.writes[w as usize].status;
                        if !status.happened() {
                            continue;
                        }
                        write_session_chain[w as usize] = c;
                        write_base[w as usize] = last_read;
                        if status == WriteStatus::InfoRead && later[i] {
                            // Precedes nothing of its session: a chain of
                            // its own, after its session predecessor.
                            write_prefix[w as usize] = chain.len() as u32;
                            pseudo_parent[w as usize] = chain.last().copied().unwrap_or(NONE);
                            pseudo.push(w);
                        } else {
                            let n = wnode(w);
                            chain_of[n as usize] = c;
                            idx_of[n as usize] = chain.len() as u32;
                            chain.push(n);
                            write_prefix[w as usize] = chain.len() as u32;
                        }
                    }
                }
            }
            chains.push(chain);
        }
        for w in pseudo {
            let n = wnode(w);
            chain_of[n as usize] = chains.len() as u32;
            idx_of[n as usize] = 0;
            chains.push(vec![n]);
        }
        let width = chains.len();
        let bytes = (n_reads as usize).saturating_mul(width).saturating_mul(4);
        if bytes > opts.memory_limit {
            return Err(Stop::Unknown(format!(
                "the vector clocks of {} reads over {} sessions need {} MiB, more than the \
                 memory bound of {} MiB",
                n_reads,
                width,
                bytes >> 20,
                opts.memory_limit >> 20
            )));
        }
        let mut c = Causal {
            rw,
            n_reads,
            chains,
            chain_of,
            idx_of,
            write_session_chain,
            write_prefix,
            write_base,
            pseudo_parent,
            vc: Vec::new(),
            width,
            by_key: Vec::new(),
        };
        c.compute_clocks()?;
        // Writes of each key, per chain, in chain order.
        let mut by_key: Vec<HashMap<u32, Vec<(u32, u32)>>> = vec![HashMap::new(); rw.keys.len()];
        let mut order: Vec<Vec<u32>> = vec![Vec::new(); rw.keys.len()];
        for (ci, chain) in c.chains.iter().enumerate() {
            for &n in chain {
                if n < n_reads {
                    continue;
                }
                let w = n - n_reads;
                let key = rw.writes[w as usize].key as usize;
                let list = by_key[key].entry(ci as u32).or_insert_with(|| {
                    order[key].push(ci as u32);
                    Vec::new()
                });
                list.push((c.idx_of[n as usize], w));
            }
        }
        c.by_key = by_key
            .into_iter()
            .zip(order)
            .map(|(mut m, o)| {
                o.into_iter()
                    .map(|ci| (ci, m.remove(&ci).unwrap_or_default()))
                    .collect()
            })
            .collect();
        Ok(c)
    }

    fn wnode(&self, w: u32) -> Node {
        self.n_reads + w
    }

    /// The read's vector clock.
    fn vc_read(&self, r: u32) -> &[u32] {
        let a = r as usize * self.width;
        &self.vc[a..a + self.width]
    }

    /// Entry `c` of a write's vector clock (the write included).
    fn vc_write_at(&self, w: u32, c: u32) -> u32 {
        let n = self.wnode(w);
        let own = self.chain_of[n as usize];
        if c == own {
            return self.idx_of[n as usize] + 1;
        }
        if c == self.write_session_chain[w as usize] {
            return self.write_prefix[w as usize];
        }
        match self.write_base[w as usize] {
            NONE => 0,
            b => self.vc_read(b)[c as usize],
        }
    }

    /// Joins a write's vector clock (the write included) into `into`.
    fn join_write(&self, w: u32, into: &mut [u32]) {
        let b = self.write_base[w as usize];
        if b != NONE {
            join(into, self.vc_read(b));
        }
        let s = self.write_session_chain[w as usize] as usize;
        into[s] = into[s].max(self.write_prefix[w as usize]);
        let n = self.wnode(w);
        let own = self.chain_of[n as usize] as usize;
        into[own] = into[own].max(self.idx_of[n as usize] + 1);
    }

    /// True when node `u` is in the causal past of write `w` (or is `w`).
    fn write_sees(&self, w: u32, u: Node) -> bool {
        self.vc_write_at(w, self.chain_of[u as usize]) > self.idx_of[u as usize]
    }

    /// True when node `u` is in the set of vector clock `v`.
    fn in_vc(&self, v: &[u32], u: Node) -> bool {
        v[self.chain_of[u as usize] as usize] > self.idx_of[u as usize]
    }

    /// The CO graph's out-edges: session successor, readers, chains of
    /// `info` writes.
    fn co_graph(&self) -> (crate::graph::Graph, Vec<Link>) {
        let n = self.n_reads as usize + self.rw.writes.len();
        let mut b = GraphBuilder::new(n as u32);
        let links = vec![Link::Po, Link::Rf];
        for chain in &self.chains {
            for pair in chain.windows(2) {
                b.edge(pair[0], pair[1], 0);
            }
        }
        for (w, &p) in self.pseudo_parent.iter().enumerate() {
            if p != NONE {
                b.edge(p, self.wnode(w as u32), 0);
            }
        }
        for (r, rd) in self.rw.reads.iter().enumerate() {
            if let Ret::Write(t) = rd.ret {
                b.edge(self.wnode(t), r as u32, 1);
            }
        }
        (b.build(), links)
    }

    fn compute_clocks(&mut self) -> Result<(), Stop> {
        let n = self.n_reads as usize + self.rw.writes.len();
        let (graph, _) = self.co_graph();
        let mut indeg = vec![0u32; n];
        for v in 0..n as u32 {
            for (w, _) in graph.out(v) {
                indeg[w as usize] += 1;
            }
        }
        let width = self.width;
        self.vc = vec![0u32; self.n_reads as usize * width];
        let mut queue: VecDeque<u32> = (0..n as u32)
            .filter(|&v| indeg[v as usize] == 0 && self.chain_of[v as usize] != NONE)
            .collect();
        let live = self.chain_of.iter().filter(|&&c| c != NONE).count();
        let mut done = 0usize;
        let mut scratch = vec![0u32; width];
        // The last read of each chain whose clock is known.
        while let Some(v) = queue.pop_front() {
            done += 1;
            if v < self.n_reads {
                let r = v;
                scratch.iter_mut().for_each(|x| *x = 0);
                let c = self.chain_of[r as usize] as usize;
                let i = self.idx_of[r as usize];
                // The previous read of the chain.
                let chain = &self.chains[c];
                if let Some(&p) = chain[..i as usize]
                    .iter()
                    .rev()
                    .find(|&&p| p < self.n_reads)
                {
                    let a = p as usize * width;
                    scratch.copy_from_slice(&self.vc[a..a + width]);
                }
                if let Ret::Write(t) = self.rw.reads[r as usize].ret {
                    self.join_write(t, &mut scratch);
                }
                scratch[c] = scratch[c].max(i + 1);
                let a = r as usize * width;
                self.vc[a..a + width].copy_from_slice(&scratch);
            }
            for (w, _) in graph.out(v) {
                indeg[w as usize] -= 1;
                if indeg[w as usize] == 0 {
                    queue.push_back(w);
                }
            }
        }
        if done == live {
            return Ok(());
        }
        // CyclicCO: report the cycles.
        let comp = graph.sccs();
        let links = [Link::Po, Link::Rf];
        let picks = graph.cyclic_edges(&comp, |e| (e.label == 1).then_some(e.to as u64));
        let mut out = Vec::new();
        for e in picks.into_iter().take(MAX_ANOMALIES) {
            if let Some(cycle) = graph.cycle_through(e, &comp) {
                let (steps, ops) = self.render_path(&cycle, &|l| links[l as usize]);
                out.push(Anomaly {
                    kind: "CyclicCO",
                    key: None,
                    ops,
                    explanation: format!(
                        "These operations depend on each other causally in a cycle: {steps}. No \
                         order can put each after what it depends on."
                    ),
                });
            }
        }
        Err(Stop::Cyclic(out))
    }

    /// The writes of `key` in the set `v` but not in the set `base`, one per
    /// chain: the last of each chain (the others precede it in session
    /// order).
    fn last_writes_beyond<'s>(
        &'s self,
        key: u32,
        v: &'s [u32],
        base: &'s [u32],
    ) -> impl Iterator<Item = u32> + 's {
        self.by_key[key as usize]
            .iter()
            .filter_map(move |(c, list)| {
                let (bound, floor) = (v[*c as usize], base[*c as usize]);
                if bound <= floor {
                    return None;
                }
                let k = list.partition_point(|&(i, _)| i < bound);
                (k > 0 && list[k - 1].0 >= floor).then(|| list[k - 1].1)
            })
    }

    /// `into` := the vector clock of write `w` (the write included).
    fn write_clock(&self, w: u32, into: &mut [u32]) {
        into.iter_mut().for_each(|x| *x = 0);
        self.join_write(w, into);
    }

    /// WriteCOInitRead and WriteCORead anomalies.
    fn co_patterns(&self) -> (Vec<Anomaly>, Vec<Anomaly>) {
        let mut init = Vec::new();
        let mut co = Vec::new();
        let mut graph: Option<(crate::graph::Graph, Vec<Link>)> = None;
        let mut vt = vec![0u32; self.width];
        for (r, rd) in self.rw.reads.iter().enumerate() {
            let r = r as u32;
            let v = self.vc_read(r);
            match rd.ret {
                Ret::Init => {
                    // Any write of the key in the past: the first of a chain
                    // is enough.
                    let found = self.by_key[rd.key as usize]
                        .iter()
                        .find(|(c, list)| list.first().is_some_and(|&(i, _)| i < v[*c as usize]));
                    if let Some((_, list)) = found {
                        let w = list[0].1;
                        if init.len() < MAX_ANOMALIES {
                            let g = graph.get_or_insert_with(|| self.co_graph());
                            init.push(self.write_co_init_read(&g.0, w, r));
                        } else {
                            init.push(placeholder());
                        }
                    }
                }
                Ret::Write(t) => {
                    let tn = self.wnode(t);
                    self.write_clock(t, &mut vt);
                    let bad = self
                        .last_writes_beyond(rd.key, v, &vt)
                        .find(|&w| self.write_sees(w, tn));
                    if let Some(w2) = bad {
                        if co.len() < MAX_ANOMALIES {
                            let g = graph.get_or_insert_with(|| self.co_graph());
                            co.push(self.write_co_read(&g.0, t, w2, r));
                        } else {
                            co.push(placeholder());
                        }
                    }
                }
                Ret::Aborted(_) | Ret::ThinAir => {}
            }
        }
        (init, co)
    }

    fn write_co_init_read(&self, g: &crate::graph::Graph, w: u32, r: u32) -> Anomaly {
        let rw = self.rw;
        let path = g.path(self.wnode(w), r, |_| true).unwrap_or_default();
        let (steps, mut ops) = self.render_path(&path, &|l| [Link::Po, Link::Rf][l as usize]);
        ensure_ops(&mut ops, &[rw.write_op(w), rw.read_op(r)]);
        let rop = rw.read_op(r);
        Anomaly {
            kind: "WriteCOInitRead",
            key: rw.key_value(rw.reads[r as usize].key),
            ops,
            explanation: format!(
                "process {} read {} (line {}), although {} written by process {} (line {}) \
                 causally precedes that read: {steps}.",
                rop.process,
                rw.read_text(r),
                rw.read_line(r),
                rw.write_text(w),
                rw.write_op(w).process,
                rw.write_line(w)
            ),
        }
    }

    fn write_co_read(&self, g: &crate::graph::Graph, t: u32, w2: u32, r: u32) -> Anomaly {
        let rw = self.rw;
        let links = |l: u32| [Link::Po, Link::Rf][l as usize];
        let p1 = g
            .path(self.wnode(t), self.wnode(w2), |_| true)
            .unwrap_or_default();
        let p2 = g.path(self.wnode(w2), r, |_| true).unwrap_or_default();
        let (s1, mut ops) = self.render_path(&p1, &links);
        let (s2, ops2) = self.render_path(&p2, &links);
        for o in ops2 {
            if !ops.iter().any(|x| x.line == o.line && x.index == o.index) {
                ops.push(o);
            }
        }
        ensure_ops(&mut ops, &[rw.write_op(t), rw.write_op(w2), rw.read_op(r)]);
        let rop = rw.read_op(r);
        Anomaly {
            kind: "WriteCORead",
            key: rw.key_value(rw.reads[r as usize].key),
            ops,
            explanation: format!(
                "process {} read {} (line {}), but {} (process {}, line {}) was written causally \
                 after it and causally before the read, so the read returned an overwritten \
                 value: {s1}; then {s2}.",
                rop.process,
                rw.read_text(r),
                rw.read_line(r),
                rw.write_text(w2),
                rw.write_op(w2).process,
                rw.write_line(w2)
            ),
        }
    }

    /// CyclicCF: cycles of CO ∪ CF.
    fn cyclic_cf(&self) -> Vec<Anomaly> {
        let n = self.n_reads as usize + self.rw.writes.len();
        let mut b = GraphBuilder::new(n as u32);
        let mut links: Vec<Link> = vec![Link::Po, Link::Rf];
        for chain in &self.chains {
            for pair in chain.windows(2) {
                b.edge(pair[0], pair[1], 0);
            }
        }
        for (w, &p) in self.pseudo_parent.iter().enumerate() {
            if p != NONE {
                b.edge(p, self.wnode(w as u32), 0);
            }
        }
        let mut cf_edges = 0usize;
        let mut vt = vec![0u32; self.width];
        for (r, rd) in self.rw.reads.iter().enumerate() {
            let Ret::Write(t) = rd.ret else { continue };
            let tn = self.wnode(t);
            b.edge(tn, r as u32, 1);
            let v = self.vc_read(r as u32);
            let mut label = NONE;
            // Writes already causally before t add nothing.
            self.write_clock(t, &mut vt);
            for w in self.last_writes_beyond(rd.key, v, &vt) {
                if label == NONE {
                    links.push(Link::Cf(r as u32));
                    label = (links.len() - 1) as u32;
                }
                b.edge(self.wnode(w), tn, label);
                cf_edges += 1;
            }
        }
        if cf_edges == 0 {
            return Vec::new();
        }
        let g = b.build();
        let comp = g.sccs();
        let picks = g.cyclic_edges(&comp, |e| {
            matches!(links[e.label as usize], Link::Cf(_)).then_some(e.to as u64)
        });
        let mut out = Vec::new();
        for (k, e) in picks.iter().enumerate() {
            if k >= MAX_ANOMALIES {
                out.push(placeholder());
                continue;
            }
            if let Some(cycle) = g.cycle_through(*e, &comp) {
                let (steps, ops) = self.render_path(&cycle, &|l| links[l as usize]);
                out.push(Anomaly {
                    kind: "CyclicCF",
                    key: self
                        .rw
                        .key_value(self.rw.writes[(e.to - self.n_reads) as usize].key),
                    ops,
                    explanation: format!(
                        "No single order of the writes explains every read (causal \
                         convergence): {steps}, a cycle."
                    ),
                });
            }
        }
        out
    }

    /// CM: (WriteHBInitRead, CyclicHB) anomalies, or why it gave up.
    fn causal_memory(&self, opts: &CausalOptions) -> Result<(Vec<Anomaly>, Vec<Anomaly>), String> {
        use rayon::prelude::*;
        let mut init = Vec::new();
        let mut cyc = Vec::new();
        let mut graph: Option<crate::graph::Graph> = None;
        let sessions: Vec<u32> = (0..self.rw.sessions.len() as u32)
            .filter(|&s| self.chains[s as usize].iter().any(|&n| n < self.n_reads))
            .collect();
        let per_session: Vec<_> = sessions
            .par_iter()
            .with_max_len(1)
            .map(|&s| (s, self.cm_session(s, opts)))
            .collect();
        for (s, found) in per_session {
            for (kind, a, b, edges) in found? {
                let list = if kind == "WriteHBInitRead" {
                    &mut init
                } else {
                    &mut cyc
                };
                if list.len() >= MAX_ANOMALIES {
                    list.push(placeholder());
                    continue;
                }
                let g = graph.get_or_insert_with(|| self.co_graph().0);
                list.push(self.render_cm(g, s, kind, a, b, &edges));
            }
        }
        Ok((init, cyc))
    }

    /// CM for the session on chain `s`: each found pattern as (kind, a, b,
    /// the extra edges of the session's view), where (a, b) is (write,
    /// read) for WriteHBInitRead and (source write, target write) for
    /// CyclicHB.
    #[allow(clippy::type_complexity)]
    fn cm_session(
        &self,
        s: u32,
        opts: &CausalOptions,
    ) -> Result<Vec<(&'static str, u32, u32, Vec<(u32, u32, u32)>)>, String> {
        let width = self.width;
        let reads: Vec<u32> = self.chains[s as usize]
            .iter()
            .copied()
            .filter(|&n| n < self.n_reads)
            .collect();
        // Targets: the writes the session reads, grouped by chain.
        let mut slot_of: HashMap<u32, u32> = HashMap::new();
        let mut targets: Vec<u32> = Vec::new();
        for &r in &reads {
            if let Ret::Write(t) = self.rw.reads[r as usize].ret {
                slot_of.entry(t).or_insert_with(|| {
                    targets.push(t);
                    (targets.len() - 1) as u32
                });
            }
        }
        let mut groups: HashMap<u32, Vec<(u32, u32)>> = HashMap::new();
        for (slot, &t) in targets.iter().enumerate() {
            let n = self.wnode(t);
            groups
                .entry(self.chain_of[n as usize])
                .or_default()
                .push((self.idx_of[n as usize], slot as u32));
        }
        let mut groups: Vec<(u32, Vec<(u32, u32)>)> = groups.into_iter().collect();
        groups.sort_by_key(|g| g.0);
        for g in &mut groups {
            g.1.sort_unstable();
        }
        let need = targets.len().saturating_mul(width).saturating_mul(8);
        if need > opts.memory_limit / 2 {
            return Err(format!(
                "causal memory for process {} needs {} MiB for the views of its {} reads over \
                 {} sessions, more than half the memory bound of {} MiB",
                self.rw.process(s),
                need >> 20,
                targets.len(),
                width,
                opts.memory_limit >> 20
            ));
        }
        let mut d = vec![0u32; targets.len() * width];
        // The extra edges (source, target, read), for witnesses.
        let mut edges: HashSet<(u32, u32, u32)> = HashSet::new();
        let mut prefix: Vec<Vec<u32>> = Vec::new();
        let mut found: Vec<(&'static str, u32, u32)>;
        let mut h = vec![0u32; width];
        let mut tmp = vec![0u32; width];
        let mut vt = vec![0u32; width];
        let mut passes = 0u32;
        loop {
            passes += 1;
            if let Some(deadline) = opts.deadline {
                if Instant::now() > deadline {
                    return Err(format!(
                        "time limit reached while checking causal memory for process {} \
                         (pass {passes})",
                        self.rw.process(s)
                    ));
                }
            }
            // Prefix joins of D per chain.
            prefix.clear();
            for (_, list) in &groups {
                let mut acc = vec![0u32; list.len() * width];
                for (k, &(_, slot)) in list.iter().enumerate() {
                    let (before, here) = acc.split_at_mut(k * width);
                    let here = &mut here[..width];
                    if k > 0 {
                        here.copy_from_slice(&before[(k - 1) * width..]);
                    }
                    join(here, &d[slot as usize * width..(slot as usize + 1) * width]);
                }
                prefix.push(acc);
            }
            found = Vec::new();
            let mut changed = false;
            h.iter_mut().for_each(|x| *x = 0);
            let mut done = vec![0usize; groups.len()];
            for &r in &reads {
                join(&mut h, self.vc_read(r));
                self.close(&mut h, &groups, &prefix, &mut done);
                let rd = &self.rw.reads[r as usize];
                match rd.ret {
                    Ret::Init => {
                        // A write in the causal past is WriteCOInitRead,
                        // reported with CC's patterns.
                        let v = self.vc_read(r);
                        let first_in = |bound: &[u32]| {
                            self.by_key[rd.key as usize].iter().find_map(|(c, list)| {
                                list.first()
                                    .filter(|&&(i, _)| i < bound[*c as usize])
                                    .map(|&(_, w)| w)
                            })
                        };
                        if first_in(v).is_none() {
                            if let Some(w) = first_in(&h) {
                                found.push(("WriteHBInitRead", w, r));
                            }
                        }
                    }
                    Ret::Write(t) => {
                        tmp.iter_mut().for_each(|x| *x = 0);
                        let mut any = false;
                        // Writes causally before t add nothing.
                        self.write_clock(t, &mut vt);
                        for w in self.last_writes_beyond(rd.key, &h, &vt) {
                            self.join_write(w, &mut tmp);
                            edges.insert((w, t, r));
                            any = true;
                        }
                        if any {
                            let slot = slot_of[&t] as usize;
                            let dt = &mut d[slot * width..(slot + 1) * width];
                            if tmp.iter().zip(dt.iter()).any(|(a, b)| a > b) {
                                join(dt, &tmp);
                                changed = true;
                            }
                        }
                    }
                    Ret::Aborted(_) | Ret::ThinAir => {}
                }
            }
            if !changed {
                break;
            }
        }
        // CyclicHB: a target in the closure of its own strict past; one per
        // cycle (targets on one cycle see each other).
        let mut cycles: Vec<(u32, Vec<u32>)> = Vec::new();
        for (slot, &t) in targets.iter().enumerate() {
            let dt = &d[slot * width..(slot + 1) * width];
            if dt.iter().all(|&x| x == 0) {
                continue;
            }
            let tn = self.wnode(t);
            h.copy_from_slice(dt);
            // t's strict causal past.
            tmp.iter_mut().for_each(|x| *x = 0);
            self.join_write(t, &mut tmp);
            let own = self.chain_of[tn as usize] as usize;
            tmp[own] = self.idx_of[tn as usize];
            join(&mut h, &tmp);
            let mut done = vec![0usize; groups.len()];
            self.close(&mut h, &groups, &prefix, &mut done);
            if self.in_vc(&h, tn) {
                let known = cycles
                    .iter()
                    .any(|(t2, h2)| self.in_vc(h2, tn) && self.in_vc(&h, self.wnode(*t2)));
                if known {
                    continue;
                }
                cycles.push((t, h.clone()));
                // The extra edge into t whose source has t in its past.
                let src = edges
                    .iter()
                    .filter(|e| e.1 == t)
                    .map(|e| e.0)
                    .find(|&w| {
                        let mut v = vec![0u32; width];
                        self.join_write(w, &mut v);
                        let mut done = vec![0usize; groups.len()];
                        self.close(&mut v, &groups, &prefix, &mut done);
                        self.in_vc(&v, tn)
                    })
                    .unwrap_or(t);
                found.push(("CyclicHB", src, t));
            }
        }
        let edges: Vec<(u32, u32, u32)> = edges.into_iter().collect();
        Ok(found
            .into_iter()
            .map(|(k, a, b)| (k, a, b, edges.clone()))
            .collect())
    }

    /// Closes the set `h` under "a target in the set brings its D".
    fn close(
        &self,
        h: &mut [u32],
        groups: &[(u32, Vec<(u32, u32)>)],
        prefix: &[Vec<u32>],
        done: &mut [usize],
    ) {
        let width = self.width;
        loop {
            let mut progress = false;
            for (g, (c, list)) in groups.iter().enumerate() {
                let bound = h[*c as usize];
                let mut k = done[g];
                while k < list.len() && list[k].0 < bound {
                    k += 1;
                }
                if k > done[g] {
                    done[g] = k;
                    let p = &prefix[g][(k - 1) * width..k * width];
                    if p.iter().zip(h.iter()).any(|(a, b)| a > b) {
                        join(h, p);
                        progress = true;
                    }
                }
            }
            if !progress {
                break;
            }
        }
    }

    fn render_cm(
        &self,
        g: &crate::graph::Graph,
        s: u32,
        kind: &'static str,
        a: u32,
        b: u32,
        extra: &[(u32, u32, u32)],
    ) -> Anomaly {
        let rw = self.rw;
        let p = rw.process(s);
        // Paths over CO plus the session's extra edges.
        let mut more: HashMap<u32, Vec<(u32, u32)>> = HashMap::new();
        for &(w, t, r) in extra {
            more.entry(self.wnode(w))
                .or_default()
                .push((self.wnode(t), r));
        }
        let path = |from: Node, to: Node| -> Vec<(Node, Node, Link)> {
            bfs(g, &more, from, to).unwrap_or_default()
        };
        match kind {
            "WriteHBInitRead" => {
                let (w, r) = (a, b);
                let steps = path(self.wnode(w), r);
                let (text, mut ops) = self.render_links(&steps);
                ensure_ops(&mut ops, &[rw.write_op(w), rw.read_op(r)]);
                Anomaly {
                    kind,
                    key: rw.key_value(rw.reads[r as usize].key),
                    ops,
                    explanation: format!(
                        "process {p} read {} (line {}), but in process {p}'s view {} (process \
                         {}, line {}) comes before that read: {text}.",
                        rw.read_text(r),
                        rw.read_line(r),
                        rw.write_text(w),
                        rw.write_op(w).process,
                        rw.write_line(w)
                    ),
                }
            }
            _ => {
                let (w, t) = (a, b);
                let mut steps = path(self.wnode(t), self.wnode(w));
                if let Some(&(_, _, r)) = extra.iter().find(|e| e.0 == w && e.1 == t) {
                    steps.push((self.wnode(w), self.wnode(t), Link::Hb(r)));
                }
                let (text, ops) = self.render_links(&steps);
                Anomaly {
                    kind,
                    key: rw.key_value(rw.writes[t as usize].key),
                    ops,
                    explanation: format!(
                        "in process {p}'s view the operations are ordered in a cycle: {text}; no \
                         order of them explains all of process {p}'s reads."
                    ),
                }
            }
        }
    }

    fn node_op(&self, n: Node) -> &'h Operation {
        if n < self.n_reads {
            self.rw.read_op(n)
        } else {
            self.rw.write_op(n - self.n_reads)
        }
    }

    fn node_text(&self, n: Node) -> String {
        if n < self.n_reads {
            format!(
                "read {} (line {})",
                self.rw.read_text(n),
                self.rw.read_line(n)
            )
        } else {
            let w = n - self.n_reads;
            format!(
                "wrote {} (line {})",
                self.rw.write_text(w),
                self.rw.write_line(w)
            )
        }
    }

    fn render_path(&self, path: &[Edge], link: &dyn Fn(u32) -> Link) -> (String, Vec<OpView>) {
        let steps: Vec<(Node, Node, Link)> =
            path.iter().map(|e| (e.from, e.to, link(e.label))).collect();
        self.render_links(&steps)
    }

    /// Sentences for a path: runs of session order are collapsed.
    fn render_links(&self, steps: &[(Node, Node, Link)]) -> (String, Vec<OpView>) {
        let mut parts: Vec<String> = Vec::new();
        let mut ops: Vec<OpView> = Vec::new();
        let mut seen: HashSet<usize> = HashSet::new();
        let mut add = |n: Node, ops: &mut Vec<OpView>| {
            let op = self.node_op(n);
            if seen.insert(op.id) {
                ops.push(OpView::of(op));
            }
        };
        let mut k = 0;
        while k < steps.len() {
            let (a, b, l) = steps[k];
            match l {
                Link::Po => {
                    let mut end = b;
                    while k + 1 < steps.len() && steps[k + 1].2 == Link::Po {
                        k += 1;
                        end = steps[k].1;
                    }
                    add(a, &mut ops);
                    add(end, &mut ops);
                    parts.push(format!(
                        "process {} {} before it {}",
                        self.node_op(a).process,
                        self.node_text(a),
                        self.node_text(end)
                    ));
                }
                Link::Rf => {
                    add(a, &mut ops);
                    add(b, &mut ops);
                    parts.push(format!(
                        "process {} {}, which process {} wrote (line {})",
                        self.node_op(b).process,
                        self.node_text(b),
                        self.node_op(a).process,
                        self.node_op(a).invoke_line()
                    ));
                }
                Link::Cf(r) | Link::Hb(r) => {
                    add(a, &mut ops);
                    add(b, &mut ops);
                    add(r, &mut ops);
                    let why = if matches!(l, Link::Cf(_)) {
                        "in its causal past"
                    } else {
                        "in its view"
                    };
                    parts.push(format!(
                        "process {} read {} (line {}) with {} {why}, so {} comes before {}",
                        self.rw.read_op(r).process,
                        self.rw.read_text(r),
                        self.rw.read_line(r),
                        self.write_label(a),
                        self.write_label(a),
                        self.write_label(b)
                    ));
                }
            }
            k += 1;
        }
        (parts.join("; "), ops)
    }

    fn write_label(&self, n: Node) -> String {
        if n >= self.n_reads {
            self.rw.write_text(n - self.n_reads)
        } else {
            self.rw.read_text(n)
        }
    }
}

/// A shortest path over `g` (labels 0: session order, 1: reads-from) and
/// the extra edges `more` (the session's view).
fn bfs(
    g: &crate::graph::Graph,
    more: &HashMap<u32, Vec<(u32, u32)>>,
    from: Node,
    to: Node,
) -> Option<Vec<(Node, Node, Link)>> {
    if from == to {
        return Some(Vec::new());
    }
    let mut prev: HashMap<Node, (Node, Link)> = HashMap::new();
    prev.insert(from, (from, Link::Po));
    let mut queue = VecDeque::from([from]);
    while let Some(v) = queue.pop_front() {
        let co = g
            .out(v)
            .map(|(w, l)| (w, if l == 0 { Link::Po } else { Link::Rf }));
        let extra = more
            .get(&v)
            .into_iter()
            .flatten()
            .map(|&(w, r)| (w, Link::Hb(r)));
        for (w, l) in co.chain(extra) {
            if prev.contains_key(&w) {
                continue;
            }
            prev.insert(w, (v, l));
            if w == to {
                let mut out = Vec::new();
                let mut cur = to;
                while cur != from {
                    let (p, l) = prev[&cur];
                    out.push((p, cur, l));
                    cur = p;
                }
                out.reverse();
                return Some(out);
            }
            queue.push_back(w);
        }
    }
    None
}

fn join(into: &mut [u32], other: &[u32]) {
    for (a, b) in into.iter_mut().zip(other) {
        *a = (*a).max(*b);
    }
}

fn ensure_ops(ops: &mut Vec<OpView>, must: &[&Operation]) {
    for op in must {
        if !ops
            .iter()
            .any(|o| o.index == op.invoke_index && o.line == op.invoke_line())
        {
            ops.push(OpView::of(op));
        }
    }
}

/// Counted but not rendered (beyond [`MAX_ANOMALIES`]).
fn placeholder() -> Anomaly {
    Anomaly {
        kind: "",
        key: None,
        ops: Vec::new(),
        explanation: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use crate::checks::Check;
    use crate::rw_checks::testing::{failing, history, run, verdicts};
    use crate::verdict::Validity;

    /// (cc, ccv, cm) verdicts and the anomaly types of each.
    fn causal(ops: &str) -> Vec<(&'static str, bool, Vec<String>)> {
        verdicts(ops)
            .into_iter()
            .filter(|v| v.0.starts_with('c'))
            .map(|(n, v, t)| (n, v == Validity::Valid, t))
            .collect()
    }

    fn types(ops: &str, check: &str) -> Vec<String> {
        causal(ops)
            .into_iter()
            .find(|c| c.0 == check)
            .map(|c| c.2)
            .unwrap_or_default()
    }

    const A: &str = "0 w x 1; 0 r x 2; 1 w x 2; 1 r x 1";
    const B: &str = "0 w z 1; 0 w x 1; 0 w y 1; 1 w x 2; 1 r z 0; 1 r y 1; 1 r x 2";
    const C: &str = "0 w x 1; 1 w x 2; 1 r x 1; 1 r x 2";
    const D: &str = "0 w x 1; 0 r y 0; 0 w y 1; 0 r x 1; 1 w x 2; 1 r y 0; 1 w y 2; 1 r x 2";
    const E: &str = "0 w x 1; 0 w y 1; 1 r y 1; 1 w x 2; 2 r x 2; 2 r x 1";

    #[test]
    fn the_papers_histories() {
        let ok = |ops: &str| causal(ops).iter().map(|c| c.1).collect::<Vec<bool>>();
        assert_eq!(ok(A), vec![true, false, true]);
        assert_eq!(types(A, "ccv"), vec!["CyclicCF"]);
        assert_eq!(ok(B), vec![true, true, false]);
        assert_eq!(types(B, "cm"), vec!["WriteHBInitRead"]);
        assert_eq!(ok(C), vec![true, false, false]);
        assert_eq!(types(C, "ccv"), vec!["CyclicCF"]);
        assert_eq!(types(C, "cm"), vec!["CyclicHB"]);
        assert_eq!(ok(D), vec![true, true, true]);
        assert_eq!(ok(E), vec![false, false, false]);
        assert_eq!(types(E, "cc"), vec!["WriteCORead"]);
        assert!(types(E, "ccv").contains(&"CyclicCF".to_string()));
        assert!(types(E, "cm").contains(&"CyclicHB".to_string()));
    }

    #[test]
    fn each_bad_pattern_minimal() {
        // CyclicCO: each session reads the other's write before making it.
        let t = types("0 r x 1; 0 w y 1; 1 r y 1; 1 w x 1", "cc");
        assert_eq!(t, vec!["CyclicCO"]);
        // WriteCOInitRead: y=1 carries x=1 to process 1, which reads x=0.
        let ops = "0 w x 1; 0 w y 1; 1 r y 1; 1 r x 0";
        assert_eq!(types(ops, "cc"), vec!["WriteCOInitRead"]);
        // ThinAirRead.
        assert_eq!(types("0 r x 5", "cc"), vec!["ThinAirRead"]);
        // WriteCORead, CyclicCF, WriteHBInitRead, CyclicHB: the paper's e,
        // a, b and c above; the smallest WriteCORead is one session.
        assert_eq!(
            types("0 w x 1; 0 w x 2; 1 r x 2; 1 w y 1; 0 r y 1; 0 r x 1", "cc"),
            vec!["WriteCORead"]
        );
        assert_eq!(types(A, "ccv"), vec!["CyclicCF"]);
        assert_eq!(types(B, "cm"), vec!["WriteHBInitRead"]);
        assert_eq!(types(C, "cm"), vec!["CyclicHB"]);
        // And their absence.
        for good in [D, "0 w x 1; 1 r x 1; 1 w x 2; 2 r x 2; 2 r x 2", "0 r x 0"] {
            assert_eq!(failing(good), Vec::<&str>::new(), "{good}");
        }
    }

    #[test]
    fn witnesses_name_the_operations() {
        let r = run(&history(B), &[Check::Cm]).unwrap();
        let a = &r[0].result.anomalies[0];
        let e = a["explanation"].as_str().unwrap();
        assert!(e.contains("process 1 read z=0 (initial) (line 5)"), "{e}");
        assert!(
            e.contains("z=1 (process 0, line 1) comes before that read"),
            "{e}"
        );
        assert!(e.contains("so x=1 comes before x=2"), "{e}");
        let lines: Vec<u64> = a["ops"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["line"].as_u64().unwrap())
            .collect();
        for l in [1, 5] {
            assert!(lines.contains(&l), "{lines:?}");
        }
        assert_eq!(a["key"], "z");
        let r = run(&history(E), &[Check::Cc]).unwrap();
        let e = r[0].result.anomalies[0]["explanation"].as_str().unwrap();
        assert!(
            e.contains("process 2 read x=1 (line 6), but x=2 (process 1, line 4)"),
            "{e}"
        );
        let r = run(&history(A), &[Check::Ccv]).unwrap();
        let e = r[0].result.anomalies[0]["explanation"].as_str().unwrap();
        assert!(e.contains("causal convergence"), "{e}");
        assert!(e.contains("comes before"), "{e}");
    }

    #[test]
    fn budgets_give_unknown() {
        use crate::rw_checks::{RwOptions, run_rw};
        let h = history(D);
        let opts = RwOptions {
            initial: serde_json::json!(0),
            causal: crate::causal::CausalOptions {
                deadline: None,
                memory_limit: 8,
            },
        };
        let r = run_rw(&h, &[Check::Cc, Check::Cm], &opts).unwrap();
        for x in r {
            assert_eq!(x.result.valid, Validity::Unknown);
            assert!(x.result.unknown_reason.unwrap().contains("memory bound"));
        }
        let opts = RwOptions {
            initial: serde_json::json!(0),
            causal: crate::causal::CausalOptions {
                deadline: Some(std::time::Instant::now()),
                memory_limit: 1 << 30,
            },
        };
        let r = run_rw(&h, &[Check::Cc, Check::Cm], &opts).unwrap();
        assert_eq!(r[0].result.valid, Validity::Valid);
        assert_eq!(r[1].result.valid, Validity::Unknown);
        assert!(
            r[1].result
                .unknown_reason
                .as_deref()
                .unwrap()
                .contains("time limit")
        );
    }
}
