//! The state machine of a status column, from the observed transitions. Rare transitions
//! (at most one in a thousand) are not made legal: they are named for review, and the
//! backtest shows them as findings.

use std::collections::BTreeMap;

use fundguard_core::{Op, Value};

use super::{Body, Context, Kind, Skipped, Suggestion, Suggestions, TestCase, TestEvent, class_confidence, confidence};

pub struct StateMachine;

impl Kind for StateMachine {
    fn name(&self) -> &'static str {
        "state_machine"
    }

    fn suggest(&self, cx: &Context<'_>, out: &mut Suggestions) {
        for (name, table, profile) in cx.tables() {
            let (Some(status), Some(id)) = (&table.status, &table.id) else { continue };
            let Some(states) = profile.states.as_ref() else { continue };
            let subject = format!("{name}.{status}");
            let total: u64 = states.transitions.values().sum();
            if total < cx.options.min_rows {
                out.skipped.push(Skipped {
                    kind: self.name(),
                    subject,
                    reason: format!("only {total} transition(s) seen; at least {} are needed", cx.options.min_rows),
                });
                continue;
            }
            let rare = |n: u64, of: u64| n.saturating_mul(1000) <= of;
            let mut allowed: BTreeMap<String, Vec<String>> = BTreeMap::new();
            let mut flagged = Vec::new();
            for ((from, to), n) in &states.transitions {
                if rare(*n, total) {
                    flagged.push(format!("{from} -> {to} ({n} of {total})"));
                } else {
                    allowed.entry(from.clone()).or_default().push(to.clone());
                }
            }
            let inserted: u64 = states.initial.values().sum();
            let initial: Vec<String> = if states.first_seen_by_update == 0 && inserted >= cx.options.min_rows {
                states.initial.iter().filter(|(_, n)| !rare(**n, inserted)).map(|(s, _)| s.clone()).collect()
            } else {
                Vec::new()
            };
            for (s, n) in &states.initial {
                if !initial.contains(s) && !initial.is_empty() {
                    flagged.push(format!("born {s} ({n} of {inserted})"));
                }
            }
            let moves: Vec<String> = allowed.iter().map(|(from, to)| format!("{from} -> {}", to.join(" | "))).collect();
            let mut evidence = vec![
                format!("{total} transitions of {} states: {}", states.states.len(), moves.join("; ")),
                format!(
                    "counts: {}",
                    states.transitions.iter().map(|((a, b), n)| format!("{a}->{b} {n}")).collect::<Vec<_>>().join(", ")
                ),
            ];
            if !initial.is_empty() {
                evidence.push(format!("rows are inserted in {}", initial.join(" or ")));
            }
            if let Some((path, n)) = states.paths.first() {
                evidence.push(format!("most common path: {} ({n} rows)", path.join(" -> ")));
            }
            let review: Vec<String> =
                flagged.iter().map(|f| format!("rare, left out (legalise it only if it is legal): {f}")).collect();
            let tests = tests(name, id, status, states, &allowed);
            out.made.push(Suggestion {
                id: super::rule_id(&format!("{}-state-machine", super::short(name))),
                kind: self.name(),
                tables: vec![name.clone()],
                columns: vec![subject],
                invariant: format!(
                    "{} rows move only along the observed lifecycle: {}.",
                    super::short(name),
                    moves.join("; ")
                ),
                evidence,
                confidence: confidence(total, class_confidence(table, status)),
                review,
                owner: cx.owner(name),
                severity: "critical",
                tags: vec!["status".into(), "suggested".into()],
                body: Body::Transition {
                    table: name.clone(),
                    key: format!("after.{id}"),
                    status: format!("after.{status}"),
                    initial,
                    allowed,
                },
                tests,
            });
        }
    }
}

/// The most common real path passes; the same entity then moving from its last state to a
/// state not allowed from there is a finding.
fn tests(
    table: &str,
    id: &str,
    status: &str,
    states: &crate::profile::StateProfile,
    allowed: &BTreeMap<String, Vec<String>>,
) -> Vec<TestCase> {
    let Some((key, path)) = states.path_examples.first() else { return Vec::new() };
    let Some((first_at, last)) = path.first().map(|(_, t)| *t).zip(path.last()) else { return Vec::new() };
    let events: Vec<TestEvent> = path
        .iter()
        .enumerate()
        .map(|(i, (s, at))| TestEvent {
            at: at - first_at,
            table: table.to_string(),
            op: if i == 0 { Op::Insert } else { Op::Update },
            after: vec![(id.to_string(), key.clone()), (status.to_string(), Value::String(s.clone()))],
        })
        .collect();
    let last_state = &last.0;
    let legal = allowed.get(last_state);
    let Some(illegal) = states.states.iter().find(|s| *s != last_state && legal.is_none_or(|l| !l.contains(s))) else {
        return vec![TestCase { name: "the most common real path".into(), events, expect: vec![] }];
    };
    let end = events.last().map_or(0, |e| e.at);
    let mut bad = events.clone();
    bad.push(TestEvent {
        at: end + 1_000_000,
        table: table.to_string(),
        op: Op::Update,
        after: vec![(id.to_string(), key.clone()), (status.to_string(), Value::String(illegal.clone()))],
    });
    vec![
        TestCase { name: "the most common real path".into(), events, expect: vec![] },
        TestCase {
            name: format!("{last_state} -> {illegal} was never seen"),
            events: bad,
            expect: vec![vec![(id.to_string(), key.clone())]],
        },
    ]
}
