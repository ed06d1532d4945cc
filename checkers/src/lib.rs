//! faultline's checkers: the history model, readers for faultline's JSON
//! Lines, Jepsen/Knossos EDN and Porcupine's logs, sequential models, and the
//! linearizability checker.
//!
//! This crate is pure and synchronous: no async runtime, no system calls
//! beyond reading files, so it builds anywhere.
#![warn(missing_docs)]

pub mod anomaly;
pub mod bank;
pub mod causal;
pub mod checker;
pub mod checks;
pub mod convergence;
pub mod counter;
#[cfg(test)]
mod differential;
pub mod error;
pub mod format;
pub mod graph;
pub mod history;
pub mod linear;
pub mod model;
pub mod plan;
pub mod rw;
pub mod rw_checks;
pub mod seats;
pub mod session;
pub mod set;
pub mod tuples;
pub mod txn;
pub mod verdict;
pub mod workload;
pub mod workload_ran;
#[cfg(test)]
mod workload_tests;

pub use error::{HistoryError, HistoryErrorKind, ModelError};
pub use format::Format;
pub use history::{Event, EventType, History, HistoryBuilder, Operation, Outcome, Process};
pub use model::ModelKind;
pub use plan::Plan;
pub use verdict::{CheckResult, Report, Validity};
