//! `faultline lab`: up, down, status, exec, run (hold a server on a node),
//! echo (a tiny TCP echo server for smoke tests).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use clap::Subcommand;
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;

use crate::Exit;
use crate::cli::fail;
use crate::lab::proc::{ProcId, Server, ServerSpec, reap_children};
use crate::lab::state::{self, ServerState};
use crate::lab::{self, DEFAULT_LAB, Lab, LabError, LabSpec, signals, sys};

/// Arguments of `faultline lab`.
#[derive(Debug, clap::Args)]
pub struct LabArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: LabCommand,
}

/// The `lab` subcommands.
#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Create a lab: N network namespaces (n1..nN) on one bridge; the root
    /// namespace holds the bridge address and is the control node.
    Up {
        /// Number of nodes (1-99).
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Lab name (1-8 lowercase letters or digits).
        #[arg(long, default_value = DEFAULT_LAB)]
        name: String,
        /// Data directory for node logs and data [default: /var/lib/faultline/NAME].
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Stay in the foreground and tear the lab down on Ctrl-C, SIGTERM,
        /// SIGHUP or a panic.
        #[arg(long)]
        foreground: bool,
        /// Testing aid: panic once the lab is up (with --foreground).
        #[arg(long, hide = true)]
        panic_after_up: bool,
    },
    /// Remove a lab: stop its servers, delete namespaces, links and rules.
    Down {
        /// Lab name.
        #[arg(long, default_value = DEFAULT_LAB)]
        name: String,
    },
    /// Show labs, nodes, servers and active faults.
    Status {
        /// Lab name.
        #[arg(long, default_value = DEFAULT_LAB)]
        name: String,
        /// Every lab on this machine (JSON: an array).
        #[arg(long, conflicts_with = "name")]
        all: bool,
        /// JSON: {"name", "nodes": [{"name", "netns", "ip"}], "control_ip", ...}.
        #[arg(long)]
        json: bool,
    },
    /// Run a command inside a node's network namespace (exits with its status).
    Exec {
        /// Lab name.
        #[arg(long, default_value = DEFAULT_LAB)]
        name: String,
        /// Node (n1 or 1).
        node: String,
        /// The command, after `--`.
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// Start a server inside a node and hold it: the server is this
    /// process's child (own process group, output appended to
    /// DIR/NODE/SERVICE.log); `nemesis kill|start|pause|resume` act on it;
    /// Ctrl-C or SIGTERM stops it. With --detach, returns once it runs.
    Run {
        /// Lab name.
        #[arg(long, default_value = DEFAULT_LAB)]
        name: String,
        /// Service name, unique per node [default: the program's name].
        #[arg(long)]
        service: Option<String>,
        /// Hold the server from a background process and return.
        #[arg(long)]
        detach: bool,
        /// Node (n1 or 1).
        node: String,
        /// The server command, after `--`.
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// A tiny TCP echo server (echoes each line back), for smoke tests.
    Echo {
        /// Port to listen on (all addresses).
        #[arg(long, default_value_t = 7000)]
        port: u16,
    },
}

/// Runs `faultline lab`.
pub fn run(args: LabArgs) -> Exit {
    let r = match args.command {
        LabCommand::Up {
            nodes,
            name,
            dir,
            foreground,
            panic_after_up,
        } => up(nodes, name, dir, foreground, panic_after_up),
        LabCommand::Down { name } => down(&name),
        LabCommand::Status { name, all, json } => status((!all).then_some(name.as_str()), json),
        LabCommand::Exec { name, node, cmd } => exec(&name, &node, &cmd),
        LabCommand::Run {
            name,
            service,
            detach,
            node,
            cmd,
        } => {
            if detach {
                run_detached(&name, service, &node, &cmd)
            } else {
                hold(&name, service, &node, &cmd)
            }
        }
        LabCommand::Echo { port } => echo(port),
    };
    match r {
        Ok(e) => e,
        Err(e) => fail(e),
    }
}

fn print_lab(l: &Lab) {
    let s = &l.state;
    println!(
        "lab {}: {} nodes on bridge {} ({}/24), control node {}",
        s.name,
        s.nodes.len(),
        s.bridge,
        s.subnet,
        s.control_ip
    );
    for n in &s.nodes {
        println!("  {:<4} {:<16} netns {}", n.name, n.ip, n.netns);
    }
}

fn up(
    nodes: usize,
    name: String,
    dir: Option<PathBuf>,
    foreground: bool,
    panic_after_up: bool,
) -> Result<Exit, LabError> {
    // Ctrl-C during creation waits until the state is consistent, then
    // tears down.
    let set = signals::block(&signals::TERMINATING);
    let spec = LabSpec {
        name: name.clone(),
        nodes,
        dir,
        owned: foreground,
        client_ns: false,
        remove_dir: false,
    };
    let t0 = Instant::now();
    let l = lab::up(&spec)?;
    let took = t0.elapsed();
    if signals::termination_pending() && !foreground {
        lab::teardown(&name)?;
        return Err(LabError::Command {
            command: "lab up".into(),
            reason: "interrupted; the lab was removed".into(),
        });
    }
    print_lab(&l);
    println!("  up in {:.3} s", took.as_secs_f64());
    if !foreground {
        return Ok(Exit::Valid);
    }
    let n = name.clone();
    signals::on_panic(move || {
        let _ = lab::teardown(&n);
    });
    println!("  holding the lab; Ctrl-C or SIGTERM tears it down");
    let _ = std::io::stdout().flush();
    if panic_after_up {
        panic!("--panic-after-up given");
    }
    let sig = signals::wait(&set);
    eprintln!(
        "faultline: {}: tearing down lab {name}",
        sig.map_or("signal".to_string(), |s| s.to_string())
    );
    signals::clear_on_panic();
    lab::teardown(&name)?;
    Ok(Exit::Valid)
}

fn down(name: &str) -> Result<Exit, LabError> {
    sys::preflight()?;
    lab::validate_name(name)?;
    if state::load(name)?.is_none() {
        return Err(LabError::NoSuchLab(name.to_string()));
    }
    lab::teardown(name)?;
    println!("lab {name} removed");
    Ok(Exit::Valid)
}

fn status_json(l: &lab::LabState) -> serde_json::Value {
    serde_json::json!({
        "name": l.name,
        "subnet": format!("{}/24", l.subnet),
        "control_ip": l.control_ip,
        "bridge": l.bridge,
        "dir": l.dir,
        "owner": l.owner.map(|o| o.pid),
        "stale": l.stale_reason(),
        "nodes": l.nodes.iter().map(|n| serde_json::json!({
            "name": n.name, "netns": n.netns, "ip": n.ip,
        })).collect::<Vec<_>>(),
        "servers": l.servers.iter().map(|s| serde_json::json!({
            "node": s.node, "service": s.service, "status": s.status,
            "pid": s.process.map(|p| p.pid), "holder": s.holder.map(|p| p.pid),
            "argv": s.argv, "log": s.log,
        })).collect::<Vec<_>>(),
        "faults": l.faults,
    })
}

fn status(name: Option<&str>, json: bool) -> Result<Exit, LabError> {
    let labs: Vec<lab::LabState> = match name {
        Some(n) => vec![Lab::open(n)?.state],
        None => {
            let (labs, errs) = state::list();
            for e in errs {
                eprintln!("faultline: warning: {e}");
            }
            labs
        }
    };
    if json {
        let v = if name.is_some() {
            labs.first().map(status_json).unwrap_or_default()
        } else {
            serde_json::Value::Array(labs.iter().map(status_json).collect())
        };
        println!("{v}");
        return Ok(Exit::Valid);
    }
    if labs.is_empty() {
        println!("no labs");
    }
    for s in labs {
        if let Some(r) = s.stale_reason() {
            println!("STALE: {r} (run `faultline clean`)");
        }
        print_lab(&Lab { state: s.clone() });
        for sv in &s.servers {
            println!(
                "  server {} on {}: {} (pid {}) log {}",
                sv.service,
                sv.node,
                sv.status,
                sv.process.map_or("-".into(), |p| p.pid.to_string()),
                sv.log.display()
            );
        }
        for (k, v) in &s.faults {
            println!("  fault {k}: {v}");
        }
    }
    Ok(Exit::Valid)
}

fn exec(name: &str, node: &str, cmd: &[String]) -> Result<Exit, LabError> {
    sys::preflight()?;
    let l = Lab::open(name)?;
    let n = l.node(node)?;
    let mut c = sys::tool("ip")?;
    c.args(["netns", "exec", &n.netns]).args(cmd);
    let st = c.status().map_err(|e| LabError::Command {
        command: cmd.join(" "),
        reason: e.to_string(),
    })?;
    match st.code() {
        Some(0) => Ok(Exit::Valid),
        Some(code) => std::process::exit(code),
        None => std::process::exit(
            128 + std::os::unix::process::ExitStatusExt::signal(&st).unwrap_or(0),
        ),
    }
}

fn service_name(service: Option<String>, cmd: &[String]) -> Result<String, LabError> {
    let s = service.unwrap_or_else(|| {
        cmd.first()
            .and_then(|p| std::path::Path::new(p).file_name())
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| "server".into())
    });
    let ok = !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(s)
    } else {
        Err(LabError::Service {
            node: "-".into(),
            service: s,
            reason: "service names are 1-32 letters, digits, '.', '_' or '-'".into(),
        })
    }
}

fn find_server(name: &str, node: &str, service: &str) -> Option<ServerState> {
    state::load(name)
        .ok()
        .flatten()?
        .servers
        .into_iter()
        .find(|s| s.node == node && s.service == service)
}

fn hold(name: &str, service: Option<String>, node: &str, cmd: &[String]) -> Result<Exit, LabError> {
    let set = signals::block(&[
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGCHLD,
        Signal::SIGUSR1,
    ]);
    sys::preflight()?;
    let l = Lab::open(name)?;
    let n = l.node(node)?.clone();
    let service = service_name(service, cmd)?;
    let me = ProcId::current();
    let log = l.node_dir(&n)?.join(format!("{service}.log"));
    let svc_err = |reason: &str| LabError::Service {
        node: n.name.clone(),
        service: service.clone(),
        reason: reason.to_string(),
    };
    // Register first (so a crash right after the spawn is explained).
    let mut taken = false;
    state::update(name, |s| {
        if let Some(old) = s
            .servers
            .iter()
            .find(|x| x.node == n.name && x.service == service)
            && old.holder.is_some_and(|h| h.is_alive())
        {
            taken = true;
            return;
        }
        s.servers
            .retain(|x| !(x.node == n.name && x.service == service));
        s.servers.push(ServerState {
            node: n.name.clone(),
            service: service.clone(),
            argv: cmd.to_vec(),
            holder: Some(me),
            process: None,
            status: "starting".into(),
            log: log.clone(),
        });
    })?
    .ok_or_else(|| LabError::NoSuchLab(name.to_string()))?;
    if taken {
        return Err(svc_err(
            "already running (choose another --service name, or stop it first)",
        ));
    }
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let forget = |status: Option<&str>| {
        let _ = state::update(name, |s| match status {
            None => s
                .servers
                .retain(|x| !(x.node == n.name && x.service == service)),
            Some(st) => {
                for x in s.servers.iter_mut() {
                    if x.node == n.name && x.service == service {
                        x.status = st.to_string();
                    }
                }
            }
        });
    };
    let spec = ServerSpec {
        node: n.name.clone(),
        service: service.clone(),
        argv: cmd.to_vec(),
    };
    let mut server = match Server::spawn(&l, spec) {
        Ok(s) => s,
        Err(e) => {
            forget(None);
            return Err(e);
        }
    };
    let record = |p: Option<ProcId>, status: &str| {
        let _ = state::update(name, |s| {
            for x in s.servers.iter_mut() {
                if x.node == n.name && x.service == service {
                    x.process = p;
                    x.status = status.to_string();
                }
            }
        });
    };
    record(server.process, "running");
    {
        let (lname, node_name, svc) = (name.to_string(), n.name.clone(), service.clone());
        let pid = server.process;
        signals::on_panic(move || {
            if let Some(p) = pid {
                crate::lab::proc::stop_tree(&p, Duration::from_secs(2));
            }
            let _ = state::update(&lname, |s| {
                s.servers
                    .retain(|x| !(x.node == node_name && x.service == svc))
            });
        });
    }
    eprintln!(
        "faultline: {service} on {} started (pid {}), log {}",
        n.name,
        server.process.map_or(0, |p| p.pid),
        log.display()
    );
    loop {
        let Some(sig) = signals::wait(&set) else {
            continue;
        };
        match sig {
            Signal::SIGCHLD => {
                let server_pid = server.process.map(|p| p.pid);
                for (pid, st) in reap_children() {
                    if Some(pid) != server_pid {
                        continue; // an orphaned grandchild (we are a subreaper)
                    }
                    server.process = None;
                    let now = find_server(name, &n.name, &service);
                    if now.as_ref().is_some_and(|s| s.status == "killed") {
                        record(None, "killed");
                        eprintln!(
                            "faultline: {service} on {} killed by the nemesis; waiting for `nemesis start`",
                            n.name
                        );
                        continue;
                    }
                    forget(None);
                    signals::clear_on_panic();
                    let code = match st {
                        WaitStatus::Exited(_, c) => c,
                        WaitStatus::Signaled(_, s, _) => 128 + s as i32,
                        _ => 0,
                    };
                    eprintln!("faultline: {service} on {} exited ({code})", n.name);
                    std::process::exit(code);
                }
            }
            Signal::SIGUSR1 => {
                if server.process.is_none() {
                    match server.restart(&l) {
                        Ok(()) => {
                            record(server.process, "running");
                            let pid = server.process;
                            let (lname, node_name, svc) =
                                (name.to_string(), n.name.clone(), service.clone());
                            signals::on_panic(move || {
                                if let Some(p) = pid {
                                    crate::lab::proc::stop_tree(&p, Duration::from_secs(2));
                                }
                                let _ = state::update(&lname, |s| {
                                    s.servers
                                        .retain(|x| !(x.node == node_name && x.service == svc))
                                });
                            });
                            eprintln!(
                                "faultline: {service} on {} started again (pid {})",
                                n.name,
                                server.process.map_or(0, |p| p.pid)
                            );
                        }
                        Err(e) => {
                            forget(Some("exited"));
                            eprintln!("faultline: error: {e}");
                        }
                    }
                }
            }
            _ => {
                eprintln!("faultline: {sig}: stopping {service} on {}", n.name);
                server.stop(Duration::from_secs(5));
                // Orphaned grandchildren were reparented to us: reap them.
                let _ = reap_children();
                forget(None);
                signals::clear_on_panic();
                return Ok(Exit::Valid);
            }
        }
    }
}

fn run_detached(
    name: &str,
    service: Option<String>,
    node: &str,
    cmd: &[String],
) -> Result<Exit, LabError> {
    sys::preflight()?;
    let l = Lab::open(name)?;
    let n = l.node(node)?.clone();
    let service = service_name(service, cmd)?;
    let exe =
        std::env::current_exe().map_err(|e| LabError::io("finding the faultline binary", e))?;
    let holder_log = l.node_dir(&n)?.join(format!("{service}.holder.log"));
    let logf = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&holder_log)
        .map_err(|e| LabError::io(format!("opening {}", holder_log.display()), e))?;
    let logf2 = logf
        .try_clone()
        .map_err(|e| LabError::io(format!("opening {}", holder_log.display()), e))?;
    let mut c = std::process::Command::new(exe);
    c.args([
        "lab",
        "run",
        "--name",
        name,
        "--service",
        &service,
        &n.name,
        "--",
    ])
    .args(cmd)
    .stdin(Stdio::null())
    .stdout(logf)
    .stderr(logf2);
    // SAFETY: setsid(2) is async-signal-safe.
    unsafe {
        c.pre_exec(|| {
            nix::unistd::setsid()
                .map(|_| ())
                .map_err(std::io::Error::from)
        });
    }
    let mut child = c
        .spawn()
        .map_err(|e| LabError::io("starting the holder", e))?;
    let t0 = Instant::now();
    loop {
        if let Some(s) = find_server(name, &n.name, &service)
            && s.holder.map(|h| h.pid) == Some(child.id() as i32)
            && s.status == "running"
            && let Some(p) = s.process
        {
            println!(
                "{service} on {} running: pid {} (held by faultline pid {}), log {}",
                n.name,
                p.pid,
                child.id(),
                s.log.display()
            );
            return Ok(Exit::Valid);
        }
        if let Ok(Some(st)) = child.try_wait() {
            let last = std::fs::read_to_string(&holder_log)
                .ok()
                .and_then(|t| t.lines().last().map(str::to_string))
                .unwrap_or_default();
            return Err(LabError::Service {
                node: n.name.clone(),
                service,
                reason: format!("holder exited ({st}): {last}"),
            });
        }
        if t0.elapsed() > Duration::from_secs(10) {
            return Err(LabError::Service {
                node: n.name.clone(),
                service,
                reason: format!("not running after 10 s; see {}", holder_log.display()),
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn echo(port: u16) -> Result<Exit, LabError> {
    let l = TcpListener::bind(("0.0.0.0", port))
        .map_err(|e| LabError::io(format!("listening on port {port}"), e))?;
    for conn in l.incoming() {
        let Ok(s) = conn else { continue };
        std::thread::spawn(move || echo_conn(s));
    }
    Ok(Exit::Valid)
}

fn echo_conn(s: TcpStream) {
    let Ok(mut w) = s.try_clone() else { return };
    let r = BufReader::new(s);
    for line in r.lines() {
        let Ok(line) = line else { return };
        if writeln!(w, "{line}").is_err() {
            return;
        }
    }
}
