//! Cycle search in the dependency graph: strongly connected components
//! (petgraph's Kosaraju, iterative), then, inside each, the shortest cycle
//! of each class.
//!
//! Whether a class of cycle exists is decided exactly and in linear time,
//! each by the components of one derived graph:
//!
//! | cycles | graph |
//! |---|---|
//! | G0 | ww edges |
//! | G0, G1c | ww and wr edges |
//! | no two rw edges adjacent (G0, G1c, G-single, G-nonadjacent) | the *split* graph: each transaction `x` has a twin `x'` that is entered by rw edges and left only by ww/wr edges |
//! | any (adds G2-item) | ww, wr, rw |
//! | `-process`, `-realtime` | the same with process, then real-time edges |
//!
//! A non-trivial component of one of these graphs always holds a cycle of
//! its kind, found by a breadth-first search from any of its transactions;
//! so the verdict never depends on a search budget. Searching for the
//! *shortest* cycle (a breadth-first search from every transaction of the
//! component) is exact up to a work budget, after which the shortest cycle
//! found so far is reported, marked as such.

use std::collections::VecDeque;
use std::time::Instant;

use petgraph::algo::kosaraju_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::{EdgeFiltered, EdgeRef};

use super::anomaly::{CycleClass, Variant};
use super::graph::{DEPS, Kinds, PREFERENCE, PROCESS, REALTIME, RW, WR, WW};

/// Edges explored per component and layer while looking for shorter
/// cycles, once one is found.
const SHORTEST_WORK: usize = 4_000_000;

/// A cycle's edges: (from, to, kind).
pub type Steps = Vec<(u32, u32, Kinds)>;

/// A cycle found: its edges in order (each with the one kind chosen to
/// explain it), its class, and whether it is known to be the shortest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundCycle {
    /// (from, to, kind) for each edge; the last edge ends where the first
    /// starts.
    pub steps: Vec<(u32, u32, Kinds)>,
    /// Its class.
    pub class: CycleClass,
    /// Whether it needed process or real-time edges.
    pub variant: Variant,
    /// True when no shorter cycle exists in the component searched.
    pub shortest: bool,
}

/// The strongly connected components searched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ComponentStats {
    /// Components with more than one transaction.
    pub components: usize,
    /// Transactions in the largest.
    pub largest: usize,
}

/// The search ran out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfTime;

/// Classifies a cycle by the kinds of its edges.
pub fn classify(kinds: &[Kinds]) -> (CycleClass, Variant) {
    let n = kinds.len();
    let rw = kinds.iter().filter(|&&k| k == RW).count();
    let adjacent = (0..n).any(|i| kinds[i] == RW && kinds[(i + 1) % n] == RW);
    let class = if rw == 0 {
        if kinds.contains(&WR) {
            CycleClass::G1c
        } else {
            CycleClass::G0
        }
    } else if rw == 1 {
        CycleClass::GSingle
    } else if !adjacent {
        CycleClass::GNonadjacent
    } else {
        CycleClass::G2Item
    };
    let variant = if kinds.contains(&REALTIME) {
        Variant::Realtime
    } else if kinds.contains(&PROCESS) {
        Variant::Process
    } else {
        Variant::Plain
    };
    (class, variant)
}

/// A strongly connected component of the whole graph, with local indices.
struct Component {
    /// Local index -> transaction.
    nodes: Vec<u32>,
    /// Local adjacency: (target, kinds), parallel edges merged.
    adj: Vec<Vec<(u32, Kinds)>>,
}

/// Finds cycles in `g` using the edge kinds in `mask`: for every layer
/// that `mask` allows, the shortest cycle of each non-trivial component.
/// Nodes from `real` on are completion points (see
/// [`super::graph::Edges::add_realtime_order`]): a path through them is
/// reported as one real-time edge.
pub fn find(
    g: &DiGraph<(), Kinds>,
    real: usize,
    mask: Kinds,
    deadline: Option<Instant>,
) -> Result<(Vec<FoundCycle>, ComponentStats), OutOfTime> {
    let filtered = EdgeFiltered::from_fn(g, |e| *e.weight() & mask != 0);
    let sccs = kosaraju_scc(&filtered);
    let mut out = Vec::new();
    let mut stats = ComponentStats::default();
    let mut local_of: Vec<u32> = Vec::new();
    for scc in sccs.into_iter().filter(|s| s.len() > 1) {
        check_time(deadline)?;
        stats.components += 1;
        stats.largest = stats.largest.max(scc.len());
        if local_of.is_empty() {
            local_of = vec![u32::MAX; g.node_count()];
        }
        let comp = component(g, &scc, mask, &mut local_of);
        search_component(&comp, real, mask, deadline, &mut out)?;
        for n in &scc {
            local_of[n.index()] = u32::MAX;
        }
    }
    Ok((out, stats))
}

fn check_time(deadline: Option<Instant>) -> Result<(), OutOfTime> {
    match deadline {
        Some(d) if Instant::now() >= d => Err(OutOfTime),
        _ => Ok(()),
    }
}

fn component(
    g: &DiGraph<(), Kinds>,
    scc: &[NodeIndex],
    mask: Kinds,
    local_of: &mut [u32],
) -> Component {
    let mut nodes: Vec<u32> = scc.iter().map(|n| n.index() as u32).collect();
    nodes.sort_unstable();
    for (i, &n) in nodes.iter().enumerate() {
        local_of[n as usize] = i as u32;
    }
    let mut adj: Vec<Vec<(u32, Kinds)>> = vec![Vec::new(); nodes.len()];
    for (i, &n) in nodes.iter().enumerate() {
        let list = &mut adj[i];
        for e in g.edges(NodeIndex::new(n as usize)) {
            let k = *e.weight() & mask;
            let t = local_of[e.target().index()];
            if k == 0 || t == u32::MAX {
                continue;
            }
            match list.iter_mut().find(|x| x.0 == t) {
                Some(x) => x.1 |= k,
                None => list.push((t, k)),
            }
        }
    }
    Component { nodes, adj }
}

/// The layers to search inside a component, weakest claim first: each is
/// (edge kinds allowed, split rw edges).
fn layers(mask: Kinds) -> Vec<(Kinds, bool)> {
    let mut v = vec![(WW, false), (WW | WR, false), (DEPS, true), (DEPS, false)];
    if mask & PROCESS != 0 {
        v.push((WW | WR | PROCESS, false));
        v.push((DEPS | PROCESS, false));
    }
    if mask & REALTIME != 0 {
        v.push((WW | WR | PROCESS | REALTIME, false));
        v.push((DEPS | PROCESS | REALTIME, false));
    }
    v.retain(|(k, _)| k & mask == *k);
    v
}

fn search_component(
    comp: &Component,
    real: usize,
    mask: Kinds,
    deadline: Option<Instant>,
    out: &mut Vec<FoundCycle>,
) -> Result<(), OutOfTime> {
    for (layer, split) in layers(mask) {
        // The layer's graph, with the twins of the split graph after the
        // originals.
        let n = comp.nodes.len();
        let size = if split { 2 * n } else { n };
        let mut lg: DiGraph<(), Kinds> = DiGraph::with_capacity(size, 0);
        for _ in 0..size {
            lg.add_node(());
        }
        for (u, list) in comp.adj.iter().enumerate() {
            for &(v, k) in list {
                let k = k & layer;
                if k == 0 {
                    continue;
                }
                let (u, v) = (NodeIndex::new(u), NodeIndex::new(v as usize));
                if !split {
                    lg.add_edge(u, v, k);
                    continue;
                }
                let plain = k & !RW;
                if plain != 0 {
                    lg.add_edge(u, v, plain);
                    lg.add_edge(NodeIndex::new(u.index() + n), v, plain);
                }
                if k & RW != 0 {
                    lg.add_edge(u, NodeIndex::new(v.index() + n), RW);
                }
            }
        }
        for scc in kosaraju_scc(&lg).into_iter().filter(|s| s.len() > 1) {
            check_time(deadline)?;
            let is_real = |i: usize| (comp.nodes[i % n] as usize) < real;
            if let Some((c, exhaustive)) = shortest_cycle(&lg, &scc, n, &is_real, deadline)? {
                let steps: Steps = c
                    .iter()
                    .map(|&(a, b, k)| (comp.nodes[a as usize], comp.nodes[b as usize], k))
                    .collect();
                let folded = fold_points(&steps, real);
                let exact = exhaustive && folded.len() == steps.len();
                record(out, folded, exact);
            }
        }
    }
    Ok(())
}

/// Replaces each run of completion points (nodes from `real` on) by one
/// real-time edge between the transactions around it.
fn fold_points(steps: &[(u32, u32, Kinds)], real: usize) -> Steps {
    let is_point = |x: u32| x as usize >= real;
    // Rotate so that the cycle starts at a transaction.
    let Some(first) = steps.iter().position(|s| !is_point(s.0)) else {
        return steps.to_vec();
    };
    let mut out: Steps = Vec::with_capacity(steps.len());
    let n = steps.len();
    let mut i = 0;
    while i < n {
        let (a, mut b, k) = steps[(first + i) % n];
        i += 1;
        if !is_point(b) {
            out.push((a, b, k));
            continue;
        }
        while is_point(b) && i < n {
            b = steps[(first + i) % n].1;
            i += 1;
        }
        out.push((a, b, REALTIME));
    }
    out
}

/// Keeps a cycle unless one with the same class, variant and transactions
/// is known.
fn record(out: &mut Vec<FoundCycle>, steps: Vec<(u32, u32, Kinds)>, shortest: bool) {
    let kinds: Vec<Kinds> = steps.iter().map(|s| s.2).collect();
    let (class, variant) = classify(&kinds);
    let mut key: Vec<u32> = steps.iter().map(|s| s.0).collect();
    key.sort_unstable();
    let dup = out.iter().any(|c| {
        c.class == class && c.variant == variant && {
            let mut k: Vec<u32> = c.steps.iter().map(|s| s.0).collect();
            k.sort_unstable();
            k == key
        }
    });
    if !dup {
        out.push(FoundCycle {
            steps,
            class,
            variant,
            shortest,
        });
    }
}

/// The shortest cycle found by breadth-first searches from the nodes of
/// `scc` (in a split graph, twins are folded back onto their originals:
/// `n` is the number of originals). Local (from, to, kind) steps.
fn shortest_cycle(
    lg: &DiGraph<(), Kinds>,
    scc: &[NodeIndex],
    n: usize,
    is_real: &dyn Fn(usize) -> bool,
    deadline: Option<Instant>,
) -> Result<Option<(Steps, bool)>, OutOfTime> {
    let size = lg.node_count();
    let mut in_scc = vec![false; size];
    for s in scc {
        in_scc[s.index()] = true;
    }
    let mut dist = vec![u32::MAX; size];
    let mut prev: Vec<(u32, Kinds)> = vec![(u32::MAX, 0); size];
    let mut touched: Vec<usize> = Vec::new();
    let mut queue = VecDeque::new();
    let mut best: Option<Vec<(u32, u32, Kinds)>> = None;
    let mut work = 0usize;
    // Start from original transactions only: every cycle passes through
    // one.
    let starts: Vec<NodeIndex> = scc
        .iter()
        .copied()
        .filter(|s| s.index() < n && is_real(s.index()))
        .collect();
    let mut exhaustive = true;
    for (i, &s) in starts.iter().enumerate() {
        if best.as_ref().is_some_and(|b| b.len() <= 2) {
            break;
        }
        if best.is_some() && work > SHORTEST_WORK {
            exhaustive = false;
            break;
        }
        if i % 64 == 0 {
            check_time(deadline)?;
        }
        let limit = best.as_ref().map_or(u32::MAX, |b| b.len() as u32);
        for &t in &touched {
            dist[t] = u32::MAX;
        }
        touched.clear();
        queue.clear();
        dist[s.index()] = 0;
        touched.push(s.index());
        queue.push_back(s);
        let mut closing: Option<(NodeIndex, Kinds)> = None;
        'bfs: while let Some(u) = queue.pop_front() {
            let du = dist[u.index()];
            if du + 1 >= limit {
                break;
            }
            for e in lg.edges(u) {
                work += 1;
                let v = e.target();
                if !in_scc[v.index()] {
                    continue;
                }
                let k = pick(*e.weight());
                if v == s {
                    closing = Some((u, k));
                    break 'bfs;
                }
                if dist[v.index()] == u32::MAX {
                    dist[v.index()] = du + 1;
                    prev[v.index()] = (u.index() as u32, k);
                    touched.push(v.index());
                    queue.push_back(v);
                }
            }
        }
        if let Some((last, k)) = closing {
            let mut steps = vec![(fold(last.index(), n), fold(s.index(), n), k)];
            let mut cur = last.index();
            while cur != s.index() {
                let (p, pk) = prev[cur];
                steps.push((fold(p as usize, n), fold(cur, n), pk));
                cur = p as usize;
            }
            steps.reverse();
            best = Some(steps);
        }
    }
    Ok(best.map(|b| (b, exhaustive)))
}

fn fold(i: usize, n: usize) -> u32 {
    (if i >= n { i - n } else { i }) as u32
}

/// The kind that explains an edge best (see [`PREFERENCE`]).
pub fn pick(k: Kinds) -> Kinds {
    PREFERENCE.into_iter().find(|&p| k & p != 0).unwrap_or(k)
}
