//! `faultline run` on remote hosts over SSH (`--hosts`, `--ssh`): bring
//! your own cluster. No lab: the clients run here and connect to the
//! endpoints given; the nemesis acts on the hosts over SSH
//! ([`crate::remote`]). The phases after the start are the lab's
//! ([`super::drive`]).

use std::sync::Arc;

use super::config::{RunConfig, RunError};
use super::context::Site;
use super::{RunOutcome, Started, begin, check_and_report, drive, interrupt, runtime};
use crate::nemesis::schedule::{Fault, Phase};
use crate::remote::firewall::{CHAIN_LOSS, CHAIN_PARTITION};
use crate::remote::{self, Remote};
use crate::stores::Cluster;

/// Carries out a run on remote hosts (`cfg.remote` is set).
pub(super) fn run(cfg: RunConfig) -> Result<RunOutcome, RunError> {
    let Some(spec) = cfg.remote.clone() else {
        return Err(RunError::Faults("internal: not a remote run".into()));
    };
    let (interrupt, dir) = begin(&cfg)?;
    let runtime = runtime()?;
    let recorded = runtime.block_on(async {
        let remote = tokio::select! {
            r = Remote::connect(spec.hosts.clone(), spec.processes.clone()) => Arc::new(r?),
            _ = interrupt.reached(interrupt::Level::Cancel) => {
                return Err(RunError::Interrupted("while connecting to the hosts"));
            }
        };
        let nodes = remote
            .nodes()
            .into_iter()
            .zip(&spec.endpoints)
            .map(|((name, _), e)| (name, e.address, e.port))
            .collect();
        let mut cluster = Cluster::of_endpoints(nodes, cfg.db.client_port(), dir.clone());
        cluster.primaries = cfg.db.primaries(&cluster).await;
        let started = Started {
            servers: Vec::new(),
            cluster: Arc::new(cluster),
        };
        let driven = drive(
            cfg,
            Site::Remote(remote.clone()),
            started,
            &dir,
            interrupt.clone(),
        )
        .await;
        // Whatever happened: heal, remove the chains, forget the run.
        let closed = remote.close().await;
        let recorded = driven?.0;
        closed?;
        Ok(recorded)
    });
    interrupt.lab_gone();
    let verdicts = check_and_report(recorded?, &dir)?;
    Ok(RunOutcome { dir, verdicts })
}

/// Applies (start) or heals (end) one fault on the hosts.
pub(super) async fn apply_fault(r: &Remote, fault: &Fault, phase: Phase) -> remote::Result<()> {
    match (fault, phase) {
        (Fault::Partition { grudge }, Phase::Start) => r.partition(grudge).await,
        (Fault::Partition { .. }, Phase::End) => r.heal_chain(CHAIN_PARTITION).await,
        (Fault::Loss { nodes, percent }, Phase::Start) => r.loss(nodes, *percent).await,
        (Fault::Loss { .. }, Phase::End) => r.heal_chain(CHAIN_LOSS).await,
        (Fault::Kill { nodes }, Phase::Start) => r.kill(nodes).await,
        (Fault::Kill { nodes }, Phase::End) => r.start(nodes).await,
        (Fault::Pause { nodes }, Phase::Start) => r.pause(nodes).await,
        (Fault::Pause { nodes }, Phase::End) => r.resume(nodes).await,
        (Fault::Delay { .. }, _) => Err(remote::RemoteError::Fault(
            "delay is not available on remote hosts yet".into(),
        )),
    }
}
