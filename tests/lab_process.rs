//! Done when: kill / start / pause / resume have the observable effect on a
//! real server process started in a node (it stops answering, answers
//! again), signals reach the whole process tree, and bad input is refused
//! with exit 2.

mod lab_common;

use std::net::SocketAddr;
use std::time::Duration;

use faultline::lab::{Lab, ProcId};
use lab_common::*;

fn server(lab: &Lab, service: &str) -> faultline::lab::ServerState {
    Lab::open(lab.name())
        .unwrap()
        .state
        .servers
        .into_iter()
        .find(|s| s.service == service)
        .unwrap_or_else(|| panic!("no server {service}"))
}

#[test]
fn kill_start_pause_resume_a_real_server() {
    let Some(_g) = guard("kill_start_pause_resume_a_real_server") else {
        return;
    };
    let lab = up("proc", 3);
    let name = lab.name().to_string();
    let b = bin().to_string_lossy().into_owned();
    // A server whose answering process is a grandchild (sh forks it), so
    // only tree-wide signals reach it.
    let script = format!("{b} lab echo --port 7000; true");
    ok(&[
        "lab",
        "run",
        "--detach",
        "--name",
        &name,
        "--service",
        "echo",
        "n1",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    let addr = SocketAddr::from((lab.node("n1").unwrap().ip, 7000));
    let t = Duration::from_millis(500);
    wait_answer(addr);
    let first = server(&lab, "echo").process.expect("pid");

    ok(&["nemesis", "--name", &name, "pause", "n1"]);
    assert!(echo_once(addr, t).is_err(), "paused server answered");
    assert_eq!(server(&lab, "echo").status, "paused");
    ok(&["nemesis", "--name", &name, "resume", "n1"]);
    echo_once(addr, Duration::from_secs(2)).expect("resumed server answers");

    ok(&["nemesis", "--name", &name, "kill", "n1"]);
    let e = echo_once(addr, t).expect_err("killed server answered");
    assert!(e.contains("refused"), "killed: {e}");
    assert!(!first.is_alive(), "killed server process still alive");
    let s = server(&lab, "echo");
    assert_eq!(s.status, "killed");
    // The whole tree is gone: nothing is left in the node's namespace.
    let ino = faultline::lab::sys::netns_inode(&lab.node("n1").unwrap().netns).unwrap();
    assert!(
        faultline::lab::proc::pids_in_netns(ino).is_empty(),
        "tree survived kill"
    );

    ok(&["nemesis", "--name", &name, "start", "n1"]);
    wait_answer(addr);
    let second = server(&lab, "echo").process.expect("pid");
    assert_ne!(first, second);
    assert_eq!(server(&lab, "echo").status, "running");

    // Bad input: unknown node, a node without a server, unknown lab.
    err2(&["nemesis", "--name", &name, "kill", "n9"], &["n9"]);
    err2(
        &["nemesis", "--name", &name, "pause", "n2"],
        &["n2", "lab run"],
    );
    err2(&["nemesis", "--name", "nolab", "heal"], &["nolab"]);
    err2(
        &[
            "lab",
            "run",
            "--name",
            &name,
            "n1",
            "--",
            "/nonexistent/server",
        ],
        &["/nonexistent/server"],
    );
    err2(
        &["lab", "exec", "--name", &name, "n7", "--", "true"],
        &["n7"],
    );

    // `lab exec` runs inside the node and passes the exit status through.
    let o = fl(&[
        "lab", "exec", "--name", &name, "n2", "--", "ip", "-4", "-o", "addr", "show", "eth0",
    ]);
    assert!(String::from_utf8_lossy(&o.stdout).contains(&lab.node("n2").unwrap().ip.to_string()));
    assert_eq!(
        fl(&[
            "lab", "exec", "--name", &name, "n2", "--", "sh", "-c", "exit 7"
        ])
        .status
        .code(),
        Some(7)
    );

    // Stopping the holder stops its server and forgets it.
    let holder: ProcId = server(&lab, "echo").holder.expect("holder");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(holder.pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(
        holder.wait_gone(Duration::from_secs(10)),
        "holder did not exit"
    );
    assert!(!second.is_alive(), "server outlived its holder's SIGTERM");
    assert!(Lab::open(&name).unwrap().state.servers.is_empty());

    // A server that exits on its own ends its holder with its status.
    let o = fl(&[
        "lab", "run", "--name", &name, "n2", "--", "sh", "-c", "exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3));
    down(&lab);
    assert_clean();
}

fn wait_answer(addr: SocketAddr) {
    for _ in 0..100 {
        if echo_once(addr, Duration::from_millis(300)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    panic!("{addr} never answered");
}
