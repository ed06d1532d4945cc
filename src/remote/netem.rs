//! Packet delay on remote hosts, with the kernel's netem qdisc (`tc`), where
//! the host has it. Only traffic between nodes is delayed: on each target
//! host, a `prio` qdisc of faultline's own (handle `fa17:`) replaces the
//! default root qdisc of each interface that leads to a peer, its fourth
//! band a netem qdisc (`fa18:`), and one `u32` filter per peer address sends
//! the packets to that peer into the delayed band. Everything else (the
//! control machine, SSH, other traffic) keeps the prio qdisc's usual bands,
//! undelayed. A delayed node's packets to its peers wait D ± J ms (uniform,
//! as the lab's netem delay), so traffic between a delayed node and the
//! others is delayed one way.
//!
//! A host whose kernel lacks `sch_prio` or `sch_netem` (or whose interface
//! already has a root qdisc of someone else's) is found before the run
//! starts ([`probe_script`]) and refused, naming the host and tc's words.
//! Each interface is recorded in the run's state before its qdisc is added;
//! healing, the end of the run and `faultline clean --hosts` delete only a
//! root qdisc with faultline's handle.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::Result;
use super::host::Host;

/// The handle of faultline's root `prio` qdisc.
pub const ROOT: &str = "fa17:";
/// The handle of its netem child.
pub const NETEM: &str = "fa18:";

/// A priomap sending every TOS to bands 1-3 as the default `pfifo_fast`
/// does, leaving band 4 for the filters.
const PRIOMAP: &str = "1 2 2 2 1 2 0 0 1 1 1 1 1 1 1 1";

/// The script printing, for each of `peers`, the interface the host sends
/// it through: `ADDRESS DEV` a line.
pub fn routes_script(peers: &[Ipv4Addr]) -> String {
    let mut s = String::new();
    for p in peers {
        let _ = writeln!(
            s,
            "dev=$(ip -o -4 route get {p} | sed -n 's/.* dev \\([^ ]*\\).*/\\1/p'); [ -n \"$dev\" ] || {{ echo 'no route to {p}' >&2; exit 1; }}; echo \"{p} $dev\""
        );
    }
    s
}

/// The tc commands that delay packets to `peers` through `dev` by `ms` ±
/// `jitter_ms` (replacing faultline's qdisc there, if any).
pub fn delay_commands(dev: &str, peers: &[Ipv4Addr], ms: u64, jitter_ms: u64) -> Vec<String> {
    let mut c = vec![
        format!("tc qdisc add dev {dev} root handle {ROOT} prio bands 4 priomap {PRIOMAP}"),
        format!(
            "tc qdisc add dev {dev} parent {ROOT}4 handle {NETEM} netem delay {ms}ms {jitter_ms}ms"
        ),
    ];
    for p in peers {
        c.push(format!(
            "tc filter add dev {dev} parent {ROOT} protocol ip prio 1 u32 match ip dst {p}/32 flowid {ROOT}4"
        ));
    }
    c
}

/// The script deleting faultline's root qdisc from each of `devs` where
/// it is the root (another root qdisc is left alone), printing each
/// interface it cleaned.
pub fn remove_script(devs: &[String]) -> String {
    let mut s = String::new();
    for d in devs {
        let q = super::sh_quote(d);
        let _ = writeln!(
            s,
            "if tc qdisc show dev {q} 2>/dev/null | grep -q '^qdisc prio {ROOT} root'; then $SUDO tc qdisc del dev {q} root || exit 1; echo {q}; fi"
        );
    }
    s.push_str("true\n");
    s
}

/// The script that applies the delay: faultline's qdisc removed first
/// (a new delay replaces the old), then [`delay_commands`] per interface,
/// undone if one fails.
pub fn apply_script(by_dev: &BTreeMap<String, Vec<Ipv4Addr>>, ms: u64, jitter_ms: u64) -> String {
    let devs: Vec<String> = by_dev.keys().cloned().collect();
    let mut s = remove_script(&devs).replace("echo ", ": ");
    let undo = s.replace('\n', "; ");
    let undo = undo.trim_end_matches("; ");
    for (dev, peers) in by_dev {
        for c in delay_commands(dev, peers, ms, jitter_ms) {
            let _ = writeln!(s, "$SUDO {c} || {{ r=$?; {undo}; exit $r; }}");
        }
    }
    s
}

/// The script that finds out whether the host can delay packets to `peers`
/// this way: applies a 1 ms delay and removes it (so nothing is left).
pub fn probe_script(by_dev: &BTreeMap<String, Vec<Ipv4Addr>>) -> String {
    let devs: Vec<String> = by_dev.keys().cloned().collect();
    format!(
        "command -v tc >/dev/null 2>&1 || {{ echo '`tc` not found on the host; install it with: apt-get install -y iproute2' >&2; exit 2; }}\n{}{}",
        apply_script(by_dev, 1, 0),
        remove_script(&devs)
    )
}

/// The interfaces `host` sends each of `peers` through.
pub async fn routes(host: &Host, peers: &[Ipv4Addr]) -> Result<BTreeMap<String, Vec<Ipv4Addr>>> {
    let out = host
        .run(
            "finding the interfaces to the other nodes",
            &routes_script(peers),
        )
        .await?;
    let mut by_dev: BTreeMap<String, Vec<Ipv4Addr>> = BTreeMap::new();
    for l in out.lines() {
        if let Some((ip, dev)) = l.split_once(' ')
            && let Ok(ip) = ip.parse()
        {
            by_dev.entry(dev.to_string()).or_default().push(ip);
        }
    }
    Ok(by_dev)
}

impl super::cluster::Remote {
    fn peers_of(&self, node: &str) -> Vec<Ipv4Addr> {
        self.hosts
            .iter()
            .filter(|h| h.spec.name != node)
            .map(|h| h.spec.address)
            .collect()
    }

    /// Before a run with delay faults: on every host, the interfaces to
    /// the other nodes, and a 1 ms netem delay added and removed there. A
    /// host that cannot (no `tc`, no `sch_prio` or `sch_netem` in its
    /// kernel, a root qdisc of someone else's) is an error naming it and
    /// tc's reason; nothing is left on any host.
    pub async fn probe_delay(&self) -> Result<()> {
        let routed = futures_util::future::join_all(self.hosts.iter().map(|h| async move {
            let by_dev = routes(h, &self.peers_of(&h.spec.name)).await?;
            h.run(
                "delay needs tc with the prio and netem qdiscs (a 1 ms probe)",
                &probe_script(&by_dev),
            )
            .await?;
            Ok::<_, super::RemoteError>((h.spec.name.clone(), by_dev))
        }))
        .await;
        let mut found = BTreeMap::new();
        for r in routed {
            let (n, by_dev) = r?;
            found.insert(n, by_dev);
        }
        *self.routes.lock().unwrap_or_else(|e| e.into_inner()) = found;
        Ok(())
    }

    fn routes_of(&self, node: &str) -> Result<BTreeMap<String, Vec<Ipv4Addr>>> {
        self.routes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(node)
            .cloned()
            .ok_or_else(|| {
                super::RemoteError::Fault(format!(
                    "{node}: delay was not probed on the host before the run"
                ))
            })
    }

    /// Delays the packets `nodes` send to the other nodes by `ms` ±
    /// `jitter_ms` (each interface recorded first).
    pub async fn delay(&self, nodes: &[String], ms: u64, jitter_ms: u64) -> Result<()> {
        let targets = self.resolve(nodes)?;
        let mut plans = Vec::new();
        for h in targets {
            let by_dev = self.routes_of(&h.spec.name)?;
            let devs: Vec<String> = by_dev.keys().cloned().collect();
            self.touch(std::slice::from_ref(&h.spec.name), |t| {
                for d in &devs {
                    if !t.qdiscs.contains(d) {
                        t.qdiscs.push(d.clone());
                    }
                }
            })?;
            plans.push((h, apply_script(&by_dev, ms, jitter_ms)));
        }
        let done = futures_util::future::join_all(
            plans
                .iter()
                .map(|(h, s)| h.run("adding the netem delay", s)),
        )
        .await;
        done.into_iter().try_for_each(|r| r.map(drop))
    }

    /// Removes faultline's qdiscs from `nodes` (those recorded).
    pub async fn heal_delay(&self, nodes: &[String]) -> Result<()> {
        let touched = self.state().touched;
        let targets = self.resolve(nodes)?;
        let work: Vec<(&Host, String)> = targets
            .into_iter()
            .filter_map(|h| {
                let devs = &touched.get(&h.spec.name)?.qdiscs;
                (!devs.is_empty()).then(|| (h, remove_script(devs)))
            })
            .collect();
        let done = futures_util::future::join_all(
            work.iter()
                .map(|(h, script)| h.run("removing the netem delay", script)),
        )
        .await;
        done.into_iter().try_for_each(|r| r.map(drop))?;
        let cleared: Vec<String> = work.iter().map(|(h, _)| h.spec.name.clone()).collect();
        self.touch(&cleared, |t| t.qdiscs.clear())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tc_commands_delay_only_the_peers() {
        let peers = [Ipv4Addr::new(10, 0, 0, 12), Ipv4Addr::new(10, 0, 0, 13)];
        assert_eq!(
            delay_commands("eth0", &peers, 100, 20),
            vec![
                "tc qdisc add dev eth0 root handle fa17: prio bands 4 priomap 1 2 2 2 1 2 0 0 1 1 1 1 1 1 1 1",
                "tc qdisc add dev eth0 parent fa17:4 handle fa18: netem delay 100ms 20ms",
                "tc filter add dev eth0 parent fa17: protocol ip prio 1 u32 match ip dst 10.0.0.12/32 flowid fa17:4",
                "tc filter add dev eth0 parent fa17: protocol ip prio 1 u32 match ip dst 10.0.0.13/32 flowid fa17:4",
            ]
        );
        let r = remove_script(&["eth0".into()]);
        assert_eq!(
            r,
            "if tc qdisc show dev 'eth0' 2>/dev/null | grep -q '^qdisc prio fa17: root'; then $SUDO tc qdisc del dev 'eth0' root || exit 1; echo 'eth0'; fi\ntrue\n"
        );
        let by_dev: BTreeMap<String, Vec<Ipv4Addr>> = [("eth0".to_string(), peers.to_vec())].into();
        let a = apply_script(&by_dev, 100, 20);
        // Faultline's qdisc goes first (a new delay replaces it), and a
        // failing command undoes what was added.
        assert!(a.starts_with("if tc qdisc show dev 'eth0'"), "{a}");
        assert!(
            a.contains("$SUDO tc qdisc add dev eth0 parent fa17:4 handle fa18: netem delay 100ms 20ms || { r=$?; if tc qdisc show"),
            "{a}"
        );
        let p = probe_script(&by_dev);
        assert!(p.contains("netem delay 1ms 0ms"), "{p}");
        assert!(
            p.trim_end().ends_with("true"),
            "the probe removes its qdisc: {p}"
        );
        assert!(routes_script(&peers).contains("ip -o -4 route get 10.0.0.13"));
    }
}
