//! Writing a command's output without panicking: `println!` panics when
//! standard output is a closed pipe (`faultline check f | head -c1`) or a
//! full disk (`> /dev/full`).
//!
//! [`outln!`](crate::outln) writes a line to standard output: when the
//! reader has gone (broken pipe), further output is dropped quietly and the
//! command goes on, so that its exit code is still its verdict; any other
//! write error is remembered, further output dropped, and [`finish`] turns
//! the exit code into [`Exit::Error`] with a one-line message.
//! [`errln!`](crate::errln) writes a line to standard error; a failure
//! there cannot be reported, but it also makes the exit code 2.

use std::io::{ErrorKind, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::Exit;

/// Standard output accepts writes.
const OPEN: u8 = 0;
/// The reader closed the pipe: output is dropped, quietly.
const CLOSED: u8 = 1;
/// A write failed: output is dropped and the exit code becomes 2.
const FAILED: u8 = 2;

static STDOUT: AtomicU8 = AtomicU8::new(OPEN);
static STDERR: AtomicU8 = AtomicU8::new(OPEN);
static FAILURE: Mutex<Option<String>> = Mutex::new(None);

fn record(state: &AtomicU8, what: &str, e: &std::io::Error) {
    if e.kind() == ErrorKind::BrokenPipe {
        state.store(CLOSED, Ordering::Relaxed);
        return;
    }
    state.store(FAILED, Ordering::Relaxed);
    if let Ok(mut f) = FAILURE.lock() {
        f.get_or_insert_with(|| format!("writing to standard {what}: {e}"));
    }
}

fn write_line(state: &AtomicU8, mut w: impl Write, what: &str, args: std::fmt::Arguments<'_>) {
    if state.load(Ordering::Relaxed) != OPEN {
        return;
    }
    if let Err(e) = w.write_fmt(args).and_then(|()| w.write_all(b"\n")) {
        record(state, what, &e);
    }
}

/// Writes `args` and a newline to standard output (see the module
/// documentation for what happens on errors).
pub fn out_line(args: std::fmt::Arguments<'_>) {
    write_line(&STDOUT, std::io::stdout().lock(), "output", args);
}

/// Writes `args` and a newline to standard error; a failure makes the exit
/// code 2.
pub fn err_line(args: std::fmt::Arguments<'_>) {
    write_line(&STDERR, std::io::stderr().lock(), "error", args);
}

/// Flushes standard output and gives the exit code: `code`, or
/// [`Exit::Error`] (with a message on standard error when it still works)
/// after a write error other than a closed pipe.
pub fn finish(code: Exit) -> Exit {
    if STDOUT.load(Ordering::Relaxed) == OPEN {
        if let Err(e) = std::io::stdout().lock().flush() {
            record(&STDOUT, "output", &e);
        }
    }
    let failed =
        STDOUT.load(Ordering::Relaxed) == FAILED || STDERR.load(Ordering::Relaxed) == FAILED;
    if !failed {
        return code;
    }
    let msg = FAILURE.lock().ok().and_then(|f| f.clone());
    if let Some(msg) = msg {
        err_line(format_args!("faultline: error: {msg}"));
    }
    Exit::Error
}

/// `println!` that never panics: see [`out_line`].
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::output::out_line(format_args!($($arg)*))
    };
}

/// `eprintln!` that never panics: see [`err_line`].
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::cli::output::err_line(format_args!($($arg)*))
    };
}
