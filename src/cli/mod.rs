//! Command-line definitions (clap) and dispatch to [`crate::commands`].

use clap::{Parser, Subcommand};

use crate::Exit;

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
    /// Check history files for linearizability (and more).
    Check(crate::commands::check::CheckArgs),
    /// Write a synthetic history of a linearizable store (optionally with an
    /// injected anomaly) for tests and benchmarks.
    Synth(Box<crate::commands::synth::SynthArgs>),
}

/// Runs a parsed command line and returns its exit code.
pub fn dispatch(cli: Cli) -> Exit {
    match cli.command {
        Command::Check(args) => crate::commands::check::run(args),
        Command::Synth(args) => crate::commands::synth::run(*args),
    }
}

/// Prints a one-line error for the user and returns [`Exit::Error`].
pub fn fail(msg: impl std::fmt::Display) -> Exit {
    eprintln!("faultline: error: {msg}");
    Exit::Error
}
