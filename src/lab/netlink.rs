//! A minimal, synchronous netlink client: one socket per namespace and
//! protocol, messages built attribute by attribute, requests acknowledged
//! one by one, dumps read to their end. [`super::rtnl`] (links, addresses,
//! routes) and [`super::nft`] (nftables) build their messages with it, so the
//! lab needs neither the `ip` nor the `iptables` program.
//!
//! Every receive has a deadline, so a kernel that never answers is an error,
//! not a hang.

use super::{LabError, Result, sys};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `NETLINK_ROUTE`: links, addresses, routes.
pub const ROUTE: libc::c_int = libc::NETLINK_ROUTE;
/// `NETLINK_NETFILTER`: nftables.
pub const NETFILTER: libc::c_int = libc::NETLINK_NETFILTER;

const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
/// `NLM_F_REQUEST`.
pub const F_REQUEST: u16 = 0x1;
/// `NLM_F_ACK`.
pub const F_ACK: u16 = 0x4;
/// `NLM_F_DUMP` (`NLM_F_ROOT | NLM_F_MATCH`).
pub const F_DUMP: u16 = 0x300;
/// `NLM_F_REPLACE`.
pub const F_REPLACE: u16 = 0x100;
/// `NLM_F_EXCL`.
pub const F_EXCL: u16 = 0x200;
/// `NLM_F_CREATE`.
pub const F_CREATE: u16 = 0x400;
/// `NLM_F_APPEND`.
pub const F_APPEND: u16 = 0x800;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// One netlink message under construction: header, a fixed family header,
/// then attributes (nests are closed with [`Msg::end`]).
#[derive(Clone, Debug)]
pub struct Msg {
    buf: Vec<u8>,
    nests: Vec<usize>,
    /// What the message does, for error messages (`add link fl-x-br`).
    pub what: String,
}

impl Msg {
    /// A message of `kind` with `flags` (`NLM_F_REQUEST` is added).
    pub fn new(kind: u16, flags: u16, what: impl Into<String>) -> Msg {
        let mut buf = vec![0u8; NLMSG_HDRLEN];
        buf[4..6].copy_from_slice(&kind.to_ne_bytes());
        buf[6..8].copy_from_slice(&(flags | F_REQUEST).to_ne_bytes());
        Msg {
            buf,
            nests: Vec::new(),
            what: what.into(),
        }
    }

    /// Appends a fixed header (`ifinfomsg`, `nfgenmsg`...), padded to 4.
    pub fn header(mut self, bytes: &[u8]) -> Msg {
        self.buf.extend_from_slice(bytes);
        self.buf.resize(align4(self.buf.len()), 0);
        self
    }

    /// Appends an attribute.
    pub fn attr(mut self, kind: u16, value: &[u8]) -> Msg {
        let len = 4 + value.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(value);
        self.buf.resize(align4(self.buf.len()), 0);
        self
    }

    /// A NUL-terminated string attribute.
    pub fn str(self, kind: u16, s: &str) -> Msg {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.attr(kind, &v)
    }

    /// A native-endian u32 attribute.
    pub fn u32(self, kind: u16, v: u32) -> Msg {
        self.attr(kind, &v.to_ne_bytes())
    }

    /// A big-endian u32 attribute (nftables' convention).
    pub fn be32(self, kind: u16, v: u32) -> Msg {
        self.attr(kind, &v.to_be_bytes())
    }

    /// A big-endian u16 attribute.
    pub fn be16(self, kind: u16, v: u16) -> Msg {
        self.attr(kind, &v.to_be_bytes())
    }

    /// A big-endian u64 attribute.
    pub fn be64(self, kind: u16, v: u64) -> Msg {
        self.attr(kind, &v.to_be_bytes())
    }

    /// Opens a nested attribute; close it with [`Msg::end`].
    pub fn nest(mut self, kind: u16) -> Msg {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        self
    }

    /// Closes the innermost nest.
    pub fn end(mut self) -> Msg {
        if let Some(start) = self.nests.pop() {
            let len = (self.buf.len() - start) as u16;
            self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        }
        self
    }

    fn flags(&self) -> u16 {
        u16::from_ne_bytes([self.buf[6], self.buf[7]])
    }

    fn finish(&mut self, seq: u32) {
        while !self.nests.is_empty() {
            let m = std::mem::replace(self, Msg::new(0, 0, ""));
            *self = m.end();
        }
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
    }
}

/// A received message: its type and its body after the netlink header.
#[derive(Debug)]
pub struct Reply {
    /// `nlmsg_type`.
    pub kind: u16,
    /// The fixed family header and the attributes.
    pub body: Vec<u8>,
}

/// Iterates over the attributes in `buf`: (type without flags, value).
pub fn attrs(buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut off = 0;
    std::iter::from_fn(move || {
        if off + 4 > buf.len() {
            return None;
        }
        let len = u16::from_ne_bytes([buf[off], buf[off + 1]]) as usize;
        let kind = u16::from_ne_bytes([buf[off + 2], buf[off + 3]]) & NLA_TYPE_MASK;
        if len < 4 || off + len > buf.len() {
            return None;
        }
        let v = &buf[off + 4..off + len];
        off += align4(len);
        Some((kind, v))
    })
}

/// The first attribute of type `kind` in `buf`.
pub fn attr(buf: &[u8], kind: u16) -> Option<&[u8]> {
    attrs(buf).find(|(k, _)| *k == kind).map(|(_, v)| v)
}

/// A string attribute without its terminating NUL.
pub fn attr_str(buf: &[u8], kind: u16) -> Option<String> {
    attr(buf, kind).map(|v| {
        let v = v.split(|b| *b == 0).next().unwrap_or_default();
        String::from_utf8_lossy(v).into_owned()
    })
}

/// A big-endian u32 attribute.
pub fn attr_be32(buf: &[u8], kind: u16) -> Option<u32> {
    attr(buf, kind).and_then(|v| Some(u32::from_be_bytes(v.get(..4)?.try_into().ok()?)))
}

/// An open netlink socket.
pub struct Socket {
    fd: OwnedFd,
    seq: u32,
    context: String,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("context", &self.context)
            .finish()
    }
}

fn os_err(context: &str, what: &str) -> LabError {
    LabError::io(
        format!("netlink ({context}): {what}"),
        std::io::Error::last_os_error(),
    )
}

impl Socket {
    /// Opens a socket of `protocol` in the calling thread's network namespace.
    pub fn open(protocol: libc::c_int, context: &str) -> Result<Socket> {
        // SAFETY: plain socket(2) call; the result is checked.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                protocol,
            )
        };
        if fd < 0 {
            return Err(os_err(context, "socket"));
        }
        // SAFETY: fd is a fresh, owned descriptor.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let tv = libc::timeval {
            tv_sec: 10,
            tv_usec: 0,
        };
        // SAFETY: setsockopt with a valid timeval of the right size.
        let r = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(os_err(context, "setsockopt"));
        }
        let one: libc::c_int = 1;
        // Extended acks carry the kernel's reason; harmless where unsupported.
        // SAFETY: setsockopt with an int.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_NETLINK,
                libc::NETLINK_EXT_ACK,
                &one as *const _ as *const libc::c_void,
                4,
            );
        }
        // SAFETY: a zeroed sockaddr_nl is valid (pid 0 = the kernel picks).
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: bind with a sockaddr_nl of the right size.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &sa as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(os_err(context, "bind"));
        }
        Ok(Socket {
            fd,
            seq: std::process::id().wrapping_mul(7919),
            context: context.to_string(),
        })
    }

    /// Opens a socket of `protocol` inside the namespace `/run/netns/<netns>`
    /// (from a short-lived thread; the socket stays in that namespace).
    pub fn open_in(netns: &str, protocol: libc::c_int) -> Result<Socket> {
        let ctx = format!("namespace {netns}");
        sys::in_netns(netns, move || Socket::open(protocol, &ctx))?
    }

    fn send(&self, buf: &[u8]) -> Result<()> {
        // SAFETY: a zeroed sockaddr_nl addresses the kernel.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: buf is valid for its length; sa is a sockaddr_nl.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                buf.as_ptr() as *const libc::c_void,
                buf.len(),
                0,
                &sa as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if n < 0 || n as usize != buf.len() {
            return Err(os_err(&self.context, "send"));
        }
        Ok(())
    }

    /// Receives one datagram and splits it into messages.
    fn recv(&self) -> Result<Vec<(u32, Reply)>> {
        let mut buf = vec![0u8; 1 << 16];
        loop {
            // SAFETY: buf is valid for its length.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                    0,
                )
            };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                let e = if e.kind() == std::io::ErrorKind::WouldBlock {
                    std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "no answer from the kernel within 10 s",
                    )
                } else {
                    e
                };
                return Err(LabError::io(format!("netlink ({})", self.context), e));
            }
            let n = n as usize;
            let mut out = Vec::new();
            let mut off = 0;
            while off + NLMSG_HDRLEN <= n {
                let len =
                    u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap_or_default()) as usize;
                if len < NLMSG_HDRLEN || off + len > n {
                    break;
                }
                let kind = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
                let seq = u32::from_ne_bytes(buf[off + 8..off + 12].try_into().unwrap_or_default());
                out.push((
                    seq,
                    Reply {
                        kind,
                        body: buf[off + NLMSG_HDRLEN..off + len].to_vec(),
                    },
                ));
                off += align4(len);
            }
            return Ok(out);
        }
    }

    fn error_of(&self, what: &str, body: &[u8]) -> Option<LabError> {
        let code = i32::from_ne_bytes(body.get(..4)?.try_into().ok()?);
        if code == 0 {
            return None;
        }
        Some(LabError::Netlink {
            what: format!("{what} ({})", self.context),
            errno: -code,
        })
    }

    /// Sends `msgs` in one datagram, each asking for an acknowledgement, and
    /// waits for all of them. The first error (in message order) is returned.
    /// `unacked` messages (netfilter batch delimiters) get no ack.
    pub fn request_batch(&mut self, msgs: Vec<Msg>, unacked: &[usize]) -> Result<()> {
        let mut buf = Vec::new();
        let mut pending: Vec<(u32, usize, String)> = Vec::new();
        let mut silent: Vec<(u32, String)> = Vec::new();
        for (i, mut m) in msgs.into_iter().enumerate() {
            self.seq = self.seq.wrapping_add(1);
            if unacked.contains(&i) {
                silent.push((self.seq, m.what.clone()));
            } else {
                let f = m.flags() | F_ACK;
                m.buf[6..8].copy_from_slice(&f.to_ne_bytes());
                pending.push((self.seq, i, m.what.clone()));
            }
            m.finish(self.seq);
            buf.extend_from_slice(&m.buf);
        }
        self.send(&buf)?;
        let mut first_err: Option<(usize, LabError)> = None;
        while !pending.is_empty() {
            for (seq, r) in self.recv()? {
                if r.kind != NLMSG_ERROR {
                    continue;
                }
                // A refused delimiter (e.g. a batch the kernel does not
                // accept) gets no ack for the rest: fail at once.
                if let Some((_, what)) = silent.iter().find(|(s, _)| *s == seq)
                    && let Some(e) = self.error_of(what, &r.body)
                {
                    return Err(e);
                }
                if let Some(pos) = pending.iter().position(|(s, _, _)| *s == seq) {
                    let (_, idx, what) = pending.remove(pos);
                    if let Some(e) = self.error_of(&what, &r.body) {
                        if first_err.as_ref().is_none_or(|(i, _)| idx < *i) {
                            first_err = Some((idx, e));
                        }
                    }
                }
            }
        }
        match first_err {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }

    /// Sends one request and waits for its acknowledgement.
    pub fn request(&mut self, msg: Msg) -> Result<()> {
        self.request_batch(vec![msg], &[])
    }

    /// Sends one request and returns the replies before its acknowledgement
    /// (for `NLM_F_ECHO` or a `GET` of one object).
    pub fn query(&mut self, msg: Msg) -> Result<Vec<Reply>> {
        self.collect(msg, false)
    }

    /// Sends a dump request and returns every reply up to `NLMSG_DONE`.
    pub fn dump(&mut self, msg: Msg) -> Result<Vec<Reply>> {
        self.collect(msg, true)
    }

    fn collect(&mut self, mut msg: Msg, dump: bool) -> Result<Vec<Reply>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let what = msg.what.clone();
        let mut f = msg.flags() | if dump { F_DUMP } else { F_ACK };
        if dump {
            f &= !F_ACK;
        }
        msg.buf[6..8].copy_from_slice(&f.to_ne_bytes());
        msg.finish(seq);
        self.send(&msg.buf)?;
        let mut out = Vec::new();
        loop {
            for (s, r) in self.recv()? {
                if s != seq {
                    continue;
                }
                match r.kind {
                    NLMSG_DONE => return Ok(out),
                    NLMSG_ERROR => {
                        return match self.error_of(&what, &r.body) {
                            Some(e) => Err(e),
                            None => Ok(out),
                        };
                    }
                    _ => out.push(r),
                }
            }
        }
    }
}

/// True if `e` is the kernel's "no such file or directory" (an object that
/// is already gone).
pub fn is_enoent(e: &LabError) -> bool {
    matches!(e, LabError::Netlink { errno, .. } if *errno == libc::ENOENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_nest_and_parse_back() {
        let mut m = Msg::new(16, F_CREATE, "test")
            .header(&[1, 2, 3])
            .str(1, "ab")
            .nest(2)
            .u32(3, 7)
            .nest(4)
            .be32(5, 9)
            .end()
            .end()
            .attr(6, &[0xff]);
        m.finish(42);
        let b = &m.buf;
        assert_eq!(
            u32::from_ne_bytes(b[0..4].try_into().unwrap()) as usize,
            b.len()
        );
        assert_eq!(b.len() % 4, 0);
        assert_eq!(u16::from_ne_bytes([b[6], b[7]]), F_CREATE | F_REQUEST);
        assert_eq!(u32::from_ne_bytes(b[8..12].try_into().unwrap()), 42);
        let body = &b[NLMSG_HDRLEN + 4..]; // header padded from 3 to 4 bytes
        let kinds: Vec<u16> = attrs(body).map(|(k, _)| k).collect();
        assert_eq!(kinds, [1, 2, 6]);
        assert_eq!(attr_str(body, 1).as_deref(), Some("ab"));
        let nest = attr(body, 2).unwrap();
        assert_eq!(attr(nest, 3), Some(&7u32.to_ne_bytes()[..]));
        assert_eq!(attr_be32(attr(nest, 4).unwrap(), 5), Some(9));
        assert_eq!(attr(body, 6), Some(&[0xff][..]));
        // A truncated buffer yields what is whole, never a panic.
        assert_eq!(attrs(&body[..body.len() - 4]).count(), 2);
    }
}
