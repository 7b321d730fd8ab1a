//! `fundguard coverage`: the simulator's shop schema (DDL files, the schema file, live
//! MariaDB and PostgreSQL) measured against the example rules; the `--diff` gate; waivers;
//! a DDL statement that does not parse.

use std::collections::BTreeMap;
use std::process::{Command, Output};

use serde_json::Value;

use crate::{fundguard, path, repo_root, stderr, stdout};

const MYSQL_DDL: &str = "examples/coverage/shop-mysql.sql";
const POSTGRES_DDL: &str = "examples/coverage/shop-postgres.sql";

fn coverage(args: &[&str]) -> Output {
    let mut all = vec!["coverage", "--rules", "examples/rules", "examples/sql-rules"];
    all.extend_from_slice(args);
    fundguard(&all)
}

fn json(o: &Output) -> Value {
    assert!(o.status.code().is_some_and(|c| c < 2), "{}", stderr(o));
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

/// `table.column` (the table without its database) → (class, confidence, covering rules).
fn column_map(report: &Value) -> BTreeMap<String, (String, u64, Vec<String>)> {
    report["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let table = c["table"].as_str().unwrap();
            let short = table.rsplit('.').next().unwrap();
            let rules = c["covered_by"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string()).collect();
            (
                format!("{short}.{}", c["column"].as_str().unwrap()),
                (c["class"].as_str().unwrap().to_string(), c["confidence"].as_u64().unwrap(), rules),
            )
        })
        .collect()
}

fn covered(map: &BTreeMap<String, (String, u64, Vec<String>)>, column: &str) -> Vec<String> {
    map.get(column).unwrap_or_else(|| panic!("no column {column}")).2.clone()
}

#[test]
fn the_shop_schema_and_example_rules_give_the_expected_column_map() {
    let report = json(&coverage(&["--ddl", MYSQL_DDL, "--format", "json"]));
    let map = column_map(&report);
    let class = |c: &str| map[c].0.clone();
    assert_eq!(class("orders.pay_amount"), "money_amount");
    assert_eq!(class("payments.amount_yuan"), "money_amount");
    assert_eq!(class("orders.currency"), "currency");
    assert_eq!(class("settlements.commission_rate"), "rate");
    assert_eq!(class("orders.status"), "status");
    assert_eq!(class("orders.created_at"), "event_time");
    assert_eq!(class("payments.order_id"), "foreign_reference");
    assert_eq!(class("ledger_entries.txn_id"), "identifier");
    // Covered through the columns the rules' expressions read.
    assert!(covered(&map, "payments.amount_yuan").contains(&"payment-minor-units-consistent".to_string()));
    assert!(covered(&map, "orders.pay_amount").contains(&"payment-matches-order".to_string()));
    assert!(covered(&map, "settlements.commission_rate").contains(&"settlement-commission-rate-bounds".to_string()));
    // `payment-failure-rate` filters on status in `when` and counts it in `numerator`: the
    // numerator covers; `order-stuck-in-paying`'s money block does not cover pay_amount.
    assert!(covered(&map, "payments.status").contains(&"payment-failure-rate".to_string()));
    assert!(!covered(&map, "orders.pay_amount").contains(&"order-stuck-in-paying".to_string()));
    // The sql rules name tables this schema does not have (`pay.payments`): unknown, not covering.
    let unknown: Vec<&str> = report["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r.get("unknown").is_some())
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert!(unknown.contains(&"settlement-daily-totals"), "{unknown:?}");
    // Every relation between money tables found by a foreign key is reconciled by some rule.
    let relations = report["relations"].as_array().unwrap();
    let payment_order =
        relations.iter().find(|r| r["from"] == "shop.payments" && r["to"] == "shop.orders").expect("payments → orders");
    assert_eq!(payment_order["reconciled_by"], serde_json::json!(["payment-matches-order"]));
    assert_eq!(payment_order["found_by"], "foreign key");
    for figure in ["field", "metric", "cross_system"] {
        assert!(report["overall"][figure]["total"].as_u64().unwrap() > 0, "{figure}");
    }
    assert!(report["owners"]["payments"]["field"]["total"].as_u64().unwrap() > 0);
}

#[test]
fn the_mysql_and_postgresql_ddl_files_classify_alike() {
    let mysql = column_map(&json(&coverage(&["--ddl", MYSQL_DDL, "--format", "json"])));
    let postgres = column_map(&json(&coverage(&["--ddl", POSTGRES_DDL, "--format", "json"])));
    assert_eq!(mysql, postgres);
}

#[test]
fn a_new_money_column_is_uncovered_and_fails_the_gate() {
    let o = coverage(&["--ddl", MYSQL_DDL, "--diff", "examples/coverage/add-refund-fee.sql", "--fail-on-new"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("new money field without a rule: shop.refunds.refund_fee"), "{}", stderr(&o));
    assert!(stdout(&o).contains("shop.refunds.refund_fee [money_amount"), "{}", stdout(&o));
    // Without the migration the same gate passes: the shop adds nothing new.
    let o = coverage(&["--ddl", MYSQL_DDL, "--diff", MYSQL_DDL, "--fail-on-new"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // --fail-under: the examples leave fields uncovered, so 100 % fails and 0 % passes.
    assert_eq!(coverage(&["--ddl", MYSQL_DDL, "--fail-under", "100"]).status.code(), Some(1));
    assert_eq!(coverage(&["--ddl", MYSQL_DDL, "--fail-under", "0"]).status.code(), Some(0));
}

#[test]
fn a_waiver_removes_a_field_from_the_gap_and_shows_it_waived() {
    let dir = tempfile::tempdir().unwrap();
    let waivers = dir.path().join("coverage.yaml");
    std::fs::write(
        &waivers,
        "waivers:\n  - { column: shop.refunds.refund_fee, reason: \"always 0 until Q3\", owner: refunds }\n",
    )
    .unwrap();
    let args = ["--ddl", MYSQL_DDL, "--diff", "examples/coverage/add-refund-fee.sql", "--fail-on-new"];
    let mut with_waiver = args.to_vec();
    with_waiver.extend(["--coverage", path(&waivers), "--format", "json"]);
    let o = coverage(&with_waiver);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let report = json(&o);
    let fee = report["columns"].as_array().unwrap().iter().find(|c| c["column"] == "refund_fee").unwrap();
    assert_eq!(fee["waived"]["reason"], "always 0 until Q3");
    assert_eq!(fee["waived"]["owner"], "refunds");
    let mut text = args.to_vec();
    text.extend(["--coverage", path(&waivers)]);
    assert!(stdout(&coverage(&text)).contains("shop.refunds.refund_fee: always 0 until Q3 (waived by refunds)"));
}

#[test]
fn a_bad_ddl_statement_is_located_and_the_rest_still_analysed() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.sql");
    std::fs::write(
        &bad,
        "CREATE TABLE shop.fees (id BIGINT,\n  fee_amount BIGINT,, currency CHAR(3));\nCREATE TABLE shop.payouts (id BIGINT, payout_amount BIGINT);\n",
    )
    .unwrap();
    let o = coverage(&["--ddl", MYSQL_DDL, path(&bad), "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains(&format!("{}:2:21:", path(&bad))), "{}", stderr(&o));
    assert!(stderr(&o).contains("CREATE TABLE shop.fees (id BIGINT, fee_amount BIGINT,, currency CHAR(3))"));
    let map = column_map(&json(&o));
    assert_eq!(map["payouts.payout_amount"].0, "money_amount");
    assert!(map.contains_key("orders.pay_amount"));
    assert!(!map.contains_key("fees.fee_amount"));
}

#[test]
fn an_unreachable_server_is_named_and_exits_2() {
    let o = coverage(&["--dsn", "mysql://root:hunter2@127.0.0.1:1/shop"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("mysql://root:***@127.0.0.1:1/shop"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("hunter2"));
}

/// Runs `psql` with SQL on stdin (a file of statements); panics on failure.
fn psql_script(args: &[&str], sql: &str) {
    let program = "psql";
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(sql.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{program}: {}", String::from_utf8_lossy(&out.stderr));
}

fn ddl(file: &str) -> String {
    std::fs::read_to_string(repo_root().join(file)).unwrap()
}

#[test]
fn a_live_mariadb_classifies_like_its_ddl_file_and_profiles_code_columns() {
    let database = format!("fg_coverage_{}", std::process::id());
    let mariadb = |sql: &str| crate::servers::mariadb_sql(3306, sql);
    mariadb(&format!("DROP DATABASE IF EXISTS {database}; CREATE DATABASE {database};"));
    let loaded =
        ddl(MYSQL_DDL).replace("CREATE DATABASE IF NOT EXISTS shop;", "").replace("shop.", &format!("{database}."));
    mariadb(&format!("USE {database};\n{loaded}"));
    let url = format!("mysql://root@127.0.0.1:3306/{database}");
    let live = coverage(&["--dsn", &url, "--format", "json"]);
    // The data profile: a code column named for nothing is a currency by its values.
    mariadb(&format!(
        "CREATE TABLE {database}.quotes (id BIGINT, settle_in CHAR(3), note VARCHAR(8)); INSERT INTO {database}.quotes VALUES (1, 'CNY', 'NEW'), (2, 'USD', 'OLD');"
    ));
    let profiled = column_map(&json(&coverage(&["--dsn", &url, "--format", "json"])));
    mariadb(&format!("DROP DATABASE {database};"));
    assert_eq!(column_map(&json(&live)), column_map(&json(&coverage(&["--ddl", MYSQL_DDL, "--format", "json"]))));
    assert_eq!(profiled["quotes.settle_in"].0, "currency");
    assert_eq!(profiled["quotes.note"].0, "other");
}

#[test]
fn a_live_postgresql_classifies_like_its_ddl_file_and_profiles_code_columns() {
    let database = format!("fg_coverage_{}", std::process::id());
    let psql = |db: &str, sql: &str| {
        psql_script(&["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", "postgres", "-d", db], sql)
    };
    psql("postgres", &format!("DROP DATABASE IF EXISTS {database} WITH (FORCE);"));
    psql("postgres", &format!("CREATE DATABASE {database};"));
    psql(&database, &ddl(POSTGRES_DDL));
    let url = format!("postgres://postgres@127.0.0.1:5432/{database}");
    let live = coverage(&["--dsn", &url, "--format", "json"]);
    psql(
        &database,
        "CREATE TABLE shop.quotes (id bigint, settle_in char(3), note varchar(8)); INSERT INTO shop.quotes VALUES (1, 'CNY', 'NEW'), (2, 'USD', 'OLD');",
    );
    let profiled = column_map(&json(&coverage(&["--dsn", &url, "--format", "json"])));
    psql("postgres", &format!("DROP DATABASE {database} WITH (FORCE);"));
    assert_eq!(column_map(&json(&live)), column_map(&json(&coverage(&["--ddl", POSTGRES_DDL, "--format", "json"]))));
    assert_eq!(profiled["quotes.settle_in"].0, "currency");
    assert_eq!(profiled["quotes.note"].0, "other");
}

/// A recorded change log as a schema source: its tables join the DDL's, and a short text
/// column named for nothing is a currency by its values; an undecodable line is a located
/// dead letter and the rest is still read.
#[test]
fn a_sample_log_adds_its_tables_and_profiles_code_columns() {
    let work = tempfile::tempdir().unwrap();
    let line = |id: u64, code: &str, note: &str| {
        format!(
            r#"{{"before":null,"after":{{"id":{id},"settle_in":"{code}","note":"{note}"}},"source":{{"connector":"mysql","db":"shop","table":"quotes","ts_ms":1714524873101,"file":"mysql-bin.000001","pos":{id},"row":0}},"op":"c","ts_ms":1714524873104}}"#
        )
    };
    let sample = work.path().join("sample.jsonl");
    std::fs::write(&sample, [line(1, "CNY", "NEW"), "not json".into(), line(2, "USD", "OLD")].join("\n")).unwrap();
    let dead_letter = work.path().join("dead.jsonl");
    let out = coverage(&[
        "--ddl",
        MYSQL_DDL,
        "--sample",
        path(&sample),
        "--sample-format",
        "debezium",
        "--dead-letter",
        path(&dead_letter),
        "--format",
        "json",
    ]);
    let map = column_map(&json(&out));
    assert_eq!(map["quotes.settle_in"].0, "currency", "{}", stderr(&out));
    assert_eq!(map["quotes.note"].0, "other");
    assert_eq!(map["orders.pay_amount"].0, "money_amount", "the DDL's tables are still measured");
    assert!(stderr(&out).contains("1 undecodable --sample message(s)"), "{}", stderr(&out));
    let letters = std::fs::read_to_string(&dead_letter).unwrap();
    assert!(letters.contains("not json") && letters.contains("sample.jsonl"), "{letters}");
}

#[test]
fn warehouse_tables_of_a_config_are_measured_and_their_sql_rules_planned() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    std::fs::write(dir.path().join("totals.csv"), "merchant_id,settled,expected,note\n1,10.50,10.50,ok\n").unwrap();
    std::fs::write(
        dir.path().join("rules/totals.yaml"),
        "id: totals-match\ndescription: d\nowner: settlement\nseverity: high\nsql:\n  query: \"SELECT merchant_id, settled - expected AS diff FROM totals WHERE settled <> expected\"\n  key: [merchant_id]\n",
    )
    .unwrap();
    let config = crate::service::write_config(
        dir.path(),
        "rules: [rules]\nwarehouse:\n  - { name: totals, type: csv, path: totals.csv }\n",
    );
    let rules = dir.path().join("rules");
    let o = fundguard(&["coverage", "--rules", path(&rules), "--config", path(&config), "--format", "json"]);
    let map = column_map(&json(&o));
    assert_eq!(map["totals.settled"].0, "money_amount");
    assert_eq!(map["totals.settled"].2, ["totals-match"]);
    assert_eq!(map["totals.expected"].2, ["totals-match"]);
    assert!(map["totals.note"].2.is_empty());
}

#[test]
fn prometheus_gauges_per_dimension_and_owner_add_up_to_the_overall_figures() {
    let args = ["--ddl", MYSQL_DDL, "--coverage", "examples/coverage/coverage.yaml"];
    let report = json(&coverage(&[&args[..], &["--format", "json"]].concat()));
    let o = coverage(&[&args[..], &["--format", "prometheus"]].concat());
    let text = stdout(&o);
    assert!(text.contains("# TYPE fundguard_coverage_covered gauge"), "{text}");
    assert!(text.contains("fundguard_coverage_total{dimension=\"field\",owner=\"finance\"} 2"), "{text}");
    for (dimension, key) in [("field", "field"), ("metric", "metric"), ("cross_system", "cross_system")] {
        let sum = |metric: &str| -> u64 {
            let prefix = format!("fundguard_coverage_{metric}{{dimension=\"{dimension}\",");
            text.lines()
                .filter(|l| l.starts_with(&prefix))
                .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
                .sum()
        };
        assert_eq!(sum("covered"), report["overall"][key]["covered"].as_u64().unwrap(), "{dimension}");
        assert_eq!(sum("total"), report["overall"][key]["total"].as_u64().unwrap(), "{dimension}");
    }
}

#[test]
fn the_daily_report_ends_with_the_coverage_figures_per_team() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("coverage.json");
    let o = coverage(&["--ddl", MYSQL_DDL, "--format", "json"]);
    std::fs::write(&report, &o.stdout).unwrap();
    // An empty alert store: a backtest over no events.
    let store = dir.path().join("alerts.db");
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let findings = dir.path().join("findings.jsonl");
    let o = fundguard(&[
        "backtest",
        "--rules",
        "examples/rules",
        "--input",
        path(&empty),
        "--format",
        "debezium",
        "--findings",
        path(&findings),
        "--alerts",
        path(&store),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    for (format, line) in [
        ("text", "payments"),
        ("markdown", "| payments | 100.0% (3/3) |"),
        ("html", "<h2>Coverage (1 uncovered money fields)</h2>"),
    ] {
        let o = fundguard(&[
            "report",
            "daily",
            "--store",
            path(&store),
            "--date",
            "2026-01-01",
            "--format",
            format,
            "--coverage",
            path(&report),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stdout(&o).contains(line), "{format}: {}", stdout(&o));
    }
    let o = fundguard(&["report", "daily", "--store", path(&store), "--coverage", MYSQL_DDL]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not a coverage report"), "{}", stderr(&o));
}
