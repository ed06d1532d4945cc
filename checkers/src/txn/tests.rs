//! Tests of the transactional checker: a valid and an invalid history per
//! anomaly class, each written as one transaction per line.

use serde_json::{Value, json};

use super::*;
use crate::format::{self, Format};

/// One transaction: process, outcome (`ok`, `fail`, `info`), micro-ops as
/// completed (reads are `null` in the invocation).
type T = (i64, &'static str, Value);

/// A history where each transaction completes before the next starts.
fn serial(txns: &[T]) -> History {
    let spans: Vec<(usize, usize)> = (0..txns.len()).map(|i| (2 * i, 2 * i + 1)).collect();
    build(txns, &spans)
}

/// A history where every transaction is concurrent with every other (all
/// invoked, then all completed): no real-time order.
fn concurrent(txns: &[T]) -> History {
    let n = txns.len();
    let spans: Vec<(usize, usize)> = (0..n).map(|i| (i, n + i)).collect();
    build(txns, &spans)
}

/// Events at the given (invoke, complete) positions.
fn build(txns: &[T], spans: &[(usize, usize)]) -> History {
    let mut events: Vec<(usize, String)> = Vec::new();
    for ((p, outcome, value), &(a, b)) in txns.iter().zip(spans) {
        let invoke: Vec<Value> = value
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                if m[0] == "r" {
                    json!(["r", m[1], null])
                } else {
                    m.clone()
                }
            })
            .collect();
        events.push((
            a,
            json!({"process": p, "type": "invoke", "f": "txn", "value": invoke}).to_string(),
        ));
        events.push((
            b,
            json!({"process": p, "type": outcome, "f": "txn", "value": value}).to_string(),
        ));
    }
    events.sort();
    let text: String = events.into_iter().map(|(_, l)| l + "\n").collect();
    format::read_from("test", text.as_bytes(), Format::Json)
        .unwrap()
        .0
}

fn run(h: &History, models: &[Model]) -> TxnReport {
    let model = TxnModel::infer(h).unwrap();
    check(
        h,
        &TxnOptions {
            model,
            models: models.to_vec(),
            deadline: None,
            memory_limit: usize::MAX,
        },
    )
    .unwrap()
}

fn types(r: &TxnReport) -> Vec<String> {
    r.anomaly_counts.keys().cloned().collect()
}

/// Checks for serializability; asserts the anomaly types found.
fn expect(h: &History, want: &[&str]) -> TxnReport {
    let r = run(h, &[Model::Serializable]);
    assert_eq!(types(&r), want, "{:#?}", r.anomalies);
    assert_eq!(r.valid == Validity::Valid, want.is_empty());
    r
}

fn holds(r: &TxnReport, m: Model) -> Validity {
    r.models.iter().find(|v| v.model == m).unwrap().valid
}

#[test]
fn g0_write_cycle() {
    let base = |y: Value| {
        concurrent(&[
            (0, "ok", json!([["append", "x", 1], ["append", "y", 1]])),
            (1, "ok", json!([["append", "x", 2], ["append", "y", 2]])),
            (2, "ok", json!([["r", "x", [1, 2]], ["r", "y", y]])),
        ])
    };
    let r = expect(&base(json!([2, 1])), &["G0"]);
    assert_eq!(holds(&r, Model::ReadUncommitted), Validity::Invalid);
    let c = r.anomalies.iter().find(|a| a.kind.name() == "G0").unwrap();
    assert_eq!(c.cycle.len(), 2);
    assert!(c.cycle.iter().all(|e| e.kind == "ww"));
    assert!(
        c.cycle[0].why.contains("before") && c.cycle[0].why.contains("because T"),
        "{}",
        c.cycle[0].why
    );
    expect(&base(json!([1, 2])), &[]);
}

#[test]
fn g1a_aborted_read() {
    let h = |seen: Value| {
        serial(&[
            (0, "fail", json!([["append", "x", 1]])),
            (1, "ok", json!([["r", "x", seen]])),
        ])
    };
    let r = expect(&h(json!([1])), &["G1a"]);
    assert_eq!(holds(&r, Model::ReadUncommitted), Validity::Valid);
    assert_eq!(holds(&r, Model::ReadCommitted), Validity::Invalid);
    expect(&h(json!(null)), &[]);
}

#[test]
fn g1b_intermediate_read() {
    let h = |seen: Value| {
        concurrent(&[
            (0, "ok", json!([["append", "x", 1], ["append", "x", 2]])),
            (1, "ok", json!([["r", "x", seen]])),
        ])
    };
    expect(&h(json!([1])), &["G1b"]);
    expect(&h(json!([1, 2])), &[]);
}

#[test]
fn g1c_circular_information_flow() {
    let h = |seen: Value| {
        concurrent(&[
            (0, "ok", json!([["append", "x", 1], ["r", "y", [1]]])),
            (1, "ok", json!([["append", "y", 1], ["r", "x", seen]])),
        ])
    };
    let r = expect(&h(json!([1])), &["G1c"]);
    let c = &r.anomalies[0];
    assert!(c.cycle.iter().all(|e| e.kind == "wr"));
    assert!(
        c.cycle[0].why.contains("which ends with"),
        "{}",
        c.cycle[0].why
    );
    expect(&h(json!(null)), &[]);
}

#[test]
fn g_single_read_skew() {
    let h = |x: Value| {
        concurrent(&[
            (0, "ok", json!([["append", "x", 1], ["append", "y", 1]])),
            (1, "ok", json!([["r", "x", x], ["r", "y", [1, 2]]])),
            (2, "ok", json!([["append", "x", 2], ["append", "y", 2]])),
            (3, "ok", json!([["r", "x", [1, 2]]])),
        ])
    };
    let r = expect(&h(json!([1])), &["G-single", "fractured-read"]);
    assert_eq!(holds(&r, Model::ReadCommitted), Validity::Valid);
    assert_eq!(holds(&r, Model::SnapshotIsolation), Validity::Invalid);
    assert_eq!(r.strongest, vec![Model::ReadCommitted]);
    expect(&h(json!([1, 2])), &[]);
}

#[test]
fn g_nonadjacent() {
    let h = |w: Value| {
        concurrent(&[
            (0, "ok", json!([["r", "x", null], ["r", "w", w]])),
            (1, "ok", json!([["append", "x", 1], ["append", "y", 1]])),
            (2, "ok", json!([["r", "y", [1]], ["r", "z", null]])),
            (3, "ok", json!([["append", "z", 1], ["append", "w", 1]])),
            (4, "ok", json!([["r", "x", [1]], ["r", "z", [1]]])),
        ])
    };
    let r = expect(&h(json!([1])), &["G-nonadjacent"]);
    assert_eq!(r.anomalies[0].cycle.len(), 4);
    assert_eq!(holds(&r, Model::SnapshotIsolation), Validity::Invalid);
    expect(&h(json!(null)), &[]);
}

#[test]
fn g2_item_write_skew() {
    let h = |y: Value| {
        concurrent(&[
            (0, "ok", json!([["r", "x", null], ["append", "y", 1]])),
            (1, "ok", json!([["r", "y", y], ["append", "x", 1]])),
            (2, "ok", json!([["r", "x", [1]], ["r", "y", [1]]])),
        ])
    };
    let r = expect(&h(json!(null)), &["G2-item"]);
    assert_eq!(holds(&r, Model::SnapshotIsolation), Validity::Valid);
    assert_eq!(holds(&r, Model::RepeatableRead), Validity::Invalid);
    expect(&h(json!([1])), &[]);
}

#[test]
fn lost_update() {
    let h = |second: Value| {
        concurrent(&[
            (0, "ok", json!([["r", "x", null], ["append", "x", 1]])),
            (1, "ok", json!([["r", "x", second], ["append", "x", 2]])),
            (2, "ok", json!([["r", "x", [1, 2]]])),
        ])
    };
    expect(&h(json!(null)), &["G-single", "lost-update"]);
    expect(&h(json!([1])), &[]);
}

#[test]
fn internal_inconsistency() {
    let h = |seen: Value| serial(&[(0, "ok", json!([["append", "x", 1], ["r", "x", seen]]))]);
    let r = expect(&h(json!([])), &["internal"]);
    assert_eq!(holds(&r, Model::ReadCommitted), Validity::Valid);
    assert_eq!(holds(&r, Model::ReadAtomic), Validity::Invalid);
    expect(&h(json!([1])), &[]);
}

#[test]
fn dirty_update() {
    let h = |seen: Value| {
        serial(&[
            (0, "fail", json!([["append", "x", 1]])),
            (1, "ok", json!([["append", "x", 2]])),
            (2, "ok", json!([["r", "x", seen]])),
        ])
    };
    expect(&h(json!([1, 2])), &["G1a", "dirty-update"]);
    expect(&h(json!([2])), &[]);
}

#[test]
fn duplicate_and_garbage_elements() {
    let h = |seen: Value| {
        serial(&[
            (0, "ok", json!([["append", "x", 1]])),
            (1, "ok", json!([["r", "x", seen]])),
        ])
    };
    expect(&h(json!([1, 1])), &["duplicate-elements"]);
    expect(&h(json!([1, 5])), &["garbage-read"]);
    expect(&h(json!([1])), &[]);
}

#[test]
fn incompatible_order() {
    let h = |second: Value| {
        concurrent(&[
            (0, "ok", json!([["append", "x", 1]])),
            (1, "ok", json!([["append", "x", 2]])),
            (2, "ok", json!([["r", "x", [1, 2]]])),
            (3, "ok", json!([["r", "x", second]])),
        ])
    };
    expect(&h(json!([2, 1])), &["incompatible-order"]);
    expect(&h(json!([1])), &[]);
}

#[test]
fn realtime_and_process_variants() {
    // T0 completes, then T1 (another process, or the same) starts and
    // misses its append; T2 shows the append.
    let h = |seen: Value, p2: i64| {
        serial(&[
            (0, "ok", json!([["append", "x", 1]])),
            (p2, "ok", json!([["r", "x", seen]])),
            (5, "ok", json!([["r", "x", [1]]])),
        ])
    };
    let r = run(&h(json!(null), 1), &[Model::StrictSerializable]);
    assert_eq!(types(&r), ["G-single-realtime"]);
    assert_eq!(holds(&r, Model::Serializable), Validity::Valid);
    assert_eq!(holds(&r, Model::StrongSessionSerializable), Validity::Valid);
    assert_eq!(r.valid, Validity::Invalid);
    let r = run(&h(json!(null), 0), &[Model::StrongSessionSerializable]);
    assert_eq!(types(&r), ["G-single-process"]);
    assert_eq!(holds(&r, Model::Serializable), Validity::Valid);
    assert_eq!(r.valid, Validity::Invalid);
    let r = run(&h(json!([1]), 1), &[Model::StrictSerializable]);
    assert_eq!(r.valid, Validity::Valid);
    assert_eq!(r.strongest, vec![Model::StrictSerializable]);
}

#[test]
fn g1c_process_rules_out_causal() {
    // T0 (process 0) reads y from T3; then T1 (process 0) appends to x,
    // which T2 (process 1) reads before T3 (process 1) appends to y: a
    // cycle of wr and process edges. Real time is not checked here.
    let h = serial(&[
        (0, "ok", json!([["r", "y", [1]]])),
        (0, "ok", json!([["append", "x", 1]])),
        (1, "ok", json!([["r", "x", [1]]])),
        (1, "ok", json!([["append", "y", 1]])),
    ]);
    let r = run(&h, &[Model::StrongSessionSerializable]);
    assert_eq!(types(&r), ["G1c-process"], "{:#?}", r.anomalies);
    assert_eq!(holds(&r, Model::Causal), Validity::Invalid);
    assert_eq!(holds(&r, Model::Serializable), Validity::Valid);
}

#[test]
fn rw_register_anomalies() {
    let skew = |y: Value| {
        concurrent(&[
            (0, "ok", json!([["r", "x", null], ["w", "y", 1]])),
            (1, "ok", json!([["r", "y", y], ["w", "x", 1]])),
        ])
    };
    let r = expect(&skew(json!(null)), &["G2-item"]);
    assert_eq!(r.model, TxnModel::RwRegister);
    assert!(
        r.anomalies[0].cycle[0].why.contains("initial state"),
        "{}",
        r.anomalies[0].cycle[0].why
    );
    expect(&skew(json!(1)), &[]);
    let cyclic = |last: i64| {
        concurrent(&[
            (0, "ok", json!([["r", "x", 1], ["w", "x", 2]])),
            (1, "ok", json!([["r", "x", 2], ["w", "x", last]])),
        ])
    };
    let r = run(&cyclic(1), &[Model::Serializable]);
    assert!(
        types(&r).contains(&"cyclic-versions".to_string()),
        "{:?}",
        types(&r)
    );
    assert_eq!(r.valid, Validity::Invalid);
    let fractured = |y: Value| {
        concurrent(&[
            (0, "ok", json!([["w", "x", 1], ["w", "y", 1]])),
            (1, "ok", json!([["r", "x", 1], ["r", "y", y]])),
        ])
    };
    expect(&fractured(json!(null)), &["G-single", "fractured-read"]);
    expect(&fractured(json!(1)), &[]);
    let lost = |second: Value| {
        concurrent(&[
            (0, "ok", json!([["r", "x", null], ["w", "x", 1]])),
            (1, "ok", json!([["r", "x", second], ["w", "x", 2]])),
        ])
    };
    // Without a ww edge between the two writes, the cycle is two rw edges.
    expect(&lost(json!(null)), &["G2-item", "lost-update"]);
    expect(&lost(json!(1)), &[]);
    let aborted = |outcome: &'static str| {
        serial(&[
            (0, outcome, json!([["w", "x", 1], ["w", "x", 2]])),
            (1, "ok", json!([["r", "x", 1]])),
        ])
    };
    expect(&aborted("fail"), &["G1a"]);
    expect(&aborted("ok"), &["G1b"]);
}

#[test]
fn info_writes_count_when_read() {
    let h = serial(&[
        (0, "info", json!([["append", "x", 1]])),
        (1, "ok", json!([["r", "x", [1]]])),
    ]);
    expect(&h, &[]);
    let r = run(&h, &[Model::StrictSerializable]);
    assert_eq!(r.stats.indefinite, 1);
    assert_eq!(r.valid, Validity::Valid);
}

#[test]
fn malformed_transactions_are_errors() {
    let dup = serial(&[
        (0, "ok", json!([["append", "x", 1]])),
        (1, "ok", json!([["append", "x", 1]])),
    ]);
    let opts = TxnOptions {
        model: TxnModel::ListAppend,
        models: vec![Model::Serializable],
        deadline: None,
        memory_limit: usize::MAX,
    };
    let e = check(&dup, &opts).unwrap_err();
    assert!(e.reason.contains("appended to key x twice"), "{}", e.reason);
    assert_eq!(e.line, 3);
    let bad = serial(&[(0, "ok", json!([["incr", "x", 1]]))]);
    let e = check(&bad, &opts).unwrap_err();
    assert!(e.reason.contains("unknown micro-op"), "{}", e.reason);
    let wrong = serial(&[(0, "ok", json!([["w", "x", 1]]))]);
    let e = check(&wrong, &opts).unwrap_err();
    assert!(e.reason.contains("does not belong"), "{}", e.reason);
    let read = serial(&[(0, "ok", json!([["r", "x", 3]]))]);
    let e = check(&read, &opts).unwrap_err();
    assert!(e.reason.contains("a list or null"), "{}", e.reason);
}

#[test]
fn out_of_time_is_unknown_never_valid() {
    let h = serial(&[(0, "ok", json!([["append", "x", 1]]))]);
    let r = check(
        &h,
        &TxnOptions {
            model: TxnModel::ListAppend,
            models: vec![Model::Serializable],
            deadline: Some(std::time::Instant::now()),
            memory_limit: usize::MAX,
        },
    )
    .unwrap();
    assert_eq!(r.valid, Validity::Unknown);
    assert!(r.unknown_reason.is_some());
    let r = check(
        &h,
        &TxnOptions {
            model: TxnModel::ListAppend,
            models: vec![Model::Serializable],
            deadline: None,
            memory_limit: 1,
        },
    )
    .unwrap();
    assert_eq!(r.valid, Validity::Unknown);
    assert!(r.unknown_reason.unwrap().contains("memory"));
}

#[test]
fn svg_draws_each_edge() {
    let h = concurrent(&[
        (0, "ok", json!([["r", "x", null], ["append", "y", 1]])),
        (1, "ok", json!([["r", "y", null], ["append", "x", 1]])),
        (2, "ok", json!([["r", "x", [1]], ["r", "y", [1]]])),
    ]);
    let r = run(&h, &[Model::Serializable]);
    let svg = svg::cycle_svg(&r.anomalies[0]).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("stroke-width=\"2\"").count(), 2);
    assert_eq!(svg.matches("<circle").count(), 2);
    assert!(svg.contains("G2-item"));
}

#[test]
fn realtime_points_reach_exactly_the_later_transactions() {
    // Random intervals: a reaches b through completion points exactly when
    // a completed before b was invoked.
    let mut seed = 11u64;
    let mut rand = |m: usize| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as usize % m
    };
    for _ in 0..200 {
        let n = 2 + rand(7);
        // Distinct positions 0..2n, shuffled, paired into (invoke, complete).
        let mut pos: Vec<usize> = (0..2 * n).collect();
        for i in (1..pos.len()).rev() {
            pos.swap(i, rand(i + 1));
        }
        let spans: Vec<(usize, usize)> = (0..n)
            .map(|i| {
                (
                    pos[2 * i].min(pos[2 * i + 1]),
                    pos[2 * i].max(pos[2 * i + 1]),
                )
            })
            .collect();
        let txns: Vec<T> = (0..n)
            .map(|i| (i as i64, "ok", json!([["append", "x", i]])))
            .collect();
        let h = build(&txns, &spans);
        let t = micro::Txns::read(&h, TxnModel::ListAppend).unwrap();
        let mut edges = graph::Edges::default();
        let points = edges.add_realtime_order(&t);
        let total = n + points;
        let mut adj = vec![Vec::new(); total];
        for &(a, b, _) in &edges.0 {
            adj[a as usize].push(b as usize);
        }
        for a in 0..n {
            let mut seen = vec![false; total];
            let mut stack = adj[a].clone();
            while let Some(x) = stack.pop() {
                if !std::mem::replace(&mut seen[x], true) {
                    stack.extend(adj[x].iter().copied());
                }
            }
            for (b, reached) in seen.iter().take(n).enumerate() {
                let (oa, ob) = (&h.ops[t.txns[a].op as usize], &h.ops[t.txns[b].op as usize]);
                let before = oa.complete_pos().unwrap() < ob.invoke_pos();
                assert_eq!(*reached, before, "{a} -> {b} in {spans:?}");
            }
        }
    }
}

/// A run's results (the plan's written form) carry each cycle's drawing,
/// so `report.html` draws it; a valid history has none to draw.
#[test]
fn the_plan_writes_the_drawing_of_each_cycle() {
    let base = |y: Value| {
        concurrent(&[
            (0, "ok", json!([["append", "x", 1], ["append", "y", 1]])),
            (1, "ok", json!([["append", "x", 2], ["append", "y", 2]])),
            (2, "ok", json!([["r", "x", [1, 2]], ["r", "y", y]])),
        ])
    };
    let plan = crate::plan::Plan::for_workload(crate::workload::WorkloadKind::ListAppend);
    let budget = crate::checker::Budget::new();
    let written = plan.run(&base(json!([2, 1])), &budget).unwrap().to_json();
    let anomalies = written["isolation"]["anomalies"].as_array().unwrap();
    let g0 = anomalies.iter().find(|a| a["type"] == "G0").unwrap();
    assert!(g0["svg"].as_str().unwrap().starts_with("<svg"), "{g0:#}");
    let written = plan.run(&base(json!([1, 2])), &budget).unwrap().to_json();
    assert!(
        written["isolation"]["anomalies"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}
