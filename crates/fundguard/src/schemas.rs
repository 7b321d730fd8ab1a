//! The optional schema file (`tables: {db.table: {column: type}}`) that declares column
//! types. Both the commands (`validate`, `test`, `backtest`) and the live service read it,
//! so it lives here rather than in either: the service does not depend on the CLI.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use fundguard_core::TableSchemas;
use fundguard_rules::load_schemas;

/// Loads the schema file at `path`; without one, no table has declared types.
pub fn load(path: Option<&PathBuf>) -> anyhow::Result<Arc<TableSchemas>> {
    match path {
        Some(p) => Ok(Arc::new(load_schemas(p).map_err(|d| anyhow::anyhow!("{d}")).context("reading --schema")?)),
        None => Ok(Arc::default()),
    }
}
