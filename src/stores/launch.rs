//! What a store needs to start: the programs found by its install check
//! ([`Programs`], from a [`Needs`] on remote hosts), and a [`Launch`] that
//! spawns servers on the nodes, notices a server that exits, waits for
//! readiness and stops everything. The nodes are the lab's namespaces (each
//! server recorded in the lab state file, its log under the node's
//! directory) or remote hosts over SSH ([`Launch::on_hosts`]: the same
//! store code, the hosts' own binaries, each server recorded in the run's
//! remote state file). A store's `start` and `ready` use only
//! [`Launch::nodes`], [`Launch::node_dir`], [`Launch::create_dir`],
//! [`Launch::write_file`], [`Launch::spawn`] and [`Launch::wait_for`], so
//! they run unchanged on both; a step only the lab can do goes through
//! [`Launch::lab`] (an error on remote hosts).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;

use super::{Cluster, StoreError};
use crate::lab::proc::{Server, ServerSpec, stop_tree};
use crate::lab::sys::find_tool;
use crate::lab::{Lab, fake_clock};
use crate::remote::Remote;

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

    /// Programs found elsewhere (on remote hosts), by name.
    pub fn from_paths(found: BTreeMap<&'static str, PathBuf>) -> Programs {
        Programs(found)
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

/// The programs a store's servers run, by name: what a remote run looks
/// for on every host ([`Store::needs`](super::Store::needs)), and what the
/// lab's install check finds here ([`Needs::find_here`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// The `--db` name (in errors).
    pub db: &'static str,
    /// The programs, by name.
    pub programs: Vec<&'static str>,
    /// `--db-opt bindir=DIR`: look only there.
    pub bindir: Option<PathBuf>,
    /// Without `bindir`, where to look for a program not on the PATH:
    /// (program, full path).
    pub also: Vec<(&'static str, PathBuf)>,
    /// The install command named in errors.
    pub install: &'static str,
}

impl Needs {
    /// Finds the programs on this machine (the lab's install check).
    pub fn find_here(&self) -> Result<Programs, StoreError> {
        let mut p = Programs::find(
            self.db,
            self.bindir.as_deref(),
            &self
                .programs
                .iter()
                .copied()
                .filter(|n| !self.also.iter().any(|(a, _)| a == n))
                .collect::<Vec<_>>(),
            self.install,
        )?;
        for (name, path) in &self.also {
            p.0.insert(name, path.clone());
        }
        Ok(p)
    }
}

/// A node as a store's start sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaunchNode {
    /// `n1`, `n2`, …
    pub name: String,
    /// Where the other nodes and the clients reach it.
    pub ip: Ipv4Addr,
}

/// Where a launch starts its servers.
#[derive(Clone, Copy)]
enum Place<'a> {
    Lab(&'a Lab),
    Hosts(&'a Remote),
}

/// A store being started: where (the lab, or remote hosts), the programs
/// found, the run directory and the servers started so far. On an error
/// the runner stops them.
pub struct Launch<'a> {
    place: Place<'a>,
    /// What the install check found.
    pub programs: &'a Programs,
    /// The run directory.
    pub run_dir: &'a Path,
    /// The servers started so far.
    pub servers: Vec<Server>,
    /// Start every server with a faked clock (clock faults are scheduled).
    pub fake_clock: bool,
    /// On remote hosts: when the servers' liveness was last checked.
    checked: Option<Instant>,
}

impl<'a> Launch<'a> {
    /// A launch with no server yet.
    pub fn new(lab: &'a Lab, programs: &'a Programs, run_dir: &'a Path) -> Launch<'a> {
        Launch {
            place: Place::Lab(lab),
            programs,
            run_dir,
            servers: Vec::new(),
            fake_clock: false,
            checked: None,
        }
    }

    /// A launch on remote hosts: the servers run there over SSH, with the
    /// hosts' own `programs` ([`Remote::spawn`]).
    pub fn on_hosts(remote: &'a Remote, programs: &'a Programs, run_dir: &'a Path) -> Launch<'a> {
        Launch {
            place: Place::Hosts(remote),
            programs,
            run_dir,
            servers: Vec::new(),
            fake_clock: false,
            checked: None,
        }
    }

    /// The lab, for a step only the lab can do (running a program on the
    /// lab's filesystem, as another user); an error on remote hosts.
    pub fn lab(&self) -> Result<&'a Lab, StoreError> {
        match self.place {
            Place::Lab(l) => Ok(l),
            Place::Hosts(_) => Err(StoreError::Down(
                "this store has a step only the lab can do: it cannot be started on remote hosts"
                    .into(),
            )),
        }
    }

    /// The nodes, in order.
    pub fn nodes(&self) -> Vec<LaunchNode> {
        match self.place {
            Place::Lab(l) => l
                .nodes()
                .iter()
                .map(|n| LaunchNode {
                    name: n.name.clone(),
                    ip: n.ip,
                })
                .collect(),
            Place::Hosts(r) => r
                .nodes()
                .into_iter()
                .map(|(name, ip)| LaunchNode { name, ip })
                .collect(),
        }
    }

    /// A name for this set of nodes (the lab's; `remote` on hosts), for
    /// cluster tokens.
    pub fn name(&self) -> &str {
        match self.place {
            Place::Lab(l) => l.name(),
            Place::Hosts(_) => "remote",
        }
    }

    /// The directory of `node`'s servers (data, configs, logs): under the
    /// lab's directory, or faultline's directory on the host.
    pub fn node_dir(&self, node: &str) -> Result<PathBuf, StoreError> {
        match self.place {
            Place::Lab(l) => Ok(l.node_dir(l.node(node)?)?),
            Place::Hosts(r) => Ok(PathBuf::from(r.node_dir(node))),
        }
    }

    /// Creates `dir` (and its parents) on `node`.
    pub async fn create_dir(&self, node: &str, dir: &Path) -> Result<(), StoreError> {
        match self.place {
            Place::Lab(_) => std::fs::create_dir_all(dir)
                .map_err(StoreError::io(format!("creating {}", dir.display()))),
            Place::Hosts(r) => Ok(r.create_dir(node, &dir.display().to_string()).await?),
        }
    }

    /// Writes `text` to `path` on `node` (a config file).
    pub async fn write_file(&self, node: &str, path: &Path, text: &str) -> Result<(), StoreError> {
        match self.place {
            Place::Lab(_) => std::fs::write(path, text)
                .map_err(StoreError::io(format!("writing {}", path.display()))),
            Place::Hosts(r) => Ok(r
                .write_file(node, &path.display().to_string(), text.as_bytes())
                .await?),
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
        Arc::new(match self.place {
            Place::Lab(l) => Cluster::of(l, self.run_dir.to_path_buf()),
            Place::Hosts(r) => Cluster::of_endpoints(
                r.nodes().into_iter().map(|(n, ip)| (n, ip, None)).collect(),
                None,
                self.run_dir.to_path_buf(),
            ),
        })
    }

    /// The path of a program the install check found.
    pub fn program(&self, name: &str) -> Result<&'a Path, StoreError> {
        self.programs.get(name)
    }

    /// Starts `argv` as `service` on `node` (its log:
    /// `<node dir>/<service>.log`), records it (in the lab state file, or
    /// the remote run's) and keeps it.
    pub async fn spawn(
        &mut self,
        node: &str,
        service: &str,
        argv: Vec<String>,
    ) -> Result<(), StoreError> {
        let lab = match self.place {
            Place::Lab(l) => l,
            Place::Hosts(r) => {
                let env = match self.fake_clock {
                    true => r.clock_env(node).await?,
                    false => Vec::new(),
                };
                return Ok(r.spawn(node, service, &argv, &env).await?);
            }
        };
        let env = if self.fake_clock {
            fake_clock::server_env(lab, lab.node(node)?)?
        } else {
            Vec::new()
        };
        let s = Server::spawn(
            lab,
            ServerSpec {
                node: node.to_string(),
                service: service.to_string(),
                argv,
                env,
            },
        )?;
        s.record(lab, "running")?;
        self.servers.push(s);
        Ok(())
    }

    /// An error if a server has already exited, with the last line of its
    /// log (on remote hosts, checked over SSH at most once a second).
    pub async fn check_alive(&mut self) -> Result<(), StoreError> {
        if let Place::Hosts(r) = self.place {
            if self
                .checked
                .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
            {
                return Ok(());
            }
            self.checked = Some(Instant::now());
            return Ok(r.check_alive().await?);
        }
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
        let t0 = Instant::now();
        loop {
            self.check_alive().await?;
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
