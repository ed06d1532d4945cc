//! `faultline node`: the client protocol in every mode (read, write, cas,
//! add, incr, ping, dump, bad requests, pipelining), from the primary and
//! from the other nodes (forwarding), plus the command line (SIGTERM exits
//! 0, bad flags and a taken address exit 2).

mod node_common;

use std::process::Command;

use node_common::{Cluster, bin, free_ports, ty};
use serde_json::{Value, json};

/// Runs the semantics on node `at` with keys prefixed by `p`.
fn semantics(c: &Cluster, at: usize, p: &str) {
    let mut n = c.conn(at);
    let k = |s: &str| format!("{p}{s}");
    let r = n.call("ping", "", Value::Null);
    assert_eq!(r["type"], "ok");
    assert_eq!(r["value"], json!(c.names[at]));

    // Registers.
    let r = n.call("read", &k("x"), Value::Null);
    assert_eq!((ty(&r), &r["value"]), ("ok", &Value::Null), "{r}");
    let r = n.call("write", &k("x"), json!(1));
    assert_eq!((ty(&r), &r["value"]), ("ok", &json!(1)), "{r}");
    let r = n.call("read", &k("x"), Value::Null);
    assert_eq!((ty(&r), &r["value"]), ("ok", &json!(1)), "{r}");
    let r = n.call("cas", &k("x"), json!([2, 3]));
    assert_eq!(ty(&r), "fail", "{r}");
    assert_eq!(r["error"], "cas-mismatch");
    let r = n.call("cas", &k("x"), json!([1, 3]));
    assert_eq!((ty(&r), &r["value"]), ("ok", &json!([1, 3])), "{r}");
    let r = n.call("read", &k("x"), Value::Null);
    assert_eq!(r["value"], json!(3), "{r}");
    let r = n.call("write", &k("doc"), json!({"a": [1, "b"]}));
    assert_eq!(ty(&r), "ok", "{r}");
    let r = n.call("cas", &k("doc"), json!([{"a": [1, "b"]}, null]));
    assert_eq!(ty(&r), "ok", "{r}");
    let r = n.call("cas", &k("absent"), json!([null, 7]));
    assert_eq!(ty(&r), "ok", "cas from null on an absent key: {r}");

    // Sets: sorted, deduplicated.
    for e in [5, 2, 5, 9, 2] {
        let r = n.call("add", &k("s"), json!(e));
        assert_eq!((ty(&r), &r["value"]), ("ok", &json!(e)), "{r}");
    }
    let r = n.call("read", &k("s"), Value::Null);
    assert_eq!(r["value"], json!([2, 5, 9]), "{r}");

    // Counters.
    for d in [3, 4, -2] {
        let r = n.call("incr", &k("c"), json!(d));
        assert_eq!((ty(&r), &r["value"]), ("ok", &json!(d)), "{r}");
    }
    let r = n.call("read", &k("c"), Value::Null);
    assert_eq!(r["value"], json!(5), "{r}");

    // Type errors are failures, not hangs.
    let r = n.call("incr", &k("s"), json!(1));
    assert_eq!(ty(&r), "fail", "{r}");
    let r = n.call("add", &k("c"), json!(1));
    assert_eq!(ty(&r), "fail", "{r}");
}

fn bad_requests(c: &Cluster, at: usize) {
    let mut n = c.conn(at);
    let cases: [(&[u8], u64, &str); 7] = [
        (b"this is not json\n", 0, "bad request"),
        (
            b"{\"id\":11,\"f\":\"frobnicate\",\"key\":\"x\"}\n",
            11,
            "unknown f",
        ),
        (
            b"{\"id\":12,\"f\":\"cas\",\"key\":\"x\",\"value\":5}\n",
            12,
            "cas needs",
        ),
        (
            b"{\"id\":13,\"f\":\"incr\",\"key\":\"x\",\"value\":1.5}\n",
            13,
            "integer",
        ),
        (b"{\"id\":14,\"f\":\"write\",\"value\":1}\n", 14, "key"),
        (b"{\"id\":15,\"key\":\"x\"}\n", 15, "bad request"),
        (b"[1,2,3]\n", 0, "bad request"),
    ];
    for (line, id, why) in cases {
        n.send_raw(line);
        let r = n.recv();
        assert_eq!(ty(&r), "fail", "{}: {r}", String::from_utf8_lossy(line));
        assert_eq!(r["id"], json!(id), "{r}");
        let e = r["error"].as_str().unwrap_or("");
        assert!(e.contains(why), "error {e:?} should say {why:?}");
    }
    // The connection still works after bad requests.
    let r = n.call("ping", "", Value::Null);
    assert_eq!(ty(&r), "ok");
}

fn pipelined(c: &Cluster, at: usize, p: &str) {
    let mut n = c.conn(at);
    let mut batch = String::new();
    for i in 0..20 {
        batch.push_str(&format!(
            "{{\"id\":{},\"f\":\"add\",\"key\":\"{p}pipe\",\"value\":{i}}}\n",
            100 + i
        ));
    }
    batch.push_str(&format!(
        "{{\"id\":200,\"f\":\"read\",\"key\":\"{p}pipe\"}}\n"
    ));
    n.send_raw(batch.as_bytes());
    for i in 0..20 {
        let r = n.recv();
        assert_eq!(r["id"], json!(100 + i), "replies in request order: {r}");
        assert_eq!(ty(&r), "ok", "{r}");
    }
    let r = n.recv();
    assert_eq!(r["id"], 200);
    assert_eq!(r["value"], json!((0..20).collect::<Vec<_>>()));
}

fn dump(c: &Cluster, at: usize, p: &str) {
    let r = c.conn(at).call("dump", "", Value::Null);
    assert_eq!(ty(&r), "ok", "{r}");
    let m = r["value"].as_object().expect("dump is an object");
    assert_eq!(m[&format!("{p}x")], json!(3), "{r}");
    assert_eq!(m[&format!("{p}s")], json!([2, 5, 9]), "{r}");
    assert_eq!(m[&format!("{p}c")], json!(5), "{r}");
}

/// Async replicas read their own copy, which may lag behind a write they
/// just forwarded: check forwarding there, then wait for the copy.
fn async_replica(c: &Cluster, at: usize, p: &str) {
    let mut n = c.conn(at);
    let k = |s: &str| format!("{p}{s}");
    let r = n.call("write", &k("x"), json!(1));
    assert_eq!((ty(&r), &r["value"]), ("ok", &json!(1)), "{r}");
    c.until_reads(at, &k("x"), &json!(1), 5);
    let r = n.call("cas", &k("x"), json!([2, 3]));
    assert_eq!(
        (ty(&r), &r["error"]),
        ("fail", &json!("cas-mismatch")),
        "{r}"
    );
    let r = n.call("cas", &k("x"), json!([1, 3]));
    assert_eq!(ty(&r), "ok", "{r}");
    for e in [5, 2, 5, 9, 2] {
        let r = n.call("add", &k("s"), json!(e));
        assert_eq!(ty(&r), "ok", "{r}");
    }
    for d in [3, 4, -2] {
        let r = n.call("incr", &k("c"), json!(d));
        assert_eq!(ty(&r), "ok", "{r}");
    }
    c.until_reads(at, &k("x"), &json!(3), 5);
    c.until_reads(at, &k("s"), &json!([2, 5, 9]), 5);
    c.until_reads(at, &k("c"), &json!(5), 5);
}

fn all(args: &[&str]) {
    let c = Cluster::start(3, args);
    let is_async = args.contains(&"async");
    // Wait until every node can write (the primary has recovered, the
    // links are up).
    for at in 0..3 {
        c.until_ok(at, "write", "warmup", json!(at), 10);
    }
    for at in 0..3 {
        let p = format!("at{at}-");
        if is_async && at > 0 {
            async_replica(&c, at, &p);
        } else {
            semantics(&c, at, &p);
            pipelined(&c, at, &p);
        }
        bad_requests(&c, at);
    }
    // Every node ends up with everything (async and quorum converge in the
    // background; primary-mode dumps of the primary are committed state).
    for at in 0..3 {
        let t = std::time::Instant::now();
        loop {
            let r = c.conn(at).call("dump", "", Value::Null);
            let ok = (0..3).all(|w| r["value"].get(format!("at{w}-x")) == Some(&json!(3)));
            if ok || t.elapsed().as_secs() > 5 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        for w in 0..3 {
            dump(&c, at, &format!("at{w}-"));
        }
    }
}

#[test]
fn primary_mode_semantics_on_every_node() {
    all(&["--mode", "primary"]);
}

#[test]
fn async_mode_semantics_on_every_node() {
    all(&["--mode", "async"]);
}

#[test]
fn quorum_mode_semantics_on_every_node() {
    all(&["--mode", "quorum"]);
}

#[test]
fn quorum_mode_all_and_one() {
    all(&["--mode", "quorum", "--r", "one", "--w", "all"]);
}

#[test]
fn sigterm_exits_zero() {
    for mode in ["primary", "async", "quorum"] {
        let mut c = Cluster::start(3, &["--mode", mode]);
        for i in 0..3 {
            let s = c.terminate(i);
            assert_eq!(s.code(), Some(0), "{mode} node {i}: {s}");
        }
    }
}

fn node(args: &[&str]) -> (Option<i32>, String) {
    let o = Command::new(bin())
        .arg("node")
        .args(args)
        .output()
        .expect("running faultline node");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn bad_flags_exit_2_naming_the_flag() {
    let cases: [(&[&str], &str); 11] = [
        (&["--listen", "127.0.0.1:1"], "--name"),
        (&["--name", "n1"], "--listen"),
        (
            &[
                "--name",
                "n1",
                "--listen",
                "127.0.0.1:1",
                "--request-timeout-ms",
                "-5",
            ],
            "--request-timeout-ms",
        ),
        (&["--name", "n1", "--listen", "nowhere"], "--listen"),
        (
            &["--name", "n1", "--listen", "127.0.0.1:1", "--peer", "n2"],
            "--peer",
        ),
        (
            &["--name", "n1", "--listen", "127.0.0.1:1", "--mode", "paxos"],
            "--mode",
        ),
        (
            &[
                "--name",
                "n1",
                "--listen",
                "127.0.0.1:1",
                "--peer",
                "n2=127.0.0.1:2",
                "--r",
                "3",
            ],
            "--r",
        ),
        (
            &["--name", "n1", "--listen", "127.0.0.1:1", "--w", "most"],
            "--w",
        ),
        (
            &["--name", "n1", "--listen", "127.0.0.1:1", "--primary", "n7"],
            "--primary",
        ),
        (
            &[
                "--name",
                "n1",
                "--listen",
                "127.0.0.1:1",
                "--request-timeout-ms",
                "0",
            ],
            "--request-timeout-ms",
        ),
        (
            &[
                "--name",
                "n1",
                "--listen",
                "127.0.0.1:1",
                "--peer",
                "n2=127.0.0.1:2",
                "--peer",
                "n2=127.0.0.1:3",
            ],
            "--peer",
        ),
    ];
    for (args, flag) in cases {
        let (code, err) = node(args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.contains(flag), "{args:?}: {err:?} should name {flag}");
    }
}

#[test]
fn address_in_use_exits_2() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    let (code, err) = node(&["--name", "n1", "--listen", &addr]);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains(&addr), "{err}");
    drop(l);
    let _ = free_ports(1);
}

#[test]
fn single_node_cluster_works() {
    for mode in ["primary", "async", "quorum"] {
        let c = Cluster::start(1, &["--mode", mode]);
        c.until_ok(0, "write", "x", json!(1), 5);
        semantics(&c, 0, "solo-");
    }
}
