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

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::common::TableReference;
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::execution::options::ReadOptions;
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

    /// The session queries run in.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }
}

/// The session every scheduled query runs in: the same SQL functions the streaming engine
/// uses (both crates build DataFusion with one feature set), and DataFusion's settings —
/// which an operator may tune with its `DATAFUSION_*` environment variables, e.g.
/// `DATAFUSION_EXECUTION_TARGET_PARTITIONS=8`.
fn session() -> Result<SessionContext, String> {
    let config = SessionConfig::from_env().map_err(|e| format!("a DATAFUSION_* environment variable: {e}"))?;
    Ok(SessionContext::new_with_config(config))
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
            ctx.register_parquet(name.as_str(), &location, options).await.map_err(|e| e.to_string())
        }
        TableSource::Csv(FileTable { name, path, partitions, s3 }) => {
            let location = file_location(ctx, path, s3.as_ref(), base, env)?;
            let infer = CsvReadOptions::new();
            let schema = exact_schema(ctx, &infer, &location).await?;
            let options = CsvReadOptions::new().schema(&schema).table_partition_cols(partition_columns(partitions));
            ctx.register_csv(name.as_str(), &location, options).await.map_err(|e| e.to_string())
        }
        TableSource::Jsonl(FileTable { name, path, partitions, s3 }) => {
            let location = file_location(ctx, path, s3.as_ref(), base, env)?;
            let infer = JsonReadOptions::default().file_extension(".jsonl");
            let schema = exact_schema(ctx, &infer, &location).await?;
            let options = JsonReadOptions::default()
                .file_extension(".jsonl")
                .schema(&schema)
                .table_partition_cols(partition_columns(partitions));
            ctx.register_json(name.as_str(), &location, options).await.map_err(|e| e.to_string())
        }
        TableSource::Postgres { name, url: u, url_env, schema, sslmode } => {
            let mut params = vec![("connection_string".to_string(), postgres_parameters(&url(u, url_env)?)?)];
            params.extend(sslmode.iter().map(|m| ("sslmode".to_string(), m.clone())));
            let params = to_secret_map(params.into_iter().collect());
            let pool = Arc::new(PostgresConnectionPool::new(params).await.map_err(|e| e.to_string())?);
            let db_schema = schema.clone().unwrap_or_else(|| "public".into());
            let tables = DatabaseSchemaProvider::try_new(db_schema.clone(), pool.clone())
                .await
                .map_err(|e| e.to_string())?
                .table_names();
            let factory = Factory::Postgres(PostgresTableFactory::new(pool));
            register_schema(ctx, name, DatabaseSchema { db_schema, tables, factory })
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
            register_schema(ctx, name, DatabaseSchema { db_schema, tables, factory })
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
            register_schema(ctx, name, DatabaseSchema { db_schema: "main".into(), tables, factory })
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
            .map(|p| Some(Arc::new(DatabaseTable(p)) as Arc<dyn TableProvider>))
            .map_err(datafusion::error::DataFusionError::External)
    }

    fn table_exist(&self, name: &str) -> bool {
        self.tables.iter().any(|t| t == name)
    }
}

/// A database table. The providers answer a scan that needs no column (`count(*)`) with
/// `SELECT 1`, a column the plan does not expect; this projects it away, keeping the rows.
#[derive(Debug)]
struct DatabaseTable(Arc<dyn TableProvider>);

#[async_trait::async_trait]
impl TableProvider for DatabaseTable {
    fn schema(&self) -> datafusion::arrow::datatypes::SchemaRef {
        self.0.schema()
    }

    fn table_type(&self) -> datafusion::logical_expr::TableType {
        self.0.table_type()
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&datafusion::prelude::Expr],
    ) -> datafusion::error::Result<Vec<datafusion::logical_expr::TableProviderFilterPushDown>> {
        self.0.supports_filters_pushdown(filters)
    }

    async fn scan(
        &self,
        state: &dyn datafusion::catalog::Session,
        projection: Option<&Vec<usize>>,
        filters: &[datafusion::prelude::Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};
        let plan = self.0.scan(state, projection, filters, limit).await?;
        if projection.is_some_and(|p| p.is_empty()) {
            return Ok(Arc::new(ProjectionExec::try_new(Vec::<ProjectionExpr>::new(), plan)?));
        }
        Ok(plan)
    }
}
