//! A set of client processes, as a piece of a file notes the processes it
//! has seen (once per event).
//!
//! Processes are small integers in nearly every history, so they are bits
//! of a vector; larger ones go to a hash set.

use std::collections::HashSet;

use super::FastHash;

/// Processes below this are bits of the vector (which grows to the
/// largest seen: a crashed client comes back as a new process, so a long
/// history has tens of thousands).
const DENSE: i64 = 1 << 20;

/// A set of processes.
#[derive(Default)]
pub(super) struct ProcessSet {
    /// Bit `p % 64` of word `p / 64`: process `p`, below [`DENSE`].
    dense: Vec<u64>,
    /// Processes from [`DENSE`] up (and below 0).
    sparse: HashSet<i64, FastHash>,
}

impl ProcessSet {
    /// Adds `process`; true when it was not in the set.
    pub(super) fn insert(&mut self, process: i64) -> bool {
        if !(0..DENSE).contains(&process) {
            return self.sparse.insert(process);
        }
        let (word, bit) = (process as usize / 64, 1u64 << (process % 64));
        if self.dense.len() <= word {
            self.dense.resize(word + 1, 0);
        }
        let new = self.dense[word] & bit == 0;
        self.dense[word] |= bit;
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each process is new once, on both sides of the vector's end.
    #[test]
    fn each_process_is_new_once() {
        let mut set = ProcessSet::default();
        let processes = [
            0,
            63,
            64,
            4095,
            4096,
            DENSE - 1,
            DENSE,
            -1,
            i64::MAX,
            i64::MIN,
            7,
        ];
        for &p in &processes {
            assert!(set.insert(p), "{p} is new");
        }
        for &p in &processes {
            assert!(!set.insert(p), "{p} was seen");
        }
        assert!(set.insert(1) && set.insert(62) && set.insert(65));
    }
}
