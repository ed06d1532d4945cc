//! Which hosts a remote run uses and how to reach them: `--hosts FILE`
//! (one host a line) or `--ssh user@host1,user@host2,…`, the SSH options,
//! and how the store's processes are found on each host. Pure parsing.
//!
//! A hosts file:
//!
//! ```text
//! # DESTINATION            [address=IP]
//! root@10.0.0.11
//! admin@db2.example:2222   address=10.0.0.12
//! ```
//!
//! The hosts are the nodes n1, n2, … in this order. `address` is where the
//! other nodes (and the clients) reach the host; by default the
//! destination's host, resolved on the control machine.

use std::net::{Ipv4Addr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{RemoteError, Result};

/// The most hosts a run uses (as nodes in the lab).
pub const MAX_HOSTS: usize = 9;

/// One host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSpec {
    /// The node name: n1, n2, …
    pub name: String,
    /// As given: `[user@]host[:port]`.
    pub destination: String,
    /// The user, if given.
    pub user: Option<String>,
    /// The host name or address SSH connects to.
    pub host: String,
    /// The SSH port, if not 22.
    pub port: Option<u16>,
    /// Where the nodes and clients reach this host.
    pub address: Ipv4Addr,
}

/// How to authenticate over SSH. Never a password: keys come from the agent
/// (`SSH_AUTH_SOCK`), ssh's defaults, or `identity`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshOptions {
    /// `--ssh-identity FILE`: use only this private key.
    pub identity: Option<PathBuf>,
    /// `--ssh-known-hosts FILE`: check host keys against this file (and no
    /// other user file). Host keys are always checked strictly.
    pub known_hosts: Option<PathBuf>,
}

/// The hosts of a run and how to reach them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hosts {
    /// The hosts, as nodes n1..nN.
    pub hosts: Vec<HostSpec>,
    /// SSH options.
    pub ssh: SshOptions,
}

/// How the store's server is found on a host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Find {
    /// `pidfile=PATH`: the file holds the server's PID.
    Pidfile(String),
    /// `pattern=REGEX`: `pgrep -f` on full command lines; the pattern must
    /// match the server only (faultline never signals by a bare name).
    Pattern(String),
}

/// The store's processes on the hosts, for kill and pause faults (bring
/// your own cluster). `{node}` and `{ip}` in the paths and commands become
/// the host's node name and address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessSpec {
    /// How to find the server.
    pub find: Find,
    /// `start=COMMAND`: starts the server again after a kill (a shell
    /// command run on the host).
    pub start: Option<String>,
}

impl ProcessSpec {
    /// `s` with `{node}` and `{ip}` replaced for `host`.
    pub fn expand(s: &str, host: &HostSpec) -> String {
        s.replace("{node}", &host.name)
            .replace("{ip}", &host.address.to_string())
    }
}

/// Splits `[user@]host[:port]`.
fn parse_destination(input: &str, dest: &str) -> Result<(Option<String>, String, Option<u16>)> {
    let bad = |reason: String| RemoteError::BadHosts {
        input: input.to_string(),
        reason,
    };
    if dest.is_empty() || dest.starts_with('-') || dest.chars().any(char::is_whitespace) {
        return Err(bad(format!(
            "{dest:?} is not an SSH destination (use [user@]host[:port])"
        )));
    }
    let (user, rest) = match dest.rsplit_once('@') {
        Some((u, r)) if !u.is_empty() => (Some(u.to_string()), r),
        Some(_) => return Err(bad(format!("{dest:?}: empty user before '@'"))),
        None => (None, dest),
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => {
            let port = p
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad(format!("{dest:?}: port {p:?} is not 1 to 65535")))?;
            (h, Some(port))
        }
        None => (rest, None),
    };
    if host.is_empty() || host.contains('[') || host.contains(':') {
        return Err(bad(format!(
            "{dest:?}: expected an IPv4 address or a host name (IPv6 is not supported)"
        )));
    }
    Ok((user, host.to_string(), port))
}

/// The IPv4 address of `host` (a literal, or resolved here).
fn resolve(input: &str, host: &str) -> Result<Ipv4Addr> {
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(ip);
    }
    let addrs = (host, 22)
        .to_socket_addrs()
        .map_err(|e| RemoteError::BadHosts {
            input: input.to_string(),
            reason: format!("cannot resolve {host:?}: {e} (give address=IP)"),
        })?;
    addrs
        .filter_map(|a| match a.ip() {
            std::net::IpAddr::V4(v4) => Some(v4),
            _ => None,
        })
        .next()
        .ok_or_else(|| RemoteError::BadHosts {
            input: input.to_string(),
            reason: format!("{host:?} has no IPv4 address (give address=IP)"),
        })
}

fn host_spec(input: &str, i: usize, dest: &str, address: Option<Ipv4Addr>) -> Result<HostSpec> {
    let (user, host, port) = parse_destination(input, dest)?;
    let address = match address {
        Some(a) => a,
        None => resolve(input, &host)?,
    };
    Ok(HostSpec {
        name: format!("n{}", i + 1),
        destination: dest.to_string(),
        user,
        host,
        port,
        address,
    })
}

fn check_count(input: &str, hosts: &[HostSpec]) -> Result<()> {
    if hosts.is_empty() || hosts.len() > MAX_HOSTS {
        return Err(RemoteError::BadHosts {
            input: input.to_string(),
            reason: format!("{} hosts: give 1 to {MAX_HOSTS}", hosts.len()),
        });
    }
    for (i, a) in hosts.iter().enumerate() {
        if let Some(b) = hosts[..i].iter().find(|b| b.address == a.address) {
            return Err(RemoteError::BadHosts {
                input: input.to_string(),
                reason: format!(
                    "{} and {} have the same address {}: each node needs its own",
                    b.destination, a.destination, a.address
                ),
            });
        }
    }
    Ok(())
}

/// Parses `--ssh user@host1,user@host2,…`.
pub fn parse_list(list: &str) -> Result<Vec<HostSpec>> {
    let input = format!("--ssh {list}");
    let hosts = list
        .split(',')
        .map(str::trim)
        .enumerate()
        .map(|(i, d)| host_spec(&input, i, d, None))
        .collect::<Result<Vec<_>>>()?;
    check_count(&input, &hosts)?;
    Ok(hosts)
}

/// Parses the text of a hosts file (`path` names it in errors).
pub fn parse_file_text(path: &Path, text: &str) -> Result<Vec<HostSpec>> {
    let mut hosts = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let input = format!("--hosts {}:{}", path.display(), n + 1);
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let dest = words.next().unwrap_or_default();
        let mut address = None;
        for w in words {
            match w.split_once('=') {
                Some(("address", a)) => {
                    address = Some(a.parse::<Ipv4Addr>().map_err(|_| RemoteError::BadHosts {
                        input: input.clone(),
                        reason: format!("address={a:?} is not an IPv4 address"),
                    })?);
                }
                _ => {
                    return Err(RemoteError::BadHosts {
                        input,
                        reason: format!("unknown setting {w:?} (expected address=IP)"),
                    });
                }
            }
        }
        hosts.push(host_spec(&input, hosts.len(), dest, address)?);
    }
    check_count(&format!("--hosts {}", path.display()), &hosts)?;
    Ok(hosts)
}

/// Reads and parses a hosts file.
pub fn parse_file(path: &Path) -> Result<Vec<HostSpec>> {
    let text = std::fs::read_to_string(path).map_err(|e| RemoteError::BadHosts {
        input: format!("--hosts {}", path.display()),
        reason: format!("cannot read: {e}"),
    })?;
    parse_file_text(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_and_files_parse() {
        let h = parse_list("root@10.0.0.1, admin@10.0.0.2:2222").expect("list");
        assert_eq!(h[0].name, "n1");
        assert_eq!(h[0].user.as_deref(), Some("root"));
        assert_eq!(h[1].port, Some(2222));
        assert_eq!(h[1].address, Ipv4Addr::new(10, 0, 0, 2));
        let f = parse_file_text(
            Path::new("h"),
            "# hosts\nroot@10.0.0.1\n\nroot@127.0.0.1 address=10.0.0.9 # local\n",
        )
        .expect("file");
        assert_eq!(f.len(), 2);
        assert_eq!(f[1].name, "n2");
        assert_eq!(f[1].address, Ipv4Addr::new(10, 0, 0, 9));
    }

    #[test]
    fn bad_hosts_name_the_input() {
        let cases = [
            ("root@10.0.0.1,,root@10.0.0.2", "--ssh"),
            ("root@10.0.0.1:99999", "port"),
            ("@10.0.0.1", "empty user"),
            ("root@10.0.0.1,root@10.0.0.1", "same address"),
            ("-oProxyCommand=x", "not an SSH destination"),
        ];
        for (list, want) in cases {
            let e = parse_list(list).expect_err(list).to_string();
            assert!(e.starts_with("--ssh ") && e.contains(want), "{e}");
        }
        let e = parse_file_text(Path::new("h.txt"), "root@10.0.0.1 addr=1\n")
            .expect_err("setting")
            .to_string();
        assert!(e.starts_with("--hosts h.txt:1: unknown setting"), "{e}");
        let e = parse_file_text(Path::new("h.txt"), "# nothing\n")
            .expect_err("empty")
            .to_string();
        assert!(e.contains("0 hosts"), "{e}");
    }
}
