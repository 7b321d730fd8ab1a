//! Rule SQL only reads, and only the declared tables: every kind of write is refused at
//! load (with the query's place), on the plan and by the tables themselves, and nothing
//! lands on disk or in a database; URLs, table functions and templates reach no file; a
//! run over its memory limit fails alone.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use fundguard_rules::{Rule, RuleBody};
use fundguard_warehouse::read_only::verify_plan;
use fundguard_warehouse::{QueryError, RunStatus, Warehouse, check_rules, plan, run};

use crate::support::{PgDb, rule, warehouse};

const SECRET: &str = "hunter2";

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 25).unwrap()
}

/// A sql rule whose query is `query`, written as a block on line 5.
fn query_rule(id: &str, query: &str) -> Rule {
    let indented: Vec<String> = query.lines().map(|l| format!("    {l}")).collect();
    rule(&format!("id: {id}\nowner: o\nseverity: low\nsql:\n  query: |\n{}\n  key: [x]\n", indented.join("\n")))
}

/// Declared: a CSV directory `t`, a SQLite database `ledger` and a PostgreSQL database `pg`.
/// Not declared: `secret/credentials.csv`. Writes would go to `out/`.
struct Site {
    dir: tempfile::TempDir,
    pg: PgDb,
    warehouse: Warehouse,
}

impl Site {
    async fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("t")).unwrap();
        std::fs::write(dir.path().join("t/part-0.csv"), "n,amount\n1,10\n2,20\n").unwrap();
        std::fs::create_dir_all(dir.path().join("secret")).unwrap();
        std::fs::write(dir.path().join("secret/credentials.csv"), format!("user,password\nroot,{SECRET}\n")).unwrap();
        let ledger = dir.path().join("ledger.db");
        sqlite3(
            &ledger,
            "CREATE TABLE entries (id INTEGER, amount INTEGER); INSERT INTO entries VALUES (1, 5), (2, 7);",
        );
        let pg = PgDb::create("readonly");
        pg.sql("CREATE TABLE payments (id BIGINT, amount BIGINT); INSERT INTO payments VALUES (1, 100), (2, 200);");
        let yaml = format!(
            "- {{ name: t, type: csv, path: t }}\n- {{ name: ledger, type: sqlite, path: ledger.db }}\n- {{ name: pg, type: postgres, url: \"{}\", sslmode: disable }}",
            pg.url()
        );
        let warehouse = warehouse(&yaml, dir.path()).await;
        Site { dir, pg, warehouse }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Everything a write could have changed: the files, the SQLite rows, the PostgreSQL rows
    /// and tables.
    fn state(&self) -> (Vec<(PathBuf, Vec<u8>)>, String, String) {
        let mut files = Vec::new();
        collect(self.dir.path(), &mut files);
        // SQLite's WAL files change on reads: the rows say what a write would have changed.
        files.retain(|(p, _)| !p.display().to_string().contains("ledger.db"));
        let ledger = sqlite3(&self.path("ledger.db"), "SELECT count(*), sum(amount) FROM entries;");
        let pg = self.pg.query(
            "SELECT count(*), sum(amount), (SELECT count(*) FROM pg_tables WHERE schemaname = 'public') FROM payments",
        );
        (files, ledger, pg)
    }
}

fn collect(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            out.push((path.clone(), Vec::new()));
            collect(&path, out);
        } else {
            out.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
}

/// Runs SQL in a SQLite file with the `sqlite3` shell; its output.
fn sqlite3(db: &Path, sql: &str) -> String {
    let out = std::process::Command::new("sqlite3").arg(db).arg(sql).output().expect("sqlite3 runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_write_is_refused_with_its_place_and_nothing_is_written() {
    let site = Site::new().await;
    let before = site.state();
    let out = site.path("out/x.csv");
    let secret = site.path("secret/credentials.csv");
    let (out, secret) = (out.display(), secret.display());
    let statements = [
        ("CREATE TABLE made (a INT)", "CREATE TABLE is not allowed"),
        ("CREATE TABLE made AS SELECT * FROM t", "CREATE TABLE … AS is not allowed"),
        (
            &format!("CREATE EXTERNAL TABLE ext STORED AS CSV LOCATION '{secret}'"),
            "CREATE EXTERNAL TABLE is not allowed",
        ),
        ("DROP TABLE t", "DROP is not allowed"),
        ("DROP TABLE pg.payments", "DROP is not allowed"),
        ("INSERT INTO t VALUES (9, 9)", "INSERT is not allowed"),
        ("INSERT INTO ledger.entries VALUES (9, 9)", "INSERT is not allowed"),
        ("INSERT INTO pg.payments VALUES (9, 9)", "INSERT is not allowed"),
        ("UPDATE pg.payments SET amount = 0", "UPDATE is not allowed"),
        ("DELETE FROM ledger.entries", "DELETE is not allowed"),
        ("DELETE FROM pg.payments WHERE id = 1", "DELETE is not allowed"),
        ("TRUNCATE pg.payments", "TRUNCATE is not allowed"),
        (&format!("COPY (SELECT 1 AS x) TO '{out}' STORED AS CSV"), "COPY is not allowed"),
        ("SET datafusion.execution.batch_size = 1", "SET is not allowed"),
        ("EXPLAIN ANALYZE INSERT INTO pg.payments VALUES (9, 9)", "EXPLAIN ANALYZE INSERT is not allowed"),
        (&format!("SELECT 1 AS x;\nCOPY (SELECT 1 AS x) TO '{out}' STORED AS CSV"), "2 statements (a query, COPY)"),
        ("SELECT n AS x INTO made FROM t", "SELECT … INTO is not allowed"),
        ("WITH d AS (SELECT 9 AS x) INSERT INTO t SELECT x, x FROM d", "INSERT is not allowed"),
    ];
    for (query, expected) in statements {
        let rule = query_rule("w", query);
        let RuleBody::Sql(sql) = &rule.body else { unreachable!() };
        // At load and in `validate`, without the tables: at the query's place.
        let problems = check_rules(std::slice::from_ref(&rule));
        assert_eq!(problems.len(), 1, "{query}: {problems:?}");
        assert_eq!(problems[0].location, sql.query.at, "{query}");
        assert_eq!(problems[0].location.to_string(), "test.yaml:6:5");
        assert!(problems[0].message.contains(expected), "{query}: {}", problems[0]);
        // Planned against the tables (`validate --config`) and run: refused the same way.
        match plan(&site.warehouse, &rule, day()).await {
            Err(QueryError::NotReadOnly(message)) => assert!(message.contains(expected), "{query}: {message}"),
            other => panic!("{query}: {other:?}"),
        }
        let outcome = run(&site.warehouse, &rule, day(), None, &chrono::Utc::now).await;
        assert_eq!(outcome.record.status, RunStatus::Failed, "{query}");
        assert!(outcome.record.error.as_ref().unwrap().contains(expected), "{query}: {:?}", outcome.record.error);
    }
    assert!(!site.path("out").exists(), "nothing was copied out");
    assert_eq!(site.state(), before, "no file, SQLite row or PostgreSQL row changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_check_and_the_tables_each_refuse_writes_on_their_own() {
    let site = Site::new().await;
    let before = site.state();
    let ctx = site.warehouse.context();
    // The plan layer, given what the syntax check would have stopped: refused before running.
    for (query, expected) in [
        ("INSERT INTO t VALUES (9, 9)", "DML (Insert Into `t`) is not allowed"),
        ("DELETE FROM ledger.entries", "DML (Delete `ledger.entries`) is not allowed"),
        ("UPDATE pg.payments SET amount = 0", "DML (Update `pg.payments`) is not allowed"),
        ("EXPLAIN ANALYZE INSERT INTO t VALUES (9, 9)", "EXPLAIN is not allowed"),
        ("EXPLAIN SELECT 1", "EXPLAIN is not allowed"),
        ("CREATE TABLE made (a INT)", "CreateMemoryTable is not allowed"),
        ("SELECT n INTO made FROM t", "CreateMemoryTable is not allowed"),
        ("DROP TABLE t", "DropTable is not allowed"),
        ("SET datafusion.execution.batch_size = 1", "SetVariable is not allowed"),
    ] {
        let plan = ctx.state().create_logical_plan(query).await.unwrap_or_else(|e| panic!("{query}: {e}"));
        let refused = verify_plan(&plan).unwrap_err();
        assert!(refused.contains(expected), "{query}: {refused}");
    }
    // The session: nothing to COPY to or to build an external table with.
    let copy = format!("COPY (SELECT 1 AS x) TO '{}' STORED AS CSV", site.path("out/x.csv").display());
    let secret = format!("CREATE EXTERNAL TABLE ext STORED AS CSV LOCATION '{}'", site.path("secret").display());
    for query in [copy.as_str(), secret.as_str()] {
        let result = match ctx.sql(query).await {
            Ok(df) => df.collect().await.map(|_| ()),
            Err(e) => Err(e),
        };
        assert!(result.is_err(), "{query}");
    }
    // The tables, with both checks bypassed: every write is refused by the table itself.
    for (query, expected) in [
        ("INSERT INTO t VALUES (9, 9)", "INSERT INTO `t`: warehouse tables are read-only"),
        ("INSERT INTO ledger.entries VALUES (9, 9)", "INSERT INTO `ledger.entries`: warehouse tables are read-only"),
        ("INSERT INTO pg.payments VALUES (9, 9)", "INSERT INTO `pg.payments`: warehouse tables are read-only"),
        ("DELETE FROM pg.payments", "DELETE FROM `pg.payments`: warehouse tables are read-only"),
        ("UPDATE ledger.entries SET amount = 0", "UPDATE `ledger.entries`: warehouse tables are read-only"),
        ("TRUNCATE pg.payments", "TRUNCATE `pg.payments`: warehouse tables are read-only"),
    ] {
        let result = match ctx.sql(query).await {
            Ok(df) => df.collect().await.map(|_| ()),
            Err(e) => Err(e),
        };
        let error = result.expect_err(query).to_string();
        assert!(error.contains(expected), "{query}: {error}");
    }
    assert!(!site.path("out").exists());
    assert_eq!(site.state(), before, "no file, SQLite row or PostgreSQL row changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_reads_no_file_outside_the_declared_tables() {
    let site = Site::new().await;
    let secret = site.path("secret/credentials.csv");
    let secret_dir = site.path("secret");
    for query in [
        format!("SELECT password AS x FROM '{}'", secret.display()),
        format!("SELECT password AS x FROM 'file://{}'", secret.display()),
        format!("SELECT password AS x FROM '{}/'", secret_dir.display()),
        format!("SELECT password AS x FROM read_csv('{}')", secret.display()),
        format!("SELECT password AS x FROM read_parquet('{}')", secret.display()),
        "SELECT value AS x FROM generate_series(1, 3)".to_string(),
        "SELECT value AS x FROM range(3)".to_string(),
        "SELECT x FROM 's3://bucket/secret.parquet'".to_string(),
        "SELECT x FROM 'http://127.0.0.1:9/secret.csv'".to_string(),
        format!("SELECT n AS x FROM t WHERE EXISTS (SELECT 1 FROM '{}')", secret.display()),
    ] {
        let rule = query_rule("reader", &query);
        assert!(check_rules(std::slice::from_ref(&rule)).is_empty(), "a read-only query: {query}");
        let outcome = run(&site.warehouse, &rule, day(), None, &chrono::Utc::now).await;
        assert_eq!(outcome.record.status, RunStatus::Failed, "{query}");
        let error = outcome.record.error.unwrap();
        assert!(!error.contains(SECRET), "{query}: {error}");
        assert!(plan(&site.warehouse, &rule, day()).await.is_err(), "validate --config reports it: {query}");
    }
    // Templates: no loader (include, import, extends find nothing) and no environment.
    let path = std::env::var("PATH").unwrap();
    for (template, expected) in [
        (format!("SELECT '{{% include \"{}\" %}}' AS x", secret.display()), "query template"),
        (format!("{{% import \"{}\" as s %}}SELECT 1 AS x", secret.display()), "query template"),
        (format!("{{% extends \"{}\" %}}", secret.display()), "query template"),
    ] {
        let rule = query_rule("template", &template);
        let problems = check_rules(std::slice::from_ref(&rule));
        assert!(problems.iter().any(|p| p.message.contains(expected)), "{template}: {problems:?}");
        let outcome = run(&site.warehouse, &rule, day(), None, &chrono::Utc::now).await;
        let error = outcome.record.error.unwrap();
        assert!(error.contains("not found") && !error.contains(SECRET), "{template}: {error}");
    }
    // `env` is no variable: reading from it is an error at load, naming it renders nothing.
    let problems = check_rules(&[query_rule("env", "SELECT '{{ env.PATH }}' AS x")]);
    assert!(problems[0].message.contains("query template: undefined value"), "{problems:?}");
    let env = rule(&format!(
        "id: env\nowner: o\nseverity: low\nsql:\n  query: \"SELECT '{{{{ PATH }}}}{{{{ HOME }}}}{{{{ env }}}}' AS x\"\n  key: [x]\n  message: '{{% include \"{}\" %}}{{{{ PATH }}}}'\n",
        secret.display()
    ));
    let problems = check_rules(std::slice::from_ref(&env));
    assert!(problems.is_empty(), "{problems:?}");
    let outcome = run(&site.warehouse, &env, day(), None, &chrono::Utc::now).await;
    assert_eq!(outcome.record.status, RunStatus::Ok, "{:?}", outcome.record.error);
    let [finding] = &outcome.findings[..] else { panic!("{:?}", outcome.findings) };
    assert_eq!(finding.key["x"], fundguard_core::Value::String(String::new()), "no environment in templates");
    assert!(!finding.message.contains(SECRET) && !finding.message.contains(&path), "{}", finding.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_over_its_memory_limit_fails_alone_and_the_next_runs() {
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<String> = (0..2000).map(|n| n.to_string()).collect();
    std::fs::write(dir.path().join("big.csv"), format!("n\n{}\n", rows.join("\n"))).unwrap();
    let warehouse = warehouse("- { name: big, type: csv, path: big.csv }", dir.path()).await;
    // Four million groups: far more than a mebibyte of hash table.
    let hungry = rule(
        "id: hungry\nowner: o\nseverity: low\nsql:\n  query: SELECT a.n * 10000 + b.n AS x, count(*) AS c FROM big a, big b GROUP BY a.n * 10000 + b.n\n  key: [x]\n  memory_limit: 1MiB\n",
    );
    let started = std::time::Instant::now();
    let outcome = run(&warehouse, &hungry, day(), None, &chrono::Utc::now).await;
    assert_eq!(outcome.record.status, RunStatus::Failed);
    let error = outcome.record.error.clone().unwrap();
    assert!(error.starts_with("the query needed more memory than the rule's memory_limit (1MiB)"), "{error}");
    assert!(error.contains("raise `memory_limit`"), "{error}");
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    let [failure] = &outcome.findings[..] else { panic!("one failure finding") };
    assert!(failure.message.contains("memory_limit"), "{}", failure.message);

    // The next run, in the same warehouse, goes on with its own pool.
    let small = rule("id: small\nowner: o\nseverity: low\nsql:\n  query: SELECT max(n) AS x FROM big\n  key: [x]\n");
    let outcome = run(&warehouse, &small, day(), None, &chrono::Utc::now).await;
    assert_eq!((outcome.record.status, outcome.findings.len()), (RunStatus::Ok, 1), "{:?}", outcome.record.error);
}
