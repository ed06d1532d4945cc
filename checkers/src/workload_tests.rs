//! Tests of the set, counter and convergence checkers: a valid and an
//! invalid history each.

use crate::format::json;
use crate::verdict::Validity;

/// A JSON Lines history from its lines (also used by the bank and seats
/// checkers' tests).
pub(crate) fn h(lines: &[&str]) -> crate::history::History {
    json::read("t.jsonl", lines.join("\n").as_bytes()).expect("well-formed")
}

#[test]
fn set_lost_unexpected_and_stale() {
    let ok = h(&[
        r#"{"process":0,"type":"invoke","f":"add","key":"set","value":1}"#,
        r#"{"process":0,"type":"ok","f":"add","key":"set","value":1}"#,
        r#"{"process":1,"type":"invoke","f":"add","key":"set","value":2}"#,
        r#"{"process":1,"type":"info","f":"add","key":"set","value":2}"#,
        r#"{"process":0,"type":"invoke","f":"read","key":"set"}"#,
        r#"{"process":0,"type":"ok","f":"read","key":"set","value":[]}"#,
        r#"{"process":9,"type":"invoke","f":"read","key":"set","phase":"final","node":"n1"}"#,
        r#"{"process":9,"type":"ok","f":"read","key":"set","value":[1,2],"phase":"final","node":"n1"}"#,
    ]);
    let r = crate::set::check(&ok);
    assert_eq!(r.valid, Validity::Valid, "{r:?}");
    // A read of the set before anything was added may return null.
    let early = h(&[
        r#"{"process":0,"type":"invoke","f":"read","key":"set"}"#,
        r#"{"process":0,"type":"ok","f":"read","key":"set","value":null}"#,
        r#"{"process":0,"type":"invoke","f":"add","key":"set","value":1}"#,
        r#"{"process":0,"type":"ok","f":"add","key":"set","value":1}"#,
        r#"{"process":9,"type":"invoke","f":"read","key":"set","phase":"final"}"#,
        r#"{"process":9,"type":"ok","f":"read","key":"set","value":[1],"phase":"final"}"#,
    ]);
    assert_eq!(crate::set::check(&early).valid, Validity::Valid);
    let garbage = h(&[
        r#"{"process":0,"type":"invoke","f":"read","key":"set"}"#,
        r#"{"process":0,"type":"ok","f":"read","key":"set","value":"x"}"#,
    ]);
    assert_eq!(crate::set::check(&garbage).anomalies[0]["type"], "bad-read");
    assert_eq!(
        r.stats["stale_reads"], 1,
        "the empty read after the ack is stale"
    );
    assert_eq!(r.stats["recovered"], 1);

    let lost = h(&[
        r#"{"process":0,"type":"invoke","f":"add","key":"set","value":1}"#,
        r#"{"process":0,"type":"ok","f":"add","key":"set","value":1}"#,
        r#"{"process":9,"type":"invoke","f":"read","key":"set","phase":"final"}"#,
        r#"{"process":9,"type":"ok","f":"read","key":"set","value":[7],"phase":"final"}"#,
    ]);
    let r = crate::set::check(&lost);
    assert_eq!(r.valid, Validity::Invalid);
    let kinds: Vec<&str> = r
        .anomalies
        .iter()
        .filter_map(|a| a["type"].as_str())
        .collect();
    assert_eq!(kinds, ["lost", "unexpected"]);
    assert_eq!(r.anomalies[0]["elements"][0], 1);

    let no_final = h(&[
        r#"{"process":0,"type":"invoke","f":"add","key":"set","value":1}"#,
        r#"{"process":0,"type":"ok","f":"add","key":"set","value":1}"#,
    ]);
    assert_eq!(crate::set::check(&no_final).valid, Validity::Unknown);
}

#[test]
fn counter_bounds() {
    let ok = h(&[
        r#"{"process":0,"type":"invoke","f":"incr","value":1}"#,
        r#"{"process":1,"type":"invoke","f":"read"}"#,
        r#"{"process":0,"type":"ok","f":"incr","value":1}"#,
        r#"{"process":1,"type":"ok","f":"read","value":1}"#,
        r#"{"process":0,"type":"invoke","f":"incr","value":1}"#,
        r#"{"process":0,"type":"info","f":"incr","value":1}"#,
        r#"{"process":1,"type":"invoke","f":"read"}"#,
        r#"{"process":1,"type":"ok","f":"read","value":2}"#,
    ]);
    assert_eq!(crate::counter::check(&ok).valid, Validity::Valid);
    let low = h(&[
        r#"{"process":0,"type":"invoke","f":"incr","value":1}"#,
        r#"{"process":0,"type":"ok","f":"incr","value":1}"#,
        r#"{"process":1,"type":"invoke","f":"read"}"#,
        r#"{"process":1,"type":"ok","f":"read","value":0}"#,
        r#"{"process":1,"type":"invoke","f":"read"}"#,
        r#"{"process":1,"type":"ok","f":"read","value":5}"#,
    ]);
    let r = crate::counter::check(&low);
    assert_eq!(r.valid, Validity::Invalid);
    assert_eq!(r.anomalies[0]["type"], "counter-read-too-low");
    assert_eq!(r.anomalies[1]["type"], "counter-read-too-high");
}

#[test]
fn convergence_of_final_reads() {
    let agree = h(&[
        r#"{"process":8,"type":"invoke","f":"read","key":"k0","phase":"final","node":"n1"}"#,
        r#"{"process":8,"type":"ok","f":"read","key":"k0","value":3,"phase":"final","node":"n1"}"#,
        r#"{"process":9,"type":"invoke","f":"read","key":"k0","phase":"final","node":"n2"}"#,
        r#"{"process":9,"type":"ok","f":"read","key":"k0","value":3,"phase":"final","node":"n2"}"#,
    ]);
    assert_eq!(crate::convergence::check(&agree).valid, Validity::Valid);
    let mut d = agree.clone();
    d.ops[1].value = serde_json::json!(4);
    let r = crate::convergence::check(&d);
    assert_eq!(r.valid, Validity::Invalid);
    assert!(
        r.anomalies[0]["explanation"]
            .as_str()
            .expect("text")
            .contains("n2 has 4")
    );
    let unanswered = h(&[
        r#"{"process":8,"type":"invoke","f":"read","key":"k0","phase":"final","node":"n1"}"#,
        r#"{"process":8,"type":"ok","f":"read","key":"k0","value":3,"phase":"final","node":"n1"}"#,
        r#"{"process":9,"type":"invoke","f":"read","key":"k0","phase":"final","node":"n2"}"#,
        r#"{"process":9,"type":"info","f":"read","key":"k0","phase":"final","node":"n2"}"#,
    ]);
    assert_eq!(
        crate::convergence::check(&unanswered).valid,
        Validity::Unknown
    );
}
