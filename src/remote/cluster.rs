//! The hosts of one remote run, connected: the faults the runner asks for,
//! carried out on every host at once, each recorded in the run's local
//! state file before it touches a host.

use std::collections::BTreeMap;
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
    pub(super) hosts: Vec<Host>,
    pub(super) state: Mutex<RemoteState>,
    /// Faked clocks (clock faults).
    pub(super) clocks: Mutex<super::clock::Clocks>,
    /// Per node, the interfaces to the other nodes and the peers behind
    /// each (delay faults; found by [`Remote::probe_delay`]).
    pub(super) routes: Mutex<BTreeMap<String, BTreeMap<String, Vec<Ipv4Addr>>>>,
}

/// The script that finds programs on a host: three lines per program on
/// its stdin (name, bindir, another path; either may be empty), one `found
/// NAME PATH` a line out.
const FIND_PROGRAMS: &str = r#"while read -r name && read -r dir && read -r also; do
  if [ -n "$dir" ]; then p="$dir/$name"; [ -f "$p" ] && [ -x "$p" ] || p=
  else
    p=$(command -v -- "$name" 2>/dev/null); case "$p" in /*) ;; *) p= ;; esac
    [ -z "$p" ] && [ -n "$also" ] && [ -f "$also" ] && [ -x "$also" ] && p=$also
  fi
  if [ -n "$p" ]; then echo "found $name $p"; fi
done
"#;

/// The start script of a server on a host: in its directory `dir`, record
/// the shell's PID (the server's once it `exec`s) and replace the shell by
/// `argv` with `env`, output appended to `<service>.log`.
pub fn start_script(dir: &str, service: &str, argv: &[String], env: &[(String, String)]) -> String {
    let env: Vec<String> = env
        .iter()
        .map(|(k, v)| format!("{k}={} ", sh_quote(v)))
        .collect();
    let argv: Vec<String> = argv.iter().map(|a| sh_quote(a)).collect();
    format!(
        "cd {q} || exit 1\necho $$ > {pid}\n{env}exec {argv} >> {log} 2>&1\n",
        q = sh_quote(dir),
        pid = sh_quote(&format!("{dir}/{service}.pid")),
        log = sh_quote(&format!("{dir}/{service}.log")),
        env = if env.is_empty() {
            String::new()
        } else {
            format!("export {}; ", env.join("").trim_end())
        },
        argv = argv.join(" "),
    )
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
            service: None,
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
            clocks: Default::default(),
            routes: Default::default(),
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
    pub(super) fn touch(&self, nodes: &[String], f: impl Fn(&mut Touched)) -> Result<()> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for n in nodes {
            f(s.touched.entry(n.clone()).or_default());
        }
        s.save()
    }

    pub(super) fn resolve(&self, nodes: &[String]) -> Result<Vec<&Host>> {
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

    pub(super) fn names(&self) -> Vec<String> {
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

    /// faultline's directory for `node`'s servers on its host:
    /// `<store dir>/<node>`.
    pub fn node_dir(&self, node: &str) -> String {
        format!("{}/{node}", self.store_dir())
    }

    /// The host of `node`.
    pub(super) fn host(&self, node: &str) -> Result<&Host> {
        Ok(self.resolve(&[node.to_string()])?[0])
    }

    /// Records that faultline creates its directory on the hosts (before
    /// anything is created there, so `clean --hosts` removes it).
    fn record_store_dir(&self) -> Result<()> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.store_dir.is_none() {
            s.store_dir = Some(format!("/tmp/faultline-{}", s.id));
            s.save()?;
        }
        Ok(())
    }

    /// Creates `dir` (and its parents) on `node`'s host.
    pub async fn create_dir(&self, node: &str, dir: &str) -> Result<()> {
        let h = self.host(node)?;
        self.record_store_dir()?;
        h.run(
            &format!("creating {dir}"),
            &format!("mkdir -p {}", sh_quote(dir)),
        )
        .await
        .map(drop)
    }

    /// Writes `bytes` to `path` on `node`'s host (its directory created).
    pub async fn write_file(&self, node: &str, path: &str, bytes: &[u8]) -> Result<()> {
        if let Some((dir, _)) = path.rsplit_once('/')
            && !dir.is_empty()
        {
            self.create_dir(node, dir).await?;
        }
        self.host(node)?.write_file(path, bytes).await
    }

    /// Finds `programs` on every host: in `bindir` when given, else on the
    /// SSH user's PATH (with the sbin directories), else at the path `also`
    /// gives for it. Every host must have each at the same path (the hosts
    /// get the same command lines); an error names the host, the program
    /// and `install`.
    pub async fn find_programs(
        &self,
        db: &str,
        programs: &[&'static str],
        bindir: Option<&std::path::Path>,
        also: &[(&'static str, std::path::PathBuf)],
        install: &str,
    ) -> Result<std::collections::BTreeMap<&'static str, std::path::PathBuf>> {
        let input: String = programs
            .iter()
            .map(|p| {
                let extra = also
                    .iter()
                    .find(|(n, _)| n == p)
                    .map(|(_, a)| a.display().to_string())
                    .unwrap_or_default();
                let dir = bindir.map(|d| d.display().to_string()).unwrap_or_default();
                format!("{p}\n{dir}\n{extra}\n")
            })
            .collect();
        let found = join_all(self.hosts.iter().map(|h| {
            h.run_with_input(
                "finding the store's programs",
                FIND_PROGRAMS,
                input.as_bytes(),
            )
        }))
        .await;
        let mut out: std::collections::BTreeMap<&'static str, std::path::PathBuf> =
            Default::default();
        for (h, text) in self.hosts.iter().zip(found) {
            let text = text?;
            for p in programs {
                let path = text.lines().find_map(|l| {
                    let mut w = l.splitn(3, ' ');
                    (w.next() == Some("found") && w.next() == Some(*p))
                        .then(|| w.next().map(std::path::PathBuf::from))
                        .flatten()
                });
                let Some(path) = path else {
                    return Err(RemoteError::Command {
                        host: format!("{} ({})", h.spec.name, h.spec.destination),
                        what: format!("--db {db}"),
                        reason: format!(
                            "`{p}` not found on the host ({}); install it there with: {install}",
                            match bindir {
                                Some(d) => format!("looked in {}", d.display()),
                                None => "looked on the PATH".into(),
                            }
                        ),
                    });
                };
                match out.get(p) {
                    Some(first) if *first != path => {
                        return Err(RemoteError::Command {
                            host: format!("{} ({})", h.spec.name, h.spec.destination),
                            what: format!("--db {db}"),
                            reason: format!(
                                "`{p}` is {} here but {} on {}: every host gets the same command line (give --db-opt bindir=DIR)",
                                path.display(),
                                first.display(),
                                self.hosts[0].spec.name
                            ),
                        });
                    }
                    Some(_) => {}
                    None => {
                        out.insert(p, path);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Starts `argv` (with `env`) as `service` on `node`'s host, in a
    /// session of its own, from `<node dir>/start.sh`, written there first:
    /// the script records the server's PID in `<service>.pid` and appends
    /// its output to `<service>.log`. From then on kill and pause act on
    /// this server, and a killed one starts again from the same script. One
    /// server per host.
    pub async fn spawn(
        &self,
        node: &str,
        service: &str,
        argv: &[String],
        env: &[(String, String)],
    ) -> Result<()> {
        let h = self.host(node)?;
        let dir = self.store_dir();
        let spec = ProcessSpec {
            find: Find::Pidfile(format!("{dir}/{{node}}/{service}.pid")),
            start: Some(format!("sh {dir}/{{node}}/start.sh")),
        };
        {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let again = s.touched.get(node).is_some_and(|t| t.started);
            if let Some(other) = s.service.as_ref().filter(|o| *o != service || again) {
                return Err(RemoteError::Fault(format!(
                    "{node}: faultline starts one server per host over SSH, and this store starts {other} and {service} there"
                )));
            }
            s.processes = Some(spec.clone());
            s.store_dir = Some(dir.clone());
            s.service = Some(service.to_string());
            s.touched.entry(node.to_string()).or_default().started = true;
            s.save()?;
        }
        let d = self.node_dir(node);
        let script = start_script(&d, service, argv, env);
        h.run(
            "creating the store's directory",
            &format!("mkdir -p {}", sh_quote(&d)),
        )
        .await?;
        h.write_file(&format!("{d}/start.sh"), script.as_bytes())
            .await?;
        processes::start(h, &spec).await
    }

    /// An error naming the first host whose server (started by
    /// [`Remote::spawn`]) is no longer running, with the last line of its
    /// log.
    pub async fn check_alive(&self) -> Result<()> {
        let s = self.state();
        let (Some(spec), Some(service)) = (s.processes, s.service) else {
            return Ok(());
        };
        let started: Vec<&Host> = self
            .hosts
            .iter()
            .filter(|h| s.touched.get(&h.spec.name).is_some_and(|t| t.started))
            .collect();
        let found = join_all(started.iter().map(|h| processes::find(h, &spec))).await;
        for (h, pids) in started.into_iter().zip(found) {
            if !pids?.is_empty() {
                continue;
            }
            let log = format!("{}/{service}.log", self.node_dir(&h.spec.name));
            let last = h
                .run(
                    "reading the store's log",
                    &format!(
                        "grep -v '^[[:space:]]*$' {} 2>/dev/null | tail -n 1",
                        sh_quote(&log)
                    ),
                )
                .await
                .unwrap_or_default();
            return Err(RemoteError::Fault(format!(
                "{service} on {} ({}) exited{} (its log: {log} on the host)",
                h.spec.name,
                h.spec.destination,
                match last.trim() {
                    "" => String::new(),
                    l => format!(": {l}"),
                }
            )));
        }
        Ok(())
    }

    /// Stops the servers [`Remote::spawn`] started, copies their logs to
    /// `<run dir>/nodes/<node>/<service>.log` and removes faultline's
    /// directory from the hosts. Nothing if faultline started none.
    pub async fn stop_store(&self, run_dir: &std::path::Path) -> Result<()> {
        let s = self.state();
        let Some(dir) = s.store_dir else {
            return Ok(());
        };
        let (spec, service) = match (s.processes, s.service) {
            (Some(p), Some(s)) => (Some(p), s),
            _ => (None, String::new()),
        };
        let spec = &spec;
        let dir = &dir;
        let service = &service;
        let r = first_err(
            join_all(self.hosts.iter().map(|h| async move {
                if let Some(spec) = spec {
                    processes::stop(h, spec).await?;
                }
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
            self.forget_clocks();
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
        let mut first = self.heal_clocks().await.err();
        if let Err(e) = self.heal_delay(&self.names()).await {
            first.get_or_insert(e);
        }
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
        if let Err(e) = self.remove_clocks().await {
            first.get_or_insert(e);
        }
        let state = self.state();
        match first {
            None => state.remove(),
            Some(e) => Err(e),
        }
    }
}
