//! `faultline node --mode async`: the primary acknowledges at once (even
//! with every replica stopped), replicas serve stale reads until they catch
//! up, and a SIGKILLed primary comes back empty and takes the acknowledged
//! data with it everywhere (replicas resync to the new epoch).

mod node_common;

use std::time::{Duration, Instant};

use node_common::{Cluster, ty};
use serde_json::{Value, json};

const ARGS: &[&str] = &["--mode", "async", "--request-timeout-ms", "400"];

fn cluster() -> Cluster {
    let c = Cluster::start(3, ARGS);
    for i in 0..3 {
        c.until_ok(i, "write", "warmup", json!(i), 10);
    }
    c
}

#[test]
fn acks_with_every_replica_stopped() {
    let c = cluster();
    c.pause(1);
    c.pause(2);
    let t = Instant::now();
    let r = c.conn(0).call("write", "x", json!(1));
    assert_eq!(ty(&r), "ok", "async acks at once: {r}");
    assert!(
        t.elapsed() < Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    c.resume(1);
    c.resume(2);
    c.until_reads(1, "x", &json!(1), 10);
    c.until_reads(2, "x", &json!(1), 10);
    // A write forwarded to a stopped primary is unknown.
    c.pause(0);
    let r = c.conn(1).call("write", "y", json!(1));
    assert_eq!(ty(&r), "info", "{r}");
    c.resume(0);
}

#[test]
fn replicas_read_stale_until_they_catch_up() {
    let mut args = ARGS.to_vec();
    args.extend(["--replication-lag-ms", "1500"]);
    let c = Cluster::start(3, &args);
    c.until_ok(0, "write", "x", json!(0), 5);
    c.until_reads(1, "x", &json!(0), 10);
    let r = c.conn(0).call("write", "x", json!(1));
    assert_eq!(ty(&r), "ok", "{r}");
    let t = Instant::now();
    let r = c.conn(1).call("read", "x", Value::Null);
    assert!(t.elapsed() < Duration::from_millis(1000));
    assert_eq!((ty(&r), &r["value"]), ("ok", &json!(0)), "stale read: {r}");
    let r = c.conn(0).call("read", "x", Value::Null);
    assert_eq!(r["value"], json!(1), "the primary has it: {r}");
    c.until_reads(1, "x", &json!(1), 10);
    c.until_reads(2, "x", &json!(1), 10);
}

#[test]
fn killed_primary_loses_acknowledged_writes_everywhere() {
    let mut c = cluster();
    for e in 0..20 {
        let r = c.conn(e % 3).call("add", "s", json!(e));
        assert_eq!(ty(&r), "ok", "{r}");
    }
    let all = json!((0..20).collect::<Vec<_>>());
    for i in 0..3 {
        c.until_reads(i, "s", &all, 5);
    }
    c.restart(0);
    // The new primary is empty; replicas resync to its new epoch.
    for i in 0..3 {
        c.until_reads(i, "s", &Value::Null, 10);
    }
    for i in 1..3 {
        assert!(c.log(i).contains("resync"), "{}", c.log(i));
        let d = c.conn(i).call("dump", "", Value::Null);
        assert!(d["value"].get("s").is_none(), "{d}");
    }
    // And it works again from scratch.
    c.until_ok(2, "add", "s", json!(100), 5);
    c.until_reads(1, "s", &json!([100]), 5);
}
