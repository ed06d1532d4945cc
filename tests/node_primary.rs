//! `faultline node --mode primary`: unavailable without a majority (never a
//! false `ok`), available again after SIGCONT, and a SIGKILLed primary
//! recovers acknowledged writes from its peers; restarted replicas catch
//! up; forwarding from replicas, with `info` when the primary is stopped.

mod node_common;

use std::time::{Duration, Instant};

use node_common::{Cluster, ty};
use serde_json::{Value, json};

const ARGS: &[&str] = &["--mode", "primary", "--request-timeout-ms", "400"];

fn cluster() -> Cluster {
    let c = Cluster::start(3, ARGS);
    for i in 0..3 {
        c.until_ok(i, "write", "warmup", json!(i), 10);
    }
    c
}

#[test]
fn no_majority_means_no_ok_until_sigcont() {
    let c = cluster();
    c.until_ok(0, "write", "x", json!(1), 5);
    c.pause(1);
    c.pause(2);
    let mut n1 = c.conn(0);
    for i in 0..5 {
        let t = Instant::now();
        let r = n1.call("write", "x", json!(10 + i));
        assert!(
            matches!(ty(&r), "info" | "fail"),
            "write with no majority: {r}"
        );
        assert!(r["error"].is_string(), "{r}");
        assert!(t.elapsed() < Duration::from_secs(2), "bounded: {r}");
        let r = n1.call("read", "x", Value::Null);
        assert_ne!(ty(&r), "ok", "read with no majority: {r}");
        let r = n1.call("cas", "x", json!([1, 2]));
        assert_ne!(ty(&r), "ok", "cas with no majority: {r}");
    }
    c.resume(1);
    c.resume(2);
    c.until_ok(0, "write", "x", json!(99), 10);
    let r = c.conn(0).call("read", "x", Value::Null);
    assert_eq!((ty(&r), &r["value"]), ("ok", &json!(99)), "{r}");
    // With one replica stopped a majority remains.
    c.pause(2);
    c.until_ok(0, "write", "x", json!(100), 10);
    let r = c.conn(1).call("read", "x", Value::Null);
    assert_eq!((ty(&r), &r["value"]), ("ok", &json!(100)), "via n2: {r}");
    c.resume(2);
}

#[test]
fn killed_primary_recovers_acknowledged_writes() {
    let mut c = cluster();
    let mut acked = Vec::new();
    for i in 0..30 {
        let at = i % 3;
        let r = c.conn(at).call("write", &format!("k{i}"), json!(i));
        assert_eq!(ty(&r), "ok", "{r}");
        acked.push(i);
        let r = c.conn(at).call("add", "set", json!(i));
        assert_eq!(ty(&r), "ok", "{r}");
        let r = c.conn(at).call("incr", "ctr", json!(1));
        assert_eq!(ty(&r), "ok", "{r}");
    }
    c.restart(0);
    // Serving again needs the recovery from both peers.
    c.until_ok(0, "read", "k0", Value::Null, 10);
    for i in acked {
        let r = c.conn(0).call("read", &format!("k{i}"), Value::Null);
        assert_eq!((ty(&r), &r["value"]), ("ok", &json!(i)), "k{i}: {r}");
    }
    let r = c.conn(0).call("read", "set", Value::Null);
    assert_eq!(r["value"], json!((0..30).collect::<Vec<_>>()), "{r}");
    let r = c.conn(0).call("read", "ctr", Value::Null);
    assert_eq!(r["value"], json!(30), "{r}");
    let log = c.log(0);
    assert!(log.contains("recovered seq"), "{log}");
    // New writes continue from the recovered state, on every node.
    let r = c.conn(2).call("incr", "ctr", json!(5));
    assert_eq!(ty(&r), "ok", "{r}");
    let r = c.conn(1).call("read", "ctr", Value::Null);
    assert_eq!(r["value"], json!(35), "{r}");
}

#[test]
fn restarted_replica_catches_up() {
    let mut c = cluster();
    for i in 0..20 {
        let r = c.conn(0).call("write", &format!("k{i}"), json!(i));
        assert_eq!(ty(&r), "ok", "{r}");
    }
    c.restart(1);
    // With n3 stopped, writes need the restarted n2: it must have caught up
    // (a snapshot) to acknowledge.
    c.pause(2);
    c.until_ok(0, "write", "after", json!(1), 10);
    let d = c.conn(1).call("dump", "", Value::Null);
    for i in 0..20 {
        assert_eq!(d["value"][format!("k{i}")], json!(i), "{d}");
    }
    assert_eq!(d["value"]["after"], json!(1), "{d}");
    assert!(c.log(1).contains("resync"), "{}", c.log(1));
    c.resume(2);
}

#[test]
fn forwarding_and_a_stopped_primary() {
    let c = cluster();
    let mut n2 = c.conn(1);
    let r = n2.call("write", "f", json!("via-n2"));
    assert_eq!(ty(&r), "ok", "{r}");
    let r = c.conn(2).call("read", "f", Value::Null);
    assert_eq!(r["value"], json!("via-n2"), "{r}");
    c.pause(0);
    let t = Instant::now();
    let r = n2.call("write", "f", json!("lost?"));
    assert_eq!(ty(&r), "info", "forward to a stopped primary: {r}");
    assert!(t.elapsed() < Duration::from_secs(2), "bounded");
    let r = n2.call("read", "f", Value::Null);
    assert_ne!(ty(&r), "ok", "{r}");
    c.resume(0);
    // The info write may or may not have happened; either way the store
    // serves again.
    let r = c.until_ok(1, "read", "f", Value::Null, 10);
    assert!(
        r["value"] == json!("via-n2") || r["value"] == json!("lost?"),
        "{r}"
    );
    c.until_ok(1, "write", "f", json!("again"), 10);
    let r = c.conn(0).call("read", "f", Value::Null);
    assert_eq!(r["value"], json!("again"), "{r}");
}
