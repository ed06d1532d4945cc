//! What every part of the transactional checker needs to name things: the
//! history, its transactions, and the anomalies found so far (a bounded
//! number kept with witnesses, every one counted).

use std::collections::BTreeMap;

use serde_json::Value;

use super::anomaly::{Anomaly, AnomalyType, TxnRef};
use super::micro::{Txns, Val};
use crate::history::History;

/// How many anomalies of one type are kept with their witness; the others
/// are counted.
pub const KEEP_PER_TYPE: usize = 16;

/// The history, its transactions, and the anomalies found.
pub struct Ctx<'a> {
    /// The history, when the transactions were read from one (witnesses
    /// then quote its values); a streamed history has only its
    /// transactions.
    pub history: Option<&'a History>,
    /// Its transactions.
    pub txns: &'a Txns,
    /// Anomalies kept with witnesses.
    pub anomalies: Vec<Anomaly>,
    /// Every anomaly found, counted by type.
    pub counts: BTreeMap<AnomalyType, usize>,
}

impl<'a> Ctx<'a> {
    /// A context with no anomaly yet.
    pub fn new(history: Option<&'a History>, txns: &'a Txns) -> Self {
        Ctx {
            history,
            txns,
            anomalies: Vec::new(),
            counts: BTreeMap::new(),
        }
    }

    /// The name of transaction `t`: `T` and its invocation's index.
    pub fn name(&self, t: u32) -> String {
        format!("T{}", self.txns.txns[t as usize].index)
    }

    /// Transaction `t` as named in a witness.
    pub fn txn_ref(&self, t: u32) -> TxnRef {
        let txn = &self.txns.txns[t as usize];
        let value = match self.history {
            Some(h) => h.ops[txn.op as usize].effective_value().clone(),
            None => self.txns.value_json(t as usize),
        };
        TxnRef {
            name: self.name(t),
            op: txn.op as usize,
            index: txn.index,
            f: "txn",
            process: txn.process,
            line: txn.line,
            value,
        }
    }

    /// Key `k` as text.
    pub fn key(&self, k: u32) -> String {
        self.txns.values.key_text(k)
    }

    /// Value `v` as text.
    pub fn val(&self, v: Val) -> String {
        self.txns.values.value_text(v)
    }

    /// A list as `[1 2 3]`, its middle elided when long.
    pub fn list(&self, l: &[Val]) -> String {
        let shown: Vec<String> = if l.len() <= 8 {
            l.iter().map(|&v| self.val(v)).collect()
        } else {
            let mut s: Vec<String> = l[..3].iter().map(|&v| self.val(v)).collect();
            s.push(format!("...{} more...", l.len() - 6));
            s.extend(l[l.len() - 3..].iter().map(|&v| self.val(v)));
            s
        };
        format!("[{}]", shown.join(" "))
    }

    /// Counts an anomaly; keeps it (made by `make`) if fewer than
    /// [`KEEP_PER_TYPE`] of its type are kept already.
    pub fn report(&mut self, kind: AnomalyType, make: impl FnOnce(&Self) -> (String, Vec<u32>)) {
        let n = self.counts.entry(kind).or_insert(0);
        *n += 1;
        if *n > KEEP_PER_TYPE {
            return;
        }
        let (explanation, txns) = make(self);
        let txns = txns.into_iter().map(|t| self.txn_ref(t)).collect();
        self.anomalies.push(Anomaly {
            kind,
            explanation,
            txns,
            cycle: Vec::new(),
            shortest: None,
        });
    }

    /// JSON of a list of values.
    pub fn list_json(&self, l: &[Val]) -> Value {
        Value::Array(l.iter().map(|&v| self.txns.values.value_json(v)).collect())
    }
}
