//! `faultline run` on remote hosts over SSH (`--hosts`, `--ssh`). No lab:
//! the clients run here; the nemesis acts on the hosts over SSH
//! ([`crate::remote`]). Either the cluster is the user's (the clients
//! connect to the endpoints given), or faultline starts the store on the
//! hosts with the store's own start and readiness code, as in the lab
//! ([`Launch::on_hosts`]), and the hosts' binaries ([`Store::needs`]). The
//! phases after the start are the lab's ([`super::drive`]).

use std::path::Path;
use std::sync::Arc;

use super::config::{RunConfig, RunError};
use super::context::Site;
use super::faults::{has_clock_faults, has_delay_faults};
use super::{RunOutcome, Started, begin, check_and_report, drive, interrupt, runtime};
use crate::nemesis::schedule::{Fault, Phase};
use crate::remote::firewall::{CHAIN_LOSS, CHAIN_PARTITION};
use crate::remote::{self, Remote};
use crate::stores::{Cluster, Launch, Needs, Programs, Store};

/// What the store's servers need on the hosts, or the error saying why
/// faultline cannot start this store over SSH (before anything is touched).
fn needs(db: &dyn Store) -> Result<Needs, RunError> {
    db.needs().map_err(|why| {
        RunError::Faults(format!(
            "--db {}: faultline cannot start it on remote hosts: {why}; bring your own cluster with --db-opt endpoints=ADDR,…",
            db.name()
        ))
    })
}

/// Starts the store on the hosts with its own start and readiness code
/// ([`Launch::on_hosts`]) and the programs found on the hosts.
async fn start_on_hosts(
    db: &dyn Store,
    needs: &Needs,
    remote: &Remote,
    dir: &Path,
    fake_clock: bool,
    libfaketime: Option<&str>,
) -> Result<(), RunError> {
    let found = remote
        .find_programs(
            needs.db,
            &needs.programs,
            needs.bindir.as_deref(),
            &needs.also,
            needs.install,
        )
        .await?;
    let programs = Programs::from_paths(found);
    if fake_clock {
        // As in the lab: every program whose clock the servers run must
        // read it through libc; here, the hosts' own binaries.
        let refuse =
            |why: String| RunError::Faults(format!("--db {} with clock faults: {why}", db.name()));
        let list: Vec<String> = db
            .clock_programs(&programs)
            .map_err(refuse)?
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let checked = futures_util::future::join_all(remote.hosts().iter().map(|h| {
            let list = &list;
            async move {
                for p in list {
                    remote::clock::check_program(h, p).await?;
                }
                Ok::<(), String>(())
            }
        }))
        .await;
        checked.into_iter().try_for_each(|r| r.map_err(refuse))?;
        remote.prepare_clocks(libfaketime).await?;
    }
    let mut launch = Launch::on_hosts(remote, &programs, dir).with_fake_clock(fake_clock);
    db.start(&mut launch).await?;
    db.ready(&mut launch).await?;
    Ok(())
}

/// Carries out a run on remote hosts (`cfg.remote` is set).
pub(super) fn run(cfg: RunConfig) -> Result<RunOutcome, RunError> {
    let Some(spec) = cfg.remote.clone() else {
        return Err(RunError::Faults("internal: not a remote run".into()));
    };
    let starting = spec.endpoints.is_empty();
    // Before anything is touched: can this store be started over SSH?
    let needs = match starting {
        true => Some(needs(cfg.db.as_ref())?),
        false => None,
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
        let nodes = match starting {
            true => remote
                .nodes()
                .into_iter()
                .map(|(n, ip)| (n, ip, None))
                .collect(),
            false => remote
                .nodes()
                .into_iter()
                .zip(&spec.endpoints)
                .map(|((name, _), e)| (name, e.address, e.port))
                .collect(),
        };
        if has_delay_faults(&cfg) {
            // Before anything else is done: can every host delay packets?
            let probed = remote.probe_delay().await;
            if let Err(e) = probed {
                let _ = remote.close().await;
                return Err(e.into());
            }
        }
        let mut cluster = Cluster::of_endpoints(nodes, cfg.db.client_port(), dir.clone());
        if let Some(needs) = &needs {
            let fake_clock = has_clock_faults(&cfg);
            let started = tokio::select! {
                r = start_on_hosts(
                    cfg.db.as_ref(),
                    needs,
                    &remote,
                    &dir,
                    fake_clock,
                    spec.libfaketime.as_deref(),
                ) => r,
                _ = interrupt.reached(interrupt::Level::Cancel) => {
                    Err(RunError::Interrupted("while the store was starting on the hosts"))
                }
            };
            if let Err(e) = started {
                let _ = remote.stop_store(&dir).await;
                let _ = remote.close().await;
                return Err(e);
            }
        }
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
        // Whatever happened: heal, stop what was started, remove the
        // chains, forget the run.
        let stopped = remote.stop_store(&dir).await;
        let closed = remote.close().await;
        let recorded = driven?.0;
        stopped?;
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
        (
            Fault::Delay {
                nodes,
                ms,
                jitter_ms,
            },
            Phase::Start,
        ) => r.delay(nodes, *ms, *jitter_ms).await,
        (Fault::Delay { nodes, .. }, Phase::End) => r.heal_delay(nodes).await,
        (
            Fault::Clock {
                nodes,
                mode,
                ms,
                period_ms,
            },
            Phase::Start,
        ) => r.clock_fault(nodes, *mode, *ms, *period_ms).await,
        (Fault::Clock { nodes, .. }, Phase::End) => r.clock_reset(nodes).await,
    }
}
