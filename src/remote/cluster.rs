//! The hosts of one remote run, connected: the faults the runner asks for,
//! carried out on every host at once, each recorded in the run's local
//! state file before it touches a host.

use std::net::Ipv4Addr;
use std::sync::Mutex;

use futures_util::future::join_all;

use super::firewall::{self, CHAIN_LOSS, CHAIN_PARTITION};
use super::host::{self, Host};
use super::hosts::{Find, Hosts, ProcessSpec};
use super::processes;
use super::state::{RemoteState, Touched, VERSION};
use super::{RemoteError, Result, sh_quote};
use crate::lab::ProcId;
use crate::nemesis::grudge::{self, Grudge};

/// A remote run's hosts, connected, with faultline's chains installed.
#[derive(Debug)]
pub struct Remote {
    hosts: Vec<Host>,
    state: Mutex<RemoteState>,
}

/// The first error of `results`, if any.
fn first_err<T>(results: Vec<Result<T>>) -> Result<Vec<T>> {
    results.into_iter().collect()
}

impl Remote {
    /// Connects to every host (all at once), records the run in a local
    /// state file, and creates faultline's (empty) chains on each host. On
    /// an error, what was done is undone and the first error returned.
    pub async fn connect(spec: Hosts, processes: Option<ProcessSpec>) -> Result<Remote> {
        host::check_options(&spec.ssh)?;
        let owner = ProcId::current();
        let state = RemoteState {
            version: VERSION,
            id: format!("run-{}-{}", owner.pid, owner.start),
            owner,
            hosts: spec.clone(),
            processes,
            touched: Default::default(),
            store_dir: None,
        };
        let control_dir = std::env::temp_dir();
        let connected = join_all(
            spec.hosts
                .iter()
                .map(|h| Host::connect(h, &spec.ssh, &control_dir)),
        )
        .await;
        let mut hosts = Vec::new();
        let mut error = None;
        for c in connected {
            match c {
                Ok(h) => hosts.push(h),
                Err(e) => {
                    error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = error {
            for h in hosts {
                h.close().await;
            }
            return Err(e);
        }
        let remote = Remote {
            hosts,
            state: Mutex::new(state),
        };
        let names: Vec<String> = remote.hosts.iter().map(|h| h.spec.name.clone()).collect();
        let installed = async {
            remote.touch(&names, |t| t.chains = true)?;
            first_err(join_all(remote.hosts.iter().map(firewall::install)).await)
        }
        .await;
        if let Err(e) = installed {
            let _ = remote.close().await;
            for h in remote.hosts {
                h.close().await;
            }
            return Err(e);
        }
        Ok(remote)
    }

    /// The hosts, in node order.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// Node names and addresses, in order.
    pub fn nodes(&self) -> Vec<(String, Ipv4Addr)> {
        self.hosts
            .iter()
            .map(|h| (h.spec.name.clone(), h.spec.address))
            .collect()
    }

    /// The recorded state (a copy).
    pub fn state(&self) -> RemoteState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records `f` for the `nodes` in the state file (before acting).
    fn touch(&self, nodes: &[String], f: impl Fn(&mut Touched)) -> Result<()> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for n in nodes {
            f(s.touched.entry(n.clone()).or_default());
        }
        s.save()
    }

    fn resolve(&self, nodes: &[String]) -> Result<Vec<&Host>> {
        nodes
            .iter()
            .map(|n| {
                self.hosts
                    .iter()
                    .find(|h| &h.spec.name == n)
                    .ok_or_else(|| {
                        RemoteError::Fault(format!(
                            "no host is node {n} (nodes: {})",
                            self.names().join(", ")
                        ))
                    })
            })
            .collect()
    }

    fn names(&self) -> Vec<String> {
        self.hosts.iter().map(|h| h.spec.name.clone()).collect()
    }

    fn processes(&self, what: &str) -> Result<ProcessSpec> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .processes
            .clone()
            .ok_or_else(|| {
                RemoteError::Fault(format!(
                    "{what} on remote hosts needs --db-opt pidfile=PATH or pattern=REGEX (how to find the store's server)"
                ))
            })
    }

    /// The directory on the hosts where faultline starts the store:
    /// `/tmp/faultline-<run>`, one subdirectory per node.
    pub fn store_dir(&self) -> String {
        format!("/tmp/faultline-{}", self.state().id)
    }

    /// Starts the store on every host: `commands[i]` on host `i` (from
    /// `<store dir>/<node>/start.sh`, written there first, which records
    /// the server's PID in `<service>.pid` and appends its output to
    /// `<service>.log`). From then on kill and pause act on these servers.
    pub async fn start_store(&self, service: &str, commands: &[Vec<String>]) -> Result<()> {
        let dir = self.store_dir();
        let spec = ProcessSpec {
            find: Find::Pidfile(format!("{dir}/{{node}}/{service}.pid")),
            start: Some(format!("sh {dir}/{{node}}/start.sh")),
        };
        {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            s.processes = Some(spec.clone());
            s.store_dir = Some(dir.clone());
            for h in &self.hosts {
                s.touched.entry(h.spec.name.clone()).or_default().started = true;
            }
            s.save()?;
        }
        let spec = &spec;
        first_err(
            join_all(self.hosts.iter().zip(commands).map(|(h, argv)| {
                let d = format!("{dir}/{}", h.spec.name);
                let argv: Vec<String> = argv.iter().map(|a| sh_quote(a)).collect();
                let script = format!(
                    "cd {q} || exit 1\necho $$ > {pid}\nexec {argv} >> {log} 2>&1\n",
                    q = sh_quote(&d),
                    pid = sh_quote(&format!("{d}/{service}.pid")),
                    log = sh_quote(&format!("{d}/{service}.log")),
                    argv = argv.join(" "),
                );
                async move {
                    h.run(
                        "creating the store's directory",
                        &format!("mkdir -p {}", sh_quote(&d)),
                    )
                    .await?;
                    h.write_file(&format!("{d}/start.sh"), script.as_bytes())
                        .await?;
                    processes::start(h, spec).await
                }
            }))
            .await,
        )
        .map(drop)
    }

    /// Stops the servers [`Remote::start_store`] started, copies their logs
    /// to `<run dir>/nodes/<node>/<service>.log` and removes their
    /// directory from the hosts. Nothing if faultline started none.
    pub async fn stop_store(&self, service: &str, run_dir: &std::path::Path) -> Result<()> {
        let s = self.state();
        let (Some(dir), Some(spec)) = (s.store_dir, s.processes) else {
            return Ok(());
        };
        let spec = &spec;
        let dir = &dir;
        let r = first_err(
            join_all(self.hosts.iter().map(|h| async move {
                processes::stop(h, spec).await?;
                let d = format!("{dir}/{}", h.spec.name);
                let log = h
                    .run(
                        "reading the store's log",
                        &format!(
                            "cat {} 2>/dev/null || true",
                            sh_quote(&format!("{d}/{service}.log"))
                        ),
                    )
                    .await?;
                let to = run_dir.join("nodes").join(&h.spec.name);
                let _ = std::fs::create_dir_all(&to);
                let _ = std::fs::write(to.join(format!("{service}.log")), log);
                h.run(
                    "removing the store's directory",
                    &format!(
                        "rm -rf {}; rmdir {} 2>/dev/null || true",
                        sh_quote(&d),
                        sh_quote(dir)
                    ),
                )
                .await
                .map(drop)
            }))
            .await,
        );
        if r.is_ok() {
            let names = self.names();
            self.touch(&names, |t| {
                t.started = false;
                t.killed = false;
                t.paused = false;
            })?;
        }
        r.map(drop)
    }

    /// Replaces the partition with `g` on every host (validated first, so
    /// an invalid grudge changes nothing).
    pub async fn partition(&self, g: &Grudge) -> Result<()> {
        grudge::validate(g, &self.names()).map_err(|e| RemoteError::Fault(e.to_string()))?;
        let ip_of = |name: &str| {
            self.hosts
                .iter()
                .find(|h| h.spec.name == name)
                .map(|h| h.spec.address)
        };
        first_err(
            join_all(self.hosts.iter().map(|h| {
                let from: Vec<Ipv4Addr> = g
                    .get(&h.spec.name)
                    .into_iter()
                    .flatten()
                    .filter_map(|n| ip_of(n))
                    .collect();
                async move {
                    firewall::set_chain(h, CHAIN_PARTITION, &firewall::drop_rules(&from)).await
                }
            }))
            .await,
        )
        .map(drop)
    }

    /// Drops `percent`% of the packets the `nodes` get from the other nodes.
    pub async fn loss(&self, nodes: &[String], percent: f64) -> Result<()> {
        if !(percent > 0.0 && percent <= 100.0) {
            return Err(RemoteError::Fault(format!(
                "invalid loss {percent}%: use a number above 0 and at most 100"
            )));
        }
        let targets = self.resolve(nodes)?;
        first_err(
            join_all(targets.into_iter().map(|h| {
                let peers: Vec<Ipv4Addr> = self
                    .hosts
                    .iter()
                    .filter(|o| o.spec.name != h.spec.name)
                    .map(|o| o.spec.address)
                    .collect();
                async move {
                    firewall::set_chain(h, CHAIN_LOSS, &firewall::loss_rules(&peers, percent)).await
                }
            }))
            .await,
        )
        .map(drop)
    }

    /// Empties `chain` on every host.
    pub async fn heal_chain(&self, chain: &str) -> Result<()> {
        first_err(join_all(self.hosts.iter().map(|h| firewall::flush(h, chain))).await).map(drop)
    }

    /// SIGKILLs the store's processes on `nodes`; they stay down until
    /// [`Remote::start`].
    pub async fn kill(&self, nodes: &[String]) -> Result<()> {
        let spec = self.processes("kill")?;
        if spec.start.is_none() {
            return Err(RemoteError::Fault(
                "kill on remote hosts needs --db-opt start=COMMAND (how to start the server again)"
                    .into(),
            ));
        }
        let targets = self.resolve(nodes)?;
        self.touch(nodes, |t| t.killed = true)?;
        first_err(join_all(targets.into_iter().map(|h| processes::kill(h, &spec))).await).map(drop)
    }

    /// Starts the store's server on `nodes` where it does not run.
    pub async fn start(&self, nodes: &[String]) -> Result<()> {
        let spec = self.processes("start")?;
        let targets = self.resolve(nodes)?;
        first_err(join_all(targets.into_iter().map(|h| processes::start(h, &spec))).await)?;
        self.touch(nodes, |t| t.killed = false)
    }

    /// SIGSTOPs the store's processes on `nodes`.
    pub async fn pause(&self, nodes: &[String]) -> Result<()> {
        let spec = self.processes("pause")?;
        let targets = self.resolve(nodes)?;
        self.touch(nodes, |t| t.paused = true)?;
        first_err(
            join_all(
                targets
                    .into_iter()
                    .map(|h| processes::signal(h, &spec, "STOP")),
            )
            .await,
        )
        .map(drop)
    }

    /// SIGCONTs the store's processes on `nodes`.
    pub async fn resume(&self, nodes: &[String]) -> Result<()> {
        let spec = self.processes("resume")?;
        let targets = self.resolve(nodes)?;
        first_err(
            join_all(
                targets
                    .into_iter()
                    .map(|h| processes::signal(h, &spec, "CONT")),
            )
            .await,
        )?;
        self.touch(nodes, |t| t.paused = false)
    }

    /// Heals everything the run may have done: empties both chains, resumes
    /// paused and starts killed servers. Every step is tried; the first
    /// error is returned.
    pub async fn heal(&self) -> Result<()> {
        let mut first = None;
        for chain in [CHAIN_PARTITION, CHAIN_LOSS] {
            if let Err(e) = self.heal_chain(chain).await {
                first.get_or_insert(e);
            }
        }
        let touched = self.state().touched;
        let paused: Vec<String> = touched
            .iter()
            .filter(|(_, t)| t.paused)
            .map(|(n, _)| n.clone())
            .collect();
        let killed: Vec<String> = touched
            .iter()
            .filter(|(_, t)| t.killed)
            .map(|(n, _)| n.clone())
            .collect();
        if !paused.is_empty()
            && let Err(e) = self.resume(&paused).await
        {
            first.get_or_insert(e);
        }
        if !killed.is_empty()
            && let Err(e) = self.start(&killed).await
        {
            first.get_or_insert(e);
        }
        first.map_or(Ok(()), Err)
    }

    /// Ends the run on the hosts: heals, removes faultline's chains and
    /// removes the state file (kept if something could not be undone, for
    /// `faultline clean --hosts`). The connections close when the `Remote`
    /// is dropped.
    pub async fn close(&self) -> Result<()> {
        let mut first = self.heal().await.err();
        for r in join_all(self.hosts.iter().map(firewall::remove)).await {
            if let Err(e) = r {
                first.get_or_insert(e);
            }
        }
        let state = self.state();
        match first {
            None => state.remove(),
            Some(e) => Err(e),
        }
    }
}
