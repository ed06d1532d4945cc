//! The store's processes on a remote host (bring your own cluster): found
//! by a pid file or a command pattern the user gives, never by a bare
//! program name; signalled as a whole process tree (parent first), by PID.
//! The pid file's path or the pattern travel on the script's stdin, so the
//! pattern never appears on a command line where `pgrep -f` would find it.

use super::host::Host;
use super::hosts::{Find, HostSpec, ProcessSpec};
use super::{RemoteError, Result};

/// Shell functions every process script starts with: `roots` prints the
/// server's PIDs (read from the pid file, or `pgrep -f`), `alive` says
/// whether a PID runs (a zombie does not), `tree` prints PIDs and all their
/// descendants. The first two input lines are the method and its argument.
const FINDER: &str = r#"read -r how; read -r what
alive() { s=$(ps -o stat= -p "$1" 2>/dev/null) || return 1; case "$s" in Z*|'') return 1;; esac; }
roots() {
  case "$how" in
    pidfile) [ -r "$what" ] || return 0; p=$(tr -d ' \t\n' < "$what")
             case "$p" in ''|*[!0-9]*) ;; *) alive "$p" && echo "$p";; esac ;;
    pattern) pgrep -f -- "$what" ;;
  esac
}
tree() { for p in "$@"; do echo "$p"; tree $(pgrep -P "$p"); done; }
"#;

/// The stdin of a process script: the method, its argument (with
/// `{node}`/`{ip}` expanded for `host`), then `extra` lines.
fn input(spec: &ProcessSpec, host: &HostSpec, extra: &[String]) -> Vec<u8> {
    let (how, what) = match &spec.find {
        Find::Pidfile(p) => ("pidfile", ProcessSpec::expand(p, host)),
        Find::Pattern(p) => ("pattern", ProcessSpec::expand(p, host)),
    };
    let mut s = format!("{how}\n{what}\n");
    for e in extra {
        s.push_str(e);
        s.push('\n');
    }
    s.into_bytes()
}

fn describe(spec: &ProcessSpec) -> String {
    match &spec.find {
        Find::Pidfile(p) => format!("pidfile={p}"),
        Find::Pattern(p) => format!("pattern={p}"),
    }
}

/// The PIDs of the server's whole process tree now (empty: not running).
pub async fn find(host: &Host, spec: &ProcessSpec) -> Result<Vec<u32>> {
    let out = host
        .run_with_input(
            &format!("finding the store's processes ({})", describe(spec)),
            &format!("{FINDER}tree $(roots)"),
            &input(spec, &host.spec, &[]),
        )
        .await?;
    Ok(out
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect())
}

/// Sends `signal` (`STOP`, `CONT`) to the server's whole tree; an error if
/// no process is found.
pub async fn signal(host: &Host, spec: &ProcessSpec, signal: &str) -> Result<()> {
    let script = format!(
        "{FINDER}all=$(tree $(roots)); [ -n \"$all\" ] || {{ echo \"no running process found\" >&2; exit 3; }}\n\
         $SUDO kill -{signal} $all"
    );
    host.run_with_input(
        &format!("SIG{signal} to the store ({})", describe(spec)),
        &script,
        &input(spec, &host.spec, &[]),
    )
    .await
    .map(drop)
}

/// SIGKILLs the server's whole tree and waits (up to 5 s) until it is gone;
/// an error if no process is found.
pub async fn kill(host: &Host, spec: &ProcessSpec) -> Result<()> {
    kill_tree(host, spec, "exit 3").await
}

/// Stops the server: SIGKILL to the whole tree, if it runs.
pub async fn stop(host: &Host, spec: &ProcessSpec) -> Result<()> {
    kill_tree(host, spec, "exit 0").await
}

async fn kill_tree(host: &Host, spec: &ProcessSpec, if_none: &str) -> Result<()> {
    let complain = if if_none == "exit 0" {
        ""
    } else {
        "echo \"no running process found\" >&2; "
    };
    let script = format!(
        "{FINDER}all=$(tree $(roots)); [ -n \"$all\" ] || {{ {complain}{if_none}; }}\n\
         $SUDO kill -CONT $all 2>/dev/null; $SUDO kill -KILL $all 2>/dev/null\n\
         i=0; while [ $i -lt 100 ]; do left=; for p in $all; do alive $p && left=$p; done\n\
           [ -z \"$left\" ] && exit 0; sleep 0.05; i=$((i+1)); done\n\
         echo \"still running 5 s after SIGKILL: $left\" >&2; exit 1"
    );
    host.run_with_input(
        &format!("SIGKILL to the store ({})", describe(spec)),
        &script,
        &input(spec, &host.spec, &[]),
    )
    .await
    .map(drop)
}

/// The log the start command writes to on the host.
pub const START_LOG: &str = "/tmp/faultline-start.log";

/// Starts the server with the user's `start` command unless it runs, and
/// waits (up to 15 s) until the pid file or pattern finds it.
pub async fn start(host: &Host, spec: &ProcessSpec) -> Result<()> {
    let Some(cmd) = &spec.start else {
        return Err(RemoteError::Command {
            host: host.spec.destination.clone(),
            what: "starting the store".into(),
            reason: "no --db-opt start=COMMAND was given".into(),
        });
    };
    let cmd = ProcessSpec::expand(cmd, &host.spec);
    let script = format!(
        "{FINDER}read -r cmd\n\
         [ -n \"$(roots)\" ] && exit 0\n\
         cd / && $SUDO setsid sh -c \"$cmd\" </dev/null >>{START_LOG} 2>&1 &\n\
         i=0; while [ $i -lt 150 ]; do [ -n \"$(roots)\" ] && exit 0; sleep 0.1; i=$((i+1)); done\n\
         echo \"nothing found by $how $what 15 s after running the start command (its output: {START_LOG})\" >&2; exit 1"
    );
    host.run_with_input(
        "starting the store (--db-opt start)",
        &script,
        &input(spec, &host.spec, &[cmd]),
    )
    .await
    .map(drop)
}
