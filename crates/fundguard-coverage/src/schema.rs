//! Schema intake: the tables and columns coverage is measured over, from whichever sources
//! describe them (DDL files, live servers, the rules' schema file, warehouse tables).
//!
//! Every source becomes [`SchemaChange`]s applied to one [`Catalog`] in order, so a DDL file
//! followed by a migration is the schema after the migration, and the migration's own
//! changes can be told apart (`--diff`).

use std::collections::{BTreeMap, HashMap};

use fundguard_core::{ColumnType, TableSchemas};

use crate::classify::TypeFamily;

/// One column as a source describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    /// The type as the source spells it (`DECIMAL(12,2)`, `character varying(16)`).
    pub data_type: String,
    pub comment: Option<String>,
    /// The table a declared foreign key points at.
    pub references: Option<String>,
    /// A few distinct values of a short text column of a live server (its data profile);
    /// empty when not sampled.
    pub samples: Vec<String>,
}

/// One table: `db.table` (or `table` when the source names no database).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub name: String,
    pub columns: Vec<Column>,
    /// Where it was read from: a file path, a server, `schema file`.
    pub source: String,
}

/// What a source says about the schema, one fact at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaChange {
    CreateTable(Table),
    AddColumn {
        table: String,
        column: Column,
        source: String,
    },
    ForeignKey {
        table: String,
        column: String,
        references: String,
    },
    Comment {
        table: String,
        column: String,
        comment: String,
    },
    /// Values seen in a column (a live server's or a recorded log's data profile).
    Samples {
        table: String,
        column: String,
        values: Vec<String>,
    },
}

/// Every table known, in the order first seen, with indexes by name.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    tables: Vec<Table>,
    /// Full lower-case name → position.
    by_name: HashMap<String, usize>,
    /// Last name segment (`orders` of `shop.orders`) → positions: how a rule's `shop.orders`
    /// finds a DDL file's `orders`, or a live database's `fg_test.orders`.
    by_short_name: HashMap<String, Vec<usize>>,
}

impl Catalog {
    pub fn tables(&self) -> &[Table] {
        &self.tables
    }

    /// Applies one change; returns the (table, column) it added, if it added a column.
    /// A table created twice (two sources describing one database) keeps the first
    /// definition and gains the columns only the second has.
    pub fn apply(&mut self, change: SchemaChange) -> Vec<(String, String)> {
        match change {
            SchemaChange::CreateTable(table) => {
                let name = table.name.to_lowercase();
                match self.by_name.get(&name) {
                    Some(&at) => {
                        let mut added = Vec::new();
                        for column in table.columns {
                            if self.column_mut(at, &column.name).is_none() {
                                added.push((self.tables[at].name.clone(), column.name.clone()));
                                self.tables[at].columns.push(column);
                            }
                        }
                        added
                    }
                    None => {
                        let added = table.columns.iter().map(|c| (table.name.clone(), c.name.clone())).collect();
                        self.insert(table);
                        added
                    }
                }
            }
            SchemaChange::AddColumn { table, column, source } => {
                let at = match self.resolve(&table) {
                    Some(at) => at,
                    None => self.insert(Table { name: table, columns: Vec::new(), source }),
                };
                if self.column_mut(at, &column.name).is_some() {
                    return Vec::new();
                }
                let added = vec![(self.tables[at].name.clone(), column.name.clone())];
                self.tables[at].columns.push(column);
                added
            }
            SchemaChange::ForeignKey { table, column, references } => {
                if let Some(at) = self.resolve(&table)
                    && let Some(c) = self.column_mut(at, &column)
                {
                    c.references = Some(references);
                }
                Vec::new()
            }
            SchemaChange::Comment { table, column, comment } => {
                if let Some(at) = self.resolve(&table)
                    && let Some(c) = self.column_mut(at, &column)
                {
                    c.comment = Some(comment);
                }
                Vec::new()
            }
            SchemaChange::Samples { table, column, values } => {
                if let Some(at) = self.resolve(&table)
                    && let Some(c) = self.column_mut(at, &column)
                {
                    for value in values {
                        if c.samples.len() < crate::sample::MAX_SAMPLES && !c.samples.contains(&value) {
                            c.samples.push(value);
                        }
                    }
                }
                Vec::new()
            }
        }
    }

    fn insert(&mut self, table: Table) -> usize {
        let at = self.tables.len();
        let name = table.name.to_lowercase();
        self.by_short_name.entry(short_name(&name).to_string()).or_default().push(at);
        self.by_name.insert(name, at);
        self.tables.push(table);
        at
    }

    fn column_mut(&mut self, table: usize, column: &str) -> Option<&mut Column> {
        self.tables[table].columns.iter_mut().find(|c| c.name.eq_ignore_ascii_case(column))
    }

    /// Finds a table by its full name, or by its last segment when only one table has it
    /// (`shop.orders` in a rule finds `orders` of a DDL file that names no database).
    pub fn resolve(&self, name: &str) -> Option<usize> {
        let name = name.to_lowercase();
        if let Some(&at) = self.by_name.get(&name) {
            return Some(at);
        }
        match self.by_short_name.get(short_name(&name)).map(Vec::as_slice) {
            Some([only]) => Some(*only),
            _ => None,
        }
    }

    /// Keeps only the tables `keep` accepts (coverage.yaml's include/exclude).
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        let tables = std::mem::take(&mut self.tables);
        *self = Catalog::default();
        for table in tables.into_iter().filter(|t| keep(&t.name)) {
            self.insert(table);
        }
    }
}

/// `orders` of `shop.orders`.
pub fn short_name(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}

/// The type rules see for a column a DDL file or a server declares (`DECIMAL(12,2)`,
/// `character varying(16)`, `DATE`): what `fundguard schema import` writes. Floats read as
/// exact decimals (their text, never a binary float); a time of day, an interval or a type
/// it does not know reads as text.
pub fn declared_type(data_type: &str) -> ColumnType {
    let lower = data_type.trim().to_lowercase();
    // MySQL's BOOLEAN is TINYINT(1); Debezium, Canal and JDBC read it as a boolean too.
    if lower.starts_with("tinyint(1)") || lower == "bit(1)" || lower == "bit" {
        return ColumnType::Bool;
    }
    let head = lower.split(['(', ' ']).next().unwrap_or("");
    match TypeFamily::of(&lower) {
        TypeFamily::Integer => ColumnType::Int,
        TypeFamily::Decimal | TypeFamily::Float | TypeFamily::Money => ColumnType::Decimal,
        TypeFamily::Bool => ColumnType::Bool,
        TypeFamily::Json => ColumnType::Json,
        TypeFamily::Time if head == "date" => ColumnType::Date,
        TypeFamily::Time if head.starts_with("timestamp") || head.starts_with("datetime") => ColumnType::Timestamp,
        _ if head == "year" => ColumnType::Int,
        _ => ColumnType::String,
    }
}

/// The tables of a schema file (`tables: {db.table: {column: type}}`), the file rules use.
pub fn from_schema_file(schemas: &TableSchemas, source: &str) -> Vec<SchemaChange> {
    schemas.tables.iter().map(|(name, columns)| SchemaChange::CreateTable(table_of(name, columns, source))).collect()
}

fn table_of(name: &str, columns: &BTreeMap<String, ColumnType>, source: &str) -> Table {
    Table {
        name: name.to_string(),
        columns: columns
            .iter()
            .map(|(c, t)| Column {
                name: c.clone(),
                data_type: t.to_string(),
                comment: None,
                references: None,
                samples: Vec::new(),
            })
            .collect(),
        source: source.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types_cover_both_dialects() {
        let cases = [
            ("BIGINT(20) UNSIGNED", ColumnType::Int),
            ("int4", ColumnType::Int),
            ("DECIMAL(12,2)", ColumnType::Decimal),
            ("numeric(18,4)", ColumnType::Decimal),
            ("double precision", ColumnType::Decimal),
            ("money", ColumnType::Decimal),
            ("tinyint(1)", ColumnType::Bool),
            ("boolean", ColumnType::Bool),
            ("DATE", ColumnType::Date),
            ("date", ColumnType::Date),
            ("DATETIME(6)", ColumnType::Timestamp),
            ("timestamp(3) without time zone", ColumnType::Timestamp),
            ("timestamp with time zone", ColumnType::Timestamp),
            ("time(6)", ColumnType::String),
            ("varchar(64)", ColumnType::String),
            ("character varying(16)", ColumnType::String),
            ("enum('A','B')", ColumnType::String),
            ("jsonb", ColumnType::Json),
            ("year", ColumnType::Int),
            ("uuid", ColumnType::String),
        ];
        for (spelled, expected) in cases {
            assert_eq!(declared_type(spelled), expected, "{spelled}");
        }
    }

    fn column(name: &str) -> Column {
        Column { name: name.into(), data_type: "bigint".into(), comment: None, references: None, samples: Vec::new() }
    }

    #[test]
    fn a_rule_table_finds_a_table_named_without_database_but_not_an_ambiguous_one() {
        let mut catalog = Catalog::default();
        for name in ["orders", "a.refunds", "b.refunds"] {
            catalog.apply(SchemaChange::CreateTable(Table {
                name: name.into(),
                columns: vec![column("id")],
                source: "t".into(),
            }));
        }
        assert_eq!(catalog.resolve("shop.orders"), Some(0));
        assert_eq!(catalog.resolve("SHOP.ORDERS"), Some(0));
        assert_eq!(catalog.resolve("a.refunds"), Some(1));
        assert_eq!(catalog.resolve("shop.refunds"), None);
    }

    #[test]
    fn adding_a_column_reports_it_once() {
        let mut catalog = Catalog::default();
        catalog.apply(SchemaChange::CreateTable(Table {
            name: "t".into(),
            columns: vec![column("id")],
            source: "s".into(),
        }));
        let add = || SchemaChange::AddColumn { table: "t".into(), column: column("fee"), source: "m".into() };
        assert_eq!(catalog.apply(add()), vec![("t".to_string(), "fee".to_string())]);
        assert!(catalog.apply(add()).is_empty());
        assert_eq!(catalog.tables()[0].columns.len(), 2);
    }
}
