//! A suggestion as a rule file in fundguard's own YAML format, with its evidence as
//! comments and its tests. Strings are written as JSON strings (valid YAML double-quoted
//! scalars), so no value can break the file; decimals are written as their exact digits.

use std::fmt::Write;

use fundguard_core::{Op, Value};

use crate::suggest::{Body, Cardinality, Side, Suggestion, TestCase, duration_text};

/// How every suggested rule file starts (so a later run knows its own files).
pub const HEADER: &str = "# Suggested by `fundguard suggest`";

/// The rule file of one suggestion.
pub fn rule_file(s: &Suggestion) -> String {
    let mut y = String::new();
    let _ = writeln!(y, "{HEADER} ({}, confidence {}%). Review before enabling.", s.kind, s.confidence);
    for e in &s.evidence {
        let _ = writeln!(y, "# evidence: {}", one_line(e));
    }
    for r in &s.review {
        let _ = writeln!(y, "# review: {}", one_line(r));
    }
    let _ = writeln!(y, "id: {}", s.id);
    let _ = writeln!(y, "description: {}", q(&s.invariant));
    let _ = writeln!(y, "owner: {}", q(&s.owner));
    let _ = writeln!(y, "severity: {}", s.severity);
    let tags: Vec<String> = s.tags.iter().map(|t| q(t)).collect();
    let _ = writeln!(y, "tags: [{}]", tags.join(", "));
    body(&mut y, &s.body);
    if !s.tests.is_empty() {
        let _ = writeln!(y, "tests:");
        for t in &s.tests {
            test(&mut y, t);
        }
    }
    y
}

fn body(y: &mut String, b: &Body) {
    match b {
        Body::Check { table, when, assert, key, money } => {
            let _ = writeln!(y, "check:");
            let _ = writeln!(y, "  tables: [{}]", q(table));
            if let Some(w) = when {
                let _ = writeln!(y, "  when: {}", q(w));
            }
            let _ = writeln!(y, "  assert: {}", q(assert));
            if !key.is_empty() {
                let parts: Vec<String> = key.iter().map(|(k, e)| format!("{}: {}", q(k), q(e))).collect();
                let _ = writeln!(y, "  key: {{ {} }}", parts.join(", "));
            }
            money_line(y, "  ", money);
        }
        Body::Transition { table, key, status, initial, allowed } => {
            let _ = writeln!(y, "transition:");
            let _ = writeln!(y, "  table: {}", q(table));
            let _ = writeln!(y, "  key: {}", q(key));
            let _ = writeln!(y, "  status: {}", q(status));
            let _ = writeln!(y, "  when: \"op <> 'delete'\"");
            if !initial.is_empty() {
                let list: Vec<String> = initial.iter().map(|s| q(s)).collect();
                let _ = writeln!(y, "  initial: [{}]", list.join(", "));
            }
            let _ = writeln!(y, "  allowed:");
            for (from, to) in allowed {
                let list: Vec<String> = to.iter().map(|s| q(s)).collect();
                let _ = writeln!(y, "    {}: [{}]", q(from), list.join(", "));
            }
        }
        Body::Timeout { table, key, enter, exit, within, money } => {
            let _ = writeln!(y, "timeout:");
            let _ = writeln!(y, "  table: {}", q(table));
            let _ = writeln!(y, "  key: {}", q(key));
            let _ = writeln!(y, "  enter: {}", q(enter));
            let _ = writeln!(y, "  exit: {}", q(exit));
            let _ = writeln!(y, "  within: {}", duration_text(*within));
            money_line(y, "  ", money);
        }
        Body::Rate { table, when, group, numerator, window, min_volume, max_ratio } => {
            let _ = writeln!(y, "rate:");
            let _ = writeln!(y, "  table: {}", q(table));
            let _ = writeln!(y, "  when: {}", q(when));
            let _ = writeln!(y, "  group: {}", q(group));
            let _ = writeln!(y, "  numerator: {}", q(numerator));
            let _ = writeln!(y, "  window: {}", duration_text(*window));
            let _ = writeln!(y, "  min_volume: {min_volume}");
            let _ = writeln!(y, "  max_ratio: {}", q(&max_ratio.normalize().to_string()));
        }
        Body::Reconcile { left, right, within, integer_keys, cardinality, aggregates, expect, message, money } => {
            let _ = writeln!(y, "reconcile:");
            side(y, "left", left);
            side(y, "right", right);
            let _ = writeln!(y, "  within: {}", duration_text(*within));
            if *integer_keys {
                let _ = writeln!(y, "  key_type: integer");
            }
            match cardinality {
                Cardinality::OneToOne => {}
                Cardinality::OneToMany => {
                    let _ = writeln!(y, "  cardinality: one_to_many");
                }
                Cardinality::ManyToMany => {
                    let _ = writeln!(y, "  cardinality: many_to_many");
                }
            }
            if !aggregates.is_empty() {
                let parts: Vec<String> = aggregates.iter().map(|(k, e)| format!("{}: {}", q(k), q(e))).collect();
                let _ = writeln!(y, "  aggregates: {{ {} }}", parts.join(", "));
            }
            let _ = writeln!(y, "  expect: {}", q(expect));
            if let Some(m) = message {
                let _ = writeln!(y, "  message: {}", q(m));
            }
            money_line(y, "  ", money);
        }
        Body::Sql { schedule, query, key, money, message } => {
            let _ = writeln!(y, "sql:");
            let _ = writeln!(y, "  schedule: {}", q(schedule));
            let _ = writeln!(y, "  timezone: UTC");
            let _ = writeln!(y, "  query: |");
            for line in query.lines() {
                let _ = writeln!(y, "    {line}");
            }
            let keys: Vec<String> = key.iter().map(|k| q(k)).collect();
            let _ = writeln!(y, "  key: [{}]", keys.join(", "));
            money_line(y, "  ", money);
            let _ = writeln!(y, "  message: {}", q(message));
        }
    }
}

fn side(y: &mut String, name: &str, s: &Side) {
    let mut parts = vec![format!("table: {}", q(&s.table)), format!("key: {}", q(&s.key))];
    if let Some(w) = &s.when {
        parts.push(format!("when: {}", q(w)));
    }
    if !s.required {
        parts.push("required: false".into());
    }
    let _ = writeln!(y, "  {name}: {{ {} }}", parts.join(", "));
}

fn money_line(y: &mut String, indent: &str, money: &Option<(String, Option<String>)>) {
    if let Some((amount, currency)) = money {
        match currency {
            Some(c) => {
                let _ = writeln!(y, "{indent}money: {{ amount: {}, currency: {} }}", q(amount), q(c));
            }
            None => {
                let _ = writeln!(y, "{indent}money: {{ amount: {} }}", q(amount));
            }
        }
    }
}

fn test(y: &mut String, t: &TestCase) {
    let _ = writeln!(y, "  - name: {}", q(&t.name));
    let _ = writeln!(y, "    events:");
    for e in &t.events {
        let op = match e.op {
            Op::Insert => "insert",
            Op::Update => "update",
            Op::Delete => "delete",
            Op::Message => "message",
        };
        let _ = writeln!(
            y,
            "      - {{ at: {}, table: {}, op: {op}, after: {} }}",
            offset(e.at),
            q(&e.table),
            row(&e.after)
        );
    }
    if t.expect.is_empty() {
        let _ = writeln!(y, "    expect: []");
    } else {
        let _ = writeln!(y, "    expect:");
        for key in &t.expect {
            let _ = writeln!(y, "      - key: {}", row(key));
        }
    }
}

/// A test offset: whole seconds when it is, milliseconds otherwise.
fn offset(micros: i64) -> String {
    let micros = micros.max(0);
    if micros % 1_000_000 == 0 { format!("{}s", micros / 1_000_000) } else { format!("{}ms", (micros + 999) / 1000) }
}

fn row(values: &[(String, Value)]) -> String {
    let parts: Vec<String> = values.iter().map(|(k, v)| format!("{}: {}", q(k), scalar(v))).collect();
    format!("{{ {} }}", parts.join(", "))
}

/// A value as a YAML scalar. Decimals keep their digits: the rule loader reads a YAML number
/// of up to 15 significant digits back exactly; longer ones are written as text.
pub fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Decimal(d) => {
            let text = d.to_string();
            let digits = text.chars().filter(char::is_ascii_digit).count();
            if digits <= 15 && text.contains('.') {
                text
            } else if digits <= 15 {
                format!("{text}.0")
            } else {
                q(&text)
            }
        }
        Value::String(s) => q(s),
        Value::Timestamp(t) => q(&t.to_string()),
        Value::Json(j) => q(j),
    }
}

/// A double-quoted YAML scalar (JSON string syntax).
fn q(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into())
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}
