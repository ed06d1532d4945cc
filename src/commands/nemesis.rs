//! `faultline nemesis`: faults against a running lab, for people. The
//! runner drives the same library ([`crate::nemesis`]).

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Subcommand;

use crate::Exit;
use crate::cli::fail;
use crate::lab::proc::ProcId;
use crate::lab::{DEFAULT_LAB, Lab, LabError, signals, state, sys};
use crate::nemesis::clock;
use crate::nemesis::delay::{self, DelayHolder, DelaySpec};
use crate::nemesis::grudge::{self, Rng, Shape};
use crate::nemesis::{self as nem, NemesisError, resolve_nodes};

/// Arguments of `faultline nemesis`.
#[derive(Debug, clap::Args)]
pub struct NemesisArgs {
    /// Lab name.
    #[arg(long, default_value = DEFAULT_LAB, global = true)]
    pub name: String,
    /// The fault.
    #[command(subcommand)]
    pub fault: NemesisCommand,
}

/// The faults.
#[derive(Debug, Subcommand)]
pub enum NemesisCommand {
    /// Replace the current partition: a shape (one, majority, random-halves,
    /// majorities-ring, bridge) or JSON: a grudge '{"n1":["n2","n3"]}' (n1
    /// drops packets from n2 and n3) or components '[["n1"],["n2","n3"]]'.
    /// Prints the grudge applied. The control node is never cut off.
    Partition {
        /// Shape name or JSON.
        shape: String,
        /// Seed for the random choice of nodes [default: from the clock].
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Remove every partition, loss and delay (only faultline's rules).
    Heal,
    /// Drop PERCENT% of the packets arriving at NODES from other nodes.
    Loss {
        /// Percentage, above 0 and at most 100.
        #[arg(long)]
        percent: f64,
        /// Nodes (n1 or 1).
        #[arg(required = true)]
        nodes: Vec<String>,
    },
    /// Delay every packet arriving at NODES from other nodes by MS ± JITTER
    /// milliseconds (netem if the kernel has it, else an NFQUEUE holder).
    Delay {
        /// Milliseconds (1-60000).
        #[arg(long)]
        ms: u64,
        /// ± milliseconds, uniform (at most --ms).
        #[arg(long, default_value_t = 0)]
        jitter: u64,
        /// Seed for the jitter.
        #[arg(long)]
        seed: Option<u64>,
        /// Nodes (n1 or 1).
        #[arg(required = true)]
        nodes: Vec<String>,
    },
    /// SIGKILL the process tree of the servers on NODE.
    Kill {
        /// Node.
        node: String,
        /// Only this service.
        #[arg(long)]
        service: Option<String>,
    },
    /// Start the killed servers on NODE again, on their data.
    Start {
        /// Node.
        node: String,
        /// Only this service.
        #[arg(long)]
        service: Option<String>,
    },
    /// SIGSTOP the process tree of the servers on NODE.
    Pause {
        /// Node.
        node: String,
        /// Only this service.
        #[arg(long)]
        service: Option<String>,
    },
    /// SIGCONT the process tree of the servers on NODE.
    Resume {
        /// Node.
        node: String,
        /// Only this service.
        #[arg(long)]
        service: Option<String>,
    },
    /// Move the wall clock of the servers on NODES (started with
    /// `faultline lab run --fake-clock`): bump, skew, strobe or reset.
    Clock {
        /// What to do.
        #[command(subcommand)]
        op: ClockOp,
    },
    /// Internal: the process holding an NFQUEUE delay.
    #[command(name = "__delay-holder", hide = true)]
    DelayHolder {
        /// Milliseconds.
        #[arg(long)]
        ms: u64,
        /// Jitter.
        #[arg(long)]
        jitter: u64,
        /// Seed.
        #[arg(long)]
        seed: u64,
        /// Nodes.
        nodes: Vec<String>,
    },
}

/// The clock faults.
#[derive(Debug, Subcommand)]
pub enum ClockOp {
    /// Jump the clocks of NODES by MS milliseconds (negative: back), from
    /// the offset they have.
    Bump {
        /// Milliseconds, e.g. 5000 or -200.
        #[arg(long, allow_hyphen_values = true)]
        ms: i64,
        /// Nodes (n1 or 1).
        #[arg(required = true)]
        nodes: Vec<String>,
    },
    /// Set the clocks of NODES to a steady offset of MS milliseconds.
    Skew {
        /// Milliseconds, e.g. 1500 or -200.
        #[arg(long, allow_hyphen_values = true)]
        ms: i64,
        /// Nodes (n1 or 1).
        #[arg(required = true)]
        nodes: Vec<String>,
    },
    /// Flip the clocks of NODES between the real time and MS milliseconds
    /// off, every PERIOD milliseconds, for SECONDS; then reset them.
    Strobe {
        /// Milliseconds.
        #[arg(long, allow_hyphen_values = true)]
        ms: i64,
        /// Milliseconds between flips (1-60000).
        #[arg(long)]
        period: u64,
        /// How long, in seconds.
        #[arg(long = "for")]
        seconds: f64,
        /// Nodes (n1 or 1).
        #[arg(required = true)]
        nodes: Vec<String>,
    },
    /// Set the clocks of NODES (default: every node with a faked clock) back
    /// to the real time.
    Reset {
        /// Nodes (n1 or 1).
        nodes: Vec<String>,
    },
}

fn clock_seed() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Runs `faultline nemesis`.
pub fn run(args: NemesisArgs) -> Exit {
    match run_inner(args) {
        Ok(e) => e,
        Err(e) => fail(e),
    }
}

fn run_inner(args: NemesisArgs) -> Result<Exit, NemesisError> {
    sys::preflight()?;
    let lab = Lab::open(&args.name)?;
    match args.fault {
        NemesisCommand::Partition { shape, seed } => {
            let s: Shape = shape.parse()?;
            let seed = seed.unwrap_or_else(clock_seed);
            let names: Vec<String> = lab.nodes().iter().map(|n| n.name.clone()).collect();
            let g = grudge::grudge(&s, &names, &mut Rng::new(seed))?;
            nem::partition(&lab, &g)?;
            println!("{}", serde_json::to_string(&g).unwrap_or_default());
        }
        NemesisCommand::Heal => {
            nem::heal(&lab)?;
            println!("healed lab {}", lab.name());
        }
        NemesisCommand::Loss { percent, nodes } => {
            let ns = resolve_nodes(&lab, &nodes)?;
            nem::loss(&lab, &ns, percent)?;
            println!(
                "{} drop {percent}% of packets from peers",
                ns.iter()
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        NemesisCommand::Delay {
            ms,
            jitter,
            seed,
            nodes,
        } => {
            let spec = DelaySpec {
                ms,
                jitter_ms: jitter,
            };
            spec.validate()?;
            let ns = resolve_nodes(&lab, &nodes)?;
            delay::heal_delay(&lab)?;
            let names: Vec<String> = ns.iter().map(|n| n.name.clone()).collect();
            if delay::netem_available(&ns[0]) {
                delay::netem_delay(&ns, spec)?;
                let v = serde_json::json!({"mechanism": "netem", "nodes": names, "ms": ms, "jitter_ms": jitter});
                state::update(lab.name(), |s| {
                    s.faults.insert("delay".into(), v);
                })?;
                println!("{} delayed {ms}±{jitter} ms (netem)", names.join(", "));
            } else {
                spawn_delay_holder(&lab, &names, spec, seed.unwrap_or_else(clock_seed))?;
                println!(
                    "{} delayed {ms}±{jitter} ms (NFQUEUE holder; no netem in this kernel)",
                    names.join(", ")
                );
            }
        }
        NemesisCommand::Kill { node, service } => {
            let n = lab.node(&node)?.clone();
            let done = nem::kill(&lab, &n, service.as_deref())?;
            println!("killed {} on {}", done.join(", "), n.name);
        }
        NemesisCommand::Start { node, service } => {
            let n = lab.node(&node)?.clone();
            let done = nem::start(&lab, &n, service.as_deref())?;
            if done.is_empty() {
                println!("nothing to start on {} (already running)", n.name);
            } else {
                println!("started {} on {}", done.join(", "), n.name);
            }
        }
        NemesisCommand::Pause { node, service } => {
            let n = lab.node(&node)?.clone();
            let done = nem::pause(&lab, &n, service.as_deref())?;
            println!("paused {} on {}", done.join(", "), n.name);
        }
        NemesisCommand::Resume { node, service } => {
            let n = lab.node(&node)?.clone();
            let done = nem::resume(&lab, &n, service.as_deref())?;
            println!("resumed {} on {}", done.join(", "), n.name);
        }
        NemesisCommand::Clock { op } => clock_fault(&lab, op)?,
        NemesisCommand::DelayHolder {
            ms,
            jitter,
            seed,
            nodes,
        } => return delay_holder(lab, ms, jitter, seed, &nodes),
    }
    Ok(Exit::Valid)
}

fn names(ns: &[crate::lab::NodeState]) -> String {
    ns.iter()
        .map(|n| n.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `faultline nemesis clock ...`.
fn clock_fault(lab: &Lab, op: ClockOp) -> Result<(), NemesisError> {
    match op {
        ClockOp::Bump { ms, nodes } => {
            let ns = resolve_nodes(lab, &nodes)?;
            let to = clock::bump(lab, &ns, ms)?;
            for (n, t) in ns.iter().zip(to) {
                println!("{}: clock bumped by {ms} ms (now {t} ms off)", n.name);
            }
        }
        ClockOp::Skew { ms, nodes } => {
            let ns = resolve_nodes(lab, &nodes)?;
            clock::skew(lab, &ns, ms)?;
            println!("{}: clock {ms} ms off", names(&ns));
        }
        ClockOp::Strobe {
            ms,
            period,
            seconds,
            nodes,
        } => {
            if !(seconds > 0.0 && seconds <= 86_400.0) {
                return Err(NemesisError::Clock(format!(
                    "clock strobe --for {seconds}: give 0 < seconds <= 86400"
                )));
            }
            let ns = resolve_nodes(lab, &nodes)?;
            let _set = signals::block(&signals::TERMINATING);
            let strobe = clock::Strobe::start(lab, &ns, ms, period)?;
            // Until the time is up or a signal comes; then reset.
            let until = std::time::Instant::now() + Duration::from_secs_f64(seconds);
            while std::time::Instant::now() < until && !signals::termination_pending() {
                std::thread::sleep(Duration::from_millis(20));
            }
            let flips = strobe.flips();
            strobe.stop()?;
            println!(
                "{}: clock strobed between 0 and {ms} ms every {period} ms ({flips} flips), now reset",
                names(&ns)
            );
        }
        ClockOp::Reset { nodes } => {
            if nodes.is_empty() {
                clock::heal_clocks(lab)?;
                println!("clocks of lab {} reset", lab.name());
            } else {
                let ns = resolve_nodes(lab, &nodes)?;
                clock::reset(lab, &ns)?;
                println!("{}: clock reset", names(&ns));
            }
        }
    }
    Ok(())
}

/// Starts `faultline nemesis __delay-holder` in the background and waits
/// for its "ready" line.
fn spawn_delay_holder(
    lab: &Lab,
    nodes: &[String],
    spec: DelaySpec,
    seed: u64,
) -> Result<(), NemesisError> {
    let exe =
        std::env::current_exe().map_err(|e| LabError::io("finding the faultline binary", e))?;
    std::fs::create_dir_all(lab.dir())
        .map_err(|e| LabError::io("creating the lab directory", e))?;
    let log = lab.dir().join("delay.log");
    let logf = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(|e| LabError::io(format!("opening {}", log.display()), e))?;
    let mut c = std::process::Command::new(exe);
    c.args(["nemesis", "--name", lab.name(), "__delay-holder"])
        .arg(format!("--ms={}", spec.ms))
        .arg(format!("--jitter={}", spec.jitter_ms))
        .arg(format!("--seed={seed}"))
        .args(nodes)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(logf);
    crate::lab::proc::in_new_session(&mut c);
    let mut child = c
        .spawn()
        .map_err(|e| LabError::io("starting the delay holder", e))?;
    let out = child.stdout.take();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        if let Some(o) = out {
            let _ = BufReader::new(o).read_line(&mut line);
        }
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(15)).unwrap_or_default();
    if line.trim() == "ready" {
        return Ok(());
    }
    let _ = child.kill();
    let _ = child.wait();
    let last = std::fs::read_to_string(&log)
        .ok()
        .and_then(|t| t.lines().last().map(str::to_string))
        .unwrap_or_default();
    Err(LabError::Command {
        command: "faultline nemesis __delay-holder".into(),
        reason: format!("did not start: {last}"),
    }
    .into())
}

fn delay_holder(
    lab: Lab,
    ms: u64,
    jitter: u64,
    seed: u64,
    nodes: &[String],
) -> Result<Exit, NemesisError> {
    let set = signals::block(&signals::TERMINATING);
    let ns = resolve_nodes(&lab, nodes)?;
    let me = ProcId::current();
    let v = serde_json::json!({"mechanism": "nfqueue", "nodes": nodes, "ms": ms, "jitter_ms": jitter, "holder": me.pid});
    state::update(lab.name(), |s| {
        s.delay_holder = Some(me);
        s.faults.insert("delay".into(), v);
    })?;
    let forget = |name: &str| {
        let _ = state::update(name, |s| {
            if s.delay_holder == Some(me) {
                s.delay_holder = None;
                s.faults.remove("delay");
            }
        });
    };
    let spec = DelaySpec {
        ms,
        jitter_ms: jitter,
    };
    let holder = match DelayHolder::start(&lab, &ns, spec, seed) {
        Ok(h) => h,
        Err(e) => {
            forget(lab.name());
            return Err(e);
        }
    };
    {
        let ns2 = ns.clone();
        signals::on_panic(move || {
            for n in &ns2 {
                let _ = crate::lab::net::flush_node_chains(n, &[crate::lab::net::CHAIN_DELAY]);
            }
        });
    }
    let mut out = std::io::stdout();
    let _ = writeln!(out, "ready");
    let _ = out.flush();
    let sig = signals::wait(&set);
    eprintln!("faultline: delay holder: {sig:?}: removing the delay");
    holder.stop();
    forget(lab.name());
    signals::clear_on_panic();
    Ok(Exit::Valid)
}
