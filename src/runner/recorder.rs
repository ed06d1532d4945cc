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
use faultline_checkers::format::writer::EventLine;
use serde_json::Value;

/// Who an event is from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Who {
    /// A client process.
    Client(u64),
    /// The nemesis.
    Nemesis,
}

/// One event, as the history line shows it (the recorder adds `index`).
#[derive(Clone, Debug)]
pub struct Ev {
    /// Nanoseconds since the start of the run.
    pub time: u64,
    /// Who.
    pub process: Who,
    /// invoke, ok, fail, info.
    pub kind: EventType,
    /// The function.
    pub f: String,
    /// The key.
    pub key: Option<String>,
    /// The value.
    pub value: Value,
    /// The node the client talks to.
    pub node: Option<String>,
    /// Why it failed, or why its outcome is unknown.
    pub error: Option<String>,
    /// `final` for the final reads; `start`/`end` for faults.
    pub phase: Option<&'static str>,
}

impl Ev {
    /// Writes the event as history line number `index`.
    fn write<'l>(&self, index: u64, line: &'l mut EventLine) -> &'l [u8] {
        line.start().u64("index", index).u64("time", self.time);
        match &self.process {
            Who::Client(p) => line.u64("process", *p),
            Who::Nemesis => line.str("process", "nemesis"),
        };
        line.event_type(self.kind).str("f", &self.f);
        if let Some(k) = &self.key {
            line.str("key", k);
        }
        line.value("value", &self.value);
        if let Some(n) = &self.node {
            line.str("node", n);
        }
        if let Some(e) = &self.error {
            line.str("error", e);
        }
        if let Some(p) = self.phase {
            line.str("phase", p);
        }
        line.finish()
    }
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

/// Appends whole lines: should the write fail part-way (a full disk), the
/// file is cut back to its last whole line, so the history never ends in a
/// torn line. `written` is the file's length so far.
fn write_lines(file: &mut File, lines: &[u8], written: &mut u64) -> std::io::Result<()> {
    match file.write_all(lines) {
        Ok(()) => {
            *written += lines.len() as u64;
            Ok(())
        }
        Err(e) => {
            let _ = file.set_len(*written);
            let _ = file.sync_all();
            Err(e)
        }
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
            let mut line = EventLine::new();
            let mut written = 0u64;
            let mut index = 0u64;
            let mut last_flush = Instant::now();
            loop {
                match rx.recv_timeout(Duration::from_millis(50)) {
                    Ok(ev) => {
                        buf.extend_from_slice(ev.write(index, &mut line));
                        index += 1;
                        if buf.len() >= 1 << 16 || last_flush.elapsed() >= Duration::from_millis(50)
                        {
                            write_lines(&mut file, &buf, &mut written)?;
                            buf.clear();
                            last_flush = Instant::now();
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {
                        if !buf.is_empty() {
                            write_lines(&mut file, &buf, &mut written)?;
                            buf.clear();
                        }
                        last_flush = Instant::now();
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            write_lines(&mut file, &buf, &mut written)?;
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
