//! `fundguard suggest` on the simulator's shop: from a clean run it proposes invariants
//! equivalent to the example rules' (amounts, currencies, the order state machine, stuck
//! PAYING, payment vs order, refunds vs payment, the payment failure rate); every file
//! validates, passes `fundguard test` and raises nothing on the clean data (the D+1 `sql`
//! suggestions included: their backtest runs them over the sample's latest rows); on a run with
//! injected incidents the same rules catch them — the commission from the wrong rate and the
//! unbalanced ledger transaction too — compared with the simulator's answer key.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use fundguard_rules::{RuleBody, load_paths};
use serde_json::Value;

use crate::{fundguard, path, read_jsonl, stderr, stdout};

/// A simulated shop (Debezium log, schema, answer key) in a temporary directory.
fn simulate(dir: &Path, name: &str, rate: &str, seed: &str) -> PathBuf {
    let out = dir.join(name);
    let o = fundguard(&[
        "simulate",
        "--out",
        path(&out),
        "--format",
        "debezium",
        "--orders",
        "2000",
        "--incident-rate",
        rate,
        "--seed",
        seed,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    out
}

fn suggest(shop: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let input = shop.join("debezium.jsonl");
    let schema = shop.join("schema.yaml");
    let mut args =
        vec!["suggest", "--input", path(&input), "--format", "debezium", "--schema", path(&schema), "--out", path(out)];
    args.extend_from_slice(extra);
    fundguard(&args)
}

/// (kind, tables, columns) of every suggestion in report.json.
fn suggestions(report: &Value) -> Vec<(String, Vec<String>, Vec<String>, u64)> {
    let strings =
        |v: &Value| -> Vec<String> { v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect() };
    report["suggestions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["kind"].as_str().unwrap().to_string(),
                strings(&s["tables"]),
                strings(&s["columns"]),
                s["backtest"]["findings"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_clean_shop_gets_the_example_invariants_that_then_catch_the_injected_incidents() {
    let dir = tempfile::tempdir().unwrap();
    let clean = simulate(dir.path(), "clean", "0", "42");
    let rules = dir.path().join("suggested");
    let o = suggest(&clean, &rules, &[]);
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("suggestion(s) written to"), "{}", stdout(&o));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(rules.join("report.json")).unwrap()).unwrap();
    assert!(std::fs::read_to_string(rules.join("report.md")).unwrap().contains("# Suggested rules"));
    let made = suggestions(&report);
    let has = |kind: &str, table: &str, column: &str| {
        made.iter().any(|(k, t, c, _)| k == kind && t.iter().any(|x| x == table) && c.iter().any(|x| x == column))
    };

    // Amounts and currencies: every money and currency column coverage classified, per table.
    let layout = &report["layout"]["tables"];
    for table in ["shop.orders", "shop.payments", "shop.refunds"] {
        let columns = |class: &str| -> Vec<String> {
            layout[table][class].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect()
        };
        let money = columns("money");
        assert!(!money.is_empty(), "{table} has money columns");
        for column in money {
            assert!(has("sign", table, &format!("{table}.{column}")), "no sign rule for {table}.{column}: {made:?}");
        }
        for column in columns("currencies") {
            assert!(has("currency", table, &format!("{table}.{column}")), "no currency rule for {table}.{column}");
        }
    }
    // The order state machine, stuck PAYING, the payment failure rate per channel.
    assert!(has("state_machine", "shop.orders", "shop.orders.status"), "{made:?}");
    assert!(has("failure_rate", "shop.payments", "shop.payments.channel"), "{made:?}");
    // Payment vs order, refunds vs payment.
    let reconciles = |a: &str, b: &str| {
        made.iter().any(|(k, t, ..)| k == "reconcile" && t.iter().any(|x| x == a) && t.iter().any(|x| x == b))
    };
    assert!(reconciles("shop.payments", "shop.orders"), "{made:?}");
    assert!(reconciles("shop.refunds", "shop.payments"), "{made:?}");
    assert!(has("units", "shop.payments", "shop.payments.amount_yuan"), "{made:?}");
    // The commission is gross × rate; the ledger balances per transaction; D+1 daily totals
    // of payments against paid orders and of the ledger's two sides.
    assert!(has("product", "shop.settlements", "shop.settlements.commission_rate"), "{made:?}");
    assert!(has("ledger", "shop.ledger_entries", "shop.ledger_entries.txn_id"), "{made:?}");
    let daily = |a: &str, b: &str| {
        made.iter().any(|(k, t, ..)| k == "daily_totals" && t.iter().any(|x| x == a) && t.iter().any(|x| x == b))
    };
    assert!(daily("shop.payments", "shop.orders"), "{made:?}");
    assert!(daily("shop.ledger_entries", "shop.ledger_entries"), "{made:?}");

    // The suggested rules read like the examples: compare the bodies through the loader.
    let (suggested, problems) = load_paths(std::slice::from_ref(&rules));
    assert!(problems.is_empty(), "{problems:?}");
    let (examples, _) = load_paths(&[crate::repo_root().join("examples/rules")]);
    let example = |id: &str| examples.iter().find(|r| r.id == id).unwrap().body.clone();
    let RuleBody::Transition(expected) = example("order-state-machine") else { panic!("not a transition") };
    let machine = suggested
        .iter()
        .find_map(|r| match &r.body {
            RuleBody::Transition(t) if t.table == "shop.orders" => Some(t.clone()),
            _ => None,
        })
        .expect("an order state machine");
    // Every observed move is one the example allows (the shop never makes some of the
    // example's, so the suggestion is the tighter machine); the example's forbidden move
    // and the simulator's illegal regression stay illegal.
    let moves = |m: &BTreeMap<String, Vec<String>>| -> BTreeSet<(String, String)> {
        m.iter().flat_map(|(k, v)| v.iter().map(move |to| (k.clone(), to.clone()))).collect()
    };
    let (suggested_moves, example_moves) =
        (moves(machine.allowed.as_ref().unwrap()), moves(expected.allowed.as_ref().unwrap()));
    assert!(suggested_moves.is_subset(&example_moves), "{suggested_moves:?} not within {example_moves:?}");
    assert!(suggested_moves.len() >= 6, "{suggested_moves:?}");
    for illegal in [("REFUNDED", "PAID"), ("PAID", "PAYING")] {
        assert!(!suggested_moves.contains(&(illegal.0.to_string(), illegal.1.to_string())));
    }
    assert_eq!(machine.initial, expected.initial);
    let stuck = suggested.iter().any(
        |r| matches!(&r.body, RuleBody::Timeout(t) if t.table == "shop.orders" && t.enter.sql.contains("'PAYING'")),
    );
    assert!(stuck, "no timeout on PAYING orders");

    // Every file validates and passes its tests; nothing fires on the clean data.
    let schema = clean.join("schema.yaml");
    let o = fundguard(&["validate", "--schema", path(&schema), path(&rules)]);
    assert!(o.status.success(), "{}", stdout(&o));
    let o = fundguard(&["test", "--schema", path(&schema), path(&rules)]);
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(stdout(&o).contains("test result: ok"), "{}", stdout(&o));
    for (kind, tables, columns, findings) in &made {
        assert_eq!(*findings, 0, "{kind} on {tables:?} {columns:?} fires on clean data");
    }
    let findings = backtest(&rules, &clean);
    assert!(findings.is_empty(), "{findings:?}");

    // A shop with incidents (another seed): the same rules catch them.
    let dirty = simulate(dir.path(), "dirty", "0.05", "7");
    let findings = backtest(&rules, &dirty);
    // The table each rule's finding key comes from (a reconcile's left side).
    let key_tables: HashMap<String, String> = suggested
        .iter()
        .filter_map(|r| {
            let table = match &r.body {
                RuleBody::Check(c) => c.tables.first()?.clone(),
                RuleBody::Reconcile(c) => c.left.table.clone(),
                RuleBody::Transition(t) => t.table.clone(),
                RuleBody::Timeout(t) => t.table.clone(),
                RuleBody::Rate(t) => t.table.clone(),
                RuleBody::Script(s) => s.tables.first()?.clone(),
                RuleBody::Sql(_) => return None,
            };
            Some((r.id.clone(), table))
        })
        .collect();
    let index = order_index(&dirty);
    let touched = orders_touched(&index, &findings, &key_tables);
    let mut caught: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for incident in read_jsonl(&dirty.join("answer-key.jsonl")) {
        let kind = incident["kind"].as_str().unwrap().to_string();
        let explained = explains(&incident, &index, &findings, &touched);
        let slot = caught.entry(kind).or_default();
        slot.0 += usize::from(explained);
        slot.1 += 1;
    }
    eprintln!("caught (found, injected) per incident kind: {caught:?}");
    for kind in [
        "wrong_amount",
        "unit_x100",
        "bad_currency",
        "negative_amount",
        "illegal_status_change",
        "over_refund",
        "orphan_payment",
        "missing_payment",
        "stuck_order",
        "failure_rate_spike",
        "commission_miscalculation",
        "ledger_imbalance",
    ] {
        let (found, all) = caught.get(kind).copied().unwrap_or_default();
        assert!(all > 0, "no {kind} injected: {caught:?}");
        assert_eq!(found, all, "{kind}: {found} of {all} caught ({caught:?})");
    }
}

#[test]
fn bad_input_is_dead_lettered_and_an_empty_sample_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bad.jsonl");
    std::fs::write(&input, "not json\n{\"payload\": 1}\n").unwrap();
    let out = dir.path().join("out");
    let o = fundguard(&["suggest", "--input", path(&input), "--format", "debezium", "--out", path(&out)]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(stderr(&o).contains("no change events in the input (2 message(s), 2 undecodable"), "{}", stderr(&o));
    assert_eq!(read_jsonl(&out.join("dead-letter.jsonl")).len(), 2);
    let o =
        fundguard(&["suggest", "--input", path(&input), "--format", "debezium", "--out", path(&out), "--limit", "0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--limit 0 leaves nothing to profile"), "{}", stderr(&o));
    let o = fundguard(&["suggest", "--input", "-", "--format", "debezium", "--out", path(&out)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("it needs files, not stdin"), "{}", stderr(&o));
}

#[test]
fn a_small_limit_leaves_columns_without_suggestions_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let shop = simulate(dir.path(), "shop", "0", "3");
    let out = dir.path().join("out");
    let o = suggest(&shop, &out, &["--limit", "60"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["sample"]["events"], 60);
    let skipped = report["skipped"].as_array().unwrap();
    let why = skipped.iter().find(|s| s["kind"] == "sign" && s["subject"] == "shop.orders.pay_amount");
    let why = why.unwrap_or_else(|| panic!("{skipped:?}"));
    assert!(why["reason"].as_str().unwrap().contains("at least 30 are needed"), "{why}");
    assert!(report["suggestions"].as_array().unwrap().iter().all(|s| s["kind"] != "sign"));
    assert!(std::fs::read_to_string(out.join("report.md")).unwrap().contains("## No suggestion"));
}

/// Backtests the suggested rules over a shop's log; the findings.
fn backtest(rules: &Path, shop: &Path) -> Vec<Value> {
    let findings = shop.join("suggested-findings.jsonl");
    let o = fundguard(&[
        "backtest",
        "--rules",
        path(rules),
        "--input",
        path(&shop.join("debezium.jsonl")),
        "--format",
        "debezium",
        "--schema",
        path(&shop.join("schema.yaml")),
        "--findings",
        path(&findings),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    read_jsonl(&findings)
}

/// (table, id) → order id.
type OrderIndex = HashMap<(String, i64), i64>;

/// (table, id) → order id, from the log: payments and refunds name theirs, orders are theirs.
fn order_index(shop: &Path) -> OrderIndex {
    let mut index = HashMap::new();
    for line in read_jsonl(&shop.join("debezium.jsonl")) {
        let event = if line.get("payload").is_some() { &line["payload"] } else { &line };
        let table =
            format!("{}.{}", event["source"]["db"].as_str().unwrap(), event["source"]["table"].as_str().unwrap());
        let row = &event["after"];
        let (Some(id), order) = (row["id"].as_i64(), row["order_id"].as_i64()) else { continue };
        let order = if table == "shop.orders" { Some(id) } else { order };
        if let Some(order) = order {
            index.insert((table, id), order);
        }
    }
    index
}

/// Per finding, the orders its key and evidence rows belong to.
fn orders_touched(index: &OrderIndex, findings: &[Value], key_tables: &HashMap<String, String>) -> Vec<BTreeSet<i64>> {
    findings
        .iter()
        .map(|f| {
            let mut orders = BTreeSet::new();
            let table = key_tables.get(f["rule"].as_str().unwrap_or_default()).cloned().unwrap_or_default();
            for (k, v) in f["key"].as_object().into_iter().flatten() {
                let Some(v) = v.as_i64() else { continue };
                let order = match k.as_str() {
                    "order_id" => Some(v),
                    "id" => index.get(&(table.clone(), v)).copied(),
                    "payment_id" => index.get(&("shop.payments".to_string(), v)).copied(),
                    _ => None,
                };
                orders.extend(order);
            }
            for e in f["evidence"].as_array().into_iter().flatten() {
                let table = e["table"].as_str().unwrap_or_default().to_string();
                for row in [&e["before"], &e["after"]] {
                    if let Some(o) = row["order_id"].as_i64() {
                        orders.insert(o);
                    }
                    if let Some(p) = row["payment_id"].as_i64()
                        && let Some(o) = index.get(&("shop.payments".to_string(), p))
                    {
                        orders.insert(*o);
                    }
                    if let Some(id) = row["id"].as_i64()
                        && let Some(o) = index.get(&(table.clone(), id))
                    {
                        orders.insert(*o);
                    }
                }
            }
            orders
        })
        .collect()
}

/// Whether some finding explains an incident: it touches the incident's order, or its key
/// has the answer key's value for a column that is not an id (a channel).
fn explains(incident: &Value, index: &OrderIndex, findings: &[Value], touched: &[BTreeSet<i64>]) -> bool {
    let table = incident["table"].as_str().unwrap();
    let mut orders = BTreeSet::new();
    let mut other_keys = Vec::new();
    for expected in incident["expected"].as_array().unwrap() {
        for (k, v) in expected["key"].as_object().unwrap() {
            match (k.as_str(), v.as_i64()) {
                ("order_id", Some(o)) => {
                    orders.insert(o);
                }
                ("id", Some(id)) => {
                    if let Some(o) = index.get(&(table.to_string(), id)) {
                        orders.insert(*o);
                    }
                }
                _ => other_keys.push((k.clone(), v.clone())),
            }
        }
    }
    findings.iter().zip(touched).any(|(f, t)| {
        t.iter().any(|o| orders.contains(o)) || other_keys.iter().any(|(k, v)| f["key"].get(k) == Some(v))
    })
}

#[test]
fn a_ddl_file_instead_of_a_schema_classifies_a_canal_log() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("shop");
    let o =
        fundguard(&["simulate", "--out", path(&out), "--format", "canal", "--orders", "600", "--incident-rate", "0"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rules = dir.path().join("suggested");
    let input = out.join("canal.jsonl");
    let o = fundguard(&[
        "suggest",
        "--input",
        path(&input),
        "--format",
        "canal",
        "--ddl",
        "examples/coverage/shop-mysql.sql",
        "--out",
        path(&rules),
    ]);
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(rules.join("report.json")).unwrap()).unwrap();
    let relations = report["layout"]["relations"].as_array().unwrap();
    let declared = relations.iter().find(|r| r["from"] == "shop.payments" && r["to"] == "shop.orders").unwrap();
    assert_eq!(declared["found_by"], "foreign key", "{relations:?}");
    let made = suggestions(&report);
    assert!(made.iter().any(|(k, t, ..)| k == "reconcile" && t.contains(&"shop.payments".to_string())), "{made:?}");
    assert!(made.iter().all(|(.., findings)| *findings == 0), "{made:?}");
    let o = fundguard(&["test", path(&rules)]);
    assert!(o.status.success(), "{}", stdout(&o));

    // A suggestion rejected in review is not proposed again, and the report says why.
    let rejected = dir.path().join("rejected.yaml");
    std::fs::write(&rejected, "payments-stuck-in-init: \"bank transfers stay INIT for days\"\n").unwrap();
    let again = rules.clone();
    std::fs::write(again.join("mine.yaml"), "# a person's rule file stays\n").unwrap();
    let o = fundguard(&[
        "suggest",
        "--input",
        path(&input),
        "--format",
        "canal",
        "--ddl",
        "examples/coverage/shop-mysql.sql",
        "--out",
        path(&again),
        "--rejected",
        path(&rejected),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The same directory: the rejected suggestion's file from the first run is removed.
    assert!(!again.join("payments-stuck-in-init.yaml").exists());
    assert!(again.join("mine.yaml").exists());
    let removed = "1 file(s) of an earlier run's suggestions not made this time removed";
    assert!(stdout(&o).contains(removed), "{}", stdout(&o));
    let report = std::fs::read_to_string(again.join("report.md")).unwrap();
    assert!(report.contains("rejected in review: bank transfers stay INIT for days"), "{report}");
    std::fs::write(&rejected, "- not a map\n").unwrap();
    let o = fundguard(&[
        "suggest",
        "--input",
        path(&input),
        "--format",
        "canal",
        "--out",
        path(&again),
        "--rejected",
        path(&rejected),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("expected one `rule-id: why it was rejected` per line"), "{}", stderr(&o));
}

/// Tables instead of a change log: a MariaDB database and a CSV file through `--warehouse`,
/// each row read as it stands and profiled like a logged insert; the suggestions are
/// backtested over the same rows.
#[test]
fn warehouse_and_database_tables_are_profiled_and_their_suggestions_backtested_on_them() {
    let database = format!("fg_suggest_{}", std::process::id());
    let mariadb = |sql: &str| crate::servers::mariadb_sql(3306, sql);
    mariadb(&format!("DROP DATABASE IF EXISTS {database}; CREATE DATABASE {database};"));
    let orders: Vec<String> = (1..=1200)
        .map(|i| format!("({i}, {}.{:02}, '{}', 'PAID')", 10 + i % 97, i % 100, if i % 3 == 0 { "USD" } else { "CNY" }))
        .collect();
    let payments: Vec<String> = (1..=1200)
        .map(|i| {
            format!("({}, {i}, {}.{:02}, '{}')", 1000 + i, 10 + i % 97, i % 100, if i % 3 == 0 { "USD" } else { "CNY" })
        })
        .collect();
    mariadb(&format!(
        "USE {database};
         CREATE TABLE orders (id BIGINT PRIMARY KEY, pay_amount DECIMAL(12,2) NOT NULL, currency CHAR(3) NOT NULL, status VARCHAR(16) NOT NULL);
         CREATE TABLE payments (id BIGINT PRIMARY KEY, order_id BIGINT NOT NULL, amount DECIMAL(12,2) NOT NULL, currency CHAR(3) NOT NULL,
           FOREIGN KEY (order_id) REFERENCES orders (id));
         INSERT INTO orders VALUES {};
         INSERT INTO payments VALUES {};
         UPDATE payments SET amount = -amount WHERE id = 1007;",
        orders.join(","),
        payments.join(",")
    ));
    let dir = tempfile::tempdir().unwrap();
    let fees: String = (1..=120).map(|i| format!("{i},{}.{:02}\n", i % 7 + 1, i % 100)).collect();
    std::fs::write(dir.path().join("fees.csv"), format!("fee_id,fee_amount\n{fees}")).unwrap();
    let config = crate::service::write_config(
        dir.path(),
        &format!(
            "rules: [rules]\nwarehouse:\n  - {{ name: shopdb, type: mysql, url: \"mysql://root@127.0.0.1:3306/{database}\", sslmode: disabled }}\n  - {{ name: fees, type: csv, path: fees.csv }}\n"
        ),
    );
    let out = dir.path().join("suggested");
    let o = fundguard(&["suggest", "--warehouse", path(&config), "--out", path(&out)]);
    mariadb(&format!("DROP DATABASE {database};"));
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["sample"]["events"], 2520, "every row of the three tables");
    let made = suggestions(&report);
    let has = |kind: &str, table: &str, column: &str| {
        made.iter().any(|(k, t, c, _)| k == kind && t.iter().any(|x| x == table) && c.iter().any(|x| x == column))
    };
    assert!(has("sign", "shopdb.payments", "shopdb.payments.amount"), "{made:?}");
    assert!(has("sign", "public.fees", "public.fees.fee_amount"), "{made:?}");
    assert!(has("currency", "shopdb.orders", "shopdb.orders.currency"), "{made:?}");
    // The backtest reads the tables again: the one negative payment (rare enough for the
    // rules to be suggested, for review) is what the payment sign rule and the payment vs
    // order reconciliation raise, and no other rule raises anything.
    for (kind, tables, columns, findings) in &made {
        let negative = kind == "reconcile" || (kind == "sign" && columns == &["shopdb.payments.amount"]);
        assert_eq!(*findings, u64::from(negative), "{kind} {tables:?} {columns:?}");
    }
    let sign = report["suggestions"].as_array().unwrap().iter().find(|s| s["columns"][0] == "shopdb.payments.amount");
    assert_eq!(sign.unwrap()["backtest"]["examples"][0]["id"], 1007);
    // A snapshot has no history: no state machine is made up from it.
    assert!(!made.iter().any(|(k, ..)| k == "state_machine" || k == "timeout"), "{made:?}");
    // The files are ordinary rule files.
    let (rules, problems) = load_paths(std::slice::from_ref(&out));
    assert!(problems.is_empty() && rules.len() == made.len(), "{problems:?}");
}
