//! The seam between the alert lifecycle and a database: what the lifecycle asks of a
//! store ([`Sql`]), in values and rows neither database owns ([`Value`], [`Row`]), and
//! the few ways the two databases spell the same thing ([`Dialect`]).
//!
//! The lifecycle ([`crate::lifecycle`], [`crate::outbox`], [`crate::queries`]) writes
//! every statement once, numbering its parameters PostgreSQL's way (`$1`, `$2`, …); a
//! backend runs it through [`Dialect::translate`] and its own client. So a change to
//! what an operation writes or decides is made in one place, and each backend is left
//! opening, migrating and executing.
//!
//! Why `$1` must be translated for SQLite rather than passed through: SQLite reads `$1`
//! as a parameter *named* `$1`, numbered by first appearance, so `SET a = max(a, $2)
//! WHERE id = $1` would bind the first value to `$2`. `?1` is SQLite's numbered form
//! (the test `sqlite_numbers_dollar_parameters_by_appearance` below shows the trap).

use std::borrow::Cow;

use crate::model::AlertError;

/// One parameter or column value. The stores keep only integers (times in microseconds,
/// counts, ids), text (including JSON and money, so amounts stay exact) and NULL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Int(i64),
    Text(String),
    Null,
}

impl Value {
    /// What the value is, for errors.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Value::Int(_) => "an integer",
            Value::Text(_) => "text",
            Value::Null => "NULL",
        }
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int(i)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Text(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Text(s)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

/// A result that is not what the lifecycle reads from it: a schema written by someone
/// else, or a bug. Each backend turns it into its own [`AlertError`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum RowError {
    #[error("column {index} holds {found}, not {wanted}")]
    Column { index: usize, wanted: &'static str, found: &'static str },
    #[error("the statement returned no row")]
    Missing,
}

/// One result row, read out of the database's own row type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row(pub Vec<Value>);

impl Row {
    fn at(&self, index: usize) -> &Value {
        self.0.get(index).unwrap_or(&Value::Null)
    }

    fn wrong(&self, index: usize, wanted: &'static str) -> RowError {
        RowError::Column { index, wanted, found: self.at(index).kind() }
    }

    pub(crate) fn opt_int(&self, index: usize) -> Result<Option<i64>, RowError> {
        match self.at(index) {
            Value::Int(i) => Ok(Some(*i)),
            Value::Null => Ok(None),
            Value::Text(_) => Err(self.wrong(index, "an integer")),
        }
    }

    pub(crate) fn int(&self, index: usize) -> Result<i64, RowError> {
        self.opt_int(index)?.ok_or_else(|| self.wrong(index, "an integer"))
    }

    pub(crate) fn opt_text(&self, index: usize) -> Result<Option<String>, RowError> {
        match self.at(index) {
            Value::Text(s) => Ok(Some(s.clone())),
            Value::Null => Ok(None),
            Value::Int(_) => Err(self.wrong(index, "text")),
        }
    }

    pub(crate) fn text(&self, index: usize) -> Result<String, RowError> {
        self.opt_text(index)?.ok_or_else(|| self.wrong(index, "text"))
    }
}

/// A database connection or transaction the lifecycle runs statements on. Statements
/// come in neutral form (`$n` parameters); the implementation translates them for its
/// [`Dialect`] and reports failures as [`AlertError`]s naming its store.
pub(crate) trait Sql {
    /// How this database spells what the two do differently.
    fn dialect(&self) -> &'static Dialect;

    /// Runs a statement that returns no rows; how many rows it changed.
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, AlertError>;

    /// Runs a query (or a statement with `RETURNING`); every row it returns.
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, AlertError>;

    /// The error of this store for a result that cannot be read.
    fn row_error(&self, error: RowError) -> AlertError;
}

impl dyn Sql + '_ {
    /// Runs a query and reads each row with `read`.
    pub(crate) fn rows<T>(
        &mut self,
        sql: &str,
        params: &[Value],
        read: impl Fn(&Row) -> Result<T, RowError>,
    ) -> Result<Vec<T>, AlertError> {
        let rows = self.query(sql, params)?;
        rows.iter().map(|r| read(r).map_err(|e| self.row_error(e))).collect()
    }

    /// Runs a query expected to return at most one row, and reads it with `read`.
    pub(crate) fn row<T>(
        &mut self,
        sql: &str,
        params: &[Value],
        read: impl Fn(&Row) -> Result<T, RowError>,
    ) -> Result<Option<T>, AlertError> {
        Ok(self.rows(sql, params, read)?.into_iter().next())
    }

    /// Runs a query that must return a row (an `INSERT … RETURNING`, a read of a row the
    /// caller knows exists), and reads the first with `read`.
    pub(crate) fn one<T>(
        &mut self,
        sql: &str,
        params: &[Value],
        read: impl Fn(&Row) -> Result<T, RowError>,
    ) -> Result<T, AlertError> {
        self.row(sql, params, read)?.ok_or_else(|| self.row_error(RowError::Missing))
    }
}

/// How many rows one multi-row statement carries: far under both databases' parameter
/// limits (PostgreSQL 65,535, SQLite 32,766) at the widest row the lifecycle writes
/// (eleven parameters), and enough that a batch of findings costs a few round trips.
pub(crate) const ROWS_PER_STATEMENT: usize = 500;

/// The placeholders of a multi-row `VALUES` list: `rows` rows of one parameter per entry of
/// `casts`, numbered from `$1` row by row. A non-empty cast wraps its parameter
/// (`CAST($3 AS BIGINT)`): PostgreSQL types a bare parameter in a `VALUES` list that feeds
/// a join (not an `INSERT`) as text.
pub(crate) fn values_rows(rows: usize, casts: &[&str]) -> String {
    let mut out = String::new();
    let mut n = 0;
    for row in 0..rows {
        out.push_str(if row == 0 { "(" } else { ", (" });
        for (c, cast) in casts.iter().enumerate() {
            n += 1;
            let sep = if c == 0 { "" } else { ", " };
            match *cast {
                "" => out.push_str(&format!("{sep}${n}")),
                ty => out.push_str(&format!("{sep}CAST(${n} AS {ty})")),
            }
        }
        out.push(')');
    }
    out
}

/// `$first, …`: the `n` parameters of an `IN (…)` list, numbered from `first`.
pub(crate) fn in_list(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// Updates many rows of `table` by id: `set` is the `SET` list with `#1`, `#2`, … for each
/// row's values (`#1` is the id, which `set` does not assign), `casts` their types (see
/// [`values_rows`]). One multi-row statement per [`ROWS_PER_STATEMENT`] rows where the
/// dialect gains from it, else one prepared statement a row (see
/// [`Dialect::update_from_values`]).
pub(crate) fn update_by_id(
    sql: &mut dyn Sql,
    table: &str,
    set: &str,
    casts: &[&str],
    rows: &[Vec<Value>],
) -> Result<(), AlertError> {
    let written = |mark: &dyn Fn(usize) -> String| {
        (1..=casts.len()).rev().fold(set.to_string(), |text, k| text.replace(&format!("#{k}"), &mark(k)))
    };
    if !sql.dialect().update_from_values {
        let update = format!("UPDATE {table} SET {} WHERE id = $1", written(&|k| format!("${k}")));
        for row in rows {
            sql.execute(&update, row)?;
        }
        return Ok(());
    }
    let set = written(&|k| format!("v.column{k}"));
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let update = format!(
            "UPDATE {table} SET {set} FROM (VALUES {}) AS v WHERE {table}.id = v.column1",
            values_rows(chunk.len(), casts)
        );
        sql.execute(&update, &chunk.concat())?;
    }
    Ok(())
}

/// How a database spells the few things SQLite and PostgreSQL say differently. Data, not
/// code: the lifecycle formats these into its statements.
#[derive(Debug)]
pub(crate) struct Dialect {
    /// The mark before a parameter's number: `?` (SQLite) or `$` (PostgreSQL).
    parameter: char,
    /// The larger of two values: SQLite's two-argument `max`, PostgreSQL's `GREATEST`.
    pub greatest: &'static str,
    /// What a read of a row about to be changed adds to lock it: `FOR UPDATE` in
    /// PostgreSQL; nothing in SQLite, whose write transactions lock the file as they
    /// begin (IMMEDIATE).
    pub lock_row: &'static str,
    /// Migrations: the type of an auto-numbered 64-bit primary key.
    pub serial: &'static str,
    /// Migrations: the type of a 64-bit integer column.
    pub bigint: &'static str,
    /// Whether [`update_by_id`] writes many rows in one `UPDATE … FROM (VALUES …)`: on
    /// PostgreSQL it saves a round trip a row; SQLite has no round trips to save, and runs
    /// `UPDATE … FROM` in two passes (25 µs a row against 17 µs for one prepared
    /// `UPDATE … WHERE id` a row, measured on an alert store).
    pub update_from_values: bool,
}

impl Dialect {
    pub(crate) const SQLITE: Dialect = Dialect {
        parameter: '?',
        greatest: "max",
        lock_row: "",
        serial: "INTEGER",
        bigint: "INTEGER",
        update_from_values: false,
    };
    pub(crate) const POSTGRES: Dialect = Dialect {
        parameter: '$',
        greatest: "GREATEST",
        lock_row: " FOR UPDATE",
        serial: "BIGSERIAL",
        bigint: "BIGINT",
        update_from_values: true,
    };

    /// `sql` with its `$n` parameters written this dialect's way. Text in single quotes
    /// (string literals) is left alone; so is a `$` not followed by a digit.
    pub(crate) fn translate<'s>(&self, sql: &'s str) -> Cow<'s, str> {
        if self.parameter == '$' || !sql.contains('$') {
            return Cow::Borrowed(sql);
        }
        let mut out = String::with_capacity(sql.len());
        let mut quoted = false;
        let mut chars = sql.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\'' {
                quoted = !quoted;
            }
            let numbered = c == '$' && !quoted && chars.peek().is_some_and(char::is_ascii_digit);
            out.push(if numbered { self.parameter } else { c });
        }
        Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_statements_pass_through_untouched() {
        let sql = "UPDATE t SET a = $2 WHERE id = $1";
        assert!(matches!(Dialect::POSTGRES.translate(sql), Cow::Borrowed(s) if s == sql));
    }

    #[test]
    fn sqlite_gets_numbered_question_marks() {
        let sql = "INSERT INTO t (a, b, c) VALUES ($1, $10, $2) -- $x";
        assert_eq!(Dialect::SQLITE.translate(sql), "INSERT INTO t (a, b, c) VALUES (?1, ?10, ?2) -- $x");
    }

    #[test]
    fn string_literals_keep_their_dollars() {
        let sql = "SELECT '$1 or ''$2''' WHERE a = $3";
        assert_eq!(Dialect::SQLITE.translate(sql), "SELECT '$1 or ''$2''' WHERE a = ?3");
    }

    /// The reason for translating at all (see the module docs).
    #[test]
    fn sqlite_numbers_dollar_parameters_by_appearance() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let read = |sql: &str| conn.query_row(sql, ["first", "second"], |r| r.get::<_, String>(0)).unwrap();
        assert_eq!(read("SELECT $2 || ',' || $1"), "first,second", "`$2` is bound to the first value");
        assert_eq!(read(&Dialect::SQLITE.translate("SELECT $2 || ',' || $1")), "second,first");
    }

    #[test]
    fn multi_row_placeholders_number_row_by_row() {
        assert_eq!(values_rows(2, &["", "BIGINT"]), "($1, CAST($2 AS BIGINT)), ($3, CAST($4 AS BIGINT))");
        assert_eq!(in_list(2, 3), "$2, $3, $4");
        assert_eq!(values_rows(0, &[""]), "");
    }

    #[test]
    fn rows_read_what_they_hold_and_name_what_they_do_not() {
        let row = Row(vec![Value::Int(7), Value::Text("open".into()), Value::Null]);
        assert_eq!((row.int(0).unwrap(), row.text(1).unwrap()), (7, "open".to_string()));
        assert_eq!((row.opt_int(2).unwrap(), row.opt_text(2).unwrap()), (None, None));
        assert_eq!(row.int(1).unwrap_err().to_string(), "column 1 holds text, not an integer");
        assert_eq!(row.text(2).unwrap_err().to_string(), "column 2 holds NULL, not text");
    }
}
