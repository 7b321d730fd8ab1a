//! The embedded alert store: one SQLite file (WAL mode) in fundguard's data directory.
//!
//! Times are stored as microseconds since the epoch, so they sort and subtract in SQL;
//! evidence and money are JSON text. The schema (`schema.rs`) is versioned with
//! `user_version` and migrated forward on open; a file from a newer fundguard is
//! refused, never misread.
//!
//! This file only opens, migrates and executes: what each operation writes and decides
//! is the shared lifecycle's (`backend.rs`, `lifecycle.rs`).

use std::path::{Path, PathBuf};

use rusqlite::types::{Type, ValueRef};
use rusqlite::{Connection, TransactionBehavior};

use crate::backend::Backend;
use crate::incidents::Policy;
use crate::model::AlertError;
use crate::routes::Routes;
use crate::sql::{Dialect, Row, RowError, Sql, Value};

/// The actor of changes fundguard itself makes (opening, reopening).
pub use crate::lifecycle::SYSTEM_ACTOR;

pub struct SqliteStore {
    conn: Connection,
    path: String,
    policy: Policy,
}

impl SqliteStore {
    /// Opens (creating when missing) the store at `path` and migrates its schema.
    pub fn open(path: &Path) -> Result<SqliteStore, AlertError> {
        let shown = path.display().to_string();
        let error = |source| AlertError::Store { path: shown.clone(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| error(rusqlite::Error::ToSqlConversionFailure(Box::new(e))))?;
        }
        let mut conn = Connection::open(path).map_err(error)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(error)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(error)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(error)?;
        // Several connections write (the findings sink, the notifier, the console), so every
        // write transaction takes the lock as it begins (IMMEDIATE) and waits up to this long:
        // a deferred one that read first cannot wait and fails with `database is locked`.
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(error)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(error)?;
        let migrations = crate::schema::migrations(&Dialect::SQLITE);
        let known = migrations.len() as i64;
        if version > known {
            return Err(AlertError::NewerSchema { path: shown, found: version, known });
        }
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(error)?;
        for migration in &migrations[version as usize..] {
            tx.execute_batch(migration).map_err(error)?;
        }
        tx.pragma_update(None, "user_version", known).map_err(error)?;
        tx.commit().map_err(error)?;
        Ok(SqliteStore { conn, path: shown, policy: Policy::default() })
    }

    /// Notifications of alert events go to the channels this table names.
    pub fn with_routes(mut self, routes: Routes) -> SqliteStore {
        self.policy.routes = routes;
        self
    }

    /// Routes notifications and groups alerts into incidents as `policy` says.
    pub fn with_policy(mut self, policy: Policy) -> SqliteStore {
        self.policy = policy;
        self
    }

    /// The default place: `alerts.db` in the data directory.
    pub fn default_path(data_dir: &Path) -> PathBuf {
        data_dir.join("alerts.db")
    }
}

impl Backend for SqliteStore {
    fn write<T>(&mut self, work: impl FnOnce(&mut dyn Sql, &Policy) -> Result<T, AlertError>) -> Result<T, AlertError> {
        let error = |source| AlertError::Store { path: self.path.clone(), source };
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(error)?;
        let out = work(&mut Executor { conn: &tx, path: &self.path }, &self.policy)?;
        tx.commit().map_err(error)?;
        Ok(out)
    }

    fn policy(&self) -> &Policy {
        &self.policy
    }

    fn read<T>(&self, work: impl FnOnce(&mut dyn Sql) -> Result<T, AlertError>) -> Result<T, AlertError> {
        work(&mut Executor { conn: &self.conn, path: &self.path })
    }
}

/// Runs the lifecycle's statements on a connection (or a transaction, which derefs to
/// one). Statements are cached per connection: the lifecycle runs the same few over and
/// over, so each is parsed once.
struct Executor<'c> {
    conn: &'c Connection,
    path: &'c str,
}

impl Executor<'_> {
    fn error(&self, source: rusqlite::Error) -> AlertError {
        AlertError::Store { path: self.path.to_string(), source }
    }
}

impl Sql for Executor<'_> {
    fn dialect(&self) -> &'static Dialect {
        &Dialect::SQLITE
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, AlertError> {
        let mut statement = self.conn.prepare_cached(&Dialect::SQLITE.translate(sql)).map_err(|e| self.error(e))?;
        let changed = statement.execute(rusqlite::params_from_iter(params)).map_err(|e| self.error(e))?;
        Ok(changed as u64)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, AlertError> {
        let mut statement = self.conn.prepare_cached(&Dialect::SQLITE.translate(sql)).map_err(|e| self.error(e))?;
        let width = statement.column_count();
        let mut rows = statement.query(rusqlite::params_from_iter(params)).map_err(|e| self.error(e))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|e| self.error(e))? {
            let values = (0..width).map(|i| value(row.get_ref(i)?, i)).collect::<rusqlite::Result<_>>();
            out.push(Row(values.map_err(|e| self.error(e))?));
        }
        Ok(out)
    }

    fn row_error(&self, error: RowError) -> AlertError {
        self.error(match error {
            RowError::Column { index, .. } => {
                rusqlite::Error::FromSqlConversionFailure(index, Type::Null, Box::new(error))
            }
            RowError::Missing => rusqlite::Error::QueryReturnedNoRows,
        })
    }
}

/// A column's value; the stores keep no floats (money is exact JSON text) nor blobs.
fn value(column: ValueRef<'_>, index: usize) -> rusqlite::Result<Value> {
    match column {
        ValueRef::Integer(i) => Ok(Value::Int(i)),
        ValueRef::Text(bytes) => String::from_utf8(bytes.to_vec())
            .map(Value::Text)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(e))),
        ValueRef::Null => Ok(Value::Null),
        other => Err(rusqlite::Error::InvalidColumnType(index, format!("column {index}"), other.data_type())),
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(match self {
            Value::Int(i) => (*i).into(),
            Value::Text(s) => s.as_str().into(),
            Value::Null => rusqlite::types::Null.into(),
        })
    }
}
