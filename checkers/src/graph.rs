//! A small directed graph for the session and causal checkers: compressed
//! adjacency lists with a label per edge, strongly connected components
//! (Tarjan, iterative), and shortest paths inside a component for witnesses.
//!
//! Plain arrays rather than a general graph library: the graphs have up to a
//! few million nodes and edges and are built once, so a flat layout is both
//! smaller and faster.

use std::collections::VecDeque;

/// An edge being collected: from, to, label.
type RawEdge = (u32, u32, u32);

/// Collects edges, then freezes into a [`Graph`].
#[derive(Debug, Default)]
pub struct GraphBuilder {
    nodes: u32,
    edges: Vec<RawEdge>,
}

impl GraphBuilder {
    /// A builder for a graph of `nodes` nodes (more may be added).
    pub fn new(nodes: u32) -> Self {
        GraphBuilder {
            nodes,
            edges: Vec::new(),
        }
    }

    /// Adds a node and returns its id.
    pub fn add_node(&mut self) -> u32 {
        self.nodes += 1;
        self.nodes - 1
    }

    /// Number of nodes so far.
    pub fn nodes(&self) -> u32 {
        self.nodes
    }

    /// Adds the edge `from -> to` with `label`.
    pub fn edge(&mut self, from: u32, to: u32, label: u32) {
        self.edges.push((from, to, label));
    }

    /// Number of edges so far.
    pub fn edges(&self) -> usize {
        self.edges.len()
    }

    /// The graph, with the edges of each node in insertion order.
    pub fn build(self) -> Graph {
        let n = self.nodes as usize;
        let mut start = vec![0u32; n + 1];
        for &(f, _, _) in &self.edges {
            start[f as usize + 1] += 1;
        }
        for i in 0..n {
            start[i + 1] += start[i];
        }
        let mut fill = start.clone();
        let mut to = vec![0u32; self.edges.len()];
        let mut label = vec![0u32; self.edges.len()];
        for &(f, t, l) in &self.edges {
            let slot = &mut fill[f as usize];
            to[*slot as usize] = t;
            label[*slot as usize] = l;
            *slot += 1;
        }
        Graph { start, to, label }
    }
}

/// A frozen directed graph.
#[derive(Debug)]
pub struct Graph {
    start: Vec<u32>,
    to: Vec<u32>,
    label: Vec<u32>,
}

/// An edge of a path or cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edge {
    /// Source node.
    pub from: u32,
    /// Target node.
    pub to: u32,
    /// Its label.
    pub label: u32,
}

impl Graph {
    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.start.len() - 1
    }

    /// True when the graph has no node.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The out-edges of `n`: (target, label).
    pub fn out(&self, n: u32) -> impl Iterator<Item = (u32, u32)> + '_ {
        let (a, b) = (
            self.start[n as usize] as usize,
            self.start[n as usize + 1] as usize,
        );
        self.to[a..b]
            .iter()
            .copied()
            .zip(self.label[a..b].iter().copied())
    }

    /// Strongly connected components: the component id of every node.
    /// Components are numbered in reverse topological order (Tarjan).
    pub fn sccs(&self) -> Vec<u32> {
        const NONE: u32 = u32::MAX;
        let n = self.len();
        let mut index = vec![NONE; n];
        let mut low = vec![0u32; n];
        let mut comp = vec![NONE; n];
        let mut on_stack = vec![false; n];
        let mut stack: Vec<u32> = Vec::new();
        // (node, position in its edge list)
        let mut call: Vec<(u32, u32)> = Vec::new();
        let mut next_index = 0u32;
        let mut next_comp = 0u32;
        for root in 0..n as u32 {
            if index[root as usize] != NONE {
                continue;
            }
            call.push((root, self.start[root as usize]));
            index[root as usize] = next_index;
            low[root as usize] = next_index;
            next_index += 1;
            stack.push(root);
            on_stack[root as usize] = true;
            while let Some(&mut (v, ref mut pos)) = call.last_mut() {
                let end = self.start[v as usize + 1];
                if *pos < end {
                    let w = self.to[*pos as usize];
                    *pos += 1;
                    if index[w as usize] == NONE {
                        index[w as usize] = next_index;
                        low[w as usize] = next_index;
                        next_index += 1;
                        stack.push(w);
                        on_stack[w as usize] = true;
                        call.push((w, self.start[w as usize]));
                    } else if on_stack[w as usize] {
                        low[v as usize] = low[v as usize].min(index[w as usize]);
                    }
                } else {
                    call.pop();
                    if let Some(&(parent, _)) = call.last() {
                        low[parent as usize] = low[parent as usize].min(low[v as usize]);
                    }
                    if low[v as usize] == index[v as usize] {
                        while let Some(w) = stack.pop() {
                            on_stack[w as usize] = false;
                            comp[w as usize] = next_comp;
                            if w == v {
                                break;
                            }
                        }
                        next_comp += 1;
                    }
                }
            }
        }
        comp
    }

    /// A shortest path from `from` to `to` using only nodes for which
    /// `keep` is true (`from` and `to` included); empty when `from == to`,
    /// `None` when there is none.
    pub fn path(&self, from: u32, to: u32, keep: impl Fn(u32) -> bool) -> Option<Vec<Edge>> {
        if from == to {
            return Some(Vec::new());
        }
        let mut prev: std::collections::HashMap<u32, Edge> = std::collections::HashMap::new();
        let mut queue = VecDeque::new();
        queue.push_back(from);
        prev.insert(
            from,
            Edge {
                from,
                to: from,
                label: u32::MAX,
            },
        );
        while let Some(v) = queue.pop_front() {
            for (w, l) in self.out(v) {
                if prev.contains_key(&w) || !keep(w) {
                    continue;
                }
                prev.insert(
                    w,
                    Edge {
                        from: v,
                        to: w,
                        label: l,
                    },
                );
                if w == to {
                    let mut path = Vec::new();
                    let mut cur = to;
                    while cur != from {
                        let e = prev[&cur];
                        path.push(e);
                        cur = e.from;
                    }
                    path.reverse();
                    return Some(path);
                }
                queue.push_back(w);
            }
        }
        None
    }

    /// A shortest cycle through the edge `e` (whose ends are in one
    /// component of `comp`): the edge, then a shortest path back.
    pub fn cycle_through(&self, e: Edge, comp: &[u32]) -> Option<Vec<Edge>> {
        let c = comp[e.from as usize];
        let mut cycle = vec![e];
        cycle.extend(self.path(e.to, e.from, |n| comp[n as usize] == c)?);
        Some(cycle)
    }

    /// Every edge whose two ends are in the same component, by component:
    /// the edges that lie on some cycle. At most one edge per component is
    /// returned, chosen by `prefer` (lowest value first) among those for
    /// which it returns `Some`.
    pub fn cyclic_edges(&self, comp: &[u32], prefer: impl Fn(Edge) -> Option<u64>) -> Vec<Edge> {
        let mut best: std::collections::HashMap<u32, (u64, Edge)> =
            std::collections::HashMap::new();
        for v in 0..self.len() as u32 {
            for (w, l) in self.out(v) {
                if comp[v as usize] != comp[w as usize] {
                    continue;
                }
                let e = Edge {
                    from: v,
                    to: w,
                    label: l,
                };
                if let Some(rank) = prefer(e) {
                    let slot = best.entry(comp[v as usize]).or_insert((rank, e));
                    if rank < slot.0 {
                        *slot = (rank, e);
                    }
                }
            }
        }
        let mut out: Vec<(u64, Edge)> = best.into_values().collect();
        out.sort_by_key(|&(r, e)| (r, e.from, e.to));
        out.into_iter().map(|(_, e)| e).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(n: u32, edges: &[(u32, u32)]) -> Graph {
        let mut b = GraphBuilder::new(n);
        for (i, &(f, t)) in edges.iter().enumerate() {
            b.edge(f, t, i as u32);
        }
        b.build()
    }

    #[test]
    fn components_and_cycles() {
        // 0 -> 1 -> 2 -> 0, 2 -> 3, 3 -> 3 (self-loop), 4 alone.
        let g = graph(5, &[(0, 1), (1, 2), (2, 0), (2, 3), (3, 3)]);
        let c = g.sccs();
        assert_eq!(c[0], c[1]);
        assert_eq!(c[1], c[2]);
        assert_ne!(c[2], c[3]);
        assert_ne!(c[3], c[4]);
        let cyc = g.cyclic_edges(&c, |e| Some(e.label as u64));
        assert_eq!(cyc.len(), 2);
        let through = g.cycle_through(cyc[0], &c).unwrap();
        let nodes: Vec<u32> = through.iter().map(|e| e.from).collect();
        assert_eq!(nodes, vec![0, 1, 2]);
        assert_eq!(through.last().unwrap().to, 0);
        let self_loop = g.cycle_through(cyc[1], &c).unwrap();
        assert_eq!(self_loop.len(), 1);
        // Paths respect the filter.
        assert!(g.path(0, 3, |_| true).is_some());
        assert!(g.path(0, 3, |n| n != 2).is_none());
        assert_eq!(g.path(4, 4, |_| true), Some(vec![]));
    }

    #[test]
    fn deep_chains_do_not_overflow() {
        let n = 200_000u32;
        let edges: Vec<(u32, u32)> = (0..n - 1).map(|i| (i, i + 1)).chain([(n - 1, 0)]).collect();
        let g = graph(n, &edges);
        let c = g.sccs();
        assert!(c.iter().all(|&x| x == c[0]));
        let g = graph(n, &edges[..edges.len() - 1]);
        let c = g.sccs();
        assert_eq!(
            c.iter().collect::<std::collections::HashSet<_>>().len(),
            n as usize
        );
    }
}
