//! The state file: one JSON file per lab under `/run/faultline/`, rewritten
//! atomically (write a temporary file, then rename) under a lock every time
//! something is about to be created, started or removed.
//!
//! Why `/run/faultline`: `/run` is a tmpfs that lives exactly as long as what
//! the file describes. Network namespaces, links, iptables rules and
//! processes all vanish at a reboot, and so does `/run`; a state file in
//! `/var/lib` would outlive a power cut and describe things that no longer
//! exist. `ip netns` keeps its own namespace files in `/run/netns` for the
//! same reason. Logs and server data, which should survive, go to the lab's
//! data directory instead (default `/var/lib/faultline/<lab>`).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::proc::ProcId;
use super::{LabError, Result};

/// The directory holding the state files.
pub const STATE_DIR: &str = "/run/faultline";

/// The state format version.
pub const VERSION: u32 = 1;

/// Everything faultline created for one lab.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LabState {
    /// Format version.
    pub version: u32,
    /// Lab name.
    pub name: String,
    /// The /24 network address (`10.77.0.0`).
    pub subnet: Ipv4Addr,
    /// The control node's address, held by the bridge in the root namespace.
    pub control_ip: Ipv4Addr,
    /// The bridge interface (root namespace).
    pub bridge: String,
    /// Data directory: per-node logs and data.
    pub dir: PathBuf,
    /// The process that created the lab.
    pub creator: ProcId,
    /// The process that owns the lab and tears it down when it ends; `None`
    /// for a lab made by `faultline lab up`, which lives until `lab down`.
    pub owner: Option<ProcId>,
    /// False until `up` finished: an incomplete lab whose creator is dead is
    /// a leftover.
    pub complete: bool,
    /// The nodes.
    pub nodes: Vec<NodeState>,
    /// Our chain in the root `filter` table (and its jump from `FORWARD`),
    /// if the root `FORWARD` chain needed one.
    pub root_chain: Option<String>,
    /// The clients' namespace (`fl-<lab>-c`), if the lab has one: external
    /// client programs run there, where the lab's subnet is the only route.
    #[serde(default)]
    pub client: Option<NodeState>,
    /// Whether the teardown removes [`LabState::dir`] (a run's scratch data).
    #[serde(default)]
    pub remove_dir: bool,
    /// Servers started on nodes.
    #[serde(default)]
    pub servers: Vec<ServerState>,
    /// The delay holder, if a userspace delay is active.
    #[serde(default)]
    pub delay_holder: Option<ProcId>,
    /// The faults now active, for `status` (partition, loss, delay).
    #[serde(default)]
    pub faults: BTreeMap<String, serde_json::Value>,
}

/// One node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    /// `n1`, `n2`, ...
    pub name: String,
    /// The network namespace (`fl-<lab>-n1`).
    pub netns: String,
    /// The root-side veth (same name as the namespace).
    pub veth: String,
    /// The node's address.
    pub ip: Ipv4Addr,
}

/// A server on a node, held by a `faultline lab run` process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerState {
    /// The node.
    pub node: String,
    /// The service name, unique per node.
    pub service: String,
    /// The command.
    pub argv: Vec<String>,
    /// The process holding (parent of) the server.
    pub holder: Option<ProcId>,
    /// The server process, when running.
    pub process: Option<ProcId>,
    /// `starting`, `running`, `paused`, `killed` (by the nemesis; the holder
    /// waits for `start`), or `exited`.
    pub status: String,
    /// The log file.
    pub log: PathBuf,
}

/// Holds the global state lock while alive.
pub struct Lock(#[allow(dead_code)] Flock<File>);

/// Takes the global lock (one for all labs: critical sections are short).
pub fn lock() -> Result<Lock> {
    std::fs::create_dir_all(STATE_DIR)
        .map_err(|e| LabError::io(format!("creating {STATE_DIR}"), e))?;
    let p = Path::new(STATE_DIR).join("lock");
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(|e| LabError::io(format!("opening {}", p.display()), e))?;
    Flock::lock(f, FlockArg::LockExclusive)
        .map(Lock)
        .map_err(|(_, e)| LabError::io(format!("locking {}", p.display()), e.into()))
}

/// The state file of a lab.
pub fn path(name: &str) -> PathBuf {
    Path::new(STATE_DIR).join(format!("{name}.json"))
}

fn read(p: &Path) -> Result<Option<LabState>> {
    match std::fs::read_to_string(p) {
        Ok(s) => serde_json::from_str(&s)
            .map(Some)
            .map_err(|e| LabError::State {
                path: p.to_path_buf(),
                reason: format!("unreadable ({e}); remove it and run `faultline clean`"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(LabError::State {
            path: p.to_path_buf(),
            reason: e.to_string(),
        }),
    }
}

/// Reads a lab's state (without locking: writes are atomic renames).
pub fn load(name: &str) -> Result<Option<LabState>> {
    read(&path(name))
}

/// Writes a lab's state atomically. Call with the lock held.
pub fn store(_lock: &Lock, s: &LabState) -> Result<()> {
    let p = path(&s.name);
    let tmp = p.with_extension(format!("json.{}.tmp", std::process::id()));
    let body = serde_json::to_vec_pretty(s).map_err(|e| LabError::State {
        path: p.clone(),
        reason: e.to_string(),
    })?;
    let res = File::create(&tmp)
        .and_then(|mut f| f.write_all(&body))
        .and_then(|()| std::fs::rename(&tmp, &p));
    res.map_err(|e| LabError::State {
        path: p,
        reason: e.to_string(),
    })
}

/// Locks, reads, applies `f`, writes back; returns the new state. `None` if
/// the lab has no state file.
pub fn update(name: &str, f: impl FnOnce(&mut LabState)) -> Result<Option<LabState>> {
    let l = lock()?;
    let Some(mut s) = load(name)? else {
        return Ok(None);
    };
    f(&mut s);
    store(&l, &s)?;
    Ok(Some(s))
}

/// Removes a lab's state file. Call with the lock held.
pub fn remove(_lock: &Lock, name: &str) -> Result<()> {
    match std::fs::remove_file(path(name)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LabError::io(
            format!("removing {}", path(name).display()),
            e,
        )),
    }
}

/// The `*.json` files in `dir`, sorted (none if it cannot be read).
pub fn json_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    paths
}

/// Every lab state on this machine; unreadable files are reported by name.
pub fn list() -> (Vec<LabState>, Vec<LabError>) {
    let mut labs = Vec::new();
    let mut errs = Vec::new();
    for p in json_files(Path::new(STATE_DIR)) {
        match read(&p) {
            Ok(Some(s)) => labs.push(s),
            Ok(None) => {}
            Err(e) => errs.push(e),
        }
    }
    (labs, errs)
}

impl LabState {
    /// Every namespace of the lab: the nodes, then the clients' namespace.
    pub fn namespaces(&self) -> impl Iterator<Item = &NodeState> {
        self.nodes.iter().chain(self.client.iter())
    }

    /// The addresses clients send from: the control node and the clients'
    /// namespace. Faults never touch their traffic (Jepsen's model: the
    /// clients are not partitioned).
    pub fn client_ips(&self) -> Vec<Ipv4Addr> {
        std::iter::once(self.control_ip)
            .chain(self.client.iter().map(|c| c.ip))
            .collect()
    }

    /// Why this lab is a leftover of a crashed run, if it is one: its owner
    /// or creator died before finishing, or a server's holder died.
    pub fn stale_reason(&self) -> Option<String> {
        if !self.complete && !self.creator.is_alive() {
            return Some(format!(
                "lab {:?} was being created by pid {} which is gone",
                self.name, self.creator.pid
            ));
        }
        if let Some(o) = self.owner
            && !o.is_alive()
        {
            return Some(format!(
                "lab {:?} was owned by pid {} which is gone",
                self.name, o.pid
            ));
        }
        for s in &self.servers {
            if let Some(h) = s.holder
                && !h.is_alive()
            {
                return Some(format!(
                    "lab {:?}: the holder (pid {}) of service {} on {} is gone",
                    self.name, h.pid, s.service, s.node
                ));
            }
        }
        None
    }
}
