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

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::time::Instant;

use faultline_workloads::workload::WorkloadKind;

use super::adapter_reply::{Health, Line, MAX_REPLY_BYTES, excerpt, read_line_bounded};
use super::builtin::Builtin;
use super::options::serialize_word;
use super::registry::{Entry, Requirement};
use super::{
    Client, ClientError, Cluster, Completion, DbOpts, Kill, Launch, Needs, Operation, Pause,
    ProcessTree, Programs, Role, Store, StoreError,
};
use crate::lab::sys::find_tool;
use crate::node::Mode;
use faultline_checkers::EventType;

/// The registry line's entry.
pub const ENTRY: Entry = Entry {
    name: "external",
    parse: External::parse,
    doctor: &[Requirement {
        what: "python3 (example adapter)",
        program: "python3",
        install: "apt-get install -y python3",
        also_in: None,
    }],
};

/// The servers faultline starts on the nodes for the adapter.
#[derive(Clone, Debug, PartialEq)]
pub enum Servers {
    /// None: the adapter reaches its store by itself.
    None,
    /// `server=builtin`: faultline's own store.
    Builtin,
    /// `server=SHELL COMMAND`, run with `sh -c` in every node.
    Command(String),
}

impl Serialize for Servers {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Servers::None => s.serialize_none(),
            Servers::Builtin => s.serialize_str("builtin"),
            Servers::Command(c) => s.serialize_str(c),
        }
    }
}

/// The external adapter's options.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct External {
    /// `command=...`: the adapter's command line (run with `sh -c`).
    pub command: String,
    /// `server=builtin|SHELL COMMAND`: servers to start on the nodes.
    pub server: Servers,
    /// `mode=...`: the mode of `server=builtin`.
    #[serde(serialize_with = "serialize_word")]
    pub mode: Mode,
    /// `handshake=true|false`: whether the adapter gets the `open`
    /// handshake.
    pub handshake: bool,
    /// `primaries=n1,...`: the primaries, for `primaries` targets.
    pub primaries: Vec<String>,
}

impl External {
    fn parse(mut opts: DbOpts) -> Result<Arc<dyn Store>, String> {
        let command = opts
            .take_text("command")
            .ok_or("--db external: needs --db-opt command=\"PROGRAM ARGS\" (the adapter)")?;
        let handshake = opts.take_flag("handshake", true)?;
        let mode = opts.take_choice("mode", Mode::Primary)?;
        let primaries = opts.take_list("primaries");
        let server = match opts.take_text("server") {
            None => Servers::None,
            Some(s) if s == "builtin" => Servers::Builtin,
            Some(s) => Servers::Command(s),
        };
        opts.finish("command, server, mode, handshake, primaries")?;
        Ok(Arc::new(External {
            command,
            server,
            mode,
            handshake,
            primaries,
        }))
    }
}

/// `n1=10.77.0.1,n2=10.77.0.2,...`
fn nodes_env(cluster: &Cluster) -> String {
    cluster
        .nodes
        .iter()
        .map(|(n, ip)| format!("{n}={ip}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[async_trait]
impl Store for External {
    fn name(&self) -> &'static str {
        "external"
    }

    fn label(&self) -> String {
        "external".into()
    }

    fn describe(&self) -> String {
        let servers = match &self.server {
            Servers::None => "none",
            Servers::Builtin => "builtin",
            Servers::Command(c) => c,
        };
        format!("external ({:?}, servers: {servers})", self.command)
    }

    /// Every workload: the adapter performs transactions (`txn`) too, or
    /// answers them `fail`.
    fn check_workload(&self, _workload: WorkloadKind) -> Result<(), String> {
        Ok(())
    }

    fn options(&self) -> Value {
        json!(self)
    }

    fn needs(&self) -> Result<Needs, String> {
        Err("its adapters and servers are started in the lab's namespaces".into())
    }

    /// The adapter's program exists.
    fn check_install(&self) -> Result<Programs, StoreError> {
        let first = self.command.split_whitespace().next().unwrap_or_default();
        let found = if first.contains('/') {
            std::path::Path::new(first).is_file()
        } else {
            find_tool(first).is_some()
        };
        if !found {
            return Err(StoreError::Missing {
                program: first.to_string(),
                what: "--db-opt command".into(),
                fix: if first == "python3" {
                    "install it with: apt-get install -y python3".into()
                } else {
                    "install it, or give its path in --db-opt command".into()
                },
            });
        }
        match self.server {
            Servers::Builtin => Builtin::new(self.mode).check_install(),
            _ => Ok(Programs::default()),
        }
    }

    /// The servers: this binary for `server=builtin`; the first word of a
    /// `server=` command when it names a program (not a shell construct).
    fn clock_programs(&self, programs: &Programs) -> Result<Vec<std::path::PathBuf>, String> {
        match &self.server {
            Servers::None => Err(
                "not applicable: --db external starts no server (add --db-opt server=builtin or server=\"COMMAND\"), so there is no clock to fake"
                    .into(),
            ),
            Servers::Builtin => Builtin::new(self.mode).clock_programs(programs),
            Servers::Command(c) => {
                let first = c.split_whitespace().next().unwrap_or_default();
                let p = if first.contains('/') {
                    Some(std::path::PathBuf::from(first))
                } else {
                    find_tool(first)
                };
                Ok(p.into_iter().collect())
            }
        }
    }

    /// The servers, if `server=` is given.
    async fn start(&self, launch: &mut Launch<'_>) -> Result<(), StoreError> {
        match &self.server {
            Servers::None => {}
            Servers::Builtin => Builtin::new(self.mode).start(launch).await?,
            Servers::Command(command) => {
                let env = nodes_env(&launch.cluster());
                for node in launch.nodes() {
                    let argv = vec![
                        "/usr/bin/env".into(),
                        format!("FAULTLINE_NODES={env}"),
                        "/bin/sh".into(),
                        "-c".into(),
                        command.to_string(),
                    ];
                    launch.spawn(&node.name, "server", argv).await?;
                }
            }
        }
        Ok(())
    }

    /// The built-in servers answer; then a throwaway adapter completes the
    /// handshake (without one, the servers are given a moment and must
    /// still run).
    async fn ready(&self, launch: &mut Launch<'_>) -> Result<(), StoreError> {
        if self.server == Servers::Builtin {
            Builtin::new(self.mode).ready(launch).await?;
        }
        if self.handshake {
            let probe = launch.cluster();
            let mut c = self.adapter_client(probe.clone(), Role::Final(0));
            let t0 = std::time::Instant::now();
            loop {
                launch.check_alive().await?;
                match c.ready(Instant::now() + Duration::from_secs(5)).await {
                    Ok(()) => break,
                    // An answer that is not a reply will not become one.
                    Err(e) if probe.adapters.only_garbage() => {
                        return Err(StoreError::Down(format!(
                            "the external adapter's handshake failed: {e}; its log: {}",
                            probe.run_dir.join("adapter.log").display()
                        )));
                    }
                    Err(e) if t0.elapsed() > Duration::from_secs(30) => {
                        return Err(StoreError::Down(format!(
                            "the external adapter's handshake did not succeed within 30 s: {e}; its log: {}",
                            probe.run_dir.join("adapter.log").display()
                        )));
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        } else if matches!(self.server, Servers::Command(_)) {
            // Give the servers a moment, and notice one that exits at once.
            tokio::time::sleep(Duration::from_millis(500)).await;
            launch.check_alive().await?;
        }
        Ok(())
    }

    /// `primaries=`, or n1 for `server=builtin` in a mode with a primary.
    async fn primaries(&self, cluster: &Cluster) -> Vec<String> {
        if self.primaries.is_empty() && self.server == Servers::Builtin {
            return Builtin::new(self.mode).primaries(cluster).await;
        }
        self.primaries.clone()
    }

    /// Adapters run in the lab's clients' namespace.
    /// Without `server=`, faultline starts no servers: nothing it could
    /// kill or pause (such faults are refused before the run).
    fn kill(&self) -> Option<&dyn Kill> {
        (self.server != Servers::None).then_some(&ProcessTree as &dyn Kill)
    }

    /// See [`External::kill`].
    fn pause(&self) -> Option<&dyn Pause> {
        (self.server != Servers::None).then_some(&ProcessTree as &dyn Pause)
    }

    fn clients_in_namespace(&self) -> bool {
        true
    }

    fn client(&self, cluster: &Arc<Cluster>, role: Role) -> Box<dyn Client> {
        Box::new(self.adapter_client(cluster.clone(), role))
    }
}

impl External {
    fn adapter_client(&self, cluster: Arc<Cluster>, role: Role) -> ExternalClient {
        ExternalClient {
            cluster,
            role,
            command: self.command.clone(),
            handshake: self.handshake,
            adapter: None,
            next_id: 1,
        }
    }
}

/// A reply from the adapter.
#[derive(Debug, Deserialize)]
struct AdapterReply {
    id: u64,
    #[serde(rename = "type")]
    kind: EventType,
    #[serde(default)]
    value: Value,
    #[serde(default)]
    error: Option<String>,
}

impl AdapterReply {
    /// The reply as a completion; `invoke` is no reply.
    fn completion(self) -> Result<Completion, ClientError> {
        match self.kind {
            EventType::Ok => Ok(Completion::Ok(self.value)),
            EventType::Fail => Ok(Completion::Fail(self.error)),
            EventType::Info => Ok(Completion::Info(self.error)),
            EventType::Invoke => Err(ClientError::Indefinite(
                "bad reply from the adapter: type invoke (expected ok, fail or info)".into(),
            )),
        }
    }
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
struct ExternalClient {
    cluster: Arc<Cluster>,
    role: Role,
    command: String,
    handshake: bool,
    adapter: Option<Adapter>,
    next_id: u64,
}

fn indefinite(m: impl Into<String>) -> ClientError {
    ClientError::Indefinite(m.into())
}

impl ExternalClient {
    fn node(&self) -> usize {
        self.role.home(self.cluster.nodes.len())
    }
}

#[async_trait]
impl Client for ExternalClient {
    /// Starts the adapter and does the handshake (if enabled). Errors are
    /// definite: no operation was sent.
    async fn ready(&mut self, deadline: Instant) -> Result<(), ClientError> {
        if self.adapter.is_some() {
            return Ok(());
        }
        let command = &self.command;
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
        if self.handshake {
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
                Ok(r) if r.kind == EventType::Ok => {}
                Ok(r) => {
                    return Err(ClientError::Definite(format!(
                        "adapter handshake: {} {}",
                        r.kind,
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
    fn reset(&mut self) {}

    /// The node requests name.
    fn target(&self, _f: &str) -> String {
        self.cluster.name(self.node())
    }

    /// Sends one request and waits for the reply with its id.
    async fn call(
        &mut self,
        op: Operation<'_>,
        deadline: Instant,
    ) -> Result<Completion, ClientError> {
        let Operation {
            process,
            f,
            key,
            value,
        } = op;
        self.ready(deadline).await?;
        let id = self.next_id;
        self.next_id += 1;
        let i = self.node();
        let mut req = json!({
            "id": id,
            "process": process,
            "node": self.cluster.name(i),
            "addr": self.cluster.nodes[i].1.to_string(),
            "nodes": self.cluster.nodes.iter().map(|(_, ip)| ip.to_string()).collect::<Vec<_>>(),
            "f": f,
            "key": key,
            "value": value,
        });
        if f == "txn"
            && let Value::Object(m) = &mut req
        {
            // A transaction's micro-ops name their keys.
            m.remove("key");
        }
        let a = self
            .adapter
            .as_mut()
            .ok_or_else(|| ClientError::Definite("no adapter".into()))?;
        let r = exchange(a, &req, id, deadline, &self.cluster.adapters)
            .await
            .and_then(AdapterReply::completion);
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
) -> Result<AdapterReply, ClientError> {
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
        let read = read_line_bounded(&mut a.stdout, MAX_REPLY_BYTES);
        let buf = match tokio::time::timeout_at(deadline, read).await {
            Ok(Ok(Line::Eof)) => return Err(indefinite("the adapter exited (end of its stdout)")),
            Ok(Ok(Line::Text(t))) => t,
            Ok(Ok(Line::TooLong(n))) => {
                health.garbage();
                return Err(indefinite(format!(
                    "bad reply from the adapter: a line of {n} bytes (at most {MAX_REPLY_BYTES})"
                )));
            }
            Ok(Err(e)) => return Err(indefinite(format!("reading the adapter: {e}"))),
            Err(_) => return Err(indefinite("timeout: no reply from the adapter")),
        };
        let text = buf.trim();
        if text.is_empty() {
            continue;
        }
        let reply: AdapterReply = serde_json::from_str(text).map_err(|e| {
            health.garbage();
            indefinite(format!(
                "bad reply from the adapter {:?} ({} bytes): {e}",
                excerpt(text),
                text.len()
            ))
        })?;
        health.reply();
        if reply.id == id {
            return Ok(reply);
        }
        // A late reply to an earlier request that timed out: skip it.
    }
}
