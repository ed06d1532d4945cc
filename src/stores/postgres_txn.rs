//! PostgreSQL transactions: a `txn` operation (see [`super::txn`]) runs on
//! the primary as `BEGIN ISOLATION LEVEL ...`, one statement per micro-op,
//! then `COMMIT`, all in table `txn (k text PRIMARY KEY, v jsonb)`:
//!
//! | micro-op | statement |
//! |---|---|
//! | `r` | `SELECT v FROM txn WHERE k = ..` |
//! | `append` | `INSERT .. VALUES (k, '[v]') ON CONFLICT (k) DO UPDATE SET v = txn.v \|\| excluded.v` |
//! | `w` | `INSERT .. ON CONFLICT (k) DO UPDATE SET v = excluded.v` |
//! | `add` | `UPDATE txn SET v = to_jsonb(v::numeric + d) ..`, or `INSERT (k, d)` when absent; a `CHECK` keeps numbers >= 0 |
//! | `book` | `SELECT` the seat, then the `INSERT .. ON CONFLICT` of `w` if it is free |
//!
//! Outcomes: an error before `COMMIT` was sent (a serialization failure
//! 40001, a deadlock 40P01, a constraint, a lost connection) rolls the
//! transaction back: `fail`. After `COMMIT` was sent, a lost connection
//! (or class 08/57) is `info`: it may have committed.

use serde_json::{Value, json};
use tokio::time::Instant;

use super::txn::{self, Isolation, MicroOp, key_text};
use super::wire::decode;
use super::wire::pg::{PgConn, PgError, PgResult};
use super::{ClientError, Completion, fail, info};

/// The table, created with the others.
pub const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS txn (k text PRIMARY KEY, v jsonb \
     CHECK (jsonb_typeof(v) IS DISTINCT FROM 'number' OR v::numeric >= 0))";

fn sql_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Runs the transaction `value` on `conn`. A [`ClientError`] means the
/// connection is unusable (the caller drops it); before `COMMIT` was sent
/// it is definite.
pub async fn run(
    conn: &mut PgConn,
    isolation: Isolation,
    value: &Value,
    deadline: Instant,
) -> Result<Completion, ClientError> {
    let mops = match txn::parse(value) {
        Ok(m) => m,
        Err(e) => return fail(format!("bad request: {e}")),
    };
    let begin = format!("BEGIN ISOLATION LEVEL {}", isolation.sql());
    if let Err(e) = statement(conn, &begin, deadline).await? {
        return rollback(conn, &e, deadline).await;
    }
    let mut reads = vec![None; mops.len()];
    for (i, m) in mops.iter().enumerate() {
        let k = sql_str(&key_text(m.key()));
        let upsert = |v: String, set: &str| {
            format!(
                "INSERT INTO txn (k, v) VALUES ({k}, {}::jsonb) ON CONFLICT (k) DO UPDATE SET v = {set}",
                sql_str(&v)
            )
        };
        let select = format!("SELECT v FROM txn WHERE k = {k}");
        let sql = match m {
            MicroOp::Read(_) => select,
            MicroOp::Append(_, v) => upsert(json!([v]).to_string(), "txn.v || excluded.v"),
            MicroOp::Write(_, v) => upsert(v.to_string(), "excluded.v"),
            // UPDATE first: an INSERT .. ON CONFLICT would check its
            // proposed row (d alone) against the CHECK.
            MicroOp::Add(_, d) => {
                format!("UPDATE txn SET v = to_jsonb(v::numeric + ({d})) WHERE k = {k}")
            }
            MicroOp::Book(_, c) => {
                let r = match statement(conn, &select, deadline).await? {
                    Ok(r) => r,
                    Err(e) => return rollback(conn, &e, deadline).await,
                };
                if !first_value(&r).is_null() {
                    rollback(conn, &PgError::default(), deadline).await?;
                    return fail("taken");
                }
                upsert(c.to_string(), "excluded.v")
            }
        };
        match statement(conn, &sql, deadline).await? {
            Ok(r) if matches!(m, MicroOp::Read(_)) => reads[i] = Some(first_value(&r)),
            Ok(r) if r.tag == "UPDATE 0" => {
                // An add to an absent key: it starts at 0.
                let MicroOp::Add(_, d) = m else { continue };
                let insert = format!("INSERT INTO txn (k, v) VALUES ({k}, '{d}'::jsonb)");
                if let Err(e) = statement(conn, &insert, deadline).await? {
                    return rollback(conn, &e, deadline).await;
                }
            }
            Ok(_) => {}
            Err(e) => return rollback(conn, &e, deadline).await,
        }
    }
    match conn.query("COMMIT", deadline).await? {
        Ok(r) if r.tag == "COMMIT" => Ok(txn::completed(value, &reads)),
        Ok(r) => fail(format!("rolled back at COMMIT ({})", r.tag)),
        // The connection broke or the server shut down while committing.
        Err(e) if e.code.starts_with("08") || e.code.starts_with("57") => {
            info(format!("{} ({}) at COMMIT", e.message, e.code))
        }
        Err(e) => fail(format!("{} ({}) at COMMIT", e.message, e.code)),
    }
}

/// One statement before `COMMIT`: a transport error is definite (the
/// server rolls back a transaction whose connection is gone).
async fn statement(
    conn: &mut PgConn,
    sql: &str,
    deadline: Instant,
) -> Result<Result<PgResult, PgError>, ClientError> {
    conn.query(sql, deadline).await.map_err(|e| {
        ClientError::Definite(format!("{e} (before COMMIT: the transaction rolled back)"))
    })
}

/// Rolls back after the server's error `e` (code 40001, 40P01, ...): `fail`.
async fn rollback(
    conn: &mut PgConn,
    e: &PgError,
    deadline: Instant,
) -> Result<Completion, ClientError> {
    let _ = statement(conn, "ROLLBACK", deadline).await?;
    fail(format!("{} ({})", e.message, e.code))
}

/// The first column of the first row as JSON (null: no row, or NULL).
fn first_value(r: &PgResult) -> Value {
    r.rows
        .first()
        .and_then(|row| row.first().cloned().flatten())
        .map_or(Value::Null, |s| decode(&s))
}
