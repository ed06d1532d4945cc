//! The workloads `faultline run` drives (generated in `faultline-workloads`):
//! their names. Which checks judge each one's history is
//! [`crate::plan::Plan::for_workload`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadKind {
    /// One key: read, write, cas.
    Register,
    /// Many keys, each an independent register: read, write, cas.
    Kv,
    /// Add unique elements to one set, read it; final reads find lost ones.
    Set,
    /// Increment one counter, read it.
    Counter,
    /// Transactions of reads and appends to lists (Elle's list-append).
    ListAppend,
    /// Transactions of reads and writes of registers (Elle's rw-register).
    RwRegister,
    /// Transfers between accounts with a fixed total, and reads of every
    /// balance, each one transaction.
    Bank,
    /// Customers booking seats, each booking one transaction.
    Seats,
}

impl WorkloadKind {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Register => "register",
            WorkloadKind::Kv => "kv",
            WorkloadKind::Set => "set",
            WorkloadKind::Counter => "counter",
            WorkloadKind::ListAppend => "list-append",
            WorkloadKind::RwRegister => "rw-register",
            WorkloadKind::Bank => "bank",
            WorkloadKind::Seats => "seats",
        }
    }

    /// Whether each operation is a transaction (`f` = `txn`), which only
    /// stores that do transactions run.
    pub fn is_txn(self) -> bool {
        matches!(
            self,
            WorkloadKind::ListAppend
                | WorkloadKind::RwRegister
                | WorkloadKind::Bank
                | WorkloadKind::Seats
        )
    }

    /// Every name accepted by [`WorkloadKind::from_str`].
    pub const NAMES: &'static [&'static str] = &[
        "register",
        "kv",
        "set",
        "counter",
        "list-append",
        "rw-register",
        "bank",
        "seats",
    ];
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for WorkloadKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "register" => WorkloadKind::Register,
            "kv" => WorkloadKind::Kv,
            "set" => WorkloadKind::Set,
            "counter" => WorkloadKind::Counter,
            "list-append" => WorkloadKind::ListAppend,
            "rw-register" => WorkloadKind::RwRegister,
            "bank" => WorkloadKind::Bank,
            "seats" => WorkloadKind::Seats,
            other => {
                return Err(format!(
                    "unknown workload `{other}` (expected one of: {})",
                    WorkloadKind::NAMES.join(", ")
                ));
            }
        })
    }
}
