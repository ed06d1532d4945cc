//! The checks `faultline check --checks` can run, how a list of them is
//! parsed, which apply by default, running the session and causal ones
//! together, and the one-line summary across models.
//!
//! | name | what | applies to |
//! |---|---|---|
//! | `linearizable` | [`crate::linear`] | every model |
//! | `ryw`, `mr`, `mw`, `wfr` (`session`) | [`crate::session`] | register, cas-register and kv histories of reads and writes with unique written values |
//! | `cc`, `ccv`, `cm` (`causal`) | [`crate::causal`] | the same |
//!
//! `all` is every check.

use std::str::FromStr;
use std::time::Instant;

use serde_json::Value;

use crate::causal::{self, CausalOptions, Variant};
use crate::history::History;
use crate::model::ModelKind;
use crate::rw::{ContractError, RwHistory};
use crate::session::{self, Guarantee};
use crate::verdict::{CheckResult, Validity};

/// A check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Check {
    /// Linearizability.
    Linearizable,
    /// Read your writes.
    Ryw,
    /// Monotonic reads.
    Mr,
    /// Monotonic writes.
    Mw,
    /// Writes follow reads.
    Wfr,
    /// Causal consistency.
    Cc,
    /// Causal convergence.
    Ccv,
    /// Causal memory.
    Cm,
}

impl Check {
    /// Every check, in summary order.
    pub const ALL: [Check; 8] = [
        Check::Linearizable,
        Check::Ryw,
        Check::Mr,
        Check::Mw,
        Check::Wfr,
        Check::Cc,
        Check::Ccv,
        Check::Cm,
    ];

    /// The name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Check::Linearizable => "linearizable",
            Check::Ryw => "ryw",
            Check::Mr => "mr",
            Check::Mw => "mw",
            Check::Wfr => "wfr",
            Check::Cc => "cc",
            Check::Ccv => "ccv",
            Check::Cm => "cm",
        }
    }

    /// What it stands for, for people.
    pub fn title(self) -> &'static str {
        match self {
            Check::Linearizable => "linearizability",
            Check::Ryw => "read-your-writes",
            Check::Mr => "monotonic reads",
            Check::Mw => "monotonic writes",
            Check::Wfr => "writes-follow-reads",
            Check::Cc => "causal consistency (CC)",
            Check::Ccv => "causal convergence (CCv)",
            Check::Cm => "causal memory (CM)",
        }
    }

    /// True for the session guarantees.
    pub fn is_session(self) -> bool {
        matches!(self, Check::Ryw | Check::Mr | Check::Mw | Check::Wfr)
    }

    /// True for the causal variants.
    pub fn is_causal(self) -> bool {
        matches!(self, Check::Cc | Check::Ccv | Check::Cm)
    }

    /// True when the check works on read/write registers (session and
    /// causal checks).
    pub fn needs_rw(self) -> bool {
        self.is_session() || self.is_causal()
    }

    /// The names accepted in a list, groups included.
    pub const NAMES: &'static [&'static str] = &[
        "linearizable",
        "ryw",
        "mr",
        "mw",
        "wfr",
        "session",
        "cc",
        "ccv",
        "cm",
        "causal",
        "all",
    ];

    /// Parses a comma-separated list (groups `session`, `causal`, `all`),
    /// sorted and without repetition.
    pub fn parse_list(s: &str) -> Result<Vec<Check>, String> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim) {
            match part {
                "" => continue,
                "all" => out.extend(Check::ALL),
                "session" => out.extend([Check::Ryw, Check::Mr, Check::Mw, Check::Wfr]),
                "causal" => out.extend([Check::Cc, Check::Ccv, Check::Cm]),
                one => out.push(one.parse()?),
            }
        }
        if out.is_empty() {
            return Err(format!(
                "no check named (expected some of: {})",
                Check::NAMES.join(", ")
            ));
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// True when the check can run on histories of `model`.
    pub fn applies_to(self, model: ModelKind) -> bool {
        !self.needs_rw()
            || matches!(
                model,
                ModelKind::Register | ModelKind::CasRegister | ModelKind::Kv
            )
    }

    /// Every check that applies to `model` (the default set; the session and
    /// causal checks among them are skipped when a history breaks their
    /// contract).
    pub fn defaults(model: ModelKind) -> Vec<Check> {
        Check::ALL
            .into_iter()
            .filter(|c| c.applies_to(model))
            .collect()
    }
}

impl FromStr for Check {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Check::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .or(match s {
                "linearizability" | "lin" => Some(Check::Linearizable),
                _ => None,
            })
            .ok_or_else(|| {
                format!(
                    "unknown check `{s}` (expected some of: {})",
                    Check::NAMES.join(", ")
                )
            })
    }
}

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

/// The verdicts of a file's checks summed up: the strongest model that
/// holds, and what is violated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The strongest model among those checked that holds, if any.
    pub strongest: Option<&'static str>,
    /// The checks that hold.
    pub holds: Vec<Check>,
    /// The checks that are violated.
    pub violated: Vec<Check>,
    /// The checks that could not decide.
    pub unknown: Vec<Check>,
}

/// Sums up `(check, verdict)` pairs. Linearizability implies every other
/// check here; CCv and CM each imply CC and the session guarantees; CC
/// implies none of the session guarantees (they need one order of the
/// writes).
pub fn summarize(verdicts: &[(Check, Validity)]) -> Summary {
    let get = |c: Check| verdicts.iter().find(|v| v.0 == c).map(|v| v.1);
    let holds: Vec<Check> = verdicts
        .iter()
        .filter(|v| v.1 == Validity::Valid)
        .map(|v| v.0)
        .collect();
    let violated: Vec<Check> = verdicts
        .iter()
        .filter(|v| v.1 == Validity::Invalid)
        .map(|v| v.0)
        .collect();
    let unknown: Vec<Check> = verdicts
        .iter()
        .filter(|v| v.1 == Validity::Unknown)
        .map(|v| v.0)
        .collect();
    let ok = |c: Check| get(c) == Some(Validity::Valid);
    let strongest = if ok(Check::Linearizable) {
        Some("linearizability")
    } else if ok(Check::Ccv) && ok(Check::Cm) {
        Some("causal convergence and causal memory (CCv, CM)")
    } else if ok(Check::Ccv) {
        Some("causal convergence (CCv)")
    } else if ok(Check::Cm) {
        Some("causal memory (CM)")
    } else if ok(Check::Cc) {
        Some("causal consistency (CC)")
    } else {
        let s: Vec<&str> = holds
            .iter()
            .filter(|c| c.is_session())
            .map(|c| c.name())
            .collect();
        match s.len() {
            0 => None,
            4 => Some("the four session guarantees"),
            _ => Some("some session guarantees"),
        }
    };
    Summary {
        strongest,
        holds,
        violated,
        unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_defaults() {
        assert_eq!(
            Check::parse_list("causal").unwrap(),
            vec![Check::Cc, Check::Ccv, Check::Cm]
        );
        assert_eq!(
            Check::parse_list("mw, session,ryw").unwrap(),
            vec![Check::Ryw, Check::Mr, Check::Mw, Check::Wfr]
        );
        assert_eq!(Check::parse_list("all").unwrap(), Check::ALL.to_vec());
        assert!(
            Check::parse_list("ryw,queue")
                .unwrap_err()
                .contains("unknown check `queue`")
        );
        assert!(Check::parse_list(",").is_err());
        assert_eq!(Check::defaults(ModelKind::Mutex), vec![Check::Linearizable]);
        assert_eq!(Check::defaults(ModelKind::Kv).len(), 8);
    }

    #[test]
    fn strongest_model() {
        use Validity::*;
        let s = summarize(&[(Check::Linearizable, Valid), (Check::Cc, Valid)]);
        assert_eq!(s.strongest, Some("linearizability"));
        let s = summarize(&[
            (Check::Linearizable, Invalid),
            (Check::Cc, Valid),
            (Check::Ccv, Invalid),
            (Check::Cm, Valid),
        ]);
        assert_eq!(s.strongest, Some("causal memory (CM)"));
        assert_eq!(s.violated, vec![Check::Linearizable, Check::Ccv]);
        let s = summarize(&[(Check::Ryw, Invalid), (Check::Mr, Valid)]);
        assert_eq!(s.strongest, Some("some session guarantees"));
        let s = summarize(&[(Check::Cc, Unknown)]);
        assert_eq!((s.strongest, s.unknown.len()), (None, 1));
    }
}

/// Helpers for the tests of the session and causal checks.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::format::edn;
    use crate::history::CompletionsMode;
    use crate::tuples::{self, KeyInValue};

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
