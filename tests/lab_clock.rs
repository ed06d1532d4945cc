//! Clock faults on a real process: a server started with
//! `faultline lab run --fake-clock` reads its wall clock from its node's
//! timestamp file (libfaketime), and `faultline nemesis clock` bumps, skews,
//! strobes and resets it. The process here writes `date +%s%3N` (its faked
//! time, a new process each time, as every child of a faked server is) to a
//! file; the test compares it with the real clock.

mod lab_common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lab_common::*;

/// The loop that records the process's idea of the time, in ms.
const CLOCK_LOOP: &str = "while :; do date +%s%3N > now.tmp && mv now.tmp now; sleep 0.02; done";

fn real_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

/// How far the node's faked clock is from the real one, in ms, as the
/// next sample written after this call shows.
fn offset(node_dir: &Path) -> i64 {
    let f = node_dir.join("now");
    let after = real_ms();
    let t0 = Instant::now();
    loop {
        let seen = std::fs::metadata(&f)
            .and_then(|m| m.modified())
            .ok()
            .map(|m| m.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as i64);
        if let Some(m) = seen
            && m > after + 30
            && let Ok(t) = std::fs::read_to_string(&f)
            && let Ok(v) = t.trim().parse::<i64>()
        {
            return v - m;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no fresh sample in {}",
            f.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn near(got: i64, want: i64, what: &str) {
    assert!(
        (got - want).abs() < 1_000,
        "{what}: clock {got} ms off, wanted about {want}"
    );
}

fn shared_objects(lab: &str) -> Vec<PathBuf> {
    vec![
        PathBuf::from(format!("/dev/shm/faultline-{lab}-faketime")),
        PathBuf::from(format!("/dev/shm/sem.faultline-{lab}-faketime")),
    ]
}

fn per_process_objects() -> Vec<String> {
    std::fs::read_dir("/dev/shm")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains("faketime_shm_") || n.contains("faketime_sem_"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn bump_skew_strobe_and_reset_move_a_faked_clock() {
    let Some(_g) = guard("bump_skew_strobe_and_reset_move_a_faked_clock") else {
        return;
    };
    let before = per_process_objects();
    let lab = up("clk", 2);
    let name = lab.name().to_string();
    for (node, fake) in [("n1", true), ("n2", false)] {
        let mut args = vec!["lab", "run", "--detach", "--name", &name];
        if fake {
            args.push("--fake-clock");
        }
        args.extend([node, "--", "sh", "-c", CLOCK_LOOP]);
        ok(&args);
    }
    let n1 = lab.dir().join("n1");
    let n2 = lab.dir().join("n2");
    let rc = n1.join("faketime.rc");
    assert_eq!(
        std::fs::read_to_string(&rc).expect("timestamp file"),
        "+0\n"
    );
    assert!(!n2.join("faketime.rc").exists(), "n2 was not asked to fake");
    near(offset(&n1), 0, "n1 at start");

    let nem = |args: &[&str]| {
        let mut a = vec!["nemesis", "--name", name.as_str(), "clock"];
        a.extend_from_slice(args);
        ok(&a)
    };
    let out = nem(&["bump", "--ms", "100000", "n1"]);
    assert!(out.contains("now 100000 ms off"), "{out}");
    assert_eq!(std::fs::read_to_string(&rc).expect("rc"), "+100.000\n");
    near(offset(&n1), 100_000, "n1 bumped +100 s");
    // Bumps add up.
    nem(&["bump", "--ms", "-250000", "n1"]);
    near(offset(&n1), -150_000, "n1 bumped -250 s more");
    nem(&["skew", "--ms", "30000", "n1"]);
    near(offset(&n1), 30_000, "n1 skewed +30 s");
    // Another node's clock is its own.
    near(offset(&n2), 0, "n2 unfaked");
    nem(&["reset", "n1"]);
    assert_eq!(std::fs::read_to_string(&rc).expect("rc"), "+0\n");
    near(offset(&n1), 0, "n1 reset");

    // A strobe flips the clock back and forth while it runs, then resets.
    let lab_name = name.clone();
    let handle = std::thread::spawn(move || {
        std::process::Command::new(bin())
            .args([
                "nemesis", "--name", &lab_name, "clock", "strobe", "--ms", "100000", "--period",
                "100", "--for", "2", "n1",
            ])
            .output()
    });
    let mut seen = std::collections::BTreeSet::new();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(1500) {
        let o = offset(&n1);
        seen.insert(if (o - 100_000).abs() < 1_000 {
            "off"
        } else if o.abs() < 1_000 {
            "real"
        } else {
            "other"
        });
    }
    let o = handle.join().expect("strobe thread").expect("strobe ran");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{text}");
    assert!(text.contains("flips"), "{text}");
    assert!(
        seen.contains("off") && seen.contains("real"),
        "the strobe showed {seen:?}"
    );
    near(offset(&n1), 0, "n1 after the strobe");

    // Bad input: a node without a faked clock, numbers out of range.
    err2(
        &[
            "nemesis", "--name", &name, "clock", "bump", "--ms", "5", "n2",
        ],
        &["n2", "no faked clock"],
    );
    err2(
        &[
            "nemesis", "--name", &name, "clock", "bump", "--ms", "0", "n1",
        ],
        &["non-zero"],
    );
    err2(
        &[
            "nemesis", "--name", &name, "clock", "strobe", "--ms", "5", "--period", "0", "--for",
            "1", "n1",
        ],
        &["period"],
    );

    // `heal` resets clocks too.
    nem(&["skew", "--ms", "-20000", "n1"]);
    ok(&["nemesis", "--name", &name, "heal"]);
    assert_eq!(std::fs::read_to_string(&rc).expect("rc"), "+0\n");

    // The lab's shared objects exist while it is up, and only they: the
    // servers made no per-process ones.
    for p in shared_objects(&name) {
        assert!(p.exists(), "{} while the lab is up", p.display());
    }
    assert_eq!(
        per_process_objects(),
        before,
        "per-process libfaketime objects"
    );
    down(&lab);
    for p in shared_objects(&name) {
        assert!(!p.exists(), "{} left after lab down", p.display());
    }
    // Objects of a lab that no state file records (a crash) go with
    // `faultline clean`.
    faultline::lab::fake_clock::FakeClock::find()
        .expect("libfaketime")
        .prepare("clkgone")
        .expect("prepare");
    let out = ok(&["clean"]);
    assert!(out.contains("libfaketime objects of lab clkgone"), "{out}");
    for p in shared_objects("clkgone") {
        assert!(!p.exists(), "{} left after clean", p.display());
    }
    assert_clean();
}
