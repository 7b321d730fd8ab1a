//! Scheduled SQL rules through the binary: `sql run` backfills with run records,
//! `validate --config` plans queries against the warehouse, and `fundguard run` fires a
//! schedule, delivers findings as alerts and raises a failed run to the rule's owner.

use std::path::Path;
use std::time::Duration;

use crate::notify::receiver;
use crate::service::{Service, free_port, wait, write_config};
use crate::{fundguard, path, read_jsonl, stderr, stdout};

/// A daily total per business date; a non-zero amount is a finding.
const DAILY: &str = r#"id: daily-total-zero
owner: finance
severity: high
sql:
  schedule: "SCHEDULE"
  query: "SELECT day AS ds, amount FROM totals WHERE day = '{{ ds }}' AND amount <> 0"
  key: [ds]
  money: { amount: amount }
  message: "{{ ds }} is off by {{ row.amount }}"
"#;

/// Writes `totals.csv` (amount = day of month mod 3, in yuan with fen), the rules, and
/// the config; returns the config's path.
fn deployment(dir: &Path, schedule: &str, extra_rules: &[(&str, &str)], tail: &str) -> std::path::PathBuf {
    let mut days: Vec<String> = (10..=25).map(|d| format!("2020-01-{d},{}.05", d % 3)).collect();
    let yesterday = chrono::Utc::now().date_naive().pred_opt().unwrap();
    days.push(format!("{yesterday},7.05"));
    std::fs::write(dir.join("totals.csv"), format!("day,amount\n{}\n", days.join("\n"))).unwrap();
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::write(dir.join("rules/daily.yaml"), DAILY.replace("SCHEDULE", schedule)).unwrap();
    for (name, text) in extra_rules {
        std::fs::write(dir.join("rules").join(name), text).unwrap();
    }
    write_config(
        dir,
        &format!(
            "rules: [rules]\ndata_dir: data\nwarehouse:\n  - {{ name: totals, type: csv, path: totals.csv }}\n{tail}"
        ),
    )
}

#[test]
fn sql_run_backfills_a_date_range_and_records_every_run() {
    let dir = tempfile::tempdir().unwrap();
    let config = deployment(dir.path(), "30 2 * * *", &[], "");
    let o = fundguard(&[
        "sql",
        "run",
        "daily-total-zero",
        "--config",
        path(&config),
        "--from",
        "2020-01-15",
        "--to",
        "2020-01-20",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let findings: Vec<serde_json::Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    // Days 15..=20 mod 3 are 0, 1, 2, 0, 1, 2: every day has .05 on top, so all six are off.
    let dates: Vec<&str> = findings.iter().map(|f| f["key"]["ds"].as_str().unwrap()).collect();
    assert_eq!(dates, ["2020-01-15", "2020-01-16", "2020-01-17", "2020-01-18", "2020-01-19", "2020-01-20"]);
    assert_eq!(findings[0]["money_at_risk"]["amount"], "0.05", "money stays an exact decimal");
    assert_eq!(findings[2]["message"], "2020-01-17 is off by 2.05");
    assert!(stderr(&o).contains("6 finding(s); 0 failed run(s)"), "{}", stderr(&o));

    let runs = fundguard(&["sql", "runs", "--config", path(&config), "--json"]);
    let runs: Vec<serde_json::Value> = stdout(&runs).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(runs.len(), 6);
    assert!(runs.iter().all(|r| r["status"] == "ok" && r["rows"] == 1 && r["findings"] == 1), "{runs:?}");
    assert!(runs.iter().all(|r| r["rows_scanned"].as_u64().is_some_and(|n| n > 0)), "file scans count rows");

    let missing = fundguard(&["sql", "run", "no-such-rule", "--config", path(&config), "--date", "2020-01-20"]);
    assert!(!missing.status.success());
    assert!(stderr(&missing).contains("the sql rules are daily-total-zero"), "{}", stderr(&missing));
}

#[test]
fn validate_plans_sql_rules_against_the_warehouse_tables() {
    let dir = tempfile::tempdir().unwrap();
    let wrong = "id: wrong-column\nowner: finance\nseverity: low\nsql:\n  query: SELECT day, amount_cents FROM totals\n  key: [day]\n";
    let config = deployment(dir.path(), "30 2 * * *", &[("wrong.yaml", wrong)], "");
    let rules = dir.path().join("rules");
    let o = fundguard(&["validate", path(&rules), "--config", path(&config)]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let out = stdout(&o);
    assert!(out.contains("wrong.yaml:5:10: error: query:") && out.contains("amount_cents"), "{out}");
    assert!(!out.contains("daily.yaml"), "the good rule plans: {out}");

    // Without the warehouse only the rule files are checked, and the user is told so.
    std::fs::remove_file(rules.join("wrong.yaml")).unwrap();
    let o = fundguard(&["validate", path(&rules)]);
    assert!(o.status.success());
    assert!(stderr(&o).contains("not checked against tables: pass --config"), "{}", stderr(&o));

    // A warehouse entry with a key no table type has is refused with its place.
    let typo = write_config(
        dir.path(),
        "rules: [rules]\nwarehouse:\n  - { name: totals, type: csv, path: totals.csv, partition: [ds] }\n",
    );
    let o = fundguard(&["sql", "runs", "--config", path(&typo)]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("fundguard.yaml:3:5: error: unknown field `partition`"), "{}", stderr(&o));

    std::fs::write(
        rules.join("syntax.yaml"),
        "id: syntax\nowner: o\nseverity: low\nsql:\n  query: SELEC day FROM totals\n  key: [day]\n",
    )
    .unwrap();
    let out = stdout(&fundguard(&["validate", path(&rules)]));
    assert!(out.contains("syntax.yaml:5:10: error: query:") && out.contains("SELEC"), "{out}");
    std::fs::remove_file(rules.join("syntax.yaml")).unwrap();
    std::fs::write(
        rules.join("template.yaml"),
        "id: template\nowner: o\nseverity: low\nsql:\n  query: SELECT day FROM totals\n  key: [day]\n  message: \"{{ row.day \"\n",
    )
    .unwrap();
    let out = stdout(&fundguard(&["validate", path(&rules)]));
    assert!(out.contains("template.yaml:7:12: error: message template:"), "{out}");
    std::fs::remove_file(rules.join("template.yaml")).unwrap();

    let bad_cron = "id: bad-cron\nowner: finance\nseverity: low\nsql:\n  schedule: \"61 * * * *\"\n  timezone: Mars/Olympus\n  query: SELECT 1 AS k\n  key: [k]\n";
    std::fs::write(rules.join("bad.yaml"), bad_cron).unwrap();
    let out = stdout(&fundguard(&["validate", path(&rules)]));
    assert!(out.contains("bad.yaml:5:13: error: schedule `61 * * * *`"), "{out}");
    assert!(out.contains("bad.yaml:6:13: error: time zone `Mars/Olympus`"), "{out}");
}

#[test]
fn the_service_runs_scheduled_rules_and_a_failed_run_alerts_its_owner() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let hook = receiver(port);
    let broken = "id: settlement-report-missing\nowner: settlement\nseverity: critical\nsql:\n  schedule: \"* * * * * *\"\n  query: SELECT merchant_id FROM settlements_report\n  key: [merchant_id]\n";
    let config = deployment(
        dir.path(),
        "* * * * * *",
        &[("broken.yaml", broken)],
        &format!(
            "listen: 127.0.0.1:0\nsinks:\n  - {{ type: jsonl, path: findings.jsonl }}\n  - {{ type: alerts }}\nnotify:\n  channels:\n    - {{ name: hook, type: webhook, url: \"http://127.0.0.1:{port}/hook\" }}\n  routes:\n    - {{ owner: [settlement], channels: [hook] }}\n"
        ),
    );
    let service = Service::start(&config, &[]);
    let findings = dir.path().join("findings.jsonl");
    let rules_seen = wait(Duration::from_secs(30), || {
        std::thread::sleep(Duration::from_millis(300));
        let found = read_jsonl(&findings);
        let rules: std::collections::BTreeSet<String> =
            found.iter().map(|f| f["rule"].as_str().unwrap().to_string()).collect();
        (rules.len() == 2).then_some(found)
    })
    .unwrap_or_else(|| panic!("both rules ran: {:?}", service.stderr.lock().unwrap()));
    let yesterday = chrono::Utc::now().date_naive().pred_opt().unwrap().to_string();
    let daily = rules_seen.iter().find(|f| f["rule"] == "daily-total-zero").unwrap();
    assert_eq!(daily["key"]["ds"], yesterday.as_str());
    assert_eq!(daily["money_at_risk"]["amount"], "7.05");
    let failed = rules_seen.iter().find(|f| f["rule"] == "settlement-report-missing").unwrap();
    assert_eq!(failed["owner"], "settlement");
    assert!(failed["message"].as_str().unwrap().contains("settlements_report"), "{failed}");
    assert!(failed["tags"].as_array().unwrap().iter().any(|t| t == "sql-run-failed"));

    // The failure is an alert routed to its owner's channel.
    let notified = wait(Duration::from_secs(30), || {
        std::thread::sleep(Duration::from_millis(300));
        hook.lock().unwrap().iter().find(|(_, body)| body.contains("settlement-report-missing")).cloned()
    });
    assert!(notified.is_some(), "the owner's webhook hears of the failed run");
    // Prometheus sees the runs: counted per rule and outcome, and the last success.
    let metrics = crate::service::agent()
        .get(format!("{}/metrics", service.url()))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("fundguard_sql_runs_total{rule=\"settlement-report-missing\",status=\"failed\"}")),
        "{metrics}"
    );
    assert!(metrics.contains("fundguard_sql_last_success_timestamp_seconds{rule=\"daily-total-zero\"}"), "{metrics}");
    service.terminate();
    let store = dir.path().join("data/alerts.db");
    let alerts = stdout(&fundguard(&["alerts", "--store", path(&store), "list", "--json"]));
    assert!(alerts.lines().any(|l| l.contains("daily-total-zero")), "{alerts}");
    // Every run is recorded; many ran in the seconds the service was up.
    let runs = stdout(&fundguard(&["sql", "runs", "--config", path(&config), "--rule", "settlement-report-missing"]));
    assert!(runs.lines().count() >= 1 && runs.lines().all(|l| l.contains(": failed in")), "{runs}");
}

/// Every kind of statement that could create, change or write something, as a rule's query
/// (`OUT` is a path under the test's directory), and what `validate` calls it.
const FORBIDDEN: &[(&str, &str, &str)] = &[
    ("create", "CREATE TABLE made (x INT)", "CREATE TABLE is not allowed"),
    ("create-as", "CREATE TABLE made AS SELECT * FROM totals", "CREATE TABLE … AS is not allowed"),
    ("external", "CREATE EXTERNAL TABLE ext STORED AS CSV LOCATION 'SECRET'", "CREATE EXTERNAL TABLE is not allowed"),
    ("drop", "DROP TABLE totals", "DROP is not allowed"),
    ("insert", "INSERT INTO totals VALUES ('2020-01-01', 1)", "INSERT is not allowed"),
    ("insert-db", "INSERT INTO ledger.entries VALUES (9, 9)", "INSERT is not allowed"),
    ("update", "UPDATE ledger.entries SET amount = 0", "UPDATE is not allowed"),
    ("delete", "DELETE FROM ledger.entries", "DELETE is not allowed"),
    ("copy", "COPY (SELECT 1 AS x) TO 'OUT' STORED AS CSV", "COPY is not allowed"),
    ("set", "SET datafusion.execution.batch_size = 1", "SET is not allowed"),
    ("explain", "EXPLAIN ANALYZE INSERT INTO ledger.entries VALUES (9, 9)", "EXPLAIN ANALYZE INSERT is not allowed"),
    ("two", "SELECT 1 AS x; COPY (SELECT 1 AS x) TO 'OUT' STORED AS CSV", "2 statements (a query, COPY)"),
];

/// A deployment with a SQLite `ledger` next to `totals`, a file no table declares
/// (`secret.csv`), and one rule file per forbidden statement.
fn forbidden_deployment(dir: &Path) -> std::path::PathBuf {
    let ledger = dir.join("ledger.db");
    let sqlite = std::process::Command::new("sqlite3")
        .arg(&ledger)
        .arg("CREATE TABLE entries (id INTEGER, amount INTEGER); INSERT INTO entries VALUES (1, 5), (2, 7);")
        .output()
        .expect("sqlite3 runs");
    assert!(sqlite.status.success());
    std::fs::write(dir.join("secret.csv"), "user,password\nroot,hunter2\n").unwrap();
    let (out, secret) = (dir.join("out/x.csv"), dir.join("secret.csv"));
    let rules: Vec<(String, String)> = FORBIDDEN
        .iter()
        .map(|(name, query, _)| {
            let query = query.replace("OUT", path(&out)).replace("SECRET", path(&secret));
            (
                format!("{name}.yaml"),
                format!("id: {name}\nowner: o\nseverity: low\nsql:\n  query: \"{query}\"\n  key: [x]\n"),
            )
        })
        .collect();
    let rules: Vec<(&str, &str)> = rules.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    deployment(dir, "30 2 * * *", &rules, "  - { name: ledger, type: sqlite, path: ledger.db }\n")
}

fn ledger_rows(dir: &Path) -> String {
    let o = std::process::Command::new("sqlite3")
        .arg(dir.join("ledger.db"))
        .arg("SELECT count(*), sum(amount) FROM entries;")
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn every_kind_of_write_in_a_sql_rule_is_refused_with_its_place_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let config = forbidden_deployment(dir.path());
    let rules = dir.path().join("rules");
    let totals = std::fs::read(dir.path().join("totals.csv")).unwrap();
    // At load, without the tables, and again with them: one problem per rule, at its query.
    for args in [vec!["validate", path(&rules)], vec!["validate", path(&rules), "--config", path(&config)]] {
        let o = fundguard(&args);
        assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
        let out = stdout(&o);
        for (name, _, expected) in FORBIDDEN {
            let place = format!("{}/{name}.yaml:5:10: error: query: {expected}", path(&rules));
            assert!(out.lines().any(|l| l.starts_with(&place)), "{args:?}: {place}\n{out}");
        }
        assert!(out.contains(&format!("{} problem(s) found", FORBIDDEN.len())), "{out}");
        assert!(!out.contains("daily.yaml"), "{out}");
    }
    // Run by hand anyway: each run fails with the same reason and writes nothing.
    for (name, _, expected) in FORBIDDEN {
        let o = fundguard(&["sql", "run", name, "--config", path(&config), "--date", "2020-01-15"]);
        assert_eq!(o.status.code(), Some(1), "{name}: {}", stderr(&o));
        assert!(stderr(&o).contains(&format!("{name} 2020-01-15: failed")), "{}", stderr(&o));
        assert!(stderr(&o).contains(expected), "{name}: {}", stderr(&o));
        let failure: serde_json::Value = serde_json::from_str(stdout(&o).lines().next().unwrap()).unwrap();
        assert_eq!(failure["key"]["failed_run"], "2020-01-15");
    }
    assert!(!dir.path().join("out").exists(), "COPY wrote nothing");
    assert_eq!(std::fs::read(dir.path().join("totals.csv")).unwrap(), totals, "the table's file is unchanged");
    let names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(
        names.iter().all(|n| ["totals.csv", "secret.csv", "rules", "fundguard.yaml", "data"].contains(&n.as_str())
            || n.starts_with("ledger.db")),
        "{names:?}"
    );
    assert_eq!(ledger_rows(dir.path()), "2|12\n", "the database's rows are unchanged");
}

#[test]
fn a_sql_rule_reads_no_file_outside_the_warehouse_declarations() {
    let dir = tempfile::tempdir().unwrap();
    let config = forbidden_deployment(dir.path());
    let rules = dir.path().join("rules");
    for (name, _, _) in FORBIDDEN {
        std::fs::remove_file(rules.join(format!("{name}.yaml"))).unwrap();
    }
    let secret = dir.path().join("secret.csv");
    let readers = [
        ("url", format!("SELECT password AS x FROM '{}'", path(&secret))),
        ("function", format!("SELECT password AS x FROM read_csv('{}')", path(&secret))),
        ("series", "SELECT value AS x FROM generate_series(1, 3)".to_string()),
        ("include", format!("SELECT '{{% include \\\"{}\\\" %}}' AS x", path(&secret))),
    ];
    for (name, query) in &readers {
        std::fs::write(
            rules.join(format!("{name}.yaml")),
            format!("id: {name}\nowner: o\nseverity: low\nsql:\n  query: \"{query}\"\n  key: [x]\n"),
        )
        .unwrap();
    }
    let o = fundguard(&["validate", path(&rules), "--config", path(&config)]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    for (name, _) in &readers {
        assert!(out.contains(&format!("{name}.yaml:5:10: error: query:")), "{name}: {out}");
    }
    assert!(!out.contains("hunter2"), "{out}");
    for (name, _) in &readers {
        let o = fundguard(&["sql", "run", name, "--config", path(&config), "--date", "2020-01-15"]);
        assert_eq!(o.status.code(), Some(1), "{name}: {}", stderr(&o));
        assert!(!stdout(&o).contains("hunter2") && !stderr(&o).contains("hunter2"), "{name}: {}", stdout(&o));
    }
}

#[test]
fn a_sql_run_over_its_memory_limit_fails_and_the_next_date_still_runs() {
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<String> = (0..2000).map(|n| n.to_string()).collect();
    std::fs::write(dir.path().join("big.csv"), format!("n\n{}\n", rows.join("\n"))).unwrap();
    // Four million groups on the 15th only; no rows on other days.
    let hungry = "id: hungry\nowner: o\nseverity: low\nsql:\n  query: \"SELECT a.n * 10000 + b.n AS x, count(*) AS c FROM big a, big b WHERE '{{ ds }}' = '2020-01-15' GROUP BY a.n * 10000 + b.n\"\n  key: [x]\n  memory_limit: 1MiB\n";
    let tiny = "id: tiny\nowner: o\nseverity: low\nsql:\n  query: SELECT 1 AS x\n  key: [x]\n  memory_limit: 512\n";
    let config = deployment(
        dir.path(),
        "30 2 * * *",
        &[("hungry.yaml", hungry)],
        "  - { name: big, type: csv, path: big.csv }\n",
    );
    let o =
        fundguard(&["sql", "run", "hungry", "--config", path(&config), "--from", "2020-01-15", "--to", "2020-01-16"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("hungry 2020-01-15: failed")
            && err.contains("the query needed more memory than the rule's memory_limit (1MiB)"),
        "{err}"
    );
    assert!(err.contains("hungry 2020-01-16: ok"), "the next date runs: {err}");
    let runs = stdout(&fundguard(&["sql", "runs", "--config", path(&config), "--json"]));
    let statuses: Vec<serde_json::Value> =
        runs.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["status"].clone()).collect();
    assert_eq!(statuses, ["failed", "ok"]);

    // A limit without its unit is caught at load, where it is written.
    std::fs::write(dir.path().join("rules/tiny.yaml"), tiny).unwrap();
    let out = stdout(&fundguard(&["validate", path(&dir.path().join("rules"))]));
    assert!(out.contains("tiny.yaml:7:17: error: memory_limit `512` is below 1MiB"), "{out}");
}
