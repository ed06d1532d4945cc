//! `faultline run`: a workload from many concurrent clients against a real
//! cluster in the lab, under faults, recorded and checked end to end.
//!
//! Phases: start the lab and the store; the main phase (workers and the
//! nemesis); heal everything; a quiet period; final reads from every node;
//! stop and tear down; check; report. Ctrl-C or SIGTERM ends the main phase
//! early and the rest still happens.
//!
//! This file holds the phases; the parts they use are each in a file:
//! `workers.rs` (clients and final reads), `faults.rs` (the nemesis task, kill
//! and pause through the store's capabilities, healing), `progress.rs` (the
//! progress line), `results.rs` (`results.json`), [`recorder`] (the history
//! writer), [`checks`], [`interrupt`] (signals) and [`store`] (the store
//! directory). The store itself is behind [`crate::stores::Store`].

pub mod checks;
mod config;
mod context;
mod faults;
pub mod interrupt;
mod progress;
pub mod recorder;
mod remote;
pub mod results;
pub mod store;
mod workers;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::lab::proc::Server;
use crate::lab::{Lab, LabGuard, LabSpec};
use crate::nemesis::schedule;
use crate::stores::{self, Cluster, Launch, Programs, Store, StoreError};
use faults::{check_faults, has_clock_faults, heal_all, nemesis_task, nemesis_windows, node_names};
use progress::progress_task;
use results::results_json;
use workers::{final_read_phase, setup_phase, worker};

use config::io;
use context::{Ctx, Site};

pub use config::{Endpoint, FaultKind, RemoteRun, RunConfig, RunError};
pub use faults::check_clock;

/// What a run produced.
#[derive(Debug)]
pub struct RunOutcome {
    /// The run's directory.
    pub dir: PathBuf,
    /// The verdicts.
    pub verdicts: checks::Verdicts,
}

/// Carries out a run with the `programs` the store's install check found.
/// Infrastructure failures are errors; the verdict is in the outcome.
/// SIGINT, SIGTERM and SIGHUP are handled from the first instruction (see
/// [`interrupt`]).
pub fn run(cfg: RunConfig, programs: Programs) -> Result<RunOutcome, RunError> {
    if cfg.remote.is_some() {
        return remote::run(cfg);
    }
    crate::lab::sys::preflight()?;
    check_clock(&cfg, &programs)?;
    let (interrupt, dir) = begin(&cfg)?;
    if interrupt.interrupted() {
        return Err(RunError::Interrupted("before the lab was created"));
    }
    let lab_name = format!("r{}", std::process::id() % 10_000_000);
    let lab = crate::lab::up(&LabSpec {
        name: lab_name.clone(),
        nodes: cfg.nodes,
        dir: None,
        owned: true,
        // External client programs run in a namespace of their own.
        client_ns: cfg.db.clients_in_namespace(),
        // The logs worth keeping are copied into the run directory.
        remove_dir: true,
    })?;
    let guard = LabGuard::new(&lab_name);
    // No client socket of this run can reach anything but the lab.
    crate::lab::client_socket::bind_to_bridge(&lab.state.bridge);
    let runtime = runtime()?;
    let result = runtime.block_on(run_in_lab(cfg, &programs, lab, &dir, interrupt.clone()));
    // Tear down whatever happened; report both errors if both failed.
    let down = guard.finish();
    interrupt.lab_gone();
    let recorded = result?;
    down?;
    let verdicts = check_and_report(recorded, &dir)?;
    Ok(RunOutcome { dir, verdicts })
}

/// The first steps of every run: signals are handled, the faults checked,
/// the run directory made.
fn begin(cfg: &RunConfig) -> Result<(Arc<interrupt::Interrupt>, PathBuf), RunError> {
    let interrupt = interrupt::Interrupt::install();
    check_faults(cfg)?;
    if interrupt.interrupted() {
        return Err(RunError::Interrupted("before anything was created"));
    }
    let dir = store::create_run_dir(&cfg.store, &cfg.name).map_err(io(format!(
        "creating the run directory in {}",
        cfg.store.display()
    )))?;
    Ok((interrupt, dir))
}

/// The run's async runtime.
fn runtime() -> Result<tokio::runtime::Runtime, RunError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(io("starting the async runtime"))
}

/// What the run recorded, to check once the lab is gone.
struct Recorded {
    cfg: RunConfig,
    windows: Vec<schedule::Window>,
    elapsed: Duration,
    history_path: PathBuf,
}

/// The store, started: its servers, and the cluster as clients see it.
struct Started {
    servers: Vec<Server>,
    cluster: Arc<Cluster>,
}

/// Starts the store on every node and waits until it serves; on an error
/// the servers started so far are stopped.
async fn start_servers(
    store: &dyn Store,
    programs: &Programs,
    lab: &Lab,
    dir: &Path,
    fake_clock: bool,
) -> Result<Started, RunError> {
    let mut launch = Launch::new(lab, programs, dir).with_fake_clock(fake_clock);
    let mut r = store.start(&mut launch).await;
    if r.is_ok() {
        r = store.ready(&mut launch).await;
    }
    let mut servers = launch.servers;
    match r {
        Ok(()) => {
            let mut cluster = Cluster::of(lab, dir.to_path_buf());
            cluster.primaries = store.primaries(&cluster).await;
            Ok(Started {
                servers,
                cluster: Arc::new(cluster),
            })
        }
        Err(e) => {
            stores::stop(&mut servers, store.stop_signal());
            Err(e.into())
        }
    }
}

/// Starts the store, unless a signal comes first.
async fn start_store(
    cfg: &RunConfig,
    programs: &Programs,
    lab: &Lab,
    dir: &Path,
    interrupt: &interrupt::Interrupt,
) -> Result<Started, RunError> {
    let started = tokio::select! {
        r = start_servers(cfg.db.as_ref(), programs, lab, dir, has_clock_faults(cfg)) => r,
        _ = interrupt.reached(interrupt::Level::Cancel) => {
            Err(RunError::Interrupted("while the store was starting"))
        }
    };
    if started.is_ok() && interrupt.interrupted() {
        if let Ok(mut s) = started {
            stores::stop(&mut s.servers, cfg.db.stop_signal());
        }
        copy_logs(lab, dir);
        return Err(RunError::Interrupted("while the store was starting"));
    }
    if started.is_err() {
        copy_logs(lab, dir);
    }
    started
}

async fn run_in_lab(
    cfg: RunConfig,
    programs: &Programs,
    lab: Lab,
    dir: &Path,
    interrupt: Arc<interrupt::Interrupt>,
) -> Result<Recorded, RunError> {
    if interrupt.interrupted() {
        return Err(RunError::Interrupted("while the lab was being created"));
    }
    let started = start_store(&cfg, programs, &lab, dir, &interrupt).await?;
    let (recorded, _) = drive(cfg, Site::Lab(Box::new(lab)), started, dir, interrupt).await?;
    Ok(recorded)
}

/// The run itself, on a started store: the main phase (workers and the
/// nemesis), healing, the quiet period, the final reads; then the store's
/// servers are stopped and the history closed. Gives the site back (the
/// caller tears it down).
async fn drive(
    cfg: RunConfig,
    site: Site,
    started: Started,
    dir: &Path,
    interrupt: Arc<interrupt::Interrupt>,
) -> Result<(Recorded, Site), RunError> {
    let Started { servers, cluster } = started;
    let start = Instant::now();
    let history_path = dir.join("history.jsonl");
    let (rec, writer) = recorder::start(&history_path, start)
        .map_err(io(format!("creating {}", history_path.display())))?;
    let ctx = Arc::new(Ctx {
        cluster,
        servers: Mutex::new(servers),
        active: Mutex::new(Vec::new()),
        open: Mutex::new(Vec::new()),
        rec,
        stop: AtomicBool::new(false),
        interrupt,
        active_fault: Mutex::new(None),
        max_process: AtomicU64::new(0),
        site,
        cfg,
    });
    let windows = nemesis_windows(&ctx.cfg, &node_names(ctx.cfg.nodes), &ctx.cluster.primaries)?;
    if let Err(e) = setup_phase(&ctx).await {
        let mut servers = ctx.servers.lock().unwrap_or_else(|e| e.into_inner());
        stores::stop(&mut servers, ctx.cfg.db.stop_signal());
        drop(servers);
        if let Site::Lab(lab) = &ctx.site {
            copy_logs(lab, dir);
        }
        return Err(RunError::Store(StoreError::Down(e)));
    }

    let (progress, progress_task) = progress_task(ctx.clone(), start);
    let nemesis = tokio::spawn(nemesis_task(ctx.clone(), windows.clone(), start));
    let mut workers = Vec::new();
    for slot in 0..ctx.cfg.concurrency {
        workers.push(tokio::spawn(worker(ctx.clone(), slot)));
    }
    let main_phase = Duration::from_secs_f64(ctx.cfg.time_limit);
    tokio::select! {
        _ = tokio::time::sleep(main_phase) => {}
        _ = ctx.interrupt.reached(interrupt::Level::Stop) => {}
    }
    end_main_phase(&ctx, workers).await;
    let _ = nemesis.await;
    heal_all(&ctx).await;
    if let Some(p) = progress {
        p.finish_and_clear();
    }
    if ctx.interrupt.level() < interrupt::Level::Teardown {
        tokio::select! {
            _ = tokio::time::sleep(ctx.cfg.quiet) => {}
            _ = ctx.interrupt.reached(interrupt::Level::Teardown) => {}
        }
        final_read_phase(&ctx).await;
    }

    // Stop the store, keep its logs.
    {
        let mut servers = ctx.servers.lock().unwrap_or_else(|e| e.into_inner());
        stores::stop(&mut servers, ctx.cfg.db.stop_signal());
    }
    if let Site::Lab(lab) = &ctx.site {
        copy_logs(lab, dir);
    }
    if let Some(t) = progress_task {
        let _ = t.await;
    }
    let ctx = Arc::into_inner(ctx)
        .ok_or_else(|| RunError::Check("internal: a task still holds the run's context".into()))?;
    drop(ctx.rec);
    writer
        .finish()
        .map_err(io(format!("writing {}", history_path.display())))?;
    adapters_spoke(&ctx.cluster, dir, &history_path)?;
    Ok((
        Recorded {
            cfg: ctx.cfg,
            windows,
            elapsed: start.elapsed(),
            history_path,
        },
        ctx.site,
    ))
}

/// An error if the external adapters never gave one valid reply (only
/// garbage): the run tested nothing, and the adapter is what to fix.
fn adapters_spoke(cluster: &Cluster, dir: &Path, history: &Path) -> Result<(), RunError> {
    if !cluster.adapters.hopeless() {
        return Ok(());
    }
    Err(RunError::Store(StoreError::Down(format!(
        "the external adapter never gave a valid reply ({} lines that are not replies); see {} and {}",
        cluster.adapters.garbage.load(Ordering::Relaxed),
        dir.join("adapter.log").display(),
        history.display()
    ))))
}

/// How long the workers may take to finish the operations in flight when
/// the main phase ends on time (they are cancelled after it, or at once on
/// a signal).
const IN_FLIGHT_GRACE: Duration = Duration::from_secs(5);

/// Ends the main phase: no new operations; the workers get
/// [`IN_FLIGHT_GRACE`] (none after a signal) to finish the operations in
/// flight, which are then cancelled (recorded `info`).
async fn end_main_phase(ctx: &Arc<Ctx>, workers: Vec<tokio::task::JoinHandle<()>>) {
    ctx.stop.store(true, Ordering::SeqCst);
    ctx.interrupt.raise(interrupt::Level::Stop);
    let grace = ctx.cfg.op_timeout.min(IN_FLIGHT_GRACE);
    let cancel_at = tokio::time::Instant::now() + grace;
    let c = ctx.clone();
    let canceller = tokio::spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep_until(cancel_at) => {}
            _ = c.interrupt.reached(interrupt::Level::Cancel) => {}
        }
        c.interrupt.raise(interrupt::Level::Cancel);
    });
    for w in workers {
        let _ = w.await;
    }
    canceller.abort();
}

/// Checks the recorded history (the lab is gone by now) and writes
/// `results.json` and the reports.
fn check_and_report(r: Recorded, dir: &Path) -> Result<checks::Verdicts, RunError> {
    let verdicts =
        checks::check_history(&r.history_path, r.cfg.workload.kind, r.cfg.check_time_limit)
            .map_err(RunError::Check)?;
    let mut results = results_json(dir, &r.cfg, &r.windows, &verdicts, r.elapsed);
    let input = crate::report::ClassifyInput {
        valid: verdicts.valid,
        model: verdicts.model,
        time_limit: r.cfg.check_time_limit.map(|t| t.min(120.0)),
    };
    crate::report::add_classification(&verdicts.history, &input, &mut results);
    let path = dir.join("results.json");
    let text = serde_json::to_string_pretty(&results).unwrap_or_default();
    std::fs::write(&path, text + "\n").map_err(io(format!("writing {}", path.display())))?;
    if let Err(e) = crate::report::finish_run(dir, &verdicts.history, &results) {
        eprintln!("faultline: warning: writing the reports: {e}");
    }
    Ok(verdicts)
}

/// Copies each node's logs from the lab directory into `<run>/nodes/<n>/`.
fn copy_logs(lab: &Lab, dir: &Path) {
    for node in lab.nodes() {
        let Ok(from) = lab.node_dir(node) else {
            continue;
        };
        let to = dir.join("nodes").join(&node.name);
        let _ = std::fs::create_dir_all(&to);
        if let Ok(rd) = std::fs::read_dir(&from) {
            for e in rd.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "log") {
                    if let Some(name) = p.file_name() {
                        let _ = std::fs::copy(&p, to.join(name));
                    }
                }
            }
        }
    }
}
