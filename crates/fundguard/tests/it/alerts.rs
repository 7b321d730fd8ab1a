//! Alerts from the command line: a backtest and a live run record findings as alerts,
//! and `fundguard alerts` works them through their lifecycle.

use std::time::Duration;

use crate::servers::SharedPostgresDatabase;
use crate::service::{Service, now_ms, post, wait, write_config};
use crate::{fundguard, path, repo_root, stderr, stdout};

fn alerts(store: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["alerts", "--store", path(store)];
    all.extend_from_slice(args);
    fundguard(&all)
}

fn list(store: &std::path::Path, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["list", "--json", "--limit", "1000"];
    all.extend_from_slice(args);
    let o = alerts(store, &all);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn a_backtest_records_alerts_that_the_cli_works_through_their_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let o = fundguard(&[
        "simulate",
        "--out",
        path(dir.path()),
        "--format",
        "debezium",
        "--orders",
        "400",
        "--incident-rate",
        "0.1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let store = dir.path().join("backtest-alerts.db");
    let findings = dir.path().join("findings.jsonl");
    let o = fundguard(&[
        "backtest",
        "--rules",
        "examples/rules",
        "--input",
        path(&dir.path().join("debezium.jsonl")),
        "--format",
        "debezium",
        "--schema",
        path(&dir.path().join("schema.yaml")),
        "--findings",
        path(&findings),
        "--alerts",
        path(&store),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let found = crate::read_jsonl(&findings);
    let fingerprints: std::collections::BTreeSet<(String, String)> =
        found.iter().map(|f| (f["rule"].as_str().unwrap().to_string(), f["key"].to_string())).collect();
    let all = list(&store, &[]);
    assert_eq!(all.len(), fingerprints.len(), "one alert per rule and key");
    assert_eq!(all.iter().map(|a| a["count"].as_u64().unwrap()).sum::<u64>(), found.len() as u64);
    assert!(all.iter().all(|a| a["status"] == "open" && !a["owner"].as_str().unwrap().is_empty()));

    let id = all[0]["id"].as_i64().unwrap().to_string();
    let team = all[0]["owner"].as_str().unwrap().to_string();
    assert!(list(&store, &["--team", &team]).iter().all(|a| a["owner"] == team.as_str()));
    let o = alerts(&store, &["ack", &id, "--by", "ana"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = alerts(&store, &["resolve", &id, "--by", "ana", "--root-cause", ""]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("root cause"), "{}", stderr(&o));
    let o = alerts(&store, &["resolve", &id, "--by", "ana", "--root-cause", "refund job used yuan"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = alerts(&store, &["ack", &id]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is resolved: only open alerts can be acknowledged"), "{}", stderr(&o));
    let o = alerts(&store, &["show", &id, "--json"]);
    let shown: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(shown["alert"]["root_cause"], "refund job used yuan");
    let actions: Vec<&str> =
        shown["timeline"].as_array().unwrap().iter().map(|t| t["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["opened", "acknowledged", "resolved"]);
    assert_eq!(shown["timeline"][2]["actor"], "ana");
    assert_eq!(list(&store, &["--status", "resolved"]).len(), 1);
    let o = alerts(&store, &["slo", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let slo: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let figures = &slo["by_team"][team.as_str()];
    assert!(figures["alerts"].as_u64().unwrap() >= 1 && figures["mttr_ms"].is_i64(), "{slo}");
    assert_eq!(
        slo["by_rule"].as_object().unwrap().values().map(|f| f["alerts"].as_u64().unwrap()).sum::<u64>(),
        all.len() as u64
    );
    // The daily clearing report of today: every alert is new today, one resolved.
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    for format in ["text", "markdown", "html"] {
        let o = fundguard(&["report", "daily", "--store", path(&store), "--date", &today, "--format", format]);
        assert!(o.status.success(), "{}", stderr(&o));
        let text = stdout(&o);
        assert!(text.contains(&today) && text.contains(&team), "{format}: {text}");
    }
    let o = fundguard(&["report", "daily", "--store", path(&store), "--date", &today, "--format", "markdown"]);
    let row = stdout(&o).lines().find(|l| l.starts_with(&format!("| {team} |"))).unwrap().to_string();
    let cells: Vec<&str> = row.split(" | ").collect();
    let new_for_team = all.iter().filter(|a| a["owner"] == team.as_str()).count();
    assert_eq!(cells[1], new_for_team.to_string(), "{row}");
    assert_eq!(cells[4], "1", "one resolved today: {row}");
    let o = alerts(&store, &["list", "--status", "closed"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("expected one of open"), "{}", stderr(&o));
}

#[test]
fn a_live_run_records_alerts_and_dedups_repeated_findings() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "rules: [{}]\ndata_dir: data\nlisten: 127.0.0.1:0\nsources:\n  - {{ name: msgs, type: http, format: json, table: shop.refunds, token_env: FG_TOKEN }}\nsinks:\n  - {{ type: alerts }}\n",
            path(&repo_root().join("examples/rules"))
        ),
    );
    let service = Service::start(&config, &[("FG_TOKEN", "t")]);
    let url = format!("{}/v1/ingest/msgs", service.url());
    for amount in [-5, -6] {
        let body =
            format!("[{{\"id\":1,\"order_id\":3,\"amount\":{amount},\"currency\":\"CNY\",\"ts\":{}}}]", now_ms());
        let (status, reply) = post(&url, Some("t"), &body);
        assert_eq!(status, 200, "{reply}");
    }
    let store = dir.path().join("data/alerts.db");
    let alert = wait(Duration::from_secs(10), || {
        let all = list(&store, &["--rule", "refund-amount-positive"]);
        all.first().filter(|a| a["count"] == 2).cloned()
    })
    .expect("one alert for both findings");
    assert_eq!(alert["owner"], "refunds");
    assert!(alert["message"].as_str().unwrap().contains("-6"), "the latest finding's message: {alert}");
}

#[test]
fn a_live_run_and_the_cli_share_a_postgresql_alert_store() {
    let database = SharedPostgresDatabase::create("fg_live_alerts");
    let url = database.url();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "rules: [{}]\ndata_dir: data\nlisten: 127.0.0.1:0\nsources:\n  - {{ name: msgs, type: http, format: json, table: shop.refunds, token_env: FG_TOKEN }}\nsinks:\n  - {{ type: alerts, postgres_env: FG_ALERTS_PG }}\n",
            path(&repo_root().join("examples/rules"))
        ),
    );
    let service = Service::start(&config, &[("FG_TOKEN", "t"), ("FG_ALERTS_PG", &url)]);
    let body = format!("[{{\"id\":4,\"order_id\":4,\"amount\":-4,\"currency\":\"CNY\",\"ts\":{}}}]", now_ms());
    assert_eq!(post(&format!("{}/v1/ingest/msgs", service.url()), Some("t"), &body).0, 200);
    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_fundguard"))
            .args(["alerts", "--postgres-env", "FG_ALERTS_PG"])
            .args(args)
            .env("FG_ALERTS_PG", &url)
            .output()
            .unwrap()
    };
    let listed = wait(Duration::from_secs(10), || {
        let o = cli(&["list", "--json"]);
        let text = stdout(&o);
        text.contains("refund-amount-positive").then_some(text)
    })
    .expect("the live run's alert is in PostgreSQL");
    let alert: serde_json::Value = serde_json::from_str(listed.lines().next().unwrap()).unwrap();
    let id = alert["id"].to_string();
    let o = cli(&["resolve", &id, "--root-cause", "test data", "--by", "ana"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = cli(&["show", &id, "--json"]);
    let shown: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(shown["alert"]["status"], "resolved");
    assert_eq!(shown["timeline"][1]["actor"], "ana");
    drop(service);
}
