//! Session guarantees (Terry et al., 1994): read-your-writes, monotonic
//! reads, monotonic writes and writes-follow-reads, each session being one
//! client process, on read/write register histories with unique written
//! values (see [`crate::rw`] for the input contract).
//!
//! # What is decided
//!
//! The store keeps one order of all writes (Terry's *WriteOrder*); a read
//! returns the last write, in that order, among the writes it sees on its
//! key, or the initial value when it sees none. A guarantee forces a read to
//! see some writes, and forces some writes to be ordered. A history
//! satisfies the guarantee when **some order of the writes** is consistent
//! with everything the guarantee forces; a read is violating when no order
//! is. Since a read is free to see more than it is forced to, and seeing
//! more only adds constraints, the checks use exactly what is forced:
//!
//! - **ryw**: a read sees every earlier `ok` write of its own session. So a
//!   read of a key the session wrote cannot return the initial value, and
//!   the value it returns is ordered after every earlier own write of that
//!   key.
//! - **mr**: a read sees every write an earlier read of its session saw on
//!   that key. So a session's successive reads of a key return writes in a
//!   non-decreasing order, and never the initial value after a write.
//! - **mw**: a session's writes are ordered in session order, and a read
//!   that sees a write sees the writes its session made before it. A single
//!   read can never expose that on its own (it may see exactly the write it
//!   returns), so the reads are taken as monotonic readers: a violation is a
//!   cycle between what readers saw (as in mr) that goes through a writer's
//!   session order. A cycle made only of reads is an mr violation and is
//!   reported there, not here.
//! - **wfr**: a write made after a read is ordered after every write that
//!   read saw, and whoever sees the write sees them too. The forced order is
//!   "the write read, then every later write of the reading session"; a
//!   violation is a cycle of such steps (a session wrote after reading a
//!   value that, through other sessions, depends on that very write).
//!
//! Each check builds the constraints "write a before write b" as a graph and
//! looks for cycles (strongly connected components): polynomial, and in
//! practice linear in the size of the history. A witness lists the few
//! operations that make one cycle, and says in a sentence why no order of
//! the writes works.
//!
//! `ok` writes are ordered in their session. A write of unknown outcome that
//! someone read happened, but at an unknown time after its invocation: it
//! can come after what follows it in its session, so it forces nothing on
//! its session's later operations (it is not an "earlier write" for ryw or
//! for the order of mw), while it is still a write *after* the reads that
//! preceded its invocation (wfr) and *after* the session's earlier writes
//! (mw). Thin-air and aborted reads (see [`crate::rw`]) are anomalies of
//! every check.

use std::collections::HashMap;

use serde_json::json;

use crate::anomaly::{Anomaly, MAX_ANOMALIES, finish};
use crate::graph::{Edge, Graph, GraphBuilder};
use crate::linear::OpView;
use crate::rw::{Ret, RwHistory, Step, WriteStatus};
use crate::verdict::CheckResult;

/// A session guarantee.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Guarantee {
    /// Read your writes.
    Ryw,
    /// Monotonic reads.
    Mr,
    /// Monotonic writes.
    Mw,
    /// Writes follow reads.
    Wfr,
}

impl Guarantee {
    /// The short name (`ryw`, `mr`, `mw`, `wfr`).
    pub fn name(self) -> &'static str {
        match self {
            Guarantee::Ryw => "ryw",
            Guarantee::Mr => "mr",
            Guarantee::Mw => "mw",
            Guarantee::Wfr => "wfr",
        }
    }

    /// The anomaly type of a violation (`read-your-writes`...).
    pub fn long_name(self) -> &'static str {
        match self {
            Guarantee::Ryw => "read-your-writes",
            Guarantee::Mr => "monotonic-reads",
            Guarantee::Mw => "monotonic-writes",
            Guarantee::Wfr => "writes-follow-reads",
        }
    }

    /// All four, in the order of the summary.
    pub const ALL: [Guarantee; 4] = [Guarantee::Ryw, Guarantee::Mr, Guarantee::Mw, Guarantee::Wfr];
}

/// Why an edge of a constraint graph is there.
#[derive(Clone, Copy, Debug)]
enum Why {
    /// ryw: the session wrote this write (into its "own writes so far").
    OwnWrite,
    /// Links of a chain of summary nodes.
    Chain,
    /// ryw/wfr: this read (its session's own writes so far, or the writes
    /// it saw so far) leads to the target.
    Read(u32),
    /// ryw: this read returned the target, after this own write.
    Direct(u32),
    /// mr: two successive reads of a key by one session.
    Reads(u32, u32),
    /// mw: two writes of one session, in session order.
    Writes,
    /// wfr: the session wrote the target after its earlier reads.
    WriteAfter,
}

/// Checks `g` on `rw`.
pub fn check(rw: &RwHistory<'_>, g: Guarantee) -> CheckResult {
    let impossible = rw.impossible_reads();
    let n_impossible = impossible.len();
    let mut anomalies: Vec<Anomaly> = impossible.into_iter().take(MAX_ANOMALIES).collect();
    let n_real = rw.writes.len() as u32;
    let mut whys: Vec<Why> = Vec::new();
    let mut label = |w: Why| {
        whys.push(w);
        (whys.len() - 1) as u32
    };
    let mut b = GraphBuilder::new(n_real);
    let mut direct: Vec<Anomaly> = Vec::new();
    match g {
        Guarantee::Ryw => build_ryw(rw, &mut b, &mut label, &mut direct),
        Guarantee::Mr => build_mr(rw, &mut b, &mut label, &mut direct, true),
        Guarantee::Mw => {
            let mut ignored = Vec::new();
            build_mr(rw, &mut b, &mut label, &mut ignored, false);
            build_mw(rw, &mut b, &mut label);
        }
        Guarantee::Wfr => build_wfr(rw, &mut b, &mut label),
    }
    let (nodes, edges) = (b.nodes(), b.edges());
    let graph = b.build();
    let comp = graph.sccs();
    let mut violations = n_impossible + direct.len();
    anomalies.extend(direct.into_iter().take(MAX_ANOMALIES));
    let cycles = find_cycles(rw, g, &graph, &comp, &whys, n_real);
    violations += cycles.len();
    for cycle in cycles.into_iter().take(MAX_ANOMALIES) {
        anomalies.push(render_cycle(rw, g, &cycle, &whys, n_real));
    }
    let stats = json!({
        "sessions": rw.sessions.len(),
        "reads": rw.reads.len(),
        "writes": rw.writes.len(),
        "graph_nodes": nodes,
        "graph_edges": edges,
        "violations": violations,
    });
    finish(anomalies, stats)
}

fn build_ryw(
    rw: &RwHistory<'_>,
    b: &mut GraphBuilder,
    label: &mut impl FnMut(Why) -> u32,
    direct: &mut Vec<Anomaly>,
) {
    // Position of each write among its session's own ok writes of its key.
    let mut pos = vec![u32::MAX; rw.writes.len()];
    for (s, session) in rw.sessions.iter().enumerate() {
        // key -> (own ok writes, their summary nodes)
        let mut own: HashMap<u32, (Vec<u32>, Vec<u32>)> = HashMap::new();
        for step in &session.steps {
            match *step {
                Step::Write(w) => {
                    let wr = &rw.writes[w as usize];
                    if wr.status != WriteStatus::Ok {
                        continue;
                    }
                    let (ws, vs) = own.entry(wr.key).or_default();
                    pos[w as usize] = ws.len() as u32;
                    let v = b.add_node();
                    b.edge(w, v, label(Why::OwnWrite));
                    if let Some(&prev) = vs.last() {
                        b.edge(prev, v, label(Why::Chain));
                    }
                    ws.push(w);
                    vs.push(v);
                }
                Step::Read(r) => {
                    let rd = &rw.reads[r as usize];
                    let Some((ws, vs)) = own.get(&rd.key) else {
                        continue;
                    };
                    let Some(&last) = ws.last() else { continue };
                    match rd.ret {
                        Ret::Init => direct.push(ryw_init(rw, s as u32, last, r)),
                        Ret::Write(t) => {
                            let wt = &rw.writes[t as usize];
                            let j = pos[t as usize];
                            if wt.session == s as u32 && j != u32::MAX && wt.key == rd.key {
                                // An own write: after the earlier own writes
                                // (through the summary), and after each later
                                // one directly.
                                if j > 0 {
                                    b.edge(vs[j as usize - 1], t, label(Why::Read(r)));
                                }
                                for &later in &ws[j as usize + 1..] {
                                    b.edge(later, t, label(Why::Direct(r)));
                                }
                            } else if let Some(&v) = vs.last() {
                                b.edge(v, t, label(Why::Read(r)));
                            }
                        }
                        Ret::Aborted(_) | Ret::ThinAir => {}
                    }
                }
            }
        }
    }
}

fn ryw_init(rw: &RwHistory<'_>, s: u32, w: u32, r: u32) -> Anomaly {
    let wop = rw.write_op(w);
    let rop = rw.read_op(r);
    Anomaly {
        kind: Guarantee::Ryw.long_name(),
        key: rw.key_value(rw.reads[r as usize].key),
        ops: vec![OpView::of(wop), OpView::of(rop)],
        explanation: format!(
            "process {} wrote {} (line {}), then read {} (line {}): it did not see its own write.",
            rw.process(s),
            rw.write_text(w),
            rw.write_line(w),
            rw.read_text(r),
            rw.read_line(r)
        ),
    }
}

fn build_mr(
    rw: &RwHistory<'_>,
    b: &mut GraphBuilder,
    label: &mut impl FnMut(Why) -> u32,
    direct: &mut Vec<Anomaly>,
    report: bool,
) {
    for (s, session) in rw.sessions.iter().enumerate() {
        // key -> (last write read, the read)
        let mut last: HashMap<u32, (u32, u32)> = HashMap::new();
        for step in &session.steps {
            let Step::Read(r) = *step else { continue };
            let rd = &rw.reads[r as usize];
            match rd.ret {
                Ret::Write(t) => {
                    if let Some(&(prev, pr)) = last.get(&rd.key) {
                        if prev != t {
                            b.edge(prev, t, label(Why::Reads(pr, r)));
                        }
                    }
                    last.insert(rd.key, (t, r));
                }
                Ret::Init => {
                    if let (true, Some(&(prev, pr))) = (report, last.get(&rd.key)) {
                        let (pop, rop) = (rw.read_op(pr), rw.read_op(r));
                        direct.push(Anomaly {
                            kind: Guarantee::Mr.long_name(),
                            key: rw.key_value(rd.key),
                            ops: vec![
                                OpView::of(rw.write_op(prev)),
                                OpView::of(pop),
                                OpView::of(rop),
                            ],
                            explanation: format!(
                                "process {} read {} (line {}), then {} (line {}): its reads went \
                                 back to before a write it had seen.",
                                rw.process(s as u32),
                                rw.read_text(pr),
                                rw.read_line(pr),
                                rw.read_text(r),
                                rw.read_line(r)
                            ),
                        });
                    }
                }
                Ret::Aborted(_) | Ret::ThinAir => {}
            }
        }
    }
}

fn build_mw(rw: &RwHistory<'_>, b: &mut GraphBuilder, label: &mut impl FnMut(Why) -> u32) {
    for session in &rw.sessions {
        let mut last_ok: Option<u32> = None;
        for step in &session.steps {
            let Step::Write(w) = *step else { continue };
            let status = rw.writes[w as usize].status;
            if !status.happened() {
                continue;
            }
            if let Some(prev) = last_ok {
                b.edge(prev, w, label(Why::Writes));
            }
            if status == WriteStatus::Ok {
                last_ok = Some(w);
            }
        }
    }
}

fn build_wfr(rw: &RwHistory<'_>, b: &mut GraphBuilder, label: &mut impl FnMut(Why) -> u32) {
    for session in &rw.sessions {
        let mut seen: Option<u32> = None;
        for step in &session.steps {
            match *step {
                Step::Read(r) => {
                    if let Ret::Write(t) = rw.reads[r as usize].ret {
                        let v = b.add_node();
                        b.edge(t, v, label(Why::Read(r)));
                        if let Some(prev) = seen {
                            b.edge(prev, v, label(Why::Chain));
                        }
                        seen = Some(v);
                    }
                }
                Step::Write(w) => {
                    if let (Some(v), true) = (seen, rw.writes[w as usize].status.happened()) {
                        b.edge(v, w, label(Why::WriteAfter));
                    }
                }
            }
        }
    }
}

/// One cycle per violating component.
fn find_cycles(
    rw: &RwHistory<'_>,
    g: Guarantee,
    graph: &Graph,
    comp: &[u32],
    whys: &[Why],
    n_real: u32,
) -> Vec<Vec<Edge>> {
    let real = |n: u32| n < n_real;
    // Real nodes per component.
    let mut reals: HashMap<u32, u32> = HashMap::new();
    for n in 0..n_real {
        *reals.entry(comp[n as usize]).or_default() += 1;
    }
    let line_rank = |e: Edge| -> u64 {
        let n = if real(e.to) { e.to } else { e.from };
        if real(n) {
            rw.write_line(n) as u64
        } else {
            u64::MAX - 1
        }
    };
    let picks = graph.cyclic_edges(comp, |e| {
        let ok = match g {
            // A cycle needs two distinct writes: an own write read back is
            // no constraint on its own.
            Guarantee::Ryw => {
                reals.get(&comp[e.from as usize]).copied().unwrap_or(0) >= 2 && real(e.to)
            }
            Guarantee::Mr => true,
            Guarantee::Mw => matches!(whys[e.label as usize], Why::Writes),
            Guarantee::Wfr => matches!(whys[e.label as usize], Why::WriteAfter),
        };
        ok.then(|| line_rank(e))
    });
    let mut out = Vec::new();
    for e in picks {
        let cycle = if g == Guarantee::Ryw {
            // From a write back to itself through another write, so that
            // every step is between two distinct writes.
            ryw_cycle(graph, comp, e.to, n_real)
        } else {
            graph.cycle_through(e, comp)
        };
        if let Some(c) = cycle {
            out.push(c);
        }
    }
    out
}

fn ryw_cycle(graph: &Graph, comp: &[u32], a: u32, n_real: u32) -> Option<Vec<Edge>> {
    let c = comp[a as usize];
    let same = |n: u32| comp[n as usize] == c;
    // The nearest other write of the component, then back.
    let mut best: Option<Vec<Edge>> = None;
    let mut queue = std::collections::VecDeque::from([a]);
    let mut seen = std::collections::HashSet::from([a]);
    while let Some(v) = queue.pop_front() {
        if v != a && v < n_real {
            let there = graph.path(a, v, same)?;
            let back = graph.path(v, a, same)?;
            let mut cyc = there;
            cyc.extend(back);
            best = Some(cyc);
            break;
        }
        for (w, _) in graph.out(v) {
            if same(w) && seen.insert(w) {
                queue.push_back(w);
            }
        }
    }
    best
}

/// A step of a cycle between two writes, with the labels on the way.
struct Segment {
    from: u32,
    to: u32,
    labels: Vec<u32>,
}

fn segments(cycle: &[Edge], n_real: u32) -> Vec<Segment> {
    let Some(start) = cycle.iter().position(|e| e.from < n_real) else {
        return Vec::new();
    };
    let mut out: Vec<Segment> = Vec::new();
    for k in 0..cycle.len() {
        let e = cycle[(start + k) % cycle.len()];
        if e.from < n_real {
            out.push(Segment {
                from: e.from,
                to: e.to,
                labels: vec![e.label],
            });
        } else if let Some(s) = out.last_mut() {
            s.to = e.to;
            s.labels.push(e.label);
        }
    }
    out
}

fn render_cycle(
    rw: &RwHistory<'_>,
    g: Guarantee,
    cycle: &[Edge],
    whys: &[Why],
    n_real: u32,
) -> Anomaly {
    let mut ops: Vec<OpView> = Vec::new();
    let mut seen_ops = std::collections::HashSet::new();
    let mut push = |op: &crate::history::Operation, ops: &mut Vec<OpView>| {
        if seen_ops.insert(op.id) {
            ops.push(OpView::of(op));
        }
    };
    let mut steps: Vec<String> = Vec::new();
    let mut chain: Vec<String> = Vec::new();
    for seg in segments(cycle, n_real) {
        let (a, b) = (seg.from, seg.to);
        chain.push(rw.write_text(a));
        let first = whys[seg.labels[0] as usize];
        let last = whys[*seg.labels.last().unwrap_or(&seg.labels[0]) as usize];
        let text = match (first, last) {
            (Why::OwnWrite, Why::Read(r)) | (_, Why::Direct(r)) => {
                let rop = rw.read_op(r);
                push(rw.write_op(a), &mut ops);
                push(rop, &mut ops);
                format!(
                    "process {} wrote {} (line {}) and later read {} (line {})",
                    rop.process,
                    rw.write_text(a),
                    rw.write_line(a),
                    rw.write_text(b),
                    rw.read_line(r)
                )
            }
            (Why::Reads(r1, r2), _) => {
                let rop = rw.read_op(r2);
                push(rw.read_op(r1), &mut ops);
                push(rop, &mut ops);
                format!(
                    "process {} read {} (line {}) and later {} (line {})",
                    rop.process,
                    rw.write_text(a),
                    rw.read_line(r1),
                    rw.write_text(b),
                    rw.read_line(r2)
                )
            }
            (Why::Writes, _) => {
                let wop = rw.write_op(b);
                push(rw.write_op(a), &mut ops);
                push(wop, &mut ops);
                format!(
                    "process {} wrote {} (line {}) before {} (line {})",
                    wop.process,
                    rw.write_text(a),
                    rw.write_line(a),
                    rw.write_text(b),
                    rw.write_line(b)
                )
            }
            (Why::Read(r), Why::WriteAfter) => {
                let rop = rw.read_op(r);
                push(rw.write_op(a), &mut ops);
                push(rop, &mut ops);
                push(rw.write_op(b), &mut ops);
                format!(
                    "process {} read {} (line {}) before writing {} (line {})",
                    rop.process,
                    rw.write_text(a),
                    rw.read_line(r),
                    rw.write_text(b),
                    rw.write_line(b)
                )
            }
            _ => format!("{} comes before {}", rw.write_text(a), rw.write_text(b)),
        };
        steps.push(text);
    }
    if let Some(first) = chain.first().cloned() {
        chain.push(first);
    }
    let key = {
        let keys: std::collections::BTreeSet<u32> = segments(cycle, n_real)
            .iter()
            .map(|s| rw.writes[s.from as usize].key)
            .collect();
        if keys.len() == 1 {
            keys.into_iter().next().and_then(|k| rw.key_value(k))
        } else {
            None
        }
    };
    let what = match g {
        Guarantee::Ryw => "no order of the writes lets every process see its own writes",
        Guarantee::Mr => "no order of the writes keeps every process's reads monotonic",
        Guarantee::Mw => {
            "no order of the writes keeps each process's writes in its order and every \
             reader's view monotonic"
        }
        Guarantee::Wfr => {
            "no order of the writes puts each write after the writes its process had read"
        }
    };
    Anomaly {
        kind: g.long_name(),
        key,
        ops,
        explanation: format!(
            "{}: each step orders the second write after the first, a cycle ({}), so {what}.",
            capitalize(&steps.join("; ")),
            chain.join(" < ")
        ),
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use crate::checks::Check;
    use crate::rw_checks::testing::{failing, history, run, verdicts};
    use crate::verdict::Validity;

    fn session_failing(ops: &str) -> Vec<&'static str> {
        failing(ops)
            .into_iter()
            .filter(|c| matches!(*c, "ryw" | "mr" | "mw" | "wfr"))
            .collect()
    }

    fn explanation(ops: &str, check: Check) -> String {
        let r = run(&history(ops), &[check]).unwrap();
        r[0].result.anomalies[0]["explanation"]
            .as_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn read_your_writes() {
        // Reading the initial value after one's own write.
        let bad = "0 w x 1; 0 r x 0";
        assert_eq!(session_failing(bad), vec!["ryw"]);
        let e = explanation(bad, Check::Ryw);
        assert!(
            e.contains("process 0 wrote x=1 (line 1), then read x=0"),
            "{e}"
        );
        assert!(e.contains("did not see its own write"), "{e}");
        // Each process reads the other's write after its own: the writes
        // would have to be ordered both ways (the paper's history a).
        let bad = "0 w x 1; 0 r x 2; 1 w x 2; 1 r x 1";
        assert_eq!(session_failing(bad), vec!["ryw"]);
        let e = explanation(bad, Check::Ryw);
        assert!(
            e.contains("x=1 < x=2 < x=1") || e.contains("x=2 < x=1 < x=2"),
            "{e}"
        );
        // Reading an older own write is fine when the later own write may be
        // ordered before it, and so is reading another's later write.
        for good in [
            "0 w x 1; 0 r x 1; 1 w x 2; 0 r x 2",
            "0 w x 1; 0 w x 2; 0 r x 1",
            "0 w x 1; 0 r y 0; 1 r x 0",
        ] {
            assert_eq!(session_failing(good), Vec::<&str>::new(), "{good}");
        }
        // Through several keys and the chain of own writes.
        let bad = "0 w x 1; 0 w y 1; 0 r y 2; 1 w y 2; 1 w x 2; 1 r x 1; 0 r x 2; 1 r y 1";
        assert!(session_failing(bad).contains(&"ryw"));
    }

    #[test]
    fn monotonic_reads() {
        let bad = "0 w x 1; 1 w x 2; 2 r x 1; 2 r x 2; 3 r x 2; 3 r x 1";
        assert_eq!(session_failing(bad), vec!["mr"]);
        let e = explanation(bad, Check::Mr);
        assert!(
            e.contains("process 2 read x=1 (line 3) and later x=2 (line 4)"),
            "{e}"
        );
        assert!(e.contains("keeps every process's reads monotonic"), "{e}");
        let bad = "0 w x 1; 2 r x 1; 2 r x 0";
        assert_eq!(session_failing(bad), vec!["mr"]);
        assert!(explanation(bad, Check::Mr).contains("went back"));
        for good in [
            "0 w x 1; 1 w x 2; 2 r x 1; 2 r x 2; 3 r x 1; 3 r x 2",
            "0 w x 1; 2 r x 0; 2 r x 1; 2 r y 0",
            // A single reader may see one writer's writes backwards: only
            // monotonic writes forbids it.
            "0 w x 1; 0 w x 2; 1 r x 2; 1 r x 1",
        ] {
            assert!(!session_failing(good).contains(&"mr"), "{good}");
        }
    }

    #[test]
    fn monotonic_writes() {
        let bad = "0 w x 1; 0 w x 2; 1 r x 2; 1 r x 1";
        assert_eq!(session_failing(bad), vec!["mw"]);
        let e = explanation(bad, Check::Mw);
        assert!(
            e.contains("Process 0 wrote x=1 (line 1) before x=2 (line 2)"),
            "{e}"
        );
        assert!(
            e.contains("process 1 read x=2 (line 3) and later x=1 (line 4)"),
            "{e}"
        );
        // Across keys: one order of all writes.
        let bad = "0 w x 1; 0 w y 1; 1 w y 2; 1 w x 2; 2 r y 1; 2 r y 2; 3 r x 2; 3 r x 1";
        assert_eq!(session_failing(bad), vec!["mw"]);
        // A cycle of reads alone is monotonic reads' business.
        let mr_only = "0 w x 1; 1 w x 2; 2 r x 1; 2 r x 2; 3 r x 2; 3 r x 1";
        assert!(!session_failing(mr_only).contains(&"mw"));
        for good in [
            "0 w x 1; 0 w x 2; 1 r x 1; 1 r x 2",
            "0 w x 1; 0 w y 1; 1 r y 1; 1 r x 0",
        ] {
            assert!(!session_failing(good).contains(&"mw"), "{good}");
        }
    }

    #[test]
    fn writes_follow_reads() {
        let bad = "0 r x 2; 0 w x 1; 1 r x 1; 1 w x 2";
        assert_eq!(session_failing(bad), vec!["wfr"]);
        let e = explanation(bad, Check::Wfr);
        assert!(
            e.contains("process 0 read x=2 (line 1) before writing x=1 (line 2)"),
            "{e}"
        );
        // Across keys, and a session that reads its own future write.
        let bad = "0 r x 1; 0 w y 1; 1 r y 1; 1 w x 1";
        assert_eq!(session_failing(bad), vec!["wfr"]);
        assert_eq!(session_failing("0 r x 1; 0 w x 1"), vec!["wfr"]);
        for good in [
            "0 w x 1; 1 r x 1; 1 w x 2; 0 r x 2",
            "0 r x 0; 0 w x 1; 1 r x 1; 1 w x 2",
        ] {
            assert!(!session_failing(good).contains(&"wfr"), "{good}");
        }
    }

    #[test]
    fn info_fail_and_the_contract() {
        // An info write that someone read happened; one nobody read is
        // ignored.
        for ops in [
            "0 w x 1 info; 1 r x 1",
            "0 w x 1 info; 1 r x 0",
            "0 w x 1 info",
        ] {
            assert_eq!(failing(ops), Vec::<&str>::new(), "{ops}");
        }
        // A failed write whose value is read: an aborted read, everywhere.
        let v = verdicts("0 w x 1 fail; 1 r x 1");
        assert_eq!(v.len(), 7);
        for (name, valid, types) in &v {
            assert_eq!(*valid, Validity::Invalid, "{name}");
            let want = if name.starts_with('c') {
                "ThinAirRead"
            } else {
                "aborted-read"
            };
            assert_eq!(types, &vec![want.to_string()], "{name}");
        }
        let e = explanation("0 w x 1 fail; 1 r x 1", Check::Ryw);
        assert!(e.contains("failed write"), "{e}");
        // A thin-air read.
        let v = verdicts("1 r x 7");
        assert!(v.iter().all(|(_, valid, _)| *valid == Validity::Invalid));
        // A repeated written value, or a write of the initial value, breaks
        // the contract.
        let e = run(&history("0 w x 1; 1 w x 1"), &[Check::Ryw]).unwrap_err();
        assert_eq!(e.short, "values written more than once");
        assert_eq!(e.line, 2);
        assert!(
            e.reason
                .contains("value 1 is written to key \"x\" twice (lines 1 and 2)"),
            "{}",
            e.reason
        );
        let e = run(&history("0 w x 0"), &[Check::Cc]).unwrap_err();
        assert_eq!(e.short, "the initial value is written");
        // The same value on two keys is fine.
        assert!(run(&history("0 w x 1; 0 w y 1"), &[Check::Cc]).is_ok());
    }

    #[test]
    fn info_write_precedes_nothing_of_its_session() {
        use crate::format::json;
        // Process 0's write of 1 times out; process 0 goes on (same id) and
        // reads the initial value; process 1 reads 1 later. The write may
        // have taken effect after process 0's read.
        let text = r#"{"process":0,"type":"invoke","f":"write","key":"x","value":1}
{"process":0,"type":"info","f":"write","key":"x","value":1}
{"process":0,"type":"invoke","f":"read","key":"x","value":null}
{"process":0,"type":"ok","f":"read","key":"x","value":0}
{"process":1,"type":"invoke","f":"read","key":"x","value":null}
{"process":1,"type":"ok","f":"read","key":"x","value":1}
{"process":0,"type":"invoke","f":"write","key":"x","value":2}
{"process":0,"type":"ok","f":"write","key":"x","value":2}
"#;
        let h = json::read("t.jsonl", text.as_bytes()).unwrap();
        let all: Vec<Check> = Check::ALL.into_iter().filter(|c| c.needs_rw()).collect();
        for r in run(&h, &all).unwrap() {
            assert_eq!(
                r.result.valid,
                Validity::Valid,
                "{}: {:?}",
                r.check.name(),
                r.result.anomalies
            );
        }
        // Had it completed ok, process 0's read would be a violation.
        let h = json::read("t.jsonl", text.replacen("\"info\"", "\"ok\"", 1).as_bytes()).unwrap();
        let r = run(&h, &[Check::Ryw, Check::Cc]).unwrap();
        assert!(r.iter().all(|r| r.result.valid == Validity::Invalid));
    }
}
