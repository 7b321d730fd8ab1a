//! Reference data rules read as `lookup.<name>.<column>` (see [`table`] for how a lookup
//! is filled and what an event reads): the store of every lookup the rules read, and
//! [`join`], which gives a rule's table batch the lookup columns it reads.

mod join;
mod table;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use fundguard_core::{ChangeEvent, TableSchemas};

pub(crate) use join::{MissingRow, RuleLookups};
pub use table::LookupSnapshot;
pub(crate) use table::{Filled, LookupTable, SavedLookup};

/// Every lookup some rule reads, by name.
#[derive(Default)]
pub(crate) struct LookupStore {
    pub tables: BTreeMap<String, LookupTable>,
    /// Event table → the stream lookups it keeps current.
    streams: HashMap<String, Vec<String>>,
}

impl LookupStore {
    /// The lookups `rules` read, empty until filled, typed by the schema file's entry
    /// of the same name when there is one.
    pub(crate) fn declare(&mut self, name: &str, schemas: &TableSchemas) -> &mut LookupTable {
        self.tables
            .entry(name.to_string())
            .or_insert_with(|| LookupTable::new(Filled::Snapshot { as_of: None }, schemas.table(name)))
    }

    /// Keeps a lookup current from the change events of `table`.
    pub(crate) fn maintain(&mut self, name: &str, table: &str, keep: Option<Duration>) -> bool {
        let Some(lookup) = self.tables.get_mut(name) else { return false };
        lookup.filled = Filled::Stream { table: table.to_string(), keep };
        let names = self.streams.entry(table.to_string()).or_default();
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
        true
    }

    /// The event tables that keep a lookup current.
    pub(crate) fn stream_tables(&self) -> impl Iterator<Item = &str> {
        self.streams.keys().map(String::as_str)
    }

    /// Stages the batch's changes to stream lookups: each becomes visible to the events
    /// after it.
    pub(crate) fn stage(&mut self, events: &[ChangeEvent]) {
        if self.streams.is_empty() {
            return;
        }
        for (i, event) in events.iter().enumerate() {
            let Some(names) = self.streams.get(&*event.table) else { continue };
            for name in names {
                if let Some(t) = self.tables.get_mut(name) {
                    t.stage(i, event);
                }
            }
        }
    }

    /// Applies the staged changes once the batch is evaluated.
    pub(crate) fn commit(&mut self) {
        for name in self.streams.values().flatten() {
            if let Some(t) = self.tables.get_mut(name) {
                t.commit();
            }
        }
    }

    /// Takes over the rows of an older store's lookups of the same name (a rule reload).
    pub(crate) fn adopt(&mut self, old: LookupStore) {
        for (name, table) in old.tables {
            if let Some(new) = self.tables.get_mut(&name) {
                new.adopt(table);
            }
        }
    }

    /// The stream lookups' rows, for a checkpoint.
    pub(crate) fn saved(&self) -> Vec<(String, SavedLookup)> {
        self.tables
            .iter()
            .filter(|(_, t)| matches!(t.filled, Filled::Stream { .. }))
            .map(|(name, t)| (name.clone(), t.saved()))
            .collect()
    }

    /// Takes a checkpoint's stream lookups (those still kept from the stream).
    pub(crate) fn restore(&mut self, saved: Vec<(String, SavedLookup)>) {
        for (name, lookup) in saved {
            if let Some(t) = self.tables.get_mut(&name).filter(|t| matches!(t.filled, Filled::Stream { .. })) {
                t.restore(lookup);
            }
        }
    }
}
