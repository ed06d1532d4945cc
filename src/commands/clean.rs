//! `faultline clean`: remove everything earlier faultline runs left behind.

use crate::Exit;
use crate::cli::fail;
use crate::lab::{self, LabError, state, sys};

/// Arguments of `faultline clean`.
#[derive(Debug, clap::Args)]
pub struct CleanArgs {
    /// Only this lab [default: every lab, plus anything named like
    /// faultline's that no state file records].
    #[arg(long)]
    pub name: Option<String>,
}

/// Runs `faultline clean`.
pub fn run(args: CleanArgs) -> Exit {
    match clean(args.name.as_deref()) {
        Ok(()) => Exit::Valid,
        Err(e) => fail(e),
    }
}

/// Tears down every recorded lab (or one), stopping its servers by PID
/// after checking their start time, then removes unrecorded leftovers named
/// like faultline's (`fl-<lab>-n<i>`, `fl-<lab>-br`, `FL-<lab>-FWD`).
pub fn clean(name: Option<&str>) -> Result<(), LabError> {
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
    for l in labs.iter().filter(|l| name.is_none_or(|n| n == l.name)) {
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
        let (remaining, _) = state::list();
        for what in lab::net::remove_unrecorded(&remaining) {
            removed += 1;
            println!("removed unrecorded {what}");
        }
    }
    if !failures.is_empty() {
        return Err(LabError::Incomplete {
            lab: name.unwrap_or("*").to_string(),
            what: failures.join("; "),
        });
    }
    if removed == 0 {
        println!("nothing to clean");
    }
    Ok(())
}
