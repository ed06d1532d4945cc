//! Clock faults (Jepsen's clock nemesis), on servers started with a faked
//! clock ([`crate::lab::fake_clock`]: `faultline lab run --fake-clock`, or
//! a run with clock faults):
//!
//! - [`ClockMode::Bump`]: the node's clock jumps by ±N ms (added to the
//!   offset it has);
//! - [`ClockMode::Skew`]: the node's clock runs at a steady offset of N ms;
//! - [`ClockMode::Strobe`]: the node's clock flips between the real time
//!   and N ms off, every period ([`Strobe`], a thread);
//! - [`reset`]: back to the real time (every fault's end).
//!
//! Every change goes through [`set_offset`], one write of one node's
//! timestamp file.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{NemesisError, Result};
use crate::lab::fake_clock::{read_offset, timestamp_file, write_offset};
use crate::lab::{Lab, LabError, NodeState};

/// How a clock fault moves a node's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClockMode {
    /// Jump by `ms` (from the offset the node has).
    Bump,
    /// A steady offset of `ms`.
    Skew,
    /// Flip between 0 and `ms` every `period_ms`.
    Strobe,
}

impl ClockMode {
    /// The name used in flags and the history.
    pub fn as_str(self) -> &'static str {
        match self {
            ClockMode::Bump => "bump",
            ClockMode::Skew => "skew",
            ClockMode::Strobe => "strobe",
        }
    }
}

/// The largest offset a clock fault may set: a year, in milliseconds.
pub const MAX_OFFSET_MS: i64 = 365 * 86_400_000;

/// The longest strobe period, in milliseconds.
pub const MAX_PERIOD_MS: u64 = 60_000;

/// Checks a clock fault's numbers: a non-zero offset of at most a year; a
/// strobe period of 1 to 60000 ms, and none for bump and skew.
pub fn validate(mode: ClockMode, ms: i64, period_ms: u64) -> Result<()> {
    if ms == 0 || ms.unsigned_abs() > MAX_OFFSET_MS as u64 {
        return Err(NemesisError::Clock(format!(
            "clock {} of {ms} ms: use a non-zero offset of at most ±{MAX_OFFSET_MS} ms (a year)",
            mode.as_str()
        )));
    }
    match mode {
        ClockMode::Strobe if period_ms == 0 || period_ms > MAX_PERIOD_MS => {
            Err(NemesisError::Clock(format!(
                "clock strobe every {period_ms} ms: give a period of 1 to {MAX_PERIOD_MS} ms"
            )))
        }
        ClockMode::Bump | ClockMode::Skew if period_ms != 0 => Err(NemesisError::Clock(format!(
            "clock {}: a period is for strobe only",
            mode.as_str()
        ))),
        _ => Ok(()),
    }
}

/// The timestamp file of `node`; an error when its servers were not
/// started with a faked clock (the fault would do nothing).
pub fn node_file(lab: &Lab, node: &NodeState) -> Result<PathBuf> {
    let f = timestamp_file(&lab.node_dir(node)?);
    if !f.exists() {
        return Err(NemesisError::Clock(format!(
            "node {} has no faked clock: start its servers with `faultline lab run --fake-clock` (a run with clock faults does this itself)",
            node.name
        )));
    }
    Ok(f)
}

/// Sets `node`'s clock to the real time plus `ms`: the one place a clock
/// fault changes a node (over SSH, the same write on the remote host).
pub fn set_offset(lab: &Lab, node: &NodeState, ms: i64) -> Result<()> {
    Ok(write_offset(&node_file(lab, node)?, ms)?)
}

/// The offset of `node`'s clock now, in milliseconds.
pub fn offset(lab: &Lab, node: &NodeState) -> Result<i64> {
    Ok(read_offset(&node_file(lab, node)?))
}

/// Jumps each node's clock by `ms`; returns the new offsets.
pub fn bump(lab: &Lab, nodes: &[NodeState], ms: i64) -> Result<Vec<i64>> {
    validate(ClockMode::Bump, ms, 0)?;
    let mut out = Vec::new();
    for n in nodes {
        let to = offset(lab, n)?.saturating_add(ms);
        set_offset(lab, n, to)?;
        out.push(to);
    }
    Ok(out)
}

/// Sets each node's clock to a steady offset of `ms`.
pub fn skew(lab: &Lab, nodes: &[NodeState], ms: i64) -> Result<()> {
    validate(ClockMode::Skew, ms, 0)?;
    for n in nodes {
        set_offset(lab, n, ms)?;
    }
    Ok(())
}

/// Sets each node's clock back to the real time.
pub fn reset(lab: &Lab, nodes: &[NodeState]) -> Result<()> {
    for n in nodes {
        set_offset(lab, n, 0)?;
    }
    Ok(())
}

/// Sets back to the real time every node of the lab that has a faked clock.
pub fn heal_clocks(lab: &Lab) -> Result<()> {
    for n in lab.nodes() {
        let f = timestamp_file(&lab.dir().join(&n.name));
        if f.exists() {
            write_offset(&f, 0)?;
        }
    }
    Ok(())
}

/// A strobe in progress: a thread flipping the nodes' clocks between the
/// real time and the offset every period, until [`Strobe::stop`] (or drop),
/// which resets them.
#[derive(Debug)]
pub struct Strobe {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
    /// How many times the clocks were flipped (for the tests and the log).
    flips: Arc<std::sync::atomic::AtomicU64>,
}

impl Strobe {
    /// Starts flipping the clocks of `nodes` between 0 and `ms` every
    /// `period_ms` (the first flip at once, to `ms`).
    pub fn start(lab: &Lab, nodes: &[NodeState], ms: i64, period_ms: u64) -> Result<Strobe> {
        validate(ClockMode::Strobe, ms, period_ms)?;
        let files: Vec<PathBuf> = nodes
            .iter()
            .map(|n| node_file(lab, n))
            .collect::<Result<_>>()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flips = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (s, f) = (stop.clone(), flips.clone());
        let thread = std::thread::Builder::new()
            .name("clock-strobe".into())
            .spawn(move || {
                let period = Duration::from_millis(period_ms);
                let mut next = std::time::Instant::now();
                let mut off = true;
                while !s.load(Ordering::Relaxed) {
                    let to = if off { ms } else { 0 };
                    for file in &files {
                        write_offset(file, to)?;
                    }
                    f.fetch_add(1, Ordering::Relaxed);
                    off = !off;
                    next += period;
                    std::thread::sleep(next.saturating_duration_since(std::time::Instant::now()));
                }
                for file in &files {
                    write_offset(file, 0)?;
                }
                Ok(())
            })
            .map_err(|e| LabError::io("starting the clock strobe", e))?;
        Ok(Strobe {
            stop,
            thread: Some(thread),
            flips,
        })
    }

    /// How many times the clocks were flipped so far.
    pub fn flips(&self) -> u64 {
        self.flips.load(Ordering::Relaxed)
    }

    /// Stops flipping and resets the clocks.
    pub fn stop(mut self) -> Result<()> {
        self.finish()
    }

    fn finish(&mut self) -> Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => {
                Err(LabError::io("the clock strobe", std::io::Error::other("panicked")).into())
            }
            None => Ok(()),
        }
    }
}

impl Drop for Strobe {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_out_of_range_are_refused() {
        assert!(validate(ClockMode::Bump, 0, 0).is_err());
        assert!(validate(ClockMode::Bump, MAX_OFFSET_MS + 1, 0).is_err());
        assert!(validate(ClockMode::Skew, -MAX_OFFSET_MS - 1, 0).is_err());
        assert!(validate(ClockMode::Skew, 500, 10).is_err());
        assert!(validate(ClockMode::Strobe, 500, 0).is_err());
        assert!(validate(ClockMode::Strobe, 500, MAX_PERIOD_MS + 1).is_err());
        validate(ClockMode::Bump, -MAX_OFFSET_MS, 0).expect("a year back");
        validate(ClockMode::Strobe, 500, 10).expect("strobe");
    }
}
