//! Small system helpers: root check, finding tools, running commands (in the
//! root namespace or inside a node's network namespace).

use std::fs::File;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::sched::CloneFlags;

use super::{LabError, Result};

/// Where `ip netns` keeps its namespace files.
pub const NETNS_DIR: &str = "/run/netns";

/// Fails with [`LabError::NotRoot`] unless the effective user is root.
pub fn require_root() -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(LabError::NotRoot)
    }
}

/// Finds a program in `PATH`, then in the sbin directories (which a
/// non-login root shell may lack from its `PATH`).
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"]
                .iter()
                .map(PathBuf::from),
        )
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The Debian package that provides a tool faultline uses.
pub fn package_of(tool: &str) -> &'static str {
    match tool {
        "ip" => "iproute2",
        "tc" => "iproute2",
        "iptables" | "iptables-restore" | "iptables-save" => "iptables",
        "nft" => "nftables",
        "ping" => "iputils-ping",
        _ => "the package that provides it",
    }
}

/// Finds a required tool or fails with the install command.
pub fn require_tool(name: &str) -> Result<PathBuf> {
    find_tool(name).ok_or_else(|| LabError::MissingTool {
        tool: name.to_string(),
        package: package_of(name).to_string(),
    })
}

/// Checks what the lab commands need: root. They program the kernel
/// directly (rtnetlink, nftables over netlink, namespaces with
/// unshare/mount) and need no `ip` or `iptables` program.
pub fn preflight() -> Result<()> {
    require_root()
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs a command to completion, feeding `stdin`, and returns its stdout.
/// A non-zero exit is an error carrying the command line and its stderr.
pub fn run(mut cmd: Command, stdin: Option<&str>) -> Result<String> {
    let what = describe(&cmd);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| LabError::Command {
        command: what.clone(),
        reason: e.to_string(),
    })?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A failed write shows up as the command's own error below.
        let _ = pipe.write_all(input.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| LabError::Command {
        command: what.clone(),
        reason: e.to_string(),
    })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let err: Vec<&str> = err
            .lines()
            .filter(|l| !l.contains("iptables-legacy tables present") && !l.trim().is_empty())
            .collect();
        Err(LabError::Command {
            command: what,
            reason: if err.is_empty() {
                format!("{}", out.status)
            } else {
                err.join("; ")
            },
        })
    }
}

/// A command for a tool found with [`require_tool`].
pub fn tool(name: &str) -> Result<Command> {
    Ok(Command::new(require_tool(name)?))
}

/// Opens a namespace file `/run/netns/<netns>`.
pub fn open_netns(netns: &str) -> Result<File> {
    let p = Path::new(NETNS_DIR).join(netns);
    File::open(&p)
        .map_err(|e| LabError::io(format!("opening network namespace {}", p.display()), e))
}

/// A command that runs `program` inside the network namespace `netns`: the
/// child calls `setns` between `fork` and `exec`, so its PID is the program's.
pub fn command_in_netns(netns: &str, program: &str) -> Result<Command> {
    let f = open_netns(netns)?;
    let mut cmd = Command::new(program);
    // SAFETY: the closure only calls setns(2) and sigprocmask(2), which are
    // async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            nix::sched::setns(&f, CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
            // faultline's long-running processes block the signals they wait
            // for; the program must start with an empty mask.
            nix::sys::signal::SigSet::empty()
                .thread_set_mask()
                .map_err(std::io::Error::from)
        });
    }
    Ok(cmd)
}

/// Runs a tool (found with [`require_tool`]) inside a namespace.
pub fn tool_in_netns(netns: &str, name: &str) -> Result<Command> {
    let p = require_tool(name)?;
    command_in_netns(netns, &p.to_string_lossy())
}

/// Runs `f` on a fresh thread that has entered `netns`; sockets created there
/// stay in that namespace. The calling thread is not affected.
pub fn in_netns<T: Send + 'static>(
    netns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    let ns = open_netns(netns)?;
    let name = netns.to_string();
    std::thread::spawn(move || {
        nix::sched::setns(&ns, CloneFlags::CLONE_NEWNET)
            .map_err(|e| LabError::io(format!("entering network namespace {name}"), e.into()))?;
        Ok(f())
    })
    .join()
    .unwrap_or_else(|_| {
        Err(LabError::io(
            format!("thread in network namespace {netns}"),
            std::io::Error::other("panicked"),
        ))
    })
}

/// The inode of a namespace file, which identifies the namespace.
pub fn netns_inode(netns: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(Path::new(NETNS_DIR).join(netns))
        .ok()
        .map(|m| m.ino())
}

/// Names of the network namespaces under `/run/netns`.
pub fn list_netns() -> Vec<String> {
    std::fs::read_dir(NETNS_DIR)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Names of the network interfaces in the root namespace.
pub fn list_links() -> Vec<String> {
    std::fs::read_dir("/sys/class/net")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}
