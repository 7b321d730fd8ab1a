//! Reconciliations between related tables (coverage's relations). For each relation the
//! pair of states that matched best is chosen — every referencing row found its
//! counterpart and, one to one, the amounts (and currencies) were equal; or, one to many,
//! the referencing amounts added up to at most the referenced one — and the window comes
//! from the observed delays.

use fundguard_core::{Decimal, Op, Value};

use super::{
    Body, Cardinality, Context, Kind, Side, Skipped, Suggestion, Suggestions, TestCase, TestEvent, class_confidence,
    confidence, duration_text, sql_text, within_tolerance,
};
use crate::profile::{AmountPair, RelationProfile, StatePair};

pub struct Reconcile;

/// How the two sides relate.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Form {
    /// One referencing row per referenced row, same amount.
    Equal,
    /// Many referencing rows whose amounts add up to at most the referenced amount.
    SumWithin,
}

pub(super) struct Candidate<'p> {
    pub pair: &'p StatePair,
    pub form: Form,
    pub amount: &'p AmountPair,
    pub currencies: Vec<(&'p str, &'p str)>,
    pub within: i64,
    unmatched_from: usize,
    unmatched_to: usize,
    /// Final states first, then the most matches, then final counterparts, then the nearest in time.
    score: (bool, u64, bool, std::cmp::Reverse<i64>),
}

impl Kind for Reconcile {
    fn name(&self) -> &'static str {
        "reconcile"
    }

    fn suggest(&self, cx: &Context<'_>, out: &mut Suggestions) {
        for relation in &cx.profile.relations {
            let subject = format!("{}.{} -> {}", relation.from, relation.via, relation.to);
            let Some(c) = choose(cx, relation) else {
                out.skipped.push(Skipped {
                    kind: self.name(),
                    subject,
                    reason: format!(
                        "no pair of states where at least {} rows matched and their amounts agreed (equal one to one, or adding up to at most the referenced amount)",
                        cx.options.min_rows
                    ),
                });
                continue;
            };
            if let Some(s) = suggestion(cx, relation, &c) {
                out.made.push(s);
            }
        }
    }
}

/// The pair of states a relation is reconciled on: final states first, then the most
/// matches, then final counterparts, then the nearest in time; `None` when no pair matched
/// on at least `--min-rows` rows with amounts that agreed. The D+1 totals read it too.
pub(super) fn choose<'p>(cx: &Context<'p>, relation: &'p RelationProfile) -> Option<Candidate<'p>> {
    let end = cx.profile.last.map_or(0, |t| t.as_micros());
    let terminal = |table: &str, state: &str| {
        state.is_empty()
            || cx
                .profile
                .tables
                .get(table)
                .and_then(|t| t.states.as_ref())
                .is_none_or(|s| !s.transitions.keys().any(|(a, _)| a == state))
    };
    let mut best: Option<Candidate<'_>> = None;
    for pair in &relation.pairs {
        if pair.matched < cx.options.min_rows {
            continue;
        }
        let within = super::window(pair.delay.max_micros);
        let due = |times: &[i64]| times.iter().filter(|t| t.saturating_add(within) <= end).count();
        let (unmatched_from, unmatched_to) = (due(&pair.unmatched_from), due(&pair.unmatched_to));
        let from_ok = within_tolerance(unmatched_from as u64, pair.from_rows);
        let to_ok = within_tolerance(unmatched_to as u64, pair.to_rows);
        let one_to_one = pair.keys_with_many == 0;
        let equal = best_amount(&pair.amounts, cx.options.min_rows, |a| (a.compared, a.compared - a.equal));
        let sum =
            best_amount(&pair.amounts, cx.options.min_rows, |a| (a.sums_compared, a.sums_compared - a.sums_within));
        let (form, amount) = match (equal, sum) {
            (Some(a), _) if one_to_one && from_ok && to_ok => (Form::Equal, a),
            (_, Some(a)) if from_ok => (Form::SumWithin, a),
            _ => continue,
        };
        let currencies = pair
            .currencies
            .iter()
            .filter(|c| c.compared >= cx.options.min_rows && within_tolerance(c.compared - c.equal, c.compared))
            .map(|c| (c.from_column.as_str(), c.to_column.as_str()))
            .collect();
        let score = (
            terminal(&relation.from, &pair.from_state),
            pair.matched,
            terminal(&relation.to, &pair.to_state),
            std::cmp::Reverse(pair.delay.max_micros),
        );
        if best.as_ref().is_none_or(|b| score > b.score) {
            best = Some(Candidate { pair, form, amount, currencies, within, unmatched_from, unmatched_to, score });
        }
    }
    best
}

/// The amount pair that held best (exceptions within tolerance), same column name first.
fn best_amount(
    amounts: &[AmountPair],
    min_rows: u64,
    figures: impl Fn(&AmountPair) -> (u64, u64),
) -> Option<&AmountPair> {
    amounts
        .iter()
        .filter(|a| {
            let (compared, exceptions) = figures(a);
            compared >= min_rows && within_tolerance(exceptions, compared)
        })
        .max_by_key(|a| {
            let (compared, exceptions) = figures(a);
            (a.from_column == a.to_column, compared - exceptions, std::cmp::Reverse(a.from_column.clone()))
        })
}

fn suggestion(cx: &Context<'_>, relation: &RelationProfile, c: &Candidate<'_>) -> Option<Suggestion> {
    let from_layout = cx.layout.table(&relation.from)?;
    let to_layout = cx.layout.table(&relation.to)?;
    let to_id = to_layout.id.clone()?;
    let pair = c.pair;
    let state_when = |layout: &crate::layout::TableLayout, state: &str| {
        layout.status.as_ref().filter(|_| !state.is_empty()).map(|s| format!("after.{s} = {}", sql_text(state)))
    };
    let (fa, tb) = (&c.amount.from_column, &c.amount.to_column);
    let integer_keys = pair.example.as_ref().is_some_and(|e| matches!(e.via, Value::Int(_)));
    let from_side = |required| Side {
        table: relation.from.clone(),
        key: format!("after.{}", relation.via),
        when: state_when(from_layout, &pair.from_state),
        required,
    };
    let to_side = |required| Side {
        table: relation.to.clone(),
        key: format!("after.{to_id}"),
        when: state_when(to_layout, &pair.to_state),
        required,
    };
    let from_name = super::short(&relation.from);
    let to_name = super::short(&relation.to);
    let state_words = |table: &str, state: &str| {
        if state.is_empty() { format!("every {table} row") } else { format!("{table} in {state}") }
    };
    let mut evidence = vec![
        format!(
            "{} of {} {} found {} ({} unmatched past the window); {} of {} {} were referenced",
            pair.matched,
            pair.from_rows,
            state_words(from_name, &pair.from_state),
            state_words(to_name, &pair.to_state),
            c.unmatched_from,
            pair.to_rows - c.unmatched_to as u64,
            pair.to_rows,
            state_words(to_name, &pair.to_state),
        ),
        format!(
            "delay between the two sides: p50 {} ms, p90 {} ms, p99 {} ms, max {} ms; window {}",
            pair.delay.p50_ms,
            pair.delay.p90_ms,
            pair.delay.p99_ms,
            pair.delay.max_ms,
            duration_text(c.within)
        ),
    ];
    for a in &pair.amounts {
        // Pairs that never agreed are noise, unless one ratio explains most of them (a
        // constant 100 or 0.01 is the same amount in another unit).
        let dominant = a.unequal_ratios.iter().max_by_key(|(_, n)| **n).filter(|(_, n)| **n * 2 > a.compared);
        if a.equal == 0 && dominant.is_none() && !std::ptr::eq(a, c.amount) {
            continue;
        }
        let mut line =
            format!("{from_name}.{} = {to_name}.{}: {} of {}", a.from_column, a.to_column, a.equal, a.compared);
        if a.sums_compared > 0 && c.form == Form::SumWithin {
            line.push_str(&format!("; sum within on {} of {} keys", a.sums_within, a.sums_compared));
        }
        if let Some((r, n)) = dominant {
            line.push_str(&format!("; otherwise a constant ratio {r} on {n} (the same amount in another unit)"));
        }
        evidence.push(line);
    }
    for cur in &pair.currencies {
        evidence.push(format!(
            "{from_name}.{} = {to_name}.{}: {} of {}",
            cur.from_column, cur.to_column, cur.equal, cur.compared
        ));
    }
    let currency_expect: Vec<String> = c.currencies.iter().map(|(f, t)| format!("left.{f} = right.{t}")).collect();
    let example = pair.example.as_ref()?;
    let col = |columns: &[String], name: &str, values: &[Value]| {
        columns.iter().position(|c| c == name).and_then(|i| values.get(i)).cloned().unwrap_or_default()
    };
    let (from_key, from_visit) = example.from.first()?;
    let (to_key, to_visit) = &example.to;
    let base = from_visit.at.min(to_visit.at);
    let from_row = |amount: Value| {
        let mut row = vec![];
        if let Some(id) = &from_layout.id {
            row.push((id.clone(), from_key.clone()));
        }
        row.push((relation.via.clone(), example.via.clone()));
        if let Some(s) = from_layout.status.as_ref().filter(|_| !pair.from_state.is_empty()) {
            row.push((s.clone(), Value::String(pair.from_state.clone())));
        }
        row.push((fa.clone(), amount));
        for (f, _) in &c.currencies {
            row.push((f.to_string(), col(&example.from_columns, f, &from_visit.values)));
        }
        row
    };
    let to_row = |amount: Value| {
        let mut row = vec![(to_id.clone(), to_key.clone())];
        if let Some(s) = to_layout.status.as_ref().filter(|_| !pair.to_state.is_empty()) {
            row.push((s.clone(), Value::String(pair.to_state.clone())));
        }
        row.push((tb.clone(), amount));
        for (_, t) in &c.currencies {
            row.push((t.to_string(), col(&example.to_columns, t, &to_visit.values)));
        }
        row
    };
    let real_from = col(&example.from_columns, fa, &from_visit.values);
    let real_to = col(&example.to_columns, tb, &to_visit.values);
    let plus_one = |v: &Value| match v {
        Value::Int(i) => Value::Int(i.saturating_add(1)),
        Value::Decimal(d) => Value::Decimal(d.checked_add(Decimal::ONE).unwrap_or(*d)),
        other => other.clone(),
    };
    let event =
        |at: i64, table: &str, after| TestEvent { at: at - base, table: table.to_string(), op: Op::Update, after };
    let conf = class_confidence(from_layout, fa).min(class_confidence(to_layout, tb));
    let (id, invariant, body, tests) = match c.form {
        Form::Equal => {
            let mut expect = vec![format!("left.{fa} = right.{tb}")];
            expect.extend(currency_expect);
            let key = vec![(relation.via.clone(), example.via.clone())];
            let passing = vec![
                event(from_visit.at, &relation.from, from_row(real_from.clone())),
                event(to_visit.at, &relation.to, to_row(real_to.clone())),
            ];
            let failing = vec![
                event(from_visit.at, &relation.from, from_row(real_from.clone())),
                event(to_visit.at, &relation.to, to_row(plus_one(&real_to))),
            ];
            let money_currency = c.currencies.first().map(|(f, t)| format!("coalesce(left.{f}, right.{t})"));
            (
                format!("{from_name}-matches-{to_name}"),
                format!(
                    "Every {} has {} within {} for the same {fa}{}, and every {} has one {}.",
                    state_words(from_name, &pair.from_state),
                    state_words(to_name, &pair.to_state),
                    duration_text(c.within),
                    if c.currencies.is_empty() { "" } else { " and currency" },
                    state_words(to_name, &pair.to_state),
                    state_words(from_name, &pair.from_state),
                ),
                Body::Reconcile {
                    left: from_side(true),
                    right: to_side(true),
                    within: c.within,
                    integer_keys,
                    cardinality: Cardinality::OneToOne,
                    message: None,
                    aggregates: Vec::new(),
                    expect: expect.join(" AND "),
                    money: Some((format!("coalesce(left.{fa}, right.{tb})"), money_currency)),
                },
                vec![
                    TestCase { name: "a real matched pair".into(), events: passing, expect: vec![] },
                    TestCase {
                        name: format!("{to_name}.{tb} one more than {from_name}.{fa}"),
                        events: failing,
                        expect: vec![key],
                    },
                ],
            )
        }
        Form::SumWithin => {
            let key = vec![(to_id.clone(), to_key.clone())];
            let passing = vec![
                event(to_visit.at, &relation.to, to_row(real_to.clone())),
                event(from_visit.at.max(to_visit.at), &relation.from, from_row(real_from.clone())),
            ];
            let failing = vec![
                event(to_visit.at, &relation.to, to_row(real_to.clone())),
                event(from_visit.at.max(to_visit.at), &relation.from, from_row(plus_one(&real_to))),
            ];
            let currency = to_layout.currencies.first().map(|c| format!("left.{c}"));
            let _ = currency_expect;
            (
                format!("{from_name}-within-{to_name}"),
                format!(
                    "The {} of one {} never add up to more than its {tb}, and each has its {} within {}.",
                    state_words(from_name, &pair.from_state),
                    to_name,
                    state_words(to_name, &pair.to_state),
                    duration_text(c.within),
                ),
                Body::Reconcile {
                    left: to_side(true),
                    right: from_side(false),
                    within: c.within,
                    integer_keys,
                    cardinality: Cardinality::OneToMany,
                    message: None,
                    aggregates: vec![
                        ("total".into(), format!("sum(right.{fa})")),
                        ("rows".into(), "count(right)".into()),
                    ],
                    expect: format!("agg.total <= left.{tb}"),
                    money: Some((format!("agg.total - left.{tb}"), currency)),
                },
                vec![
                    TestCase {
                        name: "a real referencing row within the amount".into(),
                        events: passing,
                        expect: vec![],
                    },
                    TestCase {
                        name: format!("{from_name}.{fa} one more than {to_name}.{tb}"),
                        events: failing,
                        expect: vec![key],
                    },
                ],
            )
        }
    };
    if c.unmatched_from > 0 || c.unmatched_to > 0 {
        evidence.push(format!(
            "{} unmatched referencing and {} unreferenced rows are findings of this rule",
            c.unmatched_from, c.unmatched_to
        ));
    }
    let others: Vec<String> = relation
        .pairs
        .iter()
        .filter(|p| !std::ptr::eq(*p, pair) && p.matched >= cx.options.min_rows)
        .take(6)
        .map(|p| format!("{}/{} ({} matched)", or_any(&p.from_state), or_any(&p.to_state), p.matched))
        .collect();
    let mut review = Vec::new();
    if !others.is_empty() {
        review.push(format!("other state pairs seen: {}", others.join(", ")));
    }
    let mut columns = vec![format!("{}.{}", relation.from, relation.via), format!("{}.{fa}", relation.from)];
    columns.push(format!("{}.{tb}", relation.to));
    Some(Suggestion {
        id: super::rule_id(&id),
        kind: "reconcile",
        tables: vec![relation.from.clone(), relation.to.clone()],
        columns,
        invariant,
        evidence,
        confidence: confidence(pair.matched, conf),
        review,
        owner: cx.owner(&relation.from),
        severity: "critical",
        tags: vec!["money".into(), "reconciliation".into(), "suggested".into()],
        body,
        tests,
    })
}

fn or_any(state: &str) -> &str {
    if state.is_empty() { "any" } else { state }
}
