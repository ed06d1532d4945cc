//! A lab's data directory (node logs, store data): `/var/lib/faultline/<lab>`
//! unless `--dir` says otherwise.
//!
//! A run's lab is scratch: its teardown removes the directory (the logs worth
//! keeping are copied into the run directory first). Such a directory is
//! marked when it is created ([`MARKER`], holding the lab's name), because
//! its state file can vanish while it stays: the state lives in `/run`, which
//! a reboot empties, and the data directory does not. `faultline clean` then
//! removes the marked directories that no state file records; it never
//! touches one without the marker (a `faultline lab up` directory, kept on
//! purpose, or anything not made by faultline).

use std::path::{Path, PathBuf};

use super::{LabError, Result, state};

/// Where labs keep their data by default.
pub const ROOT: &str = "/var/lib/faultline";

/// The file that marks a scratch data directory; it holds the lab's name.
pub const MARKER: &str = ".faultline-scratch";

/// The default data directory of lab `name`.
pub fn default_for(name: &str) -> PathBuf {
    Path::new(ROOT).join(name)
}

/// Marks `dir` (just created) as lab `name`'s scratch directory.
pub fn mark_scratch(dir: &Path, name: &str) -> Result<()> {
    let p = dir.join(MARKER);
    std::fs::write(&p, format!("{name}\n"))
        .map_err(|e| LabError::io(format!("writing {}", p.display()), e))
}

/// Whether `dir` is marked as lab `name`'s scratch directory: a real
/// directory (not a link) whose marker names exactly that lab.
fn is_scratch_of(dir: &Path, name: &str) -> bool {
    let is_dir = std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir());
    is_dir
        && std::fs::read_to_string(dir.join(MARKER)).is_ok_and(|s| s.trim_end_matches('\n') == name)
}

/// Removes the scratch directories under [`ROOT`] that no state file
/// records (each checked under the state lock: a lab records its state
/// before it creates its directory, and forgets it only after removing it).
/// Returns the directories removed, and the errors of those that could not
/// be.
pub fn remove_unrecorded_scratch() -> (Vec<PathBuf>, Vec<LabError>) {
    let (mut removed, mut errors) = (Vec::new(), Vec::new());
    let Ok(entries) = std::fs::read_dir(ROOT) else {
        return (removed, errors);
    };
    for e in entries.flatten() {
        let Some(name) = e.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let dir = e.path();
        if super::validate_name(&name).is_err() || !is_scratch_of(&dir, &name) {
            continue;
        }
        let lock = match state::lock() {
            Ok(l) => l,
            Err(err) => {
                errors.push(err);
                break;
            }
        };
        if !matches!(state::load(&name), Ok(None)) {
            continue;
        }
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => removed.push(dir),
            Err(err) => errors.push(LabError::io(format!("removing {}", dir.display()), err)),
        }
        drop(lock);
    }
    (removed, errors)
}
