//! What the tasks of a run share.

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};

use super::config::RunConfig;
use super::interrupt;
use super::recorder::Recorder;
use crate::lab::Lab;
use crate::lab::proc::Server;
use crate::nemesis::schedule::Fault;
use crate::stores::Cluster;

/// Where a run's nodes are: the lab's namespaces, or remote hosts over SSH.
#[derive(Debug)]
pub(super) enum Site {
    /// The lab faultline made for the run.
    Lab(Box<Lab>),
    /// Remote hosts.
    Remote(Arc<crate::remote::Remote>),
}

/// Shared by the tasks of a run.
pub(super) struct Ctx {
    /// The run's configuration.
    pub(super) cfg: RunConfig,
    /// Where the nodes are.
    pub(super) site: Site,
    /// The nodes, as clients see them.
    pub(super) cluster: Arc<Cluster>,
    /// The store's servers.
    pub(super) servers: Mutex<Vec<Server>>,
    /// Faults in effect.
    pub(super) active: Mutex<Vec<crate::nemesis::ActiveFault>>,
    /// Faults started and not yet ended (their end event is still due).
    pub(super) open: Mutex<Vec<Fault>>,
    /// The history.
    pub(super) rec: Recorder,
    /// The main phase is over.
    pub(super) stop: AtomicBool,
    /// Signals and the wind-down level.
    pub(super) interrupt: Arc<interrupt::Interrupt>,
    /// The active fault in words, for the progress line.
    pub(super) active_fault: Mutex<Option<String>>,
    /// The highest process id the workers used.
    pub(super) max_process: AtomicU64,
}
