//! `faultline report DIR`: re-creates `report.html` and `junit.xml` of a
//! stored run from its `history.jsonl` and `results.json` (and adds the
//! classification to `results.json` when an older run lacks it).

use std::path::PathBuf;

use crate::Exit;
use crate::cli::fail;

/// Arguments of `faultline report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// A run directory (with history.jsonl and results.json), e.g.
    /// `store/latest`.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Also write a short Markdown summary (for a CI step summary).
    #[arg(long, value_name = "FILE")]
    pub summary_md: Option<PathBuf>,
}

/// Runs `faultline report`. Exits 0 when the reports were written (whatever
/// the run's verdict), 2 on bad input.
pub fn run(args: ReportArgs) -> Exit {
    match crate::report::report_dir(&args.dir, args.summary_md.as_deref()) {
        Ok(results) => {
            println!("report: {}", args.dir.join("report.html").display());
            println!("junit: {}", args.dir.join("junit.xml").display());
            if let Some(s) = &args.summary_md {
                println!("summary: {}", s.display());
            }
            for line in crate::report::classification_lines(&results) {
                println!("{line}");
            }
            Exit::Valid
        }
        Err(e) => fail(e),
    }
}
