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

/// Waits (60 s at most) until the run's history has `n` events that
/// `matches`; fails, naming `what`, if the run ends first or time runs out.
fn wait_for_events(
    child: &mut Child,
    store: &Path,
    n: usize,
    what: &str,
    matches: impl Fn(&Value) -> bool,
) {
    let t0 = Instant::now();
    while count(&history_lines(store), &matches) < n {
        assert!(t0.elapsed() < Duration::from_secs(60), "{what}");
        assert!(child.try_wait().expect("try_wait").is_none(), "ended early");
        std::thread::sleep(Duration::from_millis(20));
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

/// Writes an adapter script into `dir` and returns `command=sh SCRIPT`.
fn adapter_script(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).expect("write the adapter");
    format!("command=sh {}", p.display())
}

fn stderr_of(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts that `faultline run ARGS` is refused: exit 2, at most two lines
/// on stderr (the run's description and the error), the error saying
/// `says`, within 20 s (a refusal takes well under a second; 10.2 s was
/// seen once on a loaded machine, and a runaway takes minutes).
fn assert_refused(store: &Path, args: &[&str], says: &str) {
    let t0 = Instant::now();
    let o = stores_common::run(store, args);
    let e = stderr_of(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
    assert!(e.contains(says) && e.lines().count() <= 2, "{args:?}: {e}");
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "{args:?} took {:?}",
        t0.elapsed()
    );
}

/// Item 2 and item 3: an adapter that answers the handshake and then
/// nothing, with a 10-minute operation timeout, and that leaves a child in a
/// session of its own. SIGTERM cancels the operations in flight (recorded
/// `info`), a second SIGTERM skips to the teardown, the run ends within a
/// bounded time, and the adapter's setsid child does not outlive it.
#[test]
fn a_hanging_adapter_ends_on_signals_and_leaves_no_descendant() {
    let Some(_g) = guard("a_hanging_adapter_ends_on_signals_and_leaves_no_descendant") else {
        return;
    };
    let store = tempfile::tempdir().expect("tempdir");
    let adapter = adapter_script(
        store.path(),
        "hang.sh",
        "setsid sleep 4243 </dev/null >/dev/null 2>&1 &\n\
         read hello\n\
         echo '{\"id\":0,\"type\":\"ok\"}'\n\
         while read line; do :; done\n",
    );
    let mut child = spawn_run(
        store.path(),
        &[
            "--db",
            "external",
            "--db-opt",
            &adapter,
            "--nodes",
            "2",
            "--keys",
            "1",
            "--nemesis",
            "none",
            "--op-timeout",
            "600000",
            "--time-limit",
            "60",
            "--quiet",
            "0",
            "--concurrency",
            "3",
        ],
    );
    let pid = child.id();
    wait_for_events(&mut child, store.path(), 3, "no operation started", |e| {
        e["type"] == "invoke"
    });
    let target = nix::unistd::Pid::from_raw(pid as i32);
    nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    std::thread::sleep(Duration::from_secs(1));
    nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let signalled = Instant::now();
    let o = wait_bounded(child, Duration::from_secs(30));
    println!(
        "ended {:.1} s after the second SIGTERM",
        signalled.elapsed().as_secs_f64()
    );
    let h = history_lines(store.path());
    let cancelled = count(&h, |e| {
        e["type"] == "info"
            && e["error"]
                .as_str()
                .is_some_and(|m| m.starts_with("cancelled"))
    });
    assert!(
        cancelled >= 3,
        "the operations in flight were cancelled as info: {}",
        text(&o)
    );
    assert!(matches!(o.status.code(), Some(0..=3)), "{}", text(&o));
    assert_run_clean(pid);
    assert!(
        stores_common::processes_with("sleep 4243").is_empty(),
        "the adapter's setsid child outlived the run"
    );
    assert!(!data_dir(pid).exists(), "the lab's data directory is left");
}

/// Item 2: a very low rate still runs operations within the time limit
/// and the run ends on time (before: every worker first slept a whole
/// interval, so `--rate 1 --time-limit 3` took 13 s and ran nothing).
#[test]
fn a_low_rate_run_ends_on_time_and_runs_operations() {
    let Some(_g) = guard("a_low_rate_run_ends_on_time_and_runs_operations") else {
        return;
    };
    let store = tempfile::tempdir().expect("tempdir");
    let child = spawn_run(
        store.path(),
        &[
            "--rate",
            "1",
            "--time-limit",
            "3",
            "--nemesis",
            "none",
            "--quiet",
            "0",
            "--nodes",
            "2",
        ],
    );
    let pid = child.id();
    let t0 = Instant::now();
    let o = wait_bounded(child, Duration::from_secs(60));
    let took = t0.elapsed();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let h = history_lines(store.path());
    let ops = count(&h, |e| e["type"] == "invoke" && e["phase"].is_null());
    assert!(
        (2..=5).contains(&ops),
        "about 3 operations at 1/s for 3 s, got {ops}"
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert_run_clean(pid);
}

/// Item 4: a run in which no workload operation succeeded is unknown
/// (exit 3), never valid; faults that cannot be applied are errors before
/// anything starts, never events.
#[test]
fn empty_and_phantom_runs_are_never_valid() {
    let Some(_g) = guard("empty_and_phantom_runs_are_never_valid") else {
        return;
    };
    let store = tempfile::tempdir().expect("tempdir");
    let base = [
        "--db",
        "external",
        "--nodes",
        "2",
        "--keys",
        "1",
        "--quiet",
        "0",
        "--time-limit",
        "2",
    ];
    // Every adapter exits at once.
    let mut args = base.to_vec();
    args.extend([
        "--db-opt",
        "command=true",
        "--db-opt",
        "handshake=false",
        "--nemesis",
        "none",
    ]);
    let o = stores_common::run(store.path(), &args);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let r = stores_common::results(store.path());
    assert_eq!(r["valid"], "unknown", "{r}");
    assert!(
        r["checks"]["workload"]["unknown_reason"]
            .as_str()
            .is_some_and(|m| m.contains("no workload operation succeeded")),
        "{r}"
    );
    // Primaries that are not nodes, and kill/pause without servers.
    let sched = store.path().join("kill.json");
    std::fs::write(
        &sched,
        r#"[{"at": 1, "for": 0.5, "fault": {"fault": "kill", "target": "primaries"}}]"#,
    )
    .expect("write");
    let sched = sched.display().to_string();
    // Primaries the store reports are known once it runs: refused then,
    // before any operation, with the lab torn down.
    let mut args = base.to_vec();
    args.extend([
        "--db-opt",
        "command=cat",
        "--db-opt",
        "handshake=false",
        "--db-opt",
        "server=builtin",
        "--db-opt",
        "primaries=n9",
        "--nemesis-schedule",
        &sched,
    ]);
    let phantom = tempfile::tempdir().expect("tempdir");
    assert_refused(phantom.path(), &args, "n9");
    let h = history_lines(phantom.path());
    assert_eq!(
        count(&h, |e| e["process"] == "nemesis"),
        0,
        "no phantom fault event"
    );
    let store = tempfile::tempdir().expect("tempdir");
    for (extra, says) in [
        (
            vec![
                "--db-opt",
                "command=cat",
                "--nemesis",
                "kill",
                "--nemesis-interval",
                "0.5",
                "--fault-duration",
                "0.2",
            ],
            "server=",
        ),
        (
            vec!["--db-opt", "command=cat", "--nemesis-schedule", &sched],
            "server=",
        ),
    ] {
        let before = std::fs::read_dir(store.path()).map_or(0, |d| d.count());
        let mut args = base.to_vec();
        args.extend(extra.iter().copied());
        assert_refused(store.path(), &args, says);
        let after = std::fs::read_dir(store.path()).map_or(0, |d| d.count());
        assert_eq!(before, after, "{extra:?}: nothing was created");
    }
}

/// Item 5: inputs that crashed or ran away are one-line errors (exit 2)
/// before anything exists.
#[test]
fn oversized_inputs_are_errors_not_crashes() {
    let Some(_g) = guard("oversized_inputs_are_errors_not_crashes") else {
        return;
    };
    let store = tempfile::tempdir().expect("tempdir");
    let at = store.path().join("at.json");
    std::fs::write(
        &at,
        r#"[{"at": 1e19, "for": 1, "fault": {"fault": "partition", "shape": "one"}}]"#,
    )
    .expect("write");
    let at = at.display().to_string();
    let huge = "18446744073709551616";
    for (args, says) in [
        (vec!["--time-limit", huge], "--time-limit"),
        (vec!["--nemesis-interval", huge], "--nemesis-interval"),
        (vec!["--check-time-limit", huge], "--check-time-limit"),
        (vec!["--time-limit", "1e9"], "--time-limit"),
        (
            vec!["--time-limit", "1e7", "--nemesis-interval", "2"],
            "more than 100000 faults",
        ),
        (vec!["--nemesis-schedule", &at], "entry 0"),
        (vec!["--config", "/dev/zero"], "/dev/zero"),
        (vec!["--rate", "1e-300"], "--rate"),
    ] {
        assert_refused(store.path(), &args, says);
    }
    assert_eq!(
        std::fs::read_dir(store.path()).expect("store").count(),
        1,
        "only the schedule file: no run started"
    );
}

/// Items 5 and 7: an adapter that answers every request with a 3 MB line
/// of garbage: the history quotes at most a short excerpt, and the run is
/// an error (exit 2) soon, not UNKNOWN after a minute.
#[test]
fn a_garbage_adapter_is_an_error_and_its_lines_are_cut() {
    let Some(_g) = guard("a_garbage_adapter_is_an_error_and_its_lines_are_cut") else {
        return;
    };
    let store = tempfile::tempdir().expect("tempdir");
    let adapter = adapter_script(
        store.path(),
        "garbage.sh",
        "while read line; do head -c 3000000 /dev/zero | tr '\\0' x; echo; done\n",
    );
    let t0 = Instant::now();
    let child = spawn_run(
        store.path(),
        &[
            "--db",
            "external",
            "--db-opt",
            &adapter,
            "--db-opt",
            "handshake=false",
            "--nodes",
            "2",
            "--nemesis",
            "none",
            "--time-limit",
            "60",
            "--quiet",
            "0",
            "--concurrency",
            "2",
        ],
    );
    let pid = child.id();
    let o = wait_bounded(child, Duration::from_secs(60));
    let e = stderr_of(&o);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(e.contains("never gave a valid reply"), "{e}");
    // Well before the 60 s time limit (31.8 s was seen once at load 8).
    assert!(
        t0.elapsed() < Duration::from_secs(45),
        "took {:?}",
        t0.elapsed()
    );
    let h = history_path(store.path()).expect("history");
    let size = std::fs::metadata(&h).expect("history").len();
    assert!(
        size < 1 << 20,
        "the history holds no garbage lines: {size} bytes"
    );
    assert_run_clean(pid);
}

/// Item 6: a store directory on a 2 MB file system: the run fails with a
/// clear error, tears everything down, and the history ends with a whole
/// line, which `faultline check` reads.
#[test]
fn a_full_disk_leaves_whole_lines() {
    let Some(_g) = guard("a_full_disk_leaves_whole_lines") else {
        return;
    };
    let mnt = tempfile::tempdir().expect("tempdir");
    let m = mnt.path().display().to_string();
    let mount = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs", &m])
        .output()
        .expect("mount");
    assert!(
        mount.status.success(),
        "mount a 2 MB tmpfs: {}",
        text(&mount)
    );
    struct Unmount(String);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).output();
        }
    }
    let _u = Unmount(m.clone());
    // The run goes on (recording nothing more) until its time limit once
    // the disk is full; the built-in store fills 2 MB in a few seconds.
    let child = spawn_run(
        mnt.path(),
        &[
            "--nodes",
            "2",
            "--nemesis",
            "none",
            "--time-limit",
            "10",
            "--quiet",
            "0",
        ],
    );
    let pid = child.id();
    let o = wait_bounded(child, Duration::from_secs(90));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let e = stderr_of(&o);
    assert!(e.contains("history.jsonl") && e.contains("space"), "{e}");
    let h = history_path(mnt.path()).expect("history");
    let raw = std::fs::read(&h).expect("read");
    assert!(
        raw.len() > 100_000,
        "the history grew until the disk was full"
    );
    assert_eq!(
        raw.last(),
        Some(&b'\n'),
        "the history ends with a whole line"
    );
    let c = Command::new(bin())
        .args(["check", "--model", "kv"])
        .arg(&h)
        .output()
        .expect("check");
    assert_ne!(c.status.code(), Some(2), "check reads it: {}", text(&c));
    assert_run_clean(pid);
}

/// Item 7: the small things, each a one-line error before anything starts.
#[test]
fn ambiguous_flags_and_schedules_are_errors() {
    let Some(_g) = guard("ambiguous_flags_and_schedules_are_errors") else {
        return;
    };
    let store = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, text: &str| {
        let p = store.path().join(name);
        std::fs::write(&p, text).expect("write");
        p.display().to_string()
    };
    let jitter = write(
        "jitter.json",
        r#"[{"at": 1, "for": 1, "fault": {"fault": "delay", "ms": 20, "jitter": 5, "target": "one"}}]"#,
    );
    let late = write(
        "late.json",
        r#"[{"at": 40, "for": 1, "fault": {"fault": "partition", "shape": "one"}}]"#,
    );
    let bad_node = write(
        "node.json",
        r#"[{"at": 1, "for": 1, "fault": {"fault": "kill", "target": {"nodes": ["n7"]}}}]"#,
    );
    for (args, says) in [
        (vec!["--nemesis", "all,none"], "none"),
        (vec!["--nemesis", ""], "none"),
        (vec!["--nemesis-schedule", &jitter], "jitter"),
        (vec!["--nemesis-schedule", &late], "entry 0"),
        (vec!["--db-opt", "r=1"], "mode=quorum"),
        (vec!["--mix", "read=x"], "--mix"),
    ] {
        let mut all = vec!["--time-limit", "30"];
        all.extend(args.iter().copied());
        assert_refused(store.path(), &all, says);
    }
    let o = stores_common::run(store.path(), &["--nemesis-schedule", &bad_node]);
    let e = stderr_of(&o);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert_eq!(
        e.matches("invalid schedule").count(),
        1,
        "the reason is said once: {e}"
    );
}

/// Item 7: `results.json` counts the faults the nemesis applied (as the
/// history records them), not the ones it was scheduled to; a config
/// file's `store` is relative to the file, like its `nemesis-schedule`.
///
/// The two counts are made to differ deterministically: the run is
/// scheduled for about 30 faults over 6 s and interrupted (SIGINT) once the
/// first fault has started, so most windows are never applied.
#[test]
fn results_count_applied_faults_and_config_paths_follow_the_file() {
    let Some(_g) = guard("results_count_applied_faults_and_config_paths_follow_the_file") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("run.toml");
    std::fs::write(
        &config,
        "store = \"relstore\"\nnodes = 2\nnemesis = \"partition\"\nnemesis-interval = 0.2\n\
         fault-duration = 0.1\ntime-limit = 6\nquiet = 1\n",
    )
    .expect("write");
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(bin())
        .current_dir(elsewhere.path())
        .args(["run", "--no-progress", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run");
    let store = dir.path().join("relstore");
    wait_for_events(
        &mut child,
        &store,
        1,
        "no fault started (is the store next to the config file?)",
        |e| e["process"] == "nemesis" && e["phase"] == "start",
    );
    let target = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    let o = wait_bounded(child, Duration::from_secs(45));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        store.join("latest").exists(),
        "the store is next to the config file"
    );
    let r = stores_common::results(&store);
    let h = stores_common::history(&store);
    let started = count(&h, |e| e["process"] == "nemesis" && e["phase"] == "start");
    assert_eq!(r["stats"]["faults"], started, "{}", r["stats"]);
    assert!(started >= 1, "{}", r["stats"]);
    let scheduled = r["stats"]["faults_scheduled"].as_u64().expect("scheduled");
    assert!(
        (25..=30).contains(&scheduled),
        "about one fault per 0.2 s of a 6 s run: {}",
        r["stats"]
    );
    assert!(
        (started as u64) < scheduled / 2,
        "the run was interrupted after the first fault: {}",
        r["stats"]
    );
}
