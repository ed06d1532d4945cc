//! `faultline run`: a workload from many concurrent clients against a real
//! cluster in the lab, under faults, recorded and checked end to end.
//!
//! Phases: start the lab and the store; the main phase (workers and the
//! nemesis); heal everything; a quiet period; final reads from every node;
//! stop and tear down; check; report. Ctrl-C or SIGTERM ends the main phase
//! early and the rest still happens.

pub mod checks;
pub mod db;
pub mod interrupt;
pub mod recorder;
pub mod store;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faultline_workloads::workload::{Generator, WorkloadConfig, final_reads};
use serde::Serialize;
use serde_json::{Value, json};

use crate::lab::proc::Server;
use crate::lab::{Lab, LabGuard, LabSpec, NodeState, ProcId, ServerState, state};
use crate::nemesis::schedule::{self, Fault, FaultSpec, Phase, Schedule, Target};
use crate::node::client::ClientError;
use crate::node::protocol::{Reply, ReplyType};
use recorder::{Ev, Recorder, Who};

/// Port of the built-in store on every node.
pub const NODE_PORT: u16 = 7000;

/// The store under test.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "db", rename_all = "kebab-case")]
pub enum DbConfig {
    /// `faultline node`.
    Builtin {
        /// primary, async or quorum.
        mode: String,
        /// Read quorum (quorum mode).
        r: String,
        /// Write quorum (quorum mode).
        w: String,
    },
    /// etcd: one member per node.
    Etcd {
        /// `linearizable` or `serializable`.
        reads: String,
        /// Where the binaries are (default: PATH).
        bindir: Option<PathBuf>,
    },
    /// Redis: a primary and replicas, optionally Sentinel.
    Redis {
        /// `none` or `sentinel`.
        failover: String,
        /// `primary` or `replicas`.
        reads: String,
        /// WAIT for this many replicas after each write (0: no WAIT).
        wait: u32,
        /// Where the binaries are (default: PATH).
        bindir: Option<PathBuf>,
    },
    /// PostgreSQL: a primary and streaming hot standbys.
    Postgres {
        /// `primary` or `standby`.
        reads: String,
        /// `off`, `on` or `apply` (synchronous commit to one standby).
        sync: String,
        /// Where the binaries are (default: the newest in /usr/lib/postgresql).
        bindir: Option<PathBuf>,
    },
    /// A program speaking the external adapter protocol.
    External {
        /// The adapter's command line (run with `sh -c`).
        command: String,
        /// Servers to start on the nodes: `builtin` or a shell command.
        server: Option<String>,
        /// The mode of `server=builtin`.
        mode: String,
        /// Whether the adapter gets the `open` handshake.
        handshake: bool,
        /// The primaries, for `primaries` targets.
        primaries: Vec<String>,
    },
}

impl DbConfig {
    /// A short name for the store directory.
    pub fn label(&self) -> String {
        match self {
            DbConfig::Builtin { mode, .. } => format!("builtin-{mode}"),
            DbConfig::Etcd { reads, .. } => format!("etcd-{reads}"),
            DbConfig::Redis {
                failover, reads, ..
            } if failover == "sentinel" => {
                format!("redis-sentinel-{reads}")
            }
            DbConfig::Redis { reads, .. } => format!("redis-{reads}"),
            DbConfig::Postgres { reads, .. } => format!("postgres-{reads}"),
            DbConfig::External { .. } => "external".into(),
        }
    }

    /// The `--db` name.
    pub fn kind(&self) -> &'static str {
        match self {
            DbConfig::Builtin { .. } => "builtin",
            DbConfig::Etcd { .. } => "etcd",
            DbConfig::Redis { .. } => "redis",
            DbConfig::Postgres { .. } => "postgres",
            DbConfig::External { .. } => "external",
        }
    }

    /// The nodes that are primaries (for `primaries` targets).
    pub fn primaries(&self, nodes: &[String]) -> Vec<String> {
        match self {
            DbConfig::Builtin { mode, .. } if mode != "quorum" => {
                nodes.first().cloned().into_iter().collect()
            }
            DbConfig::Builtin { .. } => Vec::new(),
            DbConfig::Redis { .. } | DbConfig::Postgres { .. } => {
                nodes.first().cloned().into_iter().collect()
            }
            DbConfig::External { primaries, .. } => primaries.clone(),
            DbConfig::Etcd { .. } => Vec::new(),
        }
    }

    /// Whether the store supports compare-and-set.
    pub fn supports_cas(&self) -> bool {
        true
    }
}

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
                other => {
                    return Err(format!(
                        "unknown fault `{other}` (expected partition, loss, delay, kill, pause, none or all)"
                    ));
                }
            }
        }
        out.dedup();
        Ok(out)
    }

    /// The schedule's fault specifications for this kind.
    fn specs(self) -> Vec<FaultSpec> {
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
        }
    }
}

/// Everything a run needs.
#[derive(Clone, Debug, Serialize)]
pub struct RunConfig {
    /// Test name (the store directory's first level).
    pub name: String,
    /// The store.
    pub db: DbConfig,
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
    /// The store did not come up.
    #[error("the store did not come up: {0}")]
    StoreDown(String),
    /// A program the store needs is not installed.
    #[error("`{program}` not found ({what}); {fix}")]
    Missing {
        /// The program.
        program: String,
        /// What needs it.
        what: String,
        /// How to get it: `install it with: apt-get install -y ...`.
        fix: String,
    },
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

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> RunError {
    let context = context.into();
    move |source| RunError::Io { context, source }
}

/// What a run produced.
#[derive(Debug)]
pub struct RunOutcome {
    /// The run's directory.
    pub dir: PathBuf,
    /// The verdicts.
    pub verdicts: checks::Verdicts,
}

/// Shared by the tasks of a run.
struct Ctx {
    cfg: RunConfig,
    lab: Lab,
    cluster: Arc<db::Cluster>,
    servers: Mutex<Vec<Server>>,
    active: Mutex<Vec<crate::nemesis::ActiveFault>>,
    /// Faults started and not yet ended (their end event is still due).
    open: Mutex<Vec<Fault>>,
    rec: Recorder,
    stop: AtomicBool,
    /// Signals and the wind-down level.
    interrupt: Arc<interrupt::Interrupt>,
    active_fault: Mutex<Option<String>>,
    max_process: AtomicU64,
}

/// Carries out a run. Infrastructure failures are errors; the verdict is in
/// the outcome. SIGINT, SIGTERM and SIGHUP are handled from the first
/// instruction (see [`interrupt`]).
pub fn run(cfg: RunConfig) -> Result<RunOutcome, RunError> {
    let interrupt = interrupt::Interrupt::install();
    crate::lab::sys::preflight()?;
    // Before anything exists: a missing binary leaves nothing behind.
    db::check_install(&cfg.db)?;
    check_faults(&cfg)?;
    if interrupt.interrupted() {
        return Err(RunError::Interrupted("before anything was created"));
    }
    let dir = store::create_run_dir(&cfg.store, &cfg.name).map_err(io(format!(
        "creating the run directory in {}",
        cfg.store.display()
    )))?;
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
        client_ns: matches!(cfg.db, DbConfig::External { .. }),
        // The logs worth keeping are copied into the run directory.
        remove_dir: true,
    })?;
    let guard = LabGuard::new(&lab_name);
    // No client socket of this run can reach anything but the lab.
    crate::lab::client_socket::bind_to_bridge(&lab.state.bridge);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(io("starting the async runtime"))?;
    let result = runtime.block_on(run_in_lab(cfg, lab, &dir, interrupt.clone()));
    // Tear down whatever happened; report both errors if both failed.
    let down = guard.finish();
    interrupt.lab_gone();
    let recorded = result?;
    down?;
    let verdicts = check_and_report(recorded, &dir)?;
    Ok(RunOutcome { dir, verdicts })
}

pub(crate) fn node_argv(
    cfg: &RunConfig,
    lab: &Lab,
    node: &NodeState,
) -> Result<Vec<String>, RunError> {
    let exe = std::env::current_exe().map_err(io("finding the faultline binary"))?;
    let mut argv = vec![
        exe.display().to_string(),
        "node".into(),
        "--name".into(),
        node.name.clone(),
        "--listen".into(),
        format!("{}:{NODE_PORT}", node.ip),
    ];
    for other in lab.nodes().iter().filter(|n| n.name != node.name) {
        argv.push("--peer".into());
        argv.push(format!("{}={}:{NODE_PORT}", other.name, other.ip));
    }
    if let DbConfig::Builtin { mode, r, w } = &cfg.db {
        argv.extend(["--mode".into(), mode.clone()]);
        if mode == "quorum" {
            argv.extend(["--r".into(), r.clone(), "--w".into(), w.clone()]);
        }
    }
    Ok(argv)
}

pub(crate) fn record_server(lab: &Lab, s: &Server, status: &str) -> Result<(), RunError> {
    let entry = ServerState {
        node: s.spec.node.clone(),
        service: s.spec.service.clone(),
        argv: s.spec.argv.clone(),
        holder: Some(ProcId::current()),
        process: s.process,
        status: status.to_string(),
        log: s.log.clone(),
    };
    state::update(lab.name(), |st| {
        st.servers
            .retain(|x| !(x.node == entry.node && x.service == entry.service));
        st.servers.push(entry);
    })?;
    Ok(())
}

/// What the run recorded, to check once the lab is gone.
struct Recorded {
    cfg: RunConfig,
    windows: Vec<schedule::Window>,
    elapsed: Duration,
    history_path: PathBuf,
}

/// How long the final reads may take in all, whatever the stores do.
const FINAL_READS_BUDGET: Duration = Duration::from_secs(30);

/// How long the workers may take to finish the operations in flight when
/// the main phase ends on time (they are cancelled after it, or at once on
/// a signal).
const IN_FLIGHT_GRACE: Duration = Duration::from_secs(5);

/// Starts the store, unless a signal comes first.
async fn start_store(
    cfg: &RunConfig,
    lab: &Lab,
    dir: &Path,
    interrupt: &interrupt::Interrupt,
) -> Result<db::Started, RunError> {
    let started = tokio::select! {
        r = db::start(cfg, lab, dir) => r,
        _ = interrupt.reached(interrupt::Level::Cancel) => {
            Err(RunError::Interrupted("while the store was starting"))
        }
    };
    if started.is_ok() && interrupt.interrupted() {
        if let Ok(mut s) = started {
            db::stop(&cfg.db, &mut s.servers);
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
    lab: Lab,
    dir: &Path,
    interrupt: Arc<interrupt::Interrupt>,
) -> Result<Recorded, RunError> {
    if interrupt.interrupted() {
        return Err(RunError::Interrupted("while the lab was being created"));
    }
    let db::Started { servers, cluster } = start_store(&cfg, &lab, dir, &interrupt).await?;

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
        lab,
        cfg,
    });
    let windows = nemesis_windows(&ctx.cfg, &node_names(ctx.cfg.nodes), &ctx.cluster.primaries)?;

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
        db::stop(&ctx.cfg.db, &mut servers);
    }
    copy_logs(&ctx.lab, dir);
    if let Some(t) = progress_task {
        let _ = t.await;
    }
    let ctx = Arc::into_inner(ctx)
        .ok_or_else(|| RunError::Check("internal: a task still holds the run's context".into()))?;
    drop(ctx.rec);
    writer
        .finish()
        .map_err(io(format!("writing {}", history_path.display())))?;
    if ctx.cluster.adapters.hopeless() {
        return Err(RunError::StoreDown(format!(
            "the external adapter never gave a valid reply ({} lines that are not replies); see {} and {}",
            ctx.cluster
                .adapters
                .garbage
                .load(std::sync::atomic::Ordering::Relaxed),
            dir.join("adapter.log").display(),
            history_path.display()
        )));
    }
    Ok(Recorded {
        cfg: ctx.cfg,
        windows,
        elapsed: start.elapsed(),
        history_path,
    })
}

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
    crate::report::add_classification(&verdicts.history, &mut results);
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

/// The names of a lab's nodes: n1..nN.
fn node_names(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("n{i}")).collect()
}

/// Before anything is created: every fault the run may inject can be
/// applied (a fault that could not be is an error now, never an event in
/// the history). Expands the schedule once with the primaries the store is
/// configured with (or n1, for stores that report theirs later), so a bad
/// timeline or an oversized schedule fails here.
fn check_faults(cfg: &RunConfig) -> Result<(), RunError> {
    let names = node_names(cfg.nodes);
    let mut primaries = cfg.db.primaries(&names);
    if let Some(x) = primaries.iter().find(|p| !names.contains(p)) {
        return Err(RunError::Faults(format!(
            "--db-opt primaries: {x:?} is not a node of this run (nodes: {})",
            names.join(", ")
        )));
    }
    if primaries.is_empty() {
        primaries = names[..1].to_vec();
    }
    let windows = nemesis_windows(cfg, &names, &primaries)?;
    let acts_on_servers = windows
        .iter()
        .any(|w| matches!(w.fault, Fault::Kill { .. } | Fault::Pause { .. }));
    if acts_on_servers && matches!(&cfg.db, DbConfig::External { server: None, .. }) {
        return Err(RunError::Faults(
            "kill and pause act on the servers faultline starts, and this run starts none: add --db-opt server=builtin or server=\"COMMAND\", or leave kill and pause out of --nemesis".into(),
        ));
    }
    Ok(())
}

fn nemesis_windows(
    cfg: &RunConfig,
    nodes: &[String],
    primaries: &[String],
) -> Result<Vec<schedule::Window>, RunError> {
    let sched = match &cfg.timeline {
        Some(t) => Schedule::Timeline(t.clone()),
        None if cfg.faults.is_empty() => return Ok(Vec::new()),
        None => Schedule::Random {
            every: Duration::from_secs_f64(cfg.nemesis_interval),
            duration: Duration::from_secs_f64(cfg.fault_duration),
            faults: cfg.faults.iter().flat_map(|f| f.specs()).collect(),
        },
    };
    Ok(sched.windows(
        nodes,
        primaries,
        Duration::from_secs_f64(cfg.time_limit),
        cfg.seed,
    )?)
}

fn progress_task(
    ctx: Arc<Ctx>,
    start: Instant,
) -> (
    Option<indicatif::ProgressBar>,
    Option<tokio::task::JoinHandle<()>>,
) {
    if !ctx.cfg.progress {
        return (None, None);
    }
    let total = ctx.cfg.time_limit.ceil() as u64;
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:24}] {pos}/{len} s  {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let b = bar.clone();
    let task = tokio::spawn(async move {
        while !ctx.stop.load(Ordering::Relaxed) {
            let c = &ctx.rec.counts;
            let fault = ctx
                .active_fault
                .lock()
                .map(|f| f.clone())
                .unwrap_or_default()
                .unwrap_or_else(|| "none".into());
            b.set_position(start.elapsed().as_secs().min(total));
            b.set_message(format!(
                "ops {}  ok {}  fail {}  info {}  fault: {fault}",
                c.invoked.load(Ordering::Relaxed),
                c.ok.load(Ordering::Relaxed),
                c.fail.load(Ordering::Relaxed),
                c.info.load(Ordering::Relaxed),
            ));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    (Some(bar), Some(task))
}

async fn worker(ctx: Arc<Ctx>, slot: u32) {
    let c = u64::from(ctx.cfg.concurrency);
    let mut generator = Generator::new(&ctx.cfg.workload, slot);
    let mut process = u64::from(slot);
    let mut client = db::Client::new(&ctx.cluster, db::Role::Worker(slot));
    let interval = ctx
        .cfg
        .rate
        .map(|r| Duration::from_secs_f64(f64::from(ctx.cfg.concurrency) / r));
    let mut next_at = first_op_at(interval, slot, ctx.cfg.concurrency);
    while !ctx.stop.load(Ordering::Relaxed) {
        if let Some(iv) = interval {
            if !until_or_stopped(&ctx, next_at).await {
                break;
            }
            next_at += iv;
        }
        let ready = tokio::select! {
            r = client.ready(ctx.cfg.op_timeout) => r.is_ok(),
            _ = ctx.interrupt.reached(interrupt::Level::Stop) => break,
        };
        if !ready {
            if !until_or_stopped(
                &ctx,
                tokio::time::Instant::now() + Duration::from_millis(100),
            )
            .await
            {
                break;
            }
            continue;
        }
        let op = generator.next_op();
        let node = client.target(op.f);
        let ev = |kind: &'static str, value: Value, error: Option<String>, time: u64| Ev {
            time,
            process: Who::Client(process),
            kind,
            f: op.f.to_string(),
            key: Some(op.key.clone()),
            value,
            node: Some(node.clone()),
            error,
            phase: None,
        };
        ctx.rec
            .record(ev("invoke", op.value.clone(), None, ctx.rec.now()));
        let r = tokio::select! {
            r = client.call(process, op.f, &op.key, op.value.clone(), ctx.cfg.op_timeout) => r,
            _ = ctx.interrupt.reached(interrupt::Level::Cancel) => Err(cancelled()),
        };
        let now = ctx.rec.now();
        let transport_failed = r.is_err();
        let (kind, value, error) = completion(op.f, &op.value, r);
        // A node that refuses at once (no primary, no quorum) would
        // otherwise fill the history with failures: back off a bit.
        let refused = !transport_failed
            && kind == "fail"
            && error
                .as_deref()
                .is_some_and(|e| e.starts_with("unavailable"));
        ctx.rec.record(ev(kind, value, error, now));
        if ctx.cluster.adapters.hopeless() {
            // Nothing but garbage from the adapters: the run is an error
            // (see run_in_lab); no point in going on.
            ctx.interrupt.raise(interrupt::Level::Stop);
            break;
        }
        if refused {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if transport_failed && kind == "fail" {
            client.reset();
        }
        let retire = kind == "info";
        if retire {
            // Jepsen's convention: the process may still be running the
            // operation; the worker carries on under a new id.
            process += c;
            client.reset();
        }
    }
    ctx.max_process.fetch_max(process, Ordering::Relaxed);
}

/// When worker `slot`'s first operation is due: with a rate, the workers'
/// first operations are spread over one interval (rather than all waiting
/// a whole interval); without one, now.
fn first_op_at(interval: Option<Duration>, slot: u32, concurrency: u32) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    match interval {
        Some(iv) => now + iv.mul_f64(f64::from(slot) / f64::from(concurrency.max(1))),
        None => now,
    }
}

/// Sleeps until `at`; false if the main phase ended first.
async fn until_or_stopped(ctx: &Ctx, at: tokio::time::Instant) -> bool {
    tokio::select! {
        _ = tokio::time::sleep_until(at) => !ctx.stop.load(Ordering::Relaxed),
        _ = ctx.interrupt.reached(interrupt::Level::Stop) => false,
    }
}

/// The error of an operation cancelled in flight: it may have happened.
fn cancelled() -> ClientError {
    ClientError::Indefinite("cancelled: the run ended while this operation was in flight".into())
}

/// What a call's result becomes in the history: the completion's type, its
/// value (what was read, for an `ok` read; otherwise what was sent) and its
/// error. A request that certainly never arrived is `fail`; one that may
/// have is `info`.
fn completion(
    f: &str,
    sent: &Value,
    r: Result<Reply, ClientError>,
) -> (&'static str, Value, Option<String>) {
    match r {
        Ok(reply) => {
            let kind = match reply.kind {
                ReplyType::Ok => "ok",
                ReplyType::Fail => "fail",
                ReplyType::Info => "info",
            };
            let value = if kind == "ok" && f == "read" {
                reply.value
            } else {
                sent.clone()
            };
            (kind, value, reply.error)
        }
        Err(ClientError::Definite(e)) => ("fail", sent.clone(), Some(e)),
        Err(e) => ("info", sent.clone(), Some(e.to_string())),
    }
}

fn fault_label(f: &Fault) -> String {
    match f {
        Fault::Partition { grudge } => {
            let cut: Vec<String> = grudge
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| format!("{k}x{}", v.len()))
                .collect();
            format!("partition ({})", cut.join(" "))
        }
        Fault::Loss { nodes, percent } => format!("loss {percent}% at {}", nodes.join(",")),
        Fault::Delay { nodes, ms, .. } => format!("delay {ms} ms at {}", nodes.join(",")),
        Fault::Kill { nodes } => format!("kill {}", nodes.join(",")),
        Fault::Pause { nodes } => format!("pause {}", nodes.join(",")),
    }
}

async fn nemesis_task(ctx: Arc<Ctx>, windows: Vec<schedule::Window>, start: Instant) {
    for ev in schedule::events(&windows) {
        let at = tokio::time::Instant::from_std(start + ev.time);
        loop {
            if ctx.stop.load(Ordering::Relaxed) {
                return;
            }
            let now = tokio::time::Instant::now();
            if now >= at {
                break;
            }
            tokio::time::sleep((at - now).min(Duration::from_millis(50))).await;
        }
        let c = ctx.clone();
        let e = ev.clone();
        let applied = tokio::task::spawn_blocking(move || apply_fault(&c, &e.fault, e.phase))
            .await
            .unwrap_or_else(|e| Err(format!("the fault task panicked: {e}")));
        if let Err(e) = &applied {
            eprintln!("faultline: warning: fault {} failed: {e}", ev.fault.name());
        }
        record_fault(&ctx, &ev.fault, ev.phase, applied.err());
        if let Ok(mut open) = ctx.open.lock() {
            match ev.phase {
                Phase::Start => open.push(ev.fault.clone()),
                Phase::End => {
                    if let Some(i) = open.iter().position(|f| f == &ev.fault) {
                        open.remove(i);
                    }
                }
            }
        }
        if let Ok(mut a) = ctx.active_fault.lock() {
            *a = match ev.phase {
                Phase::Start => Some(fault_label(&ev.fault)),
                Phase::End => None,
            };
        }
    }
}

/// Records a nemesis event.
fn record_fault(ctx: &Ctx, fault: &Fault, phase: Phase, error: Option<String>) {
    let mut line = schedule::Event {
        time: Duration::ZERO,
        phase,
        fault: fault.clone(),
    }
    .to_history();
    ctx.rec.record(Ev {
        time: ctx.rec.now(),
        process: Who::Nemesis,
        kind: "info",
        f: fault.name().to_string(),
        key: None,
        value: line["value"].take(),
        node: None,
        error,
        phase: Some(match phase {
            Phase::Start => "start",
            Phase::End => "end",
        }),
    });
}

fn with_servers(ctx: &Ctx, names: &[String], mut f: impl FnMut(&mut Server, &Lab)) {
    let mut servers = ctx.servers.lock().unwrap_or_else(|e| e.into_inner());
    for s in servers.iter_mut().filter(|s| names.contains(&s.spec.node)) {
        f(s, &ctx.lab);
    }
}

/// Applies (start) or heals (end) one fault. Blocking. Network faults go
/// through [`crate::nemesis::apply`] (netem where the kernel has it, the
/// NFQUEUE holder otherwise); kill and pause act on the servers this run
/// holds.
fn apply_fault(ctx: &Ctx, fault: &Fault, phase: Phase) -> Result<(), String> {
    match (fault, phase) {
        (Fault::Kill { nodes }, Phase::Start) => {
            with_servers(ctx, nodes, |s, lab| {
                s.kill();
                let _ = record_server(lab, s, "killed");
            });
            Ok(())
        }
        (Fault::Kill { nodes }, Phase::End) => {
            let mut failed = None;
            with_servers(ctx, nodes, |s, lab| match s.restart(lab) {
                Ok(()) => {
                    let _ = record_server(lab, s, "running");
                }
                Err(e) => failed = Some(e.to_string()),
            });
            failed.map_or(Ok(()), Err)
        }
        (Fault::Pause { nodes }, Phase::Start) => {
            with_servers(ctx, nodes, |s, _| {
                s.pause();
            });
            Ok(())
        }
        (Fault::Pause { nodes }, Phase::End) => {
            with_servers(ctx, nodes, |s, _| {
                s.resume();
            });
            Ok(())
        }
        (f, Phase::Start) => {
            let active =
                crate::nemesis::apply(&ctx.lab, f, ctx.cfg.seed).map_err(|e| e.to_string())?;
            ctx.active
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(active);
            Ok(())
        }
        (f, Phase::End) => {
            let found = {
                let mut active = ctx.active.lock().unwrap_or_else(|e| e.into_inner());
                active
                    .iter()
                    .position(|a| &a.fault == f)
                    .map(|i| active.remove(i))
            };
            match found {
                Some(a) => a.end(&ctx.lab).map_err(|e| e.to_string()),
                None => Ok(()),
            }
        }
    }
}

/// Heals every fault that may still be active: the network, paused and
/// killed servers.
async fn heal_all(ctx: &Arc<Ctx>) {
    let c = ctx.clone();
    let _ = tokio::task::spawn_blocking(move || {
        // Faults cut short (Ctrl-C): end each one and record its end.
        let open: Vec<Fault> = c
            .open
            .lock()
            .map(|mut o| o.drain(..).collect())
            .unwrap_or_default();
        for f in open {
            let r = apply_fault(&c, &f, Phase::End);
            record_fault(&c, &f, Phase::End, r.err());
        }
        let active: Vec<_> = c
            .active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        for a in active {
            let _ = a.end(&c.lab);
        }
        if let Err(e) = crate::nemesis::heal(&c.lab) {
            eprintln!("faultline: warning: healing the network: {e}");
        }
        let names: Vec<String> = c.lab.nodes().iter().map(|n| n.name.clone()).collect();
        with_servers(&c, &names, |s, lab| {
            s.resume();
            if s.process.is_none_or(|p| !p.is_alive()) {
                if let Err(e) = s.restart(lab) {
                    eprintln!("faultline: warning: restarting {}: {e}", s.spec.node);
                }
                let _ = record_server(lab, s, "running");
            }
        });
    })
    .await;
    if let Ok(mut a) = ctx.active_fault.lock() {
        *a = None;
    }
}

/// After healing: every node reads every key once (retrying a few times),
/// recorded with `"phase": "final"`. All of it within
/// [`FINAL_READS_BUDGET`]; a second signal ends it at once.
async fn final_read_phase(ctx: &Arc<Ctx>) {
    let deadline = tokio::time::Instant::now() + FINAL_READS_BUDGET;
    let mut process = ctx.max_process.load(Ordering::Relaxed) + 1;
    let reads = final_reads(&ctx.cfg.workload);
    for i in 0..ctx.cluster.nodes.len() {
        let node = ctx.cluster.name(i);
        let mut client = db::Client::new(&ctx.cluster, db::Role::Final(i));
        for op in &reads {
            for _attempt in 0..5 {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                if left.is_zero() || ctx.interrupt.level() >= interrupt::Level::Teardown {
                    eprintln!(
                        "faultline: warning: final reads cut short ({})",
                        if left.is_zero() {
                            "out of their time budget"
                        } else {
                            "interrupted"
                        }
                    );
                    return;
                }
                let timeout = left.min(Duration::from_secs(2));
                let ready = tokio::select! {
                    r = client.ready(timeout) => r.is_ok(),
                    _ = ctx.interrupt.reached(interrupt::Level::Teardown) => false,
                };
                if !ready {
                    client.reset();
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    continue;
                }
                let ev = |kind: &'static str, value: Value, error: Option<String>, time: u64| Ev {
                    time,
                    process: Who::Client(process),
                    kind,
                    f: op.f.to_string(),
                    key: Some(op.key.clone()),
                    value,
                    node: Some(node.clone()),
                    error,
                    phase: Some("final"),
                };
                ctx.rec
                    .record(ev("invoke", Value::Null, None, ctx.rec.now()));
                let r = tokio::select! {
                    r = client.call(process, op.f, &op.key, Value::Null, timeout) => r,
                    _ = ctx.interrupt.reached(interrupt::Level::Teardown) => Err(cancelled()),
                };
                let now = ctx.rec.now();
                let (kind, value, error) = completion(op.f, &Value::Null, r);
                ctx.rec.record(ev(kind, value, error, now));
                let done = kind == "ok";
                process += 1;
                if done {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    }
}

/// The run's `results.json` (without the classification).
fn results_json(
    dir: &Path,
    cfg: &RunConfig,
    windows: &[schedule::Window],
    v: &checks::Verdicts,
    elapsed: Duration,
) -> Value {
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for op in &v.history.ops {
        let k = match op.outcome {
            faultline_checkers::Outcome::Ok => "ok",
            faultline_checkers::Outcome::Fail => "fail",
            faultline_checkers::Outcome::Info => "info",
            faultline_checkers::Outcome::Pending => "pending",
        };
        *counts.entry(k).or_default() += 1;
    }
    let results = json!({
        "faultline": env!("CARGO_PKG_VERSION"),
        "name": cfg.name,
        "dir": dir.display().to_string(),
        "valid": v.valid,
        "checks": v.checks,
        "seed": cfg.seed,
        "config": cfg,
        "stats": {
            "ops": v.ops,
            "outcomes": counts,
            // What the nemesis did (the history's start events), and what
            // was scheduled; they differ when the nemesis fell behind (a
            // period shorter than applying a fault takes) or the run ended
            // early.
            "faults": v
                .history
                .faults
                .iter()
                .filter(|f| f.extra.get("phase").is_some_and(|p| p == "start"))
                .count(),
            "faults_scheduled": windows.len(),
            "duration_s": elapsed.as_secs_f64(),
            "ok_per_s": counts.get("ok").copied().unwrap_or(0) as f64 / cfg.time_limit.max(0.001),
            "check_ms": v.check_ms,
        },
        "faults": windows,
    });
    results
}
