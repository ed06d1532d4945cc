//! NATS JetStream key-value (nats-server 2.9): one server per node, all in
//! one cluster with JetStream on (`server_name`, routes to every other node,
//! `jetstream { store_dir }` under the node's directory), and one KV bucket
//! `faultline` (the stream `KV_faultline`, subjects `$KV.faultline.>`,
//! history 1) replicated on R = min(3, nodes) servers.
//!
//! Clients use the `async-nats` crate, each on its home node's server: a
//! write is a JetStream publish to `$KV.faultline.<key>`; a cas reads the
//! key's last revision from the stream leader and publishes with
//! `Nats-Expected-Last-Subject-Sequence` (0 for an absent key, KV's
//! `create`); a read asks the stream leader (`reads=leader`, the API's
//! `STREAM.MSG.GET`) or any replica (`reads=direct`, the bucket has
//! `allow_direct` and `DIRECT.GET` is answered by whichever server holds a
//! copy). Definite or not: a publish refused before it was handed to the
//! connection, an explicit JetStream error (`wrong last sequence`, ...) or
//! "no responders" is `fail`; no ack in time or a lost connection is `info`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::stream::{
    Config, DirectGetErrorKind, DiscardPolicy, LastRawMessageErrorKind, StorageType,
};
use async_nats::jetstream::{self, stream};
use async_nats::{HeaderMap, connection::State};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::time::{Instant, timeout_at};

use async_trait::async_trait;

use super::options::serialize_word;
use super::registry::{Entry, Requirement};
use super::wire::{cas_pair, decode, encode};
use super::{
    Choice, Client, ClientError, Cluster, Completion, DbOpts, Launch, Needs, Operation, Role,
    Store, StoreError, fail, info, ok,
};
use faultline_workloads::workload::WorkloadKind;

/// Client port.
pub const CLIENT_PORT: u16 = 4222;
/// Route (cluster) port.
pub const ROUTE_PORT: u16 = 6222;
/// The Debian package.
pub const INSTALL: &str = "apt-get install -y nats-server";
/// The KV bucket.
pub const BUCKET: &str = "faultline";
/// The bucket's stream.
const STREAM: &str = "KV_faultline";
/// How long the crate waits before reconnecting: never, in a run.
const NEVER: Duration = Duration::from_secs(365 * 24 * 3600);

/// The registry line's entry.
pub const ENTRY: Entry = Entry {
    name: "nats",
    parse: Nats::parse,
    doctor: &[Requirement {
        what: "nats-server (--db nats)",
        program: "nats-server",
        install: INSTALL,
        also_in: None,
    }],
};

/// Where reads are served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reads {
    /// By the stream leader (`$JS.API.STREAM.MSG.GET`; the default).
    Leader,
    /// By any server with a copy (`$JS.API.DIRECT.GET`; `allow_direct`).
    Direct,
}

impl Choice for Reads {
    const CHOICES: &'static [(&'static str, Reads)] =
        &[("leader", Reads::Leader), ("direct", Reads::Direct)];
}

/// NATS's options.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Nats {
    /// `reads=leader|direct`.
    #[serde(serialize_with = "serialize_word")]
    pub reads: Reads,
    /// `replicas=N` (1 to 5; default min(3, nodes)).
    pub replicas: Option<usize>,
    /// `bindir=DIR`: where `nats-server` is (default: PATH).
    pub bindir: Option<PathBuf>,
}

impl Nats {
    fn parse(mut opts: DbOpts) -> Result<Arc<dyn Store>, String> {
        let reads = opts.take_choice("reads", Reads::Leader)?;
        let replicas = match opts.take("replicas") {
            None => None,
            Some(v) => match v.parse::<usize>() {
                Ok(r @ 1..=5) => Some(r),
                _ => return Err(format!("--db-opt replicas={v}: expected a number, 1 to 5")),
            },
        };
        let bindir = opts.take_path("bindir");
        opts.finish("reads, replicas, bindir")?;
        Ok(Arc::new(Nats {
            reads,
            replicas,
            bindir,
        }))
    }

    /// The bucket's replication factor on `nodes` servers.
    fn replicas_on(&self, nodes: usize) -> Result<usize, StoreError> {
        match self.replicas {
            None => Ok(nodes.clamp(1, 3)),
            Some(r) if r <= nodes => Ok(r),
            Some(r) => Err(StoreError::Down(format!(
                "--db-opt replicas={r}: the lab has only {nodes} nodes"
            ))),
        }
    }
}

#[async_trait]
impl Store for Nats {
    fn name(&self) -> &'static str {
        "nats"
    }

    fn label(&self) -> String {
        format!("nats-{}", self.reads.word())
    }

    fn describe(&self) -> String {
        let r = self
            .replicas
            .map_or("min(3, nodes)".into(), |r| r.to_string());
        format!("NATS JetStream kv ({} reads, R={r})", self.reads.word())
    }

    fn options(&self) -> Value {
        json!(self)
    }

    fn check_workload(&self, w: WorkloadKind) -> Result<(), String> {
        super::register_and_kv_only("nats", w)
    }

    fn needs(&self) -> Result<Needs, String> {
        Ok(Needs {
            db: "nats",
            programs: vec!["nats-server"],
            bindir: self.bindir.clone(),
            install: INSTALL,
            ..Needs::default()
        })
    }

    /// One server per node, each with a config file naming the others.
    async fn start(&self, launch: &mut Launch<'_>) -> Result<(), StoreError> {
        let bin = launch.program("nats-server")?;
        let nodes = launch.nodes();
        self.replicas_on(nodes.len())?;
        for n in &nodes {
            let dir = launch.node_dir(&n.name)?;
            let mut conf = format!(
                "server_name: {name}\nlisten: \"{ip}:{CLIENT_PORT}\"\nlogtime: true\n\
                 jetstream {{\n  store_dir: \"{store}\"\n}}\n",
                name = n.name,
                ip = n.ip,
                store = dir.join("nats").display(),
            );
            if nodes.len() > 1 {
                let routes: Vec<String> = nodes
                    .iter()
                    .filter(|m| m.name != n.name)
                    .map(|m| format!("    \"nats-route://{}:{ROUTE_PORT}\"", m.ip))
                    .collect();
                conf += &format!(
                    "cluster {{\n  name: faultline\n  listen: \"{}:{ROUTE_PORT}\"\n  routes: [\n{}\n  ]\n}}\n",
                    n.ip,
                    routes.join("\n")
                );
            }
            let path = dir.join("nats.conf");
            launch.write_file(&n.name, &path, &conf).await?;
            let argv = vec![
                bin.display().to_string(),
                "-c".into(),
                path.display().to_string(),
            ];
            launch.spawn(&n.name, "nats", argv).await?;
        }
        Ok(())
    }

    /// Every server answers; the bucket exists with a leader and every
    /// replica current; every server reaches it.
    async fn ready(&self, launch: &mut Launch<'_>) -> Result<(), StoreError> {
        let nodes: Vec<(String, std::net::SocketAddr)> = launch
            .nodes()
            .iter()
            .map(|n| (n.name.clone(), (n.ip, CLIENT_PORT).into()))
            .collect();
        let replicas = self.replicas_on(nodes.len())?;
        let within = Duration::from_secs(30);
        for (name, addr) in &nodes {
            let addr = *addr;
            launch
                .wait_for(within, &format!("nats-server on {name}"), || async move {
                    Conn::open(addr, soon())
                        .await
                        .map(drop)
                        .map_err(|e| e.to_string())
                })
                .await?;
        }
        let first = nodes[0].1;
        let allow_direct = self.reads == Reads::Direct;
        launch
            .wait_for(within, "the JetStream bucket", || async move {
                create_bucket(first, replicas, allow_direct).await
            })
            .await?;
        launch
            .wait_for(within, "the bucket's replicas", || async move {
                let c = Conn::open(first, soon()).await.map_err(|e| e.to_string())?;
                let i = timeout_at(soon(), c.stream.get_info())
                    .await
                    .map_err(|_| "stream info: timeout".to_string())?
                    .map_err(|e| e.to_string())?;
                let current = i.cluster.as_ref().map_or(0, |c| {
                    c.leader.iter().count() + c.replicas.iter().filter(|p| p.current).count()
                });
                // A single server (no cluster) reports no replicas.
                if current >= replicas || replicas == 1 {
                    Ok(())
                } else {
                    Err(format!("{current} of {replicas} replicas current"))
                }
            })
            .await?;
        for (name, addr) in &nodes {
            let addr = *addr;
            launch
                .wait_for(within, &format!("the bucket from {name}"), || async move {
                    let mut c = Conn::open(addr, soon()).await.map_err(|e| e.to_string())?;
                    match c.get("faultline-ready", Reads::Leader, soon()).await {
                        Ok(Ok(_)) => Ok(()),
                        Ok(Err(e)) | Err(ClientError::Definite(e) | ClientError::Indefinite(e)) => {
                            Err(e)
                        }
                    }
                })
                .await?;
        }
        Ok(())
    }

    /// The bucket's stream leader.
    async fn primaries(&self, cluster: &Cluster) -> Vec<String> {
        for i in 0..cluster.nodes.len() {
            let Ok(c) = Conn::open(cluster.addr(i, CLIENT_PORT), soon()).await else {
                continue;
            };
            if let Ok(Ok(i)) = timeout_at(soon(), c.stream.get_info()).await
                && let Some(leader) = i.cluster.and_then(|c| c.leader)
            {
                return vec![leader];
            }
        }
        Vec::new()
    }

    fn client(&self, cluster: &Arc<Cluster>, role: Role) -> Box<dyn Client> {
        Box::new(NatsClient {
            node: role.home(cluster.nodes.len()),
            cluster: cluster.clone(),
            reads: self.reads,
            conn: None,
        })
    }
}

/// One second from now: the deadline of each readiness probe.
fn soon() -> Instant {
    Instant::now() + Duration::from_secs(1)
}

/// Creates the bucket's stream (as KV clients configure it) through the
/// server at `addr`; one that exists already is fine (an earlier attempt
/// that timed out may have created it).
async fn create_bucket(
    addr: std::net::SocketAddr,
    replicas: usize,
    allow_direct: bool,
) -> Result<(), String> {
    let c = Conn::open(addr, soon()).await.map_err(|e| e.to_string())?;
    let config = Config {
        name: STREAM.into(),
        subjects: vec![format!("$KV.{BUCKET}.>")],
        max_messages_per_subject: 1,
        storage: StorageType::File,
        num_replicas: replicas,
        discard: DiscardPolicy::New,
        allow_rollup: true,
        deny_delete: true,
        allow_direct,
        ..Default::default()
    };
    let deadline = Instant::now() + Duration::from_secs(3);
    match timeout_at(deadline, c.js.create_stream(config)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => match timeout_at(deadline, c.stream.get_info()).await {
            Ok(Ok(i)) if i.config.num_replicas == replicas => Ok(()),
            _ => Err(format!("creating stream {STREAM}: {e}")),
        },
        Err(_) => Err(format!("creating stream {STREAM}: timeout")),
    }
}

/// A connection to one server, with the bucket's stream.
struct Conn {
    client: async_nats::Client,
    js: jetstream::Context,
    stream: stream::Stream<()>,
}

impl Conn {
    /// Connects to the server at `addr` only (never to the servers it
    /// advertises: a client stays on its node), and never reconnects: a
    /// lost connection is dropped and a new one opened, so every connect
    /// is checked first. The crate opens its own sockets, which cannot be
    /// bound to the lab's bridge; the check makes sure the bridge is there,
    /// or nothing is sent (see `lab::client_socket`).
    async fn open(addr: std::net::SocketAddr, deadline: Instant) -> Result<Conn, ClientError> {
        crate::lab::client_socket::socket_for(addr)
            .map_err(|e| ClientError::Definite(format!("connect {addr}: {e}")))?;
        let first = AtomicBool::new(true);
        let options = async_nats::ConnectOptions::new()
            .ignore_discovered_servers()
            .reconnect_delay_callback(move |_| {
                if first.swap(false, Ordering::Relaxed) {
                    Duration::ZERO
                } else {
                    NEVER
                }
            })
            .connection_timeout(Duration::from_secs(1));
        let client = match timeout_at(deadline, options.connect(addr.to_string())).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(ClientError::Definite(format!("connect {addr}: {e}"))),
            Err(_) => return Err(ClientError::Definite(format!("connect {addr}: timeout"))),
        };
        let mut js = jetstream::new(client.clone());
        // Every call has its own deadline; this only bounds what is left
        // waiting for an ack after a call gave up.
        js.set_timeout(Duration::from_secs(10));
        let stream = js
            .get_stream_no_info(STREAM)
            .await
            .map_err(|e| ClientError::Definite(format!("stream {STREAM}: {e}")))?;
        Ok(Conn { client, js, stream })
    }

    /// The key's last value and revision (`None`: absent), or the store's
    /// refusal, or a transport error.
    async fn get(
        &mut self,
        key: &str,
        reads: Reads,
        deadline: Instant,
    ) -> Result<Result<Option<(Value, u64)>, String>, ClientError> {
        let subject = format!("$KV.{BUCKET}.{key}");
        let timeout = || ClientError::Indefinite("timeout".into());
        let msg = match reads {
            Reads::Leader => {
                match timeout_at(
                    deadline,
                    self.stream.get_last_raw_message_by_subject(&subject),
                )
                .await
                .map_err(|_| timeout())?
                {
                    Ok(m) => m,
                    Err(e) => match e.kind() {
                        LastRawMessageErrorKind::NoMessageFound => return Ok(Ok(None)),
                        LastRawMessageErrorKind::JetStream(j) => {
                            return Ok(Err(format!("unavailable: {j}")));
                        }
                        _ => return Err(ClientError::Indefinite(e.to_string())),
                    },
                }
            }
            Reads::Direct => {
                match timeout_at(deadline, self.stream.direct_get_last_for_subject(&subject))
                    .await
                    .map_err(|_| timeout())?
                {
                    Ok(m) => m,
                    Err(e) => match e.kind() {
                        DirectGetErrorKind::NotFound => return Ok(Ok(None)),
                        DirectGetErrorKind::ErrorResponse(..) => {
                            return Ok(Err(format!("unavailable: {e}")));
                        }
                        _ => return Err(ClientError::Indefinite(e.to_string())),
                    },
                }
            }
        };
        let value = decode(&String::from_utf8_lossy(&msg.payload));
        Ok(Ok(Some((value, msg.sequence))))
    }

    /// Publishes `value` to the key, with the expected last revision when
    /// given (0: the key must be absent).
    async fn publish(
        &mut self,
        key: &str,
        value: &Value,
        expected: Option<u64>,
        deadline: Instant,
    ) -> Result<Completion, ClientError> {
        let subject = format!("$KV.{BUCKET}.{key}");
        let payload = encode(value).into_bytes().into();
        let sent = match expected {
            None => timeout_at(deadline, self.js.publish(subject, payload)).await,
            Some(rev) => {
                let mut headers = HeaderMap::new();
                headers.insert("Nats-Expected-Last-Subject-Sequence", rev.to_string());
                timeout_at(
                    deadline,
                    self.js.publish_with_headers(subject, headers, payload),
                )
                .await
            }
        };
        // Not handed to the connection (its queue was full or closed): not
        // sent.
        let ack = match sent {
            Ok(Ok(ack)) => ack,
            Ok(Err(e)) => return Err(ClientError::Definite(format!("publish: {e}"))),
            Err(_) => {
                return Err(ClientError::Definite(
                    "publish: queue full until timeout".into(),
                ));
            }
        };
        let Ok(acked) = timeout_at(deadline, ack.into_future()).await else {
            return info("timeout: no ack");
        };
        let Err(e) = acked else {
            return ok(value.clone());
        };
        let explicit = std::error::Error::source(&e)
            .and_then(|s| s.downcast_ref::<jetstream::Error>())
            .is_some();
        match e.kind() {
            PublishErrorKind::WrongLastSequence => fail("cas-mismatch"),
            // Status 503 on the request: no server took the message.
            PublishErrorKind::StreamNotFound => {
                fail("unavailable: no responders for the bucket's subjects")
            }
            PublishErrorKind::Other if explicit => fail(format!("unavailable: {e}")),
            _ => info(e.to_string()),
        }
    }
}

/// A client of the server on the worker's home node.
struct NatsClient {
    cluster: Arc<Cluster>,
    node: usize,
    reads: Reads,
    conn: Option<Conn>,
}

impl NatsClient {
    /// The connection, if it is up: nothing is sent on one that is not (the
    /// crate would queue it until a reconnect).
    fn conn(&mut self) -> Result<&mut Conn, ClientError> {
        match self.conn.as_ref().map(|c| c.client.connection_state()) {
            None => return Err(ClientError::Definite("not connected".into())),
            Some(State::Connected) => {}
            Some(_) => {
                self.conn = None;
                return Err(ClientError::Definite(format!(
                    "unavailable: disconnected from {}",
                    self.cluster.name(self.node)
                )));
            }
        }
        self.conn
            .as_mut()
            .ok_or_else(|| ClientError::Definite("not connected".into()))
    }
}

#[async_trait]
impl Client for NatsClient {
    async fn ready(&mut self, deadline: Instant) -> Result<(), ClientError> {
        if self.conn.is_none() {
            self.conn =
                Some(Conn::open(self.cluster.addr(self.node, CLIENT_PORT), deadline).await?);
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
        match op.f {
            "read" => match c.get(op.key, reads, deadline).await? {
                Ok(got) => ok(got.map_or(Value::Null, |(v, _)| v)),
                Err(e) => fail(e),
            },
            "write" => c.publish(op.key, op.value, None, deadline).await,
            "cas" => {
                let Some((expected, new)) = cas_pair(op.value) else {
                    return fail("bad request: cas needs [expected, new]");
                };
                if expected.is_null() {
                    return c.publish(op.key, &new, Some(0), deadline).await;
                }
                // Nothing is written until the publish: any error reading
                // the revision is definite.
                let rev = match c.get(op.key, Reads::Leader, deadline).await {
                    Ok(Ok(Some((v, rev)))) if v == expected => rev,
                    Ok(Ok(_)) => return fail("cas-mismatch"),
                    Ok(Err(e)) => return fail(e),
                    Err(e) => return Err(ClientError::Definite(e.to_string())),
                };
                match c.publish(op.key, &new, Some(rev), deadline).await? {
                    Completion::Ok(_) => ok(op.value.clone()),
                    other => Ok(other),
                }
            }
            other => fail(format!(
                "bad request: nats does not do `{other}` (read, write, cas)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nats(opts: &[(&str, &str)]) -> Result<Arc<dyn Store>, String> {
        crate::stores::registry::testing::store("nats", opts)
    }

    #[test]
    fn options_are_typed_and_recorded() {
        let s = nats(&[("reads", "direct"), ("replicas", "2")]).expect("parses");
        assert_eq!(
            s.options(),
            json!({"reads": "direct", "replicas": 2, "bindir": null})
        );
        assert_eq!(s.label(), "nats-direct");
        let s = nats(&[]).expect("parses");
        assert_eq!(
            s.options(),
            json!({"reads": "leader", "replicas": null, "bindir": null})
        );
        for (k, v, want) in [
            (
                "reads",
                "sometimes",
                "--db-opt reads=sometimes: expected leader or direct",
            ),
            (
                "replicas",
                "0",
                "--db-opt replicas=0: expected a number, 1 to 5",
            ),
            (
                "replicas",
                "three",
                "--db-opt replicas=three: expected a number, 1 to 5",
            ),
            (
                "sync",
                "always",
                "--db-opt sync: --db nats has no such option (reads, replicas, bindir)",
            ),
        ] {
            assert_eq!(nats(&[(k, v)]).expect_err(want), want);
        }
    }

    #[test]
    fn replicas_default_to_three_at_most_and_never_exceed_the_nodes() {
        let default = Nats {
            reads: Reads::Leader,
            replicas: None,
            bindir: None,
        };
        let r = |s: &Nats, n| s.replicas_on(n).map_err(|e| e.to_string());
        assert_eq!(r(&default, 1), Ok(1));
        assert_eq!(r(&default, 3), Ok(3));
        assert_eq!(r(&default, 5), Ok(3));
        let five = Nats {
            replicas: Some(5),
            ..default
        };
        assert_eq!(r(&five, 5), Ok(5));
        assert_eq!(
            r(&five, 3),
            Err("the store did not come up: --db-opt replicas=5: the lab has only 3 nodes".into())
        );
    }
}
