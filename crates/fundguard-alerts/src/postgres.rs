//! The shared alert store: PostgreSQL, for deployments where several fundguard processes
//! and people share one queue. Same schema (`schema.rs`), same lifecycle, same
//! tests as SQLite; the schema version lives in `fundguard_schema`.
//!
//! This file only connects, migrates and executes: what each operation writes and
//! decides is the shared lifecycle's (`backend.rs`, `lifecycle.rs`).

use std::collections::HashMap;

use postgres::types::{ToSql, Type};
use postgres::{Client, GenericClient, NoTls, Statement};

use crate::backend::Backend;
use crate::incidents::Policy;
use crate::model::AlertError;
use crate::routes::Routes;
use crate::sql::{Dialect, Row, RowError, Sql, Value};

pub struct PostgresStore {
    /// Reads take `&self` (as with SQLite) but a client needs `&mut`: one connection,
    /// borrowed per operation (the store is used from one thread at a time).
    client: std::cell::RefCell<Client>,
    url: String,
    policy: Policy,
}

fn store_error(url: &str, e: postgres::Error) -> AlertError {
    AlertError::Postgres { url: url.to_string(), message: e.to_string() }
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user@host/db`) and migrates the schema.
    pub fn open(url: &str) -> Result<PostgresStore, AlertError> {
        let error = |e| store_error(url, e);
        let mut client = Client::connect(url, NoTls).map_err(error)?;
        let mut tx = client.transaction().map_err(error)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS fundguard_schema (version INTEGER NOT NULL); LOCK TABLE fundguard_schema",
        )
        .map_err(error)?;
        let version: i32 =
            tx.query_opt("SELECT version FROM fundguard_schema", &[]).map_err(error)?.map_or(0, |r| r.get(0));
        let migrations = crate::schema::migrations(&Dialect::POSTGRES);
        let known = migrations.len() as i32;
        if version > known {
            return Err(AlertError::NewerSchema { path: url.to_string(), found: version.into(), known: known.into() });
        }
        for migration in &migrations[version as usize..] {
            tx.batch_execute(migration).map_err(error)?;
        }
        tx.execute("DELETE FROM fundguard_schema", &[]).map_err(error)?;
        tx.execute("INSERT INTO fundguard_schema VALUES ($1)", &[&known]).map_err(error)?;
        tx.commit().map_err(error)?;
        Ok(PostgresStore { client: std::cell::RefCell::new(client), url: url.to_string(), policy: Policy::default() })
    }

    pub fn with_routes(mut self, routes: Routes) -> PostgresStore {
        self.policy.routes = routes;
        self
    }

    /// Routes notifications and groups alerts into incidents as `policy` says.
    pub fn with_policy(mut self, policy: Policy) -> PostgresStore {
        self.policy = policy;
        self
    }
}

impl Backend for PostgresStore {
    fn write<T>(&mut self, work: impl FnOnce(&mut dyn Sql, &Policy) -> Result<T, AlertError>) -> Result<T, AlertError> {
        let mut tx = self.client.get_mut().transaction().map_err(|e| store_error(&self.url, e))?;
        let out = work(&mut Executor::new(&mut tx, &self.url), &self.policy)?;
        tx.commit().map_err(|e| store_error(&self.url, e))?;
        Ok(out)
    }

    fn policy(&self) -> &Policy {
        &self.policy
    }

    fn read<T>(&self, work: impl FnOnce(&mut dyn Sql) -> Result<T, AlertError>) -> Result<T, AlertError> {
        let mut client = self.client.borrow_mut();
        work(&mut Executor::new(&mut *client, &self.url))
    }
}

/// Runs the lifecycle's statements on a client or a transaction. PostgreSQL types each
/// parameter from the statement, so values are bound as the type it asks for (an
/// `INTEGER` column takes an `i32`, a `BIGINT` an `i64`).
///
/// Each statement is prepared once per executor, that is per transaction: a batch of
/// findings runs the same few statements over and over. Not kept across transactions,
/// where a pooler in transaction mode (PgBouncer) may hand over another connection.
struct Executor<'c, C> {
    client: &'c mut C,
    url: &'c str,
    prepared: HashMap<String, Statement>,
}

impl<'c, C: GenericClient> Executor<'c, C> {
    fn new(client: &'c mut C, url: &'c str) -> Self {
        Executor { client, url, prepared: HashMap::new() }
    }

    /// Prepares `sql` (once) and binds `params` to the types it expects.
    fn bind(&mut self, sql: &str, params: &[Value]) -> Result<(Statement, Vec<Bound>), AlertError> {
        let statement = match self.prepared.get(sql) {
            Some(statement) => statement.clone(),
            None => {
                let statement = self.client.prepare(sql).map_err(|e| store_error(self.url, e))?;
                self.prepared.insert(sql.to_string(), statement.clone());
                statement
            }
        };
        let bound = params
            .iter()
            .zip(statement.params())
            .map(|(value, ty)| bound(value, ty))
            .collect::<Result<_, _>>()
            .map_err(|message| AlertError::Postgres { url: self.url.to_string(), message })?;
        Ok((statement, bound))
    }
}

impl<C: GenericClient> Sql for Executor<'_, C> {
    fn dialect(&self) -> &'static Dialect {
        &Dialect::POSTGRES
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, AlertError> {
        let (statement, bound) = self.bind(sql, params)?;
        self.client.execute(&statement, &refs(&bound)).map_err(|e| store_error(self.url, e))
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, AlertError> {
        let (statement, bound) = self.bind(sql, params)?;
        let rows = self.client.query(&statement, &refs(&bound)).map_err(|e| store_error(self.url, e))?;
        rows.iter().map(|r| row(r).map_err(|e| store_error(self.url, e))).collect()
    }

    fn row_error(&self, error: RowError) -> AlertError {
        AlertError::Postgres { url: self.url.to_string(), message: error.to_string() }
    }
}

/// A parameter value as the Rust type its statement's parameter takes.
type Bound = Box<dyn ToSql + Sync>;

fn bound(value: &Value, ty: &Type) -> Result<Bound, String> {
    let narrow = |i: i64| format!("{i} does not fit a {ty} parameter");
    let (int8, int4, int2) = (*ty == Type::INT8, *ty == Type::INT4, *ty == Type::INT2);
    Ok(match value {
        Value::Int(i) if int8 => Box::new(*i),
        Value::Int(i) if int4 => Box::new(i32::try_from(*i).map_err(|_| narrow(*i))?),
        Value::Int(i) if int2 => Box::new(i16::try_from(*i).map_err(|_| narrow(*i))?),
        Value::Int(_) => return Err(format!("an integer bound to a {ty} parameter")),
        Value::Null if int8 => Box::new(None::<i64>),
        Value::Null if int4 => Box::new(None::<i32>),
        Value::Null if int2 => Box::new(None::<i16>),
        Value::Null => Box::new(None::<String>),
        Value::Text(s) => Box::new(s.clone()),
    })
}

fn refs(bound: &[Bound]) -> Vec<&(dyn ToSql + Sync)> {
    bound.iter().map(|b| b.as_ref() as &(dyn ToSql + Sync)).collect()
}

/// A result row in neutral values; the stores keep integers and text (money is exact
/// JSON text), so any other column type is an error.
fn row(r: &postgres::Row) -> Result<Row, postgres::Error> {
    let value = |i: usize| -> Result<Value, postgres::Error> {
        let ty = r.columns()[i].type_();
        Ok(if *ty == Type::INT8 {
            r.try_get::<_, Option<i64>>(i)?.into()
        } else if *ty == Type::INT4 {
            r.try_get::<_, Option<i32>>(i)?.map(i64::from).into()
        } else if *ty == Type::INT2 {
            r.try_get::<_, Option<i16>>(i)?.map(i64::from).into()
        } else {
            // Anything else is read as text: a type the stores do not use fails here.
            r.try_get::<_, Option<String>>(i)?.into()
        })
    };
    (0..r.len()).map(value).collect::<Result<_, _>>().map(Row)
}
