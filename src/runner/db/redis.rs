//! Redis (7): a primary on n1 and replicas on the other nodes, optionally a
//! Sentinel on every node (`failover=sentinel`). Clients write to the
//! primary (asking the sentinels which node that is), read from the primary
//! or from a replica (`reads=replicas`), and may `WAIT` for N replicas after
//! every write on the same connection (`wait=N`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::wire::{Resp, RespConn};
use super::{Cluster, Role, cas_pair, decode, encode, fail, info, ok, spawn, wait_for};
use crate::lab::Lab;
use crate::lab::proc::Server;
use crate::node::client::ClientError;
use crate::node::protocol::Reply;
use crate::runner::{DbConfig, RunError};

/// The data port.
pub const PORT: u16 = 6379;
/// The sentinel port.
pub const SENTINEL_PORT: u16 = 26379;
/// The name sentinels monitor.
pub const MASTER: &str = "faultline";

const CAS: &str = "local v = redis.call('GET', KEYS[1]); if (v == false and ARGV[1] == 'null') or v == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2]); return 1 else return 0 end";

async fn one(addr: SocketAddr, args: &[&[u8]]) -> Result<Resp, String> {
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut c = RespConn::connect(addr, deadline)
        .await
        .map_err(|e| e.to_string())?;
    c.cmd(args, deadline).await.map_err(|e| e.to_string())
}

/// Starts redis-server everywhere (n2.. as replicas of n1), the sentinels if
/// asked, and waits until every replica is in sync and every sentinel knows
/// the whole cluster. Returns the primary.
pub async fn start(
    db: &DbConfig,
    lab: &Lab,
    programs: &BTreeMap<&'static str, PathBuf>,
    servers: &mut Vec<Server>,
) -> Result<Vec<String>, RunError> {
    let DbConfig::Redis { failover, .. } = db else {
        return Err(RunError::StoreDown("not redis".into()));
    };
    let server = programs
        .get("redis-server")
        .ok_or_else(|| RunError::StoreDown("redis-server: no binary".into()))?;
    let nodes = lab.nodes().to_vec();
    let primary = &nodes[0];
    for (i, n) in nodes.iter().enumerate() {
        let dir = lab.node_dir(n)?.join("redis");
        std::fs::create_dir_all(&dir)
            .map_err(super::super::io(format!("creating {}", dir.display())))?;
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
        spawn(lab, servers, &n.name, "redis", argv)?;
    }
    for (i, n) in nodes.iter().enumerate() {
        let addr = SocketAddr::new(n.ip.into(), PORT);
        wait_for(
            servers,
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
    if failover == "sentinel" {
        let sentinel = programs
            .get("redis-sentinel")
            .ok_or_else(|| RunError::StoreDown("redis-sentinel: no binary".into()))?;
        let quorum = nodes.len() / 2 + 1;
        for n in &nodes {
            let dir = lab.node_dir(n)?.join("sentinel");
            std::fs::create_dir_all(&dir)
                .map_err(super::super::io(format!("creating {}", dir.display())))?;
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
            std::fs::write(&conf, text)
                .map_err(super::super::io(format!("writing {}", conf.display())))?;
            spawn(
                lab,
                servers,
                &n.name,
                "sentinel",
                vec![sentinel.display().to_string(), conf.display().to_string()],
            )?;
        }
        let want = nodes.len() - 1;
        for n in &nodes {
            let addr = SocketAddr::new(n.ip.into(), SENTINEL_PORT);
            wait_for(
                servers,
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
    }
    Ok(vec![primary.name.clone()])
}

/// A Redis client: a connection to the primary, and one to the read node
/// when reads go to replicas.
pub struct RedisClient {
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
    /// A client for `role`.
    pub fn new(cluster: Arc<Cluster>, role: Role) -> RedisClient {
        let (sentinel, replica_reads, wait) = match &cluster.db {
            DbConfig::Redis {
                failover,
                reads,
                wait,
                ..
            } => (failover == "sentinel", reads == "replicas", *wait),
            _ => (false, false, 0),
        };
        RedisClient {
            cluster,
            role,
            sentinel,
            replica_reads,
            wait,
            primary: None,
            reader: None,
            known_primary: 0,
        }
    }

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

    /// Connects to the primary (and the read node).
    pub async fn ready(&mut self, deadline: Instant) -> Result<(), ClientError> {
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
    pub fn reset(&mut self) {
        self.primary = None;
        self.reader = None;
    }

    /// The node `f` goes to.
    pub fn target(&self, f: &str) -> String {
        match self.read_node() {
            Some(i) if f == "read" || matches!(self.role, Role::Final(_)) => self.cluster.name(i),
            _ => self.cluster.name(self.known_primary),
        }
    }

    /// read, write, cas, add, incr (`read` of a set: SMEMBERS).
    pub async fn call(
        &mut self,
        f: &str,
        key: &str,
        value: Value,
        deadline: Instant,
    ) -> Result<Reply, ClientError> {
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
                conn.cmd(&[b"SET", k, encode(&value).as_bytes()], deadline)
                    .await?
            }
            "add" => {
                conn.cmd(&[b"SADD", k, encode(&value).as_bytes()], deadline)
                    .await?
            }
            "incr" => {
                conn.cmd(&[b"INCRBY", k, encode(&value).as_bytes()], deadline)
                    .await?
            }
            "cas" => {
                let Some((e, n)) = cas_pair(&value) else {
                    return fail(value, "bad request: cas needs [expected, new]");
                };
                let (e, n) = (encode(&e), encode(&n));
                conn.cmd(
                    &[b"EVAL", CAS.as_bytes(), b"1", k, e.as_bytes(), n.as_bytes()],
                    deadline,
                )
                .await?
            }
            other => return fail(value, format!("bad request: redis does not do `{other}`")),
        };
        if let Resp::Error(e) = &reply {
            if e.starts_with("READONLY") || e.starts_with("MASTERDOWN") {
                // Not the primary (any more): look it up again next time.
                self.primary = None;
            }
            return fail(if f == "read" { Value::Null } else { value }, e.clone());
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
            "cas" if reply == Resp::Int(0) => fail(value, "cas-mismatch"),
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
                            return info(
                                value,
                                format!("WAIT: {got} of {} replicas acknowledged", self.wait),
                            );
                        }
                        Ok(other) => return info(value, format!("WAIT: {other:?}")),
                        Err(e) => return Err(ClientError::Indefinite(format!("WAIT: {e}"))),
                    }
                }
                ok(value)
            }
        }
    }
}
