//! Named network namespaces, made the way `ip netns add` makes them (and
//! compatible with it): a file `/run/netns/<name>` on which the namespace is
//! bind-mounted, in a directory that is a shared mount point so that other
//! mount namespaces see new namespaces too.

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

use super::sys::NETNS_DIR;
use super::{LabError, Result};

fn path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

fn mount_err(what: String) -> impl FnOnce(nix::Error) -> LabError {
    move |e| LabError::io(what, e.into())
}

/// Creates `/run/netns` as a shared mount point, once (as iproute2 does):
/// namespace files bind-mounted under it then propagate to every mount
/// namespace that shares it.
pub fn prepare_dir() -> Result<()> {
    std::fs::create_dir_all(NETNS_DIR)
        .map_err(|e| LabError::io(format!("creating {NETNS_DIR}"), e))?;
    let shared = MsFlags::MS_SHARED | MsFlags::MS_REC;
    match nix::mount::mount(None::<&str>, NETNS_DIR, None::<&str>, shared, None::<&str>) {
        Ok(()) => Ok(()),
        // Not a mount point yet: bind it onto itself, then share it.
        Err(nix::Error::EINVAL) => {
            nix::mount::mount(
                Some(NETNS_DIR),
                NETNS_DIR,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(mount_err(format!("bind-mounting {NETNS_DIR}")))?;
            nix::mount::mount(None::<&str>, NETNS_DIR, None::<&str>, shared, None::<&str>)
                .map_err(mount_err(format!("sharing {NETNS_DIR}")))
        }
        Err(e) => Err(mount_err(format!("sharing {NETNS_DIR}"))(e)),
    }
}

/// Creates the network namespace `name` and returns a handle on it.
pub fn add(name: &str) -> Result<File> {
    let p = path(name);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&p)
        .map_err(|e| LabError::io(format!("creating {}", p.display()), e))?;
    let target = p.clone();
    // A fresh thread enters a new namespace and pins it with a bind mount;
    // the calling thread stays where it is.
    let pinned = std::thread::spawn(move || -> Result<()> {
        nix::sched::unshare(CloneFlags::CLONE_NEWNET)
            .map_err(mount_err("creating a network namespace".into()))?;
        nix::mount::mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(mount_err(format!("bind-mounting {}", target.display())))
    })
    .join()
    .unwrap_or_else(|_| {
        Err(LabError::io(
            "creating a network namespace",
            std::io::Error::other("panicked"),
        ))
    });
    if let Err(e) = pinned {
        let _ = std::fs::remove_file(&p);
        return Err(e);
    }
    File::open(&p).map_err(|e| LabError::io(format!("opening {}", p.display()), e))
}

/// Removes the network namespace `name` (its file and bind mount). The
/// namespace itself goes when its last process and interface are gone.
/// Removing a namespace that does not exist is not an error.
pub fn del(name: &str) -> Result<()> {
    let p = path(name);
    if !p.exists() {
        return Ok(());
    }
    match nix::mount::umount2(&p, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
        Err(e) => return Err(mount_err(format!("unmounting {}", p.display()))(e)),
    }
    match std::fs::remove_file(&p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LabError::io(format!("removing {}", p.display()), e)),
    }
}
