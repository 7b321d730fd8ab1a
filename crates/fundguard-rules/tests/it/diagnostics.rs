//! Bad rule files: every problem with line, column and what was expected.

use crate::problems;

#[test]
fn unknown_key_points_at_the_key() {
    let text = "id: a\nowner: t\nseverity: low\nchekc:\n  tables: [a.b]\n  assert: 'true'\n";
    let p = problems(text);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].starts_with("4:1: unknown field `chekc`, expected one of"), "{p:?}");
}

#[test]
fn unknown_key_inside_the_body() {
    let text = "id: a\nowner: t\nseverity: low\ncheck:\n  tables: [a.b]\n  asert: 'true'\n";
    let p = problems(text);
    assert!(p[0].starts_with("6:3: unknown field `asert`"), "{p:?}");
}

#[test]
fn bad_severity_lists_the_choices() {
    let p = problems("id: a\nowner: t\nseverity: urgent\ncheck: { tables: [a.b], assert: 'true' }\n");
    assert_eq!(p, vec!["3:11: unknown variant `urgent`, expected one of critical, high, medium, low"]);
}

#[test]
fn several_semantic_problems_are_reported_together() {
    let text = "\
id: Bad Id
owner: ''
severity: low
deadline: soon
check:
  tables: [orders]
  assert: 'true'
tests:
  - name: t
    events:
      - { at: never, table: a.b, op: upsert, after: { id: 1 } }
";
    let p = problems(text);
    assert_eq!(p.len(), 6, "{p:#?}");
    assert!(p[0].starts_with("1:5: rule id `Bad Id`: expected lowercase letters"), "{p:?}");
    assert!(p[1].starts_with("2:8: owner is empty"), "{p:?}");
    assert!(p[2].starts_with("4:11: `soon` is not a duration"), "{p:?}");
    assert!(p[3].starts_with("6:12: table `orders`: expected `db.table`"), "{p:?}");
    assert!(p[4].contains("`at: never`: expected an offset like 2s"), "{p:?}");
    assert!(p[5].contains("op `upsert`: expected insert, update, delete or message"), "{p:?}");
}

#[test]
fn a_rule_needs_a_body() {
    let p = problems("id: a\nowner: t\nseverity: low\n");
    assert_eq!(
        p,
        vec![
            "1:5: the rule has no body: expected one of the rule kinds (check, reconcile, transition, timeout, rate, sql, script)"
        ]
    );
}

#[test]
fn missing_required_key() {
    let p = problems("id: a\nseverity: low\ncheck: { tables: [a.b], assert: 'true' }\n");
    assert!(p[0].contains("missing field `owner`"), "{p:?}");
}

#[test]
fn duplicate_ids_across_files() {
    let dir = tempfile::tempdir().unwrap();
    let text = "id: same\nowner: t\nseverity: low\ncheck: { tables: [a.b], assert: 'true' }\n";
    std::fs::write(dir.path().join("a.yaml"), text).unwrap();
    std::fs::write(dir.path().join("b.yaml"), text).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a rule").unwrap();
    let (rules, problems) = fundguard_rules::load_paths(&[dir.path().to_path_buf()]);
    assert_eq!(rules.len(), 1);
    assert_eq!(problems.len(), 1);
    assert!(problems[0].message.starts_with("duplicate rule id `same`: already defined at"), "{problems:?}");
    assert!(problems[0].location.file.ends_with("b.yaml"));
}

#[test]
fn a_bad_action_is_pointed_at() {
    let text = "\
id: coupon-overuse
owner: growth
severity: high
check:
  tables: [shop.orders]
  assert: 'true'
action:
  name: pause-campaign
  url: 'ftp://campaigns/{campaign}'
  method: YEET
  mode: maybe
";
    let p = problems(text);
    assert_eq!(p.len(), 4, "{p:#?}");
    assert!(p[0].starts_with("9:8: action url `ftp://campaigns/{campaign}`: expected an http"), "{p:?}");
    assert!(p[1].starts_with("10:11: action method `YEET`"), "{p:?}");
    assert!(p[2].starts_with("11:9: action mode `maybe`: expected run, dry_run or approval"), "{p:?}");
    assert!(p[3].contains("placeholder `{campaign}`: expected {key.COLUMN}, {rule} or {alert}"), "{p:?}");
}

#[test]
fn a_fingerprint_names_key_columns() {
    let text = "\
id: refund-per-merchant
owner: refunds
severity: high
fingerprint: [merchant]
check:
  tables: [shop.refunds]
  assert: after.amount > 0
  key: { merchant_id: after.merchant_id, refund_id: after.id }
";
    let p = problems(text);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(
        p[0].starts_with(
            "4:14: `fingerprint` column `merchant` is not in the key: expected one of merchant_id, refund_id"
        ),
        "{p:?}"
    );
    let (rule, problems) = crate::parse(&text.replace("[merchant]", "[merchant_id]"));
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(rule.unwrap().fingerprint_by.as_deref(), Some(&["merchant_id".to_string()][..]));
}

#[test]
fn a_rate_baseline_says_what_it_is_missing() {
    let rate = |window: &str, baseline: &str| {
        problems(&format!(
            "id: r\nowner: t\nseverity: high\nrate:\n  table: s.pay\n  group: after.channel\n  window: {window}\n  baseline: {baseline}\n"
        ))
    };
    assert!(rate("1m", "{ windows: 3, factor: \"2\" }").is_empty());
    assert!(rate("1h", "{ days: 7, z_score: \"3\", min_history: 3 }").is_empty());
    let p = rate("1m", "{ factor: \"2\" }");
    assert!(p.iter().any(|p| p.contains("expected either `windows`")), "{p:?}");
    let p = rate("1m", "{ windows: 3 }");
    assert!(p.iter().any(|p| p.contains("expected `factor`")), "{p:?}");
    let p = rate("7m", "{ days: 7, factor: \"2\" }");
    assert!(p.iter().any(|p| p.starts_with("8:") && p.contains("divides a day evenly")), "{p:?}");
    let p = rate("1m", "{ windows: 2, factor: \"2\", min_history: 5 }");
    assert!(p.iter().any(|p| p.contains("min_history 5 is more than the 2 windows kept")), "{p:?}");
}

#[test]
fn a_rate_slide_must_divide_its_window() {
    let rate = |slide: &str| {
        problems(&format!(
            "id: r\nowner: t\nseverity: high\nrate:\n  table: s.pay\n  group: after.channel\n  window: 10m\n  slide: {slide}\n  max_count: 5\n"
        ))
    };
    assert!(rate("1m").is_empty());
    assert!(rate("10m").is_empty(), "a slide equal to the window is tumbling");
    for bad in ["3m", "20m", "0s"] {
        let p = rate(bad);
        assert!(p.iter().any(|p| p.starts_with("8:") && p.contains("divide the window evenly")), "{bad}: {p:?}");
    }
}
