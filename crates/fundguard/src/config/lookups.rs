//! `lookups:` — the reference data rules read as `lookup.<name>.<column>`, and where each
//! lookup's rows come from: a `warehouse:` table (a file, object storage, PostgreSQL,
//! MySQL, SQLite), re-read every `refresh`, or a table of the change stream kept current
//! event by event. See docs/rules.md "Lookups".

use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::loader::Loader;

/// One entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LookupFile {
    name: Spanned<String>,
    /// A table of `warehouse:` as SQL names it (`fees`, `rates_db.merchant_rates`), read whole.
    #[serde(default)]
    table: Option<Spanned<String>>,
    /// A change-stream table (`db.table`), kept current from its events.
    #[serde(default)]
    stream: Option<Spanned<String>>,
    /// How often a `table` lookup is read again (default 5m).
    #[serde(default)]
    refresh: Option<Spanned<String>>,
    /// A `table` lookup's column saying from when a row is in force.
    #[serde(default)]
    as_of: Option<String>,
    /// A `stream` lookup drops rows not changed for this long (event time).
    #[serde(default)]
    keep: Option<Spanned<String>>,
}

/// Where a lookup's rows come from.
#[derive(Debug, Clone, PartialEq)]
pub enum LookupSource {
    /// A `warehouse:` table, read whole every `refresh`.
    Table { table: String, refresh: Duration, as_of: Option<String> },
    /// A change-stream table kept current event by event.
    Stream { table: String, keep: Option<Duration> },
}

/// A validated lookup.
#[derive(Debug, Clone, PartialEq)]
pub struct LookupConfig {
    pub name: String,
    pub source: LookupSource,
}

/// How often a `table` lookup is read again unless `refresh` says otherwise.
const DEFAULT_REFRESH: Duration = Duration::from_secs(300);

pub(super) fn validate(entries: Vec<LookupFile>, loader: &mut Loader) -> Vec<LookupConfig> {
    let mut lookups: Vec<LookupConfig> = Vec::new();
    for entry in entries {
        let at = loader.at_value(&entry.name);
        let name = entry.name.value.clone();
        if lookups.iter().any(|l| l.name == name) {
            loader.problem(at, format!("lookup `{name}` is declared twice: expected unique names"));
            continue;
        }
        let source = match (&entry.table, &entry.stream) {
            (Some(table), None) => {
                if entry.keep.is_some() {
                    loader.problem(
                        at.clone(),
                        format!("lookup `{name}`: `keep` is for `stream` lookups: expected `refresh`"),
                    );
                }
                let refresh =
                    entry.refresh.as_ref().and_then(|r| loader.spanned_duration(r)).unwrap_or(DEFAULT_REFRESH);
                LookupSource::Table { table: table.value.clone(), refresh, as_of: entry.as_of.clone() }
            }
            (None, Some(stream)) => {
                if !stream.value.contains('.') {
                    loader.problem(
                        loader.at_value(stream),
                        format!("lookup `{name}`: stream `{}`: expected `db.table`", stream.value),
                    );
                    continue;
                }
                if entry.refresh.is_some() || entry.as_of.is_some() {
                    loader.problem(
                        at.clone(),
                        format!("lookup `{name}`: `refresh` and `as_of` are for `table` lookups: a stream lookup is current with every event"),
                    );
                }
                let keep = entry.keep.as_ref().and_then(|k| loader.spanned_duration(k));
                LookupSource::Stream { table: stream.value.clone(), keep }
            }
            _ => {
                loader.problem(at, format!("lookup `{name}`: expected exactly one of `table` (a warehouse table) or `stream` (a change-stream table)"));
                continue;
            }
        };
        lookups.push(LookupConfig { name, source });
    }
    lookups
}
