//! Database change logs read live: the same simulated changes are committed to a private
//! MariaDB (binlog) or PostgreSQL (logical decoding) and written as a Debezium log, and the
//! findings from the database must equal the findings from the log — across a kill of
//! fundguard (changes made while it is down), a restart of the database under a running
//! fundguard, and a DDL change mid-stream.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use fundguard_core::{ChangeEvent, ColumnType, Op, Value};
use fundguard_formats::Format;

use crate::servers::{MariaDb, Postgres};
use crate::service::{Service, agent, wait, write_config};
use crate::simulated::Simulated;
use crate::{fundguard, path, read_jsonl, repo_root};

/// Simulated changes: the Debezium log on disk and its events.
pub(crate) struct Changes {
    pub sim: Simulated,
    pub events: Vec<ChangeEvent>,
}

impl Changes {
    pub(crate) fn simulate(orders: u32) -> Changes {
        let sim = Simulated::new("debezium", orders);
        let mut decoder = Format::Debezium.decoder(Arc::new(fundguard_sim::schema()));
        let mut events = Vec::new();
        let text = std::fs::read_to_string(sim.file("debezium.jsonl")).unwrap();
        for (i, line) in text.lines().enumerate() {
            let position = fundguard_core::Position::Synthetic { seq: i as u64 };
            decoder.decode(line.as_bytes(), &position, &mut events).unwrap();
        }
        Changes { sim, events }
    }

    /// `CREATE TABLE`s for the simulator's schema.
    pub(crate) fn tables(&self, dialect: Dialect) -> String {
        let mut sql = String::from("CREATE SCHEMA shop;\n");
        for (table, columns) in &fundguard_sim::schema().tables {
            let columns: Vec<String> = columns
                .iter()
                .map(|(name, ty)| {
                    let ty = match (ty, dialect) {
                        (ColumnType::Int, _) => "BIGINT",
                        (ColumnType::Decimal, _) => "DECIMAL(20,6)",
                        (ColumnType::String, Dialect::MariaDb) => "VARCHAR(64)",
                        (ColumnType::String, Dialect::Postgres) => "TEXT",
                        (ColumnType::Bool, _) => "BOOLEAN",
                        (ColumnType::Timestamp, Dialect::MariaDb) => "DATETIME(6)",
                        (ColumnType::Timestamp, Dialect::Postgres) => "TIMESTAMP(6)",
                        (ColumnType::Json, _) => "TEXT",
                        (ColumnType::Date, _) => "DATE",
                    };
                    format!("{name} {ty}")
                })
                .collect();
            sql.push_str(&format!("CREATE TABLE {table} ({}, PRIMARY KEY (id));\n", columns.join(", ")));
            if dialect == Dialect::Postgres {
                sql.push_str(&format!("ALTER TABLE {table} REPLICA IDENTITY FULL;\n"));
            }
        }
        sql
    }

    /// Events `range` as SQL, committed 25 statements per transaction.
    pub(crate) fn sql(&self, range: std::ops::Range<usize>) -> String {
        let mut sql = String::new();
        for chunk in self.events[range].chunks(25) {
            sql.push_str("BEGIN;\n");
            for e in chunk {
                sql.push_str(&statement(e));
                sql.push_str(";\n");
            }
            sql.push_str("COMMIT;\n");
        }
        sql
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    MariaDb,
    Postgres,
}

fn literal(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Bool(b) => if *b { "TRUE" } else { "FALSE" }.into(),
        Value::Int(i) => i.to_string(),
        Value::Decimal(d) => d.to_string(),
        Value::String(s) | Value::Json(s) => format!("'{}'", s.replace('\'', "''")),
        Value::Timestamp(t) => {
            let micros = t.as_micros();
            let at = chrono::DateTime::from_timestamp_micros(micros).unwrap();
            format!("'{}'", at.format("%Y-%m-%d %H:%M:%S%.6f"))
        }
    }
}

/// One change as the SQL statement that makes it.
pub(crate) fn statement(e: &ChangeEvent) -> String {
    let id = |row: &fundguard_core::Row| literal(row.get("id").unwrap());
    match e.op {
        Op::Insert | Op::Message => {
            let after = e.after.as_ref().unwrap();
            let (names, values): (Vec<&str>, Vec<String>) = after.iter().map(|(n, v)| (n, literal(v))).unzip();
            format!("INSERT INTO {} ({}) VALUES ({})", e.table, names.join(", "), values.join(", "))
        }
        Op::Update => {
            let after = e.after.as_ref().unwrap();
            let sets: Vec<String> = after.iter().map(|(n, v)| format!("{n} = {}", literal(v))).collect();
            let key = e.before.as_ref().map_or_else(|| id(after), id);
            format!("UPDATE {} SET {} WHERE id = {key}", e.table, sets.join(", "))
        }
        Op::Delete => format!("DELETE FROM {} WHERE id = {}", e.table, id(e.before.as_ref().unwrap())),
    }
}

fn rule_keys(findings: &Path) -> BTreeSet<(String, String)> {
    read_jsonl(findings).iter().map(|f| (f["rule"].as_str().unwrap().to_string(), f["key"].to_string())).collect()
}

/// Waits until the running service has read at least `n` events.
fn wait_for_events(service: &Service, n: u64) {
    let read =
        wait(Duration::from_secs(60), || (service.sources()[0]["events"].as_u64().unwrap_or(0) >= n).then_some(()));
    assert!(read.is_some(), "{n} events read: {}", service.sources());
}

/// Waits until the live findings equal `expected`, then asserts it (showing the difference).
fn assert_findings_converge(service: &Service, findings: &Path, expected: &BTreeSet<(String, String)>) {
    let reached = wait(Duration::from_secs(90), || (rule_keys(findings) == *expected).then_some(()));
    if reached.is_none() {
        let live = rule_keys(findings);
        let missing: Vec<_> = expected.difference(&live).collect();
        let extra: Vec<_> = live.difference(expected).collect();
        let dead = std::fs::read_dir(findings.parent().unwrap().join("data"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("dead-letter"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect::<String>();
        panic!(
            "live findings differ from the Debezium log's: missing {missing:?}, extra {extra:?}\nsources: {}\ndead letters: {dead}\nstderr: {:?}",
            service.sources(),
            service.stderr.lock().unwrap()
        );
    }
}

#[test]
fn binlog_findings_equal_the_debezium_log_across_kills_restarts_and_ddl() {
    let changes = Changes::simulate(150);
    let expected = changes.sim.expected();
    let mut db = MariaDb::start(&[]);
    db.sql(&changes.tables(Dialect::MariaDb));

    let work = tempfile::tempdir().unwrap();
    let config = write_config(
        work.path(),
        &format!(
            "rules: [{}]\nschema: {}\ndata_dir: data\nlisten: 127.0.0.1:0\nsources:\n  - {{ name: shopdb, type: mysql, url: \"{}\", server_id: 901, include: [\"shop.*\"] }}\nsinks:\n  - {{ type: jsonl, path: findings.jsonl }}\n",
            path(&changes.sim.rules()),
            path(&changes.sim.schema()),
            db.url()
        ),
    );
    let findings = work.path().join("findings.jsonl");
    let n = changes.events.len();
    let (first, second) = (n / 3, 2 * n / 3);

    let service = Service::start(&config, &[]);
    service.wait_for("reading the binlog from");
    db.sql(&changes.sql(0..first));
    let processed = wait(Duration::from_secs(60), || {
        (service.sources()[0]["events"].as_u64().unwrap_or(0) >= first as u64).then_some(())
    });
    assert!(processed.is_some(), "the first third arrives: {}", service.sources());
    drop(service); // SIGKILL: the stored position is at most a moment old

    // While fundguard is down: more changes. It resumes from its stored position.
    db.sql(&changes.sql(first..second));
    let service = Service::start(&config, &[]);
    service.wait_for("reading the binlog from");
    wait_for_events(&service, (second - first) as u64);
    // The database restarts under a running fundguard: it reconnects and resumes.
    db.restart();
    // DDL mid-stream: a new column appears in later rows.
    db.sql("ALTER TABLE shop.payments ADD COLUMN note VARCHAR(32) NULL AFTER channel;");
    db.sql(&changes.sql(second..n));
    assert_findings_converge(&service, &findings, &expected);
    assert!(service.sources()[0]["reconnects"].as_u64().unwrap() >= 1, "{}", service.sources());
    let health = &service.sources()[0];
    assert_eq!(health["dead_letters"], 0, "{health}");
    assert!(health["last_position"].as_str().unwrap().contains("gtid 0-1-"), "{health}");
    service.terminate();
    let shown = fundguard(&["checkpoint", work.path().join("data").to_str().unwrap()]);
    let checkpoint: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    let resume = checkpoint["sources"]["shopdb"]["resume"].as_str().unwrap_or_default();
    assert!(resume.contains("\"gtid\":\"0-1-"), "the position is checkpointed by GTID: {checkpoint}");
}

/// MariaDB's `log_bin_compress` writes row and query events zlib-compressed (event types
/// a client library need not know): they are read like plain ones, never skipped.
#[test]
fn a_compressed_binlog_finds_what_the_debezium_log_finds() {
    let changes = Changes::simulate(150);
    let expected = changes.sim.expected();
    let db = MariaDb::start(&["--log-bin-compress=ON", "--log-bin-compress-min-len=10"]);
    db.sql(&changes.tables(Dialect::MariaDb));
    let work = tempfile::tempdir().unwrap();
    let config = write_config(
        work.path(),
        &format!(
            "rules: [{}]\nschema: {}\ndata_dir: data\nlisten: 127.0.0.1:0\nsources:\n  - {{ name: shopdb, type: mysql, url: \"{}\", include: [\"shop.*\"] }}\nsinks:\n  - {{ type: jsonl, path: findings.jsonl }}\n",
            path(&changes.sim.rules()),
            path(&changes.sim.schema()),
            db.url()
        ),
    );
    let findings = work.path().join("findings.jsonl");
    let service = Service::start(&config, &[]);
    service.wait_for("reading the binlog from");
    let n = changes.events.len();
    db.sql(&changes.sql(0..n / 2));
    // A compressed query event: the DDL, read for the new column's name.
    db.sql("ALTER TABLE shop.payments ADD COLUMN note VARCHAR(32) NULL AFTER channel;");
    db.sql(&changes.sql(n / 2..n));
    assert_findings_converge(&service, &findings, &expected);
    wait_for_events(&service, n as u64);
    let health = &service.sources()[0];
    assert_eq!(health["events"], n, "{health}");
    assert_eq!(health["dead_letters"], 0, "{health}");
    // The server did compress: rows and the DDL.
    let events = Command::new("mariadb")
        .args(["-h127.0.0.1", &format!("-P{}", db.port), "-uroot", "-N", "-B", "-e", "SHOW BINLOG EVENTS"])
        .output()
        .unwrap();
    let events = String::from_utf8_lossy(&events.stdout);
    let kinds: BTreeSet<&str> = events.lines().filter_map(|l| l.split('\t').nth(2)).collect();
    assert!(kinds.contains("Write_rows_compressed_v1") && kinds.contains("Query_compressed"), "{kinds:?}");
}

#[test]
fn binlog_sources_start_where_configured() {
    let db = MariaDb::start(&[]);
    db.sql("CREATE DATABASE shop; CREATE TABLE shop.refunds (id BIGINT PRIMARY KEY, order_id BIGINT, amount BIGINT, currency VARCHAR(8), status ENUM('PENDING','SUCCESS'));");
    db.sql("INSERT INTO shop.refunds VALUES (1, 10, -1, 'CNY', 'SUCCESS');");
    let gtid = db.query("SELECT @@gtid_binlog_pos");
    let file = db.query("SHOW MASTER STATUS");
    let offset = {
        let out = std::process::Command::new("mariadb")
            .args(["-h127.0.0.1", &format!("-P{}", db.port), "-uroot", "-N", "-B", "-e", "SHOW MASTER STATUS"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).split('\t').nth(1).unwrap().trim().to_string()
    };
    db.sql("INSERT INTO shop.refunds VALUES (2, 20, -2, 'CNY', 'SUCCESS');");
    let rules = repo_root().join("examples/rules");
    for (start, expected) in [
        ("start: beginning".to_string(), vec![1, 2]),
        (format!("start_gtid: \"{gtid}\""), vec![2]),
        (format!("start_file: {file}, start_offset: {offset}"), vec![2]),
    ] {
        let work = tempfile::tempdir().unwrap();
        let config = write_config(
            work.path(),
            &format!(
                "rules: [{}]\ndata_dir: data\nsources:\n  - {{ name: shopdb, type: mysql, url: \"{}\", {start} }}\nsinks:\n  - {{ type: jsonl, path: findings.jsonl }}\n",
                path(&rules),
                db.url()
            ),
        );
        let _service = Service::start(&config, &[]);
        let ids = |f: &[serde_json::Value]| -> Vec<i64> {
            f.iter()
                .filter(|f| f["rule"] == "refund-amount-positive")
                .map(|f| f["key"]["id"].as_i64().unwrap())
                .collect()
        };
        let findings = work.path().join("findings.jsonl");
        let found = wait(Duration::from_secs(20), || {
            let got = ids(&read_jsonl(&findings));
            (got.len() >= expected.len()).then_some(got)
        });
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(found, Some(expected.clone()), "{start}");
        assert_eq!(ids(&read_jsonl(&findings)), expected, "{start}: nothing more");
    }
}

#[test]
fn a_server_without_a_row_binlog_is_refused_naming_the_setting() {
    let db = MariaDb::start(&["--binlog-format=STATEMENT"]);
    let work = tempfile::tempdir().unwrap();
    let config = write_config(
        work.path(),
        &format!(
            "rules: [{}]\nlisten: 127.0.0.1:0\nsources:\n  - {{ name: shopdb, type: mysql, url: \"{}\" }}\n",
            path(&repo_root().join("examples/rules")),
            db.url()
        ),
    );
    let service = Service::start(&config, &[]);
    let line = service.wait_for("source `shopdb` failed");
    assert!(
        line.contains("binlog_format is STATEMENT")
            && line.contains("set binlog_format=ROW")
            && line.contains("retrying in 5s"),
        "{line}"
    );
    let state = service.sources()[0]["state"].as_str().unwrap().to_string();
    assert!(
        state.starts_with("failed: ") && state.contains("binlog_format") && state.contains("(retrying in "),
        "{state}"
    );
    let (status, body) = readyz(&service);
    assert!(status == 503 && body.contains("shopdb: failed: "), "{status} {body}");
    // Set right while fundguard runs: a retry connects, no restart needed.
    db.sql("SET GLOBAL binlog_format = ROW;");
    wait_until_read(&service);
    assert_eq!(readyz(&service), (200, "ready".to_string()));
}

#[test]
fn logical_decoding_findings_equal_the_debezium_log_across_kills_restarts_and_ddl() {
    logical_decoding_across_kills_restarts_and_ddl("");
}

/// The same run through the built-in pgoutput plugin: its relation messages are per
/// connection (the kill and the restart start new ones) and come again after the DDL.
#[test]
fn pgoutput_findings_equal_the_debezium_log_across_kills_restarts_and_ddl() {
    logical_decoding_across_kills_restarts_and_ddl(
        ", plugin: pgoutput, publication: fundguard, create_publication: true",
    );
}

/// `plugin` adds to the source's settings.
fn logical_decoding_across_kills_restarts_and_ddl(plugin: &str) {
    let changes = Changes::simulate(150);
    let expected = changes.sim.expected();
    let db = Postgres::start("logical");
    db.sql(&changes.tables(Dialect::Postgres));

    let work = tempfile::tempdir().unwrap();
    let config = write_config(
        work.path(),
        &format!(
            "rules: [{}]\nschema: {}\ndata_dir: data\nlisten: 127.0.0.1:0\nsources:\n  - {{ name: pg, type: postgres, url: \"{}\", slot: fundguard, create_slot: true, include: [\"shop.*\"], poll_interval: 50ms{plugin} }}\nsinks:\n  - {{ type: jsonl, path: findings.jsonl }}\n",
            path(&changes.sim.rules()),
            path(&changes.sim.schema()),
            db.url()
        ),
    );
    let findings = work.path().join("findings.jsonl");
    let n = changes.events.len();
    let (first, second) = (n / 3, 2 * n / 3);

    let service = Service::start(&config, &[]);
    let connected = wait(Duration::from_secs(20), || (service.sources()[0]["state"] == "connected").then_some(()));
    assert!(connected.is_some(), "{}", service.sources());
    db.sql(&changes.sql(0..first));
    let processed = wait(Duration::from_secs(60), || {
        (service.sources()[0]["events"].as_u64().unwrap_or(0) >= first as u64).then_some(())
    });
    assert!(processed.is_some(), "the first third arrives: {}", service.sources());
    drop(service); // SIGKILL: the slot holds everything not yet confirmed

    db.sql(&changes.sql(first..second));
    let service = Service::start(&config, &[]);
    wait_for_events(&service, (second - first) as u64);
    db.restart();
    db.sql("ALTER TABLE shop.payments ADD COLUMN note TEXT NULL;");
    db.sql(&changes.sql(second..n));
    assert_findings_converge(&service, &findings, &expected);
    assert!(service.sources()[0]["reconnects"].as_u64().unwrap() >= 1, "{}", service.sources());
    assert_eq!(service.sources()[0]["dead_letters"], 0, "{}", service.sources());
}

/// A pgoutput slot needs its publication, publishing updates and deletes: without one
/// fundguard says how to make it — before it creates the slot, which would otherwise fail
/// on every change made until the publication exists — and reads as soon as it is right.
/// Asked to create one, it refuses to publish a table the server could then no longer
/// update (no replica identity). A slot of the other plugin is refused by name.
#[test]
fn a_pgoutput_source_names_what_it_needs_and_reads_once_it_is_there() {
    let db = Postgres::start("logical");
    db.sql(
        "CREATE SCHEMA shop; \
         CREATE TABLE shop.refunds (id BIGINT PRIMARY KEY, order_id BIGINT, amount BIGINT, currency TEXT, status TEXT); \
         CREATE TABLE shop.noise (id BIGINT PRIMARY KEY); \
         CREATE TABLE shop.audit (note TEXT);",
    );
    db.sql("SELECT pg_create_logical_replication_slot('other', 'wal2json');");
    let work = tempfile::tempdir().unwrap();
    let source = |name: &str, slot: &str, publication: &str| {
        format!(
            "  - {{ name: {name}, type: postgres, url: \"{}\", slot: {slot}, create_slot: true, plugin: pgoutput, publication: {publication}, poll_interval: 50ms }}\n",
            db.url()
        )
    };
    let config = write_config(
        work.path(),
        &format!(
            "rules: [{}]\ndata_dir: data\nlisten: 127.0.0.1:0\nsources:\n{}{}{}sinks:\n  - {{ type: jsonl, path: findings.jsonl }}\n",
            path(&repo_root().join("examples/rules")),
            source("pg", "fg", "\"Shop Pub\""),
            source("wrong", "other", "\"Shop Pub\""),
            source("auto", "fg_auto", "auto, create_publication: true, include: [\"shop.*\"]"),
        ),
    );
    let service = Service::start(&config, &[]);
    let line = service.wait_for("source `pg` failed");
    assert!(
        line.contains("publication Shop Pub does not exist")
            && line.contains("CREATE PUBLICATION \"Shop Pub\" FOR TABLE"),
        "{line}"
    );
    assert_eq!(db.query("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'fg'"), "0", "no slot yet");
    let line = service.wait_for("source `auto` failed");
    assert!(line.contains("shop.audit has no primary key or replica identity"), "{line}");
    assert_eq!(db.query("SELECT count(*) FROM pg_publication WHERE pubname = 'auto'"), "0");

    // A publication of one table that publishes inserts only: refused, naming what is missing.
    db.sql("CREATE PUBLICATION \"Shop Pub\" FOR TABLE shop.refunds WITH (publish = 'insert');");
    let line = service.wait_for("does not publish update, delete");
    assert!(line.contains("source `pg` failed") || line.contains("source `wrong` failed"), "{line}");
    db.sql("ALTER PUBLICATION \"Shop Pub\" SET (publish = 'insert, update, delete');");
    // Retries back off (5 s doubling): give the wrong-plugin source's next try time to come.
    let wrong = wait(Duration::from_secs(60), || {
        service.stderr.lock().unwrap().iter().find(|l| l.contains("slot other uses the plugin wal2json")).cloned()
    });
    assert!(wrong.is_some_and(|l| l.contains("not pgoutput")), "{:?}", service.stderr.lock().unwrap());
    wait_until_read(&service);
    db.sql("INSERT INTO shop.noise VALUES (1); INSERT INTO shop.refunds VALUES (1, 10, -1, 'CNY', 'SUCCESS');");
    let findings = work.path().join("findings.jsonl");
    let found = wait(Duration::from_secs(30), || {
        read_jsonl(&findings).into_iter().find(|f| f["rule"] == "refund-amount-positive")
    });
    assert_eq!(found.map(|f| f["key"]["id"].clone()), Some(serde_json::json!(1)), "{}", service.sources());
    // The server sent nothing of the table outside the publication.
    assert_eq!(service.sources()[0]["events"], 1, "{}", service.sources());
}

/// A publication fundguard creates publishes a partitioned table's changes under the
/// table's own name — the one rules use — not its partitions'.
#[test]
fn a_created_publication_reports_partitions_under_their_table() {
    let db = Postgres::start("logical");
    db.sql(
        "CREATE SCHEMA shop; \
         CREATE TABLE shop.refunds (id BIGINT PRIMARY KEY, order_id BIGINT, amount BIGINT, currency TEXT, status TEXT) \
           PARTITION BY RANGE (id); \
         CREATE TABLE shop.refunds_low PARTITION OF shop.refunds FOR VALUES FROM (0) TO (1000);",
    );
    let work = tempfile::tempdir().unwrap();
    let config = write_config(
        work.path(),
        &format!(
            "rules: [{}]\ndata_dir: data\nlisten: 127.0.0.1:0\nsources:\n  - {{ name: pg, type: postgres, url: \"{}\", slot: fg, create_slot: true, plugin: pgoutput, publication: fg, create_publication: true, include: [\"shop.refunds\"], poll_interval: 50ms }}\nsinks:\n  - {{ type: jsonl, path: findings.jsonl }}\n",
            path(&repo_root().join("examples/rules")),
            db.url()
        ),
    );
    let service = Service::start(&config, &[]);
    wait_until_read(&service);
    db.sql("INSERT INTO shop.refunds VALUES (7, 10, -1, 'CNY', 'SUCCESS');");
    let findings = work.path().join("findings.jsonl");
    let found = wait(Duration::from_secs(30), || {
        read_jsonl(&findings).into_iter().find(|f| f["rule"] == "refund-amount-positive")
    });
    assert_eq!(found.map(|f| f["key"]["id"].clone()), Some(serde_json::json!(7)), "{}", service.sources());
}

#[test]
fn a_server_without_logical_wal_is_refused_naming_the_setting() {
    let db = Postgres::start("replica");
    let work = tempfile::tempdir().unwrap();
    let config = write_config(
        work.path(),
        &format!(
            "rules: [{}]\nlisten: 127.0.0.1:0\nsources:\n  - {{ name: pg, type: postgres, url: \"{}\", slot: fg, create_slot: true }}\n",
            path(&repo_root().join("examples/rules")),
            db.url()
        ),
    );
    let service = Service::start(&config, &[]);
    let line = service.wait_for("source `pg` failed");
    assert!(line.contains("wal_level is replica") && line.contains("wal_level=logical"), "{line}");
    assert!(line.contains("retrying in 5s"), "{line}");
}

/// Regression: a database source that failed (here at start: its role may not create the
/// slot) stayed failed, with `/readyz` at 503, until fundguard was restarted.
#[test]
fn a_postgres_source_that_cannot_create_its_slot_recovers_once_the_cause_is_fixed() {
    let db = Postgres::start("logical");
    db.sql(
        "CREATE SCHEMA shop; \
         CREATE TABLE shop.refunds (id BIGINT PRIMARY KEY, order_id BIGINT, amount BIGINT, currency TEXT, status TEXT); \
         CREATE ROLE fg LOGIN; \
         SELECT pg_create_physical_replication_slot('hold' || i) FROM generate_series(1, 10) i;",
    );
    let url = db.url().replace("postgres://postgres@", "postgres://fg@");
    let work = tempfile::tempdir().unwrap();
    let config = write_config(
        work.path(),
        &format!(
            "rules: [{}]\ndata_dir: data\nlisten: 127.0.0.1:0\nsources:\n  - {{ name: pg, type: postgres, url: \"{url}\", slot: fg, create_slot: true, include: [\"shop.*\"], poll_interval: 50ms }}\nsinks:\n  - {{ type: jsonl, path: findings.jsonl }}\n",
            path(&repo_root().join("examples/rules")),
        ),
    );
    let service = Service::start(&config, &[]);

    // The role lacks REPLICATION: a problem for a person, shown and retried.
    let line = service.wait_for("source `pg` failed");
    assert!(line.contains("creating the slot fg") && line.contains("replication role"), "{line}");
    assert!(line.contains("retrying in 5s"), "{line}");
    let state = service.sources()[0]["state"].as_str().unwrap().to_string();
    assert!(
        state.starts_with("failed: ") && state.contains("replication role") && state.contains("(retrying in "),
        "{state}"
    );
    let (status, body) = readyz(&service);
    assert!(status == 503 && body.contains("pg: failed: "), "{status} {body}");

    // Fixed while fundguard runs. The next retry gets further: every slot is taken, which the
    // server says with a HINT, kept in the message (and retried sooner: it may pass by itself).
    db.sql("ALTER ROLE fg REPLICATION;");
    let line = service.wait_for("all replication slots are in use");
    assert!(line.contains("(HINT: Free one or increase max_replication_slots.)"), "{line}");
    assert_eq!(readyz(&service).0, 503);

    db.sql("SELECT pg_drop_replication_slot('hold1');");
    wait_until_read(&service);
    assert_eq!(readyz(&service), (200, "ready".to_string()));
    db.sql("INSERT INTO shop.refunds VALUES (1, 10, -1, 'CNY', 'SUCCESS');");
    let findings = work.path().join("findings.jsonl");
    let found = wait(Duration::from_secs(30), || {
        read_jsonl(&findings).into_iter().find(|f| f["rule"] == "refund-amount-positive")
    });
    assert_eq!(found.map(|f| f["key"]["id"].clone()), Some(serde_json::json!(1)), "{}", service.sources());
}

/// Regression: a slot never moved while only other databases of the cluster were busy
/// (logical decoding shows a slot nothing of them), so the server kept all their WAL and
/// every read decoded it again, for ever longer.
#[test]
fn a_slot_moves_on_over_wal_that_holds_nothing_for_it() {
    let db = Postgres::start("logical");
    db.sql(
        "CREATE SCHEMA shop; \
         CREATE TABLE shop.refunds (id BIGINT PRIMARY KEY, order_id BIGINT, amount BIGINT, currency TEXT, status TEXT);",
    );
    db.sql("CREATE DATABASE noise;");
    db.sql_in("noise", "CREATE TABLE busy (id BIGINT PRIMARY KEY, v TEXT);");
    let work = tempfile::tempdir().unwrap();
    let config = write_config(
        work.path(),
        &format!(
            "rules: [{}]\ndata_dir: data\nlisten: 127.0.0.1:0\nsources:\n  - {{ name: pg, type: postgres, url: \"{}\", slot: fg, create_slot: true }}\nsinks:\n  - {{ type: jsonl, path: findings.jsonl }}\n",
            path(&repo_root().join("examples/rules")),
            db.url()
        ),
    );
    let service = Service::start(&config, &[]);
    wait_until_read(&service);
    let confirmed = || db.query("SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'fg'");
    let covered = |lsn: &str| {
        db.query(&format!(
            "SELECT '{lsn}'::pg_lsn <= confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'fg'"
        )) == "t"
    };
    let before = confirmed();
    db.sql_in("noise", "INSERT INTO busy SELECT i, repeat('x', 100) FROM generate_series(1, 20000) i;");
    let written = db.query("SELECT pg_current_wal_flush_lsn()");
    let moved = wait(Duration::from_secs(20), || covered(&written).then_some(()));
    assert!(moved.is_some(), "slot at {} (was {before}), WAL written up to {written}", confirmed());

    // Moving on skipped nothing of its own: a change to an included table is still read.
    db.sql("INSERT INTO shop.refunds VALUES (1, 10, -1, 'CNY', 'SUCCESS');");
    let findings = work.path().join("findings.jsonl");
    let found = wait(Duration::from_secs(30), || {
        read_jsonl(&findings).into_iter().find(|f| f["rule"] == "refund-amount-positive")
    });
    assert!(found.is_some(), "{}", service.sources());
    assert_eq!(service.sources()[0]["events"], 1, "{}", service.sources());
}

/// The replication connection logs in as the query connection does: with a SCRAM-SHA-256
/// and with an MD5 password (pg_hba.conf asks for them on TCP, trust stays for psql).
#[test]
fn postgres_sources_stream_with_scram_and_md5_passwords() {
    let db = Postgres::start("logical");
    db.sql(
        "CREATE SCHEMA shop; \
         CREATE TABLE shop.refunds (id BIGINT PRIMARY KEY, order_id BIGINT, amount BIGINT, currency TEXT, status TEXT); \
         SET password_encryption = 'scram-sha-256'; \
         CREATE ROLE fg_scram LOGIN REPLICATION PASSWORD 'scram secret'; \
         SET password_encryption = 'md5'; \
         CREATE ROLE fg_md5 LOGIN REPLICATION PASSWORD 'md5 secret';",
    );
    db.authenticate_first("host all fg_scram 127.0.0.1/32 scram-sha-256\nhost all fg_md5 127.0.0.1/32 md5\n");
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("scram.pw"), "scram secret\n").unwrap();
    std::fs::write(work.path().join("md5.pw"), "md5 secret\n").unwrap();
    let source = |name: &str, user: &str| {
        format!(
            "  - {{ name: {name}, type: postgres, url: \"postgres://{user}@127.0.0.1:{}/postgres\", slot: {user}, create_slot: true, password_file: {name}.pw }}\n",
            db.port
        )
    };
    let config = write_config(
        work.path(),
        &format!(
            "rules: [{}]\ndata_dir: data\nlisten: 127.0.0.1:0\nsources:\n{}{}sinks:\n  - {{ type: jsonl, path: findings.jsonl }}\n",
            path(&repo_root().join("examples/rules")),
            source("scram", "fg_scram"),
            source("md5", "fg_md5"),
        ),
    );
    let service = Service::start(&config, &[]);
    wait_until_read(&service);
    db.sql("INSERT INTO shop.refunds VALUES (1, 10, -1, 'CNY', 'SUCCESS');");
    let both = wait(Duration::from_secs(30), || {
        let sources = service.sources();
        (sources[0]["events"] == 1 && sources[1]["events"] == 1).then_some(())
    });
    assert!(both.is_some(), "{}", service.sources());
}

/// Waits until the first source is connected (or already reading).
fn wait_until_read(service: &Service) {
    let connected = wait(Duration::from_secs(60), || {
        matches!(service.sources()[0]["state"].as_str(), Some("connected" | "reading")).then_some(())
    });
    assert!(connected.is_some(), "{}\n{:?}", service.sources(), service.stderr.lock().unwrap());
}

/// `GET /readyz`: status and body.
fn readyz(service: &Service) -> (u16, String) {
    let mut resp = agent().get(&format!("{}/readyz", service.url())).call().unwrap();
    (resp.status().as_u16(), resp.body_mut().read_to_string().unwrap())
}
