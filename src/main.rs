//! The `faultline` command: parse arguments, dispatch, map the outcome to an
//! exit code (0 valid, 1 invalid, 2 error, 3 unknown).

/// Large blocks (a big history's operations) in huge pages.
#[global_allocator]
static ALLOCATOR: faultline::huge_pages::HugePages = faultline::huge_pages::HugePages;

fn main() -> std::process::ExitCode {
    let cli = faultline::cli::Cli::parse_args();
    let code = faultline::cli::output::finish(faultline::cli::dispatch(cli));
    std::process::ExitCode::from(code as u8)
}
