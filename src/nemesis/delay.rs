//! Packet delay with jitter.
//!
//! Where the kernel has netem, `tc qdisc replace dev eth0 root netem delay D J`
//! inside the node. Where it does not (this project's CI machine), a
//! userspace holder: faultline's `FL-DELAY` chain (nftables) sends each
//! packet a node receives from a peer to NFQUEUE (`bypass`, so traffic flows
//! undelayed should the holder die), and one thread per node, bound to that
//! queue inside the node's namespace, accepts each packet after D ± J ms
//! (uniform). Out-of-order verdicts are allowed, so jitter reorders packets
//! as netem does.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering as AtOrd};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sched::CloneFlags;
use nix::sys::signal::Signal;

use super::{NemesisError, Result, each_node, peer_rules};
use crate::lab::net::{CHAIN_DELAY, flush_node_chains, set_node_chain};
use crate::lab::nft::Verdict;
use crate::lab::proc::stop_tree;
use crate::lab::state;
use crate::lab::sys::{self, run, tool_in_netns};
use crate::lab::{Lab, LabError, NodeState};

/// The NFQUEUE number used inside each node (queues are per namespace).
pub const QUEUE_NUM: u16 = 7077;

/// How long and how jittery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DelaySpec {
    /// Mean delay in milliseconds.
    pub ms: u64,
    /// Uniform jitter in milliseconds (± this much).
    pub jitter_ms: u64,
}

impl DelaySpec {
    /// Checks the ranges: 1-60000 ms, jitter no larger than the delay.
    pub fn validate(&self) -> Result<()> {
        if self.ms == 0 || self.ms > 60_000 || self.jitter_ms > self.ms {
            return Err(NemesisError::BadDelay {
                ms: self.ms,
                jitter: self.jitter_ms,
            });
        }
        Ok(())
    }
}

/// Which mechanism delays packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    /// The kernel's netem qdisc.
    Netem,
    /// faultline's NFQUEUE holder.
    Nfqueue,
}

/// True if `tc ... netem` works inside `node` (probes by adding and removing
/// a 1 ms netem qdisc on the node's `eth0`).
pub fn netem_available(node: &NodeState) -> bool {
    let Ok(mut c) = tool_in_netns(&node.netns, "tc") else {
        return false;
    };
    c.args([
        "qdisc", "add", "dev", "eth0", "root", "netem", "delay", "1ms",
    ]);
    if run(c, None).is_err() {
        return false;
    }
    if let Ok(mut c) = tool_in_netns(&node.netns, "tc") {
        c.args(["qdisc", "del", "dev", "eth0", "root"]);
        let _ = run(c, None);
    }
    true
}

/// The two ways to send a packet to [`QUEUE_NUM`], preferred first: the
/// native nftables `queue` expression, and the x_tables `NFQUEUE` target
/// through nft_compat (kernels built without `CONFIG_NFT_QUEUE`, like this
/// project's CI machine).
pub const QUEUE_VERDICTS: [Verdict; 2] = [
    Verdict::QueueBypass(QUEUE_NUM),
    Verdict::XtQueueBypass(QUEUE_NUM),
];

/// Calls `install` with each of [`QUEUE_VERDICTS`] until the kernel accepts
/// one (it answers ENOENT for an expression it lacks); returns the one used.
pub fn queue_verdict(
    mut install: impl FnMut(Verdict) -> std::result::Result<(), LabError>,
) -> Result<Verdict> {
    let mut last = None;
    for v in QUEUE_VERDICTS {
        match install(v.clone()) {
            Ok(()) => return Ok(v),
            Err(e) if crate::lab::netlink::is_enoent(&e) => last = Some(e),
            Err(e) => return Err(e.into()),
        }
    }
    Err(last
        .unwrap_or_else(|| LabError::io("NFQUEUE rule", std::io::Error::other("no way")))
        .into())
}

struct Held {
    due: Instant,
    seq: u64,
    msg: nfq::Message,
}

impl PartialEq for Held {
    fn eq(&self, o: &Self) -> bool {
        self.due == o.due && self.seq == o.seq
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Held {
    // Reversed: BinaryHeap is a max-heap and we want the earliest first.
    fn cmp(&self, o: &Self) -> Ordering {
        (o.due, o.seq).cmp(&(self.due, self.seq))
    }
}

/// An in-process NFQUEUE delay on some nodes; stops (rules removed, held
/// packets released) on [`DelayHolder::stop`] or drop.
pub struct DelayHolder {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    nodes: Vec<NodeState>,
}

impl std::fmt::Debug for DelayHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DelayHolder")
            .field("nodes", &self.nodes)
            .finish()
    }
}

fn queue_thread(
    netns: String,
    spec: DelaySpec,
    seed: u64,
    stop: Arc<AtomicBool>,
    ready: mpsc::Sender<std::result::Result<(), String>>,
) {
    let setup = || -> std::io::Result<nfq::Queue> {
        let f = std::fs::File::open(std::path::Path::new(sys::NETNS_DIR).join(&netns))?;
        nix::sched::setns(&f, CloneFlags::CLONE_NEWNET)?;
        let mut q = nfq::Queue::open()?;
        q.bind(QUEUE_NUM)?;
        q.set_copy_range(QUEUE_NUM, 0)?;
        q.set_fail_open(QUEUE_NUM, true)?;
        q.set_queue_max_len(QUEUE_NUM, 16_384)?;
        q.set_nonblocking(true);
        Ok(q)
    };
    let mut q = match setup() {
        Ok(q) => {
            let _ = ready.send(Ok(()));
            q
        }
        Err(e) => {
            let _ = ready.send(Err(format!("NFQUEUE in {netns}: {e}")));
            return;
        }
    };
    let mut rng = super::grudge::Rng::new(seed);
    let mut heap: BinaryHeap<Held> = BinaryHeap::new();
    let mut seq = 0u64;
    let base = spec.ms as f64;
    let jit = spec.jitter_ms as f64;
    loop {
        let stopping = stop.load(AtOrd::Relaxed);
        loop {
            match q.recv() {
                Ok(msg) => {
                    let d = if stopping {
                        0.0
                    } else {
                        (base + jit * (2.0 * rng.f64() - 1.0)).max(0.0)
                    };
                    seq += 1;
                    heap.push(Held {
                        due: Instant::now() + Duration::from_secs_f64(d / 1000.0),
                        seq,
                        msg,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    eprintln!("faultline: delay holder in {netns}: {e}");
                    break;
                }
            }
        }
        let now = Instant::now();
        while heap.peek().is_some_and(|h| stopping || h.due <= now) {
            if let Some(mut h) = heap.pop() {
                h.msg.set_verdict(nfq::Verdict::Accept);
                let _ = q.verdict(h.msg);
            }
        }
        if stopping && heap.is_empty() {
            break;
        }
        let nap = heap
            .peek()
            .map(|h| h.due.saturating_duration_since(now))
            .unwrap_or(Duration::from_millis(1))
            .min(Duration::from_millis(1));
        std::thread::sleep(nap.max(Duration::from_micros(50)));
    }
    let _ = q.unbind(QUEUE_NUM);
}

impl DelayHolder {
    /// Binds a queue in each node, then points each node's `FL-DELAY` chain
    /// at it (peer traffic only: not loopback, not the control node).
    pub fn start(lab: &Lab, nodes: &[NodeState], spec: DelaySpec, seed: u64) -> Result<Self> {
        spec.validate()?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let mut holder = DelayHolder {
            stop: stop.clone(),
            threads: Vec::new(),
            nodes: nodes.to_vec(),
        };
        for (i, n) in nodes.iter().enumerate() {
            let (tx, rx) = mpsc::channel();
            let ns = n.netns.clone();
            let st = stop.clone();
            threads.push(std::thread::spawn(move || {
                queue_thread(ns, spec, seed.wrapping_add(i as u64), st, tx)
            }));
            let r = rx
                .recv_timeout(Duration::from_secs(5))
                .unwrap_or_else(|_| Err(format!("NFQUEUE in {}: no answer", n.netns)));
            if let Err(reason) = r {
                holder.threads = threads;
                holder.stop_inner();
                return Err(LabError::Command {
                    command: "NFQUEUE bind".into(),
                    reason,
                }
                .into());
            }
        }
        holder.threads = threads;
        let r = each_node(nodes, |n| {
            queue_verdict(|v| set_node_chain(n, CHAIN_DELAY, &peer_rules(lab, Vec::new(), v)))
                .map(|_| ())
        });
        if let Err(e) = r {
            holder.stop_inner();
            return Err(e);
        }
        Ok(holder)
    }

    fn stop_inner(&mut self) {
        for n in &self.nodes {
            let _ = flush_node_chains(n, &[CHAIN_DELAY]);
        }
        self.stop.store(true, AtOrd::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    /// Removes the rules, releases held packets, joins the threads.
    pub fn stop(mut self) {
        self.stop_inner();
    }
}

impl Drop for DelayHolder {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

/// Applies a delay with netem on each node (egress of the node's `eth0`).
pub fn netem_delay(nodes: &[NodeState], spec: DelaySpec) -> Result<()> {
    spec.validate()?;
    each_node(nodes, |n| {
        let mut c = tool_in_netns(&n.netns, "tc")?;
        c.args(["qdisc", "replace", "dev", "eth0", "root", "netem", "delay"])
            .arg(format!("{}ms", spec.ms))
            .arg(format!("{}ms", spec.jitter_ms));
        run(c, None)?;
        Ok(())
    })?;
    Ok(())
}

/// Removes any delay: stops the holder process recorded in the state file
/// (SIGTERM, then SIGKILL), empties `FL-DELAY`, and removes a netem qdisc
/// faultline installed.
pub fn heal_delay(lab: &Lab) -> Result<()> {
    let netem = lab
        .state
        .faults
        .get("delay")
        .and_then(|d| d["mechanism"].as_str())
        == Some("netem");
    if let Some(h) = lab.state.delay_holder
        && h != crate::lab::ProcId::current()
    {
        h.signal(Signal::SIGTERM);
        if !h.wait_gone(Duration::from_secs(3)) {
            stop_tree(&h, Duration::from_millis(100));
        }
    }
    each_node(lab.nodes(), |n| {
        flush_node_chains(n, &[CHAIN_DELAY])?;
        if netem && let Ok(mut c) = tool_in_netns(&n.netns, "tc") {
            c.args(["qdisc", "del", "dev", "eth0", "root"]);
            let _ = run(c, None);
        }
        Ok(())
    })?;
    state::update(lab.name(), |s| {
        s.delay_holder = None;
        s.faults.remove("delay");
    })?;
    Ok(())
}
