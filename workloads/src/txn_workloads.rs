//! The transactional workloads of `faultline run`: each operation is one
//! `txn` whose value is a list of micro-operations (Elle's form, see
//! `docs/transactions.md`), performed by the store as one transaction.
//!
//! | micro-op | meaning |
//! |---|---|
//! | `["r", k, null]` | read key `k` (the completion carries what was read; `null`: absent) |
//! | `["append", k, v]` | append `v` to the list at `k` (list-append) |
//! | `["w", k, v]` | write `v` to `k` (rw-register, the bank's opening balances) |
//! | `["add", k, d]` | add `d` to the number at `k` (bank transfers; a balance may not go negative) |
//! | `["book", k, c]` | if seat `k` is free, give it to customer `c`; else the transaction fails (`taken`) |
//!
//! - **list-append** / **rw-register**: 1 to 4 micro-ops over a handful of
//!   keys, reads mixed with appends/writes, so that concurrent transactions
//!   overlap on the same keys. The key set moves on every
//!   [`ROTATE_EVERY`] transactions of a worker (Elle's key rotation), which
//!   keeps lists short; workers move at about the same pace, so they share
//!   the current keys.
//! - **bank**: accounts `0..N` opened by one setup transaction writing
//!   [`OPENING_BALANCE`] to each; transfers `[add from -a] [add to a]` (in
//!   account order); reads
//!   of every balance in one transaction (one statement per account).
//! - **seats**: bookings `[book seat customer]` with a unique customer per
//!   booking; every worker walks the seats in the same order, so bookings of
//!   one seat by several workers overlap; the final reads read every seat.

use serde_json::{Value, json};

use crate::rng::Rng;
use crate::workload::{OpSpec, WorkloadConfig, WorkloadKind};

/// A list-append / rw-register worker moves to fresh keys after this many
/// of its transactions.
pub const ROTATE_EVERY: u64 = 32;

/// Each bank account's balance after the setup transaction.
pub const OPENING_BALANCE: i64 = 100;

/// The largest transfer.
pub const MAX_TRANSFER: u64 = 5;

/// The default number of keys: list-append and rw-register keys in use at
/// once, bank accounts, seats.
pub fn default_keys(kind: WorkloadKind) -> u32 {
    match kind {
        WorkloadKind::Bank => 5,
        WorkloadKind::Seats => 1000,
        _ => 3,
    }
}

/// A transaction of micro-ops (the history's key is left out).
fn txn(mops: Vec<Value>) -> OpSpec {
    OpSpec {
        f: "txn",
        key: String::new(),
        value: Value::Array(mops),
    }
}

/// A read of every key in `range`.
fn read_all(range: std::ops::Range<u32>) -> OpSpec {
    txn(range.map(|k| json!(["r", k, null])).collect())
}

/// The final reads read this many seats per transaction (each within the
/// operation timeout).
pub const FINAL_READ_CHUNK: u32 = 100;

/// The state of one worker's transactional generator.
#[derive(Debug)]
pub struct TxnGenerator {
    kind: WorkloadKind,
    keys: u64,
    read: f64,
    /// Transactions generated so far.
    n: u64,
}

impl TxnGenerator {
    /// The generator of a worker (`read` is the share of reads).
    pub fn new(cfg: &WorkloadConfig) -> TxnGenerator {
        TxnGenerator {
            kind: cfg.kind,
            keys: u64::from(cfg.keys.max(1)),
            read: cfg.mix.read,
            n: 0,
        }
    }

    /// The next transaction; `unique` gives a value never given before in
    /// the run.
    pub fn next(&mut self, rng: &mut Rng, unique: &mut dyn FnMut() -> u64) -> OpSpec {
        let n = self.n;
        self.n += 1;
        match self.kind {
            WorkloadKind::Bank => {
                if rng.chance(self.read) || self.keys < 2 {
                    return read_all(0..self.keys as u32);
                }
                let from = rng.below(self.keys);
                let to = (from + 1 + rng.below(self.keys - 1)) % self.keys;
                let amount = rng.range_inclusive(1, MAX_TRANSFER) as i64;
                // In account order, as a careful application locks them:
                // two transfers never wait for each other in a cycle.
                let mut adds = [(from, -amount), (to, amount)];
                adds.sort_unstable();
                txn(adds.iter().map(|(k, d)| json!(["add", k, d])).collect())
            }
            WorkloadKind::Seats => {
                // Seat n or n+1: the workers, walking at about the same pace
                // (a taken seat fails at once), meet on the same seats.
                let seat = (n + rng.below(2)) % self.keys;
                txn(vec![json!(["book", seat, unique()])])
            }
            _ => {
                let write = if self.kind == WorkloadKind::ListAppend {
                    "append"
                } else {
                    "w"
                };
                let base = n / ROTATE_EVERY * self.keys;
                let len = rng.range_inclusive(1, 4);
                let mops = (0..len)
                    .map(|_| {
                        let k = base + rng.below(self.keys);
                        if rng.chance(self.read) {
                            json!(["r", k, null])
                        } else {
                            json!([write, k, unique()])
                        }
                    })
                    .collect();
                txn(mops)
            }
        }
    }
}

/// The transaction run once before the workers start (recorded in the
/// history): the bank's opening balances.
pub fn setup(cfg: &WorkloadConfig) -> Option<OpSpec> {
    (cfg.kind == WorkloadKind::Bank).then(|| {
        txn((0..cfg.keys.max(1))
            .map(|k| json!(["w", k, OPENING_BALANCE]))
            .collect())
    })
}

/// The final reads: every account in one transaction, every seat in
/// transactions of [`FINAL_READ_CHUNK`] seats (none for list-append and
/// rw-register, whose keys move on).
pub fn final_reads(cfg: &WorkloadConfig) -> Vec<OpSpec> {
    let n = cfg.keys.max(1);
    match cfg.kind {
        WorkloadKind::Bank => vec![read_all(0..n)],
        WorkloadKind::Seats => (0..n)
            .step_by(FINAL_READ_CHUNK as usize)
            .map(|lo| read_all(lo..n.min(lo + FINAL_READ_CHUNK)))
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether `got` is what a store may answer to the transaction `sent`: as
/// many micro-ops, each with the same function and key, and the same value
/// except for reads.
pub fn completes(sent: &Value, got: &Value) -> bool {
    let (Some(s), Some(g)) = (sent.as_array(), got.as_array()) else {
        return false;
    };
    s.len() == g.len()
        && s.iter()
            .zip(g)
            .all(|(s, g)| match (s.as_array(), g.as_array()) {
                (Some(s), Some(g)) if s.len() == 3 && g.len() == 3 => {
                    s[0] == g[0] && s[1] == g[1] && (s[0] == "r" || s[2] == g[2])
                }
                _ => false,
            })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{Generator, final_reads as all_final_reads};
    use std::collections::HashSet;

    fn ops(kind: WorkloadKind, slot: u32, n: usize) -> Vec<OpSpec> {
        let cfg = WorkloadConfig::new(kind, 5, 4);
        let mut g = Generator::new(&cfg, slot);
        (0..n).map(|_| g.next_op()).collect()
    }

    #[test]
    fn list_append_txns_overlap_on_few_keys_with_unique_values() {
        let mut seen = HashSet::new();
        let mut keys = HashSet::new();
        for slot in 0..4 {
            let all = ops(WorkloadKind::ListAppend, slot, 32);
            assert_eq!(all, ops(WorkloadKind::ListAppend, slot, 32), "seeded");
            for op in all {
                assert_eq!(op.f, "txn");
                let m = op.value.as_array().expect("list");
                assert!((1..=4).contains(&m.len()));
                for mop in m {
                    keys.insert(mop[1].as_u64().expect("key"));
                    match mop[0].as_str() {
                        Some("append") => assert!(seen.insert(mop[2].as_u64().expect("v"))),
                        Some("r") => assert!(mop[2].is_null()),
                        other => panic!("{other:?}"),
                    }
                }
            }
        }
        // The first 32 transactions of every worker share 3 keys.
        assert_eq!(keys.len(), 3, "{keys:?}");
        assert!(seen.len() > 50);
        // Then they move on.
        let later = ops(WorkloadKind::ListAppend, 0, 40);
        assert!(later[39].value[0][1].as_u64().expect("key") >= 3);
        assert!(all_final_reads(&WorkloadConfig::new(WorkloadKind::ListAppend, 1, 1)).is_empty());
        let rw = ops(WorkloadKind::RwRegister, 0, 50);
        assert!(rw.iter().any(|o| o.value[0][0] == "w"));
        assert!(rw.iter().all(|o| {
            o.value
                .as_array()
                .expect("l")
                .iter()
                .all(|m| m[0] != "append")
        }));
    }

    #[test]
    fn bank_transfers_keep_the_total_and_reads_read_every_account() {
        let cfg = WorkloadConfig::new(WorkloadKind::Bank, 5, 4);
        let s = setup(&cfg).expect("bank has a setup");
        assert_eq!(s.value.as_array().expect("l").len(), 5);
        let (mut reads, mut transfers) = (0, 0);
        for op in ops(WorkloadKind::Bank, 1, 200) {
            let m = op.value.as_array().expect("list");
            if m[0][0] == "r" {
                reads += 1;
                assert_eq!(m.len(), 5);
            } else {
                transfers += 1;
                assert_eq!(m.len(), 2);
                assert_ne!(m[0][1], m[1][1], "two accounts");
                assert_eq!(
                    m[0][2].as_i64().expect("d") + m[1][2].as_i64().expect("d"),
                    0
                );
            }
        }
        assert!(reads > 50 && transfers > 50, "{reads} {transfers}");
        assert_eq!(
            all_final_reads(&cfg)[0].value.as_array().expect("l").len(),
            5
        );
        assert!(setup(&WorkloadConfig::new(WorkloadKind::Seats, 1, 1)).is_none());
    }

    #[test]
    fn seats_are_booked_in_the_same_order_by_every_worker() {
        let a = ops(WorkloadKind::Seats, 0, 20);
        let b = ops(WorkloadKind::Seats, 1, 20);
        for (i, (a, b)) in a.iter().zip(&b).enumerate() {
            let (sa, sb) = (
                a.value[0][1].as_u64().expect("s"),
                b.value[0][1].as_u64().expect("s"),
            );
            assert!(sa.abs_diff(i as u64) <= 1 && sb.abs_diff(i as u64) <= 1);
            assert_ne!(a.value[0][2], b.value[0][2], "unique customers");
        }
        let reads = all_final_reads(&WorkloadConfig::new(WorkloadKind::Seats, 1, 1));
        assert_eq!(reads.len(), 10, "1000 seats, 100 a transaction");
        assert_eq!(reads[9].value[99][1], 999);
    }

    #[test]
    fn completions_must_match_the_request() {
        let sent = json!([["r", 1, null], ["append", 1, 5]]);
        assert!(completes(&sent, &json!([["r", 1, [4]], ["append", 1, 5]])));
        assert!(!completes(&sent, &json!([["r", 1, [4]]])));
        assert!(!completes(&sent, &json!([["r", 2, [4]], ["append", 1, 5]])));
        assert!(!completes(&sent, &json!([["r", 1, [4]], ["append", 1, 6]])));
        assert!(!completes(&sent, &json!("ok")));
    }
}
