//! `--db builtin`: faultline's own replicated key-value store, `faultline
//! node` (the system under test in `src/node/`), one per node, in `primary`,
//! `async` or `quorum` mode. Options: `mode=primary|async|quorum`, `r=N`,
//! `w=N` (quorum sizes: a number, `one`, `quorum` or `all`).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::options::serialize_word;
use super::registry::Entry;
use super::{
    Choice, Client, ClientError, Cluster, Completion, DbOpts, Launch, LaunchNode, Needs, Operation,
    Programs, Role, Store, StoreError,
};
use crate::node::{Mode, NodeClient, Reply, ReplyType, Timestamps};

/// The program of the built-in store's servers (`faultline node`).
const PROGRAM: &str = "faultline";

/// Port of the built-in store on every node.
pub const NODE_PORT: u16 = 7000;

/// The registry line's entry.
pub const ENTRY: Entry = Entry {
    name: "builtin",
    parse: Builtin::parse,
    doctor: &[],
};

impl Choice for Mode {
    const CHOICES: &'static [(&'static str, Mode)] = &[
        ("primary", Mode::Primary),
        ("async", Mode::Async),
        ("quorum", Mode::Quorum),
    ];
}

/// A read or write quorum of the quorum mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuorumSize {
    /// One node.
    One,
    /// A majority.
    Quorum,
    /// Every node.
    All,
    /// This many nodes (at least 1).
    Nodes(u32),
}

impl QuorumSize {
    fn parse(key: &str, v: &str) -> Result<QuorumSize, String> {
        match v {
            "one" => Ok(QuorumSize::One),
            "quorum" => Ok(QuorumSize::Quorum),
            "all" => Ok(QuorumSize::All),
            n => n
                .parse::<u32>()
                .ok()
                .filter(|n| *n >= 1)
                .map(QuorumSize::Nodes)
                .ok_or_else(|| {
                    format!("--db-opt {key}={v}: expected a number >= 1, one, quorum or all")
                }),
        }
    }
}

impl std::fmt::Display for QuorumSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QuorumSize::One => f.write_str("one"),
            QuorumSize::Quorum => f.write_str("quorum"),
            QuorumSize::All => f.write_str("all"),
            QuorumSize::Nodes(n) => write!(f, "{n}"),
        }
    }
}

impl Serialize for QuorumSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The built-in store's options.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Builtin {
    /// The replication mode.
    #[serde(serialize_with = "serialize_word")]
    pub mode: Mode,
    /// Read quorum (quorum mode).
    pub r: QuorumSize,
    /// Write quorum (quorum mode).
    pub w: QuorumSize,
    /// How writes are timestamped (quorum mode; recorded only when not
    /// the default, so earlier runs' options read the same).
    #[serde(serialize_with = "serialize_word", skip_serializing_if = "is_lamport")]
    pub timestamps: Timestamps,
}

fn is_lamport(t: &Timestamps) -> bool {
    *t == Timestamps::Lamport
}

impl Choice for Timestamps {
    const CHOICES: &'static [(&'static str, Timestamps)] =
        &[("lamport", Timestamps::Lamport), ("wall", Timestamps::Wall)];
}

impl Builtin {
    /// A cluster in `mode` with majority quorums.
    pub fn new(mode: Mode) -> Builtin {
        Builtin {
            mode,
            r: QuorumSize::Quorum,
            w: QuorumSize::Quorum,
            timestamps: Timestamps::Lamport,
        }
    }

    fn parse(mut opts: DbOpts) -> Result<Arc<dyn Store>, String> {
        let mode = match opts.take("mode") {
            None => Mode::Primary,
            Some(m) => Mode::from_word(&m)
                .ok_or_else(|| format!("--db-opt mode={m}: expected primary, async or quorum"))?,
        };
        if mode != Mode::Quorum
            && let Some(k) = ["r", "w", "timestamps"].into_iter().find(|k| opts.has(k))
        {
            return Err(format!(
                "--db-opt {k}: only means something with mode=quorum (this run has mode={})",
                mode.word()
            ));
        }
        let mut size = |key: &str| match opts.take(key) {
            None => Ok(QuorumSize::Quorum),
            Some(v) => QuorumSize::parse(key, &v),
        };
        let (r, w) = (size("r")?, size("w")?);
        let timestamps = match opts.take("timestamps") {
            None => Timestamps::Lamport,
            Some(t) => Timestamps::from_word(&t)
                .ok_or_else(|| format!("--db-opt timestamps={t}: expected lamport or wall"))?,
        };
        if let Some(k) = opts.left() {
            return Err(format!(
                "--db-opt {k}: the builtin store has no such option (mode, r, w, timestamps)"
            ));
        }
        Ok(Arc::new(Builtin {
            mode,
            r,
            w,
            timestamps,
        }))
    }

    /// `faultline node` (the program `exe`) for `node`, with every other
    /// node as a peer.
    fn argv(&self, exe: &Path, nodes: &[LaunchNode], node: &LaunchNode) -> Vec<String> {
        let mut argv = vec![
            exe.display().to_string(),
            "node".into(),
            "--name".into(),
            node.name.clone(),
            "--listen".into(),
            format!("{}:{NODE_PORT}", node.ip),
        ];
        for other in nodes.iter().filter(|n| n.name != node.name) {
            argv.push("--peer".into());
            argv.push(format!("{}={}:{NODE_PORT}", other.name, other.ip));
        }
        argv.extend(["--mode".into(), self.mode.to_string()]);
        if self.mode == Mode::Quorum {
            argv.extend([
                "--r".into(),
                self.r.to_string(),
                "--w".into(),
                self.w.to_string(),
                "--timestamps".into(),
                self.timestamps.as_str().into(),
            ]);
        }
        argv
    }
}

#[async_trait]
impl Store for Builtin {
    fn name(&self) -> &'static str {
        "builtin"
    }

    fn label(&self) -> String {
        match (self.mode, self.timestamps) {
            (Mode::Quorum, Timestamps::Wall) => "builtin-quorum-wall".into(),
            (m, _) => format!("builtin-{m}"),
        }
    }

    fn describe(&self) -> String {
        match self.mode {
            Mode::Quorum => format!(
                "builtin (quorum, r={}, w={}, {} timestamps)",
                self.r,
                self.w,
                self.timestamps.as_str()
            ),
            m => format!("builtin ({m})"),
        }
    }

    fn options(&self) -> Value {
        json!(self)
    }

    /// The servers are `faultline node`: this binary in the lab; on a host,
    /// `faultline` on its PATH, else at this binary's path there.
    fn needs(&self) -> Result<Needs, String> {
        let exe =
            std::env::current_exe().map_err(|e| format!("finding the faultline binary: {e}"))?;
        Ok(Needs {
            db: "builtin",
            programs: vec![PROGRAM],
            also: vec![(PROGRAM, exe)],
            install: "cp faultline /usr/local/bin/ (this machine's binary)",
            ..Needs::default()
        })
    }

    /// This binary.
    fn check_install(&self) -> Result<Programs, StoreError> {
        let exe =
            std::env::current_exe().map_err(StoreError::io("finding the faultline binary"))?;
        Ok(Programs::from_paths([(PROGRAM, exe)].into()))
    }

    async fn start(&self, launch: &mut Launch<'_>) -> Result<(), StoreError> {
        let exe = launch.program(PROGRAM)?;
        let nodes = launch.nodes();
        for node in &nodes {
            let argv = self.argv(exe, &nodes, node);
            launch.spawn(&node.name, "faultline-node", argv).await?;
        }
        Ok(())
    }

    /// Every node answers `ping`.
    async fn ready(&self, launch: &mut Launch<'_>) -> Result<(), StoreError> {
        for node in launch.nodes() {
            let addr = SocketAddr::new(node.ip.into(), NODE_PORT);
            launch
                .wait_for(Duration::from_secs(10), &addr.to_string(), || async move {
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
                })
                .await?;
        }
        Ok(())
    }

    /// n1 in primary and async modes; none in quorum mode.
    async fn primaries(&self, cluster: &Cluster) -> Vec<String> {
        match self.mode {
            Mode::Quorum => Vec::new(),
            _ => cluster
                .nodes
                .first()
                .map(|n| n.0.clone())
                .into_iter()
                .collect(),
        }
    }

    fn client(&self, cluster: &Arc<Cluster>, role: Role) -> Box<dyn Client> {
        let home = role.home(cluster.nodes.len());
        Box::new(BuiltinClient {
            addr: cluster.addr(home, NODE_PORT),
            name: cluster.name(home),
            conn: None,
        })
    }
}

/// A client of the node on the worker's home node.
struct BuiltinClient {
    addr: SocketAddr,
    name: String,
    conn: Option<NodeClient>,
}

/// The node client's error as the stores' (the same split).
fn store_error(e: crate::node::ClientError) -> ClientError {
    match e {
        crate::node::ClientError::Definite(m) => ClientError::Definite(m),
        crate::node::ClientError::Indefinite(m) => ClientError::Indefinite(m),
    }
}

/// A node's reply as a completion.
pub(crate) fn completion(r: Reply) -> Completion {
    match r.kind {
        ReplyType::Ok => Completion::Ok(r.value),
        ReplyType::Fail => Completion::Fail(r.error),
        ReplyType::Info => Completion::Info(r.error),
    }
}

#[async_trait]
impl Client for BuiltinClient {
    async fn ready(&mut self, deadline: Instant) -> Result<(), ClientError> {
        if self.conn.is_none() {
            let timeout = deadline.saturating_duration_since(Instant::now());
            let c = NodeClient::connect(self.addr, timeout).await;
            self.conn = Some(c.map_err(store_error)?);
        }
        Ok(())
    }

    fn reset(&mut self) {
        self.conn = None;
    }

    fn target(&self, _f: &str) -> String {
        self.name.clone()
    }

    async fn call(
        &mut self,
        op: Operation<'_>,
        deadline: Instant,
    ) -> Result<Completion, ClientError> {
        let timeout = deadline.saturating_duration_since(Instant::now());
        let c = match &mut self.conn {
            Some(c) => c,
            None => self.conn.insert(
                NodeClient::connect(self.addr, timeout)
                    .await
                    .map_err(store_error)?,
            ),
        };
        c.call(op.f, op.key, op.value.clone(), timeout)
            .await
            .map(completion)
            .map_err(store_error)
    }

    /// The node client reconnects by itself after an error, and a read
    /// with no answer stays `info`.
    fn shared_error_rules(&self) -> bool {
        false
    }
}
