//! Filling the engine's lookups from `lookups:` in fundguard.yaml: stream lookups are
//! attached to their change-stream table, table lookups read whole from the warehouse
//! tables (`fundguard run` reads them again every `refresh`, see `live::lookups`).

use anyhow::Context;
use fundguard_core::EventTime;
use fundguard_engine::{Engine, LookupSnapshot};
use fundguard_warehouse::Warehouse;

use crate::config::{LookupConfig, LookupSource};

/// Every lookup the rules read must be declared: a rule reading reference data nobody
/// provides would report every row as missing.
pub fn check_declared(engine: &Engine, lookups: &[LookupConfig], config_given: bool) -> anyhow::Result<()> {
    let undeclared: Vec<&str> = engine.lookup_names().filter(|n| !lookups.iter().any(|l| l.name == *n)).collect();
    if undeclared.is_empty() {
        return Ok(());
    }
    let hint = if config_given {
        "declare them under `lookups:` in the config"
    } else {
        "pass --config with the fundguard.yaml whose `lookups:` declares them"
    };
    anyhow::bail!("the rules read lookup(s) {} that no `lookups:` entry declares: {hint}", undeclared.join(", "))
}

/// Attaches every stream lookup the rules read to its table (before a checkpoint is restored).
pub fn attach_streams(engine: &mut Engine, lookups: &[LookupConfig]) {
    for l in lookups {
        if let LookupSource::Stream { table, keep } = &l.source {
            engine.maintain_lookup(&l.name, table, *keep);
        }
    }
}

/// The most rows a table lookup holds: it is kept in memory, whole. A larger table is
/// refused rather than read in part (a partial lookup would report rows as missing).
pub const MAX_LOOKUP_ROWS: usize = 10_000_000;

/// Reads a table lookup's rows from the warehouse.
pub async fn read(warehouse: &Warehouse, table: &str, as_of: Option<&str>) -> anyhow::Result<LookupSnapshot> {
    let mut rows = Vec::new();
    warehouse
        .rows(table, MAX_LOOKUP_ROWS + 1, EventTime::default(), |events| {
            rows.extend(events.into_iter().filter_map(|e| e.after))
        })
        .await
        .with_context(|| format!("reading the lookup table `{table}`"))?;
    if rows.len() > MAX_LOOKUP_ROWS {
        anyhow::bail!(
            "the lookup table `{table}` has more than {MAX_LOOKUP_ROWS} rows: a lookup is held in memory whole; narrow it with a view, or keep it from the stream"
        );
    }
    Ok(LookupSnapshot { rows, as_of: as_of.map(str::to_string) })
}

/// Fills every lookup the engine's rules read: streams attached, tables read once.
pub async fn fill(engine: &mut Engine, lookups: &[LookupConfig], warehouse: Option<&Warehouse>) -> anyhow::Result<()> {
    attach_streams(engine, lookups);
    let read_by_rules: Vec<String> = engine.lookup_names().map(str::to_string).collect();
    for l in lookups.iter().filter(|l| read_by_rules.contains(&l.name)) {
        if let LookupSource::Table { table, as_of, .. } = &l.source {
            let warehouse = warehouse.context("table lookups need the config's `warehouse:` tables")?;
            let snapshot =
                read(warehouse, table, as_of.as_deref()).await.with_context(|| format!("lookup `{}`", l.name))?;
            engine.set_lookup(&l.name, snapshot);
        }
    }
    Ok(())
}

/// For a one-off command (`backtest`): fills the engine's lookups from the config at
/// `config`, opening its warehouse tables only when a table lookup needs them.
pub fn fill_from(engine: &mut Engine, config: Option<&std::path::Path>) -> anyhow::Result<()> {
    if engine.lookup_names().next().is_none() {
        return Ok(());
    }
    let Some(path) = config else { return check_declared(engine, &[], false) };
    let config = crate::commands::load_config(path)?;
    check_declared(engine, &config.lookups, true)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let needs_tables = config.lookups.iter().any(|l| matches!(l.source, LookupSource::Table { .. }));
    let warehouse = if needs_tables { Some(crate::commands::open_warehouse(&runtime, &config)?) } else { None };
    runtime.block_on(fill(engine, &config.lookups, warehouse.as_ref()))
}
