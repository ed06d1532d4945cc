//! The one interface every check implements, what it is given (the
//! history and a [`Budget`]) and what it gives back (typed results, one per
//! check it decides, or a [`CheckError`] when the history does not fit it).
//!
//! A check is one file plus one line in [`crate::plan`], which decides
//! which checks judge which histories: a function of the history alone
//! (`set.rs`: `check(&History) -> CheckResult`, planned as a
//! [`FnChecker`]), or a type that implements [`Checker`] when it needs the
//! budget or decides several checks at once (`linear/checker.rs`,
//! `rw_checks.rs`).

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::checks::Check;
use crate::history::History;
use crate::linear::default_memory_limit;
use crate::rw::ContractError;
use crate::verdict::{CheckResult, Report};

/// A check of a history.
pub trait Checker: Send + Sync {
    /// Checks `history` within `budget`: one result per check this checker
    /// decides (most decide one; the session and causal checks share one
    /// index and decide together), in the order of [`Checker::checks`].
    fn check(&self, history: &History, budget: &Budget) -> Result<Vec<Judged>, CheckError>;

    /// The checks whose results [`Checker::check`] gives.
    fn checks(&self) -> Vec<Check>;
}

/// A check that needs nothing but the history: its name and its function
/// (`set::check`, `counter::check`...).
#[derive(Clone, Copy)]
pub struct FnChecker(pub Check, pub fn(&History) -> CheckResult);

impl Checker for FnChecker {
    fn check(&self, history: &History, _: &Budget) -> Result<Vec<Judged>, CheckError> {
        Ok(vec![Judged::new(self.0, (self.1)(history))])
    }
    fn checks(&self) -> Vec<Check> {
        vec![self.0]
    }
}

/// One check's result, and how long it took when the checker measured it
/// itself (otherwise the pipeline times the checker).
#[derive(Debug)]
pub struct Judged {
    /// The check.
    pub check: Check,
    /// Its typed result.
    pub report: Box<dyn Report>,
    /// Milliseconds, when measured by the checker.
    pub ms: Option<f64>,
}

impl Judged {
    /// A result timed by the pipeline.
    pub fn new(check: Check, report: impl Report + 'static) -> Judged {
        Judged {
            check,
            report: Box::new(report),
            ms: None,
        }
    }
}

/// What the checks may spend, and the options they share.
#[derive(Clone, Debug)]
pub struct Budget {
    /// Initial value of every register (None: the format's default, else
    /// null).
    pub initial: Option<Value>,
    /// Seconds for the whole plan (None: unlimited).
    pub time_limit: Option<f64>,
    /// Bytes the search caches and vector clocks may take.
    pub memory_limit: usize,
    /// Linearizability: decide every key even after one is proven not
    /// linearizable.
    pub all_keys: bool,
    /// When the plan started (the deadline counts from here).
    pub started: Instant,
}

impl Budget {
    /// No time limit, the default memory limit, null initial values.
    pub fn new() -> Budget {
        Budget {
            initial: None,
            time_limit: None,
            memory_limit: default_memory_limit(),
            all_keys: false,
            started: Instant::now(),
        }
    }

    /// The instant the checks give up at, if any.
    pub fn deadline(&self) -> Option<Instant> {
        self.time_limit
            .map(|s| self.started + Duration::from_secs_f64(s.min(1e9)))
    }
}

impl Default for Budget {
    fn default() -> Self {
        Budget::new()
    }
}

/// Why a history cannot be checked: it does not fit the model or the
/// contract of a check. An error (exit 2), never a verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckError {
    /// An operation the model does not understand.
    Model {
        /// Source line.
        line: usize,
        /// Why.
        reason: String,
        /// The model's name.
        model: String,
    },
    /// The history breaks the session and causal checks' contract (values
    /// written once, only reads and writes).
    Contract {
        /// Where and why.
        error: ContractError,
        /// The checks that need the contract.
        checks: Vec<Check>,
    },
}

impl CheckError {
    /// The one-line message for the file named `file`.
    pub fn message(&self, file: &str) -> String {
        match self {
            CheckError::Model {
                line,
                reason,
                model,
            } => format!("{file}:{line}: {reason} (model {model})"),
            CheckError::Contract { error, checks } => {
                let names: Vec<&str> = checks.iter().map(|c| c.name()).collect();
                format!(
                    "{file}:{}: {} (the history does not fit the {} check{})",
                    error.line,
                    error.reason,
                    names.join(", "),
                    if names.len() > 1 { "s" } else { "" }
                )
            }
        }
    }
}
