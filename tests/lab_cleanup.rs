//! Done when: a SIGKILLed faultline process in the middle of a partition with
//! a server running leaves nothing after `faultline clean`; twenty `lab up`
//! / `lab down` cycles leave nothing; Ctrl-C, SIGTERM and a panic tear a
//! foreground lab down; `lab up` refuses leftovers; `lab up --nodes 5`
//! takes under 1 s; labs live side by side; non-root gets exit 2.

mod lab_common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use faultline::lab::{Lab, sys};
use lab_common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

fn foreground(name: &str, nodes: usize, extra: &[&str]) -> Child {
    let dir = format!("/tmp/faultline-test-{name}");
    let n = nodes.to_string();
    let mut args = vec![
        "lab",
        "up",
        "--foreground",
        "--nodes",
        &n,
        "--name",
        name,
        "--dir",
        &dir,
    ];
    args.extend_from_slice(extra);
    let c = Command::new(bin())
        .args(&args)
        .stdout(Stdio::null())
        .stderr(if extra.contains(&"--panic-after-up") {
            Stdio::null() // the expected panic message would only clutter the log
        } else {
            Stdio::inherit()
        })
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !Lab::open(name).is_ok_and(|l| l.state.complete) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "foreground lab {name} never came up"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    c
}

fn wait_exit(c: &mut Child) -> std::process::ExitStatus {
    let t0 = Instant::now();
    loop {
        if let Some(s) = c.try_wait().unwrap() {
            return s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "process did not exit"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn sigkill_mid_partition_then_clean() {
    let Some(_g) = guard("sigkill_mid_partition_then_clean") else {
        return;
    };
    assert_clean();
    let fwd = ForwardDrop::set();
    let mut owner = foreground("crash", 3, &[]);
    let lab = Lab::open("crash").unwrap();
    assert!(
        lab.state.root_chain.is_some(),
        "FORWARD policy DROP under br_netfilter needs faultline's chain"
    );
    echo_everywhere(&lab, 7000);
    let m = matrix(&lab, 7000);
    assert!(
        m.values().all(|&c| c),
        "nodes must talk despite FORWARD DROP: {m:?}"
    );
    ok(&[
        "nemesis",
        "--name",
        "crash",
        "partition",
        "majority",
        "--seed",
        "1",
    ]);
    ok(&["nemesis", "--name", "crash", "delay", "--ms", "20", "n1"]);
    let st = Lab::open("crash").unwrap().state;
    let servers: Vec<_> = st.servers.iter().filter_map(|s| s.process).collect();
    let holders: Vec<_> = st.servers.iter().filter_map(|s| s.holder).collect();
    assert_eq!(servers.len(), 3);
    // The crash: every faultline process of this run dies at once.
    for p in holders.iter().chain(st.delay_holder.iter()) {
        let _ = kill(Pid::from_raw(p.pid), Signal::SIGKILL);
    }
    kill(Pid::from_raw(owner.id() as i32), Signal::SIGKILL).unwrap();
    let _ = owner.wait();
    assert!(
        servers.iter().all(|p| p.is_alive()),
        "servers should survive the crash"
    );
    // Leftovers are explained to the user.
    err2(
        &["lab", "up", "--nodes", "2", "--name", "after"],
        &["faultline clean"],
    );
    let s = fl(&["lab", "status", "--all"]);
    assert!(String::from_utf8_lossy(&s.stdout).contains("STALE"));

    let out = ok(&["clean"]);
    assert!(out.contains("removed lab crash"), "{out}");
    for p in &servers {
        assert!(!p.is_alive(), "server {} survived clean", p.pid);
    }
    drop(fwd);
    assert_clean();
    assert_eq!(ok(&["clean"]).trim(), "nothing to clean");
    let _ = std::fs::remove_dir_all("/tmp/faultline-test-crash");
}

#[test]
fn ctrl_c_sigterm_and_panic_tear_down() {
    let Some(_g) = guard("ctrl_c_sigterm_and_panic_tear_down") else {
        return;
    };
    assert_clean();
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        let mut c = foreground("fg", 3, &[]);
        let lab = Lab::open("fg").unwrap();
        echo_everywhere(&lab, 7000);
        ok(&["nemesis", "--name", "fg", "partition", "one"]);
        let pids: Vec<_> = Lab::open("fg")
            .unwrap()
            .state
            .servers
            .iter()
            .filter_map(|s| s.process)
            .collect();
        kill(Pid::from_raw(c.id() as i32), sig).unwrap();
        let st = wait_exit(&mut c);
        assert!(st.success(), "{sig}: {st}");
        assert!(
            pids.iter().all(|p| !p.is_alive()),
            "{sig}: servers survived"
        );
        assert_clean();
    }
    let mut c = foreground("pan", 2, &["--panic-after-up"]);
    let st = wait_exit(&mut c);
    assert_eq!(st.code(), Some(101), "a panic exits with 101");
    assert_clean();
    let _ = std::fs::remove_dir_all("/tmp/faultline-test-fg");
    let _ = std::fs::remove_dir_all("/tmp/faultline-test-pan");
}

#[test]
fn twenty_cycles_and_up_time() {
    let Some(_g) = guard("twenty_cycles_and_up_time") else {
        return;
    };
    assert_clean();
    let mut worst: f64 = 0.0;
    for i in 0..20 {
        let t0 = Instant::now();
        ok(&[
            "lab",
            "up",
            "--nodes",
            "5",
            "--name",
            "cyc",
            "--dir",
            "/tmp/faultline-test-cyc",
        ]);
        let took = t0.elapsed().as_secs_f64();
        worst = worst.max(took);
        if i == 0 {
            echo_everywhere(&Lab::open("cyc").unwrap(), 7000);
        }
        ok(&["lab", "down", "--name", "cyc"]);
        assert_clean();
    }
    println!("lab up --nodes 5: worst of 20 runs {worst:.3} s (whole process)");
    assert!(worst < 1.0, "lab up --nodes 5 took {worst:.3} s");
    let _ = std::fs::remove_dir_all("/tmp/faultline-test-cyc");
}

#[test]
fn leftovers_side_by_side_and_bad_input() {
    let Some(_g) = guard("leftovers_side_by_side_and_bad_input") else {
        return;
    };
    assert_clean();
    // A stray namespace named like ours, recorded nowhere.
    let mut c = sys::tool("ip").unwrap();
    c.args(["netns", "add", "fl-stray-n1"]);
    sys::run(c, None).unwrap();
    err2(
        &["lab", "up", "--nodes", "2", "--name", "x"],
        &["fl-stray-n1", "faultline clean"],
    );
    let out = ok(&["clean"]);
    assert!(out.contains("fl-stray-n1"), "{out}");
    assert_clean();

    // Two labs side by side, on different subnets, isolated from each other.
    let a = up("sidea", 2);
    let b = up("sideb", 2);
    assert_ne!(a.state.subnet, b.state.subnet);
    echo_everywhere(&a, 7000);
    echo_everywhere(&b, 7000);
    assert!(matrix(&a, 7000).values().all(|&c| c));
    assert!(matrix(&b, 7000).values().all(|&c| c));
    err2(
        &["lab", "up", "--nodes", "2", "--name", "sidea"],
        &["already exists"],
    );
    ok(&["nemesis", "--name", "sidea", "partition", "one"]);
    assert!(
        matrix(&b, 7000).values().all(|&c| c),
        "a partition in one lab touched another"
    );
    let status: serde_json::Value =
        serde_json::from_str(&ok(&["lab", "status", "--json", "--name", "sideb"])).unwrap();
    assert_eq!(status["name"], "sideb");
    assert_eq!(status["nodes"][1]["name"], "n2");
    assert!(
        status["nodes"][0]["netns"]
            .as_str()
            .unwrap()
            .starts_with("fl-sideb-")
    );
    assert_eq!(status["control_ip"], b.state.control_ip.to_string());
    down(&a);
    down(&b);

    // Bad input: exit 2, one line naming the input.
    err2(&["lab", "up", "--nodes", "0", "--name", "bad"], &["0"]);
    err2(&["lab", "up", "--nodes", "3", "--name", "Bad!"], &["Bad!"]);
    err2(&["lab", "down", "--name", "nosuch"], &["nosuch"]);
    err2(&["lab", "status", "--name", "nosuch"], &["nosuch"]);
    let o = fl(&["lab", "up", "--nodes", "x"]);
    assert_eq!(o.status.code(), Some(2));
    assert_clean();
}

#[test]
fn needs_root() {
    let Some(_g) = guard("needs_root") else {
        return;
    };
    let setpriv = sys::find_tool("setpriv").expect("needs setpriv: apt-get install -y util-linux");
    // A copy of the binary that user nobody can run.
    let dir = tmp("nobody");
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("faultline");
    std::fs::copy(bin(), &exe).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    for args in [
        vec!["lab", "up", "--nodes", "3"],
        vec!["lab", "down"],
        vec!["lab", "exec", "n1", "--", "true"],
        vec!["nemesis", "heal"],
        vec!["nemesis", "partition", "one"],
        vec!["clean"],
    ] {
        let o = Command::new(&setpriv)
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&exe)
            .args(&args)
            .output()
            .unwrap();
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?} as nobody: {e}");
        assert!(
            e.contains("root") && e.lines().count() == 1,
            "{args:?}: {e}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A run's scratch data directory whose state file is gone (a reboot empties
/// `/run`, not `/var/lib`) is removed by `clean`, with what else the
/// SIGKILLed run left; a `lab up` directory (kept on purpose) and
/// directories faultline did not mark are left alone.
#[test]
fn clean_removes_a_runs_data_directory_that_lost_its_state_file() {
    let Some(_g) = guard("clean_removes_a_runs_data_directory_that_lost_its_state_file") else {
        return;
    };
    assert_clean();
    // Not for clean: a `lab up` directory (its logs are kept after `lab
    // down`), a directory without the mark, one marked for another lab.
    ok(&["lab", "up", "--nodes", "1", "--name", "cleankp"]);
    ok(&["lab", "down", "--name", "cleankp"]);
    let root = std::path::Path::new(faultline::lab::data_dir::ROOT);
    let kept = root.join("cleankp");
    let unmarked = root.join("cleanum");
    let other = root.join("cleanot");
    std::fs::create_dir_all(&unmarked).expect("mkdir");
    std::fs::create_dir_all(&other).expect("mkdir");
    std::fs::write(other.join(faultline::lab::data_dir::MARKER), "cleanxx\n").expect("write");

    let store = tempfile::tempdir().expect("tempdir");
    let mut run = Command::new(bin())
        .arg("run")
        .arg("--store")
        .arg(store.path())
        .args(["--no-progress", "--nodes", "2", "--nemesis", "none"])
        .args(["--time-limit", "60"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let lab = format!("r{}", run.id() % 10_000_000);
    let scratch = faultline::lab::data_dir::default_for(&lab);
    let t0 = Instant::now();
    while !Lab::open(&lab).is_ok_and(|l| l.state.complete) {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "lab {lab} never came up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    kill(Pid::from_raw(run.id() as i32), Signal::SIGKILL).expect("SIGKILL");
    let _ = run.wait();
    assert!(scratch.is_dir(), "{} exists", scratch.display());
    std::fs::remove_file(faultline::lab::state::path(&lab)).expect("forget the state");

    let out = ok(&["clean"]);
    assert!(
        out.contains(&format!(
            "removed unrecorded data directory {}",
            scratch.display()
        )),
        "{out}"
    );
    assert!(!scratch.exists(), "{} is left", scratch.display());
    for d in [&kept, &unmarked, &other] {
        assert!(d.is_dir(), "clean removed {}", d.display());
        let _ = std::fs::remove_dir_all(d);
    }
    assert_clean();
}
