//! Helpers shared by the real-store tests (`run_etcd`, `run_redis`,
//! `run_postgres`, `run_external`): running `faultline run`, reading the
//! stored run, and the store binaries, which must be installed (they FAIL
//! loudly otherwise, naming the install command).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::lab_common::bin;

/// The command `faultline run --store STORE --no-progress ARGS`.
pub fn run_command(store: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.arg("run")
        .arg("--store")
        .arg(store)
        .arg("--no-progress")
        .args(args);
    c
}

/// Runs `faultline run --store STORE --no-progress ARGS`.
pub fn run(store: &Path, args: &[&str]) -> Output {
    run_command(store, args).output().expect("runs faultline")
}

/// stdout and stderr, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The newest run directory.
pub fn latest(store: &Path) -> PathBuf {
    std::fs::canonicalize(store.join("latest")).expect("store/latest")
}

/// The newest run's results.json.
pub fn results(store: &Path) -> Value {
    let p = latest(store).join("results.json");
    serde_json::from_str(&std::fs::read_to_string(&p).expect("results.json")).expect("JSON")
}

/// The newest run's history.
pub fn history(store: &Path) -> Vec<Value> {
    std::fs::read_to_string(latest(store).join("history.jsonl"))
        .expect("history")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect()
}

/// Events matching `pred`.
pub fn count(h: &[Value], pred: impl Fn(&Value) -> bool) -> usize {
    h.iter().filter(|e| pred(e)).count()
}

/// Asserts that a store binary is installed (CI installs them with
/// scripts/test-all).
pub fn need(program: &str, install: &str) {
    let found = faultline::lab::sys::find_tool(program).is_some()
        || (program == "postgres" && faultline::stores::postgres::bindir().is_some());
    assert!(
        found,
        "`{program}` is not installed; the store tests need it: {install} (scripts/test-all does this)"
    );
}

/// Writes a nemesis timeline into `dir` and returns its path.
pub fn timeline(dir: &Path, json: &str) -> PathBuf {
    let p = dir.join("timeline.json");
    std::fs::write(&p, json).expect("write timeline");
    p
}

/// A directory with a fake `program` that prints a line and exits 3.
pub fn failing_bindir(dir: &Path, programs: &[&str]) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let d = dir.join("fakebin");
    std::fs::create_dir_all(&d).expect("mkdir");
    for p in programs {
        let f = d.join(p);
        std::fs::write(
            &f,
            format!("#!/bin/sh\necho \"fake {p}: refusing to start\" >&2\nexit 3\n"),
        )
        .expect("write");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    d
}

/// Processes whose command line contains `needle` (none must outlive a run).
pub fn processes_with(needle: &str) -> Vec<String> {
    let me = std::process::id().to_string();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) || name == me {
            continue;
        }
        if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
            let c = String::from_utf8_lossy(&c).replace('\0', " ");
            if c.contains(needle) {
                out.push(format!("{name}: {c}"));
            }
        }
    }
    out
}

/// Runs `--db DB` with `bindir=FAKE`, a directory whose `program` prints a
/// line and exits 3 (see [`failing_bindir`]), and asserts what a server
/// that exits at once must give: exit 2 with one error line naming the
/// store's server (`DB on n…`), the exit status and the program's last log
/// line; the server's log `nodes/n1/DB.log` kept in the run directory; no
/// process of the fake program and no lab left.
pub fn assert_server_exits_at_once(store: &Path, db: &str, fake: &Path, program: &str) {
    let bindir = format!("bindir={}", fake.display());
    let o = run(
        store,
        &["--db", db, "--db-opt", &bindir, "--time-limit", "5"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let e = String::from_utf8_lossy(&o.stderr);
    let errors = e
        .lines()
        .filter(|l| l.starts_with("faultline: error"))
        .count();
    assert_eq!(errors, 1, "one error line: {e}");
    for needle in [
        format!("{db} on n"),
        "exited with status 3".to_string(),
        format!("fake {program}: refusing to start"),
    ] {
        assert!(e.contains(&needle), "{needle:?} missing: {e}");
    }
    let log = latest(store).join(format!("nodes/n1/{db}.log"));
    assert!(log.is_file(), "the server's log {}", log.display());
    let left = processes_with(&format!("fakebin/{program}"));
    assert!(left.is_empty(), "processes left: {left:?}");
    crate::lab_common::assert_clean();
}

/// The wall-clock run of the clock tests (tests/run_clock.rs in the lab,
/// tests/run_ssh.rs over SSH): a 3-node built-in store in quorum mode with
/// wall-clock timestamps, register workload of reads and writes (no cas:
/// quorum mode's cas is a read then a write, never atomic), 4 clients at
/// 50 ops/s in all (quorum mode without read repair is not linearizable
/// when a read overlaps a write in progress, so the calm run keeps
/// overlaps rare), 6 s.
pub const WALL_CLOCK_RUN: &[&str] = &[
    "--db",
    "builtin",
    "--db-opt",
    "mode=quorum",
    "--db-opt",
    "timestamps=wall",
    "--nodes",
    "3",
    "--workload",
    "register",
    "--mix",
    "read=0.5,write=0.5",
    "--concurrency",
    "4",
    "--rate",
    "50",
    "--time-limit",
    "6",
    "--quiet",
    "1",
    "--seed",
    "3",
];
