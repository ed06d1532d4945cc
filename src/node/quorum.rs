//! Quorum mode (Dynamo/Cassandra style): any node coordinates a request.
//!
//! Every value carries a timestamp `(lamport, node name)`; a replica keeps a
//! value only if its timestamp is higher than the one it holds (last write
//! wins). A write takes a timestamp above the coordinator's Lamport clock
//! (or, with `--timestamps wall`, the coordinator's wall clock in µs),
//! applies it locally (one acknowledgement), queues it to every peer, and
//! is `ok` after W acknowledgements in all. A read takes the local value and,
//! when R > 1, asks every peer and answers with the newest of the first R
//! answers. Writes that a peer did not acknowledge stay queued for it and are
//! resent until it does (hinted handoff), so that nodes converge after a
//! partition heals.
//!
//! `cas`, `add` and `incr` read at R, compute, then write at W: they are
//! **not atomic**. Two concurrent `cas` can both succeed and concurrent
//! `incr`s can lose updates, as with any read-modify-write over LWW
//! registers. That is the realistic bug this mode exists to show.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::peer::{Link, PeerReq, PeerResp, Put, Ts, Versioned};
use super::protocol::{Func, Reply, Request};
use super::store::{self, Op};
use super::{NodeConfig, Timestamps, log};

/// The wall clock, in microseconds since the epoch.
fn wall_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Most puts in one message to a peer.
const MAX_BATCH: usize = 4096;
/// Most writes kept for one unreachable peer; the oldest are dropped past
/// it (that peer then misses them until they are overwritten).
const HINT_CAP: usize = 200_000;

/// Answers gathered for one request.
struct Pending {
    need: usize,
    inner: Mutex<(usize, Option<Versioned>)>,
    done: Notify,
}

impl Pending {
    fn new(need: usize, local: Option<Versioned>) -> Arc<Pending> {
        Arc::new(Pending {
            need,
            inner: Mutex::new((1, local)),
            done: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, (usize, Option<Versioned>)> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One more acknowledgement (and value, for reads).
    fn answer(&self, v: Option<Versioned>) {
        let mut g = self.lock();
        g.0 += 1;
        if let Some(v) = v
            && g.1.as_ref().is_none_or(|b| v.1 > b.1)
        {
            g.1 = Some(v);
        }
        if g.0 == self.need {
            self.done.notify_one();
        }
    }

    /// Waits for `need` answers: the newest value, or how many came.
    async fn wait(&self, deadline: Instant) -> Result<Option<Versioned>, usize> {
        loop {
            {
                let g = self.lock();
                if g.0 >= self.need {
                    return Ok(g.1.clone());
                }
            }
            if tokio::time::timeout_at(deadline, self.done.notified())
                .await
                .is_err()
            {
                let g = self.lock();
                return if g.0 >= self.need {
                    Ok(g.1.clone())
                } else {
                    Err(g.0)
                };
            }
        }
    }
}

#[derive(Default)]
struct Queue {
    puts: VecDeque<(Put, Option<Arc<Pending>>)>,
    gets: Vec<(String, Arc<Pending>)>,
    dropped: u64,
}

struct PeerQueue {
    q: Mutex<Queue>,
    wake: Notify,
}

impl PeerQueue {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.q.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct St {
    map: HashMap<String, Versioned>,
    clock: u64,
    /// The last wall-clock timestamp this node gave ([`Timestamps::Wall`]).
    wall: u64,
}

/// The quorum engine.
pub(crate) struct Quorum {
    name: String,
    r: usize,
    w: usize,
    timeout: Duration,
    timestamps: Timestamps,
    links: Vec<Arc<Link>>,
    queues: Vec<PeerQueue>,
    st: Mutex<St>,
}

impl Quorum {
    pub(crate) fn start(cfg: &NodeConfig, links: Vec<Arc<Link>>) -> Arc<Quorum> {
        let q = Arc::new(Quorum {
            name: cfg.name.clone(),
            r: cfg.r,
            w: cfg.w,
            timeout: cfg.request_timeout,
            timestamps: cfg.timestamps,
            queues: links
                .iter()
                .map(|_| PeerQueue {
                    q: Mutex::new(Queue::default()),
                    wake: Notify::new(),
                })
                .collect(),
            links,
            st: Mutex::new(St {
                map: HashMap::new(),
                clock: 0,
                wall: 0,
            }),
        });
        for i in 0..q.links.len() {
            tokio::spawn(q.clone().pump(i));
        }
        log(
            &q.name,
            format_args!("ready: quorum mode, r={} w={}", q.r, q.w),
        );
        q
    }

    fn lock(&self) -> MutexGuard<'_, St> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn links_up(&self) -> usize {
        self.links.iter().filter(|l| l.is_up()).count()
    }

    /// This node's own copy (values only), for `dump`.
    pub(crate) fn dump(&self) -> Value {
        let st = self.lock();
        store::to_json(st.map.iter().map(|(k, v)| (k, &v.0)))
    }

    /// Handles read, write, cas, add, incr.
    pub(crate) async fn handle(&self, req: Request, func: Func, deadline: Instant) -> Reply {
        let up = self.links_up() + 1;
        let need = if func == Func::Read {
            self.r
        } else {
            self.w.max(if func == Func::Write { 1 } else { self.r })
        };
        if up < need {
            return Reply::fail(
                req.id,
                req.value,
                format!(
                    "unavailable: {up} of {} replicas connected, {need} needed",
                    self.links.len() + 1
                ),
            );
        }
        if func == Func::Write {
            return self.write(req, None, deadline).await;
        }
        let current = match self.read(&req.key, deadline).await {
            Ok(v) => v,
            Err(got) => {
                let why = format!(
                    "timeout: {got} of {} replicas answered the read within {} ms",
                    self.r,
                    self.timeout.as_millis()
                );
                let v = if func == Func::Read {
                    Value::Null
                } else {
                    req.value
                };
                return Reply::fail(req.id, v, why);
            }
        };
        if func == Func::Read {
            return Reply::ok(req.id, current.map(|v| v.0).unwrap_or(Value::Null));
        }
        let cur_value = current.as_ref().map(|v| &v.0);
        let op = match store::evaluate(cur_value, &req.key, func, &req.value) {
            Ok(op) => op,
            Err(r) => return Reply::fail(req.id, req.value, r.message()),
        };
        let new_value = match op {
            Op::Set(v) => v,
            op => {
                let mut scratch = store::Data::new();
                if let Some(v) = cur_value {
                    scratch.insert(req.key.clone(), v.clone());
                }
                store::apply(&mut scratch, &req.key, &op);
                scratch.remove(&req.key).unwrap_or(Value::Null)
            }
        };
        let seen = current.map(|v| v.1.0).unwrap_or(0);
        self.write(req, Some((new_value, seen)), deadline).await
    }

    /// Reads `key` at R: local value first, then peers.
    async fn read(&self, key: &str, deadline: Instant) -> Result<Option<Versioned>, usize> {
        let local = self.lock().map.get(key).cloned();
        if self.r == 1 {
            return Ok(local);
        }
        let p = Pending::new(self.r, local);
        for q in &self.queues {
            q.lock().gets.push((key.to_string(), p.clone()));
            q.wake.notify_one();
        }
        p.wait(deadline).await
    }

    /// Writes at W: `value` is the request's own for `write`, or the
    /// computed one (with the highest Lamport counter seen by the read) for
    /// read-modify-write operations.
    async fn write(
        &self,
        req: Request,
        computed: Option<(Value, u64)>,
        deadline: Instant,
    ) -> Reply {
        let (value, seen) = match computed {
            Some((v, s)) => (v, s),
            None => (req.value.clone(), 0),
        };
        let ts = {
            let mut st = self.lock();
            let ts = match self.timestamps {
                Timestamps::Lamport => {
                    st.clock = st.clock.max(seen) + 1;
                    Ts(st.clock, self.name.clone())
                }
                // This node's wall clock, strictly increasing here only:
                // what other nodes have seen does not move it.
                Timestamps::Wall => {
                    st.wall = (st.wall + 1).max(wall_micros());
                    Ts(st.wall, self.name.clone())
                }
            };
            let newer = st.map.get(&req.key).is_none_or(|cur| ts > cur.1);
            if newer {
                st.map
                    .insert(req.key.clone(), Versioned(value.clone(), ts.clone()));
            }
            ts
        };
        let p = (self.w > 1).then(|| Pending::new(self.w, None));
        let mut left = self.queues.len();
        let mut key = Some(req.key);
        let mut value = Some(value);
        for q in &self.queues {
            left -= 1;
            // Move the key and value into the last queue, clone for others.
            let (k, v) = if left == 0 {
                (
                    key.take().unwrap_or_default(),
                    value.take().unwrap_or(Value::Null),
                )
            } else {
                (
                    key.clone().unwrap_or_default(),
                    value.clone().unwrap_or(Value::Null),
                )
            };
            let mut g = q.lock();
            if g.puts.len() >= HINT_CAP {
                g.puts.pop_front();
                g.dropped += 1;
            }
            g.puts
                .push_back((Put(k, Versioned(v, ts.clone())), p.clone()));
            drop(g);
            q.wake.notify_one();
        }
        let Some(p) = p else {
            return Reply::ok(req.id, req.value);
        };
        match p.wait(deadline).await {
            Ok(_) => Reply::ok(req.id, req.value),
            Err(got) => Reply::info(
                req.id,
                req.value,
                format!(
                    "timeout: {got} of {} replicas acknowledged the write within {} ms",
                    self.w,
                    self.timeout.as_millis()
                ),
            ),
        }
    }

    /// Ships queued puts and gets to peer `i`, one batch in flight; puts
    /// that were not acknowledged are resent.
    async fn pump(self: Arc<Self>, i: usize) {
        let link = self.links[i].clone();
        let queue = &self.queues[i];
        let mut was_dropping = 0;
        let mut synced = 0;
        loop {
            if link.is_up() && link.peer_incarnation() != synced {
                synced = link.peer_incarnation();
                self.bootstrap(i);
            }
            let empty = {
                let g = queue.lock();
                g.puts.is_empty() && g.gets.is_empty()
            };
            if empty {
                // Also look at the link now and then (bootstrap).
                let _ =
                    tokio::time::timeout(Duration::from_millis(200), queue.wake.notified()).await;
                continue;
            }
            if !link.is_up() {
                // Gets cannot wait (their requests time out); puts stay as
                // hints until the peer is back.
                queue.lock().gets.clear();
                link.wait_change(Duration::from_millis(200)).await;
                continue;
            }
            let (puts, pendings, gets, getters, dropped) = {
                let mut g = queue.lock();
                let n = g.puts.len().min(MAX_BATCH);
                let mut puts = Vec::with_capacity(n);
                let mut pendings = Vec::with_capacity(n);
                for (put, p) in g.puts.drain(..n) {
                    puts.push(put);
                    pendings.push(p);
                }
                let (gets, getters): (Vec<String>, Vec<Arc<Pending>>) =
                    std::mem::take(&mut g.gets).into_iter().unzip();
                (puts, pendings, gets, getters, g.dropped)
            };
            if dropped != was_dropping {
                log(
                    &self.name,
                    format_args!(
                        "peer {}: {dropped} queued writes dropped (more than {HINT_CAP} pending)",
                        link.peer
                    ),
                );
                was_dropping = dropped;
            }
            let msg = PeerReq::Quorum { puts, gets };
            match link.call(&msg, self.timeout).await {
                Ok(PeerResp::Quorum { gets: answers }) => {
                    let mut top = 0;
                    for p in pendings.iter().flatten() {
                        p.answer(None);
                    }
                    for (p, a) in getters.iter().zip(answers) {
                        if let Some(v) = &a {
                            top = top.max(v.1.0);
                        }
                        p.answer(a);
                    }
                    if top > 0 {
                        let mut st = self.lock();
                        st.clock = st.clock.max(top);
                    }
                }
                other => {
                    if let Ok(resp) = other {
                        log(
                            &self.name,
                            format_args!("peer {}: unexpected answer {resp:?}", link.peer),
                        );
                    }
                    // Unknown or refused: put the writes back in front.
                    let PeerReq::Quorum { puts, .. } = msg else {
                        continue;
                    };
                    {
                        let mut g = queue.lock();
                        for (put, p) in puts.into_iter().zip(pendings).rev() {
                            g.puts.push_front((put, p));
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    /// Queues everything this node holds for peer `i`, which has just
    /// (re)started empty: in-memory nodes rebuild from their peers (last
    /// write wins keeps this safe).
    fn bootstrap(&self, i: usize) {
        let all: Vec<Put> = {
            let st = self.lock();
            st.map
                .iter()
                .map(|(k, v)| Put(k.clone(), v.clone()))
                .collect()
        };
        if all.is_empty() {
            return;
        }
        log(
            &self.name,
            format_args!(
                "bootstrap: sending {} keys to peer {} (new incarnation)",
                all.len(),
                self.links[i].peer
            ),
        );
        let q = &self.queues[i];
        {
            let mut g = q.lock();
            for put in all.into_iter().rev() {
                g.puts.push_front((put, None));
            }
        }
        q.wake.notify_one();
    }

    /// Replica side: store newer puts, answer gets.
    pub(crate) fn handle_peer(&self, req: PeerReq) -> PeerResp {
        let PeerReq::Quorum { puts, gets } = req else {
            return PeerResp::Error("not a quorum-mode request".into());
        };
        let mut st = self.lock();
        for Put(key, v) in puts {
            st.clock = st.clock.max(v.1.0);
            match st.map.get_mut(&key) {
                Some(cur) => {
                    if v.1 > cur.1 {
                        *cur = v;
                    }
                }
                None => {
                    st.map.insert(key, v);
                }
            }
        }
        let gets = gets.iter().map(|k| st.map.get(k).cloned()).collect();
        PeerResp::Quorum { gets }
    }
}
