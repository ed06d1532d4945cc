//! PostgreSQL: a primary on n1 (initdb) and streaming hot standbys on the
//! other nodes (pg_basebackup), every server run as the `postgres` user
//! with its data and unix socket under the node's directory. Registers and
//! kv live in table `kv (k text primary key, v text)`, sets in `elems`.
//! Writes go to the primary; reads to the primary or a standby
//! (`reads=standby`); `sync=on|apply` makes commits wait for one standby
//! (`synchronous_standby_names = 'ANY 1 (*)'`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::wire::{PgConn, PgError, PgResult};
use super::{Cluster, Role, cas_pair, decode, encode, fail, info, ok, spawn, wait_for};
use crate::lab::proc::Server;
use crate::lab::{Lab, sys};
use crate::node::client::ClientError;
use crate::node::protocol::Reply;
use crate::runner::{DbConfig, RunError};

/// The port.
pub const PORT: u16 = 5432;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS kv (k text PRIMARY KEY, v text); \
     CREATE TABLE IF NOT EXISTS elems (id bigserial PRIMARY KEY, k text NOT NULL, e text NOT NULL)";

/// `setpriv ... env HOME=... <program>`: run as `postgres` (setpriv and env
/// exec without forking, so the PID is the program's).
fn as_postgres(program: &Path) -> Result<Vec<String>, RunError> {
    let setpriv = sys::require_tool("setpriv")?;
    Ok(vec![
        setpriv.display().to_string(),
        "--reuid=postgres".into(),
        "--regid=postgres".into(),
        "--init-groups".into(),
        "env".into(),
        "HOME=/var/lib/postgresql".into(),
        program.display().to_string(),
    ])
}

fn chown_postgres(p: &Path) -> Result<(), RunError> {
    let user = nix::unistd::User::from_name("postgres")
        .ok()
        .flatten()
        .ok_or_else(|| RunError::StoreDown("no `postgres` user".into()))?;
    nix::unistd::chown(p, Some(user.uid), Some(user.gid))
        .map_err(|e| RunError::StoreDown(format!("chown {}: {e}", p.display())))
}

fn sql_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Starts the primary, creates the tables, clones and starts the standbys,
/// and waits until every standby streams. Returns the primary.
pub async fn start(
    db: &DbConfig,
    lab: &Lab,
    programs: &BTreeMap<&'static str, PathBuf>,
    servers: &mut Vec<Server>,
) -> Result<Vec<String>, RunError> {
    let DbConfig::Postgres { sync, .. } = db else {
        return Err(RunError::StoreDown("not postgres".into()));
    };
    let prog = |name: &str| {
        programs
            .get(name)
            .cloned()
            .ok_or_else(|| RunError::StoreDown(format!("{name}: no binary")))
    };
    let (postgres, initdb, basebackup) =
        (prog("postgres")?, prog("initdb")?, prog("pg_basebackup")?);
    let nodes = lab.nodes().to_vec();
    let primary = nodes[0].clone();
    let mut dirs = Vec::new();
    for n in &nodes {
        let d = lab.node_dir(n)?.join("pg");
        std::fs::create_dir_all(&d)
            .map_err(super::super::io(format!("creating {}", d.display())))?;
        chown_postgres(&d)?;
        dirs.push(d);
    }
    let data = |i: usize| dirs[i].join("data");
    let server_argv = |i: usize, ip: &std::net::Ipv4Addr| -> Result<Vec<String>, RunError> {
        let mut a = as_postgres(&postgres)?;
        a.extend([
            "-D".into(),
            data(i).display().to_string(),
            "-c".into(),
            format!("listen_addresses={ip}"),
            "-c".into(),
            format!("unix_socket_directories={}", dirs[i].display()),
            "-c".into(),
            "wal_keep_size=64MB".into(),
            "-c".into(),
            "fsync=off".into(),
            "-c".into(),
            "log_min_messages=warning".into(),
        ]);
        Ok(a)
    };
    // initdb (no network needed).
    let mut cmd = std::process::Command::new(as_postgres(&initdb)?[0].clone());
    cmd.args(&as_postgres(&initdb)?[1..]).args([
        "-D",
        &data(0).display().to_string(),
        "-A",
        "trust",
        "-U",
        "postgres",
        "--no-sync",
    ]);
    sys::run(cmd, None).map_err(|e| RunError::StoreDown(format!("initdb: {e}")))?;
    let hba = data(0).join("pg_hba.conf");
    let mut text = std::fs::read_to_string(&hba)
        .map_err(super::super::io(format!("reading {}", hba.display())))?;
    text.push_str("host all all 0.0.0.0/0 trust\nhost replication all 0.0.0.0/0 trust\n");
    std::fs::write(&hba, text).map_err(super::super::io(format!("writing {}", hba.display())))?;
    spawn(
        lab,
        servers,
        &primary.name,
        "postgres",
        server_argv(0, &primary.ip)?,
    )?;
    let paddr = SocketAddr::new(primary.ip.into(), PORT);
    wait_for(
        servers,
        Duration::from_secs(30),
        "postgres primary",
        || async move {
            let d = Instant::now() + Duration::from_secs(2);
            let mut c = PgConn::connect(paddr, d).await.map_err(|e| e.to_string())?;
            match c.query(SCHEMA, d).await.map_err(|e| e.to_string())? {
                Ok(_) => Ok(()),
                Err(e) => Err(e.message),
            }
        },
    )
    .await?;
    // Clone the standbys in parallel, from inside their namespaces.
    let mut clones = Vec::new();
    for (i, n) in nodes.iter().enumerate().skip(1) {
        let argv = as_postgres(&basebackup)?;
        let mut cmd = lab.command_in(n, &argv[0])?;
        cmd.args(&argv[1..]).args([
            "-h",
            &primary.ip.to_string(),
            "-U",
            "postgres",
            "-D",
            &data(i).display().to_string(),
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
        ]);
        let name = n.name.clone();
        clones.push(tokio::task::spawn_blocking(move || {
            sys::run(cmd, None)
                .map_err(|e| RunError::StoreDown(format!("pg_basebackup on {name}: {e}")))
        }));
    }
    for c in clones {
        c.await
            .map_err(|e| RunError::StoreDown(format!("pg_basebackup: {e}")))??;
    }
    for (i, n) in nodes.iter().enumerate().skip(1) {
        spawn(lab, servers, &n.name, "postgres", server_argv(i, &n.ip)?)?;
    }
    for n in nodes.iter().skip(1) {
        let addr = SocketAddr::new(n.ip.into(), PORT);
        wait_for(
            servers,
            Duration::from_secs(30),
            &format!("postgres standby on {}", n.name),
            || async move {
                let d = Instant::now() + Duration::from_secs(2);
                let mut c = PgConn::connect(addr, d).await.map_err(|e| e.to_string())?;
                match c
                    .query("SELECT pg_is_in_recovery()", d)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    Ok(r)
                        if r.rows
                            .first()
                            .and_then(|r| r.first().cloned().flatten())
                            .as_deref()
                            == Some("t") =>
                    {
                        Ok(())
                    }
                    Ok(_) => Err("not in recovery".into()),
                    Err(e) => Err(e.message),
                }
            },
        )
        .await?;
    }
    let want = nodes.len() - 1;
    wait_for(
        servers,
        Duration::from_secs(30),
        "postgres replication",
        || async move {
            let d = Instant::now() + Duration::from_secs(2);
            let mut c = PgConn::connect(paddr, d).await.map_err(|e| e.to_string())?;
            let q = "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'";
            match c.query(q, d).await.map_err(|e| e.to_string())? {
                Ok(r) => {
                    let n: usize = r
                        .rows
                        .first()
                        .and_then(|r| r.first().cloned().flatten())
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    if n >= want {
                        Ok(())
                    } else {
                        Err(format!("{n} of {want} standbys streaming"))
                    }
                }
                Err(e) => Err(e.message),
            }
        },
    )
    .await?;
    if sync != "off" {
        // Only now that the standbys stream (a synchronous commit with no
        // standby would hang the setup); ALTER SYSTEM survives restarts.
        let level = if sync == "apply" {
            "remote_apply"
        } else {
            "on"
        };
        let d = Instant::now() + Duration::from_secs(5);
        let mut c = PgConn::connect(paddr, d)
            .await
            .map_err(|e| RunError::StoreDown(format!("postgres primary: {e}")))?;
        for q in [
            "ALTER SYSTEM SET synchronous_standby_names = 'ANY 1 (*)'".to_string(),
            format!("ALTER SYSTEM SET synchronous_commit = '{level}'"),
            "SELECT pg_reload_conf()".to_string(),
        ] {
            match c.query(&q, d).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(RunError::StoreDown(format!("{q}: {}", e.message))),
                Err(e) => return Err(RunError::StoreDown(format!("{q}: {e}"))),
            }
        }
    }
    Ok(vec![primary.name])
}

/// A client: a connection to the primary and, with `reads=standby`, one to
/// a standby.
pub struct PgClient {
    cluster: Arc<Cluster>,
    role: Role,
    standby_reads: bool,
    primary: Option<PgConn>,
    reader: Option<PgConn>,
}

impl PgClient {
    /// A client for `role`.
    pub fn new(cluster: Arc<Cluster>, role: Role) -> PgClient {
        let standby_reads =
            matches!(&cluster.db, DbConfig::Postgres { reads, .. } if reads == "standby");
        PgClient {
            cluster,
            role,
            standby_reads,
            primary: None,
            reader: None,
        }
    }

    fn read_node(&self) -> Option<usize> {
        match self.role {
            Role::Final(i) => Some(i),
            Role::Worker(_) if self.standby_reads => {
                Some(self.role.replica(self.cluster.nodes.len()))
            }
            Role::Worker(_) => None,
        }
    }

    /// Connects.
    pub async fn ready(&mut self, deadline: Instant) -> Result<(), ClientError> {
        if let Some(i) = self.read_node()
            && self.reader.is_none()
        {
            self.reader = Some(PgConn::connect(self.cluster.addr(i, PORT), deadline).await?);
        }
        if matches!(self.role, Role::Worker(_)) && self.primary.is_none() {
            self.primary = Some(PgConn::connect(self.cluster.addr(0, PORT), deadline).await?);
        }
        Ok(())
    }

    /// Drops the connections.
    pub fn reset(&mut self) {
        self.primary = None;
        self.reader = None;
    }

    /// The node `f` goes to.
    pub fn target(&self, f: &str) -> String {
        match self.read_node() {
            Some(i) if f == "read" || matches!(self.role, Role::Final(_)) => self.cluster.name(i),
            _ => self.cluster.name(0),
        }
    }

    /// read, write, cas, add, incr.
    pub async fn call(
        &mut self,
        f: &str,
        key: &str,
        value: Value,
        deadline: Instant,
    ) -> Result<Reply, ClientError> {
        self.ready(deadline).await?;
        let use_reader =
            f == "read" && self.reader.is_some() || matches!(self.role, Role::Final(_));
        let conn = if use_reader {
            self.reader.as_mut()
        } else {
            self.primary.as_mut()
        }
        .ok_or_else(|| ClientError::Definite("not connected".into()))?;
        let k = sql_str(key);
        let v = sql_str(&encode(&value));
        let sql = match f {
            "read" if key == "set" => format!("SELECT e FROM elems WHERE k = {k} ORDER BY id"),
            "read" => format!("SELECT v FROM kv WHERE k = {k}"),
            "write" => format!(
                "INSERT INTO kv (k, v) VALUES ({k}, {v}) ON CONFLICT (k) DO UPDATE SET v = excluded.v"
            ),
            "add" => format!("INSERT INTO elems (k, e) VALUES ({k}, {v})"),
            "incr" => format!(
                "INSERT INTO kv (k, v) VALUES ({k}, {v}) ON CONFLICT (k) DO UPDATE SET v = (kv.v::bigint + excluded.v::bigint)::text"
            ),
            "cas" => {
                let Some((e, n)) = cas_pair(&value) else {
                    return fail(value, "bad request: cas needs [expected, new]");
                };
                let (e, n) = (sql_str(&encode(&e)), sql_str(&encode(&n)));
                format!("UPDATE kv SET v = {n} WHERE k = {k} AND v = {e}")
            }
            other => {
                return fail(
                    value,
                    format!("bad request: postgres does not do `{other}`"),
                );
            }
        };
        let r: Result<PgResult, PgError> = conn.query(&sql, deadline).await?;
        match (f, r) {
            ("read", Ok(r)) if key == "set" => {
                let mut els: Vec<Value> = r
                    .rows
                    .iter()
                    .filter_map(|row| row.first().cloned().flatten())
                    .map(|s| decode(&s))
                    .collect();
                els.sort_by(|a, b| match (a.as_i64(), b.as_i64()) {
                    (Some(x), Some(y)) => x.cmp(&y),
                    _ => a.to_string().cmp(&b.to_string()),
                });
                els.dedup();
                ok(Value::Array(els))
            }
            ("read", Ok(r)) => ok(r
                .rows
                .first()
                .and_then(|row| row.first().cloned().flatten())
                .map_or(Value::Null, |s| decode(&s))),
            ("read", Err(e)) => fail(Value::Null, format!("{} ({})", e.message, e.code)),
            ("cas", Ok(r)) if r.tag != "UPDATE 1" => fail(value, "cas-mismatch"),
            (_, Ok(_)) => ok(value),
            // Connection-level errors (class 08) and shutdowns (57) may come
            // after a local commit; anything else rolled the statement back.
            (_, Err(e)) if e.code.starts_with("08") || e.code.starts_with("57") => {
                self.primary = None;
                info(value, format!("{} ({})", e.message, e.code))
            }
            (_, Err(e)) => fail(value, format!("{} ({})", e.message, e.code)),
        }
    }
}
