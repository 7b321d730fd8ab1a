//! A recorded change log as a schema source: the tables and columns its events show, each
//! column typed by its first non-null value, and up to [`MAX_SAMPLES`] distinct values of
//! each short text column — the small data profile that tells a currency column from any
//! other three-letter code when its name does not.

use std::collections::HashMap;

use fundguard_core::{ChangeEvent, ColumnType, Value};

use crate::schema::{Column, SchemaChange};

/// Distinct values kept per column (as many as a live server's profile keeps).
pub const MAX_SAMPLES: usize = 20;
/// Longer texts are not codes: they are not sampled.
const MAX_SAMPLE_CHARS: usize = 8;

/// The columns seen so far, in first-seen order.
#[derive(Debug, Default)]
pub struct SampleSchema {
    columns: Vec<(String, Column)>,
    /// (table, column) → position in `columns`.
    index: HashMap<(String, String), usize>,
}

impl SampleSchema {
    /// Adds what one event shows: its table, its row's columns and their short texts.
    pub fn observe(&mut self, event: &ChangeEvent) {
        let Some(row) = event.current_row() else { return };
        for (name, value) in row.iter() {
            let key = (event.table.to_string(), name.to_string());
            let at = match self.index.get(&key) {
                Some(&at) => at,
                None => {
                    let Some(ty) = ColumnType::of(value) else { continue };
                    let column = Column {
                        name: name.to_string(),
                        data_type: ty.to_string(),
                        comment: None,
                        references: None,
                        samples: Vec::new(),
                    };
                    self.columns.push((key.0.clone(), column));
                    self.index.insert(key, self.columns.len() - 1);
                    self.columns.len() - 1
                }
            };
            if let Value::String(text) = value {
                let samples = &mut self.columns[at].1.samples;
                if text.chars().count() <= MAX_SAMPLE_CHARS && samples.len() < MAX_SAMPLES && !samples.contains(text) {
                    samples.push(text.clone());
                }
            }
        }
    }

    /// The tables and columns seen, as changes for a [`crate::Catalog`]: a column another
    /// source already declared keeps its declaration and gains the sampled values.
    pub fn changes(&self, source: &str) -> Vec<SchemaChange> {
        let mut changes = Vec::with_capacity(self.columns.len() * 2);
        for (table, column) in &self.columns {
            changes.push(SchemaChange::AddColumn {
                table: table.clone(),
                column: Column { samples: Vec::new(), ..column.clone() },
                source: source.to_string(),
            });
            if !column.samples.is_empty() {
                changes.push(SchemaChange::Samples {
                    table: table.clone(),
                    column: column.name.clone(),
                    values: column.samples.clone(),
                });
            }
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use fundguard_core::{EventTime, Op, Position, Row};

    use super::*;
    use crate::classify::{Class, classify};
    use crate::schema::Catalog;

    fn event(table: &str, cells: &[(&str, Value)]) -> ChangeEvent {
        let mut row = Row::with_capacity(cells.len());
        for (name, value) in cells {
            row.push(Arc::from(*name), value.clone());
        }
        ChangeEvent {
            table: Arc::from(table),
            op: Op::Insert,
            before: None,
            after: Some(row),
            commit_time: EventTime::from_micros(0),
            position: Position::Synthetic { seq: 0 },
        }
    }

    #[test]
    fn a_sampled_code_column_of_currencies_classifies_as_currency() {
        let mut sample = SampleSchema::default();
        for (id, code) in [(1, "CNY"), (2, "USD"), (3, "CNY")] {
            sample.observe(&event(
                "shop.payouts",
                &[("id", Value::Int(id)), ("settle_in", Value::String(code.into())), ("note", Value::Null)],
            ));
        }
        let mut catalog = Catalog::default();
        for change in sample.changes("sample") {
            catalog.apply(change);
        }
        let table = &catalog.tables()[0];
        let names: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "settle_in"], "a column only ever null has no type to declare");
        let settle_in = &table.columns[1];
        assert_eq!(settle_in.samples, ["CNY", "USD"]);
        assert_eq!(classify("shop.payouts", settle_in, &catalog).class, Class::Currency);
    }

    #[test]
    fn samples_fill_a_declared_column_without_replacing_its_declaration() {
        let mut catalog = Catalog::default();
        catalog.apply(SchemaChange::AddColumn {
            table: "shop.payouts".into(),
            column: Column {
                name: "settle_in".into(),
                data_type: "CHAR(3)".into(),
                comment: Some("declared".into()),
                references: None,
                samples: Vec::new(),
            },
            source: "ddl".into(),
        });
        let mut sample = SampleSchema::default();
        sample.observe(&event("shop.payouts", &[("settle_in", Value::String("EUR".into()))]));
        for change in sample.changes("sample") {
            catalog.apply(change);
        }
        let column = &catalog.tables()[0].columns[0];
        assert_eq!((column.data_type.as_str(), column.comment.as_deref()), ("CHAR(3)", Some("declared")));
        assert_eq!(column.samples, ["EUR"]);
    }
}
