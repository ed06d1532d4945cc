//! The clients: one worker per client process, each driving its own
//! generator through a store session and recording every invocation and
//! completion; and the final reads from every node after healing.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use faultline_checkers::EventType;
use faultline_workloads::txn_workloads;
use faultline_workloads::workload::{Generator, OpSpec, final_reads};
use serde_json::Value;

use super::context::Ctx;
use super::interrupt;
use super::recorder::{Ev, Who};
use crate::stores::{ClientError, Completion, Operation, Role, Session};

/// How long the final reads may take in all, whatever the stores do.
const FINAL_READS_BUDGET: Duration = Duration::from_secs(30);

pub(super) async fn worker(ctx: Arc<Ctx>, slot: u32) {
    let c = u64::from(ctx.cfg.concurrency);
    let mut generator = Generator::new(&ctx.cfg.workload, slot);
    let mut process = u64::from(slot);
    let mut client = Session::new(ctx.cfg.db.client(&ctx.cluster, Role::Worker(slot)));
    let interval = ctx
        .cfg
        .rate
        .map(|r| Duration::from_secs_f64(f64::from(ctx.cfg.concurrency) / r));
    let mut next_at = first_op_at(interval, slot, ctx.cfg.concurrency);
    while !ctx.stop.load(Ordering::Relaxed) {
        if let Some(iv) = interval {
            if !until_or_stopped(&ctx, next_at).await {
                break;
            }
            next_at += iv;
        }
        let ready = tokio::select! {
            r = client.ready(ctx.cfg.op_timeout) => r.is_ok(),
            _ = ctx.interrupt.reached(interrupt::Level::Stop) => break,
        };
        if !ready {
            if !until_or_stopped(
                &ctx,
                tokio::time::Instant::now() + Duration::from_millis(100),
            )
            .await
            {
                break;
            }
            continue;
        }
        let op = generator.next_op();
        let node = client.target(op.f);
        let ev = events(process, &op, &node, None);
        ctx.rec
            .record(ev(EventType::Invoke, op.value.clone(), None, ctx.rec.now()));
        let r = tokio::select! {
            r = client.call(op_of(process, &op), ctx.cfg.op_timeout) => r,
            _ = ctx.interrupt.reached(interrupt::Level::Cancel) => Err(cancelled()),
        };
        let now = ctx.rec.now();
        let transport_failed = r.is_err();
        let (kind, value, error) = completion(op.f, &op.value, r);
        // A node that refuses at once (no primary, no quorum) would
        // otherwise fill the history with failures: back off a bit.
        let refused = !transport_failed
            && kind == EventType::Fail
            && error
                .as_deref()
                .is_some_and(|e| e.starts_with("unavailable"));
        ctx.rec.record(ev(kind, value, error, now));
        if ctx.cluster.adapters.hopeless() {
            // Nothing but garbage from the adapters: the run is an error
            // (see run_in_lab); no point in going on.
            ctx.interrupt.raise(interrupt::Level::Stop);
            break;
        }
        if refused {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if transport_failed && kind == EventType::Fail {
            client.reset();
        }
        let retire = kind == EventType::Info;
        if retire {
            // Jepsen's convention: the process may still be running the
            // operation; the worker carries on under a new id.
            process += c;
            client.reset();
        }
    }
    ctx.max_process.fetch_max(process, Ordering::Relaxed);
}

/// The history events of client `process` doing `op` on `node`: the
/// event of a kind, value, error and time.
fn events<'a>(
    process: u64,
    op: &'a OpSpec,
    node: &'a str,
    phase: Option<&'static str>,
) -> impl Fn(EventType, Value, Option<String>, u64) -> Ev + 'a {
    move |kind, value, error, time| Ev {
        time,
        process: Who::Client(process),
        kind,
        f: op.f.to_string(),
        // A transaction's micro-ops name their keys.
        key: (op.f != "txn").then(|| op.key.clone()),
        value,
        node: Some(node.to_string()),
        error,
        phase,
    }
}

/// When worker `slot`'s first operation is due: with a rate, the workers'
/// first operations are spread over one interval (rather than all waiting
/// a whole interval); without one, now.
fn first_op_at(interval: Option<Duration>, slot: u32, concurrency: u32) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    match interval {
        Some(iv) => now + iv.mul_f64(f64::from(slot) / f64::from(concurrency.max(1))),
        None => now,
    }
}

/// Sleeps until `at`; false if the main phase ended first.
async fn until_or_stopped(ctx: &Ctx, at: tokio::time::Instant) -> bool {
    tokio::select! {
        _ = tokio::time::sleep_until(at) => !ctx.stop.load(Ordering::Relaxed),
        _ = ctx.interrupt.reached(interrupt::Level::Stop) => false,
    }
}

/// The error of an operation cancelled in flight: it may have happened.
fn cancelled() -> ClientError {
    ClientError::Indefinite("cancelled: the run ended while this operation was in flight".into())
}

/// What a call's result becomes in the history: the completion's type, its
/// value (what was read, for an `ok` read; otherwise what was sent) and its
/// error. A request that certainly never arrived is `fail`; one that may
/// have is `info`.
fn completion(
    f: &str,
    sent: &Value,
    r: Result<Completion, ClientError>,
) -> (EventType, Value, Option<String>) {
    match r {
        Ok(Completion::Ok(read)) if f == "read" => (EventType::Ok, read, None),
        Ok(Completion::Ok(done)) if f == "txn" => {
            if txn_workloads::completes(sent, &done) {
                (EventType::Ok, done, None)
            } else {
                // Not the transaction sent: it may have run, but what it
                // read is unknown.
                let e = format!(
                    "the store answered the transaction with {done}, which does not match its micro-ops"
                );
                (EventType::Info, sent.clone(), Some(e))
            }
        }
        Ok(Completion::Ok(_)) => (EventType::Ok, sent.clone(), None),
        Ok(Completion::Fail(error)) => (EventType::Fail, sent.clone(), error),
        Ok(Completion::Info(error)) => (EventType::Info, sent.clone(), error),
        Err(ClientError::Definite(e)) => (EventType::Fail, sent.clone(), Some(e)),
        Err(e) => (EventType::Info, sent.clone(), Some(e.to_string())),
    }
}

/// A generated operation as the client performs it.
fn op_of(process: u64, op: &OpSpec) -> Operation<'_> {
    Operation {
        process,
        f: op.f,
        key: &op.key,
        value: &op.value,
    }
}

/// How long the setup transaction (the bank's opening balances) may take,
/// retries included.
const SETUP_BUDGET: Duration = Duration::from_secs(20);

/// Before the workers start: the workload's setup transaction, if it has
/// one, recorded as process 0's first operation; retried while it fails.
/// An error if it never succeeds, or may have run (`info`): the checks
/// need to know the opening state.
pub(super) async fn setup_phase(ctx: &Arc<Ctx>) -> Result<(), String> {
    let Some(op) = txn_workloads::setup(&ctx.cfg.workload) else {
        return Ok(());
    };
    let deadline = tokio::time::Instant::now() + SETUP_BUDGET;
    let mut client = Session::new(ctx.cfg.db.client(&ctx.cluster, Role::Worker(0)));
    let mut last = String::from("out of time");
    while tokio::time::Instant::now() < deadline && !ctx.interrupt.interrupted() {
        if let Err(e) = client.ready(ctx.cfg.op_timeout).await {
            last = e.to_string();
            client.reset();
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        let node = client.target(op.f);
        let ev = events(0, &op, &node, None);
        ctx.rec
            .record(ev(EventType::Invoke, op.value.clone(), None, ctx.rec.now()));
        let r = client.call(op_of(0, &op), ctx.cfg.op_timeout).await;
        let (kind, value, error) = completion(op.f, &op.value, r);
        ctx.rec
            .record(ev(kind, value, error.clone(), ctx.rec.now()));
        match kind {
            EventType::Ok => return Ok(()),
            EventType::Info => {
                return Err(format!(
                    "the {} workload's setup transaction may or may not have run: {}",
                    ctx.cfg.workload.kind,
                    error.unwrap_or_default()
                ));
            }
            _ => {
                last = error.unwrap_or_default();
                client.reset();
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    Err(format!(
        "the {} workload's setup transaction did not succeed: {last}",
        ctx.cfg.workload.kind
    ))
}

/// After healing: every node reads every key once (retrying a few times),
/// recorded with `"phase": "final"`. All of it within
/// [`FINAL_READS_BUDGET`]; a second signal ends it at once.
pub(super) async fn final_read_phase(ctx: &Arc<Ctx>) {
    let deadline = tokio::time::Instant::now() + FINAL_READS_BUDGET;
    let mut process = ctx.max_process.load(Ordering::Relaxed) + 1;
    let reads = final_reads(&ctx.cfg.workload);
    for i in 0..ctx.cluster.nodes.len() {
        let node = ctx.cluster.name(i);
        let mut client = Session::new(ctx.cfg.db.client(&ctx.cluster, Role::Final(i)));
        for op in &reads {
            for _attempt in 0..5 {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                if left.is_zero() || ctx.interrupt.level() >= interrupt::Level::Teardown {
                    eprintln!(
                        "faultline: warning: final reads cut short ({})",
                        if left.is_zero() {
                            "out of their time budget"
                        } else {
                            "interrupted"
                        }
                    );
                    return;
                }
                let timeout = left.min(Duration::from_secs(2));
                let ready = tokio::select! {
                    r = client.ready(timeout) => r.is_ok(),
                    _ = ctx.interrupt.reached(interrupt::Level::Teardown) => false,
                };
                if !ready {
                    client.reset();
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    continue;
                }
                let ev = events(process, op, &node, Some("final"));
                ctx.rec
                    .record(ev(EventType::Invoke, op.value.clone(), None, ctx.rec.now()));
                let r = tokio::select! {
                    r = client.call(op_of(process, op), timeout) => r,
                    _ = ctx.interrupt.reached(interrupt::Level::Teardown) => Err(cancelled()),
                };
                let now = ctx.rec.now();
                let (kind, value, error) = completion(op.f, &op.value, r);
                ctx.rec.record(ev(kind, value, error, now));
                let done = kind == EventType::Ok;
                process += 1;
                if done {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    }
}
