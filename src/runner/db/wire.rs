//! Minimal wire clients over tokio TCP: HTTP/1.1 (etcd's JSON gateway),
//! RESP (Redis and Sentinel) and the PostgreSQL simple-query protocol.
//!
//! Each is a few dozen lines and needs no system library, no protoc and no
//! extra crate; every operation has a deadline, and every error says whether
//! the request could have reached the server ([`ClientError::Definite`]:
//! nothing was sent; [`ClientError::Indefinite`]: it may have been applied).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::node::client::ClientError;

fn definite(m: impl Into<String>) -> ClientError {
    ClientError::Definite(m.into())
}

fn indefinite(m: impl Into<String>) -> ClientError {
    ClientError::Indefinite(m.into())
}

/// Opens a TCP connection before `deadline` (a definite error otherwise).
pub async fn connect(addr: SocketAddr, deadline: Instant) -> Result<TcpStream, ClientError> {
    match tokio::time::timeout_at(deadline, crate::lab::client_socket::connect(addr)).await {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
        Ok(Err(e)) => Err(definite(format!("connect {addr}: {e}"))),
        Err(_) => Err(definite(format!("connect {addr}: timeout"))),
    }
}

/// Writes all of `buf`: an error before the first byte left is definite.
async fn send(
    s: &mut BufReader<TcpStream>,
    buf: &[u8],
    deadline: Instant,
) -> Result<(), ClientError> {
    let mut written = 0;
    while written < buf.len() {
        match tokio::time::timeout_at(deadline, s.get_mut().write(&buf[written..])).await {
            Ok(Ok(n)) if n > 0 => written += n,
            Ok(_) if written == 0 => return Err(definite("connection failed before sending")),
            Ok(_) => return Err(indefinite("connection failed while sending")),
            Err(_) if written == 0 => return Err(definite("send: timeout")),
            Err(_) => return Err(indefinite("timeout while sending")),
        }
    }
    Ok(())
}

async fn read_line(s: &mut BufReader<TcpStream>, deadline: Instant) -> Result<String, ClientError> {
    let mut line = Vec::new();
    match tokio::time::timeout_at(deadline, s.read_until(b'\n', &mut line)).await {
        Ok(Ok(0)) => Err(indefinite("connection closed by the server")),
        Ok(Ok(_)) if line.ends_with(b"\n") => {
            while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                line.pop();
            }
            Ok(String::from_utf8_lossy(&line).into_owned())
        }
        Ok(Ok(_)) => Err(indefinite("connection closed mid-reply")),
        Ok(Err(e)) => Err(indefinite(format!("receive: {e}"))),
        Err(_) => Err(indefinite("timeout")),
    }
}

async fn read_exact(
    s: &mut BufReader<TcpStream>,
    n: usize,
    deadline: Instant,
) -> Result<Vec<u8>, ClientError> {
    let mut buf = vec![0u8; n];
    match tokio::time::timeout_at(deadline, s.read_exact(&mut buf)).await {
        Ok(Ok(_)) => Ok(buf),
        Ok(Err(e)) => Err(indefinite(format!("receive: {e}"))),
        Err(_) => Err(indefinite("timeout")),
    }
}

// ---------------------------------------------------------------- HTTP/1.1

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

// ---------------------------------------------------------------- RESP

/// A RESP value.
#[derive(Clone, Debug, PartialEq)]
pub enum Resp {
    /// `+OK`
    Simple(String),
    /// `-ERR ...`
    Error(String),
    /// `:1`
    Int(i64),
    /// `$n` (None: the null bulk string).
    Bulk(Option<Vec<u8>>),
    /// `*n` (None: the null array).
    Array(Option<Vec<Resp>>),
}

impl Resp {
    /// The value as text (simple and bulk strings).
    pub fn text(&self) -> Option<String> {
        match self {
            Resp::Simple(s) => Some(s.clone()),
            Resp::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }
}

/// A connection speaking RESP.
pub struct RespConn {
    s: BufReader<TcpStream>,
}

impl RespConn {
    /// Connects.
    pub async fn connect(addr: SocketAddr, deadline: Instant) -> Result<RespConn, ClientError> {
        Ok(RespConn {
            s: BufReader::new(connect(addr, deadline).await?),
        })
    }

    /// Sends one command and reads its reply.
    pub async fn cmd(&mut self, args: &[&[u8]], deadline: Instant) -> Result<Resp, ClientError> {
        let mut buf = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            buf.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            buf.extend_from_slice(a);
            buf.extend_from_slice(b"\r\n");
        }
        send(&mut self.s, &buf, deadline).await?;
        self.read(deadline).await
    }

    fn read(
        &mut self,
        deadline: Instant,
    ) -> Pin<Box<dyn Future<Output = Result<Resp, ClientError>> + Send + '_>> {
        Box::pin(async move {
            let line = read_line(&mut self.s, deadline).await?;
            let bad = || indefinite(format!("bad RESP line {line:?}"));
            let (t, rest) = line.split_at_checked(1).ok_or_else(bad)?;
            match t {
                "+" => Ok(Resp::Simple(rest.to_string())),
                "-" => Ok(Resp::Error(rest.to_string())),
                ":" => rest.parse().map(Resp::Int).map_err(|_| bad()),
                "$" => {
                    let n: i64 = rest.parse().map_err(|_| bad())?;
                    if n < 0 {
                        return Ok(Resp::Bulk(None));
                    }
                    let mut b = read_exact(&mut self.s, n as usize + 2, deadline).await?;
                    b.truncate(n as usize);
                    Ok(Resp::Bulk(Some(b)))
                }
                "*" => {
                    let n: i64 = rest.parse().map_err(|_| bad())?;
                    if n < 0 {
                        return Ok(Resp::Array(None));
                    }
                    let mut v = Vec::with_capacity(n as usize);
                    for _ in 0..n {
                        v.push(self.read(deadline).await?);
                    }
                    Ok(Resp::Array(Some(v)))
                }
                _ => Err(bad()),
            }
        })
    }
}

// ---------------------------------------------------------------- PostgreSQL

/// What a simple query returned.
#[derive(Debug, Default)]
pub struct PgResult {
    /// The rows, each column as text (None: NULL).
    pub rows: Vec<Vec<Option<String>>>,
    /// The command tag of the last statement (`UPDATE 1`, `SELECT 3`).
    pub tag: String,
}

/// An error the server sent (the statement did not commit).
#[derive(Debug, Clone)]
pub struct PgError {
    /// SQLSTATE.
    pub code: String,
    /// The message.
    pub message: String,
}

/// A PostgreSQL connection (trust authentication, simple query protocol).
pub struct PgConn {
    s: BufReader<TcpStream>,
}

impl PgConn {
    /// Connects as `postgres` to the database `postgres` and waits until the
    /// server is ready for queries. Everything before that is definite.
    pub async fn connect(addr: SocketAddr, deadline: Instant) -> Result<PgConn, ClientError> {
        let mut c = PgConn {
            s: BufReader::new(connect(addr, deadline).await?),
        };
        let mut body = Vec::new();
        body.extend_from_slice(&196_608i32.to_be_bytes());
        for p in [
            "user",
            "postgres",
            "database",
            "postgres",
            "application_name",
            "faultline",
        ] {
            body.extend_from_slice(p.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut msg = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        msg.extend(body);
        send(&mut c.s, &msg, deadline).await?;
        loop {
            let (t, b) = c
                .message(deadline)
                .await
                .map_err(|e| definite(e.to_string()))?;
            match t {
                b'R' if b.get(..4) == Some(&[0, 0, 0, 0]) => {}
                b'R' => {
                    return Err(definite(
                        "the server asks for a password: faultline connects with trust authentication",
                    ));
                }
                b'E' => {
                    let e = pg_error(&b);
                    return Err(definite(format!("{} ({})", e.message, e.code)));
                }
                b'Z' => return Ok(c),
                _ => {}
            }
        }
    }

    async fn message(&mut self, deadline: Instant) -> Result<(u8, Vec<u8>), ClientError> {
        let h = read_exact(&mut self.s, 5, deadline).await?;
        let len = i32::from_be_bytes([h[1], h[2], h[3], h[4]]);
        if !(4..=64 << 20).contains(&len) {
            return Err(indefinite(format!("bad message length {len}")));
        }
        let b = read_exact(&mut self.s, len as usize - 4, deadline).await?;
        Ok((h[0], b))
    }

    /// Runs `sql` (autocommit). `Ok(Err(..))`: the server reported an error.
    pub async fn query(
        &mut self,
        sql: &str,
        deadline: Instant,
    ) -> Result<Result<PgResult, PgError>, ClientError> {
        let mut msg = vec![b'Q'];
        msg.extend_from_slice(&((sql.len() + 5) as i32).to_be_bytes());
        msg.extend_from_slice(sql.as_bytes());
        msg.push(0);
        send(&mut self.s, &msg, deadline).await?;
        let mut res = PgResult::default();
        let mut err = None;
        loop {
            let (t, b) = self.message(deadline).await?;
            match t {
                b'D' => res
                    .rows
                    .push(data_row(&b).ok_or_else(|| indefinite("bad DataRow"))?),
                b'C' => {
                    res.tag =
                        String::from_utf8_lossy(b.strip_suffix(&[0]).unwrap_or(&b)).into_owned()
                }
                b'E' => err = Some(pg_error(&b)),
                b'Z' => return Ok(err.map_or(Ok(res), Err)),
                _ => {}
            }
        }
    }
}

fn data_row(b: &[u8]) -> Option<Vec<Option<String>>> {
    let n = i16::from_be_bytes([*b.first()?, *b.get(1)?]);
    let mut at = 2;
    let mut row = Vec::new();
    for _ in 0..n {
        let len = i32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?);
        at += 4;
        if len < 0 {
            row.push(None);
        } else {
            let v = b.get(at..at + len as usize)?;
            row.push(Some(String::from_utf8_lossy(v).into_owned()));
            at += len as usize;
        }
    }
    Some(row)
}

fn pg_error(b: &[u8]) -> PgError {
    let mut e = PgError {
        code: String::new(),
        message: String::new(),
    };
    for field in b.split(|c| *c == 0) {
        if let Some((&t, v)) = field.split_first() {
            let v = String::from_utf8_lossy(v).into_owned();
            match t {
                b'C' => e.code = v,
                b'M' => e.message = v,
                _ => {}
            }
        }
    }
    e
}

// ---------------------------------------------------------------- base64

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn b64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 (padding optional); None if malformed.
pub fn b64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for ch in s.bytes().filter(|b| *b != b'=') {
        let v = B64.iter().position(|&c| c == ch)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for s in ["", "f", "fo", "foo", "foob", "fooba", "foobar", "k17"] {
            let e = b64_encode(s.as_bytes());
            assert_eq!(b64_decode(&e).as_deref(), Some(s.as_bytes()), "{s}");
        }
        assert_eq!(b64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(b64_encode(b"fo"), "Zm8=");
        assert_eq!(b64_decode("Z3c="), Some(b"gw".to_vec()));
    }
}
