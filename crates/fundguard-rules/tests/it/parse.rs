//! Well-formed rule files become the rules they describe.

use std::time::Duration;

use fundguard_core::{EventTime, Op, Severity, Value};
use fundguard_rules::RuleBody;

use crate::parse;

const RULE: &str = r#"
id: payment-amount-positive
description: A payment moves a positive amount.
owner: payments
severity: high
tags: [money, sign]
check:
  tables: [shop.payments]
  when: "op <> 'delete'"
  assert: after.amount > 0
  key: { payment_id: after.id }
  message: "payment {{ after.id }}"
  money: { amount: after.amount, currency: after.currency }
tests:
  - name: negative
    events:
      - { at: 2s, table: shop.payments, op: insert, after: { id: 1, amount: -1.50, currency: CNY } }
    expect: [{ key: { payment_id: 1 } }]
"#;

#[test]
fn reads_every_field() {
    let (rule, problems) = parse(RULE);
    assert!(problems.is_empty(), "{problems:?}");
    let rule = rule.unwrap();
    assert_eq!(rule.id, "payment-amount-positive");
    assert_eq!(rule.owner, "payments");
    assert_eq!(rule.severity, Severity::High);
    assert_eq!(rule.deadline, Duration::from_secs(300), "high defaults to 5 minutes");
    assert_eq!(&*rule.tags, ["money", "sign"]);
    assert!(rule.enabled);
    let RuleBody::Check(check) = &rule.body else { panic!("a check rule") };
    assert_eq!(check.tables, vec!["shop.payments"]);
    assert_eq!(check.assert.sql, "after.amount > 0");
    assert_eq!((check.assert.at.line, check.assert.at.column), (10, 11));
    assert_eq!(check.when.as_ref().unwrap().sql, "op <> 'delete'");
    assert_eq!(check.key[0].0, "payment_id");
    assert_eq!(check.money.as_ref().unwrap().currency.as_ref().unwrap().sql, "after.currency");
    let test = &rule.tests[0];
    assert_eq!(test.name, "negative");
    let event = &test.events[0].event;
    assert_eq!(event.op, Op::Insert);
    assert_eq!(event.commit_time, EventTime::parse("2024-01-01T00:00:02Z").unwrap());
    assert_eq!(event.after.as_ref().unwrap().get("amount"), Some(&Value::Decimal("-1.50".parse().unwrap())));
    assert_eq!(test.expect[0].key, vec![("payment_id".to_string(), Value::Int(1))]);
}

#[test]
fn deadline_overrides_the_severity_default() {
    for (severity, default) in [("critical", 60), ("high", 300), ("medium", 3600), ("low", 86400)] {
        let text = RULE.replace("severity: high", &format!("severity: {severity}"));
        assert_eq!(parse(&text).0.unwrap().deadline, Duration::from_secs(default));
    }
    let text = RULE.replace("severity: high", "severity: high\ndeadline: 30s");
    assert_eq!(parse(&text).0.unwrap().deadline, Duration::from_secs(30));
}

#[test]
fn default_key_is_the_row_id() {
    let text = RULE.replace("  key: { payment_id: after.id }\n", "");
    let rule = parse(&text).0.unwrap();
    let RuleBody::Check(check) = &rule.body else { panic!("a check rule") };
    assert_eq!(check.key[0].0, "id");
    assert_eq!(check.key[0].1.sql, "coalesce(after.id, before.id)");
}

#[test]
fn reads_a_reconcile_rule_and_folds_tolerance_into_expect() {
    let text = r#"
id: pay-vs-order
owner: payments
severity: critical
allowed_lateness: 10s
state_ttl: 2d
max_state_bytes: 1000000
reconcile:
  left:  { table: shop.payments, key: after.order_id, when: "after.status = 'SUCCESS'" }
  right: { table: shop.orders, key: after.id, required: false }
  within: 5m
  key_type: integer
  cardinality: one_to_many
  aggregates: { refunded: "sum(right.amount)", n: "count(right)" }
  expect: "left.currency = right.currency"
  tolerance: { left: left.amount, right: right.pay_amount, absolute: 1, relative: "0.001" }
"#;
    let (rule, problems) = parse(text);
    assert!(problems.is_empty(), "{problems:?}");
    let rule = rule.unwrap();
    assert_eq!(rule.state.allowed_lateness, Duration::from_secs(10));
    assert_eq!(rule.state.ttl, Duration::from_secs(2 * 86400));
    assert_eq!(rule.state.max_state_bytes, 1_000_000);
    let RuleBody::Reconcile(r) = &rule.body else { panic!("a reconcile rule") };
    assert!(r.left.required && !r.right.required);
    assert_eq!(r.within, Duration::from_secs(300));
    assert_eq!(r.aggregates.len(), 2);
    let expect = &r.expect.as_ref().unwrap().sql;
    assert!(
        expect
            .starts_with("(left.currency = right.currency) AND (abs((left.amount) - (right.pay_amount)) <= greatest("),
        "{expect}"
    );
    assert_eq!(rule.body.tables(), vec!["shop.payments", "shop.orders"]);
}

#[test]
fn stateful_bodies_report_their_problems() {
    let text = r#"
id: bad
owner: t
severity: low
reconcile:
  left:  { table: payments, key: after.order_id }
  right: { table: shop.orders, key: after.id }
  within: 5 minutes later
  key_type: uuid
  cardinality: few
  aggregates: { total: "avg(right.amount)" }
"#;
    let p = crate::problems(text);
    let all = p.join("\n");
    for expected in [
        "table `payments`: expected `db.table`",
        "is not a duration",
        "key_type `uuid`: expected text or integer",
        "cardinality `few`",
        "aggregate `avg(right.amount)`: expected sum|min|max",
    ] {
        assert!(all.contains(expected), "missing `{expected}` in:\n{all}");
    }
}

#[test]
fn a_rule_with_two_bodies_is_rejected() {
    let text = "id: two\nowner: t\nseverity: low\ncheck: { tables: [a.b], assert: 'true' }\ntimeout: { table: a.b, enter: 'true', exit: 'false', within: 1m }\n";
    let p = crate::problems(text);
    assert!(p.iter().any(|m| m.contains("several bodies")), "{p:?}");
}

#[test]
fn reads_an_action() {
    let text = format!(
        "{RULE}action:\n  name: pause-payouts\n  url: 'https://payouts/merchants/{{key.payment_id}}/pause'\n  mode: approval\n  secret_env: PAYOUTS_SECRET\n"
    );
    let (rule, problems) = parse(&text);
    assert!(problems.is_empty(), "{problems:?}");
    let action = rule.unwrap().action.expect("an action");
    assert_eq!((action.name.as_str(), action.method.as_str()), ("pause-payouts", "POST"));
    assert_eq!(action.mode, fundguard_core::ActionMode::Approval);
    assert_eq!(action.secret_env.as_deref(), Some("PAYOUTS_SECRET"));
}

#[test]
fn sql_rules_read_their_schedule_columns_and_defaults() {
    let (rule, problems) = parse(
        "id: daily\nowner: finance\nseverity: high\nfingerprint: [merchant_id]\nsql:\n  schedule: \"30 2 * * *\"\n  timezone: Asia/Shanghai\n  query: SELECT 1 AS merchant_id, '{{ ds }}' AS ds\n  key: [merchant_id, ds]\n  money: { amount: diff, currency: cur }\n",
    );
    assert!(problems.is_empty(), "{problems:?}");
    let rule = rule.unwrap();
    let RuleBody::Sql(sql) = &rule.body else { panic!("a sql rule") };
    assert!(!rule.body.is_streaming() && rule.body.tables().is_empty());
    let schedule = sql.schedule.as_ref().unwrap();
    assert_eq!((schedule.text.as_str(), schedule.timezone), ("30 2 * * *", chrono_tz::Asia::Shanghai));
    assert_eq!(sql.key, ["merchant_id", "ds"]);
    assert_eq!(sql.money, Some(("diff".to_string(), Some("cur".to_string()))));
    assert_eq!(sql.timeout, fundguard_rules::DEFAULT_SQL_TIMEOUT);
    assert_eq!(sql.max_findings, fundguard_rules::DEFAULT_MAX_FINDINGS);
    assert_eq!(sql.catch_up, fundguard_rules::CatchUp::All);
    assert_eq!(sql.query.at.to_string(), "rule.yaml:8:10");

    let (_, problems) = parse(
        "id: d\nowner: o\nseverity: low\nfingerprint: [nope]\nsql:\n  query: SELECT 1 AS k\n  key: []\n  catch_up: sometimes\n  max_findings: 0\ntests:\n  - { name: t, events: [] }\n",
    );
    let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    for expected in [
        "`key` lists no columns",
        "catch_up `sometimes`: expected all, latest or none",
        "max_findings is 0",
        "a sql rule has no event tests",
        "`fingerprint` column `nope` is not in the key",
    ] {
        assert!(text.iter().any(|t| t.contains(expected)), "{expected}: {text:?}");
    }
}

#[test]
fn sql_rules_read_a_memory_limit_and_refuse_a_bad_one() {
    let sql = |limit: &str| {
        format!("id: d\nowner: o\nseverity: low\nsql:\n  query: SELECT 1 AS k\n  key: [k]\n  memory_limit: {limit}\n")
    };
    let limit = |text: &str| {
        let (rule, problems) = parse(text);
        assert!(problems.is_empty(), "{problems:?}");
        let RuleBody::Sql(sql) = rule.unwrap().body else { panic!("a sql rule") };
        sql.memory_limit
    };
    assert_eq!(limit(&sql("512MiB")), 512 << 20);
    assert_eq!(limit(&sql("2GB")), 2_000_000_000);
    assert_eq!(limit(&sql("16777216")), 16 << 20, "a plain number is bytes");
    let default = "id: d\nowner: o\nseverity: low\nsql:\n  query: SELECT 1 AS k\n  key: [k]\n";
    assert_eq!(limit(default), fundguard_rules::DEFAULT_SQL_MEMORY_LIMIT);
    assert_eq!(fundguard_rules::DEFAULT_SQL_MEMORY_LIMIT, 1 << 30);

    assert_eq!(
        crate::problems(&sql("lots")),
        ["7:17: memory_limit: `lots` is not a size: expected a whole number with a unit, like 512MiB, 2GiB or 64MB"]
    );
    assert_eq!(
        crate::problems(&sql("512")),
        ["7:17: memory_limit `512` is below 1MiB: expected a size such as 512MiB or 2GiB"]
    );
}

#[test]
fn lookups_are_read_with_their_match_and_missing_and_located_problems() {
    let text = "id: r\nowner: t\nseverity: high\nlookups:\n  fx: { match: { from_ccy: after.currency, to_ccy: \"'CNY'\" }, missing: skip }\n\
                check:\n  tables: [shop.payments]\n  assert: after.amount > 0\n";
    let (rule, problems) = crate::parse(text);
    assert!(problems.is_empty(), "{problems:?}");
    let rule = rule.unwrap();
    let fx = &rule.lookups[0];
    assert_eq!((fx.name.as_str(), fx.missing), ("fx", fundguard_rules::MissingLookup::Skip));
    assert_eq!(fx.match_columns(), ["from_ccy", "to_ccy"]);
    assert_eq!(fx.matches[0].1.sql, "after.currency");

    let bad = text.replace("missing: skip", "missing: null-ish").replace("  fx:", "  Fx:");
    let found = crate::problems(&bad);
    assert!(found.iter().any(|p| p.starts_with("5:") && p.contains("lookup name `Fx`")), "{found:?}");
    let bad = text.replace("missing: skip", "missing: maybe");
    let found = crate::problems(&bad);
    assert!(found.iter().any(|p| p.contains("missing `maybe`: expected report, skip or judge")), "{found:?}");
    let bad = text.replace("{ from_ccy: after.currency, to_ccy: \"'CNY'\" }", "{}");
    assert!(crate::problems(&bad).iter().any(|p| p.contains("`match` is empty")), "{:?}", crate::problems(&bad));
}

#[test]
fn a_reconcile_reads_further_sides_for_its_aggregates() {
    let text = "id: r\nowner: t\nseverity: high\nreconcile:\n  left: { table: s.o, key: after.id }\n  right: { table: s.p, key: after.order_id }\n\
                \x20 sides:\n    refunds: { table: s.r, key: after.order_id, required: false }\n  within: 1m\n\
                \x20 aggregates: { refunded: sum(refunds.amount), n: count(refunds) }\n  expect: \"agg.refunded <= 10\"\n";
    let (rule, problems) = crate::parse(text);
    assert!(problems.is_empty(), "{problems:?}");
    let rule = rule.unwrap();
    let RuleBody::Reconcile(r) = &rule.body else { panic!("a reconcile") };
    assert_eq!(r.others.len(), 1);
    assert_eq!(r.side_name(fundguard_rules::Side::Other(0)), "refunds");
    assert!(r.aggregates.iter().all(|a| a.side == fundguard_rules::Side::Other(0)));
    assert_eq!(rule.body.tables(), ["s.o", "s.p", "s.r"]);
}

/// `money.unit` says what the amount is in: `auto` unless given; a bad one is located.
#[test]
fn money_units_are_read_and_a_bad_one_is_pointed_at() {
    use fundguard_core::MoneyUnit;
    let unit = |text: &str| {
        let (rule, problems) = parse(text);
        assert!(problems.is_empty(), "{problems:?}");
        let RuleBody::Check(check) = rule.unwrap().body else { panic!("a check rule") };
        check.money.unwrap().unit
    };
    assert_eq!(unit(RULE), MoneyUnit::Auto);
    let with = |u: &str| RULE.replace("currency: after.currency }", &format!("currency: after.currency, unit: {u} }}"));
    assert_eq!(unit(&with("minor")), MoneyUnit::Minor);
    assert_eq!(unit(&with("major")), MoneyUnit::Major);
    let (_, problems) = parse(&with("cents"));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].message, "money.unit `cents`: expected auto, minor or major");
    assert_eq!(problems[0].location.line, 13);
    let sql = "id: s\nowner: o\nseverity: low\nsql:\n  query: SELECT 1 AS n\n  key: [n]\n  money: { amount: n, unit: major }\n";
    let (rule, problems) = parse(sql);
    assert!(problems.is_empty(), "{problems:?}");
    let RuleBody::Sql(sql) = rule.unwrap().body else { panic!("a sql rule") };
    assert_eq!(sql.money_unit, MoneyUnit::Major);
}
