//! Load generator for the built-in store: starts a cluster of `faultline
//! node` processes on 127.0.0.1, drives it with concurrent clients (each
//! bound to one node, one request at a time, as the runner does) and prints
//! the throughput and latencies.
//!
//! ```text
//! cargo build --release
//! cargo run --release --example node_bench -- --mode primary
//! cargo run --release --example node_bench -- --mode async --clients 50 --secs 10
//! cargo run --release --example node_bench -- --mode quorum --r 1 --w 1
//! ```
//!
//! Flags: `--mode M` (primary), `--nodes N` (3), `--clients C` (50),
//! `--secs S` (5), `--keys K` (100), `--reads P` (fraction of reads, 0.5;
//! the rest are writes), `--r R`, `--w W` (quorum mode), `--threads T`
//! (node runtime threads, 1), `--bin PATH` (the faultline binary; by
//! default the one next to this example's directory).
//!
//! Self-checks: `--cas P` makes a fraction P of the operations `cas`;
//! `--history FILE` records a Jepsen-style history (`faultline check FILE`
//! checks it); `--pause-ms N` SIGSTOPs a random node for N/2 ms every N ms,
//! `--kill-ms N` SIGKILLs and restarts a random node every N ms.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use faultline::node::{NodeClient, ReplyType};
use serde_json::{Value, json};

struct Opts {
    mode: String,
    nodes: usize,
    clients: usize,
    secs: u64,
    keys: u64,
    reads: f64,
    r: String,
    w: String,
    threads: String,
    bin: PathBuf,
    cas: f64,
    history: Option<PathBuf>,
    pause_ms: u64,
    kill_ms: u64,
}

fn opts() -> Result<Opts, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    // target/<profile>/examples/node_bench -> target/<profile>/faultline
    let default_bin = exe
        .parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("faultline"))
        .unwrap_or_else(|| PathBuf::from("faultline"));
    let mut o = Opts {
        mode: "primary".into(),
        nodes: 3,
        clients: 50,
        secs: 5,
        keys: 100,
        reads: 0.5,
        r: "quorum".into(),
        w: "quorum".into(),
        threads: "1".into(),
        bin: default_bin,
        cas: 0.0,
        history: None,
        pause_ms: 0,
        kill_ms: 0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let v = args
            .next()
            .ok_or_else(|| format!("{flag}: missing value"))?;
        let num = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: {v:?} is not a number"))
        };
        match flag.as_str() {
            "--mode" => o.mode = v,
            "--nodes" => o.nodes = num(&v)? as usize,
            "--clients" => o.clients = num(&v)? as usize,
            "--secs" => o.secs = num(&v)?,
            "--keys" => o.keys = num(&v)?.max(1),
            "--reads" => {
                o.reads = v
                    .parse()
                    .ok()
                    .filter(|p| (0.0..=1.0).contains(p))
                    .ok_or_else(|| format!("--reads: {v:?} is not in [0, 1]"))?
            }
            "--r" => o.r = v,
            "--w" => o.w = v,
            "--threads" => o.threads = v,
            "--bin" => o.bin = PathBuf::from(v),
            "--cas" => {
                o.cas = v
                    .parse()
                    .ok()
                    .filter(|p| (0.0..=1.0).contains(p))
                    .ok_or_else(|| format!("--cas: {v:?} is not in [0, 1]"))?
            }
            "--history" => o.history = Some(PathBuf::from(v)),
            "--pause-ms" => o.pause_ms = num(&v)?,
            "--kill-ms" => o.kill_ms = num(&v)?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if !o.bin.exists() {
        return Err(format!(
            "{} not found: run `cargo build --release` first or pass --bin",
            o.bin.display()
        ));
    }
    Ok(o)
}

/// The cluster's processes, killed on drop.
struct Nodes {
    children: Vec<Child>,
    addrs: Vec<SocketAddr>,
    args: Vec<String>,
    bin: PathBuf,
}

impl Nodes {
    fn start(o: &Opts) -> Nodes {
        let ls: Vec<TcpListener> = (0..o.nodes)
            .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
            .collect();
        let addrs = ls.iter().map(|l| l.local_addr().expect("addr")).collect();
        drop(ls);
        let mut n = Nodes {
            children: Vec::new(),
            addrs,
            args: ["--mode", &o.mode, "--r", &o.r, "--w", &o.w]
                .into_iter()
                .chain(["--threads", &o.threads])
                .map(String::from)
                .collect(),
            bin: o.bin.clone(),
        };
        for i in 0..o.nodes {
            let c = n.spawn(i);
            n.children.push(c);
        }
        n
    }

    fn spawn(&self, i: usize) -> Child {
        let mut cmd = Command::new(&self.bin);
        cmd.args(["node", "--name", &format!("n{}", i + 1)])
            .args(["--listen", &self.addrs[i].to_string()])
            .args(&self.args);
        for (j, a) in self.addrs.iter().enumerate() {
            if j != i {
                cmd.args(["--peer", &format!("n{}={a}", j + 1)]);
            }
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd.spawn().expect("spawn faultline node")
    }

    fn pid(&self, i: usize) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.children[i].id() as i32)
    }

    fn restart(&mut self, i: usize) {
        let _ = self.children[i].kill();
        let _ = self.children[i].wait();
        self.children[i] = self.spawn(i);
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGCONT,
            );
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One history event: time (ns), then the JSON line without its index.
type Event = (u64, Value);

#[derive(Default)]
struct Tally {
    ok: u64,
    fail: u64,
    info: u64,
    err: u64,
    lat_us: Vec<u32>,
    events: Vec<Event>,
}

struct Load {
    keys: u64,
    reads: f64,
    cas: f64,
    clients: u64,
    record: bool,
    t0: Instant,
}

async fn client(addr: SocketAddr, me: u64, load: Arc<Load>, stop: Arc<AtomicBool>) -> Tally {
    let t = Duration::from_secs(1);
    let mut x = me.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut tally = Tally::default();
    let mut c = loop {
        match NodeClient::connect(addr, t).await {
            Ok(c) => break c,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let mut process = me - 1;
    let mut keybuf = String::new();
    let mut counter = 0u64;
    let mut last_written = Value::Null;
    while !stop.load(Ordering::Relaxed) {
        let k = next() % load.keys;
        keybuf.clear();
        use std::fmt::Write;
        let _ = write!(keybuf, "k{k}");
        let dice = (next() % 1_000_000) as f64 / 1_000_000.0;
        counter += 1;
        let fresh = json!(me * 1_000_000_000 + counter);
        let (f, value) = if dice < load.reads {
            ("read", Value::Null)
        } else if dice < load.reads + load.cas {
            ("cas", json!([last_written.clone(), fresh.clone()]))
        } else {
            ("write", fresh.clone())
        };
        let started = Instant::now();
        let inv = started.duration_since(load.t0).as_nanos() as u64;
        let r = c.call(f, &keybuf, value.clone(), t).await;
        let done = Instant::now();
        let us = done
            .duration_since(started)
            .as_micros()
            .min(u32::MAX as u128) as u32;
        let (kind, out) = match r {
            Ok(r) => match r.kind {
                ReplyType::Ok => {
                    tally.ok += 1;
                    tally.lat_us.push(us);
                    if f != "read" {
                        last_written = fresh;
                    }
                    ("ok", r.value)
                }
                ReplyType::Fail => {
                    tally.fail += 1;
                    ("fail", value.clone())
                }
                ReplyType::Info => {
                    tally.info += 1;
                    ("info", value.clone())
                }
            },
            Err(faultline::node::ClientError::Definite(_)) => {
                tally.err += 1;
                ("fail", value.clone())
            }
            Err(_) => {
                tally.err += 1;
                ("info", value.clone())
            }
        };
        if load.record {
            tally.events.push((
                inv,
                json!({"process": process, "type": "invoke", "f": f, "key": keybuf, "value": value}),
            ));
            let end = done.duration_since(load.t0).as_nanos() as u64;
            tally.events.push((
                end,
                json!({"process": process, "type": kind, "f": f, "key": keybuf, "value": out}),
            ));
        }
        if kind == "info" {
            process += load.clients;
        }
    }
    tally
}

fn main() {
    let o = match opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("node_bench: {e}");
            std::process::exit(2);
        }
    };
    let mut nodes = Nodes::start(&o);
    let addrs = nodes.addrs.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        // Wait until every node accepts a write (primary recovery, links).
        for a in &addrs {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(mut c) = NodeClient::connect(*a, Duration::from_secs(1)).await
                    && let Ok(r) = c
                        .call("write", "warmup", json!(0), Duration::from_secs(1))
                        .await
                    && r.kind == ReplyType::Ok
                {
                    break;
                }
                assert!(Instant::now() < deadline, "node {a} never became writable");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let load = Arc::new(Load {
            keys: o.keys,
            reads: o.reads,
            cas: o.cas,
            clients: o.clients as u64,
            record: o.history.is_some(),
            t0: started,
        });
        let tasks: Vec<_> = (0..o.clients)
            .map(|i| {
                tokio::spawn(client(
                    addrs[i % addrs.len()],
                    i as u64 + 1,
                    load.clone(),
                    stop.clone(),
                ))
            })
            .collect();
        let mut faults = 0;
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let end = started + Duration::from_secs(o.secs);
        let every = o.pause_ms.max(o.kill_ms);
        while every > 0 && Instant::now() + Duration::from_millis(every) < end {
            tokio::time::sleep(Duration::from_millis(every / 2)).await;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = (x % addrs.len() as u64) as usize;
            if o.kill_ms > 0 {
                nodes.restart(i);
            } else {
                let pid = nodes.pid(i);
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP);
                tokio::time::sleep(Duration::from_millis(every / 2)).await;
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT);
            }
            faults += 1;
            if o.kill_ms > 0 {
                tokio::time::sleep(Duration::from_millis(every / 2)).await;
            }
        }
        tokio::time::sleep(end.saturating_duration_since(Instant::now())).await;
        stop.store(true, Ordering::Relaxed);
        if faults > 0 {
            println!("faults injected: {faults}");
        }
        let mut all = Tally::default();
        for t in tasks {
            if let Ok(t) = t.await {
                all.ok += t.ok;
                all.fail += t.fail;
                all.info += t.info;
                all.err += t.err;
                all.lat_us.extend(t.lat_us);
                all.events.extend(t.events);
            }
        }
        let secs = started.elapsed().as_secs_f64();
        all.lat_us.sort_unstable();
        let pct = |p: f64| {
            all.lat_us
                .get(((all.lat_us.len() as f64 - 1.0) * p) as usize)
                .copied()
                .unwrap_or(0)
        };
        let quorum = if o.mode == "quorum" {
            format!(" r={} w={}", o.r, o.w)
        } else {
            String::new()
        };
        println!(
            "mode {}{quorum}: {} nodes, {} clients, {:.0}% reads, {} keys, {:.1} s",
            o.mode,
            o.nodes,
            o.clients,
            o.reads * 100.0,
            o.keys,
            secs
        );
        println!(
            "  {:.0} ok ops/s  (ok {}, fail {}, info {}, client errors {})",
            all.ok as f64 / secs,
            all.ok,
            all.fail,
            all.info,
            all.err
        );
        println!(
            "  latency of ok ops: p50 {} us, p99 {} us, max {} us",
            pct(0.5),
            pct(0.99),
            pct(1.0)
        );
        if let Some(path) = &o.history {
            all.events.sort_by_key(|e| e.0);
            let mut out = String::new();
            for (index, (time, mut e)) in all.events.into_iter().enumerate() {
                e["index"] = json!(index);
                e["time"] = json!(time);
                out.push_str(&e.to_string());
                out.push('\n');
            }
            std::fs::write(path, out).expect("writing the history");
            println!("  history: {}", path.display());
        }
    });
}
