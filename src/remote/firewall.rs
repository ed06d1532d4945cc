//! Partitions and packet loss on remote hosts: iptables rules in
//! faultline's own chains of the `filter` table, jumped to from the top of
//! `INPUT`. A chain is replaced whole in one `iptables-restore --noflush`
//! transaction (declaring a chain in the input flushes it), so a host never
//! sees half a partition. The first rule of each chain returns for the
//! control machine's address: the clients and SSH are never cut. Nothing
//! else in the host's rules is touched; [`remove`] deletes only the jumps
//! and chains named here.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::Result;
use super::host::Host;

/// The partition chain.
pub const CHAIN_PARTITION: &str = "FL-PART";
/// The packet-loss chain.
pub const CHAIN_LOSS: &str = "FL-LOSS";
/// Both, in the order they are jumped to.
pub const CHAINS: [&str; 2] = [CHAIN_PARTITION, CHAIN_LOSS];

/// The `iptables-restore --noflush` input that makes `chain` hold exactly
/// `rules` (each `-A` arguments after the chain name), after the control
/// machine's exemption.
pub fn restore_input(chain: &str, control: Ipv4Addr, rules: &[String]) -> String {
    let mut s = format!("*filter\n:{chain} - [0:0]\n-A {chain} -s {control}/32 -j RETURN\n");
    for r in rules {
        let _ = writeln!(s, "-A {chain} {r}");
    }
    s.push_str("COMMIT\n");
    s
}

/// Drop rules for packets from each of `from`.
pub fn drop_rules(from: &[Ipv4Addr]) -> Vec<String> {
    from.iter()
        .map(|ip| format!("-s {ip}/32 -j DROP"))
        .collect()
}

/// Rules dropping `percent`% of the packets from each of `peers`.
pub fn loss_rules(peers: &[Ipv4Addr], percent: f64) -> Vec<String> {
    let p = (percent / 100.0).clamp(0.0, 1.0);
    peers
        .iter()
        .map(|ip| format!("-s {ip}/32 -m statistic --mode random --probability {p:.4} -j DROP"))
        .collect()
}

/// Creates faultline's chains (empty) and their jumps, unless they exist.
pub async fn install(host: &Host) -> Result<()> {
    let mut script = String::from(
        "command -v iptables-restore >/dev/null 2>&1 || { echo '`iptables-restore` not found on the host; install it with: apt-get install -y iptables' >&2; exit 2; }\n",
    );
    for c in CHAINS.iter().rev() {
        let _ = writeln!(
            script,
            "$SUDO iptables -w 5 -n -L {c} >/dev/null 2>&1 || $SUDO iptables -w 5 -N {c} || exit 1\n\
             $SUDO iptables -w 5 -C INPUT -j {c} 2>/dev/null || $SUDO iptables -w 5 -I INPUT 1 -j {c} || exit 1"
        );
    }
    host.run("creating faultline's iptables chains", &script)
        .await
        .map(drop)
}

/// Replaces `chain` on `host` with `rules` in one transaction.
pub async fn set_chain(host: &Host, chain: &str, rules: &[String]) -> Result<()> {
    let input = restore_input(chain, host.control_ip(), rules);
    host.run_with_input(
        &format!("iptables-restore of {chain}"),
        "$SUDO iptables-restore -w 5 --noflush",
        input.as_bytes(),
    )
    .await
    .map(drop)
}

/// Empties `chain` (keeping the control machine's exemption).
pub async fn flush(host: &Host, chain: &str) -> Result<()> {
    set_chain(host, chain, &[]).await
}

/// The script that deletes faultline's jumps and chains, printing the name
/// of each chain it removed.
fn remove_script() -> String {
    let mut s = String::new();
    for c in CHAINS {
        let _ = writeln!(
            s,
            "while $SUDO iptables -w 5 -D INPUT -j {c} 2>/dev/null; do :; done\n\
             if $SUDO iptables -w 5 -n -L {c} >/dev/null 2>&1; then $SUDO iptables -w 5 -F {c} && $SUDO iptables -w 5 -X {c} && echo {c} || exit 1; fi"
        );
    }
    s
}

/// Deletes faultline's jumps and chains from `host`; the chains removed.
pub async fn remove(host: &Host) -> Result<Vec<String>> {
    let out = host
        .run("removing faultline's iptables chains", &remove_script())
        .await?;
    Ok(out.split_whitespace().map(str::to_string).collect())
}

/// faultline's rules on `host` as `iptables -S` prints them (empty: none).
pub async fn rules(host: &Host) -> Result<String> {
    let mut s = String::new();
    for c in CHAINS {
        let _ = writeln!(s, "$SUDO iptables -w 5 -S {c} 2>/dev/null || true");
    }
    host.run("listing faultline's iptables chains", &s).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_restore_input_exempts_the_control_machine_first() {
        let control = Ipv4Addr::new(10, 0, 0, 254);
        let s = restore_input(
            CHAIN_PARTITION,
            control,
            &drop_rules(&[Ipv4Addr::new(10, 0, 0, 2)]),
        );
        assert_eq!(
            s,
            "*filter\n:FL-PART - [0:0]\n-A FL-PART -s 10.0.0.254/32 -j RETURN\n-A FL-PART -s 10.0.0.2/32 -j DROP\nCOMMIT\n"
        );
        let l = loss_rules(&[Ipv4Addr::new(10, 0, 0, 3)], 30.0);
        assert_eq!(
            l,
            vec!["-s 10.0.0.3/32 -m statistic --mode random --probability 0.3000 -j DROP"]
        );
        assert!(remove_script().contains("-X FL-LOSS"));
    }
}
