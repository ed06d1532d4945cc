//! The `faultline` command: parse arguments, dispatch, map the outcome to an
//! exit code (0 valid, 1 invalid, 2 error, 3 unknown).

use clap::Parser;

/// mimalloc: the readers allocate small values (strings, arrays, maps) on
/// every core and the history layer frees some of them on another; glibc's
/// malloc spent a third of the time of reading a large history in its
/// arenas, mimalloc a fraction of that, and keeps less memory resident.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = faultline::cli::Cli::parse();
    let code = faultline::cli::output::finish(faultline::cli::dispatch(cli));
    std::process::ExitCode::from(code as u8)
}
