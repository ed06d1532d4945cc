//! `faultline node`: run one node of the built-in store in the foreground
//! until SIGTERM or SIGINT (exit 0). See [`crate::node`] and
//! `docs/node-protocol.md`.

use std::net::SocketAddr;
use std::time::Duration;

use crate::Exit;
use crate::cli::fail;
use crate::node::{Mode, NodeConfig, parse_quorum};

/// Arguments of `faultline node`.
///
/// Values are kept as text and parsed here, so that a bad one gives a
/// one-line error naming its flag (exit 2).
#[derive(Debug, clap::Args)]
pub struct NodeArgs {
    /// This node's name (unique in the cluster). Required.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Address to listen on for clients and peers, e.g. 10.77.0.1:7000.
    /// Required.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Another node of the cluster, as NAME=ADDR; repeat for each.
    #[arg(long = "peer", value_name = "NAME=ADDR")]
    pub peers: Vec<String>,
    /// Replication mode: primary (CP), async (AP) or quorum (R/W, LWW).
    #[arg(long, value_name = "MODE", default_value = "primary")]
    pub mode: String,
    /// The primary in primary and async modes [default: the first node name
    /// in natural order, e.g. n1].
    #[arg(long, value_name = "NAME")]
    pub primary: Option<String>,
    /// Read quorum in quorum mode: 1, 2, ..., one, quorum, all.
    #[arg(
        long,
        value_name = "R",
        default_value = "quorum",
        allow_hyphen_values = true
    )]
    pub r: String,
    /// Write quorum in quorum mode: 1, 2, ..., one, quorum, all.
    #[arg(
        long,
        value_name = "W",
        default_value = "quorum",
        allow_hyphen_values = true
    )]
    pub w: String,
    /// Quorum mode: timestamp writes with a Lamport clock, or with the
    /// coordinator's wall clock (Cassandra-style; clock faults break it).
    #[arg(long, value_name = "lamport|wall", default_value = "lamport")]
    pub timestamps: String,
    /// Server-side bound on every request, in milliseconds: after it the
    /// client gets `info` (or `fail` when nothing was applied).
    #[arg(
        long,
        value_name = "MS",
        default_value = "1000",
        allow_hyphen_values = true
    )]
    pub request_timeout_ms: String,
    /// Async mode: the primary waits this many milliseconds before shipping
    /// new writes to the replicas (a model of replication lag).
    #[arg(
        long,
        value_name = "MS",
        default_value = "0",
        allow_hyphen_values = true
    )]
    pub replication_lag_ms: String,
    /// Worker threads of the node's runtime (1 = single-threaded, the
    /// fastest when several nodes share a small machine).
    #[arg(
        long,
        value_name = "N",
        default_value = "1",
        allow_hyphen_values = true
    )]
    pub threads: String,
}

fn config(args: &NodeArgs) -> Result<(NodeConfig, usize), String> {
    let name = args
        .name
        .clone()
        .ok_or("--name: required (this node's name)")?;
    let listen = args
        .listen
        .as_deref()
        .ok_or("--listen: required (IP:PORT to listen on)")?;
    let listen: SocketAddr = listen
        .parse()
        .map_err(|_| format!("--listen: {listen:?} is not an IP:PORT address"))?;
    let mut peers = Vec::new();
    for p in &args.peers {
        let (name, addr) = p
            .split_once('=')
            .ok_or_else(|| format!("--peer: {p:?} is not NAME=ADDR"))?;
        let addr: SocketAddr = addr
            .parse()
            .map_err(|_| format!("--peer: {addr:?} (in {p:?}) is not an IP:PORT address"))?;
        peers.push((name.to_string(), addr));
    }
    let mode: Mode = args.mode.parse().map_err(|e| format!("--mode: {e}"))?;
    let n = peers.len() + 1;
    let r = parse_quorum(&args.r, n).map_err(|e| format!("--r: {e}"))?;
    let w = parse_quorum(&args.w, n).map_err(|e| format!("--w: {e}"))?;
    let ms: u64 = args
        .request_timeout_ms
        .parse()
        .ok()
        .filter(|&m| m > 0)
        .ok_or_else(|| {
            format!(
                "--request-timeout-ms: {:?} is not a positive integer",
                args.request_timeout_ms
            )
        })?;
    let lag: u64 = args.replication_lag_ms.parse().map_err(|_| {
        format!(
            "--replication-lag-ms: {:?} is not a non-negative integer",
            args.replication_lag_ms
        )
    })?;
    let threads: usize = args
        .threads
        .parse()
        .ok()
        .filter(|&t| (1..=64).contains(&t))
        .ok_or_else(|| format!("--threads: {:?} is not in 1..=64", args.threads))?;
    let mut cfg = NodeConfig::new(name, listen, peers, mode);
    cfg.primary = args.primary.clone();
    cfg.r = r;
    cfg.w = w;
    cfg.request_timeout = Duration::from_millis(ms);
    cfg.replication_lag = Duration::from_millis(lag);
    cfg.timestamps = args
        .timestamps
        .parse()
        .map_err(|e| format!("--timestamps: {e}"))?;
    cfg.validate().map_err(|e| e.to_string())?;
    Ok((cfg, threads))
}

/// Runs `faultline node`.
pub fn run(args: NodeArgs) -> Exit {
    let (cfg, threads) = match config(&args) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let rt = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => return fail(format!("node: cannot start the runtime: {e}")),
    };
    let result = rt.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())
            .map_err(|e| format!("node: cannot handle SIGTERM: {e}"))?;
        let mut int = signal(SignalKind::interrupt())
            .map_err(|e| format!("node: cannot handle SIGINT: {e}"))?;
        let stop = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        };
        crate::node::serve_until(cfg, stop)
            .await
            .map_err(|e| format!("node: {e}"))
    });
    rt.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(()) => Exit::Valid,
        Err(e) => fail(e),
    }
}
