//! One module per subcommand.

pub mod check;
pub mod check_txn;
pub mod clean;
pub mod doctor;
pub mod lab;
pub mod nemesis;
pub mod node;
pub mod report;
pub mod run;
pub mod run_hosts;
pub mod synth;
pub mod synth_txn;
pub mod witness_size;
