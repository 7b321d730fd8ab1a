//! The `script` kind: what a script sees and reports, its keyed state, its limits and errors.

use std::sync::Arc;

use fundguard_core::{ChangeEvent, EventTime, Finding, Op, Position, TableSchemas, Value};
use fundguard_engine::{Engine, run_rule_tests};
use fundguard_rules::{Rule, parse_rule};
use proptest::prelude::*;

use crate::{event, insert, row, rule, run};

/// A script rule on `shop.t`: `extra` are more lines of the `script:` block, `source` the script.
fn script(id: &str, extra: &str, source: &str) -> Rule {
    let indented: String = source.lines().map(|l| format!("    {l}\n")).collect();
    rule(&format!("id: {id}\nowner: team\nseverity: high\nscript:\n  table: shop.t\n{extra}  source: |\n{indented}"))
}

fn message(seq: u64, doc: &str) -> ChangeEvent {
    let mut e =
        event(seq, Op::Message, None, Some(row(&[("id", (seq as i64).into()), ("doc", Value::Json(doc.into()))])));
    e.commit_time = EventTime::from_secs(1_700_000_000 + seq as i64);
    e
}

fn engine(rules: &[Rule]) -> Engine {
    Engine::new(rules, &TableSchemas::default()).unwrap()
}

#[test]
fn a_loop_over_a_messages_items_adds_up_exactly_and_reports_with_money() {
    let r = script(
        "items-add-up",
        "",
        "let total = 0;\nfor item in after.doc.items { total += item.price * item.qty; }\nif total != after.doc.amount {\n  report(#{ message: `items add up to ${total}, order says ${after.doc.amount}`, amount: after.doc.amount - total, currency: after.doc.currency });\n}",
    );
    let events = vec![
        // 0.10 × 3 + 0.20 = 0.50 exactly (binary floats would say 0.5000000000000001).
        message(
            1,
            r#"{"items": [{"price": 0.10, "qty": 3}, {"price": 0.20, "qty": 1}], "amount": 0.50, "currency": "CNY"}"#,
        ),
        message(2, r#"{"items": [{"price": 19.99, "qty": 2}], "amount": 40, "currency": "USD"}"#),
    ];
    let found = run(&[r], &events, 100);
    assert_eq!(found.len(), 1, "{found:?}");
    let f = &found[0];
    assert_eq!(f.key["id"], Value::Int(2));
    assert_eq!(f.message, "items add up to 39.98, order says 40");
    let money = f.money_at_risk.as_ref().unwrap();
    // 0.02 (a decimal: major units, as `unit: auto` reads it) is 2 US cents.
    assert_eq!(money.display(), "0.02 USD");
    assert_eq!((money.amount, money.currency.as_deref(), money.minor), ("2".parse().unwrap(), Some("USD"), true));
    assert_eq!(f.evidence[0].after.as_ref().unwrap().get("id"), Some(&Value::Int(2)));
}

/// A per-key running total over two tables, in log order whatever the batch size.
fn running_total() -> Rule {
    rule(
        "id: refunds-within-paid\nowner: team\nseverity: high\nscript:\n  tables: [shop.t, shop.refunds]\n  key: { order: \"coalesce(after.order_id, after.id)\" }\n  source: |\n    if table == \"shop.t\" {\n      state.paid = after.amount;\n    } else {\n      state.refunded = (state.refunded ?? 0) + after.amount;\n      if state.refunded > (state.paid ?? 0) {\n        report(`refunded ${state.refunded} of ${state.paid ?? 0}`);\n      }\n    }\n",
    )
}

fn refund(seq: u64, order: i64, amount: i64) -> ChangeEvent {
    let mut e =
        insert(seq, &[("id", (100 + seq as i64).into()), ("order_id", order.into()), ("amount", amount.into())]);
    e.table = Arc::from("shop.refunds");
    e
}

fn shown(found: &[Finding]) -> Vec<String> {
    found.iter().map(|f| format!("{}:{}", f.key["order"], f.message)).collect()
}

#[test]
fn state_is_kept_per_key_across_tables_in_log_order_whatever_the_batch_size() {
    let events = vec![
        insert(1, &[("id", 1.into()), ("amount", 100.into())]),
        refund(2, 1, 60),
        insert(3, &[("id", 2.into()), ("amount", 50.into())]),
        refund(4, 2, 50),
        refund(5, 1, 50),
        refund(6, 3, 1),
    ];
    let expected = vec!["1:refunded 110 of 100".to_string(), "3:refunded 1 of 0".to_string()];
    for batch in [1, 2, 3, 100] {
        assert_eq!(shown(&run(&[running_total()], &events, batch)), expected, "batch of {batch}");
    }
    let mut engine = engine(&[running_total()]);
    let mut out = Vec::new();
    engine.process(&events, EventTime::default(), &mut out).unwrap();
    assert_eq!(engine.stats()[0].state_keys, 3);
    assert!(engine.stats()[0].state_bytes > 0);
}

#[test]
fn state_survives_a_checkpoint_and_expires_after_the_ttl() {
    let events = vec![insert(1, &[("id", 1.into()), ("amount", 100.into())]), refund(2, 1, 60)];
    let mut first = engine(&[running_total()]);
    let mut out = Vec::new();
    first.process(&events, EventTime::default(), &mut out).unwrap();
    let saved = first.save_state().unwrap();
    let mut second = engine(&[running_total()]);
    assert_eq!(second.restore_state(&saved).unwrap().kept, vec!["refunds-within-paid".to_string()]);
    second.process(&[refund(3, 1, 50)], EventTime::default(), &mut out).unwrap();
    assert_eq!(shown(&out), vec!["1:refunded 110 of 100"], "the restored state held the first refund");

    // With a one-minute TTL, a refund two minutes later starts the order anew.
    let text = "id: ttl\nowner: team\nseverity: high\nstate_ttl: 1m\nscript:\n  table: shop.t\n  key: { id: after.id }\n  source: |\n    state.n = (state.n ?? 0) + 1;\n    report(`${state.n}`);\n";
    let mut late = insert(3, &[("id", 1.into())]);
    late.commit_time = late.commit_time.plus(std::time::Duration::from_secs(120));
    let events = vec![insert(1, &[("id", 1.into())]), insert(2, &[("id", 1.into())]), late];
    let messages: Vec<String> = run(&[rule(text)], &events, 1).into_iter().map(|f| f.message).collect();
    assert_eq!(messages, vec!["1", "2", "1"]);
}

#[test]
fn a_script_that_never_ends_or_grows_without_bound_is_stopped_and_counted_and_the_rest_runs() {
    let cases = [
        ("forever", "", "loop { }", "operations (limits.operations)"),
        ("doubling", "", "let s = \"x\"; loop { s += s; }", "limits.string_size"),
        ("pushing", "", "let a = []; loop { a.push(1); }", "limits.array_size"),
        ("recursing", "fn f(n) { f(n + 1) }", "f(0);", "limits.call_levels"),
        ("hoarding", "", "let i = 0; loop { state.set(`k${i}`, i); i += 1; }", "limits.map_size"),
        (
            "piling",
            "",
            "let a = [0, 0]; let i = 0; loop { a.set(i % 2, `${a[i % 2]}${i}`); i += 1; }",
            "limits.string_size",
        ),
    ];
    for (id, functions, source, limit) in cases {
        let body = format!("{functions}\nif after.id == 2 {{\n{source}\n}}\nreport(\"ran\");");
        let r = script(
            id,
            "  limits: { operations: 100000, string_size: 4096, array_size: 1000, map_size: 1000 }\n",
            &body,
        );
        let mut engine = engine(&[r]);
        let mut out = Vec::new();
        let events: Vec<_> = (1..=3).map(|i| insert(i, &[("id", (i as i64).into())])).collect();
        let started = std::time::Instant::now();
        engine.process(&events, EventTime::default(), &mut out).unwrap();
        assert!(started.elapsed().as_secs() < 20, "{id} took {:?}", started.elapsed());
        let keys: Vec<_> = out.iter().map(|f| f.key["id"].clone()).collect();
        assert_eq!(keys, vec![Value::Int(1), Value::Int(3)], "{id}: the rows around the failing one ran");
        let stats = &engine.stats()[0];
        assert_eq!(stats.errors, 1, "{id}");
        let error = stats.last_error.as_deref().unwrap();
        assert!(error.contains(limit), "{id}: {error}");
        assert!(error.starts_with("test.yaml:"), "{id}: {error}");
        assert!(error.contains("key id=2") && error.contains("of shop.t"), "{id}: {error}");
    }
}

#[test]
fn a_runtime_error_names_its_line_and_column_in_the_rule_file() {
    // Line 8 of the file is the script's second line; `after.amount / 0` fails at its `/`.
    let r = script("div", "", "let a = 1;\nlet b = after.amount / 0;");
    let mut engine = engine(&[r]);
    let mut out = Vec::new();
    engine.process(&[insert(1, &[("id", 1.into()), ("amount", 5.into())])], EventTime::default(), &mut out).unwrap();
    let error = engine.stats()[0].last_error.clone().unwrap();
    assert!(error.starts_with("test.yaml:8:"), "{error}");
    assert!(error.contains("Division by zero"), "{error}");
    assert!(error.contains("row at #1 of shop.t") || error.contains("of shop.t"), "{error}");
}

#[test]
fn syntax_errors_misspelt_names_and_unknown_columns_are_load_errors_at_their_place() {
    let bad = script("bad", "", "let a = 1;\nlet b = ;");
    let problems = Engine::new(&[bad], &TableSchemas::default()).err().unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].location.line, 8, "{}", problems[0]);
    let typo = script("typo", "", "report(`${aftr.id}`);");
    let problems = Engine::new(&[typo], &TableSchemas::default()).err().unwrap();
    assert!(problems[0].to_string().starts_with("test.yaml:7:15:"), "{}", problems[0]);
    assert!(problems[0].message.contains("aftr"), "{}", problems[0]);
    let schemas: TableSchemas =
        fundguard_rules::parse_schemas(Arc::from("s.yaml"), "tables:\n  shop.t: { id: int, amount: int }\n").unwrap();
    let unknown = script("unknown", "", "if after.amout > 0 { report(\"x\"); }");
    let problems = Engine::new(&[unknown], &schemas).err().unwrap();
    assert!(problems[0].to_string().starts_with("test.yaml:7:14:"), "{}", problems[0]);
    assert!(problems[0].message.contains("unknown column `after.amout`"), "{}", problems[0]);
}

#[test]
fn the_event_is_read_only_and_a_script_sees_op_table_time_and_key() {
    let r = script(
        "sees",
        "  when: \"op = 'update'\"\n  key: { order: after.id }\n",
        "report(`${table} ${op} ${time_text(commit_time)} ${key.order} ${before.status}->${after.status}`);",
    );
    let s = |v: &str| -> Value { v.into() };
    let events = vec![
        insert(1, &[("id", 1.into())]),
        event(
            2,
            Op::Update,
            Some(row(&[("id", 7.into()), ("status", s("A"))])),
            Some(row(&[("id", 7.into()), ("status", s("B"))])),
        ),
    ];
    let found = run(&[r], &events, 10);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].message, "shop.t update 2023-11-14T22:13:22Z 7 A->B");
    let writes = script("writes", "", "after.id = 5;");
    let mut engine = engine(&[writes]);
    let mut out = Vec::new();
    engine.process(&[insert(1, &[("id", 1.into())])], EventTime::default(), &mut out).unwrap();
    assert_eq!(engine.stats()[0].errors, 1, "the event cannot be changed");
}

#[test]
fn rule_file_tests_run_script_rules() {
    let text = "id: t\nowner: team\nseverity: high\nscript:\n  table: shop.t\n  source: |\n    if after.amount - 1 < 0 { report(\"negative\"); }\ntests:\n  - name: negative\n    events:\n      - { at: 0s, table: shop.t, op: insert, after: { id: 1, amount: -1 } }\n    expect: [{ key: { id: 1 }, message: negative }]\n  - name: failing call fails the test\n    events:\n      - { at: 0s, table: shop.t, op: insert, after: { id: 1, amount: \"x\" } }\n    expect: []\n";
    let (rule, problems) = parse_rule(Arc::from("t.yaml"), text);
    assert!(problems.is_empty(), "{problems:?}");
    let outcomes = run_rule_tests(&[rule.unwrap()], &TableSchemas::default());
    assert!(outcomes[0].passed(), "{:?}", outcomes[0]);
    assert!(!outcomes[1].passed());
    assert!(outcomes[1].failure().unwrap().contains("t.yaml:7:"), "{:?}", outcomes[1].failure());
}

/// Nesting past `expr_depth` is a load error, and recursion at the deepest `call_levels`
/// allowed fits the 2 MiB stack of a test thread (the pipeline thread has as much) in a debug build.
#[test]
fn deep_nesting_is_refused_at_load_and_the_deepest_recursion_allowed_fits_the_stack() {
    for deep in
        [format!("{}1{}", "(".repeat(5000), ")".repeat(5000)), format!("{}{}", "{".repeat(5000), "}".repeat(5000))]
    {
        let r = script("deep", "", &deep);
        let problems = Engine::new(&[r], &TableSchemas::default()).err().unwrap();
        assert!(problems[0].message.contains("maximum complexity"), "{}", problems[0]);
    }
    let max = fundguard_rules::MAX_CALL_LEVELS;
    let r = script(
        "recursing",
        &format!("  limits: {{ call_levels: {max}, expr_depth: {} }}\n", fundguard_rules::MAX_EXPR_DEPTH),
        "fn f(n) { if n <= 0 { [#{a: 1}] } else { let x = [f(n - 1), #{b: (((n + 1) * 2) - 1)}]; x } }\nf(100);",
    );
    let mut engine = engine(&[r]);
    let mut out = Vec::new();
    let run = std::thread::Builder::new().stack_size(2 << 20).spawn(move || {
        engine.process(&[insert(1, &[("id", 1.into())])], EventTime::default(), &mut out).unwrap();
        engine.stats()[0].last_error.clone()
    });
    let error = run.unwrap().join().expect("no stack overflow").unwrap();
    assert!(error.contains("limits.call_levels"), "{error}");
}

/// Pieces of scripts, good and bad, that random scripts are made of.
const PIECES: &[&str] = &[
    "report(\"x\");",
    "report(#{ message: \"m\", amount: after.amount });",
    "report(#{ amount: 1 });",
    "report(42);",
    "state.n = (state.n ?? 0) + 1;",
    "state = 5;",
    "state.f = |x| x;",
    "let x = after.amount * 2;",
    "let y = after.amount / (after.id - 1);",
    "for i in 0..after.id { state.n = i; }",
    "let s = `${after}`;",
    "if after.amount > 1.5 { report(`big ${after.amount}`); }",
    "after.doc.items.len();",
    "let z = 9223372036854775807 + after.id;",
    "throw \"no\";",
    "while true { }",
    "let a = [1, 2]; a[5];",
    "fn f(n) { if n > 0 { f(n - 1) } } f(after.id);",
    "{",
    "}",
    "let",
    "\"unterminated",
    "let p = \"x\".pad(100000000, \"y\");",
    "let b = blob(100000000);",
    "let q = [].pad(100000000, 0);",
    "time_text(9223372036854775807);",
    "let e = 1.5 / 0;",
    "state.x = after;",
    "state.set(\"k\", [after, after]);",
];

fn values() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<i64>().prop_map(Value::Int),
        (any::<i64>(), 0u32..=28).prop_map(|(m, s)| Value::Decimal(fundguard_core::Decimal::new(m, s))),
        ".{0,8}".prop_map(Value::String),
        Just(Value::Json(r#"{"items": [1, 2.5, {"a": null}]}"#.into())),
        ".{0,8}".prop_map(Value::Json),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Scripts put together at random, over rows of any values: a load error, a rule error
    /// or findings — never a panic, never a hang.
    #[test]
    fn random_scripts_over_random_rows_never_panic(
        pieces in proptest::collection::vec(0..PIECES.len(), 1..6),
        rows in proptest::collection::vec((values(), values(), values()), 1..6),
    ) {
        let source: String = pieces.iter().map(|&i| PIECES[i]).collect::<Vec<_>>().join("\n");
        let indented: String = source.lines().map(|l| format!("    {l}\n")).collect();
        let text = format!(
            "id: r\nowner: team\nseverity: high\nscript:\n  table: shop.t\n  limits: {{ operations: 5000 }}\n  source: |\n{indented}"
        );
        let (rule, problems) = parse_rule(Arc::from("r.yaml"), &text);
        prop_assume!(problems.is_empty());
        let Ok(mut engine) = Engine::new(&[rule.unwrap()], &TableSchemas::default()) else { return Ok(()) };
        let events: Vec<ChangeEvent> = rows
            .into_iter()
            .enumerate()
            .map(|(i, (id, amount, doc))| ChangeEvent {
                table: Arc::from("shop.t"),
                op: Op::Insert,
                before: None,
                after: Some(row(&[("id", id), ("amount", amount), ("doc", doc)])),
                commit_time: EventTime::from_secs(1_700_000_000 + i as i64),
                position: Position::Synthetic { seq: i as u64 },
            })
            .collect();
        let mut out = Vec::new();
        engine.process(&events, EventTime::default(), &mut out).unwrap();
        let saved = engine.save_state().unwrap();
        engine.restore_state(&saved).unwrap();
    }
}

/// Scripts that show what they read of a row: named columns, whole rows, the key, a closure
/// that captures a row, and a variable that must not outlive its row.
const SHOWS: &[&str] = &[
    "report(`${table}|${op}|${commit_time}|${before?.a}|${before?.b}|${after?.a}|${after?.b}`);",
    "report(`${before}|${after}|${key}`);",
    "let f = || `${after?.a}/${before?.b}`;\nreport(f.call());",
    "if is_def_var(\"seen\") { report(\"seen leaked\"); }\nlet seen = after?.b;\nreport(`${seen}`);",
    "let image = after ?? #{};\nfor k in image.keys() { if image[k] == () { report(`${k} null`); } }\nreport(`${before?.c}`);",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// The scope is bound in place from row to row: whatever rows came before (inserts,
    /// updates, deletes, any values, rows with or without a column), a script reads a row as
    /// it would alone in a fresh engine.
    #[test]
    fn a_row_reads_the_same_after_any_rows_as_alone(
        shows in 0..SHOWS.len(),
        rows in proptest::collection::vec((0..3u8, values(), values(), any::<bool>()), 1..8),
    ) {
        let r = script("shows", "  key: { id: \"coalesce(after.id, before.id)\" }\n", SHOWS[shows]);
        let events: Vec<ChangeEvent> = rows
            .into_iter()
            .enumerate()
            .map(|(i, (op, a, b, with_c))| {
                let mut columns = vec![("id", Value::Int(i as i64)), ("a", a), ("b", b)];
                if with_c {
                    columns.push(("c", Value::Int(i as i64)));
                }
                let image = Some(row(&columns));
                let (op, before, after) = match op {
                    0 => (Op::Insert, None, image),
                    1 => (Op::Update, image.clone(), image),
                    _ => (Op::Delete, image, None),
                };
                event(i as u64 + 1, op, before, after)
            })
            .collect();
        let mut in_turn = engine(std::slice::from_ref(&r));
        for e in &events {
            let mut after_others = Vec::new();
            in_turn.process(std::slice::from_ref(e), EventTime::default(), &mut after_others).unwrap();
            let mut fresh = engine(std::slice::from_ref(&r));
            let mut alone = Vec::new();
            fresh.process(std::slice::from_ref(e), EventTime::default(), &mut alone).unwrap();
            let messages = |found: &[Finding]| found.iter().map(|f| f.message.clone()).collect::<Vec<_>>();
            prop_assert_eq!(messages(&after_others), messages(&alone), "row {}: {:?}", e.position, in_turn.stats()[0].last_error);
            prop_assert_eq!(&fresh.stats()[0].last_error, &None::<String>);
        }
    }
}

#[test]
fn the_example_script_rules_pass_their_own_tests() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/script-rules");
    let (rules, problems) = fundguard_rules::load_paths(&[dir]);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(rules.len(), 2);
    for outcome in run_rule_tests(&rules, &fundguard_sim::schema()) {
        assert!(outcome.passed(), "{}: {:?}", outcome.rule, outcome.failure());
    }
}
