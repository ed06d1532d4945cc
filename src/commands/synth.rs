//! `faultline synth`.
use crate::Exit;

/// Arguments of `faultline synth`.
#[derive(Debug, clap::Args)]
pub struct SynthArgs {}

/// Runs `faultline synth`.
pub fn run(_args: SynthArgs) -> Exit {
    Exit::Error
}
