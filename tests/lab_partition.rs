//! Done when: for every partition shape on 3 and 5 nodes, a TCP connection
//! test between every ordered pair of nodes matches the grudge exactly; after
//! `heal` every pair connects again; the control node reaches every node
//! throughout. An invalid grudge is refused and changes nothing.

mod lab_common;

use faultline::lab::net::{CHAIN_PARTITION, NODE_CHAINS, NODE_INPUT, NODE_TABLE};
use faultline::lab::nft::{self, Nft};

use faultline::nemesis::grudge::{Grudge, connected};
use lab_common::*;

const PORT: u16 = 7000;

fn check_shapes(name: &str, n: usize) {
    let lab = up(name, n);
    echo_everywhere(&lab, PORT);
    let all = matrix(&lab, PORT);
    assert!(all.values().all(|&c| c), "before any fault: {all:?}");
    control_reaches_all(&lab, PORT).expect("control before faults");
    let shapes = [
        "one",
        "majority",
        "random-halves",
        "majorities-ring",
        "bridge",
        r#"{"n1":["n2"]}"#,
        r#"[["n1","n2"],["n3"]]"#,
    ];
    for (i, shape) in shapes.iter().enumerate() {
        let out = ok(&[
            "nemesis",
            "--name",
            name,
            "partition",
            shape,
            "--seed",
            &i.to_string(),
        ]);
        let g: Grudge = serde_json::from_str(out.trim()).expect("grudge printed as JSON");
        let m = matrix(&lab, PORT);
        for ((a, b), c) in &m {
            assert_eq!(
                *c,
                connected(&g, a, b),
                "{n} nodes, shape {shape}: {a} -> {b} (grudge {g:?}, matrix {m:?})"
            );
        }
        if !shape.starts_with('{') {
            assert!(
                m.values().any(|c| !c),
                "{shape} on {n} nodes cut nothing: {g:?}"
            );
        }
        control_reaches_all(&lab, PORT).unwrap_or_else(|e| panic!("{shape}: {e}"));
        ok(&["nemesis", "--name", name, "heal"]);
        let m = matrix(&lab, PORT);
        assert!(m.values().all(|&c| c), "after heal of {shape}: {m:?}");
        control_reaches_all(&lab, PORT).expect("control after heal");
    }
    // An invalid grudge is refused before anything changes.
    let out = ok(&["nemesis", "--name", name, "partition", "one", "--seed", "5"]);
    let g: Grudge = serde_json::from_str(out.trim()).expect("grudge");
    err2(
        &["nemesis", "--name", name, "partition", r#"{"n1":["n9"]}"#],
        &["n9"],
    );
    err2(
        &["nemesis", "--name", name, "partition", "triangle"],
        &["triangle"],
    );
    err2(
        &["nemesis", "--name", name, "partition", "{not json"],
        &["JSON"],
    );
    let m = matrix(&lab, PORT);
    for ((a, b), c) in &m {
        assert_eq!(*c, connected(&g, a, b), "after refused grudges: {a} -> {b}");
    }
    // Only faultline's chain holds the rules.
    let node = &lab.nodes()[0];
    let mut n = Nft::open_in(&node.netns).unwrap();
    let input = n.rules(nft::IPV4, NODE_TABLE, NODE_INPUT).unwrap();
    assert_eq!(
        input
            .iter()
            .map(|r| r.jump.as_deref().unwrap_or("-"))
            .collect::<Vec<_>>(),
        NODE_CHAINS,
        "the input chain only jumps to faultline's chains: {input:?}"
    );
    let tables: std::collections::BTreeSet<String> =
        n.chains().unwrap().into_iter().map(|c| c.table).collect();
    assert_eq!(tables.len(), 1, "only faultline's table: {tables:?}");
    let part = n.rules(nft::IPV4, NODE_TABLE, CHAIN_PARTITION).unwrap();
    assert_eq!(
        part.len(),
        g.get(&node.name).map_or(0, |v| v.len()),
        "one drop rule per peer cut off from {}: {part:?}",
        node.name
    );
    down(&lab);
}

#[test]
fn partitions_match_grudges_on_3_and_5_nodes() {
    let Some(_g) = guard("partitions_match_grudges_on_3_and_5_nodes") else {
        return;
    };
    check_shapes("part3", 3);
    check_shapes("part5", 5);
    assert_clean();
}
