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
