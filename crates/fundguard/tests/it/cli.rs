//! validate, test and demo as a user sees them.

use crate::{fundguard, path, stderr, stdout};

#[test]
fn validate_accepts_the_examples_with_their_schema() {
    let dir = tempfile::tempdir().unwrap();
    let o = fundguard(&["simulate", "--out", path(dir.path()), "--orders", "1", "--format", "maxwell"]);
    assert!(o.status.success());
    let schema = dir.path().join("schema.yaml");
    let o = fundguard(&["validate", "--schema", path(&schema), "examples/rules"]);
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(stdout(&o).contains("29 rule(s) valid"), "{}", stdout(&o));
}

#[test]
fn validate_lists_every_problem_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.yaml"),
        "id: a\nowner: t\nseverity: low\ndeadline: 5 parsecs\ncheck:\n  tables: [shop.t]\n  when: after.x >\n  assert: nope > 1\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("b.yaml"), "id: b\nowner: t\nseverity: low\nextra: 1\n").unwrap();
    let o = fundguard(&["validate", path(dir.path())]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    let a = dir.path().join("a.yaml");
    let b = dir.path().join("b.yaml");
    assert!(out.contains(&format!("{}:4:11: error: `5 parsecs` is not a duration", a.display())), "{out}");
    assert!(out.contains(&format!("{}:7:9: error: in `after.x >`", a.display())), "{out}");
    assert!(out.contains(&format!("{}:8:11: error: unknown column `nope`", a.display())), "{out}");
    assert!(out.contains(&format!("{}:4:1: error: unknown field `extra`", b.display())), "{out}");
    assert!(out.contains("4 problem(s) found"), "{out}");
}

#[test]
fn test_command_passes_the_examples() {
    let o = fundguard(&["test", "examples/rules"]);
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(stdout(&o).contains("test result: ok."), "{}", stdout(&o));
}

#[test]
fn test_command_shows_the_difference_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("r.yaml"),
        r#"id: r
owner: t
severity: low
check:
  tables: [shop.t]
  assert: after.amount > 0
tests:
  - name: wrong expectation
    events:
      - { at: 0s, table: shop.t, op: insert, after: { id: 1, amount: -1 } }
    expect: [{ key: { id: 2 } }]
  - name: right expectation
    events:
      - { at: 0s, table: shop.t, op: insert, after: { id: 1, amount: -1 } }
    expect: [{ key: { id: 1 } }]
"#,
    )
    .unwrap();
    let o = fundguard(&["test", path(dir.path())]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("test r :: wrong expectation ... FAILED"), "{out}");
    assert!(out.contains("- expected, not found: { key: { id: 2 } }"), "{out}");
    assert!(out.contains("+ found, not expected: { key: { id: 1 }"), "{out}");
    assert!(out.contains("test r :: right expectation ... ok"), "{out}");
    assert!(out.contains("1 passed; 1 failed"), "{out}");
}

#[test]
fn demo_catches_every_injected_incident() {
    let o = fundguard(&["demo", "--batch", "--orders", "1200"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("distinct keys"), "{out}");
    for kind in [
        "WrongAmount",
        "UnitX100",
        "BadCurrency",
        "NegativeAmount",
        "CommissionMiscalculation",
        "IllegalStatusChange",
        "OverRefund",
        "OrphanPayment",
        "MissingPayment",
        "StuckOrder",
        "LedgerImbalance",
        "FailureRateSpike",
    ] {
        let line = out.lines().find(|l| l.starts_with(kind)).unwrap_or_else(|| panic!("{kind} missing: {out}"));
        let nums: Vec<u64> = line.split_whitespace().skip(1).take(2).map(|n| n.parse().unwrap()).collect();
        assert!(nums[0] > 0 && nums[0] == nums[1], "{kind}: injected {} caught {}", nums[0], nums[1]);
    }
}
