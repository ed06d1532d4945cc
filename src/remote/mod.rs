//! Remote hosts over SSH: the nodes of a cluster faultline did not start in
//! its lab (VMs, bare-metal hosts, containers), reached as Jepsen reaches
//! them.
//!
//! - [`hosts`]: which hosts (`--hosts FILE`, `--ssh user@a,user@b`) and how
//!   to reach them (`--ssh-identity`, `--ssh-known-hosts`); pure parsing.
//! - [`host`]: one connected [`host::Host`]: the small interface every
//!   remote fault goes through (run a script, with input; write a file).
//!   The system `ssh`, multiplexed by the `openssh` crate: host keys are
//!   checked against known_hosts, keys come from the agent or a named
//!   identity, never a password (`BatchMode=yes`).
//! - [`firewall`]: partitions and packet loss as iptables rules in
//!   faultline's own chains (`FL-PART`, `FL-LOSS`) on each host, each chain
//!   swapped in one `iptables-restore --noflush` transaction; the control
//!   machine's address is exempt from every rule.
//! - [`clock`]: clock faults on the hosts: the servers faultline starts
//!   there run with libfaketime, and a fault rewrites a node's timestamp
//!   file over SSH.
//! - [`netem`]: delay with the kernel's netem qdisc where the host has
//!   it, only on traffic between nodes.
//! - [`processes`]: the store's processes on a host, found by a pid file or
//!   a command pattern the user gives; kill, pause, resume, start.
//! - [`state`]: what a remote run touched, recorded in a local state file
//!   before it is touched, so `faultline clean --hosts` undoes it after a
//!   crash.
//! - [`clean`]: `faultline clean --hosts`.
//! - [`cluster`]: the hosts of one run, connected, with the faults they
//!   carry out for the runner.

pub mod clean;
pub mod clock;
pub mod cluster;
pub mod firewall;
pub mod host;
pub mod hosts;
pub mod netem;
pub mod processes;
pub mod state;

pub use cluster::Remote;
pub use host::Host;
pub use hosts::{HostSpec, Hosts, ProcessSpec, SshOptions};

/// What can go wrong with remote hosts. Messages are one line and name the
/// host (or the input) and the reason.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// A hosts file or `--ssh` list that cannot be used.
    #[error("{input}: {reason}")]
    BadHosts {
        /// The flag or file, with the line.
        input: String,
        /// Why.
        reason: String,
    },
    /// The SSH connection could not be made (unreachable, auth, host key).
    #[error("host {host}: cannot connect over SSH: {reason}")]
    Connect {
        /// The host's destination.
        host: String,
        /// ssh's own words.
        reason: String,
    },
    /// A command on a host failed.
    #[error("host {host}: {what}: {reason}")]
    Command {
        /// The host's destination.
        host: String,
        /// What was being done.
        what: String,
        /// The exit status and stderr.
        reason: String,
    },
    /// A fault that cannot be applied to these hosts.
    #[error("{0}")]
    Fault(String),
    /// The local state file.
    #[error("remote state file {path}: {reason}")]
    State {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
}

/// Remote results.
pub type Result<T, E = RemoteError> = std::result::Result<T, E>;

/// Quotes `s` for a POSIX shell (single quotes).
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
