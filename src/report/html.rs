//! `report.html`: one self-contained page. The data is embedded as JSON in
//! a `<script type="application/json">` element (operations as compact
//! columns: delta-coded times in microseconds, small integer codes), the
//! script and the style sheet are embedded from `report.js` and
//! `report.css`; nothing is loaded from the network.

use std::collections::HashMap;

use faultline_checkers::history::{History, Outcome};
use serde_json::{Map, Value, json};

use super::classify::{fault_windows, history_end};

const JS: &str = include_str!("report.js");
const CSS: &str = include_str!("report.css");

/// Most anomalies per check embedded in the page.
const MAX_ANOMALIES: usize = 50;

/// Interns strings as small integers.
struct Interner {
    names: Vec<String>,
    ids: HashMap<String, i64>,
}

impl Interner {
    fn new() -> Self {
        Interner {
            names: Vec::new(),
            ids: HashMap::new(),
        }
    }
    fn id(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.ids.get(s) {
            return i;
        }
        let i = self.names.len() as i64;
        self.names.push(s.to_string());
        self.ids.insert(s.to_string(), i);
        i
    }
}

fn key_text(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A value as a number when it is a small integer, as compact JSON text
/// otherwise.
fn cell(v: &Value) -> Value {
    match v {
        Value::Number(n) if n.as_i64().is_some_and(|i| i.abs() < 1 << 52) => v.clone(),
        Value::Null => Value::Null,
        other => {
            let mut s = other.to_string();
            if s.len() > 200 {
                let cut = (0..=200)
                    .rev()
                    .find(|&i| s.is_char_boundary(i))
                    .unwrap_or(0);
                s.truncate(cut);
                s.push('…');
            }
            Value::String(s)
        }
    }
}

fn us(ns: i64) -> i64 {
    ns.div_euclid(1000)
}

/// Lanes of the timeline: a process keeps one lane for its whole life, and
/// a lane is reused by a later process once the earlier one is done (a
/// process retired after an `info` is followed by its successor, as
/// Jepsen's threads are). Returns the processes of each lane and each
/// process's lane.
fn lanes(history: &History) -> (Vec<Vec<i64>>, HashMap<i64, usize>) {
    let mut life: HashMap<i64, (usize, usize)> = HashMap::new();
    for o in &history.ops {
        let end = o.complete_pos().unwrap_or(usize::MAX);
        let e = life.entry(o.process).or_insert((o.invoke_pos(), end));
        e.0 = e.0.min(o.invoke_pos());
        e.1 = e.1.max(end);
    }
    let mut by_start: Vec<(i64, usize, usize)> =
        life.iter().map(|(p, (a, b))| (*p, *a, *b)).collect();
    by_start.sort_unstable_by_key(|x| (x.1, x.0));
    let mut lanes: Vec<Vec<i64>> = Vec::new();
    let mut lane_of = HashMap::new();
    // Busy lanes ordered by when they become free.
    let mut heap: std::collections::BinaryHeap<std::cmp::Reverse<(usize, usize)>> =
        std::collections::BinaryHeap::new();
    let mut idle: std::collections::BTreeSet<usize> = std::collections::BTreeSet::new();
    for (p, start, end) in by_start {
        while let Some(std::cmp::Reverse((free, l))) = heap.peek().copied() {
            if free < start {
                heap.pop();
                idle.insert(l);
            } else {
                break;
            }
        }
        let l = match idle.pop_first() {
            Some(l) => l,
            None => {
                lanes.push(Vec::new());
                lanes.len() - 1
            }
        };
        lanes[l].push(p);
        heap.push(std::cmp::Reverse((end, l)));
        lane_of.insert(p, l);
    }
    (lanes, lane_of)
}

/// The page's data: meta, checks, classification, faults, and the
/// operations as columns.
pub fn data(name: &str, history: &History, results: &Value) -> Value {
    let end = history_end(history);
    let (lanes, lane) = lanes(history);
    let (mut fs, mut ks, mut nodes, mut errs) = (
        Interner::new(),
        Interner::new(),
        Interner::new(),
        Interner::new(),
    );
    let n = history.ops.len();
    let (mut t0, mut d, mut p, mut o, mut f, mut k, mut v, mut nd, mut idx, mut fin) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::new(),
    );
    let mut err_cells = Vec::new();
    let mut pr = Vec::with_capacity(n);
    let (mut last_t, mut last_i) = (0i64, 0i64);
    // Without times, operations are spaced by their event positions.
    let timed = history.ops.iter().all(|o| o.invoke_time().is_some());
    for (pos, op) in history.ops.iter().enumerate() {
        let (a, b) = if timed {
            let a = us(op.invoke_time().unwrap_or(0));
            let b = match op.outcome {
                Outcome::Pending => -1,
                _ => op.complete_time().map(us).unwrap_or(a) - a,
            };
            (a, b)
        } else {
            let a = op.invoke_pos() as i64 * 1000;
            let b = op
                .complete_pos()
                .map(|c| (c as i64 - op.invoke_pos() as i64) * 1000)
                .unwrap_or(-1);
            (a, b)
        };
        t0.push(a - last_t);
        last_t = a;
        d.push(b);
        p.push(lane.get(&op.process).copied().unwrap_or(0) as i64);
        pr.push(op.process);
        o.push(match op.outcome {
            Outcome::Ok => 0,
            Outcome::Fail => 1,
            Outcome::Info => 2,
            Outcome::Pending => 3,
        });
        f.push(fs.id(&op.f));
        k.push(op.key.as_ref().map(|x| ks.id(&key_text(x))).unwrap_or(-1));
        // Reads show what they returned; everything else what it asked.
        let shown = if &*op.f == "read" && op.outcome == Outcome::Ok {
            &op.value
        } else if &*op.f == "read" {
            &Value::Null
        } else {
            &op.invoke_value
        };
        v.push(cell(shown));
        let extra = op.extra.as_deref();
        nd.push(
            extra
                .and_then(|m| m.get("node"))
                .and_then(Value::as_str)
                .map(|s| nodes.id(s))
                .unwrap_or(-1),
        );
        if let Some(e) = extra.and_then(|m| m.get("error")).filter(|e| !e.is_null()) {
            let text = match e {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            err_cells.push(json!([pos, errs.id(&text)]));
        }
        if extra
            .and_then(|m| m.get("phase"))
            .is_some_and(|x| x == "final")
        {
            fin.push(pos);
        }
        let i = op.invoke_index as i64;
        idx.push(i - last_i);
        last_i = i;
    }
    let faults: Vec<Value> = fault_windows(history)
        .iter()
        .map(|w| {
            json!({
                "f": w.f,
                "s": if timed { us(w.start) } else { 0 },
                "e": if timed { us(w.end) } else { 0 },
                "value": w.value,
                "line": w.line,
            })
        })
        .collect();
    let mut checks = Map::new();
    for (name, c) in super::junit::checks(results) {
        let mut c = c.clone();
        if let Some(a) = c.get_mut("anomalies").and_then(Value::as_array_mut) {
            let total = a.len();
            a.truncate(MAX_ANOMALIES);
            if let Value::Object(m) = &mut c {
                m.insert("anomaly_count".into(), json!(total));
            }
        }
        checks.insert(name.to_string(), c);
    }
    json!({
        "name": name,
        "valid": results.get("valid").cloned().unwrap_or(Value::Null),
        "seed": results.get("seed").cloned().unwrap_or(Value::Null),
        "dir": results.get("dir").or_else(|| results.get("file")).cloned().unwrap_or(Value::Null),
        "version": env!("CARGO_PKG_VERSION"),
        "config": results.get("config").cloned().unwrap_or(Value::Null),
        "stats": results.get("stats").cloned().unwrap_or(Value::Null),
        "model": results.get("model").cloned().unwrap_or(Value::Null),
        "checks": checks,
        "classification": results.get("classification").cloned().unwrap_or(Value::Null),
        "timed": timed,
        "end": if timed { us(end) } else { history.events as i64 * 1000 },
        "faults": faults,
        "lanes": lanes,
        "ops": {
            "n": n,
            "t0": t0, "d": d, "p": p, "o": o, "f": f, "k": k, "v": v, "n_": nd, "i": idx, "pr": pr,
            "fs": fs.names, "ks": ks.names, "nodes": nodes.names, "errs": errs.names,
            "err": err_cells, "final": fin,
        },
    })
}

/// Escapes text for HTML content.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The whole page.
pub fn render(name: &str, history: &History, results: &Value) -> String {
    let data = data(name, history, results);
    // `<` only occurs inside JSON strings, where `\u003c` means the same.
    let json = serde_json::to_string(&data)
        .unwrap_or_else(|_| "{}".into())
        .replace('<', "\\u003c");
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>faultline report: {title}</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n\
         <noscript>This report draws its timeline and plots with JavaScript; the data is in \
         results.json and history.jsonl.</noscript>\n\
         <div id=\"app\"></div>\n\
         <script type=\"application/json\" id=\"faultline-data\">{json}</script>\n\
         <script>\n{JS}</script>\n</body>\n</html>\n",
        title = esc(name)
    )
}
