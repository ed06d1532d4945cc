//! The optional capabilities of a store, as Jepsen's `Kill` and `Pause`
//! protocols: what the nemesis may do to a node's servers. A store offers
//! them through [`super::Store::kill`] and [`super::Store::pause`];
//! [`ProcessTree`] is the usual way, on the whole process tree of each
//! server (PostgreSQL forks a process per connection).

use crate::lab::Lab;
use crate::lab::proc::Server;

use super::StoreError;

/// Killing a server and starting it again on its data.
pub trait Kill: Send + Sync {
    /// Kills `server` (it must not run any more when this returns) and
    /// records it as killed.
    fn kill(&self, lab: &Lab, server: &mut Server) -> Result<(), StoreError>;

    /// Starts a killed `server` again with the same command and records it
    /// as running (nothing if it runs).
    fn restart(&self, lab: &Lab, server: &mut Server) -> Result<(), StoreError>;
}

/// Pausing a server and resuming it.
pub trait Pause: Send + Sync {
    /// Pauses `server`.
    fn pause(&self, server: &mut Server);

    /// Resumes `server` (nothing if it is not paused).
    fn resume(&self, server: &mut Server);
}

/// SIGKILL, SIGSTOP and SIGCONT to a server's whole process tree.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessTree;

impl Kill for ProcessTree {
    fn kill(&self, lab: &Lab, server: &mut Server) -> Result<(), StoreError> {
        server.kill();
        server.record(lab, "killed")?;
        Ok(())
    }

    fn restart(&self, lab: &Lab, server: &mut Server) -> Result<(), StoreError> {
        server.restart(lab)?;
        server.record(lab, "running")?;
        Ok(())
    }
}

impl Pause for ProcessTree {
    fn pause(&self, server: &mut Server) {
        server.pause();
    }

    fn resume(&self, server: &mut Server) {
        server.resume();
    }
}
