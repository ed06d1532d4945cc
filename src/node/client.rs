//! An async client for the node protocol, as the runner uses it.
//!
//! One request at a time per client. Errors say whether the request could
//! have reached the node: [`ClientError::Definite`] (nothing of it left this
//! process: record `fail`) or [`ClientError::Indefinite`] (it may have been
//! applied: record `info`). After an indefinite error the connection is
//! dropped and the next [`NodeClient::call`] reconnects first, so that a late
//! reply can never be matched to a newer request (ids are checked too).

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::protocol::{Reply, Request};

/// Why a call got no reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The request certainly did not reach the node (connect failed, or
    /// the connection failed before any byte of it was sent).
    #[error("{0}")]
    Definite(String),
    /// The request may have reached the node: timeout, connection lost
    /// after sending, or a reply that makes no sense.
    #[error("{0}")]
    Indefinite(String),
}

struct Conn {
    rd: BufReader<OwnedReadHalf>,
    wr: OwnedWriteHalf,
}

/// A connection to one node.
pub struct NodeClient {
    addr: SocketAddr,
    connect_timeout: Duration,
    conn: Option<Conn>,
    next_id: u64,
    out: Vec<u8>,
    line: Vec<u8>,
}

async fn open(addr: SocketAddr, timeout: Duration) -> Result<Conn, ClientError> {
    let stream = match tokio::time::timeout(timeout, crate::lab::client_socket::connect(addr)).await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(ClientError::Definite(format!("connect {addr}: {e}"))),
        Err(_) => {
            return Err(ClientError::Definite(format!(
                "connect {addr}: no answer within {} ms",
                timeout.as_millis()
            )));
        }
    };
    let _ = stream.set_nodelay(true);
    let (rd, wr) = stream.into_split();
    Ok(Conn {
        rd: BufReader::with_capacity(16 * 1024, rd),
        wr,
    })
}

impl Conn {
    /// `false` when the node closed the connection or sent something
    /// unasked since the last reply.
    fn idle_and_open(&self) -> bool {
        if !self.rd.buffer().is_empty() {
            return false;
        }
        let mut b = [0u8; 1];
        matches!(self.rd.get_ref().try_read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
}

impl NodeClient {
    /// Connects to the node at `addr` (a [`ClientError::Definite`] error if
    /// it cannot within `timeout`; the same timeout bounds reconnects).
    pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<NodeClient, ClientError> {
        let conn = open(addr, timeout).await?;
        Ok(NodeClient {
            addr,
            connect_timeout: timeout,
            conn: Some(conn),
            next_id: 1,
            out: Vec::with_capacity(256),
            line: Vec::with_capacity(256),
        })
    }

    /// The node's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `true` when the next call will open a new connection first.
    pub fn needs_reconnect(&self) -> bool {
        self.conn.is_none()
    }

    /// Sends one request and waits for its reply within `timeout`
    /// (reconnecting first if an earlier call failed).
    pub async fn call(
        &mut self,
        f: &str,
        key: &str,
        value: Value,
        timeout: Duration,
    ) -> Result<Reply, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        if self.conn.as_ref().is_some_and(|c| !c.idle_and_open()) {
            // The node closed the connection (restarted?) while we were
            // idle: reconnect rather than send into a dead socket.
            self.conn = None;
        }
        if self.conn.is_none() {
            let t = self.connect_timeout.min(timeout);
            self.conn = Some(open(self.addr, t).await?);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.out.clear();
        let req = Request {
            id,
            f: f.to_string(),
            key: key.to_string(),
            value,
        };
        if let Err(e) = serde_json::to_writer(&mut self.out, &req) {
            return Err(ClientError::Definite(format!("encode request: {e}")));
        }
        self.out.push(b'\n');
        let result = match self.conn.as_mut() {
            Some(conn) => exchange(conn, &self.out, &mut self.line, id, deadline, timeout).await,
            None => Err(ClientError::Definite("not connected".into())),
        };
        if result.is_err() {
            // Never reuse a connection that may still deliver a stale reply.
            self.conn = None;
        }
        result
    }
}

async fn exchange(
    conn: &mut Conn,
    out: &[u8],
    line: &mut Vec<u8>,
    id: u64,
    deadline: tokio::time::Instant,
    timeout: Duration,
) -> Result<Reply, ClientError> {
    let ms = timeout.as_millis();
    // Write, counting bytes: an error before the first byte left is
    // definite, after it indefinite.
    let mut written = 0;
    while written < out.len() {
        match tokio::time::timeout_at(deadline, conn.wr.write(&out[written..])).await {
            Ok(Ok(0)) | Ok(Err(_)) if written == 0 => {
                return Err(ClientError::Definite(
                    "connection failed before sending".into(),
                ));
            }
            Ok(Ok(0)) => {
                return Err(ClientError::Indefinite(
                    "connection closed while sending".into(),
                ));
            }
            Ok(Ok(n)) => written += n,
            Ok(Err(e)) => return Err(ClientError::Indefinite(format!("send: {e}"))),
            Err(_) if written == 0 => {
                return Err(ClientError::Definite(format!(
                    "send: timeout after {ms} ms"
                )));
            }
            Err(_) => return Err(ClientError::Indefinite(format!("timeout after {ms} ms"))),
        }
    }
    line.clear();
    match tokio::time::timeout_at(deadline, conn.rd.read_until(b'\n', line)).await {
        Ok(Ok(0)) => {
            return Err(ClientError::Indefinite(
                "connection closed by the node".into(),
            ));
        }
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(ClientError::Indefinite(format!("receive: {e}"))),
        Err(_) => return Err(ClientError::Indefinite(format!("timeout after {ms} ms"))),
    }
    if line.last() != Some(&b'\n') {
        return Err(ClientError::Indefinite(
            "connection closed mid-reply".into(),
        ));
    }
    let reply: Reply = serde_json::from_slice(line).map_err(|e| {
        ClientError::Indefinite(format!(
            "bad reply {:?}: {e}",
            String::from_utf8_lossy(line).trim()
        ))
    })?;
    if reply.id != id {
        return Err(ClientError::Indefinite(format!(
            "reply id {} does not match request id {id}",
            reply.id
        )));
    }
    Ok(reply)
}
