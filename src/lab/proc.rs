//! Processes: identities that survive PID reuse, process trees, signals, and
//! servers started inside nodes as faultline's own children.

use std::collections::{BTreeMap, VecDeque};
use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::{Lab, LabError, NodeState, Result};

/// A process identity: PID plus its start time (clock ticks since boot, field
/// 22 of `/proc/PID/stat`), so a recycled PID is never mistaken for ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcId {
    /// The PID.
    pub pid: i32,
    /// Start time in clock ticks since boot.
    pub start: u64,
}

/// What `/proc/PID/stat` says about a process.
#[derive(Clone, Copy, Debug)]
struct Stat {
    state: char,
    ppid: i32,
    start: u64,
}

fn stat(pid: i32) -> Option<Stat> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: split after the last ')'.
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        state: f.first()?.chars().next()?,
        ppid: f.get(1)?.parse().ok()?,
        start: f.get(19)?.parse().ok()?,
    })
}

impl ProcId {
    /// The identity of a running process, if it exists.
    pub fn of(pid: i32) -> Option<ProcId> {
        stat(pid).map(|s| ProcId {
            pid,
            start: s.start,
        })
    }

    /// This process.
    pub fn current() -> ProcId {
        let pid = std::process::id() as i32;
        ProcId::of(pid).unwrap_or(ProcId { pid, start: 0 })
    }

    /// True if this very process (same PID and start time) exists and is not
    /// a zombie.
    pub fn is_alive(&self) -> bool {
        matches!(stat(self.pid), Some(s) if s.start == self.start && s.state != 'Z' && s.state != 'X')
    }

    /// True if this process exists at all (a zombie counts).
    pub fn exists(&self) -> bool {
        matches!(stat(self.pid), Some(s) if s.start == self.start)
    }

    /// Sends a signal to this process only, after checking it is still ours.
    pub fn signal(&self, sig: Signal) -> bool {
        self.is_alive() && kill(Pid::from_raw(self.pid), sig).is_ok()
    }

    /// This process and all its descendants, parents first (a postgres
    /// backend calls `setsid`, so process groups are not enough).
    pub fn tree(&self) -> Vec<i32> {
        if !self.exists() {
            return Vec::new();
        }
        let mut children: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        if let Ok(rd) = std::fs::read_dir("/proc") {
            for e in rd.flatten() {
                if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok())
                    && let Some(s) = stat(pid)
                {
                    children.entry(s.ppid).or_default().push(pid);
                }
            }
        }
        let mut out = Vec::new();
        let mut queue = VecDeque::from([self.pid]);
        while let Some(p) = queue.pop_front() {
            if out.contains(&p) {
                continue;
            }
            out.push(p);
            if let Some(k) = children.get(&p) {
                queue.extend(k.iter().copied());
            }
        }
        out
    }

    /// Signals the whole tree, parent first (a stopped parent cannot fork
    /// new children while we walk). Returns how many processes got it.
    pub fn signal_tree(&self, sig: Signal) -> usize {
        if !self.is_alive() {
            return 0;
        }
        self.tree()
            .into_iter()
            .filter(|&p| kill(Pid::from_raw(p), sig).is_ok())
            .count()
    }

    /// Waits until the process is gone (or a zombie), up to `timeout`.
    pub fn wait_gone(&self, timeout: Duration) -> bool {
        let t0 = Instant::now();
        loop {
            // If it is our child, reap it.
            let _ = waitpid(Pid::from_raw(self.pid), Some(WaitPidFlag::WNOHANG));
            if !self.is_alive() {
                return true;
            }
            if t0.elapsed() > timeout {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Stops a process tree: SIGCONT (undo a pause), SIGTERM to the tree, and
/// SIGKILL to whatever is left after `grace`.
pub fn stop_tree(p: &ProcId, grace: Duration) {
    if !p.is_alive() {
        return;
    }
    p.signal_tree(Signal::SIGCONT);
    p.signal_tree(Signal::SIGTERM);
    if !p.wait_gone(grace) {
        let tree = p.tree();
        for pid in tree {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        p.wait_gone(Duration::from_secs(5));
    }
}

/// PIDs of the processes whose network namespace has inode `ino`.
pub fn pids_in_netns(ino: u64) -> Vec<i32> {
    use std::os::unix::fs::MetadataExt;
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok())
                && pid != me
                && let Ok(m) = std::fs::metadata(format!("/proc/{pid}/ns/net"))
                && m.ino() == ino
            {
                out.push(pid);
            }
        }
    }
    out
}

/// Reaps every exited child of this process without blocking; returns the
/// PIDs and their statuses.
pub fn reap_children() -> Vec<(i32, WaitStatus)> {
    let mut out = Vec::new();
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => break,
            Ok(st) => {
                if let Some(p) = st.pid() {
                    out.push((p.as_raw(), st));
                }
            }
        }
    }
    out
}

/// Makes `c` start its child in a session of its own (no controlling
/// terminal, not in our process group), as holders run.
pub fn in_new_session(c: &mut std::process::Command) {
    // SAFETY: setsid(2) is async-signal-safe.
    unsafe {
        c.pre_exec(|| {
            nix::unistd::setsid()
                .map(|_| ())
                .map_err(std::io::Error::from)
        });
    }
}

/// How to start a server on a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerSpec {
    /// The node's name.
    pub node: String,
    /// The service name (unique per node), e.g. `etcd`.
    pub service: String,
    /// The program and its arguments.
    pub argv: Vec<String>,
    /// Environment variables added to the server's (e.g. a faked clock's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<(String, String)>,
}

/// A server running inside a node as this process's child: its own process
/// group, stdout and stderr appended to `<lab dir>/<node>/<service>.log`,
/// environment `FAULTLINE_LAB`, `FAULTLINE_NODE`, `FAULTLINE_NODE_IP`,
/// `FAULTLINE_NODE_DIR`, working directory the node's directory.
#[derive(Debug)]
pub struct Server {
    /// What was started.
    pub spec: ServerSpec,
    /// The running process, if any.
    pub process: Option<ProcId>,
    /// The log file.
    pub log: PathBuf,
}

impl Server {
    /// Starts `spec` in its node. The caller should reap it ([`Server::reap`]
    /// or [`reap_children`]).
    pub fn spawn(lab: &Lab, spec: ServerSpec) -> Result<Server> {
        let node: NodeState = lab.node(&spec.node)?.clone();
        let svc_err = |reason: String| LabError::Service {
            node: node.name.clone(),
            service: spec.service.clone(),
            reason,
        };
        if spec.argv.is_empty() {
            return Err(svc_err("no command given".into()));
        }
        let dir = lab.node_dir(&node)?;
        let log = dir.join(format!("{}.log", spec.service));
        let mut s = Server {
            spec: spec.clone(),
            process: None,
            log,
        };
        s.start(lab, &node)?;
        Ok(s)
    }

    fn start(&mut self, lab: &Lab, node: &NodeState) -> Result<()> {
        let svc_err = |reason: String| LabError::Service {
            node: node.name.clone(),
            service: self.spec.service.clone(),
            reason,
        };
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| svc_err(format!("cannot open log {}: {e}", self.log.display())))?;
        let err = out
            .try_clone()
            .map_err(|e| svc_err(format!("cannot open log {}: {e}", self.log.display())))?;
        let dir = lab.node_dir(node)?;
        let mut cmd = lab.command_in(node, &self.spec.argv[0])?;
        cmd.args(&self.spec.argv[1..])
            .current_dir(&dir)
            .env("FAULTLINE_LAB", lab.name())
            .env("FAULTLINE_NODE", &node.name)
            .env("FAULTLINE_NODE_IP", node.ip.to_string())
            .env("FAULTLINE_NODE_DIR", &dir)
            .envs(self.spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = cmd
            .spawn()
            .map_err(|e| svc_err(format!("cannot start {:?}: {e}", self.spec.argv[0])))?;
        let pid = child.id() as i32;
        // The std handle is dropped without waiting: reaping happens through
        // waitpid (see `reap`), which also collects orphaned grandchildren
        // when this process is a subreaper.
        drop(child);
        self.process = Some(ProcId::of(pid).unwrap_or(ProcId { pid, start: 0 }));
        Ok(())
    }

    /// Records the server in the lab state file under `status` (replacing
    /// its earlier entry), so `faultline clean` finds it after a crash.
    pub fn record(&self, lab: &Lab, status: &str) -> Result<()> {
        let entry = super::ServerState {
            node: self.spec.node.clone(),
            service: self.spec.service.clone(),
            argv: self.spec.argv.clone(),
            holder: Some(ProcId::current()),
            process: self.process,
            status: status.to_string(),
            log: self.log.clone(),
        };
        super::state::update(lab.name(), |st| {
            st.servers
                .retain(|x| !(x.node == entry.node && x.service == entry.service));
            st.servers.push(entry);
        })?;
        Ok(())
    }

    /// Starts the server again with the same command (on its data).
    pub fn restart(&mut self, lab: &Lab) -> Result<()> {
        if let Some(p) = self.process
            && p.is_alive()
        {
            return Ok(());
        }
        let node = lab.node(&self.spec.node)?.clone();
        self.start(lab, &node)
    }

    /// Reaps the server if it has exited; returns its wait status then.
    pub fn reap(&mut self) -> Option<WaitStatus> {
        let p = self.process?;
        match waitpid(Pid::from_raw(p.pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => None,
            Ok(st) => {
                self.process = None;
                Some(st)
            }
            Err(_) => {
                if p.is_alive() {
                    None
                } else {
                    self.process = None;
                    Some(WaitStatus::Exited(Pid::from_raw(p.pid), 0))
                }
            }
        }
    }

    /// SIGKILLs the whole tree and reaps it.
    pub fn kill(&mut self) {
        if let Some(p) = self.process {
            p.signal_tree(Signal::SIGKILL);
            p.wait_gone(Duration::from_secs(5));
            self.process = None;
        }
    }

    /// SIGSTOPs the whole tree.
    pub fn pause(&self) -> usize {
        self.process.map_or(0, |p| p.signal_tree(Signal::SIGSTOP))
    }

    /// SIGCONTs the whole tree.
    pub fn resume(&self) -> usize {
        self.process.map_or(0, |p| p.signal_tree(Signal::SIGCONT))
    }

    /// Stops the server: SIGCONT, SIGTERM, then SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        if let Some(p) = self.process.take() {
            stop_tree(&p, grace);
        }
    }
}
