//! Sums per transaction (double entry): an append-only table whose rows share a group id
//! (`txn_id`) and carry amounts on two sides of a direction column (`DEBIT`/`CREDIT`), or
//! signed amounts, where every complete group balanced. The rule is a many-to-many
//! reconciliation of the table with itself, evaluated when the group's window closes.

use fundguard_core::{Decimal, Op, Value};

use super::{
    Body, Cardinality, Context, Kind, Side, Skipped, Suggestion, Suggestions, TestCase, TestEvent, class_confidence,
    confidence, duration_text, sql_text, within_tolerance,
};
use crate::layout::TableLayout;
use crate::profile::{GroupProfile, TableProfile};

pub struct Ledger;

impl Kind for Ledger {
    fn name(&self) -> &'static str {
        "ledger"
    }

    fn suggest(&self, cx: &Context<'_>, out: &mut Suggestions) {
        for (name, table, profile) in cx.tables() {
            match balanced(cx, profile) {
                Ok(g) => out.made.extend(suggestion(cx, name, table, g)),
                Err(Some(reason)) => {
                    let subject = profile
                        .groups
                        .first()
                        .map_or_else(|| name.clone(), |g| format!("{name}.{} by {name}.{}", g.amount, g.group));
                    out.skipped.push(Skipped { kind: self.name(), subject, reason });
                }
                Err(None) => {}
            }
        }
    }
}

/// The way a table's groups balanced, when they did on (nearly) every complete group of an
/// append-only table. `Err(Some(why))` when some group balanced but the table does not
/// qualify; `Err(None)` when none did (not a ledger: nothing to say). The D+1 totals read
/// it too.
pub(super) fn balanced<'p>(cx: &Context<'p>, profile: &'p TableProfile) -> Result<&'p GroupProfile, Option<String>> {
    let g = profile.groups.first().filter(|g| g.balanced > 0).ok_or(None)?;
    let changed = profile.updates + profile.deletes;
    if !within_tolerance(changed, profile.events) {
        return Err(Some(format!(
            "{changed} of {} events update or delete rows: a ledger is append-only, and sums over rows that change are not a balance",
            profile.events
        )));
    }
    match cx.shortfall("groups balanced", g.judged, g.balanced) {
        Some(why) => Err(Some(why)),
        None => Ok(g),
    }
}

/// `agg.` names for the two sides: the direction values as identifiers (`debit`, `credit`).
pub(super) fn side_names(g: &GroupProfile) -> [String; 2] {
    let ident = |v: &str| {
        let mut id: String =
            v.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
        if !id.starts_with(|c: char| c.is_ascii_lowercase()) {
            id.insert_str(0, "side_");
        }
        id
    };
    match &g.direction {
        Some((_, [a, b])) if ident(a) != ident(b) => [ident(a), ident(b)],
        Some(_) => ["first_side".into(), "second_side".into()],
        None => ["positive".into(), "negative".into()],
    }
}

/// The `when` of each side.
pub(super) fn side_filters(g: &GroupProfile) -> [String; 2] {
    match &g.direction {
        Some((d, [a, b])) => [format!("after.{d} = {}", sql_text(a)), format!("after.{d} = {}", sql_text(b))],
        None => [format!("after.{} > 0", g.amount), format!("after.{} < 0", g.amount)],
    }
}

fn suggestion(cx: &Context<'_>, name: &str, table: &TableLayout, g: &GroupProfile) -> Option<Suggestion> {
    let (group, amount) = (&g.group, &g.amount);
    let [a, b] = side_names(g);
    let [when_a, when_b] = side_filters(g);
    let (expect, words) = match &g.direction {
        Some((d, [va, vb])) => (format!("agg.{a} = agg.{b}"), format!("its {amount} on {d} {va} equal those on {vb}")),
        None => (format!("agg.{a} + agg.{b} = 0"), format!("its signed {amount}s add up to zero")),
    };
    let difference = match &g.direction {
        Some(_) => format!("agg.{a} - agg.{b}"),
        None => format!("agg.{a} + agg.{b}"),
    };
    let short = super::short(name);
    let evidence = vec![
        format!(
            "{} of {} complete groups by {group} balanced ({} groups, {} of more than one row, {} rows)",
            g.balanced, g.judged, g.groups, g.shared, g.rows
        ),
        format!(
            "time between a group's first and last row: p50 {} ms, p99 {} ms, max {} ms; window {}",
            g.spread.p50_ms,
            g.spread.p99_ms,
            g.spread.max_ms,
            duration_text(g.within)
        ),
    ];
    let mut review = Vec::new();
    if g.balanced < g.judged {
        review.push(format!(
            "{} group(s) did not balance and are findings of this rule (e.g. {})",
            g.judged - g.balanced,
            g.unbalanced.join(", ")
        ));
    }
    let tests = tests(name, table, g);
    let integer_keys = g.example.first().is_some_and(|(_, r)| matches!(r.get(group), Some(Value::Int(_))));
    let side = |when: String| Side {
        table: name.to_string(),
        key: format!("after.{group}"),
        when: Some(when),
        required: true,
    };
    Some(Suggestion {
        id: super::rule_id(&format!("{short}-balanced-per-{group}")),
        kind: "ledger",
        tables: vec![name.to_string()],
        columns: [group, amount]
            .into_iter()
            .chain(g.direction.iter().map(|(d, _)| d))
            .map(|c| format!("{name}.{c}"))
            .collect(),
        invariant: format!(
            "Every {short} group by {group} balances once complete (within {}): {words}.",
            duration_text(g.within)
        ),
        evidence,
        confidence: confidence(g.balanced, class_confidence(table, amount)),
        review,
        owner: cx.owner(name),
        severity: "critical",
        tags: vec!["money".into(), "ledger".into(), "suggested".into()],
        body: Body::Reconcile {
            left: side(when_a),
            right: side(when_b),
            within: g.within,
            integer_keys,
            cardinality: Cardinality::ManyToMany,
            aggregates: vec![(a.clone(), format!("sum(left.{amount})")), (b.clone(), format!("sum(right.{amount})"))],
            expect,
            message: Some(format!("{group} {{{{ key }}}}: {a} {{{{ agg.{a} }}}}, {b} {{{{ agg.{b} }}}}")),
            money: Some((difference, None)),
        },
        tests,
    })
}

/// A real balanced group passes; the same group with its last row of the second side one
/// minor unit short is a finding. A later row of another group closes the window.
fn tests(name: &str, table: &TableLayout, g: &GroupProfile) -> Vec<TestCase> {
    let Some((first, _)) = g.example.first() else { return Vec::new() };
    let Some(last) = g.example.iter().map(|(t, _)| *t).max() else { return Vec::new() };
    let group_key = g.example[0].1.get(&g.group).cloned().unwrap_or_default();
    let mut columns: Vec<&str> = table.id.iter().map(String::as_str).collect();
    columns.push(&g.group);
    columns.extend(g.direction.iter().map(|(d, _)| d.as_str()));
    columns.push(&g.amount);
    columns.extend(table.currencies.first().map(String::as_str));
    let events: Vec<TestEvent> = g
        .example
        .iter()
        .map(|(t, row)| TestEvent {
            at: t - first,
            table: name.to_string(),
            op: Op::Insert,
            after: super::pick(row, &columns),
        })
        .collect();
    // The second side's last row, one minor unit short.
    let second = |e: &TestEvent| {
        let v = e.after.iter().find(|(c, _)| *c == g.amount).map(|(_, v)| v);
        match &g.direction {
            Some((d, [_, vb])) => e.after.iter().any(|(c, v)| c == d && *v == Value::String(vb.clone())),
            None => v.and_then(crate::profile::number).is_some_and(|n| n.is_sign_negative() && !n.is_zero()),
        }
    };
    let Some(at) = events.iter().rposition(second) else { return Vec::new() };
    let mut short = events.clone();
    let slot = short[at].after.iter_mut().find(|(c, _)| *c == g.amount);
    if let Some((_, v)) = slot {
        let less = match &*v {
            Value::Int(i) => Value::Int(i.saturating_sub(1)),
            Value::Decimal(d) => Value::Decimal(d.checked_sub(Decimal::new(1, d.scale())).unwrap_or(*d)),
            other => other.clone(),
        };
        *v = less;
    }
    // Another group's row after the window: the watermark passes the first group's deadline.
    let other_key = match &group_key {
        Value::Int(i) => Value::Int(i.saturating_add(1_000_000_000)),
        Value::String(s) => Value::String(format!("{s}-later")),
        v => v.clone(),
    };
    let mut later = events[0].clone();
    later.at = last - first + g.within + 1_000_000;
    later.after = super::with(later.after, &g.group, other_key);
    if let Some(id) = &table.id
        && let Some((_, Value::Int(i))) = later.after.iter().find(|(c, _)| c == id)
    {
        let next = Value::Int(i.saturating_add(1_000_000_000));
        later.after = super::with(later.after, id, next);
    }
    let mut passing = events;
    passing.push(later.clone());
    short.push(later);
    vec![
        TestCase { name: "a real balanced group".into(), events: passing, expect: vec![] },
        TestCase {
            name: format!("{} one minor unit short on one side", g.amount),
            events: short,
            expect: vec![vec![(g.group.clone(), group_key)]],
        },
    ]
}
