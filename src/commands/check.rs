//! `faultline check`.
use crate::Exit;

/// Arguments of `faultline check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {}

/// Runs `faultline check`.
pub fn run(_args: CheckArgs) -> Exit {
    Exit::Error
}
