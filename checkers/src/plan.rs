//! The plan: which checks judge a history, written once for every command.
//! `faultline run` and `faultline check` of a stored run use
//! [`Plan::for_workload`], `faultline check` of a file [`Plan::for_model`]
//! (or [`Plan::for_txn`] for transactions), and [`Plan::run`] runs any plan
//! the same way: each [`Checker`] in turn, within one [`Budget`], giving
//! typed results ([`Verdicts`]) that become JSON only when written.
//!
//! Adding a check: a file implementing [`Checker`], and its line in
//! [`checker_of`] (and in [`Plan::for_workload`] for the workloads it
//! judges).

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::Value;

use crate::checker::{Budget, CheckError, Checker, FnChecker};
use crate::checks::Check;
use crate::linear::Linearizable;
use crate::model::ModelKind;
use crate::rw_checks::RwChecks;
use crate::txn::{Isolation, Model, TxnModel};
use crate::verdict::{Report, Validity};
use crate::workload::WorkloadKind;
use crate::{bank, convergence, counter, seats, set, workload_ran};

/// The checker of a check named on its own, for histories of `model`
/// (the session and causal checks are decided together by one
/// [`RwChecks`]; isolation needs a transactional model, see
/// [`Plan::for_txn`]).
fn checker_of(check: Check, model: ModelKind) -> Option<Box<dyn Checker>> {
    Some(match check {
        Check::Linearizable => Box::new(Linearizable(model)),
        Check::Set => Box::new(FnChecker(check, set::check)),
        Check::Counter => Box::new(FnChecker(check, counter::check)),
        Check::Convergence => Box::new(FnChecker(check, convergence::check)),
        Check::Workload => Box::new(FnChecker(check, workload_ran::check)),
        Check::Bank => Box::new(bank::Bank),
        Check::Seats => Box::new(seats::Seats),
        c if c.needs_rw() => Box::new(RwChecks(vec![c])),
        _ => return None,
    })
}

/// One checker of a plan.
struct Step {
    checker: Box<dyn Checker>,
    /// Skipped, with a note, rather than an error or an unknown verdict
    /// when the history breaks its contract or the budget runs out (the
    /// session and causal checks of the default set).
    optional: bool,
}

/// The checks that judge a history, in order.
pub struct Plan {
    steps: Vec<Step>,
    model: Option<ModelKind>,
}

/// Why a plan cannot be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    /// A check named explicitly does not apply to the model.
    DoesNotApply {
        /// The check.
        check: Check,
        /// The model.
        model: ModelKind,
    },
}

impl PlanError {
    /// The one-line message for the file named `file`.
    pub fn message(&self, file: &str) -> String {
        match self {
            PlanError::DoesNotApply { check, model } => format!(
                "{file}: the {} check applies to register, cas-register and kv \
                 histories of reads and writes, not to the {} model",
                check.name(),
                model.name()
            ),
        }
    }
}

impl Plan {
    fn of(model: Option<ModelKind>, checkers: Vec<Box<dyn Checker>>) -> Plan {
        let steps = checkers
            .into_iter()
            .map(|checker| Step {
                checker,
                optional: false,
            })
            .collect();
        Plan { steps, model }
    }

    /// The checks of a `faultline run` workload's history: its own check,
    /// then the convergence of the final reads and whether the run tested
    /// anything.
    pub fn for_workload(workload: WorkloadKind) -> Plan {
        use Check::*;
        let (model, checks) = match workload {
            WorkloadKind::Register => (Some(ModelKind::CasRegister), [Linearizable]),
            WorkloadKind::Kv => (Some(ModelKind::Kv), [Linearizable]),
            WorkloadKind::Set => (None, [Set]),
            WorkloadKind::Counter => (None, [Counter]),
            // Strict serializability: every weaker model is decided too (the
            // report names the strongest that holds).
            WorkloadKind::ListAppend | WorkloadKind::RwRegister => {
                let model = if workload == WorkloadKind::ListAppend {
                    TxnModel::ListAppend
                } else {
                    TxnModel::RwRegister
                };
                return Plan::txn_workload(Box::new(crate::txn::Isolation {
                    model,
                    models: crate::txn::default_models(true),
                }));
            }
            WorkloadKind::Bank => return Plan::txn_workload(Box::new(bank::Bank)),
            WorkloadKind::Seats => return Plan::txn_workload(Box::new(seats::Seats)),
        };
        let checks = checks.into_iter().chain([Convergence, Workload]);
        let lin_model = model.unwrap_or(ModelKind::CasRegister);
        Plan::of(
            model,
            checks.filter_map(|c| checker_of(c, lin_model)).collect(),
        )
    }

    /// A transactional workload's own check, then whether the run tested
    /// anything (their final reads are transactions: no convergence check).
    fn txn_workload(check: Box<dyn Checker>) -> Plan {
        let ran = Box::new(FnChecker(Check::Workload, workload_ran::check));
        Plan::of(None, vec![check, ran])
    }

    /// The checks of a history of `model`: those named in `explicit`
    /// (each must apply to the model), or by default every check that
    /// applies, the session and causal ones optional (skipped with a note
    /// on histories that break their contract or when they run out of
    /// budget).
    pub fn for_model(model: ModelKind, explicit: Option<&[Check]>) -> Result<Plan, PlanError> {
        let mut checks = match explicit {
            Some(list) => {
                if let Some(&check) = list.iter().find(|c| !c.applies_to(model)) {
                    return Err(PlanError::DoesNotApply { check, model });
                }
                list.to_vec()
            }
            None => Check::defaults(model),
        };
        checks.sort();
        checks.dedup();
        let rw: Vec<Check> = checks.iter().copied().filter(|c| c.needs_rw()).collect();
        let mut steps = Vec::new();
        for c in checks {
            if c.needs_rw() {
                if c == rw[0] {
                    steps.push(Step {
                        checker: Box::new(RwChecks(rw.clone())),
                        optional: explicit.is_none(),
                    });
                }
            } else if let Some(checker) = checker_of(c, model) {
                steps.push(Step {
                    checker,
                    optional: false,
                });
            }
        }
        Ok(Plan {
            steps,
            model: Some(model),
        })
    }

    /// The isolation check of a transactional history of `model`
    /// (list-append, rw-register) against the consistency `models`.
    pub fn for_txn(model: TxnModel, models: Vec<Model>) -> Plan {
        Plan::of(None, vec![Box::new(Isolation { model, models })])
    }

    /// The single-object model the plan checks against, if it has one.
    pub fn model(&self) -> Option<ModelKind> {
        self.model
    }

    /// The checks of the plan, in order.
    pub fn checks(&self) -> Vec<Check> {
        self.steps.iter().flat_map(|s| s.checker.checks()).collect()
    }

    /// Runs every check on `history` within `budget` (its deadline counts
    /// from now). An error when the history does not fit a check that is
    /// not optional.
    pub fn run(&self, history: &crate::History, budget: &Budget) -> Result<Verdicts, CheckError> {
        let budget = Budget {
            started: Instant::now(),
            ..budget.clone()
        };
        let mut out = Verdicts {
            valid: Validity::Valid,
            ran: Vec::new(),
            skipped: Vec::new(),
        };
        for step in &self.steps {
            let t = Instant::now();
            let judged = match step.checker.check(history, &budget) {
                Ok(j) => j,
                Err(CheckError::Contract { error, checks }) if step.optional => {
                    out.skipped.extend(checks.into_iter().map(|check| Skipped {
                        check,
                        reason: error.short.to_string(),
                    }));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let elapsed = t.elapsed().as_secs_f64() * 1e3;
            for j in judged {
                match j.report.unknown_reason() {
                    Some(reason) if step.optional && j.report.valid() == Validity::Unknown => {
                        out.skipped.push(Skipped {
                            check: j.check,
                            reason: reason.to_string(),
                        })
                    }
                    _ => {
                        out.valid = out.valid.merge(j.report.valid());
                        out.ran.push(Ran {
                            check: j.check,
                            report: j.report,
                            ms: j.ms.unwrap_or(elapsed),
                        });
                    }
                }
            }
        }
        Ok(out)
    }
}

/// One check's result in a plan's run.
#[derive(Debug)]
pub struct Ran {
    /// The check.
    pub check: Check,
    /// Its typed result.
    pub report: Box<dyn Report>,
    /// Milliseconds spent.
    pub ms: f64,
}

impl Ran {
    /// The result as `T` (a [`crate::CheckResult`],
    /// [`crate::linear::LinearReport`], [`crate::txn::TxnReport`]), when it
    /// is one.
    pub fn report_as<T: 'static>(&self) -> Option<&T> {
        self.report.as_any().downcast_ref::<T>()
    }
}

/// An optional check that was not run, and why.
#[derive(Debug, Clone)]
pub struct Skipped {
    /// The check.
    pub check: Check,
    /// Why.
    pub reason: String,
}

/// The results of a plan's run.
#[derive(Debug)]
pub struct Verdicts {
    /// The worst of the results: invalid > unknown > valid.
    pub valid: Validity,
    /// The checks that ran, in the plan's order.
    pub ran: Vec<Ran>,
    /// The optional checks skipped.
    pub skipped: Vec<Skipped>,
}

impl Verdicts {
    /// The result of `check`, if it ran.
    pub fn get(&self, check: Check) -> Option<&Ran> {
        self.ran.iter().find(|r| r.check == check)
    }

    /// `(check, verdict)` of every check that ran.
    pub fn verdicts(&self) -> Vec<(Check, Validity)> {
        self.ran
            .iter()
            .map(|r| (r.check, r.report.valid()))
            .collect()
    }

    /// Check name to its result as written in `results.json`.
    pub fn to_json(&self) -> BTreeMap<String, Value> {
        self.ran
            .iter()
            .map(|r| {
                let mut json = r.report.to_json();
                if let (Some(txn), Some(written)) = (
                    r.report_as::<crate::txn::TxnReport>(),
                    json.get_mut("anomalies").and_then(Value::as_array_mut),
                ) {
                    crate::txn::svg::attach_cycles(&txn.anomalies, written);
                }
                (r.check.name().to_string(), json)
            })
            .collect()
    }
}
