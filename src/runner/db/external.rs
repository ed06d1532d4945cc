//! External adapters: a program of the user's, started with `sh -c COMMAND`
//! once per client worker (and once for the final reads), that speaks
//! newline-delimited JSON on stdin/stdout. The protocol is in the README
//! ("External adapters"). Optionally faultline also starts servers on the
//! nodes: `server=builtin` (faultline's own store) or `server=SHELL
//! COMMAND` (run in each node with `FAULTLINE_NODE`, `FAULTLINE_NODE_IP`,
//! `FAULTLINE_NODE_DIR` and `FAULTLINE_NODES` set).

use std::fs::OpenOptions;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::time::Instant;

use super::{Cluster, Role, spawn};
use crate::lab::Lab;
use crate::lab::proc::Server;
use crate::node::client::ClientError;
use crate::node::protocol::Reply;
use crate::runner::{DbConfig, RunConfig, RunError};

/// `n1=10.77.0.1,n2=10.77.0.2,...`
fn nodes_env(cluster: &Cluster) -> String {
    cluster
        .nodes
        .iter()
        .map(|(n, ip)| format!("{n}={ip}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Starts the servers (if `server=` is given) and waits until an adapter
/// completes the handshake. Returns the primaries.
pub async fn start(
    cfg: &RunConfig,
    lab: &Lab,
    servers: &mut Vec<Server>,
    cluster: &Cluster,
) -> Result<Vec<String>, RunError> {
    let DbConfig::External {
        server,
        mode,
        handshake,
        primaries,
        ..
    } = &cfg.db
    else {
        return Err(RunError::StoreDown("not external".into()));
    };
    let mut prim = primaries.clone();
    match server.as_deref() {
        None => {}
        Some("builtin") => {
            let mut b = cfg.clone();
            b.db = DbConfig::Builtin {
                mode: mode.clone(),
                r: "quorum".into(),
                w: "quorum".into(),
            };
            super::start_builtin(&b, lab, servers).await?;
            if prim.is_empty() && mode != "quorum" {
                prim = vec![lab.nodes()[0].name.clone()];
            }
        }
        Some(command) => {
            for node in lab.nodes() {
                let argv = vec![
                    "/usr/bin/env".into(),
                    format!("FAULTLINE_NODES={}", nodes_env(cluster)),
                    "/bin/sh".into(),
                    "-c".into(),
                    command.to_string(),
                ];
                spawn(lab, servers, &node.name, "server", argv)?;
            }
        }
    }
    if *handshake {
        // A throwaway adapter: its handshake says the store is ready.
        let probe = Arc::new(Cluster {
            db: cluster.db.clone(),
            nodes: cluster.nodes.clone(),
            primaries: Vec::new(),
            run_dir: cluster.run_dir.clone(),
            client_netns: cluster.client_netns.clone(),
            adapters: Health::default(),
        });
        let mut c = ExternalClient::new(probe, Role::Final(0));
        let t0 = std::time::Instant::now();
        loop {
            super::check_alive(servers)?;
            match c.ready(Instant::now() + Duration::from_secs(5)).await {
                Ok(()) => break,
                // An answer that is not a reply will not become one.
                Err(e) if c.cluster.adapters.hopeless_at_once() => {
                    return Err(RunError::StoreDown(format!(
                        "the external adapter's handshake failed: {e}; its log: {}",
                        cluster.run_dir.join("adapter.log").display()
                    )));
                }
                Err(e) if t0.elapsed() > Duration::from_secs(30) => {
                    return Err(RunError::StoreDown(format!(
                        "the external adapter's handshake did not succeed within 30 s: {e}; its log: {}",
                        cluster.run_dir.join("adapter.log").display()
                    )));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    } else if server.as_deref().is_some_and(|s| s != "builtin") {
        // Give the servers a moment, and notice one that exits at once.
        tokio::time::sleep(Duration::from_millis(500)).await;
        super::check_alive(servers)?;
    }
    Ok(prim)
}

struct Adapter {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Drop for Adapter {
    fn drop(&mut self) {
        // The whole group: `sh -c` may have forked the program.
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// `/bin/sh`, to run in the lab's clients' namespace: there the lab's
/// subnet is the only route, so the adapter (and anything it starts) can
/// reach nothing but the lab. Fails closed: without a clients' namespace
/// no adapter starts.
fn adapter_command(cluster: &Cluster) -> Result<tokio::process::Command, ClientError> {
    let ns = cluster.client_netns.as_deref().ok_or_else(|| {
        ClientError::Definite("starting the adapter: the lab has no clients' namespace".into())
    })?;
    crate::lab::sys::command_in_netns(ns, "/bin/sh")
        .map(tokio::process::Command::from)
        .map_err(|e| ClientError::Definite(format!("starting the adapter: {e}")))
}

/// One adapter process and its conversation.
pub struct ExternalClient {
    cluster: Arc<Cluster>,
    role: Role,
    adapter: Option<Adapter>,
    next_id: u64,
}

fn indefinite(m: impl Into<String>) -> ClientError {
    ClientError::Indefinite(m.into())
}

impl ExternalClient {
    /// A client for `role`.
    pub fn new(cluster: Arc<Cluster>, role: Role) -> ExternalClient {
        ExternalClient {
            cluster,
            role,
            adapter: None,
            next_id: 1,
        }
    }

    fn node(&self) -> usize {
        self.role.home(self.cluster.nodes.len())
    }

    /// Starts the adapter and does the handshake (if enabled). Errors are
    /// definite: no operation was sent.
    pub async fn ready(&mut self, deadline: Instant) -> Result<(), ClientError> {
        if self.adapter.is_some() {
            return Ok(());
        }
        let DbConfig::External {
            command, handshake, ..
        } = &self.cluster.db
        else {
            return Err(ClientError::Definite("not an external store".into()));
        };
        let log_path = self.cluster.run_dir.join("adapter.log");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| ClientError::Definite(format!("opening {}: {e}", log_path.display())))?;
        let worker = match self.role {
            Role::Worker(s) => s.to_string(),
            Role::Final(_) => "final".into(),
        };
        let mut child = adapter_command(&self.cluster)?
            .arg("-c")
            .arg(command)
            .env("FAULTLINE_NODES", nodes_env(&self.cluster))
            .env("FAULTLINE_WORKER", &worker)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| ClientError::Definite(format!("starting the adapter `{command}`: {e}")))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(ClientError::Definite(
                "the adapter has no stdin/stdout".into(),
            ));
        };
        let mut a = Adapter {
            child,
            stdin,
            stdout: BufReader::new(stdout),
        };
        if *handshake {
            let nodes: Vec<Value> = self
                .cluster
                .nodes
                .iter()
                .map(|(n, ip)| json!({"name": n, "addr": ip.to_string()}))
                .collect();
            let hello = json!({"id": 0, "f": "open", "worker": worker, "nodes": nodes});
            // Python and friends need a moment to start: at least 5 s.
            let d = deadline.max(Instant::now() + Duration::from_secs(5));
            match exchange(&mut a, &hello, 0, d, &self.cluster.adapters).await {
                Ok(r) if r.kind == crate::node::protocol::ReplyType::Ok => {}
                Ok(r) => {
                    return Err(ClientError::Definite(format!(
                        "adapter handshake: {} {}",
                        r.kind.as_str(),
                        r.error.unwrap_or_default()
                    )));
                }
                Err(e) => return Err(ClientError::Definite(format!("adapter handshake: {e}"))),
            }
        }
        self.adapter = Some(a);
        Ok(())
    }

    /// Keeps the adapter (late replies are skipped by id) unless it broke.
    pub fn reset(&mut self) {}

    /// The node requests name.
    pub fn target(&self) -> String {
        self.cluster.name(self.node())
    }

    /// Sends one request and waits for the reply with its id.
    pub async fn call(
        &mut self,
        process: u64,
        f: &str,
        key: &str,
        value: Value,
        deadline: Instant,
    ) -> Result<Reply, ClientError> {
        self.ready(deadline).await?;
        let id = self.next_id;
        self.next_id += 1;
        let i = self.node();
        let req = json!({
            "id": id,
            "process": process,
            "node": self.cluster.name(i),
            "addr": self.cluster.nodes[i].1.to_string(),
            "nodes": self.cluster.nodes.iter().map(|(_, ip)| ip.to_string()).collect::<Vec<_>>(),
            "f": f,
            "key": key,
            "value": value,
        });
        let a = self
            .adapter
            .as_mut()
            .ok_or_else(|| ClientError::Definite("no adapter".into()))?;
        let r = exchange(a, &req, id, deadline, &self.cluster.adapters).await;
        if let Err(e) = &r
            && !e.to_string().starts_with("timeout")
        {
            // The adapter broke (exited, or spoke nonsense): start afresh.
            self.adapter = None;
        }
        r
    }
}

async fn exchange(
    a: &mut Adapter,
    req: &Value,
    id: u64,
    deadline: Instant,
    health: &Health,
) -> Result<Reply, ClientError> {
    let mut line = req.to_string().into_bytes();
    line.push(b'\n');
    match tokio::time::timeout_at(deadline, a.stdin.write_all(&line)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            return Err(ClientError::Definite(format!(
                "writing to the adapter: {e}"
            )));
        }
        Err(_) => return Err(indefinite("timeout writing to the adapter")),
    }
    let _ = a.stdin.flush().await;
    loop {
        let buf = match tokio::time::timeout_at(
            deadline,
            read_line_bounded(&mut a.stdout, MAX_REPLY_BYTES),
        )
        .await
        {
            Ok(Ok(Line::Eof)) => return Err(indefinite("the adapter exited (end of its stdout)")),
            Ok(Ok(Line::Text(t))) => t,
            Ok(Ok(Line::TooLong(n))) => {
                health.garbage.fetch_add(1, Ordering::Relaxed);
                return Err(indefinite(format!(
                    "bad reply from the adapter: a line of {n} bytes or more (at most {MAX_REPLY_BYTES})"
                )));
            }
            Ok(Err(e)) => return Err(indefinite(format!("reading the adapter: {e}"))),
            Err(_) => return Err(indefinite("timeout: no reply from the adapter")),
        };
        let text = buf.trim();
        if text.is_empty() {
            continue;
        }
        let reply: Reply = serde_json::from_str(text).map_err(|e| {
            health.garbage.fetch_add(1, Ordering::Relaxed);
            indefinite(format!(
                "bad reply from the adapter {:?} ({} bytes): {e}",
                excerpt(text),
                text.len()
            ))
        })?;
        health.replies.fetch_add(1, Ordering::Relaxed);
        if reply.id == id {
            return Ok(reply);
        }
        // A late reply to an earlier request that timed out: skip it.
    }
}

/// The longest adapter reply line read; a longer one is consumed and
/// reported by its size, never copied into the history.
pub const MAX_REPLY_BYTES: usize = 1 << 20;

/// What an adapter error may quote of a bad reply.
const EXCERPT_CHARS: usize = 200;

fn excerpt(text: &str) -> String {
    match text.char_indices().nth(EXCERPT_CHARS) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// One line of an adapter's output.
enum Line {
    /// The adapter closed its stdout.
    Eof,
    /// A line (without its newline).
    Text(String),
    /// A line longer than the limit (consumed to its end): its length so far.
    TooLong(usize),
}

/// Reads one line of at most `max` bytes without ever holding more.
async fn read_line_bounded<R: AsyncBufRead + Unpin>(
    r: &mut R,
    max: usize,
) -> std::io::Result<Line> {
    let mut line = Vec::new();
    let mut seen = 0usize;
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(match seen {
                0 => Line::Eof,
                n if n > max => Line::TooLong(n),
                _ => Line::Text(String::from_utf8_lossy(&line).into_owned()),
            });
        }
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        seen += chunk.len();
        if seen <= max {
            line.extend_from_slice(chunk);
        } else {
            line = Vec::new();
        }
        let used = done.unwrap_or(buf.len());
        r.consume(used);
        if done.is_some() {
            return Ok(if seen > max {
                Line::TooLong(seen)
            } else {
                Line::Text(String::from_utf8_lossy(&line).into_owned())
            });
        }
    }
}

/// What the adapters said, for telling a broken adapter from a store in
/// trouble: replies that parsed, and lines that did not.
#[derive(Debug, Default)]
pub struct Health {
    /// Replies that parsed.
    pub replies: AtomicU64,
    /// Lines that were not replies (not JSON, or too long).
    pub garbage: AtomicU64,
}

impl Health {
    /// True when the adapter has answered, and only with garbage (for the
    /// handshake: one answer is enough).
    pub fn hopeless_at_once(&self) -> bool {
        self.replies.load(Ordering::Relaxed) == 0 && self.garbage.load(Ordering::Relaxed) > 0
    }

    /// True when the adapters have spoken nothing but garbage, often
    /// enough to be sure: the run can only be an error.
    pub fn hopeless(&self) -> bool {
        self.replies.load(Ordering::Relaxed) == 0 && self.garbage.load(Ordering::Relaxed) >= 20
    }
}
