//! `faultline node --mode quorum`: with R=W=1 a read on one node misses a
//! write acknowledged by another while the replicas cannot talk (then
//! converges through the queued writes); with R=W=2 reads see acknowledged
//! writes; without W replicas, writes are not `ok`.

mod node_common;

use node_common::{Cluster, ty};
use serde_json::{Value, json};

fn cluster(r: &str, w: &str) -> Cluster {
    let c = Cluster::start(
        3,
        &[
            "--mode",
            "quorum",
            "--r",
            r,
            "--w",
            w,
            "--request-timeout-ms",
            "400",
        ],
    );
    for i in 0..3 {
        c.until_ok(i, "write", "warmup", json!(i), 10);
    }
    // A write needs two replicas; the warmup can pass with one link missing.
    c.until_meshed(10);
    c
}

/// n3 down (killed: a stopped process would still receive into its
/// socket buffer) while n1 takes a write; then n1 stopped, so that it
/// cannot resend the write, and n3 back, empty. At R=1 n2 is stopped too
/// (a restarted node is sent its peers' data as they connect): the read on
/// n3 answers from n3 alone. At R=2 it answers from n3 and n2.
fn scenario(c: &mut Cluster, stop_n2: bool) -> Value {
    c.until_ok(0, "write", "x", json!(0), 5);
    c.until_reads(2, "x", &json!(0), 5);
    c.kill(2);
    let r = c.conn(0).call("write", "x", json!(1));
    assert_eq!(ty(&r), "ok", "{r}");
    c.until_reads(1, "x", &json!(1), 5);
    c.pause(0);
    if stop_n2 {
        c.pause(1);
    }
    c.restart(2);
    c.until_ok(2, "read", "x", Value::Null, 5)
}

#[test]
fn r1_w1_reads_miss_acknowledged_writes_then_converge() {
    let mut c = cluster("1", "1");
    let r = scenario(&mut c, true);
    assert_eq!(
        r["value"],
        Value::Null,
        "R=1 misses the acknowledged write: {r}"
    );
    c.resume(0);
    c.resume(1);
    // n1 resends the write n3 missed (hinted handoff), and n1 and n2 send
    // the restarted n3 what they hold.
    c.until_reads(2, "x", &json!(1), 10);
}

#[test]
fn r2_w2_reads_see_acknowledged_writes() {
    let mut c = cluster("quorum", "quorum");
    let r = scenario(&mut c, false);
    assert_eq!((ty(&r), &r["value"]), ("ok", &json!(1)), "R+W>N: {r}");
    // n2 and n3 are a majority: writes work without n1.
    let r = c.conn(2).call("write", "x", json!(2));
    assert_eq!(ty(&r), "ok", "{r}");
    let r = c.conn(1).call("read", "x", Value::Null);
    assert_eq!(r["value"], json!(2), "{r}");
    c.resume(0);
    c.until_reads(0, "x", &json!(2), 10);
}

#[test]
fn a_restarted_node_gets_its_peers_data() {
    let mut c = cluster("1", "1");
    for i in 0..10 {
        c.until_ok(0, "write", &format!("k{i}"), json!(i), 5);
    }
    c.until_reads(2, "k9", &json!(9), 5);
    c.restart(2);
    for i in 0..10 {
        c.until_reads(2, &format!("k{i}"), &json!(i), 5);
    }
    assert!(c.log(0).contains("bootstrap"), "{}", c.log(0));
}

#[test]
fn no_write_quorum_is_never_ok() {
    let c = cluster("2", "2");
    c.pause(1);
    c.pause(2);
    for i in 0..3 {
        let r = c.conn(0).call("write", "x", json!(i));
        assert!(matches!(ty(&r), "info" | "fail"), "{r}");
        let r = c.conn(0).call("read", "x", Value::Null);
        assert_ne!(ty(&r), "ok", "{r}");
        let r = c.conn(0).call("cas", "x", json!([0, 1]));
        assert_ne!(ty(&r), "ok", "{r}");
    }
    c.resume(1);
    c.resume(2);
    c.until_ok(0, "write", "x", json!(7), 10);
    let r = c.conn(2).call("read", "x", Value::Null);
    assert_eq!(r["value"], json!(7), "{r}");
}
