//! The progress line: elapsed/total, operations, ok/fail/info and the
//! active fault, redrawn every 200 ms while the main phase runs.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::context::Ctx;

pub(super) fn progress_task(
    ctx: Arc<Ctx>,
    start: Instant,
) -> (
    Option<indicatif::ProgressBar>,
    Option<tokio::task::JoinHandle<()>>,
) {
    if !ctx.cfg.progress {
        return (None, None);
    }
    let total = ctx.cfg.time_limit.ceil() as u64;
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:24}] {pos}/{len} s  {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let b = bar.clone();
    let task = tokio::spawn(async move {
        while !ctx.stop.load(Ordering::Relaxed) {
            let c = &ctx.rec.counts;
            let fault = ctx
                .active_fault
                .lock()
                .map(|f| f.clone())
                .unwrap_or_default()
                .unwrap_or_else(|| "none".into());
            b.set_position(start.elapsed().as_secs().min(total));
            b.set_message(format!(
                "ops {}  ok {}  fail {}  info {}  fault: {fault}",
                c.invoked.load(Ordering::Relaxed),
                c.ok.load(Ordering::Relaxed),
                c.fail.load(Ordering::Relaxed),
                c.info.load(Ordering::Relaxed),
            ));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    (Some(bar), Some(task))
}
