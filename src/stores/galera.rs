//! MariaDB Galera (`mariadbd` 10.11 with the `galera-4` wsrep provider): one
//! server per node, all in one wsrep cluster. n1's data directory is
//! initialised with `mariadb-install-db` and n1 bootstraps the cluster
//! (`--wsrep-new-cluster`, only at the first start: a killed n1 rejoins like
//! any node); the others join and receive n1's state by rsync SST. Servers
//! run as the `mysql` user (the rsync SST daemon started by a root server
//! drops to `nobody` and cannot write the data directory), with their data,
//! unix socket, pid file and config under `<node dir>/galera`.
//!
//! Every node is a primary (multi-primary): each client writes and reads on
//! its home node, over TCP with the `mysql_async` crate, in table
//! `faultline.kv (k PRIMARY KEY, v)`. A cas is `UPDATE ... WHERE k = ? AND
//! v = ?` (rows matched decide). `wsrep_sync_wait=N` is set on every
//! session. Definite or not: a certification failure or deadlock (1213), a
//! node that is not ready (1047) and any other error the server returns for
//! a statement it rolled back are `fail`; a lost connection or a timeout
//! after sending is `info`.
//!
//! Transactions (`txn`, the list-append, rw-register, bank and seats
//! workloads) run on the home node at
//! `isolation=read-committed|repeatable-read|serializable` (default
//! repeatable-read), in table `faultline.txn` (see `galera_txn.rs`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::time::{Instant, timeout_at};

use super::galera_txn;
use super::options::{Choice, serialize_word};
use super::registry::{Entry, Requirement};
use super::txn::Isolation;
use super::wire::{cas_pair, decode, encode};
use super::{
    Client, ClientError, Cluster, Completion, DbOpts, Kill, Launch, Needs, Operation, ProcessTree,
    Programs, Role, Store, StoreError, fail, info, ok,
};
use crate::lab::proc::Server;
use crate::lab::{Lab, sys};
use faultline_workloads::workload::WorkloadKind;

/// The SQL port.
pub const PORT: u16 = 3306;
/// The Debian packages (the server, the wsrep provider, rsync for SST).
pub const INSTALL: &str = "apt-get install -y mariadb-server galera-4 rsync";
/// The wsrep provider `galera-4` installs.
pub const PROVIDER: &str = "/usr/lib/galera/libgalera_smm.so";
/// The user clients connect as (no password, from the lab's subnet).
const USER: &str = "faultline";
/// The flag that bootstraps a new cluster (n1's first start only).
const NEW_CLUSTER: &str = "--wsrep-new-cluster";
/// How long the cluster may take to form (state transfers included).
const FORM_WITHIN: Duration = Duration::from_secs(90);

/// The registry line's entry.
pub const ENTRY: Entry = Entry {
    name: "galera",
    parse: Galera::parse,
    doctor: &[
        Requirement {
            what: "mariadbd (--db galera)",
            program: "mariadbd",
            install: INSTALL,
            also_in: None,
        },
        Requirement {
            what: "rsync (--db galera SST)",
            program: "rsync",
            install: INSTALL,
            also_in: None,
        },
    ],
};

/// `wsrep_sync_wait`: which statements wait until the node has applied
/// everything the cluster committed before they began (a bit mask: 1 reads,
/// 2 UPDATE and DELETE, 4 INSERT and REPLACE, 8 SHOW; 0 none).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SyncWait(pub u8);

impl SyncWait {
    /// The named levels, and what they stand for.
    const NAMES: &'static [(&'static str, u8)] =
        &[("off", 0), ("reads", 1), ("writes", 6), ("all", 15)];

    fn parse(v: &str) -> Result<SyncWait, String> {
        let named = SyncWait::NAMES.iter().find(|(w, _)| *w == v).map(|p| p.1);
        match named.or_else(|| v.parse::<u8>().ok()) {
            Some(n @ 0..=15) => Ok(SyncWait(n)),
            _ => Err(format!(
                "--db-opt wsrep_sync_wait={v}: expected a number, 0 to 15, or off, reads, writes or all"
            )),
        }
    }
}

/// Galera's options.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Galera {
    /// `wsrep_sync_wait=N|off|reads|writes|all` (default 0: no causality
    /// checks, Galera's default).
    pub wsrep_sync_wait: SyncWait,
    /// `isolation=read-committed|repeatable-read|serializable`: the
    /// transactions' level (default repeatable-read, InnoDB's default and
    /// the level Galera claims to make snapshot isolation cluster-wide).
    #[serde(serialize_with = "serialize_word")]
    pub isolation: Isolation,
    /// `bindir=DIR`: where `mariadbd` and `mariadb-install-db` are
    /// (default: PATH).
    pub bindir: Option<PathBuf>,
}

impl Galera {
    fn parse(mut opts: DbOpts) -> Result<Arc<dyn Store>, String> {
        let wsrep_sync_wait = match opts.take("wsrep_sync_wait") {
            None => SyncWait(0),
            Some(v) => SyncWait::parse(&v)?,
        };
        let isolation = opts.take_choice("isolation", Isolation::RepeatableRead)?;
        let bindir = opts.take_path("bindir");
        opts.finish("wsrep_sync_wait, isolation, bindir")?;
        Ok(Arc::new(Galera {
            wsrep_sync_wait,
            isolation,
            bindir,
        }))
    }
}

/// The server's config for node `ip`: everything node-specific is here, so
/// a restart after a kill uses the same command.
fn config(dir: &Path, ip: &str, name: &str, cluster: &[String]) -> String {
    let d = dir.display();
    format!(
        "[mysqld]\ndatadir={d}/data\nsocket={d}/mysqld.sock\npid-file={d}/mysqld.pid\ntmpdir={d}\n\
         port={PORT}\nbind-address={ip}\nskip-name-resolve\n\
         innodb_buffer_pool_size=32M\ninnodb_log_file_size=16M\n\
         innodb_flush_log_at_trx_commit=2\nbinlog_format=ROW\ndefault_storage_engine=InnoDB\n\
         innodb_autoinc_lock_mode=2\nwsrep_on=ON\nwsrep_provider={PROVIDER}\n\
         wsrep_cluster_name=faultline\nwsrep_cluster_address=gcomm://{peers}\n\
         wsrep_node_address={ip}\nwsrep_node_name={name}\nwsrep_sst_method=rsync\n\
         wsrep_sst_receive_address={ip}:4444\n\
         wsrep_provider_options=\"gcache.size=64M;ist.recv_addr={ip}:4568\"\n",
        peers = cluster.join(","),
    )
}

/// What n1 runs at its first start: the clients' user, database and tables
/// (before any other node joins, so state transfers carry them).
const SETUP_KV: &str = "CREATE USER IF NOT EXISTS 'faultline'@'%';\n\
     GRANT ALL ON *.* TO 'faultline'@'%';\n\
     CREATE DATABASE IF NOT EXISTS faultline;\n\
     CREATE TABLE IF NOT EXISTS faultline.kv (k VARCHAR(255) PRIMARY KEY, v TEXT) ENGINE=InnoDB;\n";

/// Gives `dirs` (not their contents) to the `mysql` user.
fn chown_mysql(dirs: &[&Path]) -> Result<(), StoreError> {
    let user = nix::unistd::User::from_name("mysql").ok().flatten();
    let user = user.ok_or_else(|| StoreError::Down("no `mysql` user".into()))?;
    for d in dirs {
        nix::unistd::chown(*d, Some(user.uid), Some(user.gid))
            .map_err(|e| StoreError::Down(format!("chown {}: {e}", d.display())))?;
    }
    Ok(())
}

#[async_trait]
impl Store for Galera {
    fn name(&self) -> &'static str {
        "galera"
    }

    fn label(&self) -> String {
        format!("galera-syncwait{}", self.wsrep_sync_wait.0)
    }

    fn describe(&self) -> String {
        format!(
            "MariaDB Galera (multi-primary, wsrep_sync_wait={}, transactions {})",
            self.wsrep_sync_wait.0,
            self.isolation.word()
        )
    }

    fn options(&self) -> Value {
        json!(self)
    }

    /// Registers, kv and the transactional workloads.
    fn check_workload(&self, w: WorkloadKind) -> Result<(), String> {
        if w.is_txn() {
            return Ok(());
        }
        super::register_and_kv_only("galera", w)
    }

    /// mariadbd and mariadb-install-db, rsync, the provider and the `mysql`
    /// user.
    fn check_install(&self) -> Result<Programs, StoreError> {
        let programs = Programs::find(
            "galera",
            self.bindir.as_deref(),
            &["mariadbd", "mariadb-install-db"],
            INSTALL,
        )?;
        let missing = |program: &str| StoreError::Missing {
            program: program.into(),
            what: "--db galera".into(),
            fix: format!("install it with: {INSTALL}"),
        };
        if sys::find_tool("rsync").is_none() {
            return Err(missing("rsync"));
        }
        if !Path::new(PROVIDER).is_file() {
            return Err(missing(PROVIDER));
        }
        if nix::unistd::User::from_name("mysql")
            .ok()
            .flatten()
            .is_none()
        {
            return Err(missing("the `mysql` user"));
        }
        Ok(programs)
    }

    fn needs(&self) -> Result<Needs, String> {
        Err("mariadb-install-db runs before the servers, as the `mysql` user, on the lab's filesystem".into())
    }

    /// n1: install the data directory, bootstrap, create the table; then
    /// every other node joins.
    async fn start(&self, launch: &mut Launch<'_>) -> Result<(), StoreError> {
        let (server, install_db) = (
            launch.program("mariadbd")?,
            launch.program("mariadb-install-db")?,
        );
        let lab = launch.lab()?;
        let nodes = lab.nodes().to_vec();
        let ips: Vec<String> = nodes.iter().map(|n| n.ip.to_string()).collect();
        let mut argvs = Vec::new();
        for n in &nodes {
            let dir = lab.node_dir(n)?.join("galera");
            let data = dir.join("data");
            std::fs::create_dir_all(&data)
                .map_err(StoreError::io(format!("creating {}", data.display())))?;
            let cnf = dir.join("my.cnf");
            std::fs::write(&cnf, config(&dir, &n.ip.to_string(), &n.name, &ips))
                .map_err(StoreError::io(format!("writing {}", cnf.display())))?;
            argvs.push(vec![
                server.display().to_string(),
                format!("--defaults-file={}", cnf.display()),
                "--user=mysql".to_string(),
            ]);
            if argvs.len() == 1 {
                let mut cmd = std::process::Command::new(install_db);
                cmd.arg("--no-defaults")
                    .arg(format!("--datadir={}", data.display()))
                    .args(["--user=mysql", "--skip-test-db"]);
                sys::run(cmd, None)
                    .map_err(|e| StoreError::Down(format!("mariadb-install-db: {e}")))?;
                let setup = dir.join("setup.sql");
                std::fs::write(&setup, [SETUP_KV, galera_txn::SCHEMA].concat())
                    .map_err(StoreError::io(format!("writing {}", setup.display())))?;
                argvs[0].extend([
                    NEW_CLUSTER.into(),
                    format!("--init-file={}", setup.display()),
                ]);
            }
            chown_mysql(&[&dir, &data])?;
        }
        launch
            .spawn(&nodes[0].name, "galera", argvs[0].clone())
            .await?;
        let first = SocketAddr::new(nodes[0].ip.into(), PORT);
        launch
            .wait_for(FORM_WITHIN, "galera on n1 (bootstrap)", || async move {
                wsrep_status(first, 1).await
            })
            .await?;
        for (n, argv) in nodes.iter().zip(argvs).skip(1) {
            launch.spawn(&n.name, "galera", argv).await?;
        }
        Ok(())
    }

    /// Every node is synced (`wsrep_ready` ON) in a cluster of all nodes.
    async fn ready(&self, launch: &mut Launch<'_>) -> Result<(), StoreError> {
        let nodes = launch.nodes();
        let size = nodes.len();
        for n in &nodes {
            let addr = SocketAddr::new(n.ip.into(), PORT);
            launch
                .wait_for(
                    FORM_WITHIN,
                    &format!("galera on {}", n.name),
                    || async move { wsrep_status(addr, size).await },
                )
                .await?;
        }
        Ok(())
    }

    fn client(&self, cluster: &Arc<Cluster>, role: Role) -> Box<dyn Client> {
        Box::new(GaleraClient {
            node: role.home(cluster.nodes.len()),
            cluster: cluster.clone(),
            sync_wait: self.wsrep_sync_wait,
            isolation: self.isolation,
            conn: None,
        })
    }

    /// SIGKILL to the server's tree; a restart never bootstraps again.
    fn kill(&self) -> Option<&dyn Kill> {
        Some(&Rejoin)
    }
}

/// Kills like [`ProcessTree`], and restarts without `--wsrep-new-cluster`
/// (a second bootstrap would found a cluster of its own) and without the
/// init file (the state transfer brings the tables).
struct Rejoin;

impl Kill for Rejoin {
    fn kill(&self, lab: &Lab, server: &mut Server) -> Result<(), StoreError> {
        ProcessTree.kill(lab, server)
    }

    fn restart(&self, lab: &Lab, server: &mut Server) -> Result<(), StoreError> {
        server
            .spec
            .argv
            .retain(|a| a != NEW_CLUSTER && !a.starts_with("--init-file="));
        ProcessTree.restart(lab, server)
    }
}

/// Ok when the node at `addr` is synced in a cluster of `size` nodes.
async fn wsrep_status(addr: SocketAddr, size: usize) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut c = open(addr, deadline).await.map_err(|e| e.to_string())?;
    let q = "SELECT VARIABLE_NAME, VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
             WHERE VARIABLE_NAME IN ('WSREP_READY', 'WSREP_CLUSTER_SIZE', 'WSREP_LOCAL_STATE_COMMENT')";
    let rows: Vec<(String, String)> = timeout_at(deadline, c.query(q))
        .await
        .map_err(|_| "status: timeout".to_string())?
        .map_err(|e| e.to_string())?;
    let get = |k: &str| {
        rows.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map_or("?", |(_, v)| v.as_str())
    };
    let (ready, n, state) = (
        get("WSREP_READY"),
        get("WSREP_CLUSTER_SIZE"),
        get("WSREP_LOCAL_STATE_COMMENT"),
    );
    if ready == "ON" && n == size.to_string() && state == "Synced" {
        Ok(())
    } else {
        Err(format!(
            "wsrep_ready {ready}, cluster size {n} of {size}, {state}"
        ))
    }
}

/// A connection to the server at `addr` as the clients' user. The crate
/// opens its own socket, which cannot be bound to the lab's bridge: the
/// check makes sure the bridge is there, or nothing is sent (see
/// `lab::client_socket`).
async fn open(addr: SocketAddr, deadline: Instant) -> Result<Conn, ClientError> {
    crate::lab::client_socket::socket_for(addr)
        .map_err(|e| ClientError::Definite(format!("connect {addr}: {e}")))?;
    let opts = OptsBuilder::default()
        .ip_or_hostname(addr.ip().to_string())
        .tcp_port(addr.port())
        .user(Some(USER))
        .db_name(Some("faultline"))
        .prefer_socket(false)
        .client_found_rows(true);
    match timeout_at(deadline, Conn::new(opts)).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(ClientError::Definite(format!("connect {addr}: {e}"))),
        Err(_) => Err(ClientError::Definite(format!("connect {addr}: timeout"))),
    }
}

/// How an error after a statement was sent is recorded: `fail` when the
/// server answered that it rolled it back, `info` when the connection was
/// lost (it may have committed) or for errors that may follow a commit.
pub(super) fn outcome(e: mysql_async::Error) -> Result<Completion, ClientError> {
    match e {
        // 1180/1181: an error during COMMIT or ROLLBACK (it may have
        // committed elsewhere).
        mysql_async::Error::Server(s) if matches!(s.code, 1180 | 1181) => {
            info(format!("{} ({})", s.message, s.code))
        }
        // 1213 deadlock / certification failure, 1047 WSREP not ready,
        // 1205 lock wait timeout, ...: the statement was rolled back.
        mysql_async::Error::Server(s) => fail(server_reason(&s)),
        other => Err(ClientError::Indefinite(other.to_string())),
    }
}

/// The reason a server error gives: `conflict`, `unavailable` or `error`,
/// with the message and code.
pub(super) fn server_reason(s: &mysql_async::ServerError) -> String {
    let what = match s.code {
        1213 => "conflict",
        1047 => "unavailable",
        _ => "error",
    };
    format!("{what}: {} ({})", s.message, s.code)
}

/// A client of the server on the worker's home node.
struct GaleraClient {
    cluster: Arc<Cluster>,
    node: usize,
    sync_wait: SyncWait,
    isolation: Isolation,
    conn: Option<Conn>,
}

impl GaleraClient {
    fn conn(&mut self) -> Result<&mut Conn, ClientError> {
        self.conn
            .as_mut()
            .ok_or_else(|| ClientError::Definite("not connected".into()))
    }
}

#[async_trait]
impl Client for GaleraClient {
    async fn ready(&mut self, deadline: Instant) -> Result<(), ClientError> {
        if self.conn.is_none() {
            let mut c = open(self.cluster.addr(self.node, PORT), deadline).await?;
            let set = format!("SET SESSION wsrep_sync_wait = {}", self.sync_wait.0);
            match timeout_at(deadline, c.query_drop(set)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(ClientError::Definite(format!("session: {e}"))),
                Err(_) => return Err(ClientError::Definite("session: timeout".into())),
            }
            self.conn = Some(c);
        }
        Ok(())
    }

    fn reset(&mut self) {
        self.conn = None;
    }

    /// The home node.
    fn target(&self, _f: &str) -> String {
        self.cluster.name(self.node)
    }

    /// read, write, cas, txn.
    async fn call(
        &mut self,
        op: Operation<'_>,
        deadline: Instant,
    ) -> Result<Completion, ClientError> {
        let Operation { f, key, value, .. } = op;
        let isolation = self.isolation;
        let c = self.conn()?;
        let timeout = || ClientError::Indefinite("timeout".into());
        match f {
            "txn" => galera_txn::run(c, isolation, value, deadline).await,
            "read" => {
                let q = c.exec_first::<String, _, _>("SELECT v FROM kv WHERE k = ?", (key,));
                match timeout_at(deadline, q).await.map_err(|_| timeout())? {
                    Ok(v) => ok(v.map_or(Value::Null, |v| decode(&v))),
                    Err(mysql_async::Error::Server(s)) => fail(server_reason(&s)),
                    Err(e) => Err(ClientError::Indefinite(e.to_string())),
                }
            }
            "write" => {
                let q = c.exec_drop(
                    "INSERT INTO kv (k, v) VALUES (?, ?) ON DUPLICATE KEY UPDATE v = VALUES(v)",
                    (key, encode(value)),
                );
                match timeout_at(deadline, q).await.map_err(|_| timeout())? {
                    Ok(()) => ok(value.clone()),
                    Err(e) => outcome(e),
                }
            }
            "cas" => {
                let Some((expected, new)) = cas_pair(value) else {
                    return fail("bad request: cas needs [expected, new]");
                };
                let q = c.exec_drop(
                    "UPDATE kv SET v = ? WHERE k = ? AND v = ?",
                    (encode(&new), key, encode(&expected)),
                );
                match timeout_at(deadline, q).await.map_err(|_| timeout())? {
                    // Rows matched (CLIENT_FOUND_ROWS), not rows changed.
                    Ok(()) if c.affected_rows() == 1 => ok(value.clone()),
                    Ok(()) => fail("cas-mismatch"),
                    Err(e) => outcome(e),
                }
            }
            other => fail(format!(
                "bad request: galera does not do `{other}` (read, write, cas, txn)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn galera(opts: &[(&str, &str)]) -> Result<Arc<dyn Store>, String> {
        crate::stores::registry::testing::store("galera", opts)
    }

    #[test]
    fn options_are_typed_and_recorded() {
        let s = galera(&[]).expect("parses");
        assert_eq!(
            s.options(),
            json!({"wsrep_sync_wait": 0, "isolation": "repeatable-read", "bindir": null})
        );
        assert_eq!(s.label(), "galera-syncwait0");
        for (v, n) in [
            ("reads", 1),
            ("writes", 6),
            ("all", 15),
            ("off", 0),
            ("3", 3),
        ] {
            let s = galera(&[("wsrep_sync_wait", v)]).expect("parses");
            assert_eq!(s.options()["wsrep_sync_wait"], n, "{v}");
        }
        let bad = "expected a number, 0 to 15, or off, reads, writes or all";
        for v in ["16", "-1", "sometimes", ""] {
            let want = format!("--db-opt wsrep_sync_wait={v}: {bad}");
            assert_eq!(galera(&[("wsrep_sync_wait", v)]).expect_err(&want), want);
        }
        let want =
            "--db-opt sync: --db galera has no such option (wsrep_sync_wait, isolation, bindir)";
        assert_eq!(galera(&[("sync", "on")]).expect_err(want), want);
    }

    #[test]
    fn config_names_every_node_and_its_own_address() {
        let ips = ["10.0.0.1".to_string(), "10.0.0.2".to_string()];
        let c = config(Path::new("/d/n2/galera"), "10.0.0.2", "n2", &ips);
        for line in [
            "wsrep_cluster_address=gcomm://10.0.0.1,10.0.0.2",
            "wsrep_node_address=10.0.0.2",
            "bind-address=10.0.0.2",
            "socket=/d/n2/galera/mysqld.sock",
            "binlog_format=ROW",
            "innodb_autoinc_lock_mode=2",
            "wsrep_sst_method=rsync",
        ] {
            assert!(c.lines().any(|l| l == line), "{line} in\n{c}");
        }
    }
}
