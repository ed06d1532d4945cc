//! What a run needs ([`RunConfig`], with the kinds of fault `--nemesis`
//! draws from) and why it can fail ([`RunError`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use faultline_workloads::workload::WorkloadConfig;
use serde::Serialize;

use crate::nemesis::clock::ClockMode;
use crate::nemesis::schedule::{self, FaultSpec, Target};
use crate::stores::{Store, StoreError};

/// A kind of fault the nemesis draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// Network partitions (isolate one node, or split majority/minority).
    Partition,
    /// Packet loss at one node.
    Loss,
    /// Packet delay at one node.
    Delay,
    /// SIGKILL a node's server, restart it at the end of the fault.
    Kill,
    /// SIGSTOP a node's server, SIGCONT at the end.
    Pause,
    /// Move a node's clock (bump, skew, strobe), reset at the end. Needs a
    /// store whose servers read the clock through libc (libfaketime); not
    /// part of `all`.
    Clock,
}

impl FaultKind {
    /// Parses `--nemesis`: a comma-separated set, or `none` / `all`.
    pub fn parse_list(s: &str) -> Result<Vec<FaultKind>, String> {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(format!(
                "{s:?}: an empty fault name (use `none` for no faults)"
            ));
        }
        if parts.len() > 1 && parts.contains(&"none") {
            return Err(format!("{s:?}: `none` cannot be combined with faults"));
        }
        let mut out = Vec::new();
        for part in parts {
            match part {
                "none" => {}
                "all" => out.extend([
                    FaultKind::Partition,
                    FaultKind::Loss,
                    FaultKind::Delay,
                    FaultKind::Kill,
                    FaultKind::Pause,
                ]),
                "partition" => out.push(FaultKind::Partition),
                "loss" => out.push(FaultKind::Loss),
                "delay" => out.push(FaultKind::Delay),
                "kill" => out.push(FaultKind::Kill),
                "pause" => out.push(FaultKind::Pause),
                "clock" => out.push(FaultKind::Clock),
                other => {
                    return Err(format!(
                        "unknown fault `{other}` (expected partition, loss, delay, kill, pause, clock, none or all)"
                    ));
                }
            }
        }
        out.dedup();
        Ok(out)
    }

    /// The schedule's fault specifications for this kind.
    pub(super) fn specs(self) -> Vec<FaultSpec> {
        match self {
            FaultKind::Partition => vec![
                FaultSpec::Partition {
                    shape: "one".into(),
                },
                FaultSpec::Partition {
                    shape: "majority".into(),
                },
            ],
            FaultKind::Loss => vec![FaultSpec::Loss {
                percent: 30.0,
                target: Target::One,
            }],
            FaultKind::Delay => vec![FaultSpec::Delay {
                ms: 50,
                jitter_ms: 10,
                target: Target::One,
            }],
            FaultKind::Kill => vec![FaultSpec::Kill {
                target: Target::One,
            }],
            FaultKind::Pause => vec![FaultSpec::Pause {
                target: Target::One,
            }],
            // Jepsen's clock nemesis: bumps of a few seconds either way on
            // one node, a steady skew on a minority, a strobe on one node.
            FaultKind::Clock => vec![
                FaultSpec::Clock {
                    mode: ClockMode::Bump,
                    ms: 5_000,
                    period_ms: 0,
                    target: Target::One,
                },
                FaultSpec::Clock {
                    mode: ClockMode::Bump,
                    ms: -5_000,
                    period_ms: 0,
                    target: Target::One,
                },
                FaultSpec::Clock {
                    mode: ClockMode::Skew,
                    ms: 2_000,
                    period_ms: 0,
                    target: Target::Minority,
                },
                FaultSpec::Clock {
                    mode: ClockMode::Strobe,
                    ms: 1_000,
                    period_ms: 10,
                    target: Target::One,
                },
            ],
        }
    }
}

/// A client endpoint of a cluster faultline did not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// The address.
    pub address: std::net::Ipv4Addr,
    /// The port, when not the store's usual client port.
    pub port: Option<u16>,
}

/// A run on remote hosts over SSH (`--hosts`, `--ssh`).
#[derive(Clone, Debug, Serialize)]
pub struct RemoteRun {
    /// The hosts (nodes n1..nN) and how to reach them.
    pub hosts: crate::remote::Hosts,
    /// Bring your own cluster: where clients connect, one per host
    /// (`--db-opt endpoints=…`). Empty: faultline starts the store on the
    /// hosts.
    pub endpoints: Vec<Endpoint>,
    /// How the store's processes are found and started on each host (for
    /// kill and pause).
    pub processes: Option<crate::remote::ProcessSpec>,
    /// libfaketime's path on the hosts (`--db-opt libfaketime=PATH`;
    /// default: found in the usual places).
    pub libfaketime: Option<String>,
}

/// Everything a run needs.
#[derive(Clone, Debug, Serialize)]
pub struct RunConfig {
    /// Test name (the store directory's first level).
    pub name: String,
    /// The store, with its options.
    #[serde(serialize_with = "crate::stores::serialize")]
    pub db: Arc<dyn Store>,
    /// Number of nodes.
    pub nodes: usize,
    /// The workload.
    pub workload: WorkloadConfig,
    /// Faults to draw from (empty: none).
    pub faults: Vec<FaultKind>,
    /// Seconds between the starts of two faults.
    pub nemesis_interval: f64,
    /// Seconds each fault lasts.
    pub fault_duration: f64,
    /// An explicit fault timeline instead of the random schedule.
    pub timeline: Option<Vec<schedule::TimelineEntry>>,
    /// Seconds of the main phase.
    pub time_limit: f64,
    /// Client workers.
    pub concurrency: u32,
    /// Operations per second for all workers together (None: as fast as
    /// the store answers).
    pub rate: Option<f64>,
    /// The seed of the generators and the nemesis.
    pub seed: u64,
    /// The store directory.
    pub store: PathBuf,
    /// Client-side timeout of one operation (then `info`).
    pub op_timeout: Duration,
    /// Quiet period after healing, before the final reads.
    pub quiet: Duration,
    /// Time budget of the linearizability check.
    pub check_time_limit: Option<f64>,
    /// Show a progress bar.
    #[serde(skip)]
    pub progress: bool,
    /// Remote hosts instead of the lab.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<RemoteRun>,
}

/// Why a run could not be carried out (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The lab failed.
    #[error(transparent)]
    Lab(#[from] crate::lab::LabError),
    /// A fault failed.
    #[error(transparent)]
    Nemesis(#[from] crate::nemesis::NemesisError),
    /// The store could not be started.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Remote hosts failed.
    #[error(transparent)]
    Remote(#[from] crate::remote::RemoteError),
    /// Files of the store directory.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The history could not be checked.
    #[error("checking the history: {0}")]
    Check(String),
    /// A fault the run could not apply (checked before anything starts).
    #[error("{0}")]
    Faults(String),
    /// A signal arrived before the workload started: nothing was run, and
    /// everything created was removed.
    #[error("interrupted {0}: nothing was run; the lab and its servers were removed")]
    Interrupted(&'static str),
}

pub(super) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> RunError {
    let context = context.into();
    move |source| RunError::Io { context, source }
}
