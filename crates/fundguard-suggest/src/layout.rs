//! What each table's columns are, as the coverage crate classifies them: the money
//! amounts, currencies, status column, identifier and the relations between tables. The
//! suggester keeps no classifier of its own; this module only reads the coverage report.
//!
//! The catalog is fed by whatever describes the schema (a schema file, DDL files) and by the
//! sample itself: every column seen in the events is added with the type of its first
//! non-null value, so a sample without any schema is still classified.

use std::collections::{BTreeMap, HashMap, HashSet};

use fundguard_core::ChangeEvent;
use fundguard_coverage::classify::{Class, Classification, TypeFamily};
use fundguard_coverage::sample::SampleSchema;
use fundguard_coverage::schema::SchemaChange;
use fundguard_coverage::{Catalog, Input, Overrides, measure};
use serde::Serialize;

/// One table as the suggester sees it. Column lists keep the catalog's order.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TableLayout {
    /// The table as the events name it (what rules watch).
    pub name: String,
    /// The column identifying a row (`id`), if one is classified as an identifier.
    pub id: Option<String>,
    /// The state machine column, if any.
    pub status: Option<String>,
    pub money: Vec<String>,
    pub currencies: Vec<String>,
    /// Text columns of no money, status, time or reference class: candidate dimensions
    /// (a payment channel) for failure rates.
    pub dimensions: Vec<String>,
    /// Numbers that are neither money nor identifiers (a commission rate, a quantity): the
    /// factors of a product of two columns.
    pub rates: Vec<String>,
    /// Time columns (`created_at`): what a daily total is dated by.
    pub times: Vec<String>,
    /// Identifier and reference columns other than the row's own: what rows may be grouped
    /// by (a ledger transaction's `txn_id`).
    pub groups: Vec<String>,
    /// Every column's class, with the coverage crate's confidence and reason.
    pub classes: BTreeMap<String, Classification>,
}

/// A reference from one table to another: `from.via` holds `to`'s identifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Relation {
    pub from: String,
    pub via: String,
    pub to: String,
    /// `foreign key`, `naming` or `coverage.yaml`, as coverage found it.
    pub found_by: String,
}

/// Every table of the sample, and the relations between them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Layout {
    pub tables: BTreeMap<String, TableLayout>,
    pub relations: Vec<Relation>,
}

/// Collects the schema: declared changes first, then the columns (and short text values)
/// the sample shows.
#[derive(Debug, Default)]
pub struct SchemaIntake {
    declared: Catalog,
    sample: SampleSchema,
    /// Event table name → catalog table name (a DDL file may name `orders` for `shop.orders`).
    event_tables: Vec<String>,
}

impl SchemaIntake {
    /// Starts from what schema files and DDL say (may be empty).
    pub fn new(changes: impl IntoIterator<Item = SchemaChange>) -> Self {
        let mut intake = SchemaIntake::default();
        for change in changes {
            intake.declared.apply(change);
        }
        intake
    }

    /// Adds the tables and columns of one event (the type of the first non-null value).
    pub fn observe(&mut self, event: &ChangeEvent) {
        if event.current_row().is_none() {
            return;
        }
        if !self.event_tables.iter().any(|t| **t == *event.table) {
            self.event_tables.push(event.table.to_string());
        }
        self.sample.observe(event);
    }

    /// Classifies every table the sample showed, through coverage's `measure` (with no
    /// rules: only its classification and relations are read).
    pub fn layout(&self) -> Layout {
        let mut catalog = self.declared.clone();
        for change in self.sample.changes("sample") {
            catalog.apply(change);
        }
        let overrides = Overrides::default();
        let report =
            measure(&Input { catalog: &catalog, rules: &[], overrides: &overrides, new_columns: &HashSet::new() });
        let tables = catalog.tables();
        // Catalog name → event name.
        let mut event_name: HashMap<String, String> = HashMap::new();
        for t in &self.event_tables {
            if let Some(at) = catalog.resolve(t) {
                event_name.entry(tables[at].name.clone()).or_insert_with(|| t.clone());
            }
        }
        let mut layout = Layout::default();
        for column in &report.columns {
            let Some(table) = event_name.get(&column.table) else { continue };
            let entry = layout
                .tables
                .entry(table.clone())
                .or_insert_with(|| TableLayout { name: table.clone(), ..TableLayout::default() });
            let c = &column.classification;
            let name = column.column.clone();
            let family = TypeFamily::of(&column.data_type);
            let numeric = matches!(family, TypeFamily::Integer | TypeFamily::Decimal);
            match c.class {
                Class::Identifier if name.eq_ignore_ascii_case("id") => entry.id = Some(name.clone()),
                Class::Identifier | Class::ForeignReference => entry.groups.push(name.clone()),
                Class::Rate | Class::Other if numeric => entry.rates.push(name.clone()),
                Class::EventTime => entry.times.push(name.clone()),
                Class::Status if entry.status.is_none() => entry.status = Some(name.clone()),
                Class::MoneyAmount => entry.money.push(name.clone()),
                Class::Currency => entry.currencies.push(name.clone()),
                Class::Other if family == TypeFamily::Text => entry.dimensions.push(name.clone()),
                _ => {}
            }
            entry.classes.insert(name, c.clone());
        }
        for r in &report.relations {
            let (Some(from), Some(to), Some(via)) = (event_name.get(&r.from), event_name.get(&r.to), &r.via) else {
                continue;
            };
            layout.relations.push(Relation {
                from: from.clone(),
                via: via.clone(),
                to: to.clone(),
                found_by: r.found_by.clone(),
            });
        }
        layout
    }
}

impl Layout {
    /// The layout of a table the events name.
    pub fn table(&self, name: &str) -> Option<&TableLayout> {
        self.tables.get(name)
    }
}
