//! faultline's workloads: seeded generators and the history synthesizer.
#![warn(missing_docs)]
