//! Lookups through the binary: reference rows from a CSV warehouse table (contracted
//! commission rates, effective-dated), from the change stream (orders that exist), in rule
//! tests, and refreshed while `fundguard run` runs.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::service::{Service, wait, write_config};
use crate::{fundguard, path, read_jsonl, stderr, stdout};

/// The simulator's contracted commission rate of a merchant (shop.rs): 0.60 %…5.00 %.
fn contracted_rate(merchant: i64) -> String {
    format!("0.{:04}", 60 + (merchant * 37) % 441)
}

const COMMISSION_RULE: &str = r#"id: settlement-commission-contracted
owner: settlement-team
severity: high
lookups:
  merchant_rates:
    match: { merchant_id: after.merchant_id }
check:
  tables: [shop.settlements]
  key: { id: after.id }
  assert: >-
    after.commission_rate = lookup.merchant_rates.rate
    AND after.commission_amount = round(after.gross_amount * lookup.merchant_rates.rate)
"#;

/// Settlement rows of the simulator's maxwell log: (id, merchant).
fn settlements(log: &Path) -> Vec<(i64, i64)> {
    read_jsonl(log)
        .iter()
        .filter(|l| l["table"] == "settlements")
        .map(|l| (l["data"]["id"].as_i64().unwrap(), l["data"]["merchant_id"].as_i64().unwrap()))
        .collect()
}

fn ids(findings: &[Value], rule: &str) -> BTreeSet<i64> {
    findings.iter().filter(|f| f["rule"] == rule).map(|f| f["key"]["id"].as_i64().unwrap()).collect()
}

/// The simulator's log with commission incidents, and the contract table the tests serve
/// from different places: merchant 17's contract changed (its settlements now disagree with
/// the reference data), merchant 18 has none.
struct Contracts {
    dir: tempfile::TempDir,
    /// (merchant, rate as text) rows of the reference table.
    rates: Vec<(i64, String)>,
}

const RENEGOTIATED: i64 = 17;
const UNKNOWN: i64 = 18;

impl Contracts {
    fn new() -> Contracts {
        let dir = tempfile::tempdir().unwrap();
        let o = fundguard(&[
            "simulate",
            "--out",
            path(dir.path()),
            "--orders",
            "800",
            "--incident-rate",
            "0.05",
            "--seed",
            "5",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let rates = (1..=200)
            .filter(|m| *m != UNKNOWN)
            .map(|m| (m, if m == RENEGOTIATED { "0.0999".to_string() } else { contracted_rate(m) }))
            .collect();
        let rules = dir.path().join("rules");
        std::fs::create_dir(&rules).unwrap();
        std::fs::write(rules.join("commission.yaml"), COMMISSION_RULE).unwrap();
        Contracts { dir, rates }
    }

    fn backtest(&self, extra: &[&str]) -> std::process::Output {
        let d = self.dir.path();
        let (rules, log, schema, findings) =
            (d.join("rules"), d.join("maxwell.jsonl"), d.join("schema.yaml"), d.join("findings.jsonl"));
        let mut args = vec!["backtest", "--rules", path(&rules), "--input", path(&log), "--format", "maxwell"];
        args.extend_from_slice(&["--schema", path(&schema), "--findings", path(&findings)]);
        args.extend_from_slice(extra);
        fundguard(&args)
    }

    /// Backtests with a config whose `warehouse:` and `lookups:` are `config`, and checks
    /// that every miscalculated or off-contract settlement is found, and nothing else.
    fn assert_found_with(&self, config: &str) {
        let config = write_config(self.dir.path(), config);
        let o = self.backtest(&["--config", path(&config)]);
        assert!(o.status.success(), "{}", stderr(&o));
        let incidents: BTreeSet<i64> = read_jsonl(&self.dir.path().join("answer-key.jsonl"))
            .iter()
            .flat_map(|i| i["expected"].as_array().unwrap().clone())
            .filter(|e| e["rule"] == "settlement-commission-computed")
            .map(|e| e["key"]["id"].as_i64().unwrap())
            .collect();
        assert!(!incidents.is_empty(), "the simulator injected commission incidents");
        let all = settlements(&self.dir.path().join("maxwell.jsonl"));
        let findings = read_jsonl(&self.dir.path().join("findings.jsonl"));
        let expected: BTreeSet<i64> = all
            .iter()
            .filter(|(id, m)| *m != UNKNOWN && (incidents.contains(id) || *m == RENEGOTIATED))
            .map(|(id, _)| *id)
            .collect();
        let missing: BTreeSet<i64> = all.iter().filter(|(_, m)| *m == UNKNOWN).map(|(id, _)| *id).collect();
        assert!(!missing.is_empty() && expected.len() > incidents.len(), "the seed settles merchants 17 and 18");
        let is_missing = |f: &&Value| f["message"].as_str().unwrap().contains("no `merchant_rates` row");
        let judged: BTreeSet<i64> =
            findings.iter().filter(|f| !is_missing(f)).map(|f| f["key"]["id"].as_i64().unwrap()).collect();
        assert_eq!(judged, expected, "every miscalculated or off-contract settlement, nothing else");
        let reported_missing: Vec<&Value> = findings.iter().filter(is_missing).collect();
        assert_eq!(
            reported_missing.len(),
            missing.len(),
            "one finding per settlement of the merchant without a contract"
        );
        assert!(reported_missing.iter().all(|f| f["key"]["merchant_id"] == UNKNOWN), "{reported_missing:?}");
    }
}

#[test]
fn settlements_are_checked_against_contracted_rates_from_a_csv_lookup() {
    let contracts = Contracts::new();
    let mut csv = String::from("merchant_id,rate\n");
    for (m, rate) in &contracts.rates {
        csv.push_str(&format!("{m},{rate}\n"));
    }
    std::fs::write(contracts.dir.path().join("merchant_rates.csv"), csv).unwrap();

    let o = contracts.backtest(&[]);
    assert!(!o.status.success(), "rules reading a lookup need its rows");
    assert!(stderr(&o).contains("merchant_rates") && stderr(&o).contains("--config"), "{}", stderr(&o));

    contracts.assert_found_with(
        "rules: [rules]\nwarehouse:\n  - { name: merchant_rates, type: csv, path: merchant_rates.csv }\nlookups:\n  - { name: merchant_rates, table: merchant_rates }\n",
    );
}

/// The same contracts as a table of a PostgreSQL and of a MariaDB database (the shared
/// servers, a fresh database each): `NUMERIC(6,4)` / `DECIMAL(6,4)` rates arrive exact.
#[test]
fn contracted_rates_are_read_from_postgresql_and_mariadb_tables() {
    let contracts = Contracts::new();
    let values: Vec<String> = contracts.rates.iter().map(|(m, rate)| format!("({m}, {rate})")).collect();
    let insert = format!("INSERT INTO merchant_rates (merchant_id, rate) VALUES {};", values.join(", "));
    let name = format!("fg_lookup_{}", std::process::id());
    let psql = |db: &str, sql: &str| {
        let o = std::process::Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-c", sql])
            .output()
            .unwrap();
        assert!(o.status.success(), "psql: {}", String::from_utf8_lossy(&o.stderr));
    };
    let mariadb = |sql: &str| crate::servers::mariadb_sql(3306, sql);

    psql("postgres", &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    psql("postgres", &format!("CREATE DATABASE {name}"));
    psql(
        &name,
        &format!("CREATE TABLE merchant_rates (merchant_id BIGINT PRIMARY KEY, rate NUMERIC(6,4) NOT NULL); {insert}"),
    );
    contracts.assert_found_with(&format!(
        "rules: [rules]\nwarehouse:\n  - {{ name: ref, type: postgres, url: \"postgres://postgres@127.0.0.1:5432/{name}\", schema: public, sslmode: disable }}\nlookups:\n  - {{ name: merchant_rates, table: ref.merchant_rates }}\n"
    ));
    psql("postgres", &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));

    mariadb(&format!("DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name}"));
    let create = "CREATE TABLE merchant_rates (merchant_id BIGINT PRIMARY KEY, rate DECIMAL(6,4) NOT NULL);";
    mariadb(&format!("USE {name}; {create} {insert}"));
    contracts.assert_found_with(&format!(
        "rules: [rules]\nwarehouse:\n  - {{ name: ref, type: mysql, url: \"mysql://root@127.0.0.1:3306/{name}\", sslmode: disabled }}\nlookups:\n  - {{ name: merchant_rates, table: ref.merchant_rates }}\n"
    ));
    mariadb(&format!("DROP DATABASE IF EXISTS {name}"));
}

#[test]
fn an_effective_dated_rate_is_read_as_of_each_settlement() {
    let dir = tempfile::tempdir().unwrap();
    let o =
        fundguard(&["simulate", "--out", path(dir.path()), "--orders", "400", "--incident-rate", "0", "--seed", "9"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let log = dir.path().join("maxwell.jsonl");
    let lines = read_jsonl(&log);
    let settled: Vec<(i64, i64, i64)> = lines
        .iter()
        .filter(|l| l["table"] == "settlements")
        .map(|l| {
            (l["data"]["id"].as_i64().unwrap(), l["data"]["merchant_id"].as_i64().unwrap(), l["ts"].as_i64().unwrap())
        })
        .collect();
    // Every merchant's rate changes in the middle of the log: settlements before read the
    // old (true) rate, settlements after the new one (which they do not use).
    let middle = settled[settled.len() / 2].2;
    let change = chrono::DateTime::from_timestamp(middle, 0).unwrap().to_rfc3339();
    let mut csv = String::from("merchant_id,rate,valid_from\n");
    for m in 1..=200 {
        csv.push_str(&format!("{m},{},2000-01-01T00:00:00Z\n{m},0.0999,{change}\n", contracted_rate(m)));
    }
    std::fs::write(dir.path().join("rates.csv"), csv).unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(rules.join("commission.yaml"), COMMISSION_RULE).unwrap();
    let config = write_config(
        dir.path(),
        "rules: [rules]\nwarehouse:\n  - { name: rates, type: csv, path: rates.csv }\nlookups:\n  - { name: merchant_rates, table: rates, as_of: valid_from }\n",
    );
    let findings_file = dir.path().join("findings.jsonl");
    let o = fundguard(&[
        "backtest",
        "--rules",
        path(&rules),
        "--input",
        path(&log),
        "--format",
        "maxwell",
        "--schema",
        path(&dir.path().join("schema.yaml")),
        "--findings",
        path(&findings_file),
        "--config",
        path(&config),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let found = ids(&read_jsonl(&findings_file), "settlement-commission-contracted");
    let after: BTreeSet<i64> = settled.iter().filter(|(_, _, ts)| *ts >= middle).map(|(id, _, _)| *id).collect();
    assert_eq!(found, after, "exactly the settlements from the change on");
}

/// `shop.orders` and `shop.payments` messages: a payment must name an order that exists.
fn shop_messages(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(
        rules.join("order-exists.yaml"),
        "id: payment-order-exists\nowner: payments\nseverity: critical\nlookups:\n  orders:\n    match: { id: after.order_id }\n\
         check:\n  tables: [shop.payments]\n  key: { id: after.id }\n  assert: \"after.amount <= lookup.orders.pay_amount\"\n",
    )
    .unwrap();
    let ts = 1_700_000_000_000i64;
    let mut lines = Vec::new();
    for i in 0..200 {
        // Orders and payments interleave with many ties in event time.
        let t = ts + i / 10;
        lines.push(format!(r#"{{"type":"shop.orders","ts":{t},"id":{i},"pay_amount":100}}"#));
        if i % 50 == 49 {
            // A payment for an order that was never created.
            lines.push(format!(
                r#"{{"type":"shop.payments","ts":{t},"id":{},"order_id":{},"amount":100}}"#,
                1000 + i,
                5000 + i
            ));
        } else if i % 40 == 7 {
            // A payment larger than its order.
            lines.push(format!(r#"{{"type":"shop.payments","ts":{t},"id":{},"order_id":{i},"amount":101}}"#, 1000 + i));
        } else {
            lines.push(format!(r#"{{"type":"shop.payments","ts":{t},"id":{},"order_id":{i},"amount":100}}"#, 1000 + i));
        }
    }
    let log = dir.join("shop.jsonl");
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    (rules, log)
}

#[test]
fn a_payment_whose_order_never_existed_is_exact_with_a_stream_lookup_in_any_batch_size() {
    let dir = tempfile::tempdir().unwrap();
    let (rules, log) = shop_messages(dir.path());
    let config = write_config(dir.path(), "rules: [rules]\nlookups:\n  - { name: orders, stream: shop.orders }\n");
    let mut runs = Vec::new();
    for batch in ["1", "7", "8192"] {
        let findings = dir.path().join(format!("findings-{batch}.jsonl"));
        let o = fundguard(&[
            "backtest",
            "--rules",
            path(&rules),
            "--input",
            path(&log),
            "--format",
            "json",
            "--config",
            path(&config),
            "--batch-size",
            batch,
            "--findings",
            path(&findings),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let f = read_jsonl(&findings);
        let missing: BTreeSet<i64> = f
            .iter()
            .filter(|f| f["message"].as_str().unwrap().contains("no `orders` row"))
            .map(|f| f["key"]["id"].as_i64().unwrap())
            .collect();
        let larger: BTreeSet<i64> = f
            .iter()
            .filter(|f| !f["message"].as_str().unwrap().contains("no `orders` row"))
            .map(|f| f["key"]["id"].as_i64().unwrap())
            .collect();
        assert_eq!(missing, [5049, 5099, 5149, 5199].into_iter().collect(), "keyed by the order looked for");
        assert_eq!(larger, [1007, 1047, 1087, 1127, 1167].into_iter().collect());
        runs.push(f.iter().map(|f| f["message"].as_str().unwrap().to_string()).collect::<Vec<_>>());
    }
    assert!(runs.windows(2).all(|w| w[0] == w[1]), "batching changes nothing");
}

#[test]
fn rule_tests_give_lookup_rows_and_validate_checks_the_config_declares_them() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    let tested = COMMISSION_RULE.to_string()
        + r#"tests:
  - name: the contracted rate passes, another is reported, no contract is missing
    lookups:
      merchant_rates: [{ merchant_id: 7, rate: 0.0319 }]
    events:
      - { at: 0s, table: shop.settlements, op: insert, after: { id: 1, merchant_id: 7, gross_amount: 10000, commission_rate: 0.0319, commission_amount: 319 } }
      - { at: 1s, table: shop.settlements, op: insert, after: { id: 2, merchant_id: 7, gross_amount: 10000, commission_rate: 0.03, commission_amount: 300 } }
      - { at: 2s, table: shop.settlements, op: insert, after: { id: 3, merchant_id: 8, gross_amount: 10000, commission_rate: 0.03, commission_amount: 300 } }
    expect:
      - key: { id: 2 }
      - key: { merchant_id: 8 }
        message: "settlement-commission-contracted: no `merchant_rates` row for merchant_id=8 (shop.settlements insert)"
"#;
    std::fs::write(rules.join("commission.yaml"), &tested).unwrap();
    let o = fundguard(&["test", path(&rules)]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));

    // A test that gives a lookup the rule does not read is refused at its place.
    std::fs::write(rules.join("commission.yaml"), tested.replace("      merchant_rates: [", "      rates: [")).unwrap();
    let o = fundguard(&["validate", path(&rules)]);
    assert!(!o.status.success());
    assert!(
        stdout(&o).contains("test lookup `rates` is not one the rule reads: expected merchant_rates"),
        "{}",
        stdout(&o)
    );

    std::fs::write(rules.join("commission.yaml"), &tested).unwrap();
    let config = write_config(dir.path(), "rules: [rules]\n");
    let o = fundguard(&["validate", path(&rules), "--config", path(&config)]);
    assert!(!o.status.success());
    assert!(
        stdout(&o).contains("commission.yaml:6:") && stdout(&o).contains("lookup `merchant_rates` is not declared"),
        "{}",
        stdout(&o)
    );

    // An expression naming a lookup the rule does not declare is refused at its line.
    std::fs::write(
        rules.join("commission.yaml"),
        COMMISSION_RULE.replace("lookup.merchant_rates.rate\n", "lookup.rates.rate\n"),
    )
    .unwrap();
    let o = fundguard(&["validate", path(&rules)]);
    assert!(stdout(&o).contains("unknown lookup `rates`"), "{}", stdout(&o));
}

#[test]
fn a_running_service_reads_a_table_lookup_again_every_refresh() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(rules.join("commission.yaml"), COMMISSION_RULE).unwrap();
    std::fs::write(dir.path().join("rates.csv"), "merchant_id,rate\n7,0.0319\n").unwrap();
    let log = dir.path().join("maxwell.jsonl");
    let line = |id: i64, rate: &str, commission: i64| {
        format!(
            "{{\"database\":\"shop\",\"table\":\"settlements\",\"type\":\"insert\",\"ts\":1714550401,\"data\":{{\"id\":{id},\"merchant_id\":7,\"gross_amount\":10000,\"commission_rate\":{rate},\"commission_amount\":{commission}}}}}\n"
        )
    };
    std::fs::write(&log, line(1, "0.0319", 319) + &line(2, "0.0400", 400)).unwrap();
    let config = write_config(
        dir.path(),
        "rules: [rules]\ndata_dir: data\nwarehouse:\n  - { name: rates, type: csv, path: rates.csv }\nlookups:\n  - { name: merchant_rates, table: rates, refresh: 1s }\nsources:\n  - { name: log, type: file, path: maxwell.jsonl, format: maxwell, follow: true }\nsinks:\n  - { type: jsonl, path: findings.jsonl }\n",
    );
    let _service = Service::start(&config, &[]);
    let findings = |n: usize| {
        wait(Duration::from_secs(15), || {
            let f = read_jsonl(&dir.path().join("findings.jsonl"));
            (f.len() >= n).then_some(f)
        })
    };
    let first = findings(1).expect("settlement 2 is off-contract");
    assert_eq!(first.iter().map(|f| f["key"]["id"].as_i64().unwrap()).collect::<Vec<_>>(), [2]);
    // The contract changes to 4 %: after the next refresh, settlements at 4 % pass and one
    // at the old rate is reported.
    std::fs::write(dir.path().join("rates.csv"), "merchant_id,rate\n7,0.04\n").unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all((line(3, "0.0400", 400) + &line(4, "0.0319", 319)).as_bytes()).unwrap();
    f.flush().unwrap();
    findings(2).expect("settlement 4 at the old rate");
    // Settlement 3 comes before 4 in the file: once 4 is reported, 3 was judged too.
    std::thread::sleep(Duration::from_millis(500));
    let all = read_jsonl(&dir.path().join("findings.jsonl"));
    assert_eq!(all.iter().map(|f| f["key"]["id"].as_i64().unwrap()).collect::<Vec<_>>(), [2, 4]);
}
