//! The async `NodeClient`: definite errors when nothing was sent, indefinite
//! ones on timeouts, and a fresh connection after an indefinite error so
//! that a late reply is never taken for a newer request's.

mod node_common;

use std::net::SocketAddr;
use std::time::Duration;

use faultline::node::{ClientError, NodeClient, ReplyType};
use node_common::{Cluster, free_ports};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(2);

#[tokio::test]
async fn connect_refused_is_definite() {
    let port = free_ports(1)[0];
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    match NodeClient::connect(addr, T).await {
        Err(ClientError::Definite(e)) => assert!(e.contains("connect"), "{e}"),
        Err(e) => panic!("expected a definite error, got {e:?}"),
        Ok(_) => panic!("connected to a free port"),
    }
}

#[tokio::test]
async fn timeout_is_indefinite_and_the_late_reply_is_never_matched() {
    let c = Cluster::start(1, &["--mode", "primary"]);
    c.until_ok(0, "write", "x", json!(0), 5);
    let mut cl = NodeClient::connect(c.addrs[0], T).await.expect("connect");
    let r = cl.call("write", "x", json!(1), T).await.expect("write");
    assert_eq!(r.kind, ReplyType::Ok);
    assert_eq!(r.value, json!(1));
    c.pause(0);
    match cl
        .call("write", "x", json!(2), Duration::from_millis(300))
        .await
    {
        Err(ClientError::Indefinite(e)) => assert!(e.contains("timeout"), "{e}"),
        other => panic!("expected an indefinite timeout, got {other:?}"),
    }
    assert!(cl.needs_reconnect());
    c.resume(0);
    // The node now answers the write above on the old connection; the
    // client reads on a new one, and gets the read's own reply.
    let r = cl.call("read", "x", Value::Null, T).await.expect("read");
    assert_eq!(r.kind, ReplyType::Ok);
    assert_eq!(r.value, json!(2), "the timed-out write took effect");
    let r = cl.call("ping", "", Value::Null, T).await.expect("ping");
    assert_eq!(r.value, json!("n1"));
}

#[tokio::test]
async fn a_restarted_node_is_reconnected() {
    let mut c = Cluster::start(1, &["--mode", "async"]);
    let mut cl = NodeClient::connect(c.addrs[0], T).await.expect("connect");
    let r = cl.call("add", "s", json!(1), T).await.expect("add");
    assert_eq!(r.kind, ReplyType::Ok);
    c.restart(0);
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The idle connection was closed by the old process: the client sees it
    // and reconnects instead of sending into it.
    let r = cl
        .call("read", "s", Value::Null, T)
        .await
        .expect("read after restart");
    assert_eq!(r.value, Value::Null, "async restart loses everything");
    let r = cl.call("bogus", "s", Value::Null, T).await.expect("reply");
    assert_eq!(r.kind, ReplyType::Fail);
    assert!(r.error.unwrap_or_default().contains("unknown f"));
}

#[tokio::test]
async fn a_stopped_node_gives_a_bounded_indefinite_error() {
    let c = Cluster::start(1, &["--mode", "quorum"]);
    let mut cl = NodeClient::connect(c.addrs[0], T).await.expect("connect");
    c.pause(0);
    let t = std::time::Instant::now();
    let e = cl
        .call("read", "x", Value::Null, Duration::from_millis(200))
        .await;
    assert!(matches!(e, Err(ClientError::Indefinite(_))), "{e:?}");
    assert!(t.elapsed() < Duration::from_secs(1));
    // Reconnecting to a stopped node: the kernel accepts, nobody answers.
    let e = cl
        .call("read", "x", Value::Null, Duration::from_millis(200))
        .await;
    assert!(e.is_err(), "{e:?}");
    c.resume(0);
    let r = cl.call("read", "x", Value::Null, T).await.expect("read");
    assert_eq!(r.kind, ReplyType::Ok);
}
