//! `faultline lab`: up, down, status, exec, run (hold a server on a node),
//! echo (a tiny TCP echo server for smoke tests).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::Instant;

use clap::Subcommand;

use crate::Exit;
use crate::cli::fail;
use crate::lab::state;
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
        /// Start the server with libfaketime preloaded, its wall clock read
        /// from the node's timestamp file, so `faultline nemesis clock` can
        /// move it.
        #[arg(long)]
        fake_clock: bool,
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
            fake_clock,
            node,
            cmd,
        } => {
            if detach {
                lab::hold::start_detached(&name, service, &node, &cmd, fake_clock)
                    .map(|()| Exit::Valid)
            } else {
                lab::hold::hold(&name, service, &node, &cmd, fake_clock).map(|()| Exit::Valid)
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
    let Some((program, args)) = cmd.split_first() else {
        return Err(LabError::Command {
            command: "lab exec".into(),
            reason: "no command given".into(),
        });
    };
    let mut c = sys::command_in_netns(&n.netns, program)?;
    c.args(args);
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
