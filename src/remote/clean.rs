//! `faultline clean --hosts FILE`: undo what crashed remote runs left on
//! the hosts. For every recorded run (see [`super::state`]) whose process
//! is gone and that touched one of the hosts: resume the store's processes
//! it paused and start those it killed; then remove faultline's chains from
//! every host given (recorded or not: they are faultline's by name).

use futures_util::future::join_all;

use super::host::{self, Host};
use super::hosts::{HostSpec, SshOptions};
use super::state::{self, RemoteState};
use super::{RemoteError, Result, firewall, processes};

/// The SSH options to use: the flags', else those recorded by a run that
/// used one of the hosts, else ssh's defaults.
fn ssh_options(
    hosts: &[HostSpec],
    given: Option<SshOptions>,
    states: &[RemoteState],
) -> SshOptions {
    given.unwrap_or_else(|| {
        states
            .iter()
            .find(|s| {
                s.hosts
                    .hosts
                    .iter()
                    .any(|h| hosts.iter().any(|g| g.destination == h.destination))
            })
            .map(|s| s.hosts.ssh.clone())
            .unwrap_or_default()
    })
}

/// Removes `<dir>/<node>` from `host`, and `dir` once it is empty.
async fn remove_node_dir(host: &Host, dir: &str, node: &str) -> Result<()> {
    let d = super::sh_quote(&format!("{dir}/{node}"));
    host.run(
        "removing the store's directory",
        &format!(
            "rm -rf {d}; rmdir {} 2>/dev/null || true",
            super::sh_quote(dir)
        ),
    )
    .await
    .map(drop)
}

/// Undoes, on `host`, what the runs in `runs` did to it; the lines saying
/// what was done.
async fn undo_runs(host: &Host, runs: &[RemoteState]) -> Result<Vec<String>> {
    let mut done = Vec::new();
    for run in runs {
        let Some(recorded) = run
            .hosts
            .hosts
            .iter()
            .find(|h| h.address == host.spec.address)
        else {
            continue;
        };
        let touched = run.touched.get(&recorded.name).cloned().unwrap_or_default();
        if touched.clock {
            let shared = crate::lab::fake_clock::shared_name(&run.id);
            let gone = host
                .run(
                    "removing libfaketime's shared objects",
                    &super::clock::remove_script(&shared),
                )
                .await?;
            if !gone.trim().is_empty() {
                done.push(format!(
                    "{}: removed libfaketime's shared objects of {}",
                    host.spec.destination, run.id
                ));
            }
        }
        if !touched.qdiscs.is_empty() {
            let gone = host
                .run(
                    "removing faultline's netem qdiscs",
                    &super::netem::remove_script(&touched.qdiscs),
                )
                .await?;
            for dev in gone.split_whitespace() {
                done.push(format!(
                    "{}: removed the netem delay on {dev} of {}",
                    host.spec.destination, run.id
                ));
            }
        }
        let Some(spec) = &run.processes else {
            // No server was started; a directory of faultline's may have
            // been made for one (a config written first).
            if let Some(dir) = &run.store_dir {
                remove_node_dir(host, dir, &recorded.name).await?;
            }
            continue;
        };
        // The recorded host (its node name) expands {node} as the run did.
        let as_run = Host::with_spec(host, recorded);
        if touched.paused {
            processes::signal(&as_run, spec, "CONT").await?;
            done.push(format!(
                "{}: resumed the store paused by {}",
                host.spec.destination, run.id
            ));
        }
        if touched.started {
            // faultline's own server: stopped, its directory removed.
            processes::stop(&as_run, spec).await?;
            if let Some(dir) = &run.store_dir {
                remove_node_dir(host, dir, &recorded.name).await?;
            }
            done.push(format!(
                "{}: stopped the store started by {}",
                host.spec.destination, run.id
            ));
        } else if touched.killed {
            processes::start(&as_run, spec).await?;
            done.push(format!(
                "{}: started the store killed by {}",
                host.spec.destination, run.id
            ));
        }
    }
    let chains = firewall::remove(host).await?;
    if !chains.is_empty() {
        done.push(format!(
            "{}: removed iptables chains {}",
            host.spec.destination,
            chains.join(", ")
        ));
    }
    Ok(done)
}

/// Cleans `hosts` (see the module). Runs whose process is alive are left
/// alone unless `force`. Returns what was done, line by line; an error
/// names the first host that could not be cleaned (the others still are).
pub async fn clean(
    hosts: &[HostSpec],
    ssh: Option<SshOptions>,
    force: bool,
) -> Result<Vec<String>> {
    let (states, errs) = state::list();
    let mut lines: Vec<String> = errs
        .iter()
        .map(|e| format!("warning: {e} (left in place)"))
        .collect();
    let ours = |s: &RemoteState| {
        s.hosts
            .hosts
            .iter()
            .any(|h| hosts.iter().any(|g| g.address == h.address))
    };
    let mut runs = Vec::new();
    for s in states.iter().filter(|s| ours(s)) {
        if s.owner_alive() && !force {
            return Err(RemoteError::Fault(format!(
                "remote run {} (pid {}) is still running on these hosts; stop it first, or use --force",
                s.id, s.owner.pid
            )));
        }
        runs.push(s.clone());
    }
    let ssh = ssh_options(hosts, ssh, &states);
    host::check_options(&ssh)?;
    let control_dir = std::env::temp_dir();
    let results = join_all(hosts.iter().map(|h| {
        let ssh = &ssh;
        let control_dir = &control_dir;
        let runs = &runs;
        async move {
            let host = Host::connect(h, ssh, control_dir).await?;
            let r = undo_runs(&host, runs).await;
            host.close().await;
            r
        }
    }))
    .await;
    let mut first = None;
    for r in results {
        match r {
            Ok(l) => lines.extend(l),
            Err(e) => {
                lines.push(format!("error: {e}"));
                first.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first {
        return Err(e);
    }
    // Every host of a run cleaned: its record goes; otherwise what was
    // undone is forgotten and the rest kept.
    for mut run in runs {
        let cleaned = |h: &HostSpec| hosts.iter().any(|g| g.address == h.address);
        if run.hosts.hosts.iter().all(cleaned) {
            run.remove()?;
            lines.push(format!("removed the record of {}", run.id));
        } else {
            for h in run.hosts.hosts.iter().filter(|h| cleaned(h)) {
                run.touched.remove(&h.name);
            }
            run.save()?;
        }
    }
    Ok(lines)
}
