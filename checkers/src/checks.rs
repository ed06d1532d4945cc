//! The names of the checks: how a `--checks` list is parsed, which apply
//! to a model by default, and the one-line summary across models. Which
//! checker runs each is [`crate::plan`].
//!
//! | name | what | applies to |
//! |---|---|---|
//! | `linearizable` | [`crate::linear`] | every model |
//! | `ryw`, `mr`, `mw`, `wfr` (`session`) | [`crate::session`] | register, cas-register and kv histories of reads and writes with unique written values |
//! | `cc`, `ccv`, `cm` (`causal`) | [`crate::causal`] | the same |
//! | `set`, `counter`, `convergence`, `workload` | [`crate::set`], [`crate::counter`], [`crate::convergence`], [`crate::workload_ran`] | the histories of those workloads (named explicitly) |
//!
//! `all` is every check of the first three rows.

use std::str::FromStr;

use crate::model::ModelKind;
use crate::verdict::Validity;

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
    /// The set workload: no acknowledged add lost, nothing unexpected.
    Set,
    /// The counter workload: reads within the bounds of the increments.
    Counter,
    /// The final reads of every node agree.
    Convergence,
    /// Some workload operation succeeded (the run tested something).
    Workload,
    /// Transactional isolation (the consistency models asked for).
    Isolation,
    /// The bank workload: every read sums to the total, no negative balance.
    Bank,
    /// The seats workload: no seat sold twice, no acknowledged booking lost.
    Seats,
}

impl Check {
    /// Every check of single-object histories (what `all` names), in
    /// summary order.
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

    /// The checks of the workloads' histories, named explicitly.
    pub const WORKLOAD: [Check; 6] = [
        Check::Set,
        Check::Counter,
        Check::Convergence,
        Check::Workload,
        Check::Bank,
        Check::Seats,
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
            Check::Set => "set",
            Check::Counter => "counter",
            Check::Convergence => "convergence",
            Check::Workload => "workload",
            Check::Isolation => "isolation",
            Check::Bank => "bank",
            Check::Seats => "seats",
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
            Check::Set => "set (no lost or unexpected elements)",
            Check::Counter => "counter (reads within bounds)",
            Check::Convergence => "convergence of the final reads",
            Check::Workload => "the workload ran",
            Check::Isolation => "transactional isolation",
            Check::Bank => "bank (every read sums to the total)",
            Check::Seats => "seats (no seat sold twice, no booking lost)",
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
        "set",
        "counter",
        "convergence",
        "workload",
        "bank",
        "seats",
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
        let registers = matches!(
            model,
            ModelKind::Register | ModelKind::CasRegister | ModelKind::Kv
        );
        self != Check::Isolation && (!self.needs_rw() || registers)
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
            .chain(Check::WORKLOAD)
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
