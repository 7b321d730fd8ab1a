//! A deadline on each intermediate state: every row that entered it left it, and the time
//! spent there sets the deadline (the longest seen, with a margin, rounded up). A state
//! rows stay in for good is not intermediate and gets none.

use fundguard_core::{Op, Value};

use super::{
    Body, Context, Kind, Skipped, Suggestion, Suggestions, TestCase, TestEvent, class_confidence, confidence,
    duration_text, nice_up, sql_text,
};

pub struct Timeout;

/// Deadlines are never shorter than this.
const MIN_WITHIN: i64 = 60_000_000;

impl Kind for Timeout {
    fn name(&self) -> &'static str {
        "timeout"
    }

    fn suggest(&self, cx: &Context<'_>, out: &mut Suggestions) {
        for (name, table, profile) in cx.tables() {
            let (Some(status), Some(id)) = (&table.status, &table.id) else { continue };
            let Some(states) = profile.states.as_ref() else { continue };
            for state in &states.states {
                let subject = format!("{name}.{status} = {state}");
                let Some(left) = states.durations.get(state) else {
                    continue; // never left: a final state
                };
                if (left.count as u64) < cx.options.min_rows {
                    out.skipped.push(Skipped {
                        kind: self.name(),
                        subject,
                        reason: format!(
                            "left only {} time(s); at least {} are needed",
                            left.count, cx.options.min_rows
                        ),
                    });
                    continue;
                }
                let p99 = left.p99_ms * 1000;
                let within =
                    nice_up((left.max_micros.saturating_mul(3) / 2).max(p99.saturating_mul(2)).max(MIN_WITHIN));
                let staying = states.still_in.get(state).map_or(0, |s| {
                    // Rows still there, longer than the deadline, at the end of the sample.
                    s.count as u64 * u64::from(s.max_micros > within)
                });
                if staying > 0 {
                    out.skipped.push(Skipped {
                        kind: self.name(),
                        subject,
                        reason: format!(
                            "rows stay in {state} longer than {} (up to {} ms by the end of the sample): not an intermediate state",
                            duration_text(within),
                            states.still_in.get(state).map_or(0, |s| s.max_ms)
                        ),
                    });
                    continue;
                }
                let next = states
                    .transitions
                    .iter()
                    .filter(|((a, _), _)| a == state)
                    .max_by_key(|(_, n)| **n)
                    .map(|((_, b), _)| b.clone());
                let evidence = vec![
                    format!(
                        "{} rows left {state}: p50 {} ms, p90 {} ms, p99 {} ms, max {} ms",
                        left.count, left.p50_ms, left.p90_ms, left.p99_ms, left.max_ms
                    ),
                    format!(
                        "deadline {}: the longer of 1.5 x the longest and 2 x p99, rounded up (at least 1m)",
                        duration_text(within)
                    ),
                ];
                let key = states
                    .path_examples
                    .iter()
                    .find(|(_, p)| p.iter().any(|(s, _)| s == state))
                    .map(|(k, _)| k.clone())
                    .unwrap_or(Value::Int(1));
                let row = |s: &str| vec![(id.clone(), key.clone()), (status.clone(), Value::String(s.to_string()))];
                let tests = next
                    .map(|next| {
                        vec![
                            TestCase {
                                name: format!("left {state} at the deadline"),
                                events: vec![
                                    TestEvent { at: 0, table: name.clone(), op: Op::Update, after: row(state) },
                                    TestEvent { at: within, table: name.clone(), op: Op::Update, after: row(&next) },
                                ],
                                expect: vec![],
                            },
                            TestCase {
                                name: format!("left {state} a second late"),
                                events: vec![
                                    TestEvent { at: 0, table: name.clone(), op: Op::Update, after: row(state) },
                                    TestEvent {
                                        at: within + 1_000_000,
                                        table: name.clone(),
                                        op: Op::Update,
                                        after: row(&next),
                                    },
                                ],
                                expect: vec![vec![(id.clone(), key.clone())]],
                            },
                        ]
                    })
                    .unwrap_or_default();
                let status_sql = format!("after.{status}");
                out.made.push(Suggestion {
                    id: super::rule_id(&format!("{}-stuck-in-{state}", super::short(name))),
                    kind: self.name(),
                    tables: vec![name.clone()],
                    columns: vec![format!("{name}.{status}")],
                    invariant: format!("{} rows leave {state} within {}.", super::short(name), duration_text(within)),
                    evidence,
                    confidence: confidence(left.count as u64, class_confidence(table, status)),
                    review: Vec::new(),
                    owner: cx.owner(name),
                    severity: "high",
                    tags: vec!["status".into(), "timeliness".into(), "suggested".into()],
                    body: Body::Timeout {
                        table: name.clone(),
                        key: format!("after.{id}"),
                        enter: format!("{status_sql} = {}", sql_text(state)),
                        exit: format!("{status_sql} <> {}", sql_text(state)),
                        within,
                        money: cx.headline_amount(table).and_then(|m| super::money_of(table, &m)),
                    },
                    tests,
                });
            }
        }
    }
}
