//! `faultline run` on remote hosts over SSH (`--hosts`, `--ssh`). No lab:
//! the clients run here; the nemesis acts on the hosts over SSH
//! ([`crate::remote`]). Either the cluster is the user's (the clients
//! connect to the endpoints given), or faultline starts the store on the
//! hosts with the store's own command lines ([`Store::remote_command`]) and
//! the hosts' binaries. The phases after the start are the lab's
//! ([`super::drive`]).

use std::sync::Arc;

use super::config::{RunConfig, RunError};
use super::context::Site;
use super::{RunOutcome, Started, begin, check_and_report, drive, interrupt, runtime};
use crate::nemesis::schedule::{Fault, Phase};
use crate::remote::firewall::{CHAIN_LOSS, CHAIN_PARTITION};
use crate::remote::{self, Remote};
use crate::stores::{Cluster, Store};

/// How long a store started on the hosts may take to elect a primary.
const READY_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

/// The service name of a store faultline starts on the hosts (its log:
/// `nodes/<node>/<name>.log` in the run directory).
fn service(db: &dyn Store) -> &'static str {
    db.name()
}

/// The command lines of the servers on the hosts, or the error saying that
/// this store cannot be started over SSH.
fn commands(db: &dyn Store, cluster: &Cluster, dir: &str) -> Result<Vec<Vec<String>>, RunError> {
    (0..cluster.nodes.len())
        .map(|i| db.remote_command(cluster, i, &format!("{dir}/{}", cluster.nodes[i].0)))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| {
            RunError::Faults(format!(
                "--db {}: faultline cannot start it on remote hosts (it starts etcd); bring your own cluster with --db-opt endpoints=ADDR,…",
                db.name()
            ))
        })
}

/// Starts the store on the hosts and waits until it has a primary.
async fn start_on_hosts(
    db: &dyn Store,
    remote: &Remote,
    cluster: &Cluster,
) -> Result<(), RunError> {
    remote
        .start_store(service(db), &commands(db, cluster, &remote.store_dir())?)
        .await?;
    let t0 = std::time::Instant::now();
    while db.primaries(cluster).await.is_empty() {
        if t0.elapsed() > READY_WITHIN {
            return Err(RunError::Store(crate::stores::StoreError::Down(format!(
                "{} on the hosts: no primary within {} s (its logs: {}/<node>/{}.log on the hosts)",
                db.name(),
                READY_WITHIN.as_secs(),
                remote.store_dir(),
                service(db)
            ))));
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    Ok(())
}

/// Carries out a run on remote hosts (`cfg.remote` is set).
pub(super) fn run(cfg: RunConfig) -> Result<RunOutcome, RunError> {
    let Some(spec) = cfg.remote.clone() else {
        return Err(RunError::Faults("internal: not a remote run".into()));
    };
    let starting = spec.endpoints.is_empty();
    if starting {
        // Before anything is touched: can this store be started over SSH?
        let nodes = spec
            .hosts
            .hosts
            .iter()
            .map(|h| (h.name.clone(), h.address, None))
            .collect();
        commands(
            cfg.db.as_ref(),
            &Cluster::of_endpoints(nodes, None, ".".into()),
            "/",
        )?;
    }
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
        let mut cluster = Cluster::of_endpoints(nodes, cfg.db.client_port(), dir.clone());
        if starting {
            let started = tokio::select! {
                r = start_on_hosts(cfg.db.as_ref(), &remote, &cluster) => r,
                _ = interrupt.reached(interrupt::Level::Cancel) => {
                    Err(RunError::Interrupted("while the store was starting on the hosts"))
                }
            };
            if let Err(e) = started {
                let _ = remote.stop_store(service(cfg.db.as_ref()), &dir).await;
                let _ = remote.close().await;
                return Err(e);
            }
        }
        cluster.primaries = cfg.db.primaries(&cluster).await;
        let db = cfg.db.clone();
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
        let stopped = remote.stop_store(service(db.as_ref()), &dir).await;
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
        (Fault::Delay { .. }, _) => Err(remote::RemoteError::Fault(
            "delay is not available on remote hosts yet".into(),
        )),
        (Fault::Clock { .. }, _) => Err(remote::RemoteError::Fault(
            "clock faults are not available on remote hosts yet".into(),
        )),
    }
}
