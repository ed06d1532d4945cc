//! nftables over netlink: tables, chains and rules built from a few
//! expressions (source address, interface names, random numbers, verdicts,
//! NFQUEUE), sent as one batch, which the kernel applies as one transaction
//! (all or nothing, and never seen half-done by a packet).

use std::net::Ipv4Addr;

use super::Result;
use super::netlink::{self, F_APPEND, F_CREATE, Msg, Socket, attr, attr_be32, attr_str, attrs};

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 16;
const NFNL_MSG_BATCH_END: u16 = 17;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_GETCHAIN: u16 = 4;
const NFT_MSG_DELCHAIN: u16 = 5;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_GETRULE: u16 = 7;
const NFT_MSG_DELRULE: u16 = 8;

const NFTA_TABLE_NAME: u16 = 1;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_HANDLE: u16 = 3;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;
const NFTA_IMMEDIATE_DREG: u16 = 1;
const NFTA_IMMEDIATE_DATA: u16 = 2;
const NFT_REG_VERDICT: u32 = 0;
const NFT_REG_1: u32 = 1;

/// `NFPROTO_INET`.
pub const INET: u8 = 1;
/// `NFPROTO_IPV4`.
pub const IPV4: u8 = 2;
/// Hook numbers of the ip/inet families.
pub const HOOK_INPUT: u32 = 1;
/// The forward hook.
pub const HOOK_FORWARD: u32 = 2;
/// Verdict `NF_DROP` (also a chain policy).
pub const DROP: u32 = 0;
/// Verdict `NF_ACCEPT` (also a chain policy).
pub const ACCEPT: u32 = 1;

/// The name of a family, as `nft` prints it.
pub fn family_name(f: u8) -> &'static str {
    match f {
        1 => "inet",
        2 => "ip",
        3 => "arp",
        5 => "netdev",
        7 => "bridge",
        10 => "ip6",
        _ => "unknown",
    }
}

/// The family named `s` (`ip`, `inet`).
pub fn family_of(s: &str) -> Option<u8> {
    match s {
        "inet" => Some(INET),
        "ip" => Some(IPV4),
        _ => None,
    }
}

/// What a rule matches; all of a rule's matches must hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Match {
    /// The IPv4 source address is this one.
    Saddr(Ipv4Addr),
    /// The IPv4 source address is in this network.
    SaddrIn(Ipv4Addr, u8),
    /// The packet arrived on this interface.
    Iifname(String),
    /// The packet leaves on this interface.
    Oifname(String),
    /// A uniform random number in `0..of` is below `below`.
    Random {
        /// Threshold.
        below: u32,
        /// Modulus.
        of: u32,
    },
}

/// What a rule does with a packet that matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Accept (in this base chain).
    Accept,
    /// Drop.
    Drop,
    /// Return to the calling chain.
    Return,
    /// Jump to a chain of the same table.
    Jump(String),
    /// Hand the packet to the NFQUEUE `num`; accepted if nobody listens
    /// (the native `queue` expression, `CONFIG_NFT_QUEUE`).
    QueueBypass(u16),
    /// The same through the x_tables `NFQUEUE` target run by nftables
    /// (`CONFIG_NFT_COMPAT`), for kernels without the native expression;
    /// it is what iptables-nft installs for `-j NFQUEUE --queue-bypass`.
    XtQueueBypass(u16),
}

/// One rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Matches, all of which must hold.
    pub matches: Vec<Match>,
    /// The verdict.
    pub verdict: Verdict,
}

impl Rule {
    /// A rule with these matches and verdict.
    pub fn new(matches: Vec<Match>, verdict: Verdict) -> Rule {
        Rule { matches, verdict }
    }
}

/// A base chain's hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hook {
    /// Hook number ([`HOOK_INPUT`], [`HOOK_FORWARD`]).
    pub num: u32,
    /// Priority (0 = filter).
    pub priority: i32,
    /// Policy ([`ACCEPT`] or [`DROP`]).
    pub policy: u32,
}

/// One change in a batch.
#[derive(Clone, Debug)]
pub enum Change {
    /// Create a table (no error if it exists).
    AddTable {
        /// Family.
        family: u8,
        /// Table.
        table: String,
    },
    /// Delete a table and everything in it.
    DelTable {
        /// Family.
        family: u8,
        /// Table.
        table: String,
    },
    /// Create a chain (no error if it exists); a base chain with a hook.
    AddChain {
        /// Family.
        family: u8,
        /// Table.
        table: String,
        /// Chain.
        chain: String,
        /// The hook, for a base chain.
        hook: Option<Hook>,
    },
    /// Delete an empty chain.
    DelChain {
        /// Family.
        family: u8,
        /// Table.
        table: String,
        /// Chain.
        chain: String,
    },
    /// Delete every rule of a chain.
    Flush {
        /// Family.
        family: u8,
        /// Table.
        table: String,
        /// Chain.
        chain: String,
    },
    /// Add a rule at the end (`append`) or at the start of a chain.
    AddRule {
        /// Family.
        family: u8,
        /// Table.
        table: String,
        /// Chain.
        chain: String,
        /// The rule.
        rule: Rule,
        /// At the end (true) or the start (false).
        append: bool,
    },
    /// Delete one rule by handle.
    DelRule {
        /// Family.
        family: u8,
        /// Table.
        table: String,
        /// Chain.
        chain: String,
        /// The rule's handle.
        handle: u64,
    },
}

fn nfgen(family: u8, res_id: u16) -> [u8; 4] {
    let r = res_id.to_be_bytes();
    [family, 0, r[0], r[1]]
}

fn nft_msg(kind: u16, flags: u16, family: u8, what: String) -> Msg {
    Msg::new((NFNL_SUBSYS_NFTABLES << 8) | kind, flags, what).header(&nfgen(family, 0))
}

fn expr(m: Msg, name: &str, body: impl FnOnce(Msg) -> Msg) -> Msg {
    let m = m
        .nest(NFTA_LIST_ELEM)
        .str(NFTA_EXPR_NAME, name)
        .nest(NFTA_EXPR_DATA);
    body(m).end().end()
}

fn data_value(m: Msg, kind: u16, v: &[u8]) -> Msg {
    m.nest(kind).attr(NFTA_DATA_VALUE, v).end()
}

fn load_saddr(m: Msg) -> Msg {
    // payload load 4 bytes at offset 12 of the network header => reg 1
    expr(m, "payload", |m| {
        m.be32(1, NFT_REG_1).be32(2, 1).be32(3, 12).be32(4, 4)
    })
}

fn cmp(m: Msg, op: u32, v: &[u8]) -> Msg {
    expr(m, "cmp", |m| {
        data_value(m.be32(1, NFT_REG_1).be32(2, op), 3, v)
    })
}

fn ifname(m: Msg, key: u32, name: &str) -> Msg {
    let m = expr(m, "meta", |m| m.be32(1, NFT_REG_1).be32(2, key));
    let mut v = name.as_bytes().to_vec();
    v.push(0);
    cmp(m, 0, &v)
}

fn encode_match(m: Msg, x: &Match) -> Msg {
    match x {
        Match::Saddr(ip) => cmp(load_saddr(m), 0, &ip.octets()),
        Match::SaddrIn(net, len) => {
            let mask = if *len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from((*len).min(32)))
            };
            let m = load_saddr(m);
            let m = expr(m, "bitwise", |m| {
                let m = m.be32(1, NFT_REG_1).be32(2, NFT_REG_1).be32(3, 4);
                let m = data_value(m, 4, &mask.to_be_bytes());
                data_value(m, 5, &[0, 0, 0, 0])
            });
            cmp(m, 0, &(u32::from(*net) & mask).to_be_bytes())
        }
        Match::Iifname(n) => ifname(m, 6, n),
        Match::Oifname(n) => ifname(m, 7, n),
        Match::Random { below, of } => {
            // numgen random mod OF => reg 1 (host order); to big endian so
            // that the byte-wise `cmp lt` orders it as a number.
            let m = expr(m, "numgen", |m| {
                m.be32(1, NFT_REG_1).be32(2, *of).be32(3, 1).be32(4, 0)
            });
            let m = expr(m, "byteorder", |m| {
                m.be32(1, NFT_REG_1)
                    .be32(2, NFT_REG_1)
                    .be32(3, 1)
                    .be32(4, 4)
                    .be32(5, 4)
            });
            cmp(m, 2, &below.to_be_bytes())
        }
    }
}

fn verdict(m: Msg, code: i32, chain: Option<&str>) -> Msg {
    expr(m, "immediate", |m| {
        let m = m
            .be32(NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT)
            .nest(NFTA_IMMEDIATE_DATA)
            .nest(NFTA_DATA_VERDICT)
            .be32(NFTA_VERDICT_CODE, code as u32);
        let m = match chain {
            Some(c) => m.str(NFTA_VERDICT_CHAIN, c),
            None => m,
        };
        m.end().end()
    })
}

fn encode_rule(m: Msg, r: &Rule) -> Msg {
    let mut m = m.nest(NFTA_RULE_EXPRESSIONS);
    for x in &r.matches {
        m = encode_match(m, x);
    }
    m = match &r.verdict {
        Verdict::Accept => verdict(m, ACCEPT as i32, None),
        Verdict::Drop => verdict(m, DROP as i32, None),
        Verdict::Return => verdict(m, -5, None),
        Verdict::Jump(c) => verdict(m, -3, Some(c)),
        Verdict::QueueBypass(num) => expr(m, "queue", |m| {
            m.be16(1, *num).be16(2, 1).be16(3, 1) // num, total 1, bypass
        }),
        Verdict::XtQueueBypass(num) => expr(m, "target", |m| {
            // struct xt_NFQ_info_v3 { u16 queuenum, queues_total, flags }
            // in host order, padded to XT_ALIGN (8); flags 1 = bypass.
            let mut info = [0u8; 8];
            info[0..2].copy_from_slice(&num.to_ne_bytes());
            info[2..4].copy_from_slice(&1u16.to_ne_bytes());
            info[4..6].copy_from_slice(&1u16.to_ne_bytes());
            m.str(1, "NFQUEUE").be32(2, 3).attr(3, &info)
        }),
    };
    m.end()
}

impl Change {
    fn msg(&self) -> Msg {
        match self {
            Change::AddTable { family, table } => nft_msg(
                NFT_MSG_NEWTABLE,
                F_CREATE,
                *family,
                format!("add table {table}"),
            )
            .str(NFTA_TABLE_NAME, table),
            Change::DelTable { family, table } => nft_msg(
                NFT_MSG_DELTABLE,
                0,
                *family,
                format!("delete table {table}"),
            )
            .str(NFTA_TABLE_NAME, table),
            Change::AddChain {
                family,
                table,
                chain,
                hook,
            } => {
                let m = nft_msg(
                    NFT_MSG_NEWCHAIN,
                    F_CREATE,
                    *family,
                    format!("add chain {table} {chain}"),
                )
                .str(NFTA_CHAIN_TABLE, table)
                .str(NFTA_CHAIN_NAME, chain);
                match hook {
                    Some(h) => m
                        .nest(NFTA_CHAIN_HOOK)
                        .be32(NFTA_HOOK_HOOKNUM, h.num)
                        .be32(NFTA_HOOK_PRIORITY, h.priority as u32)
                        .end()
                        .be32(NFTA_CHAIN_POLICY, h.policy)
                        .str(NFTA_CHAIN_TYPE, "filter"),
                    None => m,
                }
            }
            Change::DelChain {
                family,
                table,
                chain,
            } => nft_msg(
                NFT_MSG_DELCHAIN,
                0,
                *family,
                format!("delete chain {table} {chain}"),
            )
            .str(NFTA_CHAIN_TABLE, table)
            .str(NFTA_CHAIN_NAME, chain),
            Change::Flush {
                family,
                table,
                chain,
            } => nft_msg(
                NFT_MSG_DELRULE,
                0,
                *family,
                format!("flush chain {table} {chain}"),
            )
            .str(NFTA_RULE_TABLE, table)
            .str(NFTA_RULE_CHAIN, chain),
            Change::AddRule {
                family,
                table,
                chain,
                rule,
                append,
            } => {
                let m = nft_msg(
                    NFT_MSG_NEWRULE,
                    F_CREATE | if *append { F_APPEND } else { 0 },
                    *family,
                    format!("add rule to {table} {chain}"),
                )
                .str(NFTA_RULE_TABLE, table)
                .str(NFTA_RULE_CHAIN, chain);
                encode_rule(m, rule)
            }
            Change::DelRule {
                family,
                table,
                chain,
                handle,
            } => nft_msg(
                NFT_MSG_DELRULE,
                0,
                *family,
                format!("delete rule {handle} of {table} {chain}"),
            )
            .str(NFTA_RULE_TABLE, table)
            .str(NFTA_RULE_CHAIN, chain)
            .be64(NFTA_RULE_HANDLE, *handle),
        }
    }
}

/// A chain as listed by the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainInfo {
    /// Family (`NFPROTO_*`).
    pub family: u8,
    /// Table.
    pub table: String,
    /// Chain.
    pub name: String,
    /// Hook number, for a base chain.
    pub hook: Option<u32>,
    /// Policy, for a base chain.
    pub policy: Option<u32>,
}

/// A rule as listed by the kernel: its handle and, if it ends in a jump or
/// goto, the chain it goes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleInfo {
    /// The rule's handle.
    pub handle: u64,
    /// The target chain of its jump, if any.
    pub jump: Option<String>,
    /// The names of its expressions, in order (`payload`, `cmp`, ...).
    pub exprs: Vec<String>,
}

/// An nftables connection in one network namespace.
#[derive(Debug)]
pub struct Nft(Socket);

impl Nft {
    /// A connection in the calling thread's namespace.
    pub fn open(context: &str) -> Result<Nft> {
        Socket::open(netlink::NETFILTER, context).map(Nft)
    }

    /// A connection inside `/run/netns/<netns>`.
    pub fn open_in(netns: &str) -> Result<Nft> {
        Socket::open_in(netns, netlink::NETFILTER).map(Nft)
    }

    /// Applies `changes` as one transaction: all of them or none.
    pub fn apply(&mut self, changes: &[Change]) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut msgs = Vec::with_capacity(changes.len() + 2);
        msgs.push(
            Msg::new(NFNL_MSG_BATCH_BEGIN, 0, "begin batch")
                .header(&nfgen(0, NFNL_SUBSYS_NFTABLES)),
        );
        msgs.extend(changes.iter().map(Change::msg));
        msgs.push(
            Msg::new(NFNL_MSG_BATCH_END, 0, "end batch").header(&nfgen(0, NFNL_SUBSYS_NFTABLES)),
        );
        let last = msgs.len() - 1;
        self.0.request_batch(msgs, &[0, last])
    }

    /// Every chain of every table and family.
    pub fn chains(&mut self) -> Result<Vec<ChainInfo>> {
        let m = nft_msg(NFT_MSG_GETCHAIN, 0, 0, "list chains".into());
        let mut out = Vec::new();
        for r in self.0.dump(m)? {
            let (Some(family), Some(rest)) = (r.body.first(), r.body.get(4..)) else {
                continue;
            };
            let hook = attr(rest, NFTA_CHAIN_HOOK);
            out.push(ChainInfo {
                family: *family,
                table: attr_str(rest, NFTA_CHAIN_TABLE).unwrap_or_default(),
                name: attr_str(rest, NFTA_CHAIN_NAME).unwrap_or_default(),
                hook: hook.and_then(|h| attr_be32(h, NFTA_HOOK_HOOKNUM)),
                policy: attr_be32(rest, NFTA_CHAIN_POLICY),
            });
        }
        Ok(out)
    }

    /// The rules of one chain, in order. A missing table or chain has none.
    pub fn rules(&mut self, family: u8, table: &str, chain: &str) -> Result<Vec<RuleInfo>> {
        let m = nft_msg(NFT_MSG_GETRULE, 0, family, format!("list {table} {chain}"))
            .str(NFTA_RULE_TABLE, table)
            .str(NFTA_RULE_CHAIN, chain);
        let replies = match self.0.dump(m) {
            Ok(r) => r,
            Err(e) if netlink::is_enoent(&e) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for r in replies {
            let Some(rest) = r.body.get(4..) else {
                continue;
            };
            // The dump filter is advisory on old kernels: check again.
            if attr_str(rest, NFTA_RULE_TABLE).as_deref() != Some(table)
                || attr_str(rest, NFTA_RULE_CHAIN).as_deref() != Some(chain)
            {
                continue;
            }
            let handle = attr(rest, NFTA_RULE_HANDLE)
                .and_then(|v| Some(u64::from_be_bytes(v.try_into().ok()?)))
                .unwrap_or(0);
            let mut jump = None;
            let mut exprs = Vec::new();
            for (_, elem) in attrs(attr(rest, NFTA_RULE_EXPRESSIONS).unwrap_or_default()) {
                let name = attr_str(elem, NFTA_EXPR_NAME).unwrap_or_default();
                if name == "immediate"
                    && let Some(c) = attr(elem, NFTA_EXPR_DATA)
                        .and_then(|d| attr(d, NFTA_IMMEDIATE_DATA))
                        .and_then(|d| attr(d, NFTA_DATA_VERDICT))
                        .and_then(|v| attr_str(v, NFTA_VERDICT_CHAIN))
                {
                    jump = Some(c);
                }
                exprs.push(name);
            }
            out.push(RuleInfo {
                handle,
                jump,
                exprs,
            });
        }
        Ok(out)
    }
}
