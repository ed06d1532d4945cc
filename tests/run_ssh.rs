//! `faultline run` on remote hosts over SSH, for real: the "hosts" are the
//! namespaces of a `faultline lab up` lab, each running its own `sshd`
//! (Debian `openssh-server`) on the node's address, with a host key and an
//! authorized key made for the test in a temporary directory and a
//! known_hosts file of its own. faultline reaches the nodes only through
//! SSH. The sshd processes are this test's children, killed by PID; the
//! lab's namespaces have no route out.
//!
//! Needs root, `sshd`, `ssh`, `ssh-keygen`, `iptables` and `redis-server`
//! (scripts/test-all installs them); without them the tests FAIL.

mod lab_common;
mod stores_common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use faultline::lab::{Lab, sys};
use lab_common::{bin, fl, guard, up};
use stores_common::{history, need, results, text, timeline};

const SSH_INSTALL: &str = "apt-get install -y openssh-server openssh-client";
const REDIS_INSTALL: &str = "apt-get install -y redis-server";

/// A lab whose nodes are SSH hosts.
struct SshHosts {
    lab: Lab,
    dir: tempfile::TempDir,
    sshd: Vec<Child>,
}

fn run_ok(c: &mut Command, what: &str) -> Output {
    let o = c.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        o.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn keygen(path: &Path) {
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(path),
        "ssh-keygen",
    );
}

impl SshHosts {
    /// A lab `name` of `n` nodes, an sshd in each.
    fn up(name: &str, n: usize) -> SshHosts {
        for (p, install) in [
            ("sshd", SSH_INSTALL),
            ("ssh", SSH_INSTALL),
            ("ssh-keygen", SSH_INSTALL),
            ("iptables", "apt-get install -y iptables"),
        ] {
            need(p, install);
        }
        let sshd_bin = sys::find_tool("sshd").expect("sshd");
        let lab = up(name, n);
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        keygen(&d.join("client_key"));
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).expect("authorized");
        // sshd's privilege separation directory.
        std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
        let mut known = String::new();
        let mut sshd = Vec::new();
        for node in lab.nodes() {
            let nd = d.join(&node.name);
            std::fs::create_dir_all(&nd).expect("node dir");
            keygen(&nd.join("host_key"));
            let pubkey = std::fs::read_to_string(nd.join("host_key.pub")).expect("host key");
            let mut parts = pubkey.split_whitespace();
            known += &format!(
                "{} {} {}\n",
                node.ip,
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default()
            );
            std::fs::write(
                nd.join("sshd_config"),
                format!(
                    "ListenAddress {ip}\nPort 22\nHostKey {hk}\nAuthorizedKeysFile {ak}\nPidFile none\n\
                     PermitRootLogin prohibit-password\nPasswordAuthentication no\n\
                     KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n",
                    ip = node.ip,
                    hk = nd.join("host_key").display(),
                    ak = d.join("authorized_keys").display(),
                ),
            )
            .expect("sshd_config");
            let log = std::fs::File::create(nd.join("sshd.log")).expect("sshd log");
            let child = sys::command_in_netns(&node.netns, &sshd_bin.to_string_lossy())
                .expect("netns")
                .arg("-D")
                .arg("-e")
                .arg("-f")
                .arg(nd.join("sshd_config"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .process_group(0)
                .spawn()
                .expect("starting sshd");
            sshd.push(child);
        }
        std::fs::write(d.join("known_hosts"), known).expect("known_hosts");
        let hosts = SshHosts { lab, dir, sshd };
        for node in hosts.lab.nodes() {
            let addr = std::net::SocketAddr::new(node.ip.into(), 22);
            let t0 = Instant::now();
            while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
                assert!(
                    t0.elapsed() < Duration::from_secs(10),
                    "sshd on {} did not listen within 10 s",
                    node.name
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        hosts
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// `root@ip1,root@ip2,…`.
    fn list(&self) -> String {
        self.lab
            .nodes()
            .iter()
            .map(|n| format!("root@{}", n.ip))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The SSH flags with the test's key and known_hosts.
    fn ssh_flags(&self) -> Vec<String> {
        vec![
            "--ssh-identity".into(),
            self.path("client_key").display().to_string(),
            "--ssh-known-hosts".into(),
            self.path("known_hosts").display().to_string(),
        ]
    }

    /// A hosts file naming every node.
    fn hosts_file(&self) -> PathBuf {
        let p = self.path("hosts");
        let text: String = self
            .lab
            .nodes()
            .iter()
            .map(|n| format!("root@{}   # {}\n", n.ip, n.name))
            .collect();
        std::fs::write(&p, format!("# the test's hosts\n{text}")).expect("hosts file");
        p
    }

    /// Runs `argv` inside node `i` (not through SSH: the test's own view).
    fn exec(&self, i: usize, argv: &[&str]) -> Output {
        let node = &self.lab.nodes()[i];
        sys::command_in_netns(&node.netns, argv[0])
            .expect("netns")
            .args(&argv[1..])
            .output()
            .expect("exec in node")
    }

    /// faultline's iptables rules on every node (`iptables -S` lines
    /// naming an FL- chain).
    fn fl_rules(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, n) in self.lab.nodes().iter().enumerate() {
            let o = self.exec(i, &["iptables", "-w", "5", "-S"]);
            for l in String::from_utf8_lossy(&o.stdout).lines() {
                if l.contains("FL-") {
                    out.push(format!("{}: {l}", n.name));
                }
            }
        }
        out
    }

    /// A Redis primary on n1 and replicas on the others, started by the
    /// test (bring your own), daemonized with a pid file per node.
    fn start_redis(&self) {
        let server = sys::find_tool("redis-server").expect("redis-server");
        for (i, n) in self.lab.nodes().iter().enumerate() {
            let nd = self.path(&n.name);
            let replica = if i > 0 {
                format!("replicaof {} 6379\n", self.lab.nodes()[0].ip)
            } else {
                String::new()
            };
            std::fs::write(
                nd.join("redis.conf"),
                format!(
                    "bind {ip}\nport 6379\nprotected-mode no\ndir {d}\nsave \"\"\nappendonly no\n\
                     repl-diskless-sync-delay 0\ndaemonize yes\npidfile {d}/redis.pid\nlogfile {d}/redis.log\n{replica}",
                    ip = n.ip,
                    d = nd.display()
                ),
            )
            .expect("redis.conf");
            run_ok(
                sys::command_in_netns(&n.netns, &server.to_string_lossy())
                    .expect("netns")
                    .arg(nd.join("redis.conf")),
                "starting redis-server",
            );
        }
        let t0 = Instant::now();
        while self
            .lab
            .nodes()
            .iter()
            .any(|n| self.redis_pid(&n.name).is_none())
        {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "redis did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The running redis-server of `node`, by its pid file.
    fn redis_pid(&self, node: &str) -> Option<i32> {
        let p = std::fs::read_to_string(self.path(node).join("redis.pid")).ok()?;
        let pid: i32 = p.trim().parse().ok()?;
        let st = proc_state(pid)?;
        (st != 'Z').then_some(pid)
    }

    /// The `--db-opt`s of the test's Redis.
    fn redis_opts(&self) -> Vec<String> {
        let ips: Vec<String> = self.lab.nodes().iter().map(|n| n.ip.to_string()).collect();
        let tmpl = self.dir.path().join("{node}");
        vec![
            "--db".into(),
            "redis".into(),
            "--db-opt".into(),
            format!("endpoints={}", ips.join(",")),
            "--db-opt".into(),
            format!("pidfile={}/redis.pid", tmpl.display()),
            "--db-opt".into(),
            format!("start=redis-server {}/redis.conf", tmpl.display()),
        ]
    }

    /// The PIDs in node `i`'s namespace with their command lines.
    fn processes(&self, i: usize) -> Vec<String> {
        use std::os::unix::fs::MetadataExt;
        let ino = std::fs::metadata(format!("/run/netns/{}", self.lab.nodes()[i].netns))
            .expect("netns file")
            .ino();
        faultline::lab::proc::pids_in_netns(ino)
            .into_iter()
            .filter_map(|p| {
                let c = std::fs::read(format!("/proc/{p}/cmdline")).ok()?;
                Some(format!(
                    "{p}: {}",
                    String::from_utf8_lossy(&c).replace('\0', " ")
                ))
            })
            .collect()
    }
}

impl Drop for SshHosts {
    fn drop(&mut self) {
        for c in &mut self.sshd {
            let _ = c.kill();
            let _ = c.wait();
        }
        for n in self.lab.nodes() {
            if let Some(pid) = self.redis_pid(&n.name) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        let _ = fl(&["lab", "down", "--name", self.lab.name()]);
    }
}

/// The state letter of `/proc/PID/stat` (R, S, T, Z, …).
fn proc_state(pid: i32) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s[s.rfind(')')? + 1..].trim_start().chars().next()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The remote runs recorded on this machine that name `hosts`' first node.
fn remote_records(hosts: &SshHosts) -> Vec<PathBuf> {
    let ip = format!("\"{}\"", hosts.lab.nodes()[0].ip);
    std::fs::read_dir("/run/faultline/remote")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains(&ip)))
                .collect()
        })
        .unwrap_or_default()
}

/// The nemesis events of the latest run (start and end of each fault).
fn faults(store: &Path) -> Vec<serde_json::Value> {
    history(store)
        .into_iter()
        .filter(|e| e["process"] == "nemesis")
        .collect()
}

#[test]
fn ssh_redis_you_bring_under_partitions_kills_and_pauses() {
    let Some(_g) = guard("ssh_redis_you_bring_under_partitions_kills_and_pauses") else {
        return;
    };
    need("redis-server", REDIS_INSTALL);
    let hosts = SshHosts::up("sshr", 3);
    hosts.start_redis();
    let before_n2 = hosts.redis_pid("n2").expect("n2 runs");
    let store = tempfile::tempdir().expect("tempdir");

    // Reads and writes on the primary: linearizable, whatever happens to
    // the replicas (a partition, a pause, a kill and restart).
    let t = timeline(
        store.path(),
        r#"[{"at": 1, "for": 2, "fault": {"fault": "partition", "shape": "[[\"n2\"], [\"n1\", \"n3\"]]"}},
            {"at": 3.5, "for": 1.5, "fault": {"fault": "pause", "target": {"nodes": ["n3"]}}},
            {"at": 5.5, "for": 1.5, "fault": {"fault": "kill", "target": {"nodes": ["n2"]}}},
            {"at": 7.5, "for": 1, "fault": {"fault": "loss", "percent": 50, "target": {"nodes": ["n3"]}}}]"#,
    );
    let mut args = vec!["--ssh".to_string(), hosts.list()];
    args.extend(hosts.ssh_flags());
    args.extend(hosts.redis_opts());
    args.extend(
        [
            "--nemesis-schedule",
            &t.display().to_string(),
            "--time-limit",
            "9",
            "--rate",
            "300",
            "--quiet",
            "1",
            "--seed",
            "3",
        ]
        .map(String::from),
    );
    let o = stores_common::run(store.path(), &strs(&args));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let f = faults(store.path());
    assert_eq!(f.len(), 8, "four faults, each started and ended: {f:?}");
    assert!(
        f.iter().all(|e| e.get("error").is_none()),
        "every fault was applied on the hosts: {f:?}"
    );
    let after_n2 = hosts.redis_pid("n2").expect("n2 was started again");
    assert_ne!(before_n2, after_n2, "n2's redis was killed and restarted");
    assert!(hosts.fl_rules().is_empty(), "{:?}", hosts.fl_rules());
    for n in ["n1", "n3"] {
        let pid = hosts.redis_pid(n).expect("runs");
        assert_ne!(proc_state(pid), Some('T'), "{n} was resumed");
    }
    let r = results(store.path());
    assert_eq!(
        r["config"]["remote"]["endpoints"][1]["address"],
        hosts.lab.nodes()[1].ip.to_string()
    );

    // Reads from the replicas under partitions: not linearizable, as in
    // the lab (tests/run_redis.rs).
    let mut args = vec![
        "--hosts".to_string(),
        hosts.hosts_file().display().to_string(),
    ];
    args.extend(hosts.ssh_flags());
    args.extend(hosts.redis_opts());
    args.extend(
        [
            "--db-opt",
            "reads=replicas",
            "--keys",
            "4",
            "--nemesis",
            "partition",
            "--nemesis-interval",
            "3",
            "--time-limit",
            "12",
            "--rate",
            "1000",
            "--quiet",
            "1",
            "--seed",
            "5",
        ]
        .map(String::from),
    );
    let r = run_verdict(store.path(), &args, 1);
    assert_eq!(r["checks"]["linearizable"]["valid"], false, "{r}");
    assert_eq!(
        r["checks"]["linearizable"]["anomalies"][0]["op"]["f"],
        "read"
    );
    assert!(hosts.fl_rules().is_empty(), "{:?}", hosts.fl_rules());
    assert!(
        remote_records(&hosts).is_empty(),
        "{:?}",
        remote_records(&hosts)
    );
}

#[test]
fn ssh_sigkilled_run_is_undone_by_clean_hosts() {
    let Some(_g) = guard("ssh_sigkilled_run_is_undone_by_clean_hosts") else {
        return;
    };
    need("redis-server", REDIS_INSTALL);
    let hosts = SshHosts::up("sshk", 3);
    hosts.start_redis();
    let store = tempfile::tempdir().expect("tempdir");
    let file = hosts.hosts_file();
    let mut args = vec!["--hosts".to_string(), file.display().to_string()];
    args.extend(hosts.ssh_flags());
    args.extend(hosts.redis_opts());
    crash_during_faults(store.path(), args, "n3");
    let rules = hosts.fl_rules();
    assert!(
        rules
            .iter()
            .any(|r| r.contains("-A FL-PART") && r.contains("-j DROP")),
        "the partition is on the hosts after the crash: {rules:?}"
    );
    let n3 = hosts.redis_pid("n3").expect("n3 runs");
    assert_eq!(proc_state(n3), Some('T'), "n3's redis is paused");
    assert_eq!(remote_records(&hosts).len(), 1, "the run is recorded");

    let mut args = vec![
        "clean".to_string(),
        "--hosts".into(),
        file.display().to_string(),
    ];
    args.extend(hosts.ssh_flags());
    let o = fl(&strs(&args));
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("removed iptables chains FL-PART, FL-LOSS"),
        "{out}"
    );
    assert!(out.contains("resumed the store"), "{out}");
    assert!(hosts.fl_rules().is_empty(), "{:?}", hosts.fl_rules());
    assert_ne!(proc_state(n3), Some('T'), "n3's redis was resumed");
    assert!(
        remote_records(&hosts).is_empty(),
        "{:?}",
        remote_records(&hosts)
    );
    // Nothing of faultline's is left on any host: only sshd's listener and
    // redis (the SSH sessions end within seconds of the master's exit).
    assert_only_sshd_left(&hosts, 3, "redis-server");
    // A second clean finds nothing.
    let o = fl(&strs(&args));
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("nothing to clean"),
        "{}",
        text(&o)
    );
}

#[test]
fn ssh_bad_hosts_and_settings_exit_2_naming_the_host() {
    let Some(_g) = guard("ssh_bad_hosts_and_settings_exit_2_naming_the_host") else {
        return;
    };
    let hosts = SshHosts::up("sshe", 2);
    let store = tempfile::tempdir().expect("tempdir");
    let s = store.path().display().to_string();
    let ip1 = hosts.lab.nodes()[0].ip.to_string();
    let ip2 = hosts.lab.nodes()[1].ip.to_string();
    let endpoints = format!("endpoints={ip1},{ip2}");
    let flags = hosts.ssh_flags();
    let base = |ssh: &str, extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["run", "--store", &s, "--time-limit", "2", "--ssh", ssh]
            .map(String::from)
            .to_vec();
        v.extend(extra.iter().map(|x| x.to_string()));
        v
    };
    // `base` with the hosts' SSH settings (identity, known_hosts).
    let with_flags = |ssh: &str, extra: &[&str]| -> Vec<String> {
        let mut a = base(ssh, extra);
        a.extend(flags.iter().cloned());
        a
    };
    // Exit 2 and one error line (after the run's description, when the
    // settings were fine and the hosts are what failed).
    let err2 = |args: Vec<String>, needles: &[&str]| {
        let o = fl(&strs(&args));
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "faultline {args:?}: {e}");
        let errors: Vec<&str> = e.lines().filter(|l| l.contains("error")).collect();
        assert_eq!(errors.len(), 1, "one error line wanted: {e}");
        assert!(e.lines().count() <= 2 && !e.contains("panicked"), "{e}");
        for n in needles {
            assert!(
                errors[0].contains(n),
                "faultline {args:?}: {e:?} lacks {n:?}"
            );
        }
    };
    // Nothing listens on port 2: unreachable.
    err2(
        with_flags(
            &format!("root@{ip1}:2,root@{ip2}"),
            &["--db", "redis", "--db-opt", &endpoints],
        ),
        &[
            &format!("host root@{ip1}:2: cannot connect over SSH"),
            "refused",
        ],
    );
    // A key the hosts do not know: authentication fails.
    keygen(&hosts.path("stranger"));
    let a = base(
        &hosts.list(),
        &[
            "--db",
            "redis",
            "--db-opt",
            &endpoints,
            "--ssh-identity",
            &hosts.path("stranger").display().to_string(),
            "--ssh-known-hosts",
            &hosts.path("known_hosts").display().to_string(),
        ],
    );
    err2(a, &["cannot connect over SSH", "Permission denied"]);
    // A host key that is not in known_hosts: refused, never accepted.
    std::fs::write(hosts.path("empty_known_hosts"), "").expect("write");
    let a = base(
        &hosts.list(),
        &[
            "--db",
            "redis",
            "--db-opt",
            &endpoints,
            "--ssh-identity",
            &hosts.path("client_key").display().to_string(),
            "--ssh-known-hosts",
            &hosts.path("empty_known_hosts").display().to_string(),
        ],
    );
    err2(
        a,
        &["cannot connect over SSH", "Host key verification failed"],
    );
    // Delay where the hosts have no netem (this kernel): refused after a
    // probe on the hosts, naming the host and tc's reason; the probe
    // leaves no qdisc (checked with the chains and records at the end).
    err2(
        with_flags(
            &hosts.list(),
            &[
                "--db",
                "redis",
                "--db-opt",
                &endpoints,
                "--nemesis",
                "delay",
            ],
        ),
        &[
            &format!("host n1 (root@{ip1}): delay needs tc with the prio and netem qdiscs"),
            "Specified qdisc kind is unknown",
        ],
    );
    for i in 0..2 {
        let q = hosts.exec(i, &["tc", "qdisc", "show", "dev", "eth0"]);
        let q = String::from_utf8_lossy(&q.stdout);
        assert!(!q.contains("fa17:"), "no qdisc of faultline's: {q}");
    }
    // Settings that cannot work, before anything is touched.
    err2(
        with_flags(&hosts.list(), &["--db", "postgres"]),
        &[
            "--db postgres: faultline cannot start it on remote hosts: initdb and pg_basebackup run",
            "bring your own cluster",
        ],
    );
    err2(
        with_flags(
            &hosts.list(),
            &["--db", "redis", "--db-opt", "failover=sentinel"],
        ),
        &[
            "--db redis: faultline cannot start it on remote hosts: failover=sentinel runs two servers per host",
        ],
    );
    // A program the hosts lack: named with the host, after connecting.
    err2(
        with_flags(
            &hosts.list(),
            &["--db", "redis", "--db-opt", "bindir=/nonexistent"],
        ),
        &[
            "host n1 (",
            "--db redis: `redis-server` not found on the host (looked in /nonexistent)",
        ],
    );
    err2(
        with_flags(
            &hosts.list(),
            &["--db", "redis", "--db-opt", &format!("endpoints={ip1}")],
        ),
        &["1 endpoints for 2 hosts"],
    );
    err2(
        with_flags(
            &hosts.list(),
            &["--db", "redis", "--db-opt", &endpoints, "--nemesis", "kill"],
        ),
        &["kill on remote hosts: give --db-opt pidfile=PATH or pattern=REGEX"],
    );
    err2(
        vec![
            "run".into(),
            "--store".into(),
            s.clone(),
            "--db-opt".into(),
            "pidfile=/x".into(),
        ],
        &["--db-opt pidfile: only means something on remote hosts"],
    );
    // `clean --hosts` with a host that does not answer: exit 2 naming it.
    let o = Command::new(bin())
        .args(["clean", "--ssh", &format!("root@{ip1}:2")])
        .args(&flags)
        .output()
        .expect("clean");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&format!("host root@{ip1}:2")),
        "{}",
        text(&o)
    );
    assert!(hosts.fl_rules().is_empty(), "nothing was touched");
    assert!(
        remote_records(&hosts).is_empty(),
        "{:?}",
        remote_records(&hosts)
    );
}

/// Only sshd's listeners (and `keep`) in the hosts' namespaces, within 15 s
/// (SSH sessions end within seconds of the master's exit).
fn assert_only_sshd_left(hosts: &SshHosts, n: usize, keep: &str) {
    let t0 = Instant::now();
    loop {
        let extra: Vec<String> = (0..n)
            .flat_map(|i| hosts.processes(i))
            .filter(|p| !p.contains("[listener]") && (keep.is_empty() || !p.contains(keep)))
            .collect();
        if extra.is_empty() {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "processes left on the hosts: {extra:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Directories faultline made on the hosts (`/tmp/faultline-run-*`; the
/// hosts share this machine's filesystem).
fn store_dirs() -> Vec<PathBuf> {
    std::fs::read_dir("/tmp")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("faultline-run-"))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn ssh_etcd_and_redis_started_over_ssh_give_the_lab_verdicts_and_clean_after_a_crash() {
    let Some(_g) =
        guard("ssh_etcd_and_redis_started_over_ssh_give_the_lab_verdicts_and_clean_after_a_crash")
    else {
        return;
    };
    need("etcd", "apt-get install -y etcd-server etcd-client");
    need("redis-server", REDIS_INSTALL);
    let hosts = SshHosts::up("sshc", 3);
    let dirs_before = store_dirs();
    let store = tempfile::tempdir().expect("tempdir");
    // As tests/run_etcd.rs: partitions, kills and pauses, of one member and
    // of the leader; faultline starts etcd on the hosts over SSH.
    let t = timeline(
        store.path(),
        r#"[{"at": 2, "for": 3, "fault": {"fault": "partition", "shape": "one"}},
            {"at": 6, "for": 3, "fault": {"fault": "kill", "target": "one"}},
            {"at": 10, "for": 3, "fault": {"fault": "pause", "target": "primaries"}},
            {"at": 14, "for": 3, "fault": {"fault": "partition", "shape": "majority"}},
            {"at": 18, "for": 3, "fault": {"fault": "kill", "target": "primaries"}}]"#,
    );
    let mut args = vec!["--ssh".to_string(), hosts.list()];
    args.extend(hosts.ssh_flags());
    args.extend(
        [
            "--db",
            "etcd",
            "--nemesis-schedule",
            &t.display().to_string(),
            "--time-limit",
            "22",
            "--rate",
            "200",
            "--quiet",
            "3",
            "--seed",
            "11",
        ]
        .map(String::from),
    );
    let r = run_verdict(store.path(), &args, 0);
    assert_eq!(r["checks"]["linearizable"]["valid"], true, "{r}");
    let h = history(store.path());
    let ok = h.iter().filter(|e| e["type"] == "ok").count();
    assert!(ok >= 500, "at least 500 ok operations, got {ok}");
    let f = faults(store.path());
    assert_eq!(f.len(), 10, "five faults started and ended: {f:?}");
    assert!(f.iter().all(|e| e.get("error").is_none()), "{f:?}");
    for n in ["n1", "n2", "n3"] {
        let log = stores_common::latest(store.path())
            .join("nodes")
            .join(n)
            .join("etcd.log");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(text.contains("etcd"), "etcd's log {}", log.display());
    }
    assert!(hosts.fl_rules().is_empty(), "{:?}", hosts.fl_rules());
    assert!(remote_records(&hosts).is_empty());
    assert_only_sshd_left(&hosts, 3, "");
    assert_eq!(
        store_dirs(),
        dirs_before,
        "the store's directories are removed"
    );

    // SIGKILL a run while a member is paused and the partition is on:
    // `clean --hosts` stops faultline's etcd everywhere.
    let store = tempfile::tempdir().expect("tempdir");
    let mut args = vec!["--ssh".to_string(), hosts.list()];
    args.extend(hosts.ssh_flags());
    args.extend(["--db", "etcd"].map(String::from));
    crash_during_faults(store.path(), args, "n2");
    let etcds: Vec<String> = (0..3)
        .flat_map(|i| hosts.processes(i))
        .filter(|p| p.contains("etcd"))
        .collect();
    assert_eq!(etcds.len(), 3, "etcd runs on the hosts: {etcds:?}");
    assert!(!hosts.fl_rules().is_empty(), "the partition is on");
    clean_hosts(&hosts);
    assert_eq!(
        store_dirs(),
        dirs_before,
        "the store's directories are removed"
    );

    // Redis, started over SSH by the same store code as in the lab (a
    // primary on n1, replicas on n2 and n3): reads and writes on the
    // primary stay linearizable whatever happens to the replicas (a
    // partition, a pause, a kill and restart), as in the lab.
    let store = tempfile::tempdir().expect("tempdir");
    let t = timeline(
        store.path(),
        r#"[{"at": 1, "for": 2, "fault": {"fault": "partition", "shape": "[[\"n2\"], [\"n1\", \"n3\"]]"}},
            {"at": 3.5, "for": 1.5, "fault": {"fault": "pause", "target": {"nodes": ["n3"]}}},
            {"at": 5.5, "for": 1.5, "fault": {"fault": "kill", "target": {"nodes": ["n2"]}}}]"#,
    );
    let mut args = vec!["--ssh".to_string(), hosts.list()];
    args.extend(hosts.ssh_flags());
    args.extend(
        [
            "--db",
            "redis",
            "--nemesis-schedule",
            &t.display().to_string(),
            "--time-limit",
            "8",
            "--rate",
            "300",
            "--quiet",
            "1",
            "--seed",
            "7",
        ]
        .map(String::from),
    );
    let r = run_verdict(store.path(), &args, 0);
    assert_eq!(r["checks"]["linearizable"]["valid"], true, "{r}");
    let f = faults(store.path());
    assert_eq!(f.len(), 6, "three faults started and ended: {f:?}");
    assert!(f.iter().all(|e| e.get("error").is_none()), "{f:?}");
    let log = stores_common::latest(store.path()).join("nodes/n2/redis.log");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.matches("Server initialized").count() >= 2,
        "n2's redis was killed and started again: {}",
        log.display()
    );
    assert!(hosts.fl_rules().is_empty(), "{:?}", hosts.fl_rules());
    assert!(remote_records(&hosts).is_empty());
    assert_only_sshd_left(&hosts, 3, "");
    assert_eq!(store_dirs(), dirs_before);

    // SIGKILLed while n3's redis is paused: `clean --hosts` stops it all.
    let store = tempfile::tempdir().expect("tempdir");
    let mut args = vec!["--ssh".to_string(), hosts.list()];
    args.extend(hosts.ssh_flags());
    args.extend(["--db", "redis"].map(String::from));
    crash_during_faults(store.path(), args, "n3");
    let redis: Vec<String> = (0..3)
        .flat_map(|i| hosts.processes(i))
        .filter(|p| p.contains("redis-server"))
        .collect();
    assert_eq!(redis.len(), 3, "redis runs on the hosts: {redis:?}");
    clean_hosts(&hosts);
    assert_eq!(store_dirs(), dirs_before);
}

/// `faultline clean --ssh HOSTS` after a crashed run that started the
/// store: it says so, and no chain, record or process is left.
fn clean_hosts(hosts: &SshHosts) {
    let mut args = vec!["clean".to_string(), "--ssh".into(), hosts.list()];
    args.extend(hosts.ssh_flags());
    let o = fl(&strs(&args));
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("stopped the store started by"),
        "{}",
        text(&o)
    );
    assert!(hosts.fl_rules().is_empty(), "{:?}", hosts.fl_rules());
    assert!(remote_records(hosts).is_empty());
    assert_only_sshd_left(hosts, 3, "");
}

/// libfaketime's shared objects of remote runs in `/dev/shm` (the hosts
/// share this machine's).
fn remote_shm() -> Vec<String> {
    std::fs::read_dir("/dev/shm")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains("faultline-run-") && n.ends_with("-faketime"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn ssh_clock_faults_break_wall_clock_writes_of_the_builtin_store_started_over_ssh() {
    let Some(_g) =
        guard("ssh_clock_faults_break_wall_clock_writes_of_the_builtin_store_started_over_ssh")
    else {
        return;
    };
    need("etcd", "apt-get install -y etcd-server etcd-client");
    let hosts = SshHosts::up("sshw", 3);
    let dirs_before = store_dirs();
    // As tests/run_clock.rs in the lab: the built-in store in quorum mode
    // with wall-clock timestamps (last write wins), started over SSH on
    // the hosts (`faultline node`, this binary at its path on the hosts).
    let wall = |store: &Path, extra: &[&str]| -> Output {
        let mut args = vec!["--ssh".to_string(), hosts.list()];
        args.extend(hosts.ssh_flags());
        args.extend(stores_common::WALL_CLOCK_RUN.iter().map(|s| s.to_string()));
        args.extend(extra.iter().map(|s| s.to_string()));
        stores_common::run(store, &strs(&args))
    };
    // The clocks agree (one machine): linearizable.
    let calm = tempfile::tempdir().expect("tempdir");
    let o = wall(calm.path(), &["--nemesis", "none"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // n1's clock 5 s behind, then a strobe on n2: n1's writes lose to
    // older ones.
    let store = tempfile::tempdir().expect("tempdir");
    let t = timeline(
        store.path(),
        r#"[{"at": 0, "for": 4, "fault": {"fault": "clock", "mode": "skew", "ms": -5000, "target": {"nodes": ["n1"]}}},
            {"at": 4.5, "for": 1, "fault": {"fault": "clock", "mode": "strobe", "ms": 3000, "period_ms": 20, "target": {"nodes": ["n2"]}}}]"#,
    );
    let o = wall(
        store.path(),
        &["--nemesis-schedule", &t.display().to_string()],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let r = results(store.path());
    assert_eq!(r["checks"]["linearizable"]["valid"], false, "{r}");
    assert_eq!(r["stats"]["faults"], 2, "{r}");
    let f = faults(store.path());
    assert_eq!(f.len(), 4, "two clock faults started and ended: {f:?}");
    assert!(
        f.iter()
            .all(|e| e["f"] == "clock" && e.get("error").is_none()),
        "every clock fault was applied on the hosts: {f:?}"
    );
    assert_eq!(f[0]["value"]["ms"], -5000, "{f:?}");
    assert_eq!(f[0]["value"]["nodes"][0], "n1", "{f:?}");
    assert!(remote_records(&hosts).is_empty());
    assert!(remote_shm().is_empty(), "{:?}", remote_shm());
    assert_only_sshd_left(&hosts, 3, "");
    assert_eq!(store_dirs(), dirs_before);

    // The hosts' etcd is a Go binary: not applicable, read over SSH, and
    // nothing started.
    let mut args = vec![
        "run".to_string(),
        "--store".into(),
        store.path().display().to_string(),
        "--ssh".into(),
        hosts.list(),
    ];
    args.extend(hosts.ssh_flags());
    args.extend(["--db", "etcd", "--nemesis", "clock", "--time-limit", "3"].map(String::from));
    let o = fl(&strs(&args));
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{e}");
    for needle in [
        "--db etcd with clock faults: not applicable",
        "/etcd imports none of clock_gettime",
        &format!("(on root@{})", hosts.lab.nodes()[0].ip),
    ] {
        assert!(e.contains(needle), "{e:?} lacks {needle:?}");
    }
    assert!(remote_records(&hosts).is_empty());
    assert_eq!(store_dirs(), dirs_before);

    // SIGKILLed during a skew: `clean --hosts` stops the servers and
    // removes the run's libfaketime objects.
    let store = tempfile::tempdir().expect("tempdir");
    let mut args = vec!["--ssh".to_string(), hosts.list()];
    args.extend(hosts.ssh_flags());
    args.extend(["--db", "builtin", "--db-opt", "mode=quorum"].map(String::from));
    crash_during(
        store.path(),
        args,
        r#"[{"at": 0.5, "for": 60, "fault": {"fault": "partition", "shape": "one"}},
            {"at": 1, "for": 60, "fault": {"fault": "clock", "mode": "bump", "ms": -2000, "target": {"nodes": ["n1", "n2"]}}}]"#,
    );
    assert_eq!(remote_shm().len(), 2, "{:?}", remote_shm());
    let offsets: Vec<String> = store_dirs()
        .iter()
        .filter(|d| !dirs_before.contains(d))
        .flat_map(|d| ["n1", "n2"].map(|n| d.join(n).join("faketime.rc")))
        .map(|f| std::fs::read_to_string(f).unwrap_or_default())
        .collect();
    assert_eq!(
        offsets,
        ["-2.000\n", "-2.000\n"],
        "the clocks faked on the hosts"
    );
    clean_hosts(&hosts);
    assert!(remote_shm().is_empty(), "{:?}", remote_shm());
    assert_eq!(store_dirs(), dirs_before);
}

/// Starts `faultline run ARGS` under a partition (from 0.5 s) and a pause
/// of `paused` (from 1 s), both lasting a minute; SIGKILLs it once both are
/// in place.
fn crash_during_faults(store: &Path, args: Vec<String>, paused: &str) {
    crash_during(
        store,
        args,
        &format!(
            r#"[{{"at": 0.5, "for": 60, "fault": {{"fault": "partition", "shape": "one"}}}},
                {{"at": 1, "for": 60, "fault": {{"fault": "pause", "target": {{"nodes": ["{paused}"]}}}}}}]"#
        ),
    );
}

/// Starts `faultline run ARGS` under the two faults of the `faults`
/// timeline; SIGKILLs it once both have started.
fn crash_during(store: &Path, mut args: Vec<String>, faults: &str) {
    let t = timeline(store, faults);
    args.extend(
        [
            "--nemesis-schedule",
            &t.display().to_string(),
            "--time-limit",
            "60",
            "--rate",
            "50",
        ]
        .map(String::from),
    );
    let err = store.join("stderr.txt");
    let mut child = stores_common::run_command(store, &strs(&args))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).expect("stderr file"))
        .spawn()
        .expect("faultline run");
    let t0 = Instant::now();
    while history_starts(store) < 2 {
        let exited = child.try_wait().expect("try_wait");
        assert!(
            t0.elapsed() < Duration::from_secs(60) && exited.is_none(),
            "the faults did not start within 60 s ({exited:?}): {}",
            std::fs::read_to_string(&err).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
}

/// Runs `faultline run ARGS`, asserts its exit code, gives results.json.
fn run_verdict(store: &Path, args: &[String], code: i32) -> serde_json::Value {
    let o = stores_common::run(store, &strs(args));
    assert_eq!(o.status.code(), Some(code), "{}", text(&o));
    results(store)
}

/// How many faults the latest run's history has started.
fn history_starts(store: &Path) -> usize {
    std::fs::read_to_string(store.join("latest/history.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("\"nemesis\"") && l.contains("\"start\""))
        .count()
}
