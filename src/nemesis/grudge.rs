//! Grudges: which node drops traffic from which. Pure: no I/O, seeded.
//!
//! A grudge maps a node to the set of nodes whose packets it drops, as in
//! Jepsen (`{"n1":["n2","n3"],"n2":["n1"],"n3":["n1"]}` isolates n1). A TCP
//! connection between two nodes needs both directions, so it works iff
//! neither node holds a grudge against the other ([`connected`]).

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

/// Node name to the nodes it drops traffic from.
pub type Grudge = BTreeMap<String, BTreeSet<String>>;

/// Invalid grudges and shapes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrudgeError {
    /// Not a shape name nor JSON.
    #[error(
        "unknown partition {0:?}: use one, majority, random-halves, majorities-ring, bridge, or a JSON grudge like '{{\"n1\":[\"n2\"]}}' or components like '[[\"n1\"],[\"n2\",\"n3\"]]'"
    )]
    UnknownShape(String),
    /// JSON that is neither a grudge map nor a list of components.
    #[error("invalid JSON grudge {input:?}: {reason}")]
    BadJson {
        /// The input.
        input: String,
        /// Why.
        reason: String,
    },
    /// A node the lab does not have.
    #[error("grudge names node {node:?}, which is not in the lab (nodes: {known})")]
    UnknownNode {
        /// The node.
        node: String,
        /// The lab's nodes.
        known: String,
    },
    /// A node dropping its own traffic.
    #[error("grudge makes node {0:?} drop its own traffic")]
    SelfDrop(String),
    /// A node listed in two components.
    #[error("node {0:?} appears in more than one component")]
    Duplicate(String),
    /// Not enough nodes for the shape.
    #[error("partition {shape} needs at least {need} nodes, the lab has {have}")]
    TooFewNodes {
        /// The shape.
        shape: String,
        /// Nodes needed.
        need: usize,
        /// Nodes present.
        have: usize,
    },
}

/// The seeded generator of the whole run (xoshiro256**, the workloads'
/// own): the same seed gives the same partitions and schedules, so
/// `--seed` reproduces a run.
pub use faultline_workloads::rng::Rng;

/// The partition shapes Jepsen users know, plus explicit grudges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Isolate one random node from all others.
    One,
    /// Split into a random majority and minority (minority of
    /// `max(1, (n-1)/2)` nodes).
    Majority,
    /// Shuffle and cut in two halves (`n/2` and the rest).
    RandomHalves,
    /// Every node sees a majority, and no two nodes see the same majority
    /// (Jepsen's `majorities-ring`; one-directional drops when n = 3).
    MajoritiesRing,
    /// Two halves joined by one bridge node that sees both.
    Bridge,
    /// A given grudge.
    Explicit(Grudge),
}

impl Shape {
    /// The shape's name (`explicit` for a given grudge).
    pub fn name(&self) -> &'static str {
        match self {
            Shape::One => "one",
            Shape::Majority => "majority",
            Shape::RandomHalves => "random-halves",
            Shape::MajoritiesRing => "majorities-ring",
            Shape::Bridge => "bridge",
            Shape::Explicit(_) => "explicit",
        }
    }

    /// Every named shape.
    pub const NAMED: [Shape; 5] = [
        Shape::One,
        Shape::Majority,
        Shape::RandomHalves,
        Shape::MajoritiesRing,
        Shape::Bridge,
    ];
}

impl FromStr for Shape {
    type Err = GrudgeError;

    fn from_str(s: &str) -> Result<Shape, GrudgeError> {
        let t = s.trim();
        match t {
            "one" => Ok(Shape::One),
            "majority" => Ok(Shape::Majority),
            "random-halves" => Ok(Shape::RandomHalves),
            "majorities-ring" => Ok(Shape::MajoritiesRing),
            "bridge" => Ok(Shape::Bridge),
            _ if t.starts_with('{') || t.starts_with('[') => parse_json(t).map(Shape::Explicit),
            _ => Err(GrudgeError::UnknownShape(s.to_string())),
        }
    }
}

fn parse_json(t: &str) -> Result<Grudge, GrudgeError> {
    let bad = |reason: String| GrudgeError::BadJson {
        input: t.to_string(),
        reason,
    };
    let v: serde_json::Value = serde_json::from_str(t).map_err(|e| bad(e.to_string()))?;
    if v.is_object() {
        serde_json::from_value::<Grudge>(v)
            .map_err(|e| bad(format!("want an object of node to list of nodes ({e})")))
    } else {
        let comps: Vec<Vec<String>> = serde_json::from_value(v)
            .map_err(|e| bad(format!("want a list of lists of node names ({e})")))?;
        if comps.len() < 2 {
            return Err(bad("want at least two components".into()));
        }
        let mut seen = BTreeSet::new();
        for n in comps.iter().flatten() {
            if !seen.insert(n.clone()) {
                return Err(GrudgeError::Duplicate(n.clone()));
            }
        }
        Ok(complete_grudge(&comps))
    }
}

/// Every node drops traffic from every node outside its component (Jepsen's
/// `complete-grudge`).
pub fn complete_grudge(components: &[Vec<String>]) -> Grudge {
    let mut g = Grudge::new();
    for (i, c) in components.iter().enumerate() {
        let others: BTreeSet<String> = components
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .flat_map(|(_, o)| o.iter().cloned())
            .collect();
        for n in c {
            if !others.is_empty() {
                g.entry(n.clone())
                    .or_default()
                    .extend(others.iter().cloned());
            }
        }
    }
    g
}

/// Checks a grudge against the lab's nodes.
pub fn validate(g: &Grudge, nodes: &[String]) -> Result<(), GrudgeError> {
    let unknown = |n: &String| GrudgeError::UnknownNode {
        node: n.clone(),
        known: nodes.join(", "),
    };
    for (a, bs) in g {
        if !nodes.contains(a) {
            return Err(unknown(a));
        }
        for b in bs {
            if !nodes.contains(b) {
                return Err(unknown(b));
            }
            if a == b {
                return Err(GrudgeError::SelfDrop(a.clone()));
            }
        }
    }
    Ok(())
}

/// The grudge a shape gives on `nodes`, drawing from `rng`.
pub fn grudge(shape: &Shape, nodes: &[String], rng: &mut Rng) -> Result<Grudge, GrudgeError> {
    let n = nodes.len();
    let need = |k: usize| {
        if n < k {
            Err(GrudgeError::TooFewNodes {
                shape: shape.name().to_string(),
                need: k,
                have: n,
            })
        } else {
            Ok(())
        }
    };
    let mut sh: Vec<String> = nodes.to_vec();
    let g = match shape {
        Shape::Explicit(g) => {
            validate(g, nodes)?;
            return Ok(g.clone());
        }
        Shape::One => {
            need(2)?;
            let v = sh.remove(rng.index(n));
            complete_grudge(&[vec![v], sh])
        }
        Shape::Majority => {
            need(2)?;
            rng.shuffle(&mut sh);
            let k = ((n - 1) / 2).max(1);
            let rest = sh.split_off(k);
            complete_grudge(&[sh, rest])
        }
        Shape::RandomHalves => {
            need(2)?;
            rng.shuffle(&mut sh);
            let rest = sh.split_off(n / 2);
            complete_grudge(&[sh, rest])
        }
        Shape::Bridge => {
            need(3)?;
            rng.shuffle(&mut sh);
            let mut b = sh.split_off(n / 2);
            b.remove(0); // the bridge node: sees both sides, cut from neither
            complete_grudge(&[sh, b])
        }
        Shape::MajoritiesRing => {
            need(3)?;
            rng.shuffle(&mut sh);
            // Windows of a majority m around the ring; the middle node of each
            // window sees exactly that window and drops everyone else.
            let m = n / 2 + 1;
            let all: BTreeSet<String> = sh.iter().cloned().collect();
            let mut g = Grudge::new();
            for start in 0..n {
                let window: BTreeSet<String> =
                    (0..m).map(|k| sh[(start + k) % n].clone()).collect();
                let middle = sh[(start + m / 2) % n].clone();
                let drop: BTreeSet<String> = all.difference(&window).cloned().collect();
                if !drop.is_empty() {
                    g.insert(middle, drop);
                }
            }
            g
        }
    };
    validate(&g, nodes)?;
    Ok(g)
}

/// True if a TCP connection between `a` and `b` can work under `g`: neither
/// drops the other's packets.
pub fn connected(g: &Grudge, a: &str, b: &str) -> bool {
    let drops = |x: &str, y: &str| g.get(x).is_some_and(|s| s.contains(y));
    !drops(a, b) && !drops(b, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("n{i}")).collect()
    }

    /// Nodes `a` can talk to (including itself), TCP-wise.
    fn sees(g: &Grudge, ns: &[String], a: &str) -> usize {
        ns.iter().filter(|b| connected(g, a, b)).count()
    }

    #[test]
    fn parse_shapes() {
        for s in Shape::NAMED {
            assert_eq!(s.name().parse::<Shape>().unwrap(), s);
        }
        assert!(matches!(
            "nope".parse::<Shape>(),
            Err(GrudgeError::UnknownShape(_))
        ));
        assert!(matches!(
            "{bad".parse::<Shape>(),
            Err(GrudgeError::BadJson { .. })
        ));
        let Shape::Explicit(g) = r#"{"n1":["n2"]}"#.parse().unwrap() else {
            panic!()
        };
        assert!(!connected(&g, "n1", "n2") && connected(&g, "n1", "n3"));
        let Shape::Explicit(g) = r#"[["n1"],["n2","n3"]]"#.parse().unwrap() else {
            panic!()
        };
        assert_eq!(g["n1"].len(), 2);
        assert_eq!(g["n2"].len(), 1);
        assert!(matches!(
            r#"[["n1"],["n1","n3"]]"#.parse::<Shape>(),
            Err(GrudgeError::Duplicate(_))
        ));
    }

    #[test]
    fn validation() {
        let ns = nodes(3);
        let g: Grudge = serde_json::from_str(r#"{"n1":["n9"]}"#).unwrap();
        assert!(matches!(
            validate(&g, &ns),
            Err(GrudgeError::UnknownNode { .. })
        ));
        let g: Grudge = serde_json::from_str(r#"{"n1":["n1"]}"#).unwrap();
        assert_eq!(validate(&g, &ns), Err(GrudgeError::SelfDrop("n1".into())));
        let mut rng = Rng::new(1);
        assert!(matches!(
            grudge(&Shape::Bridge, &nodes(2), &mut rng),
            Err(GrudgeError::TooFewNodes { .. })
        ));
    }

    #[test]
    fn one_isolates_exactly_one() {
        for n in [3, 5] {
            let ns = nodes(n);
            for seed in 0..20 {
                let g = grudge(&Shape::One, &ns, &mut Rng::new(seed)).unwrap();
                let alone: Vec<_> = ns.iter().filter(|a| sees(&g, &ns, a) == 1).collect();
                assert_eq!(alone.len(), 1);
                for a in &ns {
                    if a != alone[0] {
                        assert_eq!(sees(&g, &ns, a), n - 1);
                    }
                }
            }
        }
    }

    #[test]
    fn majority_and_halves() {
        for n in [3, 5] {
            let ns = nodes(n);
            for seed in 0..20 {
                for shape in [Shape::Majority, Shape::RandomHalves] {
                    let g = grudge(&shape, &ns, &mut Rng::new(seed)).unwrap();
                    let mut sizes: Vec<usize> = ns.iter().map(|a| sees(&g, &ns, a)).collect();
                    sizes.sort();
                    let minority = (n - 1) / 2;
                    let mut want = vec![minority; minority];
                    want.extend(vec![n - minority; n - minority]);
                    assert_eq!(sizes, want, "{shape:?} n={n}");
                }
            }
        }
    }

    #[test]
    fn bridge_has_one_node_seeing_all() {
        for n in [3, 5] {
            let ns = nodes(n);
            let g = grudge(&Shape::Bridge, &ns, &mut Rng::new(7)).unwrap();
            let all: Vec<_> = ns.iter().filter(|a| sees(&g, &ns, a) == n).collect();
            assert_eq!(all.len(), 1);
            // Everyone else sees their half plus the bridge, never everything.
            for a in &ns {
                if a != all[0] {
                    assert!(sees(&g, &ns, a) < n);
                }
            }
        }
    }

    #[test]
    fn majorities_ring_on_five() {
        let ns = nodes(5);
        for seed in 0..20 {
            let g = grudge(&Shape::MajoritiesRing, &ns, &mut Rng::new(seed)).unwrap();
            let mut views = BTreeSet::new();
            for a in &ns {
                // symmetric on 5 nodes: each sees itself and two neighbours
                assert_eq!(sees(&g, &ns, a), 3);
                let view: BTreeSet<&String> = ns.iter().filter(|b| connected(&g, a, b)).collect();
                views.insert(view);
            }
            assert_eq!(views.len(), 5, "every node sees a different majority");
        }
    }

    #[test]
    fn majorities_ring_on_three_is_directional() {
        let ns = nodes(3);
        let g = grudge(&Shape::MajoritiesRing, &ns, &mut Rng::new(3)).unwrap();
        assert_eq!(g.len(), 3);
        for a in &ns {
            // Each node drops exactly one other node (a directed ring).
            assert_eq!(g[a].len(), 1);
        }
    }

    #[test]
    fn seeded() {
        let ns = nodes(5);
        let a = grudge(&Shape::RandomHalves, &ns, &mut Rng::new(42)).unwrap();
        let b = grudge(&Shape::RandomHalves, &ns, &mut Rng::new(42)).unwrap();
        assert_eq!(a, b);
    }
}
