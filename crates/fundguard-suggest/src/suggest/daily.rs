//! D+1 daily totals (`sql` rules): per business day and currency, the totals of two related
//! tables whose amounts matched row by row (a reconcile pair: payments in SUCCESS against
//! orders in PAID), and the two sides of a balanced ledger, must agree. Each result row is
//! a mismatch.
//!
//! The warehouse table of a change-log table is assumed to carry its name: `shop.orders` is
//! table `orders` of the `warehouse:` database entry named `shop` (the change log's own
//! database), with the same columns, holding the latest image of every row. Business days
//! are UTC days of the table's time column. Both are in each suggestion's review notes.

use std::collections::BTreeSet;

use super::reconcile::{Form, choose};
use super::{Body, Context, Kind, Skipped, Suggestion, Suggestions, class_confidence, confidence, sql_text};
use crate::layout::TableLayout;
use crate::profile::{GroupProfile, StateProfile};

pub struct DailyTotals;

/// When the suggested rules run: 02:30 UTC, checking the day before.
const SCHEDULE: &str = "30 2 * * *";

/// The mapping every suggestion assumes, for the reviewer.
fn mapping(tables: &[&str]) -> String {
    let list: Vec<String> = tables
        .iter()
        .map(|t| match t.rsplit_once('.') {
            Some((db, table)) => format!("`{t}` is table `{table}` of the warehouse entry `{db}`"),
            None => format!("`{t}` is the warehouse table `{t}`"),
        })
        .collect();
    format!(
        "warehouse tables are assumed to be named as the change log names them ({}), holding the latest image of every row: adjust the names to your `warehouse:` entries",
        list.join("; ")
    )
}

impl Kind for DailyTotals {
    fn name(&self) -> &'static str {
        "daily_totals"
    }

    fn suggest(&self, cx: &Context<'_>, out: &mut Suggestions) {
        for relation in &cx.profile.relations {
            let subject = format!("{}.{} -> {} (daily totals)", relation.from, relation.via, relation.to);
            let Some(c) = choose(cx, relation).filter(|c| c.form == Form::Equal) else { continue };
            let (Some(from), Some(to)) = (cx.layout.table(&relation.from), cx.layout.table(&relation.to)) else {
                continue;
            };
            let (Some(from_time), Some(to_time)) = (time_column(from), time_column(to)) else {
                out.skipped.push(Skipped {
                    kind: self.name(),
                    subject,
                    reason: "a side has no time column to date its rows by".into(),
                });
                continue;
            };
            let state_of = |table: &str| cx.profile.tables.get(table).and_then(|t| t.states.as_ref());
            let left = Total {
                table: &relation.from,
                amount: &c.amount.from_column,
                currency: c.currencies.first().map(|(f, _)| *f),
                time: from_time,
                filter: status_filter(from, state_of(&relation.from), &c.pair.from_state),
            };
            let right = Total {
                table: &relation.to,
                amount: &c.amount.to_column,
                currency: c.currencies.first().map(|(_, t)| *t),
                time: to_time,
                filter: status_filter(to, state_of(&relation.to), &c.pair.to_state),
            };
            let (from_name, to_name) = (super::short(&relation.from), super::short(&relation.to));
            let evidence = vec![format!(
                "{} of {} {from_name} rows matched {to_name} one to one with {} = {} on {} of {} pairs (the reconcile suggestion's pair of states)",
                c.pair.matched,
                c.pair.from_rows,
                c.amount.from_column,
                c.amount.to_column,
                c.amount.equal,
                c.amount.compared
            )];
            let mut review = vec![mapping(&[relation.from.as_str(), relation.to.as_str()])];
            review.push(format!(
                "days are UTC days of {from_name}.{from_time} and {to_name}.{to_time}: a pair on both sides of midnight counts on two days; set `timezone` to the business's"
            ));
            for (t, f) in [(&left, from_name), (&right, to_name)] {
                if let Some((_, states)) = &t.filter {
                    review.push(format!(
                        "{f} counts rows now in {} (the matched state and the states only reached through it)",
                        states.join(", ")
                    ));
                }
            }
            let conf = class_confidence(from, &c.amount.from_column).min(class_confidence(to, &c.amount.to_column));
            out.made.push(Suggestion {
                id: super::rule_id(&format!("{from_name}-{to_name}-daily-totals")),
                kind: self.name(),
                tables: vec![relation.from.clone(), relation.to.clone()],
                columns: vec![
                    format!("{}.{}", relation.from, c.amount.from_column),
                    format!("{}.{}", relation.to, c.amount.to_column),
                ],
                invariant: format!(
                    "Each day's total {} of {from_name} equals the day's total {} of {to_name}{} (D+1).",
                    c.amount.from_column,
                    c.amount.to_column,
                    if left.currency.is_some() { ", per currency" } else { "" }
                ),
                evidence,
                confidence: confidence(c.pair.matched, conf).saturating_sub(10),
                review,
                owner: cx.owner(&relation.from),
                severity: "critical",
                tags: vec!["money".into(), "reconciliation".into(), "d+1".into(), "suggested".into()],
                body: totals_body(&left, &right, from_name, to_name),
                tests: Vec::new(),
            });
        }
        for (name, table, profile) in cx.tables() {
            let Ok(g) = super::ledger::balanced(cx, profile) else { continue };
            let Some(time) = time_column(table) else {
                out.skipped.push(Skipped {
                    kind: self.name(),
                    subject: format!("{name} (daily balance)"),
                    reason: "no time column to date its rows by".into(),
                });
                continue;
            };
            let short = super::short(name);
            let mut review = vec![mapping(&[name])];
            review.push(format!("days are UTC days of {short}.{time}; set `timezone` to the business's"));
            out.made.push(Suggestion {
                id: super::rule_id(&format!("{short}-daily-balance")),
                kind: self.name(),
                tables: vec![name.to_string()],
                columns: [&g.group, &g.amount]
                    .into_iter()
                    .chain(g.direction.iter().map(|(d, _)| d))
                    .map(|c| format!("{name}.{c}"))
                    .collect(),
                invariant: format!(
                    "{short} balances every day{}: the day's two sides are equal (D+1).",
                    if table.currencies.is_empty() { "" } else { ", per currency" }
                ),
                evidence: vec![format!("{} of {} complete groups by {} balanced", g.balanced, g.judged, g.group)],
                confidence: confidence(g.balanced, class_confidence(table, &g.amount)).saturating_sub(10),
                review,
                owner: cx.owner(name),
                severity: "critical",
                tags: vec!["money".into(), "ledger".into(), "d+1".into(), "suggested".into()],
                body: balance_body(name, table, g, time),
                tests: Vec::new(),
            });
        }
    }
}

/// One side of a daily total.
struct Total<'a> {
    table: &'a str,
    amount: &'a str,
    currency: Option<&'a str>,
    time: &'a str,
    /// The status column and the states counted.
    filter: Option<(String, Vec<String>)>,
}

/// The time column a row is dated by: one named for creation, else the first.
fn time_column(table: &TableLayout) -> Option<&str> {
    let created = table.times.iter().find(|t| t.to_ascii_lowercase().contains("creat"));
    created.or(table.times.first()).map(String::as_str)
}

/// The states a row of the matched state may be in by the time the warehouse is read: the
/// state, and every state entered only from states already in the set (a PAID order may
/// since be SHIPPED; a CANCELLED one, also reached from PAYING, is left out).
fn status_filter(layout: &TableLayout, states: Option<&StateProfile>, state: &str) -> Option<(String, Vec<String>)> {
    let column = layout.status.clone()?;
    if state.is_empty() {
        return None;
    }
    let mut set: BTreeSet<String> = BTreeSet::from([state.to_string()]);
    if let Some(states) = states {
        loop {
            let next = states.states.iter().find(|s| {
                !set.contains(*s)
                    && !states.initial.contains_key(*s)
                    && states.transitions.keys().any(|(a, b)| b == *s && set.contains(a))
                    && states.transitions.keys().filter(|(_, b)| b == *s).all(|(a, _)| set.contains(a))
            });
            match next {
                Some(s) => {
                    set.insert(s.clone());
                }
                None => break,
            }
        }
    }
    Some((column, set.into_iter().collect()))
}

/// `created_at >= TIMESTAMP '{{ ds }} 00:00:00' AND created_at < TIMESTAMP '{{ next_ds }} 00:00:00'`.
fn day(time: &str) -> String {
    format!("{time} >= TIMESTAMP '{{{{ ds }}}} 00:00:00' AND {time} < TIMESTAMP '{{{{ next_ds }}}} 00:00:00'")
}

fn totals_body(left: &Total<'_>, right: &Total<'_>, from_name: &str, to_name: &str) -> Body {
    let side = |t: &Total<'_>| {
        let mut filters = Vec::new();
        if let Some((column, states)) = &t.filter {
            let list: Vec<String> = states.iter().map(|s| sql_text(s)).collect();
            filters.push(format!("{column} IN ({})", list.join(", ")));
        }
        filters.push(day(t.time));
        match t.currency {
            Some(c) => format!(
                "SELECT {c} AS currency, SUM({}) AS total FROM {} WHERE {} GROUP BY {c}",
                t.amount,
                t.table,
                filters.join(" AND ")
            ),
            None => format!("SELECT SUM({}) AS total FROM {} WHERE {}", t.amount, t.table, filters.join(" AND ")),
        }
    };
    let (l, r) = (super::rule_id(from_name).replace('-', "_"), super::rule_id(to_name).replace('-', "_"));
    let (l, r) = if l == r { (format!("{l}_left"), format!("{r}_right")) } else { (l, r) };
    let columns = format!(
        "COALESCE(l.total, 0) AS {l}_total, COALESCE(r.total, 0) AS {r}_total, COALESCE(l.total, 0) - COALESCE(r.total, 0) AS difference"
    );
    let by_currency = left.currency.is_some() && right.currency.is_some();
    let query = if by_currency {
        format!(
            "WITH l AS (\n  {}\n), r AS (\n  {}\n)\nSELECT COALESCE(l.currency, r.currency) AS currency, '{{{{ ds }}}}' AS ds,\n       {columns}\nFROM l FULL OUTER JOIN r ON l.currency = r.currency\nWHERE COALESCE(l.total, 0) <> COALESCE(r.total, 0)",
            side(left),
            side(right)
        )
    } else {
        let plain = |t: &Total<'_>| side(&Total { currency: None, filter: t.filter.clone(), ..*t });
        format!(
            "SELECT '{{{{ ds }}}}' AS ds,\n       {columns}\nFROM ({}) l CROSS JOIN ({}) r\nWHERE COALESCE(l.total, 0) <> COALESCE(r.total, 0)",
            plain(left),
            plain(right)
        )
    };
    let key = if by_currency { vec!["currency".into(), "ds".into()] } else { vec!["ds".into()] };
    let currency = by_currency.then(|| "currency".to_string());
    let per = if by_currency { " {{ key.currency }}" } else { "" };
    Body::Sql {
        schedule: SCHEDULE.into(),
        query,
        key,
        money: Some(("difference".into(), currency)),
        message: format!(
            "{from_name} vs {to_name}{per} on {{{{ ds }}}}: {{{{ row.{l}_total }}}} against {{{{ row.{r}_total }}}}"
        ),
    }
}

fn balance_body(name: &str, table: &TableLayout, g: &GroupProfile, time: &str) -> Body {
    let [a, b] = super::ledger::side_names(g);
    let amount = &g.amount;
    let (sum_a, sum_b, difference) = match &g.direction {
        Some((d, [va, vb])) => (
            format!("SUM(CASE WHEN {d} = {} THEN {amount} ELSE 0 END)", sql_text(va)),
            format!("SUM(CASE WHEN {d} = {} THEN {amount} ELSE 0 END)", sql_text(vb)),
            format!(
                "SUM(CASE WHEN {d} = {} THEN {amount} WHEN {d} = {} THEN -{amount} ELSE 0 END)",
                sql_text(va),
                sql_text(vb)
            ),
        ),
        None => (
            format!("SUM(CASE WHEN {amount} > 0 THEN {amount} ELSE 0 END)"),
            format!("SUM(CASE WHEN {amount} < 0 THEN {amount} ELSE 0 END)"),
            format!("SUM({amount})"),
        ),
    };
    let currency = table.currencies.first();
    let (select, group, key) = match currency {
        Some(c) => (format!("{c} AS currency, "), format!("\nGROUP BY {c}"), vec!["currency".to_string(), "ds".into()]),
        None => (String::new(), String::new(), vec!["ds".to_string()]),
    };
    let query = format!(
        "SELECT {select}'{{{{ ds }}}}' AS ds,\n       {sum_a} AS {a},\n       {sum_b} AS {b},\n       {difference} AS difference\nFROM {name}\nWHERE {}{group}\nHAVING {difference} <> 0",
        day(time)
    );
    let per = if currency.is_some() { " {{ key.currency }}" } else { "" };
    Body::Sql {
        schedule: SCHEDULE.into(),
        query,
        key,
        money: Some(("difference".into(), currency.map(|_| "currency".to_string()))),
        message: format!("{}{per} on {{{{ ds }}}}: {a} {{{{ row.{a} }}}} != {b} {{{{ row.{b} }}}}", super::short(name)),
    }
}
