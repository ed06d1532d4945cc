//! Done when: the lab, the nemesis and a real `faultline run` work on a
//! machine without `ip`, `iptables` or `nft` (they are hidden: every such
//! program faultline could find is replaced by one that records the call and
//! exits 127, both first in PATH and bind-mounted over the installed files in
//! a private mount namespace), and no such program is ever run; and a lab's
//! nodes have no route out of the lab.

mod lab_common;
mod stores_common;

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use faultline::lab::net::Net;
use faultline::lab::rtnl::Rtnl;
use faultline::lab::sys;
use lab_common::*;

/// The programs the lab used to need; each is hidden.
const HIDDEN: [&str; 12] = [
    "ip",
    "iptables",
    "iptables-restore",
    "iptables-save",
    "iptables-legacy",
    "iptables-legacy-restore",
    "iptables-nft",
    "iptables-nft-restore",
    "xtables-nft-multi",
    "xtables-legacy-multi",
    "nft",
    "tc",
];

/// A directory of fake programs, each appending its command line to `log`
/// and exiting 127 (as a shell does for a missing program).
fn fakes(dir: &Path, log: &Path) {
    for p in HIDDEN {
        let f = dir.join(p);
        std::fs::write(
            &f,
            format!("#!/bin/sh\necho \"$0 $*\" >> {}\nexit 127\n", log.display()),
        )
        .expect("writing a fake program");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
}

/// Runs faultline with `args` where the hidden programs cannot be run:
/// in a new mount namespace (`unshare`, util-linux) whose root mount is made
/// private (so nothing mounted here leaks out, while `/run/netns`, a shared
/// mount, still propagates faultline's namespaces), every installed copy is
/// covered by a fake, and the fakes come first in PATH.
fn hidden(dir: &Path, args: &[&str]) -> Output {
    let mut script = String::from("set -e\nmount --make-private /\n");
    script.push_str("mount --make-private /usr 2>/dev/null || true\n");
    for d in ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
        for p in HIDDEN {
            let f = format!("{d}/{p}");
            script.push_str(&format!(
                "if [ -e {f} ]; then mount --bind {} {f}; fi\n",
                dir.join(p).display()
            ));
        }
    }
    script.push_str("exec \"$@\"\n");
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let unshare = sys::find_tool("unshare").expect("unshare (util-linux)");
    Command::new(unshare)
        .args([
            "--mount",
            "--propagation",
            "unchanged",
            "sh",
            "-c",
            &script,
            "sh",
        ])
        .arg(bin())
        .args(args)
        .env("PATH", path)
        .output()
        .expect("running faultline in a mount namespace")
}

fn ok_hidden(dir: &Path, args: &[&str]) -> String {
    let o = hidden(dir, args);
    assert!(
        o.status.success(),
        "faultline {args:?} without ip/iptables failed ({}): {}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn lab_nemesis_and_run_need_no_ip_or_iptables() {
    let Some(_g) = guard("lab_nemesis_and_run_need_no_ip_or_iptables") else {
        return;
    };
    assert_clean();
    // /run/netns must be a shared mount before the mount namespaces copy it.
    faultline::lab::netns::prepare_dir().expect("preparing /run/netns");
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = tmp.path().join("calls.log");
    let fake = tmp.path().join("bin");
    std::fs::create_dir(&fake).unwrap();
    fakes(&fake, &log);
    // The fakes work: a hidden program fails and is recorded.
    let probe = hidden(
        &fake,
        &["lab", "exec", "--name", "none", "n1", "--", "true"],
    );
    assert_eq!(probe.status.code(), Some(2), "no such lab: exit 2");
    let o = Command::new("sh")
        .args(["-c", "iptables -S"])
        .env(
            "PATH",
            format!("{}:{}", fake.display(), std::env::var("PATH").unwrap()),
        )
        .status()
        .unwrap();
    assert_eq!(o.code(), Some(127));
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("iptables -S")
    );
    std::fs::remove_file(&log).unwrap();

    // The lab and every network fault, each command a fresh process; under
    // a root FORWARD policy of drop, so the forward accept is exercised too.
    let fwd = ForwardDrop::set();
    let dir = tmp.path().join("lab");
    let d = dir.to_string_lossy();
    let doctor = ok_hidden(&fake, &["doctor"]);
    assert!(doctor.contains("the lab can run here"), "{doctor}");
    ok_hidden(
        &fake,
        &["lab", "up", "--nodes", "3", "--name", "bare", "--dir", &d],
    );
    let lab = faultline::lab::Lab::open("bare").expect("lab state");
    assert!(lab.state.root_chain.is_some());
    echo_everywhere(&lab, 7000);
    assert!(matrix(&lab, 7000).values().all(|&c| c));
    ok_hidden(
        &fake,
        &[
            "nemesis",
            "--name",
            "bare",
            "partition",
            "[[\"n1\"],[\"n2\",\"n3\"]]",
        ],
    );
    let m = matrix(&lab, 7000);
    for ((a, b), c) in &m {
        let cut = (a == "n1") != (b == "n1");
        assert_eq!(*c, !cut, "{a} -> {b} under n1|n2,n3");
    }
    control_reaches_all(&lab, 7000).expect("the control node is never cut");
    ok_hidden(&fake, &["nemesis", "--name", "bare", "heal"]);
    ok_hidden(
        &fake,
        &[
            "nemesis",
            "--name",
            "bare",
            "loss",
            "n2",
            "--percent",
            "100",
        ],
    );
    let (_, got, _) = ping(&lab, "n1", "n2", 5, "0.05");
    assert_eq!(got, 0, "100% loss at n2");
    ok_hidden(&fake, &["nemesis", "--name", "bare", "heal"]);
    ok_hidden(&fake, &["lab", "down", "--name", "bare"]);
    assert_clean();

    // A real run: the built-in store under partitions, loss and delay.
    let store = tmp.path().join("store");
    let tl = stores_common::timeline(
        tmp.path(),
        r#"[{"at": 0.5, "for": 1, "fault": {"fault": "partition", "shape": "majority"}},
            {"at": 2, "for": 1, "fault": {"fault": "loss", "percent": 30, "target": "all"}},
            {"at": 3.5, "for": 1, "fault": {"fault": "delay", "ms": 20, "target": "all"}}]"#,
    );
    let o = hidden(
        &fake,
        &[
            "run",
            "--store",
            &store.to_string_lossy(),
            "--no-progress",
            "--time-limit",
            "5",
            "--concurrency",
            "4",
            "--nemesis-schedule",
            &tl.to_string_lossy(),
            "--seed",
            "3",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stores_common::text(&o));
    let h = stores_common::history(&store);
    for f in ["partition", "loss", "delay"] {
        assert_eq!(
            stores_common::count(&h, |e| e["f"] == f && e["phase"] == "start"),
            1,
            "one {f} window"
        );
    }
    assert!(stores_common::count(&h, |e| e["type"] == "ok") > 100);
    drop(fwd);
    assert_clean();
    ok_hidden(&fake, &["clean"]);

    // `tc` is only tried for netem (an optional kernel feature); without it
    // delay uses the NFQUEUE holder, as it did above.
    let calls: Vec<String> = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.contains("/tc "))
        .map(str::to_string)
        .collect();
    assert!(
        calls.is_empty(),
        "faultline ran programs it must not need: {calls:?}"
    );
}

/// Removes a blackhole route when dropped.
struct Blackhole(Net);

impl Blackhole {
    fn add(net: Net) -> Blackhole {
        Rtnl::open("test")
            .and_then(|mut r| r.add_blackhole(net))
            .expect("adding a blackhole route");
        Blackhole(net)
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        let _ = Rtnl::open("test").and_then(|mut r| r.del_blackhole(self.0));
    }
}

#[test]
fn nodes_have_no_route_out() {
    let Some(_g) = guard("nodes_have_no_route_out") else {
        return;
    };
    // An address of a documentation network (RFC 5737, never routed) that
    // this machine does not use is what the nodes try to reach; it is
    // blackholed in the root namespace for the length of the test, so even
    // a node that had a way out could not send the test's probe anywhere.
    let used = Rtnl::open("test").and_then(|mut r| r.networks()).unwrap();
    let outside = [
        Ipv4Addr::new(198, 51, 100, 1),
        Ipv4Addr::new(203, 0, 113, 1),
        Ipv4Addr::new(192, 0, 2, 1),
    ]
    .into_iter()
    .find(|a| {
        let n = Net { addr: *a, len: 32 };
        !used.iter().any(|u| u.overlaps(&n))
    })
    .expect("a documentation address this machine does not use");
    let _bh = Blackhole::add(Net {
        addr: outside,
        len: 32,
    });
    let forward = || std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let forward_before = forward();
    let lab = up("noroute", 3);
    let subnet = Net {
        addr: lab.state.subnet,
        len: 24,
    };
    let loopback = Net::parse("127.0.0.0/8").unwrap();
    for n in lab.nodes() {
        let mut rt = Rtnl::open_in(&n.netns).expect("rtnetlink in the node");
        for dst in [
            outside,
            Ipv4Addr::new(8, 8, 8, 8),
            Ipv4Addr::new(1, 1, 1, 1),
        ] {
            assert_eq!(
                rt.route_get(dst).expect("route lookup"),
                Err(libc::ENETUNREACH),
                "{} must have no route to {dst}",
                n.name
            );
        }
        assert_eq!(rt.route_get(lab.control_ip()).unwrap(), Ok(()));
        for r in rt.routes().expect("routes") {
            assert!(
                r.len > 0 && (subnet.overlaps(&r) || loopback.overlaps(&r)),
                "{}: route {}/{} leads out of the lab",
                n.name,
                r.addr,
                r.len
            );
        }
        // A real connect fails at once, before any packet leaves.
        let t0 = Instant::now();
        let e = sys::in_netns(&n.netns, move || {
            TcpStream::connect_timeout(&SocketAddr::from((outside, 9)), Duration::from_secs(2))
        })
        .unwrap()
        .expect_err("a node reached TEST-NET-1");
        assert_eq!(e.raw_os_error(), Some(libc::ENETUNREACH), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(1));
    }
    // faultline never turns on forwarding in the root namespace.
    assert_eq!(forward(), forward_before);
    down(&lab);
    assert_clean();
}
