//! Bounded witnesses: `faultline check` shows values of any length in its
//! witnesses (text and `--json`), so a history of long values would give an
//! output larger than the history. Long values are cut, saying how long
//! they were and on which line of the history the full value is.

use faultline_checkers::history::{compact, shorten};
use faultline_checkers::linear::Witness;
use serde_json::{Map, Value, json};

/// A value whose compact JSON is longer than this is shortened.
pub const VALUE_BYTES: usize = 200;

/// A sentence (an explanation) longer than this is cut.
pub const TEXT_CHARS: usize = 400;

/// Fields of a witness that hold history values.
const VALUE_FIELDS: &[&str] = &[
    "value", "result", "key", "states", "values", "read", "wrote",
];

/// `text` cut to [`TEXT_CHARS`] characters, with its length when cut.
pub fn shorten_text(text: &str) -> String {
    match text.char_indices().nth(TEXT_CHARS) {
        Some((at, _)) => format!("{}… ({} bytes in all)", &text[..at], text.len()),
        None => text.to_string(),
    }
}

/// `v` when short; else an object `{"shortened": "<first characters>…",
/// "bytes": N, "line": L}` naming the line where the full value is (when
/// known).
fn shorten_value(v: &mut Value, line: Option<&Value>) {
    if matches!(v, Value::Null | Value::Bool(_) | Value::Number(_)) {
        return;
    }
    let text = compact(v);
    if text.len() <= VALUE_BYTES {
        return;
    }
    let mut m = Map::new();
    m.insert("shortened".into(), json!(shorten(&text)));
    m.insert("bytes".into(), json!(text.len()));
    if let Some(l) = line.filter(|l| l.is_u64()) {
        m.insert("line".into(), l.clone());
    }
    *v = Value::Object(m);
}

/// Shortens, in place, the long values and sentences of witnesses or
/// anomalies as JSON: the fields in [`VALUE_FIELDS`] (each element, for
/// `states`), and any string longer than [`TEXT_CHARS`].
pub fn shorten_json(v: &mut Value) {
    match v {
        Value::Object(m) => {
            let line = m.get("line").cloned();
            let complete_line = m.get("complete_line").cloned().or_else(|| line.clone());
            for (k, child) in m.iter_mut() {
                if !VALUE_FIELDS.contains(&k.as_str()) {
                    shorten_json(child);
                    continue;
                }
                let at = if k == "result" {
                    complete_line.as_ref()
                } else {
                    line.as_ref()
                };
                match child {
                    Value::Array(items) if k == "states" => {
                        items.iter_mut().for_each(|s| shorten_value(s, None))
                    }
                    _ => shorten_value(child, at),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(shorten_json),
        Value::String(s) if s.chars().count() > TEXT_CHARS => *s = shorten_text(s),
        _ => {}
    }
}

/// A copy of `w` for the text output: long states, key and explanation
/// shortened (the operations' descriptions are short already, and name
/// their lines).
pub fn shortened_witness(w: &Witness) -> Witness {
    let mut w = w.clone();
    // A long string stays a string, cut; another long value becomes the
    // string of its cut JSON.
    let cut = |v: &mut Value| match v {
        Value::String(s) if s.len() > VALUE_BYTES => *s = shorten(s),
        Value::String(_) => {}
        other => {
            let text = compact(other);
            if text.len() > VALUE_BYTES {
                *other = Value::String(shorten(&text));
            }
        }
    };
    w.states.iter_mut().for_each(cut);
    if let Some(k) = &mut w.key {
        cut(k);
    }
    w.explanation = shorten_text(&w.explanation);
    w
}
