//! Node-to-node messages and links.
//!
//! Peers talk on the same port as clients: a connection whose first line is
//! a peer hello (`{"faultline-peer":"n1","mode":"primary"}`) is a peer
//! connection, answered with the same hello naming the server. After it,
//! each side sends frames `{"rpc":<u64>,"msg":...}`, one JSON object per line;
//! the initiator sends requests ([`PeerReq`]) and the acceptor answers each
//! with a frame of the same `rpc` ([`PeerResp`]), possibly out of order.
//!
//! A [`Link`] is this node's outgoing connection to one peer: it reconnects
//! on its own, and [`Link::call`] tells apart a request that was certainly
//! not sent ([`CallError::NotSent`]) from one whose fate is unknown.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Notify, mpsc, oneshot};

use super::protocol::{Reply, Request};
use super::store::{Data, Op};
use super::{Mode, log};

/// The start of every peer hello line (clients never send it).
pub(crate) const HELLO_PREFIX: &[u8] = b"{\"faultline-peer\":";

/// The handshake, sent first by the connecting node and echoed by the
/// accepting one (with its own name).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Hello {
    #[serde(rename = "faultline-peer")]
    pub name: String,
    pub mode: String,
    /// Changes at every start of the node process (it starts empty).
    #[serde(default)]
    pub incarnation: u64,
}

/// One replicated log entry: sequence number, key, op.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Entry(pub u64, pub String, pub Op);

/// Lamport timestamp of a quorum-mode value: counter, then the writing
/// node's name as the tie-breaker.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct Ts(pub u64, pub String);

/// A quorum-mode value with its timestamp.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Versioned(pub Value, pub Ts);

/// A quorum-mode replica write: key, value, timestamp.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Put(pub String, pub Versioned);

use serde_json::Value;

/// A request from one node to another.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum PeerReq {
    /// Primary → replica: entries `prev+1..` of epoch `epoch` (none: a
    /// heartbeat or a probe).
    Append {
        epoch: u64,
        prev: u64,
        entries: Vec<Entry>,
    },
    /// Primary → replica: replace everything with this state.
    Snapshot { epoch: u64, seq: u64, data: Data },
    /// Recovering primary → replica: your epoch, sequence and data.
    State,
    /// Replica → primary: handle this client request within `budget_ms`.
    Forward { req: Request, budget_ms: u64 },
    /// Coordinator → replica (quorum mode): store these if newer, and say
    /// what you hold for these keys.
    Quorum { puts: Vec<Put>, gets: Vec<String> },
}

/// An answer to a [`PeerReq`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum PeerResp {
    /// The replica is at this epoch and sequence number (after applying).
    Ack { epoch: u64, seq: u64 },
    /// The entries do not follow what the replica has: its epoch and
    /// sequence number.
    Mismatch { epoch: u64, seq: u64 },
    /// Answer to [`PeerReq::State`].
    State { epoch: u64, seq: u64, data: Data },
    /// Answer to [`PeerReq::Forward`].
    Reply(Reply),
    /// Answer to [`PeerReq::Quorum`]: one entry per get.
    Quorum { gets: Vec<Option<Versioned>> },
    /// The request makes no sense to this node.
    Error(String),
}

#[derive(Serialize)]
struct FrameOut<'a, T> {
    rpc: u64,
    msg: &'a T,
}

#[derive(Deserialize)]
pub(crate) struct FrameIn<T> {
    pub rpc: u64,
    pub msg: T,
}

/// Serializes a frame as one line.
pub(crate) fn frame<T: Serialize>(rpc: u64, msg: &T) -> Vec<u8> {
    let mut buf = Vec::with_capacity(128);
    // Serializing our own types to a Vec cannot fail (string keys only).
    if serde_json::to_writer(&mut buf, &FrameOut { rpc, msg }).is_err() {
        buf.clear();
        buf.extend_from_slice(b"{}");
    }
    buf.push(b'\n');
    buf
}

/// Why a [`Link::call`] got no answer.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The link was down: the request certainly never left this node.
    NotSent,
    /// No answer within the timeout (the request may have been handled).
    Timeout,
    /// The connection broke after the request was handed to it.
    Closed,
}

struct Inner {
    tx: Option<mpsc::UnboundedSender<Vec<u8>>>,
    pending: HashMap<u64, oneshot::Sender<PeerResp>>,
    generation: u64,
}

/// This node's outgoing connection to one peer.
pub(crate) struct Link {
    /// The peer's name.
    pub peer: String,
    addr: SocketAddr,
    me: String,
    mode: Mode,
    incarnation: u64,
    peer_incarnation: AtomicU64,
    inner: Mutex<Inner>,
    up: AtomicBool,
    /// Notified (all waiters) whenever the link goes up or down.
    pub changed: Notify,
    reset: Notify,
    reset_generation: AtomicU64,
    next_rpc: AtomicU64,
    epoch: Instant,
    last_recv: AtomicU64,
    connect_timeout: Duration,
}

const RETRY: Duration = Duration::from_millis(100);

impl Link {
    /// A link (not yet connecting: spawn [`Link::run`]).
    pub(crate) fn new(
        me: &str,
        mode: Mode,
        incarnation: u64,
        peer: &str,
        addr: SocketAddr,
        request_timeout: Duration,
    ) -> Arc<Link> {
        Arc::new(Link {
            peer: peer.to_string(),
            addr,
            me: me.to_string(),
            mode,
            incarnation,
            peer_incarnation: AtomicU64::new(0),
            inner: Mutex::new(Inner {
                tx: None,
                pending: HashMap::new(),
                generation: 0,
            }),
            up: AtomicBool::new(false),
            changed: Notify::new(),
            reset: Notify::new(),
            reset_generation: AtomicU64::new(u64::MAX),
            next_rpc: AtomicU64::new(1),
            epoch: Instant::now(),
            last_recv: AtomicU64::new(0),
            connect_timeout: request_timeout
                .clamp(Duration::from_millis(100), Duration::from_secs(1)),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The incarnation the peer announced on the current (or last)
    /// connection.
    pub(crate) fn peer_incarnation(&self) -> u64 {
        self.peer_incarnation.load(Ordering::Acquire)
    }

    /// `true` while connected and past the handshake.
    pub(crate) fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Sends a request and waits for its answer. A timeout with nothing at
    /// all received from the peer since the call started drops the
    /// connection (it is probably dead, or the peer stopped), so that
    /// the link reconnects.
    pub(crate) async fn call(
        &self,
        msg: &PeerReq,
        timeout: Duration,
    ) -> Result<PeerResp, CallError> {
        let rpc = self.next_rpc.fetch_add(1, Ordering::Relaxed);
        let buf = frame(rpc, msg);
        let (tx, rx) = oneshot::channel();
        let (sender, generation) = {
            let mut inner = self.lock();
            let Some(s) = inner.tx.clone() else {
                return Err(CallError::NotSent);
            };
            inner.pending.insert(rpc, tx);
            (s, inner.generation)
        };
        let started = self.now();
        if sender.send(buf).is_err() {
            self.lock().pending.remove(&rpc);
            return Err(CallError::NotSent);
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(_)) => Err(CallError::Closed),
            Err(_) => {
                self.lock().pending.remove(&rpc);
                if self.last_recv.load(Ordering::Relaxed) < started {
                    self.reset_generation.store(generation, Ordering::Relaxed);
                    self.reset.notify_one();
                }
                Err(CallError::Timeout)
            }
        }
    }

    /// Waits until the link changes state or `max` passes.
    pub(crate) async fn wait_change(&self, max: Duration) {
        let _ = tokio::time::timeout(max, self.changed.notified()).await;
    }

    /// Keeps the link connected, forever.
    pub(crate) async fn run(self: Arc<Self>) {
        let mut unreachable_logged = false;
        loop {
            match self.connect().await {
                Ok((rd, wr)) => {
                    unreachable_logged = false;
                    let (tx, rx) = mpsc::unbounded_channel();
                    let generation = {
                        let mut inner = self.lock();
                        inner.generation += 1;
                        inner.tx = Some(tx);
                        inner.generation
                    };
                    self.up.store(true, Ordering::Release);
                    self.changed.notify_waiters();
                    log(
                        &self.me,
                        format_args!("peer {} up ({})", self.peer, self.addr),
                    );
                    let writer = tokio::spawn(write_loop(wr, rx));
                    let read = self.read_loop(rd);
                    tokio::pin!(read);
                    let reason = loop {
                        tokio::select! {
                            r = &mut read => break r,
                            _ = self.reset.notified() => {
                                if self.reset_generation.load(Ordering::Relaxed) == generation {
                                    break "no answer within the request timeout".to_string();
                                }
                            }
                        }
                    };
                    writer.abort();
                    let pending = {
                        let mut inner = self.lock();
                        inner.tx = None;
                        std::mem::take(&mut inner.pending)
                    };
                    drop(pending);
                    self.up.store(false, Ordering::Release);
                    self.changed.notify_waiters();
                    log(&self.me, format_args!("peer {} down: {reason}", self.peer));
                }
                Err(e) => {
                    if !unreachable_logged {
                        log(
                            &self.me,
                            format_args!("peer {} unreachable ({}): {e}", self.peer, self.addr),
                        );
                        unreachable_logged = true;
                    }
                }
            }
            tokio::time::sleep(RETRY).await;
        }
    }

    async fn connect(&self) -> Result<(BufReader<OwnedReadHalf>, OwnedWriteHalf), String> {
        let t = self.connect_timeout;
        let stream = match tokio::time::timeout(t, TcpStream::connect(self.addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(format!("connect: {e}")),
            Err(_) => return Err(format!("connect: no answer within {} ms", t.as_millis())),
        };
        let _ = stream.set_nodelay(true);
        let (rd, mut wr) = stream.into_split();
        let mut hello = serde_json::to_vec(&Hello {
            name: self.me.clone(),
            mode: self.mode.as_str().to_string(),
            incarnation: self.incarnation,
        })
        .map_err(|e| e.to_string())?;
        hello.push(b'\n');
        wr.write_all(&hello)
            .await
            .map_err(|e| format!("hello: {e}"))?;
        let mut rd = BufReader::with_capacity(64 * 1024, rd);
        let mut line = Vec::new();
        match tokio::time::timeout(t, rd.read_until(b'\n', &mut line)).await {
            Ok(Ok(n)) if n > 0 => {}
            Ok(Ok(_)) => return Err("closed during hello".into()),
            Ok(Err(e)) => return Err(format!("hello: {e}")),
            Err(_) => return Err(format!("hello: no answer within {} ms", t.as_millis())),
        }
        let h: Hello = serde_json::from_slice(&line)
            .map_err(|_| format!("bad hello: {}", String::from_utf8_lossy(&line).trim()))?;
        if h.name != self.peer {
            return Err(format!(
                "expected node {} but {} answered",
                self.peer, h.name
            ));
        }
        if h.mode != self.mode.as_str() {
            return Err(format!(
                "node {} runs mode {}, this node {}",
                h.name, h.mode, self.mode
            ));
        }
        self.peer_incarnation
            .store(h.incarnation, Ordering::Release);
        Ok((rd, wr))
    }

    async fn read_loop(&self, mut rd: BufReader<OwnedReadHalf>) -> String {
        let mut line = Vec::with_capacity(4096);
        loop {
            line.clear();
            match rd.read_until(b'\n', &mut line).await {
                Ok(0) => return "connection closed".into(),
                Ok(_) => {}
                Err(e) => return format!("read: {e}"),
            }
            self.last_recv.store(self.now(), Ordering::Relaxed);
            let f: FrameIn<PeerResp> = match serde_json::from_slice(&line) {
                Ok(f) => f,
                Err(e) => return format!("bad frame: {e}"),
            };
            let waiter = self.lock().pending.remove(&f.rpc);
            if let Some(w) = waiter {
                let _ = w.send(f.msg);
            }
        }
    }
}

/// Writes queued lines to the socket, flushing when the queue is empty.
pub(crate) async fn write_loop(wr: OwnedWriteHalf, mut rx: mpsc::UnboundedReceiver<Vec<u8>>) {
    let mut w = BufWriter::with_capacity(64 * 1024, wr);
    while let Some(buf) = rx.recv().await {
        if w.write_all(&buf).await.is_err() {
            return;
        }
        while let Ok(buf) = rx.try_recv() {
            if w.write_all(&buf).await.is_err() {
                return;
            }
        }
        if w.flush().await.is_err() {
            return;
        }
    }
}
