//! Client sockets that cannot leave the lab.
//!
//! A run's clients live in the root namespace and reach the nodes through
//! the lab's bridge. Should the bridge disappear mid-run (`faultline clean
//! --force`, a user's `ip link del`), the lab's subnet would follow the
//! host's routes, possibly to another machine. So once a run has bound its
//! clients to its lab ([`bind_to_bridge`]), every client socket is created
//! with `SO_BINDTODEVICE` on the bridge: it can only ever send through that
//! interface, and when the bridge is gone the socket cannot be created at
//! all (`ENODEV`), which the clients report as a definite failure.

use std::net::SocketAddr;
use std::sync::RwLock;

use tokio::net::{TcpSocket, TcpStream};

/// The bridge client sockets are bound to, if any.
static BRIDGE: RwLock<Option<String>> = RwLock::new(None);

/// From now on, every client socket of this process is bound to `bridge`.
pub fn bind_to_bridge(bridge: &str) {
    if let Ok(mut b) = BRIDGE.write() {
        *b = Some(bridge.to_string());
    }
}

/// The bridge client sockets are bound to.
pub fn bound_bridge() -> Option<String> {
    BRIDGE.read().ok().and_then(|b| b.clone())
}

/// A socket for `addr`, bound to the lab's bridge when one is set. Fails
/// (and nothing is sent) when the bridge does not exist.
pub fn socket_for(addr: SocketAddr) -> std::io::Result<TcpSocket> {
    let s = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(bridge) = bound_bridge() {
        s.bind_device(Some(bridge.as_bytes())).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "client sockets are bound to the lab's bridge {bridge}, which is unusable ({e})"
                ),
            )
        })?;
    }
    Ok(s)
}

/// Connects to `addr` through the lab's bridge (see [`socket_for`]).
pub async fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    socket_for(addr)?.connect(addr).await
}
