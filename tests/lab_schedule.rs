//! The library the runner drives: a schedule's windows applied with
//! `nemesis::apply` and undone with `ActiveFault::end`, with the history
//! events for each.

mod lab_common;

use std::net::SocketAddr;
use std::time::Duration;

use faultline::nemesis::grudge::connected;
use faultline::nemesis::schedule::{Fault, Schedule, events};
use faultline::nemesis::{self, apply};
use lab_common::*;

#[test]
fn schedule_windows_apply_and_end() {
    let Some(_g) = guard("schedule_windows_apply_and_end") else {
        return;
    };
    let lab = up("sched", 3);
    echo_everywhere(&lab, 7000);
    let s = Schedule::timeline_from_json(
        r#"[{"at": 0, "for": 1, "fault": {"fault": "partition", "shape": "majority"}},
            {"at": 1, "for": 1, "fault": {"fault": "delay", "ms": 20, "target": {"nodes": ["n2"]}}},
            {"at": 2, "for": 1, "fault": {"fault": "pause", "target": {"nodes": ["n1"]}}},
            {"at": 3, "for": 1, "fault": {"fault": "kill", "target": "one"}}]"#,
    )
    .unwrap();
    let names: Vec<String> = lab.nodes().iter().map(|n| n.name.clone()).collect();
    let windows = s.windows(&names, &[], Duration::from_secs(10), 7).unwrap();
    assert_eq!(events(&windows).len(), 8);
    let base = median(ping(&lab, "n1", "n2", 20, "0.01").2);
    for w in &windows {
        let active = apply(&lab, &w.fault, 1).unwrap();
        match &w.fault {
            Fault::Partition { grudge } => {
                for ((a, b), c) in matrix(&lab, 7000) {
                    assert_eq!(c, connected(grudge, &a, &b), "{a} -> {b}");
                }
            }
            Fault::Delay { .. } => {
                let rtt = median(ping(&lab, "n1", "n2", 20, "0.01").2);
                assert!(
                    (rtt - base - 20.0).abs() <= 4.0,
                    "delay 20 ms: rtt {rtt} (base {base})"
                );
            }
            Fault::Pause { nodes } | Fault::Kill { nodes } => {
                let ip = lab.node(&nodes[0]).unwrap().ip;
                assert!(
                    echo_once(SocketAddr::from((ip, 7000)), Duration::from_millis(400)).is_err()
                );
            }
            Fault::Loss { .. } | Fault::Clock { .. } => unreachable!(),
        }
        active.end(&lab).unwrap();
        // A killed server is restarted by `end`: it may take a moment to
        // listen again on a loaded machine.
        wait_echo(&lab, 7000);
        let m = matrix(&lab, 7000);
        assert!(
            m.values().all(|&c| c),
            "after ending {}: {m:?}",
            w.fault.name()
        );
    }
    nemesis::heal(&lab).unwrap();
    down(&lab);
    assert_clean();
}
