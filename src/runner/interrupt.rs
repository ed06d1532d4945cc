//! How a run reacts to SIGINT, SIGTERM and SIGHUP, from its first
//! instruction to its last.
//!
//! The signals are blocked in every thread before anything is created (so
//! none can kill the run half-way and leave the lab), and one thread waits
//! for them and raises the run's [`Level`]:
//!
//! - the first signal ends the main phase and cancels the operations in
//!   flight (recorded `info`); set-up stops where it is; the run still
//!   heals, reads, tears down and checks;
//! - a second signal skips to the teardown (no quiet period, no more final
//!   reads);
//! - any signal once the lab is gone (during the check) ends the process at
//!   once with exit code 3 (unknown): nothing is left to undo, and the
//!   history is complete on disk for `faultline check`.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use nix::sys::signal::Signal;
use tokio::sync::watch;

use crate::lab::signals;

/// How far a run has been asked to wind down (ordered).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Carry on.
    Run,
    /// The main phase is over (time limit): no new operations.
    Stop,
    /// Interrupted: no new operations, cancel those in flight.
    Cancel,
    /// Interrupted twice: straight to the teardown.
    Teardown,
}

/// The run's wind-down level and what the signals did to it.
pub struct Interrupt {
    level: watch::Sender<Level>,
    signals: AtomicU32,
    lab_gone: AtomicBool,
}

impl Interrupt {
    /// An interrupt that no signal reaches (for tests and library use).
    pub fn new() -> Arc<Interrupt> {
        Arc::new(Interrupt {
            level: watch::Sender::new(Level::Run),
            signals: AtomicU32::new(0),
            lab_gone: AtomicBool::new(false),
        })
    }

    /// Blocks the terminating signals in this thread (and every thread it
    /// starts later) and starts the thread that takes them. Call before
    /// creating anything, from the main thread; later calls return the same
    /// interrupt.
    pub fn install() -> Arc<Interrupt> {
        static INSTALLED: OnceLock<Arc<Interrupt>> = OnceLock::new();
        INSTALLED.get_or_init(Interrupt::start).clone()
    }

    fn start() -> Arc<Interrupt> {
        let it = Interrupt::new();
        let set = signals::block(&signals::TERMINATING);
        let me = it.clone();
        let spawned = std::thread::Builder::new()
            .name("faultline-signals".into())
            .spawn(move || {
                loop {
                    if let Some(sig) = signals::wait(&set) {
                        me.on_signal(sig);
                    }
                }
            });
        if let Err(e) = spawned {
            eprintln!("faultline: warning: no signal handling ({e})");
        }
        it
    }

    fn on_signal(&self, sig: Signal) {
        let n = self.signals.fetch_add(1, Ordering::SeqCst) + 1;
        if self.lab_gone.load(Ordering::SeqCst) {
            eprintln!(
                "faultline: {sig}: verdict unknown: the check was interrupted; the lab is gone and the history is complete (check it with `faultline check`)"
            );
            std::process::exit(3);
        }
        let (to, what) = if n == 1 {
            (
                Level::Cancel,
                "interrupted: ending the run: operations in flight are cancelled; healing, final reads, teardown and checks follow (send it again to skip to the teardown)",
            )
        } else {
            (
                Level::Teardown,
                "interrupted again: skipping to the teardown",
            )
        };
        eprintln!("faultline: {sig}: {what}");
        self.raise(to);
    }

    /// Raises the level to at least `to`.
    pub fn raise(&self, to: Level) {
        self.level.send_if_modified(|l| {
            if *l < to {
                *l = to;
                true
            } else {
                false
            }
        });
    }

    /// The current level.
    pub fn level(&self) -> Level {
        *self.level.borrow()
    }

    /// True once at least one signal arrived.
    pub fn interrupted(&self) -> bool {
        self.signals.load(Ordering::SeqCst) > 0
    }

    /// Resolves once the level is at least `at`.
    pub async fn reached(&self, at: Level) {
        let mut rx = self.level.subscribe();
        let _ = rx.wait_for(|l| *l >= at).await;
    }

    /// From now on a signal ends the process at once (the lab is gone).
    pub fn lab_gone(&self) {
        self.lab_gone.store(true, Ordering::SeqCst);
    }
}
