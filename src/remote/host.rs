//! One remote host, connected over SSH: the small interface every remote
//! fault goes through. [`Host::run`] runs a POSIX shell script on the host
//! (with data on its stdin, so nothing the user gives appears on a command
//! line), [`Host::write_file`] writes a file. Other parts of the nemesis
//! (clock faults) use the same two calls.
//!
//! The connection is the system `ssh` as a multiplexing master (the
//! `openssh` crate): `BatchMode=yes` (never a password prompt),
//! `StrictHostKeyChecking=yes` (the host key must already be in
//! known_hosts, or in `--ssh-known-hosts FILE`), the agent's keys or
//! `--ssh-identity FILE`. One idle `cat` session keeps the master busy while
//! the run lives; the master exits a few seconds after that session ends,
//! so a SIGKILLed run leaves no SSH process behind for long.

use std::net::Ipv4Addr;
use std::num::NonZeroUsize;
use std::path::Path;

use std::sync::Arc;
use std::time::Duration;

use openssh::{ControlPersist, KnownHosts, Session, SessionBuilder, Stdio};
use tokio::io::AsyncWriteExt;

use super::hosts::{HostSpec, SshOptions};
use super::{RemoteError, Result};

/// How long one remote command may take before it is an error.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The prefix of every script: the usual sbin directories on PATH, and
/// `$SUDO` (`sudo -n` unless the SSH user is root).
const PRELUDE: &str = "PATH=\"$PATH:/usr/local/sbin:/usr/sbin:/sbin\"; SUDO=; [ \"$(id -u)\" = 0 ] || SUDO='sudo -n'\n";

/// A connected host.
pub struct Host {
    /// The host as given.
    pub spec: HostSpec,
    session: Arc<Session>,
    keepalive: Option<openssh::Child<Arc<Session>>>,
    control_ip: Ipv4Addr,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("spec", &self.spec)
            .field("control_ip", &self.control_ip)
            .finish()
    }
}

/// ssh's complaint in one line.
fn one_line(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut src = e.source();
    while let Some(s) = src {
        parts.push(s.to_string());
        src = s.source();
    }
    parts
        .join(": ")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Checks that the files named in `ssh` exist (an error naming the flag).
pub fn check_options(ssh: &SshOptions) -> Result<()> {
    for (flag, p) in [
        ("--ssh-identity", &ssh.identity),
        ("--ssh-known-hosts", &ssh.known_hosts),
    ] {
        if let Some(p) = p
            && !p.is_file()
        {
            return Err(RemoteError::BadHosts {
                input: format!("{flag} {}", p.display()),
                reason: "no such file".into(),
            });
        }
    }
    Ok(())
}

impl Host {
    /// Connects to `spec` (its control socket in `control_dir`) and learns
    /// the control machine's address as the host sees it.
    pub async fn connect(spec: &HostSpec, ssh: &SshOptions, control_dir: &Path) -> Result<Host> {
        let mut b = SessionBuilder::default();
        b.known_hosts_check(KnownHosts::Strict)
            .connect_timeout(CONNECT_TIMEOUT)
            .server_alive_interval(Duration::from_secs(5))
            .control_directory(control_dir)
            .control_persist(ControlPersist::IdleFor(
                NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN),
            ));
        if let Some(k) = &ssh.known_hosts {
            b.user_known_hosts_file(k);
        }
        if let Some(i) = &ssh.identity {
            b.keyfile(i);
        }
        if let Some(u) = &spec.user {
            b.user(u.clone());
        }
        if let Some(p) = spec.port {
            b.port(p);
        }
        let connect = tokio::time::timeout(CONNECT_TIMEOUT * 2, b.connect(&spec.host));
        let session = match connect.await {
            Ok(Ok(s)) => Arc::new(s),
            Ok(Err(e)) => {
                return Err(RemoteError::Connect {
                    host: spec.destination.clone(),
                    reason: one_line(&e),
                });
            }
            Err(_) => {
                return Err(RemoteError::Connect {
                    host: spec.destination.clone(),
                    reason: format!("no answer within {} s", (CONNECT_TIMEOUT * 2).as_secs()),
                });
            }
        };
        let keepalive = Session::to_command(session.clone(), "cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .await
            .ok();
        let mut host = Host {
            spec: spec.clone(),
            session,
            keepalive,
            control_ip: Ipv4Addr::UNSPECIFIED,
        };
        let conn = host
            .run("reading SSH_CONNECTION", "echo \"$SSH_CONNECTION\"")
            .await?;
        host.control_ip = conn
            .split_whitespace()
            .next()
            .and_then(|ip| ip.parse().ok())
            .ok_or_else(|| RemoteError::Command {
                host: spec.destination.clone(),
                what: "reading SSH_CONNECTION".into(),
                reason: format!(
                    "expected the control machine's IPv4 address first, got {:?}",
                    conn.trim()
                ),
            })?;
        Ok(host)
    }

    /// The same connection, known as `spec` (another run's name for the
    /// host, for `{node}` in its settings).
    pub fn with_spec(&self, spec: &HostSpec) -> Host {
        Host {
            spec: spec.clone(),
            session: self.session.clone(),
            keepalive: None,
            control_ip: self.control_ip,
        }
    }

    /// The control machine's address, as this host sees it (exempt from
    /// every fault).
    pub fn control_ip(&self) -> Ipv4Addr {
        self.control_ip
    }

    /// The node name (n1, …).
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    fn error(&self, what: &str, reason: String) -> RemoteError {
        RemoteError::Command {
            host: format!("{} ({})", self.spec.name, self.spec.destination),
            what: what.to_string(),
            reason,
        }
    }

    /// Runs `script` with `sh -c` on the host (after [`PRELUDE`]), with
    /// `input` on its stdin; its stdout, or an error naming `what`, the
    /// exit status and the last line of stderr.
    pub async fn run_with_input(&self, what: &str, script: &str, input: &[u8]) -> Result<String> {
        let out = self.run_raw(what, script, input).await?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// [`Host::run_with_input`], its stdout as bytes.
    async fn run_raw(&self, what: &str, script: &str, input: &[u8]) -> Result<Vec<u8>> {
        let full = format!("{PRELUDE}{script}");
        let go = async {
            let mut child = self
                .session
                .command("sh")
                .arg("-c")
                .arg(&full)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .await
                .map_err(|e| self.error(what, one_line(&e)))?;
            if let Some(mut stdin) = child.stdin().take() {
                // A script that does not read its input is not an error.
                let _ = stdin.write_all(input).await;
                let _ = stdin.shutdown().await;
            }
            child
                .wait_with_output()
                .await
                .map_err(|e| self.error(what, one_line(&e)))
        };
        let out = tokio::time::timeout(COMMAND_TIMEOUT, go)
            .await
            .map_err(|_| {
                self.error(
                    what,
                    format!("no answer within {} s", COMMAND_TIMEOUT.as_secs()),
                )
            })??;
        if out.status.success() {
            return Ok(out.stdout);
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty() && !l.starts_with("# Warning: iptables-legacy"))
            .unwrap_or("");
        let status = match out.status.code() {
            Some(c) => format!("exit {c}"),
            None => "killed".to_string(),
        };
        Err(self.error(
            what,
            if last.is_empty() {
                status
            } else {
                format!("{status}: {last}")
            },
        ))
    }

    /// Runs `script` with nothing on its stdin (see
    /// [`Host::run_with_input`]).
    pub async fn run(&self, what: &str, script: &str) -> Result<String> {
        self.run_with_input(what, script, b"").await
    }

    /// Writes `bytes` to `path` on the host (a temporary file renamed into
    /// place, so a reader never sees half of it).
    pub async fn write_file(&self, path: &str, bytes: &[u8]) -> Result<()> {
        let p = super::sh_quote(path);
        let tmp = super::sh_quote(&format!("{path}.faultline-tmp"));
        self.run_with_input(
            &format!("writing {path}"),
            &format!("cat > {tmp} && mv -f {tmp} {p}"),
            bytes,
        )
        .await
        .map(drop)
    }

    /// Up to `len` bytes of the file `path` on the host from `offset`
    /// (fewer at its end).
    pub async fn read_bytes(&self, path: &str, offset: u64, len: usize) -> Result<Vec<u8>> {
        self.run_raw(
            &format!("reading {path}"),
            &format!(
                "tail -c +{} {} | head -c {len}",
                offset.saturating_add(1),
                super::sh_quote(path)
            ),
            b"",
        )
        .await
    }

    /// Ends the keepalive session and the SSH master.
    pub async fn close(mut self) {
        if let Some(k) = self.keepalive.take() {
            let _ = k.disconnect().await;
        }
        if let Some(s) = Arc::into_inner(self.session) {
            let _ = s.close().await;
        }
    }
}
