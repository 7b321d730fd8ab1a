//! Text files keep money exact, partitions prune, SQLite is a warehouse too, and a run
//! that fails or overruns is a finding for the rule's owner.

use chrono::NaiveDate;
use fundguard_core::Value;
use fundguard_warehouse::{FAILED_RUN_TAG, RunStatus, plan, run};

use crate::support::{example, rule, warehouse};

fn day(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_and_json_lines_sum_money_exactly_per_partition() {
    let dir = tempfile::tempdir().unwrap();
    // 0.1 + 0.2 is 0.30000000000000004 in floating point; these must sum to exactly 0.30.
    for (ds, rows) in [("2026-11-25", ["0.10", "0.20"]), ("2026-11-24", ["5.55", "1.00"])] {
        let csv = dir.path().join(format!("fees/ds={ds}"));
        std::fs::create_dir_all(&csv).unwrap();
        let lines: Vec<String> = rows.iter().enumerate().map(|(i, a)| format!("{i},{a}")).collect();
        std::fs::write(csv.join("part-0.csv"), format!("id,fee\n{}\n", lines.join("\n"))).unwrap();
        let json = dir.path().join(format!("adjustments/ds={ds}"));
        std::fs::create_dir_all(&json).unwrap();
        let lines: Vec<String> =
            rows.iter().enumerate().map(|(i, a)| format!("{{\"id\":{i},\"amount\":{a}}}")).collect();
        std::fs::write(json.join("part-0.jsonl"), lines.join("\n") + "\n").unwrap();
    }
    let warehouse = warehouse(
        "- { name: fees, type: csv, path: fees, partitions: [ds] }\n- { name: adjustments, type: jsonl, path: adjustments, partitions: [ds] }",
        dir.path(),
    )
    .await;
    let rule = rule(
        r#"
id: fees-match-adjustments
owner: finance
severity: high
sql:
  query: |
    SELECT '{{ ds }}' AS ds, f.total AS fees, a.total AS adjustments, f.total AS shown
    FROM (SELECT SUM(fee) AS total FROM fees WHERE ds = '{{ ds }}') f,
         (SELECT SUM(amount) AS total FROM adjustments WHERE ds = '{{ ds }}') a
    WHERE f.total = 0.30 AND a.total = 0.30
  key: [ds]
  evidence: [fees, adjustments]
  money: { amount: fees }
"#,
    );
    let outcome = run(&warehouse, &rule, day("2026-11-25"), None, &chrono::Utc::now).await;
    assert_eq!(outcome.record.status, RunStatus::Ok, "{:?}", outcome.record.error);
    assert_eq!(outcome.findings.len(), 1, "both totals are exactly 0.30 on the 25th only");
    let finding = &outcome.findings[0];
    // No currency: the amount is kept as given, an exact decimal.
    let fees = finding.money_at_risk.as_ref().unwrap().amount;
    assert_eq!(fees.normalize().to_string(), "0.3");
    let evidence = finding.evidence[0].after.as_ref().unwrap();
    assert!(evidence.get("shown").is_none(), "only the evidence columns are kept");
    assert!(matches!(evidence.get("adjustments"), Some(Value::Decimal(_))));
    let other = run(&warehouse, &rule, day("2026-11-24"), None, &chrono::Utc::now).await;
    assert!(other.findings.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_example_finds_the_unbalanced_day_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    let conn = sqlite3(&db);
    let mut sql = String::from(
        "CREATE TABLE ledger_entries (id INTEGER PRIMARY KEY, txn_id TEXT, account TEXT, direction TEXT, amount INTEGER, currency TEXT, created_at TEXT);",
    );
    let mut id = 0;
    for (ds, txns) in [("2026-11-24", 40), ("2026-11-25", 50)] {
        for t in 0..txns {
            for (direction, currency) in [("DEBIT", "CNY"), ("CREDIT", "CNY"), ("DEBIT", "USD"), ("CREDIT", "USD")] {
                id += 1;
                // One CNY credit on the 25th is a fen short.
                let short = ds == "2026-11-25" && t == 7 && direction == "CREDIT" && currency == "CNY";
                let amount = 100 + t - i32::from(short);
                sql.push_str(&format!(
                    "INSERT INTO ledger_entries VALUES ({id}, 'T{ds}{t}', 'acct', '{direction}', {amount}, '{currency}', '{ds} 10:{:02}:00');",
                    t % 60
                ));
            }
        }
    }
    conn(&sql);
    let warehouse = warehouse(&format!("- {{ name: ledger, type: sqlite, path: {} }}", db.display()), dir.path()).await;
    let rule = example("ledger-daily-balance.yaml");
    let clean = run(&warehouse, &rule, day("2026-11-24"), None, &chrono::Utc::now).await;
    assert_eq!((clean.record.status, clean.findings.len()), (RunStatus::Ok, 0), "{:?}", clean.record.error);
    let outcome = run(&warehouse, &rule, day("2026-11-25"), None, &chrono::Utc::now).await;
    assert_eq!(outcome.findings.len(), 1, "{:?}", outcome.record);
    let f = &outcome.findings[0];
    assert_eq!(f.key["currency"], Value::String("CNY".into()));
    let money = f.money_at_risk.as_ref().unwrap();
    assert_eq!((money.amount.to_string(), money.currency.as_deref()), ("1".to_string(), Some("CNY")));
    assert_eq!(money.display(), "0.01 CNY", "an integer is minor units (fen)");
}

/// Runs SQL in a SQLite file with the `sqlite3` shell.
fn sqlite3(db: &std::path::Path) -> impl Fn(&str) + '_ {
    move |sql| {
        let out = std::process::Command::new("sqlite3").arg(db).arg(sql).output().expect("sqlite3 runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_and_overrunning_runs_are_findings_for_the_owner_and_caps_hold() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.csv"), "n\n1\n2\n3\n4\n5\n").unwrap();
    let warehouse = warehouse("- { name: t, type: csv, path: t.csv }", dir.path()).await;
    let ds = day("2026-11-25");

    let broken =
        rule("id: broken\nowner: payments\nseverity: high\nsql:\n  query: SELECT n FROM no_such_table\n  key: [n]\n");
    let outcome = run(&warehouse, &broken, ds, None, &chrono::Utc::now).await;
    assert_eq!(outcome.record.status, RunStatus::Failed);
    assert!(outcome.record.error.as_ref().unwrap().contains("no_such_table"), "{:?}", outcome.record.error);
    let [failure] = &outcome.findings[..] else { panic!("one failure finding: {:?}", outcome.findings) };
    assert_eq!((failure.owner.as_str(), failure.rule.as_str()), ("payments", "broken"));
    assert!(failure.tags.iter().any(|t| t == FAILED_RUN_TAG));
    assert_eq!(failure.key["failed_run"], Value::String("2026-11-25".into()));
    assert!(failure.message.contains("fundguard sql run broken --date 2026-11-25"), "{}", failure.message);

    let missing_column = rule(
        "id: m\nowner: o\nseverity: low\nsql:\n  query: SELECT n FROM t\n  key: [n]\n  money: { amount: amount }\n",
    );
    let error = plan(&warehouse, &missing_column, ds).await.unwrap_err().to_string();
    assert!(error.contains("no column `amount`") && error.contains("returns n"), "{error}");

    let slow = rule(
        "id: slow\nowner: o\nseverity: low\nsql:\n  query: SELECT count(*) AS c FROM t a, t b, t c, t d, t e, t f, t g, t h, t i, t j, t k\n  key: [c]\n  timeout: 200ms\n",
    );
    let started = std::time::Instant::now();
    let outcome = run(&warehouse, &slow, ds, None, &chrono::Utc::now).await;
    assert_eq!(outcome.record.status, RunStatus::TimedOut);
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "the timeout stops the run");
    assert!(outcome.record.error.as_ref().unwrap().contains("timeout"));

    let capped =
        rule("id: capped\nowner: o\nseverity: low\nsql:\n  query: SELECT n FROM t\n  key: [n]\n  max_findings: 2\n");
    let outcome = run(&warehouse, &capped, ds, None, &chrono::Utc::now).await;
    assert_eq!((outcome.record.rows, outcome.record.findings, outcome.findings.len()), (5, 2, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_on_s3_compatible_storage_is_read_by_partition() {
    let s3 = crate::support::S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let (today, before) = (dir.path().join("a.parquet"), dir.path().join("b.parquet"));
    crate::support::write_parquet(&today, "SELECT 7 AS merchant_id, CAST(12.34 AS DECIMAL(18,2)) AS net_amount").await;
    crate::support::write_parquet(&before, "SELECT 7 AS merchant_id, CAST(99.99 AS DECIMAL(18,2)) AS net_amount").await;
    s3.upload(
        "reports",
        &[("settlements/ds=2026-11-25/part-0.parquet", &today), ("settlements/ds=2026-11-24/part-0.parquet", &before)],
    );
    let yaml = format!(
        "- {{ name: settlements, type: parquet, path: \"s3://reports/settlements/\", partitions: [ds], s3: {{ endpoint: \"{}\", allow_http: true, access_key_id_env: KEY, secret_access_key_env: SECRET }} }}",
        s3.endpoint()
    );
    let sources: Vec<fundguard_warehouse::TableSource> = serde_saphyr::from_str(&yaml).unwrap();
    let warehouse = fundguard_warehouse::Warehouse::open(&sources, dir.path(), |_| Some("test".into())).await.unwrap();
    let rule = rule(
        "id: s3\nowner: o\nseverity: low\nsql:\n  query: \"SELECT merchant_id, net_amount FROM settlements WHERE ds = '{{ ds }}'\"\n  key: [merchant_id]\n  money: { amount: net_amount }\n",
    );
    let outcome = run(&warehouse, &rule, day("2026-11-25"), None, &chrono::Utc::now).await;
    assert_eq!(outcome.record.status, RunStatus::Ok, "{:?}", outcome.record.error);
    let amounts: Vec<String> =
        outcome.findings.iter().map(|f| f.money_at_risk.as_ref().unwrap().amount.to_string()).collect();
    assert_eq!(amounts, ["12.34"]);
}
