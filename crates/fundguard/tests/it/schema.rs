//! `fundguard schema import`: the schema file from DDL files (MySQL, PostgreSQL) and a live
//! server, with DATE read as a date — the difference between a right and a wrong finding
//! when Debezium sends a day as days since 1970.

use serde_json::Value;

use crate::{fundguard, path, stderr, stdout};

const MYSQL: &str = "CREATE TABLE settlements (\n  id BIGINT UNSIGNED NOT NULL PRIMARY KEY,\n  net_amount DECIMAL(12,2) NOT NULL,\n  rate DOUBLE,\n  biz_date DATE NOT NULL,\n  settled_at DATETIME(6),\n  paid TINYINT(1) NOT NULL DEFAULT 0,\n  channel VARCHAR(16),\n  extra JSON\n);\n";
const POSTGRES: &str = "CREATE TABLE shop.settlements (\n  id bigint PRIMARY KEY,\n  net_amount numeric(12,2) NOT NULL,\n  rate double precision,\n  biz_date date NOT NULL,\n  settled_at timestamp(6) without time zone,\n  paid boolean NOT NULL DEFAULT false,\n  channel character varying(16),\n  extra jsonb\n);\n";

fn import(args: &[&str]) -> String {
    let mut all = vec!["schema", "import"];
    all.extend_from_slice(args);
    let o = fundguard(&all);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
}

/// `column: type` of every column line, comments dropped.
fn types(schema: &str) -> Vec<String> {
    schema
        .lines()
        .filter(|l| l.starts_with("    "))
        .map(|l| l.split('#').next().unwrap().trim().replace('"', ""))
        .collect()
}

#[test]
fn ddl_files_of_both_dialects_give_the_same_schema_with_dates_as_dates() {
    let dir = tempfile::tempdir().unwrap();
    let (mysql, postgres) = (dir.path().join("mysql.sql"), dir.path().join("postgres.sql"));
    std::fs::write(&mysql, MYSQL).unwrap();
    std::fs::write(&postgres, POSTGRES).unwrap();
    let from_mysql = import(&["--ddl", path(&mysql)]);
    let expected = [
        "biz_date: date",
        "channel: string",
        "extra: json",
        "id: int",
        "net_amount: decimal",
        "paid: bool",
        "rate: decimal",
        "settled_at: timestamp",
    ];
    assert_eq!(types(&from_mysql), expected, "{from_mysql}");
    assert!(
        from_mysql.contains("\"net_amount\": decimal   # DECIMAL(12,2)"),
        "the source type stays visible: {from_mysql}"
    );
    assert_eq!(types(&import(&["--ddl", path(&postgres)])), expected);

    // The file written is one rules load, and it decides what a DATE means.
    let out = dir.path().join("schema.yaml");
    let o = fundguard(&["schema", "import", "--ddl", path(&mysql), "--out", path(&out)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("1 table(s), 8 column(s) written"), "{}", stderr(&o));
    let schema = std::fs::read_to_string(&out).unwrap().replace("\"settlements\"", "\"shop.settlements\"");
    std::fs::write(&out, schema).unwrap();
    let rules = dir.path().join("recent.yaml");
    std::fs::write(
        &rules,
        "id: settled-this-year\nowner: t\nseverity: high\ncheck:\n  tables: [shop.settlements]\n  assert: \"date_part('year', after.biz_date) = 2024\"\n",
    )
    .unwrap();
    // Debezium without its schema wrapper: a DATE is days since 1970 (19,844 is 2024-05-01).
    let line = |id: u64, days: i64| {
        format!(
            r#"{{"before":null,"after":{{"id":{id},"net_amount":"10.50","biz_date":{days}}},"source":{{"connector":"mysql","db":"shop","table":"settlements","ts_ms":1714524873101,"file":"mysql-bin.000001","pos":{id},"row":0}},"op":"c","ts_ms":1714524873104}}"#
        )
    };
    let log = dir.path().join("debezium.jsonl");
    std::fs::write(&log, format!("{}\n{}\n", line(1, 19_844), line(2, 19_500))).unwrap();
    let o = fundguard(&[
        "backtest",
        "--rules",
        path(&rules),
        "--input",
        path(&log),
        "--format",
        "debezium",
        "--schema",
        path(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let found: Vec<Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(found.len(), 1, "only the 2023 day violates: {found:?}");
    assert_eq!(found[0]["key"]["id"], 2);
}

#[test]
fn a_live_mariadb_gives_the_schema_its_ddl_gives() {
    let database = format!("fg_schema_{}", std::process::id());
    let mariadb = |sql: &str| crate::servers::mariadb_sql(3306, sql);
    mariadb(&format!("DROP DATABASE IF EXISTS {database}; CREATE DATABASE {database}; USE {database};\n{MYSQL}"));
    let live = import(&["--dsn", &format!("mysql://root@127.0.0.1:3306/{database}")]);
    mariadb(&format!("DROP DATABASE {database};"));
    let dir = tempfile::tempdir().unwrap();
    let ddl = dir.path().join("mysql.sql");
    std::fs::write(&ddl, MYSQL).unwrap();
    // MariaDB keeps JSON as LONGTEXT (with a json_valid check): the server says text.
    let mut from_ddl = types(&import(&["--ddl", path(&ddl)]));
    from_ddl.iter_mut().filter(|t| *t == "extra: json").for_each(|t| *t = "extra: string".into());
    assert_eq!(types(&live), from_ddl, "{live}");
    assert!(live.contains(&format!("\"{database}.settlements\":")), "{live}");
}

#[test]
fn nothing_to_import_is_an_error_that_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.sql");
    std::fs::write(&empty, "-- no tables here\n").unwrap();
    let o = fundguard(&["schema", "import", "--ddl", path(&empty)]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no CREATE TABLE found"), "{}", stderr(&o));
}
