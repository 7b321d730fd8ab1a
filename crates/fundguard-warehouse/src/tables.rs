//! Warehouse tables: declared once in `fundguard.yaml`, registered in one DataFusion
//! session so a single query can join a Parquet directory, a PostgreSQL table and a
//! MariaDB table.
//!
//! Files (Parquet, CSV, JSON lines) become listing tables, local or on S3-compatible
//! object storage, with Hive-style partition columns (`ds=2026-11-25/part-0.parquet`)
//! that a `WHERE ds = '{{ ds }}'` prunes. A database becomes a schema named after the
//! entry: `orders_db.orders` is the table `orders` of that database, read through the
//! `datafusion-table-providers` crate, which turns the filters DataFusion can push down
//! into the database's own `WHERE`.
//!
//! Everything here is read-only (see `read_only.rs` for the other layers): every table is
//! wrapped in [`ReadOnlyTable`], which refuses inserts, updates, deletes, truncates and
//! merges even if a write plan were built; PostgreSQL sessions are opened with
//! `default_transaction_read_only`; the session has no table functions, no table factories
//! (`CREATE EXTERNAL TABLE`), no file formats to `COPY` to, no URL tables and no spill
//! files, and each run gets its own bounded memory pool ([`Warehouse::bounded`]).

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider, TableProvider};
use datafusion::catalog::{ScanArgs, ScanResult, Session};
use datafusion::common::{Constraints, DFSchemaRef, Statistics, TableReference};
use datafusion::datasource::MemTable;
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::error::Result as DfResult;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{GreedyMemoryPool, TrackConsumersPool};
use datafusion::execution::options::ReadOptions;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::dml::{InsertOp, MergeIntoClause};
use datafusion::logical_expr::{TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::Expr;
use datafusion::prelude::{CsvReadOptions, JsonReadOptions, ParquetReadOptions, SessionConfig, SessionContext};
use datafusion_table_providers::common::DatabaseSchemaProvider;
use datafusion_table_providers::mysql::MySQLTableFactory;
use datafusion_table_providers::postgres::PostgresTableFactory;
use datafusion_table_providers::sql::db_connection_pool::Mode;
use datafusion_table_providers::sql::db_connection_pool::mysqlpool::MySQLConnectionPool;
use datafusion_table_providers::sql::db_connection_pool::postgrespool::PostgresConnectionPool;
use datafusion_table_providers::sql::db_connection_pool::sqlitepool::SqliteConnectionPoolFactory;
use datafusion_table_providers::sqlite::SqliteTableFactory;
use datafusion_table_providers::util::secrets::to_secret_map;
use serde::Deserialize;

/// Inferred floating-point columns of text files are read as decimals of this scale, so
/// `12.50` stays exactly 12.50 (money is never a float).
pub const TEXT_DECIMAL: DataType = DataType::Decimal128(38, 10);

/// One entry of `warehouse:` in `fundguard.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TableSource {
    /// Parquet files: `NAME` in SQL.
    Parquet(FileTable),
    /// CSV files with a header row.
    Csv(FileTable),
    /// Newline-delimited JSON files (`*.jsonl`).
    Jsonl(FileTable),
    /// A PostgreSQL database: its tables in `schema` (default `public`) as `name.table`.
    Postgres {
        name: String,
        /// `postgres://user@host:port/db`; or give `url_env`.
        #[serde(default)]
        url: Option<String>,
        #[serde(default)]
        url_env: Option<String>,
        #[serde(default)]
        schema: Option<String>,
        /// `disable`, `require`, `prefer`, `verify-ca` or `verify-full` (the default).
        #[serde(default)]
        sslmode: Option<String>,
    },
    /// A MySQL or MariaDB database (the one in the URL): its tables as `name.table`.
    Mysql {
        name: String,
        #[serde(default)]
        url: Option<String>,
        #[serde(default)]
        url_env: Option<String>,
        /// `disabled`, `preferred` or `required` (the default).
        #[serde(default)]
        sslmode: Option<String>,
    },
    /// A SQLite database file: its tables as `name.table`.
    Sqlite { name: String, path: PathBuf },
}

/// A table of files: one file, or a directory read recursively.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTable {
    pub name: String,
    /// A local path (relative to the config file) or `s3://bucket/prefix/`.
    pub path: String,
    /// Hive partition columns, read as text: `[ds]` for `ds=2026-11-25/…`.
    #[serde(default)]
    pub partitions: Vec<String>,
    #[serde(default)]
    pub s3: Option<S3Options>,
}

/// Where an S3-compatible object store is and how to sign in. Credentials come from the
/// environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, …) unless the variables
/// holding them are named here.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Options {
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub access_key_id_env: Option<String>,
    #[serde(default)]
    pub secret_access_key_env: Option<String>,
    /// Allow `http://` endpoints (a local MinIO or test server).
    #[serde(default)]
    pub allow_http: bool,
}

impl TableSource {
    /// The name queries use: a table for files, a schema for databases.
    pub fn name(&self) -> &str {
        match self {
            TableSource::Parquet(FileTable { name, .. })
            | TableSource::Csv(FileTable { name, .. })
            | TableSource::Jsonl(FileTable { name, .. })
            | TableSource::Postgres { name, .. }
            | TableSource::Mysql { name, .. }
            | TableSource::Sqlite { name, .. } => name,
        }
    }
}

/// Why the warehouse could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    #[error("warehouse `{name}`: {message}")]
    Source { name: String, message: String },
    #[error("warehouse names `{0}` twice: expected every table and database name once")]
    Duplicate(String),
    #[error("{0}: fix or unset it")]
    Settings(String),
}

fn source_error(name: &str, message: impl std::fmt::Display) -> WarehouseError {
    WarehouseError::Source { name: name.to_string(), message: message.to_string() }
}

/// Every declared table in one DataFusion session.
pub struct Warehouse {
    ctx: SessionContext,
}

impl Warehouse {
    /// Connects to every source and registers its tables. Relative paths are read from
    /// `base` (the config file's directory); `env` looks up environment variables.
    pub async fn open(
        sources: &[TableSource],
        base: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Warehouse, WarehouseError> {
        let ctx = session().map_err(WarehouseError::Settings)?;
        let mut names = Vec::new();
        for source in sources {
            let name = source.name().to_string();
            if names.contains(&name) {
                return Err(WarehouseError::Duplicate(name));
            }
            register(&ctx, source, base, &env).await.map_err(|e| source_error(&name, e))?;
            names.push(name);
        }
        Ok(Warehouse { ctx })
    }

    /// Tables held in memory, one record batch each, in the same confined session: `db.table`
    /// names become table `table` of schema `db`. What `fundguard suggest` backtests its
    /// suggested sql rules over (the latest rows of a sample).
    pub fn in_memory(tables: Vec<(String, RecordBatch)>) -> Result<Warehouse, WarehouseError> {
        let ctx = session().map_err(WarehouseError::Settings)?;
        let catalog = ctx.catalog("datafusion").ok_or_else(|| WarehouseError::Settings("no default catalog".into()))?;
        for (name, batch) in tables {
            let inner = MemTable::try_new(batch.schema(), vec![vec![batch]]).map_err(|e| source_error(&name, e))?;
            let table = Arc::new(ReadOnlyTable { name: name.clone(), inner: Arc::new(inner), database: false });
            let reference = match name.rsplit_once('.') {
                Some((schema, table)) => {
                    if catalog.schema(schema).is_none() {
                        catalog
                            .register_schema(schema, Arc::new(MemorySchemaProvider::new()))
                            .map_err(|e| source_error(&name, e))?;
                    }
                    TableReference::partial(schema, table)
                }
                None => TableReference::bare(name.as_str()),
            };
            ctx.register_table(reference, table).map_err(|e| source_error(&name, e))?;
        }
        Ok(Warehouse { ctx })
    }

    /// The session queries are planned in (its memory is not bounded: runs use
    /// [`Warehouse::bounded`]).
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// The same tables and settings in a session whose queries may hold at most
    /// `memory_limit` bytes in DataFusion's memory pool: one run's session. An operator that
    /// needs more fails with a resources-exhausted error (naming the largest consumers when
    /// the pool refuses); with no spill files, nothing goes to disk instead.
    pub fn bounded(&self, memory_limit: u64) -> DfResult<SessionContext> {
        let limit = usize::try_from(memory_limit).unwrap_or(usize::MAX);
        let top = NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN);
        let pool = TrackConsumersPool::new(GreedyMemoryPool::new(limit), top);
        let runtime = RuntimeEnvBuilder::from_runtime_env(&self.ctx.runtime_env())
            .with_memory_pool(Arc::new(pool))
            .build_arc()?;
        let state = SessionStateBuilder::new_from_existing(self.ctx.state()).with_runtime_env(runtime).build();
        Ok(SessionContext::new_with_state(state))
    }
}

/// The session every scheduled query runs in: the same SQL functions the streaming engine
/// uses (both crates build DataFusion with one feature set), and DataFusion's settings —
/// which an operator may tune with its `DATAFUSION_*` environment variables, e.g.
/// `DATAFUSION_EXECUTION_TARGET_PARTITIONS=8`.
///
/// Confined to the declared tables: no table functions (`generate_series`, `range`), no table
/// factories (`CREATE EXTERNAL TABLE` has nothing to build with), no file formats (`COPY …
/// TO` has nothing to write with), and URL tables stay off (`SELECT * FROM '/etc/passwd'`
/// is an unknown table). No spill files: a query over its memory limit fails rather than
/// writing to the temporary directory.
fn session() -> Result<SessionContext, String> {
    let config = SessionConfig::from_env().map_err(|e| format!("a DATAFUSION_* environment variable: {e}"))?;
    let no_spilling = DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled);
    let runtime =
        RuntimeEnvBuilder::new().with_disk_manager_builder(no_spilling).build_arc().map_err(|e| e.to_string())?;
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        .with_table_functions(HashMap::new())
        .with_table_factories(HashMap::new())
        .with_file_formats(Vec::new())
        .build();
    Ok(SessionContext::new_with_state(state))
}

async fn register(
    ctx: &SessionContext,
    source: &TableSource,
    base: &Path,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<(), String> {
    let url = |url: &Option<String>, url_env: &Option<String>| -> Result<String, String> {
        match (url, url_env) {
            (Some(url), _) => Ok(url.clone()),
            (None, Some(var)) => env(var).ok_or_else(|| format!("the environment variable `{var}` is not set")),
            (None, None) => Err("no `url` or `url_env`: expected where the database is".into()),
        }
    };
    match source {
        TableSource::Parquet(FileTable { name, path, partitions, s3 }) => {
            let location = file_location(ctx, path, s3.as_ref(), base, env)?;
            let options = ParquetReadOptions::default().table_partition_cols(partition_columns(partitions));
            ctx.register_parquet(name.as_str(), &location, options).await.map_err(|e| e.to_string())?;
            read_only(ctx, name)
        }
        TableSource::Csv(FileTable { name, path, partitions, s3 }) => {
            let location = file_location(ctx, path, s3.as_ref(), base, env)?;
            let infer = CsvReadOptions::new();
            let schema = exact_schema(ctx, &infer, &location).await?;
            let options = CsvReadOptions::new().schema(&schema).table_partition_cols(partition_columns(partitions));
            ctx.register_csv(name.as_str(), &location, options).await.map_err(|e| e.to_string())?;
            read_only(ctx, name)
        }
        TableSource::Jsonl(FileTable { name, path, partitions, s3 }) => {
            let location = file_location(ctx, path, s3.as_ref(), base, env)?;
            let infer = JsonReadOptions::default().file_extension(".jsonl");
            let schema = exact_schema(ctx, &infer, &location).await?;
            let options = JsonReadOptions::default()
                .file_extension(".jsonl")
                .schema(&schema)
                .table_partition_cols(partition_columns(partitions));
            ctx.register_json(name.as_str(), &location, options).await.map_err(|e| e.to_string())?;
            read_only(ctx, name)
        }
        TableSource::Postgres { name, url: u, url_env, schema, sslmode } => {
            let mut params = vec![
                ("connection_string".to_string(), postgres_parameters(&url(u, url_env)?)?),
                // Every transaction of these sessions is read-only: the server refuses a write
                // whatever reaches it.
                ("options".to_string(), "-c default_transaction_read_only=on".to_string()),
            ];
            params.extend(sslmode.iter().map(|m| ("sslmode".to_string(), m.clone())));
            let params = to_secret_map(params.into_iter().collect());
            let pool = Arc::new(PostgresConnectionPool::new(params).await.map_err(|e| e.to_string())?);
            let db_schema = schema.clone().unwrap_or_else(|| "public".into());
            let tables = DatabaseSchemaProvider::try_new(db_schema.clone(), pool.clone())
                .await
                .map_err(|e| e.to_string())?
                .table_names();
            let factory = Factory::Postgres(PostgresTableFactory::new(pool));
            register_schema(ctx, name, DatabaseSchema { name: name.clone(), db_schema, tables, factory })
        }
        TableSource::Mysql { name, url: u, url_env, sslmode } => {
            let url = url(u, url_env)?;
            let db_schema = url::Url::parse(&url)
                .ok()
                .map(|u| u.path().trim_start_matches('/').to_string())
                .filter(|db| !db.is_empty())
                .ok_or("the URL names no database: expected mysql://user@host:port/database")?;
            let mut params = vec![("connection_string".to_string(), url)];
            params.extend(sslmode.iter().map(|m| ("sslmode".to_string(), m.clone())));
            let params = to_secret_map(params.into_iter().collect());
            let pool = Arc::new(MySQLConnectionPool::new(params).await.map_err(|e| e.to_string())?);
            let tables = DatabaseSchemaProvider::try_new(db_schema.clone(), pool.clone())
                .await
                .map_err(|e| e.to_string())?
                .table_names();
            let factory = Factory::Mysql(MySQLTableFactory::new(pool));
            register_schema(ctx, name, DatabaseSchema { name: name.clone(), db_schema, tables, factory })
        }
        TableSource::Sqlite { name, path } => {
            let path = if path.is_absolute() { path.clone() } else { base.join(path) };
            if !path.exists() {
                return Err(format!("no SQLite database at {}", path.display()));
            }
            let pool = SqliteConnectionPoolFactory::new(
                &path.display().to_string(),
                Mode::File,
                std::time::Duration::from_secs(5),
            )
            .build()
            .await
            .map_err(|e| e.to_string())?;
            let pool = Arc::new(pool);
            let tables = DatabaseSchemaProvider::try_new("main".to_string(), pool.clone())
                .await
                .map_err(|e| e.to_string())?
                .table_names();
            let factory = Factory::Sqlite(SqliteTableFactory::new(pool));
            register_schema(ctx, name, DatabaseSchema { name: name.clone(), db_schema: "main".into(), tables, factory })
        }
    }
}

/// The provider reads libpq `key=value` parameters; a `postgres://` URL is turned into them.
fn postgres_parameters(text: &str) -> Result<String, String> {
    if !text.starts_with("postgres://") && !text.starts_with("postgresql://") {
        return Ok(text.to_string());
    }
    let url = url::Url::parse(text).map_err(|e| format!("the URL does not parse: {e}"))?;
    let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
    let mut parts = Vec::new();
    if let Some(host) = url.host_str() {
        parts.push(format!("host={host}"));
    }
    if let Some(port) = url.port() {
        parts.push(format!("port={port}"));
    }
    if !url.username().is_empty() {
        parts.push(format!("user={}", decode(url.username())));
    }
    if let Some(password) = url.password() {
        parts.push(format!("password={}", decode(password)));
    }
    let db = url.path().trim_start_matches('/');
    if !db.is_empty() {
        parts.push(format!("dbname={db}"));
    }
    for (key, value) in url.query_pairs() {
        parts.push(format!("{key}={value}"));
    }
    Ok(parts.join(" "))
}

fn partition_columns(names: &[String]) -> Vec<(String, DataType)> {
    names.iter().map(|n| (n.clone(), DataType::Utf8)).collect()
}

/// The URL DataFusion lists files under; registers the object store of an `s3://` path.
fn file_location(
    ctx: &SessionContext,
    path: &str,
    s3: Option<&S3Options>,
    base: &Path,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    if let Some(rest) = path.strip_prefix("s3://") {
        let bucket = rest.split('/').next().filter(|b| !b.is_empty()).ok_or("expected s3://bucket/prefix/")?;
        let options = s3.cloned().unwrap_or_default();
        let mut builder = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
        if let Some(endpoint) = &options.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        builder = builder.with_region(options.region.as_deref().unwrap_or("us-east-1"));
        if let Some(var) = &options.access_key_id_env {
            builder = builder.with_access_key_id(env(var).ok_or_else(|| format!("`{var}` is not set"))?);
        }
        if let Some(var) = &options.secret_access_key_env {
            builder = builder.with_secret_access_key(env(var).ok_or_else(|| format!("`{var}` is not set"))?);
        }
        let store = builder.with_allow_http(options.allow_http).build().map_err(|e| e.to_string())?;
        let root = url::Url::parse(&format!("s3://{bucket}")).map_err(|e| e.to_string())?;
        ctx.register_object_store(&root, Arc::new(store));
        return Ok(path.to_string());
    }
    if s3.is_some() {
        return Err("`s3` options given for a local path: expected path: s3://bucket/prefix/".into());
    }
    let local = if Path::new(path).is_absolute() { PathBuf::from(path) } else { base.join(path) };
    if !local.exists() {
        return Err(format!("no file or directory at {}", local.display()));
    }
    let mut location = local.display().to_string();
    // A directory is listed (recursively, through partitions) only when the URL says so.
    if local.is_dir() && !location.ends_with('/') {
        location.push('/');
    }
    Ok(location)
}

/// The inferred schema of text files with every floating-point column made a decimal.
async fn exact_schema(ctx: &SessionContext, options: &impl ReadOptions<'_>, location: &str) -> Result<Schema, String> {
    let url = ListingTableUrl::parse(location).map_err(|e| e.to_string())?;
    let inferred =
        options.get_resolved_schema(&ctx.copied_config(), ctx.state(), url).await.map_err(|e| e.to_string())?;
    let fields: Vec<Field> = inferred
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Float16 | DataType::Float32 | DataType::Float64 => {
                Field::new(f.name(), TEXT_DECIMAL, f.is_nullable())
            }
            _ => f.as_ref().clone(),
        })
        .collect();
    Ok(Schema::new(fields))
}

fn register_schema(ctx: &SessionContext, name: &str, schema: DatabaseSchema) -> Result<(), String> {
    let catalog = ctx.catalog("datafusion").ok_or("the session has no default catalog")?;
    catalog.register_schema(name, Arc::new(schema)).map_err(|e| e.to_string())?;
    Ok(())
}

/// Makes a table provider in the database's own SQL dialect, so pushed-down filters are
/// quoted the way the database expects.
enum Factory {
    Postgres(PostgresTableFactory),
    Mysql(MySQLTableFactory),
    Sqlite(SqliteTableFactory),
}

/// The tables of one database schema, opened on first use.
struct DatabaseSchema {
    /// The warehouse entry's name: the schema queries use.
    name: String,
    db_schema: String,
    tables: Vec<String>,
    factory: Factory,
}

impl std::fmt::Debug for DatabaseSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSchema").field("db_schema", &self.db_schema).field("tables", &self.tables).finish()
    }
}

#[async_trait::async_trait]
impl SchemaProvider for DatabaseSchema {
    fn table_names(&self) -> Vec<String> {
        self.tables.clone()
    }

    async fn table(&self, name: &str) -> datafusion::error::Result<Option<Arc<dyn TableProvider>>> {
        if !self.table_exist(name) {
            return Ok(None);
        }
        let reference = TableReference::partial(self.db_schema.as_str(), name);
        let provider = match &self.factory {
            Factory::Postgres(f) => f.table_provider(reference).await,
            Factory::Mysql(f) => f.table_provider(reference).await,
            Factory::Sqlite(f) => f.table_provider(reference).await,
        };
        provider
            .map(|inner| {
                let table = ReadOnlyTable { name: format!("{}.{name}", self.name), inner, database: true };
                Some(Arc::new(table) as Arc<dyn TableProvider>)
            })
            .map_err(datafusion::error::DataFusionError::External)
    }

    fn table_exist(&self, name: &str) -> bool {
        self.tables.iter().any(|t| t == name)
    }
}

/// A registered file table, wrapped read-only in its place.
fn read_only(ctx: &SessionContext, name: &str) -> Result<(), String> {
    let table = ctx.deregister_table(name).map_err(|e| e.to_string())?.ok_or("the table was not registered")?;
    ctx.register_table(name, Arc::new(ReadOnlyTable { name: name.to_string(), inner: table, database: false }))
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// A warehouse table: reads go to the table, every kind of write is refused here, so no
/// plan — however it was built — can write through it. DataFusion's file tables
/// (`ListingTable`) would otherwise write new files into the table's directory on `INSERT`.
///
/// Database providers answer a scan that needs no column (`count(*)`) with `SELECT 1`, a
/// column the plan does not expect; for them (`database`) it is projected away, keeping
/// the rows.
#[derive(Debug)]
struct ReadOnlyTable {
    name: String,
    inner: Arc<dyn TableProvider>,
    database: bool,
}

impl ReadOnlyTable {
    fn refuse<T>(&self, what: &str) -> DfResult<T> {
        datafusion::common::plan_err!(
            "{what} `{}`: warehouse tables are read-only, rule SQL cannot change them",
            self.name
        )
    }

    fn without_columns(&self, plan: Arc<dyn ExecutionPlan>, empty: bool) -> DfResult<Arc<dyn ExecutionPlan>> {
        use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};
        if self.database && empty {
            return Ok(Arc::new(ProjectionExec::try_new(Vec::<ProjectionExpr>::new(), plan)?));
        }
        Ok(plan)
    }
}

#[async_trait::async_trait]
impl TableProvider for ReadOnlyTable {
    fn schema(&self) -> datafusion::arrow::datatypes::SchemaRef {
        self.inner.schema()
    }

    fn constraints(&self) -> Option<&Constraints> {
        self.inner.constraints()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> DfResult<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }

    fn statistics(&self) -> Option<Statistics> {
        self.inner.statistics()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let plan = self.inner.scan(state, projection, filters, limit).await?;
        self.without_columns(plan, projection.is_some_and(|p| p.is_empty()))
    }

    async fn scan_with_args<'a>(&self, state: &dyn Session, args: ScanArgs<'a>) -> DfResult<ScanResult> {
        let empty = args.projection().is_some_and(|p| p.is_empty());
        let plan = self.inner.scan_with_args(state, args).await?.into_inner();
        Ok(self.without_columns(plan, empty)?.into())
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        _input: Arc<dyn ExecutionPlan>,
        _op: InsertOp,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.refuse("INSERT INTO")
    }

    async fn delete_from(&self, _state: &dyn Session, _filters: Vec<Expr>) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.refuse("DELETE FROM")
    }

    async fn update(
        &self,
        _state: &dyn Session,
        _assignments: Vec<(String, Expr)>,
        _filters: Vec<Expr>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.refuse("UPDATE")
    }

    async fn truncate(&self, _state: &dyn Session) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.refuse("TRUNCATE")
    }

    async fn merge_into(
        &self,
        _state: &dyn Session,
        _source: Arc<dyn ExecutionPlan>,
        _merge_schema: DFSchemaRef,
        _on: Expr,
        _clauses: Vec<MergeIntoClause>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.refuse("MERGE INTO")
    }
}
