//! Primary and async modes: one fixed primary sequences every mutation into
//! a log of ops `(seq, key, op)`; one task per replica ships the log in
//! batches (one batch in flight per replica) and brings lagging or restarted
//! replicas back with a full snapshot.
//!
//! - **primary** (CP): a mutation is acknowledged once a majority (the
//!   primary included) holds it; the primary keeps two maps, `latest`
//!   (everything sequenced, against which mutations are evaluated) and
//!   `committed` (what a majority holds, which reads return). A read takes
//!   a ticket from a counter and waits until a majority has answered a
//!   message sent after it (batched: one round of heartbeats serves every
//!   read that arrived before it). On start the primary recovers: it asks
//!   every peer for its (epoch, seq, data), needs a majority of the cluster
//!   counted among its peers (its own memory is gone), takes the highest
//!   (epoch, seq), starts a new epoch above every epoch seen, and serves only
//!   once a majority holds that state.
//! - **async** (AP): a mutation is acknowledged as soon as the primary has
//!   applied it; every node answers reads from its own copy. A restarted
//!   primary starts empty under a new epoch, and replicas that see a new
//!   epoch take its snapshot: acknowledged writes are lost.
//!
//! Requests to a replica that need the primary are forwarded to it over the
//! peer link.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

use super::peer::{CallError, Entry, Link, PeerReq, PeerResp};
use super::protocol::{Func, Reply, Request};
use super::store::{self, Data};
use super::{Mode, NodeConfig, log};

/// Most entries in one `Append`.
const MAX_BATCH: usize = 4096;
/// Entries kept for lagging replicas beyond what every replica has; past
/// it, a lagging replica gets a snapshot.
const LOG_CAP: usize = 200_000;
/// Waiting writes or reads beyond which those whose request has timed out
/// are dropped.
const PRUNE_AT: usize = 4096;
/// A replica hears from the primary at least this often.
const HEARTBEAT: Duration = Duration::from_millis(100);

/// What the primary knows of one replica.
struct Progress {
    /// The next sequence number to send; `None`: probe first.
    next: Option<u64>,
    /// Send a full snapshot next.
    snapshot: bool,
    /// Highest sequence number the replica acknowledged in this epoch.
    matched: u64,
    /// Highest read ticket the replica answered (in this epoch).
    acked_tick: u64,
    /// Ticket carried by the last message sent.
    sent_tick: u64,
    last_sent: Instant,
}

struct St {
    epoch: u64,
    /// Last sequence number applied to `latest`.
    seq: u64,
    latest: Data,
    /// Primary only: set up (recovered, or started) and taking requests.
    initialized: bool,
    /// Primary mode: a majority holds everything up to `base`.
    ready: bool,
    base: u64,
    commit: u64,
    committed: Data,
    /// Entries `log_start+1 ..= seq`.
    log: VecDeque<Entry>,
    log_start: u64,
    peers: Vec<Progress>,
    tick: u64,
    waiters: VecDeque<(u64, oneshot::Sender<()>)>,
    reads: VecDeque<(u64, String, oneshot::Sender<Value>)>,
}

/// The primary/async engine.
pub(crate) struct Repl {
    name: String,
    /// Links to the replicas (on the primary) or to the primary (on a
    /// replica: one link).
    links: Vec<Arc<Link>>,
    is_primary: bool,
    primary_name: String,
    /// Primary mode (wait for a majority) rather than async.
    sync: bool,
    majority: usize,
    timeout: Duration,
    /// Async mode: wait this long before shipping new entries.
    lag: Duration,
    st: Mutex<St>,
    /// One per link: wakes the replication task.
    wake: Vec<Notify>,
    ready_changed: Notify,
}

fn unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
}

impl Repl {
    pub(crate) fn start(cfg: &NodeConfig, links: Vec<Arc<Link>>) -> Arc<Repl> {
        let primary_name = cfg.primary_name().to_string();
        let is_primary = primary_name == cfg.name;
        let sync = cfg.mode == Mode::Primary;
        let now = Instant::now();
        let peers = links
            .iter()
            .map(|_| Progress {
                next: None,
                snapshot: false,
                matched: 0,
                acked_tick: 0,
                sent_tick: 0,
                last_sent: now,
            })
            .collect();
        // An async primary starts at once, empty, under a new epoch; a
        // primary-mode primary recovers first; replicas start empty at
        // epoch 0 and take whatever the primary sends.
        let initialized = is_primary && !sync;
        let repl = Arc::new(Repl {
            name: cfg.name.clone(),
            wake: links.iter().map(|_| Notify::new()).collect(),
            links,
            is_primary,
            primary_name,
            sync,
            majority: cfg.majority(),
            timeout: cfg.request_timeout,
            lag: if sync {
                Duration::ZERO
            } else {
                cfg.replication_lag
            },
            st: Mutex::new(St {
                epoch: if initialized { unix_nanos() } else { 0 },
                seq: 0,
                latest: Data::new(),
                initialized,
                ready: initialized,
                base: 0,
                commit: 0,
                committed: Data::new(),
                log: VecDeque::new(),
                log_start: 0,
                peers,
                tick: 0,
                waiters: VecDeque::new(),
                reads: VecDeque::new(),
            }),
            ready_changed: Notify::new(),
        });
        if is_primary {
            for i in 0..repl.links.len() {
                tokio::spawn(repl.clone().replicate(i));
            }
            if sync {
                tokio::spawn(repl.clone().recover(cfg.cluster_size()));
            } else {
                let epoch = repl.lock().epoch;
                log(
                    &repl.name,
                    format_args!("ready: primary (async), epoch {epoch}, empty"),
                );
            }
        } else {
            log(
                &repl.name,
                format_args!(
                    "ready: replica of {} ({})",
                    repl.primary_name,
                    if sync { "primary mode" } else { "async mode" }
                ),
            );
        }
        repl
    }

    fn lock(&self) -> MutexGuard<'_, St> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn links_up(&self) -> usize {
        self.links.iter().filter(|l| l.is_up()).count()
    }

    fn wake_all(&self) {
        for w in &self.wake {
            w.notify_one();
        }
    }

    /// The node's own copy, for `dump`: the committed state on a
    /// primary-mode primary, everything applied elsewhere.
    pub(crate) fn dump(&self) -> Value {
        let st = self.lock();
        if self.is_primary && self.sync {
            store::to_json(st.committed.iter())
        } else {
            store::to_json(st.latest.iter())
        }
    }

    /// Handles read, write, cas, add, incr.
    pub(crate) async fn handle(
        &self,
        req: Request,
        func: Func,
        deadline: Instant,
        forwarded: bool,
    ) -> Reply {
        if !self.is_primary {
            if func == Func::Read && !self.sync {
                let v = self.lock().latest.get(&req.key).cloned();
                return Reply::ok(req.id, v.unwrap_or(Value::Null));
            }
            if forwarded {
                return Reply::fail(
                    req.id,
                    req.value,
                    format!(
                        "unavailable: {} is not the primary ({} is)",
                        self.name, self.primary_name
                    ),
                );
            }
            return self.forward(req, func, deadline).await;
        }
        if !self.sync {
            return self.async_primary(req, func);
        }
        if !self.wait_ready(deadline).await {
            return Reply::fail(
                req.id,
                req.value,
                "unavailable: primary recovering its state from a majority",
            );
        }
        let up = self.links_up() + 1;
        if up < self.majority {
            return Reply::fail(
                req.id,
                req.value,
                format!(
                    "unavailable: no majority ({up} of {} nodes connected)",
                    self.links.len() + 1
                ),
            );
        }
        if func == Func::Read {
            self.read(req, deadline).await
        } else {
            self.write(req, func, deadline).await
        }
    }

    fn async_primary(&self, req: Request, func: Func) -> Reply {
        let mut st = self.lock();
        if func == Func::Read {
            let v = st.latest.get(&req.key).cloned();
            return Reply::ok(req.id, v.unwrap_or(Value::Null));
        }
        let op = match store::evaluate(st.latest.get(&req.key), &req.key, func, &req.value) {
            Ok(op) => op,
            Err(r) => return Reply::fail(req.id, req.value, r.message()),
        };
        st.seq += 1;
        let seq = st.seq;
        store::apply(&mut st.latest, &req.key, &op);
        st.log.push_back(Entry(seq, req.key, op));
        drop(st);
        self.wake_all();
        Reply::ok(req.id, req.value)
    }

    async fn write(&self, req: Request, func: Func, deadline: Instant) -> Reply {
        let rx = {
            let mut st = self.lock();
            let op = match store::evaluate(st.latest.get(&req.key), &req.key, func, &req.value) {
                Ok(op) => op,
                Err(r) => return Reply::fail(req.id, req.value, r.message()),
            };
            st.seq += 1;
            let seq = st.seq;
            store::apply(&mut st.latest, &req.key, &op);
            st.log.push_back(Entry(seq, req.key, op));
            let (tx, rx) = oneshot::channel();
            if st.waiters.len() >= PRUNE_AT {
                // Requests that timed out while no majority answered.
                st.waiters.retain(|w| !w.1.is_closed());
            }
            st.waiters.push_back((seq, tx));
            self.advance(&mut st);
            rx
        };
        self.wake_all();
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(())) => Reply::ok(req.id, req.value),
            _ => Reply::info(
                req.id,
                req.value,
                format!(
                    "timeout: not acknowledged by a majority within {} ms",
                    self.timeout.as_millis()
                ),
            ),
        }
    }

    async fn read(&self, req: Request, deadline: Instant) -> Reply {
        let rx = {
            let mut st = self.lock();
            st.tick += 1;
            let t = st.tick;
            let (tx, rx) = oneshot::channel();
            if st.reads.len() >= PRUNE_AT {
                st.reads.retain(|r| !r.2.is_closed());
            }
            st.reads.push_back((t, req.key, tx));
            self.advance(&mut st);
            rx
        };
        self.wake_all();
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(v)) => Reply::ok(req.id, v),
            // A read has no effect: not served is `fail`.
            _ => Reply::fail(
                req.id,
                Value::Null,
                format!(
                    "timeout: a majority did not confirm the primary within {} ms",
                    self.timeout.as_millis()
                ),
            ),
        }
    }

    async fn wait_ready(&self, deadline: Instant) -> bool {
        loop {
            let notified = self.ready_changed.notified();
            if self.lock().ready {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }

    async fn forward(&self, req: Request, func: Func, deadline: Instant) -> Reply {
        let Some(link) = self.links.first() else {
            return Reply::fail(req.id, req.value, "unavailable: no link to the primary");
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        // Leave the primary a little less time than we wait, so that its
        // own answer (even a timeout) makes it back.
        let budget = remaining.saturating_sub((remaining / 10).min(Duration::from_millis(50)));
        let id = req.id;
        let value = req.value.clone();
        let msg = PeerReq::Forward {
            req,
            budget_ms: budget.as_millis() as u64,
        };
        let primary = &self.primary_name;
        match link.call(&msg, remaining).await {
            Ok(PeerResp::Reply(mut r)) => {
                r.id = id;
                r
            }
            Ok(other) => Reply::info(
                id,
                value,
                format!("unexpected answer from primary {primary}: {other:?}"),
            ),
            Err(CallError::NotSent) => Reply::fail(
                id,
                value,
                format!("unavailable: primary {primary} not connected"),
            ),
            Err(e) => {
                let why = match e {
                    CallError::Timeout => format!(
                        "timeout: forwarded to primary {primary}, no answer within {} ms",
                        remaining.as_millis()
                    ),
                    _ => format!("timeout: connection to primary {primary} lost after forwarding"),
                };
                if func == Func::Read {
                    Reply::fail(id, Value::Null, why)
                } else {
                    Reply::info(id, value, why)
                }
            }
        }
    }

    /// Recomputes what a majority holds and has confirmed; releases waiting
    /// writes and reads; trims the log.
    fn advance(&self, st: &mut St) {
        let maj = self.majority;
        if self.sync {
            let mut m: Vec<u64> = st.peers.iter().map(|p| p.matched).collect();
            m.push(st.seq);
            m.sort_unstable_by(|a, b| b.cmp(a));
            let cand = m[maj - 1];
            if cand >= st.base && !st.ready && st.initialized {
                st.ready = true;
                log(
                    &self.name,
                    format_args!(
                        "ready: primary, epoch {}, seq {}, {} keys",
                        st.epoch,
                        st.seq,
                        st.committed.len()
                    ),
                );
                self.ready_changed.notify_waiters();
            }
            if cand > st.commit {
                let St {
                    log,
                    log_start,
                    committed,
                    commit,
                    ..
                } = st;
                let from = (*commit - *log_start) as usize;
                let to = (cand - *log_start) as usize;
                for Entry(_, key, op) in log.range(from..to) {
                    store::apply(committed, key, op);
                }
                *commit = cand;
                while st.waiters.front().is_some_and(|w| w.0 <= cand) {
                    if let Some((_, tx)) = st.waiters.pop_front() {
                        let _ = tx.send(());
                    }
                }
            }
            if st.ready && !st.reads.is_empty() {
                let mut t: Vec<u64> = st.peers.iter().map(|p| p.acked_tick).collect();
                t.push(st.tick);
                t.sort_unstable_by(|a, b| b.cmp(a));
                let confirmed = t[maj - 1];
                while st.reads.front().is_some_and(|r| r.0 <= confirmed) {
                    if let Some((_, key, tx)) = st.reads.pop_front() {
                        let v = st.committed.get(&key).cloned().unwrap_or(Value::Null);
                        let _ = tx.send(v);
                    }
                }
            }
        }
        // Trim: keep what some replica still needs, within LOG_CAP; never
        // what is not yet applied to `committed`.
        let mut keep_from = st.peers.iter().map(|p| p.matched).min().unwrap_or(st.seq);
        let len = (st.seq - st.log_start) as usize;
        if len > LOG_CAP {
            keep_from = keep_from.max(st.seq - LOG_CAP as u64);
        }
        if self.sync {
            keep_from = keep_from.min(st.commit);
        }
        while st.log_start < keep_from && !st.log.is_empty() {
            st.log.pop_front();
            st.log_start += 1;
        }
    }

    /// Primary-mode start: recover the state from a majority of the cluster
    /// counted among the peers.
    async fn recover(self: Arc<Self>, cluster: usize) {
        let need = self.links.len().min(cluster / 2 + 1);
        let mut waiting_logged = false;
        log(
            &self.name,
            format_args!("recovering: asking peers for their state ({need} needed)"),
        );
        let (best, seen_epoch) = loop {
            let mut set = tokio::task::JoinSet::new();
            for l in &self.links {
                let l = l.clone();
                let t = self.timeout;
                set.spawn(async move {
                    let r = l.call(&PeerReq::State, t).await;
                    (l.peer.clone(), r)
                });
            }
            let mut answers = Vec::new();
            while let Some(r) = set.join_next().await {
                if let Ok((peer, Ok(PeerResp::State { epoch, seq, data }))) = r {
                    answers.push((epoch, seq, peer, data));
                }
            }
            if answers.len() >= need {
                let seen = answers.iter().map(|a| a.0).max().unwrap_or(0);
                let best = answers
                    .into_iter()
                    .max_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
                break (best, seen);
            }
            if !waiting_logged {
                log(
                    &self.name,
                    format_args!(
                        "recovering: {} of {need} peers answered, retrying",
                        answers.len()
                    ),
                );
                waiting_logged = true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        {
            let mut st = self.lock();
            let epoch = unix_nanos().max(seen_epoch.saturating_add(1));
            st.epoch = epoch;
            match best {
                Some((e, seq, peer, data)) => {
                    log(
                        &self.name,
                        format_args!(
                            "recovered seq {seq} (epoch {e}, {} keys) from {peer}; new epoch {epoch}",
                            data.len()
                        ),
                    );
                    st.seq = seq;
                    st.committed = data.clone();
                    st.latest = data;
                }
                None => log(
                    &self.name,
                    format_args!("recovered: empty (single node); new epoch {epoch}"),
                ),
            }
            st.base = st.seq;
            st.commit = st.seq;
            st.log_start = st.seq;
            st.log.clear();
            st.initialized = true;
            self.advance(&mut st);
        }
        self.wake_all();
    }

    /// The primary's replication task for replica `i`.
    async fn replicate(self: Arc<Self>, i: usize) {
        let link = self.links[i].clone();
        loop {
            if !link.is_up() {
                link.wait_change(Duration::from_millis(200)).await;
                continue;
            }
            if !self.lag.is_zero() {
                let behind = {
                    let st = self.lock();
                    st.peers[i].next.is_some_and(|n| n <= st.seq)
                };
                if behind {
                    tokio::time::sleep(self.lag).await;
                }
            }
            let built = {
                let mut st = self.lock();
                self.build(&mut st, i)
            };
            let Some((msg, stamp, what)) = built else {
                let since = {
                    let st = self.lock();
                    st.peers[i].last_sent.elapsed()
                };
                let wait = HEARTBEAT
                    .saturating_sub(since)
                    .max(Duration::from_millis(1));
                let _ = tokio::time::timeout(wait, self.wake[i].notified()).await;
                continue;
            };
            if let Some(w) = what {
                log(&self.name, format_args!("{w}"));
            }
            let res = link.call(&msg, self.timeout).await;
            if let Some(pause) = self.on_answer(i, stamp, res) {
                tokio::time::sleep(pause).await;
            }
        }
    }

    /// Takes in a replica's answer; returns how long to pause before the
    /// next message, if at all.
    fn on_answer(
        &self,
        i: usize,
        stamp: u64,
        res: Result<PeerResp, CallError>,
    ) -> Option<Duration> {
        let mut st = self.lock();
        {
            match res {
                Ok(PeerResp::Ack { epoch, seq }) if epoch == st.epoch => {
                    let seq = seq.min(st.seq);
                    let p = &mut st.peers[i];
                    p.matched = p.matched.max(seq);
                    p.next = Some(seq + 1);
                    p.snapshot = false;
                    p.acked_tick = p.acked_tick.max(stamp);
                    self.advance(&mut st);
                }
                Ok(PeerResp::Ack { .. }) => {
                    st.peers[i].next = None;
                }
                Ok(PeerResp::Mismatch { epoch, seq }) => {
                    let (cur, start, last) = (st.epoch, st.log_start, st.seq);
                    let p = &mut st.peers[i];
                    if epoch == cur && seq >= start && seq <= last {
                        p.next = Some(seq + 1);
                    } else {
                        p.snapshot = true;
                    }
                }
                Ok(other) => {
                    drop(st);
                    log(
                        &self.name,
                        format_args!(
                            "replica {}: unexpected answer {other:?}",
                            self.links[i].peer
                        ),
                    );
                    return Some(HEARTBEAT);
                }
                Err(CallError::NotSent) => {}
                Err(_) => {
                    // Unknown: resend from the same point (appends are
                    // idempotent) once the link is back.
                    return Some(Duration::from_millis(10));
                }
            }
        }
        None
    }

    /// The next message for replica `i`, its read ticket and an event to
    /// log; `None` when there is nothing to send yet.
    fn build(&self, st: &mut St, i: usize) -> Option<(PeerReq, u64, Option<String>)> {
        if !st.initialized {
            return None;
        }
        let (epoch, seq, tick, log_start) = (st.epoch, st.seq, st.tick, st.log_start);
        let p = &mut st.peers[i];
        if let Some(next) = p.next
            && next <= seq
            && next <= log_start
        {
            p.snapshot = true;
        }
        let due = p.sent_tick < tick || p.last_sent.elapsed() >= HEARTBEAT;
        let msg = if p.snapshot {
            let data = st.latest.clone();
            let what = format!(
                "resync: sending replica {} a snapshot (epoch {epoch}, seq {seq}, {} keys)",
                self.links[i].peer,
                data.len()
            );
            let p = &mut st.peers[i];
            p.sent_tick = tick;
            p.last_sent = Instant::now();
            return Some((PeerReq::Snapshot { epoch, seq, data }, tick, Some(what)));
        } else if let Some(next) = p.next {
            if next <= seq {
                let from = (next - log_start - 1) as usize;
                let to = ((seq - log_start) as usize).min(from + MAX_BATCH);
                let entries: Vec<Entry> = st.log.range(from..to).cloned().collect();
                PeerReq::Append {
                    epoch,
                    prev: next - 1,
                    entries,
                }
            } else if due {
                PeerReq::Append {
                    epoch,
                    prev: seq,
                    entries: Vec::new(),
                }
            } else {
                return None;
            }
        } else {
            // Probe: where is the replica?
            PeerReq::Append {
                epoch,
                prev: seq,
                entries: Vec::new(),
            }
        };
        let p = &mut st.peers[i];
        p.sent_tick = tick;
        p.last_sent = Instant::now();
        Some((msg, tick, None))
    }

    /// Replica side of replication (and recovery).
    pub(crate) fn handle_peer(&self, from: &str, req: PeerReq) -> PeerResp {
        let mut st = self.lock();
        match req {
            PeerReq::State => PeerResp::State {
                epoch: st.epoch,
                seq: st.seq,
                data: st.latest.clone(),
            },
            PeerReq::Append { .. } | PeerReq::Snapshot { .. } if self.is_primary => {
                PeerResp::Error(format!(
                    "{} is the primary; {from} sent it replication",
                    self.name
                ))
            }
            PeerReq::Append {
                epoch,
                prev,
                entries,
            } => {
                if epoch != st.epoch || prev > st.seq {
                    return PeerResp::Mismatch {
                        epoch: st.epoch,
                        seq: st.seq,
                    };
                }
                for Entry(seq, key, op) in entries {
                    if seq <= st.seq {
                        continue;
                    }
                    if seq != st.seq + 1 {
                        break;
                    }
                    store::apply(&mut st.latest, &key, &op);
                    st.seq = seq;
                }
                PeerResp::Ack {
                    epoch: st.epoch,
                    seq: st.seq,
                }
            }
            PeerReq::Snapshot { epoch, seq, data } => {
                log(
                    &self.name,
                    format_args!(
                        "resync: snapshot from {from}: epoch {epoch} (was {}), seq {seq} (was {}), {} keys (had {})",
                        st.epoch,
                        st.seq,
                        data.len(),
                        st.latest.len()
                    ),
                );
                st.epoch = epoch;
                st.seq = seq;
                st.latest = data;
                PeerResp::Ack { epoch, seq }
            }
            PeerReq::Forward { .. } | PeerReq::Quorum { .. } => {
                PeerResp::Error("not a primary/async-mode request".into())
            }
        }
    }
}
