//! Table lookups kept fresh: a task that reads each `table` lookup again every `refresh`
//! and hands the new rows to the pipeline thread, which swaps them into the engine between
//! batches. A read that fails keeps the rows the engine has (logged; tried again at the
//! next refresh): stale reference data is better than none.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::input::Input;
use crate::config::{Config, LookupSource};

/// Runs until the pipeline's channel closes. The first read happened at start-up
/// (`assemble`), so the first refresh is one `refresh` later.
pub async fn refresh(config: Config, inputs: mpsc::Sender<Input>) {
    let tables: Vec<(String, String, Duration, Option<String>)> = config
        .lookups
        .iter()
        .filter_map(|l| match &l.source {
            LookupSource::Table { table, refresh, as_of } => {
                Some((l.name.clone(), table.clone(), *refresh, as_of.clone()))
            }
            LookupSource::Stream { .. } => None,
        })
        .collect();
    if tables.is_empty() {
        return;
    }
    let mut due: Vec<Instant> = tables.iter().map(|(_, _, every, _)| Instant::now() + *every).collect();
    loop {
        let next = due.iter().min().copied().unwrap_or_else(Instant::now);
        tokio::time::sleep_until(next.into()).await;
        // Connections are opened per round: a database that was down last time is tried again.
        let warehouse =
            fundguard_warehouse::Warehouse::open(&config.warehouse, &config.base_dir, |n| std::env::var(n).ok()).await;
        for (i, (name, table, every, as_of)) in tables.iter().enumerate() {
            if due[i] > Instant::now() {
                continue;
            }
            due[i] = Instant::now() + *every;
            let read = match &warehouse {
                Ok(w) => crate::lookups::read(w, table, as_of.as_deref()).await,
                Err(e) => Err(anyhow::anyhow!("opening the warehouse tables: {e}")),
            };
            match read {
                Ok(snapshot) => {
                    tracing::info!(lookup = %name, rows = snapshot.rows.len(), "lookup `{name}` refreshed");
                    let lookup = Input::Lookup { name: name.clone(), snapshot: Box::new(snapshot) };
                    if inputs.send(lookup).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::error!(lookup = %name, error = %format!("{e:#}"), "lookup `{name}` not refreshed, the rows read before are kept: {e:#}")
                }
            }
        }
    }
}
