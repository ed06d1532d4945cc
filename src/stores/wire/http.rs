//! HTTP/1.1 with keep-alive and chunked bodies, enough for etcd's v3 JSON
//! gateway.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::{ClientError, connect, definite, indefinite, read_exact, read_line, send};

/// A keep-alive HTTP/1.1 connection for JSON POSTs.
pub struct Http {
    addr: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
}

impl Http {
    /// A client for `addr` (connects on first use).
    pub fn new(addr: SocketAddr) -> Http {
        Http { addr, conn: None }
    }

    /// Opens the connection now if it is not open.
    pub async fn connect(&mut self, deadline: Instant) -> Result<(), ClientError> {
        if self.conn.is_none() {
            self.conn = Some(BufReader::new(connect(self.addr, deadline).await?));
        }
        Ok(())
    }

    /// POSTs `body` to `path`; returns the status and the body. Any error
    /// drops the connection.
    pub async fn post(
        &mut self,
        path: &str,
        body: &[u8],
        deadline: Instant,
    ) -> Result<(u16, Vec<u8>), ClientError> {
        self.connect(deadline).await?;
        let r = self.exchange("POST", path, body, deadline).await;
        if !matches!(r, Ok((_, _, true))) {
            self.conn = None;
        }
        r.map(|(s, b, _)| (s, b))
    }

    /// GETs `path`.
    pub async fn get(
        &mut self,
        path: &str,
        deadline: Instant,
    ) -> Result<(u16, Vec<u8>), ClientError> {
        self.connect(deadline).await?;
        let r = self.exchange("GET", path, b"", deadline).await;
        if !matches!(r, Ok((_, _, true))) {
            self.conn = None;
        }
        r.map(|(s, b, _)| (s, b))
    }

    async fn exchange(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
        deadline: Instant,
    ) -> Result<(u16, Vec<u8>, bool), ClientError> {
        let s = self
            .conn
            .as_mut()
            .ok_or_else(|| definite("not connected"))?;
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        send(s, &req, deadline).await?;
        let status_line = read_line(s, deadline).await?;
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| indefinite(format!("bad HTTP status line {status_line:?}")))?;
        let (mut length, mut chunked, mut keep) = (None, false, true);
        loop {
            let h = read_line(s, deadline).await?;
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_ascii_lowercase());
                match k.as_str() {
                    "content-length" => length = v.parse::<usize>().ok(),
                    "transfer-encoding" => chunked = v.contains("chunked"),
                    "connection" => keep = v != "close",
                    _ => {}
                }
            }
        }
        let mut out = Vec::new();
        if chunked {
            loop {
                let size = read_line(s, deadline).await?;
                let n = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
                    .map_err(|_| indefinite(format!("bad chunk size {size:?}")))?;
                if n == 0 {
                    // Trailers, then the empty line.
                    while !read_line(s, deadline).await?.is_empty() {}
                    break;
                }
                out.extend(read_exact(s, n, deadline).await?);
                read_line(s, deadline).await?;
            }
        } else if let Some(n) = length {
            out = read_exact(s, n, deadline).await?;
        } else {
            keep = false;
            let _ = tokio::time::timeout_at(deadline, s.read_to_end(&mut out))
                .await
                .map_err(|_| indefinite("timeout"))?;
        }
        Ok((status, out, keep))
    }
}
