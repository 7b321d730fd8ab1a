//! Live equals replay, under load: the simulator's shop is committed to a private
//! database at thousands of row changes per second in small transactions, read live by
//! `fundguard run` with every example rule and two of seconds' scale (check, transition,
//! reconcile, timeout, rate),
//! and the findings must be exactly those a backtest finds over the same changes written
//! as a Debezium log — same rules, keys, event times, messages, money and evidence rows.
//!
//! MariaDB: every transaction's binlog time is set (`SET TIMESTAMP`) to the simulated
//! time, cut to buckets so that dozens of commits share each commit second — the case
//! where only the binlog position can tell their order. The times lie in the future, so
//! the server's heartbeats never move event time past them: deadlines fire from the log
//! alone, live as in the backtest. PostgreSQL stamps commits itself; the log's commit
//! times are read back from a second replication slot.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fundguard_core::{ChangeEvent, EventTime, Op, Value};
use fundguard_formats::debezium::{DecimalMode, EncodeOptions, encode};

use crate::databases::{Changes, Dialect, statement};
use crate::servers::{MariaDb, Postgres};
use crate::service::{Service, wait, write_config};
use crate::{fundguard, path, read_jsonl, repo_root, stderr};

/// Row changes per second the replay aims at.
const RATE: usize = 2500;
/// Orders simulated: about ten row changes each.
const ORDERS: u32 = 1500;

/// One transaction of the replay.
struct Transaction {
    /// The commit time the log will show (MariaDB: set by the replay; PostgreSQL: read back).
    commit_time: EventTime,
    events: Vec<ChangeEvent>,
}

/// The simulator's changes in commit order, cut into transactions of one to four changes.
/// Updates that change nothing are left out: a database logs no row for them.
fn transactions(changes: &Changes) -> Vec<Transaction> {
    let mut events: Vec<ChangeEvent> = changes
        .events
        .iter()
        .filter(|e| !(e.op == Op::Update && e.before.is_some() && e.before == e.after))
        .cloned()
        .collect();
    events.sort_by_key(|e| e.commit_time);
    let mut out = Vec::new();
    let mut rest = &events[..];
    let mut seed = 7u64;
    while !rest.is_empty() {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let n = (1 + (seed >> 33) % 4).min(rest.len() as u64) as usize;
        let (now, later) = rest.split_at(n);
        out.push(Transaction { commit_time: now[n - 1].commit_time, events: now.to_vec() });
        rest = later;
    }
    out
}

/// Moves simulated times to whole seconds from `base`, `bucket` seconds of simulation
/// sharing each: busy commit seconds with dozens of transactions.
fn bucketed(transactions: &mut [Transaction], base: i64, bucket: i64) {
    let Some(first) = transactions.first().map(|t| t.commit_time.as_micros()) else { return };
    for t in transactions {
        let offset = (t.commit_time.as_micros() - first) / 1_000_000 / bucket * bucket;
        t.commit_time = EventTime::from_secs(base + offset);
    }
}

/// The changes as a Debezium log, each with its transaction's commit time and with
/// decimals at the scale the database keeps (DECIMAL(20,6)), as a connector writes them.
fn debezium_log(transactions: &[Transaction], file: &Path) {
    let schema = fundguard_sim::schema();
    let options = EncodeOptions { schema_wrapper: false, decimal_mode: DecimalMode::String };
    let mut out = String::new();
    for t in transactions {
        for e in &t.events {
            let mut e = e.clone();
            e.commit_time = t.commit_time;
            for row in [e.before.as_mut(), e.after.as_mut()].into_iter().flatten() {
                row.try_map_values(|_, v| {
                    Ok::<_, ()>(match v {
                        Value::Decimal(mut d) => {
                            d.rescale(6);
                            Value::Decimal(d)
                        }
                        v => v,
                    })
                })
                .unwrap();
            }
            out.push_str(&encode(&e, &schema.tables[&*e.table], options));
            out.push('\n');
        }
    }
    std::fs::write(file, out).unwrap();
}

/// Pipes transactions into a database client at `RATE` row changes per second; returns
/// the rate achieved, measured until the client has committed the last one.
fn replay(client: &mut Command, transactions: &[Transaction], sql: impl Fn(&Transaction) -> String) -> f64 {
    let mut child = client.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let started = Instant::now();
    let mut sent = 0usize;
    for t in transactions {
        stdin.write_all(sql(t).as_bytes()).unwrap();
        sent += t.events.len();
        let due = Duration::from_secs_f64(sent as f64 / RATE as f64);
        if let Some(ahead) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(ahead);
        }
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the replay failed: {}", String::from_utf8_lossy(&out.stderr));
    sent as f64 / started.elapsed().as_secs_f64()
}

fn statements(t: &Transaction) -> String {
    t.events.iter().map(|e| format!("{};\n", statement(e))).collect()
}

/// A finding as both runs must agree on it: everything but when it was detected and the
/// evidence's positions (binlog offsets live, file lines in the backtest).
fn comparable(mut f: serde_json::Value) -> String {
    let o = f.as_object_mut().unwrap();
    o.remove("detected_at");
    if let Some(evidence) = o.get_mut("evidence").and_then(|e| e.as_array_mut()) {
        for e in evidence {
            e.as_object_mut().unwrap().remove("position");
        }
    }
    f.to_string()
}

/// Findings dated at or before `until`, comparable and sorted.
fn findings_until(file: &Path, until: EventTime) -> Vec<String> {
    let mut out: Vec<String> = read_jsonl(file)
        .into_iter()
        .filter(|f| EventTime::parse(f["event_time"].as_str().unwrap()).unwrap() <= until)
        .map(comparable)
        .collect();
    out.sort();
    out
}

/// Every example rule, plus a timeout and a rate rule on the scale of seconds: with real
/// commit times the replay lasts seconds, and the examples' ten-minute deadlines and
/// windows would not fall due within it.
fn rules(work: &Path) -> std::path::PathBuf {
    let dir = work.join("rules");
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(repo_root().join("examples/rules")).unwrap() {
        let file = entry.unwrap().path();
        std::fs::copy(&file, dir.join(file.file_name().unwrap())).unwrap();
    }
    std::fs::write(
        dir.join("load-paying-over-2s.yaml"),
        "id: load-paying-over-2s\nowner: orders\nseverity: high\ntimeout:\n  table: shop.orders\n  key: after.id\n  enter: \"after.status = 'PAYING'\"\n  exit: \"after.status <> 'PAYING'\"\n  within: 2s\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("load-payment-failures-per-second.yaml"),
        "id: load-payment-failures-per-second\nowner: payments\nseverity: high\nrate:\n  table: shop.payments\n  when: \"op = 'update' AND after.status IN ('SUCCESS', 'FAILED')\"\n  group: after.channel\n  numerator: \"after.status = 'FAILED'\"\n  window: 1s\n  min_volume: 2\n  max_ratio: \"0.3\"\n",
    )
    .unwrap();
    dir
}

fn backtest(log: &Path, schema: &Path, findings: &Path) {
    let o = fundguard(&[
        "backtest",
        "--rules",
        path(&rules(findings.parent().unwrap())),
        "--input",
        path(log),
        "--format",
        "debezium",
        "--schema",
        path(schema),
        "--findings",
        path(findings),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Starts `fundguard run` on `source` with the [`rules`]; idleness is an hour, so only the
/// sources' own signals can move event time while the test runs.
fn live(work: &Path, schema: &Path, source: &str) -> Service {
    let config = write_config(
        work,
        &format!(
            "rules: [{}]\nschema: {}\ndata_dir: data\nlisten: 127.0.0.1:0\nidle_after: 1h\nsources:\n  - {source}\nsinks:\n  - {{ type: jsonl, path: findings.jsonl }}\n",
            path(&rules(work)),
            path(schema),
        ),
    );
    Service::start(&config, &[])
}

/// Waits until the live run has read `events` changes and its findings stopped growing.
fn settle(service: &Service, events: usize, findings: &Path) {
    let read = wait(Duration::from_secs(300), || {
        std::thread::sleep(Duration::from_millis(200));
        (service.sources()[0]["events"].as_u64().unwrap_or(0) >= events as u64).then_some(())
    });
    assert!(read.is_some(), "{events} events read: {}", service.sources());
    let mut last = 0;
    let mut stable = 0;
    wait(Duration::from_secs(30), || {
        std::thread::sleep(Duration::from_millis(250));
        let now = std::fs::metadata(findings).map(|m| m.len()).unwrap_or(0);
        stable = if now == last { stable + 1 } else { 0 };
        last = now;
        (stable >= 8).then_some(())
    });
}

/// Asserts the live findings equal the backtest's, and that each of `exercised` (a rule
/// of every kind the load reaches) found something.
fn assert_same(live: Vec<String>, replayed: Vec<String>, late_events: u64, exercised: &[&str]) {
    let rules = |fs: &[String]| -> BTreeMap<String, usize> {
        let mut by_rule = BTreeMap::new();
        for f in fs {
            let f: serde_json::Value = serde_json::from_str(f).unwrap();
            *by_rule.entry(f["rule"].as_str().unwrap().to_string()).or_default() += 1;
        }
        by_rule
    };
    eprintln!("findings per rule: {:?}", rules(&replayed));
    if live != replayed {
        let missing: Vec<_> = replayed.iter().filter(|f| !live.contains(f)).take(3).collect();
        let extra: Vec<_> = live.iter().filter(|f| !replayed.contains(f)).take(3).collect();
        panic!(
            "live: {} findings {:?}\nbacktest: {} findings {:?}\nmissing live: {missing:#?}\nonly live: {extra:#?}",
            live.len(),
            rules(&live),
            replayed.len(),
            rules(&replayed)
        );
    }
    for &rule in exercised {
        assert!(rules(&replayed).contains_key(rule), "the load exercises `{rule}`: {:?}", rules(&replayed));
    }
    assert_eq!(late_events, 0, "an ordered source has no late events");
}

#[test]
fn a_busy_binlog_finds_exactly_what_a_backtest_of_the_same_changes_finds() {
    let changes = Changes::simulate(ORDERS);
    let mut transactions = transactions(&changes);
    let n: usize = transactions.iter().map(|t| t.events.len()).sum();
    // Dozens of commits per commit second: bucket the simulated hours accordingly.
    let span =
        (transactions.last().unwrap().commit_time.as_micros() - transactions[0].commit_time.as_micros()) / 1_000_000;
    let bucket = (span * 40 / n as i64).max(1);
    let future = crate::service::now_ms() / 1000 + 2 * 86_400;
    bucketed(&mut transactions, future, bucket);

    let work = tempfile::tempdir().unwrap();
    let log = work.path().join("debezium.jsonl");
    debezium_log(&transactions, &log);
    backtest(&log, &changes.sim.schema(), &work.path().join("backtest.jsonl"));

    let db = MariaDb::start(&["--innodb-flush-log-at-trx-commit=2", "--sync-binlog=0"]);
    db.sql(&changes.tables(Dialect::MariaDb));
    let service = live(
        work.path(),
        &changes.sim.schema(),
        &format!("{{ name: shopdb, type: mysql, url: \"{}\", include: [\"shop.*\"], start: beginning }}", db.url()),
    );
    service.wait_for("reading the binlog from");
    let mut client = Command::new("mariadb");
    client.args(["-h127.0.0.1", &format!("-P{}", db.port), "-uroot"]);
    let achieved = replay(&mut client, &transactions, |t| {
        format!("SET TIMESTAMP = {};\nBEGIN;\n{}COMMIT;\n", t.commit_time.as_micros() / 1_000_000, statements(t))
    });
    let per_second = transactions.len() as f64 / (span / bucket + 1) as f64;
    eprintln!(
        "replayed {n} row changes in {} transactions at {achieved:.0} changes/s; {per_second:.0} transactions per commit second",
        transactions.len()
    );
    let findings = work.path().join("findings.jsonl");
    settle(&service, n, &findings);
    let last = transactions.last().unwrap().commit_time;
    let late = late_events(&service);
    // Every kind: check, transition, reconcile, timeout and rate.
    let exercised = [
        "order-amounts-add-up",
        "order-state-machine",
        "payment-matches-order",
        "order-stuck-in-paying",
        "payment-failure-rate",
        "load-paying-over-2s",
    ];
    assert_same(
        findings_until(&findings, last),
        findings_until(&work.path().join("backtest.jsonl"), last),
        late,
        &exercised,
    );
}

#[test]
fn a_busy_replication_slot_finds_exactly_what_a_backtest_of_the_same_changes_finds() {
    busy_replication_slot("", "");
}

#[test]
fn a_busy_pgoutput_slot_finds_exactly_what_a_backtest_of_the_same_changes_finds() {
    // Made before the slot that records the commits, so its own transaction is not one of them.
    busy_replication_slot(
        "CREATE PUBLICATION shop FOR TABLES IN SCHEMA shop;",
        ", plugin: pgoutput, publication: shop",
    );
}

/// `setup` runs once the tables exist; `plugin` adds to the source's settings.
fn busy_replication_slot(setup: &str, plugin: &str) {
    let changes = Changes::simulate(ORDERS);
    let mut transactions = transactions(&changes);
    let n: usize = transactions.iter().map(|t| t.events.len()).sum();
    let db = Postgres::start("logical");
    db.sql(&changes.tables(Dialect::Postgres));
    if !setup.is_empty() {
        db.sql(setup);
    }
    // A second slot keeps the log's own record of every commit and its time.
    db.sql("SELECT pg_create_logical_replication_slot('truth', 'wal2json')");
    let work = tempfile::tempdir().unwrap();
    let service = live(
        work.path(),
        &changes.sim.schema(),
        &format!(
            "{{ name: pg, type: postgres, url: \"{}\", slot: fundguard, create_slot: true, include: [\"shop.*\"], poll_interval: 20ms{plugin} }}",
            db.url()
        ),
    );
    let connected = wait(Duration::from_secs(30), || (service.sources()[0]["state"] == "connected").then_some(()));
    assert!(connected.is_some(), "{}", service.sources());
    let mut client = Command::new("psql");
    client.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", &db.port.to_string(), "-U", "postgres"]);
    let achieved = replay(&mut client, &transactions, |t| format!("BEGIN;\n{}COMMIT;\n", statements(t)));
    eprintln!("replayed {n} row changes in {} transactions at {achieved:.0} changes/s", transactions.len());

    // The commit times the server gave, in commit order: one per replayed transaction.
    let out = Command::new("psql")
        .args(["-X", "-At", "-h", "127.0.0.1", "-p", &db.port.to_string(), "-U", "postgres", "-c"])
        .arg("SELECT data FROM pg_logical_slot_get_changes('truth', NULL, NULL, 'format-version', '2', 'include-timestamp', '1', 'add-tables', 'shop.*') WHERE data LIKE '{\"action\":\"C\"%'")
        .output()
        .unwrap();
    let commits: Vec<EventTime> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let record: serde_json::Value = serde_json::from_str(l).unwrap();
            let at = chrono::DateTime::parse_from_str(record["timestamp"].as_str().unwrap(), "%Y-%m-%d %H:%M:%S%.f%#z")
                .unwrap();
            EventTime::from_micros(at.timestamp_micros())
        })
        .collect();
    assert_eq!(commits.len(), transactions.len(), "one commit per transaction");
    for (t, at) in transactions.iter_mut().zip(commits) {
        t.commit_time = at;
    }
    let log = work.path().join("debezium.jsonl");
    debezium_log(&transactions, &log);
    backtest(&log, &changes.sim.schema(), &work.path().join("backtest.jsonl"));

    let findings = work.path().join("findings.jsonl");
    settle(&service, n, &findings);
    // Past the last commit the live run's clock moves on (the slot is caught up); the
    // backtest's ends there. Findings dated up to the last commit are the same.
    let last = transactions.last().unwrap().commit_time;
    let late = late_events(&service);
    // Real commit times span seconds: deadlines and windows of seconds fall due, the
    // examples' ten-minute ones do not.
    let exercised = [
        "order-amounts-add-up",
        "order-state-machine",
        "payment-matches-order",
        "load-paying-over-2s",
        "load-payment-failures-per-second",
    ];
    assert_same(
        findings_until(&findings, last),
        findings_until(&work.path().join("backtest.jsonl"), last),
        late,
        &exercised,
    );
}

/// Late events counted by the live run's rules (Prometheus `/metrics`).
fn late_events(service: &Service) -> u64 {
    let metrics = crate::service::agent()
        .get(&format!("{}/metrics", service.url()))
        .call()
        .map(|mut r| r.body_mut().read_to_string().unwrap_or_default())
        .unwrap_or_default();
    assert!(metrics.contains("fundguard_rule_late_events_total{"), "the metric is exported: {metrics}");
    metrics
        .lines()
        .filter(|l| l.starts_with("fundguard_rule_late_events_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// A quiet database still moves event time: the binlog's heartbeats and an empty
/// replication slot say how far the server has come, so a deadline fires soon after it
/// falls due although no later change comes and idleness is an hour away.
#[test]
fn deadlines_fire_on_a_quiet_database_from_its_own_signals() {
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(
        rules.path().join("paying-too-long.yaml"),
        "id: paying-too-long\nowner: orders\nseverity: high\ntimeout:\n  table: shop.orders\n  key: after.id\n  enter: \"after.status = 'PAYING'\"\n  exit: \"after.status <> 'PAYING'\"\n  within: 2s\n",
    )
    .unwrap();
    let start = |work: &Path, source: &str| {
        let config = write_config(
            work,
            &format!(
                "rules: [{}]\ndata_dir: data\nlisten: 127.0.0.1:0\nidle_after: 1h\nsources:\n  - {source}\nsinks:\n  - {{ type: jsonl, path: findings.jsonl }}\n",
                path(rules.path())
            ),
        );
        Service::start(&config, &[])
    };
    // How long after the commit the finding is written; none at all would time out.
    let fired = |work: &Path, committed: Instant| -> Duration {
        let found = wait(Duration::from_secs(30), || {
            read_jsonl(&work.join("findings.jsonl")).into_iter().find(|f| f["rule"] == "paying-too-long")
        });
        assert!(found.is_some(), "the deadline fires with no later change");
        committed.elapsed()
    };

    let mariadb = MariaDb::start(&[]);
    mariadb.sql("CREATE DATABASE shop; CREATE TABLE shop.orders (id BIGINT PRIMARY KEY, status VARCHAR(16));");
    let work = tempfile::tempdir().unwrap();
    let service = start(
        work.path(),
        &format!("{{ name: shopdb, type: mysql, url: \"{}\", include: [\"shop.*\"] }}", mariadb.url()),
    );
    service.wait_for("reading the binlog from");
    mariadb.sql("INSERT INTO shop.orders VALUES (1, 'PAYING');");
    let binlog = fired(work.path(), Instant::now());

    let postgres = Postgres::start("logical");
    postgres.sql("CREATE SCHEMA shop; CREATE TABLE shop.orders (id BIGINT PRIMARY KEY, status TEXT);");
    let work = tempfile::tempdir().unwrap();
    let service = start(
        work.path(),
        &format!(
            "{{ name: pg, type: postgres, url: \"{}\", slot: fundguard, create_slot: true, poll_interval: 50ms }}",
            postgres.url()
        ),
    );
    let connected = wait(Duration::from_secs(30), || (service.sources()[0]["state"] == "connected").then_some(()));
    assert!(connected.is_some(), "{}", service.sources());
    postgres.sql("INSERT INTO shop.orders VALUES (1, 'PAYING');");
    let slot = fired(work.path(), Instant::now());
    // Binlog times are whole seconds: a 2 s deadline is decided 2–3 s after the commit.
    eprintln!("a 2 s deadline fired {binlog:?} after the binlog commit, {slot:?} after the PostgreSQL commit");
}
