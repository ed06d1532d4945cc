//! faultline's workloads: seeded generators and the history synthesizer.
#![warn(missing_docs)]

pub mod causal_synth;
pub mod rng;
pub mod synth;
pub mod txn_synth;
pub mod txn_workloads;
pub mod workload;
