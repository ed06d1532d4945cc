//! faultline: Jepsen-style consistency testing on one machine.
//!
//! The binary is a thin shell over this library: [`cli`] holds the argument
//! definitions and dispatch, [`commands`] one module per subcommand.
#![warn(missing_docs)]

pub mod cli;
pub mod commands;
pub mod huge_pages;
pub mod lab;
pub mod nemesis;
pub mod node;
pub mod remote;
pub mod report;
pub mod runner;
pub mod stores;

/// The exit codes CI gates on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Every checked property holds.
    Valid = 0,
    /// A violation was found.
    Invalid = 1,
    /// Usage error, malformed input, or infrastructure failure.
    Error = 2,
    /// A checker could not decide within its budget.
    Unknown = 3,
}
