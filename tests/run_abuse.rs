//! `faultline run` under abuse (issue 15): its clients cannot leave the lab,
//! `clean` leaves live labs alone, and the run keeps its promises when
//! misused. Root; real labs; serialised with the other lab tests.

mod lab_common;
mod stores_common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use faultline::lab::{LabState, sys};
use lab_common::{assert_clean, bin, guard};
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
    let child = spawn_run(store.path(), args);
    let mut child = child;
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
    assert_clean();
}

#[test]
fn clients_cannot_leave_the_lab_when_its_bridge_is_removed() {
    let Some(_g) = guard("clients_cannot_leave_the_lab_when_its_bridge_is_removed") else {
        return;
    };
    assert_clean();
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
    assert_clean();
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
    assert_clean();
}
