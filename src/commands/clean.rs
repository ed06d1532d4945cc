//! `faultline clean`: remove everything earlier faultline runs left behind.

use crate::Exit;
use crate::cli::fail;
use crate::commands::run_hosts::{FileHosts, HostArgs, hosts};
use crate::lab::{self, LabError, state, sys};

/// Arguments of `faultline clean`.
#[derive(Debug, clap::Args)]
pub struct CleanArgs {
    /// Only this lab [default: every lab, plus anything named like
    /// faultline's that no state file records].
    #[arg(long)]
    pub name: Option<String>,
    /// Also tear down labs that are in use (their owner, or the holders of
    /// their servers, are alive). Without it, and without `--name`, such
    /// labs are left alone.
    #[arg(long)]
    pub force: bool,
    /// Clean remote hosts instead (docs/remote.md): remove faultline's
    /// iptables chains, resume what a crashed run paused and start what it
    /// killed.
    #[command(flatten)]
    pub remote: HostArgs,
}

/// Runs `faultline clean`.
pub fn run(args: CleanArgs) -> Exit {
    if args.remote.hosts.is_some() || args.remote.ssh.is_some() {
        return clean_hosts(&args);
    }
    match clean(args.name.as_deref(), args.force) {
        Ok(()) => Exit::Valid,
        Err(e) => fail(e),
    }
}

/// `faultline clean --hosts FILE` (or `--ssh HOSTS`).
fn clean_hosts(args: &CleanArgs) -> Exit {
    if args.name.is_some() {
        return fail("--name: names a lab; it does not go with --hosts or --ssh");
    }
    let spec = match hosts(&args.remote, FileHosts::default()) {
        Ok(Some(h)) => h,
        Ok(None) => return fail("--hosts FILE or --ssh HOSTS: no hosts given"),
        Err(e) => return fail(e),
    };
    let given = (args.remote.ssh_identity.is_some() || args.remote.ssh_known_hosts.is_some())
        .then(|| spec.ssh.clone());
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(format!("starting the async runtime: {e}")),
    };
    match runtime.block_on(crate::remote::clean::clean(&spec.hosts, given, args.force)) {
        Ok(lines) => {
            for l in &lines {
                println!("{l}");
            }
            if lines.is_empty() {
                println!("nothing to clean on {} hosts", spec.hosts.len());
            }
            Exit::Valid
        }
        Err(e) => fail(e),
    }
}

/// Tears down every recorded lab (or one), stopping its servers by PID
/// after checking their start time, then removes unrecorded leftovers named
/// like faultline's (`fl-<lab>-n<i>`, `fl-<lab>-br`, `FL-<lab>-FWD`) and
/// runs' scratch data directories that no state file records (see
/// [`lab::data_dir`]).
///
/// Without `name` and without `force`, a lab still in use (see
/// [`in_use`]) is left alone and said so: tearing down a live run's lab
/// under its feet is never what a sweep after a crash means.
pub fn clean(name: Option<&str>, force: bool) -> Result<(), LabError> {
    sys::preflight()?;
    if let Some(n) = name {
        lab::validate_name(n)?;
    }
    let (labs, errs) = state::list();
    for e in errs {
        // An unreadable state file cannot be followed: report it, remove it,
        // and rely on the name-based sweep below.
        eprintln!("faultline: warning: {e}; removing it");
        if let LabError::State { path, .. } = &e {
            let _ = std::fs::remove_file(path);
        }
    }
    let mut removed = 0;
    let mut failures = Vec::new();
    let mut kept = 0;
    for l in labs.iter().filter(|l| name.is_none_or(|n| n == l.name)) {
        if name.is_none()
            && !force
            && let Some(user) = in_use(l)
        {
            kept += 1;
            println!(
                "left lab {} alone: {user} (use `faultline clean --name {}` or `--force` to remove it)",
                l.name, l.name
            );
            continue;
        }
        let why = l
            .stale_reason()
            .unwrap_or_else(|| "lab was still up".to_string());
        match lab::teardown(&l.name) {
            Ok(()) => {
                removed += 1;
                println!(
                    "removed lab {} ({} nodes, {} servers): {why}",
                    l.name,
                    l.nodes.len(),
                    l.servers.len()
                );
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    if name.is_none() {
        // Unrecorded leftovers only: the labs left alone keep their state
        // files, so their namespaces, links and chains count as recorded.
        let (remaining, _) = state::list();
        for what in lab::net::remove_unrecorded(&remaining) {
            removed += 1;
            println!("removed unrecorded {what}");
        }
        let (dirs, errs) = lab::data_dir::remove_unrecorded_scratch();
        for d in dirs {
            removed += 1;
            println!("removed unrecorded data directory {}", d.display());
        }
        failures.extend(errs.iter().map(ToString::to_string));
    }
    if !failures.is_empty() {
        return Err(LabError::Incomplete {
            lab: name.unwrap_or("*").to_string(),
            what: failures.join("; "),
        });
    }
    if removed == 0 && kept == 0 {
        println!("nothing to clean");
    }
    Ok(())
}

/// Who is still using a lab, if anyone: its owner process (a run, a
/// foreground lab) alive, or, for a lab made by `faultline lab up`, a lab
/// that is complete and whose server holders are all alive. `None` for a
/// leftover of a crash.
pub fn in_use(l: &lab::LabState) -> Option<String> {
    if l.stale_reason().is_some() {
        return None;
    }
    match l.owner {
        Some(o) => Some(format!("its owner, pid {}, is alive", o.pid)),
        None if l.complete => Some("it was made by `faultline lab up` and is up".into()),
        None => Some(format!("pid {} is creating it", l.creator.pid)),
    }
}
