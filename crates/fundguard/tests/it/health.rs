//! Rule health against a real MariaDB binlog under steady writes: a dropped column and a new
//! status value are drift alerts within seconds; a `when` that names a status that never
//! occurs makes its rule stale while the table is busy; a `sql` rule over a missing file is
//! failing; alerts closed as false positives make a rule noisy; a shadow rule's findings
//! never become alerts. All of it through the CLI, the API, /metrics and the console page.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::console::{ChromeDriver, browser, log_in, screenshot, text_where};
use crate::servers::MariaDb;
use crate::service::{Service, agent, post, wait, write_config};
use crate::{path, stdout};

const RULES: &[(&str, &str)] = &[
    (
        "amount-or-note.yaml",
        "id: amount-or-note\nowner: shop\nseverity: high\ncheck:\n  tables: [shop.items]\n  assert: after.amount >= 0 OR after.note = 'refund'\n  key: { id: after.id }\n",
    ),
    (
        "item-states.yaml",
        "id: item-states\nowner: shop\nseverity: high\ntransition:\n  table: shop.items\n  key: after.id\n  status: after.status\n  initial: [NEW]\n  allowed: { NEW: [PAID], PAID: [] }\n",
    ),
    (
        "refunded-items.yaml",
        "id: refunded-items\nowner: refunds\nseverity: medium\ncheck:\n  tables: [shop.items]\n  when: after.status = 'REFUNDED'\n  assert: after.amount >= 0\n  key: { id: after.id }\n",
    ),
    (
        "big-items.yaml",
        "id: big-items\nowner: shop\nseverity: low\nmode: shadow\ncheck:\n  tables: [shop.items]\n  assert: after.amount < 900\n  key: { id: after.id }\n",
    ),
    (
        "daily-missing.yaml",
        "id: daily-missing\nowner: finance\nseverity: high\nsql:\n  schedule: \"*/2 * * * * *\"\n  query: SELECT id FROM missing\n  key: [id]\n",
    ),
];

fn get(url: &str) -> Value {
    crate::service::get_json(url, "adm")
}

/// The health of every rule, by id, once judged.
fn health(url: &str) -> Option<std::collections::BTreeMap<String, Value>> {
    let report = get(&format!("{url}/api/v1/rules/health"));
    let rules = report["rules"].as_array()?;
    Some(rules.iter().map(|h| (h["id"].as_str().unwrap().to_string(), h.clone())).collect())
}

fn state_of(url: &str, rule: &str) -> Option<String> {
    health(url)?.get(rule).map(|h| h["state"].as_str().unwrap().to_string())
}

fn wait_state(url: &str, rule: &str, want: &str, secs: u64) -> Value {
    wait(Duration::from_secs(secs), || {
        let h = health(url)?;
        let rule = h.get(rule)?;
        (rule["state"] == want).then(|| rule.clone())
    })
    .unwrap_or_else(|| panic!("{rule} never became {want}: {:?}", state_of(url, rule)))
}

fn alerts_of(url: &str, rule: &str) -> Vec<Value> {
    get(&format!("{url}/api/v1/alerts?rule={rule}&limit=500"))["alerts"].as_array().unwrap().clone()
}

#[test]
fn drift_staleness_failures_and_noise_are_found_on_a_live_binlog() {
    let db = MariaDb::start(&[]);
    db.sql(
        "CREATE DATABASE shop; CREATE TABLE shop.items (id BIGINT PRIMARY KEY, amount DECIMAL(12,2) NOT NULL, status VARCHAR(16) NOT NULL, note VARCHAR(32));",
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    for (name, text) in RULES {
        std::fs::write(dir.path().join("rules").join(name), text).unwrap();
    }
    let config = write_config(
        dir.path(),
        &format!(
            "rules: [rules]\ndata_dir: data\nlisten: 127.0.0.1:0\nsources:\n  - {{ name: shopdb, type: mysql, url: \"{}\", server_id: 931, include: [\"shop.*\"] }}\nwarehouse:\n  - {{ name: missing, type: csv, path: missing.csv }}\nsinks:\n  - {{ type: alerts }}\n  - {{ type: jsonl, path: findings.jsonl }}\nhealth: {{ every: 1s, dead_filter_after: 4s }}\nconsole:\n  users:\n    - {{ name: ada, role: admin, password_env: FG_PW }}\n  tokens:\n    - {{ name: ops, role: admin, token_env: FG_ADMIN }}\n",
            db.url()
        ),
    );
    let service = Service::start(&config, &[("FG_ADMIN", "adm"), ("FG_PW", "demo-pw")]);
    let url = service.url();

    // Steady writes: a new item every 100 ms, paid 50 ms later (several commits a second).
    let running = Arc::new(AtomicBool::new(true));
    let next_id = Arc::new(AtomicU64::new(1));
    let writer = {
        let (running, next_id, port) = (running.clone(), next_id.clone(), db.port);
        std::thread::spawn(move || {
            while running.load(Ordering::Relaxed) {
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                crate::servers::mariadb_sql(
                    port,
                    &format!(
                        "INSERT INTO shop.items (id, amount, status) VALUES ({id}, 10.00, 'NEW'); UPDATE shop.items SET status = 'PAID' WHERE id = {id};"
                    ),
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };

    // The dead filter: `refunded-items` lets nothing through while its table is busy.
    let refunded = wait_state(&url, "refunded-items", "stale", 40);
    assert!(refunded["reasons"][0]["message"].as_str().unwrap().contains("`when` let no event through"), "{refunded}");
    // The sql rule over a file that is not there fails every run.
    let failing = wait_state(&url, "daily-missing", "failing", 40);
    assert!(failing["totals"]["run_failures"].as_u64().unwrap() >= 1, "{failing}");
    // The busy rules are fine.
    assert_eq!(state_of(&url, "amount-or-note").as_deref(), Some("ok"));
    assert_eq!(state_of(&url, "item-states").as_deref(), Some("ok"));

    // A shadow rule finds, records, never alerts.
    db.sql("INSERT INTO shop.items (id, amount, status) VALUES (900001, 950.00, 'NEW');");
    let shadow = wait(Duration::from_secs(20), || {
        let h = health(&url)?;
        (h["big-items"]["totals"]["findings"].as_u64()? >= 1).then(|| h["big-items"].clone())
    })
    .expect("the shadow rule's finding is counted");
    assert_eq!(shadow["mode"], "shadow");
    assert!(alerts_of(&url, "big-items").is_empty(), "a shadow rule raises no alert");

    // Noise: five negative amounts are five alerts; two of them closed as false positives.
    for id in 800001..=800005 {
        db.sql(&format!("INSERT INTO shop.items (id, amount, status, note) VALUES ({id}, -1.00, 'NEW', 'x');"));
    }
    let opened = wait(Duration::from_secs(20), || {
        let alerts = alerts_of(&url, "amount-or-note");
        (alerts.len() >= 5).then_some(alerts)
    })
    .expect("five alerts");
    for alert in &opened[..2] {
        let (status, body) = post(
            &format!("{url}/api/v1/alerts/{}/false-positive", alert["id"]),
            Some("adm"),
            r#"{"reason":"test data"}"#,
        );
        assert_eq!(status, 200, "{body}");
    }
    let noisy = wait_state(&url, "amount-or-note", "noisy", 20);
    assert!(noisy["reasons"][0]["message"].as_str().unwrap().contains("false positives"), "{noisy}");

    // Drift: the column a rule reads is dropped; the next change is a drift alert in seconds.
    let dropped = Instant::now();
    db.sql("ALTER TABLE shop.items DROP COLUMN note;");
    let drift = wait(Duration::from_secs(20), || {
        alerts_of(&url, "amount-or-note").into_iter().find(|a| a["key"]["drift"] == "column_missing")
    })
    .expect("a drift alert for the dropped column");
    let seconds = dropped.elapsed().as_secs_f64();
    assert!(seconds < 10.0, "the drift alert took {seconds:.1} s");
    assert_eq!(drift["key"]["subject"], "shop.items.note", "{drift}");
    assert_eq!(drift["owner"], "shop");
    // The ALTER TABLE is a change too, named after its source, for attribution to rank: the
    // drift alert's incident names it first among the changes before it.
    let changes = get(&format!("{url}/api/v1/changes"));
    let ddl = changes.as_array().unwrap().iter().find(|c| c["kind"] == "ddl").expect("the DDL recorded as a change");
    assert_eq!((&ddl["service"], &ddl["tables"]), (&json!("shopdb"), &json!(["shop.items"])), "{ddl}");
    assert!(ddl["description"].as_str().unwrap().contains("DROP COLUMN note"), "{ddl}");
    let incident = get(&format!("{url}/api/v1/incidents/{}", drift["incident_id"]));
    assert_eq!(incident["changes"][0]["change"]["id"], ddl["id"], "{incident}");
    wait_state(&url, "amount-or-note", "drifted", 20);

    // A status value the state machine never mentions.
    db.sql("INSERT INTO shop.items (id, amount, status) VALUES (900002, 5.00, 'ON_HOLD');");
    let drifted = wait_state(&url, "item-states", "drifted", 20);
    let evidence = drifted["reasons"][0]["evidence"][0].as_str().unwrap();
    assert!(evidence.contains("status=ON_HOLD") && evidence.contains("first seen"), "{drifted}");

    // /metrics: one series per rule and state.
    let metrics = agent().get(&format!("{url}/metrics")).call().unwrap().body_mut().read_to_string().unwrap();
    assert!(
        metrics.contains("fundguard_rule_health{rule=\"refunded-items\",owner=\"refunds\",state=\"stale\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("fundguard_rule_health{rule=\"refunded-items\",owner=\"refunds\",state=\"ok\"} 0"));

    // The console page: every rule with its state and reasons.
    let driver = ChromeDriver::start();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client = browser(&driver).await;
        log_in(&client, &url, "ada").await;
        client.goto(&format!("{url}#/health")).await.unwrap();
        let row = text_where(&client, "#health-table tr[data-rule=item-states]", |t| t.contains("drifted")).await;
        assert!(row.contains("ON_HOLD"), "{row}");
        text_where(&client, "#health-table tr[data-rule=refunded-items]", |t| t.contains("stale")).await;
        text_where(&client, "#health-table tr[data-rule=daily-missing]", |t| t.contains("failing")).await;
        screenshot(&client, "rule-health").await;
        client.goto(&format!("{url}#/health/refunds")).await.unwrap();
        text_where(&client, "#health-table tbody", |t| t.contains("refunded-items") && !t.contains("item-states"))
            .await;
        client.close().await.unwrap();
    });

    // An admin promotes the shadow rule: audited, and its next finding is an alert.
    let (status, body) = post(&format!("{url}/api/v1/rules/big-items/promote"), Some("adm"), "{}");
    assert_eq!(status, 200, "{body}");
    wait(Duration::from_secs(20), || {
        let rules = get(&format!("{url}/api/v1/rules"));
        rules.as_array()?.iter().any(|r| r["id"] == "big-items" && r["mode"] == "live").then_some(())
    })
    .expect("the promoted rule runs live");
    assert_eq!(post(&format!("{url}/api/v1/rules/big-items/promote"), Some("adm"), "{}").0, 409);
    db.sql("INSERT INTO shop.items (id, amount, status) VALUES (900003, 990.00, 'NEW');");
    wait(Duration::from_secs(20), || (!alerts_of(&url, "big-items").is_empty()).then_some(()))
        .expect("the promoted rule's finding is an alert");
    let audit = get(&format!("{url}/api/v1/audit?action=rule_promoted"));
    assert_eq!(audit["entries"][0]["target"], "big-items", "{audit}");

    // The CLI reads the same store (exit 1: some rules are failing, drifted or stale).
    running.store(false, Ordering::Relaxed);
    writer.join().unwrap();
    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_fundguard"))
            .args(args)
            .envs([("FG_ADMIN", "adm"), ("FG_PW", "demo-pw")])
            .output()
            .unwrap()
    };
    let o = cli(&["rules", "health", "--config", path(&config), "--format", "json"]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), crate::stderr(&o));
    let judged: Vec<Value> = serde_json::from_str(&stdout(&o)).unwrap();
    let state = |rule: &str| judged.iter().find(|h| h["id"] == rule).map(|h| h["state"].as_str().unwrap().to_string());
    assert_eq!(state("daily-missing").as_deref(), Some("failing"));
    assert_eq!(state("item-states").as_deref(), Some("drifted"));
    assert_eq!(state("amount-or-note").as_deref(), Some("drifted"));
    let text = cli(&["rules", "health", "--config", path(&config), "--owner", "refunds"]);
    assert!(stdout(&text).contains("refunded-items") && !stdout(&text).contains("item-states"), "{}", stdout(&text));
    // The weekly freshness report: per owner, its rules by state and the reasons.
    let report = cli(&["report", "freshness", "--config", path(&config)]);
    let report = stdout(&report);
    assert!(
        report.contains("refunds: 1 rule(s): 1 stale") && report.contains("finance: 1 rule(s): 1 failing"),
        "{report}"
    );
    assert!(report.contains("status=ON_HOLD"), "{report}");
    drop(service);
}
