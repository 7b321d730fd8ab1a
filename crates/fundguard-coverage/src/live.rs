//! Schemas read from running servers: MySQL/MariaDB `information_schema` and PostgreSQL's
//! catalog, with column comments and foreign keys, as the same [`SchemaChange`]s a DDL file
//! gives — so a live database and its DDL classify alike.
//!
//! A MySQL URL with a database reads that database; without one, every database but the
//! server's own. PostgreSQL reads every schema of the URL's database but `pg_catalog` and
//! `information_schema`; the types come from `format_type`, as `\d` shows them. Short text
//! columns (up to 16 characters declared) are profiled from a few hundred rows (a `LIMIT`,
//! never a scan), so a currency column with an unhelpful name is known by its values. These
//! connections do not use TLS yet: point them at a local replica or through a tunnel.

use std::time::Duration;

use mysql_async::prelude::Queryable;

use crate::CoverageError;
use crate::classify::TypeFamily;
use crate::schema::{Column, SchemaChange, Table};

/// How long connecting and reading may take before the server counts as unreachable.
const TIMEOUT: Duration = Duration::from_secs(15);

/// Reads the schema of the server a `mysql://`, `mariadb://` or `postgres(ql)://` URL names.
pub async fn read_server(url: &str) -> Result<Vec<SchemaChange>, CoverageError> {
    let server = redact(url);
    let reading = async {
        if url.starts_with("mysql://") || url.starts_with("mariadb://") {
            read_mysql(&url.replacen("mariadb://", "mysql://", 1), &server).await
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            read_postgres(url, &server).await
        } else {
            Err(CoverageError::Dsn(server.clone()))
        }
    };
    match tokio::time::timeout(TIMEOUT, reading).await {
        Ok(result) => result.map_err(|e| match e {
            CoverageError::Server { .. } | CoverageError::Dsn(_) => e,
            other => CoverageError::Server { server: server.clone(), message: other.to_string() },
        }),
        Err(_) => Err(CoverageError::Server { server, message: format!("no answer within {}s", TIMEOUT.as_secs()) }),
    }
}

fn server_error(server: &str) -> impl Fn(&dyn std::fmt::Display) -> CoverageError + '_ {
    move |e| CoverageError::Server { server: server.to_string(), message: e.to_string() }
}

async fn read_mysql(url: &str, server: &str) -> Result<Vec<SchemaChange>, CoverageError> {
    let fail = server_error(server);
    let opts = mysql_async::Opts::from_url(url).map_err(|e| fail(&e))?;
    let mut conn = mysql_async::Conn::new(opts).await.map_err(|e| fail(&e))?;
    let scope = "IF(DATABASE() IS NULL, c.TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys'), c.TABLE_SCHEMA = DATABASE())";
    let columns: Vec<(String, String, String, String, Option<String>)> = conn
        .query(format!(
            "SELECT c.TABLE_SCHEMA, c.TABLE_NAME, c.COLUMN_NAME, c.COLUMN_TYPE, c.COLUMN_COMMENT \
             FROM information_schema.COLUMNS c JOIN information_schema.TABLES t \
               ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME AND t.TABLE_TYPE = 'BASE TABLE' \
             WHERE {scope} ORDER BY c.TABLE_SCHEMA, c.TABLE_NAME, c.ORDINAL_POSITION"
        ))
        .await
        .map_err(|e| fail(&e))?;
    let keys: Vec<(String, String, String, String, String)> = conn
        .query(format!(
            "SELECT c.TABLE_SCHEMA, c.TABLE_NAME, c.COLUMN_NAME, c.REFERENCED_TABLE_SCHEMA, c.REFERENCED_TABLE_NAME \
             FROM information_schema.KEY_COLUMN_USAGE c WHERE c.REFERENCED_TABLE_NAME IS NOT NULL AND {scope}"
        ))
        .await
        .map_err(|e| fail(&e))?;
    let mut changes = changes(server, columns, keys);
    for (schema, table, column, samples) in to_profile(&mut changes) {
        let quote = |name: &str| format!("`{}`", name.replace('`', "``"));
        let query = format!(
            "SELECT CAST({c} AS CHAR) FROM {}.{} WHERE {c} IS NOT NULL LIMIT {SAMPLE_ROWS}",
            quote(&schema),
            quote(&table),
            c = quote(&column)
        );
        let values: Vec<Option<String>> = conn.query(query).await.map_err(|e| fail(&e))?;
        *samples = distinct(values.into_iter().flatten());
    }
    let _ = conn.disconnect().await;
    Ok(changes)
}

async fn read_postgres(url: &str, server: &str) -> Result<Vec<SchemaChange>, CoverageError> {
    let fail = server_error(server);
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.map_err(|e| fail(&e))?;
    let driver = tokio::spawn(connection);
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod), \
                    col_description(c.oid, a.attnum) \
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped \
               AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' \
             ORDER BY n.nspname, c.relname, a.attnum",
            &[],
        )
        .await
        .map_err(|e| fail(&e))?;
    let columns = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))).collect();
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text, a.attname::text, fn.nspname::text, fc.relname::text \
             FROM pg_constraint k \
             JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_class fc ON fc.oid = k.confrelid JOIN pg_namespace fn ON fn.oid = fc.relnamespace \
             JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = ANY (k.conkey) \
             WHERE k.contype = 'f'",
            &[],
        )
        .await
        .map_err(|e| fail(&e))?;
    let keys = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))).collect();
    let mut changes = changes(server, columns, keys);
    for (schema, table, column, samples) in to_profile(&mut changes) {
        let quote = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
        let query = format!(
            "SELECT {c}::text FROM {}.{} WHERE {c} IS NOT NULL LIMIT {SAMPLE_ROWS}",
            quote(&schema),
            quote(&table),
            c = quote(&column)
        );
        let rows = client.query(&query, &[]).await.map_err(|e| fail(&e))?;
        *samples = distinct(rows.iter().filter_map(|r| r.get::<_, Option<String>>(0)));
    }
    drop(client);
    let _ = driver.await;
    Ok(changes)
}

/// Rows read per profiled column: a `LIMIT`, never a scan of the table.
const SAMPLE_ROWS: usize = 200;
/// Columns profiled per server at most, so a schema of thousands of tables costs seconds.
const MAX_PROFILED: usize = 500;
/// Text columns up to this declared length are profiled: codes, not free text.
const MAX_CODE_LENGTH: u32 = 16;

/// The short text columns to sample (schema, table, column, where the samples go): a
/// currency stored in a column whose name does not say so is found by its values.
fn to_profile(changes: &mut [SchemaChange]) -> Vec<(String, String, String, &mut Vec<String>)> {
    let mut out = Vec::new();
    for change in changes.iter_mut() {
        let SchemaChange::CreateTable(table) = change else { continue };
        let Some((schema, name)) = table.name.split_once('.') else { continue };
        let (schema, name) = (schema.to_string(), name.to_string());
        for column in &mut table.columns {
            if out.len() >= MAX_PROFILED {
                return out;
            }
            let short = declared_length(&column.data_type).is_some_and(|n| n <= MAX_CODE_LENGTH);
            if short && TypeFamily::of(&column.data_type) == TypeFamily::Text {
                out.push((schema.clone(), name.clone(), column.name.clone(), &mut column.samples));
            }
        }
    }
    out
}

/// `3` of `char(3)` or `character varying(3)`.
fn declared_length(data_type: &str) -> Option<u32> {
    let inside = data_type.split_once('(')?.1.split_once(')')?.0;
    inside.trim().parse().ok()
}

/// Distinct values in first-seen order, at most 20.
fn distinct(values: impl Iterator<Item = String>) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for value in values {
        if !seen.contains(&value) {
            seen.push(value);
            if seen.len() == 20 {
                break;
            }
        }
    }
    seen
}

/// Rows of (schema, table, column, type, comment) and (schema, table, column, referenced
/// schema, referenced table) → changes, one table per run of rows.
fn changes(
    server: &str,
    columns: Vec<(String, String, String, String, Option<String>)>,
    keys: Vec<(String, String, String, String, String)>,
) -> Vec<SchemaChange> {
    let mut out: Vec<SchemaChange> = Vec::new();
    let mut current: Option<Table> = None;
    for (schema, table, column, data_type, comment) in columns {
        let name = format!("{schema}.{table}");
        if current.as_ref().is_some_and(|t| t.name != name)
            && let Some(done) = current.take()
        {
            out.push(SchemaChange::CreateTable(done));
        }
        let table = current.get_or_insert_with(|| Table { name, columns: Vec::new(), source: server.to_string() });
        let comment = comment.filter(|c| !c.is_empty());
        table.columns.push(Column { name: column, data_type, comment, references: None, samples: Vec::new() });
    }
    out.extend(current.map(SchemaChange::CreateTable));
    for (schema, table, column, ref_schema, ref_table) in keys {
        out.push(SchemaChange::ForeignKey {
            table: format!("{schema}.{table}"),
            column,
            references: format!("{ref_schema}.{ref_table}"),
        });
    }
    out
}

/// The URL without its password, to name the server in messages.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    match rest.split_once('@') {
        Some((user, host)) => {
            let user = user.split_once(':').map(|(u, _)| format!("{u}:***")).unwrap_or(user.to_string());
            format!("{scheme}://{user}@{host}")
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(redact("mysql://root:secret@db:3306/shop"), "mysql://root:***@db:3306/shop");
        assert_eq!(redact("postgres://postgres@127.0.0.1/x"), "postgres://postgres@127.0.0.1/x");
    }
}
