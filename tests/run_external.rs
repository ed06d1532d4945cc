//! `faultline run --db external` with the example Python adapter
//! (examples/adapters/builtin_adapter.py) against the built-in store.

mod lab_common;
mod stores_common;

use lab_common::{assert_clean, err2, guard};
use stores_common::*;

fn adapter() -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/adapters/builtin_adapter.py");
    format!("command=python3 {}", p.display())
}

#[test]
fn the_example_adapter_runs_a_full_run() {
    let Some(_g) = guard("the_example_adapter_runs_a_full_run") else {
        return;
    };
    need("python3", "apt-get install -y python3");
    let store = tempfile::tempdir().expect("tempdir");
    let o = run(
        store.path(),
        &[
            "--db",
            "external",
            "--db-opt",
            &adapter(),
            "--db-opt",
            "server=builtin",
            "--workload",
            "kv",
            "--nemesis",
            "partition,kill",
            "--nemesis-interval",
            "4",
            "--time-limit",
            "15",
            // Bounded, so that checking the history stays short.
            "--rate",
            "300",
            "--quiet",
            "1",
            "--seed",
            "2",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let r = results(store.path());
    assert_eq!(r["checks"]["linearizable"]["valid"], true, "{r}");
    let h = history(store.path());
    assert!(count(&h, |e| e["type"] == "ok") >= 1000);
    assert!(count(&h, |e| e["process"] == "nemesis") >= 2);
    assert!(count(&h, |e| e["phase"] == "final" && e["type"] == "ok") >= 3 * 8);
    assert!(
        latest(store.path())
            .join("nodes/n1/faultline-node.log")
            .is_file()
    );
    assert!(
        processes_with("builtin_adapter.py").is_empty(),
        "every adapter exited"
    );
    assert_clean();
}

#[test]
fn the_example_adapter_with_a_set() {
    let Some(_g) = guard("the_example_adapter_with_a_set") else {
        return;
    };
    need("python3", "apt-get install -y python3");
    let store = tempfile::tempdir().expect("tempdir");
    let o = run(
        store.path(),
        &[
            "--db",
            "external",
            "--db-opt",
            &adapter(),
            "--db-opt",
            "server=builtin",
            "--db-opt",
            "mode=async",
            "--workload",
            "set",
            "--nemesis",
            "none",
            // Ten Python adapters start at once; on a loaded machine that
            // takes seconds, and a run with no workload operation is
            // (rightly) not valid.
            "--time-limit",
            "8",
            // A set read returns the whole set: checking grows with the
            // square of the operations, so they are bounded.
            "--rate",
            "300",
            "--quiet",
            "1",
            "--seed",
            "2",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(results(store.path())["checks"]["set"]["valid"], true);
    assert_clean();
}

#[test]
fn the_example_adapter_runs_transactions_that_are_not_isolated() {
    let Some(_g) = guard("the_example_adapter_runs_transactions_that_are_not_isolated") else {
        return;
    };
    need("python3", "apt-get install -y python3");
    let store = tempfile::tempdir().expect("tempdir");
    let o = run(
        store.path(),
        &[
            "--db",
            "external",
            "--db-opt",
            &adapter(),
            "--db-opt",
            "server=builtin",
            "--workload",
            "list-append",
            "--nemesis",
            "none",
            // Ten Python adapters take seconds to start on a loaded machine.
            "--time-limit",
            "12",
            "--quiet",
            "1",
            "--seed",
            "2",
        ],
    );
    // One request per micro-op is no transaction: the isolation check
    // finds the interleavings.
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let r = results(store.path());
    let txn = &r["checks"]["isolation"];
    assert_eq!(txn["valid"], false, "{txn}");
    let serializable = txn["models"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["model"] == "serializable"))
        .expect("serializable decided");
    assert_eq!(serializable["valid"], false);
    let h = history(store.path());
    // The adapter filled in what the reads returned; the requests had no key.
    assert!(count(&h, |e| e["f"] == "txn" && e["type"] == "ok") >= 50);
    assert!(h.iter().any(|e| {
        e["type"] == "ok"
            && e["value"]
                .as_array()
                .is_some_and(|m| m.iter().any(|m| m[0] == "r" && m[2].is_array()))
    }));
    assert!(h.iter().all(|e| e["f"] != "txn" || e.get("key").is_none()));
    assert_clean();
}

#[test]
fn external_bad_input_and_servers_that_exit_leave_nothing() {
    let Some(_g) = guard("external_bad_input_and_servers_that_exit_leave_nothing") else {
        return;
    };
    let store = tempfile::tempdir().expect("tempdir");
    let s = store.path().to_string_lossy().to_string();
    err2(
        &["run", "--store", &s, "--db", "external"],
        &["--db external", "command="],
    );
    err2(
        &[
            "run",
            "--store",
            &s,
            "--db",
            "external",
            "--db-opt",
            "command=no-such-adapter-xyz",
        ],
        &["`no-such-adapter-xyz` not found"],
    );
    err2(
        &[
            "run",
            "--store",
            &s,
            "--db",
            "external",
            "--db-opt",
            &adapter(),
            "--db-opt",
            "colour=red",
        ],
        &["--db-opt colour"],
    );
    assert!(!store.path().join("latest").exists(), "nothing was started");
    let o = run(
        store.path(),
        &[
            "--db",
            "external",
            "--db-opt",
            &adapter(),
            "--db-opt",
            "server=echo bye >&2; exit 3",
            "--time-limit",
            "5",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("server on n1 exited with status 3: bye"), "{e}");
    assert!(processes_with("builtin_adapter.py").is_empty());
    assert_clean();
}
