//! The dependency graph of the transactions that may have committed: one
//! node per transaction, ww/wr/rw edges inferred from the version orders,
//! and, when the models checked need them, process (session) and real-time
//! edges. Built with petgraph.

use petgraph::graph::{DiGraph, NodeIndex};

use super::micro::{Status, Txns};

/// An edge kind, as a bit: an edge between two transactions may have
/// several.
pub type Kinds = u8;
/// Write-write: the target overwrote (appended after) the source's write.
pub const WW: Kinds = 1;
/// Write-read: the target read the source's write.
pub const WR: Kinds = 2;
/// Read-write (anti-dependency): the target overwrote what the source read.
pub const RW: Kinds = 4;
/// Process order: same process, the source first.
pub const PROCESS: Kinds = 8;
/// Real-time order: the source completed before the target was invoked.
pub const REALTIME: Kinds = 16;
/// The three data dependencies.
pub const DEPS: Kinds = WW | WR | RW;

/// The kinds in preference order when one edge has several: the claim that
/// needs the least (a ww edge before a wr, data before session or time, rw
/// last).
pub const PREFERENCE: [Kinds; 5] = [WW, WR, PROCESS, REALTIME, RW];

/// The name of one kind bit.
pub fn kind_name(k: Kinds) -> &'static str {
    match k {
        WW => "ww",
        WR => "wr",
        RW => "rw",
        PROCESS => "process",
        _ => "realtime",
    }
}

/// Edges collected before the graph is built: (from, to, kinds).
#[derive(Debug, Default)]
pub struct Edges(pub Vec<(u32, u32, Kinds)>);

impl Edges {
    /// Adds an edge unless it is a self-loop.
    pub fn add(&mut self, from: u32, to: u32, kind: Kinds) {
        if from != to {
            self.0.push((from, to, kind));
        }
    }

    /// Process order: each transaction that may have committed, to the
    /// next one of its process.
    pub fn add_process_order(&mut self, txns: &Txns) {
        let mut last: super::hash::FastMap<i64, u32> = Default::default();
        for (i, t) in txns.txns.iter().enumerate() {
            if t.status == Status::Aborted {
                continue;
            }
            if let Some(prev) = last.insert(t.process, i as u32) {
                self.add(prev, i as u32, PROCESS);
            }
        }
    }

    /// Real-time order, in linear size: one *completion point* node per
    /// committed transaction (numbered from `n`, after the transactions),
    /// chained in completion order; each transaction leads to its own
    /// point, and the last point completed before a transaction's
    /// invocation leads to it. So `a` reaches `b` through points exactly
    /// when `a` completed before `b` was invoked, with 3 edges a
    /// transaction instead of one per pair (or per pair with the frontier
    /// of recent completions, as Elle does: about the concurrency per
    /// transaction). Returns the number of points added.
    pub fn add_realtime_order(&mut self, txns: &Txns) -> usize {
        let n = txns.txns.len() as u32;
        let mut completions: Vec<(usize, u32)> = Vec::new();
        let mut invocations: Vec<(usize, u32)> = Vec::with_capacity(txns.txns.len());
        for (i, t) in txns.txns.iter().enumerate() {
            if t.status == Status::Aborted {
                continue;
            }
            invocations.push((t.invoke_pos, i as u32));
            if t.status == Status::Committed && t.complete_pos != super::micro::NEVER {
                completions.push((t.complete_pos, i as u32));
            }
        }
        completions.sort_unstable();
        invocations.sort_unstable();
        for (j, &(_, t)) in completions.iter().enumerate() {
            let point = n + j as u32;
            self.add(t, point, REALTIME);
            if j > 0 {
                self.add(point - 1, point, REALTIME);
            }
        }
        // The last point before each invocation.
        let mut j = 0;
        for (pos, t) in invocations {
            while j < completions.len() && completions[j].0 < pos {
                j += 1;
            }
            if j > 0 {
                self.add(n + j as u32 - 1, t, REALTIME);
            }
        }
        completions.len()
    }

    /// The petgraph graph over `n` nodes (transactions, then completion
    /// points); node `i` is transaction `i`. Parallel edges of different
    /// kinds stay separate edges.
    pub fn build(&self, n: usize) -> DiGraph<(), Kinds> {
        let mut g = DiGraph::with_capacity(n, self.0.len());
        for _ in 0..n {
            g.add_node(());
        }
        for &(a, b, k) in &self.0 {
            g.add_edge(NodeIndex::new(a as usize), NodeIndex::new(b as usize), k);
        }
        g
    }
}

/// Explains an edge of a witness in one sentence: each model's facts know
/// why they drew it.
pub trait ExplainEdge {
    /// Why `from` → `to` has `kind` (one bit).
    fn why(&self, ctx: &super::context::Ctx<'_>, from: u32, to: u32, kind: Kinds) -> String;
}

/// Sentences for the process and real-time edges, which need no model.
pub fn why_order(ctx: &super::context::Ctx<'_>, from: u32, to: u32, kind: Kinds) -> String {
    let a = &ctx.txns.txns[from as usize];
    let b = &ctx.txns.txns[to as usize];
    if kind == PROCESS {
        format!(
            "{} ran before {} in process {}",
            ctx.name(from),
            ctx.name(to),
            a.process
        )
    } else {
        format!(
            "{} completed (line {}) before {} was invoked (line {})",
            ctx.name(from),
            a.line,
            ctx.name(to),
            b.invoke_line
        )
    }
}
