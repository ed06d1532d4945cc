//! RESP, the protocol of Redis and Sentinel.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use tokio::io::BufReader;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::{ClientError, connect, indefinite, read_exact, read_line, send};

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
