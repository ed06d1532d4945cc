//! Redis (7): a primary on n1 and replicas on the other nodes, optionally a
//! Sentinel on every node (`failover=sentinel`). Clients write to the
//! primary (asking the sentinels which node that is), read from the primary
//! or from a replica (`reads=replicas`), and may `WAIT` for N replicas after
//! every write on the same connection (`wait=N`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::options::serialize_word;
use super::registry::{Entry, Requirement};
use super::wire::resp::{Resp, RespConn};
use super::wire::{cas_pair, decode, encode};
use super::{
    Choice, Client, ClientError, Cluster, Completion, DbOpts, Launch, Needs, Operation, Programs,
    Role, Store, StoreError, fail, info, ok,
};

/// The data port.
pub const PORT: u16 = 6379;
/// The sentinel port.
pub const SENTINEL_PORT: u16 = 26379;
/// The name sentinels monitor.
pub const MASTER: &str = "faultline";

/// The Debian packages.
pub const INSTALL: &str = "apt-get install -y redis-server redis-sentinel";

/// The registry line's entry.
pub const ENTRY: Entry = Entry {
    name: "redis",
    parse: Redis::parse,
    doctor: &[
        Requirement {
            what: "redis-server (--db redis)",
            program: "redis-server",
            install: INSTALL,
            also_in: None,
        },
        Requirement {
            what: "redis-sentinel (failover)",
            program: "redis-sentinel",
            install: INSTALL,
            also_in: None,
        },
    ],
};

/// What happens when the primary fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failover {
    /// Nothing: n1 stays the primary.
    None,
    /// A Sentinel on every node promotes a replica.
    Sentinel,
}

impl Choice for Failover {
    const CHOICES: &'static [(&'static str, Failover)] =
        &[("none", Failover::None), ("sentinel", Failover::Sentinel)];
}

/// Where reads go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reads {
    /// To the primary.
    Primary,
    /// To a replica (one of n2..nN per worker).
    Replicas,
}

impl Choice for Reads {
    const CHOICES: &'static [(&'static str, Reads)] =
        &[("primary", Reads::Primary), ("replicas", Reads::Replicas)];
}

/// Redis's options.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Redis {
    /// `failover=none|sentinel`.
    #[serde(serialize_with = "serialize_word")]
    pub failover: Failover,
    /// `reads=primary|replicas`.
    #[serde(serialize_with = "serialize_word")]
    pub reads: Reads,
    /// `wait=N`: WAIT for this many replicas after each write (0: no WAIT).
    pub wait: u32,
    /// `bindir=DIR`: where the binaries are (default: PATH).
    pub bindir: Option<PathBuf>,
}

impl Redis {
    fn parse(mut opts: DbOpts) -> Result<Arc<dyn Store>, String> {
        let wait = match opts.take("wait") {
            None => 0,
            Some(w) => w.parse::<u32>().ok().filter(|n| *n <= 8).ok_or_else(|| {
                format!("--db-opt wait={w}: expected a number of replicas, 0 to 8")
            })?,
        };
        let failover = opts.take_choice("failover", Failover::None)?;
        let reads = opts.take_choice("reads", Reads::Primary)?;
        let bindir = opts.take_path("bindir");
        opts.finish("failover, reads, wait, bindir")?;
        Ok(Arc::new(Redis {
            failover,
            reads,
            wait,
            bindir,
        }))
    }
}

const CAS: &str = "local v = redis.call('GET', KEYS[1]); if (v == false and ARGV[1] == 'null') or v == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2]); return 1 else return 0 end";

async fn one(addr: SocketAddr, args: &[&[u8]]) -> Result<Resp, String> {
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut c = RespConn::connect(addr, deadline)
        .await
        .map_err(|e| e.to_string())?;
    c.cmd(args, deadline).await.map_err(|e| e.to_string())
}

#[async_trait]
impl Store for Redis {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn label(&self) -> String {
        match self.failover {
            Failover::Sentinel => format!("redis-sentinel-{}", self.reads.word()),
            Failover::None => format!("redis-{}", self.reads.word()),
        }
    }

    fn describe(&self) -> String {
        format!(
            "redis (failover {}, reads from {}, wait {})",
            self.failover.word(),
            self.reads.word(),
            self.wait
        )
    }

    fn options(&self) -> Value {
        json!(self)
    }

    /// redis-server; Sentinel runs a second server on each host, which
    /// faultline does not start over SSH.
    fn needs(&self) -> Result<Needs, String> {
        if self.failover == Failover::Sentinel {
            return Err(
                "failover=sentinel runs two servers per host, and faultline starts one per host over SSH".into(),
            );
        }
        Ok(Needs {
            db: "redis",
            programs: vec!["redis-server"],
            bindir: self.bindir.clone(),
            install: INSTALL,
            ..Needs::default()
        })
    }

    fn check_install(&self) -> Result<Programs, StoreError> {
        let programs: &[&str] = match self.failover {
            Failover::None => &["redis-server"],
            Failover::Sentinel => &["redis-server", "redis-sentinel"],
        };
        Programs::find("redis", self.bindir.as_deref(), programs, INSTALL)
    }

    /// redis-server everywhere (n2.. as replicas of n1); once every replica
    /// is in sync, the sentinels if asked.
    async fn start(&self, launch: &mut Launch<'_>) -> Result<(), StoreError> {
        let server = launch.program("redis-server")?;
        let nodes = launch.nodes();
        let primary = &nodes[0];
        for (i, n) in nodes.iter().enumerate() {
            let dir = launch.node_dir(&n.name)?.join("redis");
            launch.create_dir(&n.name, &dir).await?;
            let mut argv = vec![
                server.display().to_string(),
                "--bind".into(),
                n.ip.to_string(),
                "--port".into(),
                PORT.to_string(),
                "--protected-mode".into(),
                "no".into(),
                "--dir".into(),
                dir.display().to_string(),
                "--save".into(),
                String::new(),
                "--appendonly".into(),
                "no".into(),
                "--repl-diskless-sync-delay".into(),
                "0".into(),
                "--daemonize".into(),
                "no".into(),
            ];
            if i > 0 {
                argv.extend([
                    "--replicaof".into(),
                    primary.ip.to_string(),
                    PORT.to_string(),
                ]);
            }
            launch.spawn(&n.name, "redis", argv).await?;
        }
        for (i, n) in nodes.iter().enumerate() {
            let addr = SocketAddr::new(n.ip.into(), PORT);
            launch
                .wait_for(
                    Duration::from_secs(20),
                    &format!("redis on {}", n.name),
                    || async move {
                        match one(addr, &[b"INFO", b"replication"]).await? {
                            Resp::Bulk(Some(b)) => {
                                let t = String::from_utf8_lossy(&b);
                                if i == 0 || t.contains("master_link_status:up") {
                                    Ok(())
                                } else {
                                    Err("replica not in sync yet".into())
                                }
                            }
                            other => Err(format!("INFO: {other:?}")),
                        }
                    },
                )
                .await?;
        }
        if self.failover == Failover::Sentinel {
            let sentinel = launch.program("redis-sentinel")?;
            let quorum = nodes.len() / 2 + 1;
            for n in &nodes {
                let dir = launch.node_dir(&n.name)?.join("sentinel");
                launch.create_dir(&n.name, &dir).await?;
                let conf = dir.join("sentinel.conf");
                let text = format!(
                    "port {SENTINEL_PORT}\nbind {ip}\nprotected-mode no\ndaemonize no\ndir {dir}\n\
                 sentinel resolve-hostnames no\nsentinel monitor {MASTER} {p} {PORT} {quorum}\n\
                 sentinel down-after-milliseconds {MASTER} 1000\nsentinel failover-timeout {MASTER} 3000\n\
                 sentinel parallel-syncs {MASTER} 1\n",
                    ip = n.ip,
                    dir = dir.display(),
                    p = primary.ip,
                );
                launch.write_file(&n.name, &conf, &text).await?;
                launch
                    .spawn(
                        &n.name,
                        "sentinel",
                        vec![sentinel.display().to_string(), conf.display().to_string()],
                    )
                    .await?;
            }
        }
        Ok(())
    }

    /// Every sentinel knows the other sentinels and every replica.
    async fn ready(&self, launch: &mut Launch<'_>) -> Result<(), StoreError> {
        if self.failover == Failover::None {
            return Ok(());
        }
        let nodes = launch.nodes();
        let want = nodes.len() - 1;
        for n in &nodes {
            let addr = SocketAddr::new(n.ip.into(), SENTINEL_PORT);
            launch
                .wait_for(
                    Duration::from_secs(20),
                    &format!("sentinel on {}", n.name),
                    || async move {
                        let r = one(addr, &[b"SENTINEL", b"MASTER", MASTER.as_bytes()]).await?;
                        let Resp::Array(Some(fields)) = r else {
                            return Err(format!("SENTINEL MASTER: {r:?}"));
                        };
                        let texts: Vec<String> = fields
                            .iter()
                            .map(|f| f.text().unwrap_or_default())
                            .collect();
                        let get = |k: &str| {
                            texts
                                .iter()
                                .position(|t| t == k)
                                .and_then(|i| texts.get(i + 1))
                                .and_then(|v| v.parse::<usize>().ok())
                                .unwrap_or(0)
                        };
                        let (others, replicas) = (get("num-other-sentinels"), get("num-slaves"));
                        if others >= want && replicas >= want {
                            Ok(())
                        } else {
                            Err(format!(
                                "knows {others} other sentinels and {replicas} replicas"
                            ))
                        }
                    },
                )
                .await?;
        }
        Ok(())
    }

    /// n1.
    async fn primaries(&self, cluster: &Cluster) -> Vec<String> {
        cluster
            .nodes
            .first()
            .map(|n| n.0.clone())
            .into_iter()
            .collect()
    }

    fn client_port(&self) -> Option<u16> {
        Some(PORT)
    }

    fn client(&self, cluster: &Arc<Cluster>, role: Role) -> Box<dyn Client> {
        Box::new(RedisClient {
            cluster: cluster.clone(),
            role,
            sentinel: self.failover == Failover::Sentinel,
            replica_reads: self.reads == Reads::Replicas,
            wait: self.wait,
            primary: None,
            reader: None,
            known_primary: 0,
        })
    }
}

/// A Redis client: a connection to the primary, and one to the read node
/// when reads go to replicas.
struct RedisClient {
    cluster: Arc<Cluster>,
    role: Role,
    sentinel: bool,
    replica_reads: bool,
    wait: u32,
    primary: Option<(usize, RespConn)>,
    reader: Option<RespConn>,
    known_primary: usize,
}

impl RedisClient {
    fn read_node(&self) -> Option<usize> {
        match self.role {
            Role::Final(i) => Some(i),
            Role::Worker(_) if self.replica_reads => {
                Some(self.role.replica(self.cluster.nodes.len()))
            }
            Role::Worker(_) => None,
        }
    }

    /// Asks the sentinels (the home node's first) for the primary.
    async fn discover(&mut self, deadline: Instant) -> usize {
        if !self.sentinel {
            return 0;
        }
        let n = self.cluster.nodes.len();
        let home = self.role.home(n);
        for k in 0..n {
            let i = (home + k) % n;
            let addr = self.cluster.addr(i, SENTINEL_PORT);
            let d = deadline.min(Instant::now() + Duration::from_millis(300));
            let Ok(mut c) = RespConn::connect(addr, d).await else {
                continue;
            };
            if let Ok(Resp::Array(Some(a))) = c
                .cmd(
                    &[b"SENTINEL", b"GET-MASTER-ADDR-BY-NAME", MASTER.as_bytes()],
                    d,
                )
                .await
                && let Some(ip) = a.first().and_then(Resp::text)
                && let Some(i) = self.cluster.index_of(&ip)
            {
                return i;
            }
        }
        self.known_primary
    }
}

#[async_trait]
impl Client for RedisClient {
    /// Connects to the primary (and the read node).
    async fn ready(&mut self, deadline: Instant) -> Result<(), ClientError> {
        if self.read_node().is_some() && self.reader.is_none() {
            let i = self.read_node().unwrap_or(0);
            self.reader = Some(RespConn::connect(self.cluster.addr(i, PORT), deadline).await?);
        }
        if matches!(self.role, Role::Worker(_)) && self.primary.is_none() {
            let p = self.discover(deadline).await;
            self.known_primary = p;
            let c = RespConn::connect(self.cluster.addr(p, PORT), deadline).await?;
            self.primary = Some((p, c));
        }
        Ok(())
    }

    /// Drops the connections (the primary is looked up again).
    fn reset(&mut self) {
        self.primary = None;
        self.reader = None;
    }

    /// The node `f` goes to.
    fn target(&self, f: &str) -> String {
        match self.read_node() {
            Some(i) if f == "read" || matches!(self.role, Role::Final(_)) => self.cluster.name(i),
            _ => self.cluster.name(self.known_primary),
        }
    }

    /// read, write, cas, add, incr (`read` of a set: SMEMBERS).
    async fn call(
        &mut self,
        op: Operation<'_>,
        deadline: Instant,
    ) -> Result<Completion, ClientError> {
        let Operation { f, key, value, .. } = op;
        self.ready(deadline).await?;
        let use_reader =
            f == "read" && self.reader.is_some() || matches!(self.role, Role::Final(_));
        let conn = if use_reader {
            self.reader.as_mut()
        } else {
            self.primary.as_mut().map(|(_, c)| c)
        }
        .ok_or_else(|| ClientError::Definite("not connected".into()))?;
        let k = key.as_bytes();
        let reply = match f {
            "read" if key == "set" => conn.cmd(&[b"SMEMBERS", k], deadline).await?,
            "read" => conn.cmd(&[b"GET", k], deadline).await?,
            "write" => {
                conn.cmd(&[b"SET", k, encode(value).as_bytes()], deadline)
                    .await?
            }
            "add" => {
                conn.cmd(&[b"SADD", k, encode(value).as_bytes()], deadline)
                    .await?
            }
            "incr" => {
                conn.cmd(&[b"INCRBY", k, encode(value).as_bytes()], deadline)
                    .await?
            }
            "cas" => {
                let Some((e, n)) = cas_pair(value) else {
                    return fail("bad request: cas needs [expected, new]");
                };
                let (e, n) = (encode(&e), encode(&n));
                conn.cmd(
                    &[b"EVAL", CAS.as_bytes(), b"1", k, e.as_bytes(), n.as_bytes()],
                    deadline,
                )
                .await?
            }
            other => return fail(format!("bad request: redis does not do `{other}`")),
        };
        if let Resp::Error(e) = &reply {
            if e.starts_with("READONLY") || e.starts_with("MASTERDOWN") {
                // Not the primary (any more): look it up again next time.
                self.primary = None;
            }
            return fail(e.clone());
        }
        match f {
            "read" => match reply {
                Resp::Bulk(None) => ok(Value::Null),
                Resp::Bulk(Some(b)) => ok(decode(&String::from_utf8_lossy(&b))),
                Resp::Array(Some(items)) => {
                    let mut v: Vec<Value> = items
                        .iter()
                        .filter_map(|i| i.text())
                        .map(|t| decode(&t))
                        .collect();
                    v.sort_by(|a, b| match (a.as_i64(), b.as_i64()) {
                        (Some(x), Some(y)) => x.cmp(&y),
                        _ => a.to_string().cmp(&b.to_string()),
                    });
                    ok(Value::Array(v))
                }
                Resp::Array(None) => ok(Value::Array(Vec::new())),
                other => Err(ClientError::Definite(format!("unexpected reply {other:?}"))),
            },
            "cas" if reply == Resp::Int(0) => fail("cas-mismatch"),
            _ => {
                if self.wait > 0 && matches!(self.role, Role::Worker(_)) {
                    let ms = deadline
                        .saturating_duration_since(Instant::now())
                        .as_millis()
                        .max(1)
                        .to_string();
                    let n = self.wait.to_string();
                    let conn = self.primary.as_mut().map(|(_, c)| c).ok_or_else(|| {
                        ClientError::Indefinite("lost the primary connection".into())
                    })?;
                    match conn
                        .cmd(&[b"WAIT", n.as_bytes(), ms.as_bytes()], deadline)
                        .await
                    {
                        Ok(Resp::Int(got)) if got >= i64::from(self.wait) => {}
                        Ok(Resp::Int(got)) => {
                            return info(format!(
                                "WAIT: {got} of {} replicas acknowledged",
                                self.wait
                            ));
                        }
                        Ok(other) => return info(format!("WAIT: {other:?}")),
                        Err(e) => return Err(ClientError::Indefinite(format!("WAIT: {e}"))),
                    }
                }
                ok(value.clone())
            }
        }
    }
}
