//! JUnit XML: one `<testsuite>` per checked history (a run, or a file of
//! `faultline check`), one `<testcase>` per check. A violated check is a
//! `<failure>` whose text is every witness in words; a check that could not
//! decide is an `<error type="unknown">`; a check that was skipped is
//! `<skipped>`. The classification and the seed go in `<properties>`.

use std::fmt::Write as _;

use serde_json::Value;

/// One checked history, for [`render`].
pub struct Suite<'a> {
    /// The suite's name (the run's name, or the file).
    pub name: String,
    /// `results.json` of a run, or the `--json` line of `faultline check`.
    pub results: &'a Value,
    /// Seconds spent (checking, or the whole run).
    pub time_s: f64,
}

/// Escapes text for XML content and attributes; drops characters XML 1.0
/// does not allow.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

fn compact(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// One anomaly in words: the explanation, and for linearizability
/// witnesses the operation, the states, the concurrent operations and the
/// longest linearizable prefix.
pub fn anomaly_text(a: &Value) -> String {
    let mut s = String::new();
    if let Some(k) = a.get("key").filter(|k| !k.is_null()) {
        let _ = writeln!(s, "key {}:", compact(k));
    }
    if let Some(t) = a.pointer("/op/text").and_then(Value::as_str) {
        let _ = writeln!(s, "  cannot place: {t}");
    }
    match a.get("explanation").and_then(Value::as_str) {
        Some(e) => {
            let _ = writeln!(s, "  {e}");
        }
        None => {
            let mut text = a.to_string();
            if text.len() > 2000 {
                let cut = (0..=2000)
                    .rev()
                    .find(|&i| text.is_char_boundary(i))
                    .unwrap_or(0);
                text.truncate(cut);
                text.push_str("...");
            }
            let _ = writeln!(s, "  {text}");
        }
    }
    if let Some(states) = a.get("states").and_then(Value::as_array) {
        let st: Vec<String> = states.iter().map(compact).collect();
        let more = a
            .get("more_states")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let _ = writeln!(
            s,
            "  states just before: {}{}",
            st.join(", "),
            if more { ", ..." } else { "" }
        );
    }
    if let Some(c) = a
        .get("concurrent")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())
    {
        let _ = writeln!(s, "  concurrent with:");
        for op in c.iter().take(8) {
            let _ = writeln!(s, "    {}", op["text"].as_str().unwrap_or(""));
        }
        if c.len() > 8 {
            let _ = writeln!(s, "    ... and {} more", c.len() - 8);
        }
    }
    if let Some(n) = a.get("prefix_len").and_then(Value::as_u64) {
        let last = a
            .get("prefix")
            .and_then(Value::as_array)
            .and_then(|p| p.last())
            .and_then(|o| o["text"].as_str())
            .map(|t| format!(", the last: {t}"))
            .unwrap_or_default();
        let _ = writeln!(s, "  longest linearizable prefix: {n} operations{last}");
    }
    s
}

/// The checks of a results object, in name order: (name, check JSON).
pub fn checks(results: &Value) -> Vec<(&str, &Value)> {
    results
        .get("checks")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.as_str(), v)).collect())
        .unwrap_or_default()
}

/// The JUnit XML document for these suites.
pub fn render(suites: &[Suite<'_>]) -> String {
    let mut body = String::new();
    let (mut tests, mut failures, mut errors, mut skipped) = (0, 0, 0, 0);
    let mut total_time = 0.0;
    for suite in suites {
        let mut cases = String::new();
        let (mut t, mut f, mut e, mut sk) = (0, 0, 0, 0);
        for (name, c) in checks(suite.results) {
            t += 1;
            let ms = c
                .get("check_ms")
                .and_then(Value::as_f64)
                .map(|m| m / 1000.0)
                .unwrap_or(0.0);
            let _ = writeln!(
                cases,
                "    <testcase classname=\"faultline.{}\" name=\"{}\" time=\"{:.3}\">",
                escape(&suite.name),
                escape(name),
                ms
            );
            let anomalies = c
                .get("anomalies")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            match c.get("valid") {
                Some(Value::Bool(true)) => {}
                Some(Value::Bool(false)) => {
                    f += 1;
                    let first = anomalies
                        .first()
                        .and_then(|a| a.get("explanation").and_then(Value::as_str))
                        .unwrap_or("violated");
                    let kind = anomalies
                        .first()
                        .and_then(|a| a.get("type").and_then(Value::as_str))
                        .unwrap_or("violation");
                    let text: Vec<String> = anomalies.iter().map(anomaly_text).collect();
                    let _ = writeln!(
                        cases,
                        "      <failure message=\"{}: {} anomal{}: {}\" type=\"{}\">{}</failure>",
                        escape(name),
                        anomalies.len(),
                        if anomalies.len() == 1 { "y" } else { "ies" },
                        escape(first),
                        escape(kind),
                        escape(&text.join("\n"))
                    );
                }
                Some(Value::Null) | None => {
                    sk += 1;
                    let why = c
                        .get("skipped")
                        .and_then(Value::as_str)
                        .unwrap_or("not run");
                    let _ = writeln!(cases, "      <skipped message=\"{}\"/>", escape(why));
                }
                Some(_) => {
                    e += 1;
                    let why = c
                        .get("unknown_reason")
                        .and_then(Value::as_str)
                        .unwrap_or("the checker could not decide");
                    let _ = writeln!(
                        cases,
                        "      <error message=\"unknown: {}\" type=\"unknown\"/>",
                        escape(why)
                    );
                }
            }
            cases.push_str("    </testcase>\n");
        }
        let mut props = String::new();
        let mut prop = |k: &str, v: String| {
            let _ = writeln!(
                props,
                "      <property name=\"{}\" value=\"{}\"/>",
                escape(k),
                escape(&v)
            );
        };
        if let Some(s) = suite.results.get("seed") {
            prop("seed", s.to_string());
        }
        if let Some(c) = suite.results.get("classification") {
            prop(
                "classification",
                c["label"].as_str().unwrap_or("").to_string(),
            );
        }
        if let Some(d) = suite.results.get("dir").and_then(Value::as_str) {
            prop("dir", d.to_string());
        }
        let props = if props.is_empty() {
            String::new()
        } else {
            format!("    <properties>\n{props}    </properties>\n")
        };
        let _ = write!(
            body,
            "  <testsuite name=\"{}\" tests=\"{t}\" failures=\"{f}\" errors=\"{e}\" skipped=\"{sk}\" time=\"{:.3}\">\n{props}{cases}  </testsuite>\n",
            escape(&suite.name),
            suite.time_s
        );
        tests += t;
        failures += f;
        errors += e;
        skipped += sk;
        total_time += suite.time_s;
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"faultline\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{total_time:.3}\">\n{body}</testsuites>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_case_per_check_and_failures_carry_witnesses() {
        let r = json!({
            "seed": 7,
            "checks": {
                "linearizable": {"valid": false, "anomalies": [
                    {"type": "nonlinearizable", "key": "k<1>", "explanation": "read 3 & more",
                     "op": {"text": "process 1 read 3"}, "states": [1], "prefix_len": 4,
                     "prefix": [{"text": "p2 write 1"}], "concurrent": []}
                ]},
                "convergence": {"valid": true, "anomalies": []},
                "causal": {"valid": "unknown", "unknown_reason": "time"},
                "ryw": {"valid": null, "skipped": "contract"}
            }
        });
        let xml = render(&[Suite {
            name: "t".into(),
            results: &r,
            time_s: 1.0,
        }]);
        assert!(
            xml.contains("tests=\"4\" failures=\"1\" errors=\"1\" skipped=\"1\""),
            "{xml}"
        );
        assert!(xml.contains("key &quot;k&lt;1&gt;&quot;:"), "{xml}");
        assert!(xml.contains("read 3 &amp; more"), "{xml}");
        assert!(xml.contains("longest linearizable prefix: 4 operations, the last: p2 write 1"));
        assert_eq!(escape("a\u{1}b\"c"), "ab&quot;c");
    }
}
