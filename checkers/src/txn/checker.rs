//! Transactional isolation behind the [`Checker`] interface, and its
//! report as a [`Report`].

use crate::checker::{Budget, CheckError, Checker, Judged};
use crate::checks::Check;
use crate::history::History;
use crate::verdict::{Report, Validity};

use super::{Model, TxnModel, TxnOptions, TxnReport, check};

/// The isolation check of transactional histories, for the plan.
#[derive(Clone, Debug)]
pub struct Isolation {
    /// list-append or rw-register.
    pub model: TxnModel,
    /// The consistency models to check.
    pub models: Vec<Model>,
}

impl Checker for Isolation {
    fn check(&self, history: &History, budget: &Budget) -> Result<Vec<Judged>, CheckError> {
        let opts = TxnOptions {
            model: self.model,
            models: self.models.clone(),
            deadline: budget.deadline(),
            memory_limit: budget.memory_limit,
        };
        let r = check(history, &opts).map_err(|e| CheckError::Model {
            line: e.line,
            reason: e.reason,
            model: self.model.to_string(),
        })?;
        Ok(vec![Judged::new(Check::Isolation, r)])
    }
    fn checks(&self) -> Vec<Check> {
        vec![Check::Isolation]
    }
}

impl Report for TxnReport {
    fn valid(&self) -> Validity {
        self.valid
    }
    fn unknown_reason(&self) -> Option<&str> {
        self.unknown_reason.as_deref()
    }
    fn anomalies(&self) -> Vec<(String, String)> {
        self.anomalies
            .iter()
            .map(|a| (a.kind.name(), a.explanation.clone()))
            .collect()
    }
}
