//! Apache ZooKeeper (Debian 3.8): one server per node, all in one ensemble
//! (`server.N=IP:2888:3888`, `myid` N, the client port 2181 bound to the
//! node's address), each a `java` child process running `QuorumPeerMain`
//! on a config written under the node's directory.
//!
//! Every key is a znode `/faultline/<key>` holding the value's JSON text.
//! Clients use the `zookeeper-client` crate, each with its own session on
//! its home node's server only (never the whole ensemble): a read is
//! `getData` (after a `sync` with `reads=sync`, the default; the local
//! replica as it stands with `reads=plain`), a write is `setData` (`create`
//! when the znode is missing), a cas reads value and version and then
//! `setData` with that version (`BadVersion`: `fail`). Definite or not: an
//! error reply from the server (`BadVersion`, `NodeExists`, `NotReadOnly`,
//! ...) is `fail`; a lost connection, a timeout or an expired session
//! during a write is `info`; a client whose session expired or was lost
//! opens a new one.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{Instant, timeout_at};
use zookeeper_client as zk;

use super::options::serialize_word;
use super::registry::{Entry, Requirement};
use super::wire::{cas_pair, decode, encode};
use super::{
    Choice, Client, ClientError, Cluster, Completion, DbOpts, Launch, Needs, Operation, Programs,
    Role, Store, StoreError, fail, ok,
};
use crate::lab::Lab;
use faultline_workloads::workload::WorkloadKind;

/// Client port.
pub const CLIENT_PORT: u16 = 2181;
/// The Debian package (it pulls in Java).
pub const INSTALL: &str = "apt-get install -y zookeeper";
/// Where Debian puts the server's classes.
const JAR_DIR: &str = "/usr/share/java";
/// The znode under which every key lives.
const ROOT: &str = "/faultline";
/// ZooKeeper's tick: heartbeats, and the session and sync limits below.
const TICK_MS: u64 = 500;
/// Ticks a follower may lag or be silent before the leader drops it (and it
/// drops the leader): 2.5 s.
const SYNC_LIMIT: u64 = 5;
/// The session timeout clients ask for.
const SESSION: Duration = Duration::from_secs(4);

/// The registry line's entry.
pub const ENTRY: Entry = Entry {
    name: "zookeeper",
    parse: ZooKeeper::parse,
    doctor: &[
        Requirement {
            what: "java (--db zookeeper)",
            program: "java",
            install: INSTALL,
            also_in: None,
        },
        Requirement {
            what: "ZooKeeper's classes (--db zookeeper)",
            program: "zookeeper.jar",
            install: INSTALL,
            also_in: Some(jar_dir),
        },
    ],
};

/// Debian's jar directory, when ZooKeeper's jar is there.
fn jar_dir() -> Option<PathBuf> {
    let d = PathBuf::from(JAR_DIR);
    d.join("zookeeper.jar").is_file().then_some(d)
}

/// How reads are served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reads {
    /// `sync`, then `getData` (the default): the server catches up with the
    /// leader first.
    Sync,
    /// `getData` on the server's local replica (may be stale).
    Plain,
}

impl Choice for Reads {
    const CHOICES: &'static [(&'static str, Reads)] =
        &[("sync", Reads::Sync), ("plain", Reads::Plain)];
}

/// ZooKeeper's options.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ZooKeeper {
    /// `reads=sync|plain`.
    #[serde(serialize_with = "serialize_word")]
    pub reads: Reads,
    /// `readonly=true`: servers cut off from the quorum keep serving reads
    /// (`readonlymode.enabled`), and clients accept read-only sessions.
    pub readonly: bool,
    /// `bindir=DIR`: where `java` is (default: PATH).
    pub bindir: Option<PathBuf>,
    /// `jar=PATH`: ZooKeeper's jar (default: Debian's).
    pub jar: Option<PathBuf>,
}

impl ZooKeeper {
    fn parse(mut opts: DbOpts) -> Result<Arc<dyn Store>, String> {
        let reads = opts.take_choice("reads", Reads::Sync)?;
        let readonly = opts.take_flag("readonly", false)?;
        let bindir = opts.take_path("bindir");
        let jar = opts.take_path("jar");
        opts.finish("reads, readonly, bindir, jar")?;
        Ok(Arc::new(ZooKeeper {
            reads,
            readonly,
            bindir,
            jar,
        }))
    }

    fn jar(&self) -> PathBuf {
        self.jar
            .clone()
            .unwrap_or_else(|| Path::new(JAR_DIR).join("zookeeper.jar"))
    }

    /// The node's config: the ensemble, the client port on the node's
    /// address, the four-letter words `srvr` (readiness, leader) and
    /// `isro` (the crate's read-only sessions look for a writable server
    /// with it), and no limit on connections from one address (every
    /// client comes from the control node's).
    fn config(&self, lab: &Lab, ip: std::net::Ipv4Addr, data: &Path) -> String {
        let mut c = format!(
            "tickTime={TICK_MS}\ninitLimit=20\nsyncLimit={SYNC_LIMIT}\ndataDir={}\n\
             clientPortAddress={ip}\nclientPort={CLIENT_PORT}\n\
             4lw.commands.whitelist=srvr,isro\nadmin.enableServer=false\nmaxClientCnxns=0\n",
            data.display()
        );
        for (i, n) in lab.nodes().iter().enumerate() {
            c += &format!("server.{}={}:2888:3888\n", i + 1, n.ip);
        }
        if self.readonly {
            // A read-only server cannot commit a global session: without
            // local sessions it answers every connect with "throttled"
            // (measured on 3.8.0).
            c += "localSessionsEnabled=true\nlocalSessionsUpgradingEnabled=true\n";
        }
        c
    }
}

#[async_trait]
impl Store for ZooKeeper {
    fn name(&self) -> &'static str {
        "zookeeper"
    }

    fn label(&self) -> String {
        format!("zookeeper-{}", self.reads.word())
    }

    fn describe(&self) -> String {
        let ro = if self.readonly {
            ", read-only mode"
        } else {
            ""
        };
        format!("ZooKeeper ({} reads{ro})", self.reads.word())
    }

    fn options(&self) -> Value {
        json!(self)
    }

    fn check_workload(&self, w: WorkloadKind) -> Result<(), String> {
        super::register_and_kv_only("zookeeper", w)
    }

    fn needs(&self) -> Result<Needs, String> {
        Err("its jar and classpath are found on the control machine's filesystem".into())
    }

    fn check_install(&self) -> Result<Programs, StoreError> {
        let programs = Programs::find("zookeeper", self.bindir.as_deref(), &["java"], INSTALL)?;
        let jar = self.jar();
        if !jar.is_file() {
            return Err(StoreError::Missing {
                program: jar.display().to_string(),
                what: "--db zookeeper".into(),
                fix: format!("install it with: {INSTALL}"),
            });
        }
        Ok(programs)
    }

    /// One server per node: `myid`, `zoo.cfg` and the data under the
    /// node's directory; the log on stderr (slf4j-simple when installed).
    async fn start(&self, launch: &mut Launch<'_>) -> Result<(), StoreError> {
        let java = launch.program("java")?;
        let lab = launch.lab()?;
        let mut classpath = self.jar().display().to_string();
        let simple = Path::new(JAR_DIR).join("slf4j-simple.jar");
        if simple.is_file() {
            classpath += &format!(":{}", simple.display());
        }
        for (i, n) in lab.nodes().iter().enumerate() {
            let dir = lab.node_dir(n)?.join("zookeeper");
            let io = |what: &str| StoreError::io(format!("{what} in {}", dir.display()));
            std::fs::create_dir_all(&dir).map_err(io("creating the data directory"))?;
            std::fs::write(dir.join("myid"), format!("{}\n", i + 1)).map_err(io("writing myid"))?;
            let cfg = dir.join("zoo.cfg");
            std::fs::write(&cfg, self.config(lab, n.ip, &dir)).map_err(io("writing zoo.cfg"))?;
            let argv = vec![
                java.display().to_string(),
                "-Xms32m".into(),
                "-Xmx256m".into(),
                "-XX:+UseSerialGC".into(),
                "-XX:TieredStopAtLevel=1".into(),
                "-Djava.net.preferIPv4Stack=true".into(),
                "-Dorg.slf4j.simpleLogger.showDateTime=true".into(),
                format!("-Dreadonlymode.enabled={}", self.readonly),
                "-cp".into(),
                classpath.clone(),
                "org.apache.zookeeper.server.quorum.QuorumPeerMain".into(),
                cfg.display().to_string(),
            ];
            launch.spawn(&n.name, "zookeeper", argv).await?;
        }
        Ok(())
    }

    /// Every server is in the ensemble (leader, follower or standalone);
    /// `/faultline` exists; a session on every server reads it.
    async fn ready(&self, launch: &mut Launch<'_>) -> Result<(), StoreError> {
        let lab = launch.lab()?;
        let addr = |n: &crate::lab::NodeState| std::net::SocketAddr::from((n.ip, CLIENT_PORT));
        // A JVM per node on a shared machine: start-up takes seconds.
        let limit = Duration::from_secs(60);
        for n in lab.nodes() {
            let a = addr(n);
            let what = format!("zookeeper on {}", n.name);
            launch
                .wait_for(limit, &what, || async move { mode(a).await.map(drop) })
                .await?;
        }
        let first = addr(&lab.nodes()[0]);
        launch
            .wait_for(limit, &format!("creating {ROOT}"), || async move {
                let c = open(first, false, soon())
                    .await
                    .map_err(|e| e.to_string())?;
                match within(soon(), c.create(ROOT, b"", &persistent())).await {
                    Ok(_) | Err(zk::Error::NodeExists) => Ok(()),
                    Err(e) => Err(format!("create {ROOT}: {e}")),
                }
            })
            .await?;
        for n in lab.nodes() {
            let a = addr(n);
            let what = format!("{ROOT} from {}", n.name);
            launch
                .wait_for(limit, &what, || async move {
                    let c = open(a, false, soon()).await.map_err(|e| e.to_string())?;
                    let got = within(soon(), c.get_data(ROOT)).await;
                    got.map(drop).map_err(|e| format!("getData {ROOT}: {e}"))
                })
                .await?;
        }
        Ok(())
    }

    /// The server whose `srvr` says `Mode: leader`.
    async fn primaries(&self, cluster: &Cluster) -> Vec<String> {
        for (i, (name, _)) in cluster.nodes.iter().enumerate() {
            if let Ok("leader") = mode(cluster.addr(i, CLIENT_PORT)).await.as_deref() {
                return vec![name.clone()];
            }
        }
        Vec::new()
    }

    fn client(&self, cluster: &Arc<Cluster>, role: Role) -> Box<dyn Client> {
        Box::new(ZkClient {
            node: role.home(cluster.nodes.len()),
            cluster: cluster.clone(),
            reads: self.reads,
            readonly: self.readonly,
            conn: None,
        })
    }
}

/// One second from now: the deadline of each readiness probe.
fn soon() -> Instant {
    Instant::now() + Duration::from_secs(1)
}

/// Plain persistent znodes, open to anyone.
fn persistent() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

/// The server's mode from the four-letter word `srvr` (`leader`,
/// `follower`, `standalone`, `read-only`), or why there is none.
async fn mode(addr: std::net::SocketAddr) -> Result<String, String> {
    let ask = async {
        let mut s = crate::lab::client_socket::connect(addr).await?;
        s.write_all(b"srvr").await?;
        let mut out = String::new();
        s.read_to_string(&mut out).await?;
        Ok::<_, std::io::Error>(out)
    };
    let out = match timeout_at(soon(), ask).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return Err(format!("srvr on {addr}: {e}")),
        Err(_) => return Err(format!("srvr on {addr}: timeout")),
    };
    out.lines()
        .find_map(|l| l.strip_prefix("Mode: "))
        .map(|m| m.trim().to_string())
        .ok_or_else(|| format!("srvr on {addr}: {}", out.trim()))
}

/// A session with the server at `addr` only. The crate opens its own
/// sockets, which cannot be bound to the lab's bridge; the check makes
/// sure the bridge is there, or nothing is sent (see
/// `lab::client_socket`).
async fn open(
    addr: std::net::SocketAddr,
    readonly: bool,
    deadline: Instant,
) -> Result<zk::Client, ClientError> {
    crate::lab::client_socket::socket_for(addr)
        .map_err(|e| ClientError::Definite(format!("connect {addr}: {e}")))?;
    let cluster = addr.to_string();
    let connect = zk::Client::connector()
        .with_session_timeout(SESSION)
        .with_readonly(readonly)
        .with_fail_eagerly()
        .connect(&cluster);
    match timeout_at(deadline, connect).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(ClientError::Definite(format!("connect {addr}: {e}"))),
        Err(_) => Err(ClientError::Definite(format!("connect {addr}: timeout"))),
    }
}

/// Whether the server refused the request, so it certainly had no effect
/// (every other error may follow a commit).
fn refused(e: &zk::Error) -> bool {
    use zk::Error::*;
    matches!(
        e,
        NoNode
            | NoAuth
            | BadVersion
            | NodeExists
            | NotEmpty
            | InvalidAcl
            | SessionMoved
            | NotReadOnly
            | Throttled
            | MarshallingError
            | Unimplemented
            | BadArguments(_)
            | QuotaExceeded
            | UnexpectedErrorCode(_)
    )
}

/// A write's error: `fail` when the server refused it, `info` otherwise.
fn write_error(e: zk::Error) -> Result<Completion, ClientError> {
    if refused(&e) {
        fail(format!("refused: {e}"))
    } else {
        Err(ClientError::Indefinite(e.to_string()))
    }
}

/// A client with its own session on the worker's home node's server.
struct ZkClient {
    cluster: Arc<Cluster>,
    node: usize,
    reads: Reads,
    readonly: bool,
    conn: Option<zk::Client>,
}

impl ZkClient {
    /// The session, if it is connected: nothing is sent on one that is not
    /// (the crate would queue it until it reconnects); an expired or lost
    /// one is dropped, and the next `ready` opens a new one.
    fn conn(&mut self) -> Result<&zk::Client, ClientError> {
        let state = match &self.conn {
            None => return Err(ClientError::Definite("not connected".into())),
            Some(c) => c.state(),
        };
        match state {
            zk::SessionState::SyncConnected => {}
            zk::SessionState::ConnectedReadOnly if self.readonly => {}
            other => {
                self.conn = None;
                return Err(ClientError::Definite(format!(
                    "unavailable: session on {} is {other}",
                    self.cluster.name(self.node)
                )));
            }
        }
        self.conn
            .as_ref()
            .ok_or_else(|| ClientError::Definite("not connected".into()))
    }
}

/// The znode of `key`.
fn path(key: &str) -> String {
    format!("{ROOT}/{key}")
}

/// `request`'s answer, or `Timeout` at `deadline`.
async fn within<T>(
    deadline: Instant,
    request: impl std::future::Future<Output = Result<T, zk::Error>>,
) -> Result<T, zk::Error> {
    timeout_at(deadline, request)
        .await
        .unwrap_or(Err(zk::Error::Timeout))
}

/// The value and version of `path` (`None`: absent), or the error.
async fn get(
    c: &zk::Client,
    path: &str,
    deadline: Instant,
) -> Result<Option<(Value, i32)>, zk::Error> {
    match within(deadline, c.get_data(path)).await {
        Ok((data, stat)) => Ok(Some((
            decode(&String::from_utf8_lossy(&data)),
            stat.version,
        ))),
        Err(zk::Error::NoNode) => Ok(None),
        Err(e) => Err(e),
    }
}

#[async_trait]
impl Client for ZkClient {
    async fn ready(&mut self, deadline: Instant) -> Result<(), ClientError> {
        if self.conn.is_none() {
            let addr = self.cluster.addr(self.node, CLIENT_PORT);
            self.conn = Some(open(addr, self.readonly, deadline).await?);
        }
        self.conn().map(drop)
    }

    fn reset(&mut self) {
        self.conn = None;
    }

    /// The server this client talks to.
    fn target(&self, _f: &str) -> String {
        self.cluster.name(self.node)
    }

    /// read, write, cas.
    async fn call(
        &mut self,
        op: Operation<'_>,
        deadline: Instant,
    ) -> Result<Completion, ClientError> {
        let reads = self.reads;
        let c = self.conn()?;
        let path = path(op.key);
        match op.f {
            "read" => {
                if reads == Reads::Sync {
                    match within(deadline, c.sync(&path)).await {
                        Ok(()) | Err(zk::Error::NoNode) => {}
                        Err(e) => return fail(format!("sync: {e}")),
                    }
                }
                match get(c, &path, deadline).await {
                    Ok(got) => ok(got.map_or(Value::Null, |(v, _)| v)),
                    Err(e) => fail(e.to_string()),
                }
            }
            "write" => {
                let data = encode(op.value).into_bytes();
                // Whichever of setData and create finds the znode in the
                // state it needs; a writer that loses the race to create
                // it sets it.
                for _ in 0..3 {
                    match within(deadline, c.set_data(&path, &data, None)).await {
                        Ok(_) => return ok(op.value.clone()),
                        Err(zk::Error::NoNode) => {}
                        Err(e) => return write_error(e),
                    }
                    match within(deadline, c.create(&path, &data, &persistent())).await {
                        Ok(_) => return ok(op.value.clone()),
                        Err(zk::Error::NodeExists) => {}
                        Err(e) => return write_error(e),
                    }
                }
                fail("unavailable: the znode kept appearing and disappearing")
            }
            "cas" => {
                let Some((expected, new)) = cas_pair(op.value) else {
                    return fail("bad request: cas needs [expected, new]");
                };
                let data = encode(&new).into_bytes();
                if expected.is_null() {
                    return match within(deadline, c.create(&path, &data, &persistent())).await {
                        Ok(_) => ok(op.value.clone()),
                        Err(zk::Error::NodeExists) => fail("cas-mismatch"),
                        Err(e) => write_error(e),
                    };
                }
                // Nothing is written until setData: any error reading the
                // version is definite. A stale local read is harmless: its
                // version no longer matches and setData is refused.
                let version = match get(c, &path, deadline).await {
                    Ok(Some((v, version))) if v == expected => version,
                    Ok(_) => return fail("cas-mismatch"),
                    Err(e) => return Err(ClientError::Definite(e.to_string())),
                };
                match within(deadline, c.set_data(&path, &data, Some(version))).await {
                    Ok(_) => ok(op.value.clone()),
                    Err(zk::Error::BadVersion | zk::Error::NoNode) => fail("cas-mismatch"),
                    Err(e) => write_error(e),
                }
            }
            other => fail(format!(
                "bad request: zookeeper does not do `{other}` (read, write, cas)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zookeeper(opts: &[(&str, &str)]) -> Result<Arc<dyn Store>, String> {
        crate::stores::registry::testing::store("zookeeper", opts)
    }

    #[test]
    fn options_are_typed_and_recorded() {
        let s = zookeeper(&[("reads", "plain"), ("readonly", "true")]).expect("parses");
        assert_eq!(
            s.options(),
            json!({"reads": "plain", "readonly": true, "bindir": null, "jar": null})
        );
        assert_eq!(s.label(), "zookeeper-plain");
        assert_eq!(s.describe(), "ZooKeeper (plain reads, read-only mode)");
        let s = zookeeper(&[]).expect("parses");
        assert_eq!(
            s.options(),
            json!({"reads": "sync", "readonly": false, "bindir": null, "jar": null})
        );
        for (k, v, want) in [
            (
                "reads",
                "local",
                "--db-opt reads=local: expected sync or plain",
            ),
            (
                "readonly",
                "maybe",
                "--db-opt readonly=maybe: expected true or false",
            ),
            (
                "sync",
                "always",
                "--db-opt sync: --db zookeeper has no such option (reads, readonly, bindir, jar)",
            ),
        ] {
            assert_eq!(zookeeper(&[(k, v)]).expect_err(want), want);
        }
    }

    #[test]
    fn only_server_refusals_are_definite() {
        for e in [
            zk::Error::BadVersion,
            zk::Error::NotReadOnly,
            zk::Error::NodeExists,
        ] {
            assert!(matches!(write_error(e), Ok(Completion::Fail(_))));
        }
        for e in [
            zk::Error::ConnectionLoss,
            zk::Error::Timeout,
            zk::Error::SessionExpired,
            zk::Error::ClientClosed,
        ] {
            assert!(matches!(write_error(e), Err(ClientError::Indefinite(_))));
        }
    }
}
