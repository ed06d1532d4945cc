//! The recorder: one thread that numbers events in the order they arrive and
//! streams them to `history.jsonl`, so that a crash keeps everything
//! written so far.
//!
//! Workers send an invocation *before* their request leaves and a completion
//! *after* the reply arrived, so the order of the file never claims that an
//! operation preceded another when it did not: at worst it shows two
//! operations as concurrent, which only weakens what the checker assumes.
//! Lines are written whole, in batches of at most 64 KiB with one `write`
//! call every 50 ms, so a SIGKILL leaves only complete lines.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use faultline_checkers::EventType;
use serde::Serialize;
use serde_json::Value;

/// Who an event is from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Who {
    /// A client process.
    Client(u64),
    /// The nemesis.
    Nemesis,
}

impl Serialize for Who {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Who::Client(p) => s.serialize_u64(*p),
            Who::Nemesis => s.serialize_str("nemesis"),
        }
    }
}

/// One event, as the history line shows it (the recorder adds `index`).
#[derive(Clone, Debug, Serialize)]
pub struct Ev {
    /// Nanoseconds since the start of the run.
    pub time: u64,
    /// Who.
    pub process: Who,
    /// invoke, ok, fail, info.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// The function.
    pub f: String,
    /// The key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The value.
    pub value: Value,
    /// The node the client talks to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Why it failed, or why its outcome is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `final` for the final reads; `start`/`end` for faults.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<&'static str>,
}

#[derive(Serialize)]
struct Line<'a> {
    index: u64,
    #[serde(flatten)]
    ev: &'a Ev,
}

/// Counts of completions, for the progress display and the summary.
#[derive(Debug, Default)]
pub struct Counts {
    /// Invocations.
    pub invoked: AtomicU64,
    /// `ok` completions.
    pub ok: AtomicU64,
    /// `fail` completions.
    pub fail: AtomicU64,
    /// `info` completions.
    pub info: AtomicU64,
}

/// The sending side, cheap to clone into every worker.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Ev>,
    start: Instant,
    /// Completion counts.
    pub counts: Arc<Counts>,
}

impl Recorder {
    /// Nanoseconds since the start of the run.
    pub fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// Records an event (dropped silently if the writer has stopped, which
    /// only happens after the run ended).
    pub fn record(&self, ev: Ev) {
        let c = &self.counts;
        match ev.kind {
            EventType::Invoke if ev.process != Who::Nemesis => {
                c.invoked.fetch_add(1, Ordering::Relaxed)
            }
            EventType::Ok => c.ok.fetch_add(1, Ordering::Relaxed),
            EventType::Fail => c.fail.fetch_add(1, Ordering::Relaxed),
            EventType::Info if ev.process != Who::Nemesis => c.info.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
        let _ = self.tx.send(ev);
    }
}

/// The writing side: join it to flush and close the file.
pub struct Writer {
    handle: JoinHandle<std::io::Result<u64>>,
}

impl Writer {
    /// Waits until every event sent so far is written (all senders must be
    /// dropped first) and returns the number of events.
    pub fn finish(self) -> std::io::Result<u64> {
        self.handle
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the history writer panicked")))
    }
}

/// Creates `path` and starts the writer thread.
pub fn start(path: &Path, start: Instant) -> std::io::Result<(Recorder, Writer)> {
    let mut file = File::create(path)?;
    let (tx, rx) = mpsc::channel::<Ev>();
    let handle = std::thread::Builder::new()
        .name("history-writer".into())
        .spawn(move || {
            let mut buf: Vec<u8> = Vec::with_capacity(1 << 17);
            let mut index = 0u64;
            let mut last_flush = Instant::now();
            loop {
                match rx.recv_timeout(Duration::from_millis(50)) {
                    Ok(ev) => {
                        serde_json::to_writer(&mut buf, &Line { index, ev: &ev })
                            .map_err(std::io::Error::other)?;
                        buf.push(b'\n');
                        index += 1;
                        if buf.len() >= 1 << 16 || last_flush.elapsed() >= Duration::from_millis(50)
                        {
                            file.write_all(&buf)?;
                            buf.clear();
                            last_flush = Instant::now();
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {
                        if !buf.is_empty() {
                            file.write_all(&buf)?;
                            buf.clear();
                        }
                        last_flush = Instant::now();
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            file.write_all(&buf)?;
            file.sync_all()?;
            Ok(index)
        })?;
    Ok((
        Recorder {
            tx,
            start,
            counts: Arc::new(Counts::default()),
        },
        Writer { handle },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_numbered_complete_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("history.jsonl");
        let (rec, writer) = start(&path, Instant::now()).expect("start");
        for i in 0..1000u64 {
            rec.record(Ev {
                time: rec.now(),
                process: Who::Client(i % 7),
                kind: if i % 2 == 0 {
                    EventType::Invoke
                } else {
                    EventType::Ok
                },
                f: "write".into(),
                key: Some("k".into()),
                value: Value::from(i),
                node: Some("n1".into()),
                error: None,
                phase: None,
            });
        }
        assert_eq!(rec.counts.invoked.load(Ordering::Relaxed), 500);
        drop(rec);
        assert_eq!(writer.finish().expect("finish"), 1000);
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1000);
        let first: Value = serde_json::from_str(lines[0]).expect("json");
        assert_eq!(first["index"], 0);
        assert_eq!(first["process"], 0);
        assert_eq!(first["type"], "invoke");
        assert!(lines[999].starts_with("{\"index\":999,"));
    }
}
