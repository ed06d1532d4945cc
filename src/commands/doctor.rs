//! `faultline doctor`: what this machine has for the lab and the stores, and
//! the exact commands to install what is missing.

use std::process::Command;

use crate::Exit;
use crate::lab::sys::{find_tool, package_of, run as run_cmd};

/// Arguments of `faultline doctor`.
#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// Print the findings as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(serde::Serialize)]
struct Check {
    name: String,
    ok: bool,
    required: bool,
    detail: String,
    fix: Option<String>,
}

fn check(name: &str, ok: bool, required: bool, detail: String, fix: Option<String>) -> Check {
    Check {
        name: name.into(),
        ok,
        required,
        detail,
        fix: if ok { None } else { fix },
    }
}

fn tool_check(tool: &str, required: bool) -> Check {
    match find_tool(tool) {
        Some(p) => check(tool, true, required, p.display().to_string(), None),
        None => check(
            tool,
            false,
            required,
            "not found".into(),
            Some(format!("apt-get install -y {}", package_of(tool))),
        ),
    }
}

/// Probes, in a throwaway network namespace (`unshare` on a dedicated
/// thread: nothing to clean up), for netem, NFQUEUE and `statistic`.
fn probe_kernel() -> (Result<bool, String>, Result<(), String>, Result<(), String>) {
    std::thread::spawn(|| {
        if let Err(e) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET) {
            let m = format!("cannot create a network namespace: {e}");
            return (Err(m.clone()), Err(m.clone()), Err(m));
        }
        let cmd = |tool: &str, args: &[&str]| -> Result<String, String> {
            let p = find_tool(tool).ok_or_else(|| format!("`{tool}` not found"))?;
            let mut c = Command::new(p);
            c.args(args);
            run_cmd(c, None).map_err(|e| e.to_string())
        };
        let _ = cmd("ip", &["link", "set", "lo", "up"]);
        let netem = match cmd(
            "tc",
            &["qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"],
        ) {
            Ok(_) => Ok(true),
            Err(e) if e.contains("not found") => Err(e),
            Err(_) => Ok(false),
        };
        let nfq = (|| -> Result<(), String> {
            let mut q = nfq::Queue::open().map_err(|e| format!("NFQUEUE socket: {e}"))?;
            q.bind(crate::nemesis::delay::QUEUE_NUM)
                .map_err(|e| format!("NFQUEUE bind: {e}"))?;
            cmd(
                "iptables",
                &[
                    "-w",
                    "5",
                    "-A",
                    "INPUT",
                    "-j",
                    "NFQUEUE",
                    "--queue-num",
                    "7077",
                    "--queue-bypass",
                ],
            )?;
            Ok(())
        })();
        let stat = cmd(
            "iptables",
            &[
                "-w",
                "5",
                "-A",
                "INPUT",
                "-m",
                "statistic",
                "--mode",
                "random",
                "--probability",
                "0.5",
                "-j",
                "DROP",
            ],
        )
        .map(|_| ());
        (netem, nfq, stat)
    })
    .join()
    .unwrap_or_else(|_| {
        let m = "probe panicked".to_string();
        (Err(m.clone()), Err(m.clone()), Err(m))
    })
}

/// Runs `faultline doctor`: exit 0 if the lab can run here, 2 if not.
pub fn run_doctor(args: DoctorArgs) -> Exit {
    let mut checks = Vec::new();
    let root = nix::unistd::geteuid().is_root();
    checks.push(check(
        "root",
        root,
        true,
        if root {
            "running as root".into()
        } else {
            "not root".into()
        },
        Some("run faultline as root (e.g. sudo faultline ...)".into()),
    ));
    for t in ["ip", "iptables", "iptables-restore"] {
        checks.push(tool_check(t, true));
    }
    if let Some(p) = find_tool("iptables") {
        let mut c = Command::new(p);
        c.arg("-V");
        let v = run_cmd(c, None).unwrap_or_default();
        let backend = if v.contains("nf_tables") {
            "nf_tables (iptables-nft)"
        } else if v.contains("legacy") {
            "legacy (x_tables)"
        } else {
            "unknown"
        };
        checks.push(check(
            "iptables backend",
            true,
            false,
            format!("{} - {backend}", v.trim()),
            None,
        ));
    }
    checks.push(tool_check("tc", false));
    checks.push(tool_check("ping", false));
    if root && find_tool("ip").is_some() && find_tool("iptables").is_some() {
        let (netem, nfq, stat) = probe_kernel();
        let (delay_ok, delay_detail) = match (&netem, &nfq) {
            (Ok(true), _) => (true, "netem (kernel)".to_string()),
            (_, Ok(())) => (
                true,
                "no netem in this kernel; userspace NFQUEUE fallback works".to_string(),
            ),
            (n, Err(e)) => (false, format!("netem: {n:?}; NFQUEUE: {e}")),
        };
        checks.push(check(
            "delay",
            delay_ok,
            true,
            delay_detail,
            Some("a kernel with CONFIG_NET_SCH_NETEM or CONFIG_NETFILTER_NETLINK_QUEUE".into()),
        ));
        checks.push(check(
            "loss (iptables statistic)",
            stat.is_ok(),
            true,
            stat.err().unwrap_or_else(|| "works".into()),
            Some("a kernel with CONFIG_NETFILTER_XT_MATCH_STATISTIC".into()),
        ));
    }
    let br = std::fs::read_to_string("/proc/sys/net/bridge/bridge-nf-call-iptables")
        .map(|s| s.trim() == "1")
        .unwrap_or(false);
    checks.push(check(
        "br_netfilter",
        true,
        false,
        if br {
            "bridged traffic passes the root FORWARD chain; faultline adds its own FL-<lab>-FWD accept chain when the policy is not ACCEPT".into()
        } else {
            "bridged traffic bypasses iptables in the root namespace".into()
        },
        None,
    ));
    let stores = crate::stores::registry::STORES
        .iter()
        .flat_map(|e| e.doctor)
        .map(|r| (r.what, r.find(), r.install));
    for (name, found, fix) in stores {
        checks.push(check(
            name,
            found.is_some(),
            false,
            found.map_or("not installed".into(), |p| p.display().to_string()),
            Some(fix.into()),
        ));
    }
    let ready = checks.iter().all(|c| c.ok || !c.required);
    if args.json {
        println!(
            "{}",
            serde_json::json!({"ready": ready, "checks": serde_json::to_value(&checks).unwrap_or_default()})
        );
    } else {
        for c in &checks {
            let tag = match (c.ok, c.required) {
                (true, _) => "ok     ",
                (false, true) => "MISSING",
                (false, false) => "absent ",
            };
            println!("{tag} {:<26} {}", c.name, c.detail);
            if let Some(f) = &c.fix {
                println!("        fix: {f}");
            }
        }
        let mut pkgs: Vec<&str> = checks
            .iter()
            .filter(|c| !c.ok && c.required)
            .filter_map(|c| c.fix.as_deref()?.strip_prefix("apt-get install -y "))
            .collect();
        pkgs.sort();
        pkgs.dedup();
        if !pkgs.is_empty() {
            println!(
                "to install what the lab needs: apt-get install -y {}",
                pkgs.join(" ")
            );
        }
        println!(
            "{}",
            if ready {
                "the lab can run here"
            } else {
                "the lab cannot run here yet"
            }
        );
    }
    if ready { Exit::Valid } else { Exit::Error }
}

/// Runs `faultline doctor`.
pub fn run(args: DoctorArgs) -> Exit {
    run_doctor(args)
}
