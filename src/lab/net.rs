//! Creating and removing labs: subnet choice, namespaces, veths, bridge,
//! faultline's chains, and the state-driven teardown used by `lab down`,
//! `faultline clean`, signal handlers and panic hooks.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;

use std::os::fd::AsRawFd;

use super::nft::{self, Change, Hook, Match, Nft, Rule, Verdict};
use super::proc::{ProcId, pids_in_netns, stop_tree};
use super::rtnl::Rtnl;
use super::state::{self, LabState, NodeState};
use super::sys::{self, netns_inode};
use super::{Lab, LabError, Result, netlink, netns, validate_name};

/// Most nodes in one lab (`fl-<8 chars>-n99` is 15 bytes, the kernel's limit).
pub const MAX_NODES: usize = 99;

/// faultline's nftables table (family `ip`) inside every node namespace.
pub const NODE_TABLE: &str = "faultline";
/// The base chain of [`NODE_TABLE`] on the input hook; it jumps to the
/// fault chains, in [`NODE_CHAINS`] order.
pub const NODE_INPUT: &str = "input";
/// Chain for partitions, inside every node namespace.
pub const CHAIN_PARTITION: &str = "FL-PART";
/// Chain for packet loss, inside every node namespace.
pub const CHAIN_LOSS: &str = "FL-LOSS";
/// Chain for delay (NFQUEUE), inside every node namespace.
pub const CHAIN_DELAY: &str = "FL-DELAY";
/// The chains faultline adds inside every node, in `INPUT` order.
pub const NODE_CHAINS: [&str; 3] = [CHAIN_PARTITION, CHAIN_LOSS, CHAIN_DELAY];

/// What to create.
#[derive(Clone, Debug)]
pub struct LabSpec {
    /// Lab name (1-8 lowercase letters or digits).
    pub name: String,
    /// Number of nodes (1-99).
    pub nodes: usize,
    /// Data directory (default `/var/lib/faultline/<name>`).
    pub dir: Option<PathBuf>,
    /// If true, this process owns the lab: should it die without tearing the
    /// lab down, the lab counts as a leftover for `clean`.
    pub owned: bool,
    /// If true, the lab also gets a clients' namespace (`fl-<lab>-c`, at
    /// `.253`), where external client programs run with no route out of
    /// the lab.
    pub client_ns: bool,
    /// If true, the teardown removes the data directory too (a run copies
    /// the logs it keeps into its store directory first).
    pub remove_dir: bool,
}

/// Network namespace of node `i` of lab `lab`.
pub fn netns_name(lab: &str, i: usize) -> String {
    format!("fl-{lab}-n{i}")
}

/// The clients' namespace of lab `lab` (also its root-side veth).
pub fn client_netns_name(lab: &str) -> String {
    format!("fl-{lab}-c")
}

/// Bridge of lab `lab`.
pub fn bridge_name(lab: &str) -> String {
    format!("fl-{lab}-br")
}

/// faultline's chain for lab `lab` in the root namespace, next to each base
/// chain on the forward hook whose policy drops (see [`forward_drop_chains`]).
pub fn root_chain_name(lab: &str) -> String {
    format!("FL-{lab}-FWD")
}

// ------------------------------------------------------------------ subnets

/// An IPv4 network: address and prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Net {
    /// Network address.
    pub addr: Ipv4Addr,
    /// Prefix length.
    pub len: u8,
}

impl Net {
    fn range(&self) -> (u32, u32) {
        let a = u32::from(self.addr);
        let mask = if self.len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.len.min(32)))
        };
        let lo = a & mask;
        (lo, lo | !mask)
    }

    /// True if the two networks share an address.
    pub fn overlaps(&self, o: &Net) -> bool {
        let (a0, a1) = self.range();
        let (b0, b1) = o.range();
        a0 <= b1 && b0 <= a1
    }

    /// Parses `a.b.c.d` or `a.b.c.d/len`.
    pub fn parse(s: &str) -> Option<Net> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, l.parse().ok()?),
            None => (s, 32),
        };
        Some(Net {
            addr: a.parse().ok()?,
            len: l,
        })
    }
}

/// The /24 candidates, in order of preference.
pub fn candidates() -> impl Iterator<Item = Ipv4Addr> {
    (0..=255u8)
        .map(|c| Ipv4Addr::new(10, 77, c, 0))
        .chain((0..=255u8).map(|c| Ipv4Addr::new(172, 31, c, 0)))
        .chain((100..=255u8).map(|c| Ipv4Addr::new(192, 168, c, 0)))
}

/// Picks the first candidate /24 that overlaps none of `used`.
pub fn pick_subnet(used: &[Net]) -> Option<Ipv4Addr> {
    candidates().find(|c| {
        let n = Net { addr: *c, len: 24 };
        !used.iter().any(|u| u.overlaps(&n))
    })
}

/// The IPv4 networks in use on this machine: every address (with its
/// prefix), every route in every table except the default route.
fn machine_networks() -> Result<Vec<Net>> {
    Rtnl::open("root namespace")?.networks()
}

// ------------------------------------------------------------------ leftovers

/// Everything on the machine that looks like faultline's but that no state
/// file records, plus labs whose state says their run crashed.
pub fn leftovers(labs: &[LabState]) -> Vec<String> {
    let mut out = Vec::new();
    let mut known_ns = BTreeSet::new();
    let mut known_links = BTreeSet::new();
    let mut known_chains = BTreeSet::new();
    for l in labs {
        if let Some(r) = l.stale_reason() {
            out.push(r);
        }
        known_links.insert(l.bridge.clone());
        for n in l.namespaces() {
            known_ns.insert(n.netns.clone());
            known_links.insert(n.veth.clone());
        }
        known_chains.insert(root_chain_name(&l.name));
    }
    for ns in sys::list_netns() {
        if is_ours(&ns) && !known_ns.contains(&ns) {
            out.push(format!("network namespace {ns}"));
        }
    }
    for l in sys::list_links() {
        if is_ours(&l) && !known_links.contains(&l) {
            out.push(format!("interface {l}"));
        }
    }
    for c in root_chains() {
        if !known_chains.contains(&c) {
            out.push(format!("root chain {c}"));
        }
    }
    out
}

/// A chain in the root namespace: nftables family, table and name.
#[derive(Clone, Debug, PartialEq, Eq)]
struct RootChain {
    family: u8,
    table: String,
    name: String,
}

/// faultline's chains in the root namespace (`FL-<lab>-FWD`, in whatever
/// table they hook into), and those iptables-legacy holds.
fn root_chains() -> Vec<String> {
    let mut out: Vec<String> = root_nft_chains()
        .into_iter()
        .map(|c| c.name)
        .chain(legacy::chains())
        .collect();
    out.sort();
    out.dedup();
    out
}

fn is_root_chain_name(c: &str) -> bool {
    c.strip_prefix("FL-")
        .and_then(|r| r.strip_suffix("-FWD"))
        .is_some_and(|lab| validate_name(lab).is_ok())
}

fn root_nft_chains() -> Vec<RootChain> {
    let Ok(chains) = Nft::open("root namespace").and_then(|mut n| n.chains()) else {
        return Vec::new();
    };
    chains
        .into_iter()
        .filter(|c| is_root_chain_name(&c.name))
        .map(|c| RootChain {
            family: c.family,
            table: c.table,
            name: c.name,
        })
        .collect()
}

/// True if bridged frames go through the root namespace's forward hook
/// (br_netfilter).
fn bridged_frames_filtered() -> bool {
    std::fs::read_to_string("/proc/sys/net/bridge/bridge-nf-call-iptables")
        .map(|s| s.trim() == "1")
        .unwrap_or(false)
}

/// The base chains (family `ip` or `inet`) on the root namespace's forward
/// hook whose policy is drop, e.g. iptables-nft's `ip filter FORWARD` after
/// `iptables -P FORWARD DROP` (what Docker sets). An accept in a chain of
/// faultline's own table would not help: every base chain on a hook sees
/// the packet and any of them may drop it, so the accept must be reached
/// from each dropping chain itself.
pub fn forward_drop_chains() -> Result<Vec<nft::ChainInfo>> {
    if !bridged_frames_filtered() {
        return Ok(Vec::new());
    }
    let chains = Nft::open("root namespace")?.chains()?;
    Ok(chains
        .into_iter()
        .filter(|c| {
            (c.family == nft::IPV4 || c.family == nft::INET)
                && c.hook == Some(nft::HOOK_FORWARD)
                && c.policy == Some(nft::DROP)
        })
        .collect())
}

/// True if bridged frames would be dropped in the root namespace's forward
/// path unless faultline lets them through.
fn forward_needs_chain() -> Result<bool> {
    Ok(
        !forward_drop_chains()?.is_empty()
            || (bridged_frames_filtered() && legacy::forward_drops()),
    )
}

/// The root namespace's forward accept for a lab: in each dropping base
/// chain's table, faultline's chain `FL-<lab>-FWD` accepting frames from the
/// bridge to the bridge, and one jump to it at the head of the base chain;
/// all in one transaction.
fn add_forward_accept(chain: &str, bridge: &str) -> Result<()> {
    let mut changes = Vec::new();
    for base in forward_drop_chains()? {
        let (family, table) = (base.family, base.table.clone());
        changes.push(Change::AddChain {
            family,
            table: table.clone(),
            chain: chain.to_string(),
            hook: None,
        });
        changes.push(Change::Flush {
            family,
            table: table.clone(),
            chain: chain.to_string(),
        });
        changes.push(Change::AddRule {
            family,
            table: table.clone(),
            chain: chain.to_string(),
            rule: Rule::new(
                vec![
                    Match::Iifname(bridge.to_string()),
                    Match::Oifname(bridge.to_string()),
                ],
                Verdict::Accept,
            ),
            append: true,
        });
        changes.push(Change::AddRule {
            family,
            table,
            chain: base.name.clone(),
            rule: Rule::new(Vec::new(), Verdict::Jump(chain.to_string())),
            append: false,
        });
    }
    Nft::open("root namespace")?.apply(&changes)?;
    if bridged_frames_filtered() && legacy::forward_drops() {
        legacy::add_forward_accept(chain, bridge)?;
    }
    Ok(())
}

/// Removes faultline's chain `chain` from every table of the root namespace
/// that has it, with every rule that jumps to it (one transaction per
/// table), and from iptables-legacy.
fn remove_root_chain(chain: &str) {
    let mut tables: Vec<(u8, String)> = root_nft_chains()
        .into_iter()
        .filter(|c| c.name == chain)
        .map(|c| (c.family, c.table))
        .collect();
    tables.dedup();
    if !tables.is_empty()
        && let Ok(mut n) = Nft::open("root namespace")
    {
        let all = n.chains().unwrap_or_default();
        for (family, table) in tables {
            let mut changes = Vec::new();
            for c in all
                .iter()
                .filter(|c| c.family == family && c.table == table && c.name != chain)
            {
                for r in n.rules(family, &table, &c.name).unwrap_or_default() {
                    if r.jump.as_deref() == Some(chain) {
                        changes.push(Change::DelRule {
                            family,
                            table: table.clone(),
                            chain: c.name.clone(),
                            handle: r.handle,
                        });
                    }
                }
            }
            changes.push(Change::Flush {
                family,
                table: table.clone(),
                chain: chain.to_string(),
            });
            changes.push(Change::DelChain {
                family,
                table,
                chain: chain.to_string(),
            });
            if let Err(e) = n.apply(&changes)
                && !netlink::is_enoent(&e)
            {
                eprintln!("faultline: warning: removing chain {chain}: {e}");
            }
        }
    }
    legacy::remove_chain(chain);
}

/// The iptables-legacy (x_tables) compatibility path: nftables cannot see
/// or change x_tables, so when the legacy `filter` table is loaded and its
/// `FORWARD` policy drops, faultline's accept chain goes there too, through
/// the `iptables-legacy` program (the only way to program x_tables). On a
/// machine without x_tables in use nothing here runs any program.
mod legacy {
    use super::super::sys::{find_tool, run};
    use super::{Result, is_root_chain_name};
    use std::process::Command;

    /// True if the legacy `filter` table exists in this namespace.
    fn loaded() -> bool {
        std::fs::read_to_string("/proc/net/ip_tables_names")
            .is_ok_and(|s| s.lines().any(|l| l.trim() == "filter"))
    }

    fn ipt(args: &[&str]) -> Option<String> {
        if !loaded() {
            return None;
        }
        let mut c = Command::new(find_tool("iptables-legacy")?);
        c.args(["-w", "5"]).args(args);
        run(c, None).ok()
    }

    /// True if the legacy `FORWARD` chain would drop bridged traffic.
    pub fn forward_drops() -> bool {
        if loaded() && find_tool("iptables-legacy").is_none() {
            eprintln!(
                "faultline: warning: the iptables-legacy filter table is loaded but `iptables-legacy` is not installed; if its FORWARD policy drops, nodes cannot reach each other"
            );
        }
        ipt(&["-S", "FORWARD"]).is_some_and(|o| o.lines().any(|l| l == "-P FORWARD DROP"))
    }

    /// faultline's chains in the legacy `filter` table.
    pub fn chains() -> Vec<String> {
        ipt(&["-S"])
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.strip_prefix("-N "))
            .filter(|c| is_root_chain_name(c))
            .map(str::to_string)
            .collect()
    }

    /// Adds the accept chain and its jump in one `iptables-legacy-restore`.
    pub fn add_forward_accept(chain: &str, br: &str) -> Result<()> {
        let rules = format!(
            "*filter\n:{chain} - [0:0]\n-A {chain} -i {br} -o {br} -j ACCEPT\n-I FORWARD 1 -j {chain}\nCOMMIT\n"
        );
        let mut c = Command::new(super::super::sys::require_tool("iptables-legacy-restore")?);
        c.args(["-w", "5", "--noflush"]);
        run(c, Some(&rules)).map(|_| ())
    }

    /// Removes the chain and every jump to it (nothing if absent).
    pub fn remove_chain(chain: &str) {
        if !chains().iter().any(|c| c == chain) {
            return;
        }
        for _ in 0..16 {
            if ipt(&["-D", "FORWARD", "-j", chain]).is_none() {
                break;
            }
        }
        ipt(&["-F", chain]);
        ipt(&["-X", chain]);
    }
}

// ------------------------------------------------------------------ up

/// Creates a lab. Everything is recorded in the state file before it is
/// created; on any error what was created is removed again.
pub fn up(spec: &LabSpec) -> Result<Lab> {
    sys::preflight()?;
    validate_name(&spec.name)?;
    if spec.nodes == 0 || spec.nodes > MAX_NODES {
        return Err(LabError::BadNodeCount(spec.nodes));
    }
    let me = ProcId::current();
    let st = {
        let lock = state::lock()?;
        let (labs, errs) = state::list();
        if let Some(e) = errs.into_iter().next() {
            return Err(e);
        }
        if labs.iter().any(|l| l.name == spec.name) {
            let l = labs.iter().find(|l| l.name == spec.name);
            if let Some(r) = l.and_then(LabState::stale_reason) {
                return Err(LabError::Leftovers(r));
            }
            return Err(LabError::Exists(spec.name.clone()));
        }
        let left = leftovers(&labs);
        if !left.is_empty() {
            return Err(LabError::Leftovers(left.join(", ")));
        }
        let mut used = machine_networks()?;
        used.extend(labs.iter().map(|l| Net {
            addr: l.subnet,
            len: 24,
        }));
        let subnet = pick_subnet(&used).ok_or(LabError::NoSubnet)?;
        let o = subnet.octets();
        let nodes = (1..=spec.nodes)
            .map(|i| NodeState {
                name: format!("n{i}"),
                netns: netns_name(&spec.name, i),
                veth: netns_name(&spec.name, i),
                ip: Ipv4Addr::new(o[0], o[1], o[2], i as u8),
            })
            .collect();
        let st = LabState {
            version: state::VERSION,
            name: spec.name.clone(),
            subnet,
            control_ip: Ipv4Addr::new(o[0], o[1], o[2], 254),
            bridge: bridge_name(&spec.name),
            dir: spec
                .dir
                .clone()
                .unwrap_or_else(|| super::data_dir::default_for(&spec.name)),
            creator: me,
            owner: spec.owned.then_some(me),
            complete: false,
            nodes,
            root_chain: forward_needs_chain()?.then(|| root_chain_name(&spec.name)),
            client: spec.client_ns.then(|| NodeState {
                name: "client".into(),
                netns: client_netns_name(&spec.name),
                veth: client_netns_name(&spec.name),
                ip: Ipv4Addr::new(o[0], o[1], o[2], 253),
            }),
            remove_dir: spec.remove_dir,
            servers: Vec::new(),
            delay_holder: None,
            faults: Default::default(),
        };
        // Recorded before anything exists, so a crash from here on leaves
        // a state file that `clean` understands.
        state::store(&lock, &st)?;
        st
    };
    match create(&st) {
        Ok(()) => {
            let st = state::update(&st.name, |s| s.complete = true)?
                .ok_or_else(|| LabError::NoSuchLab(st.name.clone()))?;
            Ok(Lab { state: st })
        }
        Err(e) => {
            let _ = teardown(&st.name);
            Err(e)
        }
    }
}

fn create(st: &LabState) -> Result<()> {
    if st.dir.exists() {
        // A fresh lab starts on fresh data.
        for n in &st.nodes {
            let _ = std::fs::remove_dir_all(st.dir.join(&n.name));
        }
    }
    std::fs::create_dir_all(&st.dir)
        .map_err(|e| LabError::io(format!("creating {}", st.dir.display()), e))?;
    if st.remove_dir {
        super::data_dir::mark_scratch(&st.dir, &st.name)?;
    }
    let br = &st.bridge;
    netns::prepare_dir()?;
    let mut rt = Rtnl::open("root namespace")?;
    rt.add_bridge(br)?;
    let bi = rt.index(br)?;
    rt.batch(vec![Rtnl::addr_msg(bi, st.control_ip, 24)])?;
    let mut files = Vec::new();
    for n in st.namespaces() {
        files.push(netns::add(&n.netns)?);
    }
    rt.batch(
        st.namespaces()
            .zip(&files)
            .map(|(n, f)| Rtnl::veth_msg(&n.veth, bi, "eth0", f.as_raw_fd()))
            .collect(),
    )?;
    drop(files);
    // Inside each node: addresses and faultline's chains, in parallel.
    let results: Vec<Result<()>> = std::thread::scope(|s| {
        let hs: Vec<_> = st
            .nodes
            .iter()
            .map(|n| s.spawn(move || setup_node(n)))
            .collect();
        hs.into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(LabError::io(
                        "node setup",
                        std::io::Error::other("panicked"),
                    ))
                })
            })
            .collect()
    });
    for r in results {
        r?;
    }
    if let Some(c) = &st.client {
        setup_client_ns(c)?;
    }
    if let Some(chain) = &st.root_chain {
        add_forward_accept(chain, br)?;
    }
    Ok(())
}

/// faultline's table in a node: the input base chain jumping to each fault
/// chain, in order.
pub fn node_table() -> Vec<Change> {
    let family = nft::IPV4;
    let table = NODE_TABLE.to_string();
    let mut c = vec![
        Change::AddTable {
            family,
            table: table.clone(),
        },
        Change::AddChain {
            family,
            table: table.clone(),
            chain: NODE_INPUT.into(),
            hook: Some(Hook {
                num: nft::HOOK_INPUT,
                priority: 0,
                policy: nft::ACCEPT,
            }),
        },
    ];
    for ch in NODE_CHAINS {
        c.push(Change::AddChain {
            family,
            table: table.clone(),
            chain: ch.into(),
            hook: None,
        });
    }
    for ch in NODE_CHAINS {
        c.push(Change::AddRule {
            family,
            table: table.clone(),
            chain: NODE_INPUT.into(),
            rule: Rule::new(Vec::new(), Verdict::Jump(ch.into())),
            append: true,
        });
    }
    c
}

/// The clients' namespace: its address and only the on-link route, so
/// nothing in it can reach anything but the lab.
fn setup_client_ns(c: &NodeState) -> Result<()> {
    let (ip, ctx) = (c.ip, format!("namespace {}", c.netns));
    sys::in_netns(&c.netns, move || setup_links(&ctx, ip))?
}

fn setup_node(n: &NodeState) -> Result<()> {
    let ip = n.ip;
    let ctx = format!("namespace {}", n.netns);
    sys::in_netns(&n.netns, move || -> Result<()> {
        setup_links(&ctx, ip)?;
        Nft::open(&ctx)?.apply(&node_table())
    })?
}

/// Inside a lab namespace (the calling thread is in it): `lo` and `eth0`
/// up, `eth0` at `ip/24`, which gives the on-link route and no other.
fn setup_links(ctx: &str, ip: Ipv4Addr) -> Result<()> {
    let mut rt = Rtnl::open(ctx)?;
    rt.batch(vec![Rtnl::up_msg("lo"), Rtnl::up_msg("eth0")])?;
    let eth0 = rt.index("eth0")?;
    rt.batch(vec![Rtnl::addr_msg(eth0, ip, 24)])
}

/// Replaces the rules of faultline's chain `chain` in one node with `rules`,
/// in one transaction: a packet sees the old rules or the new ones.
pub fn set_node_chain(n: &NodeState, chain: &str, rules: &[Rule]) -> Result<()> {
    let mut changes = vec![Change::Flush {
        family: nft::IPV4,
        table: NODE_TABLE.into(),
        chain: chain.into(),
    }];
    changes.extend(rules.iter().map(|r| Change::AddRule {
        family: nft::IPV4,
        table: NODE_TABLE.into(),
        chain: chain.into(),
        rule: r.clone(),
        append: true,
    }));
    Nft::open_in(&n.netns)?.apply(&changes)
}

/// Empties faultline's chains in one node (one transaction). A node whose
/// namespace or table is gone has nothing to empty.
pub fn flush_node_chains(n: &NodeState, chains: &[&str]) -> Result<()> {
    if !std::path::Path::new(sys::NETNS_DIR).join(&n.netns).exists() {
        return Ok(());
    }
    let changes: Vec<Change> = chains
        .iter()
        .map(|ch| Change::Flush {
            family: nft::IPV4,
            table: NODE_TABLE.into(),
            chain: (*ch).into(),
        })
        .collect();
    match Nft::open_in(&n.netns)?.apply(&changes) {
        Err(e) if netlink::is_enoent(&e) => Ok(()),
        r => r,
    }
}

// ------------------------------------------------------------------ teardown

/// Removes everything a lab's state file records, in an order that never
/// stalls: heal, resume and stop processes (by PID, after checking their
/// start time), kill whatever else still lives in the namespaces, delete
/// veths, namespaces and bridge, remove the root chain, then the state file.
/// Idempotent, and safe to run while another process tears down the same lab.
pub fn teardown(name: &str) -> Result<()> {
    let Some(st) = state::load(name)? else {
        return Ok(());
    };
    let me = ProcId::current();
    // 1. Heal, so stopping servers do not wait on cut-off peers.
    for n in &st.nodes {
        let _ = flush_node_chains(n, &NODE_CHAINS);
    }
    // 2. Owner and holders get SIGTERM (they stop their servers themselves).
    if let Some(o) = st.owner
        && o != me
    {
        o.signal(Signal::SIGTERM);
    }
    if let Some(d) = st.delay_holder {
        stop_tree(&d, Duration::from_secs(2));
    }
    for s in &st.servers {
        if let Some(h) = s.holder
            && h != me
        {
            h.signal(Signal::SIGTERM);
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(6);
    for s in &st.servers {
        if let Some(p) = s.process {
            let held = s.holder.is_some_and(|h| h != me && h.is_alive());
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            // A live holder stops its own server; an orphan is stopped here.
            if !held || !p.wait_gone(left) {
                stop_tree(&p, Duration::from_secs(2));
            }
        }
        if let Some(h) = s.holder
            && h != me
        {
            h.wait_gone(Duration::from_secs(2));
        }
    }
    // 3. Anything else still inside our namespaces (e.g. `lab exec`, a
    //    client program's descendants).
    for n in st.namespaces() {
        if let Some(ino) = netns_inode(&n.netns) {
            for _round in 0..3 {
                let pids = pids_in_netns(ino);
                if pids.is_empty() {
                    break;
                }
                for pid in pids {
                    if let Some(p) = ProcId::of(pid) {
                        p.signal(Signal::SIGCONT);
                        p.signal(Signal::SIGKILL);
                        p.wait_gone(Duration::from_secs(2));
                    }
                }
            }
        }
    }
    // 4. Links and namespaces. Deleting the root-side veth first removes both
    //    ends at once (a namespace goes away asynchronously).
    let links = sys::list_links();
    let mut rt = Rtnl::open("root namespace")?;
    for n in st.namespaces() {
        if links.contains(&n.veth) {
            let _ = rt.del_link(&n.veth);
        }
        let _ = netns::del(&n.netns);
    }
    if links.contains(&st.bridge) {
        let _ = rt.del_link(&st.bridge);
    }
    // 5. Our root chain and the jumps to it.
    if let Some(chain) = &st.root_chain {
        remove_root_chain(chain);
    }
    // 6. Check, then forget.
    let links = sys::list_links();
    let namespaces = sys::list_netns();
    let mut left: Vec<String> = Vec::new();
    for n in st.namespaces() {
        if namespaces.contains(&n.netns) {
            left.push(format!("namespace {}", n.netns));
        }
        if links.contains(&n.veth) {
            left.push(format!("interface {}", n.veth));
        }
    }
    if links.contains(&st.bridge) {
        left.push(format!("bridge {}", st.bridge));
    }
    if let Some(chain) = &st.root_chain
        && root_chains().contains(chain)
    {
        left.push(format!("root chain {chain}"));
    }
    if !left.is_empty() {
        return Err(LabError::Incomplete {
            lab: name.to_string(),
            what: left.join(", "),
        });
    }
    remove_data_dir(&st)?;
    super::fake_clock::remove_shared(name);
    let lock = state::lock()?;
    state::remove(&lock, name)
}

/// Removes the lab's data directory if the lab was made to remove it (a
/// run's scratch data: node logs, store data). Its processes are gone.
fn remove_data_dir(st: &LabState) -> Result<()> {
    if !st.remove_dir {
        return Ok(());
    }
    match std::fs::remove_dir_all(&st.dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LabError::io(format!("removing {}", st.dir.display()), e)),
    }
}

/// Removes leftovers that no state file records (namespaces, interfaces and
/// root chains named like faultline's). Returns what was removed.
pub fn remove_unrecorded(labs: &[LabState]) -> Vec<String> {
    let mut removed = Vec::new();
    let mut known_ns = BTreeSet::new();
    let mut known_links = BTreeSet::new();
    let mut known_chains = BTreeSet::new();
    for l in labs {
        known_links.insert(l.bridge.clone());
        for n in l.namespaces() {
            known_ns.insert(n.netns.clone());
            known_links.insert(n.veth.clone());
        }
        known_chains.insert(root_chain_name(&l.name));
    }
    for ns in sys::list_netns() {
        if is_ours(&ns) && !known_ns.contains(&ns) {
            if let Some(ino) = netns_inode(&ns) {
                for pid in pids_in_netns(ino) {
                    if let Some(p) = ProcId::of(pid) {
                        p.signal(Signal::SIGCONT);
                        p.signal(Signal::SIGKILL);
                        p.wait_gone(Duration::from_secs(2));
                    }
                }
            }
            if let Ok(mut rt) = Rtnl::open("root namespace") {
                let _ = rt.del_link(&ns);
            }
            let _ = netns::del(&ns);
            removed.push(format!("network namespace {ns}"));
        }
    }
    for l in sys::list_links() {
        if is_ours(&l) && !known_links.contains(&l) {
            if let Ok(mut rt) = Rtnl::open("root namespace") {
                let _ = rt.del_link(&l);
            }
            removed.push(format!("interface {l}"));
        }
    }
    for c in root_chains() {
        if !known_chains.contains(&c) {
            remove_root_chain(&c);
            removed.push(format!("root chain {c}"));
        }
    }
    let known_labs: BTreeSet<&str> = labs.iter().map(|l| l.name.as_str()).collect();
    for lab in super::fake_clock::shared_labs() {
        if !known_labs.contains(lab.as_str()) {
            super::fake_clock::remove_shared(&lab);
            removed.push(format!("libfaketime objects of lab {lab}"));
        }
    }
    removed
}

/// True for names faultline gives: `fl-<lab>-br` and `fl-<lab>-n<i>`.
pub fn is_ours(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("fl-") else {
        return false;
    };
    let Some((lab, tail)) = rest.split_once('-') else {
        return false;
    };
    validate_name(lab).is_ok()
        && (tail == "br"
            || tail == "c"
            || tail
                .strip_prefix('n')
                .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap() {
        let a = Net::parse("10.77.0.0/24").unwrap();
        assert!(a.overlaps(&Net::parse("10.0.0.0/8").unwrap()));
        assert!(a.overlaps(&Net::parse("10.77.0.5").unwrap()));
        assert!(!a.overlaps(&Net::parse("10.77.1.0/24").unwrap()));
        assert!(!a.overlaps(&Net::parse("192.0.2.0/24").unwrap()));
    }

    #[test]
    fn subnet_skips_used() {
        let used = vec![
            Net::parse("10.77.0.0/24").unwrap(),
            Net::parse("10.77.1.7/32").unwrap(),
        ];
        assert_eq!(pick_subnet(&used), Some(Ipv4Addr::new(10, 77, 2, 0)));
        let used = vec![Net::parse("10.0.0.0/8").unwrap()];
        assert_eq!(pick_subnet(&used), Some(Ipv4Addr::new(172, 31, 0, 0)));
    }

    #[test]
    fn names() {
        assert!(is_ours("fl-lab-n1"));
        assert!(is_ours("fl-abcdefgh-n99"));
        assert!(is_ours("fl-x-br"));
        assert!(is_ours("fl-x-c"));
        assert!(!is_ours("fl-x-y"));
        assert!(!is_ours("flannel.1"));
        assert!(netns_name("abcdefgh", 99).len() <= 15);
    }
}
