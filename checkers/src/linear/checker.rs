//! Linearizability behind the [`Checker`] interface, and its report as a
//! [`Report`].

use crate::checker::{Budget, CheckError, Checker, Judged};
use crate::checks::Check;
use crate::history::History;
use crate::model::ModelKind;
use crate::verdict::{Report, Validity};

use super::{LinearOptions, LinearReport, check};

/// Linearizability against a model, for the plan.
#[derive(Clone, Copy, Debug)]
pub struct Linearizable(pub ModelKind);

impl Checker for Linearizable {
    fn check(&self, history: &History, budget: &Budget) -> Result<Vec<Judged>, CheckError> {
        let opts = LinearOptions {
            model: self.0,
            initial: budget.initial.clone(),
            time_limit: budget.time_limit,
            memory_limit: budget.memory_limit,
            all_keys: budget.all_keys,
            search_only: false,
        };
        let r = check(history, &opts).map_err(|e| CheckError::Model {
            line: e.line,
            reason: e.reason,
            model: self.0.name().to_string(),
        })?;
        Ok(vec![Judged::new(Check::Linearizable, r)])
    }
    fn checks(&self) -> Vec<Check> {
        vec![Check::Linearizable]
    }
}

impl Report for LinearReport {
    fn valid(&self) -> Validity {
        self.valid
    }
    fn unknown_reason(&self) -> Option<&str> {
        self.unknown_reason.as_deref()
    }
    fn anomalies(&self) -> Vec<(String, String)> {
        self.anomalies
            .iter()
            .map(|w| (w.kind.to_string(), w.explanation.clone()))
            .collect()
    }
}
