//! The holder behind `faultline lab run`: a process that keeps one server
//! as its child in a node (subreaper, so orphaned grandchildren come back to
//! it), records it in the lab state file, restarts it when the nemesis asks
//! (SIGUSR1 after a kill), and stops it on SIGINT, SIGTERM or SIGHUP.

use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;

use super::proc::{ProcId, Server, ServerSpec, reap_children};
use super::state::{self, ServerState};
use super::{Lab, LabError, signals, sys};

/// On a panic: stop the server `pid` and drop its entry from the lab state
/// file.
fn stop_on_panic(lab: &str, node: &str, service: &str, pid: Option<ProcId>) {
    let (lab, node, service) = (lab.to_string(), node.to_string(), service.to_string());
    signals::on_panic(move || {
        if let Some(p) = pid {
            super::proc::stop_tree(&p, Duration::from_secs(2));
        }
        let _ = state::update(&lab, |s| {
            s.servers
                .retain(|x| !(x.node == node && x.service == service))
        });
    });
}

fn service_name(service: Option<String>, cmd: &[String]) -> Result<String, LabError> {
    let s = service.unwrap_or_else(|| {
        cmd.first()
            .and_then(|p| std::path::Path::new(p).file_name())
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| "server".into())
    });
    let ok = !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(s)
    } else {
        Err(LabError::Service {
            node: "-".into(),
            service: s,
            reason: "service names are 1-32 letters, digits, '.', '_' or '-'".into(),
        })
    }
}

fn find_server(name: &str, node: &str, service: &str) -> Option<ServerState> {
    state::load(name)
        .ok()
        .flatten()?
        .servers
        .into_iter()
        .find(|s| s.node == node && s.service == service)
}

/// `faultline lab run NODE -- CMD` in the foreground: starts `cmd` as
/// `service` on `node` and holds it until SIGINT, SIGTERM or SIGHUP (then
/// stops it) or until it exits by itself (then exits with its status). A
/// server the nemesis killed is started again on SIGUSR1 (`nemesis start`).
pub fn hold(
    name: &str,
    service: Option<String>,
    node: &str,
    cmd: &[String],
    fake_clock: bool,
) -> Result<(), LabError> {
    let set = signals::block(&[
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGCHLD,
        Signal::SIGUSR1,
    ]);
    sys::preflight()?;
    let l = Lab::open(name)?;
    let n = l.node(node)?.clone();
    let service = service_name(service, cmd)?;
    let me = ProcId::current();
    let log = l.node_dir(&n)?.join(format!("{service}.log"));
    let svc_err = |reason: &str| LabError::Service {
        node: n.name.clone(),
        service: service.clone(),
        reason: reason.to_string(),
    };
    // Register first (so a crash right after the spawn is explained).
    let mut taken = false;
    state::update(name, |s| {
        if let Some(old) = s
            .servers
            .iter()
            .find(|x| x.node == n.name && x.service == service)
            && old.holder.is_some_and(|h| h.is_alive())
        {
            taken = true;
            return;
        }
        s.servers
            .retain(|x| !(x.node == n.name && x.service == service));
        s.servers.push(ServerState {
            node: n.name.clone(),
            service: service.clone(),
            argv: cmd.to_vec(),
            holder: Some(me),
            process: None,
            status: "starting".into(),
            log: log.clone(),
        });
    })?
    .ok_or_else(|| LabError::NoSuchLab(name.to_string()))?;
    if taken {
        return Err(svc_err(
            "already running (choose another --service name, or stop it first)",
        ));
    }
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let forget = |status: Option<&str>| {
        let _ = state::update(name, |s| match status {
            None => s
                .servers
                .retain(|x| !(x.node == n.name && x.service == service)),
            Some(st) => {
                for x in s.servers.iter_mut() {
                    if x.node == n.name && x.service == service {
                        x.status = st.to_string();
                    }
                }
            }
        });
    };
    let env = if fake_clock {
        match super::fake_clock::server_env(&l, &n) {
            Ok(env) => env,
            Err(e) => {
                forget(None);
                return Err(e);
            }
        }
    } else {
        Vec::new()
    };
    let spec = ServerSpec {
        node: n.name.clone(),
        service: service.clone(),
        argv: cmd.to_vec(),
        env,
    };
    let mut server = match Server::spawn(&l, spec) {
        Ok(s) => s,
        Err(e) => {
            forget(None);
            return Err(e);
        }
    };
    let record = |p: Option<ProcId>, status: &str| {
        let _ = state::update(name, |s| {
            for x in s.servers.iter_mut() {
                if x.node == n.name && x.service == service {
                    x.process = p;
                    x.status = status.to_string();
                }
            }
        });
    };
    record(server.process, "running");
    stop_on_panic(name, &n.name, &service, server.process);
    eprintln!(
        "faultline: {service} on {} started (pid {}), log {}",
        n.name,
        server.process.map_or(0, |p| p.pid),
        log.display()
    );
    loop {
        let Some(sig) = signals::wait(&set) else {
            continue;
        };
        match sig {
            Signal::SIGCHLD => {
                let server_pid = server.process.map(|p| p.pid);
                for (pid, st) in reap_children() {
                    if Some(pid) != server_pid {
                        continue; // an orphaned grandchild (we are a subreaper)
                    }
                    server.process = None;
                    let now = find_server(name, &n.name, &service);
                    if now.as_ref().is_some_and(|s| s.status == "killed") {
                        record(None, "killed");
                        eprintln!(
                            "faultline: {service} on {} killed by the nemesis; waiting for `nemesis start`",
                            n.name
                        );
                        continue;
                    }
                    forget(None);
                    signals::clear_on_panic();
                    let code = match st {
                        WaitStatus::Exited(_, c) => c,
                        WaitStatus::Signaled(_, s, _) => 128 + s as i32,
                        _ => 0,
                    };
                    eprintln!("faultline: {service} on {} exited ({code})", n.name);
                    std::process::exit(code);
                }
            }
            Signal::SIGUSR1 => {
                if server.process.is_none() {
                    match server.restart(&l) {
                        Ok(()) => {
                            record(server.process, "running");
                            stop_on_panic(name, &n.name, &service, server.process);
                            eprintln!(
                                "faultline: {service} on {} started again (pid {})",
                                n.name,
                                server.process.map_or(0, |p| p.pid)
                            );
                        }
                        Err(e) => {
                            forget(Some("exited"));
                            eprintln!("faultline: error: {e}");
                        }
                    }
                }
            }
            _ => {
                eprintln!("faultline: {sig}: stopping {service} on {}", n.name);
                server.stop(Duration::from_secs(5));
                // Orphaned grandchildren were reparented to us: reap them.
                let _ = reap_children();
                forget(None);
                signals::clear_on_panic();
                return Ok(());
            }
        }
    }
}

/// `faultline lab run --detach`: starts a holder (`faultline lab run` in
/// its own session, its output in `<service>.holder.log`) and returns once
/// the server runs, printing its pid and log.
pub fn start_detached(
    name: &str,
    service: Option<String>,
    node: &str,
    cmd: &[String],
    fake_clock: bool,
) -> Result<(), LabError> {
    sys::preflight()?;
    let l = Lab::open(name)?;
    let n = l.node(node)?.clone();
    let service = service_name(service, cmd)?;
    let exe =
        std::env::current_exe().map_err(|e| LabError::io("finding the faultline binary", e))?;
    let holder_log = l.node_dir(&n)?.join(format!("{service}.holder.log"));
    let logf = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&holder_log)
        .map_err(|e| LabError::io(format!("opening {}", holder_log.display()), e))?;
    let logf2 = logf
        .try_clone()
        .map_err(|e| LabError::io(format!("opening {}", holder_log.display()), e))?;
    let mut c = std::process::Command::new(exe);
    c.args(["lab", "run", "--name", name, "--service", &service, &n.name])
        .args(fake_clock.then_some("--fake-clock"))
        .arg("--")
        .args(cmd)
        .stdin(Stdio::null())
        .stdout(logf)
        .stderr(logf2);
    super::proc::in_new_session(&mut c);
    let mut child = c
        .spawn()
        .map_err(|e| LabError::io("starting the holder", e))?;
    let t0 = Instant::now();
    loop {
        if let Some(s) = find_server(name, &n.name, &service)
            && s.holder.map(|h| h.pid) == Some(child.id() as i32)
            && s.status == "running"
            && let Some(p) = s.process
        {
            println!(
                "{service} on {} running: pid {} (held by faultline pid {}), log {}",
                n.name,
                p.pid,
                child.id(),
                s.log.display()
            );
            return Ok(());
        }
        if let Ok(Some(st)) = child.try_wait() {
            let last = std::fs::read_to_string(&holder_log)
                .ok()
                .and_then(|t| t.lines().last().map(str::to_string))
                .unwrap_or_default();
            return Err(LabError::Service {
                node: n.name.clone(),
                service,
                reason: format!("holder exited ({st}): {last}"),
            });
        }
        if t0.elapsed() > Duration::from_secs(10) {
            return Err(LabError::Service {
                node: n.name.clone(),
                service,
                reason: format!("not running after 10 s; see {}", holder_log.display()),
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
