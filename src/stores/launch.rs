//! What a store needs to start on the lab: the programs found by its
//! install check ([`Programs`]), and a [`Launch`] that spawns servers in the
//! nodes (each recorded in the lab state file, its log under the node's
//! directory), notices a server that exits, waits for readiness and stops
//! everything.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;

use super::{Cluster, StoreError};
use crate::lab::proc::{Server, ServerSpec, stop_tree};
use crate::lab::sys::find_tool;
use crate::lab::{Lab, fake_clock};

/// The programs a store found in its install check, by name.
#[derive(Clone, Debug, Default)]
pub struct Programs(BTreeMap<&'static str, PathBuf>);

impl Programs {
    /// Finds each of `programs` in `bindir` (when given) or on the usual
    /// paths; the first missing one is an error naming `--db db` and the
    /// `install` command.
    pub fn find(
        db: &str,
        bindir: Option<&Path>,
        programs: &[&'static str],
        install: &str,
    ) -> Result<Programs, StoreError> {
        let mut found = BTreeMap::new();
        for &program in programs {
            let Some(p) = locate(bindir, program) else {
                return Err(StoreError::Missing {
                    program: program.to_string(),
                    what: format!(
                        "--db {db}{}",
                        bindir
                            .map(|d| format!(" (looked in {})", d.display()))
                            .unwrap_or_default()
                    ),
                    fix: format!("install it with: {install}"),
                });
            };
            found.insert(program, p);
        }
        Ok(Programs(found))
    }

    /// The paths of every program found.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.0.values().map(PathBuf::as_path)
    }

    /// The path of `program` (an error if the install check did not find
    /// it).
    pub fn get(&self, program: &str) -> Result<&Path, StoreError> {
        self.0
            .get(program)
            .map(PathBuf::as_path)
            .ok_or_else(|| StoreError::Down(format!("{program}: no binary")))
    }
}

/// Finds `program` in `bindir` (when given) or on the usual paths.
pub fn locate(bindir: Option<&Path>, program: &str) -> Option<PathBuf> {
    match bindir {
        Some(d) => {
            let p = d.join(program);
            p.is_file().then_some(p)
        }
        None => find_tool(program),
    }
}

/// A store being started: the lab, the programs found, the run directory
/// and the servers started so far. On an error the runner stops them.
pub struct Launch<'a> {
    /// The lab.
    pub lab: &'a Lab,
    /// What the install check found.
    pub programs: &'a Programs,
    /// The run directory.
    pub run_dir: &'a Path,
    /// The servers started so far.
    pub servers: Vec<Server>,
    /// Start every server with a faked clock (clock faults are scheduled).
    pub fake_clock: bool,
}

impl<'a> Launch<'a> {
    /// A launch with no server yet.
    pub fn new(lab: &'a Lab, programs: &'a Programs, run_dir: &'a Path) -> Launch<'a> {
        Launch {
            lab,
            programs,
            run_dir,
            servers: Vec::new(),
            fake_clock: false,
        }
    }

    /// The same launch, starting every server with libfaketime preloaded
    /// and its wall clock read from its node's timestamp file
    /// ([`crate::lab::fake_clock`]), so clock faults can move it. The one
    /// place a store's servers get a faked clock.
    pub fn with_fake_clock(mut self, on: bool) -> Launch<'a> {
        self.fake_clock = on;
        self
    }

    /// The cluster as clients see it (no primaries yet).
    pub fn cluster(&self) -> Arc<Cluster> {
        Arc::new(Cluster::of(self.lab, self.run_dir.to_path_buf()))
    }

    /// The path of a program the install check found.
    pub fn program(&self, name: &str) -> Result<&'a Path, StoreError> {
        self.programs.get(name)
    }

    /// Starts `argv` as `service` on `node` (its log:
    /// `<node dir>/<service>.log`), records it in the lab state file and
    /// keeps it.
    pub fn spawn(
        &mut self,
        node: &str,
        service: &str,
        argv: Vec<String>,
    ) -> Result<(), StoreError> {
        let env = if self.fake_clock {
            fake_clock::server_env(self.lab, self.lab.node(node)?)?
        } else {
            Vec::new()
        };
        let s = Server::spawn(
            self.lab,
            ServerSpec {
                node: node.to_string(),
                service: service.to_string(),
                argv,
                env,
            },
        )?;
        s.record(self.lab, "running")?;
        self.servers.push(s);
        Ok(())
    }

    /// An error if a server has already exited, with the last line of its
    /// log.
    pub fn check_alive(&mut self) -> Result<(), StoreError> {
        for s in self.servers.iter_mut() {
            if let Some(st) = s.reap() {
                let log = std::fs::read_to_string(&s.log).unwrap_or_default();
                let last = log.lines().rev().find(|l| !l.trim().is_empty());
                let how = match st {
                    WaitStatus::Exited(_, c) => format!("with status {c}"),
                    WaitStatus::Signaled(_, sig, _) => format!("on {sig}"),
                    other => format!("({other:?})"),
                };
                return Err(StoreError::Down(format!(
                    "{} on {} exited {how}{} (its log: nodes/{}/{}.log in the run directory)",
                    s.spec.service,
                    s.spec.node,
                    last.map(|l| format!(": {}", l.trim())).unwrap_or_default(),
                    s.spec.node,
                    s.spec.service,
                )));
            }
        }
        Ok(())
    }

    /// Polls `probe` every 100 ms until it succeeds, a server exits, or
    /// `within` passes (an error naming `what` and the probe's last
    /// complaint).
    pub async fn wait_for<F, Fut>(
        &mut self,
        within: Duration,
        what: &str,
        mut probe: F,
    ) -> Result<(), StoreError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), String>>,
    {
        let t0 = std::time::Instant::now();
        loop {
            self.check_alive()?;
            let last = match probe().await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if t0.elapsed() > within {
                return Err(StoreError::Down(format!(
                    "{what}: not ready within {} s: {last}",
                    within.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Stops every server: SIGCONT, then `signal` to all at once, then SIGKILL
/// to whatever is left after 2 s.
pub fn stop(servers: &mut [Server], signal: Signal) {
    let procs: Vec<_> = servers
        .iter_mut()
        .filter_map(|s| s.process.take())
        .collect();
    for p in &procs {
        p.signal_tree(Signal::SIGCONT);
        p.signal(signal);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    for p in &procs {
        p.wait_gone(deadline.saturating_duration_since(std::time::Instant::now()));
    }
    for p in &procs {
        stop_tree(p, Duration::from_millis(100));
    }
}
