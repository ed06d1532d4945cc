//! The node's server: accepts connections, tells clients from peers, and
//! hands requests to the mode's engine ([`super::repl`] for primary and
//! async, [`super::quorum`] for quorum).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::peer::{self, FrameIn, HELLO_PREFIX, Hello, Link, PeerReq, PeerResp};
use super::protocol::{Func, Reply, Request, parse_request};
use super::quorum::Quorum;
use super::repl::Repl;
use super::{Mode, NodeConfig, NodeError, log};

/// The mode-specific part of a node.
pub(crate) enum Engine {
    Repl(Arc<Repl>),
    Quorum(Arc<Quorum>),
}

/// A running node: its configuration and engine.
pub(crate) struct Node {
    pub cfg: NodeConfig,
    pub engine: Engine,
    /// Identifies this start of the node (it starts empty).
    pub incarnation: u64,
}

impl Node {
    fn start(cfg: NodeConfig) -> Arc<Node> {
        let incarnation = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        let engine = match cfg.mode {
            Mode::Primary | Mode::Async => {
                let primary = cfg.primary_name().to_string();
                let links: Vec<Arc<Link>> = cfg
                    .peers
                    .iter()
                    .filter(|(n, _)| primary == cfg.name || *n == primary)
                    .map(|(n, a)| {
                        Link::new(&cfg.name, cfg.mode, incarnation, n, *a, cfg.request_timeout)
                    })
                    .collect();
                for l in &links {
                    tokio::spawn(l.clone().run());
                }
                Engine::Repl(Repl::start(&cfg, links))
            }
            Mode::Quorum => {
                let links: Vec<Arc<Link>> = cfg
                    .peers
                    .iter()
                    .map(|(n, a)| {
                        Link::new(&cfg.name, cfg.mode, incarnation, n, *a, cfg.request_timeout)
                    })
                    .collect();
                for l in &links {
                    tokio::spawn(l.clone().run());
                }
                Engine::Quorum(Quorum::start(&cfg, links))
            }
        };
        Arc::new(Node {
            cfg,
            engine,
            incarnation,
        })
    }

    /// Handles one parsed client request (or a forwarded one, which must
    /// not be forwarded again).
    pub(crate) async fn handle(
        &self,
        req: Request,
        func: Func,
        deadline: Instant,
        forwarded: bool,
    ) -> Reply {
        match func {
            Func::Ping => Reply::ok(req.id, Value::String(self.cfg.name.clone())),
            Func::Dump => {
                let v = match &self.engine {
                    Engine::Repl(r) => r.dump(),
                    Engine::Quorum(q) => q.dump(),
                };
                Reply::ok(req.id, v)
            }
            _ => match &self.engine {
                Engine::Repl(r) => r.handle(req, func, deadline, forwarded).await,
                Engine::Quorum(q) => q.handle(req, func, deadline).await,
            },
        }
    }

    fn handle_peer(&self, from: &str, req: PeerReq) -> PeerResp {
        match &self.engine {
            Engine::Repl(r) => r.handle_peer(from, req),
            Engine::Quorum(q) => q.handle_peer(req),
        }
    }
}

/// Runs a node until the process ends. See [`serve_until`].
pub async fn serve(cfg: NodeConfig) -> Result<(), NodeError> {
    serve_until(cfg, std::future::pending()).await
}

/// Runs a node until `shutdown` completes: binds the listen address (an
/// error if it is taken), starts the mode's replication, and serves clients
/// and peers. Returns `Ok(())` after `shutdown`.
pub async fn serve_until(
    cfg: NodeConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), NodeError> {
    cfg.validate()?;
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| NodeError::Bind {
            addr: cfg.listen,
            source,
        })?;
    let peers: Vec<String> = cfg.peers.iter().map(|(n, a)| format!("{n}={a}")).collect();
    let detail = match cfg.mode {
        Mode::Quorum => format!("r={} w={}", cfg.r, cfg.w),
        Mode::Async if !cfg.replication_lag.is_zero() => format!(
            "primary {}, replication lag {} ms",
            cfg.primary_name(),
            cfg.replication_lag.as_millis()
        ),
        _ => format!("primary {}", cfg.primary_name()),
    };
    log(
        &cfg.name,
        format_args!(
            "listening on {}, mode {} ({detail}), peers [{}], request timeout {} ms",
            cfg.listen,
            cfg.mode,
            peers.join(" "),
            cfg.request_timeout.as_millis()
        ),
    );
    let node = Node::start(cfg);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => {
                log(&node.cfg.name, format_args!("stopping"));
                return Ok(());
            }
            r = listener.accept() => match r {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(connection(node.clone(), stream));
                }
                Err(e) => {
                    // EMFILE, ECONNABORTED...: transient; keep serving.
                    log(&node.cfg.name, format_args!("accept: {e}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

fn trim(line: &[u8]) -> &[u8] {
    let start = line
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(line.len());
    let end = line
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &line[start..end.max(start)]
}

/// One client (or peer) connection: requests are handled one at a time, in
/// order, and replies are flushed when no further request is buffered.
async fn connection(node: Arc<Node>, stream: TcpStream) {
    let (rd, wr) = stream.into_split();
    let mut rd = BufReader::with_capacity(16 * 1024, rd);
    let mut wr = BufWriter::with_capacity(16 * 1024, wr);
    let mut line = Vec::with_capacity(256);
    let mut out = Vec::with_capacity(256);
    let mut first = true;
    loop {
        line.clear();
        match rd.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if first && line.starts_with(HELLO_PREFIX) {
            serve_peer(node, &line, rd, wr.into_inner()).await;
            return;
        }
        first = false;
        let req = trim(&line);
        if req.is_empty() {
            continue;
        }
        let deadline = Instant::now() + node.cfg.request_timeout;
        let reply = match parse_request(req) {
            Err(r) => *r,
            Ok((req, func)) => node.handle(req, func, deadline, false).await,
        };
        out.clear();
        if serde_json::to_writer(&mut out, &reply).is_err() {
            return;
        }
        out.push(b'\n');
        if wr.write_all(&out).await.is_err() {
            return;
        }
        if rd.buffer().is_empty() && wr.flush().await.is_err() {
            return;
        }
    }
}

/// The accepting side of a peer connection: answer the hello, then answer
/// every frame (forwarded client requests concurrently, the rest inline).
async fn serve_peer(
    node: Arc<Node>,
    hello: &[u8],
    mut rd: BufReader<OwnedReadHalf>,
    mut wr: OwnedWriteHalf,
) {
    let me = node.cfg.name.clone();
    let theirs: Hello = match serde_json::from_slice(hello) {
        Ok(h) => h,
        Err(e) => {
            log(&me, format_args!("bad peer hello: {e}"));
            return;
        }
    };
    if !node.cfg.peers.iter().any(|(n, _)| *n == theirs.name) {
        log(
            &me,
            format_args!("refusing peer {:?}: not in --peer", theirs.name),
        );
        return;
    }
    let mut answer = match serde_json::to_vec(&Hello {
        name: me.clone(),
        mode: node.cfg.mode.as_str().to_string(),
        incarnation: node.incarnation,
    }) {
        Ok(a) => a,
        Err(_) => return,
    };
    answer.push(b'\n');
    if wr.write_all(&answer).await.is_err() {
        return;
    }
    let (tx, rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let writer = tokio::spawn(peer::write_loop(wr, rx));
    let mut line = Vec::with_capacity(4096);
    loop {
        line.clear();
        match rd.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let f: FrameIn<PeerReq> = match serde_json::from_slice(&line) {
            Ok(f) => f,
            Err(e) => {
                log(&me, format_args!("bad frame from {}: {e}", theirs.name));
                break;
            }
        };
        match f.msg {
            PeerReq::Forward { req, budget_ms } => {
                let node = node.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let deadline = Instant::now() + Duration::from_millis(budget_ms);
                    let id = req.id;
                    let reply = match Func::parse(&req.f) {
                        Some(func) => node.handle(req, func, deadline, true).await,
                        None => Reply::fail(id, Value::Null, "bad request: unknown f"),
                    };
                    let _ = tx.send(peer::frame(f.rpc, &PeerResp::Reply(reply)));
                });
            }
            msg => {
                let resp = node.handle_peer(&theirs.name, msg);
                if tx.send(peer::frame(f.rpc, &resp)).is_err() {
                    break;
                }
            }
        }
    }
    drop(tx);
    // Let the writer finish what is queued (forwarded replies still in
    // flight simply fail to send).
    let _ = writer.await;
}
