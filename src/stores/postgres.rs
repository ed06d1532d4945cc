//! PostgreSQL: a primary on n1 (initdb) and streaming hot standbys on the
//! other nodes (pg_basebackup), every server run as the `postgres` user
//! with its data and unix socket under the node's directory. Registers and
//! kv live in table `kv (k text primary key, v text)`, sets in `elems`.
//! Writes go to the primary; reads to the primary or a standby
//! (`reads=standby`); `sync=on|apply` makes commits wait for one standby
//! (`synchronous_standby_names = 'ANY 1 (*)'`). Transactions (the
//! list-append, rw-register, bank and seats workloads) run on the primary
//! at `isolation=read-committed|repeatable-read|serializable` (default
//! serializable), in table `txn` (see `postgres_txn.rs`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use nix::sys::signal::Signal;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::options::serialize_word;
use super::postgres_txn;
use super::registry::{Entry, Requirement};
use super::txn::Isolation;
use super::wire::pg::{PgConn, PgError, PgResult};
use super::wire::{cas_pair, decode, encode};
use super::{
    Choice, Client, ClientError, Cluster, Completion, DbOpts, Launch, Needs, Operation, Programs,
    Role, Store, StoreError, fail, info, ok,
};
use crate::lab::sys;
use faultline_workloads::workload::WorkloadKind;

/// The port.
pub const PORT: u16 = 5432;

/// The Debian package.
pub const INSTALL: &str = "apt-get install -y postgresql-15";

/// The registry line's entry.
pub const ENTRY: Entry = Entry {
    name: "postgres",
    parse: Postgres::parse,
    doctor: &[Requirement {
        what: "postgres (--db postgres)",
        program: "postgres",
        install: INSTALL,
        also_in: Some(bindir),
    }],
};

/// Where reads go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reads {
    /// To the primary.
    Primary,
    /// To a standby (one of n2..nN per worker).
    Standby,
}

impl Choice for Reads {
    const CHOICES: &'static [(&'static str, Reads)] =
        &[("primary", Reads::Primary), ("standby", Reads::Standby)];
}

/// Whether commits wait for a standby.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sync {
    /// Asynchronous replication.
    Off,
    /// `synchronous_commit = on`: one standby has the commit on disk.
    On,
    /// `synchronous_commit = remote_apply`: one standby has applied it.
    Apply,
}

impl Choice for Sync {
    const CHOICES: &'static [(&'static str, Sync)] =
        &[("off", Sync::Off), ("on", Sync::On), ("apply", Sync::Apply)];
}

/// PostgreSQL's options.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Postgres {
    /// `reads=primary|standby`.
    #[serde(serialize_with = "serialize_word")]
    pub reads: Reads,
    /// `sync=off|on|apply`.
    #[serde(serialize_with = "serialize_word")]
    pub sync: Sync,
    /// `bindir=DIR`: where the binaries are (default: the newest in
    /// /usr/lib/postgresql).
    pub bindir: Option<PathBuf>,
    /// `isolation=read-committed|repeatable-read|serializable`: the
    /// transactions' isolation level (always recorded: a transactional
    /// run's verdict means little without it).
    #[serde(serialize_with = "serialize_word")]
    pub isolation: Isolation,
}

impl Postgres {
    fn parse(mut opts: DbOpts) -> Result<Arc<dyn Store>, String> {
        let reads = opts.take_choice("reads", Reads::Primary)?;
        let sync = opts.take_choice("sync", Sync::Off)?;
        let bindir = opts.take_path("bindir");
        let isolation = opts.take_choice("isolation", Isolation::Serializable)?;
        opts.finish("reads, sync, bindir, isolation")?;
        Ok(Arc::new(Postgres {
            reads,
            sync,
            bindir,
            isolation,
        }))
    }
}

/// The newest `/usr/lib/postgresql/<v>/bin` with a `postgres` in it.
pub fn bindir() -> Option<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("postgres").exists())
        .collect();
    v.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    v.pop()
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS kv (k text PRIMARY KEY, v text); \
     CREATE TABLE IF NOT EXISTS elems (id bigserial PRIMARY KEY, k text NOT NULL, e text NOT NULL)";

/// `setpriv ... env HOME=... <program>`: run as `postgres` (setpriv and env
/// exec without forking, so the PID is the program's).
fn as_postgres(program: &Path) -> Result<Vec<String>, StoreError> {
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

fn chown_postgres(p: &Path) -> Result<(), StoreError> {
    let user = nix::unistd::User::from_name("postgres")
        .ok()
        .flatten()
        .ok_or_else(|| StoreError::Down("no `postgres` user".into()))?;
    nix::unistd::chown(p, Some(user.uid), Some(user.gid))
        .map_err(|e| StoreError::Down(format!("chown {}: {e}", p.display())))
}

fn sql_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[async_trait]
impl Store for Postgres {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn label(&self) -> String {
        format!("postgres-{}", self.reads.word())
    }

    fn describe(&self) -> String {
        format!(
            "postgres (reads from {}, sync {}, transactions {})",
            self.reads.word(),
            self.sync.word(),
            self.isolation.word()
        )
    }

    /// Every workload: transactions included.
    fn check_workload(&self, _workload: WorkloadKind) -> Result<(), String> {
        Ok(())
    }

    fn options(&self) -> Value {
        json!(self)
    }

    fn needs(&self) -> Result<Needs, String> {
        Err("initdb and pg_basebackup run before the servers, as the `postgres` user, on the lab's filesystem".into())
    }

    /// postgres, initdb and pg_basebackup, setpriv, and the `postgres` user.
    fn check_install(&self) -> Result<Programs, StoreError> {
        let dir = self.bindir.clone().or_else(bindir);
        let programs = Programs::find(
            "postgres",
            dir.as_deref(),
            &["postgres", "initdb", "pg_basebackup"],
            INSTALL,
        )?;
        if sys::find_tool("setpriv").is_none() {
            return Err(StoreError::Missing {
                program: "setpriv".into(),
                what: "--db postgres".into(),
                fix: "install it with: apt-get install -y util-linux".into(),
            });
        }
        if nix::unistd::User::from_name("postgres")
            .ok()
            .flatten()
            .is_none()
        {
            return Err(StoreError::Missing {
                program: "the `postgres` user".into(),
                what: "--db postgres".into(),
                fix: format!("install it with: {INSTALL}"),
            });
        }
        Ok(programs)
    }

    /// initdb and the primary, the tables, then the standbys cloned with
    /// pg_basebackup.
    async fn start(&self, launch: &mut Launch<'_>) -> Result<(), StoreError> {
        let (postgres, initdb, basebackup) = (
            launch.program("postgres")?,
            launch.program("initdb")?,
            launch.program("pg_basebackup")?,
        );
        let lab = launch.lab()?;
        let nodes = lab.nodes().to_vec();
        let primary = nodes[0].clone();
        let mut dirs = Vec::new();
        for n in &nodes {
            let d = lab.node_dir(n)?.join("pg");
            std::fs::create_dir_all(&d)
                .map_err(StoreError::io(format!("creating {}", d.display())))?;
            chown_postgres(&d)?;
            dirs.push(d);
        }
        let data = |i: usize| dirs[i].join("data");
        let server_argv = |i: usize, ip: &std::net::Ipv4Addr| -> Result<Vec<String>, StoreError> {
            let mut a = as_postgres(postgres)?;
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
                // Transactions that deadlock (list-append's appends in any
                // key order) fail after 100 ms rather than 1 s.
                "-c".into(),
                "deadlock_timeout=100ms".into(),
            ]);
            Ok(a)
        };
        // initdb (no network needed).
        let mut cmd = std::process::Command::new(as_postgres(initdb)?[0].clone());
        cmd.args(&as_postgres(initdb)?[1..]).args([
            "-D",
            &data(0).display().to_string(),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ]);
        sys::run(cmd, None).map_err(|e| StoreError::Down(format!("initdb: {e}")))?;
        let hba = data(0).join("pg_hba.conf");
        let mut text = std::fs::read_to_string(&hba)
            .map_err(StoreError::io(format!("reading {}", hba.display())))?;
        text.push_str("host all all 0.0.0.0/0 trust\nhost replication all 0.0.0.0/0 trust\n");
        std::fs::write(&hba, text).map_err(StoreError::io(format!("writing {}", hba.display())))?;
        launch
            .spawn(&primary.name, "postgres", server_argv(0, &primary.ip)?)
            .await?;
        let paddr = SocketAddr::new(primary.ip.into(), PORT);
        launch
            .wait_for(Duration::from_secs(30), "postgres primary", || async move {
                let d = Instant::now() + Duration::from_secs(2);
                let mut c = PgConn::connect(paddr, d).await.map_err(|e| e.to_string())?;
                for schema in [SCHEMA, postgres_txn::SCHEMA] {
                    if let Err(e) = c.query(schema, d).await.map_err(|e| e.to_string())? {
                        return Err(e.message);
                    }
                }
                Ok(())
            })
            .await?;
        // Clone the standbys in parallel, from inside their namespaces.
        let mut clones = Vec::new();
        for (i, n) in nodes.iter().enumerate().skip(1) {
            let argv = as_postgres(basebackup)?;
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
                    .map_err(|e| StoreError::Down(format!("pg_basebackup on {name}: {e}")))
            }));
        }
        for c in clones {
            c.await
                .map_err(|e| StoreError::Down(format!("pg_basebackup: {e}")))??;
        }
        for (i, n) in nodes.iter().enumerate().skip(1) {
            launch
                .spawn(&n.name, "postgres", server_argv(i, &n.ip)?)
                .await?;
        }
        Ok(())
    }

    /// Every standby is in recovery and streams; then `sync=on|apply` is
    /// switched on.
    async fn ready(&self, launch: &mut Launch<'_>) -> Result<(), StoreError> {
        let nodes = launch.nodes();
        let paddr = SocketAddr::new(nodes[0].ip.into(), PORT);
        for n in nodes.iter().skip(1) {
            let addr = SocketAddr::new(n.ip.into(), PORT);
            launch
                .wait_for(
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
        launch
            .wait_for(
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
        if self.sync != Sync::Off {
            // Only now that the standbys stream (a synchronous commit with no
            // standby would hang the setup); ALTER SYSTEM survives restarts.
            let level = if self.sync == Sync::Apply {
                "remote_apply"
            } else {
                "on"
            };
            let d = Instant::now() + Duration::from_secs(5);
            let mut c = PgConn::connect(paddr, d)
                .await
                .map_err(|e| StoreError::Down(format!("postgres primary: {e}")))?;
            for q in [
                "ALTER SYSTEM SET synchronous_standby_names = 'ANY 1 (*)'".to_string(),
                format!("ALTER SYSTEM SET synchronous_commit = '{level}'"),
                "SELECT pg_reload_conf()".to_string(),
            ] {
                match c.query(&q, d).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Err(StoreError::Down(format!("{q}: {}", e.message))),
                    Err(e) => return Err(StoreError::Down(format!("{q}: {e}"))),
                }
            }
        }
        Ok(())
    }

    /// n1.
    async fn primaries(&self, cluster: &Cluster) -> Vec<String> {
        cluster
            .nodes
            .first()
            .map(|n| n.0.clone())
            .into_iter()
            .collect()
    }

    /// SIGINT: a fast shutdown.
    fn stop_signal(&self) -> Signal {
        Signal::SIGINT
    }

    fn client_port(&self) -> Option<u16> {
        Some(PORT)
    }

    fn client(&self, cluster: &Arc<Cluster>, role: Role) -> Box<dyn Client> {
        Box::new(PgClient {
            cluster: cluster.clone(),
            role,
            standby_reads: self.reads == Reads::Standby,
            isolation: self.isolation,
            primary: None,
            reader: None,
        })
    }
}

/// A client: a connection to the primary and, with `reads=standby`, one to
/// a standby.
struct PgClient {
    cluster: Arc<Cluster>,
    role: Role,
    standby_reads: bool,
    isolation: Isolation,
    primary: Option<PgConn>,
    reader: Option<PgConn>,
}

impl PgClient {
    fn read_node(&self) -> Option<usize> {
        match self.role {
            Role::Final(i) => Some(i),
            Role::Worker(_) if self.standby_reads => {
                Some(self.role.replica(self.cluster.nodes.len()))
            }
            Role::Worker(_) => None,
        }
    }
}

#[async_trait]
impl Client for PgClient {
    /// Connects.
    async fn ready(&mut self, deadline: Instant) -> Result<(), ClientError> {
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
    fn reset(&mut self) {
        self.primary = None;
        self.reader = None;
    }

    /// The node `f` goes to (transactions: the primary, final reads too).
    fn target(&self, f: &str) -> String {
        if f == "txn" {
            return self.cluster.name(0);
        }
        match self.read_node() {
            Some(i) if f == "read" || matches!(self.role, Role::Final(_)) => self.cluster.name(i),
            _ => self.cluster.name(0),
        }
    }

    /// read, write, cas, add, incr, txn.
    async fn call(
        &mut self,
        op: Operation<'_>,
        deadline: Instant,
    ) -> Result<Completion, ClientError> {
        let Operation { f, key, value, .. } = op;
        self.ready(deadline).await?;
        if f == "txn" {
            if self.primary.is_none() {
                self.primary = Some(PgConn::connect(self.cluster.addr(0, PORT), deadline).await?);
            }
            let conn = self
                .primary
                .as_mut()
                .ok_or_else(|| ClientError::Definite("not connected".into()))?;
            return postgres_txn::run(conn, self.isolation, value, deadline).await;
        }
        let use_reader =
            f == "read" && self.reader.is_some() || matches!(self.role, Role::Final(_));
        let conn = if use_reader {
            self.reader.as_mut()
        } else {
            self.primary.as_mut()
        }
        .ok_or_else(|| ClientError::Definite("not connected".into()))?;
        let k = sql_str(key);
        let v = sql_str(&encode(value));
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
                let Some((e, n)) = cas_pair(value) else {
                    return fail("bad request: cas needs [expected, new]");
                };
                let (e, n) = (sql_str(&encode(&e)), sql_str(&encode(&n)));
                format!("UPDATE kv SET v = {n} WHERE k = {k} AND v = {e}")
            }
            other => {
                return fail(format!("bad request: postgres does not do `{other}`"));
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
            ("read", Err(e)) => fail(format!("{} ({})", e.message, e.code)),
            ("cas", Ok(r)) if r.tag != "UPDATE 1" => fail("cas-mismatch"),
            (_, Ok(_)) => ok(value.clone()),
            // Connection-level errors (class 08) and shutdowns (57) may come
            // after a local commit; anything else rolled the statement back.
            (_, Err(e)) if e.code.starts_with("08") || e.code.starts_with("57") => {
                self.primary = None;
                info(format!("{} ({})", e.message, e.code))
            }
            (_, Err(e)) => fail(format!("{} ({})", e.message, e.code)),
        }
    }
}
