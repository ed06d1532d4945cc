//! The stores `faultline run` can test, each behind the [`Store`] trait:
//! Jepsen's `DB` and `Client` protocols in Rust form. A store is one file
//! and one line in [`registry`]; `docs/stores.md` is the guide to adding
//! one.
//!
//! A run uses a store in this order, each step once:
//!
//! 1. [`registry::parse`] turns `--db NAME` and its `--db-opt KEY=VALUE`s
//!    into the store's typed options (enums, not strings).
//! 2. [`Store::check_install`] finds the programs it needs, before any lab
//!    exists (a missing one is a one-line error with the install command).
//! 3. [`Store::start`], then [`Store::ready`], on the lab's nodes, through a
//!    [`Launch`] that records every server in the lab state file.
//! 4. [`Store::primaries`]: the nodes a `primaries` fault targets.
//! 5. [`Store::client`]: one [`Client`] per worker (and per node for the
//!    final reads), wrapped in a [`Session`] that applies the rules every
//!    store shares; each operation becomes one [`Completion`] (ok, fail or
//!    info) or a [`ClientError`] (definite: `fail`; indefinite: `info`).
//! 6. Faults: [`Store::kill`] and [`Store::pause`] give the optional
//!    capabilities (Jepsen's `Kill` and `Pause`), by default on the whole
//!    process tree of the node's servers.
//! 7. [`stop`] with [`Store::stop_signal`].
//!
//! - `builtin`: `faultline node` on every node (the system under test that
//!   ships with faultline, in `src/node/`).
//! - `etcd`: one member per node; clients use the v3 JSON gateway.
//! - `redis`: a primary (n1) and replicas, optionally Sentinel on every node.
//! - `postgres`: a primary (n1) and streaming hot standbys; transactions
//!   (`f` = `txn`, see [`txn`]) on the primary.
//! - `galera`: MariaDB Galera, a multi-primary wsrep cluster.
//! - `nats`: a NATS JetStream cluster and one replicated key-value bucket.
//! - `zookeeper`: a ZooKeeper ensemble; znodes as registers.
//! - `external`: a program of the user's that speaks newline-delimited JSON
//!   (see `docs/stores.md`), optionally with servers started on the nodes.

pub mod adapter_reply;
pub mod builtin;
mod capability;
mod error;
pub mod etcd;
pub mod external;
pub mod galera;
mod galera_txn;
mod launch;
pub mod nats;
mod options;
pub mod postgres;
mod postgres_txn;
pub mod redis;
pub mod registry;
mod session;
pub mod txn;
pub mod wire;
pub mod zookeeper;

use std::fmt::Debug;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use nix::sys::signal::Signal;
use serde_json::Value;
use tokio::time::Instant;

use crate::lab::Lab;
use faultline_workloads::workload::WorkloadKind;

pub use capability::{Kill, Pause, ProcessTree};
pub use error::StoreError;
pub use launch::{Launch, LaunchNode, Needs, Programs, locate, stop};
pub use options::{Choice, DbOpts};
pub use session::Session;
pub use wire::ClientError;

/// A store faultline can start on the lab and drive: typed options (parsed
/// once, by the registry line's parse function), and what a run does with
/// them. Every method but [`Store::client`] is called once per run.
#[async_trait]
pub trait Store: Send + Sync + Debug {
    /// The `--db` name.
    fn name(&self) -> &'static str;

    /// A short label for the store directory, e.g. `etcd-serializable`.
    fn label(&self) -> String;

    /// The options in words, for the run's first line, e.g.
    /// `etcd (serializable reads)`.
    fn describe(&self) -> String;

    /// The options as `results.json` records them under `config.db` (the
    /// `db` tag is added by the caller).
    fn options(&self) -> Value;

    /// Whether the store runs `workload` (default: every workload but the
    /// transactional ones, see [`no_transactions`]).
    fn check_workload(&self, workload: WorkloadKind) -> Result<(), String> {
        no_transactions(self.name(), workload)
    }

    /// Whether the store does compare-and-set (default: yes).
    fn supports_cas(&self) -> bool {
        true
    }

    /// Finds the programs the store needs, or the one-line error naming the
    /// program and the exact install command. Called once, before the lab
    /// exists. Default: [`Store::needs`], found on this machine.
    fn check_install(&self) -> Result<Programs, StoreError> {
        self.needs().map_err(StoreError::Down)?.find_here()
    }

    /// The programs whose clocks clock faults fake (each must read the
    /// clock through libc, see [`crate::lab::fake_clock::check_binary`]);
    /// default: every program the install check found. An error: the store
    /// starts no server whose clock faultline could fake.
    fn clock_programs(&self, programs: &Programs) -> Result<Vec<PathBuf>, String> {
        Ok(programs.paths().map(PathBuf::from).collect())
    }

    /// Starts the store's servers on the lab's nodes with
    /// [`Launch::spawn`]; it may wait for steps it depends on (a primary
    /// before its standbys).
    async fn start(&self, launch: &mut Launch<'_>) -> Result<(), StoreError>;

    /// Waits until the store serves on every node (default: at once).
    /// Use [`Launch::wait_for`]: it notices a server that exited.
    async fn ready(&self, _launch: &mut Launch<'_>) -> Result<(), StoreError> {
        Ok(())
    }

    /// The nodes that are primaries now (for `primaries` fault targets;
    /// default: none).
    async fn primaries(&self, _cluster: &Cluster) -> Vec<String> {
        Vec::new()
    }

    /// The signal that asks a server to stop (default SIGTERM; SIGKILL
    /// follows after 2 s).
    fn stop_signal(&self) -> Signal {
        Signal::SIGTERM
    }

    /// Whether the clients are programs of their own that must run in a
    /// namespace of the lab's, where the lab's subnet is the only route
    /// (default: no; the clients are sockets bound to the lab's bridge).
    fn clients_in_namespace(&self) -> bool {
        false
    }

    /// The port clients connect to on each node, when the store has one
    /// (a cluster faultline did not start may give another per node:
    /// `--db-opt endpoints=ADDR:PORT,…`). Default: none.
    fn client_port(&self) -> Option<u16> {
        None
    }

    /// The programs the store's servers run, by name, for starting it on
    /// remote hosts (`faultline run --hosts` with no `endpoints`): the same
    /// [`Store::start`] then runs there over SSH ([`Launch::on_hosts`]),
    /// with the programs found on each host. An error (the default): why
    /// faultline cannot start this store on remote hosts (a step only the
    /// lab can do); bring your own cluster.
    fn needs(&self) -> Result<Needs, String> {
        Err("it has no description of what its servers need on a host".into())
    }

    /// A client for `role` (it connects lazily, in [`Client::ready`]).
    fn client(&self, cluster: &Arc<Cluster>, role: Role) -> Box<dyn Client>;

    /// Killing a node's servers and starting them again (Jepsen's `Kill`);
    /// default: SIGKILL to the whole process tree. `None`: the store cannot
    /// be killed.
    fn kill(&self) -> Option<&dyn Kill> {
        Some(&ProcessTree)
    }

    /// Pausing and resuming a node's servers (Jepsen's `Pause`); default:
    /// SIGSTOP/SIGCONT to the whole process tree.
    fn pause(&self) -> Option<&dyn Pause> {
        Some(&ProcessTree)
    }
}

/// One operation, as a worker asks a client to perform it.
#[derive(Clone, Copy, Debug)]
pub struct Operation<'a> {
    /// The history's process id (adapters are told it).
    pub process: u64,
    /// `read`, `write`, `cas`, `add`, `incr`, or `txn` (a transaction).
    pub f: &'a str,
    /// The key (empty for `txn`: its micro-ops name theirs).
    pub key: &'a str,
    /// `null` for reads; the value to write; `[expected, new]` for `cas`;
    /// the element for `add`; the delta for `incr`; for `txn` the list of
    /// micro-ops ([`txn::parse`]).
    pub value: &'a Value,
}

/// What the store answered to one operation.
#[derive(Clone, Debug, PartialEq)]
pub enum Completion {
    /// It took effect; the value read, for a read; for a `txn`, its
    /// micro-ops with the values read filled in ([`txn::completed`]);
    /// ignored otherwise (the history records the value sent).
    Ok(Value),
    /// It certainly did not take effect, and why.
    Fail(Option<String>),
    /// It may take effect at any later time, or never, and why.
    Info(Option<String>),
}

impl Completion {
    /// A `fail` with its reason.
    pub fn fail(error: impl Into<String>) -> Completion {
        Completion::Fail(Some(error.into()))
    }

    /// An `info` with its reason.
    pub fn info(error: impl Into<String>) -> Completion {
        Completion::Info(Some(error.into()))
    }
}

/// A client of the store, as one worker (or the final reads on one node)
/// uses it. One operation at a time; [`Session`] adds the shared rules.
#[async_trait]
pub trait Client: Send {
    /// Makes sure the client can send (connects, discovers the primary,
    /// starts the adapter). An error means nothing was sent.
    async fn ready(&mut self, deadline: Instant) -> Result<(), ClientError>;

    /// Drops every connection (after an error): the next call starts
    /// afresh, so no late reply is mistaken for a newer one.
    fn reset(&mut self);

    /// The node that an operation `f` goes to (the history's `node`).
    fn target(&self, f: &str) -> String;

    /// Performs one operation before `deadline`.
    async fn call(
        &mut self,
        op: Operation<'_>,
        deadline: Instant,
    ) -> Result<Completion, ClientError>;

    /// Whether [`Session`] applies the shared error rules: drop the
    /// connections after any error, and record a read that got no answer
    /// as `fail` (a read has no effect). Default yes; the built-in store's
    /// client keeps its own connection and records such reads as `info`.
    fn shared_error_rules(&self) -> bool {
        true
    }
}

/// What clients need to know about the cluster under test.
#[derive(Debug)]
pub struct Cluster {
    /// Node names and addresses, in order.
    pub nodes: Vec<(String, Ipv4Addr)>,
    /// The primaries when the store came up (for `primaries` targets).
    pub primaries: Vec<String>,
    /// The run directory (external adapters log into it).
    pub run_dir: PathBuf,
    /// The lab's clients' namespace, where external adapters run.
    pub client_netns: Option<String>,
    /// What the external adapters said (only for `external`).
    pub adapters: adapter_reply::Health,
    /// Per node, a port that replaces the store's client port (a cluster
    /// faultline did not start: `--db-opt endpoints=ADDR:PORT,…`).
    pub ports: Vec<Option<(u16, u16)>>,
}

impl Cluster {
    /// The lab's nodes, with no primaries yet.
    pub fn of(lab: &Lab, run_dir: PathBuf) -> Cluster {
        Cluster {
            nodes: lab.nodes().iter().map(|n| (n.name.clone(), n.ip)).collect(),
            primaries: Vec::new(),
            run_dir,
            client_netns: lab.state.client.as_ref().map(|c| c.netns.clone()),
            adapters: adapter_reply::Health::default(),
            ports: Vec::new(),
        }
    }

    /// A cluster faultline did not start: the nodes' names and client
    /// endpoints (address, and a port replacing `client_port` when given).
    pub fn of_endpoints(
        nodes: Vec<(String, Ipv4Addr, Option<u16>)>,
        client_port: Option<u16>,
        run_dir: PathBuf,
    ) -> Cluster {
        let ports = nodes.iter().map(|(_, _, p)| client_port.zip(*p)).collect();
        Cluster {
            nodes: nodes.into_iter().map(|(n, ip, _)| (n, ip)).collect(),
            primaries: Vec::new(),
            run_dir,
            client_netns: None,
            adapters: adapter_reply::Health::default(),
            ports,
        }
    }

    /// The address of node `i` at `port` (or at the port given for it in
    /// place of the store's client port).
    pub fn addr(&self, i: usize, port: u16) -> SocketAddr {
        let i = i % self.nodes.len();
        let port = match self.ports.get(i) {
            Some(Some((from, to))) if *from == port => *to,
            _ => port,
        };
        SocketAddr::new(self.nodes[i].1.into(), port)
    }

    /// The name of node `i`.
    pub fn name(&self, i: usize) -> String {
        self.nodes[i % self.nodes.len()].0.clone()
    }

    /// The index of the node with address `ip`.
    pub fn index_of(&self, ip: &str) -> Option<usize> {
        self.nodes.iter().position(|(_, a)| a.to_string() == ip)
    }
}

/// Which node(s) a client talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Worker `slot`: its home node is `slot % nodes`.
    Worker(u32),
    /// The final reads on node `i`: every request to that node.
    Final(usize),
}

impl Role {
    /// The home node's index.
    pub fn home(self, n: usize) -> usize {
        match self {
            Role::Worker(s) => s as usize % n.max(1),
            Role::Final(i) => i,
        }
    }

    /// The node a worker reads from when reads go to replicas/standbys: one
    /// of n2..nN, spread over the workers (n1 when there is one node).
    pub fn replica(self, n: usize) -> usize {
        match self {
            Role::Worker(s) if n > 1 => 1 + s as usize % (n - 1),
            Role::Worker(_) => 0,
            Role::Final(i) => i,
        }
    }
}

/// An `ok` completion (for a read: the value read).
pub fn ok(value: Value) -> Result<Completion, ClientError> {
    Ok(Completion::Ok(value))
}

/// A `fail` completion: certainly not applied.
pub fn fail(error: impl Into<String>) -> Result<Completion, ClientError> {
    Ok(Completion::fail(error))
}

/// An `info` completion: maybe applied.
pub fn info(error: impl Into<String>) -> Result<Completion, ClientError> {
    Ok(Completion::info(error))
}

/// Serializes a store as `results.json` records it under `config.db`: its
/// options with the `--db` name as `db`.
pub fn serialize<S: serde::Serializer>(store: &Arc<dyn Store>, s: S) -> Result<S::Ok, S::Error> {
    let mut v = store.options();
    if let Value::Object(m) = &mut v {
        m.insert("db".into(), Value::String(store.name().into()));
    }
    serde::Serialize::serialize(&v, s)
}

/// [`Store::check_workload`] for a store that does no transactions: every
/// workload but list-append, rw-register, bank and seats.
pub fn no_transactions(name: &str, w: WorkloadKind) -> Result<(), String> {
    if w.is_txn() {
        return Err(format!(
            "--workload {w}: --db {name} does not do transactions (the stores that do: postgres, galera, external)"
        ));
    }
    Ok(())
}

/// [`Store::check_workload`] for a store that keeps registers only (no set
/// or counter): register and kv, else the error naming `--db NAME`.
pub fn register_and_kv_only(name: &str, w: WorkloadKind) -> Result<(), String> {
    match w {
        WorkloadKind::Register | WorkloadKind::Kv => Ok(()),
        _ => Err(format!(
            "--workload {w}: --db {name} supports register and kv"
        )),
    }
}
