//! Done when: loss of p% drops p% ± 10 points of 1,000 probes; a delay of D
//! ms raises the median round trip between two nodes by D ms ± 20%, on this
//! machine (no netem: the NFQUEUE fallback).

mod lab_common;

use faultline::lab::Lab;
use lab_common::*;

fn median_rtt(lab: &Lab) -> f64 {
    let (_, _, rtts) = ping(lab, "n1", "n2", 40, "0.02");
    assert!(rtts.len() >= 30, "too few replies: {rtts:?}");
    median(rtts)
}

#[test]
fn loss_and_delay_are_accurate() {
    let Some(_g) = guard("loss_and_delay_are_accurate") else {
        return;
    };
    let lab = up("netem", 3);
    let name = lab.name().to_string();

    for pct in [20u32, 50] {
        ok(&[
            "nemesis",
            "--name",
            &name,
            "loss",
            "--percent",
            &pct.to_string(),
            "n2",
        ]);
        let (sent, received, _) = ping(&lab, "n1", "n2", 1000, "0.002");
        let lost = 100.0 * (sent - received) as f64 / sent as f64;
        println!("loss {pct}%: measured {lost:.1}% of {sent} probes");
        assert!(
            (lost - pct as f64).abs() <= 10.0,
            "loss {pct}%: measured {lost:.1}%"
        );
        // The control node is exempt.
        let (_, r, _) = ping_from_control(&lab, "n2", 50);
        assert_eq!(r, 50, "control node lost packets under loss");
        ok(&["nemesis", "--name", &name, "heal"]);
    }
    let (sent, received, _) = ping(&lab, "n1", "n2", 200, "0.002");
    assert_eq!(sent, received, "loss after heal");

    // Delay: the userspace fallback here; check that it is the one in use.
    let base = median_rtt(&lab);
    for d in [30u64, 100] {
        let out = ok(&[
            "nemesis",
            "--name",
            &name,
            "delay",
            "--ms",
            &d.to_string(),
            "--jitter",
            "5",
            "n2",
        ]);
        assert!(
            out.contains("NFQUEUE") || out.contains("netem"),
            "mechanism not reported: {out}"
        );
        let with = median_rtt(&lab);
        let added = with - base;
        println!("delay {d} ms: median RTT {base:.3} -> {with:.3} ms (+{added:.1} ms)");
        assert!(
            (added - d as f64).abs() <= 0.2 * d as f64,
            "delay {d} ms added {added:.1} ms"
        );
    }
    let holder = Lab::open(&name).unwrap().state.delay_holder;
    ok(&["nemesis", "--name", &name, "heal"]);
    if let Some(h) = holder {
        assert!(!h.is_alive(), "delay holder still alive after heal");
    }
    let after = median_rtt(&lab);
    assert!(
        after < base + 5.0,
        "RTT after heal {after} ms (base {base})"
    );

    // Bad input.
    err2(
        &["nemesis", "--name", &name, "loss", "--percent", "150", "n2"],
        &["150"],
    );
    err2(
        &["nemesis", "--name", &name, "loss", "--percent", "10", "n7"],
        &["n7"],
    );
    err2(
        &[
            "nemesis", "--name", &name, "delay", "--ms", "10", "--jitter", "20", "n2",
        ],
        &["jitter"],
    );
    down(&lab);
    assert_clean();
}

fn ping_from_control(lab: &Lab, to: &str, count: usize) -> (usize, usize, Vec<f64>) {
    let t = lab.node(to).unwrap();
    let o = std::process::Command::new(faultline::lab::sys::find_tool("ping").unwrap())
        .args(["-n", "-c", &count.to_string(), "-i", "0.005", "-W", "1"])
        .arg(t.ip.to_string())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    let received = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    (count, received, Vec::new())
}
