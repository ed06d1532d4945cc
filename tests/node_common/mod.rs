//! Shared helpers for the `faultline node` tests: clusters of real node
//! processes on 127.0.0.1 (no root needed), killed by PID and reaped when
//! the [`Cluster`] is dropped, even on panic (then their logs are printed).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

/// The faultline binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_faultline"))
}

/// `n` distinct free ports on 127.0.0.1, never handed out twice in this
/// process. They come from below the kernel's ephemeral range (32768 and
/// up), so that neither a concurrent test nor an outgoing connection's
/// source port can take one between this check and the node's bind.
pub fn free_ports(n: usize) -> Vec<u16> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = (std::process::id() % 100) * 120;
    let mut out = Vec::new();
    while out.len() < n {
        let k = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (20_000 + (start + k) % 12_000) as u16;
        if k >= 12_000 {
            panic!("no free port left");
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            out.push(port);
        }
    }
    out
}

/// A cluster of node processes.
pub struct Cluster {
    pub names: Vec<String>,
    pub addrs: Vec<SocketAddr>,
    args: Vec<String>,
    children: Vec<Option<Child>>,
    dir: tempfile::TempDir,
    restarts: usize,
}

impl Cluster {
    /// Starts `n` nodes n1..nN with the extra flags `args` (e.g. `--mode
    /// async`), and waits until each answers `ping`.
    pub fn start(n: usize, args: &[&str]) -> Cluster {
        let ports = free_ports(n);
        let mut c = Cluster {
            names: (1..=n).map(|i| format!("n{i}")).collect(),
            addrs: ports
                .iter()
                .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
                .collect(),
            args: args.iter().map(|s| s.to_string()).collect(),
            children: (0..n).map(|_| None).collect(),
            dir: tempfile::tempdir().expect("tempdir"),
            restarts: 0,
        };
        for i in 0..n {
            c.spawn(i);
        }
        for i in 0..n {
            c.wait_ping(i);
        }
        c
    }

    fn spawn(&mut self, i: usize) {
        let mut cmd = Command::new(bin());
        cmd.arg("node")
            .arg("--name")
            .arg(&self.names[i])
            .arg("--listen")
            .arg(self.addrs[i].to_string());
        for (j, (n, a)) in self.names.iter().zip(&self.addrs).enumerate() {
            if j != i {
                cmd.arg("--peer").arg(format!("{n}={a}"));
            }
        }
        cmd.args(&self.args);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(i))
            .expect("log file");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        self.children[i] = Some(cmd.spawn().expect("spawning faultline node"));
    }

    fn log_path(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("{}.log", self.names[i]))
    }

    /// The node's stderr so far.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.log_path(i)).unwrap_or_default()
    }

    fn pid(&self, i: usize) -> Pid {
        let c = self.children[i].as_ref().expect("node is running");
        Pid::from_raw(c.id() as i32)
    }

    /// Sends a signal to node `i`.
    pub fn signal(&self, i: usize, sig: Signal) {
        kill(self.pid(i), sig).expect("kill");
    }

    /// SIGSTOP.
    pub fn pause(&self, i: usize) {
        self.signal(i, Signal::SIGSTOP);
    }

    /// SIGCONT.
    pub fn resume(&self, i: usize) {
        self.signal(i, Signal::SIGCONT);
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts node `i` again (after [`Cluster::kill`]) and waits for ping.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.restarts += 1;
        self.spawn(i);
        self.wait_ping(i);
    }

    /// SIGTERM, and the exit status within 5 s.
    pub fn terminate(&mut self, i: usize) -> std::process::ExitStatus {
        self.signal(i, Signal::SIGTERM);
        let mut c = self.children[i].take().expect("node is running");
        let t = Instant::now();
        loop {
            if let Some(s) = c.try_wait().expect("wait") {
                return s;
            }
            if t.elapsed() > Duration::from_secs(5) {
                let _ = c.kill();
                let _ = c.wait();
                panic!("node did not exit within 5 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_ping(&self, i: usize) {
        let t = Instant::now();
        loop {
            if let Ok(mut c) = Conn::try_open(self.addrs[i]) {
                if let Ok(r) = c.try_call("ping", "", Value::Null) {
                    assert_eq!(r["value"], json!(self.names[i]));
                    return;
                }
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "node {} did not answer ping within 10 s; log:\n{}",
                self.names[i],
                self.log(i)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A connection to node `i`.
    pub fn conn(&self, i: usize) -> Conn {
        Conn::open(self.addrs[i])
    }

    /// Retries `f` on node `i` until it returns `ok`, for up to `secs`.
    pub fn until_ok(&self, i: usize, f: &str, key: &str, value: Value, secs: u64) -> Value {
        let t = Instant::now();
        loop {
            let mut c = self.conn(i);
            let r = c.call(f, key, value.clone());
            if r["type"] == "ok" {
                return r;
            }
            assert!(
                t.elapsed() < Duration::from_secs(secs),
                "{f} {key} on {} never ok: last {r}; logs:\n{}",
                self.names[i],
                self.all_logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Polls a read of `key` on node `i` until it returns `want`.
    pub fn until_reads(&self, i: usize, key: &str, want: &Value, secs: u64) {
        let t = Instant::now();
        loop {
            let r = self.conn(i).call("read", key, Value::Null);
            if r["type"] == "ok" && r["value"] == *want {
                return;
            }
            assert!(
                t.elapsed() < Duration::from_secs(secs),
                "read {key} on {} never gave {want}: last {r}; logs:\n{}",
                self.names[i],
                self.all_logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until every node's log says, as its latest word on each peer,
    /// that the link to it is up: a fixture that needs every replica
    /// reachable (a quorum write right after a kill) must not race the
    /// nodes' first connection attempts.
    pub fn until_meshed(&self, secs: u64) {
        let t = Instant::now();
        let linked = |i: usize| {
            let log = self.log(i);
            self.names.iter().enumerate().all(|(j, peer)| {
                let [up, down, unreachable] =
                    ["up", "down", "unreachable"].map(|w| format!("peer {peer} {w}"));
                j == i
                    || log
                        .lines()
                        .rev()
                        .find(|l| l.contains(&up) || l.contains(&down) || l.contains(&unreachable))
                        .is_some_and(|l| l.contains(&up))
            })
        };
        while !(0..self.names.len()).all(linked) {
            assert!(
                t.elapsed() < Duration::from_secs(secs),
                "the nodes never all linked to each other; logs:\n{}",
                self.all_logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every node's log, for failure messages.
    pub fn all_logs(&self) -> String {
        (0..self.names.len())
            .map(|i| format!("--- {}\n{}", self.names[i], self.log(i)))
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self.children.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("node logs:\n{}", self.all_logs());
        }
    }
}

/// A blocking client connection speaking the node protocol (every read is
/// bounded: a node that does not answer within 5 s fails the test).
pub struct Conn {
    rd: BufReader<TcpStream>,
    wr: TcpStream,
    next: u64,
}

impl Conn {
    pub fn try_open(addr: SocketAddr) -> std::io::Result<Conn> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.set_nodelay(true)?;
        Ok(Conn {
            rd: BufReader::new(s.try_clone()?),
            wr: s,
            next: 1,
        })
    }

    pub fn open(addr: SocketAddr) -> Conn {
        Conn::try_open(addr).expect("connecting to a node")
    }

    /// Sends raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.wr.write_all(bytes).expect("send");
    }

    /// Reads one reply line as JSON.
    pub fn recv(&mut self) -> Value {
        self.try_recv().expect("a reply within 5 s")
    }

    fn try_recv(&mut self) -> std::io::Result<Value> {
        let mut line = String::new();
        let n = self.rd.read_line(&mut line)?;
        if n == 0 {
            return Err(std::io::Error::other("closed"));
        }
        serde_json::from_str(&line).map_err(std::io::Error::other)
    }

    fn try_call(&mut self, f: &str, key: &str, value: Value) -> std::io::Result<Value> {
        let id = self.next;
        self.next += 1;
        let req = json!({"id": id, "f": f, "key": key, "value": value});
        let mut line = serde_json::to_vec(&req).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.wr.write_all(&line)?;
        let r = self.try_recv()?;
        assert_eq!(r["id"], json!(id), "reply to the wrong request: {r}");
        Ok(r)
    }

    /// One request, its reply (panics after 5 s without one).
    pub fn call(&mut self, f: &str, key: &str, value: Value) -> Value {
        self.try_call(f, key, value)
            .expect("a reply within 5 s (the node must never hang a request)")
    }
}

/// The type of a reply: "ok", "fail" or "info".
pub fn ty(r: &Value) -> &str {
    r["type"].as_str().unwrap_or("?")
}
