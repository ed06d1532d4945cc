//! The remote-host settings of `faultline run` and `faultline clean`:
//! `--hosts FILE` or `--ssh user@a,user@b`, the SSH options, and the
//! `--db-opt`s that only mean something on remote hosts (`endpoints`,
//! `pidfile`, `pattern`, `start`).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use crate::remote::hosts::{self, Find};
use crate::remote::{Hosts, ProcessSpec, SshOptions};
use crate::runner::{Endpoint, RemoteRun};

/// Where the remote hosts are and how to reach them.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct HostArgs {
    /// Run on remote hosts over SSH: a file with one `[user@]host[:port]
    /// [address=IP]` a line (the nodes n1, n2, … in order).
    #[arg(long, value_name = "FILE", conflicts_with = "ssh")]
    pub hosts: Option<PathBuf>,
    /// Run on remote hosts over SSH: `user@host1,user@host2,…`.
    #[arg(long, value_name = "HOSTS")]
    pub ssh: Option<String>,
    /// The private key SSH uses (default: the agent's keys and ssh's
    /// defaults; never a password).
    #[arg(long, value_name = "FILE")]
    pub ssh_identity: Option<PathBuf>,
    /// Check the hosts' keys against this known_hosts file (default:
    /// ~/.ssh/known_hosts). Keys are always checked.
    #[arg(long, value_name = "FILE")]
    pub ssh_known_hosts: Option<PathBuf>,
}

/// The same settings from a config file (paths already relative to it).
#[derive(Debug, Default)]
pub struct FileHosts {
    /// `hosts = "FILE"`.
    pub hosts: Option<PathBuf>,
    /// `ssh = ["user@a", …]` or `"user@a,user@b"`.
    pub ssh: Option<String>,
    /// `ssh-identity = "FILE"`.
    pub ssh_identity: Option<PathBuf>,
    /// `ssh-known-hosts = "FILE"`.
    pub ssh_known_hosts: Option<PathBuf>,
}

/// The hosts, if any were given (flags win over the file).
pub fn hosts(args: &HostArgs, file: FileHosts) -> Result<Option<Hosts>, String> {
    let ssh = SshOptions {
        identity: args.ssh_identity.clone().or(file.ssh_identity),
        known_hosts: args.ssh_known_hosts.clone().or(file.ssh_known_hosts),
    };
    let list = match (&args.hosts, &args.ssh) {
        (Some(f), _) => Some(hosts::parse_file(f)),
        (None, Some(l)) => Some(hosts::parse_list(l)),
        (None, None) => match (file.hosts, file.ssh) {
            (Some(_), Some(_)) => {
                return Err("--config: give `hosts` or `ssh`, not both".into());
            }
            (Some(f), None) => Some(hosts::parse_file(&f)),
            (None, Some(l)) => Some(hosts::parse_list(&l)),
            (None, None) => None,
        },
    };
    match list {
        None => {
            if ssh != SshOptions::default() {
                return Err(
                    "--ssh-identity and --ssh-known-hosts need --hosts FILE or --ssh HOSTS".into(),
                );
            }
            Ok(None)
        }
        Some(l) => Ok(Some(Hosts {
            hosts: l.map_err(|e| e.to_string())?,
            ssh,
        })),
    }
}

/// The `--db-opt`s only remote runs take.
const REMOTE_OPTS: [&str; 5] = ["endpoints", "pidfile", "pattern", "start", "libfaketime"];

fn endpoint(s: &str) -> Result<Endpoint, String> {
    let bad = |why: &str| format!("--db-opt endpoints: {s:?}: {why}");
    if let Ok(ip) = s.parse::<Ipv4Addr>() {
        return Ok(Endpoint {
            address: ip,
            port: None,
        });
    }
    if let Ok(SocketAddr::V4(a)) = s.parse::<SocketAddr>() {
        return Ok(Endpoint {
            address: *a.ip(),
            port: Some(a.port()),
        });
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (
            h,
            Some(
                p.parse::<u16>()
                    .map_err(|_| bad("the port is not 1 to 65535"))?,
            ),
        ),
        None => (s, None),
    };
    let v4 = (host, port.unwrap_or(1))
        .to_socket_addrs()
        .map_err(|e| bad(&format!("cannot resolve: {e}")))?
        .find_map(|a| match a {
            SocketAddr::V4(a) => Some(*a.ip()),
            SocketAddr::V6(_) => None,
        })
        .ok_or_else(|| bad("no IPv4 address"))?;
    Ok(Endpoint { address: v4, port })
}

/// Takes the remote `--db-opt`s out of `opts` and gives the remote run,
/// or an error naming the option (remote options without hosts, too).
pub fn remote_run(
    hosts: Option<Hosts>,
    opts: &mut BTreeMap<String, String>,
) -> Result<Option<RemoteRun>, String> {
    let mut taken: BTreeMap<&str, String> = BTreeMap::new();
    for k in REMOTE_OPTS {
        if let Some(v) = opts.remove(k) {
            taken.insert(k, v);
        }
    }
    let Some(hosts) = hosts else {
        return match taken.keys().next() {
            Some(k) => Err(format!(
                "--db-opt {k}: only means something on remote hosts (--hosts FILE or --ssh HOSTS)"
            )),
            None => Ok(None),
        };
    };
    let endpoints = match taken.get("endpoints") {
        Some(list) => {
            let e = list
                .split(',')
                .map(|s| endpoint(s.trim()))
                .collect::<Result<Vec<_>, _>>()?;
            if e.len() != hosts.hosts.len() {
                return Err(format!(
                    "--db-opt endpoints: {} endpoints for {} hosts: give one per host, in the same order",
                    e.len(),
                    hosts.hosts.len()
                ));
            }
            e
        }
        // faultline starts the store on the hosts, and finds its servers.
        None => {
            if let Some(k) = ["pidfile", "pattern", "start"]
                .into_iter()
                .find(|k| taken.contains_key(k))
            {
                return Err(format!(
                    "--db-opt {k}: only for a cluster you bring (with endpoints=…); the servers faultline starts on the hosts it finds itself"
                ));
            }
            return Ok(Some(RemoteRun {
                hosts,
                endpoints: Vec::new(),
                processes: None,
                libfaketime: taken.get("libfaketime").cloned(),
            }));
        }
    };
    let find = match (taken.get("pidfile"), taken.get("pattern")) {
        (Some(_), Some(_)) => {
            return Err("--db-opt pidfile and pattern: give one of them, not both".into());
        }
        (Some(p), None) if p.trim().is_empty() => {
            return Err("--db-opt pidfile: empty path".into());
        }
        (None, Some(p)) if p.trim().len() < 3 => {
            return Err(format!(
                "--db-opt pattern={p:?}: too short to name one server (it is matched against whole command lines)"
            ));
        }
        (Some(p), None) => Some(Find::Pidfile(p.clone())),
        (None, Some(p)) => Some(Find::Pattern(p.clone())),
        (None, None) => None,
    };
    let start = taken.get("start").cloned();
    if let Some(s) = &start
        && (s.trim().is_empty() || s.contains('\n'))
    {
        return Err("--db-opt start: give one line of shell".into());
    }
    let processes = match (find, start) {
        (Some(find), start) => Some(ProcessSpec { find, start }),
        (None, Some(_)) => {
            return Err(
                "--db-opt start: needs pidfile=PATH or pattern=REGEX (how faultline finds the server it started)"
                    .into(),
            );
        }
        (None, None) => None,
    };
    if taken.contains_key("libfaketime") {
        return Err(
            "--db-opt libfaketime: only for a store faultline starts on the hosts (it starts their servers with libfaketime); not with endpoints=…".into(),
        );
    }
    Ok(Some(RemoteRun {
        hosts,
        endpoints,
        processes,
        libfaketime: None,
    }))
}
