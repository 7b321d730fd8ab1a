//! One module per subcommand: its arguments (`Args`) and its `run`.

pub mod alerts;
pub mod backtest;
pub mod demo;
pub mod report;
pub mod run;
pub mod simulate;
pub mod test;
pub mod validate;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use fundguard_core::TableSchemas;
use fundguard_rules::{Rule, load_paths, load_schemas};

/// The rule files a command reads, and the optional schema file that types their tables.
#[derive(clap::Args)]
pub struct RuleFiles {
    /// Rule files or directories of them.
    #[arg(required = true)]
    pub rules: Vec<PathBuf>,
    /// Declared column types (`tables: {db.table: {column: type}}`): enables unknown-column and type checks.
    #[arg(long)]
    pub schema: Option<PathBuf>,
}

/// Loads the optional schema file.
pub(crate) fn schemas(path: Option<&PathBuf>) -> anyhow::Result<Arc<TableSchemas>> {
    match path {
        Some(p) => Ok(Arc::new(load_schemas(p).map_err(|d| anyhow::anyhow!("{d}")).context("reading --schema")?)),
        None => Ok(Arc::default()),
    }
}

/// Loads rules, failing with every problem listed.
pub(crate) fn rules(paths: &[PathBuf]) -> anyhow::Result<Vec<Rule>> {
    let (rules, problems) = load_paths(paths);
    if !problems.is_empty() {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        anyhow::bail!(
            "{}\n{} problem(s) in the rule files; `fundguard validate` lists them too",
            list.join("\n"),
            list.len()
        );
    }
    Ok(rules)
}
