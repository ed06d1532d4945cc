//! `faultline run` under abuse (issue 15): its clients cannot leave the lab,
//! `clean` leaves live labs alone, and the run keeps its promises when
//! misused. Root; real labs; serialised with the other lab tests.

mod lab_common;
mod stores_common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use faultline::lab::{LabState, sys};
use lab_common::{bin, guard};
use serde_json::Value;
use stores_common::{count, need, text};

/// Starts `faultline run` in the background.
fn spawn_run(store: &Path, args: &[&str]) -> Child {
    stores_common::run_command(store, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting faultline run")
}

/// The lab of the run with process id `pid`.
fn lab_name(pid: u32) -> String {
    format!("r{}", pid % 10_000_000)
}

/// What is left of the lab `lab` (namespaces, links, chains, state file).
/// Only this lab's: other helpers' labs may come and go meanwhile.
fn leftovers_of(lab: &str) -> Vec<String> {
    let names = [
        format!("fl-{lab}-"),
        format!("FL-{lab}-"),
        format!("/{lab}.json"),
    ];
    lab_common::leftovers()
        .into_iter()
        .filter(|l| names.iter().any(|n| l.contains(n.as_str())))
        .collect()
}

/// Asserts that nothing of the run `pid`'s lab is left.
fn assert_run_clean(pid: u32) {
    let left = leftovers_of(&lab_name(pid));
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// The run's lab state, once the lab is complete.
fn lab_state(pid: u32) -> Option<LabState> {
    let p = Path::new("/run/faultline").join(format!("{}.json", lab_name(pid)));
    let s: LabState = serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()?;
    s.complete.then_some(s)
}

/// The history file of the only run in `store`.
fn history_path(store: &Path) -> Option<PathBuf> {
    for name in std::fs::read_dir(store).ok()?.flatten() {
        if name.file_name() == "latest" || !name.path().is_dir() {
            continue;
        }
        for run in std::fs::read_dir(name.path()).ok()?.flatten() {
            let h = run.path().join("history.jsonl");
            if h.is_file() {
                return Some(h);
            }
        }
    }
    None
}

fn history_lines(store: &Path) -> Vec<Value> {
    history_path(store)
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Waits until the run's workload has `n` ok operations.
fn wait_for_oks(child: &mut Child, store: &Path, n: usize, within: Duration) -> LabState {
    let t0 = Instant::now();
    loop {
        if let Some(st) = lab_state(child.id()) {
            let h = history_lines(store);
            if count(&h, |e| e["type"] == "ok") >= n {
                return st;
            }
        }
        if let Ok(Some(s)) = child.try_wait() {
            panic!("the run ended early ({s})");
        }
        assert!(
            t0.elapsed() < within,
            "no {n} ok operations within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits for the child to exit (bounded); kills it and fails otherwise.
fn wait_bounded(mut child: Child, within: Duration) -> std::process::Output {
    let t0 = Instant::now();
    while child.try_wait().expect("try_wait").is_none() {
        if t0.elapsed() > within {
            let _ = child.kill();
            let o = child.wait_with_output().expect("output");
            panic!("the run did not end within {within:?}: {}", text(&o));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

/// A trap for leaks: a veth pair whose other end sits, up and without any
/// address, in a namespace of the test's own, and a route for the lab's
/// subnet through it behind the lab's own route. Once the bridge is gone,
/// anything sent to the subnet from the root namespace (a SYN, or the ARP
/// request before it) goes into the trap, where it is counted and answered
/// by nobody, so the test itself cannot leak.
struct LeakTrap {
    link: String,
    netns: String,
}

fn ip(args: &[&str]) {
    let mut c = sys::tool("ip").expect("ip");
    c.args(args);
    sys::run(c, None).unwrap_or_else(|e| panic!("ip {args:?}: {e}"));
}

impl LeakTrap {
    fn new(subnet: std::net::Ipv4Addr) -> LeakTrap {
        let trap = LeakTrap {
            link: "fltleak0".into(),
            netns: "fltleak".into(),
        };
        trap.remove();
        ip(&["netns", "add", &trap.netns]);
        ip(&[
            "link",
            "add",
            &trap.link,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &trap.netns,
        ]);
        ip(&["-n", &trap.netns, "link", "set", "eth0", "up"]);
        // No IPv6 chatter (router solicitations, MLD): the trap counts only
        // what is sent towards the lab's subnet.
        let v6 = format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", trap.link);
        if Path::new(&v6).exists() {
            std::fs::write(&v6, "1").expect("disabling IPv6 on the trap");
        }
        ip(&["link", "set", &trap.link, "up"]);
        ip(&[
            "route",
            "add",
            &format!("{subnet}/24"),
            "dev",
            &trap.link,
            "metric",
            "4242",
        ]);
        trap
    }

    /// Packets sent into the trap so far.
    fn sent(&self) -> u64 {
        std::fs::read_to_string(format!(
            "/sys/class/net/{}/statistics/tx_packets",
            self.link
        ))
        .expect("tx_packets")
        .trim()
        .parse()
        .expect("a number")
    }

    fn remove(&self) {
        let ip = sys::find_tool("ip").expect("ip");
        let _ = Command::new(&ip).args(["link", "del", &self.link]).output();
        let _ = Command::new(&ip)
            .args(["netns", "del", &self.netns])
            .output();
    }
}

impl Drop for LeakTrap {
    fn drop(&mut self) {
        self.remove();
    }
}

fn delete_link(name: &str) {
    ip(&["link", "del", name]);
}

/// The bridge disappears mid-run: nothing any client sends may go anywhere
/// else, and the run still ends and cleans up.
fn bridge_removed_mid_run(args: &[&str], what: &str) {
    let store = tempfile::tempdir().expect("tempdir");
    let mut child = spawn_run(store.path(), args);
    let pid = child.id();
    let st = wait_for_oks(&mut child, store.path(), 50, Duration::from_secs(60));
    let trap = LeakTrap::new(st.subnet);
    assert_eq!(trap.sent(), 0, "{what}: the lab's own route comes first");
    delete_link(&st.bridge);
    // What was recorded until now may have completed before the deletion
    // (the history is written every 50 ms).
    std::thread::sleep(Duration::from_millis(500));
    let before = history_lines(store.path()).len();
    std::thread::sleep(Duration::from_secs(3));
    let sent = trap.sent();
    let o = wait_bounded(child, Duration::from_secs(90));
    assert_eq!(
        sent,
        0,
        "{what}: {sent} packets for the lab's subnet left through another route after the bridge went: {}",
        text(&o)
    );
    assert_eq!(trap.sent(), 0, "{what}: nothing leaked later either");
    let h = history_lines(store.path());
    let after: Vec<&Value> = h[before..]
        .iter()
        .filter(|e| e["process"] != "nemesis" && e["type"] != "invoke")
        .collect();
    assert!(!after.is_empty(), "{what}: the clients went on trying");
    assert!(
        after
            .iter()
            .filter(|e| e["phase"].is_null())
            .all(|e| e["type"] != "ok"),
        "{what}: operations succeeded without the bridge"
    );
    drop(trap);
    assert_ne!(o.status.code(), Some(101), "{what}: {}", text(&o));
    assert_run_clean(pid);
}

#[test]
fn clients_cannot_leave_the_lab_when_its_bridge_is_removed() {
    let Some(_g) = guard("clients_cannot_leave_the_lab_when_its_bridge_is_removed") else {
        return;
    };
    let common = [
        "--nodes",
        "2",
        "--keys",
        "1",
        "--nemesis",
        "none",
        "--time-limit",
        "6",
        "--quiet",
        "0",
        "--concurrency",
        "4",
    ];
    bridge_removed_mid_run(&common, "built-in clients");
    need("python3", "apt-get install -y python3");
    let adapter =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/adapters/builtin_adapter.py");
    let command = format!("command=python3 {}", adapter.display());
    let mut args = common.to_vec();
    args.extend([
        "--db",
        "external",
        "--db-opt",
        &command,
        "--db-opt",
        "server=builtin",
    ]);
    bridge_removed_mid_run(&args, "external adapters");
}

#[test]
fn clean_leaves_a_live_run_alone() {
    let Some(_g) = guard("clean_leaves_a_live_run_alone") else {
        return;
    };
    let store = tempfile::tempdir().expect("tempdir");
    let mut child = spawn_run(
        store.path(),
        &[
            "--nodes",
            "2",
            "--nemesis",
            "none",
            "--time-limit",
            "5",
            "--quiet",
            "0",
        ],
    );
    let st = wait_for_oks(&mut child, store.path(), 10, Duration::from_secs(60));
    let o = Command::new(bin()).arg("clean").output().expect("clean");
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        out.contains(&format!("left lab {} alone", st.name)) && out.contains("--force"),
        "clean says it left the live lab alone: {out}"
    );
    assert!(
        sys::list_links().contains(&st.bridge),
        "the live lab's bridge is still there"
    );
    let o = wait_bounded(child, Duration::from_secs(60));
    assert_eq!(
        o.status.code(),
        Some(0),
        "the run was undisturbed: {}",
        text(&o)
    );
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?}: expected a number")),
        Err(_) => default,
    }
}

/// The data directory a run's lab would use.
fn data_dir(pid: u32) -> PathBuf {
    Path::new("/var/lib/faultline").join(lab_name(pid))
}

/// One signal point: when (ms after the start), which signal, and maybe a
/// second signal some time after the first.
#[derive(Debug)]
struct SignalPoint {
    phase: &'static str,
    after_ms: u64,
    first: nix::sys::signal::Signal,
    second: Option<(u64, nix::sys::signal::Signal)>,
}

/// The phases of the run below (3 nodes, 3 s, faults every second, quiet
/// 0.5 s) and the windows in which their signals land: set-up (lab and
/// store), the workload with its faults, and the end (quiet period, final
/// reads, teardown, check).
const PHASES: [(&str, u64, u64); 3] = [
    ("set-up", 0, 350),
    ("workload+faults", 500, 3_200),
    ("final reads+check", 3_300, 4_400),
];

fn signal_points(seed: u64, n: u64) -> Vec<SignalPoint> {
    use nix::sys::signal::Signal;
    let sigs = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP];
    let mut rng = faultline_workloads::rng::Rng::new(seed);
    (0..n)
        .map(|i| {
            // Every phase is hit once before any is hit twice.
            let (phase, lo, hi) = PHASES[((i + seed) % PHASES.len() as u64) as usize];
            SignalPoint {
                phase,
                after_ms: lo + rng.below(hi - lo),
                first: sigs[rng.below(3) as usize],
                second: (rng.below(3) == 0)
                    .then(|| (rng.below(1_500), sigs[rng.below(3) as usize])),
            }
        })
        .collect()
}

/// `faultline run` under TERM/INT/HUP at seeded random points of set-up,
/// workload, faults, final reads and check: each run ends within a bounded
/// time and leaves no namespace, link, chain, state file, process or data
/// directory. CI sends 4 signals (seed 15); `FAULTLINE_SIGNAL_POINTS=N` and
/// `FAULTLINE_SIGNAL_SEED=S` ask for more (see docs/run-safety.md).
#[test]
fn signals_at_random_points_leave_nothing_behind() {
    let Some(_g) = guard("signals_at_random_points_leave_nothing_behind") else {
        return;
    };
    let seed = env_u64("FAULTLINE_SIGNAL_SEED", 15);
    let n = env_u64("FAULTLINE_SIGNAL_POINTS", 4);
    let node_processes = format!("{} node", bin().display());
    for p in signal_points(seed, n) {
        println!("seed {seed}: signal in {}: {p:?}", p.phase);
        let store = tempfile::tempdir().expect("tempdir");
        let child = spawn_run(
            store.path(),
            &[
                "--nodes",
                "3",
                "--nemesis",
                "partition,kill,pause",
                "--nemesis-interval",
                "1",
                "--fault-duration",
                "0.6",
                "--time-limit",
                "3",
                "--quiet",
                "0.5",
                "--concurrency",
                "4",
                "--seed",
                &seed.to_string(),
            ],
        );
        let pid = child.id();
        let target = nix::unistd::Pid::from_raw(pid as i32);
        std::thread::sleep(Duration::from_millis(p.after_ms));
        let signalled = Instant::now();
        // The run may have finished already (then there is nothing to hit).
        let _ = nix::sys::signal::kill(target, p.first);
        if let Some((ms, sig)) = p.second {
            std::thread::sleep(Duration::from_millis(ms));
            let _ = nix::sys::signal::kill(target, sig);
        }
        let o = wait_bounded(child, Duration::from_secs(45));
        let took = signalled.elapsed();
        println!(
            "  exit {:?} {:.1} s after the signal",
            o.status.code(),
            took.as_secs_f64()
        );
        // A signal that lands before faultline's first instruction (while
        // the program loads) kills it; that is fine only if it had created
        // nothing yet.
        let created = std::fs::read_dir(store.path()).map_or(0, |d| d.count());
        assert!(
            matches!(o.status.code(), Some(0..=3)) || created == 0,
            "{p:?}: the run died instead of ending ({}): {}",
            o.status,
            text(&o)
        );
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(
            stderr.lines().filter(|l| l.contains("error")).count() <= 1,
            "{p:?}: {stderr}"
        );
        assert_run_clean(pid);
        assert!(
            stores_common::processes_with(&node_processes).is_empty(),
            "{p:?}: servers survived: {:?}",
            stores_common::processes_with(&node_processes)
        );
        assert!(
            !data_dir(pid).exists(),
            "{p:?}: the lab's data directory {} is left",
            data_dir(pid).display()
        );
    }
}
