//! Galera transactions: a `txn` operation (see [`super::txn`]) runs on the
//! client's home node as `SET TRANSACTION ISOLATION LEVEL ..`, `START
//! TRANSACTION`, one statement per micro-op, then `COMMIT`, in table
//! `faultline.txn (k PRIMARY KEY, v TEXT)` holding JSON text:
//!
//! | micro-op | statement |
//! |---|---|
//! | `r` | `SELECT v FROM txn WHERE k = ?` |
//! | `append` | `INSERT .. VALUES (k, '[v]') ON DUPLICATE KEY UPDATE v = JSON_MERGE_PRESERVE(v, VALUES(v))` |
//! | `w` | `INSERT .. ON DUPLICATE KEY UPDATE v = VALUES(v)` |
//! | `add` | `UPDATE .. SET v = v + d WHERE k = ? AND v + d >= 0`, or `INSERT (k, d)` when absent; below 0: `fail` |
//! | `book` | `SELECT` the seat, then the upsert of `w` if it is free |
//!
//! Outcomes: before `COMMIT`, any refusal or server error is followed by
//! `ROLLBACK` (the next `START TRANSACTION` would commit an open one) and is
//! `fail` (after an error other than a conflict, 1213, the connection is
//! dropped too); a lost connection is definite (the server rolls back). At
//! `COMMIT`, errors are read like a write's (`galera::outcome`): a
//! certification failure or deadlock (1213) is `fail`, a lost connection
//! or a timeout `info` (and the connection is dropped).

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use serde_json::{Value, json};
use tokio::time::{Instant, timeout_at};

use super::galera::{outcome, server_reason};
use super::txn::{self, Isolation, MicroOp, key_text};
use super::wire::decode;
use super::{ClientError, Completion, fail};

/// The table, created with `faultline.kv` at n1's first start.
pub const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS faultline.txn (k VARCHAR(255) PRIMARY KEY, v TEXT) ENGINE=InnoDB;\n";

/// An upsert that replaces the value.
const UPSERT: &str = "INSERT INTO txn (k, v) VALUES (?, ?) ON DUPLICATE KEY UPDATE v = VALUES(v)";

/// Runs the transaction `value` on `c` at `isolation`. A [`ClientError`]
/// means the connection is unusable (the caller drops it).
pub async fn run(
    c: &mut Conn,
    isolation: Isolation,
    value: &Value,
    deadline: Instant,
) -> Result<Completion, ClientError> {
    let mops = match txn::parse(value) {
        Ok(m) => m,
        Err(e) => return fail(format!("bad request: {e}")),
    };
    let mut reads = vec![None; mops.len()];
    let body = micro_ops(c, isolation, &mops, &mut reads);
    // The refusal, and whether the connection is kept after it.
    let refused = match timeout_at(deadline, body).await {
        Ok(Ok(None)) => None,
        Ok(Ok(Some(why))) => Some((why, true)),
        // A conflict leaves a healthy session; after anything else (a node
        // not ready, 1047) a ROLLBACK has been seen to leave the
        // transaction open: the connection is dropped.
        Ok(Err(mysql_async::Error::Server(s))) => Some((server_reason(&s), s.code == 1213)),
        Ok(Err(e)) => return Err(ClientError::Definite(format!("{e} (before COMMIT)"))),
        Err(_) => return Err(ClientError::Definite("timeout before COMMIT".into())),
    };
    if let Some((why, keep)) = refused {
        return match timeout_at(deadline, c.query_drop("ROLLBACK")).await {
            Ok(Ok(())) if keep => fail(why),
            Ok(Ok(())) => Err(ClientError::Definite(why)),
            _ => Err(ClientError::Definite(format!("{why}; ROLLBACK failed"))),
        };
    }
    match timeout_at(deadline, c.query_drop("COMMIT")).await {
        Ok(Ok(())) => Ok(txn::completed(value, &reads)),
        Ok(Err(e)) => outcome(e),
        // The connection is dropped: a late answer must not be read as
        // the next statement's.
        Err(_) => Err(ClientError::Indefinite("timeout at COMMIT".into())),
    }
}

/// The transaction up to `COMMIT`; `Some(why)` when a micro-op refuses
/// (a booked seat, an account that would go below 0).
async fn micro_ops(
    c: &mut Conn,
    isolation: Isolation,
    mops: &[MicroOp],
    reads: &mut [Option<Value>],
) -> Result<Option<String>, mysql_async::Error> {
    let level = format!("SET TRANSACTION ISOLATION LEVEL {}", isolation.sql());
    c.query_drop(level).await?;
    c.query_drop("START TRANSACTION").await?;
    for (m, read) in mops.iter().zip(reads.iter_mut()) {
        let k = key_text(m.key());
        match m {
            MicroOp::Read(_) => *read = Some(select(c, &k).await?),
            MicroOp::Append(_, v) => {
                let q = "INSERT INTO txn (k, v) VALUES (?, ?) \
                         ON DUPLICATE KEY UPDATE v = JSON_MERGE_PRESERVE(v, VALUES(v))";
                c.exec_drop(q, (k, json!([v]).to_string())).await?;
            }
            MicroOp::Write(_, v) => c.exec_drop(UPSERT, (k, v.to_string())).await?,
            MicroOp::Add(_, d) => {
                let q = "UPDATE txn SET v = CAST(v AS SIGNED) + ? \
                         WHERE k = ? AND CAST(v AS SIGNED) + ? >= 0";
                // Rows matched (CLIENT_FOUND_ROWS): 0 when absent or when
                // the number would go below 0.
                c.exec_drop(q, (*d, &k, *d)).await?;
                if c.affected_rows() == 0 {
                    if *d < 0 {
                        return Ok(Some(format!("negative: {k} cannot go below 0")));
                    }
                    c.exec_drop("INSERT INTO txn (k, v) VALUES (?, ?)", (k, d.to_string()))
                        .await?;
                }
            }
            MicroOp::Book(_, s) => {
                if !select(c, &k).await?.is_null() {
                    return Ok(Some("taken".into()));
                }
                c.exec_drop(UPSERT, (k, s.to_string())).await?;
            }
        }
    }
    Ok(None)
}

/// The value at `k` in table `txn` (null when absent).
async fn select(c: &mut Conn, k: &str) -> Result<Value, mysql_async::Error> {
    let v: Option<String> = c.exec_first("SELECT v FROM txn WHERE k = ?", (k,)).await?;
    Ok(v.map_or(Value::Null, |v| decode(&v)))
}
