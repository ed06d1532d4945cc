//! The nemesis: faults against a running lab.
//!
//! - [`partition`]: a [`grudge::Grudge`] applied as drop rules by source
//!   address in faultline's `FL-PART` chain (nftables table `ip faultline`)
//!   inside each node, one nftables transaction per node. The control node
//!   is never cut.
//! - [`loss`]: `FL-LOSS` drops a share of the packets arriving at a node from
//!   its peers (nftables `numgen random`).
//! - [`delay`]: netem where the kernel has it, otherwise an NFQUEUE holder
//!   that re-injects each packet from a peer after D ± jitter ms.
//! - [`kill`], [`start`], [`pause`], [`resume`]: signals to the whole process
//!   tree of the servers a node runs (see `faultline lab run`).
//! - [`clock`]: bump, skew or strobe the wall clock of the servers on a
//!   node (libfaketime; see [`crate::lab::fake_clock`]).
//! - [`heal`]: empties faultline's chains, stops the delay and sets faked
//!   clocks back to the real time; nothing else.
//! - [`schedule`]: when to do what, for the runner (pure).

pub mod clock;
pub mod delay;
pub mod grudge;
pub mod schedule;

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::lab::net::{CHAIN_LOSS, CHAIN_PARTITION, flush_node_chains, set_node_chain};
use crate::lab::nft::{Match, Rule, Verdict};
use crate::lab::state::{self, ServerState};
use crate::lab::{Lab, LabError, NodeState};
use grudge::{Grudge, GrudgeError};

/// Nemesis errors; messages name the input and the reason.
#[derive(Debug, thiserror::Error)]
pub enum NemesisError {
    /// From the lab.
    #[error(transparent)]
    Lab(#[from] LabError),
    /// An invalid grudge or shape.
    #[error(transparent)]
    Grudge(#[from] GrudgeError),
    /// A loss percentage out of range.
    #[error("invalid loss {0}%: use a number above 0 and at most 100")]
    BadPercent(f64),
    /// A delay out of range.
    #[error(
        "invalid delay {ms} ms with jitter {jitter} ms: use 1 to 60000 ms and a jitter no larger than the delay"
    )]
    BadDelay {
        /// Delay.
        ms: u64,
        /// Jitter.
        jitter: u64,
    },
    /// No server to act on.
    #[error(
        "no server {what} on node {node:?} (start one with `faultline lab run {node} -- CMD...`)"
    )]
    NoServer {
        /// The node.
        node: String,
        /// Which service, if one was named.
        what: String,
    },
    /// A run's own servers could not be killed, paused or started.
    #[error("{0}")]
    Servers(String),
    /// The process holding a server is gone.
    #[error(
        "the `faultline lab run` process holding {service} on {node} is gone; run `faultline clean`"
    )]
    HolderGone {
        /// The node.
        node: String,
        /// The service.
        service: String,
    },
    /// A clock fault that cannot be applied.
    #[error("{0}")]
    Clock(String),
    /// A target set that names no node.
    #[error("no target nodes given")]
    NoTargets,
    /// A schedule that cannot be built.
    #[error("invalid schedule: {0}")]
    Schedule(String),
}

/// Nemesis results.
pub type Result<T, E = NemesisError> = std::result::Result<T, E>;

/// Resolves node names or numbers against the lab.
pub fn resolve_nodes(lab: &Lab, names: &[String]) -> Result<Vec<NodeState>> {
    if names.is_empty() {
        return Err(NemesisError::NoTargets);
    }
    let mut out: Vec<NodeState> = Vec::new();
    for n in names {
        let node = lab.node(n)?.clone();
        if !out.contains(&node) {
            out.push(node);
        }
    }
    Ok(out)
}

/// The rules that exempt loopback and the clients from a fault chain,
/// then apply `verdict` to packets from the lab's other nodes.
fn peer_rules(lab: &Lab, extra: Vec<Match>, verdict: Verdict) -> Vec<Rule> {
    let mut peers = vec![Match::SaddrIn(lab.state.subnet, 24)];
    peers.extend(extra);
    // The clients (control node, clients' namespace) are never faulted.
    let mut rules = vec![Rule::new(
        vec![Match::Iifname("lo".into())],
        Verdict::Return,
    )];
    rules.extend(
        lab.state
            .client_ips()
            .into_iter()
            .map(|ip| Rule::new(vec![Match::Saddr(ip)], Verdict::Return)),
    );
    rules.push(Rule::new(peers, verdict));
    rules
}

fn each_node<T: Send>(
    nodes: &[NodeState],
    f: impl Fn(&NodeState) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    std::thread::scope(|s| {
        let hs: Vec<_> = nodes.iter().map(|n| s.spawn(|| f(n))).collect();
        hs.into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(LabError::io("nemesis worker", std::io::Error::other("panicked")).into())
                })
            })
            .collect()
    })
}

fn node_names(lab: &Lab) -> Vec<String> {
    lab.nodes().iter().map(|n| n.name.clone()).collect()
}

/// Replaces the current partition with `g` (validated first, so an invalid
/// grudge changes nothing). Each node's `FL-PART` chain is swapped in one
/// nftables transaction.
pub fn partition(lab: &Lab, g: &Grudge) -> Result<()> {
    grudge::validate(g, &node_names(lab))?;
    let ip_of = |name: &str| lab.nodes().iter().find(|n| n.name == name).map(|n| n.ip);
    each_node(lab.nodes(), |n| {
        let rules: Vec<Rule> = g
            .get(&n.name)
            .into_iter()
            .flatten()
            .filter_map(|src| ip_of(src))
            .map(|ip| Rule::new(vec![Match::Saddr(ip)], Verdict::Drop))
            .collect();
        Ok(set_node_chain(n, CHAIN_PARTITION, &rules)?)
    })?;
    let v = serde_json::to_value(g).unwrap_or_default();
    state::update(lab.name(), |s| {
        s.faults.insert("partition".into(), v);
    })?;
    Ok(())
}

/// Removes the partition only.
pub fn heal_partition(lab: &Lab) -> Result<()> {
    each_node(lab.nodes(), |n| {
        flush_node_chains(n, &[CHAIN_PARTITION]).map_err(Into::into)
    })?;
    state::update(lab.name(), |s| {
        s.faults.remove("partition");
    })?;
    Ok(())
}

/// The modulus of the random draw behind [`loss`].
pub const LOSS_SCALE: u32 = 10_000;

/// Drops `percent`% of the packets arriving at each of `nodes` from the
/// other nodes (not from the control node, nor loopback). Replaces any loss
/// on those nodes.
pub fn loss(lab: &Lab, nodes: &[NodeState], percent: f64) -> Result<()> {
    if !(percent > 0.0 && percent <= 100.0) {
        return Err(NemesisError::BadPercent(percent));
    }
    // A uniform draw in 0..10000 below percent*100: steps of 0.01 %.
    let below = (percent * 100.0).round() as u32;
    let rules = peer_rules(
        lab,
        vec![Match::Random {
            below,
            of: LOSS_SCALE,
        }],
        Verdict::Drop,
    );
    each_node(nodes, |n| Ok(set_node_chain(n, CHAIN_LOSS, &rules)?))?;
    let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    state::update(lab.name(), |s| {
        let e = s
            .faults
            .entry("loss".into())
            .or_insert_with(|| serde_json::json!({}));
        if let Some(m) = e.as_object_mut() {
            for n in &names {
                m.insert(n.clone(), serde_json::json!(percent));
            }
        }
    })?;
    Ok(())
}

/// Removes all packet loss.
pub fn heal_loss(lab: &Lab) -> Result<()> {
    each_node(lab.nodes(), |n| {
        flush_node_chains(n, &[CHAIN_LOSS]).map_err(Into::into)
    })?;
    state::update(lab.name(), |s| {
        s.faults.remove("loss");
    })?;
    Ok(())
}

/// Heals everything: partition, loss, delay and faked clocks. Touches only
/// faultline's chains (and, with netem, the qdisc faultline put on the
/// node's `eth0`) and the nodes' timestamp files.
pub fn heal(lab: &Lab) -> Result<()> {
    clock::heal_clocks(lab)?;
    delay::heal_delay(lab)?;
    heal_loss(lab)?;
    heal_partition(lab)?;
    Ok(())
}

// ------------------------------------------------------------------ processes

fn servers_on(lab: &Lab, node: &NodeState, service: Option<&str>) -> Result<Vec<ServerState>> {
    let s: Vec<ServerState> = lab
        .state
        .servers
        .iter()
        .filter(|s| s.node == node.name && service.is_none_or(|w| s.service == w))
        .cloned()
        .collect();
    if s.is_empty() {
        return Err(NemesisError::NoServer {
            node: node.name.clone(),
            what: service.map(|w| format!("{w:?}")).unwrap_or_default(),
        });
    }
    Ok(s)
}

fn set_status(
    lab: &Lab,
    node: &str,
    service: &str,
    status: &str,
    clear_process: bool,
) -> Result<()> {
    state::update(lab.name(), |s| {
        for sv in s.servers.iter_mut() {
            if sv.node == node && sv.service == service {
                sv.status = status.to_string();
                if clear_process {
                    sv.process = None;
                }
            }
        }
    })?;
    Ok(())
}

/// SIGKILLs the process tree of each server on `node` (or only `service`)
/// and waits until it is gone. The holder keeps the server's command so
/// [`start`] can run it again on its data. Returns the services killed.
pub fn kill(lab: &Lab, node: &NodeState, service: Option<&str>) -> Result<Vec<String>> {
    let mut done = Vec::new();
    for sv in servers_on(lab, node, service)? {
        // Recorded first, so the holder knows the exit was ours.
        set_status(lab, &sv.node, &sv.service, "killed", false)?;
        if let Some(p) = sv.process {
            p.signal_tree(Signal::SIGCONT);
            p.signal_tree(Signal::SIGKILL);
            p.wait_gone(Duration::from_secs(5));
        }
        set_status(lab, &sv.node, &sv.service, "killed", true)?;
        done.push(sv.service);
    }
    Ok(done)
}

/// Starts again each killed or exited server on `node` (or only
/// `service`), through its holder, and waits until it runs.
pub fn start(lab: &Lab, node: &NodeState, service: Option<&str>) -> Result<Vec<String>> {
    let mut done = Vec::new();
    for sv in servers_on(lab, node, service)? {
        if sv.process.is_some_and(|p| p.is_alive()) {
            continue;
        }
        let gone = || NemesisError::HolderGone {
            node: sv.node.clone(),
            service: sv.service.clone(),
        };
        let h = sv.holder.ok_or_else(gone)?;
        if !h.signal(Signal::SIGUSR1) {
            return Err(gone());
        }
        let t0 = Instant::now();
        loop {
            let l = Lab::open(lab.name())?;
            let now = l
                .state
                .servers
                .iter()
                .find(|s| s.node == sv.node && s.service == sv.service)
                .cloned();
            match now {
                Some(s) if s.status == "running" && s.process.is_some_and(|p| p.is_alive()) => {
                    break;
                }
                None => return Err(gone()),
                _ if t0.elapsed() > Duration::from_secs(10) => {
                    return Err(LabError::Service {
                        node: sv.node.clone(),
                        service: sv.service.clone(),
                        reason: "did not start within 10 s (see its log)".into(),
                    }
                    .into());
                }
                _ => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        done.push(sv.service);
    }
    Ok(done)
}

fn signal_servers(
    lab: &Lab,
    node: &NodeState,
    service: Option<&str>,
    sig: Signal,
    status: &str,
) -> Result<Vec<String>> {
    let mut done = Vec::new();
    for sv in servers_on(lab, node, service)? {
        if let Some(p) = sv.process
            && p.signal_tree(sig) > 0
        {
            set_status(lab, &sv.node, &sv.service, status, false)?;
            done.push(sv.service);
        }
    }
    Ok(done)
}

/// SIGSTOPs the process tree of each server on `node` (or only `service`).
pub fn pause(lab: &Lab, node: &NodeState, service: Option<&str>) -> Result<Vec<String>> {
    signal_servers(lab, node, service, Signal::SIGSTOP, "paused")
}

/// SIGCONTs the process tree of each server on `node` (or only `service`).
pub fn resume(lab: &Lab, node: &NodeState, service: Option<&str>) -> Result<Vec<String>> {
    signal_servers(lab, node, service, Signal::SIGCONT, "running")
}

// ------------------------------------------------------------------ runner API

/// Who holds the servers that kill and pause faults act on: the holders of
/// `faultline lab run` ([`HeldServers`], through the lab state file), or a
/// run that holds its store's servers itself. [`apply_on`] and
/// [`ActiveFault::end_on`] are the one place a kill or pause fault is
/// carried out.
pub trait ServerControl: Sync {
    /// SIGKILLs the servers on `node`; they stay down until
    /// [`ServerControl::start`].
    fn kill(&self, lab: &Lab, node: &NodeState) -> Result<()>;
    /// Starts the killed or exited servers on `node` again, on their data.
    fn start(&self, lab: &Lab, node: &NodeState) -> Result<()>;
    /// SIGSTOPs the servers on `node`.
    fn pause(&self, lab: &Lab, node: &NodeState) -> Result<()>;
    /// SIGCONTs the servers on `node`.
    fn resume(&self, lab: &Lab, node: &NodeState) -> Result<()>;
}

/// The servers `faultline lab run` holders keep, found in the lab state
/// file ([`kill`], [`start`], [`pause`], [`resume`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct HeldServers;

impl ServerControl for HeldServers {
    fn kill(&self, lab: &Lab, node: &NodeState) -> Result<()> {
        kill(lab, node, None).map(drop)
    }

    fn start(&self, lab: &Lab, node: &NodeState) -> Result<()> {
        start(lab, node, None).map(drop)
    }

    fn pause(&self, lab: &Lab, node: &NodeState) -> Result<()> {
        pause(lab, node, None).map(drop)
    }

    fn resume(&self, lab: &Lab, node: &NodeState) -> Result<()> {
        resume(lab, node, None).map(drop)
    }
}

/// A fault in effect, as the runner drives a [`schedule::Window`]: made by
/// [`apply`], undone by [`ActiveFault::end`].
#[derive(Debug)]
pub struct ActiveFault {
    /// The fault.
    pub fault: schedule::Fault,
    delay: Option<delay::DelayHolder>,
    strobe: Option<clock::Strobe>,
}

fn fault_nodes(lab: &Lab, names: &[String]) -> Result<Vec<NodeState>> {
    resolve_nodes(lab, names)
}

/// Applies a concrete fault. Delay uses netem where the kernel has it, and
/// otherwise an NFQUEUE holder inside this process (threads), stopped by
/// [`ActiveFault::end`] or when dropped. Kill and pause act on the servers
/// recorded for the nodes (held by `faultline lab run`).
pub fn apply(lab: &Lab, fault: &schedule::Fault, seed: u64) -> Result<ActiveFault> {
    apply_on(lab, fault, seed, &HeldServers)
}

/// [`apply`], with kill and pause acting through `servers`.
pub fn apply_on(
    lab: &Lab,
    fault: &schedule::Fault,
    seed: u64,
    servers: &dyn ServerControl,
) -> Result<ActiveFault> {
    use schedule::Fault as F;
    let fresh = Lab::open(lab.name())?; // servers may have started since `lab` was read
    let lab = &fresh;
    let mut held = None;
    let mut strobe = None;
    match fault {
        F::Partition { grudge } => partition(lab, grudge)?,
        F::Loss { nodes, percent } => loss(lab, &fault_nodes(lab, nodes)?, *percent)?,
        F::Delay {
            nodes,
            ms,
            jitter_ms,
        } => {
            let ns = fault_nodes(lab, nodes)?;
            let spec = delay::DelaySpec {
                ms: *ms,
                jitter_ms: *jitter_ms,
            };
            if delay::netem_available(&ns[0]) {
                delay::netem_delay(&ns, spec)?;
                let v = serde_json::json!({"mechanism": "netem", "nodes": nodes, "ms": ms, "jitter_ms": jitter_ms});
                state::update(lab.name(), |s| {
                    s.faults.insert("delay".into(), v);
                })?;
            } else {
                held = Some(delay::DelayHolder::start(lab, &ns, spec, seed)?);
            }
        }
        F::Kill { nodes } => {
            for n in fault_nodes(lab, nodes)? {
                servers.kill(lab, &n)?;
            }
        }
        F::Pause { nodes } => {
            for n in fault_nodes(lab, nodes)? {
                servers.pause(lab, &n)?;
            }
        }
        F::Clock {
            nodes,
            mode,
            ms,
            period_ms,
        } => {
            let ns = fault_nodes(lab, nodes)?;
            match mode {
                clock::ClockMode::Bump => drop(clock::bump(lab, &ns, *ms)?),
                clock::ClockMode::Skew => clock::skew(lab, &ns, *ms)?,
                clock::ClockMode::Strobe => {
                    strobe = Some(clock::Strobe::start(lab, &ns, *ms, *period_ms)?);
                }
            }
        }
    }
    Ok(ActiveFault {
        fault: fault.clone(),
        delay: held,
        strobe,
    })
}

impl ActiveFault {
    /// Undoes the fault: heals the partition or loss, removes the delay,
    /// starts killed servers, resumes paused ones, resets clocks.
    pub fn end(self, lab: &Lab) -> Result<()> {
        self.end_on(lab, &HeldServers)
    }

    /// [`ActiveFault::end`], with killed and paused servers started and
    /// resumed through `servers`.
    pub fn end_on(mut self, lab: &Lab, servers: &dyn ServerControl) -> Result<()> {
        use schedule::Fault as F;
        let lab = Lab::open(lab.name())?;
        match &self.fault {
            F::Partition { .. } => heal_partition(&lab),
            F::Loss { .. } => heal_loss(&lab),
            F::Delay { .. } => match self.delay.take() {
                Some(h) => {
                    h.stop();
                    Ok(())
                }
                None => delay::heal_delay(&lab),
            },
            F::Kill { nodes } => {
                for n in fault_nodes(&lab, nodes)? {
                    servers.start(&lab, &n)?;
                }
                Ok(())
            }
            F::Pause { nodes } => {
                for n in fault_nodes(&lab, nodes)? {
                    servers.resume(&lab, &n)?;
                }
                Ok(())
            }
            F::Clock { nodes, .. } => {
                if let Some(s) = self.strobe.take() {
                    s.stop()?;
                }
                clock::reset(&lab, &fault_nodes(&lab, nodes)?)
            }
        }
    }
}
