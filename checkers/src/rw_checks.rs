//! The session guarantees and the causal variants, run together on one
//! index of the history ([`RwHistory`]): the engine ([`run_rw`]) and its
//! [`Checker`] ([`RwChecks`]).

use std::time::Instant;

use serde_json::Value;

use crate::causal::{self, CausalOptions, Variant};
use crate::checker::{Budget, CheckError, Checker, Judged};
use crate::checks::Check;
use crate::history::History;
use crate::model::EncodeOptions;
use crate::rw::{ContractError, RwHistory};
use crate::session::{self, Guarantee};
use crate::verdict::CheckResult;

/// Options of the session and causal checks.
#[derive(Clone, Debug, Default)]
pub struct RwOptions {
    /// The initial value of every key.
    pub initial: Value,
    /// Budgets of the causal checks.
    pub causal: CausalOptions,
}

/// One check's result and how long it took.
#[derive(Debug, Clone)]
pub struct Ran {
    /// The check.
    pub check: Check,
    /// Its result.
    pub result: CheckResult,
    /// Milliseconds spent.
    pub ms: f64,
}

/// Runs the session and causal checks among `checks` on `history`, or says
/// how the history breaks their contract.
pub fn run_rw(
    history: &History,
    checks: &[Check],
    opts: &RwOptions,
) -> Result<Vec<Ran>, ContractError> {
    let t = Instant::now();
    let rw = RwHistory::new(history, &opts.initial)?;
    let index_ms = t.elapsed().as_secs_f64() * 1e3;
    let mut out = Vec::new();
    for &c in checks {
        let g = match c {
            Check::Ryw => Guarantee::Ryw,
            Check::Mr => Guarantee::Mr,
            Check::Mw => Guarantee::Mw,
            Check::Wfr => Guarantee::Wfr,
            _ => continue,
        };
        let t = Instant::now();
        let result = session::check(&rw, g);
        out.push(Ran {
            check: c,
            result,
            ms: t.elapsed().as_secs_f64() * 1e3,
        });
    }
    let variants: Vec<Variant> = checks
        .iter()
        .filter_map(|c| match c {
            Check::Cc => Some(Variant::Cc),
            Check::Ccv => Some(Variant::Ccv),
            Check::Cm => Some(Variant::Cm),
            _ => None,
        })
        .collect();
    if !variants.is_empty() {
        let report = causal::check(&rw, &variants, &opts.causal);
        for (v, result, ms) in report.results {
            let check = match v {
                Variant::Cc => Check::Cc,
                Variant::Ccv => Check::Ccv,
                Variant::Cm => Check::Cm,
            };
            out.push(Ran { check, result, ms });
        }
    }
    if let Some(first) = out.first_mut() {
        first.ms += index_ms;
    }
    out.sort_by_key(|r| r.check);
    Ok(out)
}

/// The session and causal checks among `checks`, for the plan.
#[derive(Clone, Debug)]
pub struct RwChecks(pub Vec<Check>);

impl Checker for RwChecks {
    fn check(&self, history: &History, budget: &Budget) -> Result<Vec<Judged>, CheckError> {
        let opts = RwOptions {
            initial: EncodeOptions::new(history, budget.initial.as_ref()).initial,
            causal: CausalOptions {
                deadline: budget.deadline(),
                memory_limit: budget.memory_limit,
            },
        };
        let ran = run_rw(history, &self.0, &opts).map_err(|error| CheckError::Contract {
            error,
            checks: self.0.clone(),
        })?;
        Ok(ran
            .into_iter()
            .map(|r| Judged {
                check: r.check,
                report: Box::new(r.result),
                ms: Some(r.ms),
            })
            .collect())
    }
    fn checks(&self) -> Vec<Check> {
        self.0.clone()
    }
}

/// Helpers for the tests of the session and causal checks.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::format::edn;
    use crate::history::CompletionsMode;
    use crate::tuples::{self, KeyInValue};
    use crate::verdict::Validity;

    /// A history of completions only from `;`-separated ops such as
    /// `0 w x 1` (process, `w` or `r`, key, value), optionally followed by
    /// `info` or `fail`. Every key starts at 0.
    pub fn history(ops: &str) -> History {
        let mut text = String::new();
        for op in ops
            .split([';', '\n'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let p: Vec<&str> = op.split_whitespace().collect();
            assert!(p.len() == 4 || p.len() == 5, "bad op {op:?}");
            let f = if p[1] == "w" { "write" } else { "read" };
            let t = p.get(4).copied().unwrap_or("ok");
            text.push_str(&format!(
                "{{:type :{t}, :f :{f}, :value [{} {}], :process {}}}\n",
                p[2], p[3], p[0]
            ));
        }
        let mut h = edn::read_with("t.edn", &text, false, CompletionsMode::Auto).unwrap();
        assert!(tuples::apply(&mut h, KeyInValue::Yes).unwrap());
        h
    }

    /// Runs `checks` with initial value 0.
    pub fn run(h: &History, checks: &[Check]) -> Result<Vec<Ran>, ContractError> {
        run_rw(
            h,
            checks,
            &RwOptions {
                initial: serde_json::json!(0),
                causal: CausalOptions::default(),
            },
        )
    }

    /// Verdicts of every session and causal check on `ops`, as
    /// `(name, valid, anomaly types)`.
    pub fn verdicts(ops: &str) -> Vec<(&'static str, Validity, Vec<String>)> {
        let h = history(ops);
        let all: Vec<Check> = Check::ALL.into_iter().filter(|c| c.needs_rw()).collect();
        run(&h, &all)
            .unwrap()
            .into_iter()
            .map(|r| {
                let types = r
                    .result
                    .anomalies
                    .iter()
                    .map(|a| a["type"].as_str().unwrap_or("?").to_string())
                    .collect();
                (r.check.name(), r.result.valid, types)
            })
            .collect()
    }

    /// The names of the checks that fail on `ops`.
    pub fn failing(ops: &str) -> Vec<&'static str> {
        verdicts(ops)
            .into_iter()
            .filter(|v| v.1 != Validity::Valid)
            .map(|v| v.0)
            .collect()
    }
}
