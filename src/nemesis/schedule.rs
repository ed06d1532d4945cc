//! Fault schedules for the runner. Pure: a schedule plus the lab's node names
//! (and the store's primaries, if it has them) and a seed give a list of
//! [`Window`]s, each a concrete fault with a start and an end; [`events`]
//! turns them into start/end events for the history.
//!
//! Three kinds: [`Schedule::Periodic`] (every T seconds a fault for D
//! seconds, then heal), [`Schedule::Random`] (the same rhythm, each fault
//! drawn with a seeded generator from a set of faults and targets) and
//! [`Schedule::Timeline`] (explicit, e.g. from a JSON file).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::clock::ClockMode;
use super::grudge::{self, Grudge, Rng, Shape};
use super::{NemesisError, Result};

/// Which nodes a fault hits; drawn when the schedule is expanded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// One random node.
    One,
    /// A random minority: `max(1, (n-1)/2)` nodes.
    Minority,
    /// A random majority: `n/2 + 1` nodes.
    Majority,
    /// The store's primaries (leaders), as the adapter reports them.
    Primaries,
    /// Every node.
    All,
    /// These nodes.
    Nodes(Vec<String>),
}

/// A fault before its targets are drawn. Unknown fields are errors (a
/// misspelt `jitter` must not silently mean no jitter).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "kebab-case", deny_unknown_fields)]
pub enum FaultSpec {
    /// A partition of a shape (`one`, `majority`, ... or JSON).
    Partition {
        /// The shape, as `faultline nemesis partition` takes it.
        shape: String,
    },
    /// Packet loss at the targets.
    Loss {
        /// Percentage dropped.
        percent: f64,
        /// Where.
        target: Target,
    },
    /// Delay at the targets.
    Delay {
        /// Milliseconds.
        ms: u64,
        /// ± milliseconds.
        #[serde(default)]
        jitter_ms: u64,
        /// Where.
        target: Target,
    },
    /// SIGKILL the targets' servers; start them at the end.
    Kill {
        /// Where.
        target: Target,
    },
    /// SIGSTOP the targets' servers; SIGCONT at the end.
    Pause {
        /// Where.
        target: Target,
    },
    /// Move the targets' clocks (bump, skew or strobe); reset at the end.
    Clock {
        /// How.
        mode: ClockMode,
        /// Milliseconds (negative: back).
        ms: i64,
        /// Strobe only: milliseconds between flips.
        #[serde(default, skip_serializing_if = "is_zero")]
        period_ms: u64,
        /// Where.
        target: Target,
    },
}

/// A fault with its targets drawn: what the nemesis does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "kebab-case")]
pub enum Fault {
    /// Apply this grudge.
    Partition {
        /// The grudge.
        grudge: Grudge,
    },
    /// Drop packets at these nodes.
    Loss {
        /// Nodes.
        nodes: Vec<String>,
        /// Percentage.
        percent: f64,
    },
    /// Delay packets at these nodes.
    Delay {
        /// Nodes.
        nodes: Vec<String>,
        /// Milliseconds.
        ms: u64,
        /// ± milliseconds.
        jitter_ms: u64,
    },
    /// Kill the servers on these nodes.
    Kill {
        /// Nodes.
        nodes: Vec<String>,
    },
    /// Pause the servers on these nodes.
    Pause {
        /// Nodes.
        nodes: Vec<String>,
    },
    /// Move the clocks of the servers on these nodes.
    Clock {
        /// Nodes.
        nodes: Vec<String>,
        /// How.
        mode: ClockMode,
        /// Milliseconds.
        ms: i64,
        /// Strobe only: milliseconds between flips (0 otherwise).
        #[serde(default, skip_serializing_if = "is_zero")]
        period_ms: u64,
    },
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl Fault {
    /// The history's `f` for this fault.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Partition { .. } => "partition",
            Fault::Loss { .. } => "loss",
            Fault::Delay { .. } => "delay",
            Fault::Kill { .. } => "kill",
            Fault::Pause { .. } => "pause",
            Fault::Clock { .. } => "clock",
        }
    }
}

/// A fault active from `start` to `end` (offsets from the run's start).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// When to apply.
    pub start: Duration,
    /// When to heal.
    pub end: Duration,
    /// What.
    pub fault: Fault,
}

/// One entry of an explicit timeline (`{"at": 5, "for": 10, "fault": {...}}`,
/// seconds).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimelineEntry {
    /// Start, seconds after the run starts.
    pub at: f64,
    /// Duration in seconds.
    #[serde(rename = "for")]
    pub duration: f64,
    /// The fault.
    pub fault: FaultSpec,
}

/// The most fault windows a schedule may expand to; more is a mistake
/// (a time limit of years, a period of microseconds) that would only burn
/// memory and CPU before the run starts.
pub const MAX_WINDOWS: usize = 100_000;

/// The latest a timeline entry may start or last, in seconds (about 116
/// days, the longest time limit).
pub const MAX_ENTRY_SECONDS: f64 = 1e7;

fn too_many_windows() -> NemesisError {
    NemesisError::Schedule(format!(
        "more than {MAX_WINDOWS} faults in the time limit; lengthen the period between faults or shorten the time limit"
    ))
}

/// When to inject what.
#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    /// Every `every`, `fault` for `duration` (`duration < every`); the first
    /// fault starts after one quiet period.
    Periodic {
        /// Period.
        every: Duration,
        /// How long each fault lasts.
        duration: Duration,
        /// The fault.
        fault: FaultSpec,
    },
    /// Like periodic, each fault drawn from `faults`.
    Random {
        /// Period.
        every: Duration,
        /// How long each fault lasts.
        duration: Duration,
        /// The set to draw from.
        faults: Vec<FaultSpec>,
    },
    /// Explicit windows.
    Timeline(Vec<TimelineEntry>),
}

impl Schedule {
    /// Parses a timeline from JSON (an array of entries).
    pub fn timeline_from_json(text: &str) -> Result<Schedule> {
        let t: Vec<TimelineEntry> = serde_json::from_str(text)
            .map_err(|e| NemesisError::Schedule(format!("timeline: {e}")))?;
        Ok(Schedule::Timeline(t))
    }

    /// Expands the schedule over `horizon` into concrete windows, drawing
    /// shapes and targets from `seed`. Errors name the bad entry.
    pub fn windows(
        &self,
        nodes: &[String],
        primaries: &[String],
        horizon: Duration,
        seed: u64,
    ) -> Result<Vec<Window>> {
        let mut rng = Rng::new(seed);
        let mut out = Vec::new();
        match self {
            Schedule::Periodic {
                every,
                duration,
                fault,
            } => {
                check_rhythm(*every, *duration)?;
                let mut t = *every;
                while t + *duration <= horizon {
                    if out.len() == MAX_WINDOWS {
                        return Err(too_many_windows());
                    }
                    out.push(Window {
                        start: t,
                        end: t + *duration,
                        fault: draw(fault, nodes, primaries, &mut rng)?,
                    });
                    t += *every;
                }
            }
            Schedule::Random {
                every,
                duration,
                faults,
            } => {
                check_rhythm(*every, *duration)?;
                if faults.is_empty() {
                    return Err(NemesisError::Schedule("no faults to draw from".into()));
                }
                let mut t = *every;
                while t + *duration <= horizon {
                    if out.len() == MAX_WINDOWS {
                        return Err(too_many_windows());
                    }
                    let f = &faults[rng.index(faults.len())];
                    out.push(Window {
                        start: t,
                        end: t + *duration,
                        fault: draw(f, nodes, primaries, &mut rng)?,
                    });
                    t += *every;
                }
            }
            Schedule::Timeline(entries) => {
                for (i, e) in entries.iter().enumerate() {
                    if !(e.at >= 0.0
                        && e.duration > 0.0
                        && e.at <= MAX_ENTRY_SECONDS
                        && e.duration <= MAX_ENTRY_SECONDS)
                    {
                        return Err(NemesisError::Schedule(format!(
                            "entry {i}: need 0 <= at <= {MAX_ENTRY_SECONDS} and 0 < for <= {MAX_ENTRY_SECONDS} (got at {} for {})",
                            e.at, e.duration
                        )));
                    }
                    // Jepsen's rule: the nemesis acts within the main phase.
                    // An entry that would start after it is a mistake, not
                    // something to drop silently; one that ends after it is
                    // cut short (healed and recorded when the phase ends).
                    if Duration::from_secs_f64(e.at) >= horizon {
                        return Err(NemesisError::Schedule(format!(
                            "entry {i}: starts at {} s, not before the end of the main phase ({} s)",
                            e.at,
                            horizon.as_secs_f64()
                        )));
                    }
                    let start = Duration::from_secs_f64(e.at);
                    out.push(Window {
                        start,
                        end: start + Duration::from_secs_f64(e.duration),
                        fault: draw(&e.fault, nodes, primaries, &mut rng).map_err(|err| {
                            NemesisError::Schedule(match err {
                                NemesisError::Schedule(m) => format!("entry {i}: {m}"),
                                other => format!("entry {i}: {other}"),
                            })
                        })?,
                    });
                }
                out.sort_by_key(|w| w.start);
                for (i, a) in out.iter().enumerate() {
                    for b in &out[i + 1..] {
                        if a.fault.name() == b.fault.name() && b.start < a.end {
                            return Err(NemesisError::Schedule(format!(
                                "two {} faults overlap ({:?}-{:?} and {:?}-{:?})",
                                a.fault.name(),
                                a.start,
                                a.end,
                                b.start,
                                b.end
                            )));
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

fn check_rhythm(every: Duration, duration: Duration) -> Result<()> {
    if duration.is_zero() || duration >= every {
        return Err(NemesisError::Schedule(format!(
            "a fault of {duration:?} every {every:?}: the duration must be above zero and below the period"
        )));
    }
    Ok(())
}

/// Draws the nodes of a target.
pub fn targets(
    t: &Target,
    nodes: &[String],
    primaries: &[String],
    rng: &mut Rng,
) -> Result<Vec<String>> {
    let n = nodes.len();
    if n == 0 {
        return Err(NemesisError::NoTargets);
    }
    let mut sh = nodes.to_vec();
    rng.shuffle(&mut sh);
    let out = match t {
        Target::One => sh[..1].to_vec(),
        Target::Minority => sh[..((n - 1) / 2).max(1)].to_vec(),
        Target::Majority => sh[..(n / 2 + 1).min(n)].to_vec(),
        Target::All => nodes.to_vec(),
        Target::Primaries => {
            if primaries.is_empty() {
                return Err(NemesisError::Schedule(
                    "target `primaries`: the store reported no primaries".into(),
                ));
            }
            if let Some(x) = primaries.iter().find(|p| !nodes.contains(p)) {
                return Err(NemesisError::Schedule(format!(
                    "target `primaries` names node {x:?}, which is not in the lab (nodes: {})",
                    nodes.join(", ")
                )));
            }
            primaries.to_vec()
        }
        Target::Nodes(v) => {
            for x in v {
                if !nodes.contains(x) {
                    return Err(NemesisError::Schedule(format!(
                        "target names node {x:?}, which is not in the lab (nodes: {})",
                        nodes.join(", ")
                    )));
                }
            }
            v.clone()
        }
    };
    let mut out = out;
    out.sort();
    Ok(out)
}

/// Draws a concrete fault from a spec.
pub fn draw(f: &FaultSpec, nodes: &[String], primaries: &[String], rng: &mut Rng) -> Result<Fault> {
    Ok(match f {
        FaultSpec::Partition { shape } => {
            let s: Shape = shape.parse()?;
            Fault::Partition {
                grudge: grudge::grudge(&s, nodes, rng)?,
            }
        }
        FaultSpec::Loss { percent, target } => {
            if !(*percent > 0.0 && *percent <= 100.0) {
                return Err(NemesisError::BadPercent(*percent));
            }
            Fault::Loss {
                nodes: targets(target, nodes, primaries, rng)?,
                percent: *percent,
            }
        }
        FaultSpec::Delay {
            ms,
            jitter_ms,
            target,
        } => {
            super::delay::DelaySpec {
                ms: *ms,
                jitter_ms: *jitter_ms,
            }
            .validate()?;
            Fault::Delay {
                nodes: targets(target, nodes, primaries, rng)?,
                ms: *ms,
                jitter_ms: *jitter_ms,
            }
        }
        FaultSpec::Kill { target } => Fault::Kill {
            nodes: targets(target, nodes, primaries, rng)?,
        },
        FaultSpec::Pause { target } => Fault::Pause {
            nodes: targets(target, nodes, primaries, rng)?,
        },
        FaultSpec::Clock {
            mode,
            ms,
            period_ms,
            target,
        } => {
            super::clock::validate(*mode, *ms, *period_ms)?;
            Fault::Clock {
                nodes: targets(target, nodes, primaries, rng)?,
                mode: *mode,
                ms: *ms,
                period_ms: *period_ms,
            }
        }
    })
}

/// Start or end of a fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// The fault begins.
    Start,
    /// The fault is healed.
    End,
}

/// A fault event for the history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Offset from the run's start.
    pub time: Duration,
    /// Start or end.
    pub phase: Phase,
    /// The fault.
    pub fault: Fault,
}

impl Event {
    /// The history line (without `index`): `{"time":ns,"process":"nemesis",
    /// "type":"info","f":"partition","phase":"start","value":{...}}`.
    pub fn to_history(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(&self.fault).unwrap_or_default();
        if let Some(m) = value.as_object_mut() {
            m.remove("f");
        }
        let value = match (&self.fault, value) {
            (Fault::Partition { .. }, mut v) => v["grudge"].take(),
            (_, v) => v,
        };
        serde_json::json!({
            "time": self.time.as_nanos() as u64,
            "process": "nemesis",
            "type": "info",
            "f": self.fault.name(),
            "phase": self.phase,
            "value": value,
        })
    }
}

/// The start and end events of the windows, in time order (an end before a
/// start at the same instant).
pub fn events(windows: &[Window]) -> Vec<Event> {
    let mut ev: Vec<Event> = windows
        .iter()
        .flat_map(|w| {
            [
                Event {
                    time: w.start,
                    phase: Phase::Start,
                    fault: w.fault.clone(),
                },
                Event {
                    time: w.end,
                    phase: Phase::End,
                    fault: w.fault.clone(),
                },
            ]
        })
        .collect();
    ev.sort_by_key(|e| (e.time, e.phase == Phase::Start));
    ev
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("n{i}")).collect()
    }

    #[test]
    fn periodic() {
        let s = Schedule::Periodic {
            every: Duration::from_secs(10),
            duration: Duration::from_secs(3),
            fault: FaultSpec::Partition {
                shape: "majority".into(),
            },
        };
        let w = s
            .windows(&nodes(5), &[], Duration::from_secs(45), 1)
            .unwrap();
        assert_eq!(w.len(), 4);
        assert_eq!(w[0].start, Duration::from_secs(10));
        assert_eq!(w[3].end, Duration::from_secs(43));
        let ev = events(&w);
        assert_eq!(ev.len(), 8);
        assert_eq!(ev[0].phase, Phase::Start);
        assert_eq!(ev[1].phase, Phase::End);
        let h = ev[0].to_history();
        assert_eq!(h["f"], "partition");
        assert_eq!(h["process"], "nemesis");
        assert!(h["value"].is_object());
    }

    #[test]
    fn bad_rhythm() {
        let s = Schedule::Periodic {
            every: Duration::from_secs(3),
            duration: Duration::from_secs(3),
            fault: FaultSpec::Kill {
                target: Target::One,
            },
        };
        assert!(
            s.windows(&nodes(3), &[], Duration::from_secs(30), 1)
                .is_err()
        );
    }

    #[test]
    fn random_is_seeded() {
        let s = Schedule::Random {
            every: Duration::from_secs(5),
            duration: Duration::from_secs(2),
            faults: vec![
                FaultSpec::Kill {
                    target: Target::One,
                },
                FaultSpec::Pause {
                    target: Target::Minority,
                },
                FaultSpec::Loss {
                    percent: 20.0,
                    target: Target::Majority,
                },
                FaultSpec::Partition {
                    shape: "one".into(),
                },
            ],
        };
        let a = s
            .windows(&nodes(5), &[], Duration::from_secs(100), 9)
            .unwrap();
        let b = s
            .windows(&nodes(5), &[], Duration::from_secs(100), 9)
            .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 19);
        let kinds: std::collections::BTreeSet<&str> = a.iter().map(|w| w.fault.name()).collect();
        assert!(kinds.len() >= 3);
        for w in &a {
            if let Fault::Pause { nodes } = &w.fault {
                assert_eq!(nodes.len(), 2);
            }
            if let Fault::Loss { nodes, .. } = &w.fault {
                assert_eq!(nodes.len(), 3);
            }
        }
    }

    #[test]
    fn timeline() {
        let s = Schedule::timeline_from_json(
            r#"[{"at": 5, "for": 2, "fault": {"fault": "kill", "target": {"nodes": ["n2"]}}},
                {"at": 1, "for": 2, "fault": {"fault": "delay", "ms": 50, "target": "all"}}]"#,
        )
        .unwrap();
        let w = s
            .windows(&nodes(3), &[], Duration::from_secs(60), 0)
            .unwrap();
        assert_eq!(w[0].fault.name(), "delay");
        assert_eq!(
            w[1].fault,
            Fault::Kill {
                nodes: vec!["n2".into()]
            }
        );
        let bad = Schedule::timeline_from_json(
            r#"[{"at": 0, "for": 2, "fault": {"fault": "kill", "target": {"nodes": ["n9"]}}}]"#,
        )
        .unwrap();
        let e = bad
            .windows(&nodes(3), &[], Duration::from_secs(60), 0)
            .unwrap_err();
        assert!(e.to_string().contains("n9"), "{e}");
        let overlap = Schedule::timeline_from_json(
            r#"[{"at": 0, "for": 5, "fault": {"fault": "partition", "shape": "one"}},
                {"at": 3, "for": 5, "fault": {"fault": "partition", "shape": "bridge"}}]"#,
        )
        .unwrap();
        assert!(
            overlap
                .windows(&nodes(3), &[], Duration::from_secs(60), 0)
                .is_err()
        );
        assert!(Schedule::timeline_from_json("{").is_err());
    }

    #[test]
    fn clock_entries_parse_validate_and_record() {
        let s = Schedule::timeline_from_json(
            r#"[{"at": 1, "for": 2, "fault": {"fault": "clock", "mode": "bump", "ms": -200, "target": "one"}},
                {"at": 4, "for": 2, "fault": {"fault": "clock", "mode": "strobe", "ms": 1500, "period_ms": 10, "target": "all"}}]"#,
        )
        .unwrap();
        let w = s
            .windows(&nodes(3), &[], Duration::from_secs(60), 0)
            .unwrap();
        assert!(matches!(
            &w[0].fault,
            Fault::Clock { nodes, mode: ClockMode::Bump, ms: -200, period_ms: 0 } if nodes.len() == 1
        ));
        let h = events(&w)[2].to_history();
        assert_eq!(h["f"], "clock");
        assert_eq!(h["value"]["mode"], "strobe");
        assert_eq!(h["value"]["ms"], 1500);
        assert_eq!(h["value"]["period_ms"], 10);
        assert_eq!(h["value"]["nodes"].as_array().map(Vec::len), Some(3));
        // A bump records no period.
        assert!(
            events(&w)[0].to_history()["value"]
                .get("period_ms")
                .is_none()
        );
        for bad in [
            r#"{"fault": "clock", "mode": "bump", "ms": 0, "target": "one"}"#,
            r#"{"fault": "clock", "mode": "strobe", "ms": 5, "target": "one"}"#,
            r#"{"fault": "clock", "mode": "skew", "ms": 5, "period_ms": 3, "target": "one"}"#,
        ] {
            let t = Schedule::timeline_from_json(&format!(
                r#"[{{"at": 0, "for": 1, "fault": {bad}}}]"#
            ))
            .unwrap();
            let e = t
                .windows(&nodes(3), &[], Duration::from_secs(60), 0)
                .unwrap_err();
            assert!(e.to_string().contains("entry 0: clock"), "{e}");
        }
        assert!(
            Schedule::timeline_from_json(
                r#"[{"at": 0, "for": 1, "fault": {"fault": "clock", "mode": "drift", "ms": 5, "target": "one"}}]"#
            )
            .is_err()
        );
    }

    #[test]
    fn primaries_need_a_store() {
        let mut rng = Rng::new(1);
        assert!(targets(&Target::Primaries, &nodes(3), &[], &mut rng).is_err());
        assert_eq!(
            targets(&Target::Primaries, &nodes(3), &["n2".into()], &mut rng).unwrap(),
            vec!["n2".to_string()]
        );
    }
}
