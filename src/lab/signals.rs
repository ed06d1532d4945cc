//! Signals and panics for long-running faultline processes (a foreground
//! lab, a server holder, a delay holder): block the termination signals
//! before creating anything, wait for them synchronously, and clean up on a
//! panic too.

use std::sync::Mutex;

use nix::sys::signal::{SigSet, Signal};

/// The signals that end a faultline process cleanly.
pub const TERMINATING: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

/// Blocks `signals` in the calling thread (and threads it spawns later), so
/// they stay pending until [`wait`] takes them. Call before spawning threads.
/// Child processes start with an empty mask (the standard library resets it).
pub fn block(signals: &[Signal]) -> SigSet {
    let mut set = SigSet::empty();
    for s in signals {
        set.add(*s);
    }
    // Blocking can only fail for invalid arguments.
    let _ = set.thread_block();
    set
}

/// Waits for one of the blocked signals in `set`.
pub fn wait(set: &SigSet) -> Option<Signal> {
    set.wait().ok()
}

/// True if one of the terminating signals arrived while blocked.
pub fn termination_pending() -> bool {
    let mut pending = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigpending fills the set it is given.
    let rc = unsafe { libc::sigpending(pending.as_mut_ptr()) };
    if rc != 0 {
        return false;
    }
    // SAFETY: initialised by the successful call above.
    let pending = unsafe { pending.assume_init() };
    TERMINATING
        .iter()
        // SAFETY: sigismember reads the initialised set.
        .any(|s| unsafe { libc::sigismember(&pending, *s as libc::c_int) } == 1)
}

type Cleanup = Box<dyn Fn() + Send + Sync>;

static CLEANUP: Mutex<Option<Cleanup>> = Mutex::new(None);

/// Runs `f` when this process panics (after printing the panic as usual),
/// replacing any earlier cleanup.
pub fn on_panic(f: impl Fn() + Send + Sync + 'static) {
    if let Ok(mut c) = CLEANUP.lock() {
        *c = Some(Box::new(f));
    }
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            default(info);
            if let Ok(c) = CLEANUP.try_lock()
                && let Some(f) = c.as_ref()
            {
                eprintln!("faultline: cleaning up after the panic");
                f();
            }
        }));
    });
}

/// Drops the panic cleanup.
pub fn clear_on_panic() {
    if let Ok(mut c) = CLEANUP.lock() {
        *c = None;
    }
}
