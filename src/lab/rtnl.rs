//! Links, addresses and routes over rtnetlink (what `ip link`, `ip addr`
//! and `ip route` do), on a [`netlink::Socket`] opened in the namespace to
//! act in.

use std::net::Ipv4Addr;
use std::os::fd::RawFd;

use super::net::Net;
use super::netlink::{self, F_CREATE, F_EXCL, Msg, Socket, attrs};
use super::{LabError, Result};

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_SETLINK: u16 = 19;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTM_GETROUTE: u16 = 26;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_STATIC: u8 = 4;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RTN_BLACKHOLE: u8 = 6;

const IFLA_IFNAME: u16 = 3;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const RTA_DST: u16 = 1;
const IFF_UP: u32 = 1;

/// `struct ifinfomsg` (16 bytes).
fn ifinfomsg(index: i32, flags: u32, change: u32) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[0] = libc::AF_UNSPEC as u8;
    h[4..8].copy_from_slice(&index.to_ne_bytes());
    h[8..12].copy_from_slice(&flags.to_ne_bytes());
    h[12..16].copy_from_slice(&change.to_ne_bytes());
    h
}

/// An rtnetlink connection in one network namespace.
#[derive(Debug)]
pub struct Rtnl(Socket);

impl Rtnl {
    /// A connection in the calling thread's namespace.
    pub fn open(context: &str) -> Result<Rtnl> {
        Socket::open(netlink::ROUTE, context).map(Rtnl)
    }

    /// A connection inside `/run/netns/<netns>`.
    pub fn open_in(netns: &str) -> Result<Rtnl> {
        Socket::open_in(netns, netlink::ROUTE).map(Rtnl)
    }

    /// Creates a bridge, up.
    pub fn add_bridge(&mut self, name: &str) -> Result<()> {
        let m = Msg::new(RTM_NEWLINK, F_CREATE | F_EXCL, format!("add bridge {name}"))
            .header(&ifinfomsg(0, IFF_UP, IFF_UP))
            .str(IFLA_IFNAME, name)
            .nest(IFLA_LINKINFO)
            .str(IFLA_INFO_KIND, "bridge")
            .end();
        self.0.request(m)
    }

    /// A message creating the veth pair `name` (up, enslaved to the bridge
    /// with index `master`) and `peer`, whose end is moved into the
    /// namespace open as `peer_netns`.
    pub fn veth_msg(name: &str, master: u32, peer: &str, peer_netns: RawFd) -> Msg {
        Msg::new(RTM_NEWLINK, F_CREATE | F_EXCL, format!("add veth {name}"))
            .header(&ifinfomsg(0, IFF_UP, IFF_UP))
            .str(IFLA_IFNAME, name)
            .u32(IFLA_MASTER, master)
            .nest(IFLA_LINKINFO)
            .str(IFLA_INFO_KIND, "veth")
            .nest(IFLA_INFO_DATA)
            .nest(VETH_INFO_PEER)
            .header(&ifinfomsg(0, 0, 0))
            .str(IFLA_IFNAME, peer)
            .u32(IFLA_NET_NS_FD, peer_netns as u32)
            .end()
            .end()
            .end()
    }

    /// A message adding `ip/len` to the interface with index `index`.
    pub fn addr_msg(index: u32, ip: Ipv4Addr, len: u8) -> Msg {
        let mut h = [0u8; 8];
        h[0] = libc::AF_INET as u8;
        h[1] = len;
        h[4..8].copy_from_slice(&index.to_ne_bytes());
        Msg::new(
            RTM_NEWADDR,
            F_CREATE | F_EXCL,
            format!("add address {ip}/{len}"),
        )
        .header(&h)
        .attr(IFA_LOCAL, &ip.octets())
        .attr(IFA_ADDRESS, &ip.octets())
    }

    /// A message setting the interface `name` up.
    pub fn up_msg(name: &str) -> Msg {
        Msg::new(RTM_SETLINK, 0, format!("set {name} up"))
            .header(&ifinfomsg(0, IFF_UP, IFF_UP))
            .str(IFLA_IFNAME, name)
    }

    /// Sends several messages at once and waits for every acknowledgement.
    pub fn batch(&mut self, msgs: Vec<Msg>) -> Result<()> {
        self.0.request_batch(msgs, &[])
    }

    /// The index of the interface `name`.
    pub fn index(&mut self, name: &str) -> Result<u32> {
        let m = Msg::new(RTM_GETLINK, 0, format!("find interface {name}"))
            .header(&ifinfomsg(0, 0, 0))
            .str(IFLA_IFNAME, name);
        let r = self.0.query(m)?;
        r.iter()
            .filter(|r| r.kind == RTM_NEWLINK)
            .find_map(|r| Some(u32::from_ne_bytes(r.body.get(4..8)?.try_into().ok()?)))
            .ok_or_else(|| LabError::Netlink {
                what: format!("find interface {name}"),
                errno: libc::ENODEV,
            })
    }

    /// Deletes the interface `name` (a veth takes its peer with it); an
    /// interface that does not exist is not an error.
    pub fn del_link(&mut self, name: &str) -> Result<()> {
        let m = Msg::new(RTM_DELLINK, 0, format!("delete interface {name}"))
            .header(&ifinfomsg(0, 0, 0))
            .str(IFLA_IFNAME, name);
        match self.0.request(m) {
            Err(LabError::Netlink { errno, .. }) if errno == libc::ENODEV => Ok(()),
            r => r,
        }
    }

    /// Every IPv4 network in use in this namespace: each address with its
    /// prefix, and each route's destination in every table (but the default).
    pub fn networks(&mut self) -> Result<Vec<Net>> {
        let mut out = Vec::new();
        let h = [libc::AF_INET as u8, 0, 0, 0, 0, 0, 0, 0];
        let m = Msg::new(RTM_GETADDR, 0, "list addresses").header(&h);
        for r in self.0.dump(m)? {
            let (Some(len), Some(rest)) = (r.body.get(1), r.body.get(8..)) else {
                continue;
            };
            let a = netlink::attr(rest, IFA_LOCAL).or_else(|| netlink::attr(rest, IFA_ADDRESS));
            if let Some(a) = a.and_then(|a| <[u8; 4]>::try_from(a).ok()) {
                out.push(Net {
                    addr: Ipv4Addr::from(a),
                    len: (*len).min(32),
                });
            }
        }
        out.extend(self.routes()?.into_iter().filter(|n| n.len > 0));
        Ok(out)
    }

    /// Every IPv4 route destination in every table (the default route is
    /// `0.0.0.0/0`).
    pub fn routes(&mut self) -> Result<Vec<Net>> {
        let mut out = Vec::new();
        let h = [libc::AF_INET as u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let m = Msg::new(RTM_GETROUTE, 0, "list routes").header(&h);
        for r in self.0.dump(m)? {
            let (Some(len), Some(rest)) = (r.body.get(1), r.body.get(12..)) else {
                continue;
            };
            let dst = attrs(rest)
                .find(|(k, _)| *k == RTA_DST)
                .and_then(|(_, v)| <[u8; 4]>::try_from(v).ok())
                .map(Ipv4Addr::from)
                .unwrap_or(Ipv4Addr::UNSPECIFIED);
            out.push(Net {
                addr: dst,
                len: (*len).min(32),
            });
        }
        Ok(out)
    }

    fn blackhole_msg(kind: u16, flags: u16, net: Net) -> Msg {
        let h = [
            libc::AF_INET as u8,
            net.len,
            0,
            0,
            RT_TABLE_MAIN,
            RTPROT_STATIC,
            RT_SCOPE_UNIVERSE,
            RTN_BLACKHOLE,
            0,
            0,
            0,
            0,
        ];
        Msg::new(
            kind,
            flags,
            format!("blackhole route {}/{}", net.addr, net.len),
        )
        .header(&h)
        .attr(RTA_DST, &net.addr.octets())
    }

    /// Adds a blackhole route for `net` to the main table (`ip route add
    /// blackhole NET`): packets to it are dropped here, never sent.
    pub fn add_blackhole(&mut self, net: Net) -> Result<()> {
        self.0
            .request(Self::blackhole_msg(RTM_NEWROUTE, F_CREATE | F_EXCL, net))
    }

    /// Removes a blackhole route added by [`Rtnl::add_blackhole`].
    pub fn del_blackhole(&mut self, net: Net) -> Result<()> {
        self.0.request(Self::blackhole_msg(RTM_DELROUTE, 0, net))
    }

    /// Asks the kernel for its route to `dst` (as `ip route get`; no packet
    /// is sent). `Err(errno)` when there is none, e.g. `ENETUNREACH`.
    pub fn route_get(&mut self, dst: Ipv4Addr) -> Result<std::result::Result<(), i32>> {
        let h = [libc::AF_INET as u8, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let m = Msg::new(RTM_GETROUTE, 0, format!("route to {dst}"))
            .header(&h)
            .attr(RTA_DST, &dst.octets());
        match self.0.query(m) {
            Ok(_) => Ok(Ok(())),
            Err(LabError::Netlink { errno, .. }) => Ok(Err(errno)),
            Err(e) => Err(e),
        }
    }
}
