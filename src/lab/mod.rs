//! The lab: N nodes, each a network namespace with its own address, joined by
//! one bridge whose address in the root namespace is the control node.
//!
//! Safety rules (see DESIGN.md, "The network lab"):
//! - names carry a lab-specific prefix (`fl-<lab>-n1`, bridge `fl-<lab>-br`);
//! - one private /24 per lab, chosen to collide with nothing on the machine;
//!   nodes get only the on-link route (no default route, NAT or forwarding);
//! - fault rules live in faultline's own chains inside each node namespace;
//!   in the root namespace faultline only ever adds its own `FL-<lab>-FWD`
//!   chain and one jump to it, and only when the root `FORWARD` chain would
//!   otherwise drop bridged traffic;
//! - everything is recorded in the state file ([`state`]) *before* it is
//!   created, so [`teardown`] (and `faultline clean`) can remove it after any
//!   crash; processes are stopped by PID after checking their start time.
//!
//! The API is synchronous and its types are plain `Send` data, so the async
//! runner can call it from `spawn_blocking`.

pub mod client_socket;
pub mod data_dir;
pub mod fake_clock;
pub mod hold;
pub mod net;
pub mod netlink;
pub mod netns;
pub mod nft;
pub mod proc;
pub mod rtnl;
pub mod signals;
pub mod state;
pub mod sys;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

pub use net::{LabSpec, teardown, up};
pub use proc::ProcId;
pub use state::{LabState, NodeState, ServerState};

/// Everything that can go wrong in the lab. Messages name the input and the
/// reason, on one line.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// Not running as root.
    #[error(
        "this command needs root (network namespaces and nftables need CAP_NET_ADMIN and CAP_SYS_ADMIN); run it as root, e.g. with sudo"
    )]
    NotRoot,
    /// A required program is not installed.
    #[error(
        "`{tool}` not found (searched PATH, /usr/sbin, /sbin); install it with: apt-get install -y {package}"
    )]
    MissingTool {
        /// The program.
        tool: String,
        /// The Debian package that provides it.
        package: String,
    },
    /// A lab name that is not 1-8 lowercase letters or digits.
    #[error("invalid lab name {0:?}: use 1 to 8 lowercase letters or digits")]
    BadName(String),
    /// A node count out of range.
    #[error("invalid node count {0}: a lab has 1 to {max} nodes", max = net::MAX_NODES)]
    BadNodeCount(usize),
    /// No lab of that name.
    #[error("no lab named {0:?} is up (start one with `faultline lab up --nodes 3 --name {0}`)")]
    NoSuchLab(String),
    /// No node of that name in the lab.
    #[error("lab {lab:?} has no node {node:?} (nodes: {known})")]
    UnknownNode {
        /// The lab.
        lab: String,
        /// The node asked for.
        node: String,
        /// The nodes that exist.
        known: String,
    },
    /// The lab already exists.
    #[error(
        "lab {0:?} already exists; remove it with `faultline lab down --name {0}` (or `faultline clean` if an earlier run crashed)"
    )]
    Exists(String),
    /// Resources left by a crashed run.
    #[error(
        "leftovers from an earlier faultline run that no live process explains: {0}; run `faultline clean` first"
    )]
    Leftovers(String),
    /// Every candidate subnet collides with something.
    #[error(
        "no free /24 for the lab: every candidate collides with an address or route on this machine"
    )]
    NoSubnet,
    /// An external command failed.
    #[error("`{command}` failed: {reason}")]
    Command {
        /// The command line.
        command: String,
        /// Its stderr, or why it could not run.
        reason: String,
    },
    /// The kernel refused a netlink request.
    #[error("{what}: {}", std::io::Error::from_raw_os_error(*errno))]
    Netlink {
        /// The request, and the namespace it was sent in.
        what: String,
        /// The kernel's error number.
        errno: i32,
    },
    /// The state file could not be read or written.
    #[error("state file {path}: {reason}")]
    State {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// An I/O error with its context.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Clock faults cannot be applied (libfaketime missing, a store that
    /// ignores it).
    #[error("{0}")]
    FakeClock(String),
    /// A server process could not be managed.
    #[error("service {service:?} on node {node:?}: {reason}")]
    Service {
        /// The node.
        node: String,
        /// The service name.
        service: String,
        /// Why.
        reason: String,
    },
    /// Teardown left something behind.
    #[error("teardown of lab {lab:?} left {what}; run `faultline clean`")]
    Incomplete {
        /// The lab.
        lab: String,
        /// What is left.
        what: String,
    },
}

impl LabError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        LabError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Shorthand for lab results.
pub type Result<T, E = LabError> = std::result::Result<T, E>;

/// The default lab name.
pub const DEFAULT_LAB: &str = "lab";

/// Checks a lab name: 1 to 8 lowercase ASCII letters or digits, so that
/// `fl-<lab>-n99` fits the kernel's 15-byte interface name limit.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 8
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(LabError::BadName(name.to_string()))
    }
}

/// A handle on a lab that is up: its recorded state.
#[derive(Clone, Debug)]
pub struct Lab {
    /// The recorded state (names, addresses).
    pub state: LabState,
}

impl Lab {
    /// Opens an existing lab by name.
    pub fn open(name: &str) -> Result<Lab> {
        validate_name(name)?;
        match state::load(name)? {
            Some(s) => Ok(Lab { state: s }),
            None => Err(LabError::NoSuchLab(name.to_string())),
        }
    }

    /// Re-reads the state file.
    pub fn refresh(&mut self) -> Result<()> {
        *self = Lab::open(&self.state.name)?;
        Ok(())
    }

    /// The lab's name.
    pub fn name(&self) -> &str {
        &self.state.name
    }

    /// The control node's address (the bridge address in the root namespace).
    pub fn control_ip(&self) -> Ipv4Addr {
        self.state.control_ip
    }

    /// The nodes, in order.
    pub fn nodes(&self) -> &[NodeState] {
        &self.state.nodes
    }

    /// The lab's data directory (per-node logs and data under it).
    pub fn dir(&self) -> &Path {
        &self.state.dir
    }

    /// Finds a node by name (`n2`) or number (`2`).
    pub fn node(&self, name: &str) -> Result<&NodeState> {
        let wanted = if name.bytes().all(|b| b.is_ascii_digit()) && !name.is_empty() {
            format!("n{name}")
        } else {
            name.to_string()
        };
        self.state
            .nodes
            .iter()
            .find(|n| n.name == wanted)
            .ok_or_else(|| LabError::UnknownNode {
                lab: self.state.name.clone(),
                node: name.to_string(),
                known: self
                    .state
                    .nodes
                    .iter()
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// A node's directory for its logs and data (created on demand).
    pub fn node_dir(&self, node: &NodeState) -> Result<PathBuf> {
        let d = self.state.dir.join(&node.name);
        std::fs::create_dir_all(&d)
            .map_err(|e| LabError::io(format!("creating {}", d.display()), e))?;
        Ok(d)
    }

    /// A command that runs `program` inside `node`'s network namespace (via
    /// `setns` just before `exec`, so the PID is the program's own).
    pub fn command_in(&self, node: &NodeState, program: &str) -> Result<Command> {
        sys::command_in_netns(&node.netns, program)
    }

    /// Tears the lab down (see [`teardown`]).
    pub fn down(self) -> Result<()> {
        teardown(&self.state.name)
    }
}

/// Tears a lab down when dropped: for code that owns a lab for the length of
/// a run (the runner), so a normal return or a panic cleans up.
#[derive(Debug)]
pub struct LabGuard {
    name: Option<String>,
}

impl LabGuard {
    /// Guards the lab named `name`.
    pub fn new(name: &str) -> LabGuard {
        LabGuard {
            name: Some(name.to_string()),
        }
    }

    /// Tears down now and reports the outcome.
    pub fn finish(mut self) -> Result<()> {
        match self.name.take() {
            Some(n) => teardown(&n),
            None => Ok(()),
        }
    }
}

impl Drop for LabGuard {
    fn drop(&mut self) {
        if let Some(n) = self.name.take()
            && let Err(e) = teardown(&n)
        {
            eprintln!("faultline: error: {e}");
        }
    }
}
