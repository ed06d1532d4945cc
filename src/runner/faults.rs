//! The run's faults: the kinds `--nemesis` draws from, the schedule's
//! windows, the nemesis task that applies and ends them on time (recording
//! each start and end in the history), and healing everything at the end of
//! the main phase. Every fault, kill and pause included, is carried out by
//! [`nemesis::apply_on`]; kill and pause act on the run's own servers
//! through the store's capabilities ([`RunServers`]).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use faultline_checkers::EventType;

use super::config::{FaultKind, RunConfig, RunError};
use super::context::{Ctx, Site};
use super::recorder::{Ev, Who};
use crate::lab::fake_clock::{FakeClock, check_binary, is_script};
use crate::lab::proc::Server;
use crate::lab::{Lab, NodeState};
use crate::nemesis::schedule::{self, Fault, Phase, Schedule};
use crate::nemesis::{self, NemesisError, ServerControl};
use crate::stores::Programs;

/// The names of a run's nodes: n1..nN.
pub(super) fn node_names(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("n{i}")).collect()
}

/// Before anything is created: every fault the run may inject can be
/// applied (a fault that could not be is an error now, never an event in
/// the history). Expands the schedule once (with n1 standing in for the
/// primaries, which the store reports once it runs), so a bad timeline or an
/// oversized schedule fails here; kill and pause need a store whose servers
/// faultline can kill and pause.
pub(super) fn check_faults(cfg: &RunConfig) -> Result<(), RunError> {
    let names = node_names(cfg.nodes);
    let windows = nemesis_windows(cfg, &names, &names[..1])?;
    let kills = windows
        .iter()
        .any(|w| matches!(w.fault, Fault::Kill { .. }));
    let pauses = windows
        .iter()
        .any(|w| matches!(w.fault, Fault::Pause { .. }));
    if let Some(remote) = &cfg.remote {
        // Also the kinds asked for, whether or not this run's length draws
        // one: the settings are wrong either way.
        let kills = kills || cfg.faults.contains(&FaultKind::Kill);
        let pauses = pauses || cfg.faults.contains(&FaultKind::Pause);
        return check_remote_faults(remote, &windows, &cfg.faults, kills, pauses);
    }
    if (kills && cfg.db.kill().is_none()) || (pauses && cfg.db.pause().is_none()) {
        return Err(RunError::Faults(format!(
            "--db {}: kill and pause act on the servers faultline starts, and this run starts none that can be {}: add --db-opt server=builtin or server=\"COMMAND\", or leave kill and pause out of the faults",
            cfg.db.name(),
            if kills { "killed" } else { "paused" }
        )));
    }
    Ok(())
}

/// [`check_faults`] for remote hosts: no delay (yet); kill and pause need
/// to know how to find the store's server, kill also how to start it.
fn check_remote_faults(
    remote: &super::RemoteRun,
    windows: &[schedule::Window],
    cfg_faults: &[FaultKind],
    kills: bool,
    pauses: bool,
) -> Result<(), RunError> {
    let drawn = |kind: FaultKind| {
        cfg_faults.contains(&kind)
            || windows.iter().any(|w| match w.fault {
                Fault::Delay { .. } => kind == FaultKind::Delay,
                Fault::Clock { .. } => kind == FaultKind::Clock,
                _ => false,
            })
    };
    if drawn(FaultKind::Clock) && !remote.endpoints.is_empty() {
        return Err(RunError::Faults(
            "--nemesis clock on remote hosts: faultline fakes the clocks of the servers it starts (with libfaketime), so leave out --db-opt endpoints=… and let it start the store".into(),
        ));
    }
    if remote.endpoints.is_empty() {
        // faultline starts the store: it knows its servers.
        return Ok(());
    }
    let p = remote.processes.as_ref();
    if (kills || pauses) && p.is_none() {
        return Err(RunError::Faults(format!(
            "{} on remote hosts: give --db-opt pidfile=PATH or pattern=REGEX (how faultline finds the store's server on each host)",
            if kills { "kill" } else { "pause" }
        )));
    }
    if kills && p.is_some_and(|p| p.start.is_none()) {
        return Err(RunError::Faults(
            "kill on remote hosts: give --db-opt start=COMMAND (how faultline starts the store's server again on a host)"
                .into(),
        ));
    }
    Ok(())
}

/// Whether the run may inject delay faults (on remote hosts, netem is then
/// probed on every host first).
pub(super) fn has_delay_faults(cfg: &RunConfig) -> bool {
    may_inject(cfg, FaultKind::Delay)
}

/// Whether the run's timeline has a fault of `kind`, or its random
/// nemesis may draw one.
fn may_inject(cfg: &RunConfig, kind: FaultKind) -> bool {
    match &cfg.timeline {
        Some(t) => t.iter().any(|e| match e.fault {
            schedule::FaultSpec::Delay { .. } => kind == FaultKind::Delay,
            schedule::FaultSpec::Clock { .. } => kind == FaultKind::Clock,
            _ => false,
        }),
        None => cfg.faults.contains(&kind),
    }
}

/// Whether the run may inject clock faults (its servers then start with a
/// faked clock).
pub(super) fn has_clock_faults(cfg: &RunConfig) -> bool {
    may_inject(cfg, FaultKind::Clock)
}

/// Before anything is created, for a run with clock faults: libfaketime is
/// installed, and every program whose clock the store's servers run reads
/// the clock through libc (a Go binary does not: "not applicable").
pub fn check_clock(cfg: &RunConfig, programs: &Programs) -> Result<(), RunError> {
    // On remote hosts, the hosts' binaries and libfaketime are checked
    // there, once connected.
    if !has_clock_faults(cfg) || cfg.remote.is_some() {
        return Ok(());
    }
    FakeClock::find()?;
    let refuse =
        |why: String| RunError::Faults(format!("--db {} with clock faults: {why}", cfg.db.name()));
    let list = cfg.db.clock_programs(programs).map_err(refuse)?;
    // Scripts (mariadb-install-db) run programs that are checked on their
    // own.
    for p in list.iter().filter(|p| !is_script(p)) {
        check_binary(p).map_err(refuse)?;
    }
    Ok(())
}

pub(super) fn nemesis_windows(
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
        Fault::Clock {
            nodes, mode, ms, ..
        } => format!("clock {} {ms} ms at {}", mode.as_str(), nodes.join(",")),
    }
}

pub(super) async fn nemesis_task(ctx: Arc<Ctx>, windows: Vec<schedule::Window>, start: Instant) {
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
        kind: EventType::Info,
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

/// The run's own servers, killed and paused through the store's
/// capabilities.
struct RunServers<'a>(&'a Ctx);

impl RunServers<'_> {
    /// Calls `f` on each server of `node`.
    fn each(&self, node: &NodeState, mut f: impl FnMut(&mut Server)) {
        let mut servers = self.0.servers.lock().unwrap_or_else(|e| e.into_inner());
        for s in servers.iter_mut().filter(|s| s.spec.node == node.name) {
            f(s);
        }
    }

    fn cannot(&self, what: &str) -> NemesisError {
        NemesisError::Servers(format!("--db {} cannot be {what}", self.0.cfg.db.name()))
    }
}

impl ServerControl for RunServers<'_> {
    fn kill(&self, lab: &Lab, node: &NodeState) -> nemesis::Result<()> {
        let kill = self.0.cfg.db.kill().ok_or_else(|| self.cannot("killed"))?;
        self.each(node, |s| {
            let _ = kill.kill(lab, s);
        });
        Ok(())
    }

    /// Starts the servers of `node` that do not run (nothing when the store
    /// cannot be killed).
    fn start(&self, lab: &Lab, node: &NodeState) -> nemesis::Result<()> {
        let Some(kill) = self.0.cfg.db.kill() else {
            return Ok(());
        };
        let mut failed = None;
        self.each(node, |s| {
            if s.process.is_none_or(|p| !p.is_alive())
                && let Err(e) = kill.restart(lab, s)
            {
                failed = Some(NemesisError::Servers(e.to_string()));
            }
        });
        failed.map_or(Ok(()), Err)
    }

    fn pause(&self, _lab: &Lab, node: &NodeState) -> nemesis::Result<()> {
        let pause = self.0.cfg.db.pause().ok_or_else(|| self.cannot("paused"))?;
        self.each(node, |s| pause.pause(s));
        Ok(())
    }

    /// Resumes the servers of `node` (nothing when the store cannot be
    /// paused).
    fn resume(&self, _lab: &Lab, node: &NodeState) -> nemesis::Result<()> {
        if let Some(pause) = self.0.cfg.db.pause() {
            self.each(node, |s| pause.resume(s));
        }
        Ok(())
    }
}

/// Applies (start) or heals (end) one fault. Blocking (on remote hosts,
/// it waits for the SSH commands). In the lab every fault goes through
/// [`nemesis::apply_on`] (netem where the kernel has it, the NFQUEUE holder
/// otherwise); kill and pause act on the servers this run holds.
fn apply_fault(ctx: &Ctx, fault: &Fault, phase: Phase) -> Result<(), String> {
    let lab = match &ctx.site {
        Site::Lab(lab) => lab,
        Site::Remote(r) => {
            return tokio::runtime::Handle::current()
                .block_on(super::remote::apply_fault(r, fault, phase))
                .map_err(|e| e.to_string());
        }
    };
    match phase {
        Phase::Start => {
            let active = nemesis::apply_on(lab, fault, ctx.cfg.seed, &RunServers(ctx))
                .map_err(|e| e.to_string())?;
            ctx.active
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(active);
            Ok(())
        }
        Phase::End => {
            let found = {
                let mut active = ctx.active.lock().unwrap_or_else(|e| e.into_inner());
                active
                    .iter()
                    .position(|a| &a.fault == fault)
                    .map(|i| active.remove(i))
            };
            match found {
                Some(a) => a.end_on(lab, &RunServers(ctx)).map_err(|e| e.to_string()),
                None => Ok(()),
            }
        }
    }
}

/// Heals every fault that may still be active: the network, paused and
/// killed servers.
pub(super) async fn heal_all(ctx: &Arc<Ctx>) {
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
        let lab = match &c.site {
            Site::Lab(lab) => lab,
            Site::Remote(r) => {
                if let Err(e) = tokio::runtime::Handle::current().block_on(r.heal()) {
                    eprintln!("faultline: warning: healing the hosts: {e}");
                }
                return;
            }
        };
        let active: Vec<_> = c
            .active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        let servers = RunServers(&c);
        for a in active {
            let _ = a.end_on(lab, &servers);
        }
        if let Err(e) = nemesis::heal(lab) {
            eprintln!("faultline: warning: healing the network: {e}");
        }
        for node in lab.nodes() {
            let _ = servers.resume(lab, node);
            if let Err(e) = servers.start(lab, node) {
                eprintln!("faultline: warning: restarting {}: {e}", node.name);
            }
        }
    })
    .await;
    if let Ok(mut a) = ctx.active_fault.lock() {
        *a = None;
    }
}
