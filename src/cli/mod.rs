//! Command-line definitions (clap) and dispatch to [`crate::commands`].

use clap::{Parser, Subcommand};

use crate::Exit;

pub mod output;

/// faultline: test what a database really guarantees under partitions,
/// crashes and pauses, and check histories for linearizability.
#[derive(Debug, Parser)]
#[command(name = "faultline", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Test a store: start a cluster in the lab, run a workload under
    /// faults, record the history, check it (root). With no arguments: the
    /// built-in store, 3 nodes, partitions, 30 s.
    Run(Box<crate::commands::run::RunArgs>),
    /// Check history files for linearizability (and more).
    Check(crate::commands::check::CheckArgs),
    /// Write a synthetic history of a linearizable store (optionally with an
    /// injected anomaly) for tests and benchmarks.
    Synth(Box<crate::commands::synth::SynthArgs>),
    /// Network labs: N nodes in network namespaces on one bridge (root).
    Lab(crate::commands::lab::LabArgs),
    /// Inject faults into a running lab: partition, loss, delay, kill,
    /// start, pause, resume, heal (root).
    Nemesis(crate::commands::nemesis::NemesisArgs),
    /// Remove everything earlier faultline runs left behind: labs,
    /// namespaces, links, chains, server processes (root).
    Clean(crate::commands::clean::CleanArgs),
    /// Check this machine for what the lab and the stores need.
    Doctor(crate::commands::doctor::DoctorArgs),
    /// Run one node of the built-in replicated store (started by the lab and
    /// the runner; see docs/node-protocol.md).
    Node(Box<crate::commands::node::NodeArgs>),
    /// Re-create report.html and junit.xml of a stored run (DIR, e.g.
    /// store/latest) from its history and results.
    Report(crate::commands::report::ReportArgs),
}

impl Cli {
    /// Parses the process's arguments. The lists a `--help` shows that
    /// other modules own (the stores in the registry, the workloads) are
    /// filled in from them, so they cannot fall behind.
    pub fn parse_args() -> Cli {
        let stores: Vec<&str> = crate::stores::registry::STORES
            .iter()
            .map(|e| e.name)
            .collect();
        let workloads = faultline_checkers::workload::WorkloadKind::NAMES.join(", ");
        let command = <Cli as clap::CommandFactory>::command().mut_subcommand("run", |run| {
            run.mut_arg("db", |a| {
                a.help(format!(
                    "The store: {} (builtin is faultline's own replicated key-value store; \
                     external is an adapter program of yours)",
                    stores.join(", ")
                ))
            })
            .mut_arg("workload", |a| a.help(format!("The workload: {workloads}")))
        });
        let matches = command.get_matches();
        match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
            Ok(cli) => cli,
            Err(e) => e.exit(),
        }
    }
}

/// Runs a parsed command line and returns its exit code.
pub fn dispatch(cli: Cli) -> Exit {
    match cli.command {
        Command::Run(args) => crate::commands::run::run(*args),
        Command::Check(args) => crate::commands::check::run(args),
        Command::Synth(args) => crate::commands::synth::run(*args),
        Command::Lab(args) => crate::commands::lab::run(args),
        Command::Nemesis(args) => crate::commands::nemesis::run(args),
        Command::Clean(args) => crate::commands::clean::run(args),
        Command::Doctor(args) => crate::commands::doctor::run(args),
        Command::Node(args) => crate::commands::node::run(*args),
        Command::Report(args) => crate::commands::report::run(args),
    }
}

/// Prints a one-line error for the user (control characters escaped, cut
/// to a bounded length) and returns [`Exit::Error`].
pub fn fail(msg: impl std::fmt::Display) -> Exit {
    let msg = faultline_checkers::error::one_line(&msg.to_string());
    crate::errln!("faultline: error: {msg}");
    Exit::Error
}
