//! Failure rates per dimension value (a payment channel) over tumbling windows: the states
//! whose names say failure, against the other outcomes reached from the same states, with
//! the threshold set above the worst window of the sample.

use std::collections::BTreeMap;

use fundguard_core::{Decimal, Op, Value};

use super::{
    Body, Context, Kind, Skipped, Suggestion, Suggestions, TestCase, TestEvent, class_confidence, confidence,
    duration_text, sql_text,
};

pub struct FailureRate;

/// Words in a state's name that make it a failure.
const FAILURE_WORDS: &[&str] =
    &["FAIL", "ERROR", "DECLIN", "REJECT", "TIMEOUT", "TIMED_OUT", "ABORT", "DENIED", "BOUNCE"];

impl Kind for FailureRate {
    fn name(&self) -> &'static str {
        "failure_rate"
    }

    fn suggest(&self, cx: &Context<'_>, out: &mut Suggestions) {
        let window = cx.options.rate_window_micros.max(crate::profile::MINUTE);
        let minutes = window / crate::profile::MINUTE;
        for (name, table, profile) in cx.tables() {
            let (Some(status), Some(id)) = (&table.status, &table.id) else { continue };
            let Some(states) = profile.states.as_ref() else { continue };
            for failure in states.states.iter().filter(|s| is_failure(s)) {
                // The outcomes: every state reached from where failures come from.
                let sources: Vec<&String> =
                    states.transitions.keys().filter(|(_, b)| b == failure).map(|(a, _)| a).collect();
                let mut outcomes: Vec<String> =
                    states.transitions.keys().filter(|(a, _)| sources.contains(&a)).map(|(_, b)| b.clone()).collect();
                outcomes.sort();
                outcomes.dedup();
                if outcomes.len() < 2 {
                    out.skipped.push(Skipped {
                        kind: self.name(),
                        subject: format!("{name}.{status} = {failure}"),
                        reason: "no other outcome is reached from the states failures come from".into(),
                    });
                    continue;
                }
                let outcome_at: Vec<u16> = outcomes.iter().filter_map(|o| states.state_index(o)).collect();
                let Some(failure_at) = states.state_index(failure) else { continue };
                for (d, dimension) in states.dimension_columns.iter().enumerate() {
                    let subject = format!("{name}.{status} = {failure} by {dimension}");
                    if !states.dimensions.contains_key(dimension) {
                        out.skipped.push(Skipped {
                            kind: self.name(),
                            subject,
                            reason: format!(
                                "{dimension} has more than {} values: not a dimension",
                                crate::profile::states::MAX_DIMENSION_VALUES
                            ),
                        });
                        continue;
                    }
                    // (value, window) → (outcomes, failures).
                    let mut windows: BTreeMap<(String, i64), (u64, u64)> = BTreeMap::new();
                    for ((dim, value, minute), counts) in &states.rates {
                        if *dim != d {
                            continue;
                        }
                        let slot = windows.entry((value.clone(), minute.div_euclid(minutes))).or_default();
                        for (s, n) in counts {
                            if outcome_at.contains(s) {
                                slot.0 += n;
                                if *s == failure_at {
                                    slot.1 += n;
                                }
                            }
                        }
                    }
                    let total: u64 = windows.values().map(|(n, _)| n).sum();
                    let failed: u64 = windows.values().map(|(_, f)| f).sum();
                    if total < cx.options.min_rows || failed == 0 {
                        out.skipped.push(Skipped {
                            kind: self.name(),
                            subject,
                            reason: format!("{total} outcome(s), {failed} failure(s): too few to set a baseline"),
                        });
                        continue;
                    }
                    let mut volumes: Vec<u64> = windows.values().map(|(n, _)| *n).filter(|n| *n > 0).collect();
                    volumes.sort_unstable();
                    let median = volumes.get(volumes.len() / 2).copied().unwrap_or(0);
                    let min_volume = (median / 2).clamp(10, 100);
                    let judged: Vec<(u64, u64)> = windows.values().copied().filter(|(n, _)| *n >= min_volume).collect();
                    if judged.len() < 3 {
                        out.skipped.push(Skipped {
                            kind: self.name(),
                            subject,
                            reason: format!(
                                "only {} window(s) of {} with at least {min_volume} outcomes: no baseline",
                                judged.len(),
                                duration_text(window)
                            ),
                        });
                        continue;
                    }
                    let ratio = |(n, f): (u64, u64)| Decimal::from(f) / Decimal::from(n.max(1));
                    let baseline = ratio((total, failed));
                    let worst = judged.iter().map(|c| ratio(*c)).max().unwrap_or_default();
                    let hundredth = Decimal::new(1, 2);
                    // Above the worst window by half again, at least 10 points over the baseline.
                    let raw = (worst * Decimal::new(15, 1)).max(baseline + Decimal::new(10, 2)).max(worst + hundredth);
                    let max_ratio = round_up_hundredths(raw).min(Decimal::new(95, 2));
                    if max_ratio <= worst {
                        out.skipped.push(Skipped {
                            kind: self.name(),
                            subject,
                            reason: format!(
                                "the worst window already failed {}: no threshold above it",
                                worst.round_dp(4)
                            ),
                        });
                        continue;
                    }
                    let values = &states.dimensions[dimension];
                    let in_list: Vec<String> = outcomes.iter().map(|o| sql_text(o)).collect();
                    let status_sql = format!("after.{status}");
                    let value = values.first().cloned().unwrap_or_default();
                    let tests = tests(name, id, status, dimension, &value, failure, &outcomes, min_volume, window);
                    out.made.push(Suggestion {
                        id: super::rule_id(&format!("{}-{failure}-rate-by-{dimension}", super::short(name))),
                        kind: self.name(),
                        tables: vec![name.clone()],
                        columns: vec![format!("{name}.{status}"), format!("{name}.{dimension}")],
                        invariant: format!(
                            "No {dimension} of {} ends in {failure} more than {} of the time in a {} window (at least {min_volume} outcomes).",
                            super::short(name),
                            percent(max_ratio),
                            duration_text(window)
                        ),
                        evidence: vec![
                            format!("baseline: {failed} of {total} outcomes ({}) were {failure}", percent(baseline.round_dp(4))),
                            format!(
                                "{} windows of {} judged (at least {min_volume} outcomes, half the median volume {median}); the worst failed {}",
                                judged.len(),
                                duration_text(window),
                                percent(worst.round_dp(4))
                            ),
                            format!("{dimension} values: {}", values.join(", ")),
                        ],
                        confidence: confidence(total, class_confidence(table, status)).min(90),
                        review: Vec::new(),
                        owner: cx.owner(name),
                        severity: "high",
                        tags: vec!["rate".into(), "suggested".into()],
                        body: Body::Rate {
                            table: name.clone(),
                            when: format!("{status_sql} IN ({})", in_list.join(", ")),
                            group: format!("after.{dimension}"),
                            numerator: format!("{status_sql} = {}", sql_text(failure)),
                            window,
                            min_volume,
                            max_ratio,
                        },
                        tests,
                    });
                }
            }
        }
    }
}

fn is_failure(state: &str) -> bool {
    let upper = state.to_uppercase();
    FAILURE_WORDS.iter().any(|w| upper.contains(w))
}

fn round_up_hundredths(d: Decimal) -> Decimal {
    let hundredths = (d * Decimal::from(100)).ceil();
    hundredths / Decimal::from(100)
}

/// `0.35` → `35%`.
fn percent(d: Decimal) -> String {
    format!("{}%", (d * Decimal::from(100)).normalize())
}

/// `min_volume` successes pass; `min_volume` failures in one window are a finding.
#[allow(clippy::too_many_arguments)]
fn tests(
    table: &str,
    id: &str,
    status: &str,
    dimension: &str,
    value: &str,
    failure: &str,
    outcomes: &[String],
    min_volume: u64,
    window: i64,
) -> Vec<TestCase> {
    let Some(success) = outcomes.iter().find(|o| *o != failure) else { return Vec::new() };
    let timeline = |state: &str| {
        let mut events: Vec<TestEvent> = (0..min_volume as i64)
            .map(|i| TestEvent {
                at: i * 1_000_000,
                table: table.to_string(),
                op: Op::Update,
                after: vec![
                    (id.to_string(), Value::Int(i + 1)),
                    (dimension.to_string(), Value::String(value.to_string())),
                    (status.to_string(), Value::String(state.to_string())),
                ],
            })
            .collect();
        // A row after the window closes it.
        events.push(TestEvent {
            at: window + 1_000_000,
            table: table.to_string(),
            op: Op::Update,
            after: vec![
                (id.to_string(), Value::Int(min_volume as i64 + 1)),
                (dimension.to_string(), Value::String(value.to_string())),
                (status.to_string(), Value::String(success.clone())),
            ],
        });
        events
    };
    vec![
        TestCase { name: format!("{min_volume} x {success} on {value}"), events: timeline(success), expect: vec![] },
        TestCase {
            name: format!("{min_volume} x {failure} on {value}"),
            events: timeline(failure),
            expect: vec![vec![(dimension.to_string(), Value::String(value.to_string()))]],
        },
    ]
}
