//! What a remote run touched, in a local state file written *before* the
//! host is touched: `<state dir>/remote/<run>.json`, where the state dir
//! is `/run/faultline` for root (as the lab's) and
//! `$XDG_RUNTIME_DIR/faultline` (or `/tmp/faultline-<uid>`) otherwise.
//! `faultline clean --hosts FILE` reads these files to undo a crashed run:
//! it removes faultline's chains, resumes what was paused and starts what
//! was killed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::hosts::{Hosts, ProcessSpec};
use super::{RemoteError, Result};
use crate::lab::ProcId;

/// The state format version.
pub const VERSION: u32 = 1;

/// What a run did to one host.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Touched {
    /// faultline's chains may exist there.
    pub chains: bool,
    /// The store's processes may be paused.
    pub paused: bool,
    /// The store's processes may be killed (not yet started again).
    pub killed: bool,
    /// faultline started the store's server here (in
    /// [`RemoteState::store_dir`]).
    #[serde(default)]
    pub started: bool,
    /// faultline made libfaketime's shared objects here (clock faults:
    /// `/dev/shm/faultline-<run>-faketime` and its `sem.` twin).
    #[serde(default)]
    pub clock: bool,
    /// The interfaces where faultline may have put its netem qdisc (delay).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub qdiscs: Vec<String>,
}

/// One remote run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RemoteState {
    /// Format version.
    pub version: u32,
    /// The run's id (the file's name).
    pub id: String,
    /// The faultline process of the run.
    pub owner: ProcId,
    /// The hosts and how they were reached.
    pub hosts: Hosts,
    /// How the store's processes are found and started.
    pub processes: Option<ProcessSpec>,
    /// Per node name, what was touched.
    pub touched: BTreeMap<String, Touched>,
    /// The directory on the hosts where faultline started the store
    /// (`<dir>/<node>/`: start script, pid file, data, log).
    #[serde(default)]
    pub store_dir: Option<String>,
    /// The service faultline started on the hosts (`<service>.pid` and
    /// `<service>.log` in each node's directory).
    #[serde(default)]
    pub service: Option<String>,
}

/// The directory of the remote state files.
pub fn dir() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        return Path::new(crate::lab::state::STATE_DIR).join("remote");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("faultline").join("remote"),
        _ => PathBuf::from(format!("/tmp/faultline-{}", nix::unistd::geteuid())).join("remote"),
    }
}

fn err(path: &Path, reason: impl std::fmt::Display) -> RemoteError {
    RemoteError::State {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

impl RemoteState {
    /// The file of this run.
    pub fn path(&self) -> PathBuf {
        dir().join(format!("{}.json", self.id))
    }

    /// Writes the file (a temporary file renamed into place).
    pub fn save(&self) -> Result<()> {
        let p = self.path();
        let d = dir();
        std::fs::create_dir_all(&d).map_err(|e| err(&d, e))?;
        let tmp = p.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).map_err(|e| err(&p, e))?;
        std::fs::write(&tmp, text + "\n").map_err(|e| err(&tmp, e))?;
        std::fs::rename(&tmp, &p).map_err(|e| err(&p, e))
    }

    /// Removes the file.
    pub fn remove(&self) -> Result<()> {
        let p = self.path();
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(err(&p, e)),
            _ => Ok(()),
        }
    }

    /// Whether the run's process is still alive.
    pub fn owner_alive(&self) -> bool {
        self.owner.is_alive()
    }
}

/// Every recorded remote run, and the files that could not be read.
pub fn list() -> (Vec<RemoteState>, Vec<RemoteError>) {
    let mut out = Vec::new();
    let mut errs = Vec::new();
    for p in crate::lab::state::json_files(&dir()) {
        match std::fs::read_to_string(&p)
            .map_err(|e| err(&p, e))
            .and_then(|t| serde_json::from_str::<RemoteState>(&t).map_err(|e| err(&p, e)))
        {
            Ok(s) => out.push(s),
            Err(e) => errs.push(e),
        }
    }
    (out, errs)
}
