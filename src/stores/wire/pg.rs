//! PostgreSQL's simple-query protocol with trust authentication.

use std::net::SocketAddr;

use tokio::io::BufReader;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::{ClientError, connect, definite, indefinite, read_exact, send};

/// What a simple query returned.
#[derive(Debug, Default)]
pub struct PgResult {
    /// The rows, each column as text (None: NULL).
    pub rows: Vec<Vec<Option<String>>>,
    /// The command tag of the last statement (`UPDATE 1`, `SELECT 3`).
    pub tag: String,
}

/// An error the server sent (the statement did not commit).
#[derive(Debug, Clone, Default)]
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
