//! The built-in store, `faultline node`: a small replicated key-value server
//! over TCP that gives faultline a real networked target with known ground
//! truth.
//!
//! **This is a system under test, not part of the tester.** faultline
//! drives it like any other store, from `src/stores/builtin.rs`, through its
//! client protocol ([`protocol`], [`client`]); nothing else in faultline
//! uses its internals, and it uses nothing of faultline's but the lab's
//! client sockets.
//!
//! Three modes, the textbook trade-offs:
//!
//! - [`Mode::Primary`]: one fixed primary sequences every write and
//!   acknowledges it once a majority holds it; reads are served by the primary
//!   from its committed state after a round of heartbeats confirms that a
//!   majority still answers. Linearizable; unavailable without a majority.
//! - [`Mode::Async`]: the primary acknowledges writes at once and replicates
//!   in the background; every node serves reads from its own copy. Stale
//!   reads, and lost writes when the primary restarts (it comes back empty).
//! - [`Mode::Quorum`]: any node coordinates; writes wait for W
//!   acknowledgements and reads for R answers; last write wins by (Lamport
//!   timestamp, node name), or, with [`Timestamps::Wall`], by the
//!   coordinator's wall clock as Cassandra does (which a clock fault breaks).
//!
//! The client protocol (one JSON object per line each way) is in
//! [`protocol`] and documented in `docs/node-protocol.md`; [`client`] is an
//! async client for it; [`server::serve`] runs a node.

pub mod client;
mod peer;
pub mod protocol;
mod quorum;
mod repl;
pub mod server;
mod store;

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

pub use client::{ClientError, NodeClient};
pub use protocol::{Reply, ReplyType, Request};
pub use server::{serve, serve_until};

/// The replication mode of a cluster (every node of a cluster must use the
/// same).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A fixed primary, majority-acknowledged writes, confirmed reads (CP).
    Primary,
    /// A fixed primary acknowledging at once, background replication, local
    /// reads everywhere (AP).
    Async,
    /// Leaderless, R/W quorums, last write wins (Dynamo/Cassandra style).
    Quorum,
}

impl Mode {
    /// The name used on the command line and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Primary => "primary",
            Mode::Async => "async",
            Mode::Quorum => "quorum",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "primary" => Ok(Mode::Primary),
            "async" => Ok(Mode::Async),
            "quorum" => Ok(Mode::Quorum),
            other => Err(format!(
                "unknown mode {other:?} (expected primary, async or quorum)"
            )),
        }
    }
}

/// How quorum mode timestamps a write (last write wins by it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timestamps {
    /// A Lamport clock: above every timestamp the coordinator has seen.
    Lamport,
    /// The coordinator's wall clock, in microseconds since the epoch
    /// (Cassandra's): a coordinator whose clock is behind writes values
    /// that older ones win over.
    Wall,
}

impl Timestamps {
    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Timestamps::Lamport => "lamport",
            Timestamps::Wall => "wall",
        }
    }
}

impl std::str::FromStr for Timestamps {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "lamport" => Ok(Timestamps::Lamport),
            "wall" => Ok(Timestamps::Wall),
            other => Err(format!(
                "unknown timestamps {other:?} (expected lamport or wall)"
            )),
        }
    }
}

/// Everything a node needs to run. Build it with [`NodeConfig::new`] and
/// check it with [`NodeConfig::validate`] (which [`serve`] also calls).
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// This node's name (unique in the cluster).
    pub name: String,
    /// The address to listen on, for clients and peers alike.
    pub listen: SocketAddr,
    /// The other nodes: name and address (their `listen`).
    pub peers: Vec<(String, SocketAddr)>,
    /// The replication mode.
    pub mode: Mode,
    /// The primary's name (primary and async modes); `None` means the first
    /// node in name order among this node and its peers.
    pub primary: Option<String>,
    /// Read quorum (quorum mode), 1..=cluster size.
    pub r: usize,
    /// Write quorum (quorum mode), 1..=cluster size.
    pub w: usize,
    /// Server-side bound on every request: after it the client gets `info`
    /// (or `fail` when the node is certain nothing was applied).
    pub request_timeout: Duration,
    /// Async mode: the primary waits this long before shipping new entries
    /// (a model of replication lag: replicas are at least this stale).
    pub replication_lag: Duration,
    /// Quorum mode: how writes are timestamped.
    pub timestamps: Timestamps,
}

impl NodeConfig {
    /// A configuration with majority quorums and a 1 s request timeout.
    pub fn new(
        name: impl Into<String>,
        listen: SocketAddr,
        peers: Vec<(String, SocketAddr)>,
        mode: Mode,
    ) -> NodeConfig {
        let n = peers.len() + 1;
        NodeConfig {
            name: name.into(),
            listen,
            peers,
            mode,
            primary: None,
            r: n / 2 + 1,
            w: n / 2 + 1,
            request_timeout: Duration::from_millis(1000),
            replication_lag: Duration::ZERO,
            timestamps: Timestamps::Lamport,
        }
    }

    /// Number of nodes in the cluster (peers and this one).
    pub fn cluster_size(&self) -> usize {
        self.peers.len() + 1
    }

    /// Size of a majority of the cluster.
    pub fn majority(&self) -> usize {
        self.cluster_size() / 2 + 1
    }

    /// The name of the primary (primary and async modes): `--primary`, or
    /// the first name of the cluster in natural order (`n1` < `n2` < `n10`),
    /// so that every node agrees without being told.
    pub fn primary_name(&self) -> &str {
        if let Some(p) = &self.primary {
            return p;
        }
        let mut best = self.name.as_str();
        for (n, _) in &self.peers {
            if natural_key(n) < natural_key(best) {
                best = n;
            }
        }
        best
    }

    /// Checks names, addresses and quorum sizes.
    pub fn validate(&self) -> Result<(), NodeError> {
        let bad = |what: &str, msg: String| {
            Err(NodeError::Config {
                what: what.to_string(),
                msg,
            })
        };
        if self.name.is_empty() {
            return bad("--name", "must not be empty".into());
        }
        let mut names = vec![self.name.as_str()];
        for (n, a) in &self.peers {
            if n.is_empty() {
                return bad("--peer", format!("empty name for {a}"));
            }
            if names.contains(&n.as_str()) {
                return bad("--peer", format!("duplicate node name {n:?}"));
            }
            names.push(n);
            if *a == self.listen {
                return bad("--peer", format!("{n} has this node's own address {a}"));
            }
        }
        if let Some(p) = &self.primary
            && !names.contains(&p.as_str())
        {
            return bad(
                "--primary",
                format!("{p:?} is not this node nor one of its peers"),
            );
        }
        if self.timestamps == Timestamps::Wall && self.mode != Mode::Quorum {
            return bad(
                "--timestamps",
                format!(
                    "wall only means something in quorum mode (this node is in {} mode)",
                    self.mode
                ),
            );
        }
        let n = self.cluster_size();
        if self.r == 0 || self.r > n {
            return bad("--r", format!("{} is not in 1..={n}", self.r));
        }
        if self.w == 0 || self.w > n {
            return bad("--w", format!("{} is not in 1..={n}", self.w));
        }
        if self.request_timeout.is_zero() {
            return bad("--request-timeout-ms", "must be positive".into());
        }
        Ok(())
    }
}

/// Sort key of a node name: the name without its trailing digits, the
/// number they form, then the name itself (so `n2` < `n10`).
fn natural_key(name: &str) -> (&str, u128, &str) {
    let stem = name.trim_end_matches(|c: char| c.is_ascii_digit());
    let num = name[stem.len()..].parse::<u128>().unwrap_or(0);
    (stem, num, name)
}

/// Parses a quorum size: `1`, `2`, ..., `one`, `quorum` (a majority) or
/// `all`, for a cluster of `n` nodes.
pub fn parse_quorum(s: &str, n: usize) -> Result<usize, String> {
    let v = match s.to_ascii_lowercase().as_str() {
        "one" => 1,
        "quorum" | "majority" => n / 2 + 1,
        "all" => n,
        other => other
            .parse::<usize>()
            .map_err(|_| format!("{s:?} is not a number, one, quorum or all"))?,
    };
    if v == 0 || v > n {
        return Err(format!("{s:?} is not in 1..={n} (cluster of {n})"));
    }
    Ok(v)
}

/// Why a node could not run.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A configuration value is wrong; `what` names the flag.
    #[error("{what}: {msg}")]
    Config {
        /// The flag or field.
        what: String,
        /// What is wrong with it.
        msg: String,
    },
    /// The listen address could not be bound (in use, not local...).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The system's reason.
        source: std::io::Error,
    },
}

/// Writes one log line to stderr: unix time, node name, event.
pub(crate) fn log(name: &str, msg: fmt::Arguments<'_>) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    eprintln!(
        "{}.{:03} node {name}: {msg}",
        now.as_secs(),
        now.subsec_millis()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_names() {
        assert_eq!(parse_quorum("one", 3), Ok(1));
        assert_eq!(parse_quorum("QUORUM", 3), Ok(2));
        assert_eq!(parse_quorum("quorum", 5), Ok(3));
        assert_eq!(parse_quorum("all", 3), Ok(3));
        assert_eq!(parse_quorum("2", 3), Ok(2));
        assert!(parse_quorum("0", 3).is_err());
        assert!(parse_quorum("4", 3).is_err());
        assert!(parse_quorum("x", 3).is_err());
    }

    #[test]
    fn primary_defaults_to_smallest_name() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let mut c = NodeConfig::new("n2", a, vec![("n1".into(), b)], Mode::Primary);
        assert_eq!(c.primary_name(), "n1");
        let c10 = NodeConfig::new("n10", a, vec![("n2".into(), b)], Mode::Primary);
        assert_eq!(c10.primary_name(), "n2");
        c.primary = Some("n2".into());
        assert_eq!(c.primary_name(), "n2");
        c.primary = Some("n9".into());
        assert!(c.validate().is_err());
    }
}
