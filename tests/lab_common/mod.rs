//! Shared helpers for the lab tests. They need root and `ping` (faultline
//! itself needs no `ip`, `iptables` or `nft`, and neither do these helpers:
//! they inspect nftables through faultline's own netlink client); without
//! them they FAIL (CI runs as root), unless
//! `FAULTLINE_SKIP_LAB=1` is set, which makes them print "skipped".
//! Tests take a machine-wide lock, so they run one at a time even across
//! test binaries.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use faultline::lab::nft::{self, Change, Hook, Nft};
use faultline::lab::{Lab, data_dir, sys};
use nix::fcntl::{Flock, FlockArg};

/// The faultline binary under test: this build's, or `FAULTLINE_TEST_BIN`
/// (to show that a test fails against an older build).
pub fn bin() -> PathBuf {
    std::env::var_os("FAULTLINE_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_faultline")))
}

/// Holds the machine-wide test lock.
pub struct Guard {
    _lock: Flock<File>,
    test: String,
    waited: Duration,
    since: Instant,
}

impl Drop for Guard {
    fn drop(&mut self) {
        // Shown with --nocapture: what a test took, without the time it
        // waited for other tests (on a shared machine, that wait dominates).
        eprintln!(
            "lab lock: {} waited {:.1} s, held {:.1} s",
            self.test,
            self.waited.as_secs_f64(),
            self.since.elapsed().as_secs_f64()
        );
        // After a failed test, leave nothing behind for the next one (a
        // passing test has already asserted that nothing is left).
        if std::thread::panicking() {
            let _ = Command::new(bin()).args(["clean", "--force"]).output();
        }
    }
}

/// Skips (with FAULTLINE_SKIP_LAB=1) or checks the prerequisites loudly and
/// takes the lock.
pub fn guard(test: &str) -> Option<Guard> {
    if std::env::var("FAULTLINE_SKIP_LAB").is_ok_and(|v| v == "1") {
        println!("skipped {test}: FAULTLINE_SKIP_LAB=1");
        return None;
    }
    assert!(
        nix::unistd::geteuid().is_root(),
        "{test} needs root (CI runs as root); set FAULTLINE_SKIP_LAB=1 to skip the lab tests"
    );
    assert!(
        sys::find_tool("ping").is_some(),
        "{test} needs `ping`: apt-get install -y {}",
        sys::package_of("ping")
    );
    let f = File::create("/run/faultline-tests.lock").expect("creating the test lock");
    let asked = Instant::now();
    let l = Flock::lock(f, FlockArg::LockExclusive)
        .map_err(|_| ())
        .expect("test lock");
    Some(Guard {
        _lock: l,
        test: test.to_string(),
        waited: asked.elapsed(),
        since: Instant::now(),
    })
}

/// Runs faultline with `args`.
pub fn fl(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .output()
        .expect("running faultline")
}

/// Runs faultline and asserts success; returns stdout.
pub fn ok(args: &[&str]) -> String {
    let o = fl(args);
    assert!(
        o.status.success(),
        "faultline {args:?} failed ({}): {}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs faultline and asserts exit code 2 with a one-line error containing
/// every one of `needles`.
pub fn err2(args: &[&str], needles: &[&str]) {
    let o = fl(args);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "faultline {args:?}: {e}");
    assert_eq!(e.trim().lines().count(), 1, "one line wanted: {e}");
    assert!(!e.contains("panicked"), "{e}");
    for n in needles {
        assert!(e.contains(n), "faultline {args:?}: {e:?} lacks {n:?}");
    }
}

/// `lab up` through the binary, then the handle.
pub fn up(name: &str, nodes: usize) -> Lab {
    let dir = format!("/tmp/faultline-test-{name}");
    ok(&[
        "lab",
        "up",
        "--nodes",
        &nodes.to_string(),
        "--name",
        name,
        "--dir",
        &dir,
    ]);
    Lab::open(name).expect("lab state")
}

/// `lab down` and cleanup of the test's data directory.
pub fn down(lab: &Lab) {
    ok(&["lab", "down", "--name", lab.name()]);
    let _ = std::fs::remove_dir_all(lab.dir());
}

/// Starts the echo server on every node (held by detached holders).
pub fn echo_everywhere(lab: &Lab, port: u16) {
    let b = bin();
    let b = b.to_string_lossy();
    let p = port.to_string();
    for n in lab.nodes() {
        ok(&[
            "lab",
            "run",
            "--detach",
            "--name",
            lab.name(),
            "--service",
            "echo",
            &n.name,
            "--",
            &b,
            "lab",
            "echo",
            "--port",
            &p,
        ]);
    }
    // `lab run` returns once the server process exists; on a loaded machine
    // it may take a moment to listen.
    wait_echo(lab, port);
}

/// Waits (bounded, 20 s) until every node's echo server answers the
/// control node, so probes never race a server's start-up or restart.
pub fn wait_echo(lab: &Lab, port: u16) {
    let t0 = std::time::Instant::now();
    while let Err(e) = control_reaches_all(lab, port) {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "echo servers not answering after 20 s: {e}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One echo round trip to `addr`, with `timeout` for connect and read.
pub fn echo_once(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.write_all(b"ping\n").map_err(|e| format!("write: {e}"))?;
    let mut line = String::new();
    BufReader::new(s)
        .read_line(&mut line)
        .map_err(|e| format!("read: {e}"))?;
    if line.trim() == "ping" {
        Ok(())
    } else {
        Err(format!("read {line:?}"))
    }
}

/// Which ordered pairs (from, to) of nodes can do an echo round trip: the
/// connection is made from inside `from`'s namespace.
pub fn matrix(lab: &Lab, port: u16) -> BTreeMap<(String, String), bool> {
    let nodes = lab.nodes().to_vec();
    let mut hs = Vec::new();
    for a in &nodes {
        for b in &nodes {
            if a.name == b.name {
                continue;
            }
            let (a, b) = (a.clone(), b.clone());
            hs.push(std::thread::spawn(move || {
                let addr = SocketAddr::from((b.ip, port));
                let r = sys::in_netns(&a.netns, move || {
                    echo_once(addr, Duration::from_millis(400))
                })
                .expect("entering the node");
                ((a.name, b.name), r.is_ok())
            }));
        }
    }
    hs.into_iter()
        .map(|h| h.join().expect("probe thread"))
        .collect()
}

/// True if the control node reaches every node's echo server.
pub fn control_reaches_all(lab: &Lab, port: u16) -> Result<(), String> {
    for n in lab.nodes() {
        echo_once(SocketAddr::from((n.ip, port)), Duration::from_secs(1))
            .map_err(|e| format!("control -> {}: {e}", n.name))?;
    }
    Ok(())
}

/// Everything faultline-named on the machine: namespaces, links, root
/// chains, state files. Empty means clean.
pub fn leftovers() -> Vec<String> {
    let mut out = Vec::new();
    for ns in sys::list_netns() {
        if ns.starts_with("fl-") {
            out.push(format!("netns {ns}"));
        }
    }
    for l in sys::list_links() {
        if l.starts_with("fl-") {
            out.push(format!("link {l}"));
        }
    }
    let chains = Nft::open("test").and_then(|mut n| n.chains());
    for c in chains.expect("listing nftables chains") {
        if c.name.contains("FL-") || c.table.contains("faultline") {
            out.push(format!(
                "chain {} {} {}",
                nft::family_name(c.family),
                c.table,
                c.name
            ));
        }
    }
    if let Ok(rd) = std::fs::read_dir("/run/faultline") {
        for e in rd.flatten() {
            if e.path().extension().is_some_and(|x| x == "json") {
                out.push(format!("state {}", e.path().display()));
            }
        }
    }
    // A run's scratch data directory (marked as such) outlives no run.
    if let Ok(rd) = std::fs::read_dir(data_dir::ROOT) {
        for e in rd.flatten() {
            if e.path().join(data_dir::MARKER).is_file() {
                out.push(format!("data directory {}", e.path().display()));
            }
        }
    }
    out
}

/// Asserts that nothing is left.
pub fn assert_clean() {
    let l = leftovers();
    assert!(l.is_empty(), "left behind: {l:?}");
}

/// Median of a list of floats.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// `ping` from inside a node; returns (sent, received, per-packet RTTs in ms).
pub fn ping(
    lab: &Lab,
    from: &str,
    to: &str,
    count: usize,
    interval: &str,
) -> (usize, usize, Vec<f64>) {
    let f = lab.node(from).expect("from node").clone();
    let t = lab.node(to).expect("to node").clone();
    let mut c = sys::command_in_netns(
        &f.netns,
        &sys::find_tool("ping").expect("ping").to_string_lossy(),
    )
    .expect("netns");
    c.args(["-n", "-c", &count.to_string(), "-i", interval, "-W", "1"])
        .arg(t.ip.to_string());
    let o = c.output().expect("ping");
    let text = String::from_utf8_lossy(&o.stdout);
    let rtts: Vec<f64> = text
        .lines()
        .filter_map(|l| l.split("time=").nth(1))
        .filter_map(|r| r.split_whitespace().next()?.parse().ok())
        .collect();
    let received = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(rtts.len());
    (count, received, rtts)
}

/// A path that exists for the whole test.
pub fn tmp(name: &str) -> PathBuf {
    Path::new("/tmp").join(format!("faultline-test-{name}"))
}

/// Makes the root namespace's forward path drop by default, as
/// `iptables -P FORWARD DROP` (Docker) does with iptables-nft: a base chain
/// `ip filter FORWARD` with policy drop (created if absent). Restored on
/// drop, even on failure.
pub struct ForwardDrop {
    /// The policy before, if the chain existed.
    was: Option<u32>,
    /// Whether the table `ip filter` existed.
    had_table: bool,
}

fn set_forward_policy(policy: u32) {
    Nft::open("test")
        .and_then(|mut n| {
            n.apply(&[
                Change::AddTable {
                    family: nft::IPV4,
                    table: "filter".into(),
                },
                Change::AddChain {
                    family: nft::IPV4,
                    table: "filter".into(),
                    chain: "FORWARD".into(),
                    hook: Some(Hook {
                        num: nft::HOOK_FORWARD,
                        priority: 0,
                        policy,
                    }),
                },
            ])
        })
        .expect("setting the policy of ip filter FORWARD");
}

impl ForwardDrop {
    /// Sets the policy to drop.
    pub fn set() -> ForwardDrop {
        assert_eq!(
            std::fs::read_to_string("/proc/sys/net/bridge/bridge-nf-call-iptables")
                .unwrap_or_default()
                .trim(),
            "1",
            "these tests expect br_netfilter on (bridged frames through the forward hook)"
        );
        let chains = Nft::open("test")
            .and_then(|mut n| n.chains())
            .expect("listing chains");
        let filter = || {
            chains
                .iter()
                .filter(|c| c.family == nft::IPV4 && c.table == "filter")
        };
        let had_table = filter().next().is_some();
        let was = filter()
            .find(|c| c.name == "FORWARD")
            .map(|c| c.policy.unwrap_or(nft::ACCEPT));
        set_forward_policy(nft::DROP);
        ForwardDrop { was, had_table }
    }
}

impl Drop for ForwardDrop {
    fn drop(&mut self) {
        match self.was {
            Some(p) => set_forward_policy(p),
            None => {
                let change = if self.had_table {
                    Change::DelChain {
                        family: nft::IPV4,
                        table: "filter".into(),
                        chain: "FORWARD".into(),
                    }
                } else {
                    Change::DelTable {
                        family: nft::IPV4,
                        table: "filter".into(),
                    }
                };
                let _ = Nft::open("test").and_then(|mut n| n.apply(&[change]));
            }
        }
    }
}
