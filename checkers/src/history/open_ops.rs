//! The operation each client process has open while a history is paired.
//!
//! Looked up several times per event: processes are small integers in
//! nearly every history (Jepsen's and faultline's number their clients
//! from 0), so they index a vector; larger ones go to a hash map.

use std::collections::HashMap;

use super::FastHash;

/// Processes below this index the vector (the vector grows to the largest
/// seen).
const DENSE: i64 = 1 << 12;

/// Open operations by process: the position of each in the history's
/// operations.
#[derive(Default)]
pub(super) struct OpenOps {
    /// By process below [`DENSE`]: the operation's position plus one (0:
    /// none open).
    dense: Vec<usize>,
    /// Processes from [`DENSE`] up.
    sparse: HashMap<i64, usize, FastHash>,
}

impl OpenOps {
    /// The slot of `process` in the vector, when it has one.
    fn slot(&self, process: i64) -> Option<usize> {
        (0..DENSE).contains(&process).then_some(process as usize)
    }

    /// The operation `process` has open.
    pub(super) fn get(&self, process: i64) -> Option<usize> {
        match self.slot(process) {
            Some(i) => self.dense.get(i).and_then(|&v| v.checked_sub(1)),
            None => self.sparse.get(&process).copied(),
        }
    }

    /// True when `process` has an operation open.
    pub(super) fn contains(&self, process: i64) -> bool {
        self.get(process).is_some()
    }

    /// Opens operation `id` for `process`.
    pub(super) fn insert(&mut self, process: i64, id: usize) {
        match self.slot(process) {
            Some(i) => {
                if self.dense.len() <= i {
                    self.dense.resize(i + 1, 0);
                }
                self.dense[i] = id + 1;
            }
            None => {
                self.sparse.insert(process, id);
            }
        }
    }

    /// Closes the operation `process` has open, and gives it.
    pub(super) fn remove(&mut self, process: i64) -> Option<usize> {
        match self.slot(process) {
            Some(i) => self
                .dense
                .get_mut(i)
                .and_then(|v| std::mem::take(v).checked_sub(1)),
            None => self.sparse.remove(&process),
        }
    }

    /// Closes every operation.
    pub(super) fn clear(&mut self) {
        self.dense.clear();
        self.sparse.clear();
    }

    /// Closes every operation, and gives them with their processes.
    pub(super) fn drain(&mut self) -> Vec<(i64, usize)> {
        let mut open: Vec<(i64, usize)> = (0_i64..)
            .zip(self.dense.drain(..))
            .filter_map(|(p, v)| Some((p, v.checked_sub(1)?)))
            .collect();
        open.extend(self.sparse.drain());
        open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_large_processes_open_and_close() {
        let mut open = OpenOps::default();
        let procs = [0, 1, 7, DENSE - 1, DENSE, 1 << 40, i64::MAX];
        for (id, &p) in procs.iter().enumerate() {
            assert_eq!(open.get(p), None);
            open.insert(p, id);
        }
        for (id, &p) in procs.iter().enumerate() {
            assert_eq!(open.get(p), Some(id), "process {p}");
            assert!(open.contains(p));
        }
        assert_eq!(open.remove(7), Some(2));
        assert_eq!(open.remove(7), None);
        assert!(!open.contains(7));
        assert_eq!(open.remove(i64::MAX), Some(6));
        let mut left = open.drain();
        left.sort_unstable();
        assert_eq!(
            left,
            vec![(0, 0), (1, 1), (DENSE - 1, 3), (DENSE, 4), (1 << 40, 5)]
        );
        assert_eq!(open.get(0), None);
        assert_eq!(open.drain(), vec![]);
        open.insert(3, 0);
        open.clear();
        assert_eq!(open.get(3), None);
    }
}
