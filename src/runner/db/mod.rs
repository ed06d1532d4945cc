//! The stores `faultline run` can test, behind one interface: install check,
//! start on the lab's nodes (as [`Server`]s recorded in the lab state file,
//! data and logs under each node's directory), readiness, primaries, stop,
//! and a client per worker.
//!
//! - `builtin`: `faultline node` on every node.
//! - `etcd`: one member per node; clients use the v3 JSON gateway.
//! - `redis`: a primary (n1) and replicas, optionally Sentinel on every node.
//! - `postgres`: a primary (n1) and streaming hot standbys.
//! - `external`: a program of the user's that speaks newline-delimited JSON
//!   (see the README), optionally with servers started on the nodes.

pub mod etcd;
pub mod external;
pub mod postgres;
pub mod redis;
pub mod wire;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;
use tokio::time::Instant;

use super::{DbConfig, NODE_PORT, RunConfig, RunError, record_server};
use crate::lab::Lab;
use crate::lab::proc::{Server, ServerSpec, stop_tree};
use crate::lab::sys::find_tool;
use crate::node::client::{ClientError, NodeClient};
use crate::node::protocol::{Reply, ReplyType};
use faultline_workloads::workload::WorkloadKind;

/// What clients need to know about the cluster under test.
#[derive(Debug)]
pub struct Cluster {
    /// The store.
    pub db: DbConfig,
    /// Node names and addresses, in order.
    pub nodes: Vec<(String, Ipv4Addr)>,
    /// The primaries when the store came up (for `primaries` targets).
    pub primaries: Vec<String>,
    /// The run directory (external adapters log into it).
    pub run_dir: PathBuf,
    /// The lab's clients' namespace, where external adapters run.
    pub client_netns: Option<String>,
    /// What the external adapters said (only for `external`).
    pub adapters: external::Health,
}

impl Cluster {
    /// The address of node `i` at `port`.
    pub fn addr(&self, i: usize, port: u16) -> SocketAddr {
        SocketAddr::new(self.nodes[i % self.nodes.len()].1.into(), port)
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

/// Parses `--db` and its `--db-opt`s for the stores other than `builtin`.
/// Every option is consumed; an unknown one is an error naming it.
pub fn parse(db: &str, opts: &mut BTreeMap<String, String>) -> Result<DbConfig, String> {
    fn one_of(
        opts: &mut BTreeMap<String, String>,
        k: &str,
        default: &str,
        allowed: &[&str],
    ) -> Result<String, String> {
        let v = opts.remove(k).unwrap_or_else(|| default.to_string());
        if allowed.contains(&v.as_str()) {
            Ok(v)
        } else {
            Err(format!(
                "--db-opt {k}={v}: expected {}",
                allowed.join(" or ")
            ))
        }
    }
    let bindir = |opts: &mut BTreeMap<String, String>| opts.remove("bindir").map(PathBuf::from);
    let cfg = match db {
        "etcd" => DbConfig::Etcd {
            reads: one_of(
                opts,
                "reads",
                "linearizable",
                &["linearizable", "serializable"],
            )?,
            bindir: bindir(opts),
        },
        "redis" => {
            let wait = match opts.remove("wait") {
                None => 0,
                Some(w) => w.parse::<u32>().ok().filter(|n| *n <= 8).ok_or_else(|| {
                    format!("--db-opt wait={w}: expected a number of replicas, 0 to 8")
                })?,
            };
            DbConfig::Redis {
                failover: one_of(opts, "failover", "none", &["none", "sentinel"])?,
                reads: one_of(opts, "reads", "primary", &["primary", "replicas"])?,
                wait,
                bindir: bindir(opts),
            }
        }
        "postgres" => DbConfig::Postgres {
            reads: one_of(opts, "reads", "primary", &["primary", "standby"])?,
            sync: one_of(opts, "sync", "off", &["off", "on", "apply"])?,
            bindir: bindir(opts),
        },
        "external" => {
            let command = opts
                .remove("command")
                .filter(|c| !c.trim().is_empty())
                .ok_or("--db external: needs --db-opt command=\"PROGRAM ARGS\" (the adapter)")?;
            let handshake = match opts.remove("handshake").as_deref() {
                None | Some("true" | "on" | "yes") => true,
                Some("false" | "off" | "no") => false,
                Some(v) => return Err(format!("--db-opt handshake={v}: expected true or false")),
            };
            let mode = one_of(opts, "mode", "primary", &["primary", "async", "quorum"])?;
            let primaries = opts
                .remove("primaries")
                .map(|p| {
                    p.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            DbConfig::External {
                command,
                server: opts.remove("server").filter(|s| !s.trim().is_empty()),
                mode,
                handshake,
                primaries,
            }
        }
        other => {
            return Err(format!(
                "--db {other}: unknown store (available: builtin, etcd, redis, postgres, external)"
            ));
        }
    };
    if let Some(k) = opts.keys().next() {
        return Err(format!(
            "--db-opt {k}: --db {db} has no such option ({})",
            options(db)
        ));
    }
    Ok(cfg)
}

/// The options a store takes (for error messages).
fn options(db: &str) -> &'static str {
    match db {
        "etcd" => "reads, bindir",
        "redis" => "failover, reads, wait, bindir",
        "postgres" => "reads, sync, bindir",
        _ => "command, server, mode, handshake, primaries",
    }
}

/// The workloads a store supports.
pub fn check_workload(db: &DbConfig, w: WorkloadKind) -> Result<(), String> {
    let ok = match db {
        DbConfig::Etcd { .. } => matches!(w, WorkloadKind::Register | WorkloadKind::Kv),
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "--workload {w}: --db {} supports register and kv",
            db.kind()
        ))
    }
}

/// A program a store needs and the command that installs it.
struct Needed {
    program: &'static str,
    install: &'static str,
}

/// The Debian packages of each store.
pub const INSTALL_ETCD: &str = "apt-get install -y etcd-server etcd-client";
/// See [`INSTALL_ETCD`].
pub const INSTALL_REDIS: &str = "apt-get install -y redis-server redis-sentinel";
/// See [`INSTALL_ETCD`].
pub const INSTALL_POSTGRES: &str = "apt-get install -y postgresql-15";

/// The newest `/usr/lib/postgresql/<v>/bin` with a `postgres` in it.
pub fn postgres_bindir() -> Option<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("postgres").exists())
        .collect();
    v.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    v.pop()
}

/// Finds `program` in `bindir` (when given) or on the usual paths.
fn locate(bindir: &Option<PathBuf>, program: &str) -> Option<PathBuf> {
    match bindir {
        Some(d) => {
            let p = d.join(program);
            p.is_file().then_some(p)
        }
        None => find_tool(program),
    }
}

/// The programs a run of `db` uses, found, or the one-line error with the
/// exact install command. Called before the lab exists.
pub fn check_install(db: &DbConfig) -> Result<BTreeMap<&'static str, PathBuf>, RunError> {
    let needed: Vec<Needed> = match db {
        DbConfig::Builtin { .. } => Vec::new(),
        DbConfig::Etcd { .. } => vec![Needed {
            program: "etcd",
            install: INSTALL_ETCD,
        }],
        DbConfig::Redis { failover, .. } => {
            let mut v = vec![Needed {
                program: "redis-server",
                install: INSTALL_REDIS,
            }];
            if failover == "sentinel" {
                v.push(Needed {
                    program: "redis-sentinel",
                    install: INSTALL_REDIS,
                });
            }
            v
        }
        DbConfig::Postgres { .. } => ["postgres", "initdb", "pg_basebackup"]
            .into_iter()
            .map(|program| Needed {
                program,
                install: INSTALL_POSTGRES,
            })
            .collect(),
        DbConfig::External { command, .. } => {
            let first = command.split_whitespace().next().unwrap_or_default();
            let found = if first.contains('/') {
                Path::new(first).is_file()
            } else {
                find_tool(first).is_some()
            };
            if !found {
                return Err(RunError::Missing {
                    program: first.to_string(),
                    what: "--db-opt command".into(),
                    fix: if first == "python3" {
                        "install it with: apt-get install -y python3".into()
                    } else {
                        "install it, or give its path in --db-opt command".into()
                    },
                });
            }
            Vec::new()
        }
    };
    let bindir = match db {
        DbConfig::Etcd { bindir, .. } | DbConfig::Redis { bindir, .. } => bindir.clone(),
        DbConfig::Postgres { bindir, .. } => bindir.clone().or_else(postgres_bindir),
        _ => None,
    };
    let mut found = BTreeMap::new();
    for n in needed {
        match locate(&bindir, n.program) {
            Some(p) => {
                found.insert(n.program, p);
            }
            None => {
                return Err(RunError::Missing {
                    program: n.program.to_string(),
                    what: format!(
                        "--db {}{}",
                        db.kind(),
                        bindir
                            .as_ref()
                            .map(|d| format!(" (looked in {})", d.display()))
                            .unwrap_or_default()
                    ),
                    fix: format!("install it with: {}", n.install),
                });
            }
        }
    }
    if matches!(db, DbConfig::Postgres { .. }) {
        if find_tool("setpriv").is_none() {
            return Err(RunError::Missing {
                program: "setpriv".into(),
                what: "--db postgres".into(),
                fix: "install it with: apt-get install -y util-linux".into(),
            });
        }
        if nix::unistd::User::from_name("postgres")
            .ok()
            .flatten()
            .is_none()
        {
            return Err(RunError::Missing {
                program: "the `postgres` user".into(),
                what: "--db postgres".into(),
                fix: format!("install it with: {INSTALL_POSTGRES}"),
            });
        }
    }
    Ok(found)
}

/// The store, started.
pub struct Started {
    /// Its processes.
    pub servers: Vec<Server>,
    /// What clients need.
    pub cluster: Arc<Cluster>,
}

/// Starts a server on a node, records it in the lab state file, keeps it.
pub(crate) fn spawn(
    lab: &Lab,
    servers: &mut Vec<Server>,
    node: &str,
    service: &str,
    argv: Vec<String>,
) -> Result<(), RunError> {
    let s = Server::spawn(
        lab,
        ServerSpec {
            node: node.to_string(),
            service: service.to_string(),
            argv,
        },
    )?;
    record_server(lab, &s, "running")?;
    servers.push(s);
    Ok(())
}

/// An error if a server has already exited, with the last lines of its log.
pub(crate) fn check_alive(servers: &mut [Server]) -> Result<(), RunError> {
    for s in servers.iter_mut() {
        if let Some(st) = s.reap() {
            let log = std::fs::read_to_string(&s.log).unwrap_or_default();
            let tail: Vec<&str> = log
                .lines()
                .rev()
                .filter(|l| !l.trim().is_empty())
                .take(1)
                .collect();
            let how = match st {
                nix::sys::wait::WaitStatus::Exited(_, c) => format!("with status {c}"),
                nix::sys::wait::WaitStatus::Signaled(_, sig, _) => format!("on {sig}"),
                other => format!("({other:?})"),
            };
            return Err(RunError::StoreDown(format!(
                "{} on {} exited {how}{} (its log: nodes/{}/{}.log in the run directory)",
                s.spec.service,
                s.spec.node,
                tail.first()
                    .map(|l| format!(": {}", l.trim()))
                    .unwrap_or_default(),
                s.spec.node,
                s.spec.service,
            )));
        }
    }
    Ok(())
}

/// Polls `probe` every 100 ms until it succeeds, a server exits, or
/// `within` passes.
pub(crate) async fn wait_for<F, Fut>(
    servers: &mut [Server],
    within: Duration,
    what: &str,
    mut probe: F,
) -> Result<(), RunError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let t0 = std::time::Instant::now();
    loop {
        check_alive(servers)?;
        let last = match probe().await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if t0.elapsed() > within {
            return Err(RunError::StoreDown(format!(
                "{what}: not ready within {} s: {last}",
                within.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts the store on every node and waits until it serves. On error the
/// servers started so far are stopped.
pub async fn start(cfg: &RunConfig, lab: &Lab, run_dir: &Path) -> Result<Started, RunError> {
    let programs = check_install(&cfg.db)?;
    let mut cluster = Cluster {
        db: cfg.db.clone(),
        nodes: lab.nodes().iter().map(|n| (n.name.clone(), n.ip)).collect(),
        primaries: Vec::new(),
        run_dir: run_dir.to_path_buf(),
        client_netns: lab.state.client.as_ref().map(|c| c.netns.clone()),
        adapters: external::Health::default(),
    };
    let names: Vec<String> = cluster.nodes.iter().map(|n| n.0.clone()).collect();
    let mut servers = Vec::new();
    let r = match &cfg.db {
        DbConfig::Builtin { .. } => start_builtin(cfg, lab, &mut servers).await,
        DbConfig::Etcd { .. } => etcd::start(lab, &programs, &mut servers).await,
        DbConfig::Redis { .. } => redis::start(&cfg.db, lab, &programs, &mut servers).await,
        DbConfig::Postgres { .. } => postgres::start(&cfg.db, lab, &programs, &mut servers).await,
        DbConfig::External { .. } => external::start(cfg, lab, &mut servers, &cluster).await,
    };
    match r {
        Ok(primaries) => {
            cluster.primaries = match &cfg.db {
                DbConfig::Builtin { .. } => cfg.db.primaries(&names),
                _ => primaries,
            };
            Ok(Started {
                servers,
                cluster: Arc::new(cluster),
            })
        }
        Err(e) => {
            stop(&cfg.db, &mut servers);
            Err(e)
        }
    }
}

/// Starts `faultline node` on every node of the lab and waits until each
/// answers.
pub(crate) async fn start_builtin(
    cfg: &RunConfig,
    lab: &Lab,
    servers: &mut Vec<Server>,
) -> Result<Vec<String>, RunError> {
    for node in lab.nodes() {
        spawn(
            lab,
            servers,
            &node.name,
            "faultline-node",
            super::node_argv(cfg, lab, node)?,
        )?;
    }
    builtin_ready(lab, servers).await?;
    Ok(Vec::new())
}

/// Waits until every `faultline node` answers `ping`.
async fn builtin_ready(lab: &Lab, servers: &mut [Server]) -> Result<(), RunError> {
    for node in lab.nodes() {
        let addr = SocketAddr::new(node.ip.into(), NODE_PORT);
        wait_for(
            servers,
            Duration::from_secs(10),
            &addr.to_string(),
            || async move {
                let mut c = NodeClient::connect(addr, Duration::from_millis(500))
                    .await
                    .map_err(|e| e.to_string())?;
                match c
                    .call("ping", "", Value::Null, Duration::from_millis(500))
                    .await
                {
                    Ok(r) if r.kind == ReplyType::Ok => Ok(()),
                    Ok(r) => Err(format!("ping answered {:?}", r.error)),
                    Err(e) => Err(e.to_string()),
                }
            },
        )
        .await?;
    }
    Ok(())
}

/// Stops every server: SIGCONT, then the store's stop signal to all at once
/// (postgres: SIGINT, a fast shutdown; others SIGTERM), then SIGKILL to
/// whatever is left after 2 s.
pub fn stop(db: &DbConfig, servers: &mut [Server]) {
    let sig = match db {
        DbConfig::Postgres { .. } => Signal::SIGINT,
        _ => Signal::SIGTERM,
    };
    let procs: Vec<_> = servers
        .iter_mut()
        .filter_map(|s| s.process.take())
        .collect();
    for p in &procs {
        p.signal_tree(Signal::SIGCONT);
        p.signal(sig);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    for p in &procs {
        p.wait_gone(deadline.saturating_duration_since(std::time::Instant::now()));
    }
    for p in &procs {
        stop_tree(p, Duration::from_millis(100));
    }
}

/// A client of the store, as one worker (or the final reads) uses it.
pub enum Client {
    /// The built-in store.
    Node {
        /// The node's address.
        addr: SocketAddr,
        /// The node's name.
        name: String,
        /// The connection.
        conn: Option<NodeClient>,
    },
    /// etcd.
    Etcd(etcd::EtcdClient),
    /// Redis.
    Redis(redis::RedisClient),
    /// PostgreSQL.
    Postgres(postgres::PgClient),
    /// An external adapter.
    External(external::ExternalClient),
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

impl Client {
    /// A client for `role`.
    pub fn new(cluster: &Arc<Cluster>, role: Role) -> Client {
        let home = role.home(cluster.nodes.len());
        match &cluster.db {
            DbConfig::Builtin { .. } => Client::Node {
                addr: cluster.addr(home, NODE_PORT),
                name: cluster.name(home),
                conn: None,
            },
            DbConfig::Etcd { .. } => Client::Etcd(etcd::EtcdClient::new(cluster.clone(), role)),
            DbConfig::Redis { .. } => Client::Redis(redis::RedisClient::new(cluster.clone(), role)),
            DbConfig::Postgres { .. } => {
                Client::Postgres(postgres::PgClient::new(cluster.clone(), role))
            }
            DbConfig::External { .. } => {
                Client::External(external::ExternalClient::new(cluster.clone(), role))
            }
        }
    }

    /// Makes sure the client can send (connects, discovers the primary,
    /// starts the adapter). An error means nothing was sent.
    pub async fn ready(&mut self, timeout: Duration) -> Result<(), ClientError> {
        let deadline = Instant::now() + timeout;
        match self {
            Client::Node { addr, conn, .. } => {
                if conn.is_none() {
                    *conn = Some(NodeClient::connect(*addr, timeout).await?);
                }
                Ok(())
            }
            Client::Etcd(c) => c.ready(deadline).await,
            Client::Redis(c) => c.ready(deadline).await,
            Client::Postgres(c) => c.ready(deadline).await,
            Client::External(c) => c.ready(deadline).await,
        }
    }

    /// Drops every connection (after an indefinite error): the next call
    /// starts afresh, so no late reply is mistaken for a newer one.
    pub fn reset(&mut self) {
        match self {
            Client::Node { conn, .. } => *conn = None,
            Client::Etcd(c) => c.reset(),
            Client::Redis(c) => c.reset(),
            Client::Postgres(c) => c.reset(),
            Client::External(c) => c.reset(),
        }
    }

    /// The node that an operation `f` goes to.
    pub fn target(&self, f: &str) -> String {
        match self {
            Client::Node { name, .. } => name.clone(),
            Client::Etcd(c) => c.target(),
            Client::Redis(c) => c.target(f),
            Client::Postgres(c) => c.target(f),
            Client::External(c) => c.target(),
        }
    }

    /// Performs one operation as `process`. Errors: definite (`fail`) or
    /// indefinite (`info`). For the real stores a read that got no answer is
    /// definite: a read has no effect.
    pub async fn call(
        &mut self,
        process: u64,
        f: &str,
        key: &str,
        value: Value,
        timeout: Duration,
    ) -> Result<Reply, ClientError> {
        let deadline = Instant::now() + timeout;
        let r = match self {
            Client::Node { addr, conn, .. } => {
                let c = match conn {
                    Some(c) => c,
                    None => conn.insert(NodeClient::connect(*addr, timeout).await?),
                };
                return c.call(f, key, value, timeout).await;
            }
            Client::Etcd(c) => c.call(f, key, value, deadline).await,
            Client::Redis(c) => c.call(f, key, value, deadline).await,
            Client::Postgres(c) => c.call(f, key, value, deadline).await,
            Client::External(c) => c.call(process, f, key, value, deadline).await,
        };
        match r {
            Err(ClientError::Indefinite(e)) if f == "read" => {
                self.reset();
                Err(ClientError::Definite(e))
            }
            Err(e) => {
                self.reset();
                Err(e)
            }
            ok => ok,
        }
    }
}

/// An `ok` reply.
pub(crate) fn ok(value: Value) -> Result<Reply, ClientError> {
    Ok(Reply {
        id: 0,
        kind: ReplyType::Ok,
        value,
        error: None,
    })
}

/// A `fail` reply (certainly not applied).
pub(crate) fn fail(value: Value, error: impl Into<String>) -> Result<Reply, ClientError> {
    Ok(Reply {
        id: 0,
        kind: ReplyType::Fail,
        value,
        error: Some(error.into()),
    })
}

/// An `info` reply (maybe applied).
pub(crate) fn info(value: Value, error: impl Into<String>) -> Result<Reply, ClientError> {
    Ok(Reply {
        id: 0,
        kind: ReplyType::Info,
        value,
        error: Some(error.into()),
    })
}

/// The value stored for a workload value: its JSON text.
pub(crate) fn encode(v: &Value) -> String {
    v.to_string()
}

/// A stored text back to JSON (text that is not JSON stays a string).
pub(crate) fn decode(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_string()))
}

/// The `[expected, new]` pair of a cas.
pub(crate) fn cas_pair(value: &Value) -> Option<(Value, Value)> {
    match value.as_array().map(|a| a.as_slice()) {
        Some([e, n]) => Some((e.clone(), n.clone())),
        _ => None,
    }
}
