//! `faultline doctor`: what this machine has for the lab and the stores, and
//! the exact commands to install what is missing.

use std::process::Command;

use crate::Exit;
use crate::lab::net;
use crate::lab::nft::{self, Change, Match, Nft, Rule, Verdict};
use crate::lab::rtnl::Rtnl;
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

/// What the kernel probe found.
struct Probe {
    rtnl: Result<(), String>,
    nft: Result<&'static str, String>,
    netem: Result<bool, String>,
    nfq: Result<(), String>,
}

/// Probes, in a throwaway network namespace (`unshare` on a dedicated
/// thread: nothing to clean up), what the lab and the nemesis do: links
/// over rtnetlink, faultline's nftables table with a loss rule (`numgen`)
/// and a delay rule (`queue`), an NFQUEUE binding, and netem.
fn probe_kernel() -> Probe {
    std::thread::spawn(|| {
        if let Err(e) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET) {
            let m = format!("cannot create a network namespace: {e}");
            return Probe {
                rtnl: Err(m.clone()),
                nft: Err(m.clone()),
                netem: Err(m.clone()),
                nfq: Err(m),
            };
        }
        let rtnl = Rtnl::open("doctor probe")
            .and_then(|mut r| r.batch(vec![Rtnl::up_msg("lo")]))
            .map_err(|e| e.to_string());
        let nft = (|| {
            let mut changes = net::node_table();
            let rule = |chain: &str, r: Rule| Change::AddRule {
                family: nft::IPV4,
                table: net::NODE_TABLE.into(),
                chain: chain.into(),
                rule: r,
                append: true,
            };
            changes.push(rule(
                net::CHAIN_LOSS,
                Rule::new(
                    vec![Match::Random {
                        below: 5000,
                        of: crate::nemesis::LOSS_SCALE,
                    }],
                    Verdict::Drop,
                ),
            ));
            let mut n = Nft::open("doctor probe")?;
            n.apply(&changes)?;
            let v = crate::nemesis::delay::queue_verdict(|v| {
                n.apply(&[rule(
                    net::CHAIN_DELAY,
                    Rule::new(
                        vec![Match::SaddrIn(std::net::Ipv4Addr::new(10, 77, 0, 0), 24)],
                        v,
                    ),
                )])
            })
            .map_err(|e| {
                crate::lab::LabError::io("queue rule", std::io::Error::other(e.to_string()))
            })?;
            Ok(match v {
                Verdict::QueueBypass(_) => "nftables `queue`",
                _ => "the x_tables NFQUEUE target through nft_compat",
            })
        })()
        .map_err(|e: crate::lab::LabError| e.to_string());
        let netem = match find_tool("tc") {
            None => Err("`tc` not found".to_string()),
            Some(p) => {
                let mut c = Command::new(p);
                c.args(["qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"]);
                Ok(run_cmd(c, None).is_ok())
            }
        };
        let nfq = nfq::Queue::open()
            .map_err(|e| format!("NFQUEUE socket: {e}"))
            .and_then(|mut q| {
                q.bind(crate::nemesis::delay::QUEUE_NUM)
                    .map_err(|e| format!("NFQUEUE bind: {e}"))
            });
        Probe {
            rtnl,
            nft,
            netem,
            nfq,
        }
    })
    .join()
    .unwrap_or_else(|_| {
        let m = "probe panicked".to_string();
        Probe {
            rtnl: Err(m.clone()),
            nft: Err(m.clone()),
            netem: Err(m.clone()),
            nfq: Err(m),
        }
    })
}

/// What happens to bridged frames in the root namespace's forward path.
fn forward_detail() -> String {
    let mut d = "bridged traffic passes the root forward hook".to_string();
    match net::forward_drop_chains() {
        Ok(v) if v.is_empty() => d.push_str("; no base chain there drops it by default"),
        Ok(v) => {
            let names: Vec<String> = v
                .iter()
                .map(|c| format!("{} {} {}", nft::family_name(c.family), c.table, c.name))
                .collect();
            d.push_str(&format!(
                "; policy drop in {}: each lab adds its FL-<lab>-FWD accept chain and one jump there",
                names.join(", ")
            ));
        }
        Err(e) => d.push_str(&format!("; cannot list nftables chains: {e}")),
    }
    if std::fs::read_to_string("/proc/net/ip_tables_names")
        .is_ok_and(|s| s.lines().any(|l| l.trim() == "filter"))
    {
        d.push_str(&format!(
            "; the iptables-legacy filter table is loaded ({})",
            if find_tool("iptables-legacy").is_some() {
                "handled with iptables-legacy"
            } else {
                "iptables-legacy is not installed: a legacy FORWARD DROP cannot be seen"
            }
        ));
    }
    d
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
    checks.push(tool_check("tc", false));
    checks.push(tool_check("ping", false));
    if root {
        let p = probe_kernel();
        checks.push(check(
            "rtnetlink",
            p.rtnl.is_ok(),
            true,
            p.rtnl.clone().err().unwrap_or_else(|| {
                "links, addresses and namespaces are made over netlink (no `ip` needed)".into()
            }),
            Some("a kernel with network namespaces, veth and bridge".into()),
        ));
        checks.push(check(
            "nftables",
            p.nft.is_ok(),
            true,
            match &p.nft {
                Ok(q) => format!(
                    "partitions, loss (numgen random) and the delay queue rule ({q}) are nftables rules over netlink (no `iptables` or `nft` needed)"
                ),
                Err(e) => e.clone(),
            },
            Some("a kernel with CONFIG_NF_TABLES, NFT_NUMGEN and NFT_QUEUE".into()),
        ));
        let (delay_ok, delay_detail) = match (&p.netem, &p.nfq) {
            (Ok(true), _) => (true, "netem (kernel, via `tc`)".to_string()),
            (_, Ok(())) => (
                true,
                "userspace NFQUEUE holder (no netem here, or no `tc`)".to_string(),
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
    }
    let br = std::fs::read_to_string("/proc/sys/net/bridge/bridge-nf-call-iptables")
        .map(|s| s.trim() == "1")
        .unwrap_or(false);
    checks.push(check(
        "br_netfilter",
        true,
        false,
        if br {
            forward_detail()
        } else {
            "bridged traffic does not pass the root namespace's forward hook (br_netfilter off)"
                .into()
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
